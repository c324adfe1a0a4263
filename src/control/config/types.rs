//! Value types of the configuration: IPv4 and IPv6 prefixes, MAC addresses, port ranges and
//! the dataplane modes. Each one is written in TOML (and JSON) as a string.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 address with a prefix length, `a.b.c.d/len`.
///
/// The address keeps its host bits: `203.0.113.2/24` is an interface address in the subnet
/// `203.0.113.0/24`. Routes and subnets want the canonical form ([`Ipv4Cidr::is_canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Cidr {
    /// `None` when `len` is greater than 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Cidr> {
        (len <= 32).then_some(Ipv4Cidr { addr, len })
    }

    /// The netmask as a host-order integer (`/24` is `0xffff_ff00`). A length above 32 (only
    /// possible by building the struct by hand) counts as 32.
    pub fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(self.len)))
            .unwrap_or(0)
    }

    /// The first address of the prefix.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address of the prefix (the directed broadcast for prefixes shorter than /31).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The prefix with its host bits cleared.
    pub fn canonical(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: self.network(),
            len: self.len.min(32),
        }
    }

    /// True when no host bits are set.
    pub fn is_canonical(&self) -> bool {
        self.addr == self.network()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let mask = self.mask() & other.mask();
        (u32::from(self.addr) & mask) == (u32::from(other.addr) & mask)
    }

    /// True when `ip` is this prefix's network or broadcast address and the prefix is one that
    /// has them: RFC 3021 section 2 gives /31 links no broadcast address, and a /32 is a host.
    pub fn is_network_or_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.len < 31 && (ip == self.network() || ip == self.broadcast())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("invalid IPv4 prefix {s:?}: expected a.b.c.d/len");
        let (addr, len) = s.split_once('/').ok_or_else(expected)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| expected())?;
        let len = parse_decimal(len)
            .filter(|len| *len <= 32)
            .ok_or_else(|| format!("invalid IPv4 prefix {s:?}: the length must be 0..=32"))?;
        // `parse_decimal` bounded the value to 32 above, so it fits.
        Ok(Ipv4Cidr {
            addr,
            len: len as u8,
        })
    }
}

/// An IPv6 address with a prefix length, `addr/len` (RFC 4291 section 2.3).
///
/// As with [`Ipv4Cidr`], the address keeps its interface identifier: `2001:db8:ff::2/64` is an
/// interface address in the subnet `2001:db8:ff::/64`. Routes and subnets want the canonical
/// form ([`Ipv6Cidr::is_canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Cidr {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Cidr {
    /// `None` when `len` is greater than 128.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Ipv6Cidr> {
        (len <= 128).then_some(Ipv6Cidr { addr, len })
    }

    /// The netmask as a host-order integer (`/64` is `0xffff_ffff_ffff_ffff` followed by 64
    /// zero bits). A length above 128 (only possible by building the struct by hand) counts
    /// as 128.
    pub fn mask(&self) -> u128 {
        u128::MAX
            .checked_shl(128u32.saturating_sub(u32::from(self.len)))
            .unwrap_or(0)
    }

    /// The first address of the prefix (for a subnet shorter than /127, its Subnet-Router
    /// anycast address, RFC 4291 section 2.6.1).
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// The prefix with its host bits cleared.
    pub fn canonical(&self) -> Ipv6Cidr {
        Ipv6Cidr {
            addr: self.network(),
            len: self.len.min(128),
        }
    }

    /// True when no host bits are set.
    pub fn is_canonical(&self) -> bool {
        self.addr == self.network()
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        (u128::from(ip) & self.mask()) == (u128::from(self.addr) & self.mask())
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Ipv6Cidr) -> bool {
        let mask = self.mask() & other.mask();
        (u128::from(self.addr) & mask) == (u128::from(other.addr) & mask)
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = String;

    /// `addr/len` with the address in any RFC 4291 section 2.2 text form (RFC 5952's is
    /// what [`fmt::Display`] writes back); no zone index.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("invalid IPv6 prefix {s:?}: expected addr/len");
        let (addr, len) = s.split_once('/').ok_or_else(expected)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| expected())?;
        let len = parse_decimal(len)
            .filter(|len| *len <= 128)
            .ok_or_else(|| format!("invalid IPv6 prefix {s:?}: the length must be 0..=128"))?;
        // `parse_decimal` bounded the value to 128 above, so it fits.
        Ok(Ipv6Cidr {
            addr,
            len: len as u8,
        })
    }
}

/// An entry of `port.addresses`, which takes IPv4 and IPv6 prefixes side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum IpCidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpCidr::V4(c) => c.fmt(f),
            IpCidr::V6(c) => c.fmt(f),
        }
    }
}

