//! The floor under the per-packet targets: the least work a router can do per packet for the
//! benchmarked scenarios, on this machine, with vgate's own tables and frame pool.
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
//! Geneve (RFC 8926) the same way: `fip_dnat_encap` adds a prebuilt outer header per chassis
//! (Ethernet, IPv4 with its sum precomputed, UDP, Geneve with the VNI), the lengths, the
//! IPv4 checksum and the flow-hash source port (vgate's `flow_entropy_port_ipv4`), written
//! into the headroom. `decap_fip_snat` checks the outer headers (port MAC, IPv4 as above, to
//! the tunnel address, UDP to 6081, not a fragment, the UDP checksum when it is not zero),
//! the chassis by outer source and the network by VNI (`AddrMap`s), version 0 without
//! options and Ethernet inside, the inner frame to the network's gateway MAC, then the inner
//! packet as for DNAT but translating the source, and strips the outer headers.
//!
//! `snat_existing_1m_sessions` with vgate's `SnatTable`s, a million UDP sessions over 16
//! rules as in `nat/snat_existing_1m_sessions`: the checks, the rule by source (`Lpm`), the
//! session key, its slot prefetched for the whole batch before any is looked up, then
//! source address and port translated with both checksums.
//!
//! `fip_snat_out` is the DNAT loop the other way: the VMs to the internet by the default
//! route, the floating IP looked up by source and the source rewritten.
//!
//! `fip_dnat_in_checked`, `fip_snat_out_checked` and `snat_existing_1m_sessions_checked` add
//! to those loops the checks vgate cannot leave out either: martian source and destination
//! (RFC 1812 section 5.3.7), a source that is one of the router's own or NAT addresses
//! (`OwnAddrs`, as vgate keeps them), the neighbour's reachable time, TCP as well as UDP,
//! and the transport checksum only in a first fragment. What is left between them and vgate
//! is the choice among floating IP, SNAT, Geneve and the stages, and the staged pipeline
//! behind the fast path. `fip_dnat_in_checked_routed` is the checked DNAT loop with each
//! floating IP's adjacency resolved when the tables are built, instead of a route lookup of
//! the translated address per packet: what a router that caches the route of every
//! floating IP (and recomputes it on every route change) could save.
//!
//! Timed like the `*_pipeline_only` benches: 64 frames restored outside the clock, the loop
//! alone inside it. `floor/<name>` compares with `nat/<name>_pipeline_only`,
//! `geneve/<name>_pipeline_only` and `forward/10_routes_pipeline_only`.
//! Run: `cargo bench --bench floor`.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::{Rng, batch_spread, geneve_frame, ip, session_sets, snat_sessions, udp};
use std::hint::black_box;
use std::time::{Duration, Instant};
use vgate::io::{Desc, FramePool};
use vgate::pipeline::MAX_BATCH;
use vgate::tables::OwnAddrs;
use vgate::tables::addrmap::AddrMap;
use vgate::tables::lpm::{Lpm, LpmBuilder};
use vgate::tables::nat::{Proto, SnatParams, SnatTable, Timeouts, inside_key};
use vgate::wire::{checksum, geneve};

const ETH: usize = 14;
const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];

/// A next hop's Ethernet header and its port's MTU. Behind a tunnel: the inner Ethernet
/// header, the tenant MTU and the chassis's outer headers.
struct Adjacency {
    eth: [u8; ETH],
    mtu: u16,
    outer: usize,
    /// Until when the neighbour counts as reachable (RFC 4861 section 7.3.2's
    /// ReachableTime, which vgate's neighbour table keeps): checked by the `CHECKED` loops.
    reachable_until: u64,
}

/// Geneve encapsulation toward one chassis and VNI: outer Ethernet, IPv4 (lengths and
/// checksum zero), UDP (ports but the source, lengths zero) and Geneve headers, and the
/// unfolded sum of the outer IPv4 header.
struct Outer {
    hdr: [u8; OUTER],
    ip_sum: u32,
}

