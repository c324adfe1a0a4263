//! Neighbor Discovery for IPv6 (RFC 4861): the router and neighbor messages, their options,
//! the receive checks of sections 6.1 and 7.1, and builders for what a router sends.
//!
//! Every message is an ICMPv6 message ([`icmpv6`]) with a fixed part after the 4-byte
//! ICMPv6 header and then options, each a type byte, a length byte in units of 8 bytes and
//! data (section 4.6):
//!
//! ```text
//! Router Solicitation (133)   | Reserved (4)                                  | options
//! Router Advertisement (134)  | Cur Hop Limit |M|O|Prf| | Router Lifetime (2)
//!                             | Reachable Time (4) | Retrans Timer (4)        | options
//! Neighbor Solicitation (135) | Reserved (4) | Target Address (16)            | options
//! Neighbor Advertisement (136)|R|S|O| Reserved (29 bits) | Target Address (16)| options
//! ```
//!
//! The views are over the whole ICMPv6 message; checksums go through [`icmpv6::Packet`].

use super::ethernet::EthernetAddress;
use super::icmpv6::{self, msg};
use super::ipv6::{Ipv6Address, class};
use super::{Error, Result, get_u16, get_u32, set_u16, set_u32};

/// The IPv6 hop limit of every Neighbor Discovery message. A receiver drops any other: 255
/// proves the message was not forwarded by a router (RFC 4861 sections 6.1 and 7.1).
pub const HOP_LIMIT: u8 = 255;

/// Option types (RFC 4861 section 4.6, RFC 8106 section 5.1).
pub mod option_type {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const RDNSS: u8 = 25;
}

/// Length of a Router Solicitation without options (RFC 4861 section 4.1).
pub const RS_LEN: usize = 8;
/// Length of a Router Advertisement without options (RFC 4861 section 4.2).
pub const RA_LEN: usize = 16;
/// Length of a Neighbor Solicitation without options (RFC 4861 section 4.3).
pub const NS_LEN: usize = 24;
/// Length of a Neighbor Advertisement without options (RFC 4861 section 4.4).
pub const NA_LEN: usize = 24;
/// Length of a Redirect without options (RFC 4861 section 4.5).
pub const REDIRECT_LEN: usize = 40;

/// The length of a message of type `t` without options, for the Neighbor Discovery types.
pub const fn min_len(t: u8) -> Option<usize> {
    match t {
        msg::ROUTER_SOLICIT => Some(RS_LEN),
        msg::ROUTER_ADVERT => Some(RA_LEN),
        msg::NEIGHBOR_SOLICIT => Some(NS_LEN),
        msg::NEIGHBOR_ADVERT => Some(NA_LEN),
        msg::REDIRECT => Some(REDIRECT_LEN),
        _ => None,
    }
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Reserved in RS and NS, the flags in NA.
    pub const RESERVED: usize = 4;
    pub const NA_FLAGS: usize = 4;
    pub const TARGET: Range<usize> = 8..24;
    pub const RA_CUR_HOP_LIMIT: usize = 4;
    pub const RA_FLAGS: usize = 5;
    pub const RA_ROUTER_LIFETIME: usize = 6;
    pub const RA_REACHABLE_TIME: usize = 8;
    pub const RA_RETRANS_TIMER: usize = 12;
}

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
const RA_MANAGED: u8 = 0x80;
const RA_OTHER: u8 = 0x40;
/// Default Router Preference (RFC 4191 section 2.2).
const RA_PRF_MASK: u8 = 0x18;
const RA_PRF_SHIFT: u32 = 3;
const PI_ON_LINK: u8 = 0x80;
const PI_AUTONOMOUS: u8 = 0x40;

/// `min` bytes or more of type `t`: the check of every view.
fn check(b: &[u8], t: u8, min: usize) -> Result<()> {
    if b.len() < min {
        return Err(Error::Truncated);
    }
    if b[field::TYPE] != t {
        return Err(Error::Unsupported);
    }
    Ok(())
}

fn read_addr(b: &[u8]) -> Ipv6Address {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Address::from(a)
}

