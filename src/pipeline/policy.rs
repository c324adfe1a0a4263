//! policy: ACLs and rate limits on floating IPs and networks (`[[acl]]`, `qos`).
//!
//! The stage runs after route, on packets bound for nat_out or encap: a packet's
//! destination is then translated (DNAT, un-SNAT) and its source not yet (SNAT), so rules
//! see tenant addresses both ways. What applies to a packet:
//!
//! * toward a tenant (`in`): the policy of the network holding the destination when the
//!   source is outside it, and of the floating IP whose internal address it is;
//! * from a tenant (`out`): the policy of the network holding the source when the
//!   destination is outside it, and of the source's floating IP.
//!
//! Each ACL that applies must allow the packet (first matching rule, else its default);
//! then each rate limit that applies must have the tokens for it. [`decide`] makes the
//! decision from reads only and [`commit`] applies it (counters, flows tracked, tokens
//! taken): the stage and the fast path both decide by these two.
//!
//! **Stateful ACLs.** A packet allowed by an `allow-related` rule records its flow in the
//! worker's [`Flows`]; a packet no rule allows (or a drop rule matches) passes when it is a
//! reply of such a flow, or an ICMP error quoting one (RFC 792: errors carry the packet they
//! are about). With several workers, a flow and its replies arrive on different workers
//! (the NIC hashes each direction on its own), so a flow's state lives on the worker its
//! symmetric hash names, and a packet that needs it is handed to that worker.
//!
//! **Rate limits** are token buckets per direction, in bytes and in packets, per worker:
//! nothing is shared on the hot path. Each worker earns its share of the rate; the control
//! thread sets the shares every 50 ms in proportion to what each worker was offered in the
//! last period (with a floor, so a worker whose traffic starts is never shut out), so a
//! limit holds with N workers whether one flow or many carry the traffic
//! ([`crate::control::Control::qos_rebalance`]).

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, WorkerStats};
use crate::tables::Snapshot;
use crate::tables::acl::{Flow, IN, OUT};
use crate::tables::flows::{self, Flows, Touch};
use crate::tables::policy::{PolicyRef, Rate};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::{checksum, icmp, ipv4};

use crate::control::config::AclAction;

/// Share of a rate a worker earns, in 1/65536.
pub const SHARE_ONE: u64 = 1 << 16;
/// Token units per byte or packet: rates times nanoseconds need no division.
const NANO: u64 = 1_000_000_000;

/// Per-worker policy state: the stateful ACLs' flows and the rate limits' buckets.
pub struct PolicyState {
    pub flows: Option<Flows>,
    /// Per rate-limit target of the snapshot in service, per direction.
    buckets: Vec<[Bucket; 2]>,
    /// The snapshot `buckets` belong to.
    of: (u64, usize),
    max_flows: usize,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Tokens, in [`NANO`] per byte and per packet.
    bytes: u64,
    packets: u64,
    /// When they were counted; 0: never (full).
    last: u64,
}

impl PolicyState {
    /// `max_flows`: `limits.acl_sessions`.
    pub fn new(max_flows: usize) -> PolicyState {
        PolicyState {
            flows: None,
            buckets: Vec::new(),
            of: (0, 0),
            max_flows,
        }
    }

    /// Follow the snapshot in service: full buckets for its targets, a flow table once an
    /// ACL needs one, fresh counter slots zeroed. Runs once per poll; allocates only when
    /// the snapshot changes.
    pub fn sync(&mut self, snap: &Snapshot, stats: &WorkerStats, worker: usize) {
        let of = (snap.generation, std::ptr::from_ref(snap) as usize);
        if self.of == of {
            return;
        }
        self.of = of;
        let p = &snap.policy;
        self.buckets.clear();
        self.buckets.resize(p.qos.len(), [Bucket::default(); 2]);
        if p.stateful && self.flows.is_none() {
            let seed = (worker as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
            self.flows = Some(Flows::new(self.max_flows, seed));
        }
        for r in &p.fresh_acl_slots {
            for s in r.clone() {
                if let Some(c) = stats.acl.get(s as usize) {
                    c.set(0);
                }
            }
        }
        for &s in &p.fresh_qos_slots {
            for d in 0..2 {
                let k = usize::from(s) * 2 + d;
                for a in [
                    &stats.qos_dropped,
                    &stats.qos_offered_bytes,
                    &stats.qos_offered_packets,
                ] {
                    if let Some(c) = a.get(k) {
                        c.set(0);
                    }
                }
            }
        }
    }

    /// Remove expired flows (the worker's timer).
    pub fn tick(&mut self, now: u64, stats: &WorkerStats) {
        if let Some(f) = self.flows.as_mut() {
            f.sweep(now);
            stats.acl_flows.set(f.len() as u64);
        }
    }
}

/// What the classifier and the flow table read of a packet: its flow, the flow an ICMP
/// error quotes, and its TCP flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parsed {
    pub flow: Flow,
    pub quote: Option<Flow>,
    pub tcp_flags: u8,
}

