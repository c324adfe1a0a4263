//! IPv6 headers (RFC 8200): the fixed header, a bounded walk over the extension headers to
//! the upper layer, and the address classes a router looks at (RFC 4291).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Traffic Class |           Flow Label                  |
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! |                  Source Address (16 bytes)                    |
//! |               Destination Address (16 bytes)                  |
//! ```
//!
//! There is no header checksum: upper layers cover the addresses through the pseudo-header
//! of section 8.1 ([`checksum::pseudo_header_sum_ipv6`](super::checksum::pseudo_header_sum_ipv6)).

use super::{Error, Result, get_u16, get_u32, set_u16, set_u32};

pub type Ipv6Address = std::net::Ipv6Addr;

/// Next Header values vgate looks at (RFC 8200 section 4, IANA protocol numbers).
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    use core::ops::Range;
    pub const VER_TC_FL: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// The link MTU every IPv6 link carries (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;

/// Extension headers [`Packet::walk`] follows before giving up. RFC 8200 section 4.1 has
/// each header occur at most once, Destination Options twice, so a conforming chain has at
/// most seven (with AH and ESP, which the walk does not follow); a longer one only costs
/// whoever walks it. Intermediate nodes that look for the transport header have such
/// limits (RFC 8883 section 1).
pub const MAX_EXT_HEADERS: usize = 8;

/// Length of a Fragment header (RFC 8200 section 4.5).
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// What [`Packet::walk`] found after the fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderChain {
    /// The Next Header value of the upper layer: TCP, UDP, ICMPv6, No Next Header or any
    /// other value that is not an extension header the walk follows. For a fragment other
    /// than the first, the value the Fragment header carries.
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header. For a fragment
    /// other than the first, the offset of the fragment data: no header lies there.
    pub offset: usize,
    /// The packet's Fragment header, if it has one.
    pub fragment: Option<Fragment>,
}

/// A Fragment header (RFC 8200 section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of the Fragment header itself from the start of the IPv6 header: the
    /// unfragmentable part ends there.
    pub header_offset: usize,
    /// Fragment offset in bytes (a multiple of 8).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more: bool,
    pub ident: u32,
}

impl Fragment {
    /// The first fragment carries the whole header chain (RFC 7112 section 5); later ones
    /// carry no upper-layer header.
    #[inline]
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// An atomic fragment (RFC 6946 section 4): offset 0 and no more fragments, a whole
    /// packet that only carries the header.
    #[inline]
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
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

