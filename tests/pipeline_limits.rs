//! `[limits]` on the in-memory backend: each configured bound holds exactly, and what it
//! refuses is dropped with its named reason and counted once.

mod common_pipeline;
use common_pipeline::*;
use vgate::control::apply::neighbor_config;
use vgate::control::config::Config;
use vgate::metrics::DropReason;

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
"#;

const INT_MAC: &str = "02:00:00:00:00:02";
const EXT_MAC: &str = "02:00:00:00:00:01";
const CLIENT_MAC: &str = "02:00:00:00:01:02";
const HOST_MAC: &str = "02:00:00:00:02:01";

/// A worker built from `[limits]` the way `vgate run` builds it, which already knows the
/// client (one neighbour entry).
fn harness(limits: &str) -> Harness {
    let toml = format!("{CONF}\n[limits]\n{limits}");
    let cfg = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
    let mut h = Harness::with_neighbors(&toml, neighbor_config(&cfg.limits));
    h.w.state
        .set_icmp_rate(cfg.limits.icmp_errors_per_sec, cfg.limits.icmp_errors_burst);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.run();
    assert_eq!(h.tx("internal").len(), 1, "ARP reply to the client");
    h
}

/// A packet from the client to `dst`, an on-link host of the external port (its own next
/// hop); `n` makes packets distinct.
fn to_host(h: &mut Harness, dst: &str, n: u16) {
    h.inject(
        "internal",
        &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", dst, 64, 1000 + n, 53, 8),
    );
}

fn arp_requests_for(frames: &[Vec<u8>]) -> Vec<[u8; 4]> {
    frames
        .iter()
        .filter(|f| f[12..14] == [0x08, 0x06])
        .map(|f| f[38..42].try_into().unwrap())
        .collect()
}

#[test]
fn neighbor_table_bound() {
    // The client's entry is one of the four (learned from its ARP request: entries nobody
    // asked vgate to resolve may fill what the three resolutions leave).
    let mut h = harness("neighbors = 4\nunresolved_neighbors = 3");
    for (i, d) in [
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.13",
    ]
    .iter()
    .enumerate()
    {
        to_host(&mut h, d, i as u16);
    }
    h.run();
    let asked = arp_requests_for(&h.tx("external"));
    assert_eq!(
        asked,
        vec![ip("203.0.113.10"), ip("203.0.113.11"), ip("203.0.113.12")]
    );
    assert_eq!(h.drops(DropReason::RewriteNeighborTableFull), 1);
    assert_eq!(h.stats().held.get(), 3);
    // An answer does not make room: the entry stays, resolved.
    h.inject(
        "external",
        &arp_reply(HOST_MAC, "203.0.113.10", EXT_MAC, "203.0.113.2"),
    );
    to_host(&mut h, "203.0.113.13", 9);
    h.run();
    assert_eq!(h.tx("external").len(), 1, "the held packet for .10");
    assert_eq!(h.drops(DropReason::RewriteNeighborTableFull), 2);
}

#[test]
fn unresolved_neighbors_bound() {
    let mut h = harness("unresolved_neighbors = 4");
    for i in 0..5u16 {
        to_host(&mut h, &format!("203.0.113.{}", 10 + i), i);
    }
    h.run();
    assert_eq!(arp_requests_for(&h.tx("external")).len(), 4);
    assert_eq!(h.drops(DropReason::RewriteNeighborTableFull), 1);
    assert_eq!(h.stats().held.get(), 4);
    // Resolving one frees its place for another next hop.
    h.inject(
        "external",
        &arp_reply(HOST_MAC, "203.0.113.10", EXT_MAC, "203.0.113.2"),
    );
    to_host(&mut h, "203.0.113.14", 5);
    h.run();
    let out = h.tx("external");
    assert_eq!(arp_requests_for(&out), vec![ip("203.0.113.14")]);
    assert_eq!(out.len(), 2, "the released packet and the new request");
    assert_eq!(h.drops(DropReason::RewriteNeighborTableFull), 1);
}

