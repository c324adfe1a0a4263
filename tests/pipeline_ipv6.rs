//! IPv6 through the pipeline, in memory: NDP answers and resolution with hold queues,
//! forwarding with the hop limit, ICMPv6 errors (time exceeded, no route, address
//! unreachable, packet too big with the real MTU), proxy NDP, the endpoint responder, router
//! advertisements, spoofing and malformed input. Frames are built and checked with
//! etherparse, an independent implementation.

mod common_pipeline;
use common_pipeline::*;
use vgate::metrics::{ArpKind, DropReason, IcmpKind};

const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "tenant"
iface = "ten0"
mac = "02:00:00:00:00:02"
mtu = 1450

[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[[proxy_ndp]]
port = "external"
prefix = "2001:db8:100::/56"

[[network]]
name = "a"
port = "tenant"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"
subnet6 = "2001:db8:100:1::/64"
ra = { other = true, rdnss = ["2001:db8::53"] }

[[endpoint]]
network = "a"
ip = "10.0.0.5"
mac = "fa:16:3e:00:00:05"
ip6 = "2001:db8:100:1::5"
"#;

const UPSTREAM_MAC: &str = "02:00:00:00:00:99";
const UPSTREAM: &str = "2001:db8:ff::1";
const EXT_MAC: &str = "02:00:00:00:00:01";
const GW_MAC: &str = "fa:16:3e:00:00:01";
const VM_MAC: &str = "fa:16:3e:00:00:05";
const VM: &str = "2001:db8:100:1::5";
/// The gateway's link-local address: fe80:: and the modified EUI-64 of `GW_MAC`.
const GW_LL: &str = "fe80::f816:3eff:fe00:1";

/// What `port` sent, without the periodic router advertisements (to all-nodes) that the
/// first poll already sends on the tenant port.
fn sent(h: &mut Harness, port: &str) -> Vec<Vec<u8>> {
    h.tx(port)
        .into_iter()
        .filter(|f| !(f[12..14] == [0x86, 0xdd] && f[14 + 40] == 134 && f[0] == 0x33))
        .collect()
}

fn l3(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

fn src6(frame: &[u8]) -> std::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&l3(frame)[8..24]);
    a.into()
}

fn dst6(frame: &[u8]) -> std::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&l3(frame)[24..40]);
    a.into()
}

fn a6(s: &str) -> std::net::Ipv6Addr {
    s.parse().unwrap()
}

/// The ICMPv6 type and code of an Ethernet + IPv6 + ICMPv6 frame.
fn icmp_type(frame: &[u8]) -> (u8, u8) {
    assert_eq!(&frame[12..14], &[0x86, 0xdd], "IPv6");
    assert_eq!(l3(frame)[6], 58, "ICMPv6");
    (l3(frame)[40], l3(frame)[41])
}

/// A harness where the upstream router is resolved: it solicited vgate's address with its
/// link-layer address (RFC 4861 section 7.2.3 creates the entry), and the answer is taken.
fn with_upstream() -> Harness {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &ns(
            UPSTREAM_MAC,
            UPSTREAM,
            &solicited("2001:db8:ff::2"),
            "2001:db8:ff::2",
        ),
    );
    h.run();
    assert_eq!(h.tx("external").len(), 1);
    h
}

