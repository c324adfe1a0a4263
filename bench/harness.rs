//! What the NAT and Geneve benches share: one worker's state on the in-memory backend, 64
//! frames restored from templates per iteration and run through the whole pipeline.

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vgate::control::config::Config;
use vgate::io::{Desc, FramePool};
use vgate::metrics::WorkerStats;
use vgate::pipeline::{self, Batch, Ctx, MAX_BATCH, TxQueues, WorkerState};
use vgate::tables::Snapshot;
use vgate::tables::neighbor::NeighborConfig;
use vgate::wire::{EthernetAddress, geneve};

pub struct Bench {
    pub snap: Snapshot,
    pub pool: FramePool,
    pub state: WorkerState,
    pub stats: WorkerStats,
    pub tx: TxQueues,
    pub batch: Box<Batch>,
    pub descs: [Desc; MAX_BATCH],
}

impl Bench {
    /// A worker for `cfg` (two ports) that already knows `neighbors`: (port, IP, MAC).
    pub fn new(cfg: &Config, neighbors: &[(u8, u32, [u8; 6])]) -> Bench {
        let snap =
            vgate::control::apply::build_snapshot(cfg, 1, &|_| None, None).expect("snapshot");
        let mut state = WorkerState::new(NeighborConfig::default());
        let stats = WorkerStats::default();
        state.sync(&snap, &stats);
        let mut released = Vec::new();
        for &(port, ip, mac) in neighbors {
            state
                .neighbors
                .learn(port, ip, EthernetAddress(mac), 0, true, &mut released);
        }
        let mut pool = FramePool::new_heap(1024);
        let mut descs = [Desc::default(); MAX_BATCH];
        for d in descs.iter_mut() {
            *d = pool.alloc().unwrap();
        }
        Bench {
            snap,
            pool,
            state,
            stats,
            tx: TxQueues::new(2, 4 * MAX_BATCH),
            batch: Box::default(),
            descs,
        }
    }

    /// Restore `frames` as received on `port` and run them through every stage; the packets
    /// sent on port `out`, or on all ports when `None`.
    pub fn run(&mut self, frames: &[Vec<u8>], port: u8, out: Option<usize>) -> usize {
        self.restore(frames, port);
        self.process();
        self.sent(out)
    }

    /// `<group>/<name>`, the pipeline-only bench: rounds over `sets` in turn, received on
    /// `port`, timed by [`timed`](Self::timed); with `VGATE_BENCH_BATCHES` set, its best
    /// single batches first ([`batch_spread`]).
    #[allow(clippy::too_many_arguments)]
    pub fn bench_pipeline_only(
        &mut self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        group: &str,
        name: &str,
        sets: &[Vec<Vec<u8>>],
        port: u8,
        out: Option<usize>,
    ) {
        let mut round = 0;
        batch_spread(&format!("{group}/{name}"), || {
            self.timed(1, sets, &mut round, port, out)
        });
        g.bench_function(name, |bn| {
            bn.iter_custom(|n| self.timed(n, sets, &mut round, port, out))
        });
    }

    /// `iters` rounds of [`run`](Self::run) over `sets` in turn, timing only the pipeline:
    /// the restore and the hand-back happen outside the clock (one `Instant` pair per
    /// batch, 37 to 54 ns on this VM: see `nat/timer_only`).
    fn timed(
        &mut self,
        iters: u64,
        sets: &[Vec<Vec<u8>>],
        round: &mut usize,
        port: u8,
        out: Option<usize>,
    ) -> Duration {
        let mut t = Duration::ZERO;
        for _ in 0..iters {
            *round += 1;
            self.restore(&sets[*round % sets.len()], port);
            let start = Instant::now();
            self.process();
            t += start.elapsed();
            black_box(self.sent(out));
        }
        t
    }

    /// The 64 frames back in their pool frames, as received on `port`: a frame-sized copy
    /// per packet.
    fn restore(&mut self, frames: &[Vec<u8>], port: u8) {
        self.batch.reset_rx(MAX_BATCH, port);
        for (i, f) in frames.iter().enumerate() {
            let mut d = self.descs[i];
            d.len = f.len() as u32;
            self.pool.bytes_mut(&d).copy_from_slice(f);
            self.batch.desc[i] = d;
        }
    }

