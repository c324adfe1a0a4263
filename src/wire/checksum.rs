//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` folded into `acc` (RFC 1071 section 4.1), not yet inverted.
///
/// The value is only meaningful through [`fold`]: it is congruent modulo 0xffff to `acc`
/// plus the 16-bit words of `data`, and zero only when both are. The bulk is added as
/// native-order 64-bit words into a 128-bit sum, an add and an add-with-carry per 8 bytes
/// (RFC 1071 section 2(B) and (C): deferred carries, byte order fixed once at the end;
/// 2^16, 2^32 and 2^64 are all 1 modulo 0xffff, so folding the halves keeps the sum).
#[inline]
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let (words, rest) = data.as_chunks::<8>();
    let mut wide: u128 = words
        .iter()
        .map(|w| u128::from(u64::from_ne_bytes(*w)))
        .sum();
    let (word, tail) = match rest.split_first_chunk::<4>() {
        Some((w, t)) => (u32::from_ne_bytes(*w), t),
        None => (0, rest),
    };
    wide += u128::from(word);
    // Below 2^64 + 2^64: the end-around carry of the halves fits a u64.
    let (lo, carry) = (wide as u64).overflowing_add((wide >> 64) as u64);
    acc += u32::from(u16::from_be(fold64(lo + u64::from(carry))));
    let mut chunks = tail.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Fold a 32-bit accumulator to 16 bits with end-around carry. Two folds always suffice:
/// the first leaves at most 0x1fffe, the second at most 0xffff.
#[inline]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Folded one's-complement sum of a 20-byte IPv4 header without options (RFC 1071 section
/// 4.1), the same value as `fold(sum(h, 0))`, in a fixed handful of instructions.
///
/// It adds five native-order 32-bit words into a 64-bit accumulator and folds once at the
/// end. The one's-complement sum does not depend on byte order except for a final swap of
/// the result (RFC 1071 section 2(B)), and folding 32-bit halves is congruent to adding the
/// 16-bit words, so no byte is shuffled before the sum.
#[inline]
pub fn sum_header20(h: &[u8; 20]) -> u16 {
    u16::from_be(fold64(sum_words20(h)))
}

/// True when the checksum of a 20-byte IPv4 header without options verifies: the same as
/// `checksum(h) == 0` (RFC 1071 section 4.1, RFC 1812 section 5.2.2).
///
/// The folded sum is 0xffff exactly when the unfolded sum is a non-zero multiple of 0xffff:
/// end-around carry keeps the sum's value modulo 0xffff and is zero only for all-zero
/// data. Native-order words change the sum by a factor of 2^8 modulo 0xffff, which is
/// invertible, so divisibility does not depend on byte order.
///
/// Both tests in one compare (Granlund and Montgomery, "Division by invariant integers
/// using multiplication", 1994, section 9): multiplying by the inverse of 0xffff modulo
/// 2^64 maps the multiple k * 0xffff to k and every other sum above (2^64 - 1) / 0xffff.
/// The sum is below 5 * 2^32, so a non-zero multiple maps into 1..2^19.
#[inline]
pub fn header20_ok(h: &[u8; 20]) -> bool {
    const INV_FFFF: u64 = 0xfffe_fffe_fffe_ffff;
    const _: () = assert!(0xffff_u64.wrapping_mul(INV_FFFF) == 1);
    const _: () = assert!(5 * (u32::MAX as u64) / 0xffff < 1 << 19);
    sum_words20(h).wrapping_mul(INV_FFFF).wrapping_sub(1) < 1 << 19
}

/// Sum of the five native-order 32-bit words of a 20-byte header: below 2^35.
#[inline(always)]
fn sum_words20(h: &[u8; 20]) -> u64 {
    let (words, _) = h.as_chunks::<4>();
    words
        .iter()
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum()
}

