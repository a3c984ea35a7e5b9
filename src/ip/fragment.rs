//! Splitting an IP packet into fragments the way a sending host or router
//! would. sluice itself never fragments; unit tests, golden pcaps, benchmarks
//! and the netns tests use this to craft fragmented traffic.
//!
//! IPv4 (RFC 791): the first fragment carries the whole header with its
//! options, later fragments carry only the options whose "copied" bit is set;
//! DF is cleared (a DF datagram may not be fragmented, so a real fragment never
//! has it). IPv6 (RFC 8200 section 4.5): the unfragmentable part (the base
//! header plus any hop-by-hop, destination-options and routing headers up to
//! the last routing header, or the hop-by-hop header if there is no routing
//! header) is repeated in every fragment, followed by a fragment header.

use crate::wire::header::{set_ipv4_header_len, Ipv4, Ipv6, IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN};

/// IPv4 flags/offset field: more fragments.
const V4_MF: u16 = 0x2000;
/// IPv4 flags/offset field: the reserved bit, the only flag kept besides MF.
const V4_RB: u16 = 0x8000;
/// IPv4 option kinds that are a single byte: end of list and no-operation.
const V4_OPT_EOL: u8 = 0;
const V4_OPT_NOP: u8 = 1;
/// IPv4 option kind bit: copy the option into every fragment.
const V4_OPT_COPIED: u8 = 0x80;

const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_DEST_OPTS: u8 = 60;
const V6_FRAGMENT_HEADER_LEN: usize = 8;

/// Splits `packet` (an IPv4 or IPv6 packet starting at the IP header) into
/// fragments, returned in datagram order.
///
/// `sizes` are the lengths of the fragmentable data carried by successive
/// fragments. Every fragment but the last must carry a multiple of 8 bytes, so
/// those sizes are rounded down to a multiple of 8 (at least 8). A size that
/// reaches or passes the end of the data makes that fragment the last one; data
/// left over after the listed sizes goes into one more, last fragment. So
/// `fragment(p, &[], id)` yields one fragment holding everything (for IPv6 an
/// "atomic fragment" with a fragment header).
///
/// `id` is the fragment identification (its low 16 bits for IPv4).
///
/// A packet that cannot be fragmented (not IPv4/IPv6, lengths that do not
/// parse, no payload, or already a fragment) is returned unchanged as the only
/// element, so callers crafting odd traffic never get a panic.
pub fn fragment(packet: &[u8], sizes: &[usize], id: u32) -> Vec<Vec<u8>> {
    let split = match packet.first().map(|b| b >> 4) {
        Some(4) => fragment_v4(packet, sizes, id),
        Some(6) => fragment_v6(packet, sizes, id),
        _ => None,
    };
    split.unwrap_or_else(|| vec![packet.to_vec()])
}

/// The (start, length) of each fragment's share of `total` data bytes.
fn pieces(total: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &size in sizes {
        if at >= total {
            break;
        }
        let rounded = (size / 8 * 8).max(8);
        let len = if size >= total - at || rounded >= total - at { total - at } else { rounded };
        out.push((at, len));
        at += len;
    }
    if at < total {
        out.push((at, total - at));
    }
    out
}

fn fragment_v4(packet: &[u8], sizes: &[usize], id: u32) -> Option<Vec<Vec<u8>>> {
    let ip = Ipv4::new_checked(packet)?;
    let ihl = ip.header_len();
    let total = usize::from(ip.total_len());
    if total < ihl || total > packet.len() {
        return None;
    }
    let flags_offset = ip.fragment_field();
    if flags_offset & (V4_MF | 0x1fff) != 0 {
        return None;
    }
    let header = ip.header();
    let data = &packet[ihl..total];
    if data.is_empty() {
        return None;
    }
    let later_header = v4_header_with_copied_options(header)?;
    let list = pieces(data.len(), sizes);
    let last = list.len() - 1;
    let mut out = Vec::with_capacity(list.len());
    for (i, &(start, len)) in list.iter().enumerate() {
        let head = if i == 0 { header } else { &later_header[..] };
        let mut frag = Vec::with_capacity(head.len() + len);
        frag.extend_from_slice(head);
        frag.extend_from_slice(&data[start..start + len]);
        let frag_total = u16::try_from(frag.len()).ok()?;
        let mut field = (flags_offset & V4_RB) | u16::try_from(start / 8).ok()?;
        if i != last {
            field |= V4_MF;
        }
        let mut h = Ipv4::new_checked(&mut frag[..])?;
        h.set_total_len(frag_total);
        h.set_identification(id as u16);
        h.set_fragment_field(field);
        h.fill_checksum();
        out.push(frag);
    }
    Some(out)
}

