//! TCP headers (RFC 9293), as far as a router and NAT need them.

use super::checksum;
use super::{Error, Result, get_u16, get_u32, set_u16};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const CHECKSUM: usize = 16;
}

pub const HEADER_LEN: usize = 20;

/// Option kinds (RFC 9293 section 3.2).
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
}

/// Flag bits (RFC 9293 section 3.1).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let h = self.header_len();
        if h < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if h > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    #[inline]
    pub fn seq(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }
    #[inline]
    pub fn ack(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::OFF_FLAGS + 1]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Verify against the IPv4 pseudo-header; `self` must span exactly the segment.
    pub fn verify_checksum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_sum(src, dst, 6, b.len() as u16);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Patch the checksum for a 16-bit change (RFC 1624).
    #[inline]
    pub fn patch_checksum16(&mut self, old: u16, new: u16) {
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }
    /// Patch the checksum for a pseudo-header address change (RFC 1624).
    #[inline]
    pub fn patch_checksum32(&mut self, old: u32, new: u32) {
        let c = checksum::update32(self.checksum(), old, new);
        self.set_checksum(c);
    }
    /// Lower the maximum segment size option (RFC 9293 section 3.7.1) of a SYN to `max`
    /// when it announces more, patching the checksum (RFC 1624). Returns the MSS it had
    /// when it was lowered; `None` when there was no SYN, no MSS option above `max`, or the
    /// options were malformed (left untouched: the endpoint's own stack will judge them).
    /// `self` must have passed [`Packet::check_len`].
    pub fn clamp_mss(&mut self, max: u16) -> Option<u16> {
        if self.flags() & flags::SYN == 0 {
            return None;
        }
        let hl = self.header_len();
        let at = {
            let opts = &self.buffer.as_ref()[HEADER_LEN..hl];
            let mut k = 0;
            loop {
                match *opts.get(k)? {
                    option::END => return None,
                    option::NOP => k += 1,
                    kind => {
                        let len = usize::from(*opts.get(k + 1)?);
                        if len < 2 || k + len > opts.len() {
                            return None;
                        }
                        if kind == option::MSS {
                            if len != 4 {
                                return None;
                            }
                            break HEADER_LEN + k + 2;
                        }
                        k += len;
                    }
                }
            }
        };
        let old = get_u16(self.buffer.as_ref(), at);
        if old <= max {
            return None;
        }
        set_u16(self.buffer.as_mut(), at, max);
        // RFC 1071 section 2(B): a 16-bit field at an odd offset adds to the sum byte-swapped.
        let (o, n) = if at % 2 == 0 {
            (old, max)
        } else {
            (old.swap_bytes(), max.swap_bytes())
        };
        self.patch_checksum16(o, n);
        Some(old)
    }

    /// Compute the checksum from scratch; `self` must span exactly the segment.
    pub fn fill_checksum(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_sum(src, dst, 6, b.len() as u16);
        let c = !checksum::fold(checksum::sum(b, acc));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn() -> Vec<u8> {
        let h = etherparse::TcpHeader::new(40000, 80, 1000, 64240);
        let mut h = h;
        h.syn = true;
        let src = [10, 0, 0, 5];
        let dst = [203, 0, 113, 1];
        h.checksum = h.calc_checksum_ipv4_raw(src, dst, &[]).unwrap();
        h.to_bytes().to_vec()
    }

    #[test]
    fn parse_and_verify() {
        let b = syn();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1000);
        assert_eq!(p.flags() & flags::SYN, flags::SYN);
        assert!(p.verify_checksum([10, 0, 0, 5], [203, 0, 113, 1]));
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn incremental_nat_rewrite() {
        let mut b = syn();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(2048);
        p.patch_checksum16(40000, 2048);
        p.patch_checksum32(0x0a00_0005, 0xcb00_7102);
        assert!(p.verify_checksum([203, 0, 113, 2], [203, 0, 113, 1]));
        let mut q = Packet::new_unchecked(&mut b[..]);
        let before = q.checksum();
        q.fill_checksum([203, 0, 113, 2], [203, 0, 113, 1]);
        assert_eq!(q.checksum(), before);
    }

    /// A SYN with `options` and `payload`, checksummed by etherparse.
    fn syn_with(options: &[etherparse::TcpOptionElement], payload: &[u8], syn: bool) -> Vec<u8> {
        let mut h = etherparse::TcpHeader::new(40000, 80, 1000, 64240);
        h.syn = syn;
        h.ack = !syn;
        h.set_options(options).unwrap();
        let (src, dst) = ([10, 0, 0, 5], [203, 0, 113, 1]);
        h.checksum = h.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(payload);
        b
    }

    fn mss_of(b: &[u8]) -> Option<u16> {
        let h = etherparse::TcpHeaderSlice::from_slice(b).unwrap();
        h.options_iterator().find_map(|o| match o {
            Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
    }

    #[test]
    fn clamp_mss_at_even_and_odd_offsets() {
        use etherparse::TcpOptionElement::*;
        let cases: [&[etherparse::TcpOptionElement]; 3] = [
            &[MaximumSegmentSize(1460), SelectiveAcknowledgementPermitted],
            &[Noop, MaximumSegmentSize(1460), Noop, Noop, Noop],
            &[
                Noop,
                Noop,
                Noop,
                WindowScale(7),
                Noop,
                MaximumSegmentSize(8960),
            ],
        ];
        for (n, opts) in cases.into_iter().enumerate() {
            // An odd payload length pads the last byte in the checksum: still right.
            for payload in [&b""[..], b"abc"] {
                let mut b = syn_with(opts, payload, true);
                let was = mss_of(&b).unwrap();
                let mut p = Packet::new_checked(&mut b[..]).unwrap();
                assert_eq!(p.clamp_mss(1410), Some(was), "case {n}");
                assert!(
                    p.verify_checksum([10, 0, 0, 5], [203, 0, 113, 1]),
                    "case {n}"
                );
                assert_eq!(mss_of(&b), Some(1410), "case {n}");
            }
        }
    }

    #[test]
    fn clamp_mss_leaves_the_rest_alone() {
        use etherparse::TcpOptionElement::*;
        // Already small enough, not a SYN, no MSS option: unchanged bytes.
        for b in [
            syn_with(&[MaximumSegmentSize(1200)], b"", true),
            syn_with(&[MaximumSegmentSize(1460)], b"", false),
            syn_with(&[Noop, WindowScale(7)], b"", true),
        ] {
            let mut c = b.clone();
            assert_eq!(
                Packet::new_checked(&mut c[..]).unwrap().clamp_mss(1410),
                None
            );
            assert_eq!(c, b);
        }
        // Malformed options (a length of 0, a length past the header, an MSS of length 3)
        // are not touched.
        let base = syn_with(&[MaximumSegmentSize(1460)], b"", true);
        for (at, v) in [(21, 0u8), (21, 9), (21, 3)] {
            let mut c = base.clone();
            c[at] = v;
            let keep = c.clone();
            assert_eq!(
                Packet::new_checked(&mut c[..]).unwrap().clamp_mss(1410),
                None
            );
            assert_eq!(c, keep);
        }
    }
}