/// A view of a Router Solicitation.
#[derive(Debug, Clone)]
pub struct RouterSolicit<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RouterSolicit<T> {
    pub const fn new_unchecked(buffer: T) -> RouterSolicit<T> {
        RouterSolicit { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<RouterSolicit<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Type 133 and the fixed part present.
    pub fn check_len(&self) -> Result<()> {
        check(self.buffer.as_ref(), msg::ROUTER_SOLICIT, RS_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[RS_LEN..]
    }

    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }
}

/// A view of a Router Advertisement.
#[derive(Debug, Clone)]
pub struct RouterAdvert<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RouterAdvert<T> {
    pub const fn new_unchecked(buffer: T) -> RouterAdvert<T> {
        RouterAdvert { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<RouterAdvert<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Type 134 and the fixed part present.
    pub fn check_len(&self) -> Result<()> {
        check(self.buffer.as_ref(), msg::ROUTER_ADVERT, RA_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The hop limit hosts should use; 0 leaves it to them.
    #[inline]
    pub fn cur_hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::RA_CUR_HOP_LIMIT]
    }
    /// M: addresses are available through DHCPv6.
    #[inline]
    pub fn managed_flag(&self) -> bool {
        self.buffer.as_ref()[field::RA_FLAGS] & RA_MANAGED != 0
    }
    /// O: other configuration is available through DHCPv6.
    #[inline]
    pub fn other_flag(&self) -> bool {
        self.buffer.as_ref()[field::RA_FLAGS] & RA_OTHER != 0
    }
    /// Default Router Preference, 2 bits: 1 high, 0 medium, 3 low, 2 reserved (RFC 4191
    /// section 2.2).
    #[inline]
    pub fn router_preference(&self) -> u8 {
        (self.buffer.as_ref()[field::RA_FLAGS] & RA_PRF_MASK) >> RA_PRF_SHIFT
    }
    /// Seconds as a default router; 0: not a default router.
    #[inline]
    pub fn router_lifetime(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::RA_ROUTER_LIFETIME)
    }
    /// Milliseconds; 0: unspecified.
    #[inline]
    pub fn reachable_time(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::RA_REACHABLE_TIME)
    }
    /// Milliseconds; 0: unspecified.
    #[inline]
    pub fn retrans_timer(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::RA_RETRANS_TIMER)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[RA_LEN..]
    }

    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RouterAdvert<T> {
    #[inline]
    pub fn set_cur_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::RA_CUR_HOP_LIMIT] = v;
    }
    /// Set M and O; the preference and reserved bits are sent as zero (medium preference,
    /// RFC 4191 section 2.2).
    #[inline]
    pub fn set_flags(&mut self, managed: bool, other: bool) {
        let mut f = 0;
        if managed {
            f |= RA_MANAGED;
        }
        if other {
            f |= RA_OTHER;
        }
        self.buffer.as_mut()[field::RA_FLAGS] = f;
    }
    #[inline]
    pub fn set_router_lifetime(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::RA_ROUTER_LIFETIME, v);
    }
    #[inline]
    pub fn set_reachable_time(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::RA_REACHABLE_TIME, v);
    }
    #[inline]
    pub fn set_retrans_timer(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::RA_RETRANS_TIMER, v);
    }
}

/// A view of a Neighbor Solicitation.
#[derive(Debug, Clone)]
pub struct NeighborSolicit<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborSolicit<T> {
    pub const fn new_unchecked(buffer: T) -> NeighborSolicit<T> {
        NeighborSolicit { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<NeighborSolicit<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Type 135 and the fixed part present.
    pub fn check_len(&self) -> Result<()> {
        check(self.buffer.as_ref(), msg::NEIGHBOR_SOLICIT, NS_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The address whose link-layer address is asked for.
    #[inline]
    pub fn target(&self) -> Ipv6Address {
        read_addr(&self.buffer.as_ref()[field::TARGET])
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[NS_LEN..]
    }

    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NeighborSolicit<T> {
    #[inline]
    pub fn set_target(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a.octets());
    }
}

/// A view of a Neighbor Advertisement.
#[derive(Debug, Clone)]
pub struct NeighborAdvert<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborAdvert<T> {
    pub const fn new_unchecked(buffer: T) -> NeighborAdvert<T> {
        NeighborAdvert { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<NeighborAdvert<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Type 136 and the fixed part present.
    pub fn check_len(&self) -> Result<()> {
        check(self.buffer.as_ref(), msg::NEIGHBOR_ADVERT, NA_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// R: the sender is a router.
    #[inline]
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }
    /// S: sent in answer to a Neighbor Solicitation.
    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }
    /// O: replace a cached link-layer address.
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }
    /// The address the advertisement is about.
    #[inline]
    pub fn target(&self) -> Ipv6Address {
        read_addr(&self.buffer.as_ref()[field::TARGET])
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[NA_LEN..]
    }

    pub fn options_iter(&self) -> Options<'_> {
        Options::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NeighborAdvert<T> {
    /// Set R, S and O; the 29 reserved bits are sent as zero.
    #[inline]
    pub fn set_flags(&mut self, router: bool, solicited: bool, override_flag: bool) {
        let mut f = 0;
        if router {
            f |= NA_ROUTER;
        }
        if solicited {
            f |= NA_SOLICITED;
        }
        if override_flag {
            f |= NA_OVERRIDE;
        }
        set_u32(self.buffer.as_mut(), field::NA_FLAGS, u32::from(f) << 24);
    }
    #[inline]
    pub fn set_target(&mut self, a: Ipv6Address) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a.octets());
    }
}

/// One option: its bytes, type and length included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdOption<'a> {
    bytes: &'a [u8],
}

impl<'a> NdOption<'a> {
    #[inline]
    pub fn kind(&self) -> u8 {
        self.bytes[0]
    }
    /// Length in bytes (8 per unit of the length field).
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never: the iterator ends at a zero length.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// The bytes after type and length.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[2..]
    }
    /// The whole option.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The address of a Source or Target Link-Layer Address option: on Ethernet, length 1
    /// and a 6-byte MAC (RFC 4861 section 4.6.1, RFC 2464 section 8). `None` for any other
    /// option or length.
    pub fn link_layer_addr(&self) -> Option<EthernetAddress> {
        match self.kind() {
            option_type::SOURCE_LL_ADDR | option_type::TARGET_LL_ADDR if self.len() == 8 => {
                Some(EthernetAddress::from_bytes(&self.bytes[2..]))
            }
            _ => None,
        }
    }

    /// A Prefix Information option, length 4 (RFC 4861 section 4.6.2); `None` for any other
    /// option or length, which a receiver ignores.
    pub fn prefix_info(&self) -> Option<PrefixInfo> {
        if self.kind() != option_type::PREFIX_INFO || self.len() != PrefixInfo::LEN {
            return None;
        }
        let b = self.bytes;
        Some(PrefixInfo {
            prefix_len: b[2],
            on_link: b[3] & PI_ON_LINK != 0,
            autonomous: b[3] & PI_AUTONOMOUS != 0,
            valid_lifetime: get_u32(b, 4),
            preferred_lifetime: get_u32(b, 8),
            prefix: read_addr(&b[16..]),
        })
    }

    /// The MTU of an MTU option, length 1 (RFC 4861 section 4.6.4).
    pub fn mtu(&self) -> Option<u32> {
        if self.kind() == option_type::MTU && self.len() == MTU_OPTION_LEN {
            Some(get_u32(self.bytes, 4))
        } else {
            None
        }
    }

    /// A Recursive DNS Server option: length 3 or more and odd, 8 bytes and 16 per address
    /// (RFC 8106 section 5.1); `None` for any other option or length.
    pub fn rdnss(&self) -> Option<Rdnss<'a>> {
        let units = self.len() / 8;
        if self.kind() == option_type::RDNSS && units >= 3 && units % 2 == 1 {
            Some(Rdnss { bytes: self.bytes })
        } else {
            None
        }
    }
}

/// Iterator over options: each one, or one error (then nothing) when an option has length
/// 0 ([`Error::Malformed`], RFC 4861 section 4.6: the receiver drops the message) or runs
/// past the end ([`Error::Truncated`]).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Options in `bytes`, everything after a message's fixed part.
    pub const fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let Some(&units) = rest.get(1) else {
            return Some(Err(Error::Truncated));
        };
        if units == 0 {
            return Some(Err(Error::Malformed));
        }
        let len = usize::from(units) * 8;
        let Some(bytes) = rest.get(..len) else {
            return Some(Err(Error::Truncated));
        };
        self.rest = &rest[len..];
        Some(Ok(NdOption { bytes }))
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// A Prefix Information option (RFC 4861 section 4.6.2), owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    /// Leading bits of `prefix` that are valid, 0 to 128.
    pub prefix_len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: hosts may form addresses in it (RFC 4862).
    pub autonomous: bool,
    /// Seconds; 0xffffffff is infinity.
    pub valid_lifetime: u32,
    /// Seconds; 0xffffffff is infinity.
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Address,
}

