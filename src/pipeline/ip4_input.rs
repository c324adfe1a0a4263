//! IPv4 input: the receive checks of RFC 1812 section 5.2.2 and martian filtering.

use super::{Batch, Ctx, Next, bits, vrrp};
use crate::metrics::DropReason;
use crate::tables::Snapshot;
use crate::wire::checksum;
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::ipv4::{self, class};

/// Validate every IPv4 packet of `mask`; trim link-layer padding so later stages see
/// exactly the datagram; then route it.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    // Geneve to the tunnel endpoint goes straight to decap: it is local (the address is in
    // every table), neither NAT nor routing has anything to do with it. Without a tunnel the
    // loop has no such check at all.
    match ctx.snap.tunnel {
        Some(t) => run_with::<true>(ctx, b, mask, t.local, t.udp_port),
        None => run_with::<false>(ctx, b, mask, 0, 0),
    }
}

#[inline(always)]
fn run_with<const TUNNEL: bool>(
    ctx: &mut Ctx,
    b: &mut Batch,
    mask: u64,
    tun_local: u32,
    tun_port: u16,
) {
    let mut slow = 0u64;
    let mut to_tunnel = 0u64;
    for i in bits(mask) {
        let d = b.desc[i];
        // The common case, as the fast path decides it. Anything else goes through the full
        // checks of `check_slow`, which name the drop reason.
        if let Some(f) = ctx
            .pool
            .bytes(&d)
            .first_chunk::<{ ETH + ipv4::HEADER_LEN }>()
            && let Some(c) = common(ctx.snap, f, d.len as usize)
        {
            b.desc[i].len = (ETH + c.total) as u32;
            b.dst[i] = c.dst;
            b.meta[i].ttl = c.ttl;
            // Looked at more closely after the loop: one compare here.
            if TUNNEL {
                to_tunnel |= u64::from(c.dst == tun_local) << i;
            }
            continue;
        }
        slow |= 1 << i;
    }
    // What the fast path did not set aside is checked and trimmed.
    let mut to_route = mask & !slow;
    for i in bits(slow) {
        match check_slow(ctx, b, i) {
            Ok((total, dst, ttl)) => {
                b.desc[i].len = (ETH + total) as u32;
                b.dst[i] = dst;
                b.meta[i].ttl = ttl;
                to_route |= 1 << i;
            }
            // The one multicast vgate takes: VRRP adverts, for the election.
            Err(DropReason::Ip4MartianDestination) if !ctx.snap.vrrp.is_empty() => {
                let d = b.desc[i];
                let port = b.meta[i].rx_port;
                let l3 = &ctx.pool.bytes(&d)[ETH..];
                let r = if vrrp::is_advert(l3) {
                    // The pool is not touched: copy the few bytes the election reads.
                    let mut buf = [0u8; ADVERT_COPY];
                    let n = l3.len().min(ADVERT_COPY);
                    buf[..n].copy_from_slice(&l3[..n]);
                    vrrp::receive(ctx, port, &buf[..n])
                } else {
                    DropReason::Ip4MartianDestination
                };
                b.drop(i, r);
            }
            Err(r) => b.drop(i, r),
        }
    }
    // A backup takes nothing for what its groups own (RFC 5798 section 6.4.2).
    if ctx.state.ha_guarded != 0 {
        for i in bits(to_route) {
            let port = b.meta[i].rx_port;
            if b.meta[i].vni_net == 0
                && vrrp::backup_drops(ctx.snap, ctx.state, port, ctx.pool.bytes(&b.desc[i]))
            {
                b.drop(i, DropReason::VrrpBackup);
                to_route &= !(1 << i);
            }
        }
    }
    let next = if ctx.snap.has_nat() {
        Next::NatIn
    } else {
        Next::Route
    };
    let mut to_decap = 0u64;
    if TUNNEL {
        for i in bits(to_tunnel & to_route) {
            let d = b.desc[i];
            if is_geneve(&ctx.pool.bytes(&d)[ETH..], tun_port) {
                to_decap |= 1 << i;
            }
        }
    }
    b.set_next_mask(Next::Ip4Input, to_decap, Next::Decap);
    b.set_next_mask(Next::Ip4Input, to_route & !to_decap, next);
}

/// Bytes of an advert's IPv4 packet the election may read: a 60-byte header, the VRRP
/// header and the 255 addresses an advert can declare at most.
const ADVERT_COPY: usize = 60 + 8 + 4 * 255;

/// What ip4_input reads of a packet in its common case.
#[derive(Clone, Copy)]
pub(super) struct Common {
    /// The datagram's total length (the frame may carry link-layer padding after it).
    pub total: usize,
    pub src: u32,
    pub dst: u32,
    pub ttl: u8,
    pub proto: u8,
}

