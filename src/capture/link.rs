//! Link-layer framing of captured packets: where the IP packet sits in a frame
//! of each supported link type, and how to build a link header for an IP
//! packet sluice writes (forged RSTs, modified packets).

use std::fmt;
use std::ops::Range;

/// The link types sluice reads and writes (pcap `LINKTYPE_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (`LINKTYPE_NULL`, 0): 4-byte address family in the
    /// capturing host's byte order.
    Null,
    /// Ethernet (`LINKTYPE_ETHERNET`, 1), with optional 802.1Q / QinQ tags.
    Ethernet,
    /// Raw IP (`LINKTYPE_RAW`, 101): version from the first nibble.
    Raw,
    /// OpenBSD loopback (`LINKTYPE_LOOP`, 108): address family in network order.
    Loop,
    /// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113).
    LinuxSll,
    /// Raw IPv4 only (`LINKTYPE_IPV4`, 228).
    Ipv4,
    /// Raw IPv6 only (`LINKTYPE_IPV6`, 229).
    Ipv6,
    /// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, 276).
    LinuxSll2,
    /// PPP (`LINKTYPE_PPP`, 9): a PPP header (protocol field, 1 byte if
    /// compressed, else 2), after an `ff 03` address and control if framed.
    Ppp,
    /// PPP in HDLC-like framing (`LINKTYPE_PPP_HDLC`, 50): read as
    /// [`LinkType::Ppp`], or as [`LinkType::CiscoHdlc`] when the frame
    /// starts with Cisco's address (`0f` or `8f`, RFC 1547 4.3.1).
    PppHdlc,
    /// Cisco HDLC (`LINKTYPE_C_HDLC`, 104): address, control, ethertype.
    CiscoHdlc,
}

impl LinkType {
    /// The link type for a pcap `LINKTYPE_*` number, if sluice supports it.
    pub fn from_number(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            9 => LinkType::Ppp,
            50 => LinkType::PppHdlc,
            104 => LinkType::CiscoHdlc,
            _ => return None,
        })
    }

    /// The pcap `LINKTYPE_*` number.
    pub fn number(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Ppp => 9,
            LinkType::PppHdlc => 50,
            LinkType::CiscoHdlc => 104,
        }
    }
}

