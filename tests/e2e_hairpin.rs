//! End to end, as root: hairpin NAT between two VMs of one flat tenant network. VM A opens a
//! TCP connection to VM B's floating IP; vgate translates the destination to B and the source
//! to A's floating IP (or, for a VM without one, to the network's SNAT address), so B sees the
//! connection come from outside and its answers go back through vgate, which translates them
//! both ways. 1 MiB crosses with the right SHA-256.
//!
//! Why it matters: with the destination translated alone, B would see A's internal address,
//! which is on its own segment, and answer A directly over the switch. A spoke to B's floating
//! IP, so an answer from B's internal address belongs to no connection of A's: its kernel
//! answers the SYN-ACK with a reset and the connection never opens. Then the transfer below
//! delivers nothing (and B's capture holds A's internal address): both tests fail. They do
//! with `nat::hairpin` made to return `Outbound::None`: 0 bytes of 1 MiB arrive.
//!
//! ```text
//!  inet ── vg-ext [vgate] vg-int ── {p}c0 ─ br0 (switch, in {p}-client) ┬ vm-a ─ A 10.10.1.2 (FIP 203.0.113.10)
//!                                                                       ├ vm-b ─ B 10.10.1.3 (FIP 203.0.113.11)
//!                                                                       └ vm-c ─ C 10.10.1.4 (SNAT 203.0.113.2)
//! ```
//!
//! The lab has one tenant host on vgate's internal veth; here its namespace becomes a Linux
//! bridge, and each VM is a namespace of its own with a veth into that bridge.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;
use vgate::lab::{self, Lab, Role, RouterMode};

const GATEWAY: &str = "10.10.1.1";
const SNAT_ADDR: &str = "203.0.113.2";
const SNAT_PORTS: std::ops::RangeInclusive<u16> = 20000..=29999;
const MIB: u64 = 1024 * 1024;

/// One VM of the tenant network: its tag (namespace `{p}-vm{tag}`, bridge port `vm-{tag}`),
/// internal address, MAC and floating IP.
struct VmSpec {
    tag: &'static str,
    ip: &'static str,
    mac: &'static str,
    fip: Option<&'static str>,
}

const A: VmSpec = VmSpec {
    tag: "a",
    ip: "10.10.1.2",
    mac: "02:00:5e:10:01:02",
    fip: Some("203.0.113.10"),
};
const B: VmSpec = VmSpec {
    tag: "b",
    ip: "10.10.1.3",
    mac: "02:00:5e:10:01:03",
    fip: Some("203.0.113.11"),
};
const C: VmSpec = VmSpec {
    tag: "c",
    ip: "10.10.1.4",
    mac: "02:00:5e:10:01:04",
    fip: None,
};
const VMS: [&VmSpec; 3] = [&A, &B, &C];

/// The VM's interface, inside its own namespace.
const VM_IFACE: &str = "eth0";

fn conf() -> String {
    let mut c = format!(
        r#"
[dataplane]
workers = 1
xdp_mode = "native"

[control]
listen = "127.0.0.1:9477"

[[port]]
name = "external"
iface = "vg-ext"
addresses = ["{SNAT_ADDR}/24"]

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
gateway = "{GATEWAY}"
gateway_mac = "fa:16:3e:00:00:01"

[[snat]]
network = "tenant-a"
external = "{SNAT_ADDR}"
ports = "{}-{}"
"#,
        SNAT_PORTS.start(),
        SNAT_PORTS.end()
    );
    for (i, vm) in VMS.iter().enumerate() {
        c += &format!(
            r#"
[[endpoint]]
network = "tenant-a"
ip = "{}"
mac = "{}"
"#,
            vm.ip, vm.mac
        );
        if let Some(fip) = vm.fip {
            c += &format!(
                r#"
[[floating_ip]]
external = "{fip}"
internal = "{}"
network = "tenant-a"
mac = "fa:16:3e:aa:bb:{:02x}"
"#,
                vm.ip,
                i + 1
            );
        }
    }
    c
}

/// `ip -n ns args...`, panicking on failure.
fn ip(ns: &str, args: &[&str]) {
    sh(Command::new("ip").args(["-n", ns]).args(args));
}

/// `ip netns exec ns args...`, panicking on failure.
fn exec(ns: &str, args: &[&str]) {
    sh(Command::new("ip").args(["netns", "exec", ns]).args(args));
}

