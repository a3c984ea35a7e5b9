//! What the threads of a sharded run send each other, one batch of input
//! records at a time: the dispatcher sends each worker its part of the
//! batch ([`Work`]) and the merge what it did itself ([`Routed`]); each
//! worker sends the merge what its engine and rules emitted ([`Done`]), cut
//! into [`Piece`]s the merge can put in input order.

use std::sync::Arc;

use crate::capture::pcap::{CaptureError, Record};
use crate::engine::{ChecksumState, Emitted, Reassembled};
use crate::rules::RuleErrorLine;
use crate::time::Timestamp;

use super::dump_tap::DumpEvent;

/// A worker's part of one batch.
#[derive(Debug)]
pub(super) struct Work {
    /// Index of the batch's first record.
    pub(super) first: u64,
    /// Packet time of every record of the batch, in order: every worker's
    /// clock advances with each record, its own or not, so flows expire at
    /// the same record as with one worker.
    pub(super) times: Arc<[Timestamp]>,
    /// This worker's packets, in input order.
    pub(super) jobs: Vec<Job>,
    /// Set on the last batch: the input ended (packet time of the end).
    pub(super) end: Option<Timestamp>,
}

/// A packet for a worker.
#[derive(Debug)]
pub(super) enum Job {
    /// A whole IP packet (its record goes back to the merge with the
    /// result), and what is known of its checksum.
    Packet(Record, ChecksumState),
    /// A datagram reassembled by the dispatcher; `index` is the record of
    /// the fragment that completed it.
    Datagram {
        /// The completing record.
        index: u64,
        /// The datagram and its fragments' ids.
        whole: Reassembled,
    },
}

impl Job {
    /// The record the job belongs to.
    pub(super) fn index(&self) -> u64 {
        match self {
            Job::Packet(r, _) => r.index,
            Job::Datagram { index, .. } => *index,
        }
    }
}

/// Piece index of the end of input (after every record).
pub(super) const END: u64 = u64::MAX;

/// What a worker emitted for one record, or for one flow it retired.
/// Its items, alert bytes, log bytes, rule errors, printed lines and dump
/// events run from the end of the worker's previous piece to the ends
/// given here.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Piece {
    /// The record (or [`END`]).
    pub(super) index: u64,
    /// `Some(flow id)`: what retiring that flow emitted (a timeout before
    /// the record, or the end of input); `None`: the record's own packet.
    pub(super) flow: Option<u64>,
    pub(super) items: usize,
    pub(super) alerts: usize,
    pub(super) logs: usize,
    pub(super) errors: usize,
    pub(super) prints: usize,
    pub(super) dump: usize,
}

/// What a worker did with one batch.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub(super) pieces: Vec<Piece>,
    pub(super) items: Vec<Emitted>,
    /// The records of its [`Job::Packet`]s, in order.
    pub(super) records: Vec<Record>,
    pub(super) alerts: Vec<u8>,
    pub(super) logs: Vec<u8>,
    /// Rule errors, for the merge to log (counted in input order), each
    /// at its place in `logs`.
    pub(super) errors: Vec<(usize, RuleErrorLine)>,
    /// Lines the rules printed, for the merge to write to standard output,
    /// each at its place in `alerts` (which may go there too).
    pub(super) prints: Vec<(usize, Vec<u8>)>,
    pub(super) dump: Vec<DumpEvent>,
    /// On the last batch: every rule's label and error count, in declaration order.
    pub(super) rule_errors: Option<Vec<(String, u64)>>,
}

/// How the dispatcher routed one record. The rare routes box their
/// record, so the common one (a worker's packet) keeps an [`Entry`] small:
/// the dispatcher and the merge move one per record.
#[derive(Debug)]
pub(super) enum Route {
    /// No IP packet: written through.
    NotIp(Box<Record>),
    /// A whole packet, judged by this worker.
    Worker(usize),
    /// A fragment, taken by the dispatcher; `done_by` is the worker that
    /// got the datagram it completed, if it completed one.
    Fragment {
        /// The fragment's record.
        record: Box<Record>,
        /// The worker judging the completed datagram.
        done_by: Option<usize>,
    },
}

/// One record as the dispatcher saw it.
#[derive(Debug)]
pub(super) struct Entry {
    /// The record's index.
    pub(super) index: u64,
    pub(super) route: Route,
    pub(super) time_ns: u64,
    /// End of the items its tick emitted (fragments timed out).
    pub(super) tick_items: usize,
    /// End of the items the record itself caused (fragments refused).
    pub(super) own_items: usize,
}

/// The dispatcher's account of one batch.
#[derive(Debug, Default)]
pub(super) struct Routed {
    pub(super) entries: Vec<Entry>,
    pub(super) items: Vec<Emitted>,
    /// Set on the last batch.
    pub(super) end: Option<InputEnd>,
}

/// How the input ended.
#[derive(Debug, Default)]
pub(super) struct InputEnd {
    /// Packet time of the last record, nanoseconds.
    pub(super) last_time_ns: u64,
    /// The input ended in the middle of a record: the error, and the
    /// warning to log.
    pub(super) truncated: Option<(String, String)>,
    /// The input is damaged.
    pub(super) error: Option<CaptureError>,
    /// What the dispatcher's engine emitted at the end (held fragments dropped).
    pub(super) items: Vec<Emitted>,
}
