//! The Open vSwitch chassis harness (tests/common/ovs.rs) against a "gateway" namespace that
//! speaks Geneve with scapy: OVS's userspace datapath is an independent RFC 8926
//! implementation, and what it sends is decoded both by `vgate::wire::geneve` and by tshark.
//! Root only; skips otherwise.

mod common;

use common::ovs::{ChassisSpec, Netns, OvsChassis, process_is};
use common::*;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vgate::wire::{checksum, ethernet, geneve, icmp, ipv4, udp};

const GW_IP: &str = "192.0.2.10";
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x10];
/// The tenant gateway MAC the VM has as a permanent neighbour (ChassisSpec::new).
const ROUTER_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x01];
const CHASSIS_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);

/// A chassis whose underlay peer is `{prefix}-u` in a gateway namespace holding
/// 192.0.2.10/24 with MAC 02:00:00:00:02:10.
fn setup() -> (Netns, OvsChassis) {
    let prefix = unique_prefix();
    let gw = Netns::new(&format!("{prefix}-gw"));
    let mut spec = ChassisSpec::new(&prefix);
    spec.underlay_ns = Some(gw.0.clone());
    let chassis = OvsChassis::start(&spec);
    eprintln!(
        "OVS chassis {prefix} up in {} ms",
        chassis.startup_time().as_millis()
    );
    let iface = chassis.underlay_iface().to_string();
    gw.ip(&["link", "set", &iface, "address", &fmt_mac(GW_MAC)]);
    gw.ip(&["addr", "add", &format!("{GW_IP}/24"), "dev", &iface]);
    (gw, chassis)
}

/// A Geneve frame taken apart with vgate's own parsers.
#[derive(Debug)]
struct Decoded {
    outer_src_mac: [u8; 6],
    outer_dst_mac: [u8; 6],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    udp_checksum: u16,
    vni: u32,
    protocol: u16,
    oam: bool,
    critical: bool,
    options: Vec<(u16, u8, Vec<u8>)>,
    unknown_critical: bool,
    inner_src_mac: [u8; 6],
    inner_dst_mac: [u8; 6],
    inner_src: Ipv4Addr,
    inner_dst: Ipv4Addr,
    icmp_type: u8,
    icmp_ident: u16,
    icmp_seq: u16,
    icmp_payload: Vec<u8>,
}

/// `None` for anything but IPv4/UDP to port 6081 carrying IPv4/ICMP; panics on a frame that
/// does not check out (bad checksums, malformed Geneve header or options).
fn decode(frame: &[u8]) -> Option<Decoded> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != ipv4::protocol::UDP {
        return None;
    }
    assert!(ip.verify_checksum(), "outer IPv4 checksum");
    let u = udp::Packet::new_checked(ip.payload()).expect("outer UDP");
    if u.dst_port() != geneve::UDP_PORT {
        return None;
    }
    assert!(
        u.verify_checksum(ip.src_addr().octets(), ip.dst_addr().octets()),
        "outer UDP checksum"
    );
    let g = geneve::Packet::new_checked(u.payload()).expect("Geneve header");
    let options = g
        .options_iter()
        .map(|o| o.map(|(c, t, d)| (c, t, d.to_vec())))
        .collect::<Result<Vec<_>, _>>()
        .expect("Geneve options");
    let unknown_critical = g.has_unknown_critical(|_, _| false).expect("options");
    let inner = ethernet::Frame::new_checked(g.payload()).expect("inner Ethernet");
    if inner.ethertype() != ethernet::ethertype::IPV4 {
        return None;
    }
    let iip = ipv4::Packet::new_checked(inner.payload()).expect("inner IPv4");
    assert!(iip.verify_checksum(), "inner IPv4 checksum");
    if iip.protocol() != ipv4::protocol::ICMP {
        return None;
    }
    let ic = icmp::Packet::new_checked(iip.payload()).expect("inner ICMP");
    assert_eq!(checksum::checksum(iip.payload()), 0, "inner ICMP checksum");
    Some(Decoded {
        outer_src_mac: *eth.src_addr().as_bytes(),
        outer_dst_mac: *eth.dst_addr().as_bytes(),
        outer_src: ip.src_addr(),
        outer_dst: ip.dst_addr(),
        sport: u.src_port(),
        dport: u.dst_port(),
        udp_checksum: u.checksum(),
        vni: g.vni(),
        protocol: g.protocol(),
        oam: g.oam(),
        critical: g.critical(),
        options,
        unknown_critical,
        inner_src_mac: *inner.src_addr().as_bytes(),
        inner_dst_mac: *inner.dst_addr().as_bytes(),
        inner_src: iip.src_addr(),
        inner_dst: iip.dst_addr(),
        icmp_type: ic.msg_type(),
        icmp_ident: ic.echo_ident(),
        icmp_seq: ic.echo_seq(),
        icmp_payload: ic.payload().to_vec(),
    })
}