fn sh(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("run command");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// A VM: a namespace of its own. Dropping it kills what still runs inside and deletes it,
/// which destroys its veth (and the bridge port with it).
struct Vm {
    ns: String,
}

impl Vm {
    /// Creates the namespace, plugs it into the bridge `br0` of namespace `switch` and gives
    /// it `spec`'s address, MAC and a default route via vgate.
    fn up(prefix: &str, switch: &str, spec: &VmSpec) -> Vm {
        let ns = format!("{prefix}-vm{}", spec.tag);
        sh(Command::new("ip").args(["netns", "add", &ns]));
        let vm = Vm { ns };
        let ns = vm.ns.as_str();
        // As the lab's namespaces: no IPv6 chatter in captures, no reverse-path filter.
        exec(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        );
        ip(ns, &["link", "set", "lo", "up"]);
        let port = format!("vm-{}", spec.tag);
        sh(Command::new("ip").args([
            "link", "add", &port, "netns", switch, "type", "veth", "peer", "name", VM_IFACE,
            "netns", ns,
        ]));
        ip(ns, &["link", "set", VM_IFACE, "address", spec.mac]);
        // Full checksums in every frame: vgate's AF_XDP socket sees the bytes as they are,
        // and a partial checksum would be wrong on the wire (see src/lab/mod.rs).
        exec(ns, &["ethtool", "-K", VM_IFACE, "tx", "off"]);
        ip(ns, &["link", "set", VM_IFACE, "up"]);
        ip(
            ns,
            &["addr", "add", &format!("{}/24", spec.ip), "dev", VM_IFACE],
        );
        ip(ns, &["route", "add", "default", "via", GATEWAY]);
        ip(switch, &["link", "set", &port, "master", "br0", "up"]);
        vm
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Listeners and captures stop on their own; a test that panicked midway may have
        // left one behind, and a process inside would keep the namespace alive.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .stderr(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2) takes no pointers; the pid runs in a namespace this test made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// vgate on the lab, its internal veth on a bridge with the three VMs. Fields drop in order:
/// vgate stops, the VMs go, then the lab.
struct Segment {
    vgate: Vgate,
    vms: Vec<Vm>,
    _lab: Lab,
}

impl Segment {
    fn up() -> Segment {
        let lab = lab_up(RouterMode::Vgate);
        let switch = lab.ns(Role::Client);
        let c0 = lab.client_iface();
        // The lab's tenant host becomes the switch: its address goes (and its route with it),
        // its veth to vgate becomes a bridge port.
        ip(&switch, &["addr", "flush", "dev", &c0]);
        ip(&switch, &["link", "add", "br0", "type", "bridge"]);
        ip(&switch, &["link", "set", &c0, "master", "br0"]);
        ip(&switch, &["link", "set", "br0", "up"]);
        let prefix = lab.spec().prefix.clone();
        let vms: Vec<Vm> = VMS
            .iter()
            .map(|spec| Vm::up(&prefix, &switch, spec))
            .collect();
        let vgate = Vgate::start(&lab, &conf());
        let seg = Segment {
            vgate,
            vms,
            _lab: lab,
        };
        // Every VM reaches its gateway: the segment works, and the bridge has learnt where
        // each VM is before the transfers.
        for (vm, spec) in seg.vms.iter().zip(VMS) {
            assert_eq!(
                ping(&vm.ns, GATEWAY, 2),
                (2, 2),
                "VM {} pings its gateway",
                spec.tag
            );
        }
        seg
    }

    fn ns(&self, spec: &VmSpec) -> &str {
        let i = VMS.iter().position(|v| v.tag == spec.tag).expect("a VM");
        &self.vms[i].ns
    }

    fn fip_packets(&self, fip: &str, direction: &str) -> u64 {
        self.vgate.metric(&format!(
            r#"vgate_fip_packets_total{{fip="{fip}",direction="{direction}"}}"#
        ))
    }

    /// 1 MiB from `from` to B's floating IP, where B listens; the bytes that arrived intact.
    fn transfer_to_b(&self, from: &VmSpec) -> u64 {
        received_intact(
            lab::tcp_transfer(
                self.ns(from),
                self.ns(&B),
                B.fip.unwrap(),
                lab::DEMO_PORT,
                MIB,
                Duration::from_secs(20),
            )
            .expect("transfer"),
        )
    }
}

/// A TCP segment of a captured frame.
#[derive(Debug)]
struct Tcp {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    flags: u8,
}

impl Tcp {
    fn parse(f: &[u8]) -> Option<Tcp> {
        if f.len() < 34 || f[12..14] != [8, 0] || f[23] != 6 {
            return None;
        }
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        let ip = |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&f[at..at + 4]).unwrap());
        Some(Tcp {
            src: ip(26),
            dst: ip(30),
            sport: u16::from_be_bytes([*f.get(l4)?, *f.get(l4 + 1)?]),
            flags: *f.get(l4 + 13)?,
        })
    }

    fn is_syn(&self) -> bool {
        self.flags & 0x12 == 0x02
    }
}

/// What B's interface carried of the transfer: the segments to B and those from B.
fn b_side(frames: &[Vec<u8>]) -> (Vec<Tcp>, Vec<Tcp>) {
    let b: Ipv4Addr = B.ip.parse().unwrap();
    let segs: Vec<Tcp> = frames.iter().filter_map(|f| Tcp::parse(f)).collect();
    let (to_b, rest): (Vec<Tcp>, Vec<Tcp>) = segs.into_iter().partition(|t| t.dst == b);
    let from_b = rest.into_iter().filter(|t| t.src == b).collect();
    (to_b, from_b)
}

/// A, which has a floating IP, reaches B through B's floating IP: B sees A's floating IP.
#[test]
fn a_vm_reaches_another_vms_floating_ip_from_its_own_floating_ip() {
    require_root!();
    let seg = Segment::up();
    let (fip_a, fip_b) = (A.fip.unwrap(), B.fip.unwrap());
    let counters = || {
        [
            seg.fip_packets(fip_b, "in"),
            seg.fip_packets(fip_a, "out"),
            seg.fip_packets(fip_a, "in"),
            seg.fip_packets(fip_b, "out"),
        ]
    };
    let before = counters();
    let cap = Capture::start(
        seg.ns(&B),
        VM_IFACE,
        &format!("tcp port {}", lab::DEMO_PORT),
    );

    assert_eq!(
        seg.transfer_to_b(&A),
        MIB,
        "1 MiB from A to B's floating IP arrived intact"
    );

    let frames = cap.stop();
    let (to_b, from_b) = b_side(&frames);
    let fip_a: Ipv4Addr = fip_a.parse().unwrap();
    assert!(
        to_b.iter().any(|t| t.is_syn() && t.src == fip_a),
        "B saw the SYN come from A's floating IP: {:?}",
        to_b.first()
    );
    let other: Vec<&Tcp> = to_b.iter().filter(|t| t.src != fip_a).collect();
    assert!(
        other.is_empty(),
        "everything reached B from A's floating IP, nothing from A's internal address {}: {} others, first {:?}",
        A.ip,
        other.len(),
        other.first()
    );
    // B answered the floating IP, so its answers went through vgate, not straight to A.
    assert!(!from_b.is_empty(), "B answered");
    assert!(
        from_b.iter().all(|t| t.dst == fip_a),
        "B answered A's floating IP only: {:?}",
        from_b.iter().find(|t| t.dst != fip_a)
    );

    // A's segments were counted in to B's floating IP and out of A's (at least the ~725
    // full-sized data segments of 1 MiB), B's answers the other way round. The volume is
    // checked here, not in the capture: tcpdump loses frames on a busy machine.
    let after = counters();
    let names = [
        "B's floating IP in",
        "A's floating IP out",
        "A's floating IP in",
        "B's floating IP out",
    ];
    for (k, name) in names.iter().enumerate() {
        let rose = after[k] - before[k];
        let least = if k < 2 { MIB / 1500 } else { 1 };
        assert!(
            rose >= least,
            "{name}: rose by {rose}, at least {least} expected"
        );
    }
    assert_eq!(
        seg.vgate
            .metric(r#"vgate_drops_total{stage="nat",reason="no_session"}"#),
        0
    );
}

/// C, which has no floating IP, reaches B through B's floating IP: B sees the network's SNAT
/// address, from a port of the SNAT range, and B's answers are un-SNATed back to C.
#[test]
fn a_vm_without_floating_ip_reaches_another_vms_floating_ip_from_the_snat_address() {
    require_root!();
    let seg = Segment::up();
    let fip_b = B.fip.unwrap();
    let in_before = seg.fip_packets(fip_b, "in");
    let out_before = seg.fip_packets(fip_b, "out");
    let cap = Capture::start(
        seg.ns(&B),
        VM_IFACE,
        &format!("tcp port {}", lab::DEMO_PORT),
    );

    assert_eq!(
        seg.transfer_to_b(&C),
        MIB,
        "1 MiB from C to B's floating IP arrived intact"
    );

    let frames = cap.stop();
    let (to_b, from_b) = b_side(&frames);
    let snat: Ipv4Addr = SNAT_ADDR.parse().unwrap();
    let syn = to_b
        .iter()
        .find(|t| t.is_syn())
        .expect("B saw the SYN of the connection");
    assert_eq!(
        syn.src, snat,
        "B saw the connection come from the SNAT address"
    );
    assert!(
        SNAT_PORTS.contains(&syn.sport),
        "from a port of the SNAT range: {}",
        syn.sport
    );
    let other: Vec<&Tcp> = to_b.iter().filter(|t| t.src != snat).collect();
    assert!(
        other.is_empty(),
        "nothing reached B from C's internal address {}: {} others, first {:?}",
        C.ip,
        other.len(),
        other.first()
    );
    assert!(!from_b.is_empty(), "B answered");
    assert!(
        from_b.iter().all(|t| t.dst == snat),
        "B answered the SNAT address only: {:?}",
        from_b.iter().find(|t| t.dst != snat)
    );

    assert!(seg.fip_packets(fip_b, "in") - in_before >= MIB / 1500);
    assert!(seg.fip_packets(fip_b, "out") > out_before);
    // C has no floating IP: its connection was one SNAT session.
    assert!(seg.vgate.metric("vgate_nat_sessions") >= 1);
    assert_eq!(
        seg.vgate
            .metric(r#"vgate_drops_total{stage="nat",reason="no_session"}"#),
        0
    );
}
