//! The dispatcher thread: reads the capture, reassembles IP fragments (its
//! own engine, with no rules, does only that: whole datagrams are then
//! sharded like any packet), and sends each worker its packets and every
//! record's time, and the merge how each record was routed.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use indicatif::ProgressBar;

use super::super::checksums::OffloadFinding;
use crate::capture::pcap::{PcapSource, Record};
use crate::engine::{ChecksumState, Engine, Front, Output, Packet};
use crate::inspect::NoRules;
use crate::time::Timestamp;

use super::messages::{Entry, InputEnd, Job, Route, Routed, Work};
use super::shard::{Class, Sharder};
use super::{BATCH, BATCH_BYTES};

/// The dispatcher and its channels.
pub(super) struct Dispatcher<'p> {
    pub(super) source: PcapSource,
    /// Defragments only (see the module comment).
    pub(super) engine: Engine<NoRules>,
    pub(super) sharder: Sharder,
    /// The records whose checksums the offload scan found right, once it ran.
    pub(super) offload: OffloadFinding,
    pub(super) work: Vec<SyncSender<Work>>,
    pub(super) routed: SyncSender<Routed>,
    pub(super) progress: Option<&'p ProgressBar>,
}

/// One batch being put together.
struct Batch {
    routed: Routed,
    jobs: Vec<Vec<Job>>,
    times: Vec<Timestamp>,
}

