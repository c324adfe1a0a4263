//! Policies on floating IPs and networks, as the snapshot holds them: the compiled ACLs
//! ([`super::acl`]) and the rate-limit targets, with which of them apply to each floating
//! IP and each network.

use super::acl::Acl;

/// Rate-limit targets with their own counters (`qos_dropped_packets_total`): one per
/// floating IP and network at most.
pub const MAX_QOS_TARGETS: usize = crate::metrics::MAX_FIPS + 1024;

/// The policy of one floating IP or network: indexes into [`Policies::acls`] and
/// [`Policies::qos`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyRef {
    pub acl: Option<u16>,
    pub qos: Option<u16>,
}

impl PolicyRef {
    pub fn is_some(&self) -> bool {
        self.acl.is_some() || self.qos.is_some()
    }
}

/// One direction's policer: a byte bucket and a packet bucket (0: that unit is not limited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub bytes_per_sec: u64,
    pub burst_bytes: u64,
    pub packets_per_sec: u64,
    pub burst_packets: u64,
}

impl Rate {
    /// The policer of `mbps` megabits and `kpps` thousand packets a second (either may be
    /// absent), saving up `burst_kb` KiB and 10 ms of packets (at least 64: a whole batch).
    ///
    /// The default byte burst is 250 ms at the rate (at least 64 KiB). A policer drops
    /// whatever exceeds its bucket at once, and TCP answers a run of losses with a
    /// retransmission timeout: with 20 ms of burst, iperf3 through a 50 Mbit/s limit on the
    /// veth lab got 6 Mbit/s; with 250 ms, 49 Mbit/s (bench/HISTORY.md). Vendors advise
    /// more for long round trips (Cisco: 1.5 s of the rate); `burst_kb` sets it.
    pub fn new(mbps: Option<u64>, kpps: Option<u64>, burst_kb: Option<u64>) -> Option<Rate> {
        if mbps.is_none() && kpps.is_none() {
            return None;
        }
        let bytes_per_sec = mbps.map_or(0, |m| m * 1_000_000 / 8);
        let packets_per_sec = kpps.map_or(0, |k| k * 1000);
        Some(Rate {
            bytes_per_sec,
            burst_bytes: match burst_kb {
                Some(kb) => kb * 1024,
                None => (bytes_per_sec / 4).max(64 * 1024),
            },
            packets_per_sec,
            burst_packets: (packets_per_sec / 100).max(64),
        })
    }
}

/// A floating IP or network with `qos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QosTarget {
    /// The floating IP's external address or the network's name (`target` label).
    pub label: String,
    /// Per direction ([`super::acl::IN`], [`super::acl::OUT`]).
    pub rate: [Option<Rate>; 2],
    /// DSCP written into every passing packet, both ways.
    pub dscp: Option<u8>,
    /// Counter slot, stable across reloads for the same label.
    pub slot: u16,
    /// As configured, for the API.
    pub cfg: crate::control::config::QosCfg,
}

/// Every policy of a snapshot.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub acls: Vec<Acl>,
    pub qos: Vec<QosTarget>,
    /// Per floating IP, indexed like `Snapshot::fips`.
    pub fip: Vec<PolicyRef>,
    /// Per network, indexed like `Snapshot::networks`.
    pub network: Vec<PolicyRef>,
    /// Some floating IP has a policy: look the addresses up.
    pub any_fip: bool,
    /// Some network has a policy.
    pub any_network: bool,
    /// Some ACL has allow-related rules: the workers keep a flow table.
    pub stateful: bool,
    /// ACL counter slots and QoS slots given to a new ACL or target by this snapshot: the
    /// workers zero their own counters there before using it.
    pub fresh_acl_slots: Vec<std::ops::Range<u32>>,
    pub fresh_qos_slots: Vec<u16>,
}

impl Policies {
    /// True when any floating IP or network has a policy (the policy stage runs at all).
    #[inline(always)]
    pub fn any(&self) -> bool {
        self.any_fip || self.any_network
    }
}
