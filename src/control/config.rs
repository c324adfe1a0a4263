//! Configuration schema (TOML) and validation.
//!
//! The schema is the README's "Configuration reference". [`Config::from_toml_str`] parses a
//! document and validates it; every mistake is reported (never only the first), each with a
//! path made of the TOML table names and 0-based indexes, for example
//! `route[2].via: 198.51.100.1 is not on-link on any port`.
//!
//! Parsing happens per section and per array element, so type errors in different elements
//! are all reported too, each with its line and column. Semantic validation runs once the
//! whole document has the right types.
//!
//! Dual stack: `port.addresses` and `[[route]]` take both families in the TOML; in code
//! they are split into [`PortCfg::addresses`] / [`PortCfg::addresses6`] and
//! [`Config::routes`] / [`Config::routes6`], and written back together.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

mod bgp;
mod ipv6;
mod parse;
mod permissions;
mod policy;
mod types;
mod validate;
mod vrrp;

#[cfg(test)]
mod tests;

pub use bgp::{AnnounceCfg, BgpCfg, BgpNeighborCfg};
pub use ipv6::{MAX_RDNSS, ProxyNdpCfg, RaCfg, Route6Cfg};
pub use permissions::unsafe_permissions;
pub use policy::{
    AclAction, AclCfg, AclRuleCfg, Direction, MAX_ACL_COUNTERS, MAX_ACL_RULES, PortList, Protocol,
    QosCfg,
};
use types::IpCidr;
pub use types::{
    Ipv4Cidr, Ipv6Cidr, MacAddr, PollMode, PortRange, XdpMode, ZeroCopy, link_local_from_mac,
};
pub use vrrp::{MAX_VRRP_ADDRESSES, MAX_VRRP_GROUPS, VrrpCfg};

/// Most poll-mode workers (and queues per port) a configuration may ask for.
pub const MAX_WORKERS: usize = 64;
/// A batch holds at most this many frames.
pub const MAX_BATCH_SIZE: usize = 64;
/// RFC 791 section 3.1: every internet module must forward a 68-byte datagram unfragmented.
pub const MIN_MTU: u16 = 68;
/// AF_XDP frames are 4 KiB by default; the receive headroom and the Ethernet header share
/// them with the IP packet, so an MTU of 3800 is the most that always fits.
pub const MAX_MTU: u16 = max_mtu(crate::io::FRAME_SIZE);

/// The largest port MTU frames of `frame_size` bytes hold: the frame less the receive
/// headroom (256), the Ethernet header and 26 bytes to spare. 3800 for 4 KiB frames, 1752
/// for 2 KiB.
pub const fn max_mtu(frame_size: usize) -> u16 {
    (frame_size - crate::io::RX_HEADROOM - 40) as u16
}
/// RFC 8926 section 3.4: the Virtual Network Identifier is 24 bits.
pub const MAX_VNI: u32 = 0xff_ffff;