/// The flow of the IPv4 packet `l3` (checked by ip4_input, trimmed to its total length),
/// into `p` field by field: the decision reads the fields back one by one, so no wide load
/// spans the narrow stores that wrote them (returned by value, the parsed flow was copied
/// that way, and the store-forwarding stall cost 11 % of the decision's time).
#[inline(always)]
fn parse_into(l3: &[u8], p: &mut Parsed) {
    *p = Parsed::default();
    let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
        return;
    };
    let hl = usize::from(h[0] & 0x0f) * 4;
    let first = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
    p.flow = Flow {
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        ..Flow::default()
    };
    let l4 = l3.get(hl..).unwrap_or(&[]);
    if !first {
        return;
    }
    match h[9] {
        ipv4::protocol::TCP | ipv4::protocol::UDP if l4.len() >= 4 => {
            p.flow.sport = u16::from_be_bytes([l4[0], l4[1]]);
            p.flow.dport = u16::from_be_bytes([l4[2], l4[3]]);
            p.flow.ports = true;
            if h[9] == ipv4::protocol::TCP {
                p.tcp_flags = l4.get(13).copied().unwrap_or(0);
            }
        }
        ipv4::protocol::ICMP if !l4.is_empty() => {
            let t = l4[0];
            p.flow.icmp_type = Some(t);
            if matches!(t, icmp::msg::ECHO_REQUEST | icmp::msg::ECHO_REPLY) && l4.len() >= 8 {
                let id = u16::from_be_bytes([l4[4], l4[5]]);
                (p.flow.sport, p.flow.dport, p.flow.ports) = (id, id, true);
            } else if icmp::is_error_type(t) {
                p.quote = l4.get(icmp::HEADER_LEN..).and_then(quoted);
            }
        }
        _ => {}
    }
}

/// The flow of the datagram an ICMP error quotes (its header and first 8 bytes, RFC 792).
fn quoted(q: &[u8]) -> Option<Flow> {
    let h = q.first_chunk::<{ ipv4::HEADER_LEN }>()?;
    let hl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || hl < ipv4::HEADER_LEN {
        return None;
    }
    let mut f = Flow {
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        ..Flow::default()
    };
    let l4 = q.get(hl..)?;
    match h[9] {
        ipv4::protocol::TCP | ipv4::protocol::UDP if l4.len() >= 4 => {
            f.sport = u16::from_be_bytes([l4[0], l4[1]]);
            f.dport = u16::from_be_bytes([l4[2], l4[3]]);
            f.ports = true;
        }
        ipv4::protocol::ICMP if l4.len() >= 8 => {
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            (f.sport, f.dport, f.ports) = (id, id, true);
        }
        _ => return None,
    }
    Some(f)
}

/// The policies that apply to a packet from `src` to `dst`, with their directions: at most
/// a floating IP and a network each way.
#[derive(Clone, Copy, Default)]
struct Targets {
    n: usize,
    refs: [(PolicyRef, usize); 4],
}

impl Targets {
    fn push(&mut self, r: PolicyRef, dir: usize) {
        if r.is_some() && self.n < 4 {
            self.refs[self.n] = (r, dir);
            self.n += 1;
        }
    }
    fn iter(&self) -> impl Iterator<Item = (PolicyRef, usize)> + '_ {
        self.refs[..self.n].iter().copied()
    }
}

