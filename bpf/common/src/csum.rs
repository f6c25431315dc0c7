//! One's-complement arithmetic for the IPv4 and UDP checksums (RFC 1071).
//!
//! Sums are kept unfolded in a u32 over big-endian 16-bit words; a byte at an
//! even offset from the start of the checksummed data is a word's high byte.
//! The XDP program adds per-transaction fields to a partial sum rendered in
//! userspace; both use these functions so the arithmetic is the same.

/// Adds a 16-bit word.
#[inline(always)]
pub const fn add16(sum: u32, word: u16) -> u32 {
    sum + word as u32
}

/// Adds a 32-bit value that starts at an even offset (an address, an xid).
#[inline(always)]
pub const fn add32(sum: u32, value: u32) -> u32 {
    sum + (value >> 16) + (value & 0xffff)
}

/// Adds one byte at the given offset from the start of the checksummed data.
#[inline(always)]
pub const fn add_byte(sum: u32, byte: u8, offset: usize) -> u32 {
    if offset.is_multiple_of(2) {
        sum + ((byte as u32) << 8)
    } else {
        sum + byte as u32
    }
}

/// The share of data whose folded sum `folded` was taken as if it started
/// at an even offset, when it starts at `offset`: a one's-complement sum
/// of data moved by one byte is the same sum byte-swapped (RFC 1071 2(B)).
#[inline(always)]
pub const fn at_offset(folded: u16, offset: usize) -> u32 {
    if offset.is_multiple_of(2) {
        folded as u32
    } else {
        folded.swap_bytes() as u32
    }
}

/// Folds the carries back in: the 16-bit one's-complement sum.
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// `fold` for a sum of 32-bit words kept in 64 bits.
#[inline(always)]
pub const fn fold64(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    fold(sum as u32)
}

/// The sum of the 32-bit halves of some 64-bit words, from their wrapping
/// sum `all` and the sum of their high halves `high`: `all` less `high`
/// shifted up is exactly the low halves' sum, as long as that is below
/// 2^64 (up to 2^32 words), so each word is added whole, its low half
/// never masked out.
#[inline(always)]
pub const fn halves(all: u64, high: u64) -> u64 {
    all.wrapping_sub(high << 32) + high
}

/// The checksum field value for an IPv4 header.
#[inline(always)]
pub const fn finish_ip(sum: u32) -> u16 {
    !fold(sum)
}

/// The checksum field value for UDP: zero means "no checksum", so a computed
/// zero is sent as 0xffff (RFC 768).
#[inline(always)]
pub const fn finish_udp(sum: u32) -> u16 {
    let c = !fold(sum);
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Sum of a byte slice that starts at an even offset. For userspace and
/// tests; the program never loops over a whole reply.
pub fn sum_bytes(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum = add16(sum, u16::from_be_bytes([w[0], w[1]]));
        // Folding as we go keeps any length from overflowing the u32.
        if sum > 0xffff_0000 {
            sum = fold(sum) as u32;
        }
    }
    if let [last] = chunks.remainder() {
        sum = add16(sum, (*last as u16) << 8);
    }
    sum
}

/// The UDP pseudo-header share of the sum (RFC 768).
pub const fn pseudo_header(src: u32, dst: u32, udp_len: u16) -> u32 {
    // Two words, not their u16 sum: that overflows for lengths over 65518.
    add16(
        add16(add32(add32(0, src), dst), crate::layout::IPPROTO_UDP as u16),
        udp_len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_header_of_any_length() {
        assert_eq!(fold(pseudo_header(0, 0, 0xffff)), fold(0x11 + 0xffff));
        assert_eq!(pseudo_header(1, 2, 300), 1 + 2 + 17 + 300);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let s = sum_bytes(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(fold(s), 0xddf2);
    }

    #[test]
    fn incremental_equals_whole() {
        let mut data = [0u8; 64];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 37 + 11) as u8;
        }
        let whole = fold(sum_bytes(&data));
        let mut partial = data;
        partial[7] = 0; // odd offset
        partial[8] = 0; // even offset
        let s = add_byte(add_byte(sum_bytes(&partial), data[7], 7), data[8], 8);
        assert_eq!(fold(s), whole);
    }

    #[test]
    fn data_summed_at_even_counts_byte_swapped_at_odd() {
        let data = [0x12u8, 0x34, 0x56, 0x78, 0x9a];
        let mut frame = [0u8; 8];
        frame[3..8].copy_from_slice(&data);
        let alone = fold(sum_bytes(&data));
        assert_eq!(fold(at_offset(alone, 3)), fold(sum_bytes(&frame)));
        frame = [0u8; 8];
        frame[2..7].copy_from_slice(&data);
        assert_eq!(fold(at_offset(alone, 2)), fold(sum_bytes(&frame)));
    }

    #[test]
    fn halves_sum_like_the_words_they_come_from() {
        let cases: [&[u64]; 4] = [
            &[u64::MAX; 64],
            &[0xffff_ffff_0000_0000; 40],
            &[
                0x0000_0000_ffff_ffff,
                0xffff_ffff_ffff_fffe,
                1,
                0x8000_0000_8000_0000,
            ],
            &[],
        ];
        for words in cases {
            let (mut all, mut high) = (0u64, 0u64);
            for &w in words {
                all = all.wrapping_add(w);
                high += w >> 32;
            }
            let direct: u64 = words.iter().map(|w| (w & 0xffff_ffff) + (w >> 32)).sum();
            assert_eq!(halves(all, high), direct, "{words:x?}");
        }
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(finish_udp(0xffff), 0xffff);
    }
}
