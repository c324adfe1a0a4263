//! Fuzz target `pipeline`: arbitrary frames on every port of a fixed configuration
//! (`fuzz/pipeline.toml`: external, Geneve underlay, flat tenant port, policy-routed transit
//! port; floating IPs, SNAT, proxy ARP, chassis, a VNI network, ACLs and rate limits; dual
//! stack, with IPv6 routes, proxy NDP, router advertisements and an endpoint's IPv6
//! address) through one worker on the mem backend, with the worker's clock driven by the
//! input.
//!
//! Input: a setup byte, then operations until the input ends.
//!
//! * setup: bit 0 a pool of [`SMALL_POOL`] frames instead of [`POOL`] (frame exhaustion),
//!   bit 1 tiny neighbour tables instead of small ones (hold queue and table limits), bits
//!   2..8 the batch size minus one. The tables are smaller than in production so that a
//!   run costs little to set up; the code paths are the same.
//! * op `xxxxxx00`: a frame for port `xxxxxx % ports`: a big-endian u16 length, then that
//!   many bytes (fewer if the input ends first).
//! * op `xxxxxx01`: the same, with the IPv4, ICMP, UDP and TCP checksums made right first
//!   (also those of a frame inside Geneve), and the ICMPv6, UDP and TCP ones of IPv6 (after
//!   its extension headers), so mutations get past the checksum checks.
//! * op `xxxxxx10`: poll until every port's receive queue is empty.
//! * op `0xxxxx11`: advance the clock by 2^`xxxxx` ms and poll once (timers run).
//! * op `10xxxx11`: reload: swap in the other of two snapshots of the same configuration
//!   (generations 1 and 2), as a SIGHUP does.
//! * op `11xxx011`: ask for a session dump, as `GET /api/v1/sessions` does; the worker
//!   answers on its next timer tick.
//! * op `11xxx111`: flip this node's mastership of the VRRP group (it starts as master),
//!   as the election does.
//!
//! Every input runs through two workers side by side: one with the fast path, one with
//! `dataplane.fast_path = false` (every packet through the stages). After every poll both
//! must have sent the same frames, byte for byte and in the same order on every port, and
//! counted the same drops; at the end every counter but the fast path's own must agree.
//!
//! After every poll the books must balance (received + generated = transmitted + dropped +
//! held, and exactly the held frames are out of the pool), and every transmitted frame must
//! be one vgate may send: ARP, IPv4 or IPv6 from a unicast MAC; for IPv4 a header that
//! checks and verifies, a TTL above zero and a total length within the port's MTU; for IPv6
//! a whole header without link padding, a hop limit above zero, a length within the port's
//! MTU, a unicast source, a link-local source only on its own link (when
//! `CHECK_LINK_LOCAL_SCOPE`), and a valid ICMPv6 checksum on what vgate itself sends (NDP
//! with hop limit 255). At the end the clock runs on until every ARP and NDP resolution has
//! finished: nothing may stay held, no frame may leak.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use vgate::control::apply::build_snapshot;
use vgate::control::config::Config;
use vgate::io::mem::MemPort;
use vgate::io::{FramePool, MAX_FRAME_LEN};
use vgate::metrics::{ControlValues, DropReason, WorkerStats};
use vgate::tables::Snapshot;
use vgate::tables::neighbor::NeighborConfig;
use vgate::wire::checksum;
use vgate::wire::ethernet::{self, ethertype};
use vgate::wire::ipv4::{self, protocol};
use vgate::wire::ipv6::{self, next_header};
use vgate::wire::{EthernetAddress, arp, geneve, icmpv6};
use vgate::worker::{NeighborBus, SESSION_DUMP_MAX, Worker};

/// The configuration every run uses.
pub const CONFIG: &str = include_str!("../pipeline.toml");

pub const POOL: usize = 256;
/// `limits.acl_sessions` of [`CONFIG`] (checked when the snapshots are built).
const ACL_SESSIONS: usize = 8;
pub const SMALL_POOL: usize = 32;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

