//! Geneve headers (RFC 8926).
//!
//! Section 3.4 base header, then `Opt Len * 4` bytes of options (section 3.5):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//!
//! one option:
//! |          Option Class         |      Type     |R|R|R| Length  |
//! |                 Variable-Length Option Data                   |
//! ```

use super::ethernet::{self, ethertype};
use super::ipv4::{self, protocol};
use super::{Error, Result, get_u16, get_u32, set_u16};

mod field {
    pub const VER_OPT_LEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: usize = 2;
    /// VNI (24 bits) and the reserved byte after it.
    pub const VNI_RSVD: usize = 4;
    pub const OPTIONS: usize = 8;
}

/// The IANA-assigned UDP destination port (RFC 8926 section 3.3).
pub const UDP_PORT: u16 = 6081;

/// Length of the base header, without options (RFC 8926 section 3.4).
pub const HEADER_LEN: usize = 8;

/// Length of an option header (class, type, length), before its data (RFC 8926 section 3.5).
pub const OPTION_HEADER_LEN: usize = 4;

/// The most option bytes a header can carry: a 6-bit `Opt Len` in 4-byte words.
pub const MAX_OPTIONS_LEN: usize = 63 * 4;

/// Protocol Type of an inner Ethernet frame: Transparent Ethernet Bridging
/// (RFC 8926 section 3.4).
pub const PROTO_ETHERNET: u16 = 0x6558;

/// Bytes that Geneve encapsulation over IPv4 without options adds in front of the inner
/// Ethernet frame: outer Ethernet 14 + IPv4 20 + UDP 8 + Geneve 8 = 50.
///
/// It is also what the tenant network loses in MTU: the underlay IP packet carries
/// 20 (IPv4) + 8 (UDP) + 8 (Geneve) + 14 (inner Ethernet, which does not count toward the
/// inner IP MTU) + the inner IP packet, so tenant IP MTU = underlay IP MTU - 50
/// (1500 -> 1450). The outer Ethernet header is not part of the underlay MTU and the inner
/// one is part of the overhead, hence the same number. RFC 8926 section 4.1.1 requires the
/// tenant MTU to be set so that encapsulated packets are not fragmented in the underlay.
/// Options add `options_len` bytes to both: see [`inner_ip_mtu`].
pub const ENCAP_OVERHEAD_IPV4: usize =
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + super::udp::HEADER_LEN + HEADER_LEN;

/// The largest inner IP packet that fits an underlay of IP MTU `underlay_ip_mtu` with
/// `options_len` option bytes per packet (RFC 8926 section 4.1.1); 0 when nothing fits.
pub const fn inner_ip_mtu(underlay_ip_mtu: usize, options_len: usize) -> usize {
    underlay_ip_mtu.saturating_sub(ENCAP_OVERHEAD_IPV4 + options_len)
}

const VERSION_SHIFT: u8 = 6;
const OPT_LEN_MASK: u8 = 0x3f;
const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;
/// High bit of an option's Type: the option is critical (RFC 8926 section 3.5).
pub const OPTION_TYPE_CRITICAL: u8 = 0x80;
const OPTION_LEN_MASK: u8 = 0x1f;

