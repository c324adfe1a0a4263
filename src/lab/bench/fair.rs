//! The fair per-core method (`vgate lab bench`, the default `--source trafgen`): one router
//! core measured end to end, with nothing else on it.
//!
//! ```text
//!   source ns (trafgen, CPU 0)           router ns (CPU R alone)           sink ns
//!   veth ------------------------------> vgate or the kernel ------------> veth + XDP sink
//! ```
//!
//! * **Router:** alone on the last CPU (`R`). vgate: one worker pinned there, busy polling
//!   (`dataplane.cpus = [R]`, `poll = "busy"`), its other settings the defaults. The kernel:
//!   the lab's kernel router (forwarding; iptables DNAT/SNAT with conntrack for `fip` and
//!   `snat`) with Receive Packet Steering of both router interfaces to CPU R, so the whole
//!   forwarding path runs there (on veth it would otherwise run in the source's softirq).
//! * **Source:** netsniff-ng's `trafgen`, an independent program; `-P 1` binds its one
//!   process to CPU 0. It is paced (`-b`), because unpaced it aborts when the socket's
//!   queue is full; "full pace" asks for far more than it can send.
//! * **Sink:** a native XDP program on the sink's veth ([`SINK_C`], compiled with clang at
//!   bench time) that counts (the veth's `rx_queue_N_xdp_drops`) and drops every probe
//!   before the sink's kernel stack spends anything on it. ARP and ICMP pass, so the router
//!   resolves the sink and the latency probe is answered.
//!
//! Which lab namespace is the source and which the sink follows the scenario: `forward` and
//! `snat` send from the client side (10.10.1.2, to 198.19.0.1 beyond the inet peer), `fip`
//! and `fip-geneve` from the internet side (198.18.0.1, to the floating IP). In `fip-geneve`
//! the sink is the chassis (192.0.2.11 on the client side) and counts the encapsulated
//! probes; nothing there answers ICMP inside Geneve, so that scenario has no latency probe.
//!
//! Each run, per router (in alternating order, each on a fresh lab):
//! 1. **full pace:** trafgen as fast as it goes for `--trial-duration`; delivered Mpps, each
//!    CPU's busy share and softirq share, and the router core's time per packet. A source
//!    CPU near 100 % busy while the router core has time to spare marks the trial
//!    source-bound.
//! 2. **zero loss:** RFC 2544 section 26.1's binary search for the highest rate delivered
//!    with loss within `--loss-tolerance` (0: none). Each trial sends an exact count, so
//!    loss is exact.
//! 3. **latency:** the load at 50 % of the zero-loss rate for `--duration`, and beside it a
//!    separate low-rate probe stream: `ping` every millisecond from the source to the sink's
//!    kernel through the router and back (round trip: two passes through the router).
//!    Percentiles p50, p99 and p99.9 of the replies' round trips.
//!
//! The router core's time: vgate's `vgate_worker_busy_seconds_total` (its polls that moved
//! packets, system calls and the softirq work they trigger included; empty polls excluded);
//! for the kernel, the router CPU's non-idle time from `/proc/stat`. Divided by the delivered
//! packets.

use super::cpu::{clock_ticks, cpus, loadavg, read};
use super::render::{mpps, opt, ratio};
use super::side::{kernel_nat_rules, launch_vgate, trafgen_packet, vgate_config};
use super::{
    API, BenchArgs, CHASSIS_ADDR, FIP, Machine, SEARCH_RATE_MIN, SEARCH_RESOLUTION, SMOKE_MAX_LOSS,
    SMOKE_RATE, Scenario, WARMUP, WARMUP_RATE,
};
use crate::lab::{EXT_IFACE, INT_IFACE, Lab, LabSpec, Role, RouterMode};
use crate::pktgen::search::binary_search;
use serde::Serialize;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The sink's XDP program.
pub const SINK_C: &str = include_str!("sink.c");
/// What "full pace" asks trafgen for: more than one CPU of it sends.
const FULL_PACE: u64 = 20_000_000;
/// A full-pace trial's traffic runs this long before its window opens.
const RAMP: Duration = Duration::from_secs(1);
/// Stragglers in flight after a trial's source stopped.
const DRAIN: Duration = Duration::from_millis(300);
/// The latency probe: one echo request per millisecond.
const PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// trafgen's `-P 1` binds its process to CPU 0; the probe runs there too.
const SOURCE_CPU: usize = 0;
/// A source CPU this busy means the source, not the router, set the rate.
const SOURCE_BOUND_BUSY: f64 = 0.95;

/// One CPU's shares of a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuShare {
    pub cpu: usize,
    /// Not idle: user, nice, system, irq, softirq, steal.
    pub busy: f64,
    pub softirq: f64,
}

/// One trial through one router.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FairTrial {
    /// Rate asked of trafgen, pps; null at full pace.
    pub offered_pps: Option<u64>,
    pub duration_s: f64,
    pub sent: u64,
    pub delivered: u64,
    pub loss_ratio: f64,
    pub tx_pps: f64,
    pub delivered_pps: f64,
    /// The source's CPU, then the router's.
    pub cpus: Vec<CpuShare>,
    /// The router core's time spent on the trial (module docs).
    pub router_busy_s: f64,
    pub router_busy_share: f64,
    pub router_ns_per_packet: Option<f64>,
    /// The source's CPU was saturated while the router core had time left.
    pub source_bound: bool,
    /// Search trials: within the loss tolerance.
    pub pass: Option<bool>,
}