impl FromStr for IpCidr {
    type Err = String;

    /// A colon makes it IPv6, a dot IPv4 (an IPv4-embedded IPv6 address has both and is
    /// IPv6); each family then gives its own message.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(IpCidr::V6)
        } else if s.contains('.') {
            s.parse().map(IpCidr::V4)
        } else {
            Err(format!(
                "invalid prefix {s:?}: expected a.b.c.d/len (IPv4) or addr/len (IPv6)"
            ))
        }
    }
}

/// The IPv6 link-local address of an interface with MAC `mac` (RFC 4291 section 2.5.6 and
/// appendix A): `fe80::/64` with the modified EUI-64 interface identifier, i.e. the MAC with
/// `ff:fe` inserted in the middle and the universal/local bit (0x02 of the first octet)
/// inverted. `fa:16:3e:00:00:01` gives `fe80::f816:3eff:fe00:1`.
pub fn link_local_from_mac(mac: MacAddr) -> Ipv6Addr {
    Ipv6Addr::from_bits(crate::tables::ip6::link_local(
        crate::wire::EthernetAddress(mac.0),
    ))
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// IEEE 802 group bit: the least significant bit of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        *self == MacAddr::ZERO
    }

    /// A usable station address: neither a group address nor all-zero.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// Six pairs of hex digits separated by `:` or `-` (one separator throughout).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid MAC address {s:?}: expected six hex pairs like 02:00:00:00:00:01");
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut groups = s.split(sep);
        for octet in out.iter_mut() {
            let group = groups.next().ok_or_else(bad)?;
            if group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(group, 16).map_err(|_| bad())?;
        }
        if groups.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// An inclusive range of transport ports, written `"first-last"` or `"port"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// How many ports the range holds (0 when `first > last`).
    pub fn count(&self) -> u32 {
        (u32::from(self.last) + 1).saturating_sub(u32::from(self.first))
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl Default for PortRange {
    /// The non-privileged ports, as NAT44 implementations use by default.
    fn default() -> Self {
        PortRange {
            first: 1024,
            last: 65535,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// Only the syntax is checked here; bounds (first >= 1, first <= last) are validation
    /// rules so that they are reported together with every other mistake.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let port = |p: &str| {
            parse_decimal(p.trim())
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| {
                    format!(
                        "invalid port range {s:?}: expected \"first-last\" with ports 0..=65535"
                    )
                })
        };
        match s.split_once('-') {
            Some((first, last)) => Ok(PortRange {
                first: port(first)?,
                last: port(last)?,
            }),
            None => {
                let p = port(s)?;
                Ok(PortRange { first: p, last: p })
            }
        }
    }
}

/// How the XDP program is attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode when the driver supports it, else generic (SKB) mode.
    #[default]
    Auto,
    Native,
    Generic,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

/// Whether AF_XDP sockets bind with `XDP_ZEROCOPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy when the driver supports it, else copy mode (veth has no zero-copy).
    #[default]
    Auto,
    On,
    Off,
}

impl fmt::Display for ZeroCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZeroCopy::Auto => "auto",
            ZeroCopy::On => "on",
            ZeroCopy::Off => "off",
        })
    }
}

/// How an idle worker waits (`dataplane.poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Busy-poll, but after a run of empty polls sleep in `poll(2)` on the sockets (up to 1 ms)
    /// until traffic returns, as VPP's adaptive mode does: no CPU burnt on an idle gateway.
    #[default]
    Adaptive,
    /// Busy-poll always: lowest latency, one full core per worker.
    Busy,
}

impl fmt::Display for PollMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PollMode::Adaptive => "adaptive",
            PollMode::Busy => "busy",
        })
    }
}

/// A plain decimal number: ASCII digits only (`str::parse` would also take a leading `+`).
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Serde through `Display` / `FromStr`, so TOML and JSON both carry these as strings.
macro_rules! serde_via_string {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str($crate::control::config::types::FromStrVisitor(
                    std::marker::PhantomData,
                ))
            }
        }
    )*};
}

/// Parses inside the visitor (not after `String::deserialize`), so the deserializer still
/// knows which value failed and can say where it is.
pub(super) struct FromStrVisitor<T>(pub(super) std::marker::PhantomData<T>);

impl<T> serde::de::Visitor<'_> for FromStrVisitor<T>
where
    T: FromStr<Err = String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

