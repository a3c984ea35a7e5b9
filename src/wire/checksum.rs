//! Internet checksums (RFC 1071) for IPv4 headers and TCP/UDP/ICMPv6 with their
//! pseudo-headers, used to verify what the endpoint would verify and to fill in
//! the checksums of forged and normalised packets.

use std::net::IpAddr;

/// Adds `data` to a running one's-complement sum (not yet folded).
///
/// The bulk is summed as native-endian 64-bit words into a 128-bit total
/// (one add and one add-with-carry per word): the one's-complement sum is
/// byte-order independent (RFC 1071 §2(B)), so only the folded 16-bit result
/// needs swapping to big-endian.
pub fn sum(acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    let mut wide: u128 = 0;
    for c in &mut words {
        wide += u128::from(u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    }
    // End-around carry: the high half is the carries out of the low one.
    // 2^64 = 1 in one's complement, so the carries are added back in, still
    // in native byte order.
    let (low, carry) = (wide as u64).overflowing_add((wide >> 64) as u64);
    let native16 = fold16(fold16(low) + u64::from(carry)) as u16;
    let mut acc =
        acc + u64::from(if cfg!(target_endian = "little") { native16.swap_bytes() } else { native16 });
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
    finish(sum(0, header)) == 0
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
