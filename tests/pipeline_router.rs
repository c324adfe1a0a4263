//! Router scenarios on the in-memory backend: ARP, forwarding, ICMP, drops with reasons.

mod common_pipeline;
use common_pipeline::*;
use etherparse::{LinkSlice, TransportSlice};
use vgate::metrics::{ArpKind, DropReason, IcmpKind};

const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "int0"
mac = "02:00:00:00:00:02"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "198.51.100.0/24"
via = "203.0.113.1"

[[proxy_arp]]
port = "external"
prefix = "203.0.113.128/25"
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const INT_MAC: &str = "02:00:00:00:00:02";
const CLIENT_MAC: &str = "02:00:00:00:01:02";
const UPSTREAM_MAC: &str = "02:00:00:00:02:01";

fn ipv4_of(f: &[u8]) -> etherparse::Ipv4HeaderSlice<'_> {
    etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).expect("IPv4 header")
}

fn arp_fields(f: &[u8]) -> (u16, [u8; 6], [u8; 4], [u8; 6], [u8; 4]) {
    let a = etherparse::ArpPacketSlice::from_slice(&f[14..]).expect("ARP");
    let m = |s: &[u8]| -> [u8; 6] { s.try_into().unwrap() };
    let i = |s: &[u8]| -> [u8; 4] { s.try_into().unwrap() };
    (
        a.operation().0,
        m(a.sender_hw_addr()),
        i(a.sender_protocol_addr()),
        m(a.target_hw_addr()),
        i(a.target_protocol_addr()),
    )
}

/// Teach vgate the client and the upstream router, as their own ARP requests would.
fn with_neighbors() -> Harness {
    let mut h = Harness::new(CONF);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    assert_eq!(h.tx("internal").len(), 1);
    assert_eq!(h.tx("external").len(), 1);
    h
}

#[test]
fn arp_reply_for_router_address() {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.len(), 42);
    assert_eq!(&f[0..6], &mac(UPSTREAM_MAC));
    assert_eq!(&f[6..12], &mac(EXT_MAC));
    let (op, sha, spa, tha, tpa) = arp_fields(f);
    assert_eq!(op, 2);
    assert_eq!((sha, spa), (mac(EXT_MAC), ip("203.0.113.2")));
    assert_eq!((tha, tpa), (mac(UPSTREAM_MAC), ip("203.0.113.1")));
    assert_eq!(h.stats().arp_count(ArpKind::Router), 1);
    assert!(h.tx("internal").is_empty());
}

#[test]
fn proxy_arp_answered_with_port_mac() {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.200"),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let (op, sha, spa, _, _) = arp_fields(&out[0]);
    assert_eq!((op, sha, spa), (2, mac(EXT_MAC), ip("203.0.113.200")));
    assert_eq!(h.stats().arp_count(ArpKind::Proxy), 1);
}

#[test]
fn arp_for_addresses_we_do_not_own_is_never_answered() {
    let mut h = Harness::new(CONF);
    // Not owned, not proxied.
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.77"),
    );
    // Owned, but on the other port: no ARP flux.
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "203.0.113.2"),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::ArpNotOurs), 2);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn arp_spoof_of_our_address_not_learned_or_answered() {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &arp_reply("02:66:66:66:66:66", "203.0.113.2", EXT_MAC, "203.0.113.1"),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    assert_eq!(h.drops(DropReason::ArpSpoofed), 1);
    assert!(
        !h.w.state
            .neighbors
            .contains(0, u32::from_be_bytes(ip("203.0.113.2")))
    );
}