/// A parsed and validated configuration.
///
/// Serialises (to JSON for the HTTP API) with the TOML table names as keys; `control.token`
/// is never written out in clear. IPv4 and IPv6 routes are both written under `route` (the
/// IPv4 ones first).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dataplane: Dataplane,
    pub control: Control,
    pub limits: Limits,
    /// `[[port]]`.
    pub ports: Vec<PortCfg>,
    /// The IPv4 elements of `[[route]]`.
    pub routes: Vec<RouteCfg>,
    /// The IPv6 elements of `[[route]]`.
    pub routes6: Vec<Route6Cfg>,
    pub proxy_arp: Vec<ProxyArpCfg>,
    /// `[[proxy_ndp]]`: the IPv6 counterpart of `proxy_arp`.
    pub proxy_ndp: Vec<ProxyNdpCfg>,
    pub tunnel: Option<TunnelCfg>,
    pub chassis: Vec<ChassisCfg>,
    /// `[[network]]`.
    pub networks: Vec<NetworkCfg>,
    /// `[[endpoint]]`.
    pub endpoints: Vec<EndpointCfg>,
    /// `[[floating_ip]]`.
    pub floating_ips: Vec<FloatingIpCfg>,
    pub snat: Vec<SnatCfg>,
    /// `[[acl]]`.
    pub acls: Vec<AclCfg>,
    /// VRRPv3 groups (RFC 5798): the active/standby pair.
    pub vrrp: Vec<VrrpCfg>,
    /// Announcements through BIRD.
    pub bgp: Option<BgpCfg>,
}

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Destructured in full, so that a new field does not compile until it is written here.
        let Config {
            dataplane,
            control,
            limits,
            ports,
            routes,
            routes6,
            proxy_arp,
            proxy_ndp,
            tunnel,
            chassis,
            networks,
            endpoints,
            floating_ips,
            snat,
            acls,
            vrrp,
            bgp,
        } = self;
        let mut s = serializer.serialize_struct("Config", 16)?;
        s.serialize_field("dataplane", dataplane)?;
        s.serialize_field("control", control)?;
        s.serialize_field("limits", limits)?;
        s.serialize_field("port", ports)?;
        s.serialize_field("route", &Routes(routes, routes6))?;
        s.serialize_field("proxy_arp", proxy_arp)?;
        s.serialize_field("proxy_ndp", proxy_ndp)?;
        s.serialize_field("tunnel", tunnel)?;
        s.serialize_field("chassis", chassis)?;
        s.serialize_field("network", networks)?;
        s.serialize_field("endpoint", endpoints)?;
        s.serialize_field("floating_ip", floating_ips)?;
        s.serialize_field("snat", snat)?;
        s.serialize_field("acl", acls)?;
        s.serialize_field("vrrp", vrrp)?;
        s.serialize_field("bgp", bgp)?;
        s.end()
    }
}

/// Both families of routes as the one `route` array.
struct Routes<'a>(&'a [RouteCfg], &'a [Route6Cfg]);

impl Serialize for Routes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len() + self.1.len()))?;
        for r in self.0 {
            seq.serialize_element(r)?;
        }
        for r in self.1 {
            seq.serialize_element(r)?;
        }
        seq.end()
    }
}

