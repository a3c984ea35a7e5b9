//! `--dump-streams DIR`: writes, for every TCP connection and direction, the
//! exact bytes delivered to rules, one file each, plus `DIR/index.jsonl`.
//!
//! It is an [`Inspector`] wrapper: it subscribes to `receive_data`, appends
//! the bytes to the connection's file, then hands them to the wrapped
//! inspector (the rules) if that one wants them. Everything else passes
//! through. Because it sits exactly where rules sit, the files hold what
//! rules saw, in the order they saw it.
//!
//! Connections that delivered no data in either direction get no files; a
//! connection with data gets both files (the quiet direction's is empty) and
//! two index lines. Numbers (`conn`) count connections from 1 in the order
//! their first byte was delivered; index lines are in that order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::flow::Direction;
use crate::inspect::{Action, Context, Event, FlowInfo, Inspector};
use crate::wire::Decoded;

/// Files kept open at once; older ones are closed and reopened in append
/// mode when written again, so huge captures do not run out of descriptors.
pub const MAX_OPEN_FILES: usize = 256;

/// One connection being dumped.
#[derive(Debug)]
struct Conn {
    number: u64,
    flow: FlowInfo,
    bytes: [u64; 2],
    /// Whether the direction's file exists yet (created on first write).
    created: [bool; 2],
    /// `--passive` gaps per direction: (stream offset, length, file offset).
    gaps: [Vec<(u64, u64, u64)>; 2],
}

/// What a dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Connections dumped.
    pub connections: u64,
    /// Bytes written to stream files.
    pub bytes: u64,
}

/// The stream-dumping inspector wrapper.
pub struct StreamDump<I: Inspector> {
    inner: I,
    dir: PathBuf,
    /// Live connections by engine flow id.
    conns: HashMap<u64, Conn>,
    next_number: u64,
    open: HashMap<(u64, usize), File>,
    /// Open files, oldest first (for closing when over the limit).
    open_order: VecDeque<(u64, usize)>,
    /// Finished connections' index lines waiting for every earlier
    /// connection to finish, so the index stays in `conn` order.
    pending_index: BTreeMap<u64, [String; 2]>,
    next_index_number: u64,
    index: BufWriter<File>,
    summary: DumpSummary,
    error: Option<io::Error>,
}

/// The file name for one direction of connection `number`.
pub fn file_name(number: u64, dir: Direction) -> String {
    format!("conn-{number:06}-{}.bin", dir.name())
}

/// True for a name sluice's dump gives a stream file: `conn-`, six or more
/// digits, `-up.bin` or `-down.bin`.
fn is_stream_file_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("conn-") else { return false };
    let Some(number) = rest.strip_suffix("-up.bin").or_else(|| rest.strip_suffix("-down.bin")) else {
        return false;
    };
    number.len() >= 6 && number.bytes().all(|b| b.is_ascii_digit())
}

