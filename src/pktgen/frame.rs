//! Probe frames: what the generator sends, and how the receiver finds the probe in whatever
//! arrives (plain, or inside Geneve, possibly rewritten by the device under test).
//!
//! A probe is IPv4/UDP whose payload starts with an 18-byte probe header, so that the
//! smallest Ethernet frame (64 bytes with FCS, 60 without) carries one:
//!
//! ```text
//!  0      2        4                 12               18
//!  | magic | stream | sequence (u64)  | TX time (u48)  | zero padding ...
//! ```
//!
//! All fields are big-endian. The TX time is the low 48 bits of CLOCK_MONOTONIC in ns: the
//! receiver reads the same clock and takes the difference modulo 2^48, which is exact for
//! latencies below 78 hours.

use crate::wire::{
    EthernetAddress, checksum,
    ethernet::{self, ethertype},
    ipv4, udp,
};
use std::net::Ipv4Addr;

/// First two payload bytes of every probe ("VG").
pub const MAGIC: u16 = 0x5647;
/// Bytes of the probe header.
pub const PROBE_LEN: usize = 18;
/// Ethernet FCS: counted in frame sizes (RFC 2544 section 9) but written by the NIC.
pub const FCS_LEN: usize = 4;
/// Smallest frame size (with FCS), RFC 2544 section 9.1.
pub const MIN_SIZE: usize = 64;
/// Headers in front of the probe in a plain frame: Ethernet, IPv4, UDP.
pub const PLAIN_HEADERS: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// Geneve base header, RFC 8926 section 3.4.
pub const GENEVE_HEADER_LEN: usize = 8;
/// What Geneve adds in front of the inner frame: outer Ethernet, IPv4, UDP and Geneve.
pub const GENEVE_OVERHEAD: usize = PLAIN_HEADERS + GENEVE_HEADER_LEN;
/// IANA UDP port of Geneve, RFC 8926 section 3.3.
pub const GENEVE_PORT: u16 = 6081;
/// Geneve protocol type of an inner Ethernet frame (Transparent Ethernet Bridging),
/// RFC 8926 section 3.4.
pub const ETHERTYPE_TEB: u16 = 0x6558;
/// Mask of the 48-bit TX timestamp.
pub const TS_MASK: u64 = (1 << 48) - 1;
/// Simple IMIX frame sizes (with FCS) in the 7:4:1 proportion, interleaved so that no size
/// comes in long runs.
pub const IMIX_PATTERN: [usize; 12] = [64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594];

/// The probe fields of one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub stream: u16,
    pub seq: u64,
    /// Low 48 bits of CLOCK_MONOTONIC ns at transmission.
    pub ts48: u64,
}

/// Latency from a probe's 48-bit TX time to `now_ns` (same clock). A TX time in the future
/// (impossible on one host's monotonic clock, but a corrupt frame may claim it) gives 0.
#[inline]
pub fn latency_ns(ts48: u64, now_ns: u64) -> u64 {
    let d = now_ns.wrapping_sub(ts48) & TS_MASK;
    if d > TS_MASK / 2 { 0 } else { d }
}

/// Write a probe header into the first [`PROBE_LEN`] bytes of `buf`.
#[inline]
pub fn write_probe(buf: &mut [u8], stream: u16, seq: u64, ts_ns: u64) {
    let b = &mut buf[..PROBE_LEN];
    b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    b[2..4].copy_from_slice(&stream.to_be_bytes());
    b[4..12].copy_from_slice(&seq.to_be_bytes());
    b[12..18].copy_from_slice(&(ts_ns & TS_MASK).to_be_bytes()[2..]);
}

/// Read a probe header at the start of a UDP payload.
#[inline]
pub fn read_probe(payload: &[u8]) -> Option<Probe> {
    let b = payload.get(..PROBE_LEN)?;
    if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
        return None;
    }
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&b[12..18]);
    Some(Probe {
        stream: u16::from_be_bytes([b[2], b[3]]),
        seq: u64::from_be_bytes(b[4..12].try_into().ok()?),
        ts48: u64::from_be_bytes(ts),
    })
}