/// Two snapshots of [`CONFIG`], generations 1 and 2, built once per process: with the
/// fast path (`FAST`) or without it.
fn snapshots<const FAST: bool>() -> &'static [Arc<Snapshot>; 2] {
    static SNAPSHOTS: [OnceLock<[Arc<Snapshot>; 2]>; 2] = [OnceLock::new(), OnceLock::new()];
    SNAPSHOTS[usize::from(FAST)].get_or_init(|| {
        let mut cfg = Config::from_toml_str(CONFIG).expect("fuzz/pipeline.toml validates");
        assert_eq!(cfg.limits.acl_sessions, ACL_SESSIONS);
        cfg.dataplane.fast_path = FAST;
        let mac = |_: &str| Some(EthernetAddress([2, 0, 0, 0, 0, 0xee]));
        let build = |generation| {
            Arc::new(build_snapshot(&cfg, generation, &mac, None).expect("snapshot builds"))
        };
        [build(1), build(2)]
    })
}

/// The queues between a worker and the control thread, made once per worker kind: with a
/// single worker nothing is ever queued to it, and what it publishes to the control thread
/// (learned neighbours, overwritten when full) is never read back, so sharing them keeps
/// runs independent while sparing each run their allocation. One set per thread: the VRRP
/// state in it is flipped by the input, and runs on other threads (the regression tests
/// run in parallel) must not see it.
fn bus<const FAST: bool>() -> Arc<NeighborBus> {
    thread_local! {
        static BUS: [OnceLock<Arc<NeighborBus>>; 2] = const { [OnceLock::new(), OnceLock::new()] };
    }
    let bus = BUS.with(|b| {
        b[usize::from(FAST)]
            .get_or_init(|| Arc::new(NeighborBus::new(1)))
            .clone()
    });
    // A dump asked for in an earlier run must not be answered in this one.
    bus.session_request.store(0, Ordering::Release);
    while bus.session_dumps.pop().is_some() {}
    // Every run starts as the group's master (so the other seeds' traffic passes), with no
    // adverts waiting.
    bus.ha.set_master(0, 10, true);
    while bus.vrrp_rx.pop().is_some() {}
    bus
}

pub struct Harness {
    /// The worker with the fast path.
    pub worker: Worker<MemPort>,
    /// The same worker without it: every packet through the stages.
    pub staged: Worker<MemPort>,
    pub now: u64,
    /// Which of [`snapshots`] is live.
    generation: usize,
    /// Frames collected from the ports so far: the fast path's worker's, the staged one's.
    collected: [u64; 2],
    /// What the ports transmitted, (port, frame), since a caller last took it.
    pub sent: Vec<(usize, Vec<u8>)>,
}

/// A worker of one kind for [`Harness::new`]'s `setup`.
fn worker<const FAST: bool>(setup: u8) -> Worker<MemPort> {
    let snap = snapshots::<FAST>()[0].clone();
    let nports = snap.ports.len();
    let ncfg = if setup & 2 != 0 {
        NeighborConfig {
            max_entries: 8,
            max_unresolved: 4,
            hold_per_entry: 2,
            ..NeighborConfig::default()
        }
    } else {
        NeighborConfig {
            max_entries: 256,
            max_unresolved: 32,
            hold_per_entry: 8,
            ..NeighborConfig::default()
        }
    };
    let pool = FramePool::new_heap(if setup & 1 != 0 { SMALL_POOL } else { POOL });
    let mut w = Worker::new(
        0,
        (0..nports).map(|_| MemPort::new()).collect(),
        pool,
        Arc::new(vgate::tables::SharedTables::from_arc(snap)),
        bus::<FAST>(),
        usize::from(setup >> 2) + 1,
        ncfg,
    );
    w.state.set_acl_sessions(ACL_SESSIONS);
    w
}

impl Harness {
    pub fn new(setup: u8) -> Harness {
        Harness {
            worker: worker::<true>(setup),
            staged: worker::<false>(setup),
            now: SEC,
            generation: 0,
            collected: [0; 2],
            sent: Vec::new(),
        }
    }

    pub fn ports(&self) -> usize {
        self.worker.ports.len()
    }

    /// Queue a frame on `port`. A frame longer than a UMEM frame cannot arrive through
    /// AF_XDP, so it is cut to [`MAX_FRAME_LEN`].
    pub fn inject(&mut self, port: usize, frame: &[u8]) {
        let n = frame.len().min(MAX_FRAME_LEN);
        self.worker.ports[port].inject(&frame[..n]);
        self.staged.ports[port].inject(&frame[..n]);
    }