/// Fold a 64-bit sum to 16 bits with end-around carry, as `fold` does: the folds leave at
/// most 2^33, 0x2ffff, 0x10001 and finally 0xffff.
#[inline(always)]
fn fold64(acc: u64) -> u16 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
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
    let (s, d) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(length)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1) for an upper-layer checksum (UDP,
/// TCP, ICMPv6): source, destination (the final one when a Routing header is present), the
/// 32-bit upper-layer length and the next header value of the upper layer.
///
/// At most 16 * 0xffff + 2 * 0xffff + 0xff: `acc` for [`sum`] with room to spare.
#[inline]
pub fn pseudo_header_sum_ipv6(src: [u8; 16], dst: [u8; 16], next_header: u8, length: u32) -> u32 {
    let words = |a: &[u8; 16]| -> u32 {
        let (w, _) = a.as_chunks::<2>();
        w.iter().map(|w| u32::from(u16::from_be_bytes(*w))).sum()
    };
    words(&src) + words(&dst) + (length >> 16) + (length & 0xffff) + u32::from(next_header)
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

/// RFC 1624 eqn. 3 for a 32-bit field going from `old` to `new`: the part of
/// `~HC + ~m + m'` that does not depend on the checksum, unfolded (at most 2^18), so one
/// address change is summed once and applied to both the IP header and the L4 checksum
/// (and, for a fixed pair of addresses such as a floating IP's, summed once for good).
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// [`delta32`] in memory order: the sum over the 16-bit words of the two addresses as they
/// lie in a packet, each read in the machine's byte order. The one's-complement sum does not
/// depend on byte order but for a swap of the result (RFC 1071 section 2(B)), so a checksum
/// read and written in the machine's byte order and updated by this sum gets the bytes
/// [`delta32`] gives, without swapping any byte.
#[inline(always)]
pub fn delta32_ne(old: u32, new: u32) -> u32 {
    delta32(old.to_be(), new.to_be())
}

/// RFC 1624's `~m + m'` for an IPv4 header's TTL/protocol word when the TTL goes down by one
/// (0x0100 less: 0xfeff), in memory order.
pub const TTL_DOWN_NE: u32 = 0xfeff_u16.to_be() as u32;

/// A fixed address change's RFC 1624 sums in memory order ([`delta32_ne`]), folded to 16
/// bits so that one end-around-carry add applies each ([`apply16`]): the address alone (a
/// TCP/UDP pseudo-header, an IP header) and with the TTL decrement of a forwarded packet (its
/// IP header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrSums {
    pub addr: u16,
    pub addr_ttl: u16,
}

impl AddrSums {
    pub fn new(old: u32, new: u32) -> AddrSums {
        let d = delta32_ne(old, new);
        AddrSums {
            addr: fold(d),
            addr_ttl: fold(d + TTL_DOWN_NE),
        }
    }
}

/// RFC 1624 eqn. 3, `~(~HC + d)`, for a sum `d` already folded to 16 bits: one add with its
/// end-around carry. The same bytes as folding the unfolded sum: `~HC + d` is at most
/// 0x1fffe, which one fold brings to 16 bits.
#[inline(always)]
pub fn apply16(csum: u16, d: u16) -> u16 {
    let (s, carry) = (!csum).overflowing_add(d);
    !(s + u16::from(carry))
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
    fn header20_sum_matches_generic_sum() {
        // Deterministic pseudo-random headers, plus the corner cases of all zeros (sum 0)
        // and all ones (sum 0xffff, the other zero).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut cases = vec![[0u8; 20], [0xff; 20]];
        for _ in 0..10_000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            cases.push(h);
        }
        for h in &cases {
            assert_eq!(sum_header20(h), fold(sum(h, 0)), "{h:02x?}");
            assert_eq!(header20_ok(h), checksum(h) == 0, "{h:02x?}");
        }
        // Valid headers: fill in the checksum of each case and check again.
        for h in &mut cases {
            h[10] = 0;
            h[11] = 0;
            let c = checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(header20_ok(h), "{h:02x?}");
        }
    }

    /// The 16-bit sum of RFC 1071, word by word, as a reference.
    fn sum_by_words(data: &[u8], mut acc: u32) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            acc += u32::from(*last) << 8;
        }
        acc
    }

    /// xorshift64: reproducible pseudo-random test data.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn sum_folds_like_the_word_by_word_sum() {
        let mut next = xorshift(0x853c_49e6_748f_ea9b);
        let mut data = vec![0u8; 1600];
        for round in 0..4000 {
            let len = (next() % 300) as usize + if round % 50 == 0 { 1200 } else { 0 };
            for b in data[..len].iter_mut() {
                // Mostly random, sometimes all-0 or all-0xff runs (the two zeros).
                *b = match round % 7 {
                    0 => 0,
                    1 => 0xff,
                    _ => next() as u8,
                };
            }
            let acc = match round % 5 {
                0 => 0,
                _ => (next() % 0x3_0000) as u32,
            };
            let d = &data[..len];
            assert_eq!(
                fold(sum(d, acc)),
                fold(sum_by_words(d, acc)),
                "len {len}, acc {acc:#x}"
            );
            assert_eq!(checksum(d), !fold(sum_by_words(d, 0)), "len {len}");
        }
    }

    #[test]
    fn fold_matches_repeated_folding() {
        for acc in [
            0u32,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xffff_ffff,
            0x8000_8000,
        ] {
            let mut a = acc;
            while a > 0xffff {
                a = (a & 0xffff) + (a >> 16);
            }
            assert_eq!(fold(acc), a as u16, "{acc:#x}");
        }
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

    #[test]
    fn memory_order_sums_update_headers_like_update32() {
        // Random headers and address pairs: the folded memory-order sums, applied to the
        // checksum as it lies in memory, give the bytes update16/update32 give, and a header
        // that verifies after the change.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..10_000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                *b = next() as u8;
            }
            h[0] = 0x45;
            h[8] = (next() as u8).max(2);
            h[10..12].fill(0);
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let (old, new) = (
                u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
                next() as u32,
            );
            let sums = AddrSums::new(old, new);
            let c_ne = u16::from_ne_bytes([h[10], h[11]]);

            // The address alone.
            let want = update32(c, old, new);
            assert_eq!(apply16(c_ne, sums.addr).to_ne_bytes(), want.to_be_bytes());
            // Unfolded, as the per-packet path applies it.
            let unfolded = !fold(u32::from(!c_ne) + delta32_ne(old, new));
            assert_eq!(unfolded.to_ne_bytes(), want.to_be_bytes());

            // With the TTL decrement: the header verifies.
            h[16..20].copy_from_slice(&new.to_be_bytes());
            h[8] -= 1;
            h[10..12].copy_from_slice(&apply16(c_ne, sums.addr_ttl).to_ne_bytes());
            assert_eq!(checksum(&h), 0, "{h:02x?}");
            assert!(header20_ok(&h));
        }
    }

    #[test]
    fn apply16_is_the_folded_update() {
        for c in (0..=0xffffu32).step_by(7).chain([0, 0xffff]) {
            for d in (0..=0xffffu32).step_by(251).chain([0, 1, 0xfffe, 0xffff]) {
                let want = !fold(u32::from(!(c as u16)) + d);
                assert_eq!(apply16(c as u16, d as u16), want, "{c:04x} {d:04x}");
            }
        }
    }
}
