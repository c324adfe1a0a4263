//! Geneve tenant networks on the in-memory backend (RFC 8926): decapsulation into NAT,
//! encapsulation toward the endpoint's chassis, ARP through the tunnel, drops, tenant MTU.

mod common_pipeline;
use common_pipeline::*;
use etherparse::{NetSlice, TransportSlice};
use vgate::metrics::{ArpKind, DropReason};
use vgate::wire::geneve;

const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "underlay"
iface = "und0"
mac = "02:00:00:00:00:02"
addresses = ["192.0.2.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[tunnel]
local = "192.0.2.1"

[[chassis]]
name = "compute-1"
address = "192.0.2.11"

[[chassis]]
name = "compute-2"
address = "192.0.2.12"

[[network]]
name = "tenant-g"
vni = 4097
subnet = "10.1.0.0/24"
gateway = "10.1.0.1"
gateway_mac = "fa:16:3e:00:01:01"

[[endpoint]]
network = "tenant-g"
ip = "10.1.0.5"
mac = "fa:16:3e:00:01:05"
chassis = "compute-1"

[[endpoint]]
network = "tenant-g"
ip = "10.1.0.50"
mac = "fa:16:3e:00:01:50"
chassis = "compute-1"
virtual = true

[[floating_ip]]
external = "203.0.113.10"
internal = "10.1.0.5"
network = "tenant-g"
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const UND_MAC: &str = "02:00:00:00:00:02";
const GW_MAC: &str = "fa:16:3e:00:01:01";
const VM_MAC: &str = "fa:16:3e:00:01:05";
const UPSTREAM_MAC: &str = "02:00:00:00:02:01";
const C1_MAC: &str = "02:00:00:00:0c:01";
const C2_MAC: &str = "02:00:00:00:0c:02";
const VNI: u32 = 4097;

fn ready_with(conf: &str) -> Harness {
    let mut h = Harness::new(conf);
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.inject("underlay", &arp_request(C1_MAC, "192.0.2.11", "192.0.2.1"));
    h.inject("underlay", &arp_request(C2_MAC, "192.0.2.12", "192.0.2.1"));
    h.run();
    assert_eq!(h.tx("external").len(), 1);
    assert_eq!(h.tx("underlay").len(), 2);
    h
}

fn ready() -> Harness {
    ready_with(CONF)
}

/// An echo request from the internet to the floating IP with `payload` bytes of ICMP data
/// (the IPv4 datagram is 28 bytes more), Don't Fragment as given.
fn to_fip(seq: u16, payload: usize, df: bool) -> Vec<u8> {
    let mut f = icmp_echo(
        UPSTREAM_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.10",
        60,
        9,
        seq,
        payload,
    );
    set_df(&mut f, df);
    f
}

/// Outer Ethernet + IPv4 + UDP + Geneve around `inner`, from chassis `src`.
fn encap(
    src_mac: &str,
    src: &str,
    vni: u32,
    options: &[u8],
    critical: bool,
    inner: &[u8],
) -> Vec<u8> {
    let mut g = vec![0u8; geneve::HEADER_LEN + options.len()];
    {
        let mut p = geneve::Packet::new_unchecked(&mut g[..]);
        geneve::Repr {
            vni,
            protocol: geneve::PROTO_ETHERNET,
            oam: false,
            critical,
            options_len: options.len(),
        }
        .emit(&mut p);
    }
    g[geneve::HEADER_LEN..].copy_from_slice(options);
    g.extend_from_slice(inner);
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(UND_MAC))
        .ipv4(ip(src), ip("192.0.2.1"), 64)
        .udp(50123, 6081);
    let mut out = Vec::new();
    b.write(&mut out, &g).unwrap();
    out
}

