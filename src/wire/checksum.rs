//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` folded into `acc` (RFC 1071 section 4.1), not yet inverted.
#[inline]
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Fold a 32-bit accumulator to 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the inverted folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Sum of the IPv4 pseudo-header (RFC 768, RFC 793 section 3.1) for a UDP/TCP checksum.
#[inline]
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u32 {
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc + u32::from(protocol) + u32::from(length)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit field changing from `old` to `new`.
///
/// Unlike RFC 1141's eqn. 2 this never yields 0xffff (negative zero) for a non-zero result,
/// which matters for UDP where 0 means "no checksum".
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// RFC 1624 incremental update for a 32-bit field (an IPv4 address): two 16-bit updates.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!csum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 worked example: 0001 f203 f4f5 f6f7 sums to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        // A real IPv4 header (checksum field zeroed), then a TTL decrement and an address change.
        let mut h = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&h), 0);

        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c2 = update16(c, old, new);
        h[10..12].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(checksum(&h), 0, "after TTL decrement");

        let old_dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new_dst = 0x0a00_0005u32;
        h[16..20].copy_from_slice(&new_dst.to_be_bytes());
        let c3 = update32(c2, old_dst, new_dst);
        h[10..12].copy_from_slice(&c3.to_be_bytes());
        assert_eq!(checksum(&h), 0, "after address rewrite");
    }

    #[test]
    fn update_never_produces_negative_zero_for_nonzero_sum() {
        // RFC 1624 section 3 example: the eqn. 2 pitfall. Field 0x5555 -> 0x3285 in a header
        // whose checksum is 0xdd2f; both forms agree with a recomputation.
        let before = [0xcd, 0x7a, 0x55, 0x55];
        let c = checksum(&before);
        let after = [0xcd, 0x7a, 0x32, 0x85];
        assert_eq!(update16(c, 0x5555, 0x3285), checksum(&after));
    }
}
