//! The floor under the per-packet targets: the least work a router can do per packet for two
//! of the benchmarked scenarios, on this machine, with vgate's own tables and frame pool.
//!
//! One specialised loop per scenario, nothing else in it: the checks RFC 1812 section 5.2.2
//! asks of a forwarded packet (IPv4, no options, total length, header checksum, TTL), the
//! floating IP (vgate's `AddrMap`) and the route (vgate's DIR-24-8 `Lpm`), whose value is a
//! prebuilt Ethernet header and MTU (VPP's adjacency: no neighbour table, no reachability
//! timer), the RFC 1624 checksum updates, the Ethernet header, one counter per floating IP
//! and the transmit queue. It leaves out what vgate does besides, per packet: the
//! own-address and spoofed-NAT-source checks, martian addresses, the neighbour cache's
//! reachable time, the choice between floating IP, SNAT and Geneve, and the staged
//! pipeline behind the fast path. Packets that fail a check are only counted; the benches
//! send none.
//!
//! Timed like the `*_pipeline_only` benches: 64 frames restored outside the clock, the loop
//! alone inside it. `floor/forward_10_routes` compares with `forward/10_routes_pipeline_only`,
//! `floor/fip_dnat_in` with `nat/fip_dnat_in_pipeline_only`. Run: `cargo bench --bench floor`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{batch_spread, ip, udp};
use std::hint::black_box;
use std::time::{Duration, Instant};
use vgate::io::{Desc, FramePool};
use vgate::pipeline::MAX_BATCH;
use vgate::tables::addrmap::AddrMap;
use vgate::tables::lpm::{Lpm, LpmBuilder};
use vgate::wire::checksum;

const ETH: usize = 14;
const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];

/// A next hop's Ethernet header and its port's MTU.
struct Adjacency {
    eth: [u8; ETH],
    mtu: u16,
}

struct Floor {
    pool: FramePool,
    descs: [Desc; MAX_BATCH],
    batch: [Desc; MAX_BATCH],
    lpm: Lpm,
    adjacencies: Vec<Adjacency>,
    fips: AddrMap,
    fip_internal: Vec<u32>,
    fip_packets: Vec<u64>,
    tx: Vec<Desc>,
    rx_bytes: u64,
    dropped: u64,
}

impl Floor {
    /// `routes`: (prefix, length, adjacency); `fips`: (external, internal).
    fn new(routes: &[(u32, u8, u32)], adjacencies: Vec<Adjacency>, fips: &[(u32, u32)]) -> Floor {
        let mut b = LpmBuilder::new();
        for &(p, l, a) in routes {
            b.insert(p, l, a).expect("route");
        }
        let mut map = AddrMap::default();
        for (k, &(ext, _)) in fips.iter().enumerate() {
            map.insert(ext, k as u16);
        }
        let mut pool = FramePool::new_heap(256);
        let descs = std::array::from_fn(|_| pool.alloc().expect("frame"));
        Floor {
            pool,
            descs,
            batch: descs,
            lpm: b.build().expect("lpm"),
            adjacencies,
            fips: map,
            fip_internal: fips.iter().map(|&(_, i)| i).collect(),
            fip_packets: vec![0; fips.len()],
            tx: Vec::with_capacity(MAX_BATCH),
            rx_bytes: 0,
            dropped: 0,
        }
    }

    fn restore(&mut self, frames: &[Vec<u8>]) {
        for (i, f) in frames.iter().enumerate() {
            let mut d = self.descs[i];
            d.len = f.len() as u32;
            self.pool.bytes_mut(&d).copy_from_slice(f);
            self.batch[i] = d;
        }
    }

    /// One batch through the loop; `NAT` adds the floating IP DNAT. Returns the packets sent.
    #[inline(never)]
    fn run<const NAT: bool>(&mut self) -> usize {
        self.tx.clear();
        for d in self.batch {
            let f = self.pool.bytes_mut(&d);
            let len = f.len();
            let Some(h) = f.first_chunk_mut::<{ ETH + 20 }>() else {
                self.dropped += 1;
                continue;
            };
            let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
            if h[..6] != PORT_MAC
                || h[12..15] != [0x08, 0x00, 0x45]
                || total < 20
                || total > len - ETH
                || h[22] <= 1
                || !checksum::header20_ok(h[ETH..].first_chunk().unwrap())
            {
                self.dropped += 1;
                continue;
            }
            // Decided from reads first, then written once: one IP checksum update for the
            // address and the TTL together.
            let old = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
            let mut dst = old;
            let mut fip = None;
            if NAT && let Some(x) = self.fips.lookup(old) {
                dst = self.fip_internal[usize::from(x)];
                fip = Some(x);
            }
            let Some(a) = self.lpm.lookup(dst) else {
                self.dropped += 1;
                continue;
            };
            let adj = &self.adjacencies[a as usize];
            if total > usize::from(adj.mtu) {
                self.dropped += 1;
                continue;
            }
            // RFC 1624 eqn. 3: the TTL's 16-bit word goes down by 0x0100 (+0xfeff).
            let mut ip_delta = 0xfeff;
            if let Some(x) = fip {
                let delta = (!old >> 16) + (!old & 0xffff) + (dst >> 16) + (dst & 0xffff);
                ip_delta += delta;
                h[30..34].copy_from_slice(&dst.to_be_bytes());
                // UDP (RFC 768): a zero checksum stays zero, a computed zero is sent as ones.
                if h[23] == 17
                    && let Some(u) = f.get_mut(ETH + 26..ETH + 28)
                {
                    let c = u16::from_be_bytes([u[0], u[1]]);
                    if c != 0 {
                        let c = !checksum::fold(u32::from(!c) + delta);
                        u.copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
                    }
                }
                self.fip_packets[usize::from(x)] += 1;
            }
            f[22] -= 1;
            let c = u16::from_be_bytes([f[24], f[25]]);
            let c = !checksum::fold(u32::from(!c) + ip_delta);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f[..ETH].copy_from_slice(&adj.eth);
            self.rx_bytes += u64::from(d.len);
            self.tx.push(Desc {
                len: (ETH + total) as u32,
                ..d
            });
        }
        self.tx.len()
    }