/// tshark's reading of the frames of `pcap` that match `filter`: one map field -> value per
/// frame; repeated fields (outer and inner IP) are joined with ','.
fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<(String, String)>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=/t"])
        .args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run tshark");
    assert!(out.status.success(), "tshark: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            fields
                .iter()
                .zip(l.split('\t'))
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn field<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {row:?}"))
}

/// Sends Geneve-encapsulated pings from the gateway namespace, one per "vni,seq,inner dst
/// MAC" argument, all from 198.51.100.7 to argv[5]; captures UDP 6081 on the underlay (both
/// directions) until an echo reply for every seq in argv[7] is in, plus half a second, and
/// writes the capture to argv[6]. Exit status 1 when a reply is missing.
const PROBE: &str = r#"
import socket, sys, threading, time
from scapy.all import Ether, IP, UDP, ICMP, AsyncSniffer, sendp, wrpcap, conf
from scapy.contrib.geneve import GENEVE
iface, gw_mac, ch_mac, router_mac, dst_ip, out, expect = sys.argv[1:8]
probes = [a.split(",") for a in sys.argv[8:]]
expect = {int(s) for s in expect.split(",")}
conf.verb = 0
# A listener on 6081, so that the kernel does not answer OVS with port unreachable.
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("192.0.2.10", 6081))
started, replied, frames, seen = threading.Event(), threading.Event(), [], set()
def keep(p):
    frames.append(p)
    if ICMP in p and p[ICMP].type == 0:
        seen.add(p[ICMP].seq)
        if expect <= seen:
            replied.set()
sniffer = AsyncSniffer(iface=iface, filter="udp port 6081", prn=keep, store=False,
                       started_callback=started.set)
sniffer.start()
started.wait(5)
for vni, seq, dst in probes:
    sendp(Ether(src=gw_mac, dst=ch_mac) / IP(src="192.0.2.10", dst="192.0.2.21")
          / UDP(sport=50000 + int(seq), dport=6081) / GENEVE(vni=int(vni), proto=0x6558)
          / Ether(src=router_mac, dst=dst) / IP(src="198.51.100.7", dst=dst_ip)
          / ICMP(id=0x77, seq=int(seq)) / b"vgate-geneve", iface=iface)
ok = replied.wait(10)
time.sleep(0.5)
sniffer.stop()
wrpcap(out, frames)
sys.exit(0 if ok else 1)
"#;

/// The system interpreter: python3-scapy is a Debian package, which a python3 earlier in
/// PATH (pyenv) does not see.
const PYTHON: &str = "/usr/bin/python3";

/// Runs [`PROBE`]; returns the capture file and its frames. Panics when an expected reply
/// did not come.
fn probe(
    gw: &Netns,
    chassis: &OvsChassis,
    dst_ip: Ipv4Addr,
    expect: &[u16],
    probes: &[(u32, u16, [u8; 6])],
) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let pcap = chassis.dir().join("probe.pcap");
    let expect: Vec<String> = expect.iter().map(u16::to_string).collect();
    let out = gw
        .command(PYTHON, &["-c", PROBE])
        .args([
            chassis.underlay_iface(),
            &fmt_mac(GW_MAC),
            &fmt_mac(chassis.underlay_mac()),
            &fmt_mac(ROUTER_MAC),
            &dst_ip.to_string(),
        ])
        .arg(&pcap)
        .arg(expect.join(","))
        .args(
            probes
                .iter()
                .map(|(vni, seq, mac)| format!("{vni},{seq},{}", fmt_mac(*mac))),
        )
        .output()
        .expect("run scapy");
    let data = std::fs::read(&pcap).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let frames = parse_pcap(&data).expect("scapy pcap");
    assert!(
        out.status.success(),
        "echo replies {expect:?} did not all come back through the tunnel: {out:?}\n{}",
        chassis.vswitchd_log(20)
    );
    (pcap, frames)
}

