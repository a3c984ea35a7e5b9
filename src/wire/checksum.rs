//! Internet checksums (RFC 1071) for IPv4 headers and TCP/UDP/ICMPv6 with their
//! pseudo-headers, used to verify what the endpoint would verify and to fill in
//! the checksums of forged and normalised packets.

use std::net::IpAddr;

/// Segments at least this long are summed with AVX2 when the CPU has it.
const VECTOR_MIN: usize = 128;

/// Adds `data` to a running one's-complement sum (not yet folded).
///
/// The one's-complement sum is byte-order independent (RFC 1071 §2(B)):
/// words are added in native order and only the folded 16-bit result is
/// swapped to big-endian. A full-size segment is summed with AVX2 where the
/// CPU has it (about a third of the instructions), otherwise 64 bits at a time.
pub fn sum(acc: u64, data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= VECTOR_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { sum_avx2(acc, data) };
    }
    sum_scalar(acc, data)
}

/// [`sum_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(acc: u64, data: &[u8]) -> u64 {
    sum_lanes(acc, data)
}

/// Sums 32-byte blocks as 32-bit native words into eight 64-bit lanes (which
/// cannot overflow below 16 GiB), a loop the compiler turns into widening
/// vector adds; the rest goes to [`sum_scalar`]. 32 is even, so the rest
/// keeps the 16-bit word alignment.
#[inline(always)]
fn sum_lanes(acc: u64, data: &[u8]) -> u64 {
    let mut blocks = data.chunks_exact(32);
    let mut lanes = [0u64; 8];
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let total: u128 = lanes.iter().map(|&l| u128::from(l)).sum();
    sum_scalar(acc + native_to_be16(total), blocks.remainder())
}

/// A native-order sum folded to 16 bits, as a big-endian 16-bit value.
fn native_to_be16(total: u128) -> u64 {
    // 2^64 = 1 in one's complement: the high half is added back in.
    let (low, carry) = (total as u64).overflowing_add((total >> 64) as u64);
    let native16 = fold16(fold16(low) + u64::from(carry)) as u16;
    u64::from(if cfg!(target_endian = "little") { native16.swap_bytes() } else { native16 })
}

