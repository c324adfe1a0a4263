//! End to end, as root: vgate on AF_XDP between two network namespaces whose Linux stacks are
//! the peers. Skips (with a message) when not root.

mod common;

use common::*;
use std::process::Command;
use vgate::lab::{Lab, Role, RouterMode};

/// The lab topology without a default route, so "no route" can be tested.
const CONF: &str = r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "vg-int"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "198.51.100.0/24"
via = "203.0.113.1"

[[proxy_arp]]
port = "external"
prefix = "203.0.113.128/25"
"#;

fn setup(conf: &str) -> Option<(Lab, Vgate)> {
    if !is_root() {
        common::skip("needs root");
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    let vg = Vgate::start(&lab, conf);
    Some((lab, vg))
}

fn ping_out(lab: &Lab, role: Role, args: &[&str]) -> String {
    let mut cmd = vec!["ping"];
    cmd.extend_from_slice(args);
    let out = lab.exec(role, &cmd).expect("ping");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ping_and_tcp_through_vgate() {
    let started = std::time::Instant::now();
    let Some((lab, vg)) = setup(CONF) else { return };
    let client = lab.ns(Role::Client);
    let inet = lab.ns(Role::Inet);
    // The router's own addresses, from both sides.
    assert_eq!(ping(&client, "10.10.1.1", 3), (3, 3));
    assert_eq!(ping(&inet, "203.0.113.2", 3), (3, 3));
    // Through the router.
    assert_eq!(ping(&client, "203.0.113.1", 5), (5, 5));
    let echo = vg.metric("vgate_icmp_echo_replies_total");
    assert_eq!(echo, 6);
    // 10 MB of TCP, byte-exact count at the receiver.
    let bytes = 10 * 1024 * 1024;
    assert_eq!(
        tcp_transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", bytes),
        bytes
    );
    let m = vg.metrics();
    assert!(metric_value(&m, "vgate_port_tx_bytes_total{port=\"external\"}") > bytes);
    // Headroom: the worker was busy for some of the time it ran, not all of it, and copy
    // mode on veth needed TX kicks (need_wakeup), fewer than the packets it sent.
    let busy = metric_f64(&m, "vgate_worker_busy_seconds_total{worker=\"0\"}");
    let up = started.elapsed().as_secs_f64();
    assert!(busy > 0.0 && busy < up, "busy {busy} s of {up} s");
    let kicks = metric_value(&m, "vgate_worker_tx_kicks_total{worker=\"0\"}");
    let sent = metric_value(&m, "vgate_port_tx_packets_total{port=\"external\"}")
        + metric_value(&m, "vgate_port_tx_packets_total{port=\"internal\"}");
    assert!(
        kicks > 0 && kicks <= sent,
        "{kicks} TX kicks for {sent} packets"
    );
    // NAPI deferral on vgate's interfaces while it runs (the defaults), put back at stop.
    let napi = |iface: &str| {
        lab.run(
            Role::Router,
            &[
                "cat",
                &format!("/sys/class/net/{iface}/napi_defer_hard_irqs"),
                &format!("/sys/class/net/{iface}/gro_flush_timeout"),
            ],
        )
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    for iface in ["vg-ext", "vg-int"] {
        assert_eq!(napi(iface), ["2", "50000"], "{iface} while vgate runs");
    }
    assert_eq!(
        metric_value(&m, "vgate_drops_total{stage=\"tx\",reason=\"ring_full\"}"),
        0
    );
    assert_eq!(vg.stop(), Some(0), "clean exit on SIGTERM");
    for iface in ["vg-ext", "vg-int"] {
        assert_eq!(napi(iface), ["0", "0"], "{iface} after vgate stopped");
    }
    // XDP programs detached: the interfaces are as they were.
    let links = lab
        .run(Role::Router, &["ip", "-d", "link", "show"])
        .unwrap();
    assert!(!links.contains("prog/xdp"), "XDP left attached:\n{links}");
}

#[test]
fn arp_answers_only_for_owned_and_proxied() {
    let Some((lab, vg)) = setup(CONF) else { return };
    let inet = lab.ns(Role::Inet);
    let ext_mac = lab.mac(Role::Router, "vg-ext").unwrap();
    let iface = lab.inet_iface();
    assert_eq!(
        arping(&inet, &iface, "203.0.113.2").as_deref(),
        Some(ext_mac.as_str())
    );
    assert_eq!(
        arping(&inet, &iface, "203.0.113.200").as_deref(),
        Some(ext_mac.as_str())
    );
    let before = vg.metric("vgate_drops_total{stage=\"arp\",reason=\"not_ours\"}");
    assert_eq!(arping(&inet, &iface, "203.0.113.77"), None);
    // The internal address is not answered on the external segment (no ARP flux).
    assert_eq!(arping(&inet, &iface, "10.10.1.1"), None);
    let after = vg.metric("vgate_drops_total{stage=\"arp\",reason=\"not_ours\"}");
    // arping -c 1 sends one request per run (it may retransmit within -w; count at least 2).
    assert!(after - before >= 2, "not_ours rose by {}", after - before);
    assert_eq!(vg.metric("vgate_arp_replies_total{kind=\"proxy\"}"), 1);
}

#[test]
fn icmp_errors_time_exceeded_and_net_unreachable() {
    let Some((lab, vg)) = setup(CONF) else { return };
    let out = ping_out(
        &lab,
        Role::Client,
        &["-c", "1", "-W", "2", "-t", "1", "198.51.100.7"],
    );
    assert!(
        out.contains("From 10.10.1.1") && out.contains("Time to live exceeded"),
        "{out}"
    );
    let out = ping_out(&lab, Role::Client, &["-c", "1", "-W", "2", "192.0.2.5"]);
    assert!(
        out.contains("From 10.10.1.1") && out.contains("Destination Net Unreachable"),
        "{out}"
    );
    let m = vg.metrics();
    assert_eq!(
        metric_value(&m, "vgate_icmp_errors_total{type=\"time_exceeded\"}"),
        1
    );
    assert_eq!(
        metric_value(&m, "vgate_icmp_errors_total{type=\"net_unreachable\"}"),
        1
    );
    assert_eq!(
        metric_value(&m, "vgate_drops_total{stage=\"route\",reason=\"no_route\"}"),
        1
    );
    assert_eq!(
        metric_value(
            &m,
            "vgate_drops_total{stage=\"route\",reason=\"ttl_expired\"}"
        ),
        1
    );
}

#[test]
fn unresolvable_next_hop_gives_host_unreachable() {
    // 198.51.100.0/24 via an address nobody answers for.
    let conf = CONF.replace("via = \"203.0.113.1\"", "via = \"203.0.113.9\"");
    let Some((lab, vg)) = setup(&conf) else {
        return;
    };
    let out = ping_out(&lab, Role::Client, &["-c", "1", "-W", "6", "198.51.100.7"]);
    assert!(out.contains("Destination Host Unreachable"), "{out}");
    assert_eq!(
        vg.metric("vgate_drops_total{stage=\"rewrite\",reason=\"neighbor_unresolved\"}"),
        1
    );
    assert_eq!(vg.metric("vgate_arp_requests_sent_total"), 3);
}

#[test]
fn bad_config_refused_with_every_error() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("vgate-bad-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        CONF.replace("203.0.113.128/25", "203.0.113.129/25")
            .replace("via = \"203.0.113.1\"", "via = \"192.0.2.1\""),
    )
    .unwrap();
    for sub in [&["check"][..], &["run", "--config"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_vgate"))
            .args(sub)
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{sub:?}: {err}");
        assert!(err.contains("route[0].via"), "{err}");
        assert!(err.contains("proxy_arp[0].prefix"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_workers_on_two_queues() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let spec = vgate::lab::LabSpec {
        queues: 2,
        ..vgate::lab::LabSpec::new(&unique_prefix(), RouterMode::Vgate)
    };
    let lab = Lab::up(&spec).expect("lab");
    let conf = CONF.replace("workers = 1", "workers = 2\ncpus = [0, 1]");
    let vg = Vgate::start(&lab, &conf);
    let client = lab.ns(Role::Client);
    assert_eq!(ping(&client, "10.10.1.1", 3), (3, 3));
    assert_eq!(ping(&client, "203.0.113.1", 3), (3, 3));
    // Several TCP transfers: flows hash onto both queues, so both workers forward.
    for _ in 0..4 {
        let bytes = 2 * 1024 * 1024;
        assert_eq!(
            tcp_transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", bytes),
            bytes
        );
    }
    let m = vg.metrics();
    let w0 = metric_value(&m, "vgate_worker_rx_packets_total{worker=\"0\"}");
    let w1 = metric_value(&m, "vgate_worker_rx_packets_total{worker=\"1\"}");
    eprintln!("worker 0 received {w0}, worker 1 received {w1}");
    assert!(w0 + w1 > 4 * 1400, "workers received {w0} + {w1}");
    assert_eq!(vg.stop(), Some(0));
}

/// A start-up that fails after vgate set NAPI deferral on its interfaces (here: the API
/// address is taken) puts them back as they were.
#[test]
fn a_failed_start_puts_the_interfaces_back() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let lab = lab_up(RouterMode::Vgate);
    let router = lab.ns(Role::Router);
    let mut squatter = lab
        .spawn(
            Role::Router,
            &[
                "/usr/bin/python3",
                "-c",
                "import socket,time;s=socket.socket();s.bind(('127.0.0.1',9477));s.listen();time.sleep(30)",
            ],
        )
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(5), || {
            lab.run(Role::Router, &["ss", "-Hltn", "sport = :9477"])
                .is_ok_and(|o| !o.trim().is_empty())
        }),
        "the squatter listens"
    );
    let dir = std::env::temp_dir().join(format!("vgate-napi-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vgate.toml");
    std::fs::write(&path, CONF).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &router,
            env!("CARGO_BIN_EXE_vgate"),
            "run",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = squatter.kill();
    let _ = squatter.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:9477"),
        "{stderr}"
    );
    assert!(
        stdout.contains("napi: vg-ext: napi_defer_hard_irqs 2, gro_flush_timeout 50 us"),
        "{stdout}"
    );
    for iface in ["vg-ext", "vg-int"] {
        let got = lab
            .run(
                Role::Router,
                &[
                    "cat",
                    &format!("/sys/class/net/{iface}/napi_defer_hard_irqs"),
                    &format!("/sys/class/net/{iface}/gro_flush_timeout"),
                ],
            )
            .unwrap();
        assert_eq!(
            got.split_whitespace().collect::<Vec<_>>(),
            ["0", "0"],
            "{iface} after the failed start"
        );
    }
}
