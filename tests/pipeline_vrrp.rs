//! VRRP in the data plane, on the in-memory backend: adverts received and checked (RFC 5798
//! section 7.1) and handed to the election, adverts sent as section 5 has them, and a backup
//! that answers no ARP for, takes no frame to and announces nothing of what its groups own,
//! on both paths (fast path on and off). The election itself is `control::vrrp`'s.

mod common_pipeline;
use common_pipeline::*;
use vgate::control::garp::Announcement;
use vgate::metrics::DropReason;
use vgate::pipeline::vrrp::AdvertResult;
use vgate::wire::EthernetAddress;
use vgate::worker::AdvertOut;

const BASE: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.3/24"]

[[port]]
name = "internal"
iface = "int0"
mac = "02:00:00:00:00:02"
addresses = ["10.0.0.2/24"]

[[port]]
name = "other"
iface = "oth0"
mac = "02:00:00:00:00:03"
addresses = ["198.51.100.2/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[network]]
name = "tenant"
port = "internal"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant"

[[proxy_arp]]
port = "external"
prefix = "203.0.113.128/25"

[[vrrp]]
port = "external"
vrid = 10
priority = 200
addresses = ["203.0.113.2"]

[[vrrp]]
port = "internal"
vrid = 11
priority = 200
addresses = ["10.0.0.1"]
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const GW_MAC: &str = "fa:16:3e:00:00:01";
const VIP_MAC: &str = "00:00:5e:00:01:0a";
const VM_MAC: &str = "fa:16:3e:00:00:05";
const UPSTREAM_MAC: &str = "02:00:00:00:02:01";
const PEER_MAC: &str = "02:00:00:00:02:04";
const EXT: u8 = 0;
const INT: u8 = 1;

fn conf(fast: bool) -> String {
    format!("[dataplane]\nfast_path = {fast}\n{BASE}")
}

/// The internet checksum, written here independently of vgate's.
fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A VRRPv3 advert frame as RFC 5798 section 5 lays it out, with the checksum over the IPv4
/// pseudo-header (section 5.2.8); `version` and `ttl` may be wrong on purpose.
fn advert(src: &str, vrid: u8, priority: u8, version: u8, ttl: u8, vips: &[&str]) -> Vec<u8> {
    let mut v = vec![
        (version << 4) | 1,
        vrid,
        priority,
        vips.len() as u8,
        0,
        10,
        0,
        0,
    ];
    for a in vips {
        v.extend_from_slice(&ip(a));
    }
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip(src));
    pseudo.extend_from_slice(&[224, 0, 0, 18, 0, 112]);
    pseudo.extend_from_slice(&(v.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&v);
    let c = csum(&pseudo);
    v[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    f.extend_from_slice(&mac(PEER_MAC));
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + v.len()) as u16;
    let mut h = vec![0x45, 0xc0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0, ttl, 112, 0, 0]);
    h.extend_from_slice(&ip(src));
    h.extend_from_slice(&[224, 0, 0, 18]);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(&v);
    f
}

fn master(h: &Harness, port: u8, vrid: u8, on: bool) {
    h.w.bus.ha.set_master(port, vrid, on);
}

fn adverts_in(h: &Harness) -> Vec<(u8, u8, u8, AdvertResult)> {
    let mut v = Vec::new();
    while let Some(a) = h.w.bus.vrrp_rx.pop() {
        v.push((a.port, a.vrid, a.priority, a.result));
    }
    v
}

