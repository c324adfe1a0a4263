//! Pipeline cost per packet on the in-memory backend, batch 64, one core.
//!
//! Each iteration restores 64 template frames into their pool frames (a fixed-size copy per
//! packet, included in the figure), runs the batch through every stage, and hands the
//! transmitted frames back for the next round. `*_pipeline_only`: the same rounds with the
//! clock stopped for the restore and the hand-back (one pair of clock reads per batch
//! remains: `nat/timer_only`). Run: `cargo bench --bench pipeline`.
//!
//! * `forward/*`: UDP from the internal port to random destinations over 10 or 100,000
//!   routes, all via one upstream router (l2_input, ip4_input, route, rewrite).
//! * `forward6/*`: the same for IPv6 on a dual-stack configuration: UDP/IPv6 (62-byte
//!   frames, the smallest) to random destinations over 10 or 100,000 /48 routes in
//!   2000::/3, via one upstream router on the external port (ip6_input, ip6_forward).
//! * `local/arp_reply`: ARP requests for the router's address from 64 on-link hosts,
//!   answered in place (l2_input, arp).
//! * `local/echo_reply`: ICMP echo requests to the router's address from 64 on-link hosts,
//!   answered in place (l2_input, ip4_input, route, local, route, rewrite).

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{Rng, batch_spread};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use vgate::control::apply::build_snapshot;
use vgate::control::config::{Config, Ipv4Cidr, Ipv6Cidr, Route6Cfg, RouteCfg};
use vgate::io::{Desc, FramePool};
use vgate::metrics::WorkerStats;
use vgate::pipeline::{self, Batch, Ctx, MAX_BATCH, TxQueues, WorkerState};
use vgate::tables::Snapshot;
use vgate::tables::neighbor::NeighborConfig;
use vgate::wire::EthernetAddress;

const BASE: &str = r#"
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

/// [`BASE`] with IPv6 on both ports: the upstream router's link on the external port, a
/// tenant /64 on the internal one.
const DUAL: &str = r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "internal"
iface = "int0"
mac = "02:00:00:00:00:02"
addresses = ["10.10.1.1/24", "2001:db8:1::1/64"]
"#;

/// The upstream router's IPv6 address, on the external port's /64.
const UPSTREAM6: u128 = 0x2001_0db8_00ff_0000_0000_0000_0000_0001;
/// The client on the internal port's /64.
const CLIENT6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0002;
/// A UDP/IPv6 frame with no payload: 14 + 40 + 8 bytes, the smallest there is.
const UDP6_FRAME: usize = 62;

const EXTERNAL: u8 = 0;
const INTERNAL: u8 = 1;
const CLIENT: [u8; 6] = [2, 0, 0, 0, 1, 2];
const INT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const INT_ADDR: [u8; 4] = [10, 10, 1, 1];
const UPSTREAM: EthernetAddress = EthernetAddress([2, 0, 0, 0, 2, 1]);

/// Frame sizes: minimum Ethernet frame without FCS, and a default `ping` (56 data bytes).
const MIN_FRAME: usize = 60;
const PING_FRAME: usize = 14 + 20 + 8 + 56;

/// `n` distinct /24 routes, all via the upstream router.
fn snapshot(n: usize) -> (Snapshot, Vec<u32>) {
    let mut cfg = Config::from_toml_str(BASE).expect("config");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut prefixes = std::collections::BTreeSet::new();
    while prefixes.len() < n {
        // Unicast space outside 0/8, 10/8, 127/8 and the multicast/reserved range.
        let a = (rng.next() as u32) & 0xffff_ff00;
        let top = a >> 24;
        if top == 0 || top == 10 || top == 127 || top >= 224 || top == 203 {
            continue;
        }
        prefixes.insert(a);
    }
    let prefixes: Vec<u32> = prefixes.into_iter().collect();
    cfg.routes = prefixes
        .iter()
        .map(|p| RouteCfg {
            table: "main".into(),
            prefix: Ipv4Cidr {
                addr: Ipv4Addr::from_bits(*p),
                len: 24,
            },
            via: Some(Ipv4Addr::new(203, 0, 113, 1)),
            port: None,
            ..Default::default()
        })
        .collect();
    (
        build_snapshot(&cfg, 1, &|_| None, None).expect("snapshot"),
        prefixes,
    )
}

