//! Gratuitous ARP (RFC 5227 section 3 announcements) for floating IPs, and their IPv6
//! counterpart, unsolicited neighbour advertisements (RFC 4861 section 7.2.6).
//!
//! When vgate starts, when a floating IP is added, and when its MAC or port changes, every
//! neighbour on the external segment must move to the new MAC at once instead of waiting
//! for its cache to expire (the failover problem of seed 002). The control thread schedules
//! `control.garp.count` announcements `interval_ms` apart; worker 0 builds and sends them.
//! IPv6 addresses get the same bursts as unsolicited neighbour advertisements to all-nodes
//! with the Override flag: each port's addresses, each flat network's `gateway6` and each
//! endpoint's `ip6` on a flat network (what `ndsend` does when a VM comes up), when they
//! appear or their MAC or port changes ([`ip6_changes`]).
//!
//! Bounded: one burst per address at most (a newer one replaces it), `count` is at most
//! 10 (validated), and announcements are handed to worker 0 only as far as its queue has
//! room; the rest wait for the next tick instead of being lost.

use crate::tables::Snapshot;
use crate::wire::EthernetAddress;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One announcement: "`ip` is at `mac`", sent on `port`. `Announcement` (IPv4) is a
/// gratuitous ARP, [`Announcement6`] an unsolicited neighbour advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement<A = u32> {
    pub port: u8,
    pub ip: A,
    pub mac: EthernetAddress,
}

/// An IPv6 announcement: an unsolicited neighbour advertisement for `ip`.
pub type Announcement6 = Announcement<u128>;

/// An announcement of either family, as the scheduler keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    /// A gratuitous ARP.
    Arp(Announcement),
    /// An unsolicited neighbour advertisement.
    Na(Announcement6),
}

impl From<Announcement> for Announce {
    fn from(a: Announcement) -> Announce {
        Announce::Arp(a)
    }
}

impl From<Announcement6> for Announce {
    fn from(a: Announcement6) -> Announce {
        Announce::Na(a)
    }
}

/// What one burst is for: a newer burst for the same target replaces it. An IPv4 address
/// is one target whatever its port (a floating IP that moves is announced on its new port
/// only); an IPv6 address is one per port, as link-local addresses are per link (two flat
/// networks on two ports may share a `gateway_mac`, and so a link-local `gateway6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    V4(u32),
    V6(u8, u128),
}

impl Announce {
    fn target(&self) -> Target {
        match self {
            Announce::Arp(a) => Target::V4(a.ip),
            Announce::Na(a) => Target::V6(a.port, a.ip),
        }
    }
}

struct Pending {
    a: Announce,
    remaining: u32,
    next: Instant,
}

/// Announcements waiting for their time.
pub struct GarpScheduler {
    count: u32,
    interval: Duration,
    pending: Vec<Pending>,
}

impl GarpScheduler {
    pub fn new(count: u32, interval_ms: u64) -> GarpScheduler {
        GarpScheduler {
            count,
            interval: Duration::from_millis(interval_ms),
            pending: Vec::new(),
        }
    }

    /// Change the burst shape (a reload changed `control.garp`).
    pub fn set_shape(&mut self, count: u32, interval_ms: u64) {
        self.count = count;
        self.interval = Duration::from_millis(interval_ms);
    }

    /// Start a burst for `a`, the first one now. A burst already running for the same
    /// address (IPv6: on the same port) is replaced: only the newest MAC is announced.
    pub fn schedule(&mut self, a: impl Into<Announce>, now: Instant) {
        let a = a.into();
        let t = a.target();
        self.pending.retain(|p| p.a.target() != t);
        if self.count > 0 {
            self.pending.push(Pending {
                a,
                remaining: self.count,
                next: now,
            });
        }
    }

    /// Stop announcing `ip` (the floating IP was removed).
    pub fn cancel(&mut self, ip: u32) {
        self.pending.retain(|p| p.a.target() != Target::V4(ip));
    }

    /// Stop announcing IPv6 address `ip` on `port` (it is gone from there).
    pub fn cancel6(&mut self, port: u8, ip: u128) {
        self.pending
            .retain(|p| p.a.target() != Target::V6(port, ip));
    }

    /// Gratuitous ARPs due at `now`, at most `room` of them, appended to `out`. Those left
    /// over stay due and go first next time (after a start with many floating IPs, say).
    pub fn due(&mut self, now: Instant, room: usize, out: &mut Vec<Announcement>) {
        self.take_due(now, room, out, |a| match a {
            Announce::Arp(a) => Some(*a),
            Announce::Na(_) => None,
        });
    }