/// A Geneve frame vgate sent, checked: outer headers and checksums by etherparse and
/// wire::geneve. Returns (outer dst IP, UDP source port, VNI, inner frame).
fn decode(f: &[u8], underlay_dst_mac: &str) -> ([u8; 4], u16, u32, Vec<u8>) {
    assert_eq!(&f[..6], &mac(underlay_dst_mac), "outer dst MAC");
    assert_eq!(&f[6..12], &mac(UND_MAC), "outer src MAC");
    let p = parse(f);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!("outer not IPv4")
    };
    let h = v4.header();
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    assert_eq!(h.source(), ip("192.0.2.1"));
    assert_eq!(h.ttl(), 64);
    assert!(h.dont_fragment());
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!("outer not UDP")
    };
    assert_eq!(u.destination_port(), 6081);
    assert!(u.source_port() >= 49152);
    assert_eq!(usize::from(u.length()), f.len() - 14 - 20);
    let g = geneve::Packet::new_checked(u.payload()).expect("Geneve header");
    assert_eq!(g.version(), 0);
    assert_eq!(g.protocol(), geneve::PROTO_ETHERNET);
    assert_eq!(g.opt_len_bytes(), 0);
    let inner = g.payload().to_vec();
    assert_eq!(u.source_port(), geneve::flow_entropy_port(&inner));
    (h.destination(), u.source_port(), g.vni(), inner)
}

fn assert_inner_checksums(f: &[u8]) {
    let p = parse(f);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!("inner not IPv4")
    };
    let h = v4.header();
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    if let Some(TransportSlice::Icmpv4(i)) = &p.transport {
        assert_eq!(i.icmp_type().calc_checksum(i.payload()), i.checksum());
    }
}

#[test]
fn decap_echo_to_fip_vm_leaves_translated() {
    let mut h = ready();
    let inner = icmp_echo(VM_MAC, GW_MAC, "10.1.0.5", "198.51.100.7", 64, 7, 1, 32);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &inner),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[..6], &mac(UPSTREAM_MAC));
    assert_eq!(&f[6..12], &mac(EXT_MAC));
    let p = parse(f);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!()
    };
    assert_eq!(v4.header().source(), ip("203.0.113.10"));
    assert_eq!(v4.header().destination(), ip("198.51.100.7"));
    assert_eq!(v4.header().ttl(), 63);
    assert_eq!(f.len(), inner.len());
    assert_inner_checksums(f);
    assert_eq!(h.stats().geneve_decap.get(), 1);
    assert!(h.tx("underlay").is_empty());
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn inbound_fip_traffic_is_encapsulated_to_the_chassis() {
    let mut h = ready();
    let pkt = icmp_echo(
        UPSTREAM_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.10",
        60,
        9,
        3,
        100,
    );
    h.inject("external", &pkt);
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 1, "one encapsulated packet");
    assert_eq!(out[0].len(), pkt.len() + 50);
    let (dst, _, vni, inner) = decode(&out[0], C1_MAC);
    assert_eq!(dst, ip("192.0.2.11"));
    assert_eq!(vni, VNI);
    assert_eq!(&inner[..6], &mac(VM_MAC));
    assert_eq!(&inner[6..12], &mac(GW_MAC));
    let p = parse(&inner);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!()
    };
    assert_eq!(v4.header().destination(), ip("10.1.0.5"));
    assert_eq!(v4.header().source(), ip("198.51.100.7"));
    assert_eq!(v4.header().ttl(), 59, "inner TTL decremented once");
    assert_inner_checksums(&inner);
    assert_eq!(h.stats().geneve_encap.get(), 1);
    assert!(h.tx("external").is_empty());
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn udp_checksum_when_configured() {
    let conf = CONF.replace(
        "local = \"192.0.2.1\"",
        "local = \"192.0.2.1\"\nudp_checksum = true",
    );
    let mut h = ready_with(&conf);
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            1000,
            53,
            20,
        ),
    );
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let (Some(NetSlice::Ipv4(v4)), Some(TransportSlice::Udp(u))) = (&p.net, &p.transport) else {
        panic!()
    };
    assert_ne!(u.checksum(), 0);
    let want = u
        .to_header()
        .calc_checksum_ipv4(&v4.header().to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want);
    // Without the option the checksum is zero (RFC 8926 section 3.3).
    let mut h = ready();
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            1000,
            53,
            20,
        ),
    );
    h.run();
    let out = h.tx("underlay");
    let p = parse(&out[0]);
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_eq!(u.checksum(), 0);
}