impl FairTrial {
    pub fn passes(&self, tolerance: f64) -> bool {
        self.sent > 0 && self.loss_ratio <= tolerance
    }
}

/// The latency probe's figures: round trips through the router and back, microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// The load beside the probe, pps.
    pub load_pps: u64,
    pub probes: u64,
    pub replies: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// One run of one router.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FairRun {
    pub full_pace: FairTrial,
    pub search: Vec<FairTrial>,
    pub zero_loss_pps: Option<u64>,
    /// The load trial the latency probe ran beside.
    pub loaded: Option<FairTrial>,
    pub latency: Option<Latency>,
}

/// Median and spread over the runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }
}

/// One router's figures over the runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FairSummary {
    pub full_pace_delivered_pps: Option<Spread>,
    pub zero_loss_pps: Option<Spread>,
    pub source_busy: Option<Spread>,
    pub router_busy: Option<Spread>,
    /// At full pace.
    pub router_ns_per_packet: Option<Spread>,
    /// At 50 % of the zero-loss rate.
    pub router_ns_per_packet_loaded: Option<Spread>,
    pub source_bound_runs: usize,
    pub latency_p50_us: Option<Spread>,
    pub latency_p99_us: Option<Spread>,
    pub latency_p999_us: Option<Spread>,
}

impl FairSummary {
    pub fn of(runs: &[FairRun]) -> FairSummary {
        let share = |t: &FairTrial, i: usize| t.cpus.get(i).map_or(f64::NAN, |c| c.busy);
        FairSummary {
            full_pace_delivered_pps: Spread::of(runs.iter().map(|r| r.full_pace.delivered_pps)),
            zero_loss_pps: Spread::of(
                runs.iter()
                    .filter_map(|r| r.zero_loss_pps.map(|z| z as f64)),
            ),
            source_busy: Spread::of(runs.iter().map(|r| share(&r.full_pace, 0))),
            router_busy: Spread::of(runs.iter().map(|r| r.full_pace.router_busy_share)),
            router_ns_per_packet: Spread::of(
                runs.iter().filter_map(|r| r.full_pace.router_ns_per_packet),
            ),
            router_ns_per_packet_loaded: Spread::of(
                runs.iter()
                    .filter_map(|r| r.loaded.as_ref()?.router_ns_per_packet),
            ),
            source_bound_runs: runs.iter().filter(|r| r.full_pace.source_bound).count(),
            latency_p50_us: Spread::of(
                runs.iter().filter_map(|r| Some(r.latency.as_ref()?.p50_us)),
            ),
            latency_p99_us: Spread::of(
                runs.iter().filter_map(|r| Some(r.latency.as_ref()?.p99_us)),
            ),
            latency_p999_us: Spread::of(
                runs.iter()
                    .filter_map(|r| Some(r.latency.as_ref()?.p999_us)),
            ),
        }
    }
}

/// One router in one scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FairSide {
    /// `--smoke`: one trial at `--rate`.
    pub smoke: Option<FairTrial>,
    pub smoke_latency: Option<Latency>,
    pub runs: Vec<FairRun>,
    pub summary: Option<FairSummary>,
}

/// vgate over the kernel, medians.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FairRatios {
    pub full_pace_delivered: Option<f64>,
    pub zero_loss: Option<f64>,
    /// Below 1: vgate spends less of its core per packet.
    pub router_ns_per_packet: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FairScenario {
    pub scenario: Scenario,
    pub vgate: FairSide,
    pub kernel: Option<FairSide>,
    pub kernel_skipped: Option<String>,
    /// Why there is no latency probe.
    pub latency_skipped: Option<String>,
    pub ratios: FairRatios,
}

#[derive(Clone, Debug, Serialize)]
pub struct FairReport {
    pub method: &'static str,
    pub mode: &'static str,
    pub runs: u32,
    pub frame_size: usize,
    pub flows: u32,
    pub loss_tolerance_pct: f64,
    pub trial_duration_s: f64,
    pub duration_s: f64,
    pub source_cpu: usize,
    pub router_cpu: usize,
    pub machine: Machine,
    /// What vgate's ports said at start-up (mode, transmit budget, NAPI settings).
    pub vgate_ports: Vec<String>,
    /// `[dataplane]` lines `--dataplane` added to vgate's configuration.
    pub vgate_dataplane: Vec<String>,
    pub scenarios: Vec<FairScenario>,
}

/// `/proc/stat` per CPU: (busy, softirq, total) in clock ticks.
pub fn parse_cpu_lines(stat: &str) -> Vec<(usize, u64, u64, u64)> {
    stat.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let cpu: usize = name.strip_prefix("cpu")?.parse().ok()?;
            let v: Vec<u64> = f.map_while(|x| x.parse().ok()).collect();
            if v.len() < 7 {
                return None;
            }
            let steal = v.get(7).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            let busy = v[0] + v[1] + v[2] + v[5] + v[6] + steal;
            Some((cpu, busy, v[6], busy + v[3] + v[4]))
        })
        .collect()
}