    fn timed<const NAT: bool>(&mut self, iters: u64, frames: &[Vec<u8>]) -> Duration {
        let mut t = Duration::ZERO;
        for _ in 0..iters {
            self.restore(frames);
            let start = Instant::now();
            black_box(self.run::<NAT>());
            t += start.elapsed();
        }
        t
    }
}

fn adjacency(dst_mac: [u8; 6]) -> Adjacency {
    let mut eth = [0u8; ETH];
    eth[..6].copy_from_slice(&dst_mac);
    eth[6..12].copy_from_slice(&PORT_MAC);
    eth[12..].copy_from_slice(&[0x08, 0x00]);
    Adjacency { eth, mtu: 1500 }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));

    // Forwarding: 10 /24 routes via one router, random destinations among them.
    let mut rng = Rng(42);
    let prefixes: Vec<u32> = (0..10)
        .map(|_| ((rng.next() as u32) & 0x3fff_ff00) | 0x4000_0000)
        .collect();
    let routes: Vec<(u32, u8, u32)> = prefixes.iter().map(|&p| (p, 24, 0)).collect();
    let mut f = Floor::new(&routes, vec![adjacency(PEER_MAC)], &[]);
    let frames: Vec<Vec<u8>> = (0..MAX_BATCH)
        .map(|_| {
            let p = prefixes[(rng.next() as usize) % prefixes.len()];
            let dst = p | (1 + (rng.next() as u32 % 254));
            udp(PEER_MAC, PORT_MAC, ip([10, 10, 1, 2]), dst, 4000, 5000)
        })
        .collect();
    f.restore(&frames);
    assert_eq!(f.run::<false>(), MAX_BATCH);
    batch_spread("floor/forward_10_routes", || f.timed::<false>(1, &frames));
    g.bench_function("forward_10_routes", |b| {
        b.iter_custom(|n| f.timed::<false>(n, &frames))
    });
    assert_eq!(f.dropped, 0);

    // Floating IP DNAT: the internet to 64 floating IPs of 64 VMs, one /32 and adjacency each.
    let vms: Vec<(u32, u32)> = (0..MAX_BATCH as u32)
        .map(|k| {
            (
                ip([203, 0, 113, 10 + k as u8]),
                ip([10, 0, 0, 10 + k as u8]),
            )
        })
        .collect();
    let routes: Vec<(u32, u8, u32)> = vms
        .iter()
        .enumerate()
        .map(|(k, &(_, i))| (i, 32, k as u32))
        .collect();
    let adjacencies = (0..MAX_BATCH)
        .map(|k| adjacency([0xfa, 0x16, 0x3e, 1, 0, k as u8]))
        .collect();
    let mut f = Floor::new(&routes, adjacencies, &vms);
    let frames: Vec<Vec<u8>> = vms
        .iter()
        .enumerate()
        .map(|(k, &(ext, _))| {
            udp(
                PEER_MAC,
                PORT_MAC,
                ip([198, 51, 100, 7]),
                ext,
                5000 + k as u16,
                80,
            )
        })
        .collect();
    f.restore(&frames);
    assert_eq!(f.run::<true>(), MAX_BATCH);
    // The bytes are right: an independent parser accepts both checksums.
    {
        let out = f.pool.bytes(&f.tx[0]);
        let p = etherparse::SlicedPacket::from_ethernet(out).expect("parse");
        let Some(etherparse::NetSlice::Ipv4(v4)) = p.net else {
            panic!("not IPv4")
        };
        assert_eq!(v4.header().destination(), [10, 0, 0, 10]);
        assert_eq!(
            v4.header().header_checksum(),
            v4.header().to_header().calc_header_checksum()
        );
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP")
        };
        assert_eq!(
            u.checksum(),
            u.to_header()
                .calc_checksum_ipv4(&v4.header().to_header(), u.payload())
                .unwrap()
        );
    }
    batch_spread("floor/fip_dnat_in", || f.timed::<true>(1, &frames));
    g.bench_function("fip_dnat_in", |b| {
        b.iter_custom(|n| f.timed::<true>(n, &frames))
    });
    assert_eq!(f.dropped, 0);
    black_box((f.rx_bytes, &f.fip_packets));
    g.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
