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
        common::skip("needs root");
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

/// UDP echo server for the inet namespace: every datagram goes back to its sender.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5301))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
"#;

/// 64 UDP flows from the VM, each from its own socket (its own source port) to the echo
/// server; a flow is done when its own datagram comes back. Unanswered flows are sent again
/// after a second (at most 4 times). Prints "answered resent".
const UDP_FLOWS: &str = r#"
import select, socket, time
N = 64
socks = []
for k in range(N):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    socks.append(s)
pending = set(range(N))
resent = 0
for attempt in range(5):
    for k in pending:
        socks[k].sendto(b"flow-%d" % k, ("203.0.113.1", 5301))
    if attempt > 0:
        resent += len(pending)
    deadline = time.time() + 1.0
    while pending and time.time() < deadline:
        ready, _, _ = select.select([socks[k] for k in pending], [], [], max(0.0, deadline - time.time()))
        for s in ready:
            k = socks.index(s)
            data, _ = s.recvfrom(100)
            if data == b"flow-%d" % k:
                pending.discard(k)
    if not pending:
        break
print(N - len(pending), resent)
"#;

/// Two workers on two queues. Each worker allocates SNAT ports from its own block; the
/// internet host's kernel picks the queue of each reply by its own flow hash, so about half
/// of the return traffic reaches the worker that does not own the session and is handed off
/// to the owner (docs/ARCHITECTURE.md, per-worker port blocks). Every flow must still get its replies.
#[test]
fn snat_two_workers_hand_off_return_traffic() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let spec = vgate::lab::LabSpec {
        queues: 2,
        ..vgate::lab::LabSpec::new(&unique_prefix(), RouterMode::Vgate)
    };
    let lab = Lab::up(&spec).expect("lab");
    let vm_mac = lab.mac(Role::Client, &lab.client_iface()).unwrap();
    let c = conf(&vm_mac, "fa:16:3e:aa:bb:01", false)
        .replace("workers = 1", "workers = 2\ncpus = [0, 1]");
    let vg = Vgate::start(&lab, &c);
    // Resolve the neighbours first, so no datagram waits in (or overflows) a hold queue.
    assert_eq!(ping(&lab.ns(Role::Client), "203.0.113.1", 2), (2, 2));
    let mut echo = lab
        .spawn(Role::Inet, &["timeout", "60", "python3", "-c", UDP_ECHO])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = lab
        .exec(Role::Client, &["timeout", "30", "python3", "-c", UDP_FLOWS])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|w| w.parse::<u64>().unwrap());
    let (answered, resent) = (fields.next().unwrap(), fields.next().unwrap());
    eprintln!("UDP flows answered: {answered} of 64, datagrams resent: {resent}");
    assert_eq!(
        answered, 64,
        "every UDP flow got its reply back through SNAT"
    );
    // TCP through SNAT on both workers, byte-exact.
    for _ in 0..2 {
        let bytes = 2 * 1024 * 1024;
        assert_eq!(
            tcp_transfer(&lab, Role::Client, Role::Inet, "203.0.113.1", bytes),
            bytes
        );
    }
    let _ = echo.kill();
    let _ = echo.wait();
    let m = vg.metrics();
    let out_ = metric_value(&m, "vgate_nat_handoff_packets_total{direction=\"out\"}");
    let in_ = metric_value(&m, "vgate_nat_handoff_packets_total{direction=\"in\"}");
    let w0 = metric_value(&m, "vgate_worker_rx_packets_total{worker=\"0\"}");
    let w1 = metric_value(&m, "vgate_worker_rx_packets_total{worker=\"1\"}");
    eprintln!("handed off {out_}, taken over {in_}; worker 0 received {w0}, worker 1 {w1}");
    assert!(
        out_ > 0,
        "some return traffic was handed to the owning worker"
    );
    assert!(in_ > 0, "and the owner took it");
    assert_eq!(
        metric_value(&m, "vgate_drops_total{stage=\"nat\",reason=\"no_session\"}"),
        0
    );
    assert_eq!(
        metric_value(
            &m,
            "vgate_drops_total{stage=\"nat\",reason=\"handoff_queue_full\"}"
        ),
        0
    );
    assert_eq!(vg.stop(), Some(0));
}

