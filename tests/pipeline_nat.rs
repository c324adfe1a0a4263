//! Floating IPs and SNAT on the in-memory backend: translations, checksums (verified by
//! etherparse), ICMP error translation, port exhaustion, expiry and reload.

mod common_pipeline;
use common_pipeline::*;
use etherparse::{NetSlice, TransportSlice};
use std::sync::Arc;
use vgate::metrics::{ArpKind, DropReason};

const CONF: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "int0"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[network]]
name = "tenant-a"
port = "internal"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[endpoint]]
network = "tenant-a"
ip = "10.0.0.5"
mac = "fa:16:3e:00:00:05"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"
mac = "fa:16:3e:aa:bb:cc"

[[snat]]
network = "tenant-a"
external = "203.0.113.2"
ports = "20000-20009"
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const GW_MAC: &str = "fa:16:3e:00:00:01";
const FIP_MAC: &str = "fa:16:3e:aa:bb:cc";
const VM_MAC: &str = "fa:16:3e:00:00:05";
const VM6_MAC: &str = "fa:16:3e:00:00:06";
const UPSTREAM_MAC: &str = "02:00:00:00:02:01";

fn ready() -> Harness {
    ready_with(CONF)
}

fn ready_with(conf: &str) -> Harness {
    let mut h = Harness::new(conf);
    // Both VMs and the upstream router introduce themselves, as their ARP for us would.
    h.inject("internal", &arp_request(VM_MAC, "10.0.0.5", "10.0.0.1"));
    h.inject("internal", &arp_request(VM6_MAC, "10.0.0.6", "10.0.0.1"));
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    assert_eq!(h.tx("internal").len(), 2);
    assert_eq!(h.tx("external").len(), 1);
    h
}

fn ip4(f: &[u8]) -> etherparse::Ipv4HeaderSlice<'_> {
    etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).expect("IPv4")
}

/// Verify the IPv4 header checksum and the UDP/TCP checksum with etherparse.
fn assert_checksums(f: &[u8]) {
    let p = parse(f);
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    let h = v4.header();
    assert_eq!(
        h.header_checksum(),
        h.to_header().calc_header_checksum(),
        "IPv4 checksum"
    );
    match &p.transport {
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&h.to_header(), t.payload())
                .unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(
                i.icmp_type().calc_checksum(i.payload()),
                i.checksum(),
                "ICMP checksum"
            );
        }
        other => panic!("unexpected transport {other:?}"),
    }
}

fn tcp(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    syn: bool,
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, 1000, 64240);
    if syn {
        b = b.syn();
    } else {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, b"payload").unwrap();
    out
}

fn udp_ports(f: &[u8]) -> (u16, u16) {
    let hl = usize::from(f[14] & 0x0f) * 4;
    let l4 = &f[14 + hl..];
    (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    )
}

fn echo_id(f: &[u8]) -> u16 {
    let hl = usize::from(f[14] & 0x0f) * 4;
    u16::from_be_bytes([f[14 + hl + 4], f[14 + hl + 5]])
}

#[test]
fn arp_for_fip_gateway_and_endpoints() {
    let mut h = Harness::new(CONF);
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.10"),
    );
    h.inject("internal", &arp_request(VM6_MAC, "10.0.0.6", "10.0.0.1"));
    h.inject("internal", &arp_request(VM6_MAC, "10.0.0.6", "10.0.0.5"));
    h.inject("internal", &arp_request(VM6_MAC, "10.0.0.6", "10.0.0.99"));
    h.run();
    let ext = h.tx("external");
    assert_eq!(ext.len(), 1);
    assert_eq!(
        &ext[0][6..12],
        &mac(FIP_MAC),
        "distributed FIP answers from its own MAC"
    );
    assert_eq!(&ext[0][22..28], &mac(FIP_MAC));
    assert_eq!(&ext[0][28..32], &ip("203.0.113.10"));
    let int = h.tx("internal");
    assert_eq!(int.len(), 2, "gateway and endpoint answered, 10.0.0.99 not");
    assert_eq!(&int[0][22..28], &mac(GW_MAC));
    assert_eq!(&int[1][22..28], &mac(VM_MAC), "L2-population ARP responder");
    assert_eq!(h.stats().arp_count(ArpKind::Fip), 1);
    assert_eq!(h.stats().arp_count(ArpKind::Router), 1);
    assert_eq!(h.stats().arp_count(ArpKind::Endpoint), 1);
    assert_eq!(h.drops(DropReason::ArpNotOurs), 1);
}

