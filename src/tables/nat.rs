//! SNAT (PAT) sessions of one worker for one `[[snat]]` rule.
//!
//! Behaviour follows the BEHAVE requirements: endpoint-independent mapping and filtering
//! (RFC 4787 REQ-1 and REQ-8, RFC 5382 REQ-1 and REQ-3, RFC 7857 section 3), ICMP query
//! identifiers translated like ports (RFC 5508 REQ-1), and idle timeouts from RFC 7857
//! section 2.2 and RFC 5382 REQ-5 (TCP established 2 h 4 min, transitory 4 min), RFC 4787
//! REQ-5 (UDP 5 min) and RFC 5508 REQ-1 (ICMP 60 s).
//!
//! The rule's port range is cut into one block per worker, so the worker that owns a
//! session is computable from the external port of a return packet ([`port_owner`]), as
//! VPP's NAT44-ED does with its per-thread port ranges. Everything is allocated when the
//! table is created: the sessions themselves, stored in the slots of an open-addressing table
//! keyed by inside endpoint ([`SessionMap`], 16 bytes a session, prefetchable by batch), and a
//! direct port -> slot array per protocol, so the return path is one array index and nothing
//! grows under a flood.

use super::session::SessionMap;

/// Transport protocols SNAT translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    Tcp = 0,
    Udp = 1,
    Icmp = 2,
}

impl Proto {
    pub fn from_ip(p: u8) -> Option<Proto> {
        match p {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            1 => Some(Proto::Icmp),
            _ => None,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// Idle timeouts in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u64,
    pub tcp_transitory: u64,
    pub udp: u64,
    pub icmp: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        Timeouts {
            tcp_established: 7440 * S,
            tcp_transitory: 240 * S,
            udp: 300 * S,
            icmp: 60 * S,
        }
    }
}

/// One `[[snat]]` rule as the dataplane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatParams {
    pub external: u32,
    pub first_port: u16,
    pub last_port: u16,
    pub max_sessions: usize,
    pub timeouts: Timeouts,
}

/// The block of ports worker `worker` of `workers` allocates from: `(first, len)`.
pub fn port_block(p: &SnatParams, worker: usize, workers: usize) -> (u16, u16) {
    let total = u32::from(p.last_port) - u32::from(p.first_port) + 1;
    let per = total / workers as u32;
    let first = u32::from(p.first_port) + per * worker as u32;
    // The last worker also takes the remainder.
    let len = if worker + 1 == workers {
        total - per * worker as u32
    } else {
        per
    };
    (first as u16, len as u16)
}

/// The worker owning external `port`, or None when it is outside the rule's range.
#[inline]
pub fn port_owner(p: &SnatParams, workers: usize, port: u16) -> Option<usize> {
    if port < p.first_port || port > p.last_port {
        return None;
    }
    let total = u32::from(p.last_port) - u32::from(p.first_port) + 1;
    let per = (total / workers as u32).max(1);
    Some((((u32::from(port) - u32::from(p.first_port)) / per) as usize).min(workers - 1))
}

/// TCP progress, for choosing the idle timeout (RFC 7857 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    /// Only the inside SYN seen.
    SynSent,
    /// Packets seen in both directions.
    Established,
    /// FIN or RST seen.
    Closing,
}

/// A session as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub proto: Proto,
    pub inside_ip: u32,
    pub inside_port: u16,
    pub external_port: u16,
    pub tcp_state: Option<TcpState>,
    pub idle_ns: u64,
}

/// Why a new session could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnatError {
    /// Every port of this worker's block is in use for the protocol.
    PortsExhausted,
    /// The session table holds `max_sessions` already.
    TableFull,
}

const NONE: u32 = u32::MAX;
const FLAG_FIN: u8 = 0x01;
const FLAG_SYN: u8 = 0x02;
const FLAG_RST: u8 = 0x04;

/// The session key of an inside endpoint: `(proto + 1) << 48 | port << 32 | ip`, never 0
/// (0 marks an empty [`SessionMap`] slot).
#[inline(always)]
pub fn inside_key(proto: Proto, ip: u32, port: u16) -> u64 {
    (u64::from(proto as u8 + 1) << 48) | (u64::from(port) << 32) | u64::from(ip)
}