#[test]
fn ping_router_answered() {
    let mut h = with_neighbors();
    h.inject(
        "internal",
        &icmp_echo(CLIENT_MAC, INT_MAC, "10.10.1.2", "10.10.1.1", 64, 7, 1, 56),
    );
    h.run();
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!()
    };
    assert_eq!(eth.destination(), mac(CLIENT_MAC));
    assert_eq!(eth.source(), mac(INT_MAC));
    let ip4 = ipv4_of(&out[0]);
    assert_eq!(ip4.source(), ip("10.10.1.1"));
    assert_eq!(ip4.destination(), ip("10.10.1.2"));
    assert_eq!(
        ip4.header_checksum(),
        ip4.to_header().calc_header_checksum()
    );
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    match icmp.icmp_type() {
        etherparse::Icmpv4Type::EchoReply(e) => assert_eq!((e.id, e.seq), (7, 1)),
        t => panic!("{t:?}"),
    }
    assert_eq!(
        icmp.icmp_type().calc_checksum(icmp.payload()),
        icmp.checksum()
    );
    assert_eq!(h.stats().icmp_echo_replies.get(), 1);
}

#[test]
fn forward_resolves_next_hop_then_sends_with_ttl_decremented() {
    let mut h = Harness::new(CONF);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.run();
    h.tx("internal");
    h.inject(
        "internal",
        &udp(
            CLIENT_MAC,
            INT_MAC,
            "10.10.1.2",
            "198.51.100.7",
            64,
            4000,
            53,
            20,
        ),
    );
    h.run();
    // The packet waits; an ARP request for the next hop goes out of the external port.
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let (op, sha, spa, _, tpa) = arp_fields(&out[0]);
    assert_eq!(
        (op, sha, spa, tpa),
        (1, mac(EXT_MAC), ip("203.0.113.2"), ip("203.0.113.1"))
    );
    assert_eq!(&out[0][0..6], &[0xff; 6]);
    assert_eq!(h.stats().held.get(), 1);
    // The answer releases it.
    h.inject(
        "external",
        &arp_reply(UPSTREAM_MAC, "203.0.113.1", EXT_MAC, "203.0.113.2"),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &mac(UPSTREAM_MAC));
    assert_eq!(&f[6..12], &mac(EXT_MAC));
    let ip4 = ipv4_of(f);
    assert_eq!(ip4.ttl(), 63);
    assert_eq!(
        ip4.header_checksum(),
        ip4.to_header().calc_header_checksum()
    );
    assert_eq!(ip4.destination(), ip("198.51.100.7"));
    assert_eq!(h.stats().held.get(), 0);
    assert_eq!(h.drops(DropReason::ArpLearned), 1);
    // A second packet goes straight through.
    h.inject(
        "internal",
        &udp(
            CLIENT_MAC,
            INT_MAC,
            "10.10.1.2",
            "198.51.100.7",
            64,
            4000,
            53,
            20,
        ),
    );
    h.run();
    assert_eq!(h.tx("external").len(), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn ttl_one_gets_time_exceeded_quoting_the_packet() {
    let mut h = with_neighbors();
    let orig = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        1,
        4000,
        33434,
        32,
    );
    h.inject("internal", &orig);
    h.run();
    assert!(h.tx("external").is_empty(), "nothing forwarded");
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let ip4 = ipv4_of(&out[0]);
    assert_eq!(ip4.source(), ip("10.10.1.1"));
    assert_eq!(ip4.destination(), ip("10.10.1.2"));
    let p = parse(&out[0]);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit
        )
    ));
    assert_eq!(
        icmp.icmp_type().calc_checksum(icmp.payload()),
        icmp.checksum()
    );
    // The whole original datagram is quoted (it is under 576 bytes).
    assert_eq!(icmp.payload(), &orig[14..]);
    assert_eq!(h.drops(DropReason::RouteTtlExpired), 1);
    assert_eq!(h.stats().icmp_count(IcmpKind::TimeExceeded), 1);
}

#[test]
fn no_route_gets_net_unreachable() {
    let mut h = with_neighbors();
    h.inject(
        "internal",
        &udp(
            CLIENT_MAC,
            INT_MAC,
            "10.10.1.2",
            "192.0.2.99",
            64,
            4000,
            53,
            8,
        ),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Network
        )
    ));
    assert_eq!(h.drops(DropReason::RouteNoRoute), 1);
    assert_eq!(h.stats().icmp_count(IcmpKind::NetUnreachable), 1);
}

