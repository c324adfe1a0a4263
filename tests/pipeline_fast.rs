//! The fast path against the stages: the same traffic through a worker with the fast path
//! and through one without it must leave as the same bytes, in the same order, with the
//! same counters; and the fast path must take what it is for and leave everything else
//! untouched for the stages.

mod common_pipeline;
use common_pipeline::*;
use std::sync::Arc;
use vgate::io::FramePool;
use vgate::metrics::{ControlValues, DropReason, WorkerStats};
use vgate::pipeline::{self, Batch, Ctx, MAX_BATCH, Next, TxQueues, WorkerState};
use vgate::tables::neighbor::NeighborConfig;
use vgate::wire::EthernetAddress;

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
mtu = 1400

[[port]]
name = "dmz"
iface = "dmz0"
mac = "02:00:00:00:00:03"
addresses = ["192.168.5.1/24"]
route_table = "dmz"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[route]]
table = "dmz"
prefix = "198.51.100.0/25"
via = "192.168.5.7"

[[network]]
name = "a"
port = "internal"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[network]]
name = "b"
port = "internal"
subnet = "10.1.0.0/24"
gateway = "10.1.0.1"
gateway_mac = "fa:16:3e:00:00:01"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.0.0.10"
network = "a"

[[floating_ip]]
external = "203.0.113.11"
internal = "10.0.0.11"
network = "a"
mac = "fa:16:3e:aa:bb:cc"

[[snat]]
network = "b"
external = "203.0.113.20"
ports = "20000-20099"
"#;

const EXT_MAC: &str = "02:00:00:00:00:01";
const INT_MAC: &str = "02:00:00:00:00:02";
const DMZ_MAC: &str = "02:00:00:00:00:03";
const GW_MAC: &str = "fa:16:3e:00:00:01";
const FIP_MAC: &str = "fa:16:3e:aa:bb:cc";
const PEER_MAC: &str = "02:00:00:00:09:09";

/// Port index, address and MAC of every neighbour both workers know from the start;
/// 10.0.0.12 and 192.168.5.8 stay unknown.
const NEIGHBORS: [(u8, &str, &str); 5] = [
    (0, "203.0.113.1", "02:00:00:00:02:01"),
    (1, "10.0.0.10", "fa:16:3e:00:00:10"),
    (1, "10.0.0.11", "fa:16:3e:00:00:11"),
    (1, "10.1.0.5", "fa:16:3e:00:01:05"),
    (2, "192.168.5.7", "02:00:00:00:05:07"),
];

fn learn_all(state: &mut WorkerState, now: u64, neighbors: &[(u8, &str, &str)]) {
    for &(port, ip_s, mac_s) in neighbors {
        if ip_s.contains(':') {
            state.neighbors6.learn(
                port,
                u128::from_be_bytes(ip6(ip_s)),
                EthernetAddress(mac(mac_s)),
                now,
                true,
                &mut Vec::new(),
            );
            continue;
        }
        let ip = u32::from_be_bytes(ip(ip_s));
        state.neighbors.learn(
            port,
            ip,
            EthernetAddress(mac(mac_s)),
            now,
            true,
            &mut Vec::new(),
        );
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn tcp(src_mac: &str, dst_mac: &str, src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, 1000, 65535)
        .ack(1);
    let mut out = Vec::new();
    b.write(&mut out, &[0x5a; 40]).unwrap();
    out
}

/// The gateway MAC of the Geneve network.
const GW_G: &str = "fa:16:3e:00:01:01";

/// A TCP SYN announcing an MSS of 1460.
fn tcp_syn_mss(src_mac: &str, dst_mac: &str, src: &str, dst: &str) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), 64)
        .tcp(5002, 443, 1000, 65535)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// A received frame: (port name, bytes). Mostly traffic the fast path is for, with every