#[inline]
fn key_proto(key: u64) -> Proto {
    match (key >> 48) as u8 {
        1 => Proto::Tcp,
        2 => Proto::Udp,
        _ => Proto::Icmp,
    }
}

/// Last-use times are kept in ticks of 2^20 ns (about 1.05 ms), so that a whole session fits
/// the 8-byte value of a slot: `last_tick << 24 | tcp_state << 16 | external_port`. 40 bits of
/// ticks last 36 years of uptime.
const TICK_SHIFT: u32 = 20;

/// The tick of time `now`, rounded up: a session's idle time is never overstated, so it
/// expires at most one tick late and never early.
#[inline(always)]
fn tick(now: u64) -> u64 {
    now.div_ceil(1 << TICK_SHIFT) & ((1 << 40) - 1)
}

#[inline(always)]
fn pack(ext_port: u16, tcp: TcpState, last_tick: u64) -> u64 {
    (last_tick << 24) | (u64::from(tcp as u8) << 16) | u64::from(ext_port)
}

#[inline(always)]
fn ext_port_of(v: u64) -> u16 {
    v as u16
}

#[inline(always)]
fn tcp_of(v: u64) -> TcpState {
    match (v >> 16) as u8 {
        0 => TcpState::SynSent,
        1 => TcpState::Established,
        _ => TcpState::Closing,
    }
}

/// Last use in ns (rounded up to the tick).
#[inline(always)]
fn last_of(v: u64) -> u64 {
    (v >> 24) << TICK_SHIFT
}

pub struct SnatTable {
    params: SnatParams,
    block_first: u16,
    block_len: u16,
    /// Sessions by inside key, stored in their slots (bounded by this worker's share of
    /// `max_sessions`).
    map: SessionMap,
    /// Per protocol, external port - `block_first` -> slot of its session in `map`, or NONE.
    /// Kept up to date when deletions move entries.
    by_port: [Box<[u32]>; 3],
    cursor: [u16; 3],
    /// Next slot the expiry sweep looks at.
    scan: usize,
}

impl SnatTable {
    /// The table of worker `worker` of `workers`: its share of `max_sessions` and its block
    /// of ports, all allocated now.
    pub fn new(params: SnatParams, worker: usize, workers: usize) -> SnatTable {
        let (block_first, block_len) = port_block(&params, worker, workers);
        let max = (params.max_sessions / workers).max(1);
        let arr = || vec![NONE; usize::from(block_len)].into_boxed_slice();
        SnatTable {
            params,
            block_first,
            block_len,
            map: SessionMap::new(max),
            by_port: [arr(), arr(), arr()],
            cursor: [0; 3],
            scan: 0,
        }
    }

    pub fn params(&self) -> &SnatParams {
        &self.params
    }

    /// Sessions alive (not yet reclaimed).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[inline(always)]
    fn timeout(&self, proto: Proto, tcp: TcpState) -> u64 {
        let t = &self.params.timeouts;
        match proto {
            Proto::Udp => t.udp,
            Proto::Icmp => t.icmp,
            Proto::Tcp if tcp == TcpState::Established => t.tcp_established,
            Proto::Tcp => t.tcp_transitory,
        }
    }

    #[inline(always)]
    fn expired(&self, proto: Proto, v: u64, now: u64) -> bool {
        now.saturating_sub(last_of(v)) > self.timeout(proto, tcp_of(v))
    }

    /// Remove the session in `slot`, keeping the port index right for entries that move.
    fn remove(&mut self, slot: usize) {
        let (key, v) = (self.map.key(slot), self.map.value(slot));
        let first = self.block_first;
        self.by_port[key_proto(key) as usize][usize::from(ext_port_of(v) - first)] = NONE;
        let by_port = &mut self.by_port;
        self.map.remove_at(slot, |k, v, at| {
            by_port[key_proto(k) as usize][usize::from(ext_port_of(v) - first)] = at as u32;
        });
    }

    /// Home slot of inside `key` ([`inside_key`]), for [`SnatTable::prefetch`] and
    /// [`SnatTable::outbound_hashed`].
    #[inline(always)]
    pub fn hash(&self, key: u64) -> usize {
        self.map.hash(key)
    }

