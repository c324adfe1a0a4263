//! IPv4 input: the receive checks of RFC 1812 section 5.2.2 and martian filtering.

use super::{Batch, Ctx, Next, bits};
use crate::metrics::DropReason;
use crate::wire::ethernet::HEADER_LEN as ETH;
use crate::wire::ipv4::{self, class};

/// Validate every IPv4 packet of `mask`; trim link-layer padding so later stages see
/// exactly the datagram; then route it.
pub fn run(ctx: &mut Ctx, b: &mut Batch, mask: u64) {
    let mut to_route = 0u64;
    for i in bits(mask) {
        let d = b.desc[i];
        let bytes = ctx.pool.bytes(&d);
        match check(&bytes[ETH..]) {
            Ok(total) => {
                let ip = ipv4::Packet::new_unchecked(&bytes[ETH..]);
                let (src, dst) = (ip.src_u32(), ip.dst_u32());
                if class::is_martian_source(src) {
                    b.drop(i, DropReason::Ip4MartianSource);
                } else if class::is_martian_destination(dst) {
                    b.drop(i, DropReason::Ip4MartianDestination);
                } else {
                    b.desc[i].len = (ETH + total) as u32;
                    to_route |= 1 << i;
                }
            }
            Err(r) => b.drop(i, r),
        }
    }
    b.set_next_mask(Next::Ip4Input, to_route, Next::Route);
}

/// RFC 1812 section 5.2.2: length, version, header length, total length, checksum.
/// Returns the datagram's total length.
#[inline]
pub fn check(l3: &[u8]) -> Result<usize, DropReason> {
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
