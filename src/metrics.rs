//! Drop reasons, per-worker counters and the Prometheus exposition.
//!
//! Every drop names its reason, declared once in [`drop_reasons!`] (the VPP `foo_error.def`
//! pattern): the table generates the enum, the `drops_total{stage,reason}` labels and the
//! README table. A stage cannot drop a packet without one of these.
//!
//! Counters are per worker and written by that worker only, with plain relaxed load + store
//! (no read-modify-write, no lock, no shared cache line with another writer); stages add their
//! batch-local sums once per batch. A scrape sums the workers' counters ([`families`], behind
//! the control thread's `prometheus` collector) and the `prometheus` crate's text encoder
//! writes them.

use prometheus::TextEncoder;
use prometheus::proto::{self, MetricFamily, MetricType};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Ports a worker can serve.
pub const MAX_PORTS: usize = 16;

/// Floating IPs with their own counters (`fip_packets_total`).
pub const MAX_FIPS: usize = 4096;

macro_rules! drop_reasons {
    ($( $variant:ident => ($stage:literal, $label:literal, $help:literal), )*) => {
        /// Why a packet was dropped. Stage and label form the metric labels.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $( $variant, )* }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];
            pub const COUNT: usize = Self::ALL.len();

            /// The pipeline stage that drops for this reason (`stage` label).
            pub fn stage(self) -> &'static str {
                match self { $( DropReason::$variant => $stage, )* }
            }

            /// The `reason` label.
            pub fn label(self) -> &'static str {
                match self { $( DropReason::$variant => $label, )* }
            }

            /// What happened and what to look at, for operators.
            pub fn help(self) -> &'static str {
                match self { $( DropReason::$variant => $help, )* }
            }
        }
    };
}