#[test]
fn arp_through_the_tunnel_is_answered_back() {
    let mut h = ready();
    for (target, want_mac, kind) in [
        ("10.1.0.1", GW_MAC, ArpKind::Router),
        ("10.1.0.5", VM_MAC, ArpKind::Endpoint),
    ] {
        let before = h.stats().arp_replies[kind as usize].get();
        let req = arp_request("fa:16:3e:00:01:07", "10.1.0.7", target);
        h.inject(
            "underlay",
            &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &req),
        );
        h.run();
        let out = h.tx("underlay");
        assert_eq!(out.len(), 1, "reply to {target}");
        let (dst, _, vni, inner) = decode(&out[0], C2_MAC);
        assert_eq!(dst, ip("192.0.2.12"), "back to the sending chassis");
        assert_eq!(vni, VNI);
        assert_eq!(inner.len(), 42);
        assert_eq!(&inner[..6], &mac("fa:16:3e:00:01:07"));
        assert_eq!(&inner[6..12], &mac(want_mac));
        assert_eq!(&inner[12..14], &[0x08, 0x06]);
        assert_eq!(&inner[20..22], &[0, 2], "reply");
        assert_eq!(&inner[22..28], &mac(want_mac));
        assert_eq!(&inner[28..32], &ip(target));
        assert_eq!(&inner[38..42], &ip("10.1.0.7"));
        assert_eq!(h.stats().arp_replies[kind as usize].get(), before + 1);
    }
    // Not ours: dropped, nothing sent.
    let req = arp_request("fa:16:3e:00:01:07", "10.1.0.7", "10.1.0.99");
    h.inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &req),
    );
    h.run();
    assert!(h.tx("underlay").is_empty());
    assert_eq!(h.drops(DropReason::ArpNotOurs), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn bad_tunnel_packets_are_dropped_once_each() {
    let mut h = ready();
    let inner = icmp_echo(VM_MAC, GW_MAC, "10.1.0.5", "198.51.100.7", 64, 7, 1, 32);
    // Unknown chassis: the underlay address is on-link but not configured.
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.99", VNI, &[], false, &inner),
    );
    // Unknown VNI.
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", 77, &[], false, &inner),
    );
    // A critical option of a class vgate does not know (class 0x0102, type 0x80, no data).
    h.inject(
        "underlay",
        &encap(
            C1_MAC,
            "192.0.2.11",
            VNI,
            &[0x01, 0x02, 0x80, 0x00],
            true,
            &inner,
        ),
    );
    // A non-critical option is skipped: this one goes through.
    h.inject(
        "underlay",
        &encap(
            C1_MAC,
            "192.0.2.11",
            VNI,
            &[0x01, 0x02, 0x01, 0x00],
            false,
            &inner,
        ),
    );
    // Version 1.
    let mut v1 = encap(C1_MAC, "192.0.2.11", VNI, &[], false, &inner);
    v1[42] |= 0x40;
    v1[40..42].fill(0); // no UDP checksum, so the version is what is wrong
    h.inject("underlay", &v1);
    // A bad UDP checksum.
    let mut bad = encap(C1_MAC, "192.0.2.11", VNI, &[], false, &inner);
    bad[40] ^= 0x55;
    h.inject("underlay", &bad);
    // Inner source outside the network.
    let spoof = icmp_echo(VM_MAC, GW_MAC, "10.9.0.5", "198.51.100.7", 64, 7, 1, 32);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &spoof),
    );
    h.run();
    assert_eq!(h.drops(DropReason::GeneveUnknownChassis), 1);
    assert_eq!(h.drops(DropReason::GeneveUnknownVni), 1);
    assert_eq!(h.drops(DropReason::GeneveCriticalOption), 1);
    assert_eq!(h.drops(DropReason::GeneveBadVersion), 1);
    assert_eq!(h.drops(DropReason::GeneveMalformed), 1);
    assert_eq!(h.drops(DropReason::GeneveSpoofedSource), 1);
    assert_eq!(
        h.tx("external").len(),
        1,
        "only the packet with a non-critical option"
    );
    assert!(h.tx("underlay").is_empty());
    assert_eq!(h.stats().geneve_decap.get(), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn no_endpoint_is_dropped() {
    let conf = CONF.replace("internal = \"10.1.0.5\"", "internal = \"10.1.0.6\"");
    let mut h = ready_with(&conf);
    h.inject(
        "external",
        &icmp_echo(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            9,
            3,
            10,
        ),
    );
    h.run();
    assert_eq!(h.drops(DropReason::GeneveNoEndpoint), 1);
    assert!(h.tx("underlay").is_empty());
    assert!(h.tx("external").is_empty());
    assert_eq!(h.frames_in_use(), 0);
}

/// With 2 KiB frames (`dataplane.frame_size = 2048`), every second frame starts in the
/// middle of a 4 KiB page: encapsulation still prepends into its own frame's headroom, the
/// ICMP error for a datagram too big for the tunnel is built in place in front of it, and
/// every frame comes back.
#[test]
fn two_kib_frames_encapsulate_and_build_errors_in_their_own_headroom() {
    let mut h = ready_with(&format!("[dataplane]\nframe_size = 2048\n{CONF}"));
    assert_eq!(h.w.pool.frame_size(), 2048);
    for seq in 0..4u16 {
        let fit = to_fip(seq, 1450 - 28, true);
        h.inject("external", &fit);
    }
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 4, "four encapsulated packets");
    for (seq, f) in out.iter().enumerate() {
        assert_eq!(f.len(), 1500 + 14);
        let (dst, _, vni, inner) = decode(f, C1_MAC);
        assert_eq!((dst, vni), (ip("192.0.2.11"), VNI));
        assert_eq!(&inner[..6], &mac(VM_MAC));
        assert_eq!(
            u16::from_be_bytes([inner[14 + 20 + 6], inner[14 + 20 + 7]]),
            seq as u16,
            "ICMP sequence: each packet its own bytes"
        );
        assert_inner_checksums(&inner);
    }
    for seq in 0..2u16 {
        let big = to_fip(10 + seq, 1451 - 28, true);
        h.inject("external", &big);
    }
    h.run();
    assert!(h.tx("underlay").is_empty());
    let out = h.tx("external");
    assert_eq!(out.len(), 2, "two ICMP fragmentation needed");
    for f in &out {
        assert_eq!((f[14 + 20], f[14 + 21]), (3, 4));
        assert_eq!(u16::from_be_bytes([f[14 + 20 + 6], f[14 + 20 + 7]]), 1450);
    }
    assert_eq!(h.drops(DropReason::MtuFragNeeded), 2);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn tenant_mtu_is_underlay_mtu_minus_50() {
    let mut h = ready();
    // 1451-byte inner datagram with DF: too big for 1500 - 50.
    let big = to_fip(3, 1451 - 28, true);
    h.inject("external", &big);
    h.run();
    assert!(h.tx("underlay").is_empty());
    let out = h.tx("external");
    assert_eq!(out.len(), 1, "ICMP fragmentation needed");
    let f = &out[0];
    let p = parse(f);
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.type_u8(), 3);
    assert_eq!(i.code_u8(), 4);
    assert_eq!(u16::from_be_bytes([f[14 + 20 + 6], f[14 + 20 + 7]]), 1450);
    // The quote names the floating IP the sender used.
    assert_eq!(&f[14 + 28 + 16..14 + 28 + 20], &ip("203.0.113.10"));
    assert_eq!(h.drops(DropReason::MtuFragNeeded), 1);

    // 1450 fits exactly.
    let fit = to_fip(4, 1450 - 28, true);
    h.inject("external", &fit);
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 1500 + 14);

    // Without DF: fragmented before encapsulation, each fragment its own Geneve packet.
    let nodf = to_fip(5, 2000, false);
    h.inject("external", &nodf);
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 2);
    let mut data = 0;
    for (k, f) in out.iter().enumerate() {
        assert!(f.len() <= 1514);
        let (_, _, vni, inner) = decode(f, C1_MAC);
        assert_eq!(vni, VNI);
        let ih = etherparse::Ipv4HeaderSlice::from_slice(&inner[14..]).unwrap();
        assert_eq!(ih.to_header().calc_header_checksum(), ih.header_checksum());
        assert_eq!(ih.more_fragments(), k == 0);
        assert_eq!(ih.ttl(), 59);
        data += usize::from(ih.total_len()) - 20;
        assert!(usize::from(ih.total_len()) <= 1450);
    }
    assert_eq!(data, 2008);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn garp_moves_a_virtual_endpoint() {
    let mut h = ready();
    let garp = arp_request("fa:16:3e:00:01:50", "10.1.0.50", "10.1.0.50");
    h.inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &garp),
    );
    h.run();
    assert!(h.tx("underlay").is_empty());
    assert_eq!(h.drops(DropReason::ArpLearned), 1);
    // Traffic to the VIP now goes to compute-2 (it comes from the VM, routed via the gateway).
    let pkt = icmp_echo(VM_MAC, GW_MAC, "10.1.0.5", "10.1.0.50", 64, 1, 1, 8);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &pkt),
    );
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 1);
    let (dst, _, _, inner) = decode(&out[0], C2_MAC);
    assert_eq!(dst, ip("192.0.2.12"));
    assert_eq!(&inner[..6], &mac("fa:16:3e:00:01:50"));
}