    /// Start loading the slot of home `h`: a batch prefetches all its sessions before it
    /// translates any.
    #[inline(always)]
    pub fn prefetch(&self, h: usize) {
        self.map.prefetch(h);
    }

    /// Translate an outbound packet: the external port (or ICMP identifier) for
    /// (proto, inside ip, inside port), creating the mapping if needed. `tcp_flags` is 0
    /// for UDP and ICMP.
    #[inline]
    pub fn outbound(
        &mut self,
        proto: Proto,
        ip: u32,
        port: u16,
        tcp_flags: u8,
        now: u64,
    ) -> Result<u16, SnatError> {
        let key = inside_key(proto, ip, port);
        let h = self.hash(key);
        self.outbound_hashed(key, h, tcp_flags, now)
    }

    /// [`SnatTable::outbound`] for an [`inside_key`] whose [`SnatTable::hash`] is `h`.
    #[inline(always)]
    pub fn outbound_hashed(
        &mut self,
        key: u64,
        h: usize,
        tcp_flags: u8,
        now: u64,
    ) -> Result<u16, SnatError> {
        if let Some(port) = self.outbound_existing(key, h, tcp_flags, now) {
            return Ok(port);
        }
        self.create(key_proto(key), key, h, tcp_flags, now)
    }

    /// [`SnatTable::outbound_hashed`] when `key` already has a mapping: its external port,
    /// the session refreshed; None (and nothing changed) when it has none.
    #[inline(always)]
    pub fn outbound_existing(
        &mut self,
        key: u64,
        h: usize,
        tcp_flags: u8,
        now: u64,
    ) -> Option<u16> {
        let proto = key_proto(key);
        let slot = self.map.find(key, h)?;
        let v = self.map.value(slot);
        // UDP and ICMP sessions hold no state but their last use: `create` makes them
        // SynSent and they stay so, expired or not.
        let tcp = if proto == Proto::Tcp {
            // Same inside endpoint again after the timeout: a fresh session that keeps
            // its mapping (endpoint-independent mapping, RFC 4787 REQ-1).
            let tcp = if self.expired(proto, v, now) {
                TcpState::SynSent
            } else {
                tcp_of(v)
            };
            next_tcp_state(tcp, tcp_flags, false)
        } else {
            TcpState::SynSent
        };
        *self.map.value_mut(slot) = pack(ext_port_of(v), tcp, tick(now));
        Some(ext_port_of(v))
    }

    /// A new session for `key`: out of line, the hit path above is the common one.
    #[inline(never)]
    fn create(
        &mut self,
        proto: Proto,
        key: u64,
        h: usize,
        tcp_flags: u8,
        now: u64,
    ) -> Result<u16, SnatError> {
        if self.map.is_full() {
            return Err(SnatError::TableFull);
        }
        let ext_port = self
            .alloc_port(proto, now)
            .ok_or(SnatError::PortsExhausted)?;
        let tcp = if proto == Proto::Tcp && tcp_flags & (FLAG_FIN | FLAG_RST) != 0 {
            TcpState::Closing
        } else {
            TcpState::SynSent
        };
        // alloc_port may have removed a session, which can move entries but not change
        // where `key` probes from.
        let slot = self
            .map
            .insert(key, pack(ext_port, tcp, tick(now)), h)
            .ok_or(SnatError::TableFull)?;
        self.by_port[proto as usize][usize::from(ext_port - self.block_first)] = slot as u32;
        Ok(ext_port)
    }

    /// A free port of this worker's block, reclaiming an expired session's port on the way.
    fn alloc_port(&mut self, proto: Proto, now: u64) -> Option<u16> {
        let n = self.block_len;
        for _ in 0..n {
            let off = self.cursor[proto as usize];
            self.cursor[proto as usize] = if off + 1 >= n { 0 } else { off + 1 };
            let slot = self.by_port[proto as usize][usize::from(off)];
            if slot == NONE {
                return Some(self.block_first + off);
            }
            if self.expired(proto, self.map.value(slot as usize), now) {
                self.remove(slot as usize);
                return Some(self.block_first + off);
            }
        }
        None
    }