/// kind of exception mixed in, so that both paths see the same interleavings.
fn frame(r: &mut Rng) -> (&'static str, Vec<u8>) {
    let internet = ["198.51.100.7", "198.51.100.200", "192.0.2.33"];
    let (port, mut f) = match r.next() % 12 {
        // To a floating IP (one of them with its own MAC), or to an address that is none.
        0..=2 => {
            let dst = *r.pick(&["203.0.113.10", "203.0.113.11", "203.0.113.12"]);
            let dmac = if dst == "203.0.113.11" && r.chance(50) {
                FIP_MAC
            } else {
                EXT_MAC
            };
            let src = *r.pick(&internet);
            let f = match r.next() % 3 {
                0 => udp(
                    PEER_MAC,
                    dmac,
                    src,
                    dst,
                    64,
                    4000,
                    53,
                    r.pick(&[0, 18, 1300]).to_owned(),
                ),
                1 => tcp(PEER_MAC, dmac, src, dst, 4001, 80),
                _ => icmp_echo(PEER_MAC, dmac, src, dst, 64, 7, 1, 56),
            };
            ("external", f)
        }
        // From a VM with a floating IP, a VM of the SNAT network, or one without either.
        3..=6 => {
            let src = *r.pick(&["10.0.0.10", "10.0.0.11", "10.1.0.5", "10.0.0.12"]);
            let dst = *r.pick(&[
                "198.51.100.7",
                "10.1.0.5",
                "10.0.0.12",
                "10.0.0.1",
                "203.0.113.10",
            ]);
            let dmac = *r.pick(&[INT_MAC, INT_MAC, GW_MAC]);
            let f = match r.next() % 3 {
                0 => udp(
                    PEER_MAC,
                    dmac,
                    src,
                    dst,
                    64,
                    5000,
                    53,
                    r.pick(&[18, 1360, 1400]).to_owned(),
                ),
                1 => tcp(PEER_MAC, dmac, src, dst, 5001, 443),
                _ => icmp_echo(PEER_MAC, dmac, src, dst, 64, 9, 2, 32),
            };
            ("internal", f)
        }
        // Policy-routed port: its own table first, then main.
        7 => {
            let dst = *r.pick(&["198.51.100.7", "198.51.100.200", "10.0.0.10", "192.168.5.8"]);
            (
                "dmz",
                udp(PEER_MAC, DMZ_MAC, "192.168.5.9", dst, 64, 6000, 7, 18),
            )
        }
        // Return traffic to the SNAT address, and ARP.
        8 => (
            "external",
            udp(
                PEER_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.20",
                64,
                53,
                20000,
                18,
            ),
        ),
        9 => (
            "external",
            arp_request(PEER_MAC, "203.0.113.1", "203.0.113.10"),
        ),
        // To vgate itself.
        10 => (
            "external",
            icmp_echo(
                PEER_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.2",
                64,
                3,
                3,
                8,
            ),
        ),
        _ => (
            "external",
            udp(
                PEER_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.10",
                64,
                1,
                2,
                18,
            ),
        ),
    };
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return (port, f);
    }
    // Exceptions, one at a time; the caller gives the header a correct checksum (or, now and
    // then, a wrong one).
    match r.next() % 16 {
        0 => f[22] = *r.pick(&[0, 1, 2]),                    // TTL
        1 => f[17] = f[17].wrapping_add(9),                  // total length beyond the frame
        2 => f[26] = *r.pick(&[0, 127, 224, 240]),           // martian source
        3 => f[26..30].copy_from_slice(&ip("203.0.113.10")), // a floating IP as source
        4 => f[26..30].copy_from_slice(&ip("203.0.113.2")),  // vgate's own as source
        5 => f[20] = 0x20,                                   // more fragments
        6 => {
            let other = *r.pick(&[
                "ff:ff:ff:ff:ff:ff",
                "02:00:00:00:00:77",
                "01:00:5e:00:00:01",
            ]);
            f[0..6].copy_from_slice(&mac(other));
        }
        7 => f.extend_from_slice(&[0xee; 6]), // Ethernet padding
        8 => f.truncate(f.len() - 4),         // cut short
        9 => f[14] = 0x46,                    // IP options (claimed)
        10 => f[20] |= 0x40,                  // DF
        // UDP checksum left out (RFC 768).
        11 if f[23] == 17 => {
            f[40] = 0;
            f[41] = 0;
        }
        _ => {}
    }
    (port, f)
}

/// A correct IPv4 header checksum for an option-less header.
fn fix_checksum(f: &mut [u8]) {
    if f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[14] == 0x45 {
        fix_ip_checksum(f);
    }
}