/// `n` distinct /48 routes spread over 2000::/3 (outside 2001:db8::/32, where the ports'
/// prefixes are), all via the upstream router; the snapshot and the prefixes.
fn snapshot6(n: usize) -> (Snapshot, Vec<u128>) {
    let mut cfg = Config::from_toml_str(DUAL).expect("config");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut prefixes = std::collections::BTreeSet::new();
    while prefixes.len() < n {
        // 2000::/3 and 45 random bits: a /48.
        let top = (1u128 << 45 | (rng.next() as u128 & ((1 << 45) - 1))) << 80;
        if top >> 96 == 0x2001_0db8 {
            continue;
        }
        prefixes.insert(top);
    }
    let prefixes: Vec<u128> = prefixes.into_iter().collect();
    cfg.routes6 = prefixes
        .iter()
        .map(|p| Route6Cfg {
            prefix: Ipv6Cidr::new(Ipv6Addr::from_bits(*p), 48).expect("a /48"),
            via: Some(Ipv6Addr::from_bits(UPSTREAM6)),
            ..Default::default()
        })
        .collect();
    (
        build_snapshot(&cfg, 1, &|_| None, None).expect("snapshot"),
        prefixes,
    )
}

fn frame<const N: usize>(v: Vec<u8>) -> [u8; N] {
    v.try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("template is {} bytes, not {N}", v.len()))
}

fn udp_frame(dst: u32) -> [u8; MIN_FRAME] {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT, INT_MAC)
        .ipv4([10, 10, 1, 2], dst.to_be_bytes(), 64)
        .udp(4000, 5000);
    let payload = [0u8; 18]; // 60-byte frame
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    frame(out)
}

/// UDP/IPv6 from the client on the internal port to `dst`, hop limit 64.
fn udp6_frame(dst: u128) -> [u8; UDP6_FRAME] {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT, INT_MAC)
        .ipv6(CLIENT6.to_be_bytes(), dst.to_be_bytes(), 64)
        .udp(4000, 5000);
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    frame(out)
}

/// On-link host `k` of the internal network: its address and MAC.
fn host(k: usize) -> ([u8; 4], [u8; 6]) {
    ([10, 10, 1, 2 + k as u8], [2, 0, 0, 0, 1, 2 + k as u8])
}

/// ARP request from host `k` for the router's internal address, padded to 60 bytes.
fn arp_request(k: usize) -> [u8; MIN_FRAME] {
    let (ip, mac) = host(k);
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&INT_ADDR);
    f.resize(MIN_FRAME, 0);
    frame(f)
}

/// ICMP echo request from host `k` to the router's internal address.
fn echo_request(k: usize, seq: u16) -> [u8; PING_FRAME] {
    let (ip, mac) = host(k);
    let b = etherparse::PacketBuilder::ethernet2(mac, INT_MAC)
        .ipv4(ip, INT_ADDR, 64)
        .icmpv4_echo_request(0x1234, seq);
    let payload: Vec<u8> = (0..56).map(|i| i as u8).collect();
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    frame(out)
}

/// A worker's state on the mem backend, with one batch of frames allocated.
struct Rig {
    snap: Snapshot,
    pool: FramePool,
    state: WorkerState,
    stats: WorkerStats,
    tx: TxQueues,
    batch: Box<Batch>,
    descs: [Desc; MAX_BATCH],
}