/// Hairpin: the VM reaches its own floating IP. vgate translates both ways, so the VM's
/// listener sees the connection come from the floating IP (not from its own address, which
/// it would answer directly, past vgate), and 1 MiB crosses intact.
#[test]
fn a_vm_reaches_its_own_floating_ip_through_vgate() {
    let Some((lab, vg, _)) = setup(true) else {
        return;
    };
    let client = lab.ns(Role::Client);
    let cap = Capture::start(
        &client,
        &lab.client_iface(),
        "tcp and src host 203.0.113.10 and dst host 10.10.1.2",
    );
    let fip_out = || vg.metric(r#"vgate_fip_packets_total{fip="203.0.113.10",direction="out"}"#);
    let before = fip_out();
    let mib = 1024 * 1024;
    let got = received_intact(
        vgate::lab::tcp_transfer(
            &client,
            &client,
            "203.0.113.10",
            5002,
            mib,
            Duration::from_secs(15),
        )
        .expect("transfer"),
    );
    assert_eq!(got, mib);
    let frames = cap.stop();
    assert!(
        frames.iter().any(|f| f.len() > 34 && f[23] == 6),
        "the listener saw the connection from the floating IP"
    );
    assert!(
        fip_out() > before,
        "the source was translated to the floating IP"
    );
}

/// Fragmented SNAT: a 4,000-byte UDP datagram from the VM (three fragments on a 1500-byte
/// link) reaches the internet host whole, and its 3,000-byte answer, fragmented too, comes
/// back whole: every fragment got its datagram's translation (virtual reassembly).
#[test]
fn snat_carries_fragmented_udp_both_ways() {
    let Some((lab, vg, _)) = setup(false) else {
        return;
    };
    // The internet host answers each datagram with 3,000 bytes derived from it.
    let echo = r#"
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(8)
s.bind(("0.0.0.0", 5400))
data, peer = s.recvfrom(65535)
print(len(data), peer[0], hashlib.sha256(data).hexdigest(), flush=True)
s.sendto((hashlib.sha256(data).digest() * 94)[:3000], peer)
"#;
    let server = lab
        .command(Role::Inet, &[common::craft::PYTHON, "-c", echo])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("UDP echo");
    std::thread::sleep(Duration::from_millis(500));
    let client = r#"
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
data = bytes((i * 31 + 7) % 256 for i in range(4000))
s.sendto(data, ("203.0.113.1", 5400))
answer, _ = s.recvfrom(65535)
want = (hashlib.sha256(data).digest() * 94)[:3000]
print(len(answer), answer == want, hashlib.sha256(data).hexdigest(), flush=True)
"#;
    let before = vg.metric(r#"vgate_drops_total{stage="nat",reason="fragment"}"#);
    let out = lab
        .exec(Role::Client, &[common::craft::PYTHON, "-c", client])
        .expect("UDP client");
    let seen = server.wait_with_output().expect("echo output");
    let client_says = String::from_utf8_lossy(&out.stdout).to_string();
    let server_says = String::from_utf8_lossy(&seen.stdout).to_string();
    let sha: Vec<&str> = client_says.split_whitespace().collect();
    assert_eq!(
        sha.get(..2),
        Some(&["3000", "True"][..]),
        "the answer came back whole: {client_says} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let srv: Vec<&str> = server_says.split_whitespace().collect();
    assert_eq!(
        srv.first(),
        Some(&"4000"),
        "the datagram arrived whole: {server_says}"
    );
    assert_eq!(srv.get(1), Some(&"203.0.113.2"), "from the SNAT address");
    assert_eq!(srv.get(2), sha.get(2), "the same bytes (SHA-256)");
    assert_eq!(
        vg.metric(r#"vgate_drops_total{stage="nat",reason="fragment"}"#),
        before
    );
}
