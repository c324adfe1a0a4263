//! Pipeline cost per packet on the in-memory backend, batch 64, one core.
//!
//! Each iteration restores 64 template frames into their pool frames (a 64-byte copy per
//! packet, included in the figure), runs the batch through every stage, and returns the
//! transmitted frames to the pool. Run: `cargo bench --bench pipeline`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::Ipv4Addr;
use vgate::control::apply::build_snapshot;
use vgate::control::config::{Config, Ipv4Cidr, RouteCfg};
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

const CLIENT: [u8; 6] = [2, 0, 0, 0, 1, 2];
const INT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const UPSTREAM: EthernetAddress = EthernetAddress([2, 0, 0, 0, 2, 1]);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` distinct /24 routes (plus /16s for variety), all via the upstream router.
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
        })
        .collect();
    (
        build_snapshot(&cfg, 1, &|_| None, None).expect("snapshot"),
        prefixes,
    )
}

fn udp_frame(dst: u32) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT, INT_MAC)
        .ipv4([10, 10, 1, 2], dst.to_be_bytes(), 64)
        .udp(4000, 5000);
    let payload = [0u8; 18]; // 64-byte frame without FCS
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

fn bench_forward(c: &mut Criterion, name: &str, nroutes: usize) {
    let (snap, prefixes) = snapshot(nroutes);
    let mut pool = FramePool::new_heap(1024);
    let mut state = WorkerState::new(NeighborConfig::default());
    let mut released = Vec::new();
    state.neighbors.learn(
        0,
        u32::from(Ipv4Addr::new(203, 0, 113, 1)),
        UPSTREAM,
        0,
        true,
        &mut released,
    );
    let stats = WorkerStats::default();
    let mut tx = TxQueues::new(2, 4 * MAX_BATCH);
    let mut batch = Box::<Batch>::default();

    // 64 frames per batch, destinations spread at random over the routes.
    let mut rng = Rng(42);
    let templates: Vec<Vec<Vec<u8>>> = (0..64)
        .map(|_| {
            (0..MAX_BATCH)
                .map(|_| {
                    let p = prefixes[(rng.next() as usize) % prefixes.len()];
                    udp_frame(p | (1 + (rng.next() as u32 % 254)))
                })
                .collect()
        })
        .collect();
    let mut descs = [Desc::default(); MAX_BATCH];
    for d in descs.iter_mut() {
        *d = pool.alloc().unwrap();
    }
    let mut round = 0usize;

    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            let t = &templates[round % templates.len()];
            round += 1;
            batch.reset_rx(MAX_BATCH, 1);
            for i in 0..MAX_BATCH {
                let mut d = descs[i];
                d.len = t[i].len() as u32;
                pool.bytes_mut(&d).copy_from_slice(&t[i]);
                batch.desc[i] = d;
            }
            let mut ctx = Ctx {
                snap: &snap,
                pool: &mut pool,
                state: &mut state,
                stats: &stats,
                tx: &mut tx,
                now: 1_000,
            };
            pipeline::process(&mut ctx, &mut batch);
            // The frames stay allocated: "transmit" is handing them back for the next round.
            let sent = tx.per_port[0].len();
            black_box(sent);
            for q in tx.per_port.iter_mut() {
                q.clear();
            }
        })
    });
    g.finish();
    assert_eq!(
        stats.total_drops(),
        0,
        "benchmark traffic must all be forwarded"
    );
}

fn forwarding(c: &mut Criterion) {
    bench_forward(c, "10_routes", 10);
    bench_forward(c, "100k_routes", 100_000);
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