/// `ping` output: the round trip of each reply, microseconds.
pub fn parse_ping_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let ms: f64 = t.split_whitespace().next()?.parse().ok()?;
            Some(ms * 1000.0)
        })
        .collect()
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `ethtool -S` of a veth: the sum of its queues' XDP drops.
pub fn parse_xdp_drops(ethtool: &str) -> Option<u64> {
    let mut found = false;
    let mut sum = 0;
    for l in ethtool.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("rx_queue_")
            && let Some((_, v)) = rest.split_once("_xdp_drops:")
        {
            sum += v.trim().parse::<u64>().ok()?;
            found = true;
        }
    }
    found.then_some(sum)
}

struct Sample {
    at: Instant,
    cpus: Vec<(usize, u64, u64, u64)>,
    router_busy_s: f64,
}

/// One router on its own lab, with the source and the sink beside it.
struct Bench {
    mode: RouterMode,
    scenario: Scenario,
    source: Role,
    source_iface: String,
    sink: Role,
    sink_iface: String,
    source_mac: String,
    ingress_mac: String,
    router_cpu: usize,
    vgate: Option<Child>,
    vgate_log: Option<PathBuf>,
    files: Vec<PathBuf>,
    // Last, so vgate is stopped before the namespaces go.
    lab: Lab,
}

impl Bench {
    fn up(
        prefix: &str,
        mode: RouterMode,
        scenario: Scenario,
        router_cpu: usize,
        sink_obj: &Path,
        dataplane: &[String],
    ) -> Result<Bench, String> {
        let spec = LabSpec {
            prefix: prefix.to_string(),
            mode,
            queues: 1,
        };
        let lab = Lab::up(&spec).map_err(|e| format!("lab {prefix}: {e}"))?;
        let err = |e: crate::lab::LabError| format!("lab {prefix}: {e}");
        let (inet_if, client_if) = (lab.inet_iface(), lab.client_iface());
        let (source, source_iface, sink, sink_iface, ingress) = if scenario.inbound() {
            (Role::Inet, inet_if, Role::Client, client_if, EXT_IFACE)
        } else {
            (Role::Client, client_if, Role::Inet, inet_if, INT_IFACE)
        };
        if scenario == Scenario::FipGeneve {
            lab.ip(
                sink,
                &[
                    "addr",
                    "add",
                    &format!("{CHASSIS_ADDR}/24"),
                    "dev",
                    &sink_iface,
                ],
            )
            .map_err(err)?;
        }
        let obj = sink_obj.to_string_lossy();
        lab.ip(
            sink,
            &[
                "link",
                "set",
                "dev",
                &sink_iface,
                "xdpdrv",
                "obj",
                &obj,
                "sec",
                "xdp",
            ],
        )
        .map_err(|e| format!("lab {prefix}: attaching the XDP sink: {e}"))?;
        let source_mac = lab.mac(source, &source_iface).map_err(err)?;
        let ingress_mac = lab.mac(Role::Router, ingress).map_err(err)?;
        // The probe's echo requests to the floating IP leave the internet side by the
        // router's MAC: the kernel router does not answer ARP for it.
        if scenario.inbound() {
            lab.ip(
                source,
                &[
                    "neigh",
                    "replace",
                    FIP,
                    "lladdr",
                    &ingress_mac,
                    "dev",
                    &source_iface,
                    "nud",
                    "permanent",
                ],
            )
            .map_err(err)?;
        }
        let mut b = Bench {
            mode,
            scenario,
            source,
            source_iface,
            sink,
            sink_iface,
            source_mac,
            ingress_mac,
            router_cpu,
            vgate: None,
            vgate_log: None,
            files: Vec::new(),
            lab,
        };
        match mode {
            RouterMode::Vgate => b.start_vgate(prefix, dataplane)?,
            RouterMode::Kernel => b.configure_kernel()?,
        }
        Ok(b)
    }

    fn start_vgate(&mut self, prefix: &str, dataplane: &[String]) -> Result<(), String> {
        let client_mac = self
            .lab
            .mac(Role::Client, &self.lab.client_iface())
            .map_err(|e| e.to_string())?;
        let internal_mac = self
            .lab
            .mac(Role::Router, INT_IFACE)
            .map_err(|e| e.to_string())?;
        let conf = vgate_config(
            self.scenario,
            1,
            &client_mac,
            &internal_mac,
            Some(self.router_cpu),
            dataplane,
        );
        let (child, log) = launch_vgate(&self.lab, prefix, &conf, &mut self.files)?;
        self.vgate = Some(child);
        self.vgate_log = Some(log);
        Ok(())
    }

    fn configure_kernel(&self) -> Result<(), String> {
        let r = |args: &[&str]| {
            self.lab
                .run(Role::Router, args)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        r(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            crate::lab::INET_ADDR,
        ])?;
        for rule in kernel_nat_rules(self.scenario) {
            let mut argv = vec!["iptables"];
            argv.extend(rule.iter().map(String::as_str));
            r(&argv)?;
        }
        // RPS: the forwarding path of both directions runs on the router's CPU, not in the
        // softirq of whoever transmitted into the veth.
        let mask = format!("{:x}", 1u64 << self.router_cpu);
        for dev in [EXT_IFACE, INT_IFACE] {
            let path = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
            r(&["sh", "-c", &format!("echo {mask} > {path}")])?;
        }
        Ok(())
    }

    /// vgate's UMEM, port and NAPI lines from its start-up banner.
    fn vgate_ports(&self) -> Vec<String> {
        let Some(log) = &self.vgate_log else {
            return Vec::new();
        };
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| ["umem:", "port ", "napi:"].iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    }

