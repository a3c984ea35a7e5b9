//! The merge: puts what the dispatcher and the workers did back in input
//! order, and writes every output as one engine would have. For each
//! record, in this order: its frame waits for its verdict; the fragments
//! its time expired; the flows its time expired, from every worker, in flow
//! order (one engine retires expired flows in creation order, and flow ids
//! follow input order); then the record's own packet. At the end: held
//! fragments, then every flow still open, in flow order.

use std::io::{self, Write};
use std::vec;

use crate::capture::pcap::Record;
use crate::engine::Emitted;
use crate::inspect::NoRules;
use crate::rules::{print_to_stdout, RuleErrorLine, RuleErrorLog};
use crate::stream_dump::StreamDump;

use super::super::apply::Applier;
use super::dump_tap::{self, DumpEvent};
use super::messages::{Done, Entry, Piece, Route, END};

/// Alert lines, renumbered: each worker's rules count their own alerts from
/// 1, the file counts them in input order.
pub(super) struct AlertOut {
    out: Box<dyn Write + Send>,
    last_id: u64,
    failed: bool,
}

impl AlertOut {
    /// Alerts go to `out`.
    pub(super) fn new(out: Box<dyn Write + Send>) -> Self {
        AlertOut { out, last_id: 0, failed: false }
    }

    fn write(&mut self, lines: &[u8]) {
        for line in lines.split_inclusive(|b| *b == b'\n') {
            self.last_id += 1;
            let r = match renumber(line, self.last_id) {
                Some(l) => self.out.write_all(&l),
                None => self.out.write_all(line),
            };
            self.note(r);
        }
    }

    fn flush(&mut self) {
        let r = self.out.flush();
        self.note(r);
    }

    /// As with one worker, losing an alert line is logged, never raised.
    fn note(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if !self.failed {
                tracing::error!(target: "sluice::alert", "cannot write alert: {e}");
                self.failed = true;
            }
        }
    }
}

/// `line` with its leading `"id"` (alerts put it first) set to `id`.
fn renumber(line: &[u8], id: u64) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"{\"id\":";
    let rest = line.strip_prefix(PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut l = Vec::with_capacity(line.len() + 8);
    l.extend_from_slice(PREFIX);
    l.extend_from_slice(id.to_string().as_bytes());
    l.extend_from_slice(&rest[digits..]);
    Some(l)
}

/// Writes `bytes[from..]` through `write`, handing each of `lines` to `put`
/// at the byte offset where it came (offsets behind the last one, or past
/// the end, are taken as that one, or the end).
fn interleave<L>(
    bytes: &[u8],
    from: usize,
    lines: impl Iterator<Item = (usize, L)>,
    mut write: impl FnMut(&[u8]),
    mut put: impl FnMut(L),
) {
    let mut done = from;
    for (at, line) in lines {
        let at = at.clamp(done, bytes.len());
        if at > done {
            write(&bytes[done..at]);
        }
        done = at;
        put(line);
    }
    if bytes.len() > done {
        write(&bytes[done..]);
    }
}

/// Where the merge is in one worker's answer for the current batch.
#[derive(Default)]
struct Cursor {
    pieces: Vec<Piece>,
    next: usize,
    /// The last piece taken: where the next one's items, bytes... start.
    at: Piece,
    items: vec::IntoIter<Emitted>,
    records: vec::IntoIter<Record>,
    alerts: Vec<u8>,
    logs: Vec<u8>,
    errors: vec::IntoIter<(usize, RuleErrorLine)>,
    prints: vec::IntoIter<(usize, Vec<u8>)>,
    dump: vec::IntoIter<DumpEvent>,
}

impl Cursor {
    fn new(d: Done) -> Self {
        Cursor {
            pieces: d.pieces,
            next: 0,
            at: Piece::default(),
            items: d.items.into_iter(),
            records: d.records.into_iter(),
            alerts: d.alerts,
            logs: d.logs,
            errors: d.errors.into_iter(),
            prints: d.prints.into_iter(),
            dump: d.dump.into_iter(),
        }
    }

    fn peek(&self, k: usize) -> Option<&Piece> {
        self.pieces.get(self.next + k)
    }
}

/// Why the merge stopped before the end.
#[derive(Debug)]
pub(super) enum MergeError {
    /// Writing the output pcap failed.
    Write(io::Error),
    /// A worker's answer did not fit the dispatcher's (a bug).
    OutOfStep(String),
}

impl From<io::Error> for MergeError {
    fn from(e: io::Error) -> Self {
        MergeError::Write(e)
    }
}

/// The merge's state.
pub(super) struct Merge<'a, W: Write> {
    pub(super) apply: Applier<'a, W>,
    pub(super) alerts: AlertOut,
    pub(super) dump: Option<StreamDump<NoRules>>,
    /// Rule errors counted over every worker, in input order.
    errors: RuleErrorLog,
    workers: Vec<Cursor>,
}

impl<'a, W: Write> Merge<'a, W> {
    /// A merge over `workers` workers.
    pub(super) fn new(
        apply: Applier<'a, W>,
        alerts: AlertOut,
        dump: Option<StreamDump<NoRules>>,
        workers: usize,
    ) -> Self {
        Merge {
            apply,
            alerts,
            dump,
            errors: RuleErrorLog::default(),
            workers: (0..workers).map(|_| Cursor::default()).collect(),
        }
    }

    /// The workers' answers for the next batch.
    pub(super) fn load(&mut self, answers: Vec<Done>) {
        self.workers = answers.into_iter().map(Cursor::new).collect();
    }