/// Only a GARP from another chassis moves a VIP: an announcement from where it already is
/// (its configured chassis here, as keepalived sends at start-up) is no move. A reload that
/// makes the endpoint no VIP forgets where it was learned.
#[test]
fn a_garp_from_where_the_vip_is_moves_nothing() {
    let mut h = ready();
    let garp = arp_request("fa:16:3e:00:01:50", "10.1.0.50", "10.1.0.50");
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &garp),
    );
    h.run();
    assert_eq!(h.drops(DropReason::ArpLearned), 1);
    assert_eq!(
        h.stats().virtual_moves.get(),
        0,
        "from its configured chassis"
    );
    assert!(h.w.state.virtual_chassis.is_empty());
    h.inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &garp),
    );
    h.inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &garp),
    );
    h.run();
    assert_eq!(
        h.stats().virtual_moves.get(),
        1,
        "one move, announced twice"
    );
    // Back to compute-1 is a move again.
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &garp),
    );
    h.run();
    assert_eq!(h.stats().virtual_moves.get(), 2);
    assert_eq!(h.w.state.virtual_chassis.len(), 1);

    // A reload that keeps the VIP keeps where it was learned; one that makes it an
    // ordinary endpoint forgets it.
    h.w.tables.store(std::sync::Arc::new(snapshot(CONF, 2)));
    h.advance(1_000);
    assert_eq!(h.w.state.virtual_chassis.len(), 1);
    let plain = CONF.replace("virtual = true\n", "");
    h.w.tables.store(std::sync::Arc::new(snapshot(&plain, 3)));
    h.advance(1_000);
    assert!(h.w.state.virtual_chassis.is_empty());
}

