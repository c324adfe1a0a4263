//! UDP headers (RFC 768).

use super::checksum;
use super::{Error, Result, get_u16, set_u16};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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

    /// At least a header, and a length field between 8 and the bytes present.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > b.len() {
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
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Verify against the IPv4 pseudo-header; a zero checksum means "none" (RFC 768).
    pub fn verify_checksum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let l = self.len();
        let acc = checksum::pseudo_header_sum(src, dst, 17, l);
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..l as usize], acc)) == 0xffff
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
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
    /// Compute and store the checksum over the pseudo-header; a computed 0 is sent as 0xffff
    /// (RFC 768).
    pub fn fill_checksum(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let l = self.len();
        let acc = checksum::pseudo_header_sum(src, dst, 17, l);
        let c = !checksum::fold(checksum::sum(&self.buffer.as_ref()[..l as usize], acc));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Patch the checksum for a 16-bit change (a port); "no checksum" stays 0 (RFC 768).
    #[inline]
    pub fn patch_checksum16(&mut self, old: u16, new: u16) {
        let c = self.checksum();
        if c != 0 {
            let n = checksum::update16(c, old, new);
            self.set_checksum(if n == 0 { 0xffff } else { n });
        }
    }
    /// Patch the checksum for a 32-bit pseudo-header change (an address).
    #[inline]
    pub fn patch_checksum32(&mut self, old: u32, new: u32) {
        let c = self.checksum();
        if c != 0 {
            let n = checksum::update32(c, old, new);
            self.set_checksum(if n == 0 { 0xffff } else { n });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_against_etherparse() {
        let payload = b"hello vgate";
        let src = [10, 0, 0, 5];
        let dst = [203, 0, 113, 1];
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(40000);
        p.set_dst_port(53);
        p.set_len((HEADER_LEN + payload.len()) as u16);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        let h = etherparse::UdpHeader::from_slice(&b).unwrap().0;
        let expect = h.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
        assert_eq!(h.checksum, expect);

        // Port and address rewrites patched incrementally stay valid.
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1024);
        p.patch_checksum16(40000, 1024);
        p.patch_checksum32(u32::from_be_bytes(src), 0xcb00_7102);
        assert!(p.verify_checksum([203, 0, 113, 2], dst));
    }

    #[test]
    fn bad_lengths() {
        let b = [0, 1, 0, 2, 0, 7, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let b = [0, 1, 0, 2, 0, 9, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut b = [0, 1, 0, 2, 0, 8, 0, 0];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.patch_checksum16(1, 2);
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum([1, 1, 1, 1], [2, 2, 2, 2]));
    }
}