/// The portable sum: native-endian 64-bit words into a 128-bit total (one
/// add and one add-with-carry per word).
fn sum_scalar(acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    let mut wide: u128 = 0;
    for c in &mut words {
        wide += u128::from(u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    }
    let mut acc = acc + native_to_be16(wide);
    let mut rest = words.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a 64-bit one's-complement sum to 16 bits (end-around carries).
fn fold16(mut x: u64) -> u64 {
    x = (x & 0xffff_ffff) + (x >> 32);
    x = (x & 0xffff_ffff) + (x >> 32);
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    x
}

/// Folds a running sum to 16 bits and complements it.
pub fn finish(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The pseudo-header sum for a transport segment of `len` bytes.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u64 {
    let mut acc = 0u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(acc, &s.octets());
            acc = sum(acc, &d.octets());
            acc += u64::from(proto);
            acc += u64::from(len & 0xffff);
        }
        (s, d) => {
            acc = sum(acc, &ip_octets16(s));
            acc = sum(acc, &ip_octets16(d));
            acc += u64::from(len >> 16) + u64::from(len & 0xffff);
            acc += u64::from(proto);
        }
    }
    acc
}

fn ip_octets16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// True if a transport segment (header with its checksum field in place, plus
/// payload) checksums to zero under its pseudo-header.
pub fn transport_ok(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> bool {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    finish(sum(pseudo_header(src, dst, proto, len), segment)) == 0
}

/// Computes the checksum for a transport segment whose checksum field is zero.
pub fn transport(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    finish(sum(pseudo_header(src, dst, proto, len), segment))
}

/// The IPv4 header checksum of a header whose checksum field is zero.
pub fn ipv4_header(header: &[u8]) -> u16 {
    finish(sum(0, header))
}

/// True if an IPv4 header (checksum field in place) checksums to zero, the
/// check Linux's `ip_rcv` makes (`ip_fast_csum`).
pub fn ipv4_header_ok(header: &[u8]) -> bool {
    // Every packet pays this check, so a header (20 to 60 bytes, a multiple
    // of 4) is summed as native 32-bit words without `sum`'s dispatch and
    // tail handling. The folded native-order sum of a valid header is all
    // ones, which reads the same in either byte order.
    let mut words = header.chunks_exact(4);
    let mut acc = 0u64;
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    if !words.remainder().is_empty() {
        return finish(sum(0, header)) == 0;
    }
    fold16(acc) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_check_in_place_agrees_with_computing_the_field() {
        // A header with options, its checksum computed over a zeroed field.
        let mut h = vec![0x46, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h.extend_from_slice(&[1, 1, 1, 0]);
        let c = ipv4_header(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(ipv4_header_ok(&h));
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 0x01;
            assert!(!ipv4_header_ok(&bad), "a flipped bit in byte {i} is caught");
        }
    }

    #[test]
    fn ipv4_header_check_agrees_with_the_generic_sum() {
        // xorshift bytes; every length from empty to 61, with the checksum
        // field set to make the sum valid half of the time.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..=61usize {
            for round in 0..50 {
                let mut h: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                if round % 2 == 0 && len >= 12 {
                    h[10] = 0;
                    h[11] = 0;
                    let c = finish(sum(0, &h));
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                }
                assert_eq!(
                    ipv4_header_ok(&h),
                    finish(sum(0, &h)) == 0,
                    "length {len}, round {round}: {h:02x?}"
                );
            }
        }
    }

    #[test]
    fn rfc1071_example() {
        // The example from RFC 1071 section 3: sum is 0xddf2, checksum !0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
    }

    /// The reference RFC 1071 sum: big-endian 16-bit words, one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        finish(acc)
    }

    #[test]
    fn wide_sum_matches_reference() {
        let mut x: u32 = 12345;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            assert_eq!(finish(sum(0, &data)), reference(&data), "length {len}");
        }
        let ones = vec![0xffu8; 1500];
        assert_eq!(finish(sum(0, &ones)), reference(&ones));
    }

    #[test]
    fn carry_out_of_the_folded_carries_is_kept() {
        // Three words summing to 2^65 - 1: low half all ones plus one carry,
        // whose addition carries out of 64 bits once more.
        let mut data = vec![0xffu8; 16];
        data.extend_from_slice(&1u64.to_ne_bytes());
        assert_eq!(finish(sum(0, &data)), reference(&data));
        data.rotate_left(5);
        assert_eq!(finish(sum(0, &data)), reference(&data));
    }

    #[test]
    fn wide_sum_carries_match_reference() {
        // Bytes near 0xff make the 64-bit words carry often, and their
        // carries carry again when folded back in.
        let mut x: u32 = 99;
        for len in (0..9000usize).step_by(7) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    0xf0 | (x >> 16) as u8
                })
                .collect();
            assert_eq!(finish(sum(0, &data)), reference(&data), "length {len}");
            assert_eq!(finish(sum(0xfffe, &data)), finish(sum(0xfffe, &[]).wrapping_add(sum(0, &data))));
        }
    }

    #[test]
    fn every_path_matches_reference() {
        // Lengths around the vector threshold and block size, with bytes
        // that carry often; the lane sum is checked even where `sum` would
        // pick another path on this CPU.
        let mut x: u32 = 7;
        for len in (0..700usize).chain([1448, 1460, 9000, 65535]) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    0xe0 | (x >> 16) as u8
                })
                .collect();
            let want = reference(&data);
            assert_eq!(finish(sum_scalar(0, &data)), want, "scalar, length {len}");
            assert_eq!(finish(sum_lanes(0, &data)), want, "lanes, length {len}");
            assert_eq!(finish(sum(0, &data)), want, "sum, length {len}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present (checked).
                assert_eq!(finish(unsafe { sum_avx2(0, &data) }), want, "avx2, length {len}");
            }
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(finish(sum(0, &[0xab])), !0xab00);
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut h = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = ipv4_header(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(finish(sum(0, &h)), 0);
    }
}