#[test]
fn solicitation_for_a_port_address_is_answered_and_the_sender_learned() {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &ns(
            UPSTREAM_MAC,
            UPSTREAM,
            &solicited("2001:db8:ff::2"),
            "2001:db8:ff::2",
        ),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(
        &f[0..6],
        &mac(UPSTREAM_MAC),
        "to the solicitor's link-layer address"
    );
    assert_eq!(&f[6..12], &mac(EXT_MAC));
    assert_eq!(icmp_type(f), (136, 0));
    assert_eq!(l3(f)[7], 255, "hop limit 255");
    assert_eq!(src6(f), a6("2001:db8:ff::2"));
    assert_eq!(dst6(f), a6(UPSTREAM));
    assert_eq!(l3(f)[44] & 0xe0, 0xe0, "router, solicited, override");
    assert_eq!(&l3(f)[48..64], &ip6("2001:db8:ff::2"));
    assert_eq!(&l3(f)[64..66], &[2, 1], "target link-layer address option");
    assert_eq!(&l3(f)[66..72], &mac(EXT_MAC));
    assert!(icmp6_checksum_ok(f));
    assert_eq!(
        h.stats().ndp_advertisements[ArpKind::Router as usize].get(),
        1
    );
    assert_eq!(
        h.w.state.neighbors6.get(0, a6(UPSTREAM).to_bits()),
        Some(vgate::wire::EthernetAddress(mac(UPSTREAM_MAC)))
    );
    // The port's link-local address is answered too.
    let ll = "fe80::ff:fe00:1";
    h.inject("external", &ns(UPSTREAM_MAC, UPSTREAM, &solicited(ll), ll));
    h.run();
    assert_eq!(h.tx("external").len(), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn forwarding_resolves_the_next_hop_then_takes_the_fast_path() {
    let mut h = Harness::new(CONF);
    let pkt = udp6(VM_MAC, GW_MAC, VM, "2001:db8:beef::1", 64, 5000, 53, 100);
    h.inject("tenant", &pkt);
    h.run();
    // Held; a solicitation for the upstream router goes to its solicited-node group.
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let s = &out[0];
    assert_eq!(icmp_type(s), (135, 0));
    assert_eq!(dst6(s), a6(&solicited(UPSTREAM)));
    assert_eq!(&s[0..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
    assert_eq!(
        src6(s),
        a6("2001:db8:ff::2"),
        "from the port's address on the target's prefix"
    );
    assert_eq!(&l3(s)[48..64], &ip6(UPSTREAM));
    assert!(icmp6_checksum_ok(s));
    assert_eq!(h.stats().ndp_solicitations_sent.get(), 1);
    assert_eq!(h.w.state.held_frames(), 1);
    // The answer releases the packet, one hop limit less.
    h.inject(
        "external",
        &na(UPSTREAM_MAC, EXT_MAC, UPSTREAM, "2001:db8:ff::2", UPSTREAM),
    );
    h.run();
    assert_eq!(h.drops(DropReason::NdpLearned), 1);
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let mut want = pkt.clone();
    want[0..6].copy_from_slice(&mac(UPSTREAM_MAC));
    want[6..12].copy_from_slice(&mac(EXT_MAC));
    want[14 + 7] = 63;
    assert_eq!(out[0], want);
    // The next one is forwarded in one pass.
    let before = h.stats().fast_path.get();
    h.inject("tenant", &pkt);
    h.run();
    assert_eq!(h.tx("external"), vec![want]);
    assert_eq!(h.stats().fast_path.get(), before + 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn hop_limit_one_gets_time_exceeded() {
    let mut h = with_upstream();
    let pkt = udp6(UPSTREAM_MAC, EXT_MAC, "2001:db8:9::1", VM, 1, 1, 2, 20);
    h.inject("external", &pkt);
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1, "the error goes back toward the sender");
    let e = &out[0];
    assert_eq!(icmp_type(e), (3, 0));
    assert_eq!(src6(e), a6("2001:db8:ff::2"));
    assert_eq!(dst6(e), a6("2001:db8:9::1"));
    assert_eq!(&l3(e)[48..], &pkt[14..], "the whole packet quoted");
    assert!(icmp6_checksum_ok(e));
    assert!(sent(&mut h, "tenant").is_empty());
    assert_eq!(h.drops(DropReason::Ip6HopLimitExpired), 1);
    assert_eq!(
        h.stats().icmp_errors[IcmpKind::Icmp6TimeExceeded as usize].get(),
        1
    );
}

#[test]
fn larger_than_the_tenant_mtu_gets_packet_too_big_with_it() {
    let mut h = with_upstream();
    // 1500 bytes of IPv6 toward the tenant port (MTU 1450).
    let pkt = udp6(
        UPSTREAM_MAC,
        EXT_MAC,
        "2001:db8:9::1",
        VM,
        64,
        1,
        2,
        1500 - 48,
    );
    h.inject("external", &pkt);
    h.run();
    assert!(
        sent(&mut h, "tenant").is_empty(),
        "never fragmented in transit"
    );
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(icmp_type(e), (2, 0));
    assert_eq!(&l3(e)[44..48], &1450u32.to_be_bytes(), "the MTU");
    assert_eq!(e.len(), 14 + 1280, "quoted up to the minimum MTU");
    assert!(icmp6_checksum_ok(e));
    assert_eq!(h.drops(DropReason::Ip6TooBig), 1);
    assert_eq!(
        h.stats().icmp_errors[IcmpKind::Icmp6PacketTooBig as usize].get(),
        1
    );
}

#[test]
fn no_route_gets_destination_unreachable_code_0() {
    let conf = CONF.replace("prefix = \"::/0\"", "prefix = \"2001:db8:aaaa::/48\"");
    let mut h = Harness::new(&conf);
    h.inject(
        "external",
        &ns(
            UPSTREAM_MAC,
            UPSTREAM,
            &solicited("2001:db8:ff::2"),
            "2001:db8:ff::2",
        ),
    );
    h.run();
    h.tx("external");
    h.inject(
        "external",
        &udp6(
            UPSTREAM_MAC,
            EXT_MAC,
            UPSTREAM,
            "2001:db8:bbbb::1",
            64,
            1,
            2,
            10,
        ),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(icmp_type(&out[0]), (1, 0));
    assert_eq!(dst6(&out[0]), a6(UPSTREAM));
    assert_eq!(h.drops(DropReason::Ip6NoRoute), 1);
    assert_eq!(
        h.stats().icmp_errors[IcmpKind::Icmp6NoRoute as usize].get(),
        1
    );
}

#[test]
fn a_silent_neighbour_gets_address_unreachable_after_three_solicitations() {
    let mut h = with_upstream();
    let pkt = udp6(
        UPSTREAM_MAC,
        EXT_MAC,
        "2001:db8:9::1",
        "2001:db8:100:1::99",
        64,
        1,
        2,
        10,
    );
    h.inject("external", &pkt);
    h.run();
    let mut solicitations = sent(&mut h, "tenant").len();
    for _ in 0..5 {
        h.advance(SEC + 1);
        solicitations += h
            .tx("tenant")
            .iter()
            .filter(|f| f[12..14] == [0x86, 0xdd] && icmp_type(f) == (135, 0))
            .count();
    }
    assert_eq!(solicitations, 3);
    let out = h.tx("external");
    let errs: Vec<_> = out.iter().filter(|f| icmp_type(f) == (1, 3)).collect();
    assert_eq!(errs.len(), 1, "address unreachable");
    assert_eq!(dst6(errs[0]), a6("2001:db8:9::1"));
    assert_eq!(h.drops(DropReason::Ip6NeighborUnresolved), 1);
    assert_eq!(h.w.state.held_frames(), 0);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn proxy_ndp_answers_only_inside_its_prefix() {
    let mut h = Harness::new(CONF);
    let t = "2001:db8:100:7::9";
    h.inject("external", &ns(UPSTREAM_MAC, UPSTREAM, &solicited(t), t));
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(icmp_type(f), (136, 0));
    assert_eq!(&l3(f)[48..64], &ip6(t));
    assert_eq!(
        l3(f)[44] & 0x20,
        0,
        "override clear for a proxied target (RFC 4861 7.2.8)"
    );
    assert!(icmp6_checksum_ok(f));
    assert_eq!(
        src6(f),
        a6("fe80::ff:fe00:1"),
        "from the port's link-local address"
    );
    assert_eq!(dst6(f), a6(UPSTREAM));
    assert_eq!(&l3(f)[66..72], &mac(EXT_MAC));
    assert_eq!(
        h.stats().ndp_advertisements[ArpKind::Proxy as usize].get(),
        1
    );
    // Outside the prefix: nothing, counted.
    let t = "2001:db8:101::9";
    h.inject("external", &ns(UPSTREAM_MAC, UPSTREAM, &solicited(t), t));
    h.run();
    assert!(h.tx("external").is_empty());
    assert_eq!(h.drops(DropReason::NdpNotOurs), 1);
    // On another port: nothing either.
    let t = "2001:db8:100:7::9";
    h.inject("tenant", &ns(VM_MAC, VM, &solicited(t), t));
    h.run();
    assert!(sent(&mut h, "tenant").is_empty());
    assert_eq!(h.drops(DropReason::NdpNotOurs), 2);
}

#[test]
fn endpoints_and_the_gateway_are_answered_on_the_tenant_port() {
    let mut h = Harness::new(CONF);
    let other = "2001:db8:100:1::6";
    let other_mac = "fa:16:3e:00:00:06";
    h.inject("tenant", &ns(other_mac, other, &solicited(VM), VM));
    h.run();
    let out = sent(&mut h, "tenant");
    assert_eq!(out.len(), 1);
    assert_eq!(&l3(&out[0])[66..72], &mac(VM_MAC), "the endpoint's MAC");
    assert_eq!(l3(&out[0])[44] & 0x80, 0, "not a router");
    assert_eq!(
        h.stats().ndp_advertisements[ArpKind::Endpoint as usize].get(),
        1
    );
    // A VM never hears its own address answered (duplicate address detection or not).
    h.inject("tenant", &ns(VM_MAC, VM, &solicited(VM), VM));
    h.run();
    assert!(sent(&mut h, "tenant").is_empty());
    // The gateway's link-local address, with the gateway MAC.
    h.inject("tenant", &ns(VM_MAC, VM, &solicited(GW_LL), GW_LL));
    h.run();
    let out = sent(&mut h, "tenant");
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][6..12], &mac(GW_MAC));
    assert_eq!(&l3(&out[0])[66..72], &mac(GW_MAC));
    assert_eq!(src6(&out[0]), a6(GW_LL));
}

#[test]
fn router_solicitation_gets_the_prefix_mtu_and_dns() {
    let mut h = Harness::new(CONF);
    let vm_ll = "fe80::f816:3eff:fe00:5";
    let mut body = vec![1, 1];
    body.extend_from_slice(&mac(VM_MAC));
    h.inject(
        "tenant",
        &icmp6(
            VM_MAC,
            "33:33:00:00:00:02",
            vm_ll,
            "ff02::2",
            133,
            [0; 4],
            &body,
        ),
    );
    h.run();
    let out = sent(&mut h, "tenant");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(icmp_type(f), (134, 0));
    assert_eq!(&f[0..6], &mac(VM_MAC));
    assert_eq!(&f[6..12], &mac(GW_MAC));
    assert_eq!(src6(f), a6(GW_LL));
    assert_eq!(dst6(f), a6(vm_ll));
    assert!(icmp6_checksum_ok(f));
    let ra = &l3(f)[40..];
    assert_eq!(ra[5] & 0xc0, 0x40, "M clear, O set");
    assert_eq!(u16::from_be_bytes([ra[6], ra[7]]), 1800, "router lifetime");
    // Options: source link-layer address, MTU, prefix information, RDNSS.
    let mut opts = &ra[16..];
    let (mut mtu, mut prefix, mut dns) = (None, None, None);
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        match opts[0] {
            5 => mtu = Some(u32::from_be_bytes([opts[4], opts[5], opts[6], opts[7]])),
            3 => prefix = Some((opts[2], opts[3], opts[16..32].to_vec())),
            25 => dns = Some(opts[8..24].to_vec()),
            _ => {}
        }
        opts = &opts[len..];
    }
    assert_eq!(mtu, Some(1450));
    assert_eq!(
        prefix,
        Some((64, 0xc0, ip6("2001:db8:100:1::").to_vec())),
        "on-link, autonomous"
    );
    assert_eq!(dns, Some(ip6("2001:db8::53").to_vec()));
    assert_eq!(h.drops(DropReason::NdpRouterSolicitation), 0, "answered");
    assert_eq!(
        h.stats().ra_sent.get(),
        2,
        "this one and the first periodic one"
    );
    // On a port without a network that sends RAs: not answered, counted.
    h.inject(
        "external",
        &icmp6(
            UPSTREAM_MAC,
            "33:33:00:00:00:02",
            "fe80::99",
            "ff02::2",
            133,
            [0; 4],
            &body,
        ),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    assert_eq!(h.drops(DropReason::NdpRouterSolicitation), 1);
}

#[test]
fn unsolicited_router_advertisements_go_to_all_nodes() {
    let mut h = Harness::new(CONF);
    h.advance(SEC);
    let out = h.tx("tenant");
    let ras: Vec<_> = out.iter().filter(|f| icmp_type(f) == (134, 0)).collect();
    assert_eq!(ras.len(), 1, "the first at once");
    assert_eq!(dst6(ras[0]), a6("ff02::1"));
    assert_eq!(&ras[0][0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    // The next three within 16 s each (RFC 4861 section 6.2.4).
    let mut n = 0;
    for _ in 0..17 {
        h.advance(SEC);
        n += h.tx("tenant").len();
    }
    assert_eq!(n, 1);
    assert!(
        h.tx("external").is_empty(),
        "no RAs where no network has them"
    );
}

#[test]
fn echo_to_a_port_address_is_answered() {
    let mut h = with_upstream();
    h.inject(
        "external",
        &echo6(UPSTREAM_MAC, EXT_MAC, UPSTREAM, "2001:db8:ff::2", 7, 1),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(icmp_type(&out[0]), (129, 0));
    assert_eq!(src6(&out[0]), a6("2001:db8:ff::2"));
    assert_eq!(dst6(&out[0]), a6(UPSTREAM));
    assert!(icmp6_checksum_ok(&out[0]));
    assert_eq!(h.stats().icmp_echo_replies.get(), 1);
    // UDP to vgate: port unreachable.
    h.inject(
        "external",
        &udp6(
            UPSTREAM_MAC,
            EXT_MAC,
            UPSTREAM,
            "2001:db8:ff::2",
            64,
            1,
            9,
            4,
        ),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(icmp_type(&out[0]), (1, 4));
    assert_eq!(h.drops(DropReason::Ip6LocalUnsupported), 1);
}

#[test]
fn advertisements_claiming_vgates_addresses_are_not_learned() {
    let mut h = Harness::new(CONF);
    // vgate's own address, a proxied one (an endpoint's address is proxied too: the
    // tenant prefix is routed behind the external port), and one nobody asked about.
    for target in ["2001:db8:ff::2", "2001:db8:100:3::1", VM, "2001:db8:ff::77"] {
        h.inject(
            "external",
            &na(
                "02:66:66:66:66:66",
                EXT_MAC,
                "2001:db8:ff::66",
                "2001:db8:ff::2",
                target,
            ),
        );
    }
    h.run();
    assert_eq!(h.drops(DropReason::NdpSpoofed), 3);
    assert_eq!(
        h.drops(DropReason::NdpIgnored),
        1,
        "no entry, and none is made"
    );
    assert!(h.w.state.neighbors6.is_empty());
    assert!(h.tx("external").is_empty());
}

#[test]
fn malformed_ipv6_is_dropped_with_its_reason() {
    let mut h = Harness::new(CONF);
    let good = udp6(UPSTREAM_MAC, EXT_MAC, UPSTREAM, VM, 64, 1, 2, 10);
    // Truncated below the header.
    h.inject("external", &good[..14 + 30]);
    // Payload length past the frame.
    let mut long = good.clone();
    long[14 + 4..14 + 6].copy_from_slice(&500u16.to_be_bytes());
    h.inject("external", &long);
    // Version 4 in an IPv6 EtherType.
    let mut v = good.clone();
    v[14] = 0x40;
    h.inject("external", &v);
    // Multicast source; loopback destination.
    let mut m = good.clone();
    m[14 + 8] = 0xff;
    h.inject("external", &m);
    let mut lo = good.clone();
    lo[14 + 24..14 + 40].copy_from_slice(&ip6("::1"));
    h.inject("external", &lo);
    // A neighbour solicitation with hop limit 64 (it crossed a router).
    let mut far = ns(
        UPSTREAM_MAC,
        UPSTREAM,
        &solicited("2001:db8:ff::2"),
        "2001:db8:ff::2",
    );
    far[14 + 7] = 64;
    h.inject("external", &far);
    // Link-local destination that is not vgate's.
    h.inject(
        "external",
        &udp6(UPSTREAM_MAC, EXT_MAC, UPSTREAM, "fe80::1234", 64, 1, 2, 10),
    );
    h.run();
    assert!(h.tx("external").is_empty() && sent(&mut h, "tenant").is_empty());
    assert_eq!(h.drops(DropReason::Ip6TooShort), 2);
    assert_eq!(h.drops(DropReason::Ip6BadVersion), 1);
    assert_eq!(h.drops(DropReason::Ip6MartianSource), 1);
    assert_eq!(h.drops(DropReason::Ip6MartianDestination), 1);
    assert_eq!(h.drops(DropReason::NdpMalformed), 1);
    assert_eq!(h.drops(DropReason::Ip6LinkLocalScope), 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn without_ipv6_configured_ipv6_frames_are_dropped_at_l2_input() {
    let conf = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]
"#;
    let mut h = Harness::new(conf);
    h.inject(
        "external",
        &udp6(UPSTREAM_MAC, EXT_MAC, UPSTREAM, VM, 64, 1, 2, 10),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    assert_eq!(h.drops(DropReason::L2Ipv6), 1);
}

#[test]
fn proxy_ndp_alone_turns_ipv6_on() {
    let conf = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[proxy_ndp]]
port = "external"
prefix = "2001:db8:100::/56"
"#;
    let mut h = Harness::new(conf);
    let t = "2001:db8:100:7::9";
    h.inject("external", &ns(UPSTREAM_MAC, UPSTREAM, &solicited(t), t));
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1, "answered");
    assert_eq!(icmp_type(&out[0]), (136, 0));
    assert_eq!(&l3(&out[0])[66..72], &mac(EXT_MAC));
    assert_eq!(h.drops(DropReason::L2Ipv6), 0);
}