    fn sample(&self) -> Result<Sample, String> {
        let stat = read("/proc/stat")?;
        let cpus = parse_cpu_lines(&stat);
        let router_busy_s = match self.mode {
            RouterMode::Vgate => self.vgate_busy_s()?,
            RouterMode::Kernel => cpus
                .iter()
                .find(|c| c.0 == self.router_cpu)
                .map_or(0.0, |c| c.1 as f64 / clock_ticks()),
        };
        Ok(Sample {
            at: Instant::now(),
            cpus,
            router_busy_s,
        })
    }

    fn vgate_busy_s(&self) -> Result<f64, String> {
        let url = format!("http://{API}/metrics");
        let out = self
            .lab
            .exec(Role::Router, &["curl", "-sf", &url])
            .map_err(|e| format!("curl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                l.strip_prefix("vgate_worker_busy_seconds_total{worker=\"0\"} ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or_else(|| "vgate's metrics have no vgate_worker_busy_seconds_total".into())
    }

    fn sent(&self) -> Result<u64, String> {
        let path = format!("/sys/class/net/{}/statistics/tx_packets", self.source_iface);
        let out = self
            .lab
            .run(self.source, &["cat", &path])
            .map_err(|e| e.to_string())?;
        out.trim()
            .parse()
            .map_err(|_| format!("{path}: not a number: {out:?}"))
    }

    fn sunk(&self) -> Result<u64, String> {
        let out = self
            .lab
            .run(self.sink, &["ethtool", "-S", &self.sink_iface])
            .map_err(|e| e.to_string())?;
        parse_xdp_drops(&out)
            .ok_or_else(|| format!("ethtool -S {}: no rx_queue_N_xdp_drops", self.sink_iface))
    }

    fn trafgen(&self, args: &BenchArgs, rate: u64, count: Option<u64>) -> Result<Child, String> {
        let packet = trafgen_packet(args, self.scenario, &self.ingress_mac, &self.source_mac);
        let rate_s = format!("{rate}pps");
        let count_s = count.map(|c| c.to_string());
        // -P 1: one process, bound to CPU 0; --no-sock-mem and -Q leave the host's socket
        // memory and IRQ affinity alone; -C: no CPU statistics at exit.
        let mut argv = vec![
            "trafgen",
            "-o",
            &self.source_iface,
            "-b",
            &rate_s,
            "-P",
            "1",
            "--no-sock-mem",
            "-Q",
            "-C",
        ];
        if let Some(c) = &count_s {
            argv.extend(["-n", c]);
        }
        argv.push(&packet);
        let mut c = self.lab.command(self.source, &argv);
        // Its own process group: trafgen forks its sender, and a stop must reach both.
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        self.lab
            .spawn_command(c)
            .map_err(|e| format!("cannot start trafgen: {e}"))
    }

    fn trial_from(
        &self,
        offered: Option<u64>,
        s0: &Sample,
        s1: &Sample,
        sent: u64,
        delivered: u64,
        window: Duration,
    ) -> FairTrial {
        let dt = window.as_secs_f64().max(1e-9);
        let share = |cpu: usize| {
            let a = s0.cpus.iter().find(|c| c.0 == cpu)?;
            let b = s1.cpus.iter().find(|c| c.0 == cpu)?;
            let total = (b.3 - a.3).max(1) as f64;
            Some(CpuShare {
                cpu,
                busy: (b.1 - a.1) as f64 / total,
                softirq: (b.2 - a.2) as f64 / total,
            })
        };
        let cpus: Vec<CpuShare> = [0, self.router_cpu].into_iter().filter_map(share).collect();
        let router_busy_s = (s1.router_busy_s - s0.router_busy_s).max(0.0);
        let router_busy_share = router_busy_s / (s1.at - s0.at).as_secs_f64().max(1e-9);
        let loss_ratio = if sent == 0 {
            1.0
        } else {
            sent.saturating_sub(delivered) as f64 / sent as f64
        };
        let source_busy = cpus.first().map_or(0.0, |c| c.busy);
        FairTrial {
            offered_pps: offered,
            duration_s: dt,
            sent,
            delivered,
            loss_ratio,
            tx_pps: sent as f64 / dt,
            delivered_pps: delivered as f64 / dt,
            router_busy_s,
            router_busy_share,
            router_ns_per_packet: (delivered > 0).then(|| router_busy_s * 1e9 / delivered as f64),
            // Only at full pace: a paced source idles by design.
            source_bound: offered.is_none()
                && source_busy >= SOURCE_BOUND_BUSY
                && router_busy_share < SOURCE_BOUND_BUSY,
            cpus,
            pass: None,
        }
    }

    /// trafgen as fast as it goes; the window opens after [`RAMP`].
    fn full_pace(&self, args: &BenchArgs, duration: Duration) -> Result<FairTrial, String> {
        let mut child = self.trafgen(args, FULL_PACE, None)?;
        std::thread::sleep(RAMP);
        let result = (|| {
            let (t0, d0, s0) = (self.sent()?, self.sunk()?, self.sample()?);
            std::thread::sleep(duration);
            let (t1, d1, s1) = (self.sent()?, self.sunk()?, self.sample()?);
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("trafgen stopped early ({st})"));
            }
            let window = s1.at - s0.at;
            Ok(self.trial_from(None, &s0, &s1, t1 - t0, d1 - d0, window))
        })();
        stop_group(&mut child);
        std::thread::sleep(DRAIN);
        result
    }

    /// Exactly `rate * duration` packets at `rate`: loss is exact.
    fn counted(
        &self,
        args: &BenchArgs,
        rate: u64,
        duration: Duration,
    ) -> Result<FairTrial, String> {
        let count = ((rate as f64) * duration.as_secs_f64()).round().max(1.0) as u64;
        let (d0, s0) = (self.sunk()?, self.sample()?);
        let child = self.trafgen(args, rate, Some(count))?;
        let out = wait_bounded(child, duration * 4 + Duration::from_secs(10), "trafgen")?;
        let s1 = self.sample()?;
        if !out.status.success() {
            return Err(format!(
                "trafgen failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(DRAIN);
        let d1 = self.sunk()?;
        let window = s1.at - s0.at;
        Ok(self.trial_from(Some(rate), &s0, &s1, count, d1 - d0, window))
    }

    /// The echo requests' destination, when the scenario has a probe.
    fn probe_target(&self) -> Option<&'static str> {
        match self.scenario {
            Scenario::Forward | Scenario::Snat => Some(crate::lab::INET_ADDR),
            Scenario::Fip => Some(FIP),
            Scenario::FipGeneve => None,
        }
    }

    /// `perf record` of the router core into `path`, until stopped with [`stop_perf`]. perf
    /// itself runs on the source's CPU: on the router's it would take turns with a
    /// busy-polling worker and stretch the latency tail by milliseconds.
    fn start_perf(&self, path: &Path) -> Result<Child, String> {
        let cpu = self.router_cpu.to_string();
        let source_cpu = SOURCE_CPU.to_string();
        let mut c = std::process::Command::new("taskset");
        c.args([
            "-c",
            &source_cpu,
            "perf",
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-g",
            "-C",
        ])
        .arg(&cpu)
        .arg("-o")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c.spawn().map_err(|e| format!("cannot start perf: {e}"))
    }

    /// The load at `rate` for `duration`, and the probe beside it; with `perf`, the router
    /// core recorded meanwhile.
    fn latency(
        &self,
        args: &BenchArgs,
        rate: u64,
        duration: Duration,
        perf: Option<&Path>,
    ) -> Result<(FairTrial, Option<Latency>), String> {
        let recording = perf.map(|p| self.start_perf(p)).transpose()?;
        let result = self.latency_probed(args, rate, duration);
        if let Some(child) = recording {
            stop_perf(child)?;
        }
        result
    }

    fn latency_probed(
        &self,
        args: &BenchArgs,
        rate: u64,
        duration: Duration,
    ) -> Result<(FairTrial, Option<Latency>), String> {
        let Some(dst) = self.probe_target() else {
            return Ok((self.counted(args, rate, duration)?, None));
        };
        let count = ((duration.as_secs_f64() / PROBE_INTERVAL.as_secs_f64()) as u64)
            .clamp(1, super::probe::MAX_PROBES);
        let dst: std::net::Ipv4Addr = dst.parse().expect("constant address");
        let ns = self.lab.ns(self.source);
        let prober = std::thread::spawn(move || {
            super::probe::run(&ns, SOURCE_CPU, dst, PROBE_INTERVAL, count)
        });
        let load = self.counted(args, rate, duration);
        let probe = prober
            .join()
            .map_err(|_| "the latency probe panicked".to_string())??;
        let load = load?;
        let mut times = probe.rtts_us;
        times.sort_by(f64::total_cmp);
        let latency = (!times.is_empty()).then(|| Latency {
            load_pps: rate,
            probes: probe.sent,
            replies: times.len() as u64,
            p50_us: quantile(&times, 0.5),
            p99_us: quantile(&times, 0.99),
            p999_us: quantile(&times, 0.999),
            max_us: times[times.len() - 1],
        });
        Ok((load, latency))
    }

    /// Neighbours resolved, NAT sessions and conntrack entries made before anything counts.
    fn warm_up(&self, args: &BenchArgs) -> Result<(), String> {
        if let Some(dst) = self.probe_target() {
            let dst: std::net::Ipv4Addr = dst.parse().expect("constant address");
            super::probe::run(
                &self.lab.ns(self.source),
                SOURCE_CPU,
                dst,
                Duration::from_millis(50),
                6,
            )?;
        }
        self.counted(args, WARMUP_RATE, WARMUP).map(drop)
    }

    fn run(
        &self,
        args: &BenchArgs,
        perf: Option<&Path>,
        log: &dyn Fn(&str),
    ) -> Result<FairRun, String> {
        let tolerance = args.loss_tolerance / 100.0;
        let full = self.full_pace(args, args.trial_duration)?;
        log(&format!("  full pace: {}", trial_line(&full)));
        let reached = full.tx_pps.floor() as u64;
        if reached <= SEARCH_RATE_MIN {
            return Err(format!(
                "trafgen reached only {reached} pps, not above {SEARCH_RATE_MIN}"
            ));
        }
        let resolution = ((reached as f64 * SEARCH_RESOLUTION) as u64).max(1000);
        let mut search = Vec::new();
        let found = binary_search(SEARCH_RATE_MIN, reached, resolution, |rate| {
            let mut t = self.counted(args, rate, args.trial_duration)?;
            let pass = t.passes(tolerance);
            t.pass = Some(pass);
            log(&format!(
                "  search: {} {}",
                trial_line(&t),
                if pass { "pass" } else { "fail" }
            ));
            search.push(t);
            Ok::<bool, String>(pass)
        })?;
        let (loaded, latency) = match found {
            Some(zl) => {
                let (t, l) = self.latency(args, (zl / 2).max(1), args.duration(), perf)?;
                log(&format!(
                    "  latency at {} pps: {}; {}",
                    zl / 2,
                    trial_line(&t),
                    latency_line(l.as_ref())
                ));
                (Some(t), l)
            }
            None => (None, None),
        };
        Ok(FairRun {
            full_pace: full,
            search,
            zero_loss_pps: found,
            loaded,
            latency,
        })
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(child) = self.vgate.take() {
            super::side::stop_vgate(child);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// SIGINT to perf, which then writes its file.
fn stop_perf(child: Child) -> Result<(), String> {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = wait_bounded(child, Duration::from_secs(30), "perf record")?;
    // perf exits with SIGINT's status when interrupted; what matters is its file.
    if out.status.code().is_some_and(|c| c != 0) {
        return Err(format!(
            "perf record failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// SIGKILL to `child`'s process group (trafgen may not stop on SIGTERM while it sends, and
/// its sender is a forked child).
fn stop_group(child: &mut Child) {
    // SAFETY: killpg(2) on the group of a child we spawned as its leader.
    unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
}

/// Waits for `child` at most `limit`, killing its process group then.
fn wait_bounded(
    mut child: Child,
    limit: Duration,
    what: &str,
) -> Result<std::process::Output, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                stop_group(&mut child);
                return Err(format!("{what} did not finish in {} s", limit.as_secs()));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    child.wait_with_output().map_err(|e| format!("{what}: {e}"))
}

fn trial_line(t: &FairTrial) -> String {
    let cpus: Vec<String> = t
        .cpus
        .iter()
        .map(|c| format!("cpu{} {:.0}%", c.cpu, c.busy * 100.0))
        .collect();
    format!(
        "offered {} sent {} delivered {} ({} Mpps) loss {:.3} %, {}, router {:.0}% {} ns/pkt{}",
        t.offered_pps
            .map_or("full pace".into(), |r| format!("{r} pps")),
        t.sent,
        t.delivered,
        mpps(t.delivered_pps),
        t.loss_ratio * 100.0,
        cpus.join(" "),
        t.router_busy_share * 100.0,
        opt(t.router_ns_per_packet, 0),
        if t.source_bound { ", source-bound" } else { "" }
    )
}

fn latency_line(l: Option<&Latency>) -> String {
    match l {
        None => "no probe replies".into(),
        Some(l) => format!(
            "probe {}/{} replies, round trip p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} us",
            l.replies, l.probes, l.p50_us, l.p99_us, l.p999_us, l.max_us
        ),
    }
}

/// Compiles the sink program into `dir`.
fn compile_sink(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("sink.c");
    let obj = dir.join("sink.o");
    std::fs::write(&src, SINK_C).map_err(|e| format!("{}: {e}", src.display()))?;
    let include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let out = std::process::Command::new("clang")
        .args(["-O2", "-target", "bpf", &include, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| {
            format!(
                "cannot run clang ({e}): the fair method compiles its XDP sink with it \
                 (tests/setup-host.sh installs clang)"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "clang could not compile the XDP sink: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(obj)
}

/// Checks what the fair method needs before building anything.
fn preflight(args: &BenchArgs) -> Result<usize, String> {
    if args.workers != 1 {
        return Err(
            "the trafgen source measures one router core: --workers 1 (or --source pktgen)".into(),
        );
    }
    if args.trafgen {
        return Err("--trafgen is the pktgen source's cross-check (--source pktgen)".into());
    }
    if let Some(dir) = &args.perf {
        std::fs::create_dir_all(dir).map_err(|e| format!("--perf {}: {e}", dir.display()))?;
    }
    let n = cpus();
    if n < 2 {
        return Err("the fair method needs 2 CPUs: one for the source, one for the router".into());
    }
    let found = std::process::Command::new("trafgen")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if found.is_err() {
        return Err(
            "trafgen (netsniff-ng) is not installed: install it, or use --source pktgen".into(),
        );
    }
    Ok(n - 1)
}

/// Runs the fair method. Progress goes to `log`.
pub fn run(args: &BenchArgs, log: &dyn Fn(&str)) -> Result<FairReport, String> {
    args.check()?;
    let router_cpu = preflight(args)?;
    let dir = tempdir()?;
    let result = run_in(args, router_cpu, &dir, log);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempdir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("vgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn run_in(
    args: &BenchArgs,
    router_cpu: usize,
    dir: &Path,
    log: &dyn Fn(&str),
) -> Result<FairReport, String> {
    let sink = compile_sink(dir)?;
    let loadavg_start = loadavg();
    let runs = args.runs();
    let mut vgate_ports = Vec::new();
    let mut scenarios = Vec::new();
    for scenario in args.scenario.scenarios() {
        let name = scenario.name();
        let kernel_skipped = match scenario {
            Scenario::FipGeneve => Some(
                "the kernel side of fip-geneve needs a Geneve tunnel configured in the \
                 router namespace, which the lab does not build (and this kernel may lack)"
                    .to_string(),
            ),
            _ => None,
        };
        let mut sides: Vec<(RouterMode, FairSide)> = vec![(RouterMode::Vgate, FairSide::default())];
        if kernel_skipped.is_none() {
            sides.push((RouterMode::Kernel, FairSide::default()));
        }
        for run in 0..runs {
            // Alternate which router goes first, so slow drifts of the machine spread evenly.
            let order: Vec<usize> = if run % 2 == 0 {
                (0..sides.len()).collect()
            } else {
                (0..sides.len()).rev().collect()
            };
            for i in order {
                let mode = sides[i].0;
                let label = mode_label(mode);
                let tag = if mode == RouterMode::Vgate { 'v' } else { 'k' };
                log(&format!("{name} {label}: run {} of {runs}", run + 1));
                let bench = Bench::up(
                    &format!("{}{tag}", args.prefix),
                    mode,
                    scenario,
                    router_cpu,
                    &sink,
                    &args.dataplane,
                )?;
                if vgate_ports.is_empty() {
                    vgate_ports = bench.vgate_ports();
                }
                bench.warm_up(args)?;
                let side = &mut sides[i].1;
                if args.smoke {
                    let rate = args.rate.unwrap_or(SMOKE_RATE);
                    let (t, l) = bench.latency(args, rate, args.duration(), None)?;
                    log(&format!(
                        "{name} {label}: {}; {}",
                        trial_line(&t),
                        latency_line(l.as_ref())
                    ));
                    side.smoke = Some(t);
                    side.smoke_latency = l;
                } else {
                    let perf = args
                        .perf
                        .as_ref()
                        .map(|d| d.join(format!("{name}-{label}-{}.data", run + 1)));
                    side.runs.push(bench.run(args, perf.as_deref(), log)?);
                }
            }
        }
        for (_, side) in &mut sides {
            if !side.runs.is_empty() {
                side.summary = Some(FairSummary::of(&side.runs));
            }
        }
        let mut it = sides.into_iter().map(|(_, s)| s);
        let vgate = it.next().unwrap_or_default();
        let kernel = it.next();
        let ratios = kernel
            .as_ref()
            .map_or_else(FairRatios::default, |k| fair_ratios(&vgate, k));
        scenarios.push(FairScenario {
            scenario,
            vgate,
            kernel,
            kernel_skipped,
            latency_skipped: (scenario == Scenario::FipGeneve).then(|| {
                "the sink is a Geneve chassis address with nothing to answer an echo request \
                 inside the tunnel"
                    .to_string()
            }),
            ratios,
        });
    }
    Ok(FairReport {
        method: "fair",
        mode: if args.smoke { "smoke" } else { "full" },
        runs,
        frame_size: args.size,
        flows: args.flows,
        loss_tolerance_pct: args.loss_tolerance,
        trial_duration_s: args.trial_duration.as_secs_f64(),
        duration_s: args.duration().as_secs_f64(),
        source_cpu: 0,
        router_cpu,
        machine: Machine::now(loadavg_start),
        vgate_ports,
        vgate_dataplane: args.dataplane.clone(),
        scenarios,
    })
}

fn mode_label(mode: RouterMode) -> &'static str {
    match mode {
        RouterMode::Vgate => "vgate",
        RouterMode::Kernel => "kernel",
    }
}

fn median(s: Option<Spread>) -> Option<f64> {
    s.map(|s| s.median)
}

pub fn fair_ratios(vgate: &FairSide, kernel: &FairSide) -> FairRatios {
    let (Some(v), Some(k)) = (&vgate.summary, &kernel.summary) else {
        return FairRatios::default();
    };
    FairRatios {
        full_pace_delivered: ratio(
            median(v.full_pace_delivered_pps),
            median(k.full_pace_delivered_pps),
        ),
        zero_loss: ratio(median(v.zero_loss_pps), median(k.zero_loss_pps)),
        router_ns_per_packet: ratio(
            median(v.router_ns_per_packet_loaded),
            median(k.router_ns_per_packet_loaded),
        ),
    }
}

/// Smoke verdict: every router delivered within [`SMOKE_MAX_LOSS`], and the latency probe
/// was answered where the scenario has one.
pub fn smoke_failures(report: &FairReport) -> Vec<String> {
    let mut bad = Vec::new();
    for sc in &report.scenarios {
        for (name, side) in [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())] {
            let Some(side) = side else { continue };
            if let Some(t) = &side.smoke
                && (t.delivered == 0 || !t.passes(SMOKE_MAX_LOSS))
            {
                bad.push(format!(
                    "{} through {name}: sent {} delivered {} (loss {:.1} %)",
                    sc.scenario.name(),
                    t.sent,
                    t.delivered,
                    t.loss_ratio * 100.0
                ));
            }
            if side.smoke.is_some() && sc.latency_skipped.is_none() && side.smoke_latency.is_none()
            {
                bad.push(format!(
                    "{} through {name}: the latency probe got no reply",
                    sc.scenario.name()
                ));
            }
        }
    }
    bad
}

fn spread(s: Option<Spread>, scale: f64, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.runs == 1 => format!("{:.digits$}", s.median * scale),
        Some(s) => format!(
            "{:.digits$} [{:.digits$}..{:.digits$}]",
            s.median * scale,
            s.min * scale,
            s.max * scale
        ),
    }
}

/// The report as text: one table of medians [spread] per scenario.
pub fn render(r: &FairReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "lab bench, fair method ({}, {} run(s)): source trafgen on CPU {}, router alone on CPU {}, \
         XDP sink; {}-byte frames, {} flows, loss tolerance {} %; {} CPUs, kernel {}, load \
         {:.2} -> {:.2}",
        r.mode,
        r.runs,
        r.source_cpu,
        r.router_cpu,
        r.frame_size,
        r.flows,
        r.loss_tolerance_pct,
        r.machine.cpus,
        r.machine.kernel,
        r.machine.loadavg_start,
        r.machine.loadavg_end
    );
    for d in &r.vgate_dataplane {
        let _ = writeln!(s, "vgate [dataplane] {d}");
    }
    for p in &r.vgate_ports {
        let _ = writeln!(s, "vgate {p}");
    }
    for sc in &r.scenarios {
        let _ = writeln!(s, "\n{}", sc.scenario.name());
        if r.mode == "smoke" {
            for (name, side) in [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())] {
                if let Some(t) = side.and_then(|x| x.smoke.as_ref()) {
                    let l = side.and_then(|x| x.smoke_latency.as_ref());
                    let _ = writeln!(s, "  {name:<6} {}; {}", trial_line(t), latency_line(l));
                }
            }
        } else {
            let _ = writeln!(
                s,
                "  {:<6} | {:<22} | {:<22} | {:<16} | {:<16} | {:<20} | {:<20} | round trip p50 / p99 / p99.9, us",
                "router",
                "full pace, Mpps",
                "zero loss, Mpps",
                "source CPU busy",
                "router busy",
                "router ns/pkt (full)",
                "router ns/pkt (50 %)"
            );
            for (name, side) in [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())] {
                let Some(sum) = side.and_then(|x| x.summary.as_ref()) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "  {name:<6} | {:<22} | {:<22} | {:<16} | {:<16} | {:<20} | {:<20} | {} / {} / {}{}",
                    spread(sum.full_pace_delivered_pps, 1e-6, 3),
                    spread(sum.zero_loss_pps, 1e-6, 3),
                    spread(sum.source_busy, 100.0, 0),
                    spread(sum.router_busy, 100.0, 0),
                    spread(sum.router_ns_per_packet, 1.0, 0),
                    spread(sum.router_ns_per_packet_loaded, 1.0, 0),
                    spread(sum.latency_p50_us, 1.0, 0),
                    spread(sum.latency_p99_us, 1.0, 0),
                    spread(sum.latency_p999_us, 1.0, 0),
                    if sum.source_bound_runs > 0 {
                        format!(" ({} run(s) source-bound)", sum.source_bound_runs)
                    } else {
                        String::new()
                    }
                );
            }
            let rt = &sc.ratios;
            if sc.kernel.is_some() {
                let _ = writeln!(
                    s,
                    "  vgate/kernel: full pace {}, zero loss {}, router ns/pkt at 50 % {}",
                    opt(rt.full_pace_delivered, 2),
                    opt(rt.zero_loss, 2),
                    opt(rt.router_ns_per_packet, 2)
                );
            }
        }
        if let Some(why) = &sc.kernel_skipped {
            let _ = writeln!(s, "  kernel: skipped: {why}");
        }
        if let Some(why) = &sc.latency_skipped {
            let _ = writeln!(s, "  latency: not probed: {why}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_per_cpu() {
        let stat = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 10 0 20 100 5 1 9 2 0 0\ncpu1 1 1 1 1 1 1 1\n\
                    intr 5\n";
        assert_eq!(
            parse_cpu_lines(stat),
            vec![(0, 10 + 20 + 1 + 9 + 2, 9, 42 + 105), (1, 5, 1, 7)]
        );
        assert!(parse_cpu_lines("cpu0 1 2\n").is_empty());
    }

    #[test]
    fn ping_and_ethtool_outputs() {
        let ping = "PING 203.0.113.1 (203.0.113.1) 56(84) bytes of data.\n\
                    64 bytes from 203.0.113.1: icmp_seq=1 ttl=63 time=0.123 ms\n\
                    64 bytes from 203.0.113.1: icmp_seq=2 ttl=63 time=1.5 ms\n\
                    --- 203.0.113.1 ping statistics ---\n";
        assert_eq!(parse_ping_times(ping), vec![123.0, 1500.0]);
        let eth = "NIC statistics:\n     peer_ifindex: 5\n     rx_queue_0_xdp_drops: 7\n\
                   rx_queue_1_xdp_drops: 3\n     tx_queue_0_xdp_xmit: 1\n";
        assert_eq!(parse_xdp_drops(eth), Some(10));
        assert_eq!(parse_xdp_drops("NIC statistics:\n"), None);
    }

    #[test]
    fn spread_and_quantiles() {
        let s = Spread::of([3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 500.0);
        assert_eq!(quantile(&v, 0.99), 990.0);
        assert_eq!(quantile(&v, 0.999), 999.0);
        assert_eq!(quantile(&[7.0], 0.999), 7.0);
        assert_eq!(spread(Some(s), 1.0, 0), "2 [1..3]");
    }

    #[test]
    fn the_sink_program_is_embedded() {
        assert!(SINK_C.contains("XDP_DROP") && SINK_C.contains("SEC(\"xdp\")"));
    }
}