impl PrefixInfo {
    /// Length of the option: 4 units.
    pub const LEN: usize = 32;

    fn emit(&self, b: &mut [u8]) {
        b[0] = option_type::PREFIX_INFO;
        b[1] = (Self::LEN / 8) as u8;
        b[2] = self.prefix_len;
        let mut f = 0;
        if self.on_link {
            f |= PI_ON_LINK;
        }
        if self.autonomous {
            f |= PI_AUTONOMOUS;
        }
        b[3] = f;
        set_u32(b, 4, self.valid_lifetime);
        set_u32(b, 8, self.preferred_lifetime);
        set_u32(b, 12, 0);
        b[16..32].copy_from_slice(&self.prefix.octets());
    }
}

/// A view of a Recursive DNS Server option (RFC 8106 section 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rdnss<'a> {
    bytes: &'a [u8],
}

impl<'a> Rdnss<'a> {
    /// Seconds the servers may be used; 0xffffffff is infinity, 0 withdraws them.
    #[inline]
    pub fn lifetime(&self) -> u32 {
        get_u32(self.bytes, 4)
    }
    /// The servers' addresses.
    pub fn addresses(&self) -> impl ExactSizeIterator<Item = Ipv6Address> + 'a {
        let b: &'a [u8] = self.bytes;
        let (addrs, _) = b[8..].as_chunks::<16>();
        addrs.iter().map(|a| Ipv6Address::from(*a))
    }
}

/// The most servers an RDNSS option holds: its length byte is 1 + 2 per server.
pub const MAX_RDNSS_SERVERS: usize = 127;

/// A Recursive DNS Server option to send (RFC 8106 section 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdnssRepr<'a> {
    /// Seconds.
    pub lifetime: u32,
    /// 1 to [`MAX_RDNSS_SERVERS`] addresses.
    pub servers: &'a [Ipv6Address],
}

impl RdnssRepr<'_> {
    pub const fn buffer_len(&self) -> usize {
        8 + 16 * self.servers.len()
    }

    fn emit(&self, b: &mut [u8]) {
        debug_assert!(
            (1..=MAX_RDNSS_SERVERS).contains(&self.servers.len()),
            "{} RDNSS servers",
            self.servers.len()
        );
        b[0] = option_type::RDNSS;
        b[1] = (self.buffer_len() / 8) as u8;
        set_u16(b, 2, 0);
        set_u32(b, 4, self.lifetime);
        for (i, a) in self.servers.iter().enumerate() {
            b[8 + 16 * i..24 + 16 * i].copy_from_slice(&a.octets());
        }
    }
}