#[test]
fn fip_dnat_inbound_and_snat_outbound() {
    let mut h = ready();
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            FIP_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            5353,
            7000,
            40,
        ),
    );
    h.run();
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &mac(VM_MAC));
    assert_eq!(
        &f[6..12],
        &mac(GW_MAC),
        "into the tenant network from the gateway MAC"
    );
    assert_eq!(ip4(f).destination(), ip("10.0.0.5"));
    assert_eq!(ip4(f).source(), ip("198.51.100.7"));
    assert_eq!(udp_ports(f), (5353, 7000));
    assert_checksums(f);

    h.inject(
        "internal",
        &tcp(VM_MAC, GW_MAC, "10.0.0.5", "198.51.100.7", 7000, 443, true),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &mac(UPSTREAM_MAC));
    assert_eq!(
        ip4(f).source(),
        ip("203.0.113.10"),
        "floating IP as source, port kept"
    );
    assert_eq!(udp_ports(f), (7000, 443));
    assert_checksums(f);
    let m = vgate::metrics::render(
        std::slice::from_ref(&Arc::clone(&h.w.stats)),
        &["external".into(), "internal".into()],
        &[("203.0.113.10".into(), 0)],
        &Default::default(),
    );
    assert!(
        m.contains("vgate_fip_packets_total{fip=\"203.0.113.10\",direction=\"in\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("vgate_fip_packets_total{fip=\"203.0.113.10\",direction=\"out\"} 1"),
        "{m}"
    );
}

#[test]
fn icmp_errors_about_a_fip_flow_are_translated() {
    let mut h = ready();
    // The VM's packet as the outside saw it (after SNAT to the FIP)...
    let seen = udp(
        UPSTREAM_MAC,
        EXT_MAC,
        "203.0.113.10",
        "198.51.100.7",
        60,
        7000,
        9000,
        1400,
    );
    // ...and a router beyond answers "fragmentation needed, MTU 1400" (RFC 1191).
    let b = etherparse::PacketBuilder::ethernet2(mac(UPSTREAM_MAC), mac(FIP_MAC))
        .ipv4(ip("198.51.100.1"), ip("203.0.113.10"), 60)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ));
    let mut err = Vec::new();
    b.write(&mut err, &seen[14..14 + 28]).unwrap();
    h.inject("external", &err);
    h.run();
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(ip4(f).destination(), ip("10.0.0.5"));
    assert_checksums(f);
    // The quoted header now names the VM's own address, with a valid checksum.
    let q = &f[14 + 20 + 8..];
    let qh = etherparse::Ipv4HeaderSlice::from_slice(q).unwrap();
    assert_eq!(qh.source(), ip("10.0.0.5"));
    assert_eq!(qh.header_checksum(), qh.to_header().calc_header_checksum());
    assert_eq!(
        u16::from_be_bytes([f[14 + 20 + 6], f[14 + 20 + 7]]),
        1400,
        "MTU kept"
    );
}

