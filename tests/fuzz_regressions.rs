//! Inputs found by the fuzz targets (`fuzz/`, `cargo fuzz`), replayed as plain tests through
//! the very code the fuzzer runs: the target bodies are included from `fuzz/src`, so no
//! libFuzzer is needed. The seed corpus is replayed too: every seed must pass the targets'
//! invariants (books balance, no leaked frame, well-formed output).

#[path = "../fuzz/src/config.rs"]
mod config;
#[path = "../fuzz/src/pipeline.rs"]
mod pipeline;
#[path = "../fuzz/src/wire.rs"]
mod wire;

use std::path::Path;
use vgate::metrics::{ArpKind, DropReason, IcmpKind};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("seed"))
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn wire_seeds_replay() {
    let seeds = corpus("wire");
    assert!(seeds.len() >= 16, "{} wire seeds", seeds.len());
    for (name, data) in seeds {
        eprintln!("wire/{name}");
        wire::run(&data);
    }
}

#[test]
fn pipeline_seeds_replay() {
    let seeds = corpus("pipeline");
    assert!(seeds.len() >= 17, "{} pipeline seeds", seeds.len());
    // What the seeds make the policy stage decide, on the fast path's worker.
    let (mut acl, mut qos, mut fast) = (0u64, 0u64, 0u64);
    // And what they make IPv6 do: NDP answers of each kind, solicitations, router
    // advertisements, every ICMPv6 error, the drops of each NDP reason.
    let (mut ndp, mut ns_sent, mut ra) = ([0u64; 3], 0u64, 0u64);
    let mut errors6 = [0u64; 6];
    let mut ndp_drops = [0u64; 4];
    let ndp_reasons = [
        DropReason::NdpSpoofed,
        DropReason::NdpNotOurs,
        DropReason::NdpLearned,
        DropReason::NdpMalformed,
    ];
    let kinds6 = [
        IcmpKind::Icmp6TimeExceeded,
        IcmpKind::Icmp6NoRoute,
        IcmpKind::Icmp6AddressUnreachable,
        IcmpKind::Icmp6PortUnreachable,
        IcmpKind::Icmp6PacketTooBig,
        IcmpKind::Icmp6ParamProblem,
    ];
    for (name, data) in seeds {
        eprintln!("pipeline/{name}");
        if let Some(h) = pipeline::play(&data) {
            let s = &h.worker.stats;
            acl += s.acl.iter().map(|c| c.get()).sum::<u64>();
            qos += s.qos_dropped.iter().map(|c| c.get()).sum::<u64>();
            fast += s.fast_path.get();
            for (k, n) in [ArpKind::Router, ArpKind::Proxy, ArpKind::Endpoint]
                .iter()
                .zip(ndp.iter_mut())
            {
                *n += s.ndp_advertisements[*k as usize].get();
            }
            ns_sent += s.ndp_solicitations_sent.get();
            ra += s.ra_sent.get();
            for (k, n) in kinds6.iter().zip(errors6.iter_mut()) {
                *n += s.icmp_errors[*k as usize].get();
            }
            for (r, n) in ndp_reasons.iter().zip(ndp_drops.iter_mut()) {
                *n += s.drop_count(*r);
            }
        }
    }
    eprintln!("seeds: {acl} ACL decisions, {qos} rate-limit drops, {fast} fast-path packets");
    eprintln!(
        "IPv6: NDP answers {ndp:?} (router, proxy, endpoint), {ns_sent} solicitations, \
         {ra} RAs, ICMPv6 errors {errors6:?}, NDP drops {ndp_drops:?} (spoofed, not ours, \
         learned, malformed)"
    );
    assert!(acl > 0 && qos > 0, "the seeds reach the policy stage");
    assert!(ndp.iter().all(|n| *n > 0), "NDP answers {ndp:?}");
    assert!(ns_sent > 0 && ra > 0);
    // Every ICMPv6 error but no route: every table has a default route.
    for (k, n) in kinds6.iter().zip(errors6) {
        assert!(
            n > 0 || *k == IcmpKind::Icmp6NoRoute,
            "no seed makes vgate send {}",
            k.label()
        );
    }
    assert!(ndp_drops.iter().all(|n| *n > 0), "NDP drops {ndp_drops:?}");
}

#[test]
fn config_seeds_replay() {
    let seeds = corpus("config");
    assert!(seeds.len() >= 10, "{} config seeds", seeds.len());
    for (name, data) in seeds {
        eprintln!("config/{name}");
        config::run(&data);
    }
}

