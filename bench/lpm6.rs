//! Route lookup cost: the IPv6 table (`tables::lpm6::Lpm6`, a Poptrie) against the IPv4 one
//! (`tables::lpm::Lpm`, DIR-24-8), one core.
//!
//! Tables of 1,000 and 100,000 prefixes with a realistic length mix (below), and a gateway's
//! IPv6 table: a default route, 2,000 tenant /64s and 2,000 host routes (/128) inside them.
//! Each iteration looks up 1,024 addresses from a pool of 65,536 (a different window each
//! time, so the addresses do not stay in the cache): 90 % inside a route picked at random
//! (its host bits random), 10 % anywhere in 2000::/3 (IPv4: anywhere). Criterion's time per
//! iteration divided by 1,024 is the cost per lookup.
//!
//! * `lpm/v6_lookup_*`, `lpm/v4_lookup_*`: `lookup` of each address in turn;
//! * `lpm/v6_batch_*`, `lpm/v4_batch_*`: `lookup_batch` of 64 addresses (the pipeline's
//!   batch) at a time;
//! * `lpm/v6_build_*`: building the IPv6 table from a filled builder.
//!
//! Before each table's benches, its routes, length mix, memory, (for IPv6) nodes and best of
//! three build times are printed. With `VGATE_BENCH_BATCHES=<n>`, each lookup bench first
//! prints the best and the 10th percentile of `n` single rounds of 64 lookups (one batch),
//! per lookup (`harness::batch_spread`; one pair of clock reads per round, under 1 ns per
//! lookup, is included): on this shared VM the best round shows the cost when nothing
//! else interferes, criterion's mean the cost under the load of the moment.
//!
//! The IPv6 mix follows the global table (bgp.potaroo.net, AS6447, October 2024: 226,415
//! prefixes, average length 43.2; RIPE NCC RIS: /32s and /48s are most of it, and very few
//! are longer than /48): a quarter are allocations (/20 to /36, /32 most of all) placed
//! anywhere in 2000::/3, two thirds are more-specifics inside them (/33 to /48, /48 most of
//! all), and a gateway's routes are added: 5 % tenant /64s, 1.5 % /128 and 0.5 % /127 inside
//! them; plus a default route. IPv4: /24 most of all (55 %), /8 to /23, 2 % /25 to /32, and a
//! default route.
//!
//! Run: `cargo bench --bench lpm6`, or `VGATE_BENCH_BATCHES=20000 cargo bench --bench lpm6`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use harness::{Rng, batch_spread};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;
use vgate::pipeline::MAX_BATCH;
use vgate::tables::lpm::LpmBuilder;
use vgate::tables::lpm6::Lpm6Builder;

const POOL: usize = 1 << 16;
const PER_ITER: usize = 1024;
/// Addresses per `lookup_batch` call: the pipeline's batch ([`MAX_BATCH`]).
const BATCH: usize = MAX_BATCH;

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn rng128(rng: &mut Rng) -> u128 {
    (u128::from(rng.next()) << 64) | u128::from(rng.next())
}

/// A pick from `(weight, value)` pairs.
fn weighted<T: Copy>(rng: &mut Rng, table: &[(u32, T)]) -> T {
    let total: u32 = table.iter().map(|e| e.0).sum();
    let mut r = (rng.next() % u64::from(total)) as u32;
    for &(w, v) in table {
        if r < w {
            return v;
        }
        r -= w;
    }
    unreachable!()
}

/// A random prefix of length `len` inside `parent/plen`.
fn inside6(rng: &mut Rng, parent: u128, plen: u8, len: u8) -> u128 {
    (parent | (rng128(rng) & !mask6(plen))) & mask6(len)
}

/// `n` distinct IPv6 prefixes with the realistic mix of the module doc.
fn v6_routes(rng: &mut Rng, n: usize) -> Vec<(u128, u8)> {
    const ALLOC: &[(u32, u8)] = &[
        (60, 32),
        (12, 29),
        (4, 28),
        (3, 30),
        (2, 31),
        (8, 24),
        (6, 20),
        (5, 36),
    ];
    const SPECIFIC: &[(u32, u8)] = &[
        (65, 48),
        (8, 44),
        (7, 40),
        (4, 46),
        (3, 47),
        (3, 36),
        (2, 42),
        (2, 45),
        (1, 38),
        (5, 0), // 0, or not longer than the parent: redrawn from the parent's + 1 to /48
    ];
    let mut set: BTreeMap<(u8, u128), ()> = BTreeMap::new();
    set.insert((0, 0), ());
    let mut allocs: Vec<(u128, u8)> = Vec::new();
    let mut specifics: Vec<(u128, u8)> = Vec::new();
    let mut tenants: Vec<(u128, u8)> = Vec::new();
    while set.len() < n {
        let r = rng.next() % 1000;
        let route = if r < 250 || allocs.is_empty() {
            let len = weighted(rng, ALLOC);
            let p = inside6(rng, 0x2000 << 112, 3, len);
            allocs.push((p, len));
            (p, len)
        } else if r < 930 || specifics.is_empty() {
            let (a, alen) = allocs[(rng.next() % allocs.len() as u64) as usize];
            let mut len = weighted(rng, SPECIFIC);
            if len <= alen {
                len = alen + 1 + (rng.next() % u64::from(48 - alen.min(47))) as u8;
                len = len.min(48);
            }
            let p = inside6(rng, a, alen, len);
            specifics.push((p, len));
            (p, len)
        } else if r < 980 || tenants.is_empty() {
            let (s, slen) = specifics[(rng.next() % specifics.len() as u64) as usize];
            let p = inside6(rng, s, slen, 64);
            tenants.push((p, 64));
            (p, 64)
        } else {
            let (t, _) = tenants[(rng.next() % tenants.len() as u64) as usize];
            let len = if r < 995 { 128 } else { 127 };
            (inside6(rng, t, 64, len), len)
        };
        set.insert((route.1, route.0), ());
    }
    set.into_keys().map(|(l, p)| (p, l)).collect()
}

