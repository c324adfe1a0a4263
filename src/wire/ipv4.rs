//! IPv4 headers (RFC 791), with the receive checks of RFC 1812 section 5.2.2.

use super::checksum;
use super::{Error, Result, get_u16, get_u32, set_u16, set_u32};

pub type Ipv4Address = std::net::Ipv4Addr;

/// IP protocol numbers vgate looks at.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// RFC 1812 section 5.2.2 length checks: at least 20 bytes, version 4, IHL >= 5, header
    /// within the buffer, total length >= header length and <= the bytes received.
    /// (Version is checked here so that a view is always of an IPv4 header.)
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = self.total_len() as usize;
        if self.header_len() > b.len() || total > b.len() {
            return Err(Error::Truncated);
        }
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True for any fragment (first, middle or last) of a fragmented datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bits(self.src_u32())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Address {
        Ipv4Address::from_bits(self.dst_u32())
    }

    /// Source address as a host-order integer (table keys).
    #[inline]
    pub fn src_u32(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address as a host-order integer (table keys).
    #[inline]
    pub fn dst_u32(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::DST)
    }

    /// True when the header checksum verifies (RFC 1812 section 5.2.2).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let h = self.header();
        match h.first_chunk::<HEADER_LEN>() {
            Some(h20) if h.len() == HEADER_LEN => checksum::header20_ok(h20),
            _ => checksum::checksum(h) == 0,
        }
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload, up to the total length (trailing link padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_version_ihl(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Set DF, MF and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Address) {
        set_u32(self.buffer.as_mut(), field::SRC, a.to_bits());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Address) {
        set_u32(self.buffer.as_mut(), field::DST, a.to_bits());
    }

    /// Recompute the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let h = self.header();
        let c = match h.first_chunk::<HEADER_LEN>() {
            Some(h20) if h.len() == HEADER_LEN => !checksum::sum_header20(h20),
            _ => checksum::checksum(h),
        };
        self.set_checksum(c);
    }

    /// Decrement TTL by one and patch the checksum incrementally (RFC 1624, RFC 1812
    /// section 5.3.1). The caller has checked TTL > 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let ttl = b[field::TTL];
        debug_assert!(ttl > 0, "TTL 0 cannot be decremented");
        b[field::TTL] = ttl.wrapping_sub(1);
        // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with m the TTL/protocol word: whatever
        // the protocol, ~m + m' is 0xfeff, and ~HC + 0xfeff <= 0x1fefe needs one fold only.
        // (A TTL of 0 wraps to 255: ~m + m' is 0x1feff, folded in full.)
        let hc = u32::from(!get_u16(b, field::CHECKSUM));
        let c = if ttl == 0 {
            !checksum::fold(hc + 0x1_feff)
        } else {
            let acc = hc + 0xfeff;
            !(((acc & 0xffff) + (acc >> 16)) as u16)
        };
        set_u16(b, field::CHECKSUM, c);
    }

    /// Rewrite the source address, patching the header checksum (RFC 1624). Returns the old
    /// address so callers can patch transport checksums too.
    #[inline]
    pub fn rewrite_src(&mut self, new: u32) -> u32 {
        let b = self.buffer.as_mut();
        let old = get_u32(b, field::SRC);
        set_u32(b, field::SRC, new);
        let c = checksum::update32(get_u16(b, field::CHECKSUM), old, new);
        set_u16(b, field::CHECKSUM, c);
        old
    }

    /// Rewrite the destination address, patching the header checksum (RFC 1624).
    #[inline]
    pub fn rewrite_dst(&mut self, new: u32) -> u32 {
        let b = self.buffer.as_mut();
        let old = get_u32(b, field::DST);
        set_u32(b, field::DST, new);
        let c = checksum::update32(get_u16(b, field::CHECKSUM), old, new);
        set_u16(b, field::CHECKSUM, c);
        old
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
}

/// An IPv4 header without options, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Address,
    pub dst: Ipv4Address,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub dscp_ecn: u8,
}