drop_reasons! {
    L2Runt => ("l2_input", "runt", "Frame shorter than an Ethernet header."),
    L2NotForUs => ("l2_input", "not_for_us", "Destination MAC is neither the port's MAC, a MAC vgate answers ARP with, nor broadcast."),
    L2Multicast => ("l2_input", "multicast", "Multicast destination MAC (vgate does not route multicast)."),
    L2UnknownEthertype => ("l2_input", "unknown_ethertype", "EtherType other than IPv4 and ARP (VLAN tags included)."),
    L2Ipv6 => ("l2_input", "ipv6", "IPv6 frame on a configuration without IPv6 (no IPv6 address, route, proxy_ndp or subnet6)."),
    ArpMalformed => ("arp", "malformed", "ARP packet that is truncated or not Ethernet/IPv4 (RFC 826)."),
    ArpNotOurs => ("arp", "not_ours", "ARP request for an address vgate neither owns nor answers for (never answered)."),
    ArpLearned => ("arp", "learned", "ARP reply or announcement consumed after updating the neighbour table (not an error)."),
    ArpIgnored => ("arp", "ignored", "ARP reply or announcement for a sender vgate has no reason to learn (not on-link, or not asked for)."),
    ArpSpoofed => ("arp", "spoofed", "ARP packet claiming an address vgate owns or answers for, from another MAC: not learned."),
    Ip4TooShort => ("ip4_input", "too_short", "Packet shorter than an IPv4 header or than its own length fields (RFC 1812 5.2.2)."),
    Ip4BadVersion => ("ip4_input", "bad_version", "IP version field is not 4 (RFC 1812 5.2.2)."),
    Ip4BadHeaderLength => ("ip4_input", "bad_header_length", "IHL below 5 or total length below the header length (RFC 1812 5.2.2)."),
    Ip4BadChecksum => ("ip4_input", "bad_checksum", "IPv4 header checksum does not verify (RFC 1812 5.2.2)."),
    Ip4MartianSource => ("ip4_input", "martian_source", "Source is 0/8, 127/8, multicast, reserved or broadcast (RFC 1812 5.3.7)."),
    Ip4OwnSource => ("ip4_input", "own_source", "Source is one of vgate's own addresses (a port address or a network gateway): spoofed (RFC 1812 5.3.7)."),
    Ip4MartianDestination => ("ip4_input", "martian_destination", "Destination is 0/8, 127/8, multicast, reserved or limited broadcast (RFC 1812 5.3.7)."),
    Ip4LocalFragment => ("ip4_input", "local_fragment", "Fragment addressed to vgate itself (it does not reassemble)."),
    Ip4LocalUnsupported => ("ip4_input", "local_unsupported", "Non-ICMP packet for vgate's own address: answered with port unreachable (UDP, TCP) or protocol unreachable."),
    Ip4LocalIcmp => ("ip4_input", "local_icmp", "ICMP for vgate's own address other than echo request, or with a bad checksum."),
    RouteNoRoute => ("route", "no_route", "No route to the destination; an ICMP net unreachable is sent (RFC 1812 5.2.7.1)."),
    RouteTtlExpired => ("route", "ttl_expired", "TTL reached zero while forwarding; an ICMP time exceeded is sent (RFC 1812 5.3.1)."),
    RouteDirectedBroadcast => ("route", "directed_broadcast", "Destination is the broadcast address of a connected subnet (not forwarded, RFC 2644)."),
    RewriteNeighborQueueFull => ("rewrite", "neighbor_queue_full", "Next hop still resolving and its hold queue is full (limits.held_per_neighbor), or the worker already holds limits.held_packets packets."),
    RewriteNeighborUnresolved => ("rewrite", "neighbor_unresolved", "Next hop did not answer ARP; an ICMP host unreachable is sent (RFC 1812 5.2.7.1)."),
    RewriteNeighborTableFull => ("rewrite", "neighbor_table_full", "No room for another unresolved next hop: the worker has limits.neighbors entries, or limits.unresolved_neighbors being resolved."),
    RewriteNoFrames => ("rewrite", "no_frames", "No free frame to build a packet (fragment or ARP request)."),
    MtuFragNeeded => ("mtu", "frag_needed", "Larger than the egress MTU with DF set; an ICMP fragmentation needed is sent (RFC 1191)."),
    IcmpRateLimited => ("icmp_error", "rate_limited", "ICMP error suppressed by the per-worker rate limit, limits.icmp_errors_per_sec and limits.icmp_errors_burst (RFC 1812 4.3.2.8)."),
    IcmpNotAllowed => ("icmp_error", "not_allowed", "No ICMP error may be sent about this packet: an ICMP error, a non-first fragment, or a broadcast/multicast/martian source (RFC 1812 4.3.2.7)."),
    IcmpNoSourceAddress => ("icmp_error", "no_source_address", "No address of vgate to send the ICMP error from."),
    NatNoSession => ("nat", "no_session", "Packet to an SNAT address (or an ICMP error from a tenant host) that matches no live session."),
    NatPortExhausted => ("nat", "port_exhausted", "New SNAT session refused: every port of this worker's block is in use (existing sessions keep working)."),
    NatSessionTableFull => ("nat", "session_table_full", "New SNAT session refused: the table holds snat.max_sessions already."),
    NatUnsupportedProtocol => ("nat", "unsupported_protocol", "Tenant packet for SNAT that is not TCP, UDP or ICMP echo (PAT needs a port or identifier)."),
    NatFragment => ("nat", "fragment", "First fragment of an SNAT datagram too short to hold its ports (a session cannot be found or made for it)."),
    NatReassemblyFull => ("nat", "reassembly_full", "Fragment of an SNAT datagram refused: limits.reassembly_datagrams datagrams tracked, limits.reassembly_fragments fragments held, or 64 held for this datagram already."),
    NatReassemblyTimeout => ("nat", "reassembly_timeout", "Fragment held for an SNAT datagram whose first fragment did not come within limits.reassembly_timeout_ms."),
    NatSpoofedSource => ("nat", "spoofed_source", "Packet from the wire whose source is one of vgate's floating IPs or SNAT addresses: only vgate sends from those (ingress filtering, RFC 2827)."),
    NatHandoffQueueFull => ("nat", "handoff_queue_full", "Packet for another worker (SNAT return traffic of its session, or a packet of a stateful ACL flow it tracks) whose handoff queue was full."),
    GeneveUnknownChassis => ("geneve", "unknown_chassis", "Geneve packet from an underlay address that is no configured chassis."),
    GeneveMalformed => ("geneve", "malformed", "Geneve packet that is truncated, has a bad option list, a UDP length that does not fit, or carries no Ethernet frame (RFC 8926 3.4)."),
    GeneveBadVersion => ("geneve", "bad_version", "Geneve version other than 0 (RFC 8926 3.4)."),
    GeneveCriticalOption => ("geneve", "critical_option", "Geneve packet with a critical option vgate does not understand (RFC 8926 3.5)."),
    GeneveUnknownVni => ("geneve", "unknown_vni", "Geneve packet whose VNI is no configured tenant network."),
    GeneveSpoofedSource => ("geneve", "spoofed_source", "Inner source outside the subnet (IPv4) or subnet6 (IPv6; link-local and unspecified sources aside) of the tenant network the VNI names."),
    GeneveNoEndpoint => ("geneve", "no_endpoint", "Packet routed to a Geneve network for an address that is no configured endpoint."),
    GeneveNoUnderlayRoute => ("geneve", "no_underlay_route", "No underlay route to the endpoint's chassis, or no headroom for the outer headers."),
    AclDenied => ("acl", "denied", "Dropped by an ACL of its floating IP or network: a drop rule, or the default (acl_packets_total says which)."),
    AclSessionTableFull => ("acl", "session_table_full", "New flow of an allow-related rule refused: the worker tracks limits.acl_sessions flows already."),
    QosRateExceeded => ("qos", "rate_exceeded", "Over the rate limit (qos) of its floating IP or network (qos_dropped_packets_total says which)."),
    VrrpAdvert => ("vrrp", "advert", "VRRP advertisement handed to the election (not an error; vrrp_adverts_received_total counts them per group)."),
    VrrpBadTtl => ("vrrp", "bad_ttl", "VRRP advertisement whose IP TTL is not 255: it crossed a router (RFC 5798 5.1.1.3, 7.1)."),
    VrrpBadVersion => ("vrrp", "bad_version", "VRRP packet that is not a version 3 advertisement (RFC 5798 7.1)."),
    VrrpBadChecksum => ("vrrp", "bad_checksum", "VRRP advertisement whose checksum does not verify (RFC 5798 7.1)."),
    VrrpMalformed => ("vrrp", "malformed", "VRRP advertisement that is truncated, or has VRID 0 or an interval of 0 (RFC 5798 7.1)."),
    VrrpOffSegment => ("vrrp", "off_segment", "VRRP advertisement from a source outside the receiving port's subnets: no peer of the group sends from there."),
    VrrpOtherGroup => ("vrrp", "other_group", "VRRP advertisement for a VRID not configured on the receiving port (another router pair on the segment; RFC 5798 7.1)."),
    VrrpQueueFull => ("vrrp", "queue_full", "VRRP advertisement dropped because the election's inbox was full (a flood of adverts)."),
    VrrpBackup => ("vrrp", "backup", "Frame or ARP packet for an address or MAC a VRRP group owns, received while this node is the group's backup."),
    Ip6TooShort => ("ip6_input", "too_short", "Packet shorter than an IPv6 header or than its payload length (RFC 8200 section 3)."),
    Ip6BadVersion => ("ip6_input", "bad_version", "IP version field is not 6 on an IPv6 EtherType."),
    Ip6Jumbogram => ("ip6_input", "jumbogram", "Payload length 0 (a jumbogram, RFC 2675): never on an Ethernet link."),
    Ip6MartianSource => ("ip6_input", "martian_source", "Source is multicast or loopback, or unspecified outside duplicate address detection (RFC 4291 section 2.5.2, RFC 4861 section 7.1.1)."),
    Ip6OwnSource => ("ip6_input", "own_source", "Source is one of vgate's own IPv6 addresses: spoofed."),
    Ip6MartianDestination => ("ip6_input", "martian_destination", "Destination is unspecified or loopback (RFC 4291 section 2.5.2, 2.5.3)."),
    Ip6Multicast => ("ip6_input", "multicast", "IPv6 multicast other than all-nodes, all-routers and solicited-node groups (vgate does not route multicast)."),
    Ip6LinkLocalScope => ("ip6_input", "link_local_scope", "Link-local source or destination on a packet that is not for vgate: never forwarded off its link (RFC 4291 section 2.5.6)."),
    Ip6BadExtensionHeaders => ("ip6_input", "bad_extension_headers", "Extension headers that are truncated, out of order or more than 8, for vgate itself (RFC 8200 section 4, RFC 7112)."),
    Ip6LocalUnsupported => ("ip6_input", "local_unsupported", "Non-ICMPv6 packet for one of vgate's addresses: answered with port unreachable (UDP, TCP) or parameter problem (RFC 4443 section 3.1, 3.4)."),
    Ip6LocalIcmp => ("ip6_input", "local_icmp", "ICMPv6 for vgate's own address other than echo request and Neighbor Discovery, a fragment of one, or with a bad checksum."),
    Ip6NoRoute => ("ip6_forward", "no_route", "No IPv6 route to the destination; an ICMPv6 no route to destination is sent (RFC 4443 section 3.1)."),
    Ip6HopLimitExpired => ("ip6_forward", "hop_limit_expired", "Hop limit reached zero while forwarding; an ICMPv6 time exceeded is sent (RFC 4443 section 3.3)."),
    Ip6TooBig => ("ip6_forward", "too_big", "Larger than the egress MTU (IPv6 is never fragmented in transit); an ICMPv6 packet too big is sent (RFC 8200 section 5, RFC 4443 section 3.2)."),
    Ip6NeighborQueueFull => ("ip6_forward", "neighbor_queue_full", "IPv6 next hop still resolving and its hold queue is full (limits.held_per_neighbor), or the worker already holds limits.held_packets packets."),
    Ip6NeighborUnresolved => ("ip6_forward", "neighbor_unresolved", "IPv6 next hop did not answer neighbour solicitations; an ICMPv6 address unreachable is sent (RFC 4861 section 7.2.2)."),
    Ip6NeighborTableFull => ("ip6_forward", "neighbor_table_full", "No room for another unresolved IPv6 next hop (limits.neighbors, limits.unresolved_neighbors)."),
    NdpMalformed => ("ndp", "malformed", "Neighbor Discovery message that fails the receive checks: hop limit not 255, bad checksum, code, length or options (RFC 4861 sections 6.1, 7.1)."),
    NdpNotOurs => ("ndp", "not_ours", "Neighbour solicitation for an address vgate neither owns nor answers for (never answered)."),
    NdpLearned => ("ndp", "learned", "Neighbour advertisement or solicitation consumed after updating the neighbour table (not an error)."),
    NdpIgnored => ("ndp", "ignored", "Neighbour advertisement for an address vgate has no entry for and did not ask about (RFC 4861 section 7.2.5)."),
    NdpSpoofed => ("ndp", "spoofed", "Neighbour advertisement or solicitation claiming an address vgate owns or answers for: not learned."),
    NdpRouterSolicitation => ("ndp", "router_solicitation", "Router solicitation not answered: no network with RAs on its link for its source, or over the ICMP error rate limit (answered ones become the advertisement)."),
    NdpRouterAdvert => ("ndp", "router_advert", "Router advertisement from another router: vgate configures nothing from RAs."),
    NdpRedirect => ("ndp", "redirect", "Redirect message: a router ignores them (RFC 4861 section 8.1)."),
    Icmp6RateLimited => ("icmp6_error", "rate_limited", "ICMPv6 error suppressed by the per-worker rate limit shared with ICMP (RFC 4443 section 2.4 (f))."),
    Icmp6NotAllowed => ("icmp6_error", "not_allowed", "No ICMPv6 error may be sent about this packet: an ICMPv6 error, or to multicast, or from an unspecified, multicast or link-local-beyond-scope source (RFC 4443 section 2.4 (e))."),
    Icmp6NoSourceAddress => ("icmp6_error", "no_source_address", "No IPv6 address of vgate to send the ICMPv6 error from."),
    TxRingFull => ("tx", "ring_full", "The port's transmit ring was full."),
    Internal => ("pipeline", "internal", "A packet no stage finished with: a vgate bug, counted instead of leaking the frame. Please report it with the configuration."),
}