#[test]
fn snat_udp_tcp_icmp_roundtrip() {
    let mut h = ready();
    h.inject(
        "internal",
        &udp(
            VM6_MAC,
            GW_MAC,
            "10.0.0.6",
            "198.51.100.7",
            64,
            4000,
            53,
            20,
        ),
    );
    h.inject(
        "internal",
        &tcp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 4001, 80, true),
    );
    h.inject(
        "internal",
        &icmp_echo(
            VM6_MAC,
            GW_MAC,
            "10.0.0.6",
            "198.51.100.7",
            64,
            0x4242,
            1,
            16,
        ),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 3);
    let mut mapped = Vec::new();
    for (k, f) in out.iter().enumerate() {
        assert_eq!(ip4(f).source(), ip("203.0.113.2"));
        assert_checksums(f);
        let sport = if k == 2 { echo_id(f) } else { udp_ports(f).0 };
        assert!(
            (20000..=20009).contains(&sport),
            "port {sport} outside the rule's range"
        );
        mapped.push(sport);
    }
    // ICMP: the identifier is the mapped "port".
    assert_ne!(mapped[2], 0x4242);
    // Replies come back to the inside endpoints.
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.2",
            60,
            53,
            mapped[0],
            20,
        ),
    );
    h.inject(
        "external",
        &tcp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.2",
            80,
            mapped[1],
            false,
        ),
    );
    let b = etherparse::PacketBuilder::ethernet2(mac(UPSTREAM_MAC), mac(EXT_MAC))
        .ipv4(ip("198.51.100.7"), ip("203.0.113.2"), 60)
        .icmpv4_echo_reply(mapped[2], 1);
    let mut reply = Vec::new();
    b.write(&mut reply, &[0u8; 16]).unwrap();
    h.inject("external", &reply);
    h.run();
    let back = h.tx("internal");
    assert_eq!(back.len(), 3);
    for f in &back {
        assert_eq!(ip4(f).destination(), ip("10.0.0.6"));
        assert_eq!(&f[0..6], &mac(VM6_MAC));
        assert_checksums(f);
    }
    assert_eq!(udp_ports(&back[0]).1, 4000);
    assert_eq!(udp_ports(&back[1]).1, 4001);
    assert_eq!(echo_id(&back[2]), 0x4242, "echo identifier restored");
    assert_eq!(
        h.stats().nat_sessions.get(),
        0,
        "gauge refreshed on the timer only"
    );
    h.advance(20_000_000);
    assert_eq!(h.stats().nat_sessions.get(), 3);
}

#[test]
fn port_exhaustion_drops_new_flows_and_keeps_old_ones() {
    let mut h = ready();
    for p in 0..10u16 {
        h.inject(
            "internal",
            &udp(
                VM6_MAC,
                GW_MAC,
                "10.0.0.6",
                "198.51.100.7",
                64,
                5000 + p,
                53,
                8,
            ),
        );
    }
    h.run();
    assert_eq!(h.tx("external").len(), 10);
    h.inject(
        "internal",
        &udp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 64, 6000, 53, 8),
    );
    h.run();
    assert!(h.tx("external").is_empty(), "11th flow has no port");
    assert_eq!(h.drops(DropReason::NatPortExhausted), 1);
    assert_eq!(h.stats().nat_port_exhausted.get(), 1);
    // An existing flow still goes out.
    h.inject(
        "internal",
        &udp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 64, 5003, 53, 8),
    );
    h.run();
    assert_eq!(h.tx("external").len(), 1);
}

#[test]
fn sessions_expire_and_return_traffic_is_then_refused() {
    let mut h = ready();
    h.inject(
        "internal",
        &udp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 64, 4000, 53, 8),
    );
    h.run();
    let port = udp_ports(&h.tx("external")[0]).0;
    // UDP idle timeout is 300 s (RFC 4787 REQ-5).
    h.advance(301 * SEC);
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.2",
            60,
            53,
            port,
            8,
        ),
    );
    h.run();
    assert!(h.tx("internal").is_empty());
    // 203.0.113.2 is also the router's own address: UDP to it gets port unreachable.
    assert_eq!(h.drops(DropReason::Ip4LocalUnsupported), 1);
}

#[test]
fn removing_fip_and_snat_stops_translation_at_once() {
    let mut h = ready();
    h.inject(
        "internal",
        &udp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 64, 4000, 53, 8),
    );
    h.run();
    let port = udp_ports(&h.tx("external")[0]).0;
    // Reload without the floating IP and the SNAT rule.
    let cut = CONF.split("[[floating_ip]]").next().unwrap().to_string();
    h.w.tables.store(Arc::new(snapshot(&cut, 2)));
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.2",
            60,
            53,
            port,
            8,
        ),
    );
    h.inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            FIP_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            53,
            7000,
            8,
        ),
    );
    h.run();
    assert!(h.tx("internal").is_empty(), "no stale translation");
    assert_eq!(
        h.drops(DropReason::L2NotForUs),
        1,
        "the FIP MAC is no longer ours"
    );
    // 203.0.113.2 is the router's own address again: port unreachable goes back out.
    let errs = h.tx("external");
    assert_eq!(errs.len(), 1);
    assert_eq!(h.drops(DropReason::Ip4LocalUnsupported), 1);
    // The VM's traffic now leaves untranslated (no rule), as routing says.
    h.inject(
        "internal",
        &udp(VM6_MAC, GW_MAC, "10.0.0.6", "198.51.100.7", 64, 4000, 53, 8),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(ip4(&out[0]).source(), ip("10.0.0.6"));
}

