//! End to end, as root: the control plane under load. Reloads and floating-IP changes while
//! traffic flows, bad configurations refused with the old one still serving, bearer-token
//! auth, malformed requests, `promtool check metrics`, and `vgate show` against the API.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;
use vgate::lab::{Lab, Role, RouterMode};

fn conf(vm_mac: &str, listen: &str, token: Option<&str>) -> String {
    let token = token
        .map(|t| format!("token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "{listen}"
{token}
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

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
"#
    )
}

fn setup(listen: &str, token: Option<&str>) -> Option<(Lab, Vgate, String)> {
    if !is_root() {
        common::skip("needs root");
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    let vm_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let c = conf(&vm_mac, listen, token);
    let vg = match token {
        Some(t) => Vgate::start_with_token(&lab, &c, t),
        None => Vgate::start(&lab, &c),
    };
    Some((lab, vg, c))
}

fn api(vg: &Vgate, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    http(
        &vg.ns,
        method,
        &format!("http://127.0.0.1:9477{path}"),
        body,
        None,
    )
    .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

#[test]
fn reloads_and_fip_changes_under_traffic_lose_nothing() {
    let Some((lab, vg, _)) = setup("127.0.0.1:9477", None) else {
        return;
    };
    // A ping flood from the internet host to the VM's floating IP, and a TCP transfer out of
    // the VM through SNAT... while the configuration changes underneath.
    let pinger = lab
        .command(
            Role::Inet,
            &[
                "ping",
                "-q",
                "-i",
                "0.005",
                "-c",
                "600",
                "-W",
                "1",
                "203.0.113.10",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = 30 * 1024 * 1024;
    let transfer = {
        let lab_ns = (lab.ns(Role::Client), lab.ns(Role::Inet));
        std::thread::spawn(move || {
            vgate::lab::tcp_transfer(
                &lab_ns.0,
                &lab_ns.1,
                "203.0.113.1",
                5201,
                bytes,
                Duration::from_secs(60),
            )
        })
    };
    let mut generation = vg.generation();
    for k in 0..10 {
        let r = api(&vg, "POST", "/api/v1/reload", Some(""));
        assert_eq!(r.status, 200, "{}", r.body);
        generation += 1;
        // Add and remove a second floating IP (its own MAC, announced by GARP).
        let fip = format!(
            r#"{{"external": "203.0.113.{}", "internal": "10.10.1.9", "network": "tenant-a", "mac": "fa:16:3e:00:10:{:02x}"}}"#,
            50 + k,
            k
        );
        let r = api(&vg, "POST", "/api/v1/fips", Some(&fip));
        assert_eq!(r.status, 201, "{}", r.body);
        let r = api(
            &vg,
            "DELETE",
            &format!("/api/v1/fips/203.0.113.{}", 50 + k),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        generation += 2;
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(vg.generation(), generation);
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (sent, received) = vgate::lab::parse_ping_summary(&text).expect("ping summary");
    assert_eq!(sent, 600);
    assert_eq!(
        received, 600,
        "ping flood lost packets across reloads: {text}"
    );
    let rep = transfer.join().unwrap().expect("transfer");
    assert_eq!(
        common::received_intact(rep),
        bytes,
        "TCP transfer across reloads"
    );
    assert_eq!(
        vg.metric("vgate_config_reloads_total{result=\"failure\"}"),
        0
    );
    assert_eq!(
        vg.metric("vgate_config_reloads_total{result=\"success\"}"),
        30
    );
}

#[test]
fn bad_config_is_refused_and_the_old_one_keeps_serving() {
    let Some((lab, vg, good)) = setup("127.0.0.1:9477", None) else {
        return;
    };
    let inet = lab.ns(Role::Inet);
    let bad = good
        .replace(
            "network = \"tenant-a\"\n\n[[snat]]",
            "network = \"tenant-b\"\n\n[[snat]]",
        )
        .replace("via = \"203.0.113.1\"", "via = \"192.0.2.1\"");
    // Over SIGHUP: logged, counted, nothing changes.
    vg.reload(&bad);
    assert!(wait_until(Duration::from_secs(3), || vg
        .metric("vgate_config_reloads_total{result=\"failure\"}")
        == 1));
    assert_eq!(vg.generation(), 1);
    assert_eq!(ping(&inet, "203.0.113.10", 3), (3, 3));
    // Over the API: 400 with every error listed.
    let r = api(&vg, "POST", "/api/v1/reload", Some(""));
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let errs: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(
        errs.iter().any(|e| e.starts_with("route[0].via")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("floating_ip[0].network")),
        "{errs:?}"
    );
    // A bad floating IP over the API is refused the same way.
    let r = api(
        &vg,
        "POST",
        "/api/v1/fips",
        Some(r#"{"external": "203.0.113.11", "internal": "10.99.0.1", "network": "tenant-a"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("internal"), "{}", r.body);
    assert_eq!(vg.generation(), 1);
    assert_eq!(ping(&inet, "203.0.113.10", 3), (3, 3));
}

#[test]
fn malformed_requests_get_4xx() {
    let Some((_lab, vg, _)) = setup("127.0.0.1:9477", None) else {
        return;
    };
    assert_eq!(api(&vg, "GET", "/api/v1/nothing", None).status, 404);
    assert_eq!(api(&vg, "DELETE", "/api/v1/routes", None).status, 405);
    assert_eq!(
        api(&vg, "POST", "/api/v1/fips", Some("{not json")).status,
        400
    );
    assert_eq!(
        api(&vg, "POST", "/api/v1/fips", Some(r#"{"external": 5}"#)).status,
        400
    );
    assert_eq!(
        api(&vg, "DELETE", "/api/v1/fips/not-an-ip", None).status,
        400
    );
    assert_eq!(
        api(&vg, "DELETE", "/api/v1/fips/203.0.113.99", None).status,
        404
    );
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(100 * 1024));
    assert_eq!(api(&vg, "POST", "/api/v1/fips", Some(&big)).status, 413);
    // Still healthy.
    assert_eq!(api(&vg, "GET", "/api/v1/status", None).status, 200);
}

#[test]
fn token_required_when_listening_beyond_loopback() {
    let token = "s3cret-token-0123456789";
    let Some((lab, vg, _)) = setup("0.0.0.0:9477", Some(token)) else {
        return;
    };
    let url = "http://127.0.0.1:9477/api/v1/status";
    assert_eq!(http(&vg.ns, "GET", url, None, None).unwrap().status, 401);
    assert_eq!(
        http(&vg.ns, "GET", url, None, Some("wrong-token-0123456789"))
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        http(&vg.ns, "GET", url, None, Some(token)).unwrap().status,
        200
    );
    assert_eq!(
        http(&vg.ns, "GET", "http://127.0.0.1:9477/metrics", None, None)
            .unwrap()
            .status,
        401
    );
    let show = lab
        .run(
            Role::Router,
            &[
                env!("CARGO_BIN_EXE_vgate"),
                "show",
                "status",
                "--token",
                token,
            ],
        )
        .unwrap();
    assert!(show.contains("generation 1"), "{show}");
    let refused = lab
        .exec(
            Role::Router,
            &[env!("CARGO_BIN_EXE_vgate"), "show", "status"],
        )
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
}

#[test]
fn metrics_pass_promtool_and_show_matches_the_api() {
    let Some((lab, vg, _)) = setup("127.0.0.1:9477", None) else {
        return;
    };
    assert_eq!(ping(&lab.ns(Role::Inet), "203.0.113.10", 2), (2, 2));
    let text = vg.metrics();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every metric family of the contract is present.
    for m in [
        "port_rx_packets_total",
        "port_rx_bytes_total",
        "port_tx_packets_total",
        "port_tx_bytes_total",
        "drops_total",
        "arp_replies_total",
        "garp_sent_total",
        "neighbors",
        "icmp_errors_total",
        "icmp_rate_limited_total",
        "nat_sessions",
        "nat_port_exhausted_total",
        "fip_packets_total",
        "worker_polls_total",
        "config_generation",
        "config_reloads_total",
    ] {
        assert!(text.contains(&format!("# TYPE vgate_{m} ")), "missing {m}");
    }
    // `vgate show routes` prints every route the API lists.
    let json = api(&vg, "GET", "/api/v1/routes", None).body;
    let routes: serde_json::Value = serde_json::from_str(&json).unwrap();
    let show = lab
        .run(
            Role::Router,
            &[env!("CARGO_BIN_EXE_vgate"), "show", "routes"],
        )
        .unwrap();
    assert_eq!(
        show.lines().count(),
        routes.as_array().unwrap().len() + 1,
        "{show}"
    );
    for r in routes.as_array().unwrap() {
        let prefix = r["prefix"].as_str().unwrap();
        assert!(
            show.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(prefix)),
            "{prefix} not in\n{show}"
        );
    }
    let fips = lab
        .run(Role::Router, &[env!("CARGO_BIN_EXE_vgate"), "show", "fips"])
        .unwrap();
    assert!(
        fips.contains("203.0.113.10") && fips.contains("10.10.1.2"),
        "{fips}"
    );
}
