//! VRRP version 3 advertisements over IPv4 (RFC 5798 section 5), IP protocol 112.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                        IPvX Address(es)                       |
//! ```
//!
//! The checksum covers the whole message and the IPv4 pseudo-header with protocol 112
//! (section 5.2.8), as keepalived and FRR compute it for IPv4.

use super::checksum;
use super::{Error, Result, get_u16, set_u16};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group advertisements go to (section 5.1.1.2).
pub const GROUP: [u8; 4] = [224, 0, 0, 18];
/// An advertisement's IP TTL; a receiver drops any other (section 5.1.1.3).
pub const TTL: u8 = 255;
pub const VERSION: u8 = 3;
/// Type 1, the only one (section 5.2.2).
pub const ADVERTISEMENT: u8 = 1;
/// Priority 0: the master is stopping; a backup takes over at once (section 5.2.4).
pub const PRIORITY_STOP: u8 = 0;
/// Priority 255: the router owns the addresses (section 5.2.4).
pub const PRIORITY_OWNER: u8 = 255;

mod field {
    pub const VERSION_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const MAX_ADVER_INT: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// The fixed part; the addresses follow, 4 bytes each.
pub const HEADER_LEN: usize = 8;

/// The virtual MAC of group `vrid` (section 7.3): 00-00-5E-00-01-{VRID}.
pub fn virtual_mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
}

/// A view of a VRRPv3 message (the IPv4 payload).
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

    /// The fixed part and as many addresses as its count says.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < self.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The message's length: the fixed part and its addresses.
    #[inline]
    pub fn len(&self) -> usize {
        HEADER_LEN + 4 * usize::from(self.addr_count())
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.addr_count() == 0
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_TYPE] >> 4
    }
    #[inline]
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_TYPE] & 0x0f
    }
    #[inline]
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }
    #[inline]
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    #[inline]
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }
    /// The advertisement interval in centiseconds (12 bits).
    #[inline]
    pub fn max_adver_int(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MAX_ADVER_INT) & 0x0fff
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Address `i` (below [`Packet::addr_count`]), host order.
    #[inline]
    pub fn addr(&self, i: usize) -> u32 {
        let at = HEADER_LEN + 4 * i;
        let b = &self.buffer.as_ref()[at..at + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn addrs(&self) -> impl Iterator<Item = u32> + '_ {
        (0..usize::from(self.addr_count())).map(|i| self.addr(i))
    }

    /// True when the checksum verifies over the message and the IPv4 pseudo-header.
    pub fn verify_checksum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let l = self.len();
        let acc = checksum::pseudo_header_sum(src, dst, PROTOCOL, l as u16);
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..l], acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_kind(&mut self, version: u8, kind: u8) {
        self.buffer.as_mut()[field::VERSION_TYPE] = (version << 4) | (kind & 0x0f);
    }
    pub fn set_vrid(&mut self, v: u8) {
        self.buffer.as_mut()[field::VRID] = v;
    }
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    pub fn set_addr_count(&mut self, v: u8) {
        self.buffer.as_mut()[field::COUNT] = v;
    }
    /// Centiseconds, 12 bits; the reserved bits are sent as zero.
    pub fn set_max_adver_int(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::MAX_ADVER_INT, v & 0x0fff);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_addr(&mut self, i: usize, a: u32) {
        let at = HEADER_LEN + 4 * i;
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&a.to_be_bytes());
    }
    /// Compute and store the checksum over the message and the IPv4 pseudo-header.
    pub fn fill_checksum(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let l = self.len();
        let acc = checksum::pseudo_header_sum(src, dst, PROTOCOL, l as u16);
        let c = !checksum::fold(checksum::sum(&self.buffer.as_ref()[..l], acc));
        self.set_checksum(c);
    }
}

/// An advertisement, parsed and checked: what a receiver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds.
    pub max_adver_int: u16,
    pub addr_count: u8,
}

impl Repr {
    /// Parse the message `p` received from `src` to `dst` with IP TTL `ttl`: version 3,
    /// type advertisement, TTL 255 (section 5.1.1.3), a VRID of 1 or more, a non-zero
    /// interval and a checksum that verifies (section 7.1).
    pub fn parse<T: AsRef<[u8]>>(
        p: &Packet<T>,
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
    ) -> Result<Repr> {
        p.check_len()?;
        if p.version() != VERSION || p.kind() != ADVERTISEMENT {
            return Err(Error::Unsupported);
        }
        if ttl != TTL || p.vrid() == 0 || p.max_adver_int() == 0 {
            return Err(Error::Malformed);
        }
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            vrid: p.vrid(),
            priority: p.priority(),
            max_adver_int: p.max_adver_int(),
            addr_count: p.addr_count(),
        })
    }

    /// Write an advertisement for `addrs` (at most 255) from `src` to `dst` into `buf`
    /// (at least [`HEADER_LEN`] + 4 per address); returns its length.
    pub fn emit(&self, addrs: &[u32], src: [u8; 4], dst: [u8; 4], buf: &mut [u8]) -> usize {
        let n = addrs.len().min(255);
        let mut p = Packet::new_unchecked(buf);
        p.set_version_kind(VERSION, ADVERTISEMENT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        p.set_addr_count(n as u8);
        p.set_max_adver_int(self.max_adver_int);
        for (i, a) in addrs.iter().take(n).enumerate() {
            p.set_addr(i, *a);
        }
        p.fill_checksum(src, dst);
        HEADER_LEN + 4 * n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An advertisement scapy (an independent implementation) builds: VRID 10, priority 200,
    /// 1 s, two addresses, from 203.0.113.2 to the group.
    const SCAPY: [u8; 16] = [
        0x31, 0x0a, 0xc8, 0x02, 0x00, 0x64, 0x71, 0xe1, 0xcb, 0x00, 0x71, 0x0a, 0xcb, 0x00, 0x71,
        0x0b,
    ];
    const SRC: [u8; 4] = [203, 0, 113, 2];

    #[test]
    fn parses_and_emits_what_scapy_does() {
        let p = Packet::new_checked(&SCAPY[..]).unwrap();
        let r = Repr::parse(&p, SRC, GROUP, TTL).unwrap();
        assert_eq!(
            r,
            Repr {
                vrid: 10,
                priority: 200,
                max_adver_int: 100,
                addr_count: 2
            }
        );
        assert_eq!(p.addrs().collect::<Vec<_>>(), [0xcb00_710a, 0xcb00_710b]);
        let mut out = [0u8; 16];
        assert_eq!(
            r.emit(&[0xcb00_710a, 0xcb00_710b], SRC, GROUP, &mut out),
            16
        );
        assert_eq!(out, SCAPY);
        assert_eq!(virtual_mac(10), [0, 0, 0x5e, 0, 1, 10]);
    }

    #[test]
    fn refuses_what_section_7_1_says_to_discard() {
        let p = Packet::new_checked(&SCAPY[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, SRC, GROUP, 254),
            Err(Error::Malformed),
            "TTL"
        );
        assert_eq!(
            Repr::parse(&p, [203, 0, 113, 3], GROUP, TTL),
            Err(Error::Checksum),
            "the pseudo-header counts"
        );
        let mut v2 = SCAPY;
        v2[0] = 0x21;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&v2[..]), SRC, GROUP, TTL),
            Err(Error::Unsupported)
        );
        let mut bad = SCAPY;
        bad[15] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..]), SRC, GROUP, TTL),
            Err(Error::Checksum)
        );
        // Fewer address bytes than the count says.
        assert_eq!(
            Packet::new_checked(&SCAPY[..12]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&SCAPY[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