/// Ethernet + IPv4 + ICMP header fields shared by the frames below, checksums made right.
fn eth_ipv4_icmp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    icmp: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + icmp.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(icmp);
    pipeline::fix_checksums(&mut f, 0);
    f
}

fn icmp_verifies(frame: &[u8]) -> bool {
    let l4 = &frame[14 + 20..];
    vgate::wire::checksum::checksum(l4) == 0
}

/// What the harness sent, without the router advertisements vgate sends on its own on the
/// tenant port (fuzz/pipeline.toml's network "lab" has RAs on, the first from the first
/// poll).
fn without_ras(sent: Vec<(usize, Vec<u8>)>) -> Vec<(usize, Vec<u8>)> {
    sent.into_iter()
        .filter(|(_, f)| !(f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[14 + 40] == 134))
        .collect()
}

const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const INT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const UPSTREAM_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const HOST_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 2, 0x1e];
const LAB_GW_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 2, 1];
const REMOTE: [u8; 4] = [198, 18, 0, 7];

/// Found by `wire`: an echo request with identifier, sequence and data all zero became a
/// reply whose ICMP message is all zeros, checksum included; only 0xffff verifies there
/// (RFC 1624 section 3), the incremental update wrote 0x0000.
#[test]
fn wire_all_zero_echo_reply_checksum() {
    let echo = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let mut input = vec![0u8]; // selector: Ethernet
    input.extend(eth_ipv4_icmp(
        EXT_MAC,
        UPSTREAM_MAC,
        REMOTE,
        [203, 0, 113, 2],
        &echo,
    ));
    wire::run(&input);

    let mut m = echo;
    vgate::wire::icmp::Packet::new_checked(&mut m[..])
        .unwrap()
        .echo_request_to_reply();
    assert_eq!(m, [0, 0, 0xff, 0xff, 0, 0, 0, 0]);
}