    /// At least the fixed header, version 6 and the payload length within the bytes received
    /// (RFC 8200 section 3). Bytes beyond it are link padding. A payload length of zero is an
    /// empty payload: Jumbograms (RFC 2675) never cross an Ethernet link.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FL] >> 4
    }

    /// Traffic class: DSCP and ECN (RFC 8200 section 7, RFC 2474, RFC 3168).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), field::VER_TC_FL) >> 4) as u8
    }

    /// 20-bit flow label (RFC 6437).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FL) & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Address {
        Ipv6Address::from_bits(self.src_u128())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Address {
        Ipv6Address::from_bits(self.dst_u128())
    }

    /// Source address as a host-order integer (table keys).
    #[inline]
    pub fn src_u128(&self) -> u128 {
        read_u128(&self.buffer.as_ref()[field::SRC])
    }

    /// Destination address as a host-order integer (table keys).
    #[inline]
    pub fn dst_u128(&self) -> u128 {
        read_u128(&self.buffer.as_ref()[field::DST])
    }

    /// The fixed header.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// The payload, extension headers included, up to the payload length (trailing link
    /// padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Follow the extension headers to the upper layer (RFC 8200 section 4): Hop-by-Hop
    /// Options (only right after the fixed header, sections 4.1 and 4.3), Routing and
    /// Destination Options (8 bytes plus 8 per unit of their length byte) and the 8-byte
    /// Fragment header. The walk stops at any other Next Header value, No Next Header included, and
    /// after the Fragment header of a fragment other than the first, whose data is the
    /// middle of the original packet.
    ///
    /// Errors: [`Error::Truncated`] when a header runs past the payload (for a first
    /// fragment, a header chain the fragment does not hold whole, which RFC 7112 section 5
    /// has the receiver drop); [`Error::Malformed`] for a Hop-by-Hop header anywhere else
    /// (RFC 8200 section 4: Parameter Problem code 1); [`Error::Unsupported`] after
    /// [`MAX_EXT_HEADERS`] headers, or for a second Fragment header.
    pub fn walk(&self) -> Result<HeaderChain> {
        use next_header::{DEST_OPTS, FRAGMENT, HOP_BY_HOP, ROUTING};
        let b = self.buffer.as_ref();
        let chain = &b[..HEADER_LEN + usize::from(self.payload_len())];
        let mut protocol = self.next_header();
        let mut at = HEADER_LEN;
        let mut fragment = None;
        let mut count = 0;
        loop {
            if !matches!(protocol, HOP_BY_HOP | ROUTING | DEST_OPTS | FRAGMENT) {
                return Ok(HeaderChain {
                    protocol,
                    offset: at,
                    fragment,
                });
            }
            if count == MAX_EXT_HEADERS {
                return Err(Error::Unsupported);
            }
            count += 1;
            if protocol == HOP_BY_HOP && at != HEADER_LEN {
                return Err(Error::Malformed);
            }
            // Every extension header is 8 bytes or more: Next Header first, then its length.
            let h = chain.get(at..at + 8).ok_or(Error::Truncated)?;
            let next = h[0];
            if protocol == FRAGMENT {
                if fragment.is_some() {
                    return Err(Error::Unsupported);
                }
                let off_m = get_u16(h, 2);
                let f = Fragment {
                    header_offset: at,
                    offset: off_m & 0xfff8,
                    more: off_m & 1 != 0,
                    ident: get_u32(h, 4),
                };
                fragment = Some(f);
                at += FRAGMENT_HEADER_LEN;
                if !f.is_first() {
                    return Ok(HeaderChain {
                        protocol: next,
                        offset: at,
                        fragment,
                    });
                }
            } else {
                at += (usize::from(h[1]) + 1) * 8;
                if at > chain.len() {
                    return Err(Error::Truncated);
                }
            }
            protocol = next;
        }
    }

    /// The upper layer's protocol and the offset of its header from the start of the IPv6
    /// header: [`Packet::walk`] without the Fragment header. A caller that reads the
    /// upper-layer header must rule out later fragments through [`Packet::walk`].
    #[inline]
    pub fn upper_layer(&self) -> Result<(u8, usize)> {
        self.walk().map(|c| (c.protocol, c.offset))
    }
}

/// The big-endian 128-bit number at the start of `b` (an address).
#[inline(always)]
pub fn read_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version (4 bits), keeping traffic class and flow label.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TC_FL];
        *b = (*b & 0x0f) | (v << 4);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        let w = get_u32(b, field::VER_TC_FL);
        set_u32(
            b,
            field::VER_TC_FL,
            (w & 0xf00f_ffff) | (u32::from(v) << 20),
        );
    }

    /// Set the flow label (20 bits).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        let b = self.buffer.as_mut();
        let w = get_u32(b, field::VER_TC_FL);
        set_u32(b, field::VER_TC_FL, (w & 0xfff0_0000) | (v & 0x000f_ffff));
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Decrement the hop limit by one (RFC 8200 section 3); no checksum to patch. The caller
    /// has checked it is above 1.
    #[inline]
    pub fn decrement_hop_limit(&mut self) {
        let b = &mut self.buffer.as_mut()[field::HOP_LIMIT];
        debug_assert!(*b > 0, "hop limit 0 cannot be decremented");
        *b = b.wrapping_sub(1);
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// An IPv6 fixed header, owned. Extension headers are not part of it: `next_header` names
/// the first one and `payload_len` counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Address,
    pub dst: Ipv6Address,
    pub next_header: u8,
    /// At most 65535.
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
}