/// Outer Ethernet, IPv4, UDP and Geneve: 50 bytes.
const OUTER: usize = geneve::ENCAP_OVERHEAD_IPV4;
const TUNNEL_LOCAL: u32 = 0xc000_0201; // 192.0.2.1
const CHASSIS: u32 = 0xc000_020b; // 192.0.2.11
const CHASSIS_MAC: [u8; 6] = [2, 0, 0, 0, 0x0c, 1];
const GW_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
const VNI: u32 = 100;

/// Decapsulation: known chassis by outer source, networks by VNI (their gateway MACs).
struct Tunnel {
    chassis: AddrMap,
    vnis: AddrMap,
    gateway_macs: Vec<[u8; 6]>,
}

struct Floor {
    pool: FramePool,
    descs: [Desc; MAX_BATCH],
    batch: [Desc; MAX_BATCH],
    lpm: Lpm,
    adjacencies: Vec<Adjacency>,
    outers: Vec<Outer>,
    tunnel: Tunnel,
    fips: AddrMap,
    fip_to: Vec<u32>,
    /// The adjacency of each floating IP's translated address, resolved when the tables are
    /// built (`ROUTED`).
    fip_adj: Vec<u32>,
    /// SNAT: the rule of each tenant network by source (`Lpm`), and each rule's sessions.
    snat_rules: Lpm,
    snat: Vec<SnatTable>,
    fip_packets: Vec<u64>,
    /// The router's own addresses and the NAT addresses, which no received packet may
    /// carry as its source (`CHECKED`).
    own: OwnAddrs,
    nat_sources: OwnAddrs,
    /// The batch's clock, for the neighbours' reachable time.
    now: u64,
    tx: Vec<Desc>,
    rx_bytes: u64,
    dropped: u64,
}