/// The same message through the pipeline: vgate's echo reply must verify.
#[test]
fn pipeline_all_zero_echo_reply_verifies() {
    let mut h = pipeline::Harness::new(0xfc);
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&UPSTREAM_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&UPSTREAM_MAC);
        f.extend_from_slice(&[203, 0, 113, 1, 0, 0, 0, 0, 0, 0, 203, 0, 113, 2]);
        f
    };
    h.inject_on("external", &arp);
    h.inject_on(
        "external",
        &eth_ipv4_icmp(
            EXT_MAC,
            UPSTREAM_MAC,
            REMOTE,
            [203, 0, 113, 2],
            &[8, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    h.run();
    let sent = without_ras(std::mem::take(&mut h.sent));
    assert_eq!(sent.len(), 2, "ARP reply and echo reply");
    let reply = &sent[1].1;
    assert_eq!(&reply[14 + 20..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert!(icmp_verifies(reply));
    h.finish();
}

/// SNAT puts the tenant's echo identifier back into a reply (RFC 5508 section 3.1): an
/// identifier of 0 with sequence 0 and no data leaves an all-zero message, whose checksum
/// must be 0xffff.
#[test]
fn pipeline_snat_echo_reply_back_to_identifier_zero_verifies() {
    let mut h = pipeline::Harness::new(0xfc);
    let arp = |src_mac: [u8; 6], src: [u8; 4], target: [u8; 4]| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    };
    h.inject_on(
        "external",
        &arp(UPSTREAM_MAC, [203, 0, 113, 1], [203, 0, 113, 2]),
    );
    h.inject_on("internal", &arp(HOST_MAC, [10, 10, 1, 30], [10, 10, 1, 1]));
    h.inject_on(
        "internal",
        &eth_ipv4_icmp(
            INT_MAC,
            HOST_MAC,
            [10, 10, 1, 30],
            REMOTE,
            &[8, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    h.run();
    let sent = without_ras(std::mem::take(&mut h.sent));
    let (_, out) = sent
        .iter()
        .find(|(p, f)| *p == 0 && f[12..14] == [0x08, 0x00])
        .expect("the translated request, out of the external port");
    assert_eq!(&out[14 + 12..14 + 16], &[203, 0, 113, 3], "SNAT source");
    let ident = [out[14 + 24], out[14 + 25]];
    h.inject_on(
        "external",
        &eth_ipv4_icmp(
            EXT_MAC,
            UPSTREAM_MAC,
            REMOTE,
            [203, 0, 113, 3],
            &[0, 0, 0, 0, ident[0], ident[1], 0, 0],
        ),
    );
    h.run();
    let sent = without_ras(std::mem::take(&mut h.sent));
    assert_eq!(sent.len(), 1);
    let (port, back) = &sent[0];
    assert_eq!(*port, 2, "to the internal port");
    assert_eq!(&back[14 + 20..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert!(icmp_verifies(back));
    h.finish();
}

/// Found by `pipeline`: a tenant UDP datagram whose IPv4 total length leaves 7 bytes for
/// the UDP header, in a frame padded beyond it. SNAT read the ports from the padding, took
/// a session and then patched the UDP checksum inside the 7 bytes: out of bounds, a panic
/// in the worker. The port must come from a whole transport header within the total length.
#[test]
fn pipeline_snat_udp_header_cut_by_total_length() {
    let input = include_bytes!("../fuzz/regressions/pipeline/snat_udp_header_cut_by_total_length");
    pipeline::run(input);
}

/// An ICMPv6 echo request from `src` to `dst`, from `src_mac` to `dst_mac`.
fn echo6(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str) -> Vec<u8> {
    let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(a(src), a(dst), 64)
        .icmpv6_echo_request(0x77, 1);
    let mut out = Vec::new();
    b.write(&mut out, b"ping6").unwrap();
    out
}

/// The upstream router's solicitation for vgate's external address, with its link-layer
/// address: vgate learns where the IPv6 default route leads.
fn upstream_ns() -> Vec<u8> {
    let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut body = a("2001:db8:ff::2").to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&UPSTREAM_MAC);
    let b = etherparse::PacketBuilder::ethernet2(UPSTREAM_MAC, [0x33, 0x33, 0xff, 0, 0, 2])
        .ipv6(a("2001:db8:ff::1"), a("ff02::1:ff00:2"), 255)
        .icmpv6_raw(135, 0, [0; 4]);
    let mut out = Vec::new();
    b.write(&mut out, &body).unwrap();
    out
}

/// What `h` sent with an IPv6 link-local source that is not vgate's on the port it left by
/// (the port's own, or a gateway of a network on it): RFC 4291 section 2.5.6 keeps
/// link-local packets on their link.
fn off_link(h: &pipeline::Harness) -> Vec<String> {
    let snap = h.worker.tables.load();
    let ip6 = &snap.ip6;
    h.sent
        .iter()
        .filter(|(_, f)| f.len() >= 54 && f[12..14] == [0x86, 0xdd])
        .filter_map(|(p, f)| {
            let addr =
                |at: usize| u128::from_be_bytes(f[14 + at..14 + at + 16].try_into().unwrap());
            let (src, dst) = (addr(8), addr(24));
            let ours = ip6.ports[*p].link_local == src
                || ip6
                    .networks
                    .iter()
                    .any(|n| n.port == Some(*p as u8) && n.gateway == src);
            (src >> 118 == 0x3fa && !ours).then(|| {
                format!(
                    "{} to {} out of {}, ICMPv6 type {}",
                    std::net::Ipv6Addr::from_bits(src),
                    std::net::Ipv6Addr::from_bits(dst),
                    snap.ports[*p].name,
                    f[54]
                )
            })
        })
        .collect()
}

/// Found by `pipeline` (IPv6): a tenant host vgate had not resolved pinged its gateway's
/// link-local address; vgate's echo reply waited for the host's address, which never
/// answered, and the address unreachable error about the reply went from the tenant port's
/// link-local address to the gateway's (vgate's own) by the main table's default route: out
/// of the external port, to the upstream router's MAC.
#[test]
fn pipeline_ipv6_link_local_source_off_link() {
    let input = include_bytes!("../fuzz/regressions/pipeline/ipv6_link_local_source_off_link");
    let h = pipeline::play(input).expect("an input");
    let off = off_link(&h);
    assert!(
        off.is_empty(),
        "link-local sources off their link: {off:#?}"
    );
}

/// The same as it happens: the upstream router is resolved, a tenant host vgate has not
/// resolved pings the gateway's link-local address. The reply waits for the host; when NDP
/// gives up, no error about vgate's own reply may leave, least of all by another link.
#[test]
fn pipeline_ipv6_error_about_own_echo_reply_stays_home() {
    let mut h = pipeline::Harness::new(0xfc);
    h.inject_on("external", &upstream_ns());
    h.run();
    h.inject_on(
        "internal",
        &echo6(
            HOST_MAC,
            LAB_GW_MAC,
            "2001:db8:100:1::1e",
            "fe80::f816:3eff:fe00:201",
        ),
    );
    h.run();
    h.finish();
    let off = off_link(&h);
    assert!(
        off.is_empty(),
        "link-local sources off their link: {off:#?}"
    );
}

/// A packet from outside the tenant prefix, received on the tenant port, to that port's
/// link-local address: the echo reply from that address must not leave by the external
/// port, where the default route points.
#[test]
fn pipeline_ipv6_echo_reply_from_link_local_stays_on_link() {
    let mut h = pipeline::Harness::new(0xfc);
    h.inject_on("external", &upstream_ns());
    h.run();
    h.inject_on(
        "internal",
        &echo6(HOST_MAC, LAB_GW_MAC, "2001:db8:beef::7", "fe80::ff:fe00:3"),
    );
    h.run();
    h.finish();
    let off = off_link(&h);
    assert!(
        off.is_empty(),
        "link-local sources off their link: {off:#?}"
    );
}

/// An ARP request (`op` 1) or reply (2) from `src_mac`, `src` asking for or telling `target`.
fn arp(src_mac: [u8; 6], dst_mac: [u8; 6], op: u8, src: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// The upstream router's other MAC, where it says it moved.
const MOVED_MAC: [u8; 6] = [2, 0, 0, 0, 3, 1];

/// Found by `pipeline` (IPv6): one batch on the external port holds a neighbour
/// advertisement that moves the upstream router to another MAC, then a packet routed back
/// to the upstream router. The stages take every NDP message of the batch before they
/// forward (ip6_input before ip6_forward) and send the packet to the new MAC; the fast path
/// forwards the packet before the stages see the advertisement, to the old one. The
/// harness's fast/staged comparison fails.
#[test]
fn pipeline_ipv6_neighbor_moved_in_the_same_batch() {
    let input =
        include_bytes!("../fuzz/regressions/pipeline/ipv6_neighbor_moved_in_the_same_batch");
    pipeline::run(input);
}

/// The same, made by hand: the advertisement (solicited, override) and the packet in one
/// batch.
#[test]
fn pipeline_ipv6_advertisement_and_packet_in_one_batch() {
    let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut h = pipeline::Harness::new(0xfc);
    h.inject_on("external", &upstream_ns());
    h.run();
    let mut body = a("2001:db8:ff::1").to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&MOVED_MAC);
    let na = etherparse::PacketBuilder::ethernet2(MOVED_MAC, EXT_MAC)
        .ipv6(a("2001:db8:ff::1"), a("2001:db8:ff::2"), 255)
        .icmpv6_raw(136, 0, [0x60, 0, 0, 0]);
    let mut f = Vec::new();
    na.write(&mut f, &body).unwrap();
    h.inject_on("external", &f);
    let udp = etherparse::PacketBuilder::ethernet2(UPSTREAM_MAC, EXT_MAC)
        .ipv6(a("2001:db8:beef::7"), a("2001:db8:beef::9"), 64)
        .udp(1, 2);
    let mut f = Vec::new();
    udp.write(&mut f, b"x").unwrap();
    h.inject_on("external", &f);
    h.run();
    h.finish();
}

/// The same for IPv4, where it was there before IPv6: an ARP reply that moves the upstream
/// router and a packet routed back to it, in one batch.
#[test]
fn pipeline_ipv4_arp_reply_and_packet_in_one_batch() {
    let mut h = pipeline::Harness::new(0xfc);
    h.inject_on(
        "external",
        &arp(
            UPSTREAM_MAC,
            [0xff; 6],
            1,
            [203, 0, 113, 1],
            [203, 0, 113, 2],
        ),
    );
    h.run();
    h.inject_on(
        "external",
        &arp(MOVED_MAC, EXT_MAC, 2, [203, 0, 113, 1], [203, 0, 113, 2]),
    );
    let udp = etherparse::PacketBuilder::ethernet2(UPSTREAM_MAC, EXT_MAC)
        .ipv4([198, 18, 0, 7], [198, 18, 0, 9], 64)
        .udp(1, 2);
    let mut f = Vec::new();
    udp.write(&mut f, b"x").unwrap();
    h.inject_on("external", &f);
    h.run();
    h.finish();
}
