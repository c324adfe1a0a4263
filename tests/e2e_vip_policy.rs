//! Seed 002, end to end as root against Open vSwitch: an ACL on a floating IP whose internal
//! address is a VIP (`[[endpoint]] virtual = true`) keeps holding after a gratuitous ARP
//! through the tunnel has moved the VIP to another chassis.
//!
//! OVN does not enforce an ACL set on a VIP's (virtual) port: the VIP's traffic passes through
//! the port of the VM that holds it, so the ACL holds only where it is set on that parent
//! port, and a failover to a parent without it opens the VIP. vgate applies the floating IP's
//! ACL at the gateway, by the VIP's address and before encapsulation, so the same rules hold
//! on whichever chassis the VIP lives.
//!
//! ```text
//!                                              ┌ [OVS compute-1 192.0.2.21] ─ vm 10.0.0.5 (VIP first)
//!  inet ── vg-ext [vgate] vg-ul ── br0 (switch)┤
//!          FIP 203.0.113.10 -> VIP 10.0.0.100  └ [OVS compute-2 192.0.2.22] ─ vm 10.0.0.6 (VIP after)
//! ```
//!
//! The harness gives each chassis its own underlay veth; the two share vgate's underlay port
//! through a Linux bridge in a namespace of their own.

mod common;

use common::ovs::{ChassisSpec, Netns, OvsChassis, VM_IFACE};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vgate::lab::{self, Lab, Role, RouterMode};

const UNDERLAY_IFACE: &str = "vg-ul";
const VGATE_UNDERLAY_IP: &str = "192.0.2.10";
const FIP: &str = "203.0.113.10";
const VIP: &str = "10.0.0.100";
const VIP_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x64];
const INET_IP: &str = "203.0.113.1";
const API: &str = "http://127.0.0.1:9477/api/v1";

const DENIED: &str = r#"vgate_drops_total{stage="acl",reason="denied"}"#;
const DEFAULT_DROP: &str = r#"vgate_acl_packets_total{acl="web",rule="default",action="drop"}"#;
const PORT_80_ALLOWED: &str = r#"vgate_acl_packets_total{acl="web",rule="0",action="allow"}"#;
const MOVES: &str = "vgate_virtual_endpoint_moves_total";

fn conf() -> String {
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
addresses = ["{VGATE_UNDERLAY_IP}/24"]
mtu = 1500

[[route]]
prefix = "0.0.0.0/0"
via = "{INET_IP}"

[tunnel]
local = "{VGATE_UNDERLAY_IP}"

[[chassis]]
name = "compute-1"
address = "192.0.2.21"

[[chassis]]
name = "compute-2"
address = "192.0.2.22"

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
vni = 100
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant-a"
ip = "10.0.0.5"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"

[[endpoint]]
network = "tenant-a"
ip = "10.0.0.6"
mac = "fa:16:3e:00:00:06"
chassis = "compute-2"

[[endpoint]]
network = "tenant-a"
ip = "{VIP}"
mac = "{vip_mac}"
chassis = "compute-1"
virtual = true

[[floating_ip]]
external = "{FIP}"
internal = "{VIP}"
network = "tenant-a"
acl = "web"
"#,
        vip_mac = fmt_mac(VIP_MAC)
    )
}

/// Field order is drop order: vgate first, then the chassis, the underlay switch, the lab.
struct Setup {
    vg: Vgate,
    chassis: [OvsChassis; 2],
    _switch: Netns,
    lab: Lab,
}

