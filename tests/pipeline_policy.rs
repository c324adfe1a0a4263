//! ACLs and rate limits on the in-memory backend, on both paths (the fast path on and off):
//! what passes, what is dropped and under which reason and rule, stateful replies, token
//! buckets, DSCP marking, and a stateful flow split over two workers.

mod common_pipeline;
use common_pipeline::*;
use vgate::metrics::DropReason;

const BASE: &str = r#"
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

[[acl]]
name = "web"
default = "drop"
rules = [
  { action = "allow", direction = "in", protocol = "tcp", dst_ports = "80,443" },
  { action = "allow", direction = "in", protocol = "icmp" },
  { action = "allow-related", direction = "out" },
]

[[network]]
name = "tenant-a"
port = "internal"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[network]]
name = "tenant-b"
port = "internal"
subnet = "10.0.1.0/24"
gateway = "10.0.1.1"
gateway_mac = "fa:16:3e:00:00:01"
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const GW_MAC: &str = "fa:16:3e:00:00:01";
const VM_MAC: &str = "fa:16:3e:00:00:05";
const VMB_MAC: &str = "fa:16:3e:00:01:05";
const UPSTREAM_MAC: &str = "02:00:00:00:02:01";

/// The web ACL's counter slots: rule r at r, the default at 3, related passes at 4.
const DEFAULT_SLOT: usize = 3;
const RELATED_SLOT: usize = 4;

fn conf(extra: &str, fast: bool) -> String {
    format!("[dataplane]\nfast_path = {fast}\n{BASE}\n{extra}")
}

fn ready(extra: &str, fast: bool) -> Harness {
    let mut h = Harness::new(&conf(extra, fast));
    h.inject("internal", &arp_request(VM_MAC, "10.0.0.5", "10.0.0.1"));
    h.inject("internal", &arp_request(VMB_MAC, "10.0.1.5", "10.0.1.1"));
    h.inject(
        "external",
        &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
    );
    h.run();
    h.tx("internal");
    h.tx("external");
    h
}

fn tcp(src_mac: &str, dst_mac: &str, src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, 1000, 64240)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, b"").unwrap();
    out
}

fn acl_count(h: &Harness, slot: usize) -> u64 {
    h.stats().acl[slot].get()
}

const FIP_WEB: &str = r#"
[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"
acl = "web"
"#;

#[test]
fn an_inbound_acl_on_a_floating_ip_allows_port_80_and_drops_port_22() {
    for fast in [true, false] {
        let mut h = ready(FIP_WEB, fast);
        h.inject(
            "external",
            &tcp(
                UPSTREAM_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.10",
                40000,
                80,
            ),
        );
        h.run();
        let out = h.tx("internal");
        assert_eq!(out.len(), 1, "fast={fast}: port 80 reaches the VM");
        assert_eq!(&out[0][14 + 16..14 + 20], &ip("10.0.0.5"));
        assert_eq!(acl_count(&h, 0), 1);

        h.inject(
            "external",
            &tcp(
                UPSTREAM_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.10",
                40001,
                22,
            ),
        );
        h.run();
        assert!(
            h.tx("internal").is_empty(),
            "fast={fast}: port 22 gets nothing"
        );
        assert!(
            h.tx("external").is_empty(),
            "fast={fast}: and no error back"
        );
        assert_eq!(h.drops(DropReason::AclDenied), 1);
        assert_eq!(acl_count(&h, DEFAULT_SLOT), 1, "counted under the default");
        assert_eq!(h.frames_in_use(), 0);

        // ICMP echo is allowed in.
        h.inject(
            "external",
            &icmp_echo(
                UPSTREAM_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.10",
                64,
                7,
                1,
                8,
            ),
        );
        h.run();
        assert_eq!(h.tx("internal").len(), 1, "fast={fast}");
        assert_eq!(acl_count(&h, 1), 1);
    }
}

#[test]
fn allow_related_lets_the_replies_of_an_outbound_flow_in_and_nothing_else() {
    for fast in [true, false] {
        let mut h = ready(FIP_WEB, fast);
        let out = udp(VM_MAC, GW_MAC, "10.0.0.5", "198.51.100.7", 64, 5353, 53, 20);
        h.inject("internal", &out);
        h.run();
        let sent = h.tx("external");
        assert_eq!(sent.len(), 1, "fast={fast}");
        assert_eq!(&sent[0][14 + 12..14 + 16], &ip("203.0.113.10"));
        assert_eq!(acl_count(&h, 2), 1, "the allow-related rule");

        // The reply passes as related.
        let reply = udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            53,
            5353,
            20,
        );
        h.inject("external", &reply);
        h.run();
        assert_eq!(h.tx("internal").len(), 1, "fast={fast}: the reply");
        assert_eq!(acl_count(&h, RELATED_SLOT), 1);

        // The same remote from another port, or another remote: no flow, dropped.
        for (src, sport) in [("198.51.100.7", 54u16), ("198.51.100.8", 53)] {
            let stray = udp(
                UPSTREAM_MAC,
                EXT_MAC,
                src,
                "203.0.113.10",
                60,
                sport,
                5353,
                20,
            );
            h.inject("external", &stray);
        }
        h.run();
        assert!(h.tx("internal").is_empty(), "fast={fast}");
        assert_eq!(h.drops(DropReason::AclDenied), 2);
        assert_eq!(acl_count(&h, DEFAULT_SLOT), 2);
        assert_eq!(h.stats().acl_flows.get(), 0, "gauge set by the timer only");
        h.advance(20_000_000);
        assert_eq!(h.stats().acl_flows.get(), 1);
    }
}