impl Rig {
    fn new(snap: Snapshot) -> Rig {
        let mut pool = FramePool::new_heap(1024);
        let mut descs = [Desc::default(); MAX_BATCH];
        for d in descs.iter_mut() {
            *d = pool.alloc().unwrap();
        }
        Rig {
            snap,
            pool,
            state: WorkerState::new(NeighborConfig::default()),
            stats: WorkerStats::default(),
            tx: TxQueues::new(2, 4 * MAX_BATCH),
            batch: Box::<Batch>::default(),
            descs,
        }
    }

    fn learn(&mut self, port: u8, ip: [u8; 4], mac: EthernetAddress) {
        let mut released = Vec::new();
        self.state
            .neighbors
            .learn(port, u32::from_be_bytes(ip), mac, 0, true, &mut released);
    }

    fn learn6(&mut self, port: u8, ip: u128, mac: EthernetAddress) {
        let mut released = Vec::new();
        self.state
            .neighbors6
            .learn(port, ip, mac, 0, true, &mut released);
    }

    /// One round of `frames`: every packet must leave by the fast path.
    fn assert_fast<const N: usize>(&mut self, what: &str, frames: &[[u8; N]; MAX_BATCH]) {
        let before = self.stats.fast_path.get();
        assert_eq!(self.round(frames, INTERNAL), MAX_BATCH, "{what}: all sent");
        assert_eq!(
            self.stats.fast_path.get() - before,
            MAX_BATCH as u64,
            "{what}: every packet takes the fast path"
        );
    }

    /// Restore `frames` into the batch, run it, and return how many left on `tx_port`.
    #[inline(always)]
    fn round<const N: usize>(&mut self, frames: &[[u8; N]; MAX_BATCH], rx_port: u8) -> usize {
        self.restore(frames, rx_port);
        self.process();
        self.sent()
    }

    /// `iters` rounds over `sets` in turn from `*k`, timing only the pipeline: the restore
    /// and the hand-back happen outside the clock.
    fn timed<const N: usize>(
        &mut self,
        iters: u64,
        sets: &[[[u8; N]; MAX_BATCH]],
        k: &mut usize,
        rx_port: u8,
    ) -> Duration {
        let mut t = Duration::ZERO;
        for _ in 0..iters {
            self.restore(&sets[*k % sets.len()], rx_port);
            *k += 1;
            let start = Instant::now();
            self.process();
            t += start.elapsed();
            black_box(self.sent());
        }
        t
    }

    #[inline(always)]
    fn restore<const N: usize>(&mut self, frames: &[[u8; N]; MAX_BATCH], rx_port: u8) {
        self.batch.reset_rx(MAX_BATCH, rx_port);
        for (i, f) in frames.iter().enumerate() {
            let mut d = self.descs[i];
            d.len = N as u32;
            self.pool.bytes_mut(&d).copy_from_slice(f);
            self.batch.desc[i] = d;
        }
    }

    #[inline(always)]
    fn process(&mut self) {
        let mut ctx = Ctx {
            snap: &self.snap,
            pool: &mut self.pool,
            state: &mut self.state,
            stats: &self.stats,
            tx: &mut self.tx,
            now: 1_000,
        };
        pipeline::process(&mut ctx, &mut self.batch);
    }

    /// The number of packets sent, handed back: the frames stay allocated, "transmit" is
    /// handing them back for the next round.
    #[inline(always)]
    fn sent(&mut self) -> usize {
        let sent = self.tx.per_port.iter().map(Vec::len).sum();
        for q in self.tx.per_port.iter_mut() {
            q.clear();
        }
        sent
    }