/// Find the probe in a received Ethernet frame: IPv4 (one 802.1Q tag allowed), UDP, and
/// either the probe itself or a Geneve packet (RFC 8926) whose inner Ethernet frame carries
/// it. Addresses and ports are not checked: a gateway under test rewrites them.
#[inline]
pub fn parse_probe(frame: &[u8]) -> Option<Probe> {
    let payload = udp_payload(frame)?;
    if let Some(inner) = geneve_inner(payload)
        && let Some(p) = udp_payload(inner).and_then(read_probe)
    {
        return Some(p);
    }
    read_probe(payload)
}

/// The UDP payload of an Ethernet/IPv4/UDP frame that is not an IP fragment.
#[inline]
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let ty = ethernet::Frame::new_checked(frame).ok()?.ethertype();
    let payload = &frame[ethernet::HEADER_LEN..];
    let (ty, l3) = match ty {
        ethertype::VLAN => (
            u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]),
            payload.get(4..)?,
        ),
        t => (t, payload),
    };
    if ty != ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(l3).ok()?;
    if ip.protocol() != ipv4::protocol::UDP || ip.is_fragment() {
        return None;
    }
    let ip_payload = &l3[ip.header_len()..ip.total_len() as usize];
    let udp = udp::Packet::new_checked(ip_payload).ok()?;
    Some(&ip_payload[udp::HEADER_LEN..udp.len() as usize])
}

/// The inner Ethernet frame of a Geneve packet (version 0, protocol 0x6558).
#[inline]
fn geneve_inner(udp_payload: &[u8]) -> Option<&[u8]> {
    let h = udp_payload.get(..GENEVE_HEADER_LEN)?;
    if h[0] >> 6 != 0 || u16::from_be_bytes([h[2], h[3]]) != ETHERTYPE_TEB {
        return None;
    }
    let opt_len = usize::from(h[0] & 0x3f) * 4;
    udp_payload.get(GENEVE_HEADER_LEN + opt_len..)
}

/// Geneve encapsulation of every probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveSpec {
    /// Virtual Network Identifier (24 bits).
    pub vni: u32,
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
}

/// Which header field tells the flows apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// Flow i has UDP source port `src_port + i`.
    Sport,
    /// Flow i has source address `src_ip + i`.
    Sip,
    /// Both at once.
    Both,
}

/// The headers of the probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    /// Compute UDP checksums (per packet, incrementally); otherwise send 0, "no checksum"
    /// (RFC 768).
    pub udp_checksum: bool,
    pub geneve: Option<GeneveSpec>,
}

/// Frame sizes: one size, or the simple IMIX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeMix {
    /// Frame size with FCS.
    Fixed(usize),
    Imix,
}

impl SizeMix {
    /// Sizes in the order they are sent, one per slot.
    pub fn pattern(&self) -> Vec<usize> {
        match self {
            SizeMix::Fixed(s) => vec![*s],
            SizeMix::Imix => IMIX_PATTERN.to_vec(),
        }
    }
}

/// One prebuilt frame.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    off: usize,
    /// Bytes written to the UMEM frame (no FCS).
    pub len: usize,
    probe_off: usize,
    /// Offset of the inner UDP checksum and the folded sum of everything it covers but the
    /// probe fields (which are zero in the template), when checksums are on.
    csum: Option<(usize, u16)>,
}

impl Template {
    /// Bytes on the wire, with FCS.
    #[inline]
    pub fn wire_len(&self) -> u64 {
        (self.len + FCS_LEN) as u64
    }
}

/// Upper bound on template memory: flows times sizes times frame length.
pub const MAX_TEMPLATE_BYTES: usize = 64 << 20;

