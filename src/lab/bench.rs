//! `vgate lab bench`: the same offered load through vgate and through the Linux kernel
//! configured for the same job, on the lab topology, scenario by scenario.
//!
//! Two labs are built side by side, one per router (prefixes `{p}v` and `{p}k`), and each is
//! turned into a generator topology: the inet peer is moved into the client namespace, so one
//! `vgate pktgen` process sends on one side of the router and receives on the other.
//!
//! ```text
//!   ns {p}?-client (generator)                   ns {p}?-r (vgate, or the kernel)
//!   {p}?i0 203.0.113.1/24   <------ veth ------>  vg-ext
//!   {p}?c0 10.10.1.2/24     <------ veth ------>  vg-int
//! ```
//!
//! Scenarios (64-byte UDP probes, `--flows` source ports):
//! * `forward`: client side to 198.19.0.1, routed by the default route via 203.0.113.1.
//! * `fip`: 198.18.0.1 on the internet side to floating IP 203.0.113.10, rewritten 1:1 to
//!   10.10.1.2 behind vg-int. Kernel: iptables DNAT and SNAT rules as Neutron's L3 agent
//!   writes them for a floating IP (conntrack tracks every flow).
//! * `snat`: client side to 198.19.0.1, masqueraded behind 203.0.113.2. Kernel: iptables
//!   SNAT in POSTROUTING with conntrack, as Neutron's SNAT namespace does.
//! * `fip-geneve`: as `fip`, but the internal address is a VM behind Geneve VNI 100 on a
//!   chassis at 192.0.2.11, reached over vg-int; the generator's receiver counts the
//!   encapsulated probes. vgate only: the kernel side needs a Geneve driver, and when this
//!   kernel has none (probed with `ip link add type geneve`) the report says so.
//!
//! Neighbours: the generator's AF_XDP sockets take every frame arriving on its veths while a
//! trial runs, so the generator namespace's kernel cannot answer ARP then. The kernel router
//! gets permanent neighbour entries; vgate learns its next hops from ARP requests that
//! `arping` in the generator namespace sends to vgate's addresses once a second (RFC 826:
//! a request addressed to us creates the sender's entry), which also keeps them fresh.
//!
//! Per router and scenario the bench runs a trial at the highest rate the generator reaches
//! (delivered Mpps), a binary search for the highest rate with loss within the tolerance
//! (RFC 2544 section 26.1 when the tolerance is 0), and a trial at the lower of the two
//! routers' search results, the same offered load for both, for CPU cost and latency.
//! Search trials are judged on loss alone and the result is the rate the generator actually
//! sent in the best passing trial: with fewer CPUs than busy threads (the generator's
//! sender and busy-polling receiver, a polling router) the generator often falls short of
//! the offered rate, and RFC 2544's "fail unless offered at rate" would then grade the
//! generator's share of the CPUs, not the router.
//!
//! CPU per million delivered packets (`/proc`, in clock ticks):
//! * vgate: utime + stime of the vgate process, all its threads.
//! * kernel: the softirq column of `/proc/stat` summed over all CPUs. Forwarding, netfilter
//!   and conntrack run in the NET_RX softirq, which here runs inline when the generator's
//!   transmit leaves `__dev_direct_xmit` (bottom halves re-enabled). The softirq figure also
//!   holds the XDP delivery into the generator's receiving socket.
//!
//! The softirq figure is reported for vgate runs too (delivery into vgate's sockets and back
//! into the generator's): `vgate + softirq` is an upper bound of vgate's whole cost, since
//! softirq ticks inside vgate's own system calls are counted in both.

use super::{EXT_IFACE, INT_IFACE, Lab, LabError, LabSpec, Role, RouterMode, describe};
use crate::pktgen::search::binary_search;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Default prefix of the two labs (`vgbenchv`, `vgbenchk`).
pub const DEFAULT_PREFIX: &str = "vgbench";
/// The two labs' prefixes add one character to the bench prefix.
pub const MAX_BENCH_PREFIX_LEN: usize = super::MAX_PREFIX_LEN - 1;
/// Most workers (and generator queues) a bench runs.
pub const MAX_WORKERS: u16 = 8;

/// Floating IP of the `fip` and `fip-geneve` scenarios.
const FIP: &str = "203.0.113.10";
/// The internet host sending to the floating IP (RFC 2544 appendix C.2.2 range).
const INET_SRC: &str = "198.18.0.1";
/// Where outbound traffic goes: beyond the inet peer, reached by the default route.
const OUTBOUND_DST: &str = "198.19.0.1";
/// The generator's address on the internal side.
const CLIENT_ADDR: &str = super::CLIENT_ADDR;
/// vgate's underlay address in `fip-geneve`.
const UNDERLAY_LOCAL: &str = "192.0.2.1";
/// The chassis' underlay address: the generator's second address on the internal veth.
const CHASSIS_ADDR: &str = "192.0.2.11";
/// The VM behind Geneve in `fip-geneve`.
const TENANT_VM: &str = "10.0.0.5";
/// The VNI of the tenant network in `fip-geneve`.
const TENANT_VNI: u32 = 100;
/// vgate's API inside the router namespace.
const API: &str = "127.0.0.1:9477";

/// Lowest rate a search tries, pps.
const SEARCH_RATE_MIN: u64 = 10_000;
/// A search stops when its interval is this fraction of the top rate.
const SEARCH_RESOLUTION: f64 = 0.02;
/// Offered rate of smoke trials unless `--rate` says otherwise.
const SMOKE_RATE: u64 = 20_000;
/// Smoke mode fails above this loss: generous, the machine may be busy; a broken path
/// loses everything.
pub const SMOKE_MAX_LOSS: f64 = 0.2;
/// Warm-up before a router's first trial: resolves neighbours, creates NAT sessions and
/// conntrack entries, so the first measured trial does not pay for them.
const WARMUP: Duration = Duration::from_millis(500);
const WARMUP_RATE: u64 = 10_000;
/// How long the generator waits for stragglers after each trial.
const DRAIN: &str = "300ms";
/// Between the starts of a trial's generator processes.
const STAGGER: Duration = Duration::from_millis(200);

/// A bench scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Forward,
    Fip,
    Snat,
    FipGeneve,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Forward,
        Scenario::Fip,
        Scenario::Snat,
        Scenario::FipGeneve,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Forward => "forward",
            Scenario::Fip => "fip",
            Scenario::Snat => "snat",
            Scenario::FipGeneve => "fip-geneve",
        }
    }

    /// Traffic enters from the internet side (towards a floating IP).
    fn inbound(self) -> bool {
        matches!(self, Scenario::Fip | Scenario::FipGeneve)
    }

    fn src_ip(self) -> &'static str {
        if self.inbound() {
            INET_SRC
        } else {
            CLIENT_ADDR
        }
    }

    fn dst_ip(self) -> &'static str {
        if self.inbound() { FIP } else { OUTBOUND_DST }
    }
}

/// `--scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioChoice {
    Forward,
    Fip,
    Snat,
    FipGeneve,
    All,
}

impl ScenarioChoice {
    pub fn scenarios(self) -> Vec<Scenario> {
        match self {
            ScenarioChoice::Forward => vec![Scenario::Forward],
            ScenarioChoice::Fip => vec![Scenario::Fip],
            ScenarioChoice::Snat => vec![Scenario::Snat],
            ScenarioChoice::FipGeneve => vec![Scenario::FipGeneve],
            ScenarioChoice::All => Scenario::ALL.to_vec(),
        }
    }
}

fn parse_workers(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(w) if (1..=MAX_WORKERS).contains(&w) => Ok(w),
        _ => Err(format!(
            "invalid worker count {s:?}: expected 1 to {MAX_WORKERS}"
        )),
    }
}