/// ip4_input's decision for the common case of the Ethernet frame `f` of `frame_len` bytes
/// (its first bytes are `f`): an option-less header that passes RFC 1812 section 5.2.2
/// ([`fast_header_total`]), from and to ordinary addresses (not martian, RFC 1812 section
/// 5.3.7), from none of vgate's own. None sends the packet to the full checks, which name
/// what is wrong. The stage and the fast path both decide by this.
#[inline(always)]
pub(super) fn common(
    snap: &Snapshot,
    f: &[u8; ETH + ipv4::HEADER_LEN],
    frame_len: usize,
) -> Option<Common> {
    let h = f[ETH..].first_chunk::<{ ipv4::HEADER_LEN }>()?;
    let total = fast_header_total(h, frame_len - ETH)?;
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    // Exact behind the filter: a filter hit that is not one of vgate's addresses would
    // otherwise cost the packet the full checks.
    if martian(h[12]) | martian(h[16]) || snap.own.contains(src) {
        return None;
    }
    Some(Common {
        total,
        src,
        dst,
        ttl: h[8],
        proto: h[9],
    })
}

/// The total length of the IPv4 header `h` when it is the common one, checked as RFC 1812
/// section 5.2.2 asks: version 4 without options, a total length from 20 bytes up to
/// `l3_len` (what the frame holds after the Ethernet header), a correct checksum. None sends
/// the packet to the full checks of [`check`], which name what is wrong.
#[inline(always)]
fn fast_header_total(h: &[u8; ipv4::HEADER_LEN], l3_len: usize) -> Option<usize> {
    if h[0] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    (total >= ipv4::HEADER_LEN && total <= l3_len && checksum::header20_ok(h)).then_some(total)
}

/// A UDP datagram to `port`, not a fragment, in the option-less IPv4 packet `l3` (checked,
/// trimmed to its total length).
#[inline(always)]
pub(super) fn is_geneve(l3: &[u8], port: u16) -> bool {
    l3[9] == ipv4::protocol::UDP
        && u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff == 0
        && l3
            .get(ipv4::HEADER_LEN + 2..ipv4::HEADER_LEN + 4)
            .is_some_and(|p| u16::from_be_bytes([p[0], p[1]]) == port)
}

/// [`class::is_martian_source`] (and `_destination`, the same classes) by the first octet:
/// 0, 127, or 224 and above.
#[inline(always)]
fn martian(first_octet: u8) -> bool {
    MARTIAN_OCTET[first_octet as usize]
}

/// `class::is_martian_source(octet << 24)` for every first octet: one load per address.
static MARTIAN_OCTET: [bool; 256] = {
    let mut t = [false; 256];
    let mut o = 0;
    while o < 256 {
        t[o] = class::is_martian_source((o as u32) << 24);
        o += 1;
    }
    t
};

/// Every check for packet `i`, in order: the datagram's total length, destination and TTL,
/// or why it is dropped.
#[inline(never)]
fn check_slow(ctx: &Ctx, b: &Batch, i: usize) -> Result<(usize, u32, u8), DropReason> {
    let l3 = &ctx.pool.bytes(&b.desc[i])[ETH..];
    let total = check(l3)?;
    let ip = ipv4::Packet::new_unchecked(l3);
    if class::is_martian_source(ip.src_u32()) {
        Err(DropReason::Ip4MartianSource)
    } else if ctx.snap.own.contains(ip.src_u32()) {
        // RFC 1812 section 5.3.7: an invalid source; nobody else may use ours.
        Err(DropReason::Ip4OwnSource)
    } else if class::is_martian_destination(ip.dst_u32()) {
        Err(DropReason::Ip4MartianDestination)
    } else {
        Ok((total, ip.dst_u32(), ip.ttl()))
    }
}

/// RFC 1812 section 5.2.2: length, version, header length, total length, checksum.
/// Returns the datagram's total length.
#[inline]
pub fn check(l3: &[u8]) -> Result<usize, DropReason> {
    // The common header: version 4, no options. The checks below in the same order, on a
    // fixed-size view.
    if let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>()
        && h[0] == 0x45
    {
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        return if total < ipv4::HEADER_LEN {
            Err(DropReason::Ip4BadHeaderLength)
        } else if total > l3.len() {
            Err(DropReason::Ip4TooShort)
        } else if !checksum::header20_ok(h) {
            Err(DropReason::Ip4BadChecksum)
        } else {
            Ok(total)
        };
    }
    if l3.len() < ipv4::HEADER_LEN {
        return Err(DropReason::Ip4TooShort);
    }
    let ip = ipv4::Packet::new_unchecked(l3);
    if ip.version() != 4 {
        return Err(DropReason::Ip4BadVersion);
    }
    let hl = ip.header_len();
    if hl < ipv4::HEADER_LEN {
        return Err(DropReason::Ip4BadHeaderLength);
    }
    if hl > l3.len() {
        return Err(DropReason::Ip4TooShort);
    }
    let total = ip.total_len() as usize;
    if total < hl {
        return Err(DropReason::Ip4BadHeaderLength);
    }
    if total > l3.len() {
        return Err(DropReason::Ip4TooShort);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::Ip4BadChecksum);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn martian_by_first_octet_matches_address_classes() {
        for t in 0..=255u8 {
            for rest in [0u32, 1, 0x00ff_ffff] {
                let a = (u32::from(t) << 24) | rest;
                assert_eq!(martian(t), class::is_martian_source(a), "{a:#010x}");
                assert_eq!(martian(t), class::is_martian_destination(a), "{a:#010x}");
            }
        }
    }
}
