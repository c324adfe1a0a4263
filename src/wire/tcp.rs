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
}
