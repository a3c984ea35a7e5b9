//! The netns suite's live connections: the crafted client drives the
//! connection after the handshake packet by packet, reading the server's
//! answers (the window it really advertised) in between. The catalogue
//! (`tests/fidelity/catalogue_netns.rs`) names each by a [`Live`] and holds
//! what the server must read.

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use crate::catalogue::{Live, QUEUED};
use crate::netns::crafted::{self, Answer, CraftedClient};
use crate::STEP;
use sluice::flow::Direction::Up;
use sluice::pcapgen::Conversation;
use sluice::wire::{tcp_flags::*, SeqNumber};

/// The largest TCP payload of one crafted IPv4 packet (MTU 1500).
const MAX_PAYLOAD: u32 = 1460;

/// Bounds the rounds of [`zero_window`]'s filling.
const FILL_ROUNDS: usize = 32;

/// Drives the live connection `live`.
pub(crate) fn play(live: Live, s: &mut Session) -> io::Result<()> {
    match live {
        Live::OutOfWindow => out_of_window(s),
        Live::Straddle => straddle(s),
        Live::StraddleQueued { then } => straddle_queued(s, b"harmless!!", then),
        Live::Edge => edge(s),
        Live::ZeroWindow => zero_window(s),
    }
}

/// A live connection after the handshake: the crafted client, a builder for
/// its packets and what the script sent.
pub(crate) struct Session<'a> {
    pub(crate) cc: &'a mut CraftedClient,
    pub(crate) c: Conversation,
    /// The client's next new sequence number.
    pub(crate) next: SeqNumber,
    /// The filler the script sent ahead of the case's own bytes.
    pub(crate) fill: Vec<u8>,
    /// Lets a held server application ([`Netns::hold_reads`](crate::catalogue::Netns::hold_reads)) read.
    pub(crate) release: Option<mpsc::Sender<()>>,
}

impl Session<'_> {
    /// Sends one segment, then lets [`STEP`] pass.
    fn segment(&mut self, seq: SeqNumber, flags: u8, payload: &[u8]) -> io::Result<()> {
        let p = self.c.build(Up, seq, flags, &[], payload);
        self.cc.send(&p)?;
        self.cc.pause(STEP);
        Ok(())
    }

    /// In-order data at the next sequence number.
    fn data(&mut self, payload: &[u8]) -> io::Result<()> {
        let seq = self.next;
        self.next = seq + payload.len() as u32;
        self.segment(seq, ACK | PSH, payload)
    }

    /// The bytes from the next sequence number to the right edge of the
    /// window the server advertised last, and that advertisement.
    fn room(&mut self) -> io::Result<(u32, Answer)> {
        let (edge, a) = self.cc.right_edge().ok_or_else(|| io::Error::other("no answer from the server"))?;
        Ok((edge.distance_from(self.next).unwrap_or(0), a))
    }

    /// [`Session::room`], which must be at least `least` bytes, and leave
    /// `beyond` more in one packet.
    fn room_for(&mut self, least: u32, beyond: u32) -> io::Result<u32> {
        let (room, a) = self.room()?;
        if room < least || room + beyond > MAX_PAYLOAD {
            return Err(io::Error::other(format!(
                "the server's window ({room} bytes from the next byte, advertised in {a:?}) is not between \
                 {least} and {} bytes",
                MAX_PAYLOAD - beyond
            )));
        }
        self.cc.note(format!("room: {room} bytes up to the right edge"));
        Ok(room)
    }

    /// One segment that ends `in_window` bytes of `tail` at the right edge
    /// `room` bytes ahead: filler (kept as `fill`) up to there, then `tail`.
    fn up_to_edge(&mut self, room: u32, in_window: usize, tail: &[u8]) -> Vec<u8> {
        self.fill = vec![b'.'; room as usize - in_window];
        let mut seg = self.fill.clone();
        seg.extend_from_slice(tail);
        seg
    }

    /// Waits (bounded) until the server acknowledged everything sent, or
    /// reset; the answer.
    fn acked(&mut self) -> Option<Answer> {
        let next = self.next;
        self.cc.wait_for_ack(next, crafted::ANSWER_TIMEOUT)
    }

    /// Waits (bounded) until the server acknowledged everything sent with
    /// an open window (its application has read), or reset.
    fn open(&mut self) -> Option<Answer> {
        let next = self.next;
        let a = self.cc.wait_for_open(next, crafted::ANSWER_TIMEOUT);
        if a.is_none() {
            self.cc.note(format!("no open window at {next}"));
        }
        a
    }

    /// FIN once the window is open, sent again (at most three times in all)
    /// until the server acknowledges it or resets: a FIN that finds the
    /// window closed may be discarded like data, and the crafted client has
    /// no retransmission timer.
    fn fin(&mut self) -> io::Result<()> {
        self.open();
        let seq = self.next;
        self.next = seq + 1;
        for _ in 0..3 {
            self.segment(seq, FIN | ACK, b"")?;
            let next = self.next;
            if self.cc.wait_for_ack(next, Duration::from_millis(700)).is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Lets the held server application read.
    pub(crate) fn release_reads(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
            self.cc.note("server application released".to_string());
        }
    }
}

