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
//! table is created: the session slab, the inside-key map and a direct port -> session array
//! per protocol, so the return path is one array index and nothing grows under a flood.

use super::neighbor::IntMap;

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

#[derive(Clone, Copy, Debug)]
struct Session {
    inside_ip: u32,
    inside_port: u16,
    ext_port: u16,
    proto: Proto,
    tcp: TcpState,
    last: u64,
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

#[inline]
fn inside_key(proto: Proto, ip: u32, port: u16) -> u64 {
    (u64::from(proto as u8) << 48) | (u64::from(port) << 32) | u64::from(ip)
}

pub struct SnatTable {
    params: SnatParams,
    block_first: u16,
    block_len: u16,
    max: usize,
    by_inside: IntMap<u64, u32>,
    by_port: [Box<[u32]>; 3],
    sessions: Vec<Session>,
    live: Vec<bool>,
    free: Vec<u32>,
    cursor: [u16; 3],
    scan: usize,
}

impl SnatTable {
    /// The table of worker `worker` of `workers`: its share of `max_sessions` and its block
    /// of ports, all allocated now.
    pub fn new(params: SnatParams, worker: usize, workers: usize) -> SnatTable {
        let (block_first, block_len) = port_block(&params, worker, workers);
        let max = (params.max_sessions / workers).max(1);
        let mut by_inside = IntMap::default();
        by_inside.reserve(max);
        let arr = || vec![NONE; usize::from(block_len)].into_boxed_slice();
        SnatTable {
            params,
            block_first,
            block_len,
            max,
            by_inside,
            by_port: [arr(), arr(), arr()],
            sessions: Vec::with_capacity(max),
            live: Vec::with_capacity(max),
            free: Vec::new(),
            cursor: [0; 3],
            scan: 0,
        }
    }

    pub fn params(&self) -> &SnatParams {
        &self.params
    }

    /// Sessions alive (not yet reclaimed).
    pub fn len(&self) -> usize {
        self.by_inside.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_inside.is_empty()
    }

    fn timeout(&self, s: &Session) -> u64 {
        let t = &self.params.timeouts;
        match s.proto {
            Proto::Udp => t.udp,
            Proto::Icmp => t.icmp,
            Proto::Tcp if s.tcp == TcpState::Established => t.tcp_established,
            Proto::Tcp => t.tcp_transitory,
        }
    }

    #[inline]
    fn expired(&self, s: &Session, now: u64) -> bool {
        now.saturating_sub(s.last) > self.timeout(s)
    }

    fn remove(&mut self, idx: u32) {
        let s = self.sessions[idx as usize];
        self.by_inside
            .remove(&inside_key(s.proto, s.inside_ip, s.inside_port));
        self.by_port[s.proto as usize][usize::from(s.ext_port - self.block_first)] = NONE;
        self.live[idx as usize] = false;
        self.free.push(idx);
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
        if let Some(&idx) = self.by_inside.get(&key) {
            let expired = self.expired(&self.sessions[idx as usize], now);
            let s = &mut self.sessions[idx as usize];
            if expired {
                // Same inside endpoint again after the timeout: a fresh session that keeps
                // its mapping (endpoint-independent mapping, RFC 4787 REQ-1).
                s.tcp = TcpState::SynSent;
            }
            s.last = now;
            if proto == Proto::Tcp {
                s.tcp = next_tcp_state(s.tcp, tcp_flags, false);
            }
            return Ok(s.ext_port);
        }
        if self.by_inside.len() >= self.max {
            return Err(SnatError::TableFull);
        }
        let ext_port = self
            .alloc_port(proto, now)
            .ok_or(SnatError::PortsExhausted)?;
        let s = Session {
            inside_ip: ip,
            inside_port: port,
            ext_port,
            proto,
            tcp: if tcp_flags & (FLAG_FIN | FLAG_RST) != 0 {
                TcpState::Closing
            } else {
                TcpState::SynSent
            },
            last: now,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.sessions[i as usize] = s;
                self.live[i as usize] = true;
                i
            }
            None => {
                self.sessions.push(s);
                self.live.push(true);
                (self.sessions.len() - 1) as u32
            }
        };
        self.by_inside.insert(key, idx);
        self.by_port[proto as usize][usize::from(ext_port - self.block_first)] = idx;
        Ok(ext_port)
    }

    /// A free port of this worker's block, reclaiming an expired session's port on the way.
    fn alloc_port(&mut self, proto: Proto, now: u64) -> Option<u16> {
        let n = self.block_len;
        for _ in 0..n {
            let off = self.cursor[proto as usize];
            self.cursor[proto as usize] = if off + 1 >= n { 0 } else { off + 1 };
            let idx = self.by_port[proto as usize][usize::from(off)];
            if idx == NONE {
                return Some(self.block_first + off);
            }
            if self.expired(&self.sessions[idx as usize], now) {
                self.remove(idx);
                return Some(self.block_first + off);
            }
        }
        None
    }

    /// The external port of a live session, without creating one (ICMP errors from inside).
    pub fn lookup_outbound(&self, proto: Proto, ip: u32, port: u16, now: u64) -> Option<u16> {
        let idx = *self.by_inside.get(&inside_key(proto, ip, port))?;
        let s = &self.sessions[idx as usize];
        (!self.expired(s, now)).then_some(s.ext_port)
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
        let idx = self.by_port[proto as usize][usize::from(off)];
        if idx == NONE {
            return None;
        }
        if self.expired(&self.sessions[idx as usize], now) {
            self.remove(idx);
            return None;
        }
        let s = &mut self.sessions[idx as usize];
        s.last = now;
        if proto == Proto::Tcp {
            s.tcp = next_tcp_state(s.tcp, tcp_flags, true);
        }
        Some((s.inside_ip, s.inside_port))
    }

    /// Reclaim expired sessions, looking at no more than `budget` slots; returns how many
    /// were removed. Called on the worker's timer, so a large table is swept a slice at a time.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = self.sessions.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            if self.scan >= n {
                self.scan = 0;
            }
            let i = self.scan;
            self.scan += 1;
            if self.live[i] && self.expired(&self.sessions[i], now) {
                self.remove(i as u32);
                removed += 1;
            }
        }
        removed
    }

    /// Live sessions, for the API.
    pub fn sessions(&self, now: u64) -> impl Iterator<Item = SessionView> + '_ {
        self.sessions
            .iter()
            .zip(self.live.iter())
            .filter(move |(s, l)| **l && !self.expired(s, now))
            .map(move |(s, _)| SessionView {
                proto: s.proto,
                inside_ip: s.inside_ip,
                inside_port: s.inside_port,
                external_port: s.ext_port,
                tcp_state: (s.proto == Proto::Tcp).then_some(s.tcp),
                idle_ns: now.saturating_sub(s.last),
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
