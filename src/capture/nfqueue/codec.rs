//! The nfnetlink_queue wire format, with no socket in sight: building the
//! configuration and verdict messages, splitting a received datagram into
//! netlink messages, parsing a queued packet's attributes, and the rule that
//! says when the kernel vouches for a packet's checksum. Everything here is a
//! pure function of bytes, so it is unit-tested and fuzzed without a kernel.

use std::ops::Range;

use super::config::QueueConfig;

/// Largest IP packet the kernel copies to us (its `NFQNL_MAX_COPY_RANGE`).
const COPY_RANGE: u32 = 0xffff;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;
/// Length of a netlink attribute header.
pub(crate) const NLA_HDRLEN: usize = 4;
/// Netfilter verdict codes (`NF_DROP`, `NF_ACCEPT`, `NF_REPEAT`).
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_REPEAT: u32 = 4;

/// One packet waiting for its verdict.
#[derive(Debug, Clone)]
pub struct QueuedPacket {
    /// The kernel's packet id; the verdict refers to it.
    pub id: u32,
    /// The buffer the packet came in (the whole netlink datagram when it
    /// held only this packet: the packet is not copied out of it).
    buf: Vec<u8>,
    /// Where the IP packet sits in `buf`.
    at: Range<usize>,
    /// The transport checksum is not computed yet (locally generated or GSO).
    pub checksum_not_ready: bool,
    /// The kernel or the NIC verified the transport checksum (see
    /// [`checksum_verified`]).
    pub checksum_verified: bool,
    /// The packet is a GSO super-packet (several wire segments).
    pub gso: bool,
    /// The packet's length before the kernel truncated it to the copy range
    /// (equal to `payload().len()` when nothing was cut).
    pub original_len: usize,
    /// The packet's firewall mark (`skb->mark`; 0 when it has none).
    pub mark: u32,
}

impl QueuedPacket {
    /// The IP packet as queued.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.at.clone()).unwrap_or(&[])
    }

    /// The buffer the packet came in, to receive into again.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Moves in the datagram the packet was parsed from.
    pub(crate) fn set_buffer(&mut self, datagram: Vec<u8>) {
        self.buf = datagram;
    }

    /// Copies the packet's bytes out of the datagram it was parsed from.
    pub(crate) fn copy_out_of(&mut self, datagram: &[u8]) {
        self.buf = datagram.get(self.at.clone()).unwrap_or(&[]).to_vec();
        self.at = 0..self.buf.len();
    }
}

/// A packet as parsed in its datagram, its bytes still there.
#[derive(Debug, Clone)]
pub(crate) struct ParsedPacket<'a> {
    /// The kernel's packet id.
    pub(crate) id: u32,
    /// The IP packet, in the datagram.
    pub(crate) payload: &'a [u8],
    pub(crate) checksum_not_ready: bool,
    pub(crate) checksum_verified: bool,
    pub(crate) gso: bool,
    pub(crate) original_len: usize,
    pub(crate) mark: u32,
}

impl ParsedPacket<'_> {
    /// The packet, its bytes located in `datagram` (the one it was parsed
    /// from) but not yet in its buffer: [`QueuedPacket::set_buffer`] moves
    /// the datagram in, or [`QueuedPacket::copy_out_of`] copies the bytes.
    pub(crate) fn in_datagram(&self, datagram: &[u8]) -> QueuedPacket {
        let start = (self.payload.as_ptr() as usize).saturating_sub(datagram.as_ptr() as usize);
        QueuedPacket {
            id: self.id,
            buf: Vec::new(),
            at: start..start + self.payload.len(),
            checksum_not_ready: self.checksum_not_ready,
            checksum_verified: self.checksum_verified,
            gso: self.gso,
            original_len: self.original_len,
            mark: self.mark,
        }
    }
}

