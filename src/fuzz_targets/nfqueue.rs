//! `nfqueue_codec`: the NFQUEUE netlink codec with no socket.
//!
//! The input is read twice: as a datagram the kernel might send (split into
//! messages, packets parsed), and as the fields of packet and verdict
//! messages to build and parse back.
//!
//! Invariants: the walk over a datagram ends and never yields more messages
//! than 16-byte headers fit; a parsed payload is no longer than the
//! datagram; "checksum verified" never comes with "not ready"; a packet
//! message built from fields parses back to exactly those fields; a verdict
//! message is padded, carries its own length, and holds the id, code and
//! replacement bytes it was built with.

use arbitrary::{Arbitrary, Unstructured};

use crate::capture::nfqueue::codec::{
    queue_msg_type, verdict_code, verdict_message, MsgBuilder, NlMessage, NlMessages, QueueVerdict,
    NLA_HDRLEN,
};

pub(super) fn run(data: &[u8]) {
    parse_datagram(data);
    let mut u = Unstructured::new(data);
    if let Ok(fields) = PacketFields::arbitrary(&mut u) {
        packet_round_trip(&fields);
    }
    if let Ok(v) = VerdictFields::arbitrary(&mut u) {
        verdict_round_trip(&v);
    }
}

fn parse_datagram(data: &[u8]) {
    let mut count = 0usize;
    for msg in NlMessages::new(data) {
        count += 1;
        assert!(count <= data.len() / 16 + 1, "more messages than headers fit");
        match msg {
            NlMessage::Error(e) => assert!(e >= 0, "negative errno {e}"),
            NlMessage::Packet(p) => {
                assert!(p.payload.len() <= data.len(), "payload longer than the datagram");
                assert!(!(p.checksum_verified && p.checksum_not_ready), "verified and not ready");
            }
            NlMessage::Other => {}
        }
    }
}

/// The fields of one NFQNL_MSG_PACKET.
#[derive(Debug, Arbitrary)]
struct PacketFields {
    id: u32,
    hook: u8,
    skbinfo: Option<u32>,
    cap_len: Option<u32>,
    payload: Vec<u8>,
    /// An attribute sluice does not read, placed before the payload.
    unknown: Option<(u16, Vec<u8>)>,
}

fn packet_round_trip(f: &PacketFields) {
    if f.payload.len() + NLA_HDRLEN > usize::from(u16::MAX) {
        return;
    }
    let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_PACKET), 0, 1, 0);
    let mut hdr = f.id.to_be_bytes().to_vec();
    hdr.extend_from_slice(&[0x08, 0x00, f.hook]);
    m.attr(libc::NFQA_PACKET_HDR as u16, &hdr);
    if let Some(info) = f.skbinfo {
        m.attr(libc::NFQA_SKB_INFO as u16, &info.to_be_bytes());
    }
    if let Some(len) = f.cap_len {
        m.attr(libc::NFQA_CAP_LEN as u16, &len.to_be_bytes());
    }
    if let Some((typ, value)) = &f.unknown {
        let known = [libc::NFQA_PACKET_HDR, libc::NFQA_PAYLOAD, libc::NFQA_SKB_INFO, libc::NFQA_CAP_LEN];
        let typ = typ & 0x3fff;
        if value.len() < 1024 && !known.contains(&libc::c_int::from(typ)) {
            m.attr(typ, value);
        }
    }
    m.attr(libc::NFQA_PAYLOAD as u16, &f.payload);
    let msg = m.finish();
    let parsed: Vec<NlMessage> = NlMessages::new(&msg).collect();
    let [NlMessage::Packet(p)] = parsed.as_slice() else {
        panic!("a built packet message does not parse back")
    };
    let info = f.skbinfo.unwrap_or(0);
    assert_eq!(p.id, f.id);
    assert_eq!(p.payload, f.payload);
    assert_eq!(p.checksum_not_ready, info & libc::NFQA_SKB_CSUMNOTREADY as u32 != 0);
    assert_eq!(p.gso, info & libc::NFQA_SKB_GSO as u32 != 0);
    assert_eq!(p.original_len, f.cap_len.map(|l| l as usize).unwrap_or(f.payload.len()));
    let unknown = (libc::NFQA_SKB_CSUMNOTREADY | libc::NFQA_SKB_CSUM_NOTVERIFIED) as u32;
    let expected = libc::c_int::from(f.hook) <= libc::NF_INET_FORWARD && info & unknown == 0;
    assert_eq!(p.checksum_verified, expected, "checksum rule");
}