fn parse_loss_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("percentage {s:?} outside 0..100"));
    }
    Ok(v)
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.len() > MAX_BENCH_PREFIX_LEN {
        return Err(format!(
            "prefix {s:?} is longer than {MAX_BENCH_PREFIX_LEN} characters"
        ));
    }
    super::validate_prefix(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `vgate lab bench` options.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: ScenarioChoice,
    /// vgate workers, queues per veth and generator processes (one per queue).
    #[arg(long, default_value = "1", value_parser = parse_workers)]
    pub workers: u16,
    /// Length of the trial at the common offered load (and of smoke trials)
    /// [default: 5s, smoke: 1s].
    #[arg(long, value_parser = crate::pktgen::parse_duration)]
    pub duration: Option<Duration>,
    /// Length of one search trial and of the trial at the highest rate.
    #[arg(long, default_value = "2s", value_parser = crate::pktgen::parse_duration)]
    pub trial_duration: Duration,
    /// Loss allowed in a passing search trial, percent (0: RFC 2544 zero loss).
    #[arg(long, default_value = "0.1", value_parser = parse_loss_percent)]
    pub loss_tolerance: f64,
    /// Short check that traffic passes: one trial per router at --rate, no search; exits 1
    /// when a router delivers nothing or loses more than 20 %.
    #[arg(long)]
    pub smoke: bool,
    /// Offered rate of smoke trials, pps (100000, 100k) [default: 20k]. The full bench
    /// finds its rates itself.
    #[arg(long, value_parser = crate::pktgen::parse_pps, requires = "smoke")]
    pub rate: Option<u64>,
    /// Frame size in bytes with FCS.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Flows (UDP source ports) over all generator processes.
    #[arg(long, default_value_t = 256)]
    pub flows: u32,
    /// Cross-check the common-load trial with trafgen (netsniff-ng) sending and the
    /// receiving veth's kernel counters counting.
    #[arg(long)]
    pub trafgen: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Names the labs' namespaces and interfaces (at most 12 characters).
    #[arg(long, default_value = DEFAULT_PREFIX, value_parser = parse_prefix)]
    pub prefix: String,
}

impl BenchArgs {
    fn duration(&self) -> Duration {
        self.duration.unwrap_or(if self.smoke {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        })
    }

    fn check(&self) -> Result<(), String> {
        if !(64..=1518).contains(&self.size) {
            return Err(format!("--size {} outside 64..=1518", self.size));
        }
        if self.flows == 0 || self.flows > 32768 {
            return Err(format!("--flows {} outside 1..=32768", self.flows));
        }
        Ok(())
    }
}

/// CPU time counters at one moment, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuSample {
    /// `/proc/stat` softirq, all CPUs.
    pub softirq: f64,
    /// `/proc/stat` system, all CPUs.
    pub system: f64,
    /// utime + stime of the vgate process (0 for the kernel router).
    pub router_process: f64,
}

/// The aggregate `cpu` line of `/proc/stat`: (system, softirq) in clock ticks.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq ...
    Some((*f.get(2)?, *f.get(6)?))
}

/// utime + stime in clock ticks from `/proc/PID/stat` (fields 14 and 15; the command name
/// in field 2 may hold spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, index 11 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPUs this process may run on.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn cpu_sample(router_pid: Option<u32>) -> Result<CpuSample, String> {
    let hz = clock_ticks();
    let stat = read("/proc/stat")?;
    let (system, softirq) =
        parse_proc_stat(&stat).ok_or_else(|| "/proc/stat: no aggregate cpu line".to_string())?;
    let router_process = match router_pid {
        Some(pid) => {
            let path = format!("/proc/{pid}/stat");
            parse_pid_stat(&read(&path)?).ok_or_else(|| format!("{path}: unexpected format"))?
        }
        None => 0,
    };
    Ok(CpuSample {
        softirq: softirq as f64 / hz,
        system: system as f64 / hz,
        router_process: router_process as f64 / hz,
    })
}

/// The 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One generator process's figures, from `vgate pktgen --json`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenFigures {
    pub sent: u64,
    pub received: u64,
    pub tx_pps: f64,
    /// `None` at `--rate max`.
    pub rate_reached: Option<bool>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    /// Probes of another generator process: the router sent them out by another queue.
    pub other_stream: u64,
}

/// Reads the figures the bench uses from a `vgate pktgen --json` run-mode document.
pub fn parse_pktgen(doc: &Value) -> Result<GenFigures, String> {
    let r = &doc["result"];
    let u = |v: &Value, what: &str| {
        v.as_u64()
            .ok_or_else(|| format!("pktgen JSON: {what} missing"))
    };
    let f = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| format!("pktgen JSON: {what} missing"))
    };
    Ok(GenFigures {
        sent: u(&r["tx"]["packets"], "tx.packets")?,
        received: u(&r["rx"]["packets"], "rx.packets")?,
        tx_pps: f(&r["tx"]["pps"], "tx.pps")?,
        rate_reached: r["rate_reached"].as_bool(),
        p50_ns: r["latency_ns"]["p50"].as_u64(),
        p99_ns: r["latency_ns"]["p99"].as_u64(),
        other_stream: r["rx"]["other_stream"].as_u64().unwrap_or(0),
    })
}

/// One trial over every generator process, with the CPU it cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    /// Offered rate asked for, pps; null for the highest rate the generator reaches.
    pub offered_pps: Option<u64>,
    pub duration_s: f64,
    pub sent: u64,
    pub delivered: u64,
    /// Sum of the generator processes' sending rates.
    pub tx_pps: f64,
    /// `tx_pps` times the fraction of the probes delivered.
    pub delivered_pps: f64,
    pub loss_ratio: f64,
    /// Every generator process sent at >= 98 % of its share (null at the highest rate).
    pub rate_reached: Option<bool>,
    /// The worst of the generator processes' percentiles; null when nothing arrived.
    pub latency_p50_ns: Option<u64>,
    pub latency_p99_ns: Option<u64>,
    /// Probes that reached another generator process's socket (counted as delivered).
    pub other_stream: u64,
    /// vgate: its process CPU; kernel: softirq (module docs).
    pub router_cpu_s: f64,
    pub softirq_s: f64,
    pub system_s: f64,
    /// `router_cpu_s` per million delivered packets.
    pub cpu_s_per_mpkt: Option<f64>,
    pub softirq_s_per_mpkt: Option<f64>,
    /// 1-minute load average when the trial started.
    pub loadavg: f64,
    /// Search trials: whether the loss stayed within the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
}