#[test]
fn bad_ipv4_headers_dropped_with_reasons() {
    let mut h = with_neighbors();
    let good = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    let mut bad_csum = good.clone();
    bad_csum[24] ^= 0xff;
    let mut bad_ver = good.clone();
    bad_ver[14] = 0x65;
    fix_ip_checksum(&mut bad_ver);
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    let truncated = good[..14 + 19].to_vec();
    let mut long = good.clone();
    long[17] = 200; // total length beyond the frame
    fix_ip_checksum(&mut long);
    let mut martian = udp(
        CLIENT_MAC,
        INT_MAC,
        "127.0.0.1",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    fix_ip_checksum(&mut martian);
    let mcast = udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "224.0.0.5", 64, 1, 2, 8);
    for f in [
        &bad_csum, &bad_ver, &bad_ihl, &truncated, &long, &martian, &mcast,
    ] {
        h.inject("internal", f);
    }
    h.run();
    assert!(h.tx("external").is_empty());
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::Ip4BadChecksum), 1);
    assert_eq!(h.drops(DropReason::Ip4BadVersion), 1);
    assert_eq!(h.drops(DropReason::Ip4BadHeaderLength), 1);
    assert_eq!(h.drops(DropReason::Ip4TooShort), 2);
    assert_eq!(h.drops(DropReason::Ip4MartianSource), 1);
    assert_eq!(h.drops(DropReason::Ip4MartianDestination), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn our_own_addresses_as_source_are_dropped() {
    let mut h = Harness::new(CONF);
    // Each of vgate's addresses, claimed from the other side; and one that only shares the
    // last octet with ours must still be forwarded.
    h.inject(
        "external",
        &arp_reply(UPSTREAM_MAC, "203.0.113.1", EXT_MAC, "203.0.113.2"),
    );
    h.run();
    for (port, src_mac, dst_mac, src) in [
        ("external", UPSTREAM_MAC, EXT_MAC, "203.0.113.2"),
        ("external", UPSTREAM_MAC, EXT_MAC, "10.10.1.1"),
        ("internal", CLIENT_MAC, INT_MAC, "10.10.1.1"),
        ("internal", CLIENT_MAC, INT_MAC, "203.0.113.2"),
    ] {
        let f = udp(src_mac, dst_mac, src, "198.51.100.7", 64, 1, 2, 8);
        h.inject(port, &f);
    }
    h.run();
    assert!(h.tx("external").is_empty());
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::Ip4OwnSource), 4);
    let lookalike = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    let mut same_octet = lookalike.clone();
    same_octet[29] = 1; // 10.10.1.2 -> 10.10.1.1's last octet on another address
    same_octet[28] = 7; // 10.10.7.1: not ours
    fix_ip_checksum(&mut same_octet);
    h.inject("internal", &same_octet);
    h.run();
    assert_eq!(h.tx("external").len(), 1, "10.10.7.1 is not ours");
    assert_eq!(h.drops(DropReason::Ip4OwnSource), 4);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn l2_filtering() {
    let mut h = Harness::new(CONF);
    let other = udp(
        CLIENT_MAC,
        "02:99:99:99:99:99",
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    let mcast = udp(
        CLIENT_MAC,
        "01:00:5e:00:00:05",
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    let mut v6 = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        8,
    );
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut vlan = v6.clone();
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    for f in [&other[..], &mcast[..], &v6[..], &vlan[..], &other[..10]] {
        h.inject("internal", f);
    }
    h.run();
    assert!(h.tx("internal").is_empty() && h.tx("external").is_empty());
    assert_eq!(h.drops(DropReason::L2NotForUs), 1);
    assert_eq!(h.drops(DropReason::L2Multicast), 1);
    assert_eq!(h.drops(DropReason::L2Ipv6), 1);
    assert_eq!(h.drops(DropReason::L2UnknownEthertype), 1);
    assert_eq!(h.drops(DropReason::L2Runt), 1);
    assert_eq!(h.stats().port_rx_packets[1].get(), 5);
}

#[test]
fn unresolved_next_hop_gives_host_unreachable_after_retries() {
    let mut h = Harness::new(CONF);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.run();
    h.tx("internal");
    h.inject(
        "internal",
        &udp(
            CLIENT_MAC,
            INT_MAC,
            "10.10.1.2",
            "198.51.100.7",
            64,
            4000,
            53,
            20,
        ),
    );
    h.run();
    assert_eq!(h.tx("external").len(), 1, "first ARP request");
    for _ in 0..3 {
        h.advance(SEC + 1);
    }
    let reqs = h.tx("external");
    assert_eq!(reqs.len(), 2, "two retries");
    assert!(reqs.iter().all(|f| f[12..14] == [0x08, 0x06]));
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host
        )
    ));
    assert_eq!(h.drops(DropReason::RewriteNeighborUnresolved), 1);
    assert_eq!(h.stats().arp_requests_sent.get(), 3);
    assert_eq!(h.stats().held.get(), 0);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn icmp_errors_are_rate_limited_and_counted() {
    let mut h = with_neighbors();
    for i in 0..100u16 {
        h.inject(
            "internal",
            &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "192.0.2.99", 64, i, 53, 8),
        );
    }
    h.run();
    let sent = h.tx("internal").len() as u64;
    assert_eq!(sent, vgate::pipeline::ICMP_BURST);
    assert_eq!(h.drops(DropReason::RouteNoRoute), 100);
    assert_eq!(h.stats().icmp_rate_limited.get(), 100 - sent);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 100 - sent);
}