impl Floor {
    /// `routes`: (prefix, length, adjacency); `fips`: (address matched, address it becomes):
    /// (external, internal) for DNAT, (internal, external) for SNAT.
    fn new(routes: &[(u32, u8, u32)], adjacencies: Vec<Adjacency>, fips: &[(u32, u32)]) -> Floor {
        let mut b = LpmBuilder::new();
        for &(p, l, a) in routes {
            b.insert(p, l, a).expect("route");
        }
        let mut map = AddrMap::default();
        for (k, &(from, _)) in fips.iter().enumerate() {
            map.insert(from, k as u16);
        }
        let mut chassis = AddrMap::default();
        chassis.insert(CHASSIS, 0);
        let mut vnis = AddrMap::default();
        vnis.insert(VNI, 0);
        let lpm = b.build().expect("lpm");
        let fip_adj = fips
            .iter()
            .map(|&(_, to)| lpm.lookup(to).unwrap_or(u32::MAX))
            .collect();
        let mut pool = FramePool::new_heap(256);
        let descs = std::array::from_fn(|_| pool.alloc().expect("frame"));
        Floor {
            pool,
            descs,
            batch: descs,
            lpm,
            adjacencies,
            outers: vec![outer()],
            tunnel: Tunnel {
                chassis,
                vnis,
                gateway_macs: vec![GW_MAC],
            },
            fips: map,
            fip_to: fips.iter().map(|&(_, i)| i).collect(),
            fip_adj,
            snat_rules: LpmBuilder::new().build().expect("lpm"),
            snat: Vec::new(),
            fip_packets: vec![0; fips.len()],
            own: OwnAddrs::new([TUNNEL_LOCAL, ip([203, 0, 113, 1]), ip([10, 0, 0, 1])]),
            nat_sources: OwnAddrs::default(),
            now: 1_000,
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

    /// One batch through the loop; `NAT` adds the floating IP DNAT (with `SRC`, its SNAT
    /// outbound instead: the source matched and rewritten), `ENCAP` the Geneve
    /// encapsulation, `CHECKED` the checks vgate cannot leave out besides: martian and own or
    /// NAT source addresses, the neighbour's reachable time, TCP as well as UDP, and only a
    /// first fragment's transport checksum. `ROUTED` takes a DNAT packet's adjacency from its
    /// floating IP, resolved when the tables were built, instead of routing the translated
    /// address. Returns the packets sent.
    #[inline(never)]
    fn run<
        const NAT: bool,
        const SRC: bool,
        const ENCAP: bool,
        const CHECKED: bool,
        const ROUTED: bool,
    >(
        &mut self,
    ) -> usize {
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
            if CHECKED {
                // RFC 1812 section 5.3.7: martian source or destination; a source that is
                // the router's own or (spoofed) one of its NAT addresses.
                let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
                if martian(h[26]) | martian(h[30])
                    || self.own.contains(src)
                    || (NAT && self.nat_sources.contains(src))
                {
                    self.dropped += 1;
                    continue;
                }
            }
            // Decided from reads first, then written once: one IP checksum update for the
            // address and the TTL together.
            // The address a floating IP is looked up by and rewritten: the destination, or
            // with `SRC` the source.
            let a = if SRC { 26 } else { 30 };
            let old = u32::from_be_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
            let mut dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
            let (mut new, mut fip) = (old, None);
            if NAT && let Some(x) = self.fips.lookup(old) {
                new = self.fip_to[usize::from(x)];
                if !SRC {
                    dst = new;
                }
                fip = Some(x);
            }
            let adj = match fip {
                Some(x) if ROUTED && !SRC => self
                    .adjacencies
                    .get(self.fip_adj[usize::from(x)] as usize)
                    .filter(|a| total <= usize::from(a.mtu)),
                _ => route(&self.lpm, &self.adjacencies, dst, total),
            };
            let Some(adj) = adj.filter(|a| !CHECKED || self.now <= a.reachable_until) else {
                self.dropped += 1;
                continue;
            };
            // RFC 1624 eqn. 3: the TTL's 16-bit word goes down by 0x0100 (+0xfeff).
            let mut ip_delta = 0xfeff;
            if let Some(x) = fip {
                let delta = (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
                ip_delta += delta;
                h[a..a + 4].copy_from_slice(&new.to_be_bytes());
                // The transport checksum covers the address (pseudo-header): UDP (RFC 768: a
                // zero checksum stays zero, a computed zero is sent as ones), and when
                // `CHECKED` TCP too, in a first fragment only.
                let first = !CHECKED || u16::from_be_bytes([h[20], h[21]]) & 0x1fff == 0;
                let at = match h[23] {
                    17 => Some(6),
                    6 if CHECKED => Some(16),
                    _ => None,
                };
                if first
                    && let Some(at) = at
                    && let Some(u) = f.get_mut(ETH + 20 + at..ETH + 22 + at)
                {
                    let c = u16::from_be_bytes([u[0], u[1]]);
                    if c != 0 || at != 6 {
                        let c = !checksum::fold(u32::from(!c) + delta);
                        let c = if c == 0 && at == 6 { 0xffff } else { c };
                        u.copy_from_slice(&c.to_be_bytes());
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
            let mut out = Desc {
                len: (ETH + total) as u32,
                ..d
            };
            if ENCAP {
                let l3 = &f[ETH..ETH + total];
                // RFC 8926 section 3.3: TCP and UDP ports in the hash, unless a fragment.
                let ports = match (l3[9], l3.get(20..24)) {
                    (6 | 17, Some(p)) if u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff == 0 => {
                        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
                    }
                    _ => 0,
                };
                let sport = geneve::flow_entropy_port_ipv4(
                    u32::from_be_bytes([l3[12], l3[13], l3[14], l3[15]]),
                    dst,
                    l3[9],
                    ports,
                );
                if !self.pool.push_front(&mut out, OUTER) {
                    self.dropped += 1;
                    continue;
                }
                let o = &self.outers[adj.outer];
                let Some(w) = self.pool.bytes_mut(&out).first_chunk_mut::<{ OUTER }>() else {
                    self.dropped += 1;
                    continue;
                };
                write_outer(w, o, out.len as usize - ETH, sport);
            }
            self.tx.push(out);
        }
        self.tx.len()
    }

    /// One batch of Geneve from the chassis, decapsulated, floating IP SNAT, routed.
    #[inline(never)]
    fn run_decap(&mut self) -> usize {
        self.tx.clear();
        for d in self.batch {
            let f = self.pool.bytes_mut(&d);
            let len = f.len();
            // Outer Ethernet, IPv4, UDP and Geneve, and the inner Ethernet and IPv4 headers.
            let Some(h) = f.first_chunk_mut::<{ OUTER + ETH + 20 }>() else {
                self.dropped += 1;
                continue;
            };
            let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
            let udp_len = usize::from(u16::from_be_bytes([h[38], h[39]]));
            if h[..6] != PORT_MAC
                || h[12..15] != [0x08, 0x00, 0x45]
                || total > len - ETH
                || udp_len != total - 20
                || !checksum::header20_ok(h[ETH..].first_chunk().unwrap())
                || u32::from_be_bytes([h[30], h[31], h[32], h[33]]) != TUNNEL_LOCAL
                || h[23] != 17
                || u16::from_be_bytes([h[20], h[21]]) & 0x3fff != 0
                || u16::from_be_bytes([h[36], h[37]]) != geneve::UDP_PORT
            {
                self.dropped += 1;
                continue;
            }
            let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
            let (g, inner) = h[ETH + 28..].split_at_mut(geneve::HEADER_LEN);
            let vni = u32::from_be_bytes([0, g[4], g[5], g[6]]);
            let network = match (
                self.tunnel.chassis.lookup(src),
                self.tunnel.vnis.lookup(vni),
            ) {
                (Some(_), Some(n)) if g[0] == 0 && g[2..4] == [0x65, 0x58] => usize::from(n),
                _ => {
                    self.dropped += 1;
                    continue;
                }
            };
            let inner_total = usize::from(u16::from_be_bytes([inner[16], inner[17]]));
            if inner[..6] != self.tunnel.gateway_macs[network]
                || inner[12..15] != [0x08, 0x00, 0x45]
                || inner_total < 20
                || inner_total > total - 36 - ETH
                || inner[22] <= 1
                || !checksum::header20_ok(inner[ETH..].first_chunk().unwrap())
            {
                self.dropped += 1;
                continue;
            }
            let old = u32::from_be_bytes([inner[26], inner[27], inner[28], inner[29]]);
            let dst = u32::from_be_bytes([inner[30], inner[31], inner[32], inner[33]]);
            let Some(x) = self.fips.lookup(old) else {
                self.dropped += 1;
                continue;
            };
            let new = self.fip_to[usize::from(x)];
            let Some(adj) = route(&self.lpm, &self.adjacencies, dst, inner_total) else {
                self.dropped += 1;
                continue;
            };
            // The outer UDP checksum, when the chassis sent one (RFC 8926 section 3.3 lets it
            // be zero over IPv4), covers the whole inner frame.
            let csum = u16::from_be_bytes([h[40], h[41]]);
            if csum != 0 {
                let pseudo = checksum::pseudo_header_sum(
                    src.to_be_bytes(),
                    TUNNEL_LOCAL.to_be_bytes(),
                    17,
                    udp_len as u16,
                );
                if checksum::fold(checksum::sum(&f[ETH + 20..ETH + total], pseudo)) != 0xffff {
                    self.dropped += 1;
                    continue;
                }
            }
            let l3 = &mut f[OUTER + ETH..];
            let delta = (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
            l3[12..16].copy_from_slice(&new.to_be_bytes());
            if l3[9] == 17
                && let Some(u) = l3.get_mut(26..28)
            {
                let c = u16::from_be_bytes([u[0], u[1]]);
                if c != 0 {
                    let c = !checksum::fold(u32::from(!c) + delta);
                    u.copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
                }
            }
            l3[8] -= 1;
            let c = u16::from_be_bytes([l3[10], l3[11]]);
            let c = !checksum::fold(u32::from(!c) + delta + 0xfeff);
            l3[10..12].copy_from_slice(&c.to_be_bytes());
            self.fip_packets[usize::from(x)] += 1;
            f[OUTER..OUTER + ETH].copy_from_slice(&adj.eth);
            self.rx_bytes += u64::from(d.len);
            self.tx.push(Desc {
                addr: d.addr + OUTER as u64,
                len: (ETH + inner_total) as u32,
            });
        }
        self.tx.len()
    }

    /// One batch of UDP from the tenant networks on existing SNAT sessions. Two passes, as
    /// any table of a million sessions needs: the first checks every packet, finds its rule
    /// and session key and prefetches the session's slot; the second looks the sessions up
    /// and translates source address and port.
    #[inline(never)]
    fn run_snat<const CHECKED: bool>(&mut self) -> usize {
        self.tx.clear();
        let mut pending = [(0u64, 0usize, 0u16, 0u32, 0u16, 0u8); MAX_BATCH];
        let mut waiting = 0u64;
        for (i, d) in self.batch.into_iter().enumerate() {
            let f = self.pool.bytes(&d);
            let Some(h) = f.first_chunk::<{ ETH + 28 }>() else {
                self.dropped += 1;
                continue;
            };
            let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
            if h[..6] != PORT_MAC
                || h[12..15] != [0x08, 0x00, 0x45]
                || total < 28
                || total > f.len() - ETH
                || h[22] <= 1
                || (h[23] != 17 && !(CHECKED && h[23] == 6))
                || u16::from_be_bytes([h[20], h[21]]) & 0x3fff != 0
                || !checksum::header20_ok(h[ETH..ETH + 20].try_into().unwrap())
            {
                self.dropped += 1;
                continue;
            }
            let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
            let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
            let sport = u16::from_be_bytes([h[34], h[35]]);
            // As in `run`: martians, the router's own and its NAT addresses as source.
            if CHECKED
                && (martian(h[26]) | martian(h[30])
                    || self.own.contains(src)
                    || self.nat_sources.contains(src))
            {
                self.dropped += 1;
                continue;
            }
            let (Some(rule), Some(a)) = (self.snat_rules.lookup(src), self.lpm.lookup(dst)) else {
                self.dropped += 1;
                continue;
            };
            let adj = &self.adjacencies[a as usize];
            if total > usize::from(adj.mtu) || (CHECKED && self.now > adj.reachable_until) {
                self.dropped += 1;
                continue;
            }
            let (proto, csum) = if h[23] == 6 {
                (Proto::Tcp, 16)
            } else {
                (Proto::Udp, 6)
            };
            let table = &self.snat[rule as usize];
            let key = inside_key(proto, src, sport);
            let home = table.hash(key);
            table.prefetch(home);
            pending[i] = (key, home, rule as u16, a, total as u16, csum);
            waiting |= 1 << i;
        }
        while waiting != 0 {
            let i = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            let (key, home, rule, a, total, csum) = pending[i];
            let table = &mut self.snat[usize::from(rule)];
            let Some(port) = table.outbound_existing(key, home, 0, 1_000) else {
                self.dropped += 1;
                continue;
            };
            let ext = table.params().external;
            let d = self.batch[i];
            let f = self.pool.bytes_mut(&d);
            let old = u32::from_be_bytes([f[26], f[27], f[28], f[29]]);
            let old_port = (key >> 32) as u16;
            let delta = (!old >> 16) + (!old & 0xffff) + (ext >> 16) + (ext & 0xffff);
            f[26..30].copy_from_slice(&ext.to_be_bytes());
            f[34..36].copy_from_slice(&port.to_be_bytes());
            // UDP (RFC 768): a zero checksum stays zero, a computed zero is sent as ones.
            let at = ETH + 20 + usize::from(csum);
            let udp = csum == 6;
            let c = u16::from_be_bytes([f[at], f[at + 1]]);
            if c != 0 || !udp {
                let l4 = delta + u32::from(!old_port) + u32::from(port);
                let c = !checksum::fold(u32::from(!c) + l4);
                let c = if c == 0 && udp { 0xffff } else { c };
                f[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f[22] -= 1;
            let c = u16::from_be_bytes([f[24], f[25]]);
            let c = !checksum::fold(u32::from(!c) + delta + 0xfeff);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f[..ETH].copy_from_slice(&self.adjacencies[a as usize].eth);
            self.rx_bytes += u64::from(d.len);
            self.tx.push(Desc {
                len: (ETH + usize::from(total)) as u32,
                ..d
            });
        }
        self.tx.len()
    }

    /// `iters` batches of `run`, over `sets` of frames in turn from `*round`.
    fn timed(
        &mut self,
        iters: u64,
        sets: &[Vec<Vec<u8>>],
        round: &mut usize,
        run: fn(&mut Floor) -> usize,
    ) -> Duration {
        let mut t = Duration::ZERO;
        for _ in 0..iters {
            *round += 1;
            self.restore(&sets[*round % sets.len()]);
            let start = Instant::now();
            black_box(run(self));
            t += start.elapsed();
        }
        t
    }
}

/// RFC 1122 section 3.2.1.3: 0/8, loopback and class D and E, by first octet, from a table
/// as vgate's ip4_input does it.
#[inline(always)]
fn martian(first_octet: u8) -> bool {
    MARTIAN[usize::from(first_octet)]
}

static MARTIAN: [bool; 256] = {
    let mut t = [false; 256];
    let mut o = 0;
    while o < 256 {
        t[o] = o == 0 || o == 127 || o >= 224;
        o += 1;
    }
    t
};

/// The adjacency of the route to `dst`, when a packet of `total` bytes fits its MTU.
#[inline(always)]
fn route<'a>(lpm: &Lpm, adj: &'a [Adjacency], dst: u32, total: usize) -> Option<&'a Adjacency> {
    let a = &adj[lpm.lookup(dst)? as usize];
    (total <= usize::from(a.mtu)).then_some(a)
}

/// The outer headers of packet `o`'s encapsulation into `w`, for an outer IPv4 packet of
/// `ip_len` bytes: lengths, the IPv4 checksum from the precomputed sum, the source port.
#[inline(always)]
fn write_outer(w: &mut [u8; OUTER], o: &Outer, ip_len: usize, sport: u16) {
    *w = o.hdr;
    w[ETH + 2..ETH + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let c = !checksum::fold(o.ip_sum + ip_len as u32);
    w[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    w[ETH + 20..ETH + 22].copy_from_slice(&sport.to_be_bytes());
    w[ETH + 24..ETH + 26].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
}

/// The outer headers from the tunnel address to the chassis, VNI 100, UDP checksum zero.
fn outer() -> Outer {
    let mut hdr = [0u8; OUTER];
    hdr[..6].copy_from_slice(&CHASSIS_MAC);
    hdr[6..12].copy_from_slice(&PORT_MAC);
    hdr[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut hdr[ETH..ETH + 20];
    ip[0] = 0x45;
    ip[6] = 0x40; // DF (RFC 8926 section 4.1.1: the underlay does not fragment)
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&TUNNEL_LOCAL.to_be_bytes());
    ip[16..20].copy_from_slice(&CHASSIS.to_be_bytes());
    let ip_sum = checksum::sum(&hdr[ETH..ETH + 20], 0);
    hdr[ETH + 22..ETH + 24].copy_from_slice(&geneve::UDP_PORT.to_be_bytes());
    let g = &mut hdr[ETH + 28..];
    g[2..4].copy_from_slice(&geneve::PROTO_ETHERNET.to_be_bytes());
    g[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
    Outer { hdr, ip_sum }
}

fn adjacency(dst_mac: [u8; 6]) -> Adjacency {
    let mut eth = [0u8; ETH];
    eth[..6].copy_from_slice(&dst_mac);
    eth[6..12].copy_from_slice(&PORT_MAC);
    eth[12..].copy_from_slice(&[0x08, 0x00]);
    Adjacency {
        eth,
        mtu: 1500,
        outer: 0,
        reachable_until: u64::MAX,
    }
}

/// Run every set of 64 `frames` through `f` with `run` once (all must come out, `check`ed),
/// then time it over the sets in turn.
fn scenario(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    name: &str,
    f: &mut Floor,
    sets: &[Vec<Vec<u8>>],
    run: fn(&mut Floor) -> usize,
    check: impl Fn(&[u8]),
) {
    for frames in sets {
        f.restore(frames);
        assert_eq!(run(f), MAX_BATCH, "{name}");
        for d in &f.tx {
            check(f.pool.bytes(d));
        }
    }
    let mut round = 0;
    batch_spread(&format!("floor/{name}"), || {
        f.timed(1, sets, &mut round, run)
    });
    g.bench_function(name, |b| {
        b.iter_custom(|n| f.timed(n, sets, &mut round, run))
    });
    assert_eq!(f.dropped, 0, "{name}");
    black_box((f.rx_bytes, &f.fip_packets));
}

/// The IPv4 packet in Ethernet frame `frame`, checked by an independent parser: both
/// checksums right (UDP's when not zero); its (source, destination) and UDP payload.
fn checked_udp(frame: &[u8]) -> ([u8; 4], [u8; 4], Vec<u8>) {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("parse");
    let Some(etherparse::NetSlice::Ipv4(v4)) = p.net else {
        panic!("not IPv4")
    };
    let ip = v4.header().to_header();
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 checksum"
    );
    let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
        panic!("not UDP")
    };
    if u.checksum() != 0 {
        let want = u.to_header().calc_checksum_ipv4(&ip, u.payload()).unwrap();
        assert_eq!(u.checksum(), want, "UDP checksum");
    }
    (ip.source, ip.destination, u.payload().to_vec())
}

fn vm_mac(k: usize) -> [u8; 6] {
    [0xfa, 0x16, 0x3e, 1, 0, k as u8]
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
    scenario(
        &mut g,
        "forward_10_routes",
        &mut f,
        std::slice::from_ref(&frames),
        Floor::run::<false, false, false, false, false>,
        |o| {
            checked_udp(o);
        },
    );

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
    let adjacencies = (0..MAX_BATCH).map(|k| adjacency(vm_mac(k))).collect();
    let mut f = Floor::new(&routes, adjacencies, &vms);
    let inbound: Vec<Vec<u8>> = vms
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
    // Plain, and with the checks vgate cannot leave out (the floating IPs are NAT sources).
    f.nat_sources = OwnAddrs::new(vms.iter().map(|&(ext, _)| ext));
    for (name, run) in [
        (
            "fip_dnat_in",
            Floor::run::<true, false, false, false, false> as fn(&mut Floor) -> usize,
        ),
        (
            "fip_dnat_in_checked",
            Floor::run::<true, false, false, true, false>,
        ),
        (
            "fip_dnat_in_checked_routed",
            Floor::run::<true, false, false, true, true>,
        ),
    ] {
        scenario(
            &mut g,
            name,
            &mut f,
            std::slice::from_ref(&inbound),
            run,
            |o| assert_eq!(checked_udp(o).1[..3], [10, 0, 0]),
        );
    }

    // Floating IP SNAT outbound: the 64 VMs to the internet by the default route, plain and
    // checked.
    let by_internal: Vec<(u32, u32)> = vms.iter().map(|&(e, i)| (i, e)).collect();
    let mut f = Floor::new(&[(0, 0, 0)], vec![adjacency(PEER_MAC)], &by_internal);
    f.nat_sources = OwnAddrs::new(vms.iter().map(|&(ext, _)| ext));
    let to_internet: Vec<Vec<u8>> = vms
        .iter()
        .enumerate()
        .map(|(k, &(_, int))| {
            udp(
                vm_mac(k),
                PORT_MAC,
                int,
                ip([198, 51, 100, 7]),
                80,
                5000 + k as u16,
            )
        })
        .collect();
    for (name, run) in [
        (
            "fip_snat_out",
            Floor::run::<true, true, false, false, false> as fn(&mut Floor) -> usize,
        ),
        (
            "fip_snat_out_checked",
            Floor::run::<true, true, false, true, false>,
        ),
    ] {
        scenario(
            &mut g,
            name,
            &mut f,
            std::slice::from_ref(&to_internet),
            run,
            |o| assert_eq!(checked_udp(o).0[..3], [203, 0, 113]),
        );
    }

    // The same VMs behind a chassis: DNAT, then Geneve toward it (tenant MTU 1550 on a
    // 1600-byte underlay).
    let adjacencies = (0..MAX_BATCH)
        .map(|k| {
            let mut a = adjacency(vm_mac(k));
            a.eth[6..12].copy_from_slice(&GW_MAC);
            a.mtu = 1550;
            a
        })
        .collect();
    let mut f = Floor::new(&routes, adjacencies, &vms);
    scenario(
        &mut g,
        "fip_dnat_encap",
        &mut f,
        std::slice::from_ref(&inbound),
        Floor::run::<true, false, true, false, false>,
        |o| {
            let (src, dst, payload) = checked_udp(o);
            assert_eq!(
                (src, dst),
                (TUNNEL_LOCAL.to_be_bytes(), CHASSIS.to_be_bytes())
            );
            assert_eq!(payload[4..7], VNI.to_be_bytes()[1..]);
            assert_eq!(
                checked_udp(&payload[geneve::HEADER_LEN..]).1[..3],
                [10, 0, 0]
            );
        },
    );

    // Their packets to the internet, from the chassis: decap, floating IP SNAT, default route.
    let snat: Vec<(u32, u32)> = vms.iter().map(|&(e, i)| (i, e)).collect();
    let mut f = Floor::new(&[(0, 0, 0)], vec![adjacency(PEER_MAC)], &snat);
    let outbound: Vec<Vec<u8>> = vms
        .iter()
        .enumerate()
        .map(|(k, &(_, int))| {
            let inner = udp(
                vm_mac(k),
                GW_MAC,
                int,
                ip([198, 51, 100, 7]),
                80,
                5000 + k as u16,
            );
            geneve_frame(&inner, CHASSIS_MAC, PORT_MAC, CHASSIS, TUNNEL_LOCAL, VNI)
        })
        .collect();
    let expect_fip = |o: &[u8]| assert_eq!(checked_udp(o).0[..3], [203, 0, 113]);
    scenario(
        &mut g,
        "decap_fip_snat",
        &mut f,
        std::slice::from_ref(&outbound),
        Floor::run_decap,
        expect_fip,
    );
    let unchecked: Vec<Vec<u8>> = outbound
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o[ETH + 26..ETH + 28].fill(0);
            o
        })
        .collect();
    scenario(
        &mut g,
        "decap_fip_snat_no_udp_checksum",
        &mut f,
        std::slice::from_ref(&unchecked),
        Floor::run_decap,
        expect_fip,
    );

    // SNAT on existing sessions: 16 tenant networks 10.N.0.0/16, each with its rule and
    // 62,500 UDP sessions, 1,000,000 in all; batches of packets of random sessions.
    let mut f = Floor::new(&[(0, 0, 0)], vec![adjacency(PEER_MAC)], &[]);
    let mut rules = LpmBuilder::new();
    for n in 0..16u32 {
        rules.insert(ip([10, n as u8, 0, 0]), 16, n).expect("rule");
        let params = SnatParams {
            external: ip([203, 0, 113, 100 + n as u8]),
            first_port: 1024,
            last_port: 65535,
            max_sessions: 100_000,
            timeouts: Timeouts::default(),
        };
        f.snat.push(SnatTable::new(params, 0, 1));
    }
    f.snat_rules = rules.build().expect("lpm");
    let inside = snat_sessions(16, 62_500, |n, host, port| {
        let t = &mut f.snat[n as usize];
        t.outbound(Proto::Udp, host, port, 0, 0).expect("preload");
    });
    let sets = session_sets(&inside, PEER_MAC, PORT_MAC);
    scenario(
        &mut g,
        "snat_existing_1m_sessions",
        &mut f,
        &sets,
        Floor::run_snat::<false>,
        |o| assert_eq!(checked_udp(o).0[..3], [203, 0, 113]),
    );
    f.nat_sources = OwnAddrs::new(f.snat.iter().map(|t| t.params().external));
    scenario(
        &mut g,
        "snat_existing_1m_sessions_checked",
        &mut f,
        &sets,
        Floor::run_snat::<true>,
        |o| assert_eq!(checked_udp(o).0[..3], [203, 0, 113]),
    );
    g.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