#[inline]
fn targets(snap: &Snapshot, src: u32, dst: u32, translated: bool) -> Targets {
    let p = &snap.policy;
    let mut t = Targets::default();
    let (ns, nd) = (snap.network_of(src), snap.network_of(dst));
    if ns == nd && ns.is_some() && !translated {
        // Within one network, untranslated: not through the router's policy. (Translated,
        // it is hairpin traffic through a floating IP, which its policy holds for.)
        return t;
    }
    // Toward the destination's side, then from the source's: the floating IP whose internal
    // address it is, then the network that holds it.
    for (ip, net, dir) in [(dst, nd, IN), (src, ns, OUT)] {
        if p.any_fip
            && let Some(x) = snap.fip_by_internal.lookup(ip)
        {
            t.push(p.fip.get(usize::from(x)).copied().unwrap_or_default(), dir);
        }
        if p.any_network
            && let Some(n) = net
        {
            t.push(
                p.network.get(usize::from(n)).copied().unwrap_or_default(),
                dir,
            );
        }
    }
    t
}

/// What [`decide`] found for a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Pass,
    Drop(DropReason),
    /// A stateful ACL needs the flow state of this worker.
    Handoff(u8),
}

/// A decision, with what [`commit`] applies.
#[derive(Clone, Copy)]
pub struct Decision {
    pub verdict: Verdict,
    /// A rate limit applies (the fast path leaves such packets to the stage, so tokens are
    /// taken in packet order on both paths).
    pub limited: bool,
    /// DSCP to write into the packet when it passes.
    pub dscp: Option<u8>,
    /// ACL counter slots to count, each with the ACL whose flow table tracks the packet's
    /// flow (index + 1; 0: none).
    counted: [(u32, u16); 4],
    n_counted: u8,
    /// Related passes, to refresh: the ACLs (the flow is the quote's or the reply's).
    related: [u16; 4],
    n_related: u8,
    /// Rate-limit checks: (target, direction), and how many passed (the one after them, if
    /// any, failed).
    qos: [(u16, u8); 4],
    n_qos: u8,
    qos_passed: u8,
    len: u32,
    workers: u16,
}

/// Nothing applies: pass untouched.
const NOTHING: Decision = Decision {
    verdict: Verdict::Pass,
    limited: false,
    dscp: None,
    counted: [(0, 0); 4],
    n_counted: 0,
    related: [0; 4],
    n_related: 0,
    qos: [(0, 0); 4],
    n_qos: 0,
    qos_passed: 0,
    len: 0,
    workers: 1,
};

impl Decision {
    /// True when no policy applies to the packet: it passes untouched, nothing counted.
    pub fn is_nothing(&self) -> bool {
        self.verdict == Verdict::Pass
            && !self.limited
            && self.n_counted == 0
            && self.n_qos == 0
            && self.dscp.is_none()
    }

    /// True when the fast path may apply this decision about a packet that parsed as
    /// `p` itself: the packet passes, takes no tokens (rate limits are applied in packet
    /// order, by the stage only), and is no ICMP error (its quote is translated only as the
    /// packet is written).
    #[inline]
    pub fn fast(&self, p: &Parsed) -> bool {
        self.verdict == Verdict::Pass && !self.limited && p.quote.is_none()
    }
}

/// The worker that keeps the state of flow `f`: the same for its replies (the hash is over
/// the two ends in a fixed order).
#[inline]
fn owner(f: &Flow, workers: usize) -> usize {
    let a = (u64::from(f.src) << 16) | u64::from(f.sport);
    let b = (u64::from(f.dst) << 16) | u64::from(f.dport);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let h = (lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi.rotate_left(31))
        .wrapping_add(u64::from(f.proto))
        .wrapping_mul(0xff51_afd7_ed55_8ccd);
    ((h >> 32) as usize) % workers.max(1)
}

