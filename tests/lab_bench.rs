//! `vgate lab bench --smoke`, as root: every scenario's traffic passes through vgate and
//! through the Linux kernel on the lab topology (a second or so per router and scenario),
//! with both sources: trafgen (the fair per-core method, with its XDP sink and latency
//! probe) and `vgate pktgen`.
//!
//! Skips with a message when not root or when the kernel has no AF_XDP. Counts are asserted,
//! never rates: the machine may be busy.

mod common;

use common::{DownGuard, af_xdp_skip_reason, netns_list};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The smoke mode's own bound (`vgate::lab::bench::SMOKE_MAX_LOSS`), asserted here again.
const MAX_LOSS: f64 = 0.2;

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn smoke_trial<'a>(scenario: &'a Value, side: &str) -> &'a Value {
    let t = &scenario[side]["smoke"];
    assert!(t.is_object(), "no smoke trial for {side}: {scenario}");
    t
}

fn assert_passed(name: &str, side: &str, t: &Value) {
    let sent = t["sent"].as_u64().unwrap();
    let delivered = t["delivered"].as_u64().unwrap();
    let loss = t["loss_ratio"].as_f64().unwrap();
    assert!(sent > 0, "{name} through {side}: nothing sent: {t}");
    assert!(
        delivered > 0,
        "{name} through {side}: nothing delivered: {t}"
    );
    assert!(delivered <= sent, "{name} through {side}: {t}");
    assert!(
        loss <= MAX_LOSS,
        "{name} through {side}: {:.1} % lost: {t}",
        loss * 100.0
    );
}

/// One bench at a time: the fair method wants a CPU to itself.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `vgate lab bench --smoke --json` with `args`; its report.
fn smoke(prefix: &str, args: &[&str]) -> Value {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vgate"));
    cmd.args(["lab", "bench", "--smoke", "--scenario", "all", "--json"])
        .args(["--prefix", prefix])
        .args(args);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vgate lab bench");
    // Generous: a busy machine; a hung bench is a failure, not a stuck test run.
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vgate lab bench --smoke {args:?} did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("bench output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vgate lab bench --smoke {args:?} failed ({}): {stdout}",
        out.status
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON {e}: {stdout}"));
    assert_eq!(doc["mode"], "smoke");
    let names: Vec<&str> = doc["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["forward", "fip", "snat", "fip-geneve"]);
    // The labs are gone.
    let left: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    doc
}

#[test]
fn fair_smoke_every_scenario_through_vgate_and_the_kernel() {
    if let Some(why) = af_xdp_skip_reason() {
        common::skip(&why);
        return;
    }
    for tool in ["trafgen", "clang"] {
        assert!(
            has(tool),
            "{tool} is missing: tests/setup-host.sh installs it"
        );
    }
    let prefix = format!("f{}", std::process::id());
    let _guards = [
        DownGuard(format!("{prefix}v")),
        DownGuard(format!("{prefix}k")),
    ];
    // 2 KiB frames: every scenario, Geneve's in-place encapsulation included, through
    // vgate on real sockets with the smaller frames (`dataplane.frame_size`).
    let doc = smoke(&prefix, &["--dataplane", "frame_size=2048"]);
    assert_eq!(doc["method"], "fair");
    assert_eq!(doc["vgate_dataplane"][0], "frame_size = 2048");
    assert_eq!(
        (doc["source_cpu"].as_u64(), doc["runs"].as_u64()),
        (Some(0), Some(1))
    );
    // vgate said how its ports transmit, and its frames' size.
    let ports = doc["vgate_ports"].as_array().expect("vgate_ports");
    assert!(
        ports
            .iter()
            .any(|p| p.as_str().unwrap().contains("frames of 2048 bytes")),
        "{ports:?}"
    );
    assert!(
        ports
            .iter()
            .any(|p| p.as_str().unwrap().contains("frames per transmit kick")),
        "{ports:?}"
    );
    for sc in doc["scenarios"].as_array().unwrap() {
        let name = sc["scenario"].as_str().unwrap();
        let mut sides = vec!["vgate"];
        if name == "fip-geneve" && sc["kernel"].is_null() {
            assert!(sc["kernel_skipped"].is_string(), "{sc}");
        } else {
            sides.push("kernel");
        }
        for side in sides {
            let t = smoke_trial(sc, side);
            assert_passed(name, side, t);
            // trafgen sends an exact count: the rate times the trial's second.
            assert_eq!(t["sent"].as_u64(), Some(20_000), "{name} {side}: {t}");
            let cpus = t["cpus"].as_array().unwrap();
            assert_eq!(cpus.len(), 2, "the source's CPU and the router's: {t}");
            assert!(t["router_ns_per_packet"].as_f64().unwrap() > 0.0, "{t}");
            let l = &sc[side]["smoke_latency"];
            if name == "fip-geneve" {
                assert!(l.is_null() && sc["latency_skipped"].is_string(), "{sc}");
            } else {
                let replies = l["replies"].as_u64().unwrap_or(0);
                assert!(replies > 0, "{name} {side}: no probe replies: {sc}");
                assert!(replies <= l["probes"].as_u64().unwrap(), "{l}");
                let (p50, p99) = (l["p50_us"].as_f64().unwrap(), l["p99_us"].as_f64().unwrap());
                assert!(p50 > 0.0 && p50 <= p99, "{l}");
            }
        }
    }
}

#[test]
fn smoke_every_scenario_through_vgate_and_the_kernel() {
    if let Some(why) = af_xdp_skip_reason() {
        common::skip(&why);
        return;
    }
    let prefix = format!("b{}", std::process::id());
    // The bench removes its labs itself; these guards cover a bench that was killed.
    let _guards = [
        DownGuard(format!("{prefix}v")),
        DownGuard(format!("{prefix}k")),
    ];
    let trafgen = has("trafgen");
    if !trafgen {
        eprintln!("trafgen (netsniff-ng) not installed: no cross-check");
    }
    let mut args = vec!["--source", "pktgen"];
    if trafgen {
        args.push("--trafgen");
    }
    let doc = smoke(&prefix, &args);
    let scenarios = doc["scenarios"].as_array().unwrap();
    for sc in scenarios {
        let name = sc["scenario"].as_str().unwrap();
        assert_passed(name, "vgate", smoke_trial(sc, "vgate"));
        if name == "fip-geneve" && sc["kernel"].is_null() {
            let why = sc["kernel_skipped"].as_str().unwrap_or_default();
            assert!(
                !why.is_empty(),
                "kernel side neither run nor explained: {sc}"
            );
            eprintln!("fip-geneve kernel side skipped: {why}");
        } else {
            assert_passed(name, "kernel", smoke_trial(sc, "kernel"));
        }
        if trafgen {
            for side in ["vgate", "kernel"] {
                let tg = &sc[side]["trafgen"];
                if sc[side].is_null() {
                    continue;
                }
                let delivered = tg["delivered"].as_u64().unwrap();
                assert!(delivered > 0, "{name} through {side} (trafgen): {tg}");
            }
        }
    }
}