/// A view of a Geneve header and what follows it (the UDP payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view whose accessors cannot panic: see [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// At least the base header, version 0, and the options within the buffer.
    /// RFC 8926 section 3.4: packets with an unknown version MUST be dropped, so a view is
    /// always of a version 0 header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 {
            return Err(Error::Malformed);
        }
        if self.header_len() > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPT_LEN] >> VERSION_SHIFT
    }

    /// Length of the options in bytes (`Opt Len * 4`).
    #[inline]
    pub fn opt_len_bytes(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_OPT_LEN] & OPT_LEN_MASK) * 4
    }

    /// Base header plus options: where the payload starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.opt_len_bytes()
    }

    /// O bit: a control packet, not to be forwarded as tenant data (RFC 8926 section 3.4).
    #[inline]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_OAM != 0
    }

    /// C bit: one or more options are critical (RFC 8926 section 3.4).
    #[inline]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_CRITICAL != 0
    }

    /// EtherType of the payload; [`PROTO_ETHERNET`] for an Ethernet frame.
    #[inline]
    pub fn protocol(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// The 24-bit Virtual Network Identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VNI_RSVD) >> 8
    }

    /// The option bytes, unparsed.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The encapsulated frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The options one by one (RFC 8926 section 3.5).
    #[inline]
    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }

    /// Whether some option has the critical bit set in its type and `known(class, type)`
    /// says it is not understood: RFC 8926 section 3.5 requires such packets to be dropped.
    /// Every option is examined whatever the C bit says, so a sender that set a critical
    /// type without the C bit is caught too; a malformed option list is an error.
    pub fn has_unknown_critical(&self, known: impl Fn(u16, u8) -> bool) -> Result<bool> {
        for opt in self.options_iter() {
            let (class, kind, _) = opt?;
            if kind & OPTION_TYPE_CRITICAL != 0 && !known(class, kind) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version (2 bits).
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_OPT_LEN];
        *b = (*b & OPT_LEN_MASK) | (v << VERSION_SHIFT);
    }

    /// Set the options length in bytes, a multiple of 4 up to [`MAX_OPTIONS_LEN`].
    #[inline]
    pub fn set_opt_len_bytes(&mut self, len: usize) {
        debug_assert!(
            len.is_multiple_of(4) && len <= MAX_OPTIONS_LEN,
            "options length {len}"
        );
        let b = &mut self.buffer.as_mut()[field::VER_OPT_LEN];
        *b = (*b & !OPT_LEN_MASK) | ((len / 4) as u8 & OPT_LEN_MASK);
    }

    #[inline]
    pub fn set_oam(&mut self, v: bool) {
        self.set_flag(FLAG_OAM, v);
    }

    #[inline]
    pub fn set_critical(&mut self, v: bool) {
        self.set_flag(FLAG_CRITICAL, v);
    }

    #[inline]
    fn set_flag(&mut self, flag: u8, v: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        if v {
            *b |= flag;
        } else {
            *b &= !flag;
        }
    }

    /// Zero the reserved bits of the flags byte and the byte after the VNI (RFC 8926
    /// section 3.4: zero on transmission).
    #[inline]
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] &= FLAG_OAM | FLAG_CRITICAL;
        b[field::VNI_RSVD + 3] = 0;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PROTOCOL, v);
    }

    /// Set the VNI (the low 24 bits of `v`), keeping the reserved byte after it.
    #[inline]
    pub fn set_vni(&mut self, v: u32) {
        debug_assert!(v <= 0x00ff_ffff, "VNI {v:#x} wider than 24 bits");
        let b = self.buffer.as_mut();
        b[field::VNI_RSVD..field::VNI_RSVD + 3].copy_from_slice(&v.to_be_bytes()[1..]);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..h]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// Iterator over the options of a header: `(class, type, data)` per option, or
/// `Err(Error::Malformed)` once (then nothing) when an option's length runs past the option
/// space.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Options in `bytes`, the whole option space of a header.
    pub const fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        if rest.len() < OPTION_HEADER_LEN {
            return Some(Err(Error::Malformed));
        }
        let data_len = usize::from(rest[3] & OPTION_LEN_MASK) * 4;
        let Some(data) = rest.get(OPTION_HEADER_LEN..OPTION_HEADER_LEN + data_len) else {
            return Some(Err(Error::Malformed));
        };
        self.rest = &rest[OPTION_HEADER_LEN + data_len..];
        Some(Ok((get_u16(rest, 0), rest[2], data)))
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// A Geneve base header, owned. Options are not part of it: `options_len` bytes of them
/// follow the base header and are copied there by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// 24 bits.
    pub vni: u32,
    pub protocol: u16,
    pub oam: bool,
    pub critical: bool,
    /// Bytes of options after the base header: a multiple of 4, at most [`MAX_OPTIONS_LEN`].
    pub options_len: usize,
}

