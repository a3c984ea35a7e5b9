//! Applies what the engine emitted to the output pcap, in order: an
//! accepted packet's original frame is written, a dropped one is not, a
//! modified one is written behind its own link header, and forged packets
//! (RSTs) behind a header borrowed from their connection, stamped with the
//! time of the packet that caused them. Records wait in a
//! [`VerdictBook`] until their verdict comes, so each is judged exactly
//! once; both the single-threaded replay and the merge of `--workers`
//! apply through here.

use std::io::{self, Write};

use crate::capture::pcap::Record;
use crate::engine::{Emitted, Verdict};
use crate::inject::pcap_writer::PcapOutput;
use crate::verdict_book::VerdictBook;

use super::summary::Summary;

/// Applies emitted items; returns the first write error.
pub(super) struct Applier<'a, W: Write> {
    pub(super) output: Option<&'a mut PcapOutput<W>>,
    pub(super) book: VerdictBook<Record>,
    pub(super) summary: Summary,
}

impl<'a, W: Write> Applier<'a, W> {
    /// Nothing applied yet.
    pub(super) fn new(output: Option<&'a mut PcapOutput<W>>) -> Self {
        Applier { output, book: VerdictBook::new(1), summary: Summary::default() }
    }

    fn write(&mut self, r: io::Result<()>) -> io::Result<()> {
        r?;
        self.summary.written += 1;
        Ok(())
    }

    /// An IP record goes to the engine: its link header is learnt (for
    /// packets forged on its connection) and it waits for its verdict.
    pub(super) fn wait_for_verdict(&mut self, rec: Record) {
        if let (Some(o), Some(l3)) = (self.output.as_deref_mut(), rec.l3.clone()) {
            if let Some(ip) = rec.frame.get(l3.clone()) {
                o.learn(&rec.frame[..l3.start], ip);
            }
        }
        self.book.begin_batch([(rec.index, rec)]);
    }

    /// A frame without an IP packet: written through unchanged.
    pub(super) fn not_ip(&mut self, rec: &Record) -> io::Result<()> {
        self.summary.non_ip += 1;
        let r = match self.output.as_deref_mut() {
            Some(o) => o.write_frame(rec.time_ns, &rec.frame, rec.orig_len),
            None => return Ok(()),
        };
        self.write(r)
    }