impl Trial {
    /// Combines the generator processes of one trial.
    pub fn combine(
        offered_pps: Option<u64>,
        duration: Duration,
        gens: &[GenFigures],
        router: RouterMode,
        before: CpuSample,
        after: CpuSample,
        loadavg: f64,
    ) -> Trial {
        let sent: u64 = gens.iter().map(|g| g.sent).sum();
        // A probe on another process's socket was delivered all the same: the kernel picks
        // a forwarded packet's transmit queue by flow hash, not by its receive queue.
        let delivered: u64 = gens.iter().map(|g| g.received + g.other_stream).sum();
        let tx_pps: f64 = gens.iter().map(|g| g.tx_pps).sum();
        let softirq_s = (after.softirq - before.softirq).max(0.0);
        let system_s = (after.system - before.system).max(0.0);
        let router_cpu_s = match router {
            RouterMode::Vgate => (after.router_process - before.router_process).max(0.0),
            RouterMode::Kernel => softirq_s,
        };
        let per_mpkt = |s: f64| (delivered > 0).then(|| s / (delivered as f64 / 1e6));
        let rate_reached = if offered_pps.is_some() {
            Some(gens.iter().all(|g| g.rate_reached != Some(false)))
        } else {
            None
        };
        Trial {
            offered_pps,
            duration_s: duration.as_secs_f64(),
            sent,
            delivered,
            tx_pps,
            delivered_pps: if sent == 0 {
                0.0
            } else {
                tx_pps * delivered.min(sent) as f64 / sent as f64
            },
            loss_ratio: if sent == 0 {
                1.0
            } else {
                sent.saturating_sub(delivered) as f64 / sent as f64
            },
            rate_reached,
            latency_p50_ns: gens.iter().filter_map(|g| g.p50_ns).max(),
            latency_p99_ns: gens.iter().filter_map(|g| g.p99_ns).max(),
            other_stream: gens.iter().map(|g| g.other_stream).sum(),
            router_cpu_s,
            softirq_s,
            system_s,
            cpu_s_per_mpkt: per_mpkt(router_cpu_s),
            softirq_s_per_mpkt: per_mpkt(softirq_s),
            loadavg,
            pass: None,
        }
    }

    /// Something was sent and the loss is at most `max_loss` (a ratio).
    pub fn passes(&self, max_loss: f64) -> bool {
        self.sent > 0 && self.loss_ratio <= max_loss
    }
}

/// The trafgen cross-check: trafgen sends, the receiving veth's kernel counter counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafgenCheck {
    pub offered_pps: u64,
    /// The sending veth's tx_packets delta.
    pub sent: u64,
    /// The receiving veth's rx_packets delta.
    pub delivered: u64,
    /// Wall time of the trafgen run.
    pub elapsed_s: f64,
    pub loss_ratio: f64,
}

/// A router's results in one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SideReport {
    /// Smoke mode: the one trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Trial>,
    /// At the highest rate the generator reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Trial>,
    /// Highest rate with loss within the tolerance; null when even the lowest lost more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_pps: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<Trial>,
    /// At the common offered load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common: Option<Trial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trafgen: Option<TrafgenCheck>,
}

/// vgate / kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Ratios {
    /// Delivered rate at the highest offered rate.
    pub max_delivered: Option<f64>,
    /// Search results.
    pub throughput: Option<f64>,
    /// CPU per delivered packet at the common load (below 1: vgate is cheaper).
    pub cpu_per_packet: Option<f64>,
    /// CPU per delivered packet at the highest rate, both routers saturated.
    pub cpu_per_packet_at_max: Option<f64>,
}

/// One scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub vgate: SideReport,
    pub kernel: Option<SideReport>,
    /// Why the kernel side was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_skipped: Option<String>,
    /// Offered rate of the common-load trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_rate_pps: Option<u64>,
    pub ratios: Ratios,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub mode: &'static str,
    pub workers: u16,
    pub frame_size: usize,
    pub flows: u32,
    pub loss_tolerance_pct: f64,
    pub trial_duration_s: f64,
    pub duration_s: f64,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioReport>,
}

/// What the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub loadavg_start: f64,
    pub loadavg_end: f64,
}

/// Probes whether the kernel of the router namespace can make a Geneve device; the reason
/// when not.
fn kernel_geneve_missing(lab: &Lab) -> Option<String> {
    let out = lab.exec(
        Role::Router,
        &[
            "ip",
            "link",
            "add",
            "gnvprobe",
            "type",
            "geneve",
            "id",
            "1",
            "remote",
            "192.0.2.99",
        ],
    );
    match out {
        Ok(o) if o.status.success() => {
            let _ = lab.exec(Role::Router, &["ip", "link", "del", "gnvprobe"]);
            Some("the lab configures no kernel Geneve path".into())
        }
        Ok(o) => Some(format!(
            "this kernel has no Geneve driver (`ip link add type geneve`: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run ip: {e}")),
    }
}

/// A router in its lab, with the generator namespace next to it.
struct Side {
    mode: RouterMode,
    scenario: Scenario,
    queues: u16,
    /// Generator interface the probes leave by, and the one they come back on.
    tx_iface: String,
    rx_iface: String,
    /// The router's MAC on the interface the probes enter.
    ingress_mac: String,
    vgate: Option<Child>,
    files: Vec<PathBuf>,
    // Last, so vgate is stopped before the namespaces go.
    lab: Lab,
}

impl Side {
    fn up(prefix: &str, mode: RouterMode, scenario: Scenario, queues: u16) -> Result<Side, String> {
        let spec = LabSpec {
            prefix: prefix.to_string(),
            mode,
            queues,
        };
        let lab = Lab::up(&spec).map_err(|e| format!("lab {prefix}: {e}"))?;
        let lab_err = |e: LabError| format!("lab {prefix}: {e}");
        // The generator namespace is the client's; the inet peer joins it.
        let (inet_if, client_if) = (lab.inet_iface(), lab.client_iface());
        let gen_ns = lab.ns(Role::Client);
        lab.ip(Role::Inet, &["link", "set", &inet_if, "netns", &gen_ns])
            .map_err(lab_err)?;
        lab.ip(Role::Client, &["link", "set", &inet_if, "up"])
            .map_err(lab_err)?;
        lab.ip(
            Role::Client,
            &[
                "addr",
                "add",
                &format!("{}/24", super::INET_ADDR),
                "dev",
                &inet_if,
            ],
        )
        .map_err(lab_err)?;
        if scenario == Scenario::FipGeneve {
            lab.ip(
                Role::Client,
                &[
                    "addr",
                    "add",
                    &format!("{CHASSIS_ADDR}/24"),
                    "dev",
                    &client_if,
                ],
            )
            .map_err(lab_err)?;
        }
        let (tx_iface, rx_iface, ingress) = if scenario.inbound() {
            (inet_if.clone(), client_if.clone(), EXT_IFACE)
        } else {
            (client_if.clone(), inet_if.clone(), INT_IFACE)
        };
        let ingress_mac = lab.mac(Role::Router, ingress).map_err(lab_err)?;
        let mut side = Side {
            mode,
            scenario,
            queues,
            tx_iface,
            rx_iface,
            ingress_mac,
            vgate: None,
            files: Vec::new(),
            lab,
        };
        match mode {
            RouterMode::Vgate => side.start_vgate(prefix)?,
            RouterMode::Kernel => side.configure_kernel()?,
        }
        Ok(side)
    }

    fn gen_mac(&self, iface: &str) -> Result<String, String> {
        self.lab
            .mac(Role::Client, iface)
            .map_err(|e| format!("lab {}: {e}", self.lab.spec().prefix))
    }

