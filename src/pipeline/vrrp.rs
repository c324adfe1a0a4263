//! VRRP in the data plane: received adverts go to the election (`control::vrrp`), and a
//! backup neither answers for nor takes traffic to what its groups own.
//!
//! The election's outcome reaches a worker as one register per poll
//! ([`WorkerState::ha_masters`], from [`crate::tables::ha::masters`]): a demotion holds from
//! the next batch on. Every decision here is a function the stages and the fast path call
//! alike.

use super::{Ctx, WorkerState};
use crate::metrics::DropReason;
use crate::tables::Snapshot;
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::{Error, ipv4, vrrp};

/// Adverts one worker hands to the election per poll; more in one poll (a flood) are
/// dropped as `vrrp/queue_full`.
pub const ADVERTS_PER_POLL: usize = 64;

/// What became of a received advert, for `vrrp_adverts_received_total{group,result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvertResult {
    Ok,
    BadTtl,
    BadVersion,
    BadChecksum,
    Malformed,
    OffSegment,
}

impl AdvertResult {
    pub const ALL: [AdvertResult; 6] = [
        AdvertResult::Ok,
        AdvertResult::BadTtl,
        AdvertResult::BadVersion,
        AdvertResult::BadChecksum,
        AdvertResult::Malformed,
        AdvertResult::OffSegment,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AdvertResult::Ok => "ok",
            AdvertResult::BadTtl => "bad_ttl",
            AdvertResult::BadVersion => "bad_version",
            AdvertResult::BadChecksum => "bad_checksum",
            AdvertResult::Malformed => "malformed",
            AdvertResult::OffSegment => "off_segment",
        }
    }

    /// The drop reason the packet is counted under.
    pub fn reason(self) -> DropReason {
        match self {
            AdvertResult::Ok => DropReason::VrrpAdvert,
            AdvertResult::BadTtl => DropReason::VrrpBadTtl,
            AdvertResult::BadVersion => DropReason::VrrpBadVersion,
            AdvertResult::BadChecksum => DropReason::VrrpBadChecksum,
            AdvertResult::Malformed => DropReason::VrrpMalformed,
            AdvertResult::OffSegment => DropReason::VrrpOffSegment,
        }
    }
}

/// An advert for one of this node's groups, as the election needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertIn {
    pub port: u8,
    pub vrid: u8,
    /// The sender's address (its primary address on the segment, RFC 5798 section 5.1.1.1).
    pub src: u32,
    pub priority: u8,
    /// Centiseconds.
    pub interval_cs: u16,
    pub addr_count: u8,
    pub result: AdvertResult,
}

/// True for a VRRP packet (IP protocol 112 to 224.0.0.18) in the IPv4 packet `l3`.
#[inline]
pub fn is_advert(l3: &[u8]) -> bool {
    l3.len() >= ipv4::HEADER_LEN && l3[9] == vrrp::PROTOCOL && l3[16..20] == vrrp::GROUP
}

/// RFC 5798 section 7.1 on the advert in the checked IPv4 packet `l3` received on `port`:
/// handed to the election when it is for one of the port's groups; the reason it is
/// counted under either way.
pub fn receive(ctx: &mut Ctx, port: u8, l3: &[u8]) -> DropReason {
    let ip = ipv4::Packet::new_unchecked(l3);
    let hl = ip.header_len();
    let total = usize::from(ip.total_len()).min(l3.len());
    let Some(msg) = l3.get(hl..total) else {
        return DropReason::VrrpMalformed;
    };
    let Ok(p) = vrrp::Packet::new_checked(msg) else {
        return DropReason::VrrpMalformed;
    };
    // "MUST verify that the VRID is configured on the receiving interface": another pair's
    // adverts on the same segment are none of our business.
    if !ctx
        .snap
        .vrrp
        .iter()
        .any(|g| g.port == port && g.vrid == p.vrid())
    {
        return DropReason::VrrpOtherGroup;
    }
    let src = ip.src_u32();
    let result = classify(ctx.snap, port, &p, src, ip.ttl());
    let a = AdvertIn {
        port,
        vrid: p.vrid(),
        src,
        priority: p.priority(),
        interval_cs: p.max_adver_int(),
        addr_count: p.addr_count(),
        result,
    };
    if ctx.state.vrrp_rx.len() >= ctx.state.vrrp_room {
        return DropReason::VrrpQueueFull;
    }
    ctx.state.vrrp_rx.push(a);
    result.reason()
}

/// The checks of RFC 5798 section 7.1 in order (TTL first: a routed advert is off the
/// segment whatever else it says), then the sender's address: a peer of a group is on
/// the port's segment.
fn classify(snap: &Snapshot, port: u8, p: &vrrp::Packet<&[u8]>, src: u32, ttl: u8) -> AdvertResult {
    if ttl != vrrp::TTL {
        return AdvertResult::BadTtl;
    }
    match vrrp::Repr::parse(p, src.to_be_bytes(), vrrp::GROUP, ttl) {
        Err(Error::Unsupported) => return AdvertResult::BadVersion,
        Err(Error::Checksum) => return AdvertResult::BadChecksum,
        Err(_) => return AdvertResult::Malformed,
        Ok(_) => {}
    }
    match snap.ports.get(usize::from(port)) {
        Some(pi) if pi.on_link(src) => AdvertResult::Ok,
        _ => AdvertResult::OffSegment,
    }
}

/// True when a backup must drop a frame received on `port` to `dst_mac` for `dst`: one of
/// the port's groups this node is not master of owns the MAC or the address. Asked only
/// for ports in [`WorkerState::ha_guarded`]; a master pays nothing.
#[inline(never)]
pub fn backup_owns(snap: &Snapshot, masters: u64, port: u8, dst_mac: &[u8], dst: u32) -> bool {
    let Some(a) = snap.arp.get(usize::from(port)) else {
        return false;
    };
    let backup = |slot: u8| masters & (1u64 << (slot & 63)) == 0;
    a.owned_macs
        .iter()
        .any(|(m, slot)| m.0[..] == *dst_mac && backup(*slot))
        || a.owner(dst).is_some_and(backup)
}

/// [`backup_owns`] for an IPv4 frame `f` received on `port`, when the port is guarded.
#[inline(always)]
pub fn backup_drops(snap: &Snapshot, st: &WorkerState, port: u8, f: &[u8]) -> bool {
    st.ha_guarded & (1u64 << (port & 63)) != 0
        && f.len() >= ETH + ipv4::HEADER_LEN
        && backup_owns(
            snap,
            st.ha_masters,
            port,
            &f[..6],
            u32::from_be_bytes([f[ETH + 16], f[ETH + 17], f[ETH + 18], f[ETH + 19]]),
        )
}

/// True when this node must not answer or learn an ARP claim for `ip` on `port`: a group it
/// is backup of owns the address.
#[inline]
pub fn arp_backup(snap: &Snapshot, st: &WorkerState, port: u8, ip: u32) -> bool {
    st.ha_guarded & (1u64 << (port & 63)) != 0
        && snap
            .arp
            .get(usize::from(port))
            .and_then(|a| a.owner(ip))
            .is_some_and(|slot| st.ha_masters & (1u64 << (slot & 63)) == 0)
}