fn render(h: &Harness) -> String {
    let (ports, fips) = vgate::metrics::labels_of(&h.w.tables.load());
    let stats: Arc<WorkerStats> = h.w.stats.clone();
    vgate::metrics::render(&[stats], &ports, &fips, &ControlValues::default())
        .lines()
        // Polls depend on how the frames were split into batches, not on the path; the
        // fast path's own counter is compared on its own.
        .filter(|l| !l.starts_with("vgate_worker_") && !l.contains("vgate_fast_path_"))
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Thousands of frames from `frame`, in bursts of every size, with the clock moving far
/// enough now and then for neighbours to age: the fast worker's output and counters equal
/// the staged worker's, frame for frame. Returns the frames sent.
fn compare(
    conf: &str,
    neighbors: &[(u8, &str, &str)],
    ports: &[&str],
    frame: fn(&mut Rng) -> (&'static str, Vec<u8>),
) -> usize {
    let mut fast = Harness::new(conf);
    assert!(!conf.contains("[dataplane]"));
    let mut staged = Harness::new(&format!("[dataplane]\nfast_path = false\n{conf}"));
    learn_all(&mut fast.w.state, fast.now, neighbors);
    learn_all(&mut staged.w.state, staged.now, neighbors);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0usize;
    for round in 0..400 {
        let burst = 1 + (r.next() % 90) as usize;
        for _ in 0..burst {
            let (port, mut f) = frame(&mut r);
            fix_checksum(&mut f);
            if f.len() >= 34 && r.chance(3) {
                f[24] ^= 0x40;
            }
            fast.inject(port, &f);
            staged.inject(port, &f);
        }
        fast.run();
        staged.run();
        for &port in ports {
            let (a, b) = (fast.tx(port), staged.tx(port));
            assert_eq!(a.len(), b.len(), "round {round}: frames sent on {port}");
            for (k, (x, y)) in a.iter().zip(&b).enumerate() {
                let at = x.iter().zip(y).position(|(p, q)| p != q);
                assert!(
                    x == y,
                    "round {round}: frame {k} on {port}: {} vs {} bytes, first difference at {at:?}\n\
                     fast:   {:02x?}\nstaged: {:02x?}",
                    x.len(),
                    y.len(),
                    &x[..x.len().min(64)],
                    &y[..y.len().min(64)]
                );
            }
            sent += a.len();
        }
        if round % 50 == 49 {
            // Past the reachable time: the neighbours need confirming again.
            fast.advance(40 * SEC);
            staged.advance(40 * SEC);
            learn_all(&mut fast.w.state, fast.now, neighbors);
            learn_all(&mut staged.w.state, staged.now, neighbors);
        }
        assert_eq!(
            fast.frames_in_use(),
            staged.frames_in_use(),
            "round {round}"
        );
    }
    assert_eq!(render(&fast), render(&staged));
    // Every packet was finished by a stage (a debug build asserts it per batch; this holds
    // in release too).
    assert_eq!(fast.drops(DropReason::Internal), 0);
    assert_eq!(staged.drops(DropReason::Internal), 0);
    // What the fast path carried shows in its counter; the stages' worker carried nothing.
    let carried = fast.w.stats.fast_path.get();
    assert!(
        carried > 0 && carried as usize <= sent,
        "fast path carried {carried}"
    );
    assert_eq!(staged.w.stats.fast_path.get(), 0);
    sent
}

#[test]
fn the_fast_path_changes_nothing_but_the_speed() {
    let sent = compare(CONF, &NEIGHBORS, &["external", "internal", "dmz"], frame);
    assert!(sent > 5_000, "only {sent} frames left vgate");
}

/// A router without floating IPs, SNAT or a tunnel has a fast path of its own: the same
/// traffic (the floating IPs now plain addresses of the network) through it.
#[test]
fn the_fast_path_changes_nothing_but_the_speed_without_nat() {
    let plain = CONF.split("[[floating_ip]]").next().unwrap();
    assert!(!plain.contains("[[snat]]") && !plain.contains("[tunnel]"));
    let sent = compare(plain, &NEIGHBORS, &["external", "internal", "dmz"], frame);
    assert!(sent > 2_000, "only {sent} frames left vgate");
}

const GENEVE_CONF: &str = r#"
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
mtu = 1450

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
name = "g"
vni = 4097
subnet = "10.1.0.0/24"
gateway = "10.1.0.1"
gateway_mac = "fa:16:3e:00:01:01"

[[endpoint]]
network = "g"
ip = "10.1.0.5"
mac = "fa:16:3e:00:01:05"
chassis = "compute-1"

[[endpoint]]
network = "g"
ip = "10.1.0.6"
mac = "fa:16:3e:00:01:06"
chassis = "compute-2"

[[endpoint]]
network = "g"
ip = "10.1.0.7"
mac = "fa:16:3e:00:01:07"
chassis = "compute-1"
virtual = true

[[floating_ip]]
external = "203.0.113.10"
internal = "10.1.0.5"
network = "g"

[[floating_ip]]
external = "203.0.113.11"
internal = "10.1.0.7"
network = "g"

[[snat]]
network = "g"
external = "203.0.113.20"
ports = "20000-20099"
"#;

const GENEVE_NEIGHBORS: [(u8, &str, &str); 3] = [
    (0, "203.0.113.1", "02:00:00:00:02:01"),
    (1, "192.0.2.11", "02:00:00:00:0c:01"),
    (1, "192.0.2.12", "02:00:00:00:0c:02"),
];

/// Outer Ethernet + IPv4 + UDP (to `udp_port`) + Geneve with `vni` around `inner`, from
/// `src` to the tunnel address.
fn geneve(src: &str, udp_port: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; vgate::wire::geneve::HEADER_LEN];
    vgate::wire::geneve::Repr {
        vni,
        protocol: vgate::wire::geneve::PROTO_ETHERNET,
        oam: false,
        critical: false,
        options_len: 0,
    }
    .emit(&mut vgate::wire::geneve::Packet::new_unchecked(&mut g[..]));
    g.extend_from_slice(inner);
    let b = etherparse::PacketBuilder::ethernet2(mac(PEER_MAC), mac(INT_MAC))
        .ipv4(ip(src), ip("192.0.2.1"), 64)
        .udp(50123, udp_port);
    let mut out = Vec::new();
    b.write(&mut out, &g).unwrap();
    out
}

/// [`geneve`] to port 6081 with one 4-byte option of type `kind` (critical when its high
/// bit is set, RFC 8926 section 3.5) and no UDP checksum.
fn geneve_with_option(src: &str, vni: u32, inner: &[u8], kind: u8) -> Vec<u8> {
    let mut f = geneve(src, 6081, vni, &[]);
    // Options after the base header: class 0x0101, type, length 1 word, 4 bytes of data.
    f[42] = 2;
    f.extend_from_slice(&[0x01, 0x01, kind, 1, 0xde, 0xad, 0xbe, 0xef]);
    f.extend_from_slice(inner);
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    fix_ip_checksum(&mut f);
    f
}

/// Geneve traffic: floating IP and plain traffic into the tunnel, VM traffic out of it (to
/// the internet through the floating IP or SNAT, or to the other VM), ARP through the
/// tunnel, and what must not pass: unknown chassis or VNI, other UDP ports, DF packets
/// above the tenant MTU.
fn geneve_frame(r: &mut Rng) -> (&'static str, Vec<u8>) {
    let (port, mut f) = match r.next() % 6 {
        0..=1 => {
            let dst = *r.pick(&[
                "203.0.113.10",
                "203.0.113.10",
                "203.0.113.11",
                "10.1.0.6",
                "10.1.0.9",
            ]);
            let len = *r.pick(&[18, 1300, 1372, 1373, 1472]);
            let f = match r.next() % 4 {
                0 => udp(PEER_MAC, EXT_MAC, "198.51.100.7", dst, 64, 4000, 53, len),
                1 => tcp(PEER_MAC, EXT_MAC, "198.51.100.7", dst, 4001, 80),
                2 => tcp_syn_mss(PEER_MAC, EXT_MAC, "198.51.100.7", dst),
                _ => icmp_echo(PEER_MAC, EXT_MAC, "198.51.100.7", dst, 64, 7, 1, 56),
            };
            ("external", f)
        }
        2..=4 => {
            let src = *r.pick(&["10.1.0.5", "10.1.0.6"]);
            let dst = *r.pick(&["198.51.100.7", "10.1.0.6", "10.1.0.5", "10.1.0.1"]);
            let mut inner = match r.next() % 4 {
                0 => udp(
                    "fa:16:3e:00:01:05",
                    "fa:16:3e:00:01:01",
                    src,
                    dst,
                    64,
                    5000,
                    53,
                    18,
                ),
                1 => tcp(
                    "fa:16:3e:00:01:05",
                    "fa:16:3e:00:01:01",
                    src,
                    dst,
                    5001,
                    443,
                ),
                2 => icmp_echo(
                    "fa:16:3e:00:01:05",
                    "fa:16:3e:00:01:01",
                    src,
                    dst,
                    64,
                    9,
                    2,
                    32,
                ),
                _ if r.chance(50) => {
                    // The virtual endpoint announcing itself on either chassis.
                    let m = "fa:16:3e:00:01:07";
                    arp_frame(
                        1,
                        m,
                        "10.1.0.7",
                        "00:00:00:00:00:00",
                        "10.1.0.7",
                        "ff:ff:ff:ff:ff:ff",
                    )
                }
                _ => arp_request("fa:16:3e:00:01:05", src, "10.1.0.1"),
            };
            if inner.len() >= 34 && inner[12..14] == [0x08, 0x00] {
                // What the inner packet can get wrong, or be besides the common case.
                match r.next() % 17 {
                    0 => inner[22] = *r.pick(&[1, 2]),
                    1 => inner[0..6].copy_from_slice(&mac("fa:16:3e:00:01:02")),
                    2 => inner[26..30].copy_from_slice(&ip("10.9.0.5")),
                    3 => inner[30..34].copy_from_slice(&ip("192.0.2.1")),
                    4 => inner[20] = 0x20,
                    5 => inner.truncate(30),
                    6 => inner = tcp_syn_mss("fa:16:3e:00:01:05", GW_G, src, dst), // the MSS clamp
                    7 => inner[12..14].copy_from_slice(&[0x86, 0xdd]),
                    _ => {}
                }
            }
            fix_checksum(&mut inner);
            if inner.len() >= 34 && r.chance(3) {
                inner[24] ^= 0x40;
            }
            let chassis = *r.pick(&["192.0.2.11", "192.0.2.12", "192.0.2.11", "192.0.2.99"]);
            let udp_port = *r.pick(&[6081, 6081, 6081, 6082]);
            let vni = *r.pick(&[4097, 4097, 4097, 77]);
            let mut f = geneve(chassis, udp_port, vni, &inner);
            // The outer UDP checksum: verified when present, absent, or wrong; Geneve
            // options (critical or not) and versions only the stage knows.
            match r.next() % 12 {
                0 => f[40..42].copy_from_slice(&[0, 0]),
                1 => f[41] ^= 0x10,
                2 => f[42] = 0x40,
                3 => f = geneve_with_option(chassis, vni, &inner, *r.pick(&[0x01, 0x81])),
                _ => {}
            }
            ("underlay", f)
        }
        _ => (
            "external",
            icmp_echo(
                PEER_MAC,
                EXT_MAC,
                "198.51.100.7",
                "203.0.113.2",
                64,
                3,
                3,
                8,
            ),
        ),
    };
    if f.len() >= 34 && f[12..14] == [0x08, 0x00] {
        match r.next() % 10 {
            0 => f[22] = *r.pick(&[1, 2]),
            1 => f[20] |= 0x40,
            2 => f[20] = 0x20,
            _ => {}
        }
    }
    (port, f)
}

#[test]
fn the_fast_path_changes_nothing_but_the_speed_with_geneve() {
    let sent = compare(
        GENEVE_CONF,
        &GENEVE_NEIGHBORS,
        &["external", "underlay"],
        geneve_frame,
    );
    assert!(sent > 5_000, "only {sent} frames left vgate");
}

/// A worker's pieces for running one batch by hand.
struct Bench {
    snap: vgate::tables::Snapshot,
    pool: FramePool,
    state: WorkerState,
    stats: WorkerStats,
    tx: TxQueues,
}

impl Bench {
    fn new() -> Bench {
        Bench::with(CONF, &NEIGHBORS)
    }

    fn with(conf: &str, neighbors: &[(u8, &str, &str)]) -> Bench {
        let mut state = WorkerState::new(NeighborConfig::default());
        learn_all(&mut state, SEC, neighbors);
        let snap = snapshot(conf, 1);
        let stats = WorkerStats::default();
        state.sync(&snap, &stats);
        Bench {
            tx: TxQueues::new(snap.ports.len(), 4 * MAX_BATCH),
            snap,
            pool: FramePool::new_heap(256),
            state,
            stats,
        }
    }

    /// Run `frames` received on `port` through the fast path alone; where each went
    /// (`Next::Tx` or still `Next::L2Input`) and its bytes afterwards.
    fn fast(&mut self, port: u8, frames: &[Vec<u8>]) -> Vec<(Next, Vec<u8>)> {
        let mut b = Batch::default();
        b.reset_rx(frames.len(), port);
        for (i, f) in frames.iter().enumerate() {
            let mut d = self.pool.alloc().unwrap();
            d.len = f.len() as u32;
            self.pool.bytes_mut(&d).copy_from_slice(f);
            b.desc[i] = d;
        }
        let mut ctx = Ctx {
            snap: &self.snap,
            pool: &mut self.pool,
            state: &mut self.state,
            stats: &self.stats,
            tx: &mut self.tx,
            now: 2 * SEC,
        };
        let mask = b.mask(Next::L2Input);
        pipeline::fast::run(&mut ctx, &mut b, mask);
        let out = (0..frames.len())
            .map(|i| (b.next(i), self.pool.bytes(&b.desc[i]).to_vec()))
            .collect();
        for i in 0..frames.len() {
            self.pool.free(b.desc[i]);
        }
        out
    }
}

/// Each of `out` (from `frames`) at `Next::Tx` when `taken`, else still at
/// `Next::L2Input` with its bytes as received.
fn check_taken(out: &[(Next, Vec<u8>)], frames: &[Vec<u8>], taken: &[bool], what: &str) {
    assert_eq!(out.len(), taken.len());
    for (k, ((next, bytes), taken)) in out.iter().zip(taken).enumerate() {
        if *taken {
            assert_eq!(*next, Next::Tx, "{what} frame {k}");
        } else {
            assert_eq!(*next, Next::L2Input, "{what} frame {k}");
            assert_eq!(bytes, &frames[k], "{what} frame {k} must be untouched");
        }
    }
}

/// A small UDP datagram from a host on the internet to `dst`, received on the external port.
fn from_internet(dst: &str) -> Vec<u8> {
    udp(PEER_MAC, EXT_MAC, "198.51.100.7", dst, 64, 4000, 53, 18)
}

/// The IPv4 header of an Ethernet frame, parsed by etherparse.
fn ipv4_header(frame: &[u8]) -> etherparse::Ipv4Header {
    let p = parse(frame);
    let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    v4.header().to_header()
}

/// What the fast path is for goes straight to transmit, translated; everything else stays
/// at l2_input with not a byte changed.
#[test]
fn the_fast_path_takes_the_common_case_and_leaves_the_rest_untouched() {
    let mut bench = Bench::new();
    let fip_in = from_internet("203.0.113.10");
    let forward = from_internet("203.0.113.77");
    let mut ttl1 = fip_in.clone();
    ttl1[22] = 1;
    fix_ip_checksum(&mut ttl1);
    let snat_return = udp(
        PEER_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.20",
        64,
        53,
        20000,
        18,
    );
    let to_vgate = icmp_echo(
        PEER_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.2",
        64,
        1,
        1,
        8,
    );
    let to_fip_mac = udp(
        PEER_MAC,
        FIP_MAC,
        "198.51.100.7",
        "203.0.113.11",
        64,
        4000,
        53,
        18,
    );
    let too_big = udp(
        PEER_MAC,
        EXT_MAC,
        "198.51.100.7",
        "203.0.113.10",
        64,
        4000,
        53,
        1400,
    );
    let arp = arp_request(PEER_MAC, "203.0.113.1", "203.0.113.10");
    let ext = [
        fip_in.clone(),
        forward,
        ttl1,
        snat_return,
        to_vgate,
        to_fip_mac,
        too_big,
    ];
    let out = bench.fast(0, &ext);
    let expect_taken = [true, false, false, false, false, false, false];
    check_taken(&out, &ext, &expect_taken, "external");
    // An ARP frame anywhere in a batch sends the whole batch to the stages, which learn
    // from it before they rewrite any packet of the batch.
    let with_arp = [fip_in.clone(), arp];
    let out_arp = bench.fast(0, &with_arp);
    check_taken(&out_arp, &with_arp, &[false, false], "external, with ARP");
    // 203.0.113.77 is on-link but unresolved: the stages resolve it. The FIP's VM is known.
    let v4 = ipv4_header(&out[0].1);
    assert_eq!(v4.destination, ip("10.0.0.10"));
    assert_eq!(v4.time_to_live, 63);
    assert_eq!(&out[0].1[..6], &mac("fa:16:3e:00:00:10"));
    assert_eq!(&out[0].1[6..12], &mac(INT_MAC));
    assert_eq!(bench.stats.port_rx_packets[0].get(), 1);
    assert_eq!(bench.stats.fip_in.iter().map(|c| c.get()).sum::<u64>(), 1);

    let fip_out = udp(
        PEER_MAC,
        INT_MAC,
        "10.0.0.10",
        "198.51.100.7",
        64,
        5000,
        53,
        18,
    );
    let snat_out = udp(
        PEER_MAC,
        INT_MAC,
        "10.1.0.5",
        "198.51.100.7",
        64,
        5000,
        53,
        18,
    );
    let east_west = udp(PEER_MAC, INT_MAC, "10.1.0.5", "10.0.0.10", 64, 5000, 53, 18);
    let unresolved = udp(
        PEER_MAC,
        INT_MAC,
        "10.0.0.11",
        "10.0.0.12",
        64,
        5000,
        53,
        18,
    );
    let to_gw_mac = udp(
        PEER_MAC,
        GW_MAC,
        "10.0.0.10",
        "198.51.100.7",
        64,
        5000,
        53,
        18,
    );
    let int = [fip_out, snat_out, east_west, unresolved, to_gw_mac];
    let out = bench.fast(1, &int);
    // The flat networks' gateway MAC is the port's other MAC: the common case takes it.
    let expect_taken = [true, false, true, false, true];
    check_taken(&out, &int, &expect_taken, "internal");
    assert_eq!(ipv4_header(&out[0].1).source, ip("203.0.113.10"));
    assert_eq!(&out[0].1[..6], &mac("02:00:00:00:02:01"));
    // Both from the floating IP's VM: to the port MAC and to the gateway MAC.
    assert_eq!(bench.stats.fip_out.iter().map(|c| c.get()).sum::<u64>(), 2);
    assert_eq!(ipv4_header(&out[4].1).source, ip("203.0.113.10"));

    // Once the session exists (the stages made it), SNAT takes the fast path too.
    let ext_port = bench.state.snat[0]
        .as_mut()
        .expect("SNAT table of network b")
        .outbound(
            vgate::tables::nat::Proto::Udp,
            u32::from_be_bytes(ip("10.1.0.5")),
            5000,
            0,
            2 * SEC,
        )
        .expect("a session");
    let out = bench.fast(1, &int[1..2]);
    assert_eq!(out[0].0, Next::Tx);
    let p = parse(&out[0].1);
    let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    assert_eq!(v4.header().source(), ip("203.0.113.20"));
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.source_port(), ext_port);
    assert_eq!(
        u.checksum(),
        u.to_header()
            .calc_checksum_ipv4(&v4.header().to_header(), u.payload())
            .unwrap()
    );

    // Policy routing: the port's own table for 198.51.100.0/25, main for the rest.
    let dmz = [
        udp(
            PEER_MAC,
            DMZ_MAC,
            "192.168.5.9",
            "198.51.100.7",
            64,
            6000,
            7,
            18,
        ),
        udp(
            PEER_MAC,
            DMZ_MAC,
            "192.168.5.9",
            "198.51.100.200",
            64,
            6000,
            7,
            18,
        ),
    ];
    let out = bench.fast(2, &dmz);
    assert!(out.iter().all(|(n, _)| *n == Next::Tx));
    assert_eq!(&out[0].1[..6], &mac("02:00:00:00:05:07"));
    assert_eq!(&out[1].1[..6], &mac("02:00:00:00:02:01"));

    // Sources that share a filter bit with a NAT address or one of vgate's own, without
    // being one, are still taken (the exact check behind the filter), and the NAT address
    // itself as a source is not.
    let internet = u32::from_be_bytes(ip("198.51.100.0"));
    let twin = |set: &vgate::tables::OwnAddrs| {
        let a = (1..1 << 16)
            .map(|k| internet + (k << 8))
            .find(|&a| set.maybe(a) && !set.contains(a))
            .expect("an address sharing a filter bit");
        std::net::Ipv4Addr::from(a).to_string()
    };
    let (nat_twin, own_twin) = (twin(&bench.snap.nat_sources), twin(&bench.snap.own));
    let frames: Vec<Vec<u8>> = [nat_twin.as_str(), own_twin.as_str(), "203.0.113.10"]
        .iter()
        .map(|src| udp(PEER_MAC, EXT_MAC, src, "203.0.113.11", 64, 4000, 53, 18))
        .collect();
    let out = bench.fast(0, &frames);
    check_taken(&out, &frames, &[true, true, false], "external");
}

