//! A worker on the in-memory backend with a manual clock: frames in, frames and counters out.
#![allow(dead_code, clippy::too_many_arguments)]

use std::sync::Arc;
use vgate::control::apply::build_snapshot;
use vgate::control::config::Config;
use vgate::io::FramePool;
use vgate::io::mem::MemPort;
use vgate::metrics::{DropReason, WorkerStats};
use vgate::tables::neighbor::NeighborConfig;
use vgate::tables::{SharedTables, Snapshot};
use vgate::wire::EthernetAddress;
use vgate::worker::{NeighborBus, Worker};

pub const SEC: u64 = 1_000_000_000;

pub struct Harness {
    pub w: Worker<MemPort>,
    pub now: u64,
}

pub fn snapshot(toml: &str, generation: u64) -> Snapshot {
    let cfg = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("config: {e}"));
    build_snapshot(
        &cfg,
        generation,
        &|_| Some(EthernetAddress([2, 0, 0, 0, 0, 0xee])),
        None,
    )
    .expect("snapshot")
}

/// A worker's frames as `vgate run` sizes them: `dataplane.frame_size` of the configuration.
fn pool(toml: &str) -> FramePool {
    let cfg = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("config: {e}"));
    FramePool::new_heap_sized(4096, cfg.dataplane.frame_size)
}

impl Harness {
    pub fn new(toml: &str) -> Harness {
        Self::with_neighbors(toml, NeighborConfig::default())
    }

    pub fn with_neighbors(toml: &str, ncfg: NeighborConfig) -> Harness {
        let snap = snapshot(toml, 1);
        let nports = snap.ports.len();
        let tables = Arc::new(SharedTables::new(snap));
        let ports = (0..nports).map(|_| MemPort::new()).collect();
        let w = Worker::new(
            0,
            ports,
            pool(toml),
            tables,
            Arc::new(NeighborBus::new(1)),
            64,
            ncfg,
        );
        Harness { w, now: SEC }
    }

    /// `n` workers (ids 0..n) on one snapshot and one bus, as `vgate run` builds them.
    pub fn workers(toml: &str, n: usize) -> Vec<Harness> {
        let snap = snapshot(toml, 1);
        let nports = snap.ports.len();
        let tables = Arc::new(SharedTables::new(snap));
        let bus = Arc::new(NeighborBus::new(n));
        (0..n)
            .map(|id| Harness {
                w: Worker::new(
                    id,
                    (0..nports).map(|_| MemPort::new()).collect(),
                    pool(toml),
                    tables.clone(),
                    bus.clone(),
                    64,
                    NeighborConfig::default(),
                ),
                now: SEC,
            })
            .collect()
    }

    pub fn port(&self, name: &str) -> usize {
        self.w.tables.load().port_by_name(name).expect("port")
    }

    pub fn inject(&mut self, port: &str, frame: &[u8]) {
        let p = self.port(port);
        self.w.ports[p].inject(frame);
    }

    /// Run polls until nothing is left to receive.
    pub fn run(&mut self) {
        for _ in 0..64 {
            self.now += 1_000;
            self.w.poll_once(self.now);
            if self.w.ports.iter().all(|p| p.rx.is_empty()) {
                break;
            }
        }
    }

    /// Advance the clock and poll (timers run).
    pub fn advance(&mut self, ns: u64) {
        self.now += ns;
        self.w.poll_once(self.now);
    }

    pub fn tx(&mut self, port: &str) -> Vec<Vec<u8>> {
        let p = self.port(port);
        self.w.ports[p].take_tx()
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.w.stats
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.w.stats.drop_count(r)
    }

    /// Every frame is back in the pool or accounted for (held ones).
    pub fn frames_in_use(&self) -> usize {
        self.w.pool.nframes() - self.w.pool.free_count()
    }
}

// ---- frame builders (etherparse builds the packets: an independent implementation) ----

pub fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

pub fn ip(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

pub fn arp_frame(
    op: u16,
    src_mac: &str,
    sender_ip: &str,
    target_mac: &str,
    target_ip: &str,
    eth_dst: &str,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&mac(eth_dst));
    f.extend_from_slice(&mac(src_mac));
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op as u8]);
    f.extend_from_slice(&mac(src_mac));
    f.extend_from_slice(&ip(sender_ip));
    f.extend_from_slice(&mac(target_mac));
    f.extend_from_slice(&ip(target_ip));
    f.resize(60, 0); // minimum Ethernet frame with padding
    f
}