#[test]
fn hold_queue_per_next_hop_bound() {
    let mut h = harness("held_per_neighbor = 2");
    for i in 0..5 {
        to_host(&mut h, "203.0.113.10", i);
    }
    h.run();
    assert_eq!(arp_requests_for(&h.tx("external")).len(), 1);
    assert_eq!(h.stats().held.get(), 2);
    assert_eq!(h.drops(DropReason::RewriteNeighborQueueFull), 3);
    h.inject(
        "external",
        &arp_reply(HOST_MAC, "203.0.113.10", EXT_MAC, "203.0.113.2"),
    );
    h.run();
    let out = h.tx("external");
    assert_eq!(out.len(), 2, "exactly the held packets leave");
    assert!(out.iter().all(|f| f[0..6] == mac(HOST_MAC)));
    assert_eq!(h.stats().held.get(), 0);
    assert_eq!(h.frames_in_use(), 0);
}

#[test]
fn held_packets_total_bound() {
    let mut h = harness("held_per_neighbor = 2\nheld_packets = 3");
    to_host(&mut h, "203.0.113.10", 0);
    to_host(&mut h, "203.0.113.10", 1);
    to_host(&mut h, "203.0.113.11", 2);
    to_host(&mut h, "203.0.113.11", 3);
    // No room left at all: not held, and not even asked for.
    to_host(&mut h, "203.0.113.12", 4);
    h.run();
    assert_eq!(
        arp_requests_for(&h.tx("external")),
        vec![ip("203.0.113.10"), ip("203.0.113.11")]
    );
    assert_eq!(h.stats().held.get(), 3);
    assert_eq!(h.drops(DropReason::RewriteNeighborQueueFull), 2);
    assert_eq!(h.drops(DropReason::RewriteNeighborTableFull), 0);
    // When .10 answers, its two frames leave and .12 can be held again.
    h.inject(
        "external",
        &arp_reply(HOST_MAC, "203.0.113.10", EXT_MAC, "203.0.113.2"),
    );
    h.run();
    assert_eq!(h.tx("external").len(), 2);
    to_host(&mut h, "203.0.113.12", 5);
    h.run();
    assert_eq!(
        arp_requests_for(&h.tx("external")),
        vec![ip("203.0.113.12")]
    );
    assert_eq!(h.stats().held.get(), 2);
    assert_eq!(h.drops(DropReason::RewriteNeighborQueueFull), 2);
}

/// Sends `n` packets to an address with no route (each wants an ICMP net unreachable) and
/// returns how many ICMP errors came back. ARP refreshes of the client are not counted.
fn unroutable(h: &mut Harness, n: u16) -> usize {
    for i in 0..n {
        h.inject(
            "internal",
            &udp(CLIENT_MAC, INT_MAC, "10.10.1.2", "192.0.2.99", 64, i, 53, 8),
        );
    }
    h.run();
    h.tx("internal")
        .iter()
        .filter(|f| f[12..14] == [0x08, 0x00] && f[23] == 1)
        .count()
}

#[test]
fn icmp_error_burst_and_rate() {
    let mut h = harness("icmp_errors_per_sec = 2\nicmp_errors_burst = 3");
    assert_eq!(unroutable(&mut h, 10), 3, "the burst");
    assert_eq!(h.drops(DropReason::RouteNoRoute), 10);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 7);
    assert_eq!(h.stats().icmp_rate_limited.get(), 7);
    // Half a second earns one token at 2/s.
    h.advance(SEC / 2);
    assert_eq!(unroutable(&mut h, 3), 1);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 9);
    // A long pause refills the bucket to the burst, not beyond. (The client's entry, unused
    // that long, is collected meanwhile: it announces itself again.)
    h.advance(60 * SEC);
    h.inject(
        "internal",
        &arp_request(CLIENT_MAC, "10.10.1.2", "10.10.1.1"),
    );
    h.run();
    h.tx("internal");
    assert_eq!(unroutable(&mut h, 10), 3);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 16);
}

#[test]
fn icmp_errors_off() {
    let mut h = harness("icmp_errors_per_sec = 0");
    assert_eq!(unroutable(&mut h, 5), 0);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 5);
}

#[test]
fn defaults_are_the_documented_values() {
    let cfg = Config::from_toml_str(CONF).unwrap();
    let n = neighbor_config(&cfg.limits);
    assert_eq!(
        (
            n.max_entries,
            n.max_unresolved,
            n.hold_per_entry,
            n.max_held
        ),
        (16384, 512, 16, 8192)
    );
    assert_eq!(
        (cfg.limits.icmp_errors_per_sec, cfg.limits.icmp_errors_burst),
        (1000, 50)
    );
}