    /// Unsolicited neighbour advertisements due at `now`, as [`GarpScheduler::due`]: they
    /// go to worker 0 through a queue of their own, with its own room.
    pub fn due6(&mut self, now: Instant, room: usize, out: &mut Vec<Announcement6>) {
        self.take_due(now, room, out, |a| match a {
            Announce::Na(a) => Some(*a),
            Announce::Arp(_) => None,
        });
    }

    fn take_due<T>(
        &mut self,
        now: Instant,
        mut room: usize,
        out: &mut Vec<T>,
        pick: impl Fn(&Announce) -> Option<T>,
    ) {
        for p in self.pending.iter_mut() {
            if room == 0 {
                break;
            }
            if now < p.next || p.remaining == 0 {
                continue;
            }
            if let Some(a) = pick(&p.a) {
                out.push(a);
                room -= 1;
                p.remaining -= 1;
                p.next = now + self.interval;
            }
        }
        self.pending.retain(|p| p.remaining > 0);
        // Bursts still due (no room this time) move to the front, so every address gets
        // its turn before any sends again.
        let (sent, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.next > now);
        self.pending = waiting;
        self.pending.extend(sent);
    }

    /// Announcements still to send, over all bursts.
    pub fn queued(&self) -> u64 {
        self.pending.iter().map(|p| u64::from(p.remaining)).sum()
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Follow a new snapshot (`old` None: at start): bursts for the floating IPs and IPv6
    /// addresses that appeared or moved, and none any more for those that are gone.
    pub fn follow(&mut self, old: Option<&Snapshot>, new: &Snapshot, now: Instant) {
        let (announce, removed) = fip_changes(old, new);
        for ip in removed {
            self.cancel(ip);
        }
        for a in announce {
            self.schedule(a, now);
        }
        let (announce, removed) = ip6_changes(old, new);
        for (port, ip) in removed {
            self.cancel6(port, ip);
        }
        for a in announce {
            self.schedule(a, now);
        }
    }
}

/// Floating IPs of `new` that need announcing after `old` (None: at start): new ones, and
/// ones whose MAC or port changed. Also returns the addresses no longer served.
pub fn fip_changes(old: Option<&Snapshot>, new: &Snapshot) -> (Vec<Announcement>, Vec<u32>) {
    let mut announce = Vec::new();
    for f in &new.fips {
        let before = old.and_then(|o| {
            o.fip_by_external
                .get(&f.external)
                .map(|&i| o.fips[i as usize])
        });
        if before.is_none_or(|b| b.mac != f.mac || b.ext_port != f.ext_port) {
            announce.push(Announcement {
                port: f.ext_port,
                ip: f.external,
                mac: f.mac,
            });
        }
    }
    let removed = old
        .map(|o| {
            o.fips
                .iter()
                .filter(|f| !new.fip_by_external.contains_key(&f.external))
                .map(|f| f.external)
                .collect()
        })
        .unwrap_or_default();
    (announce, removed)
}

/// The IPv6 addresses vgate announces, by (port, address), with the MAC each is at: every
/// port's addresses (the port MAC), every flat network's `gateway6` on its port (its
/// `gateway_mac`) and every `ip6` of an endpoint on a flat network (the endpoint's MAC, on
/// the network's port). The first claim of an address on a port wins (validation keeps
/// them apart anyway). Proxied prefixes are not announced: no address of them is known.
pub fn ip6_announced(snap: &Snapshot) -> BTreeMap<(u8, u128), EthernetAddress> {
    let ip6 = &snap.ip6;
    let mut m = BTreeMap::new();
    for (pi, p) in ip6.ports.iter().enumerate() {
        for &(a, _) in &p.addrs {
            m.entry((pi as u8, a)).or_insert(p.mac);
        }
    }
    for n in &ip6.networks {
        if let Some(port) = n.port {
            m.entry((port, n.gateway)).or_insert(n.gateway_mac);
        }
    }
    for (&ip, &(mac, net)) in &ip6.endpoints {
        let port = ip6
            .networks
            .iter()
            .find(|n| n.network == net)
            .and_then(|n| n.port);
        if let Some(port) = port {
            m.entry((port, ip)).or_insert(mac);
        }
    }
    m
}

/// IPv6 addresses of `new` that need announcing after `old` (None: at start): new ones,
/// and ones whose MAC changed; an address that moved to another port is new there. Also
/// returns the (port, address) pairs no longer announced.
pub fn ip6_changes(
    old: Option<&Snapshot>,
    new: &Snapshot,
) -> (Vec<Announcement6>, Vec<(u8, u128)>) {
    let before = old.map(ip6_announced).unwrap_or_default();
    let after = ip6_announced(new);
    let announce = after
        .iter()
        .filter(|(k, mac)| before.get(k) != Some(mac))
        .map(|(&(port, ip), &mac)| Announcement { port, ip, mac })
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(k))
        .copied()
        .collect();
    (announce, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(ip: u32, m: u8) -> Announcement {
        Announcement {
            port: 0,
            ip,
            mac: EthernetAddress([2, 0, 0, 0, 0, m]),
        }
    }

    #[test]
    fn bursts_count_times_interval_apart() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(3, 1000);
        s.schedule(a(1, 1), t0);
        let mut out = Vec::new();
        s.due(t0, usize::MAX, &mut out);
        assert_eq!(out.len(), 1);
        s.due(t0 + Duration::from_millis(500), usize::MAX, &mut out);
        assert_eq!(out.len(), 1, "not before the interval");
        s.due(t0 + Duration::from_millis(1000), usize::MAX, &mut out);
        s.due(t0 + Duration::from_millis(2000), usize::MAX, &mut out);
        s.due(t0 + Duration::from_millis(3000), usize::MAX, &mut out);
        assert_eq!(out.len(), 3);
        assert!(s.is_idle());
    }