    /// Benchmark rounds over `sets` (one set of 64 frames per round, in turn); every packet
    /// must come out and none be dropped.
    fn bench<const N: usize>(
        &mut self,
        c: &mut Criterion,
        group: &str,
        name: &str,
        sets: &[[[u8; N]; MAX_BATCH]],
        rx_port: u8,
    ) {
        assert_eq!(self.round(&sets[0], rx_port), MAX_BATCH, "{group}/{name}");
        let mut k = 0usize;
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(MAX_BATCH as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let sent = self.round(&sets[k % sets.len()], rx_port);
                k += 1;
                black_box(sent)
            })
        });
        batch_spread(&format!("{group}/{name}_pipeline_only"), || {
            self.timed(1, sets, &mut k, rx_port)
        });
        g.bench_function(format!("{name}_pipeline_only"), |b| {
            b.iter_custom(|n| self.timed(n, sets, &mut k, rx_port))
        });
        g.finish();
        assert_eq!(
            self.stats.total_drops(),
            0,
            "{group}/{name}: benchmark traffic must all be answered or forwarded"
        );
    }
}

fn bench_forward(c: &mut Criterion, name: &str, nroutes: usize) {
    let (snap, prefixes) = snapshot(nroutes);
    let mut rig = Rig::new(snap);
    rig.learn(EXTERNAL, [203, 0, 113, 1], UPSTREAM);
    // 64 batches of 64 frames, destinations spread at random over the routes.
    let mut rng = Rng(42);
    let sets: Vec<[[u8; MIN_FRAME]; MAX_BATCH]> = (0..64)
        .map(|_| {
            std::array::from_fn(|_| {
                let p = prefixes[(rng.next() as usize) % prefixes.len()];
                udp_frame(p | (1 + (rng.next() as u32 % 254)))
            })
        })
        .collect();
    rig.assert_fast(name, &sets[0]);
    rig.bench(c, "forward", name, &sets, INTERNAL);
}

fn bench_forward6(c: &mut Criterion, name: &str, nroutes: usize) {
    let (snap, prefixes) = snapshot6(nroutes);
    assert!(snap.ip6.enabled());
    let mut rig = Rig::new(snap);
    rig.learn6(EXTERNAL, UPSTREAM6, UPSTREAM);
    // 64 batches of 64 frames, destinations spread at random over the routes: a random
    // interface identifier and subnet inside a random /48.
    let mut rng = Rng(42);
    let sets: Vec<[[u8; UDP6_FRAME]; MAX_BATCH]> = (0..64)
        .map(|_| {
            std::array::from_fn(|_| {
                let p = prefixes[(rng.next() as usize) % prefixes.len()];
                // 64 random bits and 16 more: the 80 bits below the /48.
                let low = u128::from(rng.next()) << 16 | u128::from(rng.next() as u16);
                udp6_frame(p | low.max(1))
            })
        })
        .collect();
    rig.assert_fast(name, &sets[0]);
    if std::env::var_os("VGATE_BENCH_BATCHES").is_some() {
        let bytes: usize = rig
            .snap
            .ip6
            .tables
            .iter()
            .map(|t| t.lpm.memory_bytes())
            .sum();
        println!("forward6/{name}: IPv6 route table {bytes} bytes");
    }
    rig.bench(c, "forward6", name, &sets, INTERNAL);
}

fn bench_arp_reply(c: &mut Criterion) {
    let (snap, _) = snapshot(10);
    let mut rig = Rig::new(snap);
    let sets = [std::array::from_fn(arp_request)];
    rig.bench(c, "local", "arp_reply", &sets, INTERNAL);
}

fn bench_echo_reply(c: &mut Criterion) {
    let (snap, _) = snapshot(10);
    let mut rig = Rig::new(snap);
    for k in 0..MAX_BATCH {
        let (ip, mac) = host(k);
        rig.learn(INTERNAL, ip, EthernetAddress(mac));
    }
    let sets = [std::array::from_fn(|k| echo_request(k, 1))];
    rig.bench(c, "local", "echo_reply", &sets, INTERNAL);
}

fn benches(c: &mut Criterion) {
    bench_forward(c, "10_routes", 10);
    bench_forward(c, "100k_routes", 100_000);
    bench_forward6(c, "10_routes", 10);
    bench_forward6(c, "100k_routes", 100_000);
    bench_arp_reply(c);
    bench_echo_reply(c);
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