    /// Applies one record of the batch; `disp` holds the dispatcher's items.
    pub(super) fn record(
        &mut self,
        e: Entry,
        disp: &mut vec::IntoIter<Emitted>,
        disp_at: &mut usize,
    ) -> Result<(), MergeError> {
        let tick = e.tick_items - *disp_at;
        let own = e.own_items - e.tick_items;
        *disp_at = e.own_items;
        let t = e.time_ns;
        match e.route {
            Route::NotIp(rec) => {
                self.apply.not_ip(&rec)?;
                self.apply.apply(disp.by_ref().take(tick + own), t)?;
                self.ticks(e.index, t)
            }
            Route::Worker(w) => {
                let rec = self.workers.get_mut(w).and_then(|c| c.records.next());
                let rec =
                    rec.ok_or_else(|| MergeError::OutOfStep(format!("worker {w} lost record {}", e.index)))?;
                self.apply.wait_for_verdict(rec);
                self.apply.apply(disp.by_ref().take(tick), t)?;
                self.ticks(e.index, t)?;
                self.apply.apply(disp.by_ref().take(own), t)?;
                self.own_piece(w, e.index, t)
            }
            Route::Fragment { record, done_by } => {
                self.apply.wait_for_verdict(*record);
                self.apply.apply(disp.by_ref().take(tick), t)?;
                self.ticks(e.index, t)?;
                self.apply.apply(disp.by_ref().take(own), t)?;
                match done_by {
                    Some(w) => self.own_piece(w, e.index, t),
                    None => Ok(()),
                }
            }
        }
    }

    /// The end of input: the dispatcher's last items (held fragments), then
    /// every flow the workers still had, in flow order, then leftovers.
    pub(super) fn end(&mut self, items: Vec<Emitted>, last_time_ns: u64) -> Result<(), MergeError> {
        self.apply.apply(items, last_time_ns)?;
        self.ticks(END, last_time_ns)?;
        for w in 0..self.workers.len() {
            while self.workers[w].peek(0).is_some_and(|p| p.index == END) {
                self.piece(w, last_time_ns)?;
            }
        }
        self.alerts.flush();
        Ok(())
    }

    /// The flows retired before record `index` (or at the end), from every
    /// worker, in flow-id order.
    fn ticks(&mut self, index: u64, time_ns: u64) -> Result<(), MergeError> {
        let mut order: Vec<(u64, usize)> = Vec::new();
        for (w, c) in self.workers.iter().enumerate() {
            let mut k = 0;
            while let Some(Piece { index: i, flow: Some(f), .. }) = c.peek(k) {
                if *i != index {
                    break;
                }
                order.push((*f, w));
                k += 1;
            }
        }
        // Stable: one worker's pieces stay in their order.
        order.sort_by_key(|(flow, _)| *flow);
        for (_, w) in order {
            self.piece(w, time_ns)?;
        }
        Ok(())
    }

    /// Worker `w`'s piece for record `index`'s own packet.
    fn own_piece(&mut self, w: usize, index: u64, time_ns: u64) -> Result<(), MergeError> {
        match self.workers.get(w).and_then(|c| c.peek(0)) {
            Some(p) if p.index == index && p.flow.is_none() => self.piece(w, time_ns),
            other => {
                Err(MergeError::OutOfStep(format!("worker {w}: expected record {index}, got {other:?}")))
            }
        }
    }

    /// Applies worker `w`'s next piece: its items, alert lines (with the
    /// lines its rules printed where they came), log lines (with its rule
    /// errors logged where they came) and stream bytes.
    fn piece(&mut self, w: usize, time_ns: u64) -> Result<(), MergeError> {
        let Some(c) = self.workers.get_mut(w) else { return Ok(()) };
        let Some(p) = c.pieces.get(c.next).copied() else { return Ok(()) };
        c.next += 1;
        let from = c.at;
        c.at = p;
        self.apply.apply(c.items.by_ref().take(p.items - from.items), time_ns)?;
        interleave(
            &c.alerts[..p.alerts],
            from.alerts,
            c.prints.by_ref().take(p.prints - from.prints),
            |lines| self.alerts.write(lines),
            |line| print_to_stdout(&line),
        );
        interleave(
            &c.logs[..p.logs],
            from.logs,
            c.errors.by_ref().take(p.errors - from.errors),
            |lines| {
                let _ = io::stderr().write_all(lines);
            },
            |line| self.errors.log(&line),
        );
        if p.dump > from.dump {
            let events = c.dump.by_ref().take(p.dump - from.dump);
            match self.dump.as_mut() {
                Some(d) => dump_tap::play(d, events),
                None => events.for_each(drop),
            }
        }
        Ok(())
    }

    /// Flushes what is buffered between batches.
    pub(super) fn flush(&mut self) {
        self.alerts.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_renumbered_in_merge_order() {
        assert_eq!(renumber(b"{\"id\":1,\"time\":2.5}\n", 42).unwrap(), b"{\"id\":42,\"time\":2.5}\n");
        assert_eq!(renumber(b"{\"time\":1}\n", 3), None);
        let buf = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        struct W(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut a = AlertOut::new(Box::new(W(buf.clone())));
        a.write(b"{\"id\":1,\"x\":1}\n{\"id\":2,\"x\":2}\n");
        a.write(b"{\"id\":1,\"x\":3}\n");
        assert_eq!(&buf.lock()[..], b"{\"id\":1,\"x\":1}\n{\"id\":2,\"x\":2}\n{\"id\":3,\"x\":3}\n");
    }
}