impl LinkType {
    /// The framing of one frame of a capture of this link type, where the
    /// link type allows two.
    fn of_frame(self, frame: &[u8]) -> LinkType {
        match (self, frame.first()) {
            (LinkType::PppHdlc, Some(0x0f | 0x8f)) => LinkType::CiscoHdlc,
            _ => self,
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LinkType::Null => "NULL",
            LinkType::Ethernet => "EN10MB",
            LinkType::Raw => "RAW",
            LinkType::Loop => "LOOP",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::LinuxSll2 => "LINUX_SLL2",
            LinkType::Ppp => "PPP",
            LinkType::PppHdlc => "PPP_HDLC",
            LinkType::CiscoHdlc => "C_HDLC",
        };
        write!(f, "{name} ({})", self.number())
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Old, pre-standard QinQ outer tag some switches still use.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// Stacked VLAN tags we follow before giving up (a frame of only tags is not IP).
const MAX_VLAN_TAGS: usize = 8;

const ETH_HEADER: usize = 14;
const SLL_HEADER: usize = 16;
const SLL2_HEADER: usize = 20;
const NULL_HEADER: usize = 4;
const C_HDLC_HEADER: usize = 4;

/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// The address and control bytes of HDLC-like framing (RFC 1662).
const PPP_FRAMING: [u8; 2] = [0xff, 0x03];

/// Where a PPP frame's protocol field starts and how long it is: 1 byte
/// when compressed (RFC 1661: an odd first byte), else 2.
fn ppp_protocol(frame: &[u8]) -> Option<(usize, usize, u16)> {
    let at = if frame.starts_with(&PPP_FRAMING) { 2 } else { 0 };
    let first = *frame.get(at)?;
    if first & 1 == 1 {
        Some((at, 1, u16::from(first)))
    } else {
        Some((at, 2, be16(frame, at)?))
    }
}

/// BSD address families for IPv4 and IPv6 across the systems that write
/// NULL/LOOP captures (IPv6 differs: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ethertype_is_ip(t: u16) -> bool {
    t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6
}

/// Where the IP packet sits in `frame`, or `None` if the frame carries
/// something else (ARP, LLDP, ...) or is too short to tell. The range runs to
/// the end of the frame: the decoder trims link-layer padding itself.
pub fn locate_ip(link: LinkType, frame: &[u8]) -> Option<Range<usize>> {
    let link = link.of_frame(frame);
    let start = match link {
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => 0,
        LinkType::Ethernet => {
            let mut at = 12;
            let mut ethertype = be16(frame, at)?;
            let mut tags = 0;
            while matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return None;
                }
                at += 4;
                ethertype = be16(frame, at)?;
            }
            if !ethertype_is_ip(ethertype) {
                return None;
            }
            at + 2
        }
        LinkType::LinuxSll => {
            if !ethertype_is_ip(be16(frame, 14)?) {
                return None;
            }
            SLL_HEADER
        }
        LinkType::LinuxSll2 => {
            if !ethertype_is_ip(be16(frame, 0)?) {
                return None;
            }
            SLL2_HEADER
        }
        LinkType::Ppp | LinkType::PppHdlc => {
            let (at, len, protocol) = ppp_protocol(frame)?;
            if protocol != PPP_IPV4 && protocol != PPP_IPV6 {
                return None;
            }
            at + len
        }
        LinkType::CiscoHdlc => {
            if !ethertype_is_ip(be16(frame, 2)?) {
                return None;
            }
            C_HDLC_HEADER
        }
        LinkType::Null | LinkType::Loop => {
            let fam: [u8; 4] = frame.get(..4)?.try_into().ok()?;
            let candidates = if link == LinkType::Loop {
                [u32::from_be_bytes(fam), u32::from_be_bytes(fam)]
            } else {
                // NULL is in the capturing host's order, which the file does not record.
                [u32::from_le_bytes(fam), u32::from_be_bytes(fam)]
            };
            if !candidates.iter().any(|f| *f == AF_INET || AF_INET6.contains(f)) {
                return None;
            }
            NULL_HEADER
        }
    };
    // An IP packet starts with version 4 or 6; anything else is not ours to judge.
    match frame.get(start).map(|b| b >> 4) {
        Some(4) | Some(6) if start <= frame.len() => Some(start..frame.len()),
        _ => None,
    }
}