impl Dispatcher<'_> {
    /// Runs to the end of the input, or until the merge stops listening.
    pub(super) fn run(mut self) {
        let mut first = 0u64;
        let mut out = Output::new();
        let (mut last_time, mut last_time_ns) = (Timestamp::default(), 0u64);
        let mut count = 0u64;
        loop {
            let workers = self.work.len();
            let mut batch = Batch {
                // Room for the whole batch: no regrowth copies.
                routed: Routed { entries: Vec::with_capacity(BATCH), ..Routed::default() },
                jobs: (0..workers).map(|_| Vec::with_capacity(BATCH / workers + 16)).collect(),
                times: Vec::with_capacity(BATCH),
            };
            let mut end = None;
            let mut bytes = 0usize;
            while batch.times.len() < BATCH && bytes < BATCH_BYTES {
                let rec = match self.source.next_record() {
                    Some(Ok(r)) => r,
                    None => {
                        end = Some(InputEnd::default());
                        break;
                    }
                    Some(Err(e)) if e.is_truncation() => {
                        // Logged by the merge, after the log lines of the records before it.
                        let warning = format!("{e}; processing the {count} records before it");
                        end = Some(InputEnd {
                            truncated: Some((e.to_string(), warning)),
                            ..InputEnd::default()
                        });
                        break;
                    }
                    Some(Err(e)) => {
                        end = Some(InputEnd { error: Some(e), ..InputEnd::default() });
                        break;
                    }
                };
                count += 1;
                bytes += rec.frame.len();
                if let Some(p) = self.progress {
                    if rec.index % 1024 == 0 {
                        p.set_position(self.source.offset());
                    }
                }
                last_time = last_time.max(rec.time);
                last_time_ns = last_time_ns.max(rec.time_ns);
                self.route(rec, &mut batch, &mut out);
            }
            let end_time = end.as_ref().map(|_| last_time);
            if let Some(mut e) = end {
                out.clear();
                self.engine.finish(last_time, &mut out);
                e.items = out.items.drain(..).collect();
                e.last_time_ns = last_time_ns;
                batch.routed.end = Some(e);
            }
            let times: Arc<[Timestamp]> = batch.times.into();
            for (w, jobs) in batch.jobs.into_iter().enumerate() {
                let work = Work { first, times: Arc::clone(&times), jobs, end: end_time };
                if self.work[w].send(work).is_err() {
                    return;
                }
            }
            first += times.len() as u64;
            if self.routed.send(batch.routed).is_err() || end_time.is_some() {
                return;
            }
        }
    }

    /// Ticks the defragmenter to the record's time and routes the record.
    fn route(&mut self, rec: Record, batch: &mut Batch, out: &mut Output) {
        let routed = &mut batch.routed;
        out.clear();
        self.engine.tick(rec.time, out);
        routed.items.append(&mut out.items);
        let tick_items = routed.items.len();
        batch.times.push(rec.time);
        let (index, time_ns) = (rec.index, rec.time_ns);
        let class = rec.ip().map(|ip| self.sharder.classify(ip));
        let route = match class {
            None => Route::NotIp(Box::new(rec)),
            Some(Class::Worker(w)) => {
                let checksum = self.offload.state(index);
                batch.jobs[w].push(Job::Packet(rec, checksum));
                Route::Worker(w)
            }
            Some(Class::Fragment) => self.fragment(rec, batch, out),
        };
        let routed = &mut batch.routed;
        routed.items.append(&mut out.items);
        routed.entries.push(Entry { index, route, time_ns, tick_items, own_items: routed.items.len() });
    }

    /// A fragment: held, refused, or the last one of its datagram, which
    /// then goes to the worker of the datagram's flow.
    fn fragment(&mut self, rec: Record, batch: &mut Batch, out: &mut Output) -> Route {
        let pkt = Packet {
            id: rec.index,
            data: rec.ip().unwrap_or(&[]),
            time: rec.time,
            checksum: ChecksumState::Unchecked,
        };
        match self.engine.defragment(pkt, out) {
            Front::Taken => Route::Fragment { record: Box::new(rec), done_by: None },
            Front::Reassembled(whole) => {
                let w = self.sharder.worker_of_bytes(&whole.datagram);
                batch.jobs[w].push(Job::Datagram { index: rec.index, whole });
                Route::Fragment { record: Box::new(rec), done_by: Some(w) }
            }
            // The sharder saw a fragment; the engine did not (cannot
            // happen: both decode alike). Judged whole by worker 0.
            Front::Whole => {
                let checksum = self.offload.state(rec.index);
                batch.jobs[0].push(Job::Packet(rec, checksum));
                Route::Worker(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::mpsc::sync_channel;

    use super::*;
    use crate::config::EngineConfig;
    use crate::flow::Direction::Up;
    use crate::pcapgen::{write_pcap, Conversation, Framing};
    use crate::stats::Stats;

    /// The sizes of the batches the dispatcher makes of `packets`.
    fn batch_sizes(packets: &[crate::pcapgen::TimedPacket]) -> Vec<usize> {
        let bytes = write_pcap(Vec::new(), &Framing::Ethernet, packets).unwrap();
        let source = PcapSource::from_reader("memory.pcap", Cursor::new(bytes)).unwrap();
        // Deep enough for the whole test capture: nothing reads while it runs.
        let (work_tx, work_rx) = sync_channel(64);
        let (routed_tx, routed_rx) = sync_channel(64);
        let stats = Arc::new(Stats::new());
        Dispatcher {
            source,
            engine: Engine::with_stats(EngineConfig::default(), NoRules, stats),
            sharder: Sharder::new(1),
            offload: OffloadFinding::default(),
            work: vec![work_tx],
            routed: routed_tx,
            progress: None,
        }
        .run();
        let routed: Vec<usize> = routed_rx.try_iter().map(|r| r.entries.len()).collect();
        let work: Vec<usize> = work_rx.try_iter().map(|w| w.times.len()).collect();
        assert_eq!(routed, work, "the merge and the worker see the same batches");
        routed
    }

    #[test]
    fn a_batch_ends_at_its_record_count_or_at_its_byte_count() {
        let mut c = Conversation::new("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
        c.handshake();
        // 40 frames of 60,054 bytes (Ethernet, IPv4, TCP, 60,000 of data):
        // 18 of them pass 1 MiB (17 do not).
        for _ in 0..40 {
            c.data(Up, &[b'x'; 60_000]);
        }
        // Then 1,000 small frames: batches of BATCH records.
        for _ in 0..1_000 {
            c.ack(Up);
        }
        let sizes = batch_sizes(&c.into_packets());
        // The handshake's 3 small frames ride with the first 18 big ones;
        // the last 4 big ones start a batch the small frames end at BATCH.
        let rest = 3 + 40 + 1_000 - 21 - 18 - BATCH;
        assert_eq!(sizes, [3 + 18, 18, BATCH, rest], "BATCH {BATCH}");
        assert_eq!(sizes.iter().sum::<usize>(), 3 + 40 + 1_000);
    }
}
