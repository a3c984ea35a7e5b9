//! `pcap_reader`: the pcap and pcapng readers, then the whole offline
//! replay, on one capture per input, read from memory
//! ([`PcapSource::from_reader`]; no file is written).
//!
//! Invariants: record indices count up from 0; every slice a record hands
//! out lies in its frame; nothing follows an error; the reader's offset stays
//! within the input and the record count within what the input can hold (no
//! endless loop on zero-length blocks); the offline replay counts every
//! record exactly once (non-IP, accepted, modified or dropped), reports no
//! missing or unexpected verdict, and writes an output capture that reads
//! back with as many records as it says it wrote.

use std::io::Cursor;

use super::assert_within;
use crate::capture::pcap::PcapSource;
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::inject::pcap_writer::PcapOutput;
use crate::inspect::NoRules;
use crate::pcapgen::{write_pcap, write_pcapng, Conversation, Framing};
use crate::wire::decode;

pub(super) fn run(data: &[u8]) {
    read_records(data);
    replay(data);
}

/// The capture in `bytes`, named for error messages.
fn open(what: &str, bytes: Vec<u8>) -> Result<PcapSource, crate::capture::pcap::CaptureError> {
    PcapSource::from_reader(what, Cursor::new(bytes))
}

fn read_records(data: &[u8]) {
    let file_len = data.len();
    let Ok(mut source) = open("fuzz input", data.to_vec()) else { return };
    let mut expected = 0u64;
    let mut failed = false;
    while let Some(r) = source.next_record() {
        assert!(!failed, "a record after an error");
        assert!(source.offset() <= file_len as u64, "offset {} past the file ({file_len})", source.offset());
        match r {
            Ok(rec) => {
                assert_eq!(rec.index, expected, "record index");
                expected += 1;
                assert!(expected <= file_len as u64 / 8 + 1, "more records than the file can hold");
                assert!(rec.frame.len() <= file_len, "frame longer than the file");
                if let Some(ip) = rec.ip() {
                    assert_within(&rec.frame, ip, "record ip");
                    let _ = decode(ip);
                }
                if let Some(h) = rec.link_header() {
                    assert_within(&rec.frame, h, "record link header");
                }
                assert_eq!(rec.ip().is_some(), rec.l3.is_some(), "l3 range outside the frame");
            }
            Err(_) => failed = true,
        }
    }
    assert!(source.next_record().is_none(), "records after the end");
}

fn replay(data: &[u8]) {
    let Ok(mut source) = open("fuzz input", data.to_vec()) else { return };
    let Ok(mut output) =
        PcapOutput::new(Vec::new(), source.link_type(), source.nanosecond_timestamps(), 65535)
    else {
        return;
    };
    let mut engine = Engine::new(EngineConfig::default(), NoRules);
    let Ok(summary) = crate::offline::run_with(&mut engine, &mut source, Some(&mut output)) else { return };
    assert!(!summary.has_errors(), "missing or unexpected verdicts: {summary:?}");
    assert_eq!(
        summary.packets_in,
        summary.non_ip + summary.accepted + summary.modified + summary.dropped,
        "every record counted once: {summary:?}"
    );
    let Ok(bytes) = output.finish() else { return };
    let Ok(written) = open("sluice output", bytes) else { panic!("sluice's output capture does not open") };
    let mut n = 0u64;
    for r in written {
        assert!(r.is_ok(), "sluice's output capture does not read back: {r:?}");
        n += 1;
    }
    assert_eq!(n, summary.written, "records in the output vs written");
}

/// A short TCP conversation in pcap and pcapng, in several link types.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let mut conv = Conversation::new(([10, 0, 0, 1], 40000).into(), ([10, 0, 0, 2], 80).into());
    conv.handshake().send(crate::flow::Direction::Up, b"hello").udp(crate::flow::Direction::Up, b"dns");
    let packets = conv.into_packets();
    let mut out = Vec::new();
    for framing in [Framing::Ethernet, Framing::Vlan(vec![5]), Framing::Raw, Framing::Sll2, Framing::Null] {
        if let Ok(v) = write_pcap(Vec::new(), &framing, &packets) {
            out.push(v);
        }
        if let Ok(v) = write_pcapng(Vec::new(), &framing, &packets) {
            out.push(v);
        }
    }
    out
}