/// Every (size, flow) frame, built once, in one buffer.
pub struct Templates {
    bytes: Vec<u8>,
    /// Indexed by `slot * flows + flow`.
    entries: Vec<Template>,
    flows: usize,
    slots: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("flows", &self.flows)
            .field("slots", &self.slots)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Templates {
    /// Build the frames of `flows` flows at every size of `sizes`. Errors name the flag at
    /// fault.
    pub fn build(
        spec: &FrameSpec,
        sizes: SizeMix,
        flows: u32,
        vary: Vary,
    ) -> Result<Templates, String> {
        if flows == 0 {
            return Err("--flows must be at least 1".into());
        }
        let flows_us = flows as usize;
        let pattern = sizes.pattern();
        let overhead = if spec.geneve.is_some() {
            GENEVE_OVERHEAD
        } else {
            0
        };
        let max_size = crate::io::MAX_FRAME_LEN + FCS_LEN - overhead;
        for &s in &pattern {
            if !(MIN_SIZE..=max_size).contains(&s) {
                return Err(format!(
                    "--size {s} out of range: frames are {MIN_SIZE}..={max_size} bytes with FCS"
                ));
            }
        }
        if let Some(g) = &spec.geneve
            && g.vni >= 1 << 24
        {
            return Err(format!("--geneve {}: a VNI has 24 bits", g.vni));
        }
        let last = flows - 1;
        if matches!(vary, Vary::Sport | Vary::Both) && u32::from(spec.src_port) + last > 0xffff {
            return Err(format!(
                "--flows {flows} from --src-port {} runs past port 65535",
                spec.src_port
            ));
        }
        if matches!(vary, Vary::Sip | Vary::Both)
            && u64::from(spec.src_ip.to_bits()) + u64::from(last) > u64::from(u32::MAX)
        {
            return Err(format!(
                "--flows {flows} from --src-ip {} runs past 255.255.255.255",
                spec.src_ip
            ));
        }
        let per_flow: usize = pattern.iter().map(|s| s - FCS_LEN + overhead).sum();
        let total = per_flow.saturating_mul(flows_us);
        if total > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "--flows {flows} needs {} MiB of prebuilt frames (limit {} MiB): use fewer flows",
                total >> 20,
                MAX_TEMPLATE_BYTES >> 20
            ));
        }
        let mut t = Templates {
            bytes: Vec::with_capacity(total),
            entries: Vec::with_capacity(pattern.len() * flows_us),
            flows: flows_us,
            slots: pattern.len(),
        };
        for &size in &pattern {
            for flow in 0..flows {
                let (sport, sip) = match vary {
                    Vary::Sport => (spec.src_port + flow as u16, spec.src_ip),
                    Vary::Sip => (
                        spec.src_port,
                        Ipv4Addr::from_bits(spec.src_ip.to_bits() + flow),
                    ),
                    Vary::Both => (
                        spec.src_port + flow as u16,
                        Ipv4Addr::from_bits(spec.src_ip.to_bits() + flow),
                    ),
                };
                let entry = t.push(spec, size - FCS_LEN, sip, sport);
                t.entries.push(entry);
            }
        }
        Ok(t)
    }

    /// Append one frame; `inner_len` is the plain frame's length without FCS.
    fn push(&mut self, spec: &FrameSpec, inner_len: usize, sip: Ipv4Addr, sport: u16) -> Template {
        let off = self.bytes.len();
        let mut inner = vec![0u8; inner_len];
        emit_eth(&mut inner, spec.src_mac, spec.dst_mac);
        emit_ipv4(
            &mut inner[ethernet::HEADER_LEN..],
            sip,
            spec.dst_ip,
            spec.ttl,
        );
        let udp_at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        {
            let mut u = udp::Packet::new_unchecked(&mut inner[udp_at..]);
            u.set_src_port(sport);
            u.set_dst_port(spec.dst_port);
            u.set_len((inner_len - udp_at) as u16);
            u.set_checksum(0);
        }
        // The probe fields stay zero in the template; the checksum base covers the rest.
        inner[PLAIN_HEADERS..PLAIN_HEADERS + 2].copy_from_slice(&MAGIC.to_be_bytes());
        let mut csum = spec.udp_checksum.then(|| {
            let l = (inner_len - udp_at) as u16;
            let acc = checksum::pseudo_header_sum(sip.octets(), spec.dst_ip.octets(), 17, l);
            (
                udp_at + 6,
                checksum::fold(checksum::sum(&inner[udp_at..], acc)),
            )
        });
        let mut probe_off = PLAIN_HEADERS;
        match &spec.geneve {
            None => self.bytes.extend_from_slice(&inner),
            Some(g) => {
                let mut outer = [0u8; GENEVE_OVERHEAD];
                emit_eth(&mut outer, g.src_mac, g.dst_mac);
                emit_ipv4_len(
                    &mut outer[ethernet::HEADER_LEN..],
                    g.src_ip,
                    g.dst_ip,
                    spec.ttl,
                    ipv4::HEADER_LEN + udp::HEADER_LEN + GENEVE_HEADER_LEN + inner_len,
                );
                let mut u = udp::Packet::new_unchecked(&mut outer[udp_at..]);
                u.set_src_port(geneve_source_port(sip, spec.dst_ip, sport, spec.dst_port));
                u.set_dst_port(g.dst_port);
                u.set_len((udp::HEADER_LEN + GENEVE_HEADER_LEN + inner_len) as u16);
                // Zero outer UDP checksum over IPv4: RFC 8926 section 3.3.
                u.set_checksum(0);
                let gh = &mut outer[PLAIN_HEADERS..];
                // Ver 0, Opt Len 0, O 0, C 0; protocol; VNI; reserved (RFC 8926 sec. 3.4).
                gh[0] = 0;
                gh[1] = 0;
                gh[2..4].copy_from_slice(&ETHERTYPE_TEB.to_be_bytes());
                gh[4..7].copy_from_slice(&g.vni.to_be_bytes()[1..]);
                gh[7] = 0;
                self.bytes.extend_from_slice(&outer);
                self.bytes.extend_from_slice(&inner);
                probe_off += GENEVE_OVERHEAD;
                if let Some((at, _)) = csum.as_mut() {
                    *at += GENEVE_OVERHEAD;
                }
            }
        }
        Template {
            off,
            len: self.bytes.len() - off,
            probe_off,
            csum,
        }
    }

    /// Flows per size.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// Slots of the size pattern (1, or 12 for IMIX).
    pub fn slots(&self) -> usize {
        self.slots
    }

    #[inline]
    pub fn get(&self, slot: usize, flow: usize) -> &Template {
        &self.entries[slot * self.flows + flow]
    }

    /// The template's bytes (probe fields zero).
    pub fn bytes(&self, t: &Template) -> &[u8] {
        &self.bytes[t.off..t.off + t.len]
    }

    /// Write the frame of `t` with these probe fields into `out` (exactly `t.len` bytes),
    /// patching the UDP checksum when checksums are on.
    #[inline]
    pub fn emit(&self, t: &Template, out: &mut [u8], stream: u16, seq: u64, ts_ns: u64) {
        out.copy_from_slice(&self.bytes[t.off..t.off + t.len]);
        write_probe(&mut out[t.probe_off..], stream, seq, ts_ns);
        if let Some((at, base)) = t.csum {
            // The template summed the probe fields as zero: add them (RFC 1071 section 2(B)).
            let p = &out[t.probe_off + 2..t.probe_off + PROBE_LEN];
            let c = !checksum::fold(checksum::sum(p, u32::from(base)));
            let c = if c == 0 { 0xffff } else { c };
            out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// Walks the (size slot, flow) pairs: within a round of the size pattern consecutive packets
/// go to consecutive flows, and round r shifts the flows by r, so every flow gets every size
/// in the pattern's proportions.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    slots: usize,
    flows: usize,
    slot: usize,
    round: usize,
}

impl Cursor {
    pub fn new(t: &Templates) -> Cursor {
        Cursor {
            slots: t.slots,
            flows: t.flows,
            slot: 0,
            round: 0,
        }
    }

    /// The next (slot, flow).
    #[inline]
    pub fn next_pair(&mut self) -> (usize, usize) {
        let flow = (self.round + self.slot) % self.flows;
        let pair = (self.slot, flow);
        self.slot += 1;
        if self.slot == self.slots {
            self.slot = 0;
            self.round += 1;
            if self.round == self.flows {
                self.round = 0;
            }
        }
        pair
    }
}

fn emit_eth(buf: &mut [u8], src: EthernetAddress, dst: EthernetAddress) {
    ethernet::Repr {
        src,
        dst,
        ethertype: ethertype::IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(buf));
}

fn emit_ipv4(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) {
    let total = buf.len();
    emit_ipv4_len(buf, src, dst, ttl, total);
}

/// An IPv4 header with its checksum: DF set and ID 0, allowed for atomic datagrams
/// (RFC 6864 section 4.1), so it never changes per packet.
fn emit_ipv4_len(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, total: usize) {
    ipv4::Repr {
        src,
        dst,
        protocol: ipv4::protocol::UDP,
        payload_len: total - ipv4::HEADER_LEN,
        ttl,
        ident: 0,
        dont_frag: true,
        dscp_ecn: 0,
    }
    .emit(&mut ipv4::Packet::new_unchecked(buf));
}

/// Outer UDP source port from a hash of the inner flow, in the ephemeral range, as
/// RFC 8926 section 3.3 recommends for ECMP entropy.
fn geneve_source_port(sip: Ipv4Addr, dip: Ipv4Addr, sport: u16, dport: u16) -> u16 {
    // FNV-1a over the inner 4-tuple.
    let mut h: u32 = 0x811c_9dc5;
    for b in sip
        .octets()
        .into_iter()
        .chain(dip.octets())
        .chain(sport.to_be_bytes())
        .chain(dport.to_be_bytes())
    {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    49152 + (h % 16384) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec() -> FrameSpec {
        FrameSpec {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 1, 1),
            src_port: 1024,
            dst_port: 9,
            ttl: 64,
            udp_checksum: false,
            geneve: None,
        }
    }

    fn geneve() -> GeneveSpec {
        GeneveSpec {
            vni: 0x12345,
            src_mac: EthernetAddress([2, 0, 0, 0, 1, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 1, 2]),
            src_ip: Ipv4Addr::new(192, 0, 2, 21),
            dst_ip: Ipv4Addr::new(192, 0, 2, 10),
            dst_port: GENEVE_PORT,
        }
    }

    fn emit(t: &Templates, slot: usize, flow: usize, seq: u64, ts: u64) -> Vec<u8> {
        let e = t.get(slot, flow);
        let mut out = vec![0xaa; e.len];
        t.emit(e, &mut out, 0xbeef, seq, ts);
        out
    }

    #[test]
    fn smallest_plain_frame_carries_a_probe() {
        let t = Templates::build(&spec(), SizeMix::Fixed(64), 1, Vary::Sport).unwrap();
        let f = emit(&t, 0, 0, 0x0102_0304_0506_0708, 0xffff_1234_5678_9abc);
        assert_eq!(f.len(), 60);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().source_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(ip.header().total_len(), 46);
        assert!(ip.header().dont_fragment());
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Udp(u)) = &p.transport else {
            panic!("not UDP")
        };
        assert_eq!((u.source_port(), u.destination_port()), (1024, 9));
        assert_eq!(u.checksum(), 0);
        assert_eq!(
            &u.payload()[..PROBE_LEN],
            &[
                0x56, 0x47, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc
            ]
        );
        assert_eq!(
            parse_probe(&f),
            Some(Probe {
                stream: 0xbeef,
                seq: 0x0102_0304_0506_0708,
                ts48: 0x1234_5678_9abc
            })
        );
    }

    #[test]
    fn udp_checksum_is_patched_per_packet() {
        let mut s = spec();
        s.udp_checksum = true;
        let t = Templates::build(&s, SizeMix::Fixed(128), 3, Vary::Both).unwrap();
        for (seq, ts) in [
            (0u64, 0u64),
            (1, 77),
            (u64::MAX, u64::MAX),
            (0xffff, 0xffff_0000),
        ] {
            let f = emit(&t, 0, 2, seq, ts);
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) = (&p.net, &p.transport)
            else {
                panic!("not IPv4/UDP")
            };
            assert_eq!(ip.header().source_addr(), Ipv4Addr::new(198, 18, 0, 3));
            assert_eq!(u.source_port(), 1026);
            let want = u
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "seq {seq} ts {ts}");
            assert_ne!(u.checksum(), 0);
        }
    }

    #[test]
    fn geneve_wraps_the_same_frame() {
        let plain = Templates::build(&spec(), SizeMix::Fixed(100), 2, Vary::Sport).unwrap();
        let mut s = spec();
        s.geneve = Some(geneve());
        let g = Templates::build(&s, SizeMix::Fixed(100), 2, Vary::Sport).unwrap();
        let inner = emit(&plain, 0, 1, 42, 4242);
        let f = emit(&g, 0, 1, 42, 4242);
        assert_eq!(f.len(), inner.len() + GENEVE_OVERHEAD);
        assert_eq!(&f[GENEVE_OVERHEAD..], &inner[..]);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) = (&p.net, &p.transport)
        else {
            panic!("not IPv4/UDP")
        };
        assert_eq!(ip.header().destination_addr(), Ipv4Addr::new(192, 0, 2, 10));
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(u.destination_port(), GENEVE_PORT);
        assert!(u.source_port() >= 49152);
        assert_eq!(u.checksum(), 0);
        assert_eq!(&u.payload()[..8], &[0, 0, 0x65, 0x58, 0x01, 0x23, 0x45, 0]);
        assert_eq!(u.length() as usize, 8 + 8 + inner.len());
        // Different inner flows spread over outer source ports.
        let f0 = emit(&g, 0, 0, 42, 4242);
        assert_ne!(f0[34..36], f[34..36]);
        assert_eq!(parse_probe(&f).map(|p| p.seq), Some(42));
        assert_eq!(parse_probe(&inner).map(|p| p.seq), Some(42));
    }

    #[test]
    fn geneve_inner_checksum_is_valid() {
        let mut s = spec();
        s.udp_checksum = true;
        s.geneve = Some(geneve());
        let g = Templates::build(&s, SizeMix::Fixed(64), 1, Vary::Sport).unwrap();
        let f = emit(&g, 0, 0, 9, 9);
        let p = SlicedPacket::from_ethernet(&f[GENEVE_OVERHEAD..]).unwrap();
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) = (&p.net, &p.transport)
        else {
            panic!("not IPv4/UDP")
        };
        let want = u
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
            .unwrap();
        assert_eq!(u.checksum(), want);
        // Outer checksum stays 0.
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn parser_accepts_vlan_and_rejects_non_probes() {
        let t = Templates::build(&spec(), SizeMix::Fixed(64), 1, Vary::Sport).unwrap();
        let f = emit(&t, 0, 0, 5, 5);
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(parse_probe(&tagged).map(|p| p.seq), Some(5));
        let mut bad = f.clone();
        bad[PLAIN_HEADERS] ^= 1;
        assert_eq!(parse_probe(&bad), None, "magic");
        let mut frag = f.clone();
        frag[14 + 6] |= 0x20;
        assert_eq!(parse_probe(&frag), None, "fragment");
        for n in 0..f.len() {
            // Truncations never panic and never yield a probe.
            assert_eq!(parse_probe(&f[..n]), None, "truncated to {n}");
        }
        assert_eq!(parse_probe(&[0u8; 60]), None);
    }

    #[test]
    fn imix_templates_and_cursor_cover_every_pair() {
        let t = Templates::build(&spec(), SizeMix::Imix, 5, Vary::Sip).unwrap();
        assert_eq!((t.slots(), t.flows()), (12, 5));
        let mut c = Cursor::new(&t);
        let mut seen = vec![[0u32; 5]; 12];
        let mut sizes = [0u32; 3];
        for _ in 0..12 * 5 {
            let (slot, flow) = c.next_pair();
            seen[slot][flow] += 1;
            let wire = t.get(slot, flow).wire_len();
            sizes[match wire {
                64 => 0,
                594 => 1,
                1518 => 2,
                _ => panic!("size {wire}"),
            }] += 1;
        }
        assert!(seen.iter().flatten().all(|&n| n == 1));
        assert_eq!(sizes, [7 * 5, 4 * 5, 5]);
        // And it starts over.
        assert_eq!(c.next_pair(), (0, 0));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let e = Templates::build(&spec(), SizeMix::Fixed(63), 1, Vary::Sport).unwrap_err();
        assert!(e.contains("--size 63"), "{e}");
        assert!(Templates::build(&spec(), SizeMix::Fixed(64), 0, Vary::Sport).is_err());
        let e = Templates::build(&spec(), SizeMix::Fixed(64), 65000, Vary::Sport).unwrap_err();
        assert!(e.contains("past port 65535"), "{e}");
        let mut s = spec();
        s.src_ip = Ipv4Addr::new(255, 255, 255, 250);
        let e = Templates::build(&s, SizeMix::Fixed(64), 10, Vary::Sip).unwrap_err();
        assert!(e.contains("255.255.255.255"), "{e}");
        s = spec();
        let mut g = geneve();
        g.vni = 1 << 24;
        s.geneve = Some(g);
        assert!(Templates::build(&s, SizeMix::Fixed(64), 1, Vary::Sport).is_err());
        let e = Templates::build(&spec(), SizeMix::Imix, 60000, Vary::Sip).unwrap_err();
        assert!(e.contains("MiB"), "{e}");
    }

    #[test]
    fn latency_wraps_modulo_48_bits() {
        assert_eq!(latency_ns(100, 150), 50);
        assert_eq!(latency_ns(TS_MASK - 9, (1 << 48) + 10), 20);
        assert_eq!(latency_ns(200, 150), 0);
    }
}