impl Repr {
    /// Parse a header (see [`Packet::check_len`]); options are not looked at.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            vni: p.vni(),
            protocol: p.protocol(),
            oam: p.oam(),
            critical: p.critical(),
            options_len: p.opt_len_bytes(),
        })
    }

    /// Base header plus options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len
    }

    /// Write the base header (version 0, reserved bits zero) into the first 8 bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        {
            let b = p.buffer.as_mut();
            b[..HEADER_LEN].fill(0);
        }
        p.set_version(0);
        p.set_opt_len_bytes(self.options_len);
        p.set_oam(self.oam);
        p.set_critical(self.critical);
        p.set_protocol(self.protocol);
        p.set_vni(self.vni);
    }
}

/// The outer UDP source port for an inner Ethernet frame: a hash of its flow mapped into
/// the dynamic port range 49152..=65535 (RFC 6335 section 6).
///
/// RFC 8926 section 3.3: the source port SHOULD be the same for every packet of an
/// encapsulated flow (no reordering across underlay paths) and SHOULD be a hash of the
/// inner headers so that flows spread over ECMP links. For inner IPv4 the flow is source,
/// destination and protocol, plus the ports of TCP and UDP; fragments leave the ports out
/// so that every fragment of a datagram takes the same path as the others. Any other frame
/// (ARP, IPv6, a truncated or bad IPv4 header) hashes its Ethernet addresses and EtherType.
/// Keeping to the dynamic range, as RFC 7348 section 5 recommends for VXLAN, keeps the
/// outer packets clear of ports that middleboxes classify as well-known services.
pub fn flow_entropy_port(inner: &[u8]) -> u16 {
    let key = ipv4_flow_key(inner).unwrap_or_else(|| l2_flow_key(inner));
    0xc000 | (mix(key) as u16 & 0x3fff)
}

/// [`flow_entropy_port`] of an inner IPv4 packet whose flow is already known: source,
/// destination, protocol and `ports`, the first four bytes of a TCP or UDP header (0 for
/// other protocols and for fragments). The same port as `flow_entropy_port` gives the frame.
#[inline]
pub fn flow_entropy_port_ipv4(src: u32, dst: u32, proto: u8, ports: u32) -> u16 {
    let addrs = u64::from(src) << 32 | u64::from(dst);
    let rest = u64::from(proto) << 32 | u64::from(ports);
    0xc000 | (mix(u128::from(addrs) << 64 | u128::from(rest)) as u16 & 0x3fff)
}

/// `src << 32 | dst` and `proto << 32 | sport << 16 | dport`, as one 128-bit value.
fn ipv4_flow_key(frame: &[u8]) -> Option<u128> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let addrs = u64::from(ip.src_u32()) << 32 | u64::from(ip.dst_u32());
    let proto = ip.protocol();
    let ports = match proto {
        protocol::TCP | protocol::UDP if !ip.is_fragment() => {
            let l4 = ip.payload();
            if l4.len() >= 4 { get_u32(l4, 0) } else { 0 }
        }
        _ => 0,
    };
    let rest = u64::from(proto) << 32 | u64::from(ports);
    Some(u128::from(addrs) << 64 | u128::from(rest))
}

/// Destination, source and EtherType, zero-padded when the frame is shorter.
fn l2_flow_key(frame: &[u8]) -> u128 {
    let mut k = [0u8; 16];
    let n = frame.len().min(ethernet::HEADER_LEN);
    k[..n].copy_from_slice(&frame[..n]);
    u128::from_be_bytes(k)
}