/// Geneve from a known chassis, without options, for a VM with a floating IP: decapsulated,
/// translated and sent in the one pass. Geneve the stage must see (options, an unknown
/// chassis) goes on to it as ip4_input sends it, not a byte changed; a decapsulated packet that needs more than the
/// fast path (a new SNAT session) stays decapsulated at ip4_input.
#[test]
fn the_fast_path_decapsulates_the_common_case() {
    let mut bench = Bench::with(GENEVE_CONF, &GENEVE_NEIGHBORS);
    let vm = |src: &str| {
        let mut f = udp(
            "fa:16:3e:00:01:05",
            "fa:16:3e:00:01:01",
            src,
            "198.51.100.7",
            64,
            5000,
            53,
            18,
        );
        fix_checksum(&mut f);
        f
    };
    let frames = [
        geneve("192.0.2.11", 6081, 4097, &vm("10.1.0.5")),
        geneve_with_option("192.0.2.11", 4097, &vm("10.1.0.5"), 0x01),
        geneve("192.0.2.99", 6081, 4097, &vm("10.1.0.5")),
        geneve("192.0.2.12", 6081, 4097, &vm("10.1.0.6")),
    ];
    let out = bench.fast(1, &frames);
    assert_eq!(out[0].0, Next::Tx);
    let p = parse(&out[0].1);
    let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    assert_eq!(v4.header().source(), ip("203.0.113.10"));
    assert_eq!(v4.header().ttl(), 63);
    let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!(
        u.checksum(),
        u.to_header()
            .calc_checksum_ipv4(&v4.header().to_header(), u.payload())
            .unwrap()
    );
    assert_eq!(&out[0].1[..6], &mac("02:00:00:00:02:01"));
    for k in [1, 2] {
        assert_eq!(out[k].0, Next::Decap, "frame {k}");
        assert_eq!(out[k].1, frames[k], "frame {k} must be untouched");
    }
    assert_eq!(out[3].0, Next::Ip4Input);
    assert_eq!(
        out[3].1,
        vm("10.1.0.6"),
        "the inner frame as the chassis sent it"
    );
    assert_eq!(bench.stats.geneve_decap.get(), 2);
    assert_eq!(bench.stats.fip_out.iter().map(|c| c.get()).sum::<u64>(), 1);
    assert_eq!(bench.stats.port_rx_packets[1].get(), 4);
    let rx_bytes = frames.iter().map(|f| f.len() as u64).sum::<u64>();
    assert_eq!(bench.stats.port_rx_bytes[1].get(), rx_bytes);
}