/// Rewrites the protocol field of a link header (as cut from a frame of this
/// link type) so that it announces an IP packet of `version` (4 or 6).
/// Headers of an unexpected size are left as they are.
pub fn set_ip_version(link: LinkType, header: &mut [u8], version: u8) {
    let link = link.of_frame(header);
    let ethertype = if version == 6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    match link {
        LinkType::Ethernet => {
            // The ethertype is the header's last two bytes (after any VLAN tags).
            let n = header.len();
            if n >= ETH_HEADER {
                header[n - 2..].copy_from_slice(&ethertype.to_be_bytes());
            }
        }
        LinkType::LinuxSll => {
            if header.len() == SLL_HEADER {
                header[14..16].copy_from_slice(&ethertype.to_be_bytes());
            }
        }
        LinkType::LinuxSll2 => {
            if header.len() == SLL2_HEADER {
                header[0..2].copy_from_slice(&ethertype.to_be_bytes());
            }
        }
        LinkType::Null | LinkType::Loop => {
            if header.len() != NULL_HEADER {
                return;
            }
            let le = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let was_le = le == AF_INET || AF_INET6.contains(&le);
            let family = match version {
                // Keep the family numbering of the capture where we can tell it.
                6 => [le, u32::from_be_bytes([header[0], header[1], header[2], header[3]])]
                    .into_iter()
                    .find(|f| AF_INET6.contains(f))
                    .unwrap_or(AF_INET6[0]),
                _ => AF_INET,
            };
            let bytes =
                if link == LinkType::Null && was_le { family.to_le_bytes() } else { family.to_be_bytes() };
            header.copy_from_slice(&bytes);
        }
        LinkType::Ppp | LinkType::PppHdlc => {
            let protocol = if version == 6 { PPP_IPV6 } else { PPP_IPV4 };
            // Keep the header's framing and compression: only its protocol changes.
            match ppp_protocol(header) {
                Some((at, 1, _)) if header.len() == at + 1 => header[at] = protocol as u8,
                Some((at, 2, _)) if header.len() == at + 2 => {
                    header[at..].copy_from_slice(&protocol.to_be_bytes());
                }
                _ => {}
            }
        }
        LinkType::CiscoHdlc => {
            if header.len() == C_HDLC_HEADER {
                header[2..4].copy_from_slice(&ethertype.to_be_bytes());
            }
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {}
    }
}

/// Turns the link header of a frame sent B→A into one for a frame A→B:
/// Ethernet source and destination MACs are swapped; cooked and loopback
/// headers carry no destination, so they stay as they are.
pub fn reverse_header(link: LinkType, header: &mut [u8]) {
    if link == LinkType::Ethernet && header.len() >= ETH_HEADER {
        let (dst, rest) = header.split_at_mut(6);
        dst.swap_with_slice(&mut rest[..6]);
    }
}

/// A link header with zero addresses for an IP packet of `version`, used
/// when no frame of the connection has been seen in either direction.
pub fn zero_header(link: LinkType, version: u8) -> Vec<u8> {
    let mut h = match link {
        LinkType::Ethernet => vec![0; ETH_HEADER],
        LinkType::LinuxSll => {
            let mut h = vec![0; SLL_HEADER];
            // ARPHRD_ETHER, packet type 4 (sent by us).
            h[0..2].copy_from_slice(&4u16.to_be_bytes());
            h[2..4].copy_from_slice(&1u16.to_be_bytes());
            h
        }
        LinkType::LinuxSll2 => {
            let mut h = vec![0; SLL2_HEADER];
            h[8..10].copy_from_slice(&1u16.to_be_bytes());
            h[10] = 4;
            h
        }
        LinkType::Null => AF_INET.to_le_bytes().to_vec(),
        LinkType::Loop => AF_INET.to_be_bytes().to_vec(),
        LinkType::Ppp => PPP_IPV4.to_be_bytes().to_vec(),
        LinkType::PppHdlc => [PPP_FRAMING, PPP_IPV4.to_be_bytes()].concat(),
        // Unicast address, control 0.
        LinkType::CiscoHdlc => vec![0x0f, 0, 0, 0],
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Vec::new(),
    };
    set_ip_version(link, &mut h, version);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP4: [u8; 4] = [0x45, 0, 0, 20];
    const IP6: [u8; 4] = [0x60, 0, 0, 0];

    fn frame(header: &[u8], ip: &[u8]) -> Vec<u8> {
        [header, ip].concat()
    }

    #[test]
    fn every_zero_header_locates_its_ip_packet() {
        for link in [
            LinkType::Null,
            LinkType::Ethernet,
            LinkType::Raw,
            LinkType::Loop,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Ppp,
            LinkType::PppHdlc,
            LinkType::CiscoHdlc,
        ] {
            for (v, ip) in [(4u8, &IP4), (6, &IP6)] {
                let h = zero_header(link, v);
                let f = frame(&h, ip);
                assert_eq!(locate_ip(link, &f), Some(h.len()..f.len()), "{link} v{v}");
            }
            assert_eq!(LinkType::from_number(link.number()), Some(link));
        }
    }

    #[test]
    fn vlan_tags_are_skipped() {
        let mut h = vec![0u8; 12];
        h.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        let f = frame(&h, &IP4);
        assert_eq!(locate_ip(LinkType::Ethernet, &f), Some(22..26));
        let mut forged = h.clone();
        set_ip_version(LinkType::Ethernet, &mut forged, 6);
        assert_eq!(&forged[20..22], &[0x86, 0xdd]);
        assert_eq!(&forged[12..20], &h[12..20], "tags kept");
    }

    #[test]
    fn non_ip_and_short_frames_are_not_located() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0x45]);
        assert_eq!(locate_ip(LinkType::Ethernet, &arp), None);
        assert_eq!(locate_ip(LinkType::Ethernet, &[0; 13]), None);
        assert_eq!(locate_ip(LinkType::LinuxSll, &[0; 3]), None);
        assert_eq!(locate_ip(LinkType::Raw, &[0x20, 0]), None);
        assert_eq!(locate_ip(LinkType::Raw, &[]), None);
        // A frame that is nothing but VLAN tags.
        let mut tags = vec![0u8; 12];
        for _ in 0..20 {
            tags.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        assert_eq!(locate_ip(LinkType::Ethernet, &tags), None);
    }

    #[test]
    fn null_accepts_both_byte_orders_and_bsd_ipv6_families() {
        for fam in [[2u8, 0, 0, 0], [0, 0, 0, 2], [30, 0, 0, 0], [0, 0, 0, 24]] {
            let f = frame(&fam, &IP4);
            assert_eq!(locate_ip(LinkType::Null, &f), Some(4..8), "{fam:?}");
        }
        assert_eq!(locate_ip(LinkType::Loop, &frame(&[2, 0, 0, 0], &IP4)), None, "LOOP is big-endian");
        let mut h = [30u8, 0, 0, 0];
        set_ip_version(LinkType::Null, &mut h, 4);
        assert_eq!(h, [2, 0, 0, 0], "byte order of the capture is kept");
        set_ip_version(LinkType::Null, &mut h, 6);
        assert_eq!(h, [10, 0, 0, 0]);
    }

    #[test]
    fn ppp_headers_framed_or_not_compressed_or_not() {
        // (header, IP packet): as in Suricata's PPP defrag captures and RFC 1662.
        for (h, ip) in [
            (&[0x21u8][..], &IP4),
            (&[0x57][..], &IP6),
            (&[0x00, 0x21][..], &IP4),
            (&[0xff, 0x03, 0x00, 0x57][..], &IP6),
            (&[0xff, 0x03, 0x21][..], &IP4),
        ] {
            let f = frame(h, ip);
            assert_eq!(locate_ip(LinkType::Ppp, &f), Some(h.len()..f.len()), "{h:02x?}");
            // Forging the other IP version keeps framing and compression.
            let mut forged = h.to_vec();
            set_ip_version(LinkType::Ppp, &mut forged, if ip == &IP4 { 6 } else { 4 });
            let other = if ip == &IP4 { &IP6 } else { &IP4 };
            assert_eq!(
                locate_ip(LinkType::Ppp, &frame(&forged, other)),
                Some(h.len()..h.len() + 4),
                "{h:02x?}"
            );
            assert_eq!(forged.len(), h.len());
        }
        // LCP (0xc021) and a truncated frame are not IP.
        assert_eq!(locate_ip(LinkType::Ppp, &frame(&[0xc0, 0x21], &IP4)), None);
        assert_eq!(locate_ip(LinkType::Ppp, &[0xff, 0x03]), None);
        assert_eq!(locate_ip(LinkType::Ppp, &[0x00]), None);
    }

    #[test]
    fn cisco_hdlc_carries_an_ethertype() {
        let f = frame(&[0x0f, 0, 0x08, 0], &IP4);
        assert_eq!(locate_ip(LinkType::CiscoHdlc, &f), Some(4..8));
        // SLARP keepalives (0x8035) are not IP.
        assert_eq!(locate_ip(LinkType::CiscoHdlc, &frame(&[0x8f, 0, 0x80, 0x35], &IP4)), None);
        let mut h = [0x8fu8, 0, 0x08, 0];
        set_ip_version(LinkType::CiscoHdlc, &mut h, 6);
        assert_eq!(h, [0x8f, 0, 0x86, 0xdd]);
        // A PPP_HDLC capture may hold Cisco frames too.
        assert_eq!(locate_ip(LinkType::PppHdlc, &f), Some(4..8));
        assert_eq!(locate_ip(LinkType::PppHdlc, &frame(&[0xff, 0x03, 0x00, 0x21], &IP4)), Some(4..8));
    }

    #[test]
    fn reversing_swaps_macs() {
        let mut h: Vec<u8> = (0..14).collect();
        reverse_header(LinkType::Ethernet, &mut h);
        assert_eq!(&h[..12], &[6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]);
        assert_eq!(&h[12..], &[12, 13]);
    }
}