    /// Handles `items` in order; forged packets get the time `time_ns`.
    pub(super) fn apply(&mut self, items: impl IntoIterator<Item = Emitted>, time_ns: u64) -> io::Result<()> {
        for item in items {
            match item {
                Emitted::Verdict(id, verdict) => self.verdict(id, verdict)?,
                Emitted::Forged(p) => {
                    self.summary.forged += 1;
                    if let Some(o) = self.output.as_deref_mut() {
                        let r = o.write_forged(time_ns, &p);
                        self.write(r)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn verdict(&mut self, id: u64, verdict: Verdict) -> io::Result<()> {
        let Some(rec) = self.book.take(id) else {
            tracing::error!("engine gave a verdict for packet {id}, which is not waiting for one");
            self.summary.unexpected_verdicts += 1;
            return Ok(());
        };
        match verdict {
            Verdict::Accept => {
                self.summary.accepted += 1;
                if let Some(o) = self.output.as_deref_mut() {
                    let r = o.write_frame(rec.time_ns, &rec.frame, rec.orig_len);
                    self.write(r)?;
                }
            }
            Verdict::Drop => self.summary.dropped += 1,
            Verdict::AcceptModified(bytes) => {
                self.summary.modified += 1;
                if let Some(o) = self.output.as_deref_mut() {
                    let header = rec.link_header().unwrap_or(&[]);
                    let r = o.write_with_header(rec.time_ns, header, &bytes);
                    self.write(r)?;
                }
            }
        }
        Ok(())
    }

    /// End of input: records still waiting never got a verdict (an engine
    /// bug); counted and reported.
    pub(super) fn close_book(&mut self) {
        let missing = self.book.drain().len() as u64;
        if missing > 0 {
            tracing::error!("{missing} packets got no verdict from the engine");
        }
        self.summary.missing_verdicts = missing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link::{locate_ip, LinkType};
    use crate::engine::Output;
    use crate::pcapgen::Framing;
    use crate::time::Timestamp;
    use crate::wire::decode;
    use crate::wire::decode::v4;
    use crate::wire::forge::udp_packet;

    fn record(index: u64, ip: &[u8]) -> Record {
        let frame = Framing::Ethernet.frame(ip);
        let l3 = locate_ip(LinkType::Ethernet, &frame);
        Record {
            index,
            time: Timestamp(index),
            time_ns: index * 1000,
            orig_len: frame.len() as u32,
            frame: frame.into(),
            l3,
        }
    }

    fn written(out: PcapOutput<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
        let bytes = out.finish().unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        let mut v = vec![];
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap();
            v.push((u64::from(p.ts_frac), p.data.into_owned()));
        }
        v
    }

    #[test]
    fn held_packets_are_written_when_their_verdict_comes() {
        let a = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"a");
        let b = udp_packet(v4(2, 2, 2, 2), 2, v4(1, 1, 1, 1), 1, b"b");
        let mut out = PcapOutput::new(Vec::new(), LinkType::Ethernet, false, 0).unwrap();
        let (ra, rb) = (record(0, &a), record(1, &b));
        let mut ap = Applier::new(Some(&mut out));
        // Packet 0: no verdict yet (held). Packet 1: its own verdict, then 0's,
        // and an RST-like forged packet from 2.2.2.2 to 1.1.1.1.
        ap.wait_for_verdict(ra.clone());
        ap.apply(Vec::new(), 0).unwrap();
        assert_eq!(ap.book.waiting(), 1);
        let mut o = Output::new();
        o.verdict(1, Verdict::Drop);
        o.verdict(0, Verdict::Accept);
        o.forged(b.clone());
        o.verdict(5, Verdict::Accept);
        ap.wait_for_verdict(rb);
        ap.apply(o.items.drain(..), 1000).unwrap();
        assert_eq!(ap.book.waiting(), 0);
        let s = ap.summary;
        assert_eq!((s.accepted, s.dropped, s.forged, s.unexpected_verdicts, s.written), (1, 1, 1, 1, 2));
        let w = written(out);
        assert_eq!(w[0].1, ra.frame, "held frame written byte-identical");
        assert_eq!(w[1].0, 1, "forged packet stamped with the causing packet's time (µs)");
        // Forged B→A frame: A→B's Ethernet header reversed.
        assert_eq!(&w[1].1[..6], &ra.frame[6..12]);
        assert_eq!(&w[1].1[6..12], &ra.frame[..6]);
        assert_eq!(&w[1].1[14..], &b[..]);
    }

    #[test]
    fn modified_packets_keep_their_link_header() {
        let a = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"original");
        let new = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"changed!!");
        let mut out = PcapOutput::new(Vec::new(), LinkType::Ethernet, false, 0).unwrap();
        let ra = record(3, &a);
        let mut ap = Applier::new(Some(&mut out));
        ap.wait_for_verdict(ra.clone());
        ap.apply([Emitted::Verdict(3, Verdict::AcceptModified(new.clone()))], 0).unwrap();
        assert_eq!(ap.summary.modified, 1);
        let w = written(out);
        assert_eq!(&w[0].1[..14], ra.link_header().unwrap());
        assert_eq!(decode(&w[0].1[14..]).unwrap().payload(), b"changed!!");
    }

    #[test]
    fn a_record_without_verdict_is_counted_missing() {
        let a = udp_packet(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"a");
        let mut ap = Applier::<Vec<u8>>::new(None);
        ap.wait_for_verdict(record(0, &a));
        ap.close_book();
        assert_eq!(ap.summary.missing_verdicts, 1);
        assert!(ap.summary.has_errors());
    }
}