/// Folds 128 bits into 64 well-mixed ones (the splitmix64 / murmur3 finaliser on each half).
#[inline(always)]
fn mix(key: u128) -> u64 {
    let fin = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    fin(fin(key as u64) ^ (key >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // scapy 2.5: GENEVE(vni=100, proto=0x6558).
    const BASE: [u8; 8] = [0x00, 0x00, 0x65, 0x58, 0x00, 0x00, 0x64, 0x00];

    // scapy 2.5: GENEVE(vni=0xabcdef, proto=0x6558, critical=1, oam=1, optionlen=5,
    //   options=[GeneveOptions(classid=0x0102, type=0x80, data=11223344),
    //            GeneveOptions(classid=0xffff, type=0x01, data=aabbccddeeff0001)]);
    // tshark 4.0 decodes the same two options, the first critical.
    const WITH_OPTIONS: [u8; 28] = [
        0x05, 0xc0, 0x65, 0x58, 0xab, 0xcd, 0xef, 0x00, 0x01, 0x02, 0x80, 0x01, 0x11, 0x22, 0x33,
        0x44, 0xff, 0xff, 0x01, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x01,
    ];

    // Sent by Open vSwitch 3.1 (userspace datapath, geneve port key=100, a flow setting
    // tun_metadata0 mapped to class 0x0102 type 0x80 len 4): a VM's ping to 10.0.0.1.
    const OVS_FRAME: [u8; 156] = [
        0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x02, 0x00, 0x00, 0x00, 0x02, 0x21, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x8e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb6, 0x3f, 0xc0, 0x00, 0x02, 0x15,
        0xc0, 0x00, 0x02, 0x0a, 0xde, 0x6f, 0x17, 0xc1, 0x00, 0x7a, 0x00, 0x00, 0x02, 0x40, 0x65,
        0x58, 0x00, 0x00, 0x64, 0x00, 0x01, 0x02, 0x80, 0x01, 0x11, 0x22, 0x33, 0x44, 0xfa, 0x16,
        0x3e, 0x00, 0x00, 0x01, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x05, 0x08, 0x00, 0x45, 0x00, 0x00,
        0x54, 0x6a, 0x9d, 0x40, 0x00, 0x40, 0x01, 0xbc, 0x06, 0x0a, 0x00, 0x00, 0x05, 0x0a, 0x00,
        0x00, 0x01, 0x08, 0x00, 0xb1, 0xd9, 0x7c, 0x14, 0x00, 0x01, 0x95, 0x6d, 0x02, 0x6b, 0x00,
        0x00, 0x00, 0x00, 0x6c, 0x65, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13,
        0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22,
        0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31,
        0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    // scapy 2.5: Ether(dst=02:00:00:00:02:21, src=02:00:00:00:02:10)/
    //   IP(192.0.2.10 > 192.0.2.21, id=1, DF)/UDP(50000 > 6081)/GENEVE(vni=100, proto=0x6558)/
    //   Ether(fa:16:3e:00:00:01 > fa:16:3e:00:00:05)/IP(198.51.100.7 > 10.0.0.5, id=2)/
    //   TCP(40000 > 22, S, seq=1).
    const SCAPY_FRAME: [u8; 104] = [
        0x02, 0x00, 0x00, 0x00, 0x02, 0x21, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x5a, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0xb6, 0x72, 0xc0, 0x00, 0x02, 0x0a,
        0xc0, 0x00, 0x02, 0x15, 0xc3, 0x50, 0x17, 0xc1, 0x00, 0x46, 0x92, 0xfd, 0x00, 0x00, 0x65,
        0x58, 0x00, 0x00, 0x64, 0x00, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x05, 0xfa, 0x16, 0x3e, 0x00,
        0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x28, 0x00, 0x02, 0x00, 0x00, 0x40, 0x06, 0x46,
        0x8f, 0xc6, 0x33, 0x64, 0x07, 0x0a, 0x00, 0x00, 0x05, 0x9c, 0x40, 0x00, 0x16, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0xbf, 0x4b, 0x00, 0x00,
    ];

    /// The Geneve header and payload of a whole frame, found by etherparse.
    fn udp_payload(frame: &[u8]) -> &[u8] {
        let s = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        match s.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                assert_eq!(u.destination_port(), UDP_PORT);
                u.payload()
            }
            other => panic!("not UDP: {other:?}"),
        }
    }

    #[test]
    fn parse_base_header() {
        let p = Packet::new_checked(&BASE[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert_eq!(p.opt_len_bytes(), 0);
        assert_eq!(p.header_len(), HEADER_LEN);
        assert!(!p.oam());
        assert!(!p.critical());
        assert_eq!(p.protocol(), PROTO_ETHERNET);
        assert_eq!(p.vni(), 100);
        assert!(p.options().is_empty());
        assert!(p.payload().is_empty());
        assert_eq!(p.options_iter().count(), 0);
        assert_eq!(p.has_unknown_critical(|_, _| false), Ok(false));
    }

    #[test]
    fn parse_options() {
        let p = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.opt_len_bytes(), 20);
        assert!(p.oam());
        assert!(p.critical());
        assert_eq!(p.vni(), 0xab_cdef);
        assert_eq!(p.options(), &WITH_OPTIONS[8..]);
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            vec![
                Ok((0x0102, 0x80, &[0x11, 0x22, 0x33, 0x44][..])),
                Ok((
                    0xffff,
                    0x01,
                    &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x01][..]
                )),
            ]
        );
        assert_eq!(p.has_unknown_critical(|_, _| false), Ok(true));
        assert_eq!(
            p.has_unknown_critical(|c, t| (c, t) == (0x0102, 0x80)),
            Ok(false)
        );
        // The non-critical option is never asked about.
        assert_eq!(p.has_unknown_critical(|c, _| c == 0x0102), Ok(false));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                vni: 0xab_cdef,
                protocol: PROTO_ETHERNET,
                oam: true,
                critical: true,
                options_len: 20,
            }
        );
        assert_eq!(r.header_len(), 28);
    }

    #[test]
    fn open_vswitch_frame() {
        let geneve = udp_payload(&OVS_FRAME);
        let p = Packet::new_checked(geneve).unwrap();
        assert_eq!(p.vni(), 100);
        assert!(p.critical());
        assert!(!p.oam());
        assert_eq!(p.protocol(), PROTO_ETHERNET);
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            vec![Ok((0x0102, 0x80, &[0x11, 0x22, 0x33, 0x44][..]))]
        );
        assert_eq!(p.has_unknown_critical(|_, _| false), Ok(true));
        // The payload is the VM's frame, intact.
        let inner = etherparse::SlicedPacket::from_ethernet(p.payload()).unwrap();
        match inner.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                assert_eq!(ip.header().source(), [10, 0, 0, 5]);
                assert_eq!(ip.header().destination(), [10, 0, 0, 1]);
            }
            other => panic!("inner not IPv4: {other:?}"),
        }
        assert_eq!(p.payload().len(), OVS_FRAME.len() - 14 - 20 - 8 - 16);
    }

    #[test]
    fn scapy_frame_and_entropy() {
        let geneve = udp_payload(&SCAPY_FRAME);
        let p = Packet::new_checked(geneve).unwrap();
        assert_eq!(p.vni(), 100);
        assert_eq!(p.payload().len(), 14 + 40);
        assert_eq!(&p.payload()[..6], &[0xfa, 0x16, 0x3e, 0x00, 0x00, 0x05]);
        // The flow hash of the inner frame: deterministic, in range, and sensitive to the
        // ports (TCP 40000 > 22).
        let port = flow_entropy_port(p.payload());
        assert!(port >= 49152);
        assert_eq!(port, flow_entropy_port(p.payload()));
        let mut other = p.payload().to_vec();
        other[14 + 20 + 1] = 0x41; // source port 40001
        assert_ne!(flow_entropy_port(&other), port);
    }

    #[test]
    fn rejects_bad_headers() {
        // Version 1 (RFC 8926 section 3.4: drop unknown versions).
        let mut v1 = BASE;
        v1[0] = 0x40;
        assert_eq!(Packet::new_checked(&v1[..]).unwrap_err(), Error::Malformed);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&v1[..])).unwrap_err(),
            Error::Malformed
        );
        // Shorter than the base header.
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&BASE[..n]).unwrap_err(),
                Error::Truncated,
                "{n} bytes"
            );
        }
        // Options announced but not all present.
        assert_eq!(
            Packet::new_checked(&WITH_OPTIONS[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut long = BASE;
        long[0] = 0x01;
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::Truncated
        );
        // The largest Opt Len with nothing behind it.
        let mut max = vec![0u8; HEADER_LEN + MAX_OPTIONS_LEN];
        max[0] = 0x3f;
        assert!(Packet::new_checked(&max[..]).is_ok());
        assert_eq!(
            Packet::new_checked(&max[..max.len() - 1]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn option_overruns() {
        // The second option claims 3 words of data where 2 remain.
        let mut over = WITH_OPTIONS;
        over[19] = 0x03;
        let p = Packet::new_checked(&over[..]).unwrap();
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(opts.len(), 2);
        assert!(opts[0].is_ok());
        assert_eq!(opts[1], Err(Error::Malformed));
        assert_eq!(p.has_unknown_critical(|_, _| true), Err(Error::Malformed));

        // The first option claims all 31 words: past everything, nothing valid is yielded.
        let mut first = WITH_OPTIONS;
        first[11] = 0x1f;
        let p = Packet::new_checked(&first[..]).unwrap();
        assert_eq!(
            p.options_iter().collect::<Vec<_>>(),
            vec![Err(Error::Malformed)]
        );
        // ... and the error is reported even when every option is known.
        assert_eq!(p.has_unknown_critical(|_, _| true), Err(Error::Malformed));

        // The R bits above the length are reserved, not part of it.
        let mut r_bits = WITH_OPTIONS;
        r_bits[11] |= 0xe0;
        let p = Packet::new_checked(&r_bits[..]).unwrap();
        assert_eq!(p.options_iter().filter(|o| o.is_ok()).count(), 2);

        // A lone option header with no data fits exactly one word.
        let mut one = BASE.to_vec();
        one[0] = 0x01;
        one.extend_from_slice(&[0x01, 0x02, 0x83, 0x00]);
        let p = Packet::new_checked(&one[..]).unwrap();
        assert_eq!(
            p.options_iter().collect::<Vec<_>>(),
            vec![Ok((0x0102, 0x83, &[][..]))]
        );
        assert_eq!(p.has_unknown_critical(|_, _| false), Ok(true));
        // Critical type without the C bit in the base header is still caught.
        assert!(!p.critical());
    }

    #[test]
    fn option_iterator_stops_after_error() {
        let mut it = Options::new(&[0x01, 0x02, 0x03]);
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
        let mut it = Options::new(&[0x01, 0x02, 0x03, 0x01]);
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn emit_matches_scapy() {
        let r = Repr {
            vni: 100,
            protocol: PROTO_ETHERNET,
            oam: false,
            critical: false,
            options_len: 0,
        };
        let mut b = [0xffu8; 8];
        r.emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, BASE);

        let r = Repr {
            vni: 0xab_cdef,
            protocol: PROTO_ETHERNET,
            oam: true,
            critical: true,
            options_len: 20,
        };
        let mut b = [0xffu8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        r.emit(&mut p);
        p.options_mut().copy_from_slice(&WITH_OPTIONS[8..]);
        assert_eq!(b, WITH_OPTIONS);
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Ok(r));
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut b = WITH_OPTIONS;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_vni(0x12_3456);
        p.set_oam(false);
        assert_eq!(p.vni(), 0x12_3456);
        assert!(p.critical() && !p.oam());
        p.set_critical(false);
        p.set_opt_len_bytes(4);
        assert_eq!(p.version(), 0);
        assert_eq!(p.options(), &[0x01, 0x02, 0x80, 0x01]);
        assert_eq!(p.payload().len(), 16);
        p.payload_mut()[0] = 0x99;
        p.set_protocol(ethertype::IPV4);
        assert_eq!(&b[..8], &[0x01, 0x00, 0x08, 0x00, 0x12, 0x34, 0x56, 0x00]);
        assert_eq!(b[12], 0x99);

        let mut dirty = BASE;
        dirty[1] = 0xff;
        dirty[7] = 0xff;
        let mut p = Packet::new_unchecked(&mut dirty[..]);
        p.clear_reserved();
        assert!(p.oam() && p.critical());
        assert_eq!(dirty, [0x00, 0xc0, 0x65, 0x58, 0x00, 0x00, 0x64, 0x00]);
    }

    #[test]
    fn overhead_and_mtu() {
        assert_eq!(ENCAP_OVERHEAD_IPV4, 50);
        assert_eq!(inner_ip_mtu(1500, 0), 1450);
        assert_eq!(inner_ip_mtu(9000, 8), 8942);
        assert_eq!(inner_ip_mtu(40, 0), 0);
        // The frame OVS sent: inner IP packet + 50 + 8 option bytes = outer frame.
        assert_eq!(OVS_FRAME.len(), 84 + ENCAP_OVERHEAD_IPV4 + 8 + 14);
    }

    /// An Ethernet + IPv4 + L4 frame built with etherparse.
    fn inner_frame(src: [u8; 4], dst: [u8; 4], l4: Option<(u8, u16, u16)>) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64);
        let mut out = Vec::new();
        match l4 {
            Some((6, s, d)) => b.tcp(s, d, 1, 1024).write(&mut out, b"x").unwrap(),
            Some((17, s, d)) => b.udp(s, d).write(&mut out, b"x").unwrap(),
            Some((p, _, _)) => panic!("protocol {p}"),
            None => b.icmpv4_echo_request(1, 1).write(&mut out, b"x").unwrap(),
        }
        out
    }

    #[test]
    fn entropy_depends_on_the_flow_only() {
        let a = inner_frame([10, 0, 0, 5], [198, 51, 100, 7], Some((6, 40000, 443)));
        let port = flow_entropy_port(&a);
        assert!((49152..=65535).contains(&port));
        // Same flow, different payload and TTL: same port.
        let mut same = a.clone();
        same[14 + 8] = 3;
        *same.last_mut().unwrap() = b'y';
        assert_eq!(flow_entropy_port(&same), port);
        // Different flows spread: 1024 source ports hit many of the 16384 outer ports.
        let mut seen = std::collections::HashSet::new();
        for sport in 0..1024u16 {
            let f = inner_frame([10, 0, 0, 5], [198, 51, 100, 7], Some((17, sport, 53)));
            let p = flow_entropy_port(&f);
            assert!(p >= 49152);
            seen.insert(p);
        }
        assert!(seen.len() > 980, "only {} distinct ports", seen.len());
        // Addresses count; so does the protocol.
        let b = inner_frame([10, 0, 0, 6], [198, 51, 100, 7], Some((6, 40000, 443)));
        assert_ne!(flow_entropy_port(&b), port);
        let u = inner_frame([10, 0, 0, 5], [198, 51, 100, 7], Some((17, 40000, 443)));
        assert_ne!(flow_entropy_port(&u), port);
    }

    #[test]
    fn entropy_of_fragments_ignores_ports() {
        let first = inner_frame([10, 0, 0, 5], [198, 51, 100, 7], Some((17, 1000, 2000)));
        let mut first = first;
        let mut ip = ipv4::Packet::new_checked(&mut first[14..]).unwrap();
        ip.set_flags_offset(false, true, 0);
        let port = flow_entropy_port(&first);
        // A later fragment carries payload bytes where the ports were.
        let mut later = first.clone();
        let mut ip = ipv4::Packet::new_checked(&mut later[14..]).unwrap();
        ip.set_flags_offset(false, false, 8);
        ip.payload_mut()[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(flow_entropy_port(&later), port);
    }

    #[test]
    fn entropy_never_panics() {
        // Every prefix of the inner frame (Ethernet, IPv4, TCP) of the scapy fixture.
        for end in 50..=SCAPY_FRAME.len() {
            let p = flow_entropy_port(&SCAPY_FRAME[50..end]);
            assert!(p >= 49152);
        }
        // ARP frames hash their Ethernet header; different senders differ.
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.resize(42, 0);
        let mut arp2 = arp.clone();
        arp2[11] = 2;
        assert_ne!(flow_entropy_port(&arp), flow_entropy_port(&arp2));
        // An IPv4 frame too short for its ports still hashes its addresses.
        let mut short = inner_frame([10, 0, 0, 5], [1, 1, 1, 1], Some((6, 1, 2)));
        short.truncate(14 + 20 + 2);
        let mut ip = ipv4::Packet::new_unchecked(&mut short[14..]);
        ip.set_total_len(22);
        assert!(flow_entropy_port(&short) >= 49152);
    }
}