serde_via_string!(Ipv4Cidr, Ipv6Cidr, IpCidr, MacAddr, PortRange);
pub(super) use serde_via_string;

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_displays() {
        let c = cidr("203.0.113.2/24");
        assert_eq!(c.addr, Ipv4Addr::new(203, 0, 113, 2));
        assert_eq!(c.len, 24);
        assert_eq!(c.to_string(), "203.0.113.2/24");
        assert_eq!(c.mask(), 0xffff_ff00);
        assert_eq!(c.network(), Ipv4Addr::new(203, 0, 113, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(203, 0, 113, 255));
        assert_eq!(c.canonical(), cidr("203.0.113.0/24"));
        assert!(!c.is_canonical());
        assert!(c.canonical().is_canonical());
    }

    #[test]
    fn cidr_edge_lengths() {
        let all = cidr("0.0.0.0/0");
        assert_eq!(all.mask(), 0);
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        assert!(all.contains(Ipv4Addr::new(198, 51, 100, 7)));
        let host = cidr("192.0.2.9/32");
        assert_eq!(host.mask(), u32::MAX);
        assert_eq!(host.network(), host.addr);
        assert_eq!(host.broadcast(), host.addr);
        assert!(!host.is_network_or_broadcast(host.addr));
        let p2p = cidr("192.0.2.0/31");
        assert!(!p2p.is_network_or_broadcast(Ipv4Addr::new(192, 0, 2, 0)));
        assert!(cidr("192.0.2.0/30").is_network_or_broadcast(Ipv4Addr::new(192, 0, 2, 3)));
        // A hand-built length above 32 must not panic.
        let odd = Ipv4Cidr {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            len: 40,
        };
        assert_eq!(odd.mask(), u32::MAX);
    }

    #[test]
    fn cidr_rejects_bad_input() {
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "10.0.0/8",
            "10.0.0.256/8",
            "/8",
            "",
            "10.0.0.1/8/8",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "10.0.0.1".parse::<Ipv4Cidr>().unwrap_err(),
            "invalid IPv4 prefix \"10.0.0.1\": expected a.b.c.d/len"
        );
    }

    #[test]
    fn cidr_contains_and_overlaps() {
        let a = cidr("10.0.0.0/16");
        assert!(a.contains(Ipv4Addr::new(10, 0, 255, 1)));
        assert!(!a.contains(Ipv4Addr::new(10, 1, 0, 0)));
        assert!(a.overlaps(&cidr("10.0.3.0/24")));
        assert!(cidr("10.0.3.0/24").overlaps(&a));
        assert!(!a.overlaps(&cidr("10.1.0.0/16")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("192.0.2.1/32")));
    }

    fn cidr6(s: &str) -> Ipv6Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr6_parses_and_displays() {
        let c = cidr6("2001:DB8:ff:0::2/64");
        assert_eq!(c.addr, Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2));
        assert_eq!(c.len, 64);
        assert_eq!(c.to_string(), "2001:db8:ff::2/64");
        assert_eq!(c.mask(), 0xffff_ffff_ffff_ffff_0000_0000_0000_0000);
        assert_eq!(
            c.network(),
            Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0)
        );
        assert_eq!(c.canonical(), cidr6("2001:db8:ff::/64"));
        assert!(!c.is_canonical());
        assert!(c.canonical().is_canonical());
        assert_eq!(
            Ipv6Cidr::new(c.addr, 128),
            Some(cidr6("2001:db8:ff::2/128"))
        );
        assert_eq!(Ipv6Cidr::new(c.addr, 129), None);
        // IPv4-embedded text form.
        assert_eq!(
            cidr6("::ffff:192.0.2.1/128").addr,
            Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()
        );
    }

    #[test]
    fn cidr6_edge_lengths() {
        let all = cidr6("::/0");
        assert_eq!(all.mask(), 0);
        assert!(all.contains(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)));
        let host = cidr6("2001:db8::9/128");
        assert_eq!(host.mask(), u128::MAX);
        assert_eq!(host.network(), host.addr);
        assert!(host.is_canonical());
        assert!(!host.contains(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 8)));
        assert_eq!(cidr6("2001:db8::/1").mask(), 1 << 127);
        // A hand-built length above 128 must not panic.
        let odd = Ipv6Cidr {
            addr: Ipv6Addr::LOCALHOST,
            len: 200,
        };
        assert_eq!(odd.mask(), u128::MAX);
        assert_eq!(odd.canonical().len, 128);
    }

    #[test]
    fn cidr6_rejects_bad_input() {
        for bad in [
            "2001:db8::1",
            "2001:db8::1/129",
            "2001:db8::1/",
            "2001:db8::1/+64",
            "2001:db8::g/64",
            "2001:db8:::1/64",
            "fe80::1%eth0/64",
            "10.0.0.0/8",
            "/64",
            "",
            "2001:db8::/64/64",
        ] {
            assert!(bad.parse::<Ipv6Cidr>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "2001:db8::1".parse::<Ipv6Cidr>().unwrap_err(),
            "invalid IPv6 prefix \"2001:db8::1\": expected addr/len"
        );
        assert_eq!(
            "2001:db8::1/129".parse::<Ipv6Cidr>().unwrap_err(),
            "invalid IPv6 prefix \"2001:db8::1/129\": the length must be 0..=128"
        );
    }

    #[test]
    fn cidr6_contains_and_overlaps() {
        let a = cidr6("2001:db8:100::/56");
        assert!(a.contains(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0xff, 0, 0, 0, 1)));
        assert!(!a.contains(Ipv6Addr::new(0x2001, 0xdb8, 0x101, 0, 0, 0, 0, 1)));
        assert!(a.overlaps(&cidr6("2001:db8:100:1::/64")));
        assert!(cidr6("2001:db8:100:1::/64").overlaps(&a));
        assert!(!a.overlaps(&cidr6("2001:db8:200::/56")));
        assert!(cidr6("::/0").overlaps(&cidr6("2001:db8::1/128")));
    }

    #[test]
    fn ip_cidr_takes_either_family() {
        assert_eq!(
            "10.0.0.1/8".parse::<IpCidr>().unwrap(),
            IpCidr::V4(cidr("10.0.0.1/8"))
        );
        assert_eq!(
            "2001:db8::1/64".parse::<IpCidr>().unwrap(),
            IpCidr::V6(cidr6("2001:db8::1/64"))
        );
        // Each family keeps its own message.
        assert!(
            "10.0.0.1"
                .parse::<IpCidr>()
                .unwrap_err()
                .starts_with("invalid IPv4 prefix")
        );
        assert!(
            "::1"
                .parse::<IpCidr>()
                .unwrap_err()
                .starts_with("invalid IPv6 prefix")
        );
        assert_eq!(IpCidr::V6(cidr6("::1/128")).to_string(), "::1/128");
    }

    #[test]
    fn link_local_is_modified_eui64() {
        // RFC 4291 appendix A: insert ff:fe, invert the universal/local bit.
        let m: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        assert_eq!(
            link_local_from_mac(m),
            "fe80::f816:3eff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
        let m: MacAddr = "00:1b:21:0a:0b:0c".parse().unwrap();
        assert_eq!(
            link_local_from_mac(m),
            "fe80::21b:21ff:fe0a:b0c".parse::<Ipv6Addr>().unwrap()
        );
        assert!(link_local_from_mac(m).is_unicast_link_local());
    }

    #[test]
    fn mac_parses_both_separators() {
        let m: MacAddr = "02:00:0A:bb:cc:01".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x00, 0x0a, 0xbb, 0xcc, 0x01]);
        assert_eq!(m.to_string(), "02:00:0a:bb:cc:01");
        assert_eq!("02-00-0a-bb-cc-01".parse::<MacAddr>().unwrap(), m);
        assert!(m.is_unicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00-00:00:00:01",
            "2:00:00:00:00:01",
            "02:00:00:00:00:0g",
            "020000000001",
            "",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(
            "1024-65535".parse::<PortRange>().unwrap(),
            PortRange::default()
        );
        assert_eq!(
            "5000".parse::<PortRange>().unwrap(),
            PortRange {
                first: 5000,
                last: 5000
            }
        );
        assert_eq!(
            " 10 - 20 ".parse::<PortRange>().unwrap(),
            PortRange {
                first: 10,
                last: 20
            }
        );
        assert_eq!(PortRange::default().count(), 64512);
        assert_eq!(PortRange { first: 9, last: 3 }.count(), 0);
        for bad in ["", "-", "1-", "1-65536", "a-b", "1-2-3", "+1-2"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_round_trips_as_strings() {
        let json =
            serde_json::to_string(&(cidr("10.0.0.1/8"), MacAddr([2, 0, 0, 0, 0, 1]))).unwrap();
        assert_eq!(json, r#"["10.0.0.1/8","02:00:00:00:00:01"]"#);
        let json = serde_json::to_string(&cidr6("2001:db8::1/64")).unwrap();
        assert_eq!(json, r#""2001:db8::1/64""#);
        let back: Ipv6Cidr = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cidr6("2001:db8::1/64"));
        let back: (Ipv4Cidr, MacAddr, PortRange, XdpMode, ZeroCopy) =
            serde_json::from_str(r#"["10.0.0.1/8","02:00:00:00:00:01","1-2","generic","off"]"#)
                .unwrap();
        assert_eq!(back.2, PortRange { first: 1, last: 2 });
        assert_eq!(back.3, XdpMode::Generic);
        assert_eq!(back.4, ZeroCopy::Off);
    }
}