/// The Geneve frames the chassis sent, decoded.
fn from_chassis(frames: &[Vec<u8>]) -> Vec<Decoded> {
    frames
        .iter()
        .filter_map(|f| decode(f))
        .filter(|d| d.outer_src == CHASSIS_IP)
        .collect()
}

#[test]
fn ovs_answers_a_geneve_ping_through_the_tunnel() {
    require_root!();
    let (gw, chassis) = setup();
    let vm = chassis.vm(0).spec.clone();
    // seq 1 in VNI 200 (no such port on the chassis), seq 2 in VNI 100 to an unknown inner
    // MAC, seq 3 in VNI 100 to the VM.
    let (pcap, frames) = probe(
        &gw,
        &chassis,
        vm.ip,
        &[3],
        &[
            (200, 1, vm.mac),
            (100, 2, [0xfa, 0x16, 0x3e, 0, 0, 0x99]),
            (100, 3, vm.mac),
        ],
    );

    // vgate's parsers: exactly one frame came back, the reply to seq 3 (not to the wrong
    // VNI, not to the unknown MAC).
    let replies = from_chassis(&frames);
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let r = &replies[0];
    assert_eq!(r.outer_src_mac, chassis.underlay_mac());
    assert_eq!(r.outer_dst_mac, GW_MAC);
    assert_eq!(r.outer_dst, GW_IP.parse::<Ipv4Addr>().unwrap());
    assert_eq!(r.dport, 6081);
    assert_ne!(r.sport, 0);
    assert_eq!(r.udp_checksum, 0, "csum=false: no outer UDP checksum");
    assert_eq!(r.vni, 100);
    assert_eq!(r.protocol, geneve::PROTO_ETHERNET);
    assert!(!r.oam && !r.critical && r.options.is_empty() && !r.unknown_critical);
    assert_eq!(r.inner_src_mac, vm.mac);
    assert_eq!(r.inner_dst_mac, ROUTER_MAC, "the VM's gateway neighbour");
    assert_eq!(r.inner_src, vm.ip);
    assert_eq!(r.inner_dst, Ipv4Addr::new(198, 51, 100, 7));
    assert_eq!(r.icmp_type, icmp::msg::ECHO_REPLY);
    assert_eq!((r.icmp_ident, r.icmp_seq), (0x77, 3));
    assert_eq!(r.icmp_payload, b"vgate-geneve");

    // tshark, independently, on the same capture.
    let rows = tshark(
        &pcap,
        "ip.src == 192.0.2.21",
        &[
            "ip.src",
            "ip.dst",
            "udp.dstport",
            "geneve.vni",
            "geneve.proto_type",
            "icmp.type",
            "icmp.seq",
        ],
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(field(row, "ip.src"), "192.0.2.21,10.0.0.5");
    assert_eq!(field(row, "ip.dst"), "192.0.2.10,198.51.100.7");
    assert_eq!(field(row, "udp.dstport"), "6081");
    assert_eq!(tshark_number(field(row, "geneve.vni")), 100);
    assert_eq!(tshark_number(field(row, "geneve.proto_type")), 0x6558);
    assert_eq!(field(row, "icmp.type"), "0");
    assert_eq!(field(row, "icmp.seq"), "3");

    // OVS learnt the gateway's MAC from the Geneve packets it received: no ARP was needed.
    assert_eq!(
        chassis.tunnel_neighbor(GW_IP.parse().unwrap()),
        Some(fmt_mac(GW_MAC))
    );
    drop(chassis);
    drop(gw);
}

#[test]
fn vm_traffic_leaves_encapsulated_with_a_critical_option() {
    require_root!();
    let (gw, chassis) = setup();
    let vm = chassis.vm(0).spec.clone();
    let (_, gnv) = chassis.geneve_port(100).expect("VNI 100 port");
    let vm_port = chassis.vm(0).ofport;
    // OVN-style metadata: class 0x0102, type 0x80 (critical), 4 bytes.
    chassis.ofctl(&[
        "add-tlv-map",
        "br-int",
        "{class=0x0102,type=0x80,len=4}->tun_metadata0",
    ]);
    chassis.ofctl(&[
        "add-flow",
        "br-int",
        &format!(
            "priority=100,in_port={vm_port},actions=set_field:0x11223344->tun_metadata0,output:{gnv}"
        ),
    ]);
    let cap = Capture::start(&gw.0, chassis.underlay_iface(), "arp or udp port 6081");
    // The VM pings its gateway (a permanent neighbour): three echo requests into the tunnel,
    // no replies.
    let ping = chassis
        .vm_command(
            0,
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "1", &vm.gateway.to_string()],
        )
        .output()
        .expect("run ping");
    assert_eq!(ping.status.code(), Some(1), "no replies expected: {ping:?}");
    let frames = cap.wait_frames(4, Duration::from_secs(5));
    let frames_all = frames.clone();
    drop(cap);

    // OVS had no neighbour entry for the tunnel peer: it asked for it out of br-phy.
    let arp_requests: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| {
            f.len() >= 42
                && f[12..14] == [0x08, 0x06]
                && f[20..22] == [0, 1]
                && f[22..28] == chassis.underlay_mac()
                && f[28..32] == CHASSIS_IP.octets()
                && f[38..42] == [192, 0, 2, 10]
        })
        .collect();
    assert!(!arp_requests.is_empty(), "OVS never ARPed for the peer");

    let packets = from_chassis(&frames);
    let seqs: Vec<u16> = packets.iter().map(|d| d.icmp_seq).collect();
    eprintln!("echo requests through the tunnel: seq {seqs:?} (OVS drops the one that ARPed)");
    assert!(
        seqs.contains(&2) && seqs.contains(&3),
        "seqs {seqs:?}: {packets:#?}"
    );
    for d in &packets {
        assert_eq!(d.outer_dst, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(d.outer_dst_mac, GW_MAC, "the MAC OVS resolved");
        assert_eq!(d.vni, 100);
        assert!(d.critical, "C bit for a critical option");
        assert_eq!(
            d.options,
            vec![(0x0102, 0x80, vec![0x11, 0x22, 0x33, 0x44])]
        );
        assert!(d.unknown_critical);
        assert_eq!(d.inner_src_mac, vm.mac);
        assert_eq!(d.inner_dst_mac, ROUTER_MAC);
        assert_eq!((d.inner_src, d.inner_dst), (vm.ip, vm.gateway));
        assert_eq!(d.icmp_type, icmp::msg::ECHO_REQUEST);
        // RFC 8926 section 3.3: one source port per inner flow.
        assert_eq!(d.sport, packets[0].sport, "outer source port per flow");
    }

    // tshark on the same frames.
    let pcap = chassis.dir().join("vm.pcap");
    write_pcap(&pcap, &frames_all);
    let rows = tshark(
        &pcap,
        "geneve && ip.src == 192.0.2.21",
        &[
            "geneve.vni",
            "geneve.flags.critical",
            "geneve.option.class",
            "geneve.option.type",
            "geneve.option.length",
            "icmp.type",
        ],
    );
    assert_eq!(rows.len(), packets.len(), "{rows:?}");
    for row in &rows {
        assert_eq!(tshark_number(field(row, "geneve.vni")), 100);
        assert!(matches!(
            field(row, "geneve.flags.critical"),
            "1" | "True" | "true"
        ));
        assert_eq!(tshark_number(field(row, "geneve.option.class")), 0x0102);
        assert_eq!(tshark_number(field(row, "geneve.option.type")), 0x80);
        assert_eq!(field(row, "icmp.type"), "8");
    }

    assert_eq!(
        chassis.tunnel_neighbor(Ipv4Addr::new(192, 0, 2, 10)),
        Some(fmt_mac(GW_MAC))
    );
    drop(chassis);
    drop(gw);
}

