//! Packets for vgate's own addresses: ICMP echo is answered (RFC 792, RFC 1812 section
//! 4.3.3.6); UDP and TCP get port unreachable and other protocols protocol unreachable
//! (RFC 1122 section 3.2.2.1). vgate runs no services on its dataplane addresses.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::{DropReason, IcmpKind};
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::{checksum, icmp, ipv4};

/// TTL of packets vgate originates (RFC 1700 / Linux default).
pub const DEFAULT_TTL: u8 = 64;

pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut replies = 0;
    for i in bits(mask) {
        let d = b.desc[i];
        let buf = ctx.pool.bytes_mut(&d);
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
        if ip.is_fragment() {
            b.drop(i, DropReason::Ip4LocalFragment);
            continue;
        }
        match ip.protocol() {
            ipv4::protocol::ICMP => {
                let hl = ip.header_len();
                let total = ip.total_len() as usize;
                let ok = {
                    let msg = &ip.payload();
                    msg.len() >= icmp::HEADER_LEN
                        && msg[0] == icmp::msg::ECHO_REQUEST
                        && checksum::checksum(msg) == 0
                };
                if !ok {
                    b.drop(i, DropReason::Ip4LocalIcmp);
                    continue;
                }
                // Reply in place: swap addresses (the header sum is unchanged by a swap),
                // fresh TTL, type 8 -> 0, both checksums patched incrementally.
                let (src, dst) = (ip.src_u32(), ip.dst_u32());
                ip.set_src_addr(std::net::Ipv4Addr::from_bits(dst));
                ip.set_dst_addr(std::net::Ipv4Addr::from_bits(src));
                let old = u16::from_be_bytes([ip.ttl(), ip.protocol()]);
                ip.set_ttl(DEFAULT_TTL);
                let new = u16::from_be_bytes([DEFAULT_TTL, ip.protocol()]);
                let c = checksum::update16(ip.checksum(), old, new);
                ip.set_checksum(c);
                icmp::Packet::new_unchecked(&mut buf[ETH + hl..ETH + total])
                    .echo_request_to_reply();
                b.meta[i].local_origin = true;
                b.dst[i] = src;
                b.meta[i].ttl = DEFAULT_TTL;
                b.set_next(i, Next::Route);
                replies += 1;
            }
            ipv4::protocol::UDP if super::geneve_decap::is_tunnel(ctx.snap, &buf[ETH..]) => {
                super::geneve_decap::decap(ctx, b, i)
            }
            ipv4::protocol::UDP | ipv4::protocol::TCP => b.icmp_error(
                i,
                DropReason::Ip4LocalUnsupported,
                IcmpKind::PortUnreachable,
                0,
            ),
            _ => b.icmp_error(
                i,
                DropReason::Ip4LocalUnsupported,
                IcmpKind::ProtocolUnreachable,
                0,
            ),
        }
    }
    ctx.stats.icmp_echo_replies.add(replies);
}