    fn start_vgate(&mut self, prefix: &str) -> Result<(), String> {
        let client_mac = self.gen_mac(&self.lab.client_iface())?;
        let internal_mac = self
            .lab
            .mac(Role::Router, INT_IFACE)
            .map_err(|e| e.to_string())?;
        let conf = vgate_config(self.scenario, self.queues, &client_mac, &internal_mac);
        let path = PathBuf::from(format!("/run/vgate-bench-{prefix}.toml"));
        let log = PathBuf::from(format!("/run/vgate-bench-{prefix}.log"));
        std::fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))?;
        self.files.push(path.clone());
        self.files.push(log.clone());
        self.vgate = Some(super::start_vgate(&self.lab, &path, &log)?);
        let listen = API.parse().expect("constant socket address");
        if !super::wait_ready(&self.lab, listen, Duration::from_secs(15)) {
            return Err(format!(
                "vgate did not come up in {}; its log:\n{}",
                self.lab.ns(Role::Router),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        // ARP requests to vgate's addresses, once a second, from the generator's addresses
        // (module docs: vgate learns its next hops from them).
        let (inet_if, client_if) = (self.lab.inet_iface(), self.lab.client_iface());
        let mut askers = vec![(inet_if.as_str(), super::INET_ADDR, super::ROUTER_EXT_ADDR)];
        match self.scenario {
            Scenario::Forward | Scenario::Snat => {}
            Scenario::Fip => askers.push((&client_if, CLIENT_ADDR, super::ROUTER_INT_ADDR)),
            Scenario::FipGeneve => askers.push((&client_if, CHASSIS_ADDR, UNDERLAY_LOCAL)),
        }
        for (iface, src, dst) in askers {
            let mut c = self.lab.command(
                Role::Client,
                &["arping", "-q", "-b", "-i", "1", "-I", iface, "-s", src, dst],
            );
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            self.lab
                .spawn_command(c)
                .map_err(|e| format!("cannot start arping: {e}"))?;
        }
        Ok(())
    }

    fn configure_kernel(&self) -> Result<(), String> {
        let r = |args: &[&str]| {
            self.lab
                .run(Role::Router, args)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let inet_mac = self.gen_mac(&self.lab.inet_iface())?;
        let client_mac = self.gen_mac(&self.lab.client_iface())?;
        // The generator's sockets take every frame while a trial runs, so nothing would
        // answer the kernel's neighbour probes: permanent entries.
        for (ip, mac, dev) in [
            (super::INET_ADDR, &inet_mac, EXT_IFACE),
            (CLIENT_ADDR, &client_mac, INT_IFACE),
        ] {
            r(&[
                "ip",
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        r(&["ip", "route", "add", "default", "via", super::INET_ADDR])?;
        if self.queues > 1 {
            // Transmit queue by CPU (XPS): generator process q sends from CPU q, the kernel
            // forwards its packets there in softirq, so they leave by queue q and reach
            // process q's socket, as vgate's worker q sends them by queue q.
            for dev in [EXT_IFACE, INT_IFACE] {
                for q in 0..self.queues {
                    let mask = format!("{:x}", 1u64 << (usize::from(q) % cpus()));
                    let path = format!("/sys/class/net/{dev}/queues/tx-{q}/xps_cpus");
                    r(&["sh", "-c", &format!("echo {mask} > {path}")])?;
                }
            }
        }
        let client = format!("{CLIENT_ADDR}/32");
        let fip = format!("{FIP}/32");
        match self.scenario {
            Scenario::Forward | Scenario::FipGeneve => {}
            // Neutron's L3 agent for a floating IP: DNAT in PREROUTING, SNAT of the fixed
            // address in POSTROUTING.
            Scenario::Fip => {
                r(&[
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "PREROUTING",
                    "-d",
                    &fip,
                    "-j",
                    "DNAT",
                    "--to-destination",
                    CLIENT_ADDR,
                ])?;
                r(&[
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-s",
                    &client,
                    "-j",
                    "SNAT",
                    "--to-source",
                    FIP,
                ])?;
            }
            // Neutron's SNAT namespace: the tenant subnet leaves from the gateway address.
            Scenario::Snat => r(&[
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                super::INT_NET,
                "-o",
                EXT_IFACE,
                "-j",
                "SNAT",
                "--to-source",
                super::ROUTER_EXT_ADDR,
            ])?,
        }
        Ok(())
    }

    fn router_pid(&self) -> Option<u32> {
        self.vgate.as_ref().map(Child::id)
    }

    /// One trial: one generator process per queue, each at its share of `rate` (`None`:
    /// as fast as it can), sending for `duration`. Generator processes that start at the
    /// same moment can race attaching their XDP programs to the same interface (EBUSY): they
    /// start [`STAGGER`] apart, and a trial that lost the race anyway is run again.
    fn trial(
        &self,
        args: &BenchArgs,
        rate: Option<u64>,
        duration: Duration,
    ) -> Result<Trial, String> {
        let mut attempt = 0;
        loop {
            match self.try_trial(args, rate, duration) {
                Err(e) if e.contains("resource busy") && attempt < 2 => {
                    attempt += 1;
                    std::thread::sleep(STAGGER);
                }
                other => return other,
            }
        }
    }

    fn try_trial(
        &self,
        args: &BenchArgs,
        rate: Option<u64>,
        duration: Duration,
    ) -> Result<Trial, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find vgate: {e}"))?;
        let exe = exe.to_string_lossy().into_owned();
        let n = u32::from(self.queues);
        let flows = (args.flows / n).max(1);
        let load = loadavg();
        let before = cpu_sample(self.router_pid())?;
        let mut children = Vec::new();
        for q in 0..n {
            if q > 0 {
                std::thread::sleep(STAGGER);
            }
            let rate_arg = match rate {
                Some(r) => (r / u64::from(n)).max(1).to_string(),
                None => "max".into(),
            };
            // Distinct source ports per process: distinct flows (and NAT sessions).
            let src_port = (1024 + q * flows).min(u32::from(u16::MAX)).to_string();
            let q_s = q.to_string();
            let flows_s = flows.to_string();
            let size_s = args.size.to_string();
            let dur = format!("{}ms", duration.as_millis().max(1));
            let argv: Vec<&str> = vec![
                &exe,
                "pktgen",
                "--tx-iface",
                &self.tx_iface,
                "--rx-iface",
                &self.rx_iface,
                "--queue",
                &q_s,
                "--dst-mac",
                &self.ingress_mac,
                "--src-ip",
                self.scenario.src_ip(),
                "--dst-ip",
                self.scenario.dst_ip(),
                "--src-port",
                &src_port,
                "--flows",
                &flows_s,
                "--size",
                &size_s,
                "--rate",
                &rate_arg,
                "--duration",
                &dur,
                "--drain",
                DRAIN,
                "--xdp-mode",
                "native",
                "--json",
                "--quiet",
            ];
            let mut argv = argv;
            let cpu_s;
            if n > 1 {
                cpu_s = (q as usize % cpus()).to_string();
                argv.extend(["--tx-cpu", &cpu_s]);
            }
            let mut c = self.lab.command(Role::Client, &argv);
            c.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let cmd = describe(&c);
            let child = self
                .lab
                .spawn_command(c)
                .map_err(|e| format!("cannot start `{cmd}`: {e}"))?;
            children.push((cmd, child));
        }
        let mut gens = Vec::new();
        let mut failure = None;
        for (cmd, child) in children {
            let out = child
                .wait_with_output()
                .map_err(|e| format!("`{cmd}`: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                failure.get_or_insert(format!(
                    "`{cmd}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                continue;
            }
            let doc: Value = serde_json::from_str(&stdout)
                .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {stdout}"))?;
            gens.push(parse_pktgen(&doc)?);
        }
        let after = cpu_sample(self.router_pid())?;
        if let Some(f) = failure {
            return Err(f);
        }
        Ok(Trial::combine(
            rate, duration, &gens, self.mode, before, after, load,
        ))
    }

    fn iface_counter(&self, iface: &str, counter: &str) -> Result<u64, String> {
        let path = format!("/sys/class/net/{iface}/statistics/{counter}");
        let out = self
            .lab
            .run(Role::Client, &["cat", &path])
            .map_err(|e| e.to_string())?;
        out.trim()
            .parse()
            .map_err(|_| format!("{path}: not a number: {out:?}"))
    }

    /// trafgen sends `rate` pps for `duration` on the generator's sending veth; the
    /// receiving veth's `rx_packets` counts what the router delivered.
    fn trafgen(
        &self,
        args: &BenchArgs,
        rate: u64,
        duration: Duration,
    ) -> Result<TrafgenCheck, String> {
        let src_mac = self.gen_mac(&self.tx_iface)?;
        let count = ((rate as f64) * duration.as_secs_f64()).round().max(1.0) as u64;
        let last_port = 1024 + args.flows.min(65535 - 1024) - 1;
        // Ethernet + IPv4 + UDP headers take 42 bytes; the rest of the frame (without FCS)
        // is payload.
        let payload = args.size.saturating_sub(4 + 42).max(18);
        let packet = format!(
            "{{ eth(da={}, sa={src_mac}, type=0x0800), ipv4(sa={}, da={}, ttl=64), \
             udp(sp=dinc(1024, {last_port}), dp=9), fill(0x00, {payload}) }}",
            self.ingress_mac,
            self.scenario.src_ip(),
            self.scenario.dst_ip(),
        );
        let tx0 = self.iface_counter(&self.tx_iface, "tx_packets")?;
        let rx0 = self.iface_counter(&self.rx_iface, "rx_packets")?;
        let start = Instant::now();
        // --no-sock-mem and -Q: leave the host's socket memory and IRQ affinity alone.
        let count_s = count.to_string();
        let rate_s = format!("{rate}pps");
        let out = self
            .lab
            .exec(
                Role::Client,
                &[
                    "trafgen",
                    "-o",
                    &self.tx_iface,
                    "-n",
                    &count_s,
                    "-b",
                    &rate_s,
                    "-P",
                    "1",
                    "--no-sock-mem",
                    "-Q",
                    &packet,
                ],
            )
            .map_err(|e| format!("cannot run trafgen: {e}"))?;
        let elapsed = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "trafgen failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // Stragglers still in flight.
        std::thread::sleep(Duration::from_millis(300));
        let sent = self.iface_counter(&self.tx_iface, "tx_packets")? - tx0;
        let delivered = self.iface_counter(&self.rx_iface, "rx_packets")? - rx0;
        Ok(TrafgenCheck {
            offered_pps: rate,
            sent,
            delivered,
            elapsed_s: elapsed,
            loss_ratio: if sent == 0 {
                1.0
            } else {
                sent.saturating_sub(delivered) as f64 / sent as f64
            },
        })
    }

    /// The highest-rate trial, then a binary search below it.
    fn search(
        &self,
        args: &BenchArgs,
        report: &mut SideReport,
        log: &dyn Fn(&str),
    ) -> Result<(), String> {
        let tolerance = args.loss_tolerance / 100.0;
        let max = self.trial(args, None, args.trial_duration)?;
        log(&format!("  max: {}", trial_line(&max)));
        let reached = max.tx_pps.floor() as u64;
        let max_passes = max.passes(tolerance);
        report.max = Some(max);
        if max_passes {
            report.throughput_pps = Some(reached);
            return Ok(());
        }
        if reached <= SEARCH_RATE_MIN {
            return Err(format!(
                "the generator reached only {reached} pps, not above {SEARCH_RATE_MIN}"
            ));
        }
        let resolution = ((reached as f64 * SEARCH_RESOLUTION) as u64).max(1000);
        let mut trials = Vec::new();
        let found = binary_search(SEARCH_RATE_MIN, reached, resolution, |rate| {
            let mut t = self.trial(args, Some(rate), args.trial_duration)?;
            if t.rate_reached == Some(false) {
                // The generator lost its core for a while: once more before judging.
                t.pass = Some(false);
                log(&format!(
                    "  search: {} (generator behind, again)",
                    trial_line(&t)
                ));
                trials.push(t);
                t = self.trial(args, Some(rate), args.trial_duration)?;
            }
            // Judged on loss alone: on a machine with fewer CPUs than busy threads (the
            // generator's two, a polling router's) the generator often cannot hold the
            // offered rate, and the rate it did send is what the result reports.
            let pass = t.passes(tolerance);
            t.pass = Some(pass);
            log(&format!(
                "  search: {} {}",
                trial_line(&t),
                if pass { "pass" } else { "fail" }
            ));
            trials.push(t);
            Ok::<bool, String>(pass)
        })?;
        // The rate the generator actually sent in the best passing trial.
        report.throughput_pps = found.and_then(|_| best_passing_rate(&trials));
        report.search = trials;
        Ok(())
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(mut child) = self.vgate.take() {
            // SIGTERM: vgate detaches its XDP programs and exits; the lab's teardown
            // would kill it otherwise.
            // SAFETY: kill(2) with a pid we spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// vgate's configuration for a scenario (module docs); `client_mac` is the generator's MAC
/// on the internal side, the VM's in the flat-network scenarios, and `internal_mac` the
/// MAC of vg-int, which is also the flat network's gateway MAC: vgate takes frames for a
/// flat network's gateway by that MAC, and the generator addresses the port's MAC.
pub fn vgate_config(
    scenario: Scenario,
    workers: u16,
    client_mac: &str,
    internal_mac: &str,
) -> String {
    let internal_addr = match scenario {
        Scenario::Forward => format!("addresses = [\"{}/24\"]", super::ROUTER_INT_ADDR),
        Scenario::FipGeneve => format!("addresses = [\"{UNDERLAY_LOCAL}/24\"]"),
        // A flat tenant network: the router's address there is the network's gateway.
        Scenario::Fip | Scenario::Snat => String::new(),
    };
    let mut c = format!(
        r#"# vgate lab bench, scenario {name}
[dataplane]
workers = {workers}
xdp_mode = "native"

[control]
listen = "{API}"

[[port]]
name = "external"
iface = "{EXT_IFACE}"
addresses = ["{ext}/24"]

[[port]]
name = "internal"
iface = "{INT_IFACE}"
{internal_addr}

[[route]]
prefix = "0.0.0.0/0"
via = "{inet}"
"#,
        name = scenario.name(),
        ext = super::ROUTER_EXT_ADDR,
        inet = super::INET_ADDR,
    );
    let flat = format!(
        r#"
[[network]]
name = "lan"
port = "internal"
subnet = "{net}"
gateway = "{gw}"
gateway_mac = "{internal_mac}"

[[endpoint]]
network = "lan"
ip = "{CLIENT_ADDR}"
mac = "{client_mac}"
"#,
        net = super::INT_NET,
        gw = super::ROUTER_INT_ADDR,
    );
    match scenario {
        Scenario::Forward => {}
        Scenario::Fip => {
            c += &flat;
            c += &format!(
                "\n[[floating_ip]]\nexternal = \"{FIP}\"\ninternal = \"{CLIENT_ADDR}\"\n\
                 network = \"lan\"\n"
            );
        }
        Scenario::Snat => {
            c += &flat;
            c += &format!(
                "\n[[snat]]\nnetwork = \"lan\"\nexternal = \"{}\"\nports = \"1024-65535\"\n",
                super::ROUTER_EXT_ADDR
            );
        }
        Scenario::FipGeneve => {
            c += &format!(
                r#"
[tunnel]
local = "{UNDERLAY_LOCAL}"

[[chassis]]
name = "compute-1"
address = "{CHASSIS_ADDR}"

[[network]]
name = "tenant"
vni = {TENANT_VNI}
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant"
ip = "{TENANT_VM}"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"

[[floating_ip]]
external = "{FIP}"
internal = "{TENANT_VM}"
network = "tenant"
"#
            );
        }
    }
    c
}

/// Highest sent rate, at most the offered one, among the passing trials.
fn best_passing_rate(trials: &[Trial]) -> Option<u64> {
    trials
        .iter()
        .filter(|t| t.pass == Some(true))
        .map(|t| {
            let sent = t.tx_pps.floor() as u64;
            t.offered_pps.map_or(sent, |o| sent.min(o))
        })
        .max()
}

fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1}", n as f64 / 1e3))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// One line per trial for the progress log.
fn trial_line(t: &Trial) -> String {
    format!(
        "offered {} tx {:.0} pps delivered {:.0} pps loss {:.3} % p99 {} us cpu {} s/Mpkt load {:.2}",
        t.offered_pps.map_or("max".into(), |r| format!("{r} pps")),
        t.tx_pps,
        t.delivered_pps,
        t.loss_ratio * 100.0,
        us(t.latency_p99_ns),
        opt(t.cpu_s_per_mpkt, 3),
        t.loadavg
    )
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Fills in the vgate/kernel ratios of a scenario.
pub fn ratios(vgate: &SideReport, kernel: &SideReport) -> Ratios {
    Ratios {
        max_delivered: ratio(
            vgate.max.as_ref().map(|t| t.delivered_pps),
            kernel.max.as_ref().map(|t| t.delivered_pps),
        ),
        throughput: ratio(
            vgate.throughput_pps.map(|r| r as f64),
            kernel.throughput_pps.map(|r| r as f64),
        ),
        cpu_per_packet: ratio(
            vgate.common.as_ref().and_then(|t| t.cpu_s_per_mpkt),
            kernel.common.as_ref().and_then(|t| t.cpu_s_per_mpkt),
        ),
        cpu_per_packet_at_max: ratio(
            vgate.max.as_ref().and_then(|t| t.cpu_s_per_mpkt),
            kernel.max.as_ref().and_then(|t| t.cpu_s_per_mpkt),
        ),
    }
}

/// The report as aligned tables.
pub fn render(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "lab bench ({}): {} worker(s), {}-byte frames, {} flows, loss tolerance {} %, \
         {} CPUs, kernel {}, load {:.2} -> {:.2}",
        report.mode,
        report.workers,
        report.frame_size,
        report.flows,
        report.loss_tolerance_pct,
        report.machine.cpus,
        report.machine.kernel,
        report.machine.loadavg_start,
        report.machine.loadavg_end,
    );
    let _ = writeln!(
        s,
        "CPU: vgate = its process (utime+stime); kernel = softirq of all CPUs; per million \
         delivered packets"
    );
    if report.mode == "smoke" {
        let _ = writeln!(
            s,
            "{:<11} {:<7} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>11} {:>14}",
            "scenario",
            "router",
            "offered",
            "sent",
            "delivered",
            "loss %",
            "p50 us",
            "p99 us",
            "CPU s/Mpkt",
            "softirq s/Mpkt"
        );
        for sc in &report.scenarios {
            let sides = [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())];
            for (name, side) in sides {
                match side.and_then(|x| x.smoke.as_ref()) {
                    Some(t) => {
                        let _ = writeln!(
                            s,
                            "{:<11} {:<7} {:>9} {:>10} {:>10} {:>8.3} {:>8} {:>8} {:>11} {:>14}",
                            sc.scenario.name(),
                            name,
                            t.offered_pps.unwrap_or(0),
                            t.sent,
                            t.delivered,
                            t.loss_ratio * 100.0,
                            us(t.latency_p50_ns),
                            us(t.latency_p99_ns),
                            opt(t.cpu_s_per_mpkt, 3),
                            opt(t.softirq_s_per_mpkt, 3),
                        );
                    }
                    None => {
                        let why = sc.kernel_skipped.as_deref().unwrap_or("not run");
                        let _ =
                            writeln!(s, "{:<11} {:<7} skipped: {why}", sc.scenario.name(), name);
                    }
                }
            }
        }
        return s;
    }
    let _ = writeln!(
        s,
        "{:<11} {:<7} {:>9} {:>9} {:>10} | {:>10} {:>8} {:>8} {:>8} {:>11} {:>14} {:>6}",
        "scenario",
        "router",
        "max Mpps",
        "CPU@max",
        "<=tol Mpps",
        "at Mpps",
        "loss %",
        "p50 us",
        "p99 us",
        "CPU s/Mpkt",
        "softirq s/Mpkt",
        "load"
    );
    for sc in &report.scenarios {
        let sides = [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())];
        for (name, side) in sides {
            let Some(side) = side else {
                let why = sc.kernel_skipped.as_deref().unwrap_or("not run");
                let _ = writeln!(s, "{:<11} {:<7} skipped: {why}", sc.scenario.name(), name);
                continue;
            };
            let max = side
                .max
                .as_ref()
                .map_or("-".into(), |t| mpps(t.delivered_pps));
            let zl = side
                .throughput_pps
                .map_or("none".into(), |r| mpps(r as f64));
            let c = side.common.as_ref();
            let _ = writeln!(
                s,
                "{:<11} {:<7} {:>9} {:>9} {:>10} | {:>10} {:>8} {:>8} {:>8} {:>11} {:>14} {:>6}",
                sc.scenario.name(),
                name,
                max,
                opt(side.max.as_ref().and_then(|t| t.cpu_s_per_mpkt), 3),
                zl,
                c.map_or("-".into(), |t| mpps(t.delivered_pps)),
                c.map_or("-".into(), |t| format!("{:.3}", t.loss_ratio * 100.0)),
                us(c.and_then(|t| t.latency_p50_ns)),
                us(c.and_then(|t| t.latency_p99_ns)),
                opt(c.and_then(|t| t.cpu_s_per_mpkt), 3),
                opt(c.and_then(|t| t.softirq_s_per_mpkt), 3),
                c.map_or("-".into(), |t| format!("{:.2}", t.loadavg)),
            );
            if let Some(tg) = &side.trafgen {
                let _ = writeln!(
                    s,
                    "{:<11} {:<7} trafgen cross-check at {} pps: sent {} delivered {} loss {:.3} % \
                     in {:.2} s",
                    "",
                    "",
                    tg.offered_pps,
                    tg.sent,
                    tg.delivered,
                    tg.loss_ratio * 100.0,
                    tg.elapsed_s
                );
            }
        }
        if sc.kernel.is_some() {
            let r = &sc.ratios;
            let _ = writeln!(
                s,
                "{:<11} {:<7} {:>9} {:>9} {:>10} | common load {} pps; CPU per packet vgate/kernel {}",
                sc.scenario.name(),
                "ratio",
                opt(r.max_delivered, 2),
                opt(r.cpu_per_packet_at_max, 2),
                opt(r.throughput, 2),
                sc.common_rate_pps.map_or("-".into(), |r| r.to_string()),
                opt(r.cpu_per_packet, 2),
            );
        }
    }
    s
}

/// Runs the bench. Progress goes to `log` (stderr from the CLI).
pub fn run(args: &BenchArgs, log: &dyn Fn(&str)) -> Result<BenchReport, String> {
    args.check()?;
    let loadavg_start = loadavg();
    let mut scenarios = Vec::new();
    for scenario in args.scenario.scenarios() {
        scenarios.push(run_scenario(args, scenario, log)?);
    }
    Ok(BenchReport {
        mode: if args.smoke { "smoke" } else { "full" },
        workers: args.workers,
        frame_size: args.size,
        flows: args.flows,
        loss_tolerance_pct: args.loss_tolerance,
        trial_duration_s: args.trial_duration.as_secs_f64(),
        duration_s: args.duration().as_secs_f64(),
        machine: Machine {
            cpus: cpus(),
            kernel: read("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            loadavg_start,
            loadavg_end: loadavg(),
        },
        scenarios,
    })
}

fn empty_side() -> SideReport {
    SideReport {
        smoke: None,
        max: None,
        throughput_pps: None,
        search: Vec::new(),
        common: None,
        trafgen: None,
    }
}

fn run_scenario(
    args: &BenchArgs,
    scenario: Scenario,
    log: &dyn Fn(&str),
) -> Result<ScenarioReport, String> {
    let name = scenario.name();
    log(&format!("{name}: building the labs"));
    let vg = Side::up(
        &format!("{}v", args.prefix),
        RouterMode::Vgate,
        scenario,
        args.workers,
    )?;
    let (kernel, kernel_skipped) = {
        let k = Side::up(
            &format!("{}k", args.prefix),
            RouterMode::Kernel,
            scenario,
            args.workers,
        )?;
        match scenario {
            Scenario::FipGeneve => {
                let why = kernel_geneve_missing(&k.lab);
                (None, why)
            }
            _ => (Some(k), None),
        }
    };
    let mut sides: Vec<(&str, &Side, SideReport)> = vec![("vgate", &vg, empty_side())];
    if let Some(k) = &kernel {
        sides.push(("kernel", k, empty_side()));
    }
    for (label, side, _) in &sides {
        let w = side.trial(args, Some(WARMUP_RATE), WARMUP)?;
        log(&format!("{name} {label}: warm-up {}", trial_line(&w)));
    }
    let duration = args.duration();
    let mut common_rate = None;
    if args.smoke {
        let rate = args.rate.unwrap_or(SMOKE_RATE);
        for (label, side, report) in &mut sides {
            let t = side.trial(args, Some(rate), duration)?;
            log(&format!("{name} {label}: {}", trial_line(&t)));
            report.smoke = Some(t);
        }
    } else {
        for (label, side, report) in &mut sides {
            log(&format!("{name} {label}: search"));
            side.search(args, report, log)?;
        }
        let rate = sides
            .iter()
            .map(|(_, _, r)| r.throughput_pps.unwrap_or(SEARCH_RATE_MIN))
            .min()
            .unwrap_or(SEARCH_RATE_MIN);
        common_rate = Some(rate);
        for (label, side, report) in &mut sides {
            let t = side.trial(args, Some(rate), duration)?;
            log(&format!("{name} {label}: common load {}", trial_line(&t)));
            report.common = Some(t);
        }
    }
    if args.trafgen {
        let rate = common_rate.unwrap_or(args.rate.unwrap_or(SMOKE_RATE));
        for (label, side, report) in &mut sides {
            let t = side.trafgen(args, rate, duration)?;
            log(&format!(
                "{name} {label}: trafgen {} pps: sent {} delivered {}",
                rate, t.sent, t.delivered
            ));
            report.trafgen = Some(t);
        }
    }
    let mut reports = sides.into_iter().map(|(_, _, r)| r);
    let vgate = reports.next().unwrap_or_else(empty_side);
    let kernel_report = reports.next();
    let ratios = kernel_report
        .as_ref()
        .map_or_else(Ratios::default, |k| ratios(&vgate, k));
    drop(kernel);
    drop(vg);
    Ok(ScenarioReport {
        scenario,
        vgate,
        kernel: kernel_report,
        kernel_skipped,
        common_rate_pps: common_rate,
        ratios,
    })
}

/// Smoke verdict: every router that ran delivered the generator's traffic within
/// [`SMOKE_MAX_LOSS`], and some of trafgen's; the failures, one line each.
pub fn smoke_failures(report: &BenchReport) -> Vec<String> {
    let mut bad = Vec::new();
    for sc in &report.scenarios {
        for (name, side) in [("vgate", Some(&sc.vgate)), ("kernel", sc.kernel.as_ref())] {
            let Some(side) = side else { continue };
            let trials = [side.smoke.as_ref(), side.common.as_ref()];
            for t in trials.into_iter().flatten() {
                if t.delivered == 0 || !t.passes(SMOKE_MAX_LOSS) {
                    bad.push(format!(
                        "{} through {name}: sent {} delivered {} (loss {:.1} %)",
                        sc.scenario.name(),
                        t.sent,
                        t.delivered,
                        t.loss_ratio * 100.0
                    ));
                }
            }
            // The cross-check must see traffic pass; its loss is reported, not judged:
            // trafgen paces differently from the generator the bound was set for.
            if let Some(tg) = &side.trafgen
                && tg.delivered == 0
            {
                bad.push(format!(
                    "{} through {name} (trafgen): sent {} delivered {}",
                    sc.scenario.name(),
                    tg.sent,
                    tg.delivered
                ));
            }
        }
    }
    bad
}

/// `vgate lab bench`; returns the exit code.
pub fn cli(args: &BenchArgs) -> i32 {
    // libxdp's and vgate's informational lines would drown the progress.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let report = match run(args, &|line| eprintln!("{line}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vgate lab bench: {e}");
            return 1;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("vgate lab bench: {e}");
                return 1;
            }
        }
    } else {
        print!("{}", render(&report));
    }
    if args.smoke {
        let bad = smoke_failures(&report);
        if !bad.is_empty() {
            for b in &bad {
                eprintln!("vgate lab bench: traffic did not pass: {b}");
            }
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::Config;

    #[test]
    fn every_scenario_config_is_valid() {
        for s in Scenario::ALL {
            for w in [1, 2] {
                let c = vgate_config(s, w, "02:00:5e:00:53:01", "02:00:5e:00:53:02");
                if let Err(e) = Config::from_toml_str(&c) {
                    panic!("{}: {e}\n{c}", s.name());
                }
            }
        }
    }

    #[test]
    fn proc_parsers() {
        let stat = "cpu  100 5 200 9000 10 3 40 0 0 0\ncpu0 50 2 100 4500 5 1 20 0 0 0\n";
        assert_eq!(parse_proc_stat(stat), Some((200, 40)));
        assert_eq!(parse_proc_stat("cpu0 1 2 3\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 x 4 5 6 7\n"), None);
        let pid = "4242 (vgate (w) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 350 125 0 0 20 0 \
                   3 0 1000 100000 200 18446744073709551615\n";
        assert_eq!(parse_pid_stat(pid), Some(475));
        assert_eq!(parse_pid_stat("4242 (vgate) S 1"), None);
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    fn figures(sent: u64, received: u64, p99: u64) -> GenFigures {
        GenFigures {
            sent,
            received,
            tx_pps: sent as f64,
            rate_reached: Some(true),
            p50_ns: Some(p99 / 2),
            p99_ns: Some(p99),
            other_stream: 0,
        }
    }

    #[test]
    fn trials_combine_processes_and_cpu() {
        let before = CpuSample {
            softirq: 10.0,
            system: 20.0,
            router_process: 1.0,
        };
        let after = CpuSample {
            softirq: 10.5,
            system: 20.25,
            router_process: 1.8,
        };
        let gens = [
            figures(1_000_000, 990_000, 40_000),
            figures(1_000_000, 1_000_000, 30_000),
        ];
        let t = Trial::combine(
            Some(2_000_000),
            Duration::from_secs(1),
            &gens,
            RouterMode::Vgate,
            before,
            after,
            1.5,
        );
        assert_eq!(t.sent, 2_000_000);
        assert_eq!(t.delivered, 1_990_000);
        assert!((t.loss_ratio - 0.005).abs() < 1e-12);
        assert_eq!(t.latency_p99_ns, Some(40_000), "the worst process");
        assert!((t.router_cpu_s - 0.8).abs() < 1e-9);
        assert!((t.cpu_s_per_mpkt.unwrap() - 0.8 / 1.99).abs() < 1e-9);
        assert!((t.softirq_s - 0.5).abs() < 1e-9);
        assert_eq!(t.rate_reached, Some(true));
        assert!(t.passes(0.01) && !t.passes(0.001));
        assert!((t.delivered_pps - 1_990_000.0).abs() < 1e-6);
        // Probes that reached the other process's socket are delivered, not lost.
        let mut crossed = gens;
        crossed[0].received = 500_000;
        crossed[0].other_stream = 0;
        crossed[1].received = 500_000;
        crossed[1].other_stream = 990_000;
        let x = Trial::combine(
            Some(2_000_000),
            Duration::from_secs(1),
            &crossed,
            RouterMode::Kernel,
            before,
            after,
            1.5,
        );
        assert_eq!((x.delivered, x.other_stream), (1_990_000, 990_000));
        // The kernel's forwarding CPU is the softirq time.
        let k = Trial::combine(
            None,
            Duration::from_secs(1),
            &gens[..1],
            RouterMode::Kernel,
            before,
            after,
            1.5,
        );
        assert!((k.router_cpu_s - 0.5).abs() < 1e-9);
        assert_eq!(k.rate_reached, None);
        // Nothing sent, nothing delivered: total loss, no CPU per packet.
        let z = Trial::combine(
            Some(1),
            Duration::from_secs(1),
            &[figures(0, 0, 0)],
            RouterMode::Kernel,
            before,
            after,
            0.0,
        );
        assert_eq!(z.loss_ratio, 1.0);
        assert_eq!(z.cpu_s_per_mpkt, None);
        assert!(!z.passes(1.0));
    }

    #[test]
    fn pktgen_document_is_read() {
        let doc = serde_json::json!({
            "mode": "run",
            "result": {
                "rate_reached": true,
                "tx": {"packets": 1000, "pps": 100000.0},
                "rx": {"packets": 990, "other_stream": 2},
                "latency_ns": {"p50": 4000, "p99": 30000}
            }
        });
        let g = parse_pktgen(&doc).unwrap();
        assert_eq!((g.sent, g.received, g.other_stream), (1000, 990, 2));
        assert_eq!((g.p50_ns, g.p99_ns), (Some(4000), Some(30000)));
        assert_eq!(g.rate_reached, Some(true));
        let e = parse_pktgen(&serde_json::json!({"mode": "run"})).unwrap_err();
        assert!(e.contains("tx.packets"), "{e}");
    }

    #[test]
    fn ratios_and_smoke_verdict() {
        let t = |delivered: u64, cpu: f64| {
            let mut t = Trial::combine(
                Some(100),
                Duration::from_secs(1),
                &[figures(100, delivered, 1000)],
                RouterMode::Vgate,
                CpuSample::default(),
                CpuSample {
                    router_process: cpu,
                    ..CpuSample::default()
                },
                0.0,
            );
            t.delivered_pps = delivered as f64;
            t
        };
        let side = |max: u64, zl: Option<u64>, cpu: f64| SideReport {
            max: Some(t(max, 0.0)),
            throughput_pps: zl,
            common: Some(t(100, cpu)),
            ..empty_side()
        };
        let r = ratios(&side(100, Some(80), 0.5), &side(50, Some(20), 1.0));
        assert_eq!(r.max_delivered, Some(2.0));
        assert_eq!(r.throughput, Some(4.0));
        assert_eq!(r.cpu_per_packet, Some(0.5));
        assert_eq!(r.cpu_per_packet_at_max, None, "no CPU in the max trials");
        assert_eq!(
            ratios(&side(1, None, 0.0), &side(1, Some(5), 0.0)).throughput,
            None
        );

        let mut report = BenchReport {
            mode: "smoke",
            workers: 1,
            frame_size: 64,
            flows: 1,
            loss_tolerance_pct: 0.1,
            trial_duration_s: 1.0,
            duration_s: 1.0,
            machine: Machine {
                cpus: 2,
                kernel: "x".into(),
                loadavg_start: 0.0,
                loadavg_end: 0.0,
            },
            scenarios: vec![ScenarioReport {
                scenario: Scenario::Fip,
                vgate: SideReport {
                    smoke: Some(t(100, 0.1)),
                    ..empty_side()
                },
                kernel: Some(SideReport {
                    smoke: Some(t(85, 0.1)),
                    ..empty_side()
                }),
                kernel_skipped: None,
                common_rate_pps: None,
                ratios: Ratios::default(),
            }],
        };
        assert!(smoke_failures(&report).is_empty());
        assert!(render(&report).contains("fip"));
        let tg = |delivered| TrafgenCheck {
            offered_pps: 100,
            sent: 100,
            delivered,
            elapsed_s: 1.0,
            loss_ratio: (100 - delivered) as f64 / 100.0,
        };
        report.scenarios[0].vgate.trafgen = Some(tg(50));
        assert!(
            smoke_failures(&report).is_empty(),
            "trafgen loss is not judged"
        );
        report.scenarios[0].vgate.trafgen = Some(tg(0));
        assert_eq!(smoke_failures(&report).len(), 1, "but it must pass traffic");
        report.scenarios[0].vgate.trafgen = None;
        report.scenarios[0].kernel.as_mut().unwrap().smoke = Some(t(0, 0.1));
        let bad = smoke_failures(&report);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("fip through kernel"), "{bad:?}");
        report.scenarios[0].vgate.smoke = Some(t(70, 0.1));
        assert_eq!(smoke_failures(&report).len(), 2, "30 % loss is too much");
    }

    #[test]
    fn search_reports_the_rate_sent_in_the_best_passing_trial() {
        let trial = |offered: u64, tx: f64, pass: bool| {
            let mut t = Trial::combine(
                Some(offered),
                Duration::from_secs(1),
                &[figures(tx as u64, tx as u64, 1000)],
                RouterMode::Vgate,
                CpuSample::default(),
                CpuSample::default(),
                0.0,
            );
            t.tx_pps = tx;
            t.pass = Some(pass);
            t
        };
        let trials = [
            trial(200_000, 150_000.5, false),
            trial(100_000, 90_000.7, true),
            trial(150_000, 120_000.0, true),
            // A generator ahead of its rate never reports more than was offered.
            trial(50_000, 50_400.0, true),
        ];
        assert_eq!(best_passing_rate(&trials), Some(120_000));
        assert_eq!(best_passing_rate(&trials[3..]), Some(50_000));
        assert_eq!(best_passing_rate(&trials[..1]), None);
    }

    #[test]
    fn options_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
                .map(|c| c.args)
        };
        let a = parse(&[]).unwrap();
        assert_eq!(a.scenario.scenarios(), Scenario::ALL);
        assert_eq!((a.workers, a.flows, a.size), (1, 256, 64));
        assert_eq!(a.duration(), Duration::from_secs(5));
        let a = parse(&["--smoke", "--scenario", "fip-geneve", "--rate", "50k"]).unwrap();
        assert_eq!(a.scenario.scenarios(), [Scenario::FipGeneve]);
        assert_eq!(
            (a.rate, a.duration()),
            (Some(50_000), Duration::from_secs(1))
        );
        assert!(parse(&["--rate", "50k"]).is_err(), "--rate is for --smoke");
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--scenario", "nat"]).is_err());
        let mut a = parse(&["--size", "63"]).unwrap();
        assert!(a.check().unwrap_err().contains("--size"));
        a.size = 64;
        a.flows = 0;
        assert!(a.check().unwrap_err().contains("--flows"));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("9").is_err());
        assert_eq!(parse_workers("2"), Ok(2));
        assert!(parse_loss_percent("101").is_err());
        assert_eq!(parse_loss_percent("0.1%"), Ok(0.1));
        assert!(parse_prefix("abcdefghijklm").is_err(), "13 characters");
        assert!(parse_prefix("a/b").is_err());
        assert_eq!(parse_prefix("vgbench"), Ok("vgbench".to_string()));
    }
}
