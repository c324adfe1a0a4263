//! Drop reasons, per-worker counters and the Prometheus exposition.
//!
//! Every drop names its reason, declared once in [`drop_reasons!`] (the VPP `foo_error.def`
//! pattern): the table generates the enum, the `drops_total{stage,reason}` labels and the
//! README table. A stage cannot drop a packet without one of these.
//!
//! Counters are per worker and written by that worker only, with plain relaxed load + store
//! (no read-modify-write, no lock, no shared cache line with another writer); stages add their
//! batch-local sums once per batch. A scrape sums the workers' counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Ports a worker can serve.
pub const MAX_PORTS: usize = 16;

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
    L2Ipv6 => ("l2_input", "ipv6", "IPv6 frame: vgate routes IPv4 only."),
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
    Ip4MartianDestination => ("ip4_input", "martian_destination", "Destination is 0/8, 127/8, multicast, reserved or limited broadcast (RFC 1812 5.3.7)."),
    Ip4LocalFragment => ("ip4_input", "local_fragment", "Fragment addressed to vgate itself (it does not reassemble)."),
    Ip4LocalUnsupported => ("ip4_input", "local_unsupported", "Non-ICMP packet for vgate's own address: answered with port unreachable (UDP, TCP) or protocol unreachable."),
    Ip4LocalIcmp => ("ip4_input", "local_icmp", "ICMP for vgate's own address other than echo request, or with a bad checksum."),
    RouteNoRoute => ("route", "no_route", "No route to the destination; an ICMP net unreachable is sent (RFC 1812 5.2.7.1)."),
    RouteTtlExpired => ("route", "ttl_expired", "TTL reached zero while forwarding; an ICMP time exceeded is sent (RFC 1812 5.3.1)."),
    RouteDirectedBroadcast => ("route", "directed_broadcast", "Destination is the broadcast address of a connected subnet (not forwarded, RFC 2644)."),
    RewriteNeighborQueueFull => ("rewrite", "neighbor_queue_full", "Next hop still resolving and its hold queue is full."),
    RewriteNeighborUnresolved => ("rewrite", "neighbor_unresolved", "Next hop did not answer ARP; an ICMP host unreachable is sent (RFC 1812 5.2.7.1)."),
    RewriteNeighborTableFull => ("rewrite", "neighbor_table_full", "No room for another unresolved next hop."),
    RewriteNoFrames => ("rewrite", "no_frames", "No free frame to build a packet (fragment or ARP request)."),
    MtuFragNeeded => ("mtu", "frag_needed", "Larger than the egress MTU with DF set; an ICMP fragmentation needed is sent (RFC 1191)."),
    IcmpRateLimited => ("icmp_error", "rate_limited", "ICMP error suppressed by the per-worker rate limit (RFC 1812 4.3.2.8)."),
    IcmpNotAllowed => ("icmp_error", "not_allowed", "No ICMP error may be sent about this packet: an ICMP error, a non-first fragment, or a broadcast/multicast/martian source (RFC 1812 4.3.2.7)."),
    IcmpNoSourceAddress => ("icmp_error", "no_source_address", "No address of vgate to send the ICMP error from."),
    TxRingFull => ("tx", "ring_full", "The port's transmit ring was full."),
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
    pub const ALL: [ArpKind; 4] = [ArpKind::Router, ArpKind::Fip, ArpKind::Proxy, ArpKind::Endpoint];
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
}

impl IcmpKind {
    pub const ALL: [IcmpKind; 6] = [
        IcmpKind::TimeExceeded,
        IcmpKind::NetUnreachable,
        IcmpKind::HostUnreachable,
        IcmpKind::ProtocolUnreachable,
        IcmpKind::PortUnreachable,
        IcmpKind::FragNeeded,
    ];
    pub fn label(self) -> &'static str {
        match self {
            IcmpKind::TimeExceeded => "time_exceeded",
            IcmpKind::NetUnreachable => "net_unreachable",
            IcmpKind::HostUnreachable => "host_unreachable",
            IcmpKind::ProtocolUnreachable => "protocol_unreachable",
            IcmpKind::PortUnreachable => "port_unreachable",
            IcmpKind::FragNeeded => "frag_needed",
        }
    }
    /// ICMP (type, code) on the wire.
    pub fn type_code(self) -> (u8, u8) {
        use crate::wire::icmp::{msg, unreach};
        match self {
            IcmpKind::TimeExceeded => (msg::TIME_EXCEEDED, 0),
            IcmpKind::NetUnreachable => (msg::DEST_UNREACHABLE, unreach::NET),
            IcmpKind::HostUnreachable => (msg::DEST_UNREACHABLE, unreach::HOST),
            IcmpKind::ProtocolUnreachable => (msg::DEST_UNREACHABLE, unreach::PROTOCOL),
            IcmpKind::PortUnreachable => (msg::DEST_UNREACHABLE, unreach::PORT),
            IcmpKind::FragNeeded => (msg::DEST_UNREACHABLE, unreach::FRAG_NEEDED),
        }
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
#[derive(Default)]
pub struct WorkerStats {
    pub port_rx_packets: [Counter; MAX_PORTS],
    pub port_rx_bytes: [Counter; MAX_PORTS],
    pub port_tx_packets: [Counter; MAX_PORTS],
    pub port_tx_bytes: [Counter; MAX_PORTS],
    pub drops: [Counter; DropReason::COUNT],
    pub arp_replies: [Counter; 4],
    pub arp_requests_sent: Counter,
    pub icmp_errors: [Counter; 6],
    pub icmp_rate_limited: Counter,
    pub icmp_echo_replies: Counter,
    pub polls_busy: Counter,
    pub polls_idle: Counter,
    pub batch_packets: Counter,
    /// Packets vgate originated (ARP requests, fragments beyond the first); with rx, tx,
    /// drops and held packets this closes the books: rx + generated = tx + drops + held.
    pub generated: Counter,
    /// Packets waiting for ARP resolution right now (gauge).
    pub held: Counter,
    /// Neighbour entries in this worker's table (gauge).
    pub neighbors: Counter,
}

impl WorkerStats {
    #[inline]
    pub fn drop(&self, r: DropReason, n: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_and_prometheus_safe() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert((r.stage(), r.label())), "{r:?} duplicated");
            for s in [r.stage(), r.label()] {
                assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
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