    /// Every stage, once, for the batch.
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

    /// The packets queued on `out` (all ports when `None`), handed back: the frames stay
    /// allocated for the next round.
    fn sent(&mut self, out: Option<usize>) -> usize {
        let sent = match out {
            Some(p) => self.tx.per_port[p].len(),
            None => self.tx.total(),
        };
        for q in self.tx.per_port.iter_mut() {
            q.clear();
        }
        sent
    }
}

/// With `VGATE_BENCH_BATCHES=<n>` in the environment, time `n` single batches with `one`
/// (which returns one batch's time) and print the best batch and the 10th percentile, per
/// packet. On a shared VM whose speed swings between runs, the best of many short batches
/// shows the cost when nothing else interferes; criterion's mean shows the cost under the
/// machine's load at the time.
pub fn batch_spread(id: &str, mut one: impl FnMut() -> Duration) {
    let Some(n) = std::env::var("VGATE_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    let mut t: Vec<u128> = (0..n.max(10)).map(|_| one().as_nanos()).collect();
    t.sort_unstable();
    let per = |x: u128| x as f64 / MAX_BATCH as f64;
    println!(
        "{id}: best batch {:.1} ns/packet, 10th percentile {:.1} ns/packet ({} batches)",
        per(t[0]),
        per(t[t.len() / 10]),
        t.len()
    );
}

/// An Ethernet/IPv4/UDP frame with 18 bytes of payload (a 64-byte frame with FCS).
pub fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 18]).unwrap();
    out
}

/// `inner` inside outer Ethernet (`src_mac` to `dst_mac`), IPv4 (`src` to `dst`), UDP (50000
/// to 6081, with its checksum) and Geneve (`vni`, Ethernet inside, no options): a frame from
/// a chassis to the tunnel address.
pub fn geneve_frame(
    inner: &[u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: u32,
    dst: u32,
    vni: u32,
) -> Vec<u8> {
    let mut g = vec![0u8; geneve::HEADER_LEN];
    geneve::Repr {
        vni,
        protocol: geneve::PROTO_ETHERNET,
        oam: false,
        critical: false,
        options_len: 0,
    }
    .emit(&mut geneve::Packet::new_unchecked(&mut g[..]));
    g.extend_from_slice(inner);
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .udp(50000, geneve::UDP_PORT);
    let mut out = Vec::new();
    b.write(&mut out, &g).unwrap();
    out
}

/// The SNAT benches' sessions: `per_network` UDP sessions in each of `networks` tenant
/// networks 10.N.0.0/16 (250 hosts x 250 ports per network), each preloaded with `preload`
/// (network, host, port); returns the (host, port) of every session.
pub fn snat_sessions(
    networks: u32,
    per_network: u32,
    mut preload: impl FnMut(u32, u32, u16),
) -> Vec<(u32, u16)> {
    let mut inside = Vec::with_capacity((networks * per_network) as usize);
    for n in 0..networks {
        for s in 0..per_network {
            let host = ip([10, n as u8, (s / 250) as u8, 2 + (s % 250) as u8]);
            let port = 10_000 + (s % 250) as u16 + 250 * (s / 250 / 250) as u16;
            preload(n, host, port);
            inside.push((host, port));
        }
    }
    inside
}

/// 64 batches of 64 UDP packets (`src_mac` to `dst_mac`) from sessions of `inside` picked at
/// random, to 198.51.100.7 port 53.
pub fn session_sets(
    inside: &[(u32, u16)],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng(7);
    (0..64)
        .map(|_| {
            (0..MAX_BATCH)
                .map(|_| {
                    let (h, p) = inside[(rng.next() as usize) % inside.len()];
                    udp(src_mac, dst_mac, h, ip([198, 51, 100, 7]), p, 53)
                })
                .collect()
        })
        .collect()
}

/// xorshift64: reproducible test traffic without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn ip(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}
