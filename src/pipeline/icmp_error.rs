//! ICMP errors as a stage (VPP `ip4-icmp-error`): earlier stages mark a packet with the
//! error to send; this stage counts the original's loss, checks that an error may be sent
//! at all, applies the per-worker rate limit and builds the error in the same frame.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::DropReason;
use crate::wire::ethernet::{self, HEADER_LEN as ETH, ethertype};
use crate::wire::icmp;
use crate::wire::ipv4::{self, class};

/// RFC 1812 section 4.3.2.3: the error datagram must not exceed 576 bytes.
pub const MAX_ERROR_DATAGRAM: usize = 576;
const ERR_HEADERS: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN;

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut ident = (ctx.now >> 10) as u16;
    for i in bits(mask) {
        let m = b.meta[i];
        // The packet that caused the error is lost: count it under its own reason. From here
        // on the frame is a new, vgate-originated packet.
        ctx.stats.count_drop(m.drop, 1);
        ctx.stats.generated.add(1);
        // A new packet: NAT looks at it afresh (the quote of an error about a DNATed packet
        // names the floating IP again).
        b.meta[i].nat_done = false;
        let d = b.desc[i];
        let (src, allowed) = {
            let l3 = &ctx.pool.bytes(&d)[ETH..];
            let ip = ipv4::Packet::new_unchecked(l3);
            (ip.src_u32(), error_allowed(&ip))
        };
        if !allowed {
            b.drop(i, DropReason::IcmpNotAllowed);
            continue;
        }
        if !ctx.state.icmp_limiter.allow(ctx.now) {
            ctx.stats.icmp_rate_limited.add(1);
            b.drop(i, DropReason::IcmpRateLimited);
            continue;
        }
        let from = ctx.snap.ports[m.rx_port as usize]
            .source_for(src)
            .or_else(|| ctx.snap.any_local_address());
        let Some(from) = from else {
            b.drop(i, DropReason::IcmpNoSourceAddress);
            continue;
        };
        let mut nd = d;
        if !ctx.pool.push_front(&mut nd, ERR_HEADERS) {
            b.drop(i, DropReason::RewriteNoFrames);
            continue;
        }
        ident = ident.wrapping_add(1);
        let orig_len = (d.len as usize) - ETH;
        let quote = orig_len.min(MAX_ERROR_DATAGRAM - ERR_HEADERS);
        nd.len = (ETH + ERR_HEADERS + quote) as u32;
        let buf = ctx.pool.bytes_mut(&nd);
        let mut eth = ethernet::Frame::new_unchecked(&mut buf[..]);
        eth.set_ethertype(ethertype::IPV4);
        ipv4::Repr {
            src: std::net::Ipv4Addr::from_bits(from),
            dst: std::net::Ipv4Addr::from_bits(src),
            protocol: ipv4::protocol::ICMP,
            payload_len: icmp::HEADER_LEN + quote,
            ttl: super::local::DEFAULT_TTL,
            ident,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut buf[ETH..]));
        let (t, c) = m.icmp.type_code();
        let mut msg = icmp::Packet::new_unchecked(&mut buf[ETH + ipv4::HEADER_LEN..]);
        msg.set_msg_type(t);
        msg.set_msg_code(c);
        msg.set_rest_of_header(u32::from(m.icmp_mtu));
        msg.fill_checksum();
        ctx.stats.icmp_errors[m.icmp as usize].add(1);
        b.desc[i] = nd;
        b.meta[i].local_origin = true;
        b.dst[i] = src;
        b.meta[i].ttl = super::local::DEFAULT_TTL;
        b.set_next(i, Next::Route);
    }
}

/// RFC 1812 section 4.3.2.7: never send an error about an ICMP error, about a fragment
/// other than the first, or to a source that does not name a single host.
fn error_allowed(ip: &ipv4::Packet<&[u8]>) -> bool {
    if ip.frag_offset() != 0 {
        return false;
    }
    let src = ip.src_u32();
    if src == 0 || class::is_martian_source(src) {
        return false;
    }
    if ip.protocol() == ipv4::protocol::ICMP {
        let p = ip.payload();
        if p.is_empty() || icmp::is_error_type(p[0]) {
            return false;
        }
    }
    true
}