    /// Poll until nothing is left to receive (or the pool stays empty).
    pub fn run(&mut self) {
        for _ in 0..64 {
            self.poll(1_000);
            if self.worker.ports.iter().all(|p| p.rx.is_empty()) {
                break;
            }
        }
    }

    /// Queue a frame on the port called `name`.
    pub fn inject_on(&mut self, name: &str, frame: &[u8]) {
        let p = self.worker.tables.load().port_by_name(name).expect("port");
        self.inject(p, frame);
    }

    /// Advance the clock by `ns` and poll once.
    pub fn advance(&mut self, ns: u64) {
        self.poll(ns);
    }

    pub fn request_sessions(&mut self) {
        for w in [&self.worker, &self.staged] {
            w.bus.session_request.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Flip mastership of the external port's group (VRID 10) on both workers.
    pub fn flip_master(&mut self) {
        for w in [&self.worker, &self.staged] {
            let m = w.bus.ha.is_master(0, 10);
            w.bus.ha.set_master(0, 10, !m);
        }
    }

    pub fn reload(&mut self) {
        self.generation ^= 1;
        self.worker
            .tables
            .store(snapshots::<true>()[self.generation].clone());
        self.staged
            .tables
            .store(snapshots::<false>()[self.generation].clone());
    }

    fn poll(&mut self, ns: u64) {
        self.now = self.now.saturating_add(ns);
        self.worker.poll_once(self.now);
        self.staged.poll_once(self.now);
        self.check();
    }

    /// Every frame is accounted for, every transmitted frame is well formed, and the fast
    /// path changed nothing but the speed.
    fn check(&mut self) {
        let sent = books(&mut self.worker, &mut self.collected[0]);
        let staged = books(&mut self.staged, &mut self.collected[1]);
        for (k, (a, b)) in sent.iter().zip(&staged).enumerate() {
            assert!(
                a == b,
                "frame {k}: the fast path sent {} bytes on port {}, the stages {} bytes on port {}\n\
                 fast:   {:02x?}\nstaged: {:02x?}",
                a.1.len(),
                a.0,
                b.1.len(),
                b.0,
                &a.1[..a.1.len().min(80)],
                &b.1[..b.1.len().min(80)],
            );
        }
        assert_eq!(
            sent.len(),
            staged.len(),
            "frames sent, fast path and stages"
        );
        let (f, s) = (&self.worker.stats, &self.staged.stats);
        for r in DropReason::ALL {
            assert_eq!(
                f.drop_count(*r),
                s.drop_count(*r),
                "drops {}/{}, fast path and stages",
                r.stage(),
                r.label()
            );
        }
        assert_eq!(f.held.get(), s.held.get(), "held, fast path and stages");
        assert_eq!(s.fast_path.get(), 0, "the staged worker took the fast path");
        self.sent.extend(sent);
    }

    /// Let every pending resolution finish: ARP and NDP retries run out after a few seconds.
    pub fn finish(&mut self) {
        self.run();
        for _ in 0..16 {
            self.advance(SEC);
        }
        for w in [&self.worker, &self.staged] {
            let held = w.stats.held.get();
            assert_eq!(
                held, 0,
                "packets still held after every ARP and NDP resolution gave up"
            );
            let pool = &w.pool;
            assert_eq!(pool.free_count(), pool.nframes(), "frames leaked");
            assert_eq!(
                w.stats.drop_count(DropReason::Internal),
                0,
                "a packet no stage finished with"
            );
        }
        assert_eq!(
            counters(&self.worker),
            counters(&self.staged),
            "counters, fast path and stages"
        );
    }
}

/// Check `w`'s books after a poll (received + generated = transmitted + dropped + held,
/// and exactly the held frames out of the pool), take what its ports transmitted, (port,
/// frame), checking each frame and adding them to the `collected` so far, and check its
/// session dumps.
fn books(w: &mut Worker<MemPort>, collected: &mut u64) -> Vec<(usize, Vec<u8>)> {
    let s: &WorkerStats = &w.stats;
    let rx: u64 = s.port_rx_packets.iter().map(|c| c.get()).sum();
    let tx: u64 = s.port_tx_packets.iter().map(|c| c.get()).sum();
    let (generated, drops, held) = (s.generated.get(), s.total_drops(), s.held.get());
    assert_eq!(
        rx + generated,
        tx + drops + held,
        "books: rx {rx} + generated {generated} != tx {tx} + drops {drops} + held {held}"
    );
    let pool = &w.pool;
    let in_use = (pool.nframes() - pool.free_count()) as u64;
    assert_eq!(in_use, held, "frames out of the pool but not held");

    let snap = w.tables.load_full();
    let mut sent = Vec::new();
    for p in 0..w.ports.len() {
        for f in w.ports[p].take_tx() {
            check_tx(&snap, p, &f);
            sent.push((p, f));
        }
    }
    *collected += sent.len() as u64;
    assert_eq!(*collected, tx, "frames on the wire != tx counter");

    while let Some((_, worker, rows)) = w.bus.session_dumps.pop() {
        assert_eq!(worker, 0);
        assert!(rows.len() <= SESSION_DUMP_MAX);
        for r in rows {
            assert!(usize::from(r.rule) < snap.snat.len(), "session of no rule");
        }
    }
    sent
}

/// Every counter of `w` as `/metrics` shows it, but the fast path's own and the polls (which
/// depend on the path's speed, not on what it did).
fn counters(w: &Worker<MemPort>) -> String {
    let snap = w.tables.load();
    let (ports, fips) = vgate::metrics::labels_of(&snap);
    vgate::metrics::render(
        std::slice::from_ref(&w.stats),
        &ports,
        &fips,
        &ControlValues::default().with_policy_of(&snap),
    )
    .lines()
    .filter(|l| !l.starts_with("vgate_worker_") && !l.contains("vgate_fast_path_"))
    .collect::<Vec<_>>()
    .join("\n")
}

/// What vgate may put on a wire.
fn check_tx(snap: &Snapshot, port: usize, f: &[u8]) {
    assert!(f.len() <= MAX_FRAME_LEN, "frame of {} bytes", f.len());
    let eth = ethernet::Frame::new_checked(f).expect("a whole Ethernet header");
    assert!(
        !eth.src_addr().is_multicast(),
        "sent from multicast {}",
        eth.src_addr()
    );
    match eth.ethertype() {
        ethertype::ARP => {
            let a = arp::Packet::new_checked(eth.payload()).expect("whole ARP packet");
            assert!(arp::Repr::parse(&a).is_ok(), "ARP that does not parse");
        }
        ethertype::IPV4 => {
            let ip = ipv4::Packet::new_checked(eth.payload()).expect("IPv4 header checks");
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            assert!(ip.ttl() > 0, "TTL 0 sent");
            let mtu = snap.ports[port].mtu;
            assert!(
                ip.total_len() <= mtu,
                "{} bytes on {} with MTU {mtu}",
                ip.total_len(),
                snap.ports[port].name
            );
        }
        ethertype::IPV6 => check_tx6(snap, port, eth.payload()),
        t => panic!("sent EtherType {t:#06x}"),
    }
}

/// Whether [`check_tx6`] checks the scope of link-local sources. Off while vgate routes the
/// packets it sends from a port's link-local address (echo replies, ICMPv6 errors) by the
/// main table, so that a default route takes them out of another port
/// (tests/fuzz_regressions.rs, `ipv6_link_local_*`, ignored until then): with the check on,
/// every run stops there within seconds and finds nothing else.
const CHECK_LINK_LOCAL_SCOPE: bool = true;

/// What vgate may send as IPv6 on `port`: `l3` is what follows the Ethernet header.
fn check_tx6(snap: &Snapshot, port: usize, l3: &[u8]) {
    let ip = ipv6::Packet::new_checked(l3).expect("IPv6 header and payload length check");
    let total = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    assert_eq!(total, l3.len(), "IPv6 sent with link padding");
    assert!(ip.hop_limit() > 0, "hop limit 0 sent");
    let p = &snap.ports[port];
    assert!(
        total <= usize::from(p.mtu),
        "{total} bytes of IPv6 on {} with MTU {}",
        p.name,
        p.mtu
    );
    let (src, dst) = (ip.src_u128(), ip.dst_u128());
    let ip6 = &snap.ip6;
    assert!(
        src != 0 && src >> 120 != 0xff,
        "sent from {:?}",
        ip.src_addr()
    );
    assert!(dst != 0, "sent to the unspecified address");
    let is_link_local = |a: u128| a >> 118 == 0x3fa;
    // A link-local address of vgate on this link: the port's own, or a gateway of a
    // network on it.
    let local_here = |a: u128| {
        ip6.ports.get(port).is_some_and(|pp| pp.link_local == a)
            || ip6
                .networks
                .iter()
                .any(|n| n.port == Some(port as u8) && n.gateway == a)
    };
    // RFC 4291 section 2.5.6: nothing from a link-local address leaves its link, so every
    // link-local source on the wire is vgate's own on this port.
    assert!(
        !CHECK_LINK_LOCAL_SCOPE || !is_link_local(src) || local_here(src),
        "link-local source {:?} sent on {} (to {:?}): {:02x?}",
        ip.src_addr(),
        p.name,
        ip.dst_addr(),
        &l3[..l3.len().min(96)]
    );
    // What vgate sends from its own addresses it built itself: a forwarded packet from one
    // of them was dropped at ip6_input (own source, link-local scope).
    let ours = ip6.own.contains_key(&src)
        || ip6.ports.iter().any(|pp| pp.link_local == src)
        || ip6.networks.iter().any(|n| n.gateway == src);
    if !ours {
        return;
    }
    let Ok(chain) = ip.walk() else {
        panic!("vgate sent an IPv6 header chain that does not walk");
    };
    if chain.protocol != next_header::ICMPV6 || chain.fragment.is_some() {
        return;
    }
    let msg = &l3[chain.offset..total];
    let m = icmpv6::Packet::new_checked(msg).expect("a whole ICMPv6 header");
    assert!(
        m.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "ICMPv6 type {} from vgate with a bad checksum",
        msg[0]
    );
    if (icmpv6::msg::ROUTER_SOLICIT..=icmpv6::msg::NEIGHBOR_ADVERT).contains(&msg[0]) {
        assert_eq!(
            ip.hop_limit(),
            255,
            "NDP sent with a hop limit other than 255"
        );
    }
}

pub fn run(data: &[u8]) {
    let _ = play(data);
}

/// [`run`], giving back the finished harness (None for an empty input).
pub fn play(data: &[u8]) -> Option<Harness> {
    let (&setup, mut ops) = data.split_first()?;
    let mut h = Harness::new(setup);
    let nports = h.ports();
    let mut frame = Vec::with_capacity(MAX_FRAME_LEN);
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op & 3 {
            0 | 1 => {
                let (len, body) = match ops {
                    [a, b, body @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), body),
                    _ => (ops.len(), &[][..]),
                };
                let n = len.min(body.len());
                frame.clear();
                frame.extend_from_slice(&body[..n]);
                ops = &body[n..];
                if op & 1 != 0 {
                    fix_checksums(&mut frame, 0);
                }
                h.inject(usize::from(op >> 2) % nports, &frame);
            }
            2 => h.run(),
            _ if op & 0xc4 == 0xc4 => h.flip_master(),
            _ if op & 0xc0 == 0xc0 => h.request_sessions(),
            _ if op & 0x80 != 0 => h.reload(),
            _ => h.advance(MS << ((op >> 2) & 0x1f)),
        }
    }
    h.finish();
    Some(h)
}