/// The policy decision for the IPv4 packet `l3` (trimmed to its total length) to `dst`
/// (its destination once DNAT has run: the fast path decides before it writes), from reads
/// only. `hops`: times the packet was already handed to another worker; `translated`: its
/// destination was translated inbound (DNAT, un-SNAT). For the fast path
/// (`fast`), a packet a rate limit applies to is only marked `limited`: the stage decides
/// it.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub fn decide(
    snap: &Snapshot,
    st: &PolicyState,
    stats: &WorkerStats,
    (worker, workers, hops, fast, translated): (usize, usize, u8, bool, bool),
    l3: &[u8],
    dst: u32,
    now: u64,
    parsed: &mut Parsed,
) -> Decision {
    let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
        return NOTHING;
    };
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let t = targets(snap, src, dst, translated);
    if t.n == 0 {
        return NOTHING;
    }
    let p = &snap.policy;
    let mut d = NOTHING;
    if fast
        && t.iter().any(|(r, dir)| {
            r.qos
                .and_then(|q| p.qos.get(usize::from(q)))
                .is_some_and(|q| q.rate[dir].is_some())
        })
    {
        d.limited = true;
        return d;
    }
    parse_into(l3, parsed);
    parsed.flow.dst = dst;
    let parsed = &*parsed;
    d.len = l3.len() as u32;
    d.workers = workers as u16;
    let flow = &parsed.flow;
    // The flow state a stateful ACL reads lives on one worker.
    let home = if workers <= 1 {
        worker
    } else {
        owner(parsed.quote.as_ref().unwrap_or(flow), workers)
    };
    let local = home == worker || usize::from(hops) >= workers;
    let home = home as u8;
    for (r, dir) in t.iter() {
        let Some(ai) = r.acl else { continue };
        let Some(a) = p.acls.get(usize::from(ai)) else {
            continue;
        };
        let rule = a.dirs[dir].first_match(flow);
        let action = rule.map_or(a.default, |r| a.actions[usize::from(r)]);
        let slot = rule.map_or(a.default_slot(), |r| a.slot + u32::from(r));
        match action {
            AclAction::Allow => d.push_count(slot, 0),
            AclAction::AllowRelated => {
                if !local {
                    d.verdict = Verdict::Handoff(home);
                    return d;
                }
                if !flow.ports && flow.proto != ipv4::protocol::ICMP || parsed.quote.is_some() {
                    // Nothing to track (a fragment, an error): allowed by the rule alone.
                    d.push_count(slot, 0);
                    continue;
                }
                let k = flows::key(ai, flow);
                let known = st.flows.as_ref().is_some_and(|f| f.holds(k, now));
                let room = st
                    .flows
                    .as_ref()
                    .is_some_and(|f| known || f.len() < f.max());
                if !room {
                    d.verdict = Verdict::Drop(DropReason::AclSessionTableFull);
                    return d;
                }
                d.push_count(slot, ai + 1);
            }
            AclAction::Drop => {
                // A reply of a flow allowed the other way, or an error about one, passes.
                if a.related[dir] {
                    if !local {
                        d.verdict = Verdict::Handoff(home);
                        return d;
                    }
                    let tracked = match parsed.quote {
                        Some(q) => q,
                        None => flow.reversed(),
                    };
                    if (flow.ports || parsed.quote.is_some())
                        && st
                            .flows
                            .as_ref()
                            .is_some_and(|f| f.holds(flows::key(ai, &tracked), now))
                    {
                        d.push_count(a.related_slot(), 0);
                        if d.n_related < 4 {
                            d.related[usize::from(d.n_related)] = ai;
                            d.n_related += 1;
                        }
                        continue;
                    }
                }
                d.push_count(slot, 0);
                d.verdict = Verdict::Drop(DropReason::AclDenied);
                return d;
            }
        }
    }
    for (r, dir) in t.iter() {
        let Some(qi) = r.qos else { continue };
        let Some(q) = p.qos.get(usize::from(qi)) else {
            continue;
        };
        if d.dscp.is_none() {
            d.dscp = q.dscp;
        }
        let Some(rate) = q.rate[dir] else { continue };
        d.limited = true;
        if d.n_qos < 4 {
            d.qos[usize::from(d.n_qos)] = (qi, dir as u8);
            d.n_qos += 1;
        }
        let share = share(stats, q.slot, dir, workers);
        let b = st
            .buckets
            .get(usize::from(qi))
            .map_or(Bucket::default(), |b| b[dir]);
        let (bytes, packets) = refill(&rate, &b, share, now);
        if (rate.bytes_per_sec != 0 && bytes < u64::from(d.len) * NANO)
            || (rate.packets_per_sec != 0 && packets < NANO)
        {
            d.verdict = Verdict::Drop(DropReason::QosRateExceeded);
            return d;
        }
        d.qos_passed = d.n_qos;
    }
    d
}