/// A floating IP's packet for a VM on a chassis: translated, encapsulated toward the chassis
/// and sent on the underlay in the one pass; one above the tenant MTU goes to the stage.
#[test]
fn the_fast_path_encapsulates_the_common_case() {
    let mut bench = Bench::with(GENEVE_CONF, &GENEVE_NEIGHBORS);
    let to_fip = |len| {
        udp(
            PEER_MAC,
            EXT_MAC,
            "198.51.100.7",
            "203.0.113.10",
            64,
            4000,
            53,
            len,
        )
    };
    let frames = [to_fip(18), to_fip(1400)];
    let out = bench.fast(0, &frames);
    assert_eq!(out[0].0, Next::Tx);
    let f = &out[0].1;
    assert_eq!(&f[..6], &mac("02:00:00:00:0c:01"), "to the chassis's MAC");
    let outer = ipv4_header(f);
    assert_eq!(outer.destination, ip("192.0.2.11"));
    assert_eq!(outer.source, ip("192.0.2.1"));
    assert_eq!(usize::from(outer.total_len), f.len() - 14);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 6081);
    assert_eq!(&f[46..49], &4097u32.to_be_bytes()[1..], "the network's VNI");
    let inner = &f[50..];
    assert_eq!(
        &inner[..6],
        &mac("fa:16:3e:00:01:05"),
        "to the endpoint's MAC"
    );
    let ih = ipv4_header(inner);
    assert_eq!(ih.destination, ip("10.1.0.5"));
    assert_eq!(ih.time_to_live, 63);
    assert_eq!(out[1].0, Next::Encap, "above the tenant MTU: the stage's");
    assert_eq!(bench.stats.geneve_encap.get(), 1);
    assert_eq!(bench.stats.fip_in.iter().map(|c| c.get()).sum::<u64>(), 2);
}

