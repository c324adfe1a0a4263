//! End to end, as root, against an independent Geneve peer: Open vSwitch's userspace datapath
//! (tests/common/ovs.rs) emulates a compute chassis with two VMs behind a `type=geneve`
//! port, vgate is its gateway node. The VMs keep the default MTU of 1500 although the underlay
//! carries only 1500 bytes: vgate's frag-needed (RFC 1191) and TCP MSS clamping must keep
//! every direction working.
//!
//! ```text
//!  inet ns (203.0.113.1) ── vg-ext [vgate] vg-ul 192.0.2.10 ══ phy0 [OVS 192.0.2.21] ─ vm  10.0.0.5 (FIP 203.0.113.10)
//!                                                                                  └ vm2 10.0.0.6 (SNAT)
//! ```

mod common;

use common::ovs::{ChassisSpec, OvsChassis, VmSpec};
use common::*;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vgate::lab::{self, Lab, Role, RouterMode};

const UNDERLAY_IFACE: &str = "vg-ul";
const FIP: &str = "203.0.113.10";
const VM_IP: &str = "10.0.0.5";
const VM2_IP: &str = "10.0.0.6";
const INET_IP: &str = "203.0.113.1";

fn conf(mss_clamp: bool) -> String {
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
name = "underlay"
iface = "{UNDERLAY_IFACE}"
addresses = ["192.0.2.10/24"]
mtu = 1500

[[route]]
prefix = "0.0.0.0/0"
via = "{INET_IP}"

[tunnel]
local = "192.0.2.10"
tcp_mss_clamp = {mss_clamp}

[[chassis]]
name = "compute-1"
address = "192.0.2.21"

[[network]]
name = "tenant-a"
vni = 100
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant-a"
ip = "{VM_IP}"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"

[[endpoint]]
network = "tenant-a"
ip = "{VM2_IP}"
mac = "fa:16:3e:00:00:06"
chassis = "compute-1"

[[floating_ip]]
external = "{FIP}"
internal = "{VM_IP}"
network = "tenant-a"

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
ports = "20000-29999"
"#
    )
}

/// The lab's inet and router namespaces, the chassis with its underlay veth in the router
/// namespace, and vgate running there.
struct Setup {
    // Field order is drop order: vgate first, then the chassis, then the namespaces.
    vg: Vgate,
    chassis: OvsChassis,
    lab: Lab,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// One OVS chassis at a time: its datapath, vgate and the kernel peers already share the
/// machine's two CPUs with the rest of the suite.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup(mss_clamp: bool) -> Option<Setup> {
    if !is_root() {
        common::skip("needs root");
        return None;
    }
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab_up(RouterMode::Vgate);
    let mut spec = ChassisSpec::new(&format!("{}g", lab.spec().prefix));
    spec.underlay_ns = Some(lab.ns(Role::Router));
    spec.underlay_iface = UNDERLAY_IFACE.to_string();
    let vm = &mut spec.vms[0];
    vm.mtu = 1500;
    // The first VM ARPs for its gateway through the tunnel; the second has it configured.
    vm.gateway_mac = None;
    let mut vm2: VmSpec = vm.clone();
    vm2.name = "vm2".into();
    vm2.ip = VM2_IP.parse().unwrap();
    vm2.mac = [0xfa, 0x16, 0x3e, 0, 0, 0x06];
    vm2.gateway_mac = Some([0xfa, 0x16, 0x3e, 0, 0, 0x01]);
    spec.vms.push(vm2);
    let chassis = OvsChassis::start(&spec);
    // The kernel peer end of the veth checksums in software, as the lab's other peers do.
    for vm in chassis.vms() {
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &vm.ns, "ethtool", "-K", &vm.iface, "tx", "off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let vg = Vgate::start(&lab, &conf(mss_clamp));
    Some(Setup {
        vg,
        chassis,
        lab,
        _serial: serial,
    })
}

/// `ping` from a VM namespace: (sent, received).
fn vm_ping(s: &Setup, vm: usize, dst: &str, count: u32) -> (u32, u32) {
    slow_ping(&s.chassis.vm(vm).ns, dst, count)
}

/// `ping` waiting up to 3 s per reply: OVS's userspace datapath shares the two CPUs with
/// vgate, the kernel peers and the rest of the suite, and a reply may take longer than 1 s.
fn slow_ping(ns: &str, dst: &str, count: u32) -> (u32, u32) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "3", "-c",
        ])
        .arg(count.to_string())
        .arg(dst)
        .output()
        .expect("run ping");
    lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("ping {dst} from {ns}: {out:?}"))
}

fn transfer(from_ns: &str, listen_ns: &str, dst: &str, bytes: u64) -> u64 {
    lab::tcp_transfer(
        from_ns,
        listen_ns,
        dst,
        lab::DEMO_PORT,
        bytes,
        Duration::from_secs(30),
    )
    .map(common::received_intact)
    .unwrap_or_else(|e| panic!("tcp transfer to {dst}: {e}"))
}