    #[test]
    fn newer_mac_replaces_running_burst() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(2, 10);
        s.schedule(a(1, 1), t0);
        s.schedule(a(1, 2), t0);
        let mut out = Vec::new();
        s.due(t0, usize::MAX, &mut out);
        assert_eq!(out, vec![a(1, 2)]);
        s.cancel(1);
        assert!(s.is_idle());
    }

    #[test]
    fn room_limits_a_tick_and_the_rest_waits() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(2, 1000);
        for ip in 1..=5 {
            s.schedule(a(ip, 1), t0);
        }
        assert_eq!(s.queued(), 10);
        let mut out = Vec::new();
        s.due(t0, 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![1, 2, 3]);
        // The two that did not fit go first, a moment later; nothing is lost.
        out.clear();
        s.due(t0 + Duration::from_millis(50), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![4, 5]);
        out.clear();
        s.due(t0 + Duration::from_millis(1000), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![1, 2, 3]);
        out.clear();
        s.due(t0 + Duration::from_millis(1050), 3, &mut out);
        assert_eq!(out.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![4, 5]);
        assert!(s.is_idle());
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn zero_count_sends_nothing() {
        let mut s = GarpScheduler::new(0, 10);
        s.schedule(a(1, 1), Instant::now());
        assert!(s.is_idle());
    }

    fn a6(port: u8, ip: &str, m: u8) -> Announcement6 {
        Announcement {
            port,
            ip: ip.parse::<std::net::Ipv6Addr>().unwrap().to_bits(),
            mac: EthernetAddress([2, 0, 0, 0, 0, m]),
        }
    }

    #[test]
    fn neighbour_advertisements_burst_beside_garps_in_their_own_queue() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(2, 1000);
        s.schedule(a(1, 1), t0);
        s.schedule(a6(0, "2001:db8::1", 1), t0);
        assert_eq!(s.queued(), 4);
        let (mut arp, mut na) = (Vec::new(), Vec::new());
        s.due(t0, usize::MAX, &mut arp);
        assert_eq!(arp, vec![a(1, 1)], "no NA in the ARP queue");
        // The ARP queue being full holds back no NA.
        s.due6(t0, usize::MAX, &mut na);
        assert_eq!(na, vec![a6(0, "2001:db8::1", 1)]);
        s.due(t0 + Duration::from_millis(1000), 0, &mut arp);
        s.due6(t0 + Duration::from_millis(1000), 1, &mut na);
        assert_eq!(na.len(), 2);
        assert_eq!(arp.len(), 1);
        s.due(t0 + Duration::from_millis(1010), 1, &mut arp);
        assert_eq!(arp.len(), 2);
        assert!(s.is_idle());
    }

    #[test]
    fn an_ipv6_burst_is_per_port_and_replaced_by_a_newer_mac() {
        let t0 = Instant::now();
        let mut s = GarpScheduler::new(1, 10);
        // The same link-local address on two ports: two bursts.
        s.schedule(a6(0, "fe80::1", 1), t0);
        s.schedule(a6(1, "fe80::1", 1), t0);
        // A newer MAC on port 0 replaces that burst only.
        s.schedule(a6(0, "fe80::1", 2), t0);
        // An IPv4 address with the same bits is another target.
        s.schedule(a(1, 1), t0);
        assert_eq!(s.queued(), 3);
        let mut out = Vec::new();
        s.due6(t0, usize::MAX, &mut out);
        assert_eq!(out, vec![a6(1, "fe80::1", 1), a6(0, "fe80::1", 2)]);
        s.schedule(a6(0, "2001:db8::5", 3), t0);
        s.cancel6(1, 0x2001_0db8 << 96 | 5);
        assert_eq!(s.queued(), 2, "another port's address is not cancelled");
        s.cancel6(0, 0x2001_0db8 << 96 | 5);
        s.cancel(1);
        assert!(s.is_idle());
    }

    const MAC_EXT: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_INT: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const MAC_LAB: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 3]);

    /// Ports external (2001:db8:ff::2), internal and lab; flat networks tenant (on
    /// internal, default gateway6) and lab (on lab, a global gateway6), endpoints with
    /// `ip6`; `extra` is appended.
    fn snap6(extra: &str) -> Snapshot {
        snap6_on("internal", extra)
    }

    /// [`snap6`] with network tenant on `tenant_port`.
    fn snap6_on(tenant_port: &str, extra: &str) -> Snapshot {
        let toml = format!(
            r#"
[[port]]
name = "external"
iface = "ext0"
addresses = ["203.0.113.2/24", "2001:db8:ff::2/64"]

[[port]]
name = "internal"
iface = "int0"

[[port]]
name = "lab"
iface = "lab0"

[[route]]
prefix = "::/0"
via = "2001:db8:ff::1"

[[proxy_ndp]]
port = "external"
prefix = "2001:db8:100::/56"

[[floating_ip]]
external = "203.0.113.10"
internal = "10.10.1.5"
network = "tenant"

[[network]]
name = "tenant"
port = "{tenant_port}"
subnet = "10.10.1.0/24"
gateway = "10.10.1.1"
gateway_mac = "fa:16:3e:00:00:01"
subnet6 = "2001:db8:100:1::/64"

[[network]]
name = "lab"
port = "lab"
subnet = "10.10.2.0/24"
gateway = "10.10.2.1"
gateway_mac = "fa:16:3e:00:00:02"
subnet6 = "2001:db8:100:2::/64"
gateway6 = "2001:db8:100:2::1"
ra = {{ enabled = false }}
{extra}"#
        );
        let cfg =
            crate::control::config::Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
        let mac = |iface: &str| {
            Some(match iface {
                "ext0" => MAC_EXT,
                "int0" => MAC_INT,
                _ => MAC_LAB,
            })
        };
        crate::control::apply::build_snapshot(&cfg, 1, &mac, None).unwrap()
    }

    fn ep(network: &str, ip: &str, ip6: &str, mac: &str) -> String {
        format!(
            "\n[[endpoint]]\nnetwork = \"{network}\"\nip = \"{ip}\"\nip6 = \"{ip6}\"\nmac = \"{mac}\"\n"
        )
    }

    fn v6(s: &str) -> u128 {
        s.parse::<std::net::Ipv6Addr>().unwrap().to_bits()
    }

    fn na(port: u8, ip: &str, mac: EthernetAddress) -> Announcement6 {
        Announcement {
            port,
            ip: v6(ip),
            mac,
        }
    }

    fn m(s: &str) -> EthernetAddress {
        EthernetAddress(s.parse::<crate::control::config::MacAddr>().unwrap().0)
    }

    #[test]
    fn at_start_every_port_address_gateway6_and_endpoint_is_announced() {
        let s = snap6(&ep(
            "tenant",
            "10.10.1.5",
            "2001:db8:100:1::5",
            "fa:16:3e:00:00:05",
        ));
        let (announce, removed) = ip6_changes(None, &s);
        assert!(removed.is_empty());
        assert_eq!(
            announce,
            vec![
                na(0, "2001:db8:ff::2", MAC_EXT),
                na(1, "2001:db8:100:1::5", m("fa:16:3e:00:00:05")),
                na(1, "fe80::f816:3eff:fe00:1", m("fa:16:3e:00:00:01")),
                na(2, "2001:db8:100:2::1", m("fa:16:3e:00:00:02")),
            ],
            "no link-local port address, no proxied prefix, no IPv4"
        );
        // The floating IP still gets its GARP, and only through the ARP side.
        let mut g = GarpScheduler::new(3, 1000);
        let t0 = Instant::now();
        g.follow(None, &s, t0);
        assert_eq!(g.queued(), 3 * 5);
        let mut arp = Vec::new();
        g.due(t0, usize::MAX, &mut arp);
        assert_eq!(arp.len(), 1);
        assert_eq!(arp[0].ip, u32::from_be_bytes([203, 0, 113, 10]));
    }

    #[test]
    fn a_reload_announces_what_appeared_or_moved_and_cancels_what_left() {
        let ep5 = ep(
            "tenant",
            "10.10.1.5",
            "2001:db8:100:1::5",
            "fa:16:3e:00:00:05",
        );
        let ep6 = ep(
            "tenant",
            "10.10.1.6",
            "2001:db8:100:1::6",
            "fa:16:3e:00:00:06",
        );
        let old = snap6(&format!("{ep5}{ep6}"));
        // Unchanged: nothing again.
        let same = snap6(&format!("{ep5}{ep6}"));
        assert_eq!(ip6_changes(Some(&old), &same), (vec![], vec![]));
        // ::5 at a new MAC, ::6 gone, ::7 new, ::8 on the lab network's port.
        let new = snap6(&format!(
            "{}{}{}",
            ep(
                "tenant",
                "10.10.1.5",
                "2001:db8:100:1::5",
                "fa:16:3e:00:00:55"
            ),
            ep(
                "tenant",
                "10.10.1.7",
                "2001:db8:100:1::7",
                "fa:16:3e:00:00:07"
            ),
            ep("lab", "10.10.2.8", "2001:db8:100:2::8", "fa:16:3e:00:00:08"),
        ));
        let (announce, removed) = ip6_changes(Some(&old), &new);
        assert_eq!(
            announce,
            vec![
                na(1, "2001:db8:100:1::5", m("fa:16:3e:00:00:55")),
                na(1, "2001:db8:100:1::7", m("fa:16:3e:00:00:07")),
                na(2, "2001:db8:100:2::8", m("fa:16:3e:00:00:08")),
            ]
        );
        assert_eq!(removed, vec![(1, v6("2001:db8:100:1::6"))]);

        // The scheduler: the running burst of ::5 is replaced (one burst, new MAC), that of
        // ::6 cancelled, the unchanged ones run on.
        let t0 = Instant::now();
        let mut g = GarpScheduler::new(2, 1000);
        g.follow(None, &old, t0);
        let fresh = 2 * (1 + 5);
        assert_eq!(g.queued(), fresh);
        g.follow(Some(&old), &new, t0);
        assert_eq!(g.queued(), fresh - 2 + 2 * 2);
        let mut out = Vec::new();
        g.due6(t0, usize::MAX, &mut out);
        assert!(out.contains(&na(1, "2001:db8:100:1::5", m("fa:16:3e:00:00:55"))));
        assert!(
            !out.iter()
                .any(|a| a.ip == v6("2001:db8:100:1::5") && a.mac == m("fa:16:3e:00:00:05"))
        );
        assert!(!out.iter().any(|a| a.ip == v6("2001:db8:100:1::6")));
        assert_eq!(out.len(), 6, "{out:?}");
    }

    #[test]
    fn a_moved_endpoint_is_announced_on_its_new_port_only() {
        let old = snap6(&ep(
            "tenant",
            "10.10.1.5",
            "2001:db8:100:1::5",
            "fa:16:3e:00:00:05",
        ));
        // A reload moves network tenant to the lab port.
        let new = snap6_on(
            "lab",
            &ep(
                "tenant",
                "10.10.1.5",
                "2001:db8:100:1::5",
                "fa:16:3e:00:00:05",
            ),
        );
        let t0 = Instant::now();
        let mut g = GarpScheduler::new(1, 1000);
        g.follow(Some(&old), &new, t0);
        let mut out = Vec::new();
        g.due6(t0, usize::MAX, &mut out);
        assert_eq!(
            out,
            vec![
                na(2, "2001:db8:100:1::5", m("fa:16:3e:00:00:05")),
                na(2, "fe80::f816:3eff:fe00:1", m("fa:16:3e:00:00:01")),
            ]
        );
        let (_, removed) = ip6_changes(Some(&old), &new);
        assert_eq!(
            removed,
            vec![
                (1, v6("2001:db8:100:1::5")),
                (1, v6("fe80::f816:3eff:fe00:1")),
            ]
        );
    }
}