/// The fast path remembers each floating IP's inbound next hop, and forgets it as soon as
/// it would be wrong: when the VM's MAC changes, when the neighbour's reachable time runs
/// out (the packet then makes vgate probe the neighbour, as the stages do) and when a
/// reload moves the floating IP to another VM.
#[test]
fn a_floating_ips_remembered_next_hop_follows_the_neighbour_and_the_config() {
    let mut h = Harness::new(CONF);
    learn_all(&mut h.w.state, h.now, &NEIGHBORS);
    let to_fip = from_internet("203.0.113.10");
    // Where each packet sent to the floating IP leaves: (destination MAC, destination IP)
    // of every frame on the internal port, and the ARP requests among them.
    let send = |h: &mut Harness| {
        h.inject("external", &to_fip);
        h.run();
        assert!(h.tx("external").is_empty());
        h.tx("internal")
            .iter()
            .map(|f| {
                let dmac = EthernetAddress(f[..6].try_into().unwrap()).to_string();
                match u16::from_be_bytes([f[12], f[13]]) {
                    0x0806 => format!("arp who-has {}", std::net::Ipv4Addr::from(ip_at(f, 38))),
                    _ => format!("{dmac} {}", std::net::Ipv4Addr::from(ip_at(f, 30))),
                }
            })
            .collect::<Vec<_>>()
    };
    let vm10 = "fa:16:3e:00:00:10 10.0.0.10";
    assert_eq!(send(&mut h), [vm10]);
    assert_eq!(send(&mut h), [vm10], "the remembered next hop");
    assert_eq!(h.stats().fip_in[0].get(), 2);

    // The VM announces a new MAC (RFC 5227 section 3): the next packet goes to it.
    h.inject(
        "internal",
        &arp_request("fa:16:3e:00:00:99", "10.0.0.10", "10.0.0.10"),
    );
    h.run();
    assert!(h.tx("internal").is_empty());
    let moved = "fa:16:3e:00:00:99 10.0.0.10";
    assert_eq!(send(&mut h), [moved]);
    assert_eq!(send(&mut h), [moved]);

    // Past its reachable time the neighbour is probed (an ARP request, as the stages send
    // it) while the packet still goes to the MAC known.
    h.advance(40 * SEC);
    h.tx("internal");
    let probed = send(&mut h);
    assert!(probed.iter().any(|p| p == moved), "{probed:?}");
    assert!(
        probed.contains(&"arp who-has 10.0.0.10".to_owned()),
        "{probed:?}"
    );
    assert_eq!(h.stats().fip_in[0].get(), 5);

    // A reload moves the floating IP to another VM: its next packet goes there.
    learn_all(&mut h.w.state, h.now, &NEIGHBORS);
    assert_eq!(send(&mut h), [vm10]);
    let moved_fip = CONF.replace(
        "external = \"203.0.113.10\"\ninternal = \"10.0.0.10\"",
        "external = \"203.0.113.10\"\ninternal = \"10.0.0.11\"",
    );
    assert_ne!(moved_fip, CONF);
    h.w.tables.store(Arc::new(snapshot(
        &moved_fip.replace(
            "external = \"203.0.113.11\"\ninternal = \"10.0.0.11\"",
            "external = \"203.0.113.11\"\ninternal = \"10.0.0.12\"",
        ),
        2,
    )));
    assert_eq!(send(&mut h), ["fa:16:3e:00:00:11 10.0.0.11"]);
}