impl DropReason {
    /// The README table, generated from the one declaration.
    pub fn markdown_table() -> String {
        let mut s = String::from("| stage | reason | meaning |\n| --- | --- | --- |\n");
        for r in Self::ALL {
            let _ = writeln!(s, "| {} | {} | {} |", r.stage(), r.label(), r.help());
        }
        s
    }
}

/// Who an ARP reply was for (`arp_replies_total{kind}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ArpKind {
    Router,
    Fip,
    Proxy,
    Endpoint,
}

impl ArpKind {
    pub const ALL: [ArpKind; 4] = [
        ArpKind::Router,
        ArpKind::Fip,
        ArpKind::Proxy,
        ArpKind::Endpoint,
    ];
    pub fn label(self) -> &'static str {
        match self {
            ArpKind::Router => "router",
            ArpKind::Fip => "fip",
            ArpKind::Proxy => "proxy",
            ArpKind::Endpoint => "endpoint",
        }
    }
}

/// ICMP errors sent (`icmp_errors_total{type}`), by what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IcmpKind {
    TimeExceeded,
    NetUnreachable,
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
    FragNeeded,
    /// ICMPv6 (RFC 4443): time exceeded, hop limit (section 3.3).
    Icmp6TimeExceeded,
    /// Destination unreachable, no route (section 3.1, code 0).
    Icmp6NoRoute,
    /// Destination unreachable, address unreachable (code 3): NDP gave up.
    Icmp6AddressUnreachable,
    /// Destination unreachable, port unreachable (code 4).
    Icmp6PortUnreachable,
    /// Packet too big (section 3.2), with the MTU.
    Icmp6PacketTooBig,
    /// Parameter problem, unrecognized next header (section 3.4, code 1), with the pointer.
    Icmp6ParamProblem,
}