/// tshark's fields of the Geneve frames in `pcap`, one tab-separated line per frame.
fn tshark_geneve(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-Y", "geneve", "-T", "fields", "-E", "separator=/t"])
        .args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run tshark");
    assert!(out.status.success(), "tshark: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn floating_ip_on_a_remote_chassis_with_vm_mtu_1500() {
    let Some(s) = setup(true) else {
        return;
    };
    let inet = s.lab.ns(Role::Inet);
    let vm_ns = s.chassis.vm(0).ns.clone();

    // The internet host pings the VM through its floating IP; the capture on the chassis's
    // underlay end is decoded by tshark, not by vgate's parsers.
    let pcap = std::env::temp_dir().join(format!("{}-ul.pcap", s.lab.spec().prefix));
    let cap = Capture::start(s.chassis.ns(), common::ovs::PHY_PORT, "udp port 6081");
    assert_eq!(slow_ping(&inet, FIP, 5), (5, 5));
    let frames = cap.wait_frames(10, Duration::from_secs(3));
    write_pcap(&pcap, &frames);
    let rows = tshark_geneve(
        &pcap,
        &["ip.src", "ip.dst", "udp.dstport", "geneve.vni", "icmp.type"],
    );
    let _ = std::fs::remove_file(&pcap);
    let to_vm: Vec<_> = rows
        .iter()
        .filter(|r| r[0] == format!("192.0.2.10,{INET_IP}"))
        .collect();
    let from_vm: Vec<_> = rows
        .iter()
        .filter(|r| r[0] == format!("192.0.2.21,{VM_IP}"))
        .collect();
    assert!(to_vm.len() >= 5, "echo requests to the VM: {rows:?}");
    assert!(from_vm.len() >= 5, "echo replies from the VM: {rows:?}");
    for r in &to_vm {
        assert_eq!(r[1], format!("192.0.2.21,{VM_IP}"), "{r:?}");
        assert_eq!(r[2], "6081", "{r:?}");
        assert_eq!(tshark_number(&r[3]), 100, "{r:?}");
        assert_eq!(r[4], "8", "{r:?}");
    }

    // 10 MB each way with the VM's MTU at 1500: every segment must fit the 1450-byte tenant
    // MTU, or OVS drops it on the underlay (seed 002's black hole).
    let bytes = 10 * 1000 * 1000;
    let clamped = s.vg.metric("vgate_tcp_mss_clamped_total");
    assert_eq!(transfer(&inet, &vm_ns, FIP, bytes), bytes, "internet -> VM");
    assert_eq!(
        transfer(&vm_ns, &inet, INET_IP, bytes),
        bytes,
        "VM -> internet"
    );
    // Each connection's SYN and SYN-ACK carried an MSS of 1460.
    assert_eq!(s.vg.metric("vgate_tcp_mss_clamped_total") - clamped, 4);
    assert!(s.vg.metric("vgate_geneve_encap_packets_total") > 1000);
    assert!(s.vg.metric("vgate_geneve_decap_packets_total") > 1000);

    // Path-MTU discovery for what is not TCP: a DF ping too big for the tunnel gets
    // fragmentation needed with the tenant MTU, from vgate, about the floating IP.
    let frag_before = s.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}");
    let out = Command::new("ip")
        .args(["netns", "exec", &inet, "ping", "-c", "1", "-W", "2"])
        .args(["-M", "do", "-s", "1472", FIP])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mtu = 1450"), "ping -M do: {text}");
    assert_eq!(
        s.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}") - frag_before,
        1
    );
    // ... and a ping that fits exactly goes through.
    let out = Command::new("ip")
        .args(["netns", "exec", &inet, "ping", "-c", "2", "-W", "2"])
        .args(["-M", "do", "-s", "1422", FIP])
        .output()
        .expect("ping");
    assert!(out.status.success(), "1450-byte ping: {out:?}");

    // What the API says about the overlay.
    let router = s.lab.ns(Role::Router);
    let get = |path: &str| -> serde_json::Value {
        let r = http_get(&router, &format!("http://127.0.0.1:9477/api/v1/{path}")).expect(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).expect("JSON")
    };
    let status = get("status");
    let net = &status["networks"][0];
    assert_eq!(net["name"], "tenant-a");
    assert_eq!(net["kind"], "geneve");
    assert_eq!(net["vni"], 100);
    assert_eq!(net["tenant_mtu"], 1450);
    assert_eq!(net["endpoints"], 2);
    assert_eq!(net["floating_ips"], 1);
    assert_eq!(net["snat"], "203.0.113.2");
    let ch = &status["chassis"][0];
    assert_eq!(ch["name"], "compute-1");
    assert_eq!(ch["address"], "192.0.2.21");
    assert_eq!(ch["underlay_port"], "underlay");
    assert_eq!(status["tunnel"]["local"], "192.0.2.10");
    let routes = get("routes");
    let tunnel_routes: Vec<_> = routes
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "tunnel")
        .collect();
    assert_eq!(tunnel_routes.len(), 1, "{routes}");
    assert_eq!(tunnel_routes[0]["prefix"], "10.0.0.0/24");
    assert_eq!(tunnel_routes[0]["port"], "underlay");
    assert_eq!(tunnel_routes[0]["vni"], 100);
    let fips = get("fips");
    assert_eq!(fips[0]["chassis"], "compute-1");
    assert_eq!(fips[0]["location"], "configured");
    assert_eq!(fips[0]["virtual"], false);
    let shown = Command::new("ip")
        .args([
            "netns",
            "exec",
            &router,
            env!("CARGO_BIN_EXE_vgate"),
            "show",
            "status",
        ])
        .output()
        .expect("vgate show status");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("compute-1") && shown.contains("tenant-a"),
        "{shown}"
    );
}