pub fn arp_request(src_mac: &str, sender_ip: &str, target_ip: &str) -> Vec<u8> {
    arp_frame(
        1,
        src_mac,
        sender_ip,
        "00:00:00:00:00:00",
        target_ip,
        "ff:ff:ff:ff:ff:ff",
    )
}

pub fn arp_reply(src_mac: &str, sender_ip: &str, dst_mac: &str, target_ip: &str) -> Vec<u8> {
    arp_frame(2, src_mac, sender_ip, dst_mac, target_ip, dst_mac)
}

pub fn icmp_echo(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    ttl: u8,
    id: u16,
    seq: u16,
    payload_len: usize,
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), ttl)
        .icmpv4_echo_request(id, seq);
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

pub fn udp(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    ttl: u8,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv4(ip(src), ip(dst), ttl)
        .udp(sport, dport);
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

/// Set or clear DF in an Ethernet+IPv4 frame, fixing the header checksum.
pub fn set_df(frame: &mut [u8], df: bool) {
    if df {
        frame[20] |= 0x40;
    } else {
        frame[20] &= !0x40;
    }
    fix_ip_checksum(frame);
}

pub fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let c = vgate::wire::checksum::checksum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Parse an Ethernet frame with etherparse (independent check of what vgate emitted).
pub fn parse(frame: &[u8]) -> etherparse::SlicedPacket<'_> {
    etherparse::SlicedPacket::from_ethernet(frame).expect("etherparse accepts the frame")
}

// ---- IPv6 (etherparse builds these too) ----

pub fn ip6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

pub fn udp6(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    hop_limit: u8,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv6(ip6(src), ip6(dst), hop_limit)
        .udp(sport, dport);
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

pub fn echo6(src_mac: &str, dst_mac: &str, src: &str, dst: &str, id: u16, seq: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv6(ip6(src), ip6(dst), 64)
        .icmpv6_echo_request(id, seq);
    let payload = [0x5au8; 24];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

/// An ICMPv6 message with hop limit 255 (Neighbor Discovery): `rest` is the 4 bytes after
/// the checksum, `body` what follows them (target, options).
pub fn icmp6(
    src_mac: &str,
    dst_mac: &str,
    src: &str,
    dst: &str,
    msg_type: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv6(ip6(src), ip6(dst), 255)
        .icmpv6_raw(msg_type, 0, rest);
    let mut out = Vec::with_capacity(b.size(body.len()));
    b.write(&mut out, body).unwrap();
    out
}

/// A neighbour solicitation for `target` with a source link-layer address option.
pub fn ns(src_mac: &str, src: &str, dst: &str, target: &str) -> Vec<u8> {
    let mut body = ip6(target).to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&mac(src_mac));
    let dst_mac = if dst.starts_with("ff02") {
        let d = ip6(dst);
        format!(
            "33:33:{:02x}:{:02x}:{:02x}:{:02x}",
            d[12], d[13], d[14], d[15]
        )
    } else {
        "02:00:00:00:00:01".to_string()
    };
    icmp6(src_mac, &dst_mac, src, dst, 135, [0; 4], &body)
}

/// The solicited-node group of `a` (RFC 4291 section 2.7.1).
pub fn solicited(a: &str) -> String {
    let o = ip6(a);
    format!("ff02::1:ff{:02x}:{:02x}{:02x}", o[13], o[14], o[15])
}

/// A solicited neighbour advertisement (S and O set) for `target` at `src_mac`.
pub fn na(src_mac: &str, dst_mac: &str, src: &str, dst: &str, target: &str) -> Vec<u8> {
    let mut body = ip6(target).to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&mac(src_mac));
    icmp6(src_mac, dst_mac, src, dst, 136, [0x60, 0, 0, 0], &body)
}

/// True when the ICMPv6 checksum of the IPv6 packet in `frame` verifies (etherparse
/// recomputes it).
pub fn icmp6_checksum_ok(frame: &[u8]) -> bool {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
        return false;
    };
    let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &p.transport else {
        return false;
    };
    let h = icmp.header();
    h.icmp_type
        .calc_checksum(
            ip.header().source(),
            ip.header().destination(),
            icmp.payload(),
        )
        .is_ok_and(|c| c == h.checksum)
}