#[test]
fn a_network_acl_holds_for_snat_traffic_before_translation() {
    let extra = r#"
[[acl]]
name = "no-ping-out"
default = "allow"
rules = [ { action = "drop", direction = "out", protocol = "icmp", dst = "198.51.100.0/24" } ]

[[network]]
name = "tenant-c"
port = "internal"
subnet = "10.0.2.0/24"
gateway = "10.0.2.1"
gateway_mac = "fa:16:3e:00:00:01"
acl = "no-ping-out"

[[snat]]
network = "tenant-c"
external = "203.0.113.2"
ports = "20000-20009"
"#;
    for fast in [true, false] {
        let mut h = ready(extra, fast);
        h.inject("internal", &arp_request(VM_MAC, "10.0.2.5", "10.0.2.1"));
        h.run();
        h.tx("internal");
        h.inject(
            "internal",
            &icmp_echo(VM_MAC, GW_MAC, "10.0.2.5", "198.51.100.7", 64, 9, 1, 8),
        );
        h.inject(
            "internal",
            &icmp_echo(VM_MAC, GW_MAC, "10.0.2.5", "192.0.2.99", 64, 9, 1, 8),
        );
        h.run();
        let out = h.tx("external");
        assert_eq!(
            out.len(),
            1,
            "fast={fast}: only the ping outside the rule's dst"
        );
        assert_eq!(&out[0][14 + 16..14 + 20], &ip("192.0.2.99"));
        assert_eq!(h.drops(DropReason::AclDenied), 1);
        // The ACL is the first one's neighbour: its slots start after web's five.
        assert_eq!(acl_count(&h, 5), 1, "the drop rule");
        assert_eq!(acl_count(&h, 6), 1, "the default allow");
        // No SNAT session was made for the dropped ping.
        h.advance(20_000_000);
        assert_eq!(h.stats().nat_sessions.get(), 1);
    }
}