impl Decision {
    fn push_count(&mut self, slot: u32, track: u16) {
        if self.n_counted < 4 {
            self.counted[usize::from(self.n_counted)] = (slot, track);
            self.n_counted += 1;
        }
    }
}

/// This worker's share of target `slot`'s rate in direction `dir`, as the control thread
/// last set it ([`SHARE_ONE`] / workers until then).
#[inline]
fn share(stats: &WorkerStats, slot: u16, dir: usize, workers: usize) -> u64 {
    match stats
        .qos_share
        .get(usize::from(slot) * 2 + dir)
        .map(|c| c.get())
    {
        Some(s) if s != 0 => s,
        _ => SHARE_ONE / workers.max(1) as u64,
    }
}

/// The tokens of bucket `b` at `now`: (bytes, packets), in [`NANO`] units.
#[inline]
fn refill(rate: &Rate, b: &Bucket, share: u64, now: u64) -> (u64, u64) {
    let cap_b = rate.burst_bytes.saturating_mul(NANO);
    let cap_p = rate.burst_packets.saturating_mul(NANO);
    if b.last == 0 {
        return (cap_b, cap_p);
    }
    let dt = u128::from(now.saturating_sub(b.last));
    let earn = |per_sec: u64| -> u128 { (dt * u128::from(per_sec) * u128::from(share)) >> 16 };
    let bytes = (u128::from(b.bytes) + earn(rate.bytes_per_sec)).min(u128::from(cap_b)) as u64;
    let packets =
        (u128::from(b.packets) + earn(rate.packets_per_sec)).min(u128::from(cap_p)) as u64;
    (bytes, packets)
}

/// Apply decision `d` (from [`decide`], for this state, unchanged since) about a packet
/// that parsed as `parsed`: count the ACL outcomes, track allowed flows and refresh related
/// ones, take the tokens or count the rate-limit drop.
#[inline(never)]
pub fn commit(
    snap: &Snapshot,
    st: &mut PolicyState,
    stats: &WorkerStats,
    d: &Decision,
    parsed: &Parsed,
    now: u64,
) {
    let flow = &parsed.flow;
    for &(slot, track) in &d.counted[..usize::from(d.n_counted)] {
        if let Some(c) = stats.acl.get(slot as usize) {
            c.add(1);
        }
        if track != 0
            && let Some(f) = st.flows.as_mut()
        {
            // Room was checked by decide.
            let _ = f.track(
                flows::key(track - 1, flow),
                flow.proto,
                parsed.tcp_flags,
                now,
                Touch::Forward,
            );
        }
    }
    let tracked = parsed.quote.unwrap_or_else(|| flow.reversed());
    for &ai in &d.related[..usize::from(d.n_related)] {
        if let Some(f) = st.flows.as_mut() {
            let _ = f.track(
                flows::key(ai, &tracked),
                tracked.proto,
                parsed.tcp_flags,
                now,
                Touch::Reply,
            );
        }
    }
    let p = &snap.policy;
    for (n, &(qi, dir)) in d.qos[..usize::from(d.n_qos)].iter().enumerate() {
        let dir = usize::from(dir);
        let Some(q) = p.qos.get(usize::from(qi)) else {
            continue;
        };
        let k = usize::from(q.slot) * 2 + dir;
        if let Some(c) = stats.qos_offered_bytes.get(k) {
            c.add(u64::from(d.len));
        }
        if let Some(c) = stats.qos_offered_packets.get(k) {
            c.add(1);
        }
        if n >= usize::from(d.qos_passed) {
            // The check that failed (decide stops there).
            if let Some(c) = stats.qos_dropped.get(k) {
                c.add(1);
            }
            continue;
        }
        let (Some(rate), Some(b)) = (q.rate[dir], st.buckets.get_mut(usize::from(qi))) else {
            continue;
        };
        let workers = usize::from(d.workers);
        let (bytes, packets) = refill(&rate, &b[dir], share(stats, q.slot, dir, workers), now);
        b[dir] = Bucket {
            bytes: if rate.bytes_per_sec != 0 {
                bytes.saturating_sub(u64::from(d.len) * NANO)
            } else {
                bytes
            },
            packets: if rate.packets_per_sec != 0 {
                packets.saturating_sub(NANO)
            } else {
                packets
            },
            last: now.max(1),
        };
    }
}