/// A tenant's ICMP error about an inbound SNAT flow carries no external port, so the
/// worker that owns the session cannot be computed from it (return traffic can: per-worker
/// port blocks). Received by another worker, it is handed on round the workers until the
/// owner translates it; about a flow no worker has, it is dropped once, by the last.
#[test]
fn a_tenants_icmp_error_finds_its_session_on_another_worker() {
    let mut w = Harness::workers(CONF, 2);
    for h in w.iter_mut() {
        h.inject("internal", &arp_request(VM6_MAC, "10.0.0.6", "10.0.0.1"));
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
        );
        h.run();
        h.tx("internal");
        h.tx("external");
    }
    // Worker 0 translates the VM's datagram, and the reply back.
    let out = udp(
        VM6_MAC,
        GW_MAC,
        "10.0.0.6",
        "198.51.100.7",
        64,
        4000,
        53,
        20,
    );
    w[0].inject("internal", &out);
    w[0].run();
    let sent = w[0].tx("external");
    assert_eq!(sent.len(), 1);
    let mapped = udp_ports(&sent[0]).0;
    let reply = udp(
        UPSTREAM_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.2",
        60,
        53,
        mapped,
        20,
    );
    w[0].inject("external", &reply);
    w[0].run();
    let delivered = w[0].tx("internal");
    assert_eq!(delivered.len(), 1);
    assert_eq!(udp_ports(&delivered[0]).1, 4000);

    // The VM answers port unreachable about it (RFC 792: the header and 8 bytes), and the
    // error reaches worker 1, which has no session for it.
    let port_unreachable = |quoted: &[u8]| {
        let b = etherparse::PacketBuilder::ethernet2(mac(VM6_MAC), mac(GW_MAC))
            .ipv4(ip("10.0.0.6"), ip("198.51.100.7"), 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ));
        let mut f = Vec::new();
        b.write(&mut f, &quoted[14..14 + 28]).unwrap();
        f
    };
    w[1].inject("internal", &port_unreachable(&delivered[0]));
    w[1].run();
    assert!(w[1].tx("external").is_empty());
    assert_eq!(w[1].stats().handoff_out.get(), 1);
    assert_eq!(w[1].drops(DropReason::NatNoSession), 0);
    // Worker 0 takes it from its queue and sends it out translated.
    w[0].run();
    let err = w[0].tx("external");
    assert_eq!(err.len(), 1, "the owner translated the error");
    assert_eq!(w[0].stats().handoff_in.get(), 1);
    let f = &err[0];
    assert_eq!(ip4(f).source(), ip("203.0.113.2"));
    assert_eq!(ip4(f).destination(), ip("198.51.100.7"));
    assert_checksums(f);
    let q = &f[14 + 20 + 8..];
    let qh = etherparse::Ipv4HeaderSlice::from_slice(q).unwrap();
    assert_eq!(qh.destination(), ip("203.0.113.2"), "quoted as sent");
    assert_eq!(
        u16::from_be_bytes([q[22], q[23]]),
        mapped,
        "quoted destination port: the external one"
    );
    assert_eq!(w[0].drops(DropReason::NatNoSession), 0);

    // About a flow no worker has a session for: handed on once, then dropped once.
    let mut stray = delivered[0].clone();
    stray[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&4999u16.to_be_bytes());
    w[1].inject("internal", &port_unreachable(&stray));
    w[1].run();
    w[0].run();
    assert!(w[0].tx("external").is_empty() && w[1].tx("external").is_empty());
    assert_eq!(w[1].stats().handoff_out.get(), 2);
    assert_eq!(w[0].stats().handoff_out.get(), 0, "not handed on again");
    assert_eq!(w[0].drops(DropReason::NatNoSession), 1);
    assert_eq!(w[1].drops(DropReason::NatNoSession), 0);
}