    /// The external port of a live session, without creating one (ICMP errors from inside).
    pub fn lookup_outbound(&self, proto: Proto, ip: u32, port: u16, now: u64) -> Option<u16> {
        let key = inside_key(proto, ip, port);
        let slot = self.map.find(key, self.hash(key))?;
        let v = self.map.value(slot);
        (!self.expired(proto, v, now)).then_some(ext_port_of(v))
    }

    /// Translate a return packet to external port `ext_port`: the inside (ip, port), or None
    /// if there is no live session (endpoint-independent filtering: any remote may use a
    /// live mapping, RFC 4787 REQ-8).
    #[inline]
    pub fn inbound(
        &mut self,
        proto: Proto,
        ext_port: u16,
        tcp_flags: u8,
        now: u64,
    ) -> Option<(u32, u16)> {
        let off = ext_port.checked_sub(self.block_first)?;
        if off >= self.block_len {
            return None;
        }
        let slot = self.by_port[proto as usize][usize::from(off)];
        if slot == NONE {
            return None;
        }
        let slot = slot as usize;
        let (key, v) = (self.map.key(slot), self.map.value(slot));
        if self.expired(proto, v, now) {
            self.remove(slot);
            return None;
        }
        let mut tcp = tcp_of(v);
        if proto == Proto::Tcp {
            tcp = next_tcp_state(tcp, tcp_flags, true);
        }
        *self.map.value_mut(slot) = pack(ext_port_of(v), tcp, tick(now));
        Some((key as u32, (key >> 32) as u16))
    }

    /// Reclaim expired sessions, looking at no more than `budget` slots; returns how many
    /// were removed. Called on the worker's timer, so a large table is swept a slice at a time.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = self.map.slots();
        let mut removed = 0;
        let mut looked = 0;
        while looked < budget.min(n) {
            if self.scan >= n {
                self.scan = 0;
            }
            let i = self.scan;
            let key = self.map.key(i);
            if key != 0 && self.expired(key_proto(key), self.map.value(i), now) {
                // Backward shift may move a later entry into slot i: look at it again (at
                // most `len` times in all, so this ends).
                self.remove(i);
                removed += 1;
            } else {
                self.scan += 1;
                looked += 1;
            }
        }
        removed
    }

    /// Live sessions, for the API.
    pub fn sessions(&self, now: u64) -> impl Iterator<Item = SessionView> + '_ {
        self.map
            .iter()
            .filter(move |(_, k, v)| !self.expired(key_proto(*k), *v, now))
            .map(move |(_, k, v)| {
                let proto = key_proto(k);
                SessionView {
                    proto,
                    inside_ip: k as u32,
                    inside_port: (k >> 32) as u16,
                    external_port: ext_port_of(v),
                    tcp_state: (proto == Proto::Tcp).then_some(tcp_of(v)),
                    idle_ns: now.saturating_sub(last_of(v)),
                }
            })
    }
}