/// A verdict as the kernel takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueVerdict<'a> {
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_DROP`.
    Drop,
    /// `NF_ACCEPT` with these bytes replacing the packet.
    AcceptModified(&'a [u8]),
    /// `NF_REPEAT` with this firewall mark: the packet goes through its
    /// netfilter hook again from the start, marked (Suricata's "repeat
    /// mode"), so rules before the queue rule can act on the mark.
    RepeatMarked(u32),
}

/// A netlink message builder: header, nfgenmsg, then attributes.
pub(crate) struct MsgBuilder {
    buf: Vec<u8>,
}

impl MsgBuilder {
    /// A message of `msg_type` for resource `res_id` (the queue number).
    pub(crate) fn new(msg_type: u16, flags: u16, seq: u32, res_id: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        buf.push(libc::AF_UNSPEC as u8);
        buf.push(libc::NFNETLINK_V0 as u8);
        buf.extend_from_slice(&res_id.to_be_bytes());
        MsgBuilder { buf }
    }

    /// Appends one attribute, padded to 4 bytes.
    pub(crate) fn attr(&mut self, typ: u16, payload: &[u8]) {
        let len = (NLA_HDRLEN + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&typ.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// The message with its length filled in.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The netlink message type of nfnetlink_queue message `t`.
pub(crate) fn queue_msg_type(t: libc::c_int) -> u16 {
    ((libc::NFNL_SUBSYS_QUEUE as u16) << 8) | t as u16
}

/// One message that binds the queue and sets copy mode, length and flags.
pub(crate) fn config_message(cfg: &QueueConfig, seq: u32) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_CONFIG), flags, seq, cfg.queue_num);
    // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }
    m.attr(libc::NFQA_CFG_CMD as u16, &[libc::NFQNL_CFG_CMD_BIND as u8, 0, 0, 0]);
    // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed)
    let mut params = COPY_RANGE.to_be_bytes().to_vec();
    params.push(libc::NFQNL_COPY_PACKET as u8);
    m.attr(libc::NFQA_CFG_PARAMS as u16, &params);
    m.attr(libc::NFQA_CFG_QUEUE_MAXLEN as u16, &cfg.max_len.to_be_bytes());
    let mask = (libc::NFQA_CFG_F_FAIL_OPEN | libc::NFQA_CFG_F_GSO) as u32;
    let mut set = 0u32;
    if cfg.fail_open {
        set |= libc::NFQA_CFG_F_FAIL_OPEN as u32;
    }
    if cfg.gso {
        set |= libc::NFQA_CFG_F_GSO as u32;
    }
    m.attr(libc::NFQA_CFG_FLAGS as u16, &set.to_be_bytes());
    m.attr(libc::NFQA_CFG_MASK as u16, &mask.to_be_bytes());
    m.finish()
}

/// What a verdict message carries besides the packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VerdictParts<'a> {
    /// The kernel's verdict code.
    pub(crate) code: u32,
    /// The replacement packet, if any.
    pub(crate) payload: Option<&'a [u8]>,
    /// The packet's new firewall mark, if any.
    pub(crate) mark: Option<u32>,
}

/// The kernel's verdict code for `verdict`, the replacement packet and the mark if any.
pub(crate) fn verdict_code(verdict: QueueVerdict<'_>) -> VerdictParts<'_> {
    let (code, payload, mark) = match verdict {
        QueueVerdict::Accept => (NF_ACCEPT, None, None),
        QueueVerdict::Drop => (NF_DROP, None, None),
        QueueVerdict::AcceptModified(p) => (NF_ACCEPT, Some(p), None),
        QueueVerdict::RepeatMarked(m) => (NF_REPEAT, None, Some(m)),
    };
    VerdictParts { code, payload, mark }
}

/// One verdict message for packet `id` of `queue`.
pub(crate) fn verdict_message(queue: u16, seq: u32, id: u32, v: VerdictParts<'_>) -> Vec<u8> {
    let mut m =
        MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_VERDICT), libc::NLM_F_REQUEST as u16, seq, queue);
    let mut hdr = v.code.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    m.attr(libc::NFQA_VERDICT_HDR as u16, &hdr);
    if let Some(mark) = v.mark {
        m.attr(libc::NFQA_MARK as u16, &mark.to_be_bytes());
    }
    if let Some(p) = v.payload {
        m.attr(libc::NFQA_PAYLOAD as u16, p);
    }
    m.finish()
}

/// One netlink message of a received datagram.
pub(crate) enum NlMessage<'a> {
    /// NLMSG_ERROR with its (positive) errno; 0 is an ACK.
    Error(i32),
    /// A queued packet (NFQNL_MSG_PACKET with a packet header).
    Packet(ParsedPacket<'a>),
    /// Anything else, including a packet message without a packet id.
    Other,
}

/// Iterates the netlink messages of one datagram; stops at anything malformed.
pub(crate) struct NlMessages<'a> {
    data: &'a [u8],
}

impl<'a> NlMessages<'a> {
    /// The messages of one received datagram.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        NlMessages { data }
    }
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Iterator for NlMessages<'a> {
    type Item = NlMessage<'a>;

    fn next(&mut self) -> Option<NlMessage<'a>> {
        let len = u32_ne(self.data, 0)? as usize;
        if len < NLMSG_HDRLEN || len > self.data.len() {
            return None;
        }
        let typ = u16_ne(self.data, 4)?;
        let data: &'a [u8] = self.data;
        let body = &data[NLMSG_HDRLEN..len];
        let advance = len.next_multiple_of(4).min(self.data.len());
        self.data = &self.data[advance..];
        if typ == libc::NLMSG_ERROR as u16 {
            let err = u32_ne(body, 0)? as i32;
            return Some(NlMessage::Error(err.saturating_abs()));
        }
        if typ == libc::NLMSG_DONE as u16 {
            return Some(NlMessage::Error(0));
        }
        if typ == queue_msg_type(libc::NFQNL_MSG_PACKET) {
            return Some(parse_packet(body).map(NlMessage::Packet).unwrap_or(NlMessage::Other));
        }
        Some(NlMessage::Other)
    }
}

/// Parses the attributes of an NFQNL_MSG_PACKET (after the netlink header).
fn parse_packet(body: &[u8]) -> Option<ParsedPacket<'_>> {
    let mut attrs = body.get(NFGEN_HDRLEN..)?;
    let mut id = None;
    let mut hook = None;
    let mut payload: &[u8] = &[];
    let mut skbinfo = 0u32;
    let mut cap_len = None;
    let mut mark = 0;
    while attrs.len() >= NLA_HDRLEN {
        let alen = usize::from(u16_ne(attrs, 0)?);
        // The top bits of nla_type are flags (nested, byte order).
        let atyp = u16_ne(attrs, 2)? & 0x3fff;
        if alen < NLA_HDRLEN || alen > attrs.len() {
            break;
        }
        let value = &attrs[NLA_HDRLEN..alen];
        match libc::c_int::from(atyp) {
            libc::NFQA_PACKET_HDR => {
                // struct nfqnl_msg_packet_hdr: packet_id (be32), hw_protocol (be16), hook (u8).
                id = u32_be(value, 0);
                hook = value.get(6).copied();
            }
            libc::NFQA_PAYLOAD => payload = value,
            libc::NFQA_SKB_INFO => skbinfo = u32_be(value, 0).unwrap_or(0),
            libc::NFQA_CAP_LEN => cap_len = u32_be(value, 0),
            libc::NFQA_MARK => mark = u32_be(value, 0).unwrap_or(0),
            _ => {}
        }
        attrs = attrs.get(alen.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Some(ParsedPacket {
        id: id?,
        payload,
        checksum_not_ready: skbinfo & libc::NFQA_SKB_CSUMNOTREADY as u32 != 0,
        checksum_verified: checksum_verified(hook, skbinfo),
        gso: skbinfo & libc::NFQA_SKB_GSO as u32 != 0,
        original_len: cap_len.map(|l| l as usize).unwrap_or(payload.len()),
        mark,
    })
}

/// True if the kernel says the packet's transport checksum was verified.
///
/// For packets queued at PREROUTING, INPUT or FORWARD the kernel flags
/// `NFQA_SKB_CSUM_NOTVERIFIED` exactly when neither the NIC (`CHECKSUM_UNNECESSARY`)
/// nor the stack has validated the checksum (`!skb_csum_unnecessary()` in
/// nfnetlink_queue.c); without it, and without "not ready", the receiving
/// stack trusts the checksum and never sums it again. At OUTPUT and
/// POSTROUTING the kernel does not set the flag at all, so its absence means
/// nothing there: those packets are verified by sluice.
pub(crate) fn checksum_verified(hook: Option<u8>, skbinfo: u32) -> bool {
    let unknown = (libc::NFQA_SKB_CSUMNOTREADY | libc::NFQA_SKB_CSUM_NOTVERIFIED) as u32;
    matches!(hook, Some(h) if libc::c_int::from(h) <= libc::NF_INET_FORWARD) && skbinfo & unknown == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_message_layout() {
        let mut cfg = QueueConfig::new(7);
        cfg.fail_open = true;
        let m = config_message(&cfg, 9);
        assert_eq!(u32_ne(&m, 0), Some(m.len() as u32));
        assert_eq!(u16_ne(&m, 4), Some(0x0302));
        assert_eq!(u32_ne(&m, 8), Some(9));
        assert_eq!(&m[18..20], &7u16.to_be_bytes());
        // First attribute: the bind command.
        assert_eq!(u16_ne(&m, 20), Some(8));
        assert_eq!(u16_ne(&m, 22), Some(libc::NFQA_CFG_CMD as u16));
        assert_eq!(m[24], libc::NFQNL_CFG_CMD_BIND as u8);
        // Flags carry fail-open and GSO.
        let flags = (libc::NFQA_CFG_F_FAIL_OPEN | libc::NFQA_CFG_F_GSO) as u32;
        assert!(m.windows(4).any(|w| w == flags.to_be_bytes()));
    }

    fn packet_message(id: u32, skbinfo: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_PACKET), 0, 0, 3);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 2]);
        m.attr(libc::NFQA_PACKET_HDR as u16, &hdr);
        m.attr(libc::NFQA_SKB_INFO as u16, &skbinfo.to_be_bytes());
        m.attr(libc::NFQA_PAYLOAD as u16, payload);
        m.finish()
    }

    #[test]
    fn parses_packets_and_errors_in_one_datagram() {
        let mut dgram = packet_message(42, libc::NFQA_SKB_CSUMNOTREADY as u32, b"hello");
        dgram.extend(packet_message(43, libc::NFQA_SKB_GSO as u32, b"x"));
        let mut err = vec![0u8; 36];
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        dgram.extend(err);
        let msgs: Vec<NlMessage> = NlMessages::new(&dgram).collect();
        assert_eq!(msgs.len(), 3);
        match &msgs[0] {
            NlMessage::Packet(p) => {
                assert_eq!((p.id, p.payload, p.checksum_not_ready, p.gso), (42, &b"hello"[..], true, false));
            }
            _ => panic!("expected a packet"),
        }
        match &msgs[1] {
            // Queued at FORWARD (hook 2) without "not verified": the kernel vouches for the sum.
            NlMessage::Packet(p) => {
                assert_eq!((p.id, p.checksum_not_ready, p.checksum_verified, p.gso), (43, false, true, true))
            }
            _ => panic!("expected a packet"),
        }
        match &msgs[0] {
            NlMessage::Packet(p) => assert!(!p.checksum_verified, "a sum not ready is not verified"),
            _ => panic!("expected a packet"),
        }
        assert!(matches!(msgs[2], NlMessage::Error(e) if e == libc::ENOENT));
    }

    #[test]
    fn checksum_verified_only_where_the_kernel_reports_it() {
        let not_verified = libc::NFQA_SKB_CSUM_NOTVERIFIED as u32;
        let not_ready = libc::NFQA_SKB_CSUMNOTREADY as u32;
        let gso = libc::NFQA_SKB_GSO as u32;
        for hook in [libc::NF_INET_PRE_ROUTING, libc::NF_INET_LOCAL_IN, libc::NF_INET_FORWARD] {
            let h = Some(hook as u8);
            assert!(checksum_verified(h, 0), "hook {hook}");
            assert!(checksum_verified(h, gso), "hook {hook}, GSO");
            assert!(!checksum_verified(h, not_verified), "hook {hook}, not verified");
            assert!(!checksum_verified(h, not_ready), "hook {hook}, not ready");
        }
        // OUTPUT and POSTROUTING never carry the flag: its absence proves nothing.
        for hook in [libc::NF_INET_LOCAL_OUT, libc::NF_INET_POST_ROUTING] {
            assert!(!checksum_verified(Some(hook as u8), 0), "hook {hook}");
        }
        assert!(!checksum_verified(None, 0), "no packet header");
    }

    #[test]
    fn hook_read_from_the_packet_header() {
        let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_PACKET), 0, 0, 3);
        let mut hdr = 5u32.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, libc::NF_INET_LOCAL_OUT as u8]);
        m.attr(libc::NFQA_PACKET_HDR as u16, &hdr);
        m.attr(libc::NFQA_PAYLOAD as u16, b"x");
        let dgram = m.finish();
        match NlMessages::new(&dgram).next() {
            Some(NlMessage::Packet(p)) => assert!(!p.checksum_verified, "queued at OUTPUT"),
            _ => panic!("expected a packet"),
        }
    }

    #[test]
    fn truncated_input_stops_cleanly() {
        let m = packet_message(1, 0, b"abcdef");
        for cut in 0..m.len() {
            // Must not panic; may yield nothing or a partial parse.
            let _ = NlMessages::new(&m[..cut]).count();
        }
    }

    #[test]
    fn verdict_message_layout() {
        let m = verdict_message(2, 5, 77, verdict_code(QueueVerdict::AcceptModified(b"abc")));
        assert_eq!(u16_ne(&m, 4), Some(0x0301));
        assert_eq!(u32_be(&m, 24), Some(NF_ACCEPT));
        assert_eq!(u32_be(&m, 28), Some(77));
        assert_eq!(u16_ne(&m, 34), Some(libc::NFQA_PAYLOAD as u16));
        assert_eq!(&m[36..39], b"abc");
        assert_eq!(m.len() % 4, 0);
    }

    #[test]
    fn a_packet_is_found_in_its_datagram_moved_whole_or_copied_out() {
        let mut dgram = packet_message(7, 0, b"first packet");
        dgram.extend(packet_message(8, 0, b"second"));
        let found: Vec<QueuedPacket> = NlMessages::new(&dgram)
            .filter_map(|m| match m {
                NlMessage::Packet(p) => Some(p.in_datagram(&dgram)),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 2);
        // Moved: the packet's bytes are read in place in the datagram's buffer.
        let mut moved = found[1].clone();
        moved.set_buffer(dgram.clone());
        assert_eq!((moved.id, moved.payload()), (8, &b"second"[..]));
        assert_eq!(moved.into_buffer(), dgram);
        // Copied: only the packet's bytes are kept.
        let mut copied = found[0].clone();
        copied.copy_out_of(&dgram);
        assert_eq!((copied.id, copied.payload()), (7, &b"first packet"[..]));
        assert_eq!(copied.into_buffer(), b"first packet");
    }

    #[test]
    fn a_packet_mark_is_read() {
        let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_PACKET), 0, 0, 3);
        m.attr(libc::NFQA_PACKET_HDR as u16, &[0, 0, 0, 5, 0x08, 0x00, 2]);
        m.attr(libc::NFQA_MARK as u16, &0x10u32.to_be_bytes());
        let dgram = m.finish();
        let msgs: Vec<NlMessage> = NlMessages::new(&dgram).collect();
        assert!(matches!(&msgs[..], [NlMessage::Packet(p)] if p.id == 5 && p.mark == 0x10));
        let unmarked = packet_message(6, 0, b"x");
        assert!(matches!(NlMessages::new(&unmarked).next(), Some(NlMessage::Packet(p)) if p.mark == 0));
    }

    #[test]
    fn a_repeat_verdict_carries_the_mark() {
        let m = verdict_message(0, 1, 9, verdict_code(QueueVerdict::RepeatMarked(0x0100_0042)));
        assert_eq!(u32_be(&m, 24), Some(NF_REPEAT));
        assert_eq!(u32_be(&m, 28), Some(9));
        assert_eq!(u16_ne(&m, 34), Some(libc::NFQA_MARK as u16));
        assert_eq!(u32_be(&m, 36), Some(0x0100_0042));
        assert_eq!(m.len(), 40);
    }
}