/// Removes the stream files of an earlier dump from `dir`; returns how many.
fn remove_earlier_dump(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_ours = entry.file_name().to_str().is_some_and(is_stream_file_name);
        if is_ours && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl<I: Inspector> StreamDump<I> {
    /// Wraps `inner`, writing into `dir` (created if missing). An earlier
    /// dump in `dir` is replaced: its stream files (`conn-*-up.bin`,
    /// `conn-*-down.bin`) are removed and `index.jsonl` is rewritten; any
    /// other file is left alone.
    pub fn new(inner: I, dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let removed = remove_earlier_dump(dir)?;
        if removed > 0 {
            tracing::info!("{}: replaced an earlier dump ({removed} stream files removed)", dir.display());
        }
        let index = BufWriter::new(File::create(dir.join("index.jsonl"))?);
        Ok(StreamDump {
            inner,
            dir: dir.to_path_buf(),
            conns: HashMap::new(),
            next_number: 1,
            open: HashMap::new(),
            open_order: VecDeque::new(),
            pending_index: BTreeMap::new(),
            next_index_number: 1,
            index,
            summary: DumpSummary::default(),
            error: None,
        })
    }

    /// The wrapped inspector.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    fn note(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if self.error.is_none() {
                tracing::warn!("stream dump in {}: {e}", self.dir.display());
                self.error = Some(e);
            }
        }
    }

    fn append(&mut self, flow_id: u64, dir: usize, data: &[u8]) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&flow_id) else { return Ok(()) };
        let key = (flow_id, dir);
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN_FILES {
                if let Some(old) = self.open_order.pop_front() {
                    self.open.remove(&old);
                }
            }
            let path =
                self.dir.join(file_name(conn.number, if dir == 0 { Direction::Up } else { Direction::Down }));
            let file = if conn.created[dir] {
                OpenOptions::new().append(true).open(path)?
            } else {
                File::create(path)?
            };
            conn.created[dir] = true;
            self.open.insert(key, file);
            self.open_order.push_back(key);
        }
        conn.bytes[dir] += data.len() as u64;
        self.summary.bytes += data.len() as u64;
        match self.open.get_mut(&key) {
            Some(f) => f.write_all(data),
            None => Ok(()),
        }
    }

    /// Numbers a connection on its first byte or gap.
    fn open_conn(&mut self, flow: &FlowInfo) {
        if self.conns.contains_key(&flow.id) {
            return;
        }
        let number = self.next_number;
        self.next_number += 1;
        self.summary.connections += 1;
        let conn = Conn {
            number,
            flow: flow.clone(),
            bytes: [0, 0],
            created: [false, false],
            gaps: [Vec::new(), Vec::new()],
        };
        self.conns.insert(flow.id, conn);
    }

    /// Closes a connection's files and queues its index lines.
    fn close_conn(&mut self, flow_id: u64) -> io::Result<()> {
        let Some(conn) = self.conns.remove(&flow_id) else { return Ok(()) };
        for d in 0..2 {
            if self.open.remove(&(flow_id, d)).is_some() {
                self.open_order.retain(|k| *k != (flow_id, d));
            }
        }
        let mut lines = [String::new(), String::new()];
        for (d, dir) in [Direction::Up, Direction::Down].into_iter().enumerate() {
            let name = file_name(conn.number, dir);
            if !conn.created[d] {
                File::create(self.dir.join(&name))?;
            }
            let mut line = json!({
                "conn": conn.number,
                "src": conn.flow.src.to_string(),
                "sport": conn.flow.src_port,
                "dst": conn.flow.dst.to_string(),
                "dport": conn.flow.dst_port,
                "dir": dir.name(),
                "file": name,
                "bytes": conn.bytes[d],
            });
            // Only `--passive` has gaps; the key is left out when there are none.
            if !conn.gaps[d].is_empty() {
                line["gaps"] = conn.gaps[d]
                    .iter()
                    .map(|(offset, len, file_offset)| {
                        json!({"offset": offset, "len": len, "file_offset": file_offset})
                    })
                    .collect();
            }
            lines[d] = line.to_string();
        }
        self.pending_index.insert(conn.number, lines);
        while let Some(lines) = self.pending_index.remove(&self.next_index_number) {
            for l in lines {
                writeln!(self.index, "{l}")?;
            }
            self.next_index_number += 1;
        }
        Ok(())
    }

    /// Ends the dump: closes every connection still live (in `conn` order),
    /// writes the rest of the index and reports the first write error.
    pub fn finish(&mut self) -> io::Result<DumpSummary> {
        let mut live: Vec<(u64, u64)> = self.conns.iter().map(|(id, c)| (c.number, *id)).collect();
        live.sort_unstable();
        for (_, id) in live {
            let r = self.close_conn(id);
            self.note(r);
        }
        // Numbers whose connection never finished cannot exist here (all are
        // closed above), so the pending map is empty; flush anyway.
        let rest = std::mem::take(&mut self.pending_index);
        for lines in rest.into_values() {
            for l in lines {
                let r = writeln!(self.index, "{l}");
                self.note(r);
            }
        }
        let r = self.index.flush();
        self.note(r);
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.summary.clone()),
        }
    }
}

impl<I: Inspector> Inspector for StreamDump<I> {
    fn subscribed(&self, event: Event) -> bool {
        event == Event::TcpData || self.inner.subscribed(event)
    }

    fn packet(
        &mut self,
        event: Event,
        ctx: &Context,
        pkt: &Decoded<'_>,
        flow: Option<(&FlowInfo, Direction)>,
    ) -> Action {
        self.inner.packet(event, ctx, pkt, flow)
    }

    fn data(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, data: &[u8]) -> Action {
        self.open_conn(flow);
        let r = self.append(flow.id, dir.index(), data);
        self.note(r);
        if self.inner.subscribed(Event::TcpData) {
            self.inner.data(ctx, flow, dir, data)
        } else {
            Action::Accept
        }
    }

    fn gap(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction, offset: u64, len: u64) -> Action {
        self.open_conn(flow);
        if let Some(conn) = self.conns.get_mut(&flow.id) {
            let d = dir.index();
            conn.gaps[d].push((offset, len, conn.bytes[d]));
        }
        self.inner.gap(ctx, flow, dir, offset, len)
    }

    fn stream_end(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.inner.stream_end(ctx, flow, dir)
    }

    fn depth_reached(&mut self, ctx: &Context, flow: &FlowInfo, dir: Direction) -> Action {
        self.inner.depth_reached(ctx, flow, dir)
    }

    fn end(&mut self, event: Event, ctx: &Context, flow: &FlowInfo) {
        self.inner.end(event, ctx, flow);
    }