#[test]
fn adverts_are_checked_and_handed_to_the_election() {
    let mut h = Harness::new(&conf(true));
    let cases: [(Vec<u8>, DropReason, Option<AdvertResult>); 7] = [
        (
            advert("203.0.113.4", 10, 100, 3, 255, &["203.0.113.2"]),
            DropReason::VrrpAdvert,
            Some(AdvertResult::Ok),
        ),
        (
            advert("203.0.113.4", 10, 254, 3, 64, &["203.0.113.2"]),
            DropReason::VrrpBadTtl,
            Some(AdvertResult::BadTtl),
        ),
        (
            advert("203.0.113.4", 10, 254, 2, 255, &["203.0.113.2"]),
            DropReason::VrrpBadVersion,
            Some(AdvertResult::BadVersion),
        ),
        (
            {
                let mut f = advert("203.0.113.4", 10, 254, 3, 255, &["203.0.113.2"]);
                f[14 + 20 + 7] ^= 0x55;
                f
            },
            DropReason::VrrpBadChecksum,
            Some(AdvertResult::BadChecksum),
        ),
        (
            advert("198.51.100.7", 10, 254, 3, 255, &["203.0.113.2"]),
            DropReason::VrrpOffSegment,
            Some(AdvertResult::OffSegment),
        ),
        (
            advert("203.0.113.4", 0, 254, 3, 255, &["203.0.113.2"]),
            DropReason::VrrpOtherGroup,
            None,
        ),
        (
            advert("203.0.113.4", 99, 254, 3, 255, &["203.0.113.2"]),
            DropReason::VrrpOtherGroup,
            None,
        ),
    ];
    for (frame, reason, result) in cases {
        let before = h.drops(reason);
        h.inject("external", &frame);
        h.run();
        assert_eq!(h.drops(reason), before + 1, "{reason:?}");
        assert!(h.tx("external").is_empty(), "{reason:?}: nothing goes out");
        let got = adverts_in(&h);
        match result {
            Some(r) => assert_eq!(got, vec![(EXT, 10, frame[14 + 22], r)], "{reason:?}"),
            None => assert!(got.is_empty(), "{reason:?}"),
        }
    }
    // The same advert on a port without groups is multicast vgate does not take.
    let before = h.drops(DropReason::L2Multicast);
    h.inject(
        "other",
        &advert("198.51.100.4", 10, 100, 3, 255, &["198.51.100.9"]),
    );
    h.run();
    assert_eq!(h.drops(DropReason::L2Multicast), before + 1);
    assert!(adverts_in(&h).is_empty());
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn adverts_go_out_as_section_5_has_them_and_a_peer_accepts_them() {
    let mut h = Harness::new(&conf(true));
    let mut addrs = [0u32; vgate::control::config::MAX_VRRP_ADDRESSES];
    addrs[0] = u32::from_be_bytes(ip("203.0.113.2"));
    h.w.bus
        .vrrp_tx
        .push(AdvertOut {
            port: EXT,
            vrid: 10,
            priority: 200,
            interval_cs: 10,
            src: u32::from_be_bytes(ip("203.0.113.3")),
            count: 1,
            addrs,
        })
        .unwrap();
    h.advance(1_000);
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.len(), 14 + 20 + 12);
    assert_eq!(f[..6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(f[6..12], mac(VIP_MAC));
    let p = parse(f);
    let Some(etherparse::NetSlice::Ipv4(v4)) = p.net else {
        panic!("IPv4")
    };
    let hdr = v4.header();
    assert_eq!(hdr.ttl(), 255);
    assert_eq!(hdr.protocol(), etherparse::IpNumber(112));
    assert_eq!(hdr.source(), ip("203.0.113.3"));
    assert_eq!(hdr.destination(), [224, 0, 0, 18]);
    assert_eq!(csum(&f[14..34]), 0, "IPv4 header checksum");
    // Version 3, advertisement, VRID 10, priority 200, one address, 10 cs, the address.
    assert_eq!(f[34..40], [0x31, 10, 200, 1, 0, 10]);
    assert_eq!(f[42..46], ip("203.0.113.2"));
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip("203.0.113.3"));
    pseudo.extend_from_slice(&[224, 0, 0, 18, 0, 112, 0, 12]);
    pseudo.extend_from_slice(&f[34..]);
    assert_eq!(csum(&pseudo), 0, "VRRP checksum over the pseudo-header");
    assert_eq!(h.stats().vrrp_adverts_sent.get(), 1);

    // The peer (its port at .4) takes it as a valid advert of its group.
    let peer_conf = conf(true).replace("203.0.113.3/24", "203.0.113.4/24");
    let mut peer = Harness::new(&peer_conf);
    let mut g = f.clone();
    g[6..12].copy_from_slice(&mac(VIP_MAC));
    peer.inject("external", &g);
    peer.run();
    assert_eq!(adverts_in(&peer), vec![(EXT, 10, 200, AdvertResult::Ok)]);
}

#[test]
fn a_backup_answers_no_arp_for_what_its_groups_own_and_a_master_does() {
    let mut h = Harness::new(&conf(true));
    // (target, answer as master): the VIP with the virtual MAC, the floating IP and a proxied
    // address with the port MAC; the gateway (a VIP of the tenant group) on the other side.
    let external = [
        ("203.0.113.2", VIP_MAC),
        ("203.0.113.10", EXT_MAC),
        ("203.0.113.200", EXT_MAC),
    ];
    for (target, _) in external {
        let before = h.drops(DropReason::VrrpBackup);
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", target),
        );
        h.run();
        assert!(h.tx("external").is_empty(), "backup answered for {target}");
        assert_eq!(h.drops(DropReason::VrrpBackup), before + 1, "{target}");
    }
    let before = h.drops(DropReason::VrrpBackup);
    h.inject("internal", &arp_request(VM_MAC, "10.0.0.5", "10.0.0.1"));
    h.run();
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::VrrpBackup), before + 1);
    // The node's own address is its own, master or not.
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.3"),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][22..28], mac(EXT_MAC));

    master(&h, EXT, 10, true);
    master(&h, INT, 11, true);
    for (target, answer) in external {
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", target),
        );
        h.run();
        let out = h.tx("external");
        assert_eq!(out.len(), 1, "master answers for {target}");
        assert_eq!(out[0][22..28], mac(answer), "{target}");
        assert_eq!(out[0][6..12], mac(answer), "{target}: sent from it");
    }
    h.inject("internal", &arp_request(VM_MAC, "10.0.0.5", "10.0.0.1"));
    h.run();
    let out = h.tx("internal");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][22..28], mac(GW_MAC));

    // Demoted: from the next poll on, nothing more.
    master(&h, EXT, 10, false);
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    assert!(h.tx("external").is_empty());
    assert_eq!(h.frames_in_use(), 0);
}

