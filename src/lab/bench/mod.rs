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

mod args;
mod cpu;
pub mod fair;
pub mod probe;
mod render;
mod report;
mod side;

pub use args::{BenchArgs, Source};
pub use cpu::{CpuSample, parse_pid_stat, parse_proc_stat};
pub use render::{ratios, render};
pub use report::{
    BenchReport, GenFigures, Machine, Ratios, ScenarioReport, SideReport, TrafgenCheck, Trial,
    parse_pktgen,
};
pub use side::vgate_config;

use cpu::{cpu_sample, cpus, loadavg, read};
use render::trial_line;
use side::{Side, kernel_geneve_missing};

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
        machine: Machine::now(loadavg_start),
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
        &args.dataplane,
    )?;
    let (kernel, kernel_skipped) = {
        let k = Side::up(
            &format!("{}k", args.prefix),
            RouterMode::Kernel,
            scenario,
            args.workers,
            &[],
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
    if args.source == Source::Trafgen {
        return fair_cli(args);
    }
    let report = run(args, &|line| eprintln!("{line}"));
    finish(args, report, render, smoke_failures)
}

/// `vgate lab bench --source trafgen`; returns the exit code.
fn fair_cli(args: &BenchArgs) -> i32 {
    let report = fair::run(args, &|line| eprintln!("{line}"));
    finish(args, report, fair::render, fair::smoke_failures)
}

/// Prints a bench's report (JSON or text) and, for `--smoke`, its verdict; the exit code.
fn finish<R: Serialize>(
    args: &BenchArgs,
    report: Result<R, String>,
    render: fn(&R) -> String,
    failures: fn(&R) -> Vec<String>,
) -> i32 {
    let report = match report {
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
        let bad = failures(&report);
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
    use super::args::*;
    use super::cpu::*;
    use super::*;
    use crate::control::config::Config;

    #[test]
    fn every_scenario_config_is_valid() {
        for s in Scenario::ALL {
            for w in [1, 2] {
                // Pinned: the fair method's one worker.
                for pin in [None, Some(1)]
                    .into_iter()
                    .filter(|p| w == 1 || p.is_none())
                {
                    let c = vgate_config(
                        s,
                        w,
                        "02:00:5e:00:53:01",
                        "02:00:5e:00:53:02",
                        pin,
                        &["napi_defer_hard_irqs = 0".into()],
                    );
                    match Config::from_toml_str(&c) {
                        Ok(cfg) => assert_eq!(cfg.dataplane.cpus, pin.map(|c| vec![c]), "{c}"),
                        Err(e) => panic!("{}: {e}\n{c}", s.name()),
                    }
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
        assert_eq!((a.source, a.runs()), (Source::Trafgen, 1), "smoke: one run");
        let b = parse(&[
            "--runs",
            "7",
            "--perf",
            "/tmp/p",
            "--dataplane",
            "busy_poll=true",
        ])
        .unwrap();
        assert_eq!(b.dataplane, ["busy_poll = true"]);
        assert_eq!(b.runs(), 7);
        assert!(b.check().is_ok());
        assert_eq!(parse(&[]).unwrap().runs(), 5);
        assert!(parse(&["--runs", "0"]).is_err());
        let p = parse(&["--source", "pktgen", "--runs", "3"]).unwrap();
        assert!(p.check().unwrap_err().contains("--runs"));
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
        assert_eq!(
            parse_dataplane("frame_size=2048"),
            Ok("frame_size = 2048".to_string())
        );
        assert_eq!(
            parse_dataplane(" hugepages = true"),
            Ok("hugepages = true".to_string())
        );
        assert!(
            parse_dataplane("frame_size")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(
            parse_dataplane("cpus=[0]")
                .unwrap_err()
                .contains("bench's own")
        );
        assert!(
            parse_dataplane("Frame=1")
                .unwrap_err()
                .contains("not a [dataplane] key")
        );
        assert!(parse_dataplane("x=").is_err());
    }
}
