//! ARP for IPv4 over Ethernet (RFC 826), including announcements (RFC 5227 section 3).

use super::ethernet::EthernetAddress;
use super::ipv4::Ipv4Address;
use super::{Error, Result, get_u16, get_u32, set_u16, set_u32};

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

pub const HTYPE_ETHERNET: u16 = 1;
pub const PTYPE_IPV4: u16 = 0x0800;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
}

impl Operation {
    fn code(self) -> u16 {
        match self {
            Operation::Request => 1,
            Operation::Reply => 2,
        }
    }
}

/// A view of an ARP packet.
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
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn htype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }
    #[inline]
    pub fn ptype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    #[inline]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    #[inline]
    pub fn oper(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    #[inline]
    pub fn sender_hw(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA..])
    }
    #[inline]
    pub fn sender_ip(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SPA)
    }
    #[inline]
    pub fn target_hw(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA..])
    }
    #[inline]
    pub fn target_ip(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::TPA)
    }

    /// Ethernet/IPv4 ARP with a known operation (RFC 826 "packet reception").
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == PTYPE_IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }

    #[inline]
    pub fn operation(&self) -> Option<Operation> {
        match self.oper() {
            1 => Some(Operation::Request),
            2 => Some(Operation::Reply),
            _ => None,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_oper(&mut self, op: Operation) {
        set_u16(self.buffer.as_mut(), field::OPER, op.code());
    }
    #[inline]
    pub fn set_sender(&mut self, hw: EthernetAddress, ip: u32) {
        let b = self.buffer.as_mut();
        b[field::SHA..field::SHA + 6].copy_from_slice(&hw.0);
        set_u32(b, field::SPA, ip);
    }
    #[inline]
    pub fn set_target(&mut self, hw: EthernetAddress, ip: u32) {
        let b = self.buffer.as_mut();
        b[field::THA..field::THA + 6].copy_from_slice(&hw.0);
        set_u32(b, field::TPA, ip);
    }

    /// Turn a request into the reply for `answer_hw` in place (RFC 826: swap sender and target,
    /// put the answer in the sender fields, set the opcode to reply).
    #[inline]
    pub fn make_reply(&mut self, answer_hw: EthernetAddress) {
        let (req_hw, req_ip, tgt_ip) = (self.sender_hw(), self.sender_ip(), self.target_ip());
        self.set_oper(Operation::Reply);
        self.set_target(req_hw, req_ip);
        self.set_sender(answer_hw, tgt_ip);
    }
}

/// An Ethernet/IPv4 ARP packet, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_hw: EthernetAddress,
    pub sender_ip: Ipv4Address,
    pub target_hw: EthernetAddress,
    pub target_ip: Ipv4Address,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation: p.operation().ok_or(Error::Malformed)?,
            sender_hw: p.sender_hw(),
            sender_ip: Ipv4Address::from_bits(p.sender_ip()),
            target_hw: p.target_hw(),
            target_ip: Ipv4Address::from_bits(p.target_ip()),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        set_u16(b, field::HTYPE, HTYPE_ETHERNET);
        set_u16(b, field::PTYPE, PTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        p.set_oper(self.operation);
        p.set_sender(self.sender_hw, self.sender_ip.to_bits());
        p.set_target(self.target_hw, self.target_ip.to_bits());
    }

    /// An ARP announcement (RFC 5227 section 3): a request whose sender and target protocol
    /// addresses are both the announced address and whose target hardware address is zero.
    pub fn announcement(hw: EthernetAddress, ip: Ipv4Address) -> Repr {
        Repr {
            operation: Operation::Request,
            sender_hw: hw,
            sender_ip: ip,
            target_hw: EthernetAddress::ZERO,
            target_ip: ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 10.0.0.1 tell 10.0.0.2, from 02:00:00:00:00:02
    const REQ: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQ[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.sender_hw, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(r.sender_ip, Ipv4Address::new(10, 0, 0, 2));
        assert_eq!(r.target_ip, Ipv4Address::new(10, 0, 0, 1));
        let e = etherparse::ArpPacketSlice::from_slice(&REQ).unwrap();
        assert_eq!(e.sender_protocol_addr(), &[10, 0, 0, 2]);
    }

    #[test]
    fn reject_bad() {
        assert_eq!(
            Packet::new_checked(&REQ[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut b = REQ;
        b[5] = 16; // IPv6-sized protocol address
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
        let mut b = REQ;
        b[7] = 9;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn reply_in_place() {
        let mut b = REQ;
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        Packet::new_unchecked(&mut b[..]).make_reply(mac);
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::Reply);
        assert_eq!(r.sender_hw, mac);
        assert_eq!(r.sender_ip, Ipv4Address::new(10, 0, 0, 1));
        assert_eq!(r.target_hw, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(r.target_ip, Ipv4Address::new(10, 0, 0, 2));
    }

    #[test]
    fn announcement_shape() {
        let a = Repr::announcement(
            EthernetAddress([2, 0, 0, 0, 0, 9]),
            Ipv4Address::new(203, 0, 113, 10),
        );
        let mut b = [0u8; 28];
        a.emit(&mut Packet::new_unchecked(&mut b[..]));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.oper(), 1);
        assert_eq!(p.sender_ip(), p.target_ip());
        assert_eq!(p.target_hw(), EthernetAddress::ZERO);
    }
}