/// Length of a link-layer address option on Ethernet.
pub const LL_OPTION_LEN: usize = 8;
/// Length of an MTU option.
pub const MTU_OPTION_LEN: usize = 8;

fn emit_ll_option(kind: u8, mac: EthernetAddress, b: &mut [u8]) {
    b[0] = kind;
    b[1] = 1;
    b[2..8].copy_from_slice(&mac.0);
}

/// The fixed ICMPv6 header fields of every message: code 0 and a zero checksum to fill.
fn emit_icmp_header(t: u8, b: &mut [u8]) {
    b[field::TYPE] = t;
    b[field::CODE] = 0;
    set_u16(b, field::CHECKSUM, 0);
}

fn fill_checksum(src: Ipv6Address, dst: Ipv6Address, b: &mut [u8]) {
    icmpv6::Packet::new_unchecked(b).fill_checksum(src, dst);
}

/// The first option of type `kind` with an Ethernet address, after checking every option.
fn find_ll_addr(options: Options<'_>, kind: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    for o in options {
        let o = o?;
        if o.kind() == kind && found.is_none() {
            found = o.link_layer_addr();
        }
    }
    Ok(found)
}

/// A Neighbor Solicitation, owned: address resolution and unreachability detection with
/// the sender's link-layer address, duplicate address detection without (RFC 4861 section
/// 7.2.2, RFC 4862 section 5.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitRepr {
    pub target: Ipv6Address,
    pub source_ll: Option<EthernetAddress>,
}

impl NeighborSolicitRepr {
    /// The target and the first Source Link-Layer Address option; a malformed option list
    /// is an error.
    pub fn parse<T: AsRef<[u8]>>(p: &NeighborSolicit<T>) -> Result<NeighborSolicitRepr> {
        p.check_len()?;
        Ok(NeighborSolicitRepr {
            target: p.target(),
            source_ll: find_ll_addr(p.options_iter(), option_type::SOURCE_LL_ADDR)?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        match self.source_ll {
            Some(_) => NS_LEN + LL_OPTION_LEN,
            None => NS_LEN,
        }
    }

    /// Write the message from `src` to `dst` into `buf` (at least [`Self::buffer_len`]
    /// bytes), checksum included; returns its length.
    pub fn emit(&self, src: Ipv6Address, dst: Ipv6Address, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        emit_icmp_header(msg::NEIGHBOR_SOLICIT, b);
        set_u32(b, field::RESERVED, 0);
        NeighborSolicit::new_unchecked(&mut *b).set_target(self.target);
        if let Some(mac) = self.source_ll {
            emit_ll_option(option_type::SOURCE_LL_ADDR, mac, &mut b[NS_LEN..]);
        }
        fill_checksum(src, dst, b);
        len
    }
}

/// A Neighbor Advertisement, owned: solicited (S set, to the solicitor) or unsolicited (S
/// clear, to all-nodes, RFC 4861 section 7.2.6), with the target's link-layer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvertRepr {
    pub router_flag: bool,
    pub solicited_flag: bool,
    pub override_flag: bool,
    pub target: Ipv6Address,
    pub target_ll: Option<EthernetAddress>,
}

impl NeighborAdvertRepr {
    /// The flags, the target and the first Target Link-Layer Address option; a malformed
    /// option list is an error.
    pub fn parse<T: AsRef<[u8]>>(p: &NeighborAdvert<T>) -> Result<NeighborAdvertRepr> {
        p.check_len()?;
        Ok(NeighborAdvertRepr {
            router_flag: p.router_flag(),
            solicited_flag: p.solicited_flag(),
            override_flag: p.override_flag(),
            target: p.target(),
            target_ll: find_ll_addr(p.options_iter(), option_type::TARGET_LL_ADDR)?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        match self.target_ll {
            Some(_) => NA_LEN + LL_OPTION_LEN,
            None => NA_LEN,
        }
    }

    /// Write the message from `src` to `dst` into `buf` (at least [`Self::buffer_len`]
    /// bytes), checksum included; returns its length.
    pub fn emit(&self, src: Ipv6Address, dst: Ipv6Address, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        emit_icmp_header(msg::NEIGHBOR_ADVERT, b);
        let mut p = NeighborAdvert::new_unchecked(&mut *b);
        p.set_flags(self.router_flag, self.solicited_flag, self.override_flag);
        p.set_target(self.target);
        if let Some(mac) = self.target_ll {
            emit_ll_option(option_type::TARGET_LL_ADDR, mac, &mut b[NA_LEN..]);
        }
        fill_checksum(src, dst, b);
        len
    }
}

/// A Router Advertisement to send (RFC 4861 section 6.2.3), with its options in the order
/// Source Link-Layer Address, MTU, Prefix Information, RDNSS. A received one is read
/// through [`RouterAdvert`] and its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterAdvertRepr<'a> {
    pub cur_hop_limit: u8,
    pub managed: bool,
    pub other: bool,
    /// Seconds; 0: not a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0: unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0: unspecified.
    pub retrans_timer: u32,
    pub source_ll: Option<EthernetAddress>,
    pub mtu: Option<u32>,
    pub prefixes: &'a [PrefixInfo],
    pub rdnss: Option<RdnssRepr<'a>>,
}

impl RouterAdvertRepr<'_> {
    pub const fn buffer_len(&self) -> usize {
        let mut n = RA_LEN + PrefixInfo::LEN * self.prefixes.len();
        if self.source_ll.is_some() {
            n += LL_OPTION_LEN;
        }
        if self.mtu.is_some() {
            n += MTU_OPTION_LEN;
        }
        if let Some(r) = &self.rdnss {
            n += r.buffer_len();
        }
        n
    }