/// One segment from the first byte, W + 3 bytes long: `attac` ends at the
/// right edge, `k!!` lies beyond it.
fn out_of_window(s: &mut Session) -> io::Result<()> {
    let room = s.room_for(5, 3)?;
    let seg = s.up_to_edge(room, 5, b"attack!!");
    s.data(&seg)?;
    s.fin()
}

/// The straddling segment with harmless bytes (`harml` in the window,
/// `ess!!` beyond), then, once the server acknowledged it, the same segment
/// again.
fn straddle(s: &mut Session) -> io::Result<()> {
    let room = s.room_for(5, 5)?;
    let seg = s.up_to_edge(room, 5, b"harmless!!");
    let seq = s.next;
    s.data(&seg)?;
    s.acked();
    s.segment(seq, ACK | PSH, &seg)?;
    s.fin()
}

/// Sends [`QUEUED`] (acknowledged, unread), then `first`: filler up to the
/// right edge and `first`'s last 5 bytes inside the window, the rest beyond.
/// Linux 6.17+ drops such a segment whole when its receive queue is not
/// empty (tcp_sequence: it ends beyond the window), where an empty queue
/// would have taken it whole; the script fails if the server acknowledges
/// it. Once the application has read and the window is open, sends `then`
/// (as long as `first`) at the same place, and FIN. [`QUEUED`] and the
/// filler are kept as `fill`: what the application reads first.
fn straddle_queued(s: &mut Session, first: &[u8], then: &[u8]) -> io::Result<()> {
    s.data(&QUEUED)?;
    if s.acked().is_none() {
        return Err(io::Error::other("the server did not acknowledge the queued bytes"));
    }
    let room = s.room_for(5, first.len() as u32 - 5)?;
    let seg = s.up_to_edge(room, 5, first);
    let mut fill = QUEUED.to_vec();
    fill.extend_from_slice(&s.fill);
    s.fill = fill;
    let seq = s.next;
    s.data(&seg)?;
    let end = s.next;
    if let Some(a) = s.cc.wait_for_ack(end, Duration::from_millis(300)) {
        return Err(io::Error::other(format!(
            "the server took the straddling segment although its queue was not empty: {a:?}"
        )));
    }
    s.release_reads();
    if s.cc.wait_for_open(seq, crafted::ANSWER_TIMEOUT).is_none() {
        return Err(io::Error::other("no window update once the application read"));
    }
    let mut again = seg[..seg.len() - then.len()].to_vec();
    again.extend_from_slice(then);
    s.segment(seq, ACK | PSH, &again)?;
    s.fin()
}

/// `ack` out of order, starting exactly at the right edge (the first
/// byte plus W); then the W bytes before it (filler, then `att`); once they are
/// acknowledged, `une` at the same place.
fn edge(s: &mut Session) -> io::Result<()> {
    let room = s.room_for(3, 0)?;
    let edge = s.next + room;
    s.segment(edge, ACK | PSH, b"ack")?;
    let seg = s.up_to_edge(room, 3, b"att");
    s.data(&seg)?;
    // `une` once the application has read (a window is open).
    s.open();
    s.data(b"une")?;
    s.fin()
}

/// The server application does not read: the client fills the window
/// (each segment up to the right edge last advertised, ending in `att`)
/// until the server acknowledges everything with a zero window. Then `ack`
/// at rcv_nxt, into the closed window; the application then reads, and once
/// the server advertises an open window, `une` goes at the same place.
fn zero_window(s: &mut Session) -> io::Result<()> {
    let mut closed = false;
    for _ in 0..FILL_ROUNDS {
        let (room, a) = s.room()?;
        if room == 0 {
            closed = a.ack == s.next && a.window == 0;
            if closed {
                break;
            }
            return Err(io::Error::other(format!("no room, but the window is not closed: {a:?}")));
        }
        let n = room.clamp(3, MAX_PAYLOAD - 60) as usize;
        let mut seg = vec![b'.'; n - 3];
        seg.extend_from_slice(b"att");
        s.fill.extend_from_slice(&seg);
        s.data(&seg)?;
        if s.acked().is_none() {
            return Err(io::Error::other("the server did not acknowledge the filler"));
        }
    }
    if !closed {
        return Err(io::Error::other("the server's window did not close"));
    }
    let at = s.next;
    s.segment(at, ACK | PSH, b"ack")?;
    s.cc.pause(Duration::from_millis(100));
    s.release_reads();
    // The window update once the application has read.
    s.open();
    s.data(b"une")?;
    s.fin()
}