/// The gateway's table: a default route, `tenants` /64s in one /40 and as many /128s in them.
fn gateway_routes(rng: &mut Rng, tenants: usize) -> Vec<(u128, u8)> {
    let site: u128 = 0x2001_0db8_0100 << 88;
    let mut set: BTreeMap<(u8, u128), ()> = BTreeMap::new();
    set.insert((0, 0), ());
    let mut nets = Vec::new();
    while nets.len() < tenants {
        let p = inside6(rng, site, 40, 64);
        if set.insert((64, p), ()).is_none() {
            nets.push(p);
        }
    }
    while set.len() < 1 + 2 * tenants {
        let net = nets[(rng.next() % nets.len() as u64) as usize];
        let p = inside6(rng, net, 64, 128);
        set.insert((128, p), ());
    }
    set.into_keys().map(|(l, p)| (p, l)).collect()
}

/// `n` distinct IPv4 prefixes with the mix of the module doc.
fn v4_routes(rng: &mut Rng, n: usize) -> Vec<(u32, u8)> {
    const LENS: &[(u32, u8)] = &[
        (55, 24),
        (10, 23),
        (8, 22),
        (5, 21),
        (5, 20),
        (4, 19),
        (3, 18),
        (2, 17),
        (3, 16),
        (3, 12),
        (1, 26),
        (1, 32),
    ];
    let mut set: BTreeMap<(u8, u32), ()> = BTreeMap::new();
    set.insert((0, 0), ());
    while set.len() < n {
        let len = weighted(rng, LENS);
        set.insert((len, (rng.next() as u32) & mask4(len)), ());
    }
    set.into_keys().map(|(l, p)| (p, l)).collect()
}

fn v6_pool(rng: &mut Rng, routes: &[(u128, u8)]) -> Vec<u128> {
    (0..POOL)
        .map(|_| {
            if rng.next().is_multiple_of(10) {
                inside6(rng, 0x2000 << 112, 3, 128)
            } else {
                let (p, len) = routes[(rng.next() % routes.len() as u64) as usize];
                p | (rng128(rng) & !mask6(len))
            }
        })
        .collect()
}

fn v4_pool(rng: &mut Rng, routes: &[(u32, u8)]) -> Vec<u32> {
    (0..POOL)
        .map(|_| {
            if rng.next().is_multiple_of(10) {
                rng.next() as u32
            } else {
                let (p, len) = routes[(rng.next() % routes.len() as u64) as usize];
                p | (rng.next() as u32 & !mask4(len))
            }
        })
        .collect()
}

fn v6_builder(routes: &[(u128, u8)]) -> Lpm6Builder {
    let mut b = Lpm6Builder::new();
    for (i, &(p, l)) in routes.iter().enumerate() {
        b.insert(p, l, (i % 4096) as u32).unwrap();
    }
    b
}

fn v4_builder(routes: &[(u32, u8)]) -> LpmBuilder {
    let mut b = LpmBuilder::new();
    for (i, &(p, l)) in routes.iter().enumerate() {
        b.insert(p, l, (i % 4096) as u32).unwrap();
    }
    b
}

/// The length mix of `routes`: average length and the share of the commonest lengths.
fn mix<A>(routes: &[(A, u8)]) -> String {
    let mut count = [0usize; 129];
    for r in routes {
        count[usize::from(r.1)] += 1;
    }
    let avg = routes.iter().map(|r| f64::from(r.1)).sum::<f64>() / routes.len() as f64;
    let mut top: Vec<(usize, usize)> = count.iter().copied().enumerate().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    let shares: Vec<String> = top[..5]
        .iter()
        .map(|&(l, c)| format!("/{l} {:.0} %", 100.0 * c as f64 / routes.len() as f64))
        .collect();
    format!("average length {avg:.1}, {}", shares.join(", "))
}

