//! NAT cost per packet on the in-memory backend, batch 64, one core: floating IP DNAT
//! inbound, floating IP SNAT outbound, and SNAT (PAT) on existing sessions with 1,000,000
//! sessions in the tables.
//!
//! `nat/fip_dnat_in`, `nat/fip_snat_out`, `nat/snat_existing_1m_sessions`: each iteration
//! restores 64 template frames (a frame-sized copy per packet, included in the figure) and
//! runs them through every stage (l2_input, ip4_input, nat_in, route, nat_out, rewrite): the
//! whole pipeline's cost per packet, NAT included.
//!
//! `nat/*_pipeline_only`: the same rounds with the clock stopped for the restore and the
//! hand-back of the transmitted frames: the pipeline's own cost per packet, plus one pair of
//! clock reads per batch (`nat/timer_only`, divided by 64).
//!
//! `nat/stage_*`: the NAT stage alone. Each iteration restores the 64 frames and queues them
//! where ip4_input (for nat_in) or route (for nat_out) would have left them, then runs only
//! that stage. `stage_restore_only` does the same without running the stage: the stage's own
//! cost is the difference.
//!
//! Run: `cargo bench --bench nat`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{Bench, ip, session_sets, snat_sessions, udp};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vgate::control::config::Config;
use vgate::pipeline::{self, Ctx, MAX_BATCH, Meta, Next};
use vgate::tables::nat::Proto;

const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 2, 1];
const NETWORKS: u32 = 16;
const SESSIONS_PER_NETWORK: u32 = 62_500;