impl Repr {
    /// Parse a checked packet, verifying its checksum. Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header (with checksum) into the first 20 bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_ihl(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(self.buffer_len() as u16);
        p.set_ident(self.ident);
        p.set_flags_offset(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

/// Address classes a router must not forward from or to (RFC 1812 section 4.2.2.11 and
/// section 5.3.7 "martian" filtering).
pub mod class {
    /// 0.0.0.0/8 ("this network"), 127.0.0.0/8, 224.0.0.0/4 multicast, 240.0.0.0/4 reserved
    /// and 255.255.255.255 are never valid sources of forwarded packets.
    #[inline]
    pub const fn is_martian_source(a: u32) -> bool {
        let top = a >> 24;
        top == 0 || top == 127 || top >= 224
    }

    /// Destinations vgate never routes: "this network", loopback, multicast, reserved,
    /// limited broadcast.
    #[inline]
    pub const fn is_martian_destination(a: u32) -> bool {
        let top = a >> 24;
        top == 0 || top == 127 || top >= 224
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICMP echo request 192.168.0.1 -> 192.168.0.199, captured header with a valid checksum.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x9c, 0x82, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet() -> Vec<u8> {
        let mut v = HDR.to_vec();
        v.extend_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn parse_fixture() {
        let buf = packet();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.src_addr(), Ipv4Address::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Address::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn checks_per_rfc1812() {
        let buf = packet();
        assert_eq!(
            Packet::new_checked(&buf[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut v6 = buf.clone();
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::Malformed);
        let mut ihl4 = buf.clone();
        ihl4[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl4[..]).unwrap_err(),
            Error::Malformed
        );
        let mut long = buf.clone();
        long[3] = 29; // total length beyond the buffer
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::Truncated
        );
        let mut short = buf.clone();
        short[3] = 19; // total length below the header length
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::Malformed
        );
        let mut bad = buf.clone();
        bad[11] ^= 1;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap_err(), Error::Checksum);
    }

    #[test]
    fn trailing_padding_excluded_from_payload() {
        let mut buf = packet();
        buf.extend_from_slice(&[0; 18]); // Ethernet minimum-size padding
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn ttl_and_address_rewrites_keep_checksum_valid() {
        let mut buf = packet();
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        let old = p.rewrite_dst(0x0a00_0005);
        assert_eq!(old, 0xc0a8_00c7);
        p.rewrite_src(0xcb00_710a);
        assert!(p.verify_checksum());
        assert_eq!(p.dst_addr(), Ipv4Address::new(10, 0, 0, 5));
        // Cross-check with an independent parser.
        let (h, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.time_to_live, 63);
    }

    #[test]
    fn ttl_decrement_matches_rfc1624_update_for_every_ttl_and_checksum() {
        let mut buf = packet();
        for ttl in 1..=255u8 {
            for proto in [1u8, 6, 17, 0xff] {
                for csum in (0..=0xffffu32)
                    .step_by(251)
                    .chain([0, 0xffff, 0xfeff, 0x0100])
                {
                    let csum = csum as u16;
                    let mut p = Packet::new_unchecked(&mut buf[..]);
                    p.set_ttl(ttl);
                    p.set_protocol(proto);
                    p.set_checksum(csum);
                    p.decrement_ttl();
                    let old = u16::from_be_bytes([ttl, proto]);
                    let new = u16::from_be_bytes([ttl - 1, proto]);
                    assert_eq!(p.ttl(), ttl - 1);
                    assert_eq!(p.protocol(), proto);
                    assert_eq!(
                        p.checksum(),
                        checksum::update16(csum, old, new),
                        "ttl {ttl} proto {proto} checksum {csum:#06x}"
                    );
                }
            }
        }
    }

    #[test]
    fn repr_roundtrip_against_etherparse() {
        let r = Repr {
            src: Ipv4Address::new(203, 0, 113, 2),
            dst: Ipv4Address::new(10, 0, 0, 5),
            protocol: protocol::UDP,
            payload_len: 12,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            dscp_ecn: 0,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let (h, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, [203, 0, 113, 2]);
        assert_eq!(h.total_len, 32);
        assert!(h.dont_fragment);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn fragments() {
        let mut buf = packet();
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_flags_offset(false, true, 0);
        assert!(p.is_fragment() && p.more_frags() && p.frag_offset() == 0);
        p.set_flags_offset(false, false, 1480);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn martians() {
        assert!(class::is_martian_source(0x7f00_0001));
        assert!(class::is_martian_source(0));
        assert!(class::is_martian_source(0xe000_0001));
        assert!(class::is_martian_destination(0xffff_ffff));
        assert!(!class::is_martian_source(0x0a00_0001));
    }
}
