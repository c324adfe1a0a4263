//! End to end, as root: ACLs and rate limits on a floating IP with real kernel peers. The
//! "internet" host is the lab's inet namespace; the "VM" is the client namespace on a flat
//! tenant network behind vgate's internal port.

mod common;

use common::craft::{KillOnDrop, udp_sink};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vgate::lab::{Lab, Role, RouterMode};

const FIP_MAC: &str = "fa:16:3e:aa:bb:01";

fn conf(vm_mac: &str, fip_policy: &str) -> String {
    format!(
        r#"
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

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[acl]]
name = "web"
default = "drop"
rules = [
  {{ action = "allow", direction = "in", protocol = "tcp", dst_ports = "80" }},
  {{ action = "allow", direction = "in", protocol = "icmp" }},
  {{ action = "allow-related", direction = "out" }},
]

[[network]]
name = "tenant-a"
port = "internal"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant-a"
ip = "10.10.1.2"
mac = "{vm_mac}"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.10.1.2"
network = "tenant-a"
mac = "{FIP_MAC}"
{fip_policy}
"#
    )
}

fn setup(fip_policy: &str) -> Option<(Lab, Vgate)> {
    if !is_root() {
        common::skip("needs root");
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    let vm_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let vg = Vgate::start(&lab, &conf(&vm_mac, fip_policy));
    Some((lab, vg))
}

fn transfer(lab: &Lab, from: Role, to: Role, dst: &str, port: u16, bytes: u64) -> u64 {
    received_intact(
        vgate::lab::tcp_transfer(
            &lab.ns(from),
            &lab.ns(to),
            dst,
            port,
            bytes,
            Duration::from_secs(8),
        )
        .unwrap_or_else(|e| panic!("tcp transfer to {dst}:{port}: {e}")),
    )
}

#[test]
fn an_acl_on_a_floating_ip_holds_against_real_peers() {
    let Some((lab, vg)) = setup("acl = \"web\"") else {
        return;
    };
    let inet = lab.ns(Role::Inet);
    // ICMP is allowed in.
    assert_eq!(ping(&inet, "203.0.113.10", 3), (3, 3));
    // TCP to port 80 is allowed in: 1 MiB arrives with the right SHA-256.
    let mib = 1024 * 1024;
    assert_eq!(
        transfer(&lab, Role::Inet, Role::Client, "203.0.113.10", 80, mib),
        mib
    );
    let allowed = vg.metric(r#"vgate_acl_packets_total{acl="web",rule="0",action="allow"}"#);
    assert!(
        allowed > 10,
        "port 80's packets counted under rule 0: {allowed}"
    );

    // Port 22: the SYNs get nothing back (no RST, no ICMP), and each is counted.
    let denied_before = vg.metric(r#"vgate_drops_total{stage="acl",reason="denied"}"#);
    let default_before =
        vg.metric(r#"vgate_acl_packets_total{acl="web",rule="default",action="drop"}"#);
    let cap = Capture::start(&inet, &lab.inet_iface(), "ip and src host 203.0.113.10");
    assert_eq!(
        transfer(&lab, Role::Inet, Role::Client, "203.0.113.10", 22, 1000),
        0
    );
    let back = cap.stop();
    assert!(
        back.is_empty(),
        "port 22 got answers: {}",
        craft::describe(&back)
    );
    let denied = vg.metric(r#"vgate_drops_total{stage="acl",reason="denied"}"#) - denied_before;
    let by_default = vg
        .metric(r#"vgate_acl_packets_total{acl="web",rule="default",action="drop"}"#)
        - default_before;
    assert!(
        denied >= 1,
        "the SYN (and its retries) dropped as acl/denied"
    );
    assert_eq!(denied, by_default, "every such drop is the default's");

    // allow-related out: the VM's own connection out gets its replies (the ACKs would
    // otherwise hit the default drop), and they are counted as related.
    let related_before =
        vg.metric(r#"vgate_acl_packets_total{acl="web",rule="related",action="allow"}"#);
    assert_eq!(
        transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", 5000, mib),
        mib
    );
    let related = vg.metric(r#"vgate_acl_packets_total{acl="web",rule="related",action="allow"}"#)
        - related_before;
    assert!(related > 10, "replies passed as related: {related}");
    assert!(vg.metric("vgate_acl_flows") >= 1);

    // The API and `vgate show fips` show the policy.
    let api = http_get(&vg.ns, "http://127.0.0.1:9477/api/v1/fips").expect("API");
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v[0]["policy"]["acl"]["name"], "web");
    assert!(v[0]["policy"]["acl"]["packets_dropped"].as_u64().unwrap() >= 1);
    // The network has no policy of its own.
    let api = http_get(&vg.ns, "http://127.0.0.1:9477/api/v1/networks").expect("API");
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v[0]["name"], "tenant-a");
    assert_eq!(v[0]["policy"], serde_json::Value::Null);
}

/// Receiver-side Mbit/s of an iperf3 TCP test from `from` to the iperf3 server in the VM,
/// through the floating IP (`reverse`: the server sends).
fn iperf3(lab: &Lab, reverse: bool) -> f64 {
    iperf3_with(lab, reverse, &[])
}

fn iperf3_with(lab: &Lab, reverse: bool, extra: &[&str]) -> f64 {
    let _server = KillOnDrop(
        lab.spawn(Role::Client, &["iperf3", "-s", "-1", "-p", "5301"])
            .expect("iperf3 server"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut args = vec![
        "iperf3",
        "-c",
        "203.0.113.10",
        "-p",
        "5301",
        "-t",
        "5",
        "-J",
    ];
    if reverse {
        args.push("-R");
    }
    args.extend_from_slice(extra);
    let out = lab.exec(Role::Inet, &args).expect("iperf3 client");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no result: {v}"));
    bps / 1e6
}

#[test]
fn a_rate_limited_floating_ip_holds_50_mbits_each_way() {
    let Some((lab, vg)) = setup("qos = { in_mbps = 50, out_mbps = 50 }") else {
        return;
    };
    // UDP offered at 80 Mbit/s: what arrives is the limit (no TCP dynamics in the way).
    let udp = iperf3_with(&lab, false, &["-u", "-b", "80M"]);
    let inbound = iperf3(&lab, false);
    let outbound = iperf3(&lab, true);
    eprintln!(
        "iperf3 through a 50 Mbit/s floating IP: UDP {udp:.1}, TCP in {inbound:.1}, TCP out \
         {outbound:.1} Mbit/s"
    );
    assert!((45.0..=55.0).contains(&udp), "UDP: {udp:.1} Mbit/s");
    assert!((45.0..=55.0).contains(&inbound), "in: {inbound:.1} Mbit/s");
    assert!(
        (45.0..=55.0).contains(&outbound),
        "out: {outbound:.1} Mbit/s"
    );
    assert!(
        vg.metric(r#"vgate_qos_dropped_packets_total{target="203.0.113.10",direction="in"}"#) > 0
    );
    assert!(
        vg.metric(r#"vgate_qos_dropped_packets_total{target="203.0.113.10",direction="out"}"#) > 0
    );
    assert_eq!(
        vg.metric(r#"vgate_drops_total{stage="qos",reason="rate_exceeded"}"#),
        vg.metric(r#"vgate_qos_dropped_packets_total{target="203.0.113.10",direction="in"}"#)
            + vg.metric(
                r#"vgate_qos_dropped_packets_total{target="203.0.113.10",direction="out"}"#
            )
    );
}

#[test]
fn a_packet_rate_limit_holds_under_a_udp_flood() {
    let Some((lab, vg)) = setup("qos = { in_kpps = 20 }") else {
        return;
    };
    let _sink = udp_sink(&lab, Role::Client, 9);
    // Resolve the floating IP's MAC in the inet host first, as a router would.
    assert_eq!(ping(&lab.ns(Role::Inet), "203.0.113.10", 1), (1, 1));
    let fip_in = || vg.metric(r#"vgate_fip_packets_total{fip="203.0.113.10",direction="in"}"#);
    let to_vm = || vg.metric(r#"vgate_port_tx_packets_total{port="internal"}"#);
    let (fip_before, to_vm_before) = (fip_in(), to_vm());
    // 60 kpps offered for 3 s, three times the limit.
    let start = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(Role::Inet),
            env!("CARGO_BIN_EXE_vgate"),
            "pktgen",
        ])
        .args(["--tx-iface", &lab.inet_iface(), "--dst-mac", FIP_MAC])
        .args([
            "--src-ip",
            "203.0.113.1",
            "--dst-ip",
            "203.0.113.10",
            "--dst-port",
            "9",
        ])
        .args([
            "--flows", "16", "--rate", "60k", "--count", "180000", "--drain", "100ms",
        ])
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("vgate pktgen");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "pktgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pktgen JSON {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let (sent, sending) = tx_figures(&v).unwrap_or_else(|| panic!("no tx figures in {v}"));
    std::thread::sleep(Duration::from_millis(300));
    // Every packet reached vgate and was translated; those the limit did not drop went on
    // to the VM.
    let arrived = fip_in() - fip_before;
    let dropped =
        vg.metric(r#"vgate_qos_dropped_packets_total{target="203.0.113.10",direction="in"}"#);
    assert_eq!(arrived, sent, "every packet reached vgate");
    let passed = arrived - dropped;
    assert!(
        to_vm() - to_vm_before >= passed,
        "and what passed reached the VM"
    );
    // The rate over the generator's own sending time is what the limit bounds (the run
    // also holds its set-up and drain).
    let rate = passed as f64 / sending;
    eprintln!(
        "flood: {sent} sent in {sending:.2} s ({seconds:.2} s run), {passed} passed, \
         {dropped} dropped: {rate:.0} pps"
    );
    assert!(dropped > 60_000, "the excess was dropped: {dropped}");
    assert!(
        (18_000.0..=22_000.0).contains(&rate),
        "{rate:.0} pps through a 20 kpps limit"
    );
}

/// (packets sent, seconds spent sending) from `vgate pktgen --json`'s `tx` figures.
fn tx_figures(v: &serde_json::Value) -> Option<(u64, f64)> {
    if let Some(tx) = v.get("tx")
        && let (Some(p), Some(d)) = (tx["packets"].as_u64(), tx["duration_s"].as_f64())
    {
        return Some((p, d));
    }
    match v {
        serde_json::Value::Object(m) => m.values().find_map(tx_figures),
        serde_json::Value::Array(a) => a.iter().find_map(tx_figures),
        _ => None,
    }
}