/// The header of a non-first IPv4 fragment: the base header plus the options
/// marked "copied", padded to a multiple of 4 bytes with end-of-list bytes.
fn v4_header_with_copied_options(header: &[u8]) -> Option<Vec<u8>> {
    let mut out = header[..IPV4_MIN_HEADER_LEN].to_vec();
    let options = &header[IPV4_MIN_HEADER_LEN..];
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        if kind == V4_OPT_EOL {
            break;
        }
        if kind == V4_OPT_NOP {
            i += 1;
            continue;
        }
        let Some(&len) = options.get(i + 1) else { break };
        let len = usize::from(len);
        let Some(option) = options.get(i..i + len).filter(|_| len >= 2) else { break };
        if kind & V4_OPT_COPIED != 0 {
            out.extend_from_slice(option);
        }
        i += len;
    }
    out.resize(out.len().div_ceil(4) * 4, V4_OPT_EOL);
    let len = out.len();
    set_ipv4_header_len(&mut out, len)?;
    Some(out)
}

fn fragment_v6(packet: &[u8], sizes: &[usize], id: u32) -> Option<Vec<Vec<u8>>> {
    let ip = Ipv6::new_checked(packet)?;
    let end = IPV6_HEADER_LEN + usize::from(ip.payload_len());
    if end > packet.len() {
        return None;
    }
    let packet = &packet[..end];
    // Find where the unfragmentable part ends and which byte names the first
    // header of the fragmentable part (the base header's Next Header field,
    // byte 6, or an extension header's first byte).
    let mut next = ip.next_header();
    let mut at = IPV6_HEADER_LEN;
    let mut unfragmentable = (IPV6_HEADER_LEN, 6);
    loop {
        match next {
            V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS => {
                let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
                if at + len > packet.len() {
                    return None;
                }
                if next != V6_DEST_OPTS {
                    unfragmentable = (at + len, at);
                }
                next = packet[at];
                at += len;
            }
            V6_FRAGMENT => return None,
            _ => break,
        }
    }
    let (unfrag_len, nh_field) = unfragmentable;
    let first_fragmentable = packet[nh_field];
    let data = &packet[unfrag_len..];
    if data.is_empty() {
        return None;
    }
    let list = pieces(data.len(), sizes);
    let last = list.len() - 1;
    let mut out = Vec::with_capacity(list.len());
    for (i, &(start, len)) in list.iter().enumerate() {
        let mut frag = Vec::with_capacity(unfrag_len + V6_FRAGMENT_HEADER_LEN + len);
        frag.extend_from_slice(&packet[..unfrag_len]);
        frag[nh_field] = V6_FRAGMENT;
        let payload = u16::try_from(unfrag_len - IPV6_HEADER_LEN + V6_FRAGMENT_HEADER_LEN + len).ok()?;
        Ipv6::new_checked(&mut frag[..])?.set_payload_len(payload);
        let mut field = u16::try_from(start).ok()?;
        if i != last {
            field |= 1;
        }
        frag.extend_from_slice(&[first_fragmentable, 0]);
        frag.extend_from_slice(&field.to_be_bytes());
        frag.extend_from_slice(&id.to_be_bytes());
        frag.extend_from_slice(&data[start..start + len]);
        out.push(frag);
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::decode::{decode, v4};
    use crate::wire::forge::udp_packet;
    use crate::wire::Transport;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn v4_fragments_decode_with_offsets_and_flags() {
        let p = udp_packet(v4(10, 0, 0, 1), 1000, v4(10, 0, 0, 2), 53, &payload(100));
        let frags = fragment(&p, &[16, 40], 0x1234_abcd);
        assert_eq!(frags.len(), 3);
        let mut expected_offset = 0;
        for (i, f) in frags.iter().enumerate() {
            let d = decode(f).expect("fragment decodes");
            let info = d.ip.fragment.expect("is a fragment");
            assert_eq!(info.id, 0xabcd);
            assert_eq!(info.offset, expected_offset);
            assert_eq!(info.more, i != 2);
            assert!(!d.ip.flag_df, "fragments never carry DF");
            assert_eq!(d.transport, Transport::Fragment);
            expected_offset += (f.len() - 20) as u32;
        }
        // 8 UDP header bytes + 100 payload bytes in all.
        assert_eq!(expected_offset, 108);
        assert_eq!(frags[0].len() - 20, 16);
        assert_eq!(frags[1].len() - 20, 40);
    }

    #[test]
    fn v4_sizes_are_rounded_to_eight_and_end_at_the_data() {
        let p = udp_packet(v4(10, 0, 0, 1), 1000, v4(10, 0, 0, 2), 53, &payload(30));
        let frags = fragment(&p, &[13, 3, 500, 8], 1);
        let lens: Vec<usize> = frags.iter().map(|f| f.len() - 20).collect();
        // 38 data bytes: 13 -> 8, 3 -> 8, 500 reaches the end -> 22, nothing left.
        assert_eq!(lens, vec![8, 8, 22]);
    }

    #[test]
    fn v4_later_fragments_carry_only_copied_options() {
        let base = udp_packet(v4(10, 0, 0, 1), 1000, v4(10, 0, 0, 2), 53, &payload(40));
        // Options: NOP, record route (not copied, 7 bytes), stream id (copied, 4 bytes).
        let options = [1u8, 7, 7, 4, 0, 0, 0, 0, 0x88, 4, 0xbe, 0xef];
        let p = with_v4_options(&base, &options);
        let frags = fragment(&p, &[24], 9);
        assert_eq!(frags.len(), 2);
        assert_eq!(&frags[0][20..32], &options[..], "first fragment keeps every option");
        let later = decode(&frags[1]).expect("decodes");
        assert_eq!(later.ip.header_len, 24);
        assert_eq!(&frags[1][20..24], &[0x88, 4, 0xbe, 0xef]);
    }

    #[test]
    fn v6_fragments_insert_a_fragment_header_after_the_unfragmentable_part() {
        let a = "fd00::1".parse().unwrap();
        let b = "fd00::2".parse().unwrap();
        let plain = udp_packet(a, 1, b, 2, &payload(70));
        let p = with_v6_hop_by_hop(&plain);
        let frags = fragment(&p, &[32], 0xdead_beef);
        assert_eq!(frags.len(), 2);
        for (i, f) in frags.iter().enumerate() {
            let d = decode(f).expect("fragment decodes");
            let info = d.ip.fragment.expect("is a fragment");
            assert_eq!(info.id, 0xdead_beef);
            assert_eq!(info.offset, if i == 0 { 0 } else { 32 });
            assert_eq!(info.more, i == 0);
            assert_eq!(info.v6_next_header_field, 40, "the hop-by-hop header names the fragment header");
            assert_eq!(info.v6_fragment_header, 48);
            assert_eq!(d.ip.proto, 17);
            assert_eq!(&f[..40][..4], &p[..4]);
        }
        assert_eq!(frags[0].len(), 48 + 8 + 32);
        assert_eq!(frags[1].len(), 48 + 8 + (8 + 70 - 32));
    }

    #[test]
    fn unfragmentable_input_comes_back_unchanged() {
        assert_eq!(fragment(&[1, 2, 3], &[8], 1), vec![vec![1, 2, 3]]);
        let p = udp_packet(v4(10, 0, 0, 1), 1, v4(10, 0, 0, 2), 2, &payload(40));
        let frags = fragment(&p, &[16], 1);
        assert_eq!(fragment(&frags[1], &[8], 2), vec![frags[1].clone()], "already a fragment");
        assert_eq!(fragment(&p[..30], &[8], 1), vec![p[..30].to_vec()], "truncated");
    }

    /// Inserts IPv4 options (a multiple of 4 bytes) into an option-less packet.
    pub(crate) fn with_v4_options(packet: &[u8], options: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let mut out = packet[..20].to_vec();
        out.extend_from_slice(options);
        out.extend_from_slice(&packet[20..]);
        set_ipv4_header_len(&mut out, 20 + options.len()).unwrap();
        let total = out.len() as u16;
        let mut h = Ipv4::new_checked(&mut out[..]).unwrap();
        h.set_total_len(total);
        h.fill_checksum();
        out
    }

    /// Inserts an 8-byte hop-by-hop options header (PadN) into an IPv6 packet.
    pub(crate) fn with_v6_hop_by_hop(packet: &[u8]) -> Vec<u8> {
        let mut out = packet[..IPV6_HEADER_LEN].to_vec();
        let next = Ipv6::new_checked(&out[..]).unwrap().next_header();
        out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        out.extend_from_slice(&packet[IPV6_HEADER_LEN..]);
        let payload = (out.len() - IPV6_HEADER_LEN) as u16;
        let mut h = Ipv6::new_checked(&mut out[..]).unwrap();
        h.set_next_header(V6_HOP_BY_HOP);
        h.set_payload_len(payload);
        out
    }
}