#[test]
fn vnis_are_separate_networks_and_vms_of_one_vni_share_a_segment() {
    require_root!();
    let prefix = unique_prefix();
    let gw = Netns::new(&format!("{prefix}-gw"));
    let mut spec = ChassisSpec::new(&prefix);
    spec.underlay_ns = Some(gw.0.clone());
    let a = spec.vms[0].clone();
    let mut b = a.clone();
    b.name = "vmb".into();
    b.ip = Ipv4Addr::new(10, 0, 0, 6);
    b.mac = [0xfa, 0x16, 0x3e, 0, 0, 0x06];
    // Another tenant with the same addresses as the first.
    let mut c = a.clone();
    c.name = "vmc".into();
    c.vni = 200;
    c.mac = [0xfa, 0x16, 0x3e, 0, 0x02, 0x05];
    spec.vms.extend([b.clone(), c.clone()]);
    // And outer UDP checksums this time (verified in `decode`).
    spec.udp_checksum = true;
    let chassis = OvsChassis::start(&spec);
    assert_eq!(chassis.geneve_port(100).map(|p| p.1), Some(100));
    assert_eq!(chassis.geneve_port(200).map(|p| p.1), Some(101));
    let iface = chassis.underlay_iface().to_string();
    gw.ip(&["link", "set", &iface, "address", &fmt_mac(GW_MAC)]);
    gw.ip(&["addr", "add", &format!("{GW_IP}/24"), "dev", &iface]);

    // VMs of VNI 100 reach each other on the chassis (ARP flooded, unicast switched).
    let ping = chassis
        .vm_command(0, "ping", &["-c", "1", "-W", "2", &b.ip.to_string()])
        .output()
        .expect("run ping");
    assert!(ping.status.success(), "vm -> vmb: {ping:?}");

    // 10.0.0.5 is a different VM in each VNI; a VNI 100 frame for the VNI 200 VM's MAC
    // (seq 3) is not delivered.
    let (_, frames) = probe(
        &gw,
        &chassis,
        a.ip,
        &[1, 2],
        &[(100, 1, a.mac), (200, 2, c.mac), (100, 3, c.mac)],
    );
    let replies = from_chassis(&frames);
    let got: Vec<(u16, u32, [u8; 6])> = replies
        .iter()
        .filter(|d| d.icmp_type == icmp::msg::ECHO_REPLY)
        .map(|d| (d.icmp_seq, d.vni, d.inner_src_mac))
        .collect();
    assert_eq!(got, vec![(1, 100, a.mac), (2, 200, c.mac)], "{replies:#?}");
    assert!(replies.iter().all(|d| d.udp_checksum != 0), "{replies:#?}");
}