/// 16 flat tenant networks 10.N.0.0/16 on the internal port, each with SNAT to its own
/// external address 203.0.113.(100+N), and 64 floating IPs 203.0.113.(10+k) -> 10.0.0.(10+k).
fn config() -> Config {
    let mut c = String::from(
        r#"
[[port]]
name = "external"
iface = "ext0"
mac = "02:00:00:00:00:01"
addresses = ["203.0.113.2/24"]

[[port]]
name = "internal"
iface = "int0"
mac = "fa:16:3e:00:00:01"

[[route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"
"#,
    );
    for n in 0..NETWORKS {
        let _ = write!(
            c,
            "\n[[network]]\nname = \"t{n}\"\nport = \"internal\"\nsubnet = \"10.{n}.0.0/16\"\n\
             gateway = \"10.{n}.0.1\"\ngateway_mac = \"fa:16:3e:00:00:01\"\n\
             \n[[snat]]\nnetwork = \"t{n}\"\nexternal = \"203.0.113.{}\"\nports = \"1024-65535\"\n\
             max_sessions = 100000\n",
            100 + n
        );
    }
    for k in 0..64 {
        let _ = write!(
            c,
            "\n[[floating_ip]]\nexternal = \"203.0.113.{}\"\ninternal = \"10.0.0.{}\"\nnetwork = \"t0\"\n",
            10 + k,
            10 + k
        );
    }
    Config::from_toml_str(&c).expect("bench config")
}

/// The FIP bench's worker: knows the upstream router and the 64 VMs.
fn bench_worker() -> Bench {
    let mut neighbors = vec![(0, ip([203, 0, 113, 1]), UPSTREAM)];
    neighbors.extend((0..64u32).map(|k| {
        (
            1,
            ip([10, 0, 0, 10 + k as u8]),
            [0xfa, 0x16, 0x3e, 1, 0, k as u8],
        )
    }));
    Bench::new(&config(), &neighbors)
}

/// Only the NAT stages, for `nat/stage_*`.
trait StageBench {
    fn stage(&mut self, frames: &[Vec<u8>], stage: Next, run: bool) -> u32;
}

impl StageBench for Bench {
    /// Restore `frames` and queue them at `stage` as the stage before it leaves them (the
    /// destination and TTL in the batch; for nat_out also the route result); then run the
    /// stage alone if `run`. Returns the packets headed for route or rewrite, or still at `stage`: not dropped.
    fn stage(&mut self, frames: &[Vec<u8>], stage: Next, run: bool) -> u32 {
        self.batch.clear();
        let (rx_port, tx_port) = if stage == Next::NatIn { (0, 1) } else { (1, 0) };
        for (i, f) in frames.iter().enumerate() {
            let mut d = self.descs[i];
            d.len = f.len() as u32;
            self.pool.bytes_mut(&d).copy_from_slice(f);
            let meta = Meta {
                rx_port,
                tx_port,
                ttl: f[22],
                nexthop: u32::from_be_bytes([f[30], f[31], f[32], f[33]]),
                ..Meta::default()
            };
            self.batch.push(d, meta, stage);
            self.batch.dst[i] = meta.nexthop;
        }
        if run {
            let mut ctx = Ctx {
                snap: &self.snap,
                pool: &mut self.pool,
                state: &mut self.state,
                stats: &self.stats,
                tx: &mut self.tx,
                now: 1_000,
            };
            let mask = self.batch.mask(stage);
            if stage == Next::NatIn {
                pipeline::nat::run_in(&mut ctx, &mut self.batch, mask);
            } else {
                pipeline::nat::run_out(&mut ctx, &mut self.batch, mask);
            }
        }
        (self.batch.mask(Next::Route) | self.batch.mask(Next::Rewrite) | self.batch.mask(stage))
            .count_ones()
    }
}

fn nat(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));

    // Floating IP DNAT: the internet to 64 floating IPs.
    let mut b = bench_worker();
    let inbound: Vec<Vec<u8>> = (0..MAX_BATCH as u32)
        .map(|k| {
            udp(
                UPSTREAM,
                EXT_MAC,
                ip([198, 51, 100, 7]),
                ip([203, 0, 113, 10 + k as u8]),
                5000 + k as u16,
                80,
            )
        })
        .collect();
    assert_eq!(b.run(&inbound, 0, None), MAX_BATCH);
    g.bench_function("fip_dnat_in", |bn| {
        bn.iter(|| black_box(b.run(&inbound, 0, None)))
    });
    b.bench_pipeline_only(
        &mut g,
        "nat",
        "fip_dnat_in_pipeline_only",
        std::slice::from_ref(&inbound),
        0,
        None,
    );
    assert_eq!(b.stats.total_drops(), 0);

    // Floating IP SNAT: the VMs to the internet.
    let outbound: Vec<Vec<u8>> = (0..MAX_BATCH as u32)
        .map(|k| {
            udp(
                GW_MAC,
                GW_MAC,
                ip([10, 0, 0, 10 + k as u8]),
                ip([198, 51, 100, 7]),
                80,
                5000 + k as u16,
            )
        })
        .collect();
    assert_eq!(b.run(&outbound, 1, None), MAX_BATCH);
    g.bench_function("fip_snat_out", |bn| {
        bn.iter(|| black_box(b.run(&outbound, 1, None)))
    });
    b.bench_pipeline_only(
        &mut g,
        "nat",
        "fip_snat_out_pipeline_only",
        std::slice::from_ref(&outbound),
        1,
        None,
    );
    assert_eq!(b.stats.total_drops(), 0);
    let mut stage = |name: &str, frames: &[Vec<u8>], next: Next, run: bool| {
        assert_eq!(b.stage(frames, next, run), MAX_BATCH as u32);
        g.bench_function(name, |bn| bn.iter(|| black_box(b.stage(frames, next, run))));
    };
    stage("stage_restore_only", &inbound, Next::NatIn, false);
    stage("stage_fip_dnat_in", &inbound, Next::NatIn, true);
    stage("stage_fip_snat_out", &outbound, Next::NatOut, true);
    assert_eq!(b.stats.total_drops(), 0);

    // SNAT with 1,000,000 sessions; packets of random existing sessions.
    let mut b = bench_worker();
    let inside = snat_sessions(NETWORKS, SESSIONS_PER_NETWORK, |n, host, port| {
        let t = b.state.snat[n as usize].as_mut().unwrap();
        t.outbound(Proto::Udp, host, port, 0, 0).expect("preload");
    });
    let total: usize = b.state.snat.iter().flatten().map(|t| t.len()).sum();
    assert_eq!(total, 1_000_000);
    let sets = session_sets(&inside, GW_MAC, GW_MAC);
    let mut round = 0;
    assert_eq!(b.run(&sets[0], 1, None), MAX_BATCH);
    g.bench_function("snat_existing_1m_sessions", |bn| {
        bn.iter(|| {
            round += 1;
            black_box(b.run(&sets[round % sets.len()], 1, None))
        })
    });
    b.bench_pipeline_only(
        &mut g,
        "nat",
        "snat_existing_1m_sessions_pipeline_only",
        &sets,
        1,
        None,
    );
    assert_eq!(
        b.stats.total_drops(),
        0,
        "every packet hit an existing session"
    );
    g.bench_function("stage_snat_existing_1m_sessions", |bn| {
        bn.iter(|| {
            round += 1;
            black_box(b.stage(&sets[round % sets.len()], Next::NatOut, true))
        })
    });
    assert_eq!(b.stats.total_drops(), 0);

    // What the `_pipeline_only` figures include besides the pipeline: one pair of clock
    // reads per batch.
    g.bench_function("timer_only", |bn| {
        bn.iter_custom(|n| {
            let mut t = Duration::ZERO;
            for _ in 0..n {
                let start = Instant::now();
                t += black_box(start).elapsed();
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, nat);
criterion_main!(benches);