/// Make the checksums of an Ethernet/IPv4 frame right where its lengths allow: the IPv4
/// header, then ICMP, UDP (unless it says "none") or TCP of an unfragmented datagram, and
/// first those of an Ethernet frame carried in Geneve. For Ethernet/IPv6: ICMPv6, UDP or TCP
/// after the extension headers of a packet that is not a fragment.
pub fn fix_checksums(frame: &mut [u8], depth: usize) {
    if frame.len() >= ethernet::HEADER_LEN
        && u16::from_be_bytes([frame[12], frame[13]]) == ethertype::IPV6
    {
        return fix_checksums6(&mut frame[ethernet::HEADER_LEN..]);
    }
    if frame.len() < ethernet::HEADER_LEN + ipv4::HEADER_LEN
        || u16::from_be_bytes([frame[12], frame[13]]) != ethertype::IPV4
    {
        return;
    }
    let l3 = &mut frame[ethernet::HEADER_LEN..];
    let hl = usize::from(l3[0] & 0x0f) * 4;
    if l3[0] >> 4 != 4 || hl < ipv4::HEADER_LEN || hl > l3.len() {
        return;
    }
    l3[10..12].fill(0);
    let c = checksum::checksum(&l3[..hl]);
    l3[10..12].copy_from_slice(&c.to_be_bytes());

    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
    let flags_offset = u16::from_be_bytes([l3[6], l3[7]]);
    if total < hl || total > l3.len() || flags_offset & 0x3fff != 0 {
        return; // truncated, or a fragment: the transport checksum spans other packets
    }
    let (src, dst) = (
        [l3[12], l3[13], l3[14], l3[15]],
        [l3[16], l3[17], l3[18], l3[19]],
    );
    let proto = l3[9];
    let l4 = &mut l3[hl..total];
    match proto {
        protocol::ICMP if l4.len() >= 4 => {
            l4[2..4].fill(0);
            let c = checksum::checksum(l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        protocol::UDP if l4.len() >= 8 => {
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if ulen < 8 || ulen > l4.len() {
                return;
            }
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            if dport == geneve::UDP_PORT && depth < 2 {
                let g = &mut l4[8..ulen];
                if g.len() >= geneve::HEADER_LEN {
                    let ghl = geneve::HEADER_LEN + usize::from(g[0] & 0x3f) * 4;
                    if ghl <= g.len() {
                        fix_checksums(&mut g[ghl..], depth + 1);
                    }
                }
            }
            if l4[6..8] == [0, 0] {
                return; // "no checksum" (RFC 768), as Geneve senders often do
            }
            l4[6..8].fill(0);
            let acc = checksum::pseudo_header_sum(src, dst, protocol::UDP, ulen as u16);
            let c = !checksum::fold(checksum::sum(&l4[..ulen], acc));
            let c = if c == 0 { 0xffff } else { c };
            l4[6..8].copy_from_slice(&c.to_be_bytes());
        }
        protocol::TCP if l4.len() >= 20 => {
            l4[16..18].fill(0);
            let acc = checksum::pseudo_header_sum(src, dst, protocol::TCP, l4.len() as u16);
            let c = !checksum::fold(checksum::sum(l4, acc));
            l4[16..18].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// [`fix_checksums`] for the IPv6 packet `l3`: the upper layer's checksum over the IPv6
/// pseudo-header (RFC 8200 section 8.1), unless the packet is a fragment (its checksum spans
/// the other fragments) or a header runs past the payload length.
fn fix_checksums6(l3: &mut [u8]) {
    let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
        return;
    };
    let Ok(chain) = ip.walk() else {
        return;
    };
    if chain.fragment.is_some_and(|f| !f.is_atomic()) {
        return;
    }
    let total = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&l3[8..24]);
    dst.copy_from_slice(&l3[24..40]);
    let l4 = &mut l3[chain.offset..total];
    let (at, len) = match chain.protocol {
        next_header::ICMPV6 if l4.len() >= icmpv6::HEADER_LEN => (2, l4.len()),
        next_header::UDP if l4.len() >= 8 => {
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if ulen < 8 || ulen > l4.len() {
                return;
            }
            (6, ulen)
        }
        next_header::TCP if l4.len() >= 20 => (16, l4.len()),
        _ => return,
    };
    let l4 = &mut l4[..len];
    l4[at..at + 2].fill(0);
    let acc = checksum::pseudo_header_sum_ipv6(src, dst, chain.protocol, len as u32);
    let c = !checksum::fold(checksum::sum(l4, acc));
    // UDP over IPv6 must carry a checksum: 0 is sent as 0xffff (RFC 8200 section 8.1).
    let c = if c == 0 && chain.protocol == next_header::UDP {
        0xffff
    } else {
        c
    };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}