#[test]
fn no_error_about_an_icmp_error() {
    let mut h = with_neighbors();
    // A time-exceeded message from the client to an unroutable address.
    let inner = udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "198.51.100.7", 1, 1, 2, 8);
    let b = etherparse::PacketBuilder::ethernet2(mac(CLIENT_MAC), mac(INT_MAC))
        .ipv4(ip("10.10.1.2"), ip("192.0.2.99"), 64)
        .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        ));
    let mut f = Vec::new();
    b.write(&mut f, &inner[14..]).unwrap();
    h.inject("internal", &f);
    h.run();
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::RouteNoRoute), 1);
    assert_eq!(h.drops(DropReason::IcmpNotAllowed), 1);
}

#[test]
fn books_balance() {
    // rx + generated = tx + drops + held, whatever the traffic.
    let mut h = with_neighbors();
    for ttl in [1u8, 64] {
        h.inject(
            "internal",
            &udp(
                CLIENT_MAC,
                INT_MAC,
                "10.10.1.2",
                "198.51.100.7",
                ttl,
                1,
                2,
                8,
            ),
        );
        h.inject(
            "internal",
            &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "192.0.2.1", ttl, 1, 2, 8),
        );
        h.inject(
            "internal",
            &icmp_echo(CLIENT_MAC, INT_MAC, "10.10.1.2", "10.10.1.1", ttl, 1, 2, 8),
        );
        h.inject(
            "internal",
            &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "10.10.1.1", ttl, 1, 2, 8),
        );
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.99"),
        );
    }
    h.run();
    let s = h.stats();
    let rx: u64 = s.port_rx_packets.iter().map(|c| c.get()).sum();
    let tx: u64 = s.port_tx_packets.iter().map(|c| c.get()).sum();
    assert_eq!(rx + s.generated.get(), tx + s.total_drops() + s.held.get());
    assert_eq!(h.frames_in_use() as u64, s.held.get());
}

const POLICY: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "backup"
iface = "ext1"
mac = "02:00:00:00:00:03"
addresses = ["198.18.0.2/24"]

[[port]]
name = "internal"
iface = "int0"
mac = "02:00:00:00:00:02"
addresses = ["10.10.1.1/24"]
route_table = "tenant"
mtu = 1500

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[route]]
table = "tenant"
prefix = "0.0.0.0/0"
via = "198.18.0.1"
"#;