/// The master's gratuitous ARP for the VIP, as a backup hears it: not learned, not a spoof.
#[test]
fn a_backup_does_not_learn_the_masters_claims() {
    let mut h = Harness::new(&conf(true));
    let garp = arp_frame(
        1,
        PEER_MAC,
        "203.0.113.10",
        "00:00:00:00:00:00",
        "203.0.113.10",
        "ff:ff:ff:ff:ff:ff",
    );
    let (spoofed, backup) = (
        h.drops(DropReason::ArpSpoofed),
        h.drops(DropReason::VrrpBackup),
    );
    h.inject("external", &garp);
    h.run();
    assert_eq!(h.drops(DropReason::VrrpBackup), backup + 1);
    assert_eq!(h.drops(DropReason::ArpSpoofed), spoofed);
    // As master, the same claim from another MAC is a spoof.
    master(&h, EXT, 10, true);
    h.inject("external", &garp);
    h.run();
    assert_eq!(h.drops(DropReason::ArpSpoofed), spoofed + 1);
}

fn traffic_to_owned_addresses(fast: bool) {
    let mut h = Harness::new(&conf(fast));
    let to_fip = udp(
        UPSTREAM_MAC,
        EXT_MAC,
        "192.0.2.77",
        "203.0.113.10",
        64,
        4000,
        53,
        32,
    );
    let to_vip_mac = udp(
        UPSTREAM_MAC,
        VIP_MAC,
        "192.0.2.77",
        "10.0.0.5",
        64,
        4000,
        53,
        32,
    );
    let from_vm = udp(VM_MAC, GW_MAC, "10.0.0.5", "192.0.2.77", 64, 5000, 53, 32);
    let cases = [
        ("external", &to_fip),
        ("external", &to_vip_mac),
        ("internal", &from_vm),
    ];
    for (port, frame) in cases {
        let before = h.drops(DropReason::VrrpBackup);
        h.inject(port, frame);
        h.run();
        assert_eq!(
            h.drops(DropReason::VrrpBackup),
            before + 1,
            "fast {fast}: {port}"
        );
        assert!(h.tx("external").is_empty() && h.tx("internal").is_empty());
    }
    // Traffic to the node's own address is answered: echo to 203.0.113.3.
    h.inject(
        "external",
        &icmp_echo(
            UPSTREAM_MAC,
            EXT_MAC,
            "203.0.113.1",
            "203.0.113.3",
            64,
            1,
            1,
            8,
        ),
    );
    h.run();
    // Resolving 203.0.113.1 first, then the reply once it answers.
    h.inject(
        "external",
        &arp_reply(UPSTREAM_MAC, "203.0.113.1", EXT_MAC, "203.0.113.3"),
    );
    h.run();
    let out = h.tx("external");
    assert!(
        out.iter()
            .any(|f| f.len() > 34 && f[23] == 1 && f[26..30] == ip("203.0.113.3")),
        "fast {fast}: echo reply from the node's own address"
    );

    // Master of both: the same frames pass (the first FIP packet resolves the VM).
    master(&h, EXT, 10, true);
    master(&h, INT, 11, true);
    h.inject(
        "internal",
        &arp_reply(VM_MAC, "10.0.0.5", "02:00:00:00:00:02", "10.0.0.2"),
    );
    h.run();
    let backup = h.drops(DropReason::VrrpBackup);
    for _ in 0..3 {
        h.inject("external", &to_fip);
        h.run();
    }
    let out = h.tx("internal");
    assert_eq!(out.len(), 3, "fast {fast}: DNAT to the VM");
    assert!(out.iter().all(|f| f[30..34] == ip("10.0.0.5")));
    h.inject("internal", &from_vm);
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 1, "fast {fast}: SNAT out through the FIP");
    assert_eq!(out[0][26..30], ip("203.0.113.10"));
    assert_eq!(h.drops(DropReason::VrrpBackup), backup);
    if fast {
        assert!(h.stats().fast_path.get() >= 3, "the fast path carried them");
    }
    // Demoted on the external side only: FIP traffic stops at the next poll, the tenant
    // side still forwards.
    master(&h, EXT, 10, false);
    h.inject("external", &to_fip);
    h.run();
    assert!(h.tx("internal").is_empty());
    assert_eq!(h.drops(DropReason::VrrpBackup), backup + 1);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn a_backup_takes_no_traffic_for_what_its_groups_own() {
    traffic_to_owned_addresses(false);
}

#[test]
fn a_backup_takes_no_traffic_for_what_its_groups_own_on_the_fast_path() {
    traffic_to_owned_addresses(true);
}

#[test]
fn a_backup_announces_nothing_its_groups_own() {
    let mut h = Harness::new(&conf(true));
    let fip = Announcement {
        port: EXT,
        ip: u32::from_be_bytes(ip("203.0.113.10")),
        mac: EthernetAddress(mac(EXT_MAC)),
    };
    h.w.bus.garp.push(fip).unwrap();
    h.advance(1_000);
    assert!(h.tx("external").is_empty());
    master(&h, EXT, 10, true);
    h.w.bus.garp.push(fip).unwrap();
    h.advance(1_000);
    let out = h.tx("external");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][28..32], ip("203.0.113.10"));
    assert_eq!(h.stats().garp_sent.get(), 1);
}