impl IcmpKind {
    pub const ALL: [IcmpKind; 12] = [
        IcmpKind::TimeExceeded,
        IcmpKind::NetUnreachable,
        IcmpKind::HostUnreachable,
        IcmpKind::ProtocolUnreachable,
        IcmpKind::PortUnreachable,
        IcmpKind::FragNeeded,
        IcmpKind::Icmp6TimeExceeded,
        IcmpKind::Icmp6NoRoute,
        IcmpKind::Icmp6AddressUnreachable,
        IcmpKind::Icmp6PortUnreachable,
        IcmpKind::Icmp6PacketTooBig,
        IcmpKind::Icmp6ParamProblem,
    ];
    pub fn label(self) -> &'static str {
        match self {
            IcmpKind::TimeExceeded => "time_exceeded",
            IcmpKind::NetUnreachable => "net_unreachable",
            IcmpKind::HostUnreachable => "host_unreachable",
            IcmpKind::ProtocolUnreachable => "protocol_unreachable",
            IcmpKind::PortUnreachable => "port_unreachable",
            IcmpKind::FragNeeded => "frag_needed",
            IcmpKind::Icmp6TimeExceeded => "icmp6_time_exceeded",
            IcmpKind::Icmp6NoRoute => "icmp6_no_route",
            IcmpKind::Icmp6AddressUnreachable => "icmp6_address_unreachable",
            IcmpKind::Icmp6PortUnreachable => "icmp6_port_unreachable",
            IcmpKind::Icmp6PacketTooBig => "icmp6_packet_too_big",
            IcmpKind::Icmp6ParamProblem => "icmp6_parameter_problem",
        }
    }
    /// ICMP (type, code) on the wire.
    pub fn type_code(self) -> (u8, u8) {
        use crate::wire::icmp::{msg, unreach};
        use crate::wire::icmpv6::{
            msg as msg6, param_problem as param6, time_exceeded as time6, unreach as unreach6,
        };
        match self {
            IcmpKind::TimeExceeded => (msg::TIME_EXCEEDED, 0),
            IcmpKind::NetUnreachable => (msg::DEST_UNREACHABLE, unreach::NET),
            IcmpKind::HostUnreachable => (msg::DEST_UNREACHABLE, unreach::HOST),
            IcmpKind::ProtocolUnreachable => (msg::DEST_UNREACHABLE, unreach::PROTOCOL),
            IcmpKind::PortUnreachable => (msg::DEST_UNREACHABLE, unreach::PORT),
            IcmpKind::FragNeeded => (msg::DEST_UNREACHABLE, unreach::FRAG_NEEDED),
            IcmpKind::Icmp6TimeExceeded => (msg6::TIME_EXCEEDED, time6::HOP_LIMIT),
            IcmpKind::Icmp6NoRoute => (msg6::DST_UNREACHABLE, unreach6::NO_ROUTE),
            IcmpKind::Icmp6AddressUnreachable => {
                (msg6::DST_UNREACHABLE, unreach6::ADDR_UNREACHABLE)
            }
            IcmpKind::Icmp6PortUnreachable => (msg6::DST_UNREACHABLE, unreach6::PORT_UNREACHABLE),
            IcmpKind::Icmp6PacketTooBig => (msg6::PACKET_TOO_BIG, 0),
            IcmpKind::Icmp6ParamProblem => (msg6::PARAM_PROBLEM, param6::NEXT_HEADER),
        }
    }

    /// True for the ICMPv6 kinds.
    pub fn is_v6(self) -> bool {
        self as u8 >= IcmpKind::Icmp6TimeExceeded as u8
    }
}