/// Best of 3 `build`s of a builder from `fill`, in milliseconds: the build alone, without
/// filling the builder or dropping the table.
fn best_build<B, T>(fill: impl Fn() -> B, build: impl Fn(B) -> T) -> f64 {
    (0..3)
        .map(|_| {
            let b = fill();
            let t0 = Instant::now();
            let t = black_box(build(b));
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            drop(t);
            ms
        })
        .fold(f64::INFINITY, f64::min)
}

/// `lpm/<prefix>_lookup_<name>` and `lpm/<prefix>_batch_<name>` over `pool`, 1,024 lookups an
/// iteration; with `VGATE_BENCH_BATCHES` set, the best and the 10th percentile of that many
/// single rounds of 64 lookups of each first ([`batch_spread`]).
fn bench_lookups<A: Copy>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    prefix: &str,
    name: &str,
    pool: &[A],
    lookup: impl Fn(A) -> Option<u32>,
    batch: impl Fn(&[A], &mut [Option<u32>]),
) {
    let mut out = vec![None; PER_ITER];
    let mut at = 0;
    let mut window = |n: usize| {
        at = (at + n) % POOL;
        at..at + n
    };
    let one = |addrs: &[A]| {
        let mut sum = 0u32;
        for &a in addrs {
            sum = sum.wrapping_add(lookup(black_box(a)).unwrap_or(0));
        }
        black_box(sum);
    };
    batch_spread(&format!("lpm/{prefix}_lookup_{name}"), || {
        let w = &pool[window(BATCH)];
        let t0 = Instant::now();
        one(w);
        t0.elapsed()
    });
    g.bench_function(format!("{prefix}_lookup_{name}"), |b| {
        b.iter(|| one(&pool[window(PER_ITER)]))
    });
    let mut some = [None; BATCH];
    batch_spread(&format!("lpm/{prefix}_batch_{name}"), || {
        let w = &pool[window(BATCH)];
        let t0 = Instant::now();
        batch(black_box(w), &mut some);
        let t = t0.elapsed();
        black_box(&some);
        t
    });
    g.bench_function(format!("{prefix}_batch_{name}"), |b| {
        b.iter(|| {
            for (addrs, out) in pool[window(PER_ITER)]
                .chunks(BATCH)
                .zip(out.chunks_mut(BATCH))
            {
                batch(black_box(addrs), out);
            }
            black_box(&out);
        })
    });
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut g = c.benchmark_group("lpm");
    g.throughput(Throughput::Elements(PER_ITER as u64));

    let mut v6: Vec<(String, Vec<(u128, u8)>)> = Vec::new();
    for (name, n) in [("1k", 1_000), ("100k", 100_000)] {
        v6.push((name.into(), v6_routes(&mut rng, n)));
    }
    v6.push(("gateway_4k".into(), gateway_routes(&mut rng, 2_000)));

    for (name, routes) in &v6 {
        let table = v6_builder(routes).build().unwrap();
        let pool = v6_pool(&mut rng, routes);
        let hits = pool.iter().filter(|&&a| table.lookup(a).is_some()).count();
        println!(
            "lpm6 {name}: {} routes ({}), {} nodes, memory_bytes {} ({:.2} MiB), \
             build {:.2} ms (best of 3), {:.0} % of the addresses match",
            table.routes(),
            mix(routes),
            table.nodes(),
            table.memory_bytes(),
            table.memory_bytes() as f64 / (1 << 20) as f64,
            best_build(|| v6_builder(routes), |b| b.build().unwrap()),
            100.0 * hits as f64 / POOL as f64,
        );
        let mut check = vec![None; POOL];
        table.lookup_batch(&pool, &mut check);
        assert!(pool.iter().zip(&check).all(|(&a, &o)| table.lookup(a) == o));
        bench_lookups(
            &mut g,
            "v6",
            name,
            &pool,
            |a| table.lookup(a),
            |a, o| table.lookup_batch(a, o),
        );
    }

    for (name, n) in [("1k", 1_000), ("100k", 100_000)] {
        let routes = v4_routes(&mut rng, n);
        let table = v4_builder(&routes).build().unwrap();
        let pool = v4_pool(&mut rng, &routes);
        println!(
            "lpm {name}: {} routes ({}), memory_bytes {} ({:.2} MiB), build {:.2} ms (best of 3)",
            table.routes(),
            mix(&routes),
            table.memory_bytes(),
            table.memory_bytes() as f64 / (1 << 20) as f64,
            best_build(|| v4_builder(&routes), |b| b.build().unwrap()),
        );
        bench_lookups(
            &mut g,
            "v4",
            name,
            &pool,
            |a| table.lookup(a),
            |a, o| table.lookup_batch(a, o),
        );
    }

    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for (name, routes) in &v6[..2] {
        g.bench_function(format!("v6_build_{name}"), |b| {
            b.iter_batched(
                || v6_builder(routes),
                |builder| builder.build().unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