#[test]
fn a_packet_rate_limit_passes_its_burst_then_its_rate() {
    let extra = r#"
[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"
qos = { in_kpps = 1 }
"#;
    for fast in [true, false] {
        let mut h = ready(extra, fast);
        let flood = |h: &mut Harness, n: u16| {
            for k in 0..n {
                let f = udp(
                    UPSTREAM_MAC,
                    EXT_MAC,
                    "198.51.100.7",
                    "203.0.113.10",
                    60,
                    1000 + k,
                    9,
                    20,
                );
                h.inject("external", &f);
            }
            h.run();
            h.tx("internal").len()
        };
        // A full bucket: 10 ms at 1 kpps, at least a batch (64).
        assert_eq!(flood(&mut h, 200), 64, "fast={fast}");
        assert_eq!(h.drops(DropReason::QosRateExceeded), 136);
        assert_eq!(h.stats().qos_dropped[1].get(), 0, "nothing out");
        assert_eq!(h.stats().qos_dropped[0].get(), 136, "in");
        // 30 ms later: 30 more.
        h.advance(30_000_000);
        assert_eq!(flood(&mut h, 100), 30, "fast={fast}");
        // The other direction is not limited.
        for k in 0..100 {
            let f = udp(
                VM_MAC,
                GW_MAC,
                "10.0.0.5",
                "198.51.100.7",
                64,
                2000 + k,
                9,
                20,
            );
            h.inject("internal", &f);
        }
        h.run();
        assert_eq!(h.tx("external").len(), 100);
    }
}

/// `n` datagrams of 1000 bytes (IP length) from the VM out, source ports from `sport`: how
/// many left.
fn out_burst(h: &mut Harness, n: u16, sport: u16) -> usize {
    for k in 0..n {
        let f = udp(
            VM_MAC,
            GW_MAC,
            "10.0.0.5",
            "198.51.100.7",
            64,
            sport + k,
            9,
            972,
        );
        h.inject("internal", &f);
    }
    h.run();
    h.tx("external").len()
}

#[test]
fn a_byte_rate_limit_counts_bytes() {
    // 8 Mbit/s = 1,000,000 bytes/s, a 64 KiB bucket.
    let extra = r#"
[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"
qos = { out_mbps = 8, burst_kb = 64 }
"#;
    for fast in [true, false] {
        let mut h = ready(extra, fast);
        // 1000-byte datagrams (IP length 1000): 65 fit in 65,536 bytes.
        assert_eq!(out_burst(&mut h, 100, 3000), 65, "fast={fast}");
        assert_eq!(h.drops(DropReason::QosRateExceeded), 35);
        // 10 ms: 10,000 bytes more, plus the 536 left.
        h.advance(10_000_000);
        assert_eq!(out_burst(&mut h, 20, 4000), 10, "fast={fast}");
    }
}

#[test]
fn dscp_is_marked_with_the_checksum_patched() {
    let fip = r#"
[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.5"
network = "tenant-a"
"#;
    let both_ways = |h: &mut Harness| {
        let f = udp(VM_MAC, GW_MAC, "10.0.0.5", "198.51.100.7", 64, 5000, 9, 20);
        h.inject("internal", &f);
        h.inject(
            "external",
            &udp(
                UPSTREAM_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.10",
                60,
                9,
                5000,
                20,
            ),
        );
        h.run();
    };
    // What the fast path takes of this traffic without a policy.
    let mut plain = ready(fip, true);
    both_ways(&mut plain);
    let unpoliced = plain.stats().fast_path.get();
    assert!(unpoliced >= 1);
    let extra = format!("{fip}qos = {{ dscp = 46 }}\n");
    for fast in [true, false] {
        let mut h = ready(&extra, fast);
        both_ways(&mut h);
        let out: Vec<Vec<u8>> = h
            .tx("external")
            .into_iter()
            .chain(h.tx("internal"))
            .collect();
        assert_eq!(out.len(), 2, "fast={fast}");
        for f in out {
            let p = parse(&f);
            let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
                panic!("IPv4")
            };
            let hd = v4.header();
            assert_eq!(hd.dcp().value(), 46, "fast={fast}");
            assert_eq!(
                hd.header_checksum(),
                hd.to_header().calc_header_checksum(),
                "fast={fast}"
            );
        }
        if fast {
            assert_eq!(
                h.stats().fast_path.get(),
                unpoliced,
                "marking keeps the fast path"
            );
        }
    }
}

#[test]
fn a_stateful_flow_split_over_two_workers_meets_on_its_owner() {
    let toml = conf(FIP_WEB, true);
    let mut w = Harness::workers(&toml, 2);
    for h in w.iter_mut() {
        h.inject("internal", &arp_request(VM_MAC, "10.0.0.5", "10.0.0.1"));
        h.inject(
            "external",
            &arp_request(UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"),
        );
        h.run();
        h.tx("internal");
        h.tx("external");
    }
    let poll_all = |w: &mut Vec<Harness>| {
        for _ in 0..3 {
            for h in w.iter_mut() {
                h.run();
            }
        }
    };
    // Out on worker 0, the reply on worker 1: the NIC hashes each direction on its own.
    w[0].inject(
        "internal",
        &udp(VM_MAC, GW_MAC, "10.0.0.5", "198.51.100.7", 64, 5353, 53, 20),
    );
    poll_all(&mut w);
    let sent: usize = w.iter_mut().map(|h| h.tx("external").len()).sum();
    assert_eq!(sent, 1);
    w[1].inject(
        "external",
        &udp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            60,
            53,
            5353,
            20,
        ),
    );
    poll_all(&mut w);
    let delivered: usize = w.iter_mut().map(|h| h.tx("internal").len()).sum();
    assert_eq!(delivered, 1, "the reply met its flow");
    let handed: u64 = w.iter().map(|h| h.stats().handoff_out.get()).sum();
    assert_eq!(handed, 1, "one of the two packets went to the flow's owner");
    let related: u64 = w.iter().map(|h| h.stats().acl[RELATED_SLOT].get()).sum();
    assert_eq!(related, 1);
    let denied: u64 = w.iter().map(|h| h.drops(DropReason::AclDenied)).sum();
    assert_eq!(denied, 0);
}

#[test]
fn policy_counters_reach_the_scrape() {
    let mut h = ready(FIP_WEB, true);
    h.inject(
        "external",
        &tcp(
            UPSTREAM_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            40001,
            22,
        ),
    );
    h.run();
    let snap = snapshot(&conf(FIP_WEB, true), 1);
    let cv = vgate::metrics::ControlValues::default().with_policy_of(&snap);
    let (ports, fips) = vgate::metrics::labels_of(&snap);
    let text = vgate::metrics::render(&[std::sync::Arc::new(clone_stats(&h))], &ports, &fips, &cv);
    assert!(
        text.contains(r#"vgate_acl_packets_total{acl="web",rule="default",action="drop"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"vgate_drops_total{stage="acl",reason="denied"} 1"#));
}

/// A copy of a harness worker's counters the scrape reads.
fn clone_stats(h: &Harness) -> vgate::metrics::WorkerStats {
    let s = vgate::metrics::WorkerStats::default();
    for (a, b) in s.acl.iter().zip(h.stats().acl.iter()) {
        a.set(b.get());
    }
    for (a, b) in s.drops.iter().zip(h.stats().drops.iter()) {
        a.set(b.get());
    }
    s
}

/// A reload swaps the policy with the rest of the snapshot: the next batch is decided by the
/// new rules, the counters of an ACL that kept its name and rule count go on.
#[test]
fn a_reload_changes_the_policy_at_once() {
    for fast in [true, false] {
        let mut h = ready(FIP_WEB, fast);
        let ssh = |h: &mut Harness, sport: u16| {
            h.inject(
                "external",
                &tcp(
                    UPSTREAM_MAC,
                    EXT_MAC,
                    "198.51.100.7",
                    "203.0.113.10",
                    sport,
                    22,
                ),
            );
            h.run();
            h.tx("internal").len()
        };
        assert_eq!(ssh(&mut h, 40000), 0, "fast={fast}");
        assert_eq!(h.drops(DropReason::AclDenied), 1);
        // The same ACL with port 22 allowed too.
        let opened =
            conf(FIP_WEB, fast).replace("dst_ports = \"80,443\"", "dst_ports = \"22,80,443\"");
        h.w.tables
            .store(std::sync::Arc::new(reloaded(&h, &opened, 2)));
        assert_eq!(
            ssh(&mut h, 40001),
            1,
            "fast={fast}: allowed after the reload"
        );
        assert_eq!(acl_count(&h, 0), 1, "rule 0 now");
        assert_eq!(
            acl_count(&h, DEFAULT_SLOT),
            1,
            "the earlier drop is still counted"
        );
        // No ACL on the floating IP at all: nothing decides, nothing counts.
        let none = conf(FIP_WEB, fast).replace("acl = \"web\"\n", "");
        h.w.tables
            .store(std::sync::Arc::new(reloaded(&h, &none, 3)));
        assert_eq!(ssh(&mut h, 40002), 1, "fast={fast}");
        assert_eq!(acl_count(&h, 0), 1);
    }
}

/// The snapshot of `toml` a reload builds over the one in service (counter slots kept).
fn reloaded(h: &Harness, toml: &str, generation: u64) -> vgate::tables::Snapshot {
    let cfg = vgate::control::config::Config::from_toml_str(toml).unwrap();
    let prev = h.w.tables.load();
    vgate::control::apply::build_snapshot(
        &cfg,
        generation,
        &|_| Some(vgate::wire::EthernetAddress([2, 0, 0, 0, 0, 0xee])),
        Some(&prev),
    )
    .unwrap()
}