#[test]
fn policy_routing_by_input_port() {
    let mut h = Harness::new(POLICY);
    for (port, m, src, dst) in [
        ("internal", CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
        ("external", UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
        ("backup", "02:00:00:00:03:01", "198.18.0.1", "198.18.0.2"),
    ] {
        h.inject(port, &arp_request(m, src, dst));
    }
    h.run();
    for p in ["internal", "external", "backup"] {
        h.tx(p);
    }
    // From the internal port: table "tenant" -> default via 198.18.0.1 on "backup".
    h.inject(
        "internal",
        &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "192.0.2.50", 64, 1, 2, 8),
    );
    // From the external port: table "main" -> default via 203.0.113.1.
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "203.0.113.1",
            "192.0.2.50",
            64,
            1,
            2,
            8,
        ),
    );
    h.run();
    let b = h.tx("backup");
    assert_eq!(b.len(), 1);
    assert_eq!(&b[0][0..6], &mac("02:00:00:00:03:01"));
    let e = h.tx("external");
    assert_eq!(e.len(), 1);
    assert_eq!(&e[0][0..6], &mac(UPSTREAM_MAC));
    // Connected routes live in "main": the tenant table falls back to it.
    h.inject(
        "internal",
        &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "203.0.113.1", 64, 1, 2, 8),
    );
    h.run();
    let e = h.tx("external");
    assert_eq!(
        e.len(),
        0,
        "tenant's default route wins over main's connected route"
    );
    assert_eq!(h.tx("backup").len(), 1);
}

const SMALL_MTU: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]
mtu = 1000

[[port]]
name = "internal"
iface = "int0"
mac = "02:00:00:00:00:02"
addresses = ["10.10.1.1/24"]

[[route]]
prefix = "198.51.100.0/24"
via = "203.0.113.1"
"#;

fn small_mtu() -> Harness {
    let mut h = Harness::new(SMALL_MTU);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    h.tx("internal");
    h.tx("external");
    h
}

#[test]
fn df_packet_over_mtu_gets_frag_needed_with_the_mtu() {
    let mut h = small_mtu();
    let mut f = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        1400,
    );
    set_df(&mut f, true);
    h.inject("internal", &f);
    h.run();
    assert!(h.tx("external").is_empty(), "nothing too big leaves");
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    match icmp.icmp_type() {
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
        ) => assert_eq!(next_hop_mtu, 1000),
        t => panic!("{t:?}"),
    }
    assert_eq!(
        icmp.icmp_type().calc_checksum(icmp.payload()),
        icmp.checksum()
    );
    // RFC 1812 4.3.2.3: the error datagram is at most 576 bytes.
    assert_eq!(out[0].len(), 14 + 576);
    assert_eq!(h.drops(DropReason::MtuFragNeeded), 1);
    assert_eq!(h.stats().icmp_count(IcmpKind::FragNeeded), 1);
}

#[test]
fn packet_without_df_is_fragmented_and_reassembles() {
    let mut h = small_mtu();
    let mut f = udp(
        CLIENT_MAC,
        INT_MAC,
        "10.10.1.2",
        "198.51.100.7",
        64,
        1,
        2,
        2400,
    );
    set_df(&mut f, false);
    h.inject("internal", &f);
    h.run();
    let out = h.tx("external");
    assert_eq!(
        out.len(),
        3,
        "2428-byte datagram over MTU 1000: 3 fragments"
    );
    let mut data = vec![0u8; 2408];
    let mut seen = 0;
    for (k, frag) in out.iter().enumerate() {
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&frag[14..]).unwrap();
        assert!(ip.total_len() <= 1000);
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
        assert_eq!(ip.ttl(), 63);
        assert_eq!(ip.more_fragments(), k < 2);
        let off = usize::from(ip.fragments_offset().byte_offset());
        let payload = &frag[14 + 20..14 + usize::from(ip.total_len())];
        if k < 2 {
            assert_eq!(payload.len() % 8, 0);
        }
        data[off..off + payload.len()].copy_from_slice(payload);
        seen += payload.len();
        assert_eq!(&frag[0..6], &mac(UPSTREAM_MAC));
    }
    assert_eq!(seen, 2408);
    assert_eq!(
        data,
        f[14 + 20..],
        "fragments reassemble to the original UDP datagram"
    );
    assert_eq!(h.stats().generated.get(), 2);
}