/// A counter with a single writer: relaxed load + store, no atomic read-modify-write.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
        }
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// One worker's counters. Written by that worker only; read by scrapes.
pub struct WorkerStats {
    pub port_rx_packets: [Counter; MAX_PORTS],
    pub port_rx_bytes: [Counter; MAX_PORTS],
    pub port_tx_packets: [Counter; MAX_PORTS],
    pub port_tx_bytes: [Counter; MAX_PORTS],
    pub drops: [Counter; DropReason::COUNT],
    pub arp_replies: [Counter; 4],
    pub arp_requests_sent: Counter,
    pub garp_sent: Counter,
    /// Neighbour advertisements sent in answer to solicitations, by [`ArpKind`] (router,
    /// proxy, endpoint), and neighbour solicitations sent to resolve next hops.
    pub ndp_advertisements: [Counter; 4],
    pub ndp_solicitations_sent: Counter,
    /// Router advertisements sent (periodic and solicited), and unsolicited neighbour
    /// advertisements (RFC 4861 section 7.2.6).
    pub ra_sent: Counter,
    pub unsolicited_na_sent: Counter,
    pub vrrp_adverts_sent: Counter,
    pub icmp_errors: [Counter; IcmpKind::ALL.len()],
    pub icmp_rate_limited: Counter,
    pub icmp_echo_replies: Counter,
    pub polls_busy: Counter,
    pub polls_idle: Counter,
    /// Times an adaptive worker slept in poll(2) for lack of traffic.
    pub idle_sleeps: Counter,
    pub batch_packets: Counter,
    /// Received packets the fast path carried all the way to transmit.
    pub fast_path: Counter,
    /// Nanoseconds spent in polls that received packets (the worker's busy time).
    pub busy_ns: Counter,
    /// The worker's ports' kernel wake-ups so far ([`crate::io::Wakeups`]), refreshed on the
    /// worker's timer.
    pub tx_kicks: Counter,
    pub rx_wakeups: Counter,
    /// Packets vgate originated (ARP requests, fragments beyond the first); with rx, tx,
    /// drops and held packets this closes the books: rx + generated = tx + drops + held.
    pub generated: Counter,
    /// Packets waiting for ARP resolution right now (gauge).
    pub held: Counter,
    /// Neighbour entries in this worker's table (gauge).
    pub neighbors: Counter,
    /// Per floating IP (by its stable slot): packets translated inbound and outbound.
    pub fip_in: Box<[Counter]>,
    pub fip_out: Box<[Counter]>,
    pub nat_port_exhausted: Counter,
    /// SNAT sessions in this worker's tables (gauge).
    pub nat_sessions: Counter,
    /// Packets handed to / taken from another worker (SNAT return traffic, copied).
    pub handoff_out: Counter,
    pub handoff_in: Counter,
    /// Packets sent into and received from Geneve tunnels (RFC 8926).
    pub geneve_encap: Counter,
    pub geneve_decap: Counter,
    /// TCP SYNs whose MSS option was lowered to fit a tunnel.
    pub tcp_mss_clamped: Counter,
    /// Virtual endpoints moved to another chassis by a gratuitous ARP.
    pub virtual_moves: Counter,
    /// Per ACL counter slot ([`crate::tables::acl::Acl::slot`]): packets decided.
    pub acl: Box<[Counter]>,
    /// Flows stateful ACLs track on this worker (gauge).
    pub acl_flows: Counter,
    /// Per rate-limit target slot and direction (slot * 2 + direction): packets dropped,
    /// and bytes and packets offered (passed or dropped: the demand the shares follow).
    pub qos_dropped: Box<[Counter]>,
    pub qos_offered_bytes: Box<[Counter]>,
    pub qos_offered_packets: Box<[Counter]>,
    /// This worker's share of each target's rate, in 1/65536 (0: an even split). Written by
    /// the control thread (its only writer), read by the worker.
    pub qos_share: Box<[Counter]>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        fn arr<const N: usize>() -> [Counter; N] {
            std::array::from_fn(|_| Counter::default())
        }
        let boxed = || (0..MAX_FIPS).map(|_| Counter::default()).collect();
        let sized = |n: usize| (0..n).map(|_| Counter::default()).collect();
        let qos = 2 * crate::tables::policy::MAX_QOS_TARGETS;
        WorkerStats {
            port_rx_packets: arr(),
            port_rx_bytes: arr(),
            port_tx_packets: arr(),
            port_tx_bytes: arr(),
            drops: arr(),
            arp_replies: arr(),
            arp_requests_sent: Counter::default(),
            garp_sent: Counter::default(),
            ndp_advertisements: arr(),
            ndp_solicitations_sent: Counter::default(),
            ra_sent: Counter::default(),
            unsolicited_na_sent: Counter::default(),
            vrrp_adverts_sent: Counter::default(),
            icmp_errors: arr(),
            icmp_rate_limited: Counter::default(),
            icmp_echo_replies: Counter::default(),
            polls_busy: Counter::default(),
            polls_idle: Counter::default(),
            idle_sleeps: Counter::default(),
            batch_packets: Counter::default(),
            fast_path: Counter::default(),
            busy_ns: Counter::default(),
            tx_kicks: Counter::default(),
            rx_wakeups: Counter::default(),
            generated: Counter::default(),
            held: Counter::default(),
            neighbors: Counter::default(),
            fip_in: boxed(),
            fip_out: boxed(),
            acl: sized(crate::control::config::MAX_ACL_COUNTERS),
            acl_flows: Counter::default(),
            qos_dropped: sized(qos),
            qos_offered_bytes: sized(qos),
            qos_offered_packets: sized(qos),
            qos_share: sized(qos),
            nat_port_exhausted: Counter::default(),
            nat_sessions: Counter::default(),
            handoff_out: Counter::default(),
            handoff_in: Counter::default(),
            geneve_encap: Counter::default(),
            geneve_decap: Counter::default(),
            tcp_mss_clamped: Counter::default(),
            virtual_moves: Counter::default(),
        }
    }
}

impl WorkerStats {
    #[inline]
    pub fn count_drop(&self, r: DropReason, n: u64) {
        self.drops[r as usize].add(n);
    }
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize].get()
    }
    pub fn icmp_count(&self, k: IcmpKind) -> u64 {
        self.icmp_errors[k as usize].get()
    }
    pub fn arp_count(&self, k: ArpKind) -> u64 {
        self.arp_replies[k as usize].get()
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}

/// Values the control thread contributes to a scrape.
#[derive(Clone, Debug, Default)]
pub struct ControlValues {
    pub config_generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub neighbors: u64,
    /// The SNAT rules' `max_sessions`, summed: what `nat_sessions` can reach.
    pub nat_sessions_max: u64,
    /// Every ACL counter slot in service: (acl, rule, action, slot).
    pub acl_slots: Vec<(String, String, &'static str, u32)>,
    /// Every rate-limit target in service: (target, slot).
    pub qos_slots: Vec<(String, u16)>,
    /// The VRRP groups as the election last published them.
    pub ha: Vec<crate::control::vrrp::GroupView>,
    /// BGP through BIRD.
    pub bgp: crate::control::bgp::BgpView,
}

impl ControlValues {
    /// The policy labels of `snap`: its ACLs' counter slots and its rate-limit targets.
    pub fn with_policy_of(mut self, snap: &crate::tables::Snapshot) -> ControlValues {
        for a in &snap.policy.acls {
            for (k, (rule, action)) in a.slot_labels().into_iter().enumerate() {
                self.acl_slots
                    .push((a.name.clone(), rule, action, a.slot + k as u32));
            }
        }
        self.qos_slots = snap
            .policy
            .qos
            .iter()
            .map(|q| (q.label.clone(), q.slot))
            .collect();
        self
    }
}

/// Builds the metric families of a scrape, in order: each [`Expo::header`] opens a family,
/// each [`Expo::sample`] adds one labelled value to it.
struct Expo {
    families: Vec<MetricFamily>,
}

impl Expo {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let mut f = MetricFamily::default();
        f.set_name(format!("vgate_{name}"));
        f.set_help(help.to_string());
        f.set_field_type(match kind {
            "counter" => MetricType::COUNTER,
            _ => MetricType::GAUGE,
        });
        self.families.push(f);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        // Exact below 2^53, which no counter here reaches in a gateway's lifetime.
        self.sample_f64(name, labels, v as f64);
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let f = self
            .families
            .last_mut()
            .expect("a sample follows its family's header");
        debug_assert_eq!(f.name().strip_prefix("vgate_"), Some(name));
        let mut m = proto::Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, val)| {
                    let mut l = proto::LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(val.to_string());
                    l
                })
                .collect(),
        );
        if f.get_field_type() == MetricType::COUNTER {
            let mut c = proto::Counter::default();
            c.set_value(v);
            m.set_counter(c);
        } else {
            let mut g = proto::Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        }
        f.mut_metric().push(m);
    }
}

