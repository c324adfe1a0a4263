//! Zero-copy views over packet bytes and owned representations for building packets.
//!
//! The two-layer pattern of smoltcp's `wire` module: a view `Packet<T: AsRef<[u8]>>` reads and
//! (with `AsMut`) writes fields in place, `new_checked` validates lengths once so accessors never
//! panic afterwards; a `Repr` is an owned, validated copy with `parse` and `emit`. The hot path
//! uses the views; builders (ARP requests, ICMP errors, tests) use the reprs.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod geneve;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;
pub mod vrrp;

use core::fmt;

/// Why bytes could not be read as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the header (or its own length fields) require.
    Truncated,
    /// A field holds a value the protocol does not allow.
    Malformed,
    /// A checksum does not verify.
    Checksum,
    /// A valid packet of a kind this code does not handle.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Checksum => "checksum error",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

pub use ethernet::EthernetAddress;
pub use ipv4::Ipv4Address;

// One range check per field (the slice), not one per byte.
#[inline(always)]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    let w = &b[at..at + 2];
    u16::from_be_bytes([w[0], w[1]])
}

#[inline(always)]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let w = &b[at..at + 4];
    u32::from_be_bytes([w[0], w[1], w[2], w[3]])
}

#[inline(always)]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
