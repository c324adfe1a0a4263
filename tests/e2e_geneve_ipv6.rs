//! IPv6 through Geneve end to end, as root, against Open vSwitch's userspace datapath as the
//! compute chassis (tests/common/ovs.rs). The VM keeps an interface MTU of 1500 and learns
//! the tenant MTU, 1450, from vgate's router advertisement through the tunnel, with its
//! address by SLAAC; a 1500-byte packet from outside gets a Packet Too Big with 1450; 10 MiB
//! of TCP cross in each direction (SHA-256 checked).
//!
//! ```text
//!  inet ns 2001:db8:ff::1 ── vg-ext [vgate] vg-ul 192.0.2.10 ══ phy0 [OVS 192.0.2.21] ─ vm (SLAAC in 2001:db8:100:1::/64)
//! ```

mod common;

use common::ovs::{ChassisSpec, OvsChassis};
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;
use vgate::lab::{self, Role, RouterMode};

const UNDERLAY_IFACE: &str = "vg-ul";
const INET6: &str = "2001:db8:ff::1";
/// The VM's SLAAC address: the prefix and the modified EUI-64 of fa:16:3e:00:00:05.
const VM6: &str = "2001:db8:100:1:f816:3eff:fe00:5";
const GW_LL: &str = "fe80::f816:3eff:fe00:1";

const CONF: &str = r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "underlay"
iface = "vg-ul"
addresses = ["192.0.2.10/24"]
mtu = 1500

[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[tunnel]
local = "192.0.2.10"

[[chassis]]
name = "compute-1"
address = "192.0.2.21"

[[network]]
name = "tenant-a"
vni = 100
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"
subnet6 = "2001:db8:100:1::/64"
ra = { interval_s = 10 }

[[endpoint]]
network = "tenant-a"
ip = "10.0.0.5"
ip6 = "2001:db8:100:1:f816:3eff:fe00:5"
mac = "fa:16:3e:00:00:05"
chassis = "compute-1"
"#;

fn sh(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn ipv6_vm_behind_geneve_learns_the_tenant_mtu_and_moves_tcp_both_ways() {
    if !is_root() {
        common::skip("needs root");
        return;
    }
    let lab = lab_up(RouterMode::Vgate);
    let mut spec = ChassisSpec::new(&format!("{}6", lab.spec().prefix));
    spec.underlay_ns = Some(lab.ns(Role::Router));
    spec.underlay_iface = UNDERLAY_IFACE.to_string();
    spec.vms[0].mtu = 1500;
    let chassis = OvsChassis::start(&spec);
    let vm = chassis.vm(0).clone();
    // The VM takes RAs (accept_ra=2, as the issue's hosts do), with no duplicate address
    // detection delay; the peers checksum in software.
    for cmd in [
        format!("ethtool -K {} tx off", vm.iface),
        format!("sysctl -qw net.ipv6.conf.{}.accept_dad=0", vm.iface),
        format!("sysctl -qw net.ipv6.conf.{}.accept_ra=2", vm.iface),
        format!("sysctl -qw net.ipv6.conf.{}.use_tempaddr=0", vm.iface),
        format!("sysctl -qw net.ipv6.conf.{}.disable_ipv6=0", vm.iface),
    ] {
        sh(&vm.ns, &cmd);
    }
    let inet = lab.ns(Role::Inet);
    let ii = lab.inet_iface();
    for cmd in [
        format!("sysctl -qw net.ipv6.conf.{ii}.accept_dad=0"),
        format!("sysctl -qw net.ipv6.conf.{ii}.disable_ipv6=0"),
        format!("ip -6 addr add {INET6}/64 dev {ii} nodad"),
        "ip -6 route add 2001:db8:100::/48 via 2001:db8:ff::2".to_string(),
    ] {
        sh(&inet, &cmd);
    }
    let vg = Vgate::start(&lab, CONF);

    // SLAAC and the tenant MTU from the RA that came through the tunnel.
    assert!(
        wait_until(Duration::from_secs(30), || sh(
            &vm.ns,
            &format!("ip -6 -o addr show dev {} scope global", vm.iface)
        )
        .contains(VM6)),
        "no SLAAC address: {}",
        sh(&vm.ns, "ip -6 addr; ip -6 route")
    );
    let route = sh(&vm.ns, "ip -6 route show default");
    assert!(route.contains(GW_LL), "default route: {route}");
    let mtu = sh(
        &vm.ns,
        &format!("cat /proc/sys/net/ipv6/conf/{}/mtu", vm.iface),
    );
    assert_eq!(mtu.trim(), "1450", "the tenant MTU from the RA");

    // Out and in: the VM resolves its gateway's link-local address through the tunnel.
    let out = sh(&vm.ns, &format!("ping -6 -n -c 3 -i 0.3 -W 3 {INET6}"));
    assert!(out.contains("3 received"), "VM to inet: {out}");
    let out = sh(&inet, &format!("ping -6 -n -c 3 -i 0.3 -W 3 {VM6}"));
    assert!(out.contains("3 received"), "inet to VM: {out}");

    // 10 MiB each way, before anything taught the inet host the path MTU: its SYN offers
    // an MSS of 1440 (its MTU, 1500, less 60), which vgate lowers to 1390 (1450 less 60)
    // on the way into the tunnel.
    let bytes = 10 * 1024 * 1024;
    let sent = |from: &str, to: &str, dst: &str| {
        lab::tcp_transfer(
            from,
            to,
            dst,
            lab::DEMO_PORT,
            bytes,
            Duration::from_secs(40),
        )
        .map(common::received_intact)
        .unwrap_or_else(|e| panic!("tcp transfer to {dst}: {e}"))
    };
    assert_eq!(sent(&vm.ns, &inet, INET6), bytes, "VM to inet");
    assert_eq!(sent(&inet, &vm.ns, VM6), bytes, "inet to VM");
    let clamped = vg.metric("vgate_tcp_mss_clamped_total");
    assert!(clamped >= 1, "the inet host's SYN was not clamped");
    // 1500 bytes from outside toward the VM: Packet Too Big with the tenant MTU.
    let too_big = "vgate_icmp_errors_total{type=\"icmp6_packet_too_big\"}";
    let before = vg.metric(too_big);
    let out = sh(&inet, &format!("ping -6 -n -c 1 -s 1452 -M do -W 3 {VM6}"));
    assert!(
        out.contains("mtu=1450") || out.contains("Packet too big"),
        "too big: {out}"
    );
    assert_eq!(vg.metric(too_big), before + 1);

    let m = vg.metrics();
    eprintln!(
        "VM {VM6}: MTU {}, {}; encapsulated {}, decapsulated {}, MSS clamped {}",
        mtu.trim(),
        route.trim(),
        metric_value(&m, "vgate_geneve_encap_packets_total"),
        metric_value(&m, "vgate_geneve_decap_packets_total"),
        metric_value(&m, "vgate_tcp_mss_clamped_total"),
    );
    assert!(metric_value(&m, "vgate_geneve_encap_packets_total") > 1000);
    assert!(metric_value(&m, "vgate_geneve_decap_packets_total") > 1000);
    drop(vg);
    drop(chassis);
}