/// Hairpin: VMs reaching floating IPs (another's, or their own) and SNAT addresses from
/// inside are translated both ways, so answers come back through vgate from the address
/// the VM spoke to. On both paths (the fast path leaves hairpin traffic to the stages).
#[test]
fn hairpin_traffic_is_translated_both_ways() {
    for fast in [true, false] {
        let conf = format!("[dataplane]\nfast_path = {fast}\n{CONF}");
        let mut h = ready_with(&conf);
        // VM .6 (no floating IP, SNAT) to VM .5's floating IP.
        h.inject(
            "internal",
            &udp(
                VM6_MAC,
                GW_MAC,
                "10.0.0.6",
                "203.0.113.10",
                64,
                4000,
                80,
                20,
            ),
        );
        h.run();
        let out = h.tx("internal");
        assert_eq!(out.len(), 1, "fast={fast}");
        let f = &out[0];
        assert_eq!(&f[0..6], &mac(VM_MAC), "to VM .5");
        assert_eq!(ip4(f).destination(), ip("10.0.0.5"));
        assert_eq!(ip4(f).source(), ip("203.0.113.2"), "from the SNAT address");
        let (mapped, dport) = udp_ports(f);
        assert_eq!(dport, 80);
        assert!((20000..=20009).contains(&mapped), "{mapped}");
        assert_checksums(f);
        // VM .5 answers the SNAT address: un-SNAT to .6, and .5's own source becomes its
        // floating IP, the address .6 spoke to.
        h.inject(
            "internal",
            &udp(
                VM_MAC,
                GW_MAC,
                "10.0.0.5",
                "203.0.113.2",
                64,
                80,
                mapped,
                20,
            ),
        );
        h.run();
        let back = h.tx("internal");
        assert_eq!(back.len(), 1, "fast={fast}");
        let f = &back[0];
        assert_eq!(&f[0..6], &mac(VM6_MAC));
        assert_eq!(ip4(f).source(), ip("203.0.113.10"));
        assert_eq!(ip4(f).destination(), ip("10.0.0.6"));
        assert_eq!(udp_ports(f), (80, 4000));
        assert_checksums(f);

        // VM .5 to its own floating IP: back to itself, from its floating IP.
        h.inject(
            "internal",
            &udp(
                VM_MAC,
                GW_MAC,
                "10.0.0.5",
                "203.0.113.10",
                64,
                5000,
                5001,
                20,
            ),
        );
        h.run();
        let own = h.tx("internal");
        assert_eq!(own.len(), 1, "fast={fast}");
        assert_eq!(ip4(&own[0]).source(), ip("203.0.113.10"));
        assert_eq!(ip4(&own[0]).destination(), ip("10.0.0.5"));
        assert_eq!(udp_ports(&own[0]), (5000, 5001));
        assert_checksums(&own[0]);
        if fast {
            assert_eq!(h.stats().fast_path.get(), 0, "hairpin takes the stages");
        }

        // A tenant address arriving from outside is no hairpin: only the DNAT.
        h.inject(
            "external",
            &udp(
                UPSTREAM_MAC,
                EXT_MAC,
                "10.0.0.6",
                "203.0.113.10",
                60,
                4000,
                80,
                20,
            ),
        );
        h.run();
        let outside = h.tx("internal");
        assert_eq!(outside.len(), 1, "fast={fast}");
        assert_eq!(ip4(&outside[0]).source(), ip("10.0.0.6"));
        assert_eq!(h.frames_in_use(), 0);
    }
}

/// A UDP datagram of `payload` bytes from `src:sport` to `dst:dport`, identification `id`,
/// cut into fragments of at most `mtu` bytes of IPv4 (RFC 791: offsets in 8-byte units).
#[allow(clippy::too_many_arguments)]
fn udp_fragments(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    payload: usize,
    id: u16,
    mtu: usize,
) -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..payload).map(|i| (i * 31 + 7) as u8).collect();
    let whole = udp_with(src_mac, dst_mac, src, dst, sport, dport, &data);
    let l4 = &whole[34..];
    let per = (mtu - 20) / 8 * 8;
    let mut out = Vec::new();
    let mut off = 0;
    while off < l4.len() {
        let end = (off + per).min(l4.len());
        let mut f = whole[..34].to_vec();
        f.extend_from_slice(&l4[off..end]);
        let total = (20 + end - off) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let mf = if end < l4.len() { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&((off / 8) as u16 | mf).to_be_bytes());
        fix_ip_checksum(&mut f);
        out.push(f);
        off = end;
    }
    out
}