/// The Prometheus text exposition (format 0.0.4) of `families`, written by the
/// `prometheus` crate's encoder (which escapes help texts and label values).
pub fn encode(families: &[MetricFamily]) -> String {
    TextEncoder::new()
        .encode_to_string(families)
        .expect("families built by `families` are well formed")
}

/// The labels [`families`] gives `snap`'s ports (their names, in index order) and floating
/// IPs (external address and counter slot).
pub fn labels_of(snap: &crate::tables::Snapshot) -> (Vec<String>, Vec<(String, u16)>) {
    let ports = snap.ports.iter().map(|p| p.name.clone()).collect();
    let fips = snap
        .fips
        .iter()
        .map(|f| {
            (
                std::net::Ipv4Addr::from_bits(f.external).to_string(),
                f.slot,
            )
        })
        .collect();
    (ports, fips)
}

/// [`families`] in the text exposition.
pub fn render(
    workers: &[std::sync::Arc<WorkerStats>],
    ports: &[String],
    fips: &[(String, u16)],
    c: &ControlValues,
) -> String {
    encode(&families(workers, ports, fips, c))
}

/// Every metric family of a scrape, read from every worker's counters now (each written by
/// its worker alone, read here without a lock). `ports` names the ports in index order;
/// `fips` gives each floating IP's counter slot.
pub fn families(
    workers: &[std::sync::Arc<WorkerStats>],
    ports: &[String],
    fips: &[(String, u16)],
    c: &ControlValues,
) -> Vec<MetricFamily> {
    let sum = |f: &dyn Fn(&WorkerStats) -> u64| -> u64 { workers.iter().map(|w| f(w)).sum() };
    let mut e = Expo {
        families: Vec::with_capacity(64),
    };

    type PortField = fn(&WorkerStats) -> &[Counter; MAX_PORTS];
    let port_metrics: [(&str, &str, PortField); 4] = [
        (
            "port_rx_packets_total",
            "Packets received on a port.",
            |w| &w.port_rx_packets,
        ),
        (
            "port_rx_bytes_total",
            "Bytes received on a port (Ethernet header included).",
            |w| &w.port_rx_bytes,
        ),
        (
            "port_tx_packets_total",
            "Packets transmitted on a port.",
            |w| &w.port_tx_packets,
        ),
        (
            "port_tx_bytes_total",
            "Bytes transmitted on a port (Ethernet header included).",
            |w| &w.port_tx_bytes,
        ),
    ];
    for (name, help, field) in port_metrics {
        e.header(name, "counter", help);
        for (i, p) in ports.iter().enumerate().take(MAX_PORTS) {
            e.sample(name, &[("port", p)], sum(&|w| field(w)[i].get()));
        }
    }

    e.header(
        "drops_total",
        "counter",
        "Packets dropped, by pipeline stage and reason (see the README drop-reason table).",
    );
    for r in DropReason::ALL {
        let v = sum(&|w| w.drops[*r as usize].get());
        e.sample(
            "drops_total",
            &[("stage", r.stage()), ("reason", r.label())],
            v,
        );
    }

    e.header(
        "arp_replies_total",
        "counter",
        "ARP replies sent, by what the answered address is.",
    );
    for k in ArpKind::ALL {
        e.sample(
            "arp_replies_total",
            &[("kind", k.label())],
            sum(&|w| w.arp_replies[k as usize].get()),
        );
    }
    e.header(
        "arp_requests_sent_total",
        "counter",
        "ARP requests sent to resolve next hops.",
    );
    e.sample(
        "arp_requests_sent_total",
        &[],
        sum(&|w| w.arp_requests_sent.get()),
    );
    e.header(
        "garp_sent_total",
        "counter",
        "Gratuitous ARP announcements sent (RFC 5227 section 3).",
    );
    e.sample("garp_sent_total", &[], sum(&|w| w.garp_sent.get()));
    e.header(
        "ndp_advertisements_total",
        "counter",
        "Neighbour advertisements sent in answer to solicitations, by what the target is.",
    );
    for k in [ArpKind::Router, ArpKind::Proxy, ArpKind::Endpoint] {
        e.sample(
            "ndp_advertisements_total",
            &[("kind", k.label())],
            sum(&|w| w.ndp_advertisements[k as usize].get()),
        );
    }
    e.header(
        "ndp_solicitations_sent_total",
        "counter",
        "Neighbour solicitations sent to resolve IPv6 next hops.",
    );
    e.sample(
        "ndp_solicitations_sent_total",
        &[],
        sum(&|w| w.ndp_solicitations_sent.get()),
    );
    e.header(
        "ndp_router_advertisements_sent_total",
        "counter",
        "Router advertisements sent, periodic and solicited (RFC 4861 section 6.2).",
    );
    e.sample(
        "ndp_router_advertisements_sent_total",
        &[],
        sum(&|w| w.ra_sent.get()),
    );
    e.header(
        "ndp_unsolicited_advertisements_sent_total",
        "counter",
        "Unsolicited neighbour advertisements sent (RFC 4861 section 7.2.6).",
    );
    e.sample(
        "ndp_unsolicited_advertisements_sent_total",
        &[],
        sum(&|w| w.unsolicited_na_sent.get()),
    );
    e.header(
        "neighbors",
        "gauge",
        "Neighbour entries, IPv4 (ARP) and IPv6 (NDP), known to the control thread.",
    );
    e.sample("neighbors", &[], c.neighbors);
    e.header(
        "held_packets",
        "gauge",
        "Packets waiting for ARP resolution.",
    );
    e.sample("held_packets", &[], sum(&|w| w.held.get()));

    e.header(
        "icmp_errors_total",
        "counter",
        "ICMP errors sent, by what they report.",
    );
    for k in IcmpKind::ALL {
        e.sample(
            "icmp_errors_total",
            &[("type", k.label())],
            sum(&|w| w.icmp_errors[k as usize].get()),
        );
    }
    e.header(
        "icmp_rate_limited_total",
        "counter",
        "ICMP errors suppressed by the per-worker rate limit.",
    );
    e.sample(
        "icmp_rate_limited_total",
        &[],
        sum(&|w| w.icmp_rate_limited.get()),
    );
    e.header(
        "icmp_echo_replies_total",
        "counter",
        "ICMP echo requests to vgate's addresses answered.",
    );
    e.sample(
        "icmp_echo_replies_total",
        &[],
        sum(&|w| w.icmp_echo_replies.get()),
    );
    e.header(
        "geneve_encap_packets_total",
        "counter",
        "Packets encapsulated in Geneve toward a chassis (RFC 8926).",
    );
    e.sample(
        "geneve_encap_packets_total",
        &[],
        sum(&|w| w.geneve_encap.get()),
    );
    e.header(
        "geneve_decap_packets_total",
        "counter",
        "Geneve packets from a chassis decapsulated (RFC 8926).",
    );
    e.sample(
        "geneve_decap_packets_total",
        &[],
        sum(&|w| w.geneve_decap.get()),
    );
    e.header(
        "tcp_mss_clamped_total",
        "counter",
        "TCP SYNs through a Geneve tunnel whose MSS option was lowered to the tenant MTU - 40.",
    );
    e.sample(
        "tcp_mss_clamped_total",
        &[],
        sum(&|w| w.tcp_mss_clamped.get()),
    );
    e.header(
        "virtual_endpoint_moves_total",
        "counter",
        "Virtual endpoints moved to the chassis a gratuitous ARP came from.",
    );
    e.sample(
        "virtual_endpoint_moves_total",
        &[],
        sum(&|w| w.virtual_moves.get()),
    );
    e.header(
        "generated_packets_total",
        "counter",
        "Packets vgate originated: ARP requests, ICMP errors, extra fragments.",
    );
    e.sample("generated_packets_total", &[], sum(&|w| w.generated.get()));

    e.header(
        "worker_polls_total",
        "counter",
        "Poll-loop iterations per worker: busy (received packets) or idle.",
    );
    for (i, w) in workers.iter().enumerate() {
        let id = i.to_string();
        e.sample(
            "worker_polls_total",
            &[("worker", &id), ("result", "busy")],
            w.polls_busy.get(),
        );
        e.sample(
            "worker_polls_total",
            &[("worker", &id), ("result", "idle")],
            w.polls_idle.get(),
        );
    }
    e.header(
        "worker_idle_sleeps_total",
        "counter",
        "Times an adaptive worker slept in poll(2) for lack of traffic.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "worker_idle_sleeps_total",
            &[("worker", &i.to_string())],
            w.idle_sleeps.get(),
        );
    }
    e.header(
        "worker_rx_packets_total",
        "counter",
        "Packets received per worker; divided by busy polls it gives packets per batch.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "worker_rx_packets_total",
            &[("worker", &i.to_string())],
            w.batch_packets.get(),
        );
    }
    e.header(
        "worker_busy_seconds_total",
        "counter",
        "Time each worker spent in polls that received packets; its rate is the worker's busy share, 1 when it has no headroom left.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample_f64(
            "worker_busy_seconds_total",
            &[("worker", &i.to_string())],
            w.busy_ns.get() as f64 / 1e9,
        );
    }
    e.header(
        "worker_tx_kicks_total",
        "counter",
        "sendto(2) calls a worker made to have the kernel send its TX rings (copy mode needs them; need_wakeup keeps them rare).",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "worker_tx_kicks_total",
            &[("worker", &i.to_string())],
            w.tx_kicks.get(),
        );
    }
    e.header(
        "worker_rx_wakeups_total",
        "counter",
        "recvfrom(2) calls a worker made to have the kernel refill its receive rings.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "worker_rx_wakeups_total",
            &[("worker", &i.to_string())],
            w.rx_wakeups.get(),
        );
    }
    e.header(
        "fast_path_packets_total",
        "counter",
        "Received packets the fast path carried to transmit, per worker; the rest took the stages. A share that falls with unchanged traffic means the fast path stopped matching it.",
    );
    for (i, w) in workers.iter().enumerate() {
        e.sample(
            "fast_path_packets_total",
            &[("worker", &i.to_string())],
            w.fast_path.get(),
        );
    }

    e.header("nat_sessions", "gauge", "SNAT sessions alive, all workers.");
    e.sample("nat_sessions", &[], sum(&|w| w.nat_sessions.get()));
    e.header(
        "nat_sessions_max",
        "gauge",
        "The SNAT rules' max_sessions, summed: the most nat_sessions can reach (each worker holds its share).",
    );
    e.sample("nat_sessions_max", &[], c.nat_sessions_max);
    e.header(
        "nat_port_exhausted_total",
        "counter",
        "New SNAT sessions refused because the worker's port block was exhausted.",
    );
    e.sample(
        "nat_port_exhausted_total",
        &[],
        sum(&|w| w.nat_port_exhausted.get()),
    );
    e.header(
        "nat_handoff_packets_total",
        "counter",
        "Packets copied to the worker owning their state (an SNAT session, a stateful ACL flow), by direction.",
    );
    e.sample(
        "nat_handoff_packets_total",
        &[("direction", "out")],
        sum(&|w| w.handoff_out.get()),
    );
    e.sample(
        "nat_handoff_packets_total",
        &[("direction", "in")],
        sum(&|w| w.handoff_in.get()),
    );
    e.header("fip_packets_total", "counter", "Packets translated per floating IP: in (DNAT to the internal address) and out (SNAT to the floating IP).");
    for (fip, slot) in fips {
        let s = usize::from(*slot);
        e.sample(
            "fip_packets_total",
            &[("fip", fip), ("direction", "in")],
            sum(&|w| w.fip_in[s].get()),
        );
        e.sample(
            "fip_packets_total",
            &[("fip", fip), ("direction", "out")],
            sum(&|w| w.fip_out[s].get()),
        );
    }

    e.header(
        "acl_packets_total",
        "counter",
        "Packets decided by an ACL, per rule (its index in the ACL, `default`, or `related` for replies of allow-related flows) and the rule's action.",
    );
    for (acl, rule, action, slot) in &c.acl_slots {
        let s = *slot as usize;
        e.sample(
            "acl_packets_total",
            &[("acl", acl), ("rule", rule), ("action", action)],
            sum(&|w| w.acl.get(s).map_or(0, Counter::get)),
        );
    }
    e.header(
        "acl_flows",
        "gauge",
        "Flows stateful ACLs (allow-related) track, all workers; limits.acl_sessions bounds each worker.",
    );
    e.sample("acl_flows", &[], sum(&|w| w.acl_flows.get()));
    e.header(
        "qos_dropped_packets_total",
        "counter",
        "Packets dropped by a rate limit, per target (floating IP or network) and direction.",
    );
    for (target, slot) in &c.qos_slots {
        for (d, dir) in ["in", "out"].into_iter().enumerate() {
            let k = usize::from(*slot) * 2 + d;
            e.sample(
                "qos_dropped_packets_total",
                &[("target", target), ("direction", dir)],
                sum(&|w| w.qos_dropped.get(k).map_or(0, Counter::get)),
            );
        }
    }

    use crate::control::vrrp::State;
    use crate::pipeline::vrrp::AdvertResult;
    e.header(
        "vrrp_state",
        "gauge",
        "State of a VRRP group on this node: 0 init (or fault: not taking part), 1 backup, 2 master.",
    );
    for g in &c.ha {
        e.sample(
            "vrrp_state",
            &[("group", &g.group)],
            u64::from(g.state.metric()),
        );
    }
    e.header(
        "vrrp_transitions_total",
        "counter",
        "Transitions of a VRRP group into a state (init, backup, master, fault).",
    );
    for g in &c.ha {
        for s in State::ALL {
            e.sample(
                "vrrp_transitions_total",
                &[("group", &g.group), ("to", s.label())],
                g.transitions[s as usize],
            );
        }
    }
    e.header(
        "vrrp_adverts_sent_total",
        "counter",
        "VRRP advertisements sent (priority 0 ones at a step-down included).",
    );
    e.sample(
        "vrrp_adverts_sent_total",
        &[],
        sum(&|w| w.vrrp_adverts_sent.get()),
    );
    e.header(
        "vrrp_adverts_received_total",
        "counter",
        "VRRP advertisements received for a group, by the result of the RFC 5798 section 7.1 checks.",
    );
    for g in &c.ha {
        for r in AdvertResult::ALL {
            e.sample(
                "vrrp_adverts_received_total",
                &[("group", &g.group), ("result", r.label())],
                g.adverts_received[r as usize],
            );
        }
    }

    e.header(
        "bgp_session_up",
        "gauge",
        "1 when the BGP session with a neighbour is established (asked of BIRD), else 0.",
    );
    for n in &c.bgp.neighbors {
        e.sample(
            "bgp_session_up",
            &[("neighbor", &n.address.to_string())],
            u64::from(n.established),
        );
    }
    e.header(
        "bgp_announced_prefixes",
        "gauge",
        "Prefixes this node has BIRD announce (0 while withdrawn: a stalled worker, stopping).",
    );
    e.sample("bgp_announced_prefixes", &[], c.bgp.announced.len() as u64);
    e.header(
        "bgp_updates_total",
        "counter",
        "Route set changes handed to BIRD (configure), by result.",
    );
    e.sample("bgp_updates_total", &[("result", "ok")], c.bgp.updates_ok);
    e.sample(
        "bgp_updates_total",
        &[("result", "failed")],
        c.bgp.updates_failed,
    );

    e.header(
        "config_generation",
        "gauge",
        "Generation of the configuration in service (1 at start, +1 per applied change).",
    );
    e.sample("config_generation", &[], c.config_generation);
    e.header(
        "config_reloads_total",
        "counter",
        "Configuration reloads, by result.",
    );
    e.sample(
        "config_reloads_total",
        &[("result", "success")],
        c.reloads_ok,
    );
    e.sample(
        "config_reloads_total",
        &[("result", "failure")],
        c.reloads_failed,
    );
    // A family without samples (no floating IP, for one) is left out, as Prometheus would.
    e.families.retain(|f| !f.get_metric().is_empty());
    e.families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_and_prometheus_safe() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert((r.stage(), r.label())), "{r:?} duplicated");
            for s in [r.stage(), r.label()] {
                assert!(
                    s.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                );
            }
            assert!(!r.help().is_empty());
        }
    }

    #[test]
    fn counter_single_writer() {
        let c = Counter::default();
        c.add(3);
        c.add(0);
        c.add(2);
        assert_eq!(c.get(), 5);
    }
}
