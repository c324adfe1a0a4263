//! ICMP for IPv4 (RFC 792), with the fragmentation-needed MTU field of RFC 1191 section 4.

use super::checksum;
use super::{Error, Result, get_u16, set_u16};

/// Message types vgate sends or answers.
pub mod msg {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Destination-unreachable codes (RFC 792, RFC 1812 section 5.2.7.1).
pub mod unreach {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
}

/// ICMP types that report errors (RFC 1122 section 3.2.2): no error is ever sent about one.
#[inline]
pub fn is_error_type(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the fixed ICMP header.
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP message.
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
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier (RFC 792 echo / echo reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191 section 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }
    /// The data after the 8-byte header (echo data, or the quoted datagram of an error).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// The checksum covers the whole message (RFC 792).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }
    /// The 4 bytes after the checksum: unused/zero for most errors, the next-hop MTU in the
    /// low half for fragmentation needed (RFC 1191 section 4).
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Recompute the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
    /// Turn an echo request into its reply in place: only the type changes, so the checksum is
    /// patched incrementally (RFC 1624).
    #[inline]
    pub fn echo_request_to_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = msg::ECHO_REPLY;
        let new = get_u16(b, field::TYPE);
        self.patch_checksum16(old, new);
    }
    /// Patch the checksum for one 16-bit word changed from `old` to `new` (RFC 1624 eqn. 3).
    ///
    /// ICMP has no pseudo-header, so the message can be all zeros (an echo reply with
    /// identifier, sequence and data all zero). Its checksum must then be 0xffff, the only
    /// value that verifies, while eqn. 3 yields 0x0000 (RFC 1624 section 3). Whenever eqn. 3
    /// gives 0x0000 the other words sum to zero in one's complement, so 0xffff verifies as
    /// well: it is always the value written.
    #[inline]
    pub fn patch_checksum16(&mut self, old: u16, new: u16) {
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Vec<u8> {
        let mut v = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c'];
        let c = checksum::checksum(&v);
        v[2..4].copy_from_slice(&c.to_be_bytes());
        v
    }

    #[test]
    fn parse_echo() {
        let b = echo();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), msg::ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.payload(), b"abc");
        assert!(p.verify_checksum());
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn echo_reply_in_place_matches_etherparse() {
        let mut b = echo();
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.echo_request_to_reply();
        assert!(p.verify_checksum());
        let e = etherparse::Icmpv4Slice::from_slice(&b).unwrap();
        assert!(
            matches!(e.icmp_type(), etherparse::Icmpv4Type::EchoReply(h) if h.id == 0x1234 && h.seq == 1)
        );
        let computed = e.icmp_type().calc_checksum(e.payload());
        assert_eq!(computed, e.checksum());
    }

    #[test]
    fn frag_needed_mtu() {
        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg::DEST_UNREACHABLE);
        p.set_msg_code(unreach::FRAG_NEEDED);
        p.set_rest_of_header(1450);
        p.fill_checksum();
        assert_eq!(p.next_hop_mtu(), 1450);
        assert!(p.verify_checksum());
        assert!(is_error_type(msg::DEST_UNREACHABLE));
        assert!(!is_error_type(msg::ECHO_REQUEST));
    }
}
