//! Checks and rewrites at the packet level: transport checksum verification
//! (a segment the endpoint would discard must not be inspected as if it were
//! delivered) and urgent-data normalisation.

use crate::wire::header::Tcp;
use crate::wire::{checksum, proto, Decoded, Transport};

/// True if the transport checksum is one the endpoint accepts.
pub(super) fn checksum_ok(pkt: &Decoded<'_>) -> bool {
    let l4 = pkt.l4_bytes();
    match &pkt.transport {
        Transport::Tcp(_) => checksum::transport_ok(pkt.ip.src, pkt.ip.dst, proto::TCP, l4),
        Transport::Udp(u) => {
            if u.checksum == 0 {
                // "No checksum" is allowed over IPv4 only (RFC 768 / RFC 8200 8.1).
                pkt.ip.version == 4
            } else {
                let seg = l4.get(..usize::from(u.length)).unwrap_or(l4);
                checksum::transport_ok(pkt.ip.src, pkt.ip.dst, proto::UDP, seg)
            }
        }
        Transport::Icmp(i) if i.v6 => checksum::transport_ok(pkt.ip.src, pkt.ip.dst, proto::ICMPV6, l4),
        Transport::Icmp(_) => checksum::finish(checksum::sum(0, l4)) == 0,
        Transport::Fragment | Transport::Other => true,
    }
}

/// True if the segment asks for urgent-mode processing.
pub(super) fn has_urgent(pkt: &Decoded<'_>) -> bool {
    pkt.tcp().is_some_and(|t| t.has(crate::wire::tcp_flags::URG))
}

/// A copy of the packet with URG cleared and the urgent pointer zeroed.
///
/// By default Linux pulls the urgent byte out of the stream (it is read with
/// MSG_OOB, not by a normal read), while rules see the stream with it inline;
/// an attacker could hide a byte from rules or slip one in. Clearing URG makes
/// the endpoint keep every byte inline, exactly as rules see them. The
/// checksum is recomputed, unless the kernel has not computed it yet
/// (`checksum_partial`: the field holds only the pseudo-header sum, and the
/// kernel sums the modified header later).
pub(super) fn clear_urgent(pkt: &Decoded<'_>, checksum_partial: bool) -> Option<Vec<u8>> {
    let t = pkt.tcp()?;
    let mut b = pkt.bytes.to_vec();
    let mut h = Tcp::new_checked(b.get_mut(t.offset..)?, pkt.ip.src, pkt.ip.dst)?;
    h.set_flags(h.flags() & !crate::wire::tcp_flags::URG);
    h.set_urgent(0);
    if !checksum_partial {
        h.fill_checksum();
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::{decode, v4};
    use crate::wire::forge::TcpSegment;
    use crate::wire::tcp_flags::{ACK, URG};

    #[test]
    fn urgent_cleared_and_checksum_valid() {
        let mut s = TcpSegment::new(v4(1, 1, 1, 1), 1000, v4(2, 2, 2, 2), 80);
        s.flags = ACK | URG;
        s.urgent = 3;
        s.payload = b"abcdef";
        let p = s.build();
        let d = decode(&p).unwrap();
        assert!(has_urgent(&d));
        let n = clear_urgent(&d, false).unwrap();
        let d2 = decode(&n).unwrap();
        assert!(!has_urgent(&d2));
        assert_eq!(d2.tcp().unwrap().urgent, 0);
        assert!(checksum_ok(&d2));
        assert_eq!(d2.payload(), b"abcdef");
    }

    #[test]
    fn corrupted_checksum_detected() {
        let mut p = TcpSegment::new(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2).build();
        let d = decode(&p).unwrap();
        assert!(checksum_ok(&d));
        let last = p.len() - 1;
        p[last] ^= 0xff;
        let d = decode(&p).unwrap();
        assert!(!checksum_ok(&d));
    }
}