fn setup() -> Option<Setup> {
    if !is_root() {
        common::skip("needs root");
        return None;
    }
    let lab = lab_up(RouterMode::Vgate);
    let router = lab.ns(Role::Router);
    let switch = Netns::new(&format!("{}-sw", lab.spec().prefix));
    switch.ip(&["link", "add", "br0", "type", "bridge"]);
    switch.ip(&["link", "set", "br0", "up"]);
    run(Command::new("ip").args([
        "link",
        "add",
        UNDERLAY_IFACE,
        "netns",
        &router,
        "type",
        "veth",
        "peer",
        "name",
        "gw",
        "netns",
        &switch.0,
    ]));
    switch.ip(&["link", "set", "gw", "master", "br0", "up"]);
    run(Command::new("ip").args(["-n", &router, "link", "set", UNDERLAY_IFACE, "up"]));
    let vgate_mac = lab.mac(Role::Router, UNDERLAY_IFACE).unwrap();

    let start = |n: u8, vm_ip: [u8; 4], vm_mac_last: u8| -> OvsChassis {
        let mut spec = ChassisSpec::new(&unique_prefix());
        spec.underlay_ip = format!("192.0.2.{}", 20 + n).parse().unwrap();
        spec.underlay_mac = [0x02, 0, 0, 0, 0x02, 0x20 + n];
        spec.underlay_ns = Some(switch.0.clone());
        spec.vms[0].ip = vm_ip.into();
        spec.vms[0].mac[5] = vm_mac_last;
        let chassis = OvsChassis::start(&spec);
        switch.ip(&["link", "set", chassis.underlay_iface(), "master", "br0"]);
        // Seeded so that the first GARP from a chassis is not spent on OVS's ARP for vgate.
        chassis.set_tunnel_neighbor(VGATE_UNDERLAY_IP.parse().unwrap(), parse_mac(&vgate_mac));
        let vm = chassis.vm(0).clone();
        // The kernel peer end of the veth checksums in software, as the lab's other peers do.
        let _ = chassis
            .vm_command(0, "ethtool", &["-K", &vm.iface, "tx", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // vgate sends the VIP's traffic to the VIP's configured MAC; like OVN for a bound
        // virtual port, the chassis hands it to its VM, rewritten to the VM's own MAC (the
        // VM announces the VIP with that MAC, as keepalived does) so that its kernel takes it.
        let (_, gnv) = chassis.geneve_port(vm.spec.vni).expect("Geneve port");
        chassis.ofctl(&[
            "add-flow",
            "br-int",
            &format!(
                "priority=100,in_port={gnv},dl_dst={},actions=mod_dl_dst:{},output:{}",
                fmt_mac(VIP_MAC),
                fmt_mac(vm.spec.mac),
                vm.ofport
            ),
        ]);
        chassis
    };
    let chassis = [start(1, [10, 0, 0, 5], 0x05), start(2, [10, 0, 0, 6], 0x06)];
    // The VIP starts on compute-1, where the configuration puts it.
    vip(&chassis[0], "add");
    let vg = Vgate::start(&lab, &conf());
    Some(Setup {
        vg,
        chassis,
        _switch: switch,
        lab,
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("MAC"))
        .collect();
    v.try_into().expect("6 bytes")
}

/// `ip addr {add|del} VIP/32 dev eth0` in the chassis's VM.
fn vip(chassis: &OvsChassis, op: &str) {
    let addr = format!("{VIP}/32");
    run(&mut chassis.vm_command(0, "ip", &["addr", op, &addr, "dev", VM_IFACE]));
}

/// `ping` waiting up to 3 s per reply: two OVS userspace datapaths, vgate and the kernel
/// peers share two CPUs. (sent, received)
fn slow_ping(ns: &str, dst: &str, count: u32) -> (u32, u32) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "3",
        ])
        .arg("-c")
        .arg(count.to_string())
        .arg(dst)
        .stdin(Stdio::null())
        .output()
        .expect("run ping");
    lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("ping {dst} from {ns}: {out:?}"))
}

/// Bytes that arrived intact at a listener on `port` in `listen_ns`, sent from the inet
/// host to the floating IP.
fn transfer(s: &Setup, listen_ns: &str, port: u16, bytes: u64, timeout: Duration) -> u64 {
    lab::tcp_transfer(&s.lab.ns(Role::Inet), listen_ns, FIP, port, bytes, timeout)
        .map(received_intact)
        .unwrap_or_else(|e| panic!("tcp transfer to {FIP}:{port}: {e}"))
}

fn fip(s: &Setup) -> serde_json::Value {
    let r = http_get(&s.lab.ns(Role::Router), &format!("{API}/fips")).expect("GET fips");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    v.as_array()
        .and_then(|a| a.iter().find(|f| f["external"] == FIP))
        .cloned()
        .unwrap_or_else(|| panic!("no {FIP} in {v}"))
}