#[test]
fn gateway_answers_echo_through_the_tunnel() {
    let mut h = ready();
    let ping = icmp_echo(VM_MAC, GW_MAC, "10.1.0.5", "10.1.0.1", 64, 3, 9, 16);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &ping),
    );
    h.run();
    let out = h.tx("underlay");
    assert_eq!(out.len(), 1);
    let (dst, _, vni, inner) = decode(&out[0], C1_MAC);
    assert_eq!((dst, vni), (ip("192.0.2.11"), VNI));
    assert_eq!(&inner[..6], &mac(VM_MAC));
    assert_eq!(&inner[6..12], &mac(GW_MAC));
    let p = parse(&inner);
    let (Some(NetSlice::Ipv4(v4)), Some(TransportSlice::Icmpv4(i))) = (&p.net, &p.transport) else {
        panic!()
    };
    assert_eq!(v4.header().source(), ip("10.1.0.1"));
    assert_eq!(v4.header().destination(), ip("10.1.0.5"));
    assert_eq!(v4.header().ttl(), 64, "vgate's own reply: not decremented");
    assert_eq!(i.type_u8(), 0, "echo reply");
    assert_inner_checksums(&inner);
    assert_eq!(h.stats().geneve_decap.get(), 1);
    assert_eq!(h.stats().geneve_encap.get(), 1);
    assert_eq!(h.frames_in_use(), 0);
}