/// TCP state after a segment with `flags`, inbound or outbound.
#[inline]
fn next_tcp_state(s: TcpState, flags: u8, inbound: bool) -> TcpState {
    if flags & (FLAG_FIN | FLAG_RST) != 0 {
        return TcpState::Closing;
    }
    match s {
        // An answer from outside to our SYN, or anything after it, means both ways work.
        TcpState::SynSent if inbound => TcpState::Established,
        // A new SYN on a closing mapping reopens it (the same inside endpoint reconnects).
        TcpState::Closing if flags & FLAG_SYN != 0 && !inbound => TcpState::SynSent,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn params(first: u16, last: u16, max: usize) -> SnatParams {
        SnatParams {
            external: 0xcb00_7102,
            first_port: first,
            last_port: last,
            max_sessions: max,
            timeouts: Timeouts::default(),
        }
    }

    #[test]
    fn blocks_partition_the_range_and_owner_is_computable() {
        let p = params(1024, 65535, 1000);
        for workers in 1..=4 {
            let mut next = 1024u32;
            for w in 0..workers {
                let (first, len) = port_block(&p, w, workers);
                assert_eq!(u32::from(first), next);
                next += u32::from(len);
                assert_eq!(port_owner(&p, workers, first), Some(w));
                assert_eq!(port_owner(&p, workers, first + (len - 1)), Some(w));
            }
            assert_eq!(next, 65536);
        }
        assert_eq!(port_owner(&p, 2, 1023), None);
    }

    #[test]
    fn endpoint_independent_mapping_and_filtering() {
        let mut t = SnatTable::new(params(2000, 2009, 100), 0, 1);
        let a = t.outbound(Proto::Udp, 10, 5000, 0, 0).unwrap();
        // Same inside endpoint, any destination: same mapping.
        assert_eq!(t.outbound(Proto::Udp, 10, 5000, 0, S).unwrap(), a);
        // Another inside endpoint: another port.
        let b = t.outbound(Proto::Udp, 11, 5000, 0, S).unwrap();
        assert_ne!(a, b);
        // Return traffic from anyone reaches the mapping.
        assert_eq!(t.inbound(Proto::Udp, a, 0, 2 * S), Some((10, 5000)));
        // Protocols are separate spaces.
        assert_eq!(t.inbound(Proto::Tcp, a, 0, 2 * S), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn exhaustion_then_reuse_after_expiry() {
        let mut t = SnatTable::new(params(2000, 2003, 100), 0, 1);
        for i in 0..4 {
            t.outbound(Proto::Udp, 100 + i, 1, 0, 0).unwrap();
        }
        assert_eq!(
            t.outbound(Proto::Udp, 200, 1, 0, 0),
            Err(SnatError::PortsExhausted)
        );
        // Existing sessions keep working while new ones are refused.
        assert_eq!(t.outbound(Proto::Udp, 100, 1, 0, S).map(|_| ()), Ok(()));
        // After the UDP timeout the idle ports are reclaimed.
        let late = 302 * S;
        assert!(t.outbound(Proto::Udp, 200, 1, 0, late).is_ok());
        assert_eq!(
            t.inbound(Proto::Udp, 2001, 0, late),
            None,
            "expired mapping gone"
        );
    }

    #[test]
    fn table_bound() {
        let mut t = SnatTable::new(params(2000, 2999, 3), 0, 1);
        for i in 0..3 {
            t.outbound(Proto::Tcp, i, 1, FLAG_SYN, 0).unwrap();
        }
        assert_eq!(
            t.outbound(Proto::Tcp, 9, 1, FLAG_SYN, 0),
            Err(SnatError::TableFull)
        );
        assert_eq!(t.expire(10_000 * S, 100), 3);
        assert!(t.is_empty());
        assert!(t.outbound(Proto::Tcp, 9, 1, FLAG_SYN, 10_000 * S).is_ok());
    }

    #[test]
    fn tcp_timeouts_follow_state() {
        let mut t = SnatTable::new(params(2000, 2999, 10), 0, 1);
        let p = t.outbound(Proto::Tcp, 1, 1000, FLAG_SYN, 0).unwrap();
        // Only a SYN: transitory timeout (240 s).
        assert_eq!(t.expire(241 * S, 10), 1);
        let p2 = t.outbound(Proto::Tcp, 1, 1000, FLAG_SYN, 300 * S).unwrap();
        assert_eq!(
            t.inbound(Proto::Tcp, p2, FLAG_SYN | 0x10, 301 * S),
            Some((1, 1000))
        );
        // Established: survives an hour idle.
        assert_eq!(t.expire(3900 * S, 10), 0);
        assert_eq!(t.inbound(Proto::Tcp, p2, 0x10, 3901 * S), Some((1, 1000)));
        // FIN: back to the transitory timeout.
        t.outbound(Proto::Tcp, 1, 1000, FLAG_FIN | 0x10, 3902 * S)
            .unwrap();
        assert_eq!(t.expire(3902 * S + 241 * S, 10), 1);
        let _ = p;
    }

    #[test]
    fn workers_have_disjoint_ports() {
        let p = params(1024, 1033, 100);
        let mut w0 = SnatTable::new(p, 0, 2);
        let mut w1 = SnatTable::new(p, 1, 2);
        let a = w0.outbound(Proto::Udp, 1, 1, 0, 0).unwrap();
        let b = w1.outbound(Proto::Udp, 1, 1, 0, 0).unwrap();
        assert_eq!(port_owner(&p, 2, a), Some(0));
        assert_eq!(port_owner(&p, 2, b), Some(1));
        assert_eq!(
            w1.inbound(Proto::Udp, a, 0, 0),
            None,
            "not this worker's port"
        );
    }
}