#[test]
fn vms_on_a_remote_chassis_reach_the_internet_through_snat() {
    let Some(s) = setup(true) else {
        return;
    };
    let inet = s.lab.ns(Role::Inet);
    let vm2_ns = s.chassis.vm(1).ns.clone();
    // The chassis has not heard from vgate yet: OVS ARPs for the tunnel peer and drops the
    // packet that needed it (its behaviour, also on a real chassis). vgate answers for its
    // tunnel address, and from then on nothing is lost.
    let (_, got) = vm_ping(&s, 1, INET_IP, 2);
    assert!(got >= 1, "vm2 never reached the internet");
    let vgate_mac = s.lab.mac(Role::Router, UNDERLAY_IFACE).unwrap();
    assert_eq!(
        s.chassis.tunnel_neighbor("192.0.2.10".parse().unwrap()),
        Some(vgate_mac)
    );
    let cap = Capture::start(&inet, &s.lab.inet_iface(), "icmp or tcp");
    let pinged = vm_ping(&s, 1, INET_IP, 3);
    assert_eq!(
        pinged,
        (3, 3),
        "drops: {}",
        s.vg.metrics()
            .lines()
            .filter(|l| l.starts_with("vgate_drops_total") && !l.ends_with(" 0"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bytes = 5 * 1000 * 1000;
    assert_eq!(transfer(&vm2_ns, &inet, INET_IP, bytes), bytes);
    assert_eq!(transfer(&inet, &vm2_ns, VM2_IP, 1000), 0, "no way in");
    let frames = cap.stop();
    let from_vm2: Vec<_> = frames
        .iter()
        .filter(|f| f.len() > 34 && f[30..34] == [203, 0, 113, 1])
        .map(|f| Ipv4Addr::new(f[26], f[27], f[28], f[29]))
        .collect();
    assert!(!from_vm2.is_empty());
    assert!(
        from_vm2.iter().all(|a| *a == Ipv4Addr::new(203, 0, 113, 2)),
        "every packet from vm2 leaves masqueraded: {from_vm2:?}"
    );
    // The VM with the floating IP leaves from it, not from the SNAT address.
    assert_eq!(vm_ping(&s, 0, INET_IP, 2), (2, 2));
    let sessions = http_get(
        &s.lab.ns(Role::Router),
        "http://127.0.0.1:9477/api/v1/sessions",
    )
    .expect("sessions");
    assert!(sessions.body.contains(VM2_IP), "{}", sessions.body);
    assert!(!sessions.body.contains(VM_IP), "{}", sessions.body);
}

/// With clamping off, what path-MTU discovery alone can and cannot do: inbound TCP works,
/// vgate's frag-needed (RFC 1191) lowering the internet host's segments to the tenant MTU;
/// outbound TCP from a VM with MTU 1500 to a host that announced MSS 1460 black-holes on the
/// chassis, which drops the too-big encapsulated frames without a word (seed 002). This is
/// why `tunnel.tcp_mss_clamp` is on by default.
#[test]
fn without_clamping_inbound_tcp_works_by_pmtud_and_outbound_black_holes_at_the_chassis() {
    let Some(s) = setup(false) else {
        return;
    };
    let inet = s.lab.ns(Role::Inet);
    let vm_ns = s.chassis.vm(0).ns.clone();
    let frag_before = s.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}");
    let bytes = 10 * 1000 * 1000;
    assert_eq!(transfer(&inet, &vm_ns, FIP, bytes), bytes, "internet -> VM");
    assert!(s.vg.metric("vgate_icmp_errors_total{type=\"frag_needed\"}") > frag_before);

    let vm2_ns = s.chassis.vm(1).ns.clone();
    let cap = Capture::start(&vm2_ns, common::ovs::VM_IFACE, "tcp");
    let got = lab::tcp_transfer(
        &vm2_ns,
        &inet,
        INET_IP,
        lab::DEMO_PORT,
        1_000_000,
        Duration::from_secs(4),
    )
    .map(common::received_intact)
    .expect("transfer");
    let biggest = cap.stop().iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        got < 1_000_000,
        "VM -> internet without clamping: {got} bytes"
    );
    assert_eq!(biggest, 1514, "the VM sent full 1500-byte packets");
    assert_eq!(s.vg.metric("vgate_tcp_mss_clamped_total"), 0);
}