/// The tunnel address stays an ordinary address of vgate's: echo is answered and other UDP
/// ports get port unreachable; Geneve in a datagram with IP options (not the fast path that
/// sends tunnel packets straight to decap) is decapsulated all the same.
#[test]
fn the_tunnel_address_is_still_an_address_of_vgate() {
    let mut h = ready();
    h.inject(
        "underlay",
        &icmp_echo(C1_MAC, UND_MAC, "192.0.2.11", "192.0.2.1", 64, 5, 1, 8),
    );
    h.inject(
        "underlay",
        &udp(C1_MAC, UND_MAC, "192.0.2.11", "192.0.2.1", 64, 4000, 53, 8),
    );
    let inner = icmp_echo(VM_MAC, GW_MAC, "10.1.0.5", "198.51.100.7", 64, 7, 1, 32);
    let plain = encap(C1_MAC, "192.0.2.11", VNI, &[], false, &inner);
    // Four option bytes (no-operation x3, end of list) after the fixed header.
    let mut with_options = plain[..34].to_vec();
    with_options.extend_from_slice(&[1, 1, 1, 0]);
    with_options.extend_from_slice(&plain[34..]);
    with_options[14] = 0x46;
    let total = u16::from_be_bytes([with_options[16], with_options[17]]) + 4;
    with_options[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut with_options);
    h.inject("underlay", &with_options);
    h.run();

    let under = h.tx("underlay");
    assert_eq!(under.len(), 2, "echo reply and port unreachable");
    let types: Vec<(u8, u8)> = under
        .iter()
        .map(|f| {
            let p = parse(f);
            let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
                panic!("ICMP expected")
            };
            (i.type_u8(), i.code_u8())
        })
        .collect();
    assert_eq!(types, vec![(0, 0), (3, 3)]);
    let ext = h.tx("external");
    assert_eq!(ext.len(), 1, "the decapsulated echo, translated");
    let p = parse(&ext[0]);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!()
    };
    assert_eq!(v4.header().source(), ip("203.0.113.10"));
    assert_eq!(h.stats().geneve_decap.get(), 1);
    assert_eq!(h.drops(DropReason::Ip4LocalUnsupported), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn geneve_config_errors_are_clear() {
    use vgate::control::apply::build_snapshot;
    use vgate::control::config::Config;
    // Whichever refuses it first: config validation or the snapshot build.
    let build = |toml: &str| match Config::from_toml_str(toml) {
        Ok(cfg) => build_snapshot(&cfg, 1, &|_| None, None).err(),
        Err(e) => Some(format!("{e:?}")),
    };
    let no_tunnel = CONF.replace("[tunnel]\nlocal = \"192.0.2.1\"\n", "");
    assert!(
        build(&no_tunnel).is_some_and(|e| e.contains("needs a [tunnel] section")),
        "{:?}",
        build(&no_tunnel)
    );
    let bad_local = CONF.replace("local = \"192.0.2.1\"", "local = \"192.0.2.77\"");
    assert!(
        build(&bad_local).is_some_and(|e| e.contains("tunnel") && e.contains("192.0.2.77")),
        "{:?}",
        build(&bad_local)
    );
    let bad_chassis = CONF.replacen("chassis = \"compute-1\"", "chassis = \"nowhere\"", 1);
    assert!(
        build(&bad_chassis).is_some_and(|e| e.contains("nowhere")),
        "{:?}",
        build(&bad_chassis)
    );
    assert_eq!(build(CONF), None);
}

/// A TCP SYN (or SYN-ACK) from `src` to `dst` announcing `mss`.
fn tcp_syn(src_mac: &str, dst_mac: &str, src: &str, dst: &str, mss: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .tcp(40000, 80, 1000, 64240)
        .syn()
        .options(&[
            etherparse::TcpOptionElement::MaximumSegmentSize(mss),
            etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
        ])
        .unwrap();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// The MSS option of the TCP segment in `f`, with its checksums verified.
fn syn_mss(f: &[u8]) -> u16 {
    let p = parse(f);
    let (Some(NetSlice::Ipv4(v4)), Some(TransportSlice::Tcp(t))) = (&p.net, &p.transport) else {
        panic!("not IPv4/TCP")
    };
    let h = v4.header();
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    let want = t
        .to_header()
        .calc_checksum_ipv4_raw(h.source(), h.destination(), t.payload())
        .unwrap();
    assert_eq!(t.checksum(), want, "TCP checksum");
    t.options_iterator()
        .find_map(|o| match o {
            Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
        .expect("MSS option")
}

#[test]
fn tcp_mss_is_clamped_to_the_tenant_mtu_both_ways() {
    // Underlay MTU 1500 -> tenant MTU 1450 -> MSS 1410.
    let mut h = ready();
    h.inject(
        "external",
        &tcp_syn(UPSTREAM_MAC, EXT_MAC, "198.51.100.7", "203.0.113.10", 1460),
    );
    let from_vm = tcp_syn(VM_MAC, GW_MAC, "10.1.0.5", "198.51.100.7", 1460);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &from_vm),
    );
    // Already small enough: untouched.
    let small = tcp_syn(VM_MAC, GW_MAC, "10.1.0.5", "198.51.100.8", 1300);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &small),
    );
    h.run();
    let into_tunnel = h.tx("underlay");
    assert_eq!(into_tunnel.len(), 1);
    let (_, _, _, inner) = decode(&into_tunnel[0], C1_MAC);
    assert_eq!(syn_mss(&inner), 1410);
    let out = h.tx("external");
    assert_eq!(out.len(), 2);
    assert_eq!(syn_mss(&out[0]), 1410);
    assert_eq!(syn_mss(&out[1]), 1300);
    assert_eq!(h.stats().tcp_mss_clamped.get(), 2);

    // Switched off: the SYN keeps its MSS.
    let conf = CONF.replace(
        "local = \"192.0.2.1\"",
        "local = \"192.0.2.1\"\ntcp_mss_clamp = false",
    );
    let mut h = ready_with(&conf);
    h.inject(
        "underlay",
        &encap(C1_MAC, "192.0.2.11", VNI, &[], false, &from_vm),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(syn_mss(&out[0]), 1460);
    assert_eq!(h.stats().tcp_mss_clamped.get(), 0);
}

#[test]
fn a_virtual_endpoint_move_reaches_every_worker_and_the_control_thread() {
    let conf = format!(
        "{CONF}\n[[floating_ip]]\nexternal = \"203.0.113.11\"\ninternal = \"10.1.0.50\"\nnetwork = \"tenant-g\"\n"
    );
    let mut w = Harness::workers(&conf, 2);
    for h in w.iter_mut() {
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
        );
        h.inject("underlay", &arp_request(C2_MAC, "192.0.2.12", "192.0.2.1"));
        h.run();
        h.tx("external");
        h.tx("underlay");
    }
    // Worker 0 sees the VIP announce itself from compute-2 (it was configured on compute-1).
    let garp = arp_request("fa:16:3e:00:01:50", "10.1.0.50", "10.1.0.50");
    w[0].inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &garp),
    );
    w[0].run();
    assert_eq!(w[0].stats().virtual_moves.get(), 1);
    // The same announcement again (RFC 5227 sends several) is no new move.
    w[0].inject(
        "underlay",
        &encap(C2_MAC, "192.0.2.12", VNI, &[], false, &garp),
    );
    w[0].run();
    assert_eq!(w[0].stats().virtual_moves.get(), 1);
    let bus = w[0].w.bus.clone();
    assert_eq!(
        bus.virtual_to_control.pop(),
        Some((
            u32::from_be_bytes(ip("10.1.0.50")),
            u32::from_be_bytes(ip("192.0.2.12"))
        ))
    );
    assert_eq!(bus.virtual_to_control.pop(), None);

    // Worker 1 never saw the GARP; inbound traffic to the VIP's floating IP that lands
    // there is encapsulated to compute-2 all the same.
    let pkt = icmp_echo(
        UPSTREAM_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.11",
        60,
        9,
        3,
        16,
    );
    w[1].inject("external", &pkt);
    w[1].run();
    let out = w[1].tx("underlay");
    assert_eq!(out.len(), 1);
    let (dst, _, _, inner) = decode(&out[0], C2_MAC);
    assert_eq!(dst, ip("192.0.2.12"));
    assert_eq!(&inner[..6], &mac("fa:16:3e:00:01:50"));
    assert_eq!(
        w[1].stats().virtual_moves.get(),
        0,
        "counted once, where seen"
    );
}