    /// Write the message from `src` (the router's link-local address, RFC 4861 section
    /// 6.1.2) to `dst` into `buf` (at least [`Self::buffer_len`] bytes), checksum
    /// included; returns its length.
    pub fn emit(&self, src: Ipv6Address, dst: Ipv6Address, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        emit_icmp_header(msg::ROUTER_ADVERT, b);
        let mut p = RouterAdvert::new_unchecked(&mut *b);
        p.set_cur_hop_limit(self.cur_hop_limit);
        p.set_flags(self.managed, self.other);
        p.set_router_lifetime(self.router_lifetime);
        p.set_reachable_time(self.reachable_time);
        p.set_retrans_timer(self.retrans_timer);
        let mut at = RA_LEN;
        if let Some(mac) = self.source_ll {
            emit_ll_option(option_type::SOURCE_LL_ADDR, mac, &mut b[at..]);
            at += LL_OPTION_LEN;
        }
        if let Some(mtu) = self.mtu {
            let o = &mut b[at..at + MTU_OPTION_LEN];
            o[0] = option_type::MTU;
            o[1] = 1;
            set_u16(o, 2, 0);
            set_u32(o, 4, mtu);
            at += MTU_OPTION_LEN;
        }
        for pi in self.prefixes {
            pi.emit(&mut b[at..at + PrefixInfo::LEN]);
            at += PrefixInfo::LEN;
        }
        if let Some(r) = &self.rdnss {
            r.emit(&mut b[at..at + r.buffer_len()]);
        }
        fill_checksum(src, dst, b);
        len
    }
}

/// The receive checks of RFC 4861 for a Neighbor Discovery message `m` (the ICMPv6 message,
/// to the end of the IPv6 payload) that came from `src` to `dst` with IPv6 hop limit
/// `hop_limit`. The caller has dropped fragments first (RFC 6980 section 5).
///
/// For every type: hop limit 255, a checksum that verifies, code 0, the fixed part present
/// and every option of length above zero within the message. Then, per type:
/// * Router Solicitation (section 6.1.1): from the unspecified address, no Source
///   Link-Layer Address option;
/// * Router Advertisement (section 6.1.2): from a link-local address;
/// * Neighbor Solicitation (section 7.1.1): the target is not multicast; from the
///   unspecified address, to a solicited-node address and without a Source Link-Layer
///   Address option;
/// * Neighbor Advertisement (section 7.1.2): the target is not multicast; to a multicast
///   address, the Solicited flag is clear.
///
/// Errors: [`Error::Unsupported`] for other types (Redirect included: a router ignores
/// them), [`Error::Truncated`] for a short message or an option past its end,
/// [`Error::Checksum`], and [`Error::Malformed`] for every other failed check.
pub fn validate(src: Ipv6Address, dst: Ipv6Address, hop_limit: u8, m: &[u8]) -> Result<()> {
    let p = icmpv6::Packet::new_checked(m)?;
    let t = p.msg_type();
    let min = match t {
        msg::ROUTER_SOLICIT => RS_LEN,
        msg::ROUTER_ADVERT => RA_LEN,
        msg::NEIGHBOR_SOLICIT => NS_LEN,
        msg::NEIGHBOR_ADVERT => NA_LEN,
        _ => return Err(Error::Unsupported),
    };
    if hop_limit != HOP_LIMIT || p.msg_code() != 0 {
        return Err(Error::Malformed);
    }
    if m.len() < min {
        return Err(Error::Truncated);
    }
    if !p.verify_checksum(src, dst) {
        return Err(Error::Checksum);
    }
    let mut source_ll = false;
    for o in Options::new(&m[min..]) {
        source_ll |= o?.kind() == option_type::SOURCE_LL_ADDR;
    }
    let unspecified = class::is_unspecified(src);
    let bad = match t {
        msg::ROUTER_SOLICIT => unspecified && source_ll,
        msg::ROUTER_ADVERT => !class::is_link_local(src),
        msg::NEIGHBOR_SOLICIT => {
            let target = read_addr(&m[field::TARGET]);
            class::is_multicast(target)
                || (unspecified && (source_ll || !class::is_solicited_node(dst)))
        }
        // Neighbor Advertisement, the only type left.
        _ => {
            let na = NeighborAdvert::new_unchecked(m);
            class::is_multicast(na.target()) || (class::is_multicast(dst) && na.solicited_flag())
        }
    };
    if bad { Err(Error::Malformed) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6;

    // Built by scapy (an independent implementation), whole IPv6 packets with hop limit
    // 255; the ICMPv6 message starts at 40.
    // IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="2001:db8::2")
    //   / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    const NS: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02, 0x87, 0x00, 0x4b, 0x5f, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    // IPv6(src="::", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="2001:db8::2")
    const NS_DAD: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02, 0x87, 0x00, 0x4c, 0xeb, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
    ];
    // IPv6(src="2001:db8::1", dst="2001:db8::2")
    //   / ICMPv6ND_NA(R=1, S=1, O=1, tgt="2001:db8::1")
    //   / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01")
    const NA: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x88, 0x00, 0x0a, 0x73, 0xe0,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    // IPv6(src="fe80::1", dst="ff02::1")
    //   / ICMPv6ND_NA(R=1, S=0, O=1, tgt="2001:db8::1")
    //   / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01")
    const NA_UNSOLICITED: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0xa8, 0x62, 0xa0,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    // IPv6(src="fe80::1", dst="ff02::1")
    //   / ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800, reachabletime=30000,
    //                 retranstimer=1000)
    //   / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01") / ICMPv6NDOptMTU(mtu=1500)
    //   / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400,
    //                           preferredlifetime=14400, prefix="2001:db8:1::")
    //   / ICMPv6NDOptRDNSS(lifetime=3600, dns=["2001:db8::53", "2001:db8::35"])
    const RA: [u8; 144] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x68, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0x00, 0x2f, 0x48, 0x40,
        0x40, 0x07, 0x08, 0x00, 0x00, 0x75, 0x30, 0x00, 0x00, 0x03, 0xe8, 0x01, 0x01, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, 0x03, 0x04, 0x40,
        0xc0, 0x00, 0x01, 0x51, 0x80, 0x00, 0x00, 0x38, 0x40, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19,
        0x05, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x35,
    ];
    // IPv6(src="fe80::2", dst="ff02::2") / ICMPv6ND_RS()
    //   / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:02:01")
    const RS: [u8; 56] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x85, 0x00, 0x78, 0x2b, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02, 0x01,
    ];

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn addr(s: &str) -> Ipv6Address {
        s.parse().unwrap()
    }

    /// Source, destination, hop limit and ICMPv6 message of a whole packet.
    fn split(pkt: &[u8]) -> (Ipv6Address, Ipv6Address, u8, Vec<u8>) {
        let ip = ipv6::Packet::new_checked(pkt).unwrap();
        assert_eq!(ip.upper_layer(), Ok((58, ipv6::HEADER_LEN)));
        (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            ip.payload().to_vec(),
        )
    }

    fn refill(src: Ipv6Address, dst: Ipv6Address, m: &mut [u8]) {
        icmpv6::Packet::new_unchecked(m).fill_checksum(src, dst);
    }

    #[test]
    fn neighbor_solicitations_as_scapy_builds_them() {
        let (src, dst, hl, m) = split(&NS);
        assert_eq!(validate(src, dst, hl, &m), Ok(()));
        let p = NeighborSolicit::new_checked(&m[..]).unwrap();
        assert_eq!(p.target(), addr("2001:db8::2"));
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(opts.len(), 1);
        let o = opts[0].unwrap();
        assert_eq!((o.kind(), o.len()), (option_type::SOURCE_LL_ADDR, 8));
        assert_eq!(o.link_layer_addr(), Some(MAC));
        assert_eq!((o.mtu(), o.prefix_info(), o.rdnss()), (None, None, None));
        let r = NeighborSolicitRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            NeighborSolicitRepr {
                target: addr("2001:db8::2"),
                source_ll: Some(MAC)
            }
        );
        assert_eq!(dst, class::solicited_node(r.target));
        let mut out = [0xa5u8; 40];
        assert_eq!(r.emit(src, dst, &mut out), m.len());
        assert_eq!(out[..m.len()], m[..]);

        // Duplicate address detection: from ::, no option.
        let (src, dst, hl, m) = split(&NS_DAD);
        assert_eq!(validate(src, dst, hl, &m), Ok(()));
        let r = NeighborSolicitRepr::parse(&NeighborSolicit::new_checked(&m[..]).unwrap());
        let r = r.unwrap();
        assert_eq!(r.source_ll, None);
        let mut out = [0xa5u8; 24];
        assert_eq!(r.emit(src, dst, &mut out), 24);
        assert_eq!(out[..], m[..]);
    }

    #[test]
    fn neighbor_advertisements_as_scapy_builds_them() {
        for (pkt, solicited) in [(&NA[..], true), (&NA_UNSOLICITED[..], false)] {
            let (src, dst, hl, m) = split(pkt);
            assert_eq!(validate(src, dst, hl, &m), Ok(()));
            let p = NeighborAdvert::new_checked(&m[..]).unwrap();
            assert!(p.router_flag() && p.override_flag());
            assert_eq!(p.solicited_flag(), solicited);
            let r = NeighborAdvertRepr::parse(&p).unwrap();
            assert_eq!(
                r,
                NeighborAdvertRepr {
                    router_flag: true,
                    solicited_flag: solicited,
                    override_flag: true,
                    target: addr("2001:db8::1"),
                    target_ll: Some(MAC),
                }
            );
            let mut out = [0xa5u8; 32];
            assert_eq!(r.emit(src, dst, &mut out), 32);
            assert_eq!(out[..], m[..]);
        }
    }

    #[test]
    fn router_advertisement_as_scapy_builds_it() {
        let (src, dst, hl, m) = split(&RA);
        assert_eq!(validate(src, dst, hl, &m), Ok(()));
        let p = RouterAdvert::new_checked(&m[..]).unwrap();
        assert_eq!(p.cur_hop_limit(), 64);
        assert!(!p.managed_flag() && p.other_flag());
        assert_eq!(p.router_preference(), 0);
        assert_eq!(p.router_lifetime(), 1800);
        assert_eq!(p.reachable_time(), 30000);
        assert_eq!(p.retrans_timer(), 1000);
        let opts: Vec<NdOption> = p.options_iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts.iter().map(|o| o.kind()).collect::<Vec<_>>(),
            [1, 5, 3, 25]
        );
        assert_eq!(opts[0].link_layer_addr(), Some(MAC));
        assert_eq!(opts[1].mtu(), Some(1500));
        let pi = opts[2].prefix_info().unwrap();
        let want_pi = PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: addr("2001:db8:1::"),
        };
        assert_eq!(pi, want_pi);
        let rdnss = opts[3].rdnss().unwrap();
        assert_eq!(rdnss.lifetime(), 3600);
        let servers: Vec<_> = rdnss.addresses().collect();
        assert_eq!(servers, [addr("2001:db8::53"), addr("2001:db8::35")]);

        let r = RouterAdvertRepr {
            cur_hop_limit: 64,
            managed: false,
            other: true,
            router_lifetime: 1800,
            reachable_time: 30000,
            retrans_timer: 1000,
            source_ll: Some(MAC),
            mtu: Some(1500),
            prefixes: &[want_pi],
            rdnss: Some(RdnssRepr {
                lifetime: 3600,
                servers: &servers,
            }),
        };
        let mut out = [0xa5u8; 128];
        assert_eq!(r.emit(src, dst, &mut out), m.len());
        assert_eq!(out[..m.len()], m[..]);
    }

    #[test]
    fn router_solicitation_as_scapy_builds_it() {
        let (src, dst, hl, m) = split(&RS);
        assert_eq!(validate(src, dst, hl, &m), Ok(()));
        let p = RouterSolicit::new_checked(&m[..]).unwrap();
        let o = p.options_iter().next().unwrap().unwrap();
        assert_eq!(
            o.link_layer_addr(),
            Some(EthernetAddress([2, 0, 0, 0, 2, 1]))
        );
        assert_eq!(o.data(), &[2, 0, 0, 0, 2, 1]);
    }

    #[test]
    fn views_refuse_short_messages_and_other_types() {
        let (_, _, _, ns) = split(&NS);
        let (_, _, _, na) = split(&NA);
        let (_, _, _, ra) = split(&RA);
        let (_, _, _, rs) = split(&RS);
        for n in 0..NS_LEN {
            assert_eq!(
                NeighborSolicit::new_checked(&ns[..n]).unwrap_err(),
                Error::Truncated
            );
            assert_eq!(
                NeighborAdvert::new_checked(&na[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        for n in 0..RA_LEN {
            assert_eq!(
                RouterAdvert::new_checked(&ra[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        for n in 0..RS_LEN {
            assert_eq!(
                RouterSolicit::new_checked(&rs[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        assert_eq!(
            NeighborSolicit::new_checked(&na[..]).unwrap_err(),
            Error::Unsupported
        );
        assert_eq!(
            NeighborAdvert::new_checked(&ns[..]).unwrap_err(),
            Error::Unsupported
        );
        assert_eq!(
            RouterAdvert::new_checked(&rs[..]).unwrap_err(),
            Error::Unsupported
        );
        assert_eq!(
            RouterSolicit::new_checked(&ra[..]).unwrap_err(),
            Error::Unsupported
        );
    }

    #[test]
    fn every_truncation_is_an_error_and_nothing_panics() {
        for pkt in [
            &NS[..],
            &NS_DAD[..],
            &NA[..],
            &NA_UNSOLICITED[..],
            &RA[..],
            &RS[..],
        ] {
            let (src, dst, hl, m) = split(pkt);
            let min = min_len(m[0]).unwrap();
            // Where the options end: a cut there leaves a shorter valid message (none of
            // these needs an option to be valid).
            let mut boundaries = vec![min];
            for o in Options::new(&m[min..]) {
                boundaries.push(boundaries.last().unwrap() + o.unwrap().len());
            }
            assert_eq!(boundaries.last(), Some(&m.len()));
            for n in 0..m.len() {
                // The checksum is refilled so that only the length can be wrong.
                let mut cut = m[..n].to_vec();
                if n >= icmpv6::HEADER_LEN {
                    refill(src, dst, &mut cut);
                }
                let whole = boundaries.contains(&n);
                let want = if whole { Ok(()) } else { Err(Error::Truncated) };
                assert_eq!(validate(src, dst, hl, &cut), want, "{n} of {}", m.len());
                let errors = Options::new(cut.get(min..).unwrap_or(&[]))
                    .filter(|o| o.is_err())
                    .count();
                assert_eq!(errors, usize::from(n > min && !whole), "{n}");
            }
        }
    }

    type Edit<'a> = &'a dyn Fn(&mut Ipv6Address, &mut Ipv6Address, &mut u8, &mut Vec<u8>);

    /// Validate `pkt` after `edit` changed its addresses, hop limit or message, with the
    /// checksum refilled so that only the edit can be wrong.
    fn edited(pkt: &[u8], edit: Edit<'_>) -> Result<()> {
        let (mut src, mut dst, mut hl, mut m) = split(pkt);
        edit(&mut src, &mut dst, &mut hl, &mut m);
        refill(src, dst, &mut m);
        validate(src, dst, hl, &m)
    }

    #[test]
    fn validation_rejects_each_bad_case() {
        let malformed = Err(Error::Malformed);
        // Every type: hop limit, code, length, checksum, options of length zero or past the
        // end.
        for pkt in [&NS[..], &NA[..], &RA[..], &RS[..]] {
            assert_eq!(edited(pkt, &|_, _, _, _| {}), Ok(()));
            assert_eq!(edited(pkt, &|_, _, hl, _| *hl = 254), malformed);
            assert_eq!(edited(pkt, &|_, _, hl, _| *hl = 64), malformed);
            assert_eq!(edited(pkt, &|_, _, _, m| m[1] = 1), malformed);
            let first_option_len = |m: &mut Vec<u8>| min_len(m[0]).unwrap() + 1;
            assert_eq!(
                edited(pkt, &|_, _, _, m| {
                    let at = first_option_len(m);
                    m[at] = 0;
                }),
                malformed
            );
            assert_eq!(
                edited(pkt, &|_, _, _, m| {
                    let at = first_option_len(m);
                    m[at] = 0xff;
                }),
                Err(Error::Truncated)
            );
            assert_eq!(
                edited(pkt, &|_, _, _, m| m.truncate(min_len(m[0]).unwrap() - 1)),
                Err(Error::Truncated)
            );
            let (src, dst, hl, mut m) = split(pkt);
            m[2] ^= 0x40;
            assert_eq!(validate(src, dst, hl, &m), Err(Error::Checksum));
            // The checksum covers the pseudo-header.
            let (src, _, hl, m) = split(pkt);
            assert_eq!(validate(src, addr("ff02::3"), hl, &m), Err(Error::Checksum));
        }
        // Targets that are multicast.
        assert_eq!(edited(&NS, &|_, _, _, m| m[8] = 0xff), malformed);
        assert_eq!(edited(&NA, &|_, _, _, m| m[8] = 0xff), malformed);
        // Neighbor Solicitation from the unspecified address: with an SLLA option, or to a
        // destination that is not a solicited-node address.
        let unspecified = |src: &mut Ipv6Address| *src = Ipv6Address::UNSPECIFIED;
        assert_eq!(edited(&NS, &|src, _, _, _| unspecified(src)), malformed);
        assert_eq!(
            edited(&NS_DAD, &|_, dst, _, _| *dst = addr("2001:db8::2")),
            malformed
        );
        assert_eq!(
            edited(&NS_DAD, &|_, dst, _, _| *dst = class::ALL_NODES),
            malformed
        );
        // Neighbor Advertisement to a multicast address with S set.
        assert_eq!(
            edited(&NA_UNSOLICITED, &|_, _, _, m| m[4] |= 0x40),
            malformed
        );
        // Router Advertisement from a global address.
        assert_eq!(
            edited(&RA, &|src, _, _, _| *src = addr("2001:db8::1")),
            malformed
        );
        // Router Solicitation from the unspecified address with an SLLA option; without
        // one it is valid.
        assert_eq!(edited(&RS, &|src, _, _, _| unspecified(src)), malformed);
        assert_eq!(
            edited(&RS, &|src, _, _, m| {
                unspecified(src);
                m.truncate(RS_LEN);
            }),
            Ok(())
        );
        // What validation is not about.
        let (src, dst, hl, mut m) = split(&NS);
        m[0] = msg::REDIRECT;
        assert_eq!(validate(src, dst, hl, &m), Err(Error::Unsupported));
        m[0] = msg::ECHO_REQUEST;
        assert_eq!(validate(src, dst, hl, &m), Err(Error::Unsupported));
        assert_eq!(validate(src, dst, hl, &m[..7]), Err(Error::Truncated));
    }

    #[test]
    fn typed_accessors_ignore_bad_lengths() {
        // An SLLA of length 2 (not Ethernet), a Prefix Information of length 3, an MTU of
        // length 2, RDNSS of lengths 2 and 1.
        let mut opts = Vec::new();
        opts.extend_from_slice(&[1, 2, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        opts.extend_from_slice(&[3, 3]);
        opts.extend_from_slice(&[0; 22]);
        opts.extend_from_slice(&[5, 2]);
        opts.extend_from_slice(&[0; 14]);
        opts.extend_from_slice(&[25, 2]);
        opts.extend_from_slice(&[0; 14]);
        opts.extend_from_slice(&[25, 1, 0, 0, 0, 0, 0, 0]);
        let parsed: Vec<NdOption> = Options::new(&opts).map(|o| o.unwrap()).collect();
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[0].link_layer_addr(), None);
        assert_eq!(parsed[1].prefix_info(), None);
        assert_eq!(parsed[2].mtu(), None);
        assert_eq!(parsed[3].rdnss(), None);
        assert_eq!(parsed[4].rdnss(), None);
        // One error, last.
        let mut bad = opts.clone();
        bad.extend_from_slice(&[1, 0, 9, 9, 9, 9, 9, 9, 1, 1, 0, 0, 0, 0, 0, 0]);
        let all: Vec<_> = Options::new(&bad).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5], Err(Error::Malformed));
        assert_eq!(
            Options::new(&[1]).collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
    }
}
