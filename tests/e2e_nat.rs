//! End to end, as root: floating IPs, SNAT and gratuitous ARP with real kernel peers. The
//! "internet" host is the lab's inet namespace; the "VM" is the client namespace on a flat
//! tenant network behind vgate's internal port.

mod common;

use common::*;
use std::time::Duration;
use vgate::lab::{Lab, Role, RouterMode};

fn conf(vm_mac: &str, fip_mac: &str, with_fip: bool) -> String {
    let mut c = format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"
garp = {{ count = 3, interval_ms = 200 }}

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

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
ports = "20000-29999"
"#
    );
    if with_fip {
        c += &format!(
            r#"
[[floating_ip]]
external = "203.0.113.10"
internal = "10.10.1.2"
network = "tenant-a"
mac = "{fip_mac}"
"#
        );
    }
    c
}

fn setup(with_fip: bool) -> Option<(Lab, Vgate, String)> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    let vm_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let vg = Vgate::start(&lab, &conf(&vm_mac, "fa:16:3e:aa:bb:01", with_fip));
    Some((lab, vg, vm_mac))
}

fn neigh_mac(lab: &Lab, role: Role, ip: &str) -> Option<String> {
    let out = lab.run(role, &["ip", "neigh", "show", ip]).ok()?;
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == "lladdr" {
            return it.next().map(str::to_string);
        }
    }
    None
}

#[test]
fn floating_ip_ping_tcp_arp_and_garp_move() {
    let Some((lab, vg, _)) = setup(true) else {
        return;
    };
    let inet = lab.ns(Role::Inet);
    // ARP for the floating IP is answered with its configured MAC.
    assert_eq!(
        arping(&inet, &lab.inet_iface(), "203.0.113.10").as_deref(),
        Some("fa:16:3e:aa:bb:01")
    );
    // The internet host reaches the VM through its floating IP: ping and 10 MB of TCP.
    assert_eq!(ping(&inet, "203.0.113.10", 5), (5, 5));
    let bytes = 10 * 1024 * 1024;
    assert_eq!(
        tcp_transfer(&lab, Role::Inet, Role::Client, "203.0.113.10", bytes),
        bytes
    );
    assert!(vg.metric("vgate_fip_packets_total{fip=\"203.0.113.10\",direction=\"in\"}") > 5);
    assert!(vg.metric("vgate_fip_packets_total{fip=\"203.0.113.10\",direction=\"out\"}") > 5);
    // The VM's own outbound traffic leaves from the floating IP.
    let cap = Capture::start(&inet, &lab.inet_iface(), "icmp");
    assert_eq!(ping(&lab.ns(Role::Client), "203.0.113.1", 2), (2, 2));
    let frames = cap.wait_frames(2, Duration::from_secs(3));
    let req = frames
        .iter()
        .find(|f| f.len() > 34 && f[34] == 8)
        .expect("echo request seen");
    assert_eq!(
        &req[26..30],
        &[203, 0, 113, 10],
        "source is the floating IP"
    );
    drop(cap);

    // Move the floating IP to a new MAC (reload): the inet host's neighbour entry follows the
    // gratuitous ARPs without waiting for its cache to expire.
    assert_eq!(
        neigh_mac(&lab, Role::Inet, "203.0.113.10").as_deref(),
        Some("fa:16:3e:aa:bb:01")
    );
    let garps_before = vg.metric("vgate_garp_sent_total");
    let cap = Capture::start(&inet, &lab.inet_iface(), "arp");
    std::thread::sleep(Duration::from_millis(1100)); // past Linux's 1 s ARP locktime
    let vm_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    vg.reload(&conf(&vm_mac, "fa:16:3e:aa:bb:02", true));
    assert!(
        wait_until(Duration::from_secs(5), || neigh_mac(
            &lab,
            Role::Inet,
            "203.0.113.10"
        )
        .as_deref()
            == Some("fa:16:3e:aa:bb:02")),
        "neighbour entry did not move: {:?}",
        neigh_mac(&lab, Role::Inet, "203.0.113.10")
    );
    let frames = cap.wait_frames(1, Duration::from_secs(2));
    let garp = frames
        .iter()
        .find(|f| {
            f.len() >= 42
                && f[12..14] == [8, 6]
                && f[28..32] == [203, 0, 113, 10]
                && f[38..42] == [203, 0, 113, 10]
        })
        .expect("an ARP announcement for the floating IP on the wire");
    assert_eq!(&garp[0..6], &[0xff; 6]);
    assert_eq!(&garp[22..28], &[0xfa, 0x16, 0x3e, 0xaa, 0xbb, 0x02]);
    assert!(wait_until(Duration::from_secs(2), || vg
        .metric("vgate_garp_sent_total")
        >= garps_before + 3));
    assert_eq!(vg.generation(), 2);
    let api = http_get(&vg.ns, "http://127.0.0.1:9477/api/v1/fips").expect("API");
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v[0]["external"], "203.0.113.10");
    assert_eq!(v[0]["internal"], "10.10.1.2");
    assert_eq!(v[0]["mac"], "fa:16:3e:aa:bb:02");
    assert_eq!(ping(&inet, "203.0.113.10", 2), (2, 2));
}

#[test]
fn snat_tcp_udp_and_ping() {
    let Some((lab, vg, _)) = setup(false) else {
        return;
    };
    let client = lab.ns(Role::Client);
    let inet = lab.ns(Role::Inet);
    let cap = Capture::start(&inet, &lab.inet_iface(), "icmp or udp");
    assert_eq!(ping(&client, "203.0.113.1", 3), (3, 3));
    // UDP: one datagram to a listener in the inet namespace.
    let mut listener = lab
        .spawn(
            Role::Inet,
            &["timeout", "5", "nc", "-u", "-l", "-W", "1", "5300"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = lab
        .exec(
            Role::Client,
            &["sh", "-c", "echo vgate-snat | nc -u -w 1 203.0.113.1 5300"],
        )
        .unwrap();
    assert!(sent.status.success());
    let _ = listener.wait();
    let frames = cap.stop();
    let udp = frames
        .iter()
        .find(|f| f.len() > 42 && f[23] == 17 && u16::from_be_bytes([f[36], f[37]]) == 5300)
        .expect("UDP datagram seen by the internet host");
    assert_eq!(&udp[26..30], &[203, 0, 113, 2], "masqueraded source");
    let sport = u16::from_be_bytes([udp[34], udp[35]]);
    assert!((20000..=29999).contains(&sport), "source port {sport}");
    // TCP through SNAT, byte-exact.
    let bytes = 5 * 1024 * 1024;
    assert_eq!(
        tcp_transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", bytes),
        bytes
    );
    assert!(wait_until(Duration::from_secs(2), || vg
        .metric("vgate_nat_sessions")
        >= 3));
    assert_eq!(
        vg.metric("vgate_drops_total{stage=\"nat\",reason=\"no_session\"}"),
        0
    );
}