/// The IPv4 address at byte `at` of a frame.
fn ip_at(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
}

/// IPv6 beside the IPv4 traffic: the dual-stack version of `CONF` (the tenant network
/// routed, policy routing on the dmz port).
fn conf6() -> String {
    CONF.replace(
        "addresses = [\"203.0.113.2/24\"]",
        "addresses = [\"203.0.113.2/24\", \"2001:db8:ff::2/64\"]",
    )
    .replace(
        "addresses = [\"192.168.5.1/24\"]",
        "addresses = [\"192.168.5.1/24\", \"2001:db8:5::1/64\"]",
    )
    .replace(
        "gateway = \"10.0.0.1\"",
        "gateway = \"10.0.0.1\"\nsubnet6 = \"2001:db8:100:1::/64\"",
    ) + r#"
[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[[route]]
table = "dmz"
prefix = "2001:db8:cafe::/48"
via = "2001:db8:5::7"
"#
}

/// `NEIGHBORS` and the IPv6 ones; 2001:db8:100:1::12 stays unknown.
const NEIGHBORS6: [(u8, &str, &str); 8] = [
    NEIGHBORS[0],
    NEIGHBORS[1],
    NEIGHBORS[2],
    NEIGHBORS[3],
    NEIGHBORS[4],
    (0, "2001:db8:ff::1", "02:00:00:00:02:01"),
    (1, "2001:db8:100:1::10", "fa:16:3e:00:00:10"),
    (2, "2001:db8:5::7", "02:00:00:00:05:07"),
];

fn frame6(r: &mut Rng) -> (&'static str, Vec<u8>) {
    if r.chance(40) {
        return frame(r);
    }
    let far = *r.pick(&["2001:db8:77::1", "2001:db8:cafe::9", "2001:db8:ff::50"]);
    let vm = *r.pick(&["2001:db8:100:1::10", "2001:db8:100:1::12"]);
    let dmz_dst = *r.pick(&["2001:db8:cafe::1", "2001:db8:100:1::10", "2001:db8:77::1"]);
    let hop = if r.chance(8) { 1 } else { 64 };
    let len = if r.chance(6) { 1440 } else { 60 };
    match r.next() % 6 {
        0 | 1 => (
            "external",
            udp6(PEER_MAC, EXT_MAC, far, vm, hop, 4000, 53, len),
        ),
        2 | 3 => {
            let dmac = if r.chance(50) { GW_MAC } else { INT_MAC };
            let f = udp6("fa:16:3e:00:00:10", dmac, vm, far, hop, 5000, 443, len);
            ("internal", f)
        }
        4 => (
            "dmz",
            udp6(
                "02:00:00:00:05:07",
                DMZ_MAC,
                "2001:db8:5::9",
                dmz_dst,
                hop,
                1,
                2,
                len,
            ),
        ),
        _ => (
            "external",
            echo6(PEER_MAC, EXT_MAC, "2001:db8:77::1", "2001:db8:ff::2", 1, 1),
        ),
    }
}

/// IPv6 takes its own fast path: the same bytes and counters as ip6_input and ip6_forward
/// give (neighbour resolution, hold queues, errors and policy routing included).
#[test]
fn the_fast_path_changes_nothing_but_the_speed_with_ipv6() {
    let conf = conf6();
    let sent = compare(&conf, &NEIGHBORS6, &["external", "internal", "dmz"], frame6);
    assert!(sent > 5_000, "only {sent} frames left vgate");
}