    fn forget(&mut self, flow_id: u64) {
        let r = self.close_conn(flow_id);
        self.note(r);
        self.inner.forget(flow_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::L4Proto;
    use crate::inspect::NoRules;
    use crate::time::Timestamp;

    /// Resets on "attack" so we can check the action is passed back.
    struct Inner;
    impl Inspector for Inner {
        fn subscribed(&self, e: Event) -> bool {
            e == Event::TcpData
        }
        fn packet(
            &mut self,
            _: Event,
            _: &Context,
            _: &Decoded<'_>,
            _: Option<(&FlowInfo, Direction)>,
        ) -> Action {
            Action::Accept
        }
        fn data(&mut self, _: &Context, _: &FlowInfo, _: Direction, d: &[u8]) -> Action {
            if d.windows(6).any(|w| w == b"attack") {
                Action::Reset
            } else {
                Action::Accept
            }
        }
        fn end(&mut self, _: Event, _: &Context, _: &FlowInfo) {}
        fn stream_end(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
            Action::Accept
        }
        fn gap(&mut self, _: &Context, _: &FlowInfo, _: Direction, _: u64, _: u64) -> Action {
            Action::Accept
        }
        fn depth_reached(&mut self, _: &Context, _: &FlowInfo, _: Direction) -> Action {
            Action::Accept
        }
        fn forget(&mut self, _: u64) {}
    }

    fn flow(id: u64, port: u16) -> FlowInfo {
        FlowInfo {
            id,
            proto: L4Proto::Tcp,
            src: "10.0.0.1".parse().unwrap(),
            src_port: port,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 80,
        }
    }

    #[test]
    fn dumps_bytes_per_direction_with_index_in_conn_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = StreamDump::new(Inner, tmp.path()).unwrap();
        let ctx = Context { time: Timestamp(0) };
        let (a, b) = (flow(7, 1000), flow(3, 2000));
        assert_eq!(d.data(&ctx, &a, Direction::Up, b"GET /"), Action::Accept);
        assert_eq!(d.data(&ctx, &b, Direction::Down, b"hi"), Action::Accept);
        assert_eq!(d.data(&ctx, &a, Direction::Up, b" HTTP/1.0 attack"), Action::Reset, "inner action kept");
        // b (conn 2) ends first; its lines wait for conn 1.
        d.forget(3);
        assert_eq!(std::fs::read_to_string(tmp.path().join("index.jsonl")).unwrap_or_default(), "");
        let summary = d.finish().unwrap();
        assert_eq!(summary, DumpSummary { connections: 2, bytes: 23 });
        let read = |n: &str| std::fs::read(tmp.path().join(n)).unwrap();
        assert_eq!(read("conn-000001-up.bin"), b"GET / HTTP/1.0 attack");
        assert_eq!(read("conn-000001-down.bin"), b"");
        assert_eq!(read("conn-000002-down.bin"), b"hi");
        let index = std::fs::read_to_string(tmp.path().join("index.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = index.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["conn"], 1);
        assert_eq!(lines[0]["dir"], "up");
        assert_eq!(lines[0]["bytes"], 21);
        assert_eq!(lines[0]["sport"], 1000);
        assert_eq!(lines[0]["src"], "10.0.0.1");
        assert_eq!(lines[3]["conn"], 2);
        assert_eq!(lines[3]["file"], "conn-000002-down.bin");
        assert_eq!(lines[3]["bytes"], 2);
    }

    #[test]
    fn an_earlier_dump_is_replaced_and_other_files_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |n: &str| tmp.path().join(n);
        for (name, text) in [
            ("conn-000007-up.bin", "old"),
            ("conn-000007-down.bin", "old"),
            ("conn-1234567-up.bin", "old"),
            ("index.jsonl", "old index\n"),
            ("notes.txt", "mine"),
            ("conn-abc-up.bin", "mine"),
            ("conn-000001-up.bin.orig", "mine"),
        ] {
            std::fs::write(p(name), text).unwrap();
        }
        let mut d = StreamDump::new(NoRules, tmp.path()).unwrap();
        d.data(&Context { time: Timestamp(0) }, &flow(1, 1000), Direction::Up, b"new");
        d.finish().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "conn-000001-down.bin",
                "conn-000001-up.bin",
                "conn-000001-up.bin.orig",
                "conn-abc-up.bin",
                "index.jsonl",
                "notes.txt"
            ]
        );
        assert_eq!(std::fs::read_to_string(p("index.jsonl")).unwrap().lines().count(), 2);
        assert_eq!(std::fs::read(p("conn-000001-up.bin")).unwrap(), b"new");
    }

    #[test]
    fn more_connections_than_open_files_still_append_correctly() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = StreamDump::new(NoRules, tmp.path()).unwrap();
        assert!(d.subscribed(Event::TcpData) && !d.subscribed(Event::TcpPacket));
        let ctx = Context { time: Timestamp(0) };
        let n = MAX_OPEN_FILES as u64 + 50;
        for round in 0..3u8 {
            for id in 0..n {
                d.data(&ctx, &flow(id, id as u16), Direction::Up, &[round]);
            }
        }
        assert!(d.open.len() <= MAX_OPEN_FILES);
        d.finish().unwrap();
        for number in [1, n / 2, n] {
            let bytes = std::fs::read(tmp.path().join(file_name(number, Direction::Up))).unwrap();
            assert_eq!(bytes, vec![0, 1, 2], "conn {number}");
        }
    }
}