/// What the ACL must do wherever the VIP lives, with the listeners in `vm_ns` (the VM that
/// holds it): ICMP and TCP port 80 pass; TCP port 22, although the VM listens there, gets
/// nothing to the VM and nothing back, and each of its SYNs is counted once as acl/denied
/// and once as the default's drop.
fn policy_holds(s: &Setup, vm_ns: &str, where_: &str) {
    let inet = s.lab.ns(Role::Inet);

    let cap = Capture::start(vm_ns, VM_IFACE, &format!("icmp and host {VIP}"));
    assert_eq!(slow_ping(&inet, FIP, 3), (3, 3), "ping {where_}");
    let echoes = cap.stop();
    assert!(
        echoes.len() >= 6,
        "echo requests and replies of the VIP in the VM {where_}: {}",
        craft::describe(&echoes)
    );

    let allowed = s.vg.metric(PORT_80_ALLOWED);
    let mib = 1024 * 1024;
    assert_eq!(
        transfer(s, vm_ns, 80, mib, Duration::from_secs(30)),
        mib,
        "port 80 {where_}"
    );
    assert!(
        s.vg.metric(PORT_80_ALLOWED) - allowed > 10,
        "port 80's packets counted under rule 0 {where_}"
    );

    let denied = s.vg.metric(DENIED);
    let by_default = s.vg.metric(DEFAULT_DROP);
    let at_inet = Capture::start(&inet, &s.lab.inet_iface(), "tcp port 22 or icmp");
    let at_vm = Capture::start(vm_ns, VM_IFACE, "tcp port 22");
    assert_eq!(
        transfer(s, vm_ns, 22, 1000, Duration::from_secs(4)),
        0,
        "port 22 {where_}"
    );
    let to_vm = at_vm.stop();
    let at_inet = at_inet.stop();
    assert!(
        to_vm.is_empty(),
        "port 22 reached the VM {where_}: {}",
        craft::describe(&to_vm)
    );
    // Anything the inet host did not send itself is an answer: from the VM (RST), from vgate
    // (ICMP unreachable), or a SYN-ACK.
    let inet_ip = INET_IP.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let answers: Vec<_> = at_inet
        .iter()
        .filter(|f| f.len() < 34 || f[26..30] != inet_ip)
        .cloned()
        .collect();
    assert!(
        answers.is_empty(),
        "port 22 got answers {where_}: {}",
        craft::describe(&answers)
    );
    let fip_ip = FIP.parse::<std::net::Ipv4Addr>().unwrap().octets();
    // tcp[13] & 0x12 == 0x02: SYN without ACK, from the inet host to the floating IP.
    let syns = at_inet
        .iter()
        .filter(|f| f.len() >= 54 && f[30..34] == fip_ip && f[23] == 6 && f[47] & 0x12 == 0x02)
        .count() as u64;
    assert!(syns >= 2, "the SYN and its retries: {syns}");
    let denied = s.vg.metric(DENIED) - denied;
    let by_default = s.vg.metric(DEFAULT_DROP) - by_default;
    assert_eq!(
        (denied, by_default),
        (syns, syns),
        "acl/denied and the default's drops against the {syns} SYNs {where_}"
    );
}

#[test]
fn a_floating_ip_acl_holds_on_a_vip_after_a_garp_moves_it_to_another_chassis() {
    let began = Instant::now();
    let Some(s) = setup() else {
        return;
    };
    let [ch1, ch2] = &s.chassis;
    let (vm1_ns, vm2_ns) = (ch1.vm(0).ns.clone(), ch2.vm(0).ns.clone());

    let f = fip(&s);
    assert_eq!(f["internal"], VIP);
    assert_eq!(f["virtual"], true);
    assert_eq!(f["chassis"], "compute-1");
    assert_eq!(f["location"], "configured");
    assert_eq!(f["policy"]["acl"]["name"], "web");

    policy_holds(&s, &vm1_ns, "on compute-1");

    // keepalived's failover: the address leaves VM 1, VM 2 takes it and announces it. The
    // GARPs are broadcast on the tenant segment, so OVS floods them into the tunnel.
    let moves = s.vg.metric(MOVES);
    vip(ch1, "del");
    vip(ch2, "add");
    let garp = ch2
        .vm_command(0, "arping", &["-U", "-c", "3", "-I", VM_IFACE, VIP])
        .output()
        .expect("run arping");
    assert!(garp.status.success(), "arping -U: {garp:?}");
    let moved = wait_until(Duration::from_secs(5), || {
        let f = fip(&s);
        f["chassis"] == "compute-2" && f["location"] == "learned"
    });
    assert!(moved, "the VIP did not move: {}", fip(&s));
    let f = fip(&s);
    assert_eq!(f["chassis_address"], "192.0.2.22");
    assert_eq!(
        s.vg.metric(MOVES) - moves,
        1,
        "three GARPs from one chassis are one move"
    );

    // Nothing reaches VM 1 any more: the same checks pass with VM 2 holding the listeners.
    let at_vm1 = Capture::start(&vm1_ns, VM_IFACE, &format!("host {VIP}"));
    policy_holds(&s, &vm2_ns, "on compute-2");
    let to_vm1 = at_vm1.stop();
    assert!(
        to_vm1.is_empty(),
        "traffic for the VIP still reached compute-1: {}",
        craft::describe(&to_vm1)
    );
    // The API's count of the ACL's drops is the metrics': the default's, on both chassis.
    let f = fip(&s);
    let dropped = f["policy"]["acl"]["packets_dropped"].as_u64();
    assert_eq!(dropped, Some(s.vg.metric(DEFAULT_DROP)), "{f}");
    assert_eq!(dropped, Some(s.vg.metric(DENIED)), "{f}");
    eprintln!(
        "VIP failover under an ACL: {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