fn udp_with(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    data: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, data).unwrap();
    out
}

/// Put fragments back together: (source, destination, UDP ports, payload), with the UDP
/// checksum verified over the whole datagram.
fn reassemble(frags: &[Vec<u8>]) -> ([u8; 4], [u8; 4], (u16, u16), Vec<u8>) {
    let mut parts: Vec<(usize, &[u8])> = frags
        .iter()
        .map(|f| {
            let h = ip4(f);
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            (
                usize::from(h.fragments_offset().value()) * 8,
                &f[34..14 + usize::from(h.total_len())],
            )
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut l4 = Vec::new();
    for (off, p) in parts {
        assert_eq!(off, l4.len(), "fragments are contiguous");
        l4.extend_from_slice(p);
    }
    let h = ip4(&frags[0]);
    let (udp, payload) = etherparse::UdpHeader::from_slice(&l4).unwrap();
    let want = udp
        .calc_checksum_ipv4_raw(h.source(), h.destination(), payload)
        .unwrap();
    assert_eq!(
        udp.checksum, want,
        "UDP checksum over the reassembled datagram"
    );
    (
        h.source(),
        h.destination(),
        (udp.source_port, udp.destination_port),
        payload.to_vec(),
    )
}

/// SNAT of fragmented datagrams by virtual reassembly: every fragment gets the first one's
/// translation, both ways, in order or not; the bounds hold under a flood of fragments
/// whose first fragment never comes.
#[test]
fn fragmented_snat_datagrams_are_translated_both_ways() {
    for fast in [true, false] {
        let conf = format!("[dataplane]\nfast_path = {fast}\n{CONF}");
        let mut h = ready_with(&conf);
        // 4,000 bytes from VM .6 in three fragments, the last two first.
        let mut frags = udp_fragments(
            VM6_MAC,
            GW_MAC,
            "10.0.0.6",
            "198.51.100.7",
            4000,
            53,
            3992,
            0x1234,
            1500,
        );
        assert_eq!(frags.len(), 3);
        frags.rotate_left(1);
        for f in &frags {
            h.inject("internal", f);
        }
        h.run();
        let out = h.tx("external");
        assert_eq!(out.len(), 3, "fast={fast}: every fragment left");
        let (src, dst, (mapped, dport), data) = reassemble(&out);
        assert_eq!(src, ip("203.0.113.2"));
        assert_eq!(dst, ip("198.51.100.7"));
        assert!((20000..=20009).contains(&mapped));
        assert_eq!(dport, 53);
        assert_eq!(data.len(), 3992);
        assert_eq!(h.stats().held.get(), 0);

        // The answer, fragmented too, comes back to the VM whole.
        let reply = udp_fragments(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.2",
            53,
            mapped,
            3000,
            0x99,
            1500,
        );
        for f in &reply {
            h.inject("external", f);
        }
        h.run();
        let back = h.tx("internal");
        assert_eq!(back.len(), reply.len(), "fast={fast}");
        let (src, dst, ports, data) = reassemble(&back);
        assert_eq!((src, dst), (ip("198.51.100.7"), ip("10.0.0.6")));
        assert_eq!(ports, (53, 4000));
        assert_eq!(data.len(), 3000);

        // A flood of later fragments whose first fragment never comes: 256 held (the
        // default bound), the rest dropped, and the held ones freed when their time runs
        // out.
        for k in 0..300u16 {
            let mut f = udp_fragments(
                VM6_MAC,
                GW_MAC,
                "10.0.0.6",
                "198.51.100.7",
                4000,
                53,
                2000,
                0x4000 + k,
                1500,
            )
            .pop()
            .unwrap();
            fix_ip_checksum(&mut f);
            h.inject("internal", &f);
        }
        h.run();
        assert!(h.tx("external").is_empty());
        assert_eq!(h.drops(DropReason::NatReassemblyFull), 44);
        assert_eq!(h.stats().held.get(), 256);
        assert_eq!(h.frames_in_use(), 256);
        h.advance(3 * SEC);
        assert_eq!(h.drops(DropReason::NatReassemblyTimeout), 256);
        assert_eq!(h.stats().held.get(), 0);
        assert_eq!(h.frames_in_use(), 0, "fast={fast}");
    }
}