/// The fields of one verdict.
#[derive(Debug, Arbitrary)]
struct VerdictFields {
    queue: u16,
    seq: u32,
    id: u32,
    kind: u8,
    replacement: Vec<u8>,
}

fn verdict_round_trip(v: &VerdictFields) {
    let verdict = match v.kind % 4 {
        0 => QueueVerdict::Accept,
        1 => QueueVerdict::Drop,
        2 => QueueVerdict::RepeatMarked(v.seq),
        _ => QueueVerdict::AcceptModified(&v.replacement),
    };
    let parts = verdict_code(verdict);
    let expected_code = match verdict {
        QueueVerdict::Drop => 0,
        QueueVerdict::RepeatMarked(_) => 4,
        _ => 1,
    };
    assert_eq!(parts.code, expected_code, "NF_DROP 0, NF_ACCEPT 1, NF_REPEAT 4");
    if parts.payload.is_some_and(|p| p.len() + NLA_HDRLEN > usize::from(u16::MAX)) {
        return;
    }
    let m = verdict_message(v.queue, v.seq, v.id, parts);
    assert_eq!(m.len() % 4, 0, "netlink messages are padded to 4 bytes");
    assert_eq!(m[..4], (m.len() as u32).to_ne_bytes(), "length field");
    assert_eq!(m[4..6], queue_msg_type(libc::NFQNL_MSG_VERDICT).to_ne_bytes());
    assert_eq!(m[8..12], v.seq.to_ne_bytes());
    assert_eq!(m[18..20], v.queue.to_be_bytes());
    // NFQA_VERDICT_HDR: verdict code and packet id, big-endian.
    assert_eq!(m[20..22], 12u16.to_ne_bytes());
    assert_eq!(m[24..28], parts.code.to_be_bytes());
    assert_eq!(m[28..32], v.id.to_be_bytes());
    match (parts.payload, parts.mark) {
        (Some(p), None) => {
            assert_eq!(m[32..34], ((NLA_HDRLEN + p.len()) as u16).to_ne_bytes());
            assert_eq!(m[34..36], (libc::NFQA_PAYLOAD as u16).to_ne_bytes());
            assert_eq!(&m[36..36 + p.len()], p);
            assert!(m.len() - (36 + p.len()) < 4, "padding only after the payload");
        }
        (None, Some(mark)) => {
            assert_eq!(m[34..36], (libc::NFQA_MARK as u16).to_ne_bytes());
            assert_eq!(m[36..40], mark.to_be_bytes());
            assert_eq!(m.len(), 40);
        }
        (None, None) => assert_eq!(m.len(), 32),
        (Some(_), Some(_)) => panic!("no verdict carries both a packet and a mark"),
    }
}

/// Datagrams as the kernel sends them: two packets, an ACK, an error.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let packet = |id: u32, hook: u8, info: u32, payload: &[u8]| {
        let mut m = MsgBuilder::new(queue_msg_type(libc::NFQNL_MSG_PACKET), 0, 0, 3);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, hook]);
        m.attr(libc::NFQA_PACKET_HDR as u16, &hdr);
        m.attr(libc::NFQA_SKB_INFO as u16, &info.to_be_bytes());
        m.attr(libc::NFQA_CAP_LEN as u16, &(payload.len() as u32 + 10).to_be_bytes());
        m.attr(libc::NFQA_PAYLOAD as u16, payload);
        m.finish()
    };
    let error = |errno: i32| {
        let mut e = vec![0u8; 36];
        e[..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        e[16..20].copy_from_slice(&(-errno).to_ne_bytes());
        e
    };
    let a = packet(1, 0, 0, b"\x45\x00\x00\x14");
    let b = packet(2, 3, libc::NFQA_SKB_GSO as u32, b"payload");
    vec![a.clone(), [a, b, error(0), error(libc::ENOENT)].concat()]
}