/// Write DSCP `dscp` into the IPv4 header of `l3`, patching its checksum (RFC 1624).
#[inline]
pub fn mark_dscp(l3: &mut [u8], dscp: u8) {
    let Some(h) = l3.first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
        return;
    };
    let old = u16::from_be_bytes([h[0], h[1]]);
    h[1] = (dscp << 2) | (h[1] & 0x03);
    let new = u16::from_be_bytes([h[0], h[1]]);
    if old != new {
        let c = checksum::update16(u16::from_be_bytes([h[10], h[11]]), old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// The stage: decide and apply every packet of `mask` (at nat_out or encap) that vgate did
/// not originate. Drops are counted as [`DropReason::AclDenied`],
/// [`DropReason::AclSessionTableFull`] or [`DropReason::QosRateExceeded`].
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let snap = ctx.snap;
    for i in bits(mask) {
        let m = b.meta[i];
        if m.local_origin {
            continue;
        }
        let d = b.desc[i];
        let l3 = &ctx.pool.bytes(&d)[ETH..];
        let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
            continue;
        };
        let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let mut parsed = Parsed::default();
        let dec = decide(
            snap,
            &ctx.state.policy,
            ctx.stats,
            (
                ctx.state.worker,
                ctx.state.workers,
                m.handoff_hops,
                false,
                m.nat_done,
            ),
            l3,
            dst,
            ctx.now,
            &mut parsed,
        );
        if dec.is_nothing() {
            continue;
        }
        match dec.verdict {
            Verdict::Pass => {
                commit(
                    snap,
                    &mut ctx.state.policy,
                    ctx.stats,
                    &dec,
                    &parsed,
                    ctx.now,
                );
                if let Some(dscp) = dec.dscp {
                    mark_dscp(&mut ctx.pool.bytes_mut(&d)[ETH..], dscp);
                }
            }
            Verdict::Drop(r) => {
                commit(
                    snap,
                    &mut ctx.state.policy,
                    ctx.stats,
                    &dec,
                    &parsed,
                    ctx.now,
                );
                b.drop(i, r);
            }
            Verdict::Handoff(w) => {
                let m = &mut b.meta[i];
                m.handoff_hops = m.handoff_hops.saturating_add(1);
                m.handoff_to = w;
                b.set_next(i, Next::Handoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_the_same_both_ways() {
        let f = Flow {
            src: 0x0a00_0005,
            dst: 0xc633_6407,
            proto: 6,
            sport: 40000,
            dport: 80,
            ports: true,
            icmp_type: None,
        };
        for w in 1..9 {
            assert_eq!(owner(&f, w), owner(&f.reversed(), w));
        }
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|p| {
                owner(
                    &Flow {
                        sport: 40000 + p,
                        ..f
                    },
                    4,
                )
            })
            .collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn buckets_earn_their_rate() {
        let rate = Rate::new(Some(8), Some(1), Some(1)).unwrap(); // 1 MB/s, 1000 pps
        assert_eq!(rate.burst_bytes, 1024);
        let full = refill(&rate, &Bucket::default(), SHARE_ONE, 5);
        assert_eq!(full, (1024 * NANO, 64 * NANO));
        let empty = Bucket {
            bytes: 0,
            packets: 0,
            last: 1_000_000,
        };
        // 1 ms later: 1000 bytes and 1 packet; half of that on half the share.
        assert_eq!(
            refill(&rate, &empty, SHARE_ONE, 2_000_000),
            (1000 * NANO, NANO)
        );
        assert_eq!(
            refill(&rate, &empty, SHARE_ONE / 2, 2_000_000),
            (500 * NANO, NANO / 2)
        );
    }

    #[test]
    fn dscp_marking_keeps_the_checksum_right() {
        let mut h = [
            0x45u8, 0x02, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 5, 198, 51, 100, 7,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        mark_dscp(&mut h, 46);
        assert_eq!(h[1], (46 << 2) | 2, "ECN bits kept");
        assert!(checksum::header20_ok(&h), "verifies");
    }
}