impl Config {
    /// Parses a TOML document and validates it.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigErrors> {
        let config = parse::parse(s)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path` and parses it with [`Config::from_toml_str`]. A file that cannot be read is
    /// reported as one error whose path is the file name.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read the configuration: {e}"),
            )])
        })?;
        Config::from_toml_str(&text)
    }

    /// Checks every rule on a configuration built or changed in code (for example after the
    /// HTTP API added a floating IP). [`Config::from_toml_str`] already calls it.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let errors = validate::validate(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Index in [`Config::ports`] of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// Index in [`Config::networks`] of the network called `name`.
    pub fn network_index(&self, name: &str) -> Option<usize> {
        self.networks.iter().position(|n| n.name == name)
    }
}

/// `[dataplane]`: the poll-mode workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dataplane {
    /// Worker *i* serves queue *i* of every port.
    pub workers: usize,
    /// Optional CPU pin list, one distinct CPU per worker.
    pub cpus: Option<Vec<usize>>,
    /// Frames per rx burst; a batch holds at most 64.
    pub batch_size: usize,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// How an idle worker waits: "adaptive" (default) or "busy".
    pub poll: PollMode,
    /// Received packets try the one-pass fast path before the stages (default). Off, every
    /// packet takes the stages: slower, with the same bytes and counters. A reload applies it.
    pub fast_path: bool,
    /// Preferred busy polling on every socket: the kernel's receive work for a worker's
    /// queues is asked to run on the worker's own core, when its RX rings are empty. Off by
    /// default: on veth the kernel gives XDP queues no NAPI id, so it cannot reach them
    /// (bench/HISTORY.md, "The I/O path under the fair method").
    pub busy_poll: bool,
    /// NAPI deferral on every port's interface (`napi_defer_hard_irqs`, `gro_flush_timeout`
    /// in µs); both 0 leave the interfaces as they are. What was set is put back at stop.
    pub napi_defer_hard_irqs: u32,
    pub gro_flush_timeout_us: u32,
    /// Bytes per UMEM frame: 4096 (default) or 2048 (half the memory; MTU at most 1752).
    pub frame_size: usize,
    /// Back each worker's UMEM with hugepages; vgate refuses to start when the kernel has
    /// not enough reserved.
    pub hugepages: bool,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: 1,
            cpus: None,
            batch_size: 64,
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            poll: PollMode::Adaptive,
            fast_path: true,
            busy_poll: false,
            napi_defer_hard_irqs: 2,
            gro_flush_timeout_us: 50,
            frame_size: crate::io::FRAME_SIZE,
            hugepages: false,
        }
    }
}

/// `[control]`: the HTTP listener and ARP announcement timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    /// HTTP address for `/metrics` and `/api/v1`.
    pub listen: SocketAddr,
    /// Bearer token (RFC 6750); required when `listen` is not a loopback address.
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<String>,
    pub garp: Garp,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            listen: SocketAddr::from(([127, 0, 0, 1], 9477)),
            token: None,
            garp: Garp::default(),
        }
    }
}

fn serialize_redacted<S: Serializer>(token: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match token {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_none(),
    }
}

/// Gratuitous ARP announcements (RFC 5227 section 3) sent when an address appears on a port
/// or a floating IP is associated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Garp {
    pub count: u32,
    pub interval_ms: u64,
}

impl Default for Garp {
    /// RFC 5227 section 1.1: ANNOUNCE_NUM 2, ANNOUNCE_INTERVAL 2 s; we send one more, sooner,
    /// because a stale upstream ARP cache costs traffic after a floating IP moves.
    fn default() -> Self {
        Garp {
            count: 3,
            interval_ms: 1000,
        }
    }
}

/// `[limits]`: bounds on the per-worker state a flood could otherwise grow (an extension of
/// the design contract). Every bound is per worker; the tables are allocated at start, so a
/// change needs a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Neighbour entries, resolved and resolving.
    pub neighbors: usize,
    /// Next hops being resolved (ARP asked, no answer yet) at the same time.
    pub unresolved_neighbors: usize,
    /// Packets held for one unresolved next hop (RFC 1122 section 2.3.2.2: at least one).
    pub held_per_neighbor: usize,
    /// Packets held for all unresolved next hops together; each holds a UMEM frame.
    pub held_packets: usize,
    /// ICMP errors sent per second (RFC 1812 section 4.3.2.8); 0 sends none.
    pub icmp_errors_per_sec: u64,
    /// ICMP errors that may go out back to back before the rate applies.
    pub icmp_errors_burst: u64,
    /// Flows stateful ACLs (allow-related) track; 32 bytes each, 5/4 of them reserved the
    /// first time an ACL needs them.
    pub acl_sessions: usize,
    /// Virtual reassembly for SNAT: datagrams tracked, fragments held (each keeps a UMEM
    /// frame) and how long a datagram is remembered after its last fragment.
    pub reassembly_datagrams: usize,
    pub reassembly_fragments: usize,
    pub reassembly_timeout_ms: u64,
}

impl Default for Limits {
    /// The values vgate used before they were configurable; the ICMP rate is Linux's
    /// `icmp_msgs_per_sec` / `icmp_msgs_burst`.
    fn default() -> Self {
        let n = crate::tables::neighbor::NeighborConfig::default();
        let r = crate::tables::reass::ReassemblyConfig::default();
        Limits {
            neighbors: n.max_entries,
            unresolved_neighbors: n.max_unresolved,
            held_per_neighbor: n.hold_per_entry,
            held_packets: n.max_held,
            icmp_errors_per_sec: crate::pipeline::ICMP_RATE_PER_SEC,
            icmp_errors_burst: crate::pipeline::ICMP_BURST,
            acl_sessions: crate::pipeline::DEFAULT_ACL_SESSIONS,
            reassembly_datagrams: r.datagrams,
            reassembly_fragments: r.fragments,
            reassembly_timeout_ms: r.timeout_ns / 1_000_000,
        }
    }
}

/// `[[port]]`: a kernel interface driven through AF_XDP.
///
/// The TOML key `addresses` takes both families; they are split into `addresses` and
/// `addresses6`, and written back together under `addresses` (IPv4 first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PortToml", into = "PortToml")]
pub struct PortCfg {
    /// Logical name used by every other section.
    pub name: String,
    /// Kernel interface to attach to.
    pub iface: String,
    /// Default: the interface MAC.
    pub mac: Option<MacAddr>,
    /// Our IPv4 addresses on this port, with the subnet length (host bits set).
    pub addresses: Vec<Ipv4Cidr>,
    /// Our IPv6 addresses on this port (global or unique local), with the subnet length. The
    /// link-local address is not configured: it is [`link_local_from_mac`] of the port MAC.
    pub addresses6: Vec<Ipv6Cidr>,
    pub mtu: u16,
    /// Policy routing: packets arriving here are looked up in this table (default "main").
    pub route_table: Option<String>,
    /// Sender address for ARP requests on a port with no address of its own.
    pub arp_source: Option<Ipv4Addr>,
    /// The node's kernel's own address on this interface (BGP, BFD, SSH): vgate's XDP
    /// program passes ARP for it and IPv4 to it to the kernel stack, the rest to vgate.
    pub host_address: Option<Ipv4Cidr>,
}

/// `[[port]]` as written: one `addresses` list of both families.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortToml {
    name: String,
    iface: String,
    #[serde(default)]
    mac: Option<MacAddr>,
    #[serde(default)]
    addresses: Vec<IpCidr>,
    #[serde(default = "default_mtu")]
    mtu: u16,
    #[serde(default)]
    route_table: Option<String>,
    #[serde(default)]
    arp_source: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_address: Option<Ipv4Cidr>,
}

impl From<PortToml> for PortCfg {
    fn from(p: PortToml) -> PortCfg {
        let mut addresses = Vec::new();
        let mut addresses6 = Vec::new();
        for a in p.addresses {
            match a {
                IpCidr::V4(a) => addresses.push(a),
                IpCidr::V6(a) => addresses6.push(a),
            }
        }
        PortCfg {
            name: p.name,
            iface: p.iface,
            mac: p.mac,
            addresses,
            addresses6,
            mtu: p.mtu,
            route_table: p.route_table,
            arp_source: p.arp_source,
            host_address: p.host_address,
        }
    }
}

impl From<PortCfg> for PortToml {
    fn from(p: PortCfg) -> PortToml {
        let PortCfg {
            name,
            iface,
            mac,
            addresses,
            addresses6,
            mtu,
            route_table,
            arp_source,
            host_address,
        } = p;
        let v4 = addresses.into_iter().map(IpCidr::V4);
        PortToml {
            name,
            iface,
            mac,
            addresses: v4.chain(addresses6.into_iter().map(IpCidr::V6)).collect(),
            mtu,
            route_table,
            arp_source,
            host_address,
        }
    }
}

fn default_mtu() -> u16 {
    1500
}

/// `[[route]]`: one static IPv4 route ([`Route6Cfg`] is an IPv6 one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    #[serde(default = "default_table")]
    pub table: String,
    pub prefix: Ipv4Cidr,
    /// Next hop, resolved by ARP; `None` for an on-link route.
    #[serde(default)]
    pub via: Option<Ipv4Addr>,
    /// Optional when `via` is on-link of exactly one port.
    #[serde(default)]
    pub port: Option<String>,
    /// Position of the element in the TOML `[[route]]` array, which holds both families;
    /// errors name it. Not written out.
    #[serde(skip)]
    pub index: usize,
}

impl Default for RouteCfg {
    /// An on-link default route in "main" (for struct update syntax; it needs a `port` or a
    /// `via` to validate).
    fn default() -> Self {
        RouteCfg {
            table: default_table(),
            prefix: Ipv4Cidr {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            },
            via: None,
            port: None,
            index: 0,
        }
    }
}

/// The table every port uses unless it names another.
pub const MAIN_TABLE: &str = "main";

fn default_table() -> String {
    MAIN_TABLE.to_string()
}

/// `[[proxy_arp]]`: answer ARP on `port` for every address in `prefix` with the port MAC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyArpCfg {
    pub port: String,
    pub prefix: Ipv4Cidr,
}

/// `[tunnel]`: the Geneve underlay (RFC 8926).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelCfg {
    /// Our VTEP address: one of the ports' addresses.
    pub local: Ipv4Addr,
    /// RFC 8926 section 3.3: IANA port 6081.
    #[serde(default = "default_geneve_port")]
    pub udp_port: u16,
    /// RFC 8926 section 3.3: a zero UDP checksum is allowed over IPv4.
    #[serde(default)]
    pub udp_checksum: bool,
    /// Lower the MSS option of TCP SYNs entering or leaving a Geneve network to what fits
    /// the tenant MTU, so endpoints with a larger interface MTU never send segments the
    /// tunnel cannot carry (extension).
    #[serde(default = "default_true")]
    pub tcp_mss_clamp: bool,
}

fn default_true() -> bool {
    true
}

fn default_geneve_port() -> u16 {
    6081
}

/// `[[chassis]]`: a compute node reachable through the underlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChassisCfg {
    pub name: String,
    pub address: Ipv4Addr,
}

/// `[[network]]`: a tenant network, either behind Geneve (`vni`) or flat on a port (`port`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCfg {
    pub name: String,
    #[serde(default)]
    pub vni: Option<u32>,
    #[serde(default)]
    pub port: Option<String>,
    pub subnet: Ipv4Cidr,
    /// The router's address in the network; answered in ARP.
    pub gateway: Ipv4Addr,
    pub gateway_mac: MacAddr,
    /// `[[acl]]` applied to the network's traffic, both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<QosCfg>,
    /// The network's IPv6 prefix (canonical; a /64 when router advertisements are on).
    /// IPv6 is routed, never translated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Cidr>,
    /// The router's IPv6 address in the network; see [`NetworkCfg::gateway6_addr`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// Router advertisements (RFC 4861 section 6), sent only when `subnet6` is set.
    #[serde(default)]
    pub ra: RaCfg,
}

impl NetworkCfg {
    /// The router's IPv6 address in the network: `gateway6`, else the link-local address of
    /// `gateway_mac` ([`link_local_from_mac`]); `None` without `subnet6`.
    pub fn gateway6_addr(&self) -> Option<Ipv6Addr> {
        self.subnet6?;
        Some(
            self.gateway6
                .unwrap_or_else(|| link_local_from_mac(self.gateway_mac)),
        )
    }

    /// True when router advertisements are sent for this network: it has `subnet6` and
    /// `ra.enabled`.
    pub fn sends_ra(&self) -> bool {
        self.subnet6.is_some() && self.ra.enabled
    }
}

/// `[[endpoint]]`: a VM port (L2-population table entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointCfg {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// Where the endpoint lives; required on a Geneve network, absent on a flat one.
    #[serde(default)]
    pub chassis: Option<String>,
    /// A VIP whose location follows gratuitous ARPs (an OVN virtual port).
    #[serde(default, rename = "virtual")]
    pub r#virtual: bool,
    /// The endpoint's IPv6 address, inside its network's `subnet6`; answered in NDP with
    /// `mac` as `ip` is in ARP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
}

/// `[[floating_ip]]`: 1:1 DNAT + SNAT (OVN dnat_and_snat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpCfg {
    pub external: Ipv4Addr,
    pub internal: Ipv4Addr,
    pub network: String,
    /// External MAC answered in ARP (distributed floating IP); default: the port MAC.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// `[[acl]]` applied to the traffic this floating IP translates, both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<QosCfg>,
}

/// `[[snat]]`: masquerade (PAT) everything else leaving `network`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnatCfg {
    pub network: String,
    pub external: Ipv4Addr,
    #[serde(default)]
    pub ports: PortRange,
    /// Bound on the session table.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// RFC 5382 REQ-5 and RFC 7857 section 2.2: at least 2 h 4 min for established TCP.
    #[serde(default = "default_tcp_established_timeout")]
    pub tcp_established_timeout_s: u64,
    /// RFC 5382 REQ-5 / RFC 7857 section 2.2: at least 4 min for partially open or closing TCP.
    #[serde(default = "default_tcp_transitory_timeout")]
    pub tcp_transitory_timeout_s: u64,
    /// RFC 4787 REQ-5: at least 2 min, 5 min recommended.
    #[serde(default = "default_udp_timeout")]
    pub udp_timeout_s: u64,
    /// RFC 5508 REQ-1: at least 60 s for ICMP query sessions.
    #[serde(default = "default_icmp_timeout")]
    pub icmp_timeout_s: u64,
}

fn default_max_sessions() -> usize {
    1_000_000
}

fn default_tcp_established_timeout() -> u64 {
    7440
}

fn default_tcp_transitory_timeout() -> u64 {
    240
}

fn default_udp_timeout() -> u64 {
    300
}

fn default_icmp_timeout() -> u64 {
    60
}

/// Everything wrong with a configuration. `Display` writes one error per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One mistake: where (`port[1].addresses[0]`) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}