impl Repr {
    /// Parse a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the fixed header into the first 40 bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX), "Jumbogram");
        let word = (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        set_u32(p.buffer.as_mut(), field::VER_TC_FL, word);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

/// Address classes (RFC 4291 section 2.4) and the multicast groups and MACs of Neighbor
/// Discovery.
pub mod class {
    use super::Ipv6Address;
    use crate::wire::ethernet::EthernetAddress;

    /// All-nodes link-local multicast, ff02::1 (RFC 4291 section 2.7.1).
    pub const ALL_NODES: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    /// All-routers link-local multicast, ff02::2 (RFC 4291 section 2.7.1).
    pub const ALL_ROUTERS: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

    /// ff02::1:ff00:0/104 (RFC 4291 section 2.7.1).
    const SOLICITED_NODE_PREFIX: u128 = 0xff02_0000_0000_0000_0000_0001_ff00_0000;

    /// :: (RFC 4291 section 2.5.2).
    #[inline]
    pub const fn is_unspecified(a: Ipv6Address) -> bool {
        a.to_bits() == 0
    }

    /// ::1 (RFC 4291 section 2.5.3).
    #[inline]
    pub const fn is_loopback(a: Ipv6Address) -> bool {
        a.to_bits() == 1
    }

    /// ff00::/8 (RFC 4291 section 2.7).
    #[inline]
    pub const fn is_multicast(a: Ipv6Address) -> bool {
        a.to_bits() >> 120 == 0xff
    }

    /// Link-local unicast, fe80::/10 (RFC 4291 section 2.5.6): never forwarded off its link.
    #[inline]
    pub const fn is_link_local(a: Ipv6Address) -> bool {
        a.to_bits() >> 118 == 0xfe80 >> 6
    }

    /// In ff02::1:ff00:0/104, the solicited-node groups (RFC 4291 section 2.7.1).
    #[inline]
    pub const fn is_solicited_node(a: Ipv6Address) -> bool {
        a.to_bits() >> 24 == SOLICITED_NODE_PREFIX >> 24
    }

    /// The solicited-node multicast address of `a`: ff02::1:ff00:0 with the low 24 bits of
    /// `a` (RFC 4291 section 2.7.1), where Neighbor Solicitations for `a` go.
    #[inline]
    pub const fn solicited_node(a: Ipv6Address) -> Ipv6Address {
        Ipv6Address::from_bits(SOLICITED_NODE_PREFIX | (a.to_bits() & 0x00ff_ffff))
    }

    /// The Ethernet destination of IPv6 multicast `a`: 33:33 and the low 32 bits of `a`
    /// (RFC 2464 section 7). Meaningless for a unicast `a`.
    #[inline]
    pub const fn multicast_mac(a: Ipv6Address) -> EthernetAddress {
        let o = a.octets();
        EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// Sources a router never forwards from: unspecified (RFC 4291 section 2.5.2), loopback
    /// (section 2.5.3) and multicast (section 2.7).
    #[inline]
    pub const fn is_martian_source(a: Ipv6Address) -> bool {
        is_unspecified(a) || is_loopback(a) || is_multicast(a)
    }

    /// Destinations a router never forwards to: unspecified and loopback (RFC 4291 sections
    /// 2.5.2 and 2.5.3).
    #[inline]
    pub const fn is_martian_destination(a: Ipv6Address) -> bool {
        is_unspecified(a) || is_loopback(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use crate::wire::ethernet::EthernetAddress;

    // Built by scapy (an independent implementation):
    // IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb8, fl=0x12345, hlim=64)
    //   / ICMPv6EchoRequest(id=0x1234, seq=1, data=b"abcdefgh")
    const ECHO: [u8; 56] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x10, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x80, 0x75, 0x12,
        0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    // IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
    //   / IPv6ExtHdrRouting(addresses=["2001:db8::9"]) / IPv6ExtHdrDestOpt()
    //   / IPv6ExtHdrFragment(offset=0, m=1, id=0xabcdef01) / UDP(sport=5000, dport=53)
    //   / Raw(b"query")
    const CHAIN: [u8; 101] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x3d, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x2b, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x3c, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x2c, 0x00, 0x01,
        0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0xab, 0xcd, 0xef, 0x01, 0x13, 0x88,
        0x00, 0x35, 0x00, 0x0d, 0x40, 0xb3, 0x71, 0x75, 0x65, 0x72, 0x79,
    ];

    // IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
    //   / IPv6ExtHdrFragment(nh=17, offset=185, m=0, id=0xabcdef01) / Raw(b"tail-of-it")
    const LATER_FRAGMENT: [u8; 66] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x2c, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x11, 0x00, 0x05, 0xc8, 0xab, 0xcd, 0xef, 0x01, 0x74, 0x61, 0x69, 0x6c,
        0x2d, 0x6f, 0x66, 0x2d, 0x69, 0x74,
    ];

    fn addr(s: &str) -> Ipv6Address {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_emits_what_scapy_does() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), next_header::ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), addr("2001:db8::1"));
        assert_eq!(p.dst_addr(), addr("2001:db8::2"));
        assert_eq!(p.dst_u128(), 0x2001_0db8_0000_0000_0000_0000_0000_0002);
        assert_eq!(p.payload(), &ECHO[40..]);
        assert_eq!(p.upper_layer(), Ok((next_header::ICMPV6, 40)));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src: addr("2001:db8::1"),
                dst: addr("2001:db8::2"),
                next_header: next_header::ICMPV6,
                payload_len: 16,
                hop_limit: 64,
                traffic_class: 0xb8,
                flow_label: 0x12345,
            }
        );
        assert_eq!(r.buffer_len(), ECHO.len());
        let mut out = [0xa5u8; HEADER_LEN];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..], ECHO[..HEADER_LEN]);
    }

    #[test]
    fn setters_keep_the_other_bits() {
        let mut b = ECHO;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_traffic_class(0x01);
        assert_eq!((p.version(), p.flow_label()), (6, 0x12345));
        p.set_flow_label(0xfffff);
        assert_eq!((p.version(), p.traffic_class()), (6, 0x01));
        p.set_version(6);
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(b[..4], [0x60, 0x1f, 0xff, 0xff]);
    }

    #[test]
    fn truncated_and_malformed() {
        for n in 0..ECHO.len() {
            let e = Packet::new_checked(&ECHO[..n]).unwrap_err();
            assert_eq!(e, Error::Truncated, "{n} bytes");
        }
        let mut v4 = ECHO;
        v4[0] = 0x4b;
        assert_eq!(Packet::new_checked(&v4[..]).unwrap_err(), Error::Malformed);
        // Link padding after the payload is not payload.
        let mut padded = ECHO.to_vec();
        padded.extend_from_slice(&[0; 8]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &ECHO[40..]);
    }

    #[test]
    fn walks_hop_by_hop_routing_destination_options_and_first_fragment() {
        let p = Packet::new_checked(&CHAIN[..]).unwrap();
        // 40 fixed, 8 Hop-by-Hop, 24 Routing (length 2), 8 Destination Options, 8 Fragment.
        let c = p.walk().unwrap();
        assert_eq!(
            c,
            HeaderChain {
                protocol: next_header::UDP,
                offset: 88,
                fragment: Some(Fragment {
                    header_offset: 80,
                    offset: 0,
                    more: true,
                    ident: 0xabcd_ef01,
                }),
            }
        );
        let f = c.fragment.unwrap();
        assert!(f.is_first() && !f.is_atomic());
        assert_eq!(p.upper_layer(), Ok((next_header::UDP, 88)));
        // scapy summed the UDP checksum with the Routing header's final destination (RFC 8200
        // section 8.1): the pseudo-header sum agrees.
        let udp = &CHAIN[88..];
        let acc = checksum::pseudo_header_sum_ipv6(
            p.src_addr().octets(),
            addr("2001:db8::9").octets(),
            next_header::UDP,
            udp.len() as u32,
        );
        assert_eq!(checksum::fold(checksum::sum(udp, acc)), 0xffff);
    }

    #[test]
    fn a_later_fragment_stops_the_walk() {
        let p = Packet::new_checked(&LATER_FRAGMENT[..]).unwrap();
        let c = p.walk().unwrap();
        assert_eq!(c.protocol, next_header::UDP);
        assert_eq!(c.offset, 56);
        let f = c.fragment.unwrap();
        assert_eq!((f.header_offset, f.offset, f.more), (48, 1480, false));
        assert!(!f.is_first());
    }

    #[test]
    fn a_chain_cut_short_is_truncated_at_every_length() {
        // The headers end at 88; any payload length below 48 cuts the chain.
        for plen in 0..=(CHAIN.len() - HEADER_LEN) {
            let mut b = CHAIN;
            set_u16(&mut b, field::LENGTH, plen as u16);
            let p = Packet::new_checked(&b[..HEADER_LEN + plen]).unwrap();
            let r = p.walk();
            if plen < 48 {
                assert_eq!(r, Err(Error::Truncated), "payload length {plen}");
            } else {
                assert_eq!(r.map(|c| c.offset), Ok(88), "payload length {plen}");
            }
        }
    }

    /// A fixed header followed by `n` empty Destination Options headers (PadN) and UDP.
    fn dest_opts(n: usize) -> Vec<u8> {
        let mut b = ECHO[..HEADER_LEN].to_vec();
        b[field::NEXT_HEADER] = if n == 0 {
            next_header::UDP
        } else {
            next_header::DEST_OPTS
        };
        for i in 0..n {
            let next = if i + 1 == n {
                next_header::UDP
            } else {
                next_header::DEST_OPTS
            };
            b.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        b.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let plen = (b.len() - HEADER_LEN) as u16;
        set_u16(&mut b, field::LENGTH, plen);
        b
    }

    #[test]
    fn the_walk_is_bounded() {
        let ok = dest_opts(MAX_EXT_HEADERS);
        let p = Packet::new_checked(&ok[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok((next_header::UDP, HEADER_LEN + 8 * MAX_EXT_HEADERS))
        );
        let long = dest_opts(MAX_EXT_HEADERS + 1);
        let p = Packet::new_checked(&long[..]).unwrap();
        assert_eq!(p.walk(), Err(Error::Unsupported));
    }

    #[test]
    fn hop_by_hop_only_first_and_one_fragment_header() {
        // Destination Options then Hop-by-Hop.
        let mut b = dest_opts(2);
        b[HEADER_LEN] = next_header::HOP_BY_HOP;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.walk(), Err(Error::Malformed));
        // Two first-fragment headers.
        let mut b = dest_opts(2);
        b[field::NEXT_HEADER] = next_header::FRAGMENT;
        b[HEADER_LEN] = next_header::FRAGMENT;
        b[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&[0, 0]);
        b[HEADER_LEN + 10..HEADER_LEN + 12].copy_from_slice(&[0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.walk(), Err(Error::Unsupported));
        // No Next Header ends the walk.
        let mut b = dest_opts(1);
        b[HEADER_LEN] = next_header::NO_NEXT;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Ok((next_header::NO_NEXT, 48)));
    }

    #[test]
    fn solicited_node_and_multicast_mac_per_rfc_4291_and_2464() {
        // RFC 4291 section 2.7.1's example.
        let a = addr("4037::01:800:200e:8c6c");
        let s = class::solicited_node(a);
        assert_eq!(s, addr("ff02::1:ff0e:8c6c"));
        assert!(class::is_solicited_node(s) && !class::is_solicited_node(a));
        assert!(!class::is_solicited_node(addr("ff02::1:fe0e:8c6c")));
        // RFC 2464 section 7: 33:33 and the last four octets.
        assert_eq!(
            class::multicast_mac(s),
            EthernetAddress([0x33, 0x33, 0xff, 0x0e, 0x8c, 0x6c])
        );
        assert_eq!(
            class::multicast_mac(class::ALL_NODES),
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1])
        );
        assert_eq!(class::ALL_ROUTERS, addr("ff02::2"));
    }

    #[test]
    fn address_classes_agree_with_std() {
        for s in [
            "::",
            "::1",
            "::2",
            "ff02::1",
            "ff0e::1",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "fe7f::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let a = addr(s);
            assert_eq!(class::is_unspecified(a), a.is_unspecified(), "{s}");
            assert_eq!(class::is_loopback(a), a.is_loopback(), "{s}");
            assert_eq!(class::is_multicast(a), a.is_multicast(), "{s}");
            assert_eq!(class::is_link_local(a), a.is_unicast_link_local(), "{s}");
        }
        assert!(class::is_martian_source(addr("ff02::1")));
        assert!(class::is_martian_source(addr("::")));
        assert!(!class::is_martian_source(addr("fe80::1")));
        assert!(class::is_martian_destination(addr("::1")));
        assert!(!class::is_martian_destination(addr("ff02::1")));
    }
}