#[test]
fn teardown_leaves_nothing_behind_also_after_a_panic() {
    require_root!();
    for panic_halfway in [false, true] {
        let prefix = unique_prefix();
        let spec = ChassisSpec::new(&prefix);
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let chassis = OvsChassis::start(&spec);
            tx.send((
                chassis.daemon_pids(),
                chassis.namespaces().to_vec(),
                chassis.dir().to_path_buf(),
            ))
            .unwrap();
            // Underlay peer in the root namespace while the chassis lives.
            let shown = Command::new("ip")
                .args(["link", "show", chassis.underlay_iface()])
                .output()
                .unwrap();
            assert!(shown.status.success(), "{shown:?}");
            if panic_halfway {
                panic!("a test failing with the chassis up");
            }
        });
        let joined = worker.join();
        assert_eq!(joined.is_err(), panic_halfway);
        let (pids, namespaces, dir) = rx.recv().expect("chassis started");
        assert_eq!(pids.len(), 2);
        assert_eq!(
            namespaces,
            vec![format!("{prefix}-ch"), format!("{prefix}-vm")]
        );
        for pid in &pids {
            assert!(
                !process_is(*pid, "ovs-vswitchd") && !process_is(*pid, "ovsdb-server"),
                "pid {pid} still runs"
            );
        }
        let left = netns_list();
        for ns in &namespaces {
            assert!(!left.contains(ns), "{ns} left behind");
        }
        assert!(!dir.exists(), "{} left behind", dir.display());
        let shown = Command::new("ip")
            .args(["link", "show", &format!("{prefix}-u")])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(!shown.status.success(), "underlay veth left behind");
    }
}
