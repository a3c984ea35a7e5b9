//! The netns fidelity suite's case catalogue: each adversarial case and its
//! benign twin, crafted with the builders shared with the offline suite
//! (`tests/fidelity/craft.rs`).

use super::*;

pub(super) fn segmented_bytewise() -> Case {
    attack(
        "segmented-bytewise",
        |c| {
            for b in b"an attack, bytewise" {
                c.data(Up, &[*b]);
            }
            c.fin(Up);
        },
        (b"an attack, bytewise", ReadEnd::Eof),
        // The packet carrying the final `k` is dropped; sluice resets.
        (b"an attac", ReadEnd::Reset),
    )
}

pub(super) fn segmented_bytewise_benign() -> Case {
    benign(
        "segmented-bytewise-benign",
        |c| {
            for b in b"harmless bytes" {
                c.data(Up, &[*b]);
            }
            c.fin(Up);
        },
        (b"harmless bytes", ReadEnd::Eof),
    )
    .zero(&["drop_rule"])
}

pub(super) fn reordered() -> Case {
    attack(
        "reordered",
        |c| {
            let b = base(c);
            c.segment(Up, b + 3, ACK | PSH, b"ack!").segment(Up, b, ACK | PSH, b"att");
            fin_at(c, b + 7);
        },
        (b"attack!", ReadEnd::Eof),
        // The gap-closing packet carries the verdict for the held island.
        (b"", ReadEnd::Reset),
    )
    .counters(&["tcp_out_of_order_segments"])
}

pub(super) fn duplicated() -> Case {
    attack(
        "duplicated",
        |c| {
            let b = base(c);
            c.data(Up, b"att").segment(Up, b, ACK | PSH, b"att").data(Up, b"ack");
            c.fin(Up);
        },
        (b"attack", ReadEnd::Eof),
        (b"att", ReadEnd::Reset),
    )
    .counters(&["tcp_retransmissions"])
}

pub(super) fn reordered_duplicated_benign() -> Case {
    benign(
        "reordered-duplicated-benign",
        |c| {
            let b = base(c);
            c.segment(Up, b + 3, ACK | PSH, b"ing!").segment(Up, b + 3, ACK | PSH, b"ing!");
            c.segment(Up, b, ACK | PSH, b"sor");
            fin_at(c, b + 7);
        },
        (b"soring!", ReadEnd::Eof),
    )
    .counters(&["tcp_out_of_order_segments"])
    .zero(&["drop_tcp_overlap_conflict"])
}

pub(super) fn ooo_overlap_first_copy() -> Case {
    // Linux keeps the first of two out-of-order copies of the same range
    // (tcp_data_queue_ofo: "all the bits are present, drop").
    attack(
        "ooo-overlap-first-copy",
        |c| {
            let b = base(c);
            c.segment(Up, b + 3, ACK | PSH, b"ack").segment(Up, b + 3, ACK | PSH, b"ume");
            c.segment(Up, b, ACK | PSH, b"att");
            fin_at(c, b + 6);
        },
        (b"attack", ReadEnd::Eof),
        // `ume` is refused; the recorded `ack` completes the pattern.
        (b"", ReadEnd::Reset),
    )
    .counters(&["drop_tcp_overlap_conflict"])
}

pub(super) fn ooo_overlap_later_copy() -> Case {
    // A later out-of-order segment at the same sequence number that covers an
    // earlier one replaces it in Linux's queue: Linux reads the later copy.
    attack(
        "ooo-overlap-later-copy",
        |c| {
            let b = base(c);
            c.segment(Up, b + 3, ACK | PSH, b"um").segment(Up, b + 3, ACK | PSH, b"ack");
            c.segment(Up, b, ACK | PSH, b"att");
            fin_at(c, b + 6);
        },
        (b"attack", ReadEnd::Eof),
        // `ack` is refused: the server reads the recorded copy, and the FIN
        // after the never-filled byte 5 never ends the stream.
        (b"attum", ReadEnd::Timeout),
    )
    .strict()
    .counters(&["drop_tcp_overlap_conflict"])
}

pub(super) fn retransmit_other_bytes_unacked() -> Case {
    // The server's pure ACKs are dropped inside the server namespace, so
    // sluice never sees "attune" acknowledged when the retransmission with
    // other bytes arrives. Linux discards the retransmission as old data;
    // sluice compares it with its record and refuses it. Passing the other
    // bytes to rules as new data would be a false reset (Reset, not EOF).
    let mut c = benign(
        "retransmit-other-bytes-unacked",
        |c| {
            let b = base(c);
            c.data(Up, b"attune").segment(Up, b + 3, ACK | PSH, b"ack");
            c.fin(Up);
        },
        (b"attune", ReadEnd::Eof),
    )
    .counters(&["drop_tcp_overlap_conflict"])
    .zero(&["drop_rule"]);
    c.server_acks_dropped = true;
    c
}

pub(super) fn retransmit_after_ack() -> Case {
    benign(
        "retransmit-after-ack",
        |c| {
            let b = base(c);
            // `send` waits for the server's ACK of "attune".
            c.send(Up, b"attune").segment(Up, b + 3, ACK | PSH, b"ack");
            c.fin(Up);
        },
        (b"attune", ReadEnd::Eof),
    )
    // Acknowledged bytes are released: accepted without comparison.
    .zero(&["drop_tcp_overlap_conflict", "drop_rule"])
}

pub(super) fn bad_checksum() -> Case {
    attack(
        "bad-checksum",
        |c| {
            let b = base(c);
            c.data(Up, b"att");
            bad_checksum_segment(c, b + 3, b"une");
            c.data(Up, b"ack").fin(Up);
        },
        (b"attack", ReadEnd::Eof),
        (b"att", ReadEnd::Reset),
    )
    .counters(&["drop_bad_checksum"])
}

pub(super) fn bad_checksum_benign() -> Case {
    benign(
        "bad-checksum-benign",
        |c| {
            let b = base(c);
            c.data(Up, b"att");
            bad_checksum_segment(c, b + 3, b"ack");
            c.data(Up, b"une").fin(Up);
        },
        (b"attune", ReadEnd::Eof),
    )
    .counters(&["drop_bad_checksum"])
    .zero(&["drop_rule"])
}

pub(super) fn out_of_window_benign() -> Case {
    benign(
        "out-of-window-benign",
        |c| {
            let b = base(c);
            c.data(Up, b"att").segment(Up, b + 3 + 100_000_000, ACK | PSH, b"ack");
            c.data(Up, b"une").fin(Up);
        },
        (b"attune", ReadEnd::Eof),
    )
    .counters(&["drop_tcp_out_of_window"])
}

pub(super) fn no_ack_flag_benign() -> Case {
    benign(
        "no-ack-flag-benign",
        |c| {
            let b = base(c);
            c.data(Up, b"att").segment(Up, b + 3, PSH, b"ack");
            c.data(Up, b"une").fin(Up);
        },
        (b"attune", ReadEnd::Eof),
    )
    .counters(&["drop_tcp_bad_flags"])
}

pub(super) fn fake_rst() -> Case {
    // An RST inside the window but not at rcv_nxt: Linux answers with a
    // challenge ACK and goes on (RFC 5961).
    attack(
        "fake-rst",
        |c| {
            let b = base(c);
            c.data(Up, b"att").segment(Up, b + 1000, RST, b"");
            c.data(Up, b"ack").fin(Up);
        },
        (b"attack", ReadEnd::Eof),
        (b"att", ReadEnd::Reset),
    )
    .counters(&["drop_tcp_bad_rst"])
}

pub(super) fn real_rst_benign() -> Case {
    benign(
        "real-rst-benign",
        |c| {
            c.data(Up, b"att").rst(Up).data(Up, b"ack");
        },
        (b"att", ReadEnd::Reset),
    )
    .counters(&["drop_tcp_closed"])
    .zero(&["drop_rule"])
}

pub(super) fn urgent() -> Case {
    // Urgent pointer 1: the urgent byte is `X`. Without SO_OOBINLINE Linux's
    // read() skips it; sluice clears URG, so the application reads every
    // byte, as rules saw them.
    attack(
        "urgent",
        |c| {
            let b = base(c);
            c.data(Up, b"att");
            urgent_segment(c, b + 3, 1, b"Xack");
            fin_at(c, b + 7);
        },
        (b"attack", ReadEnd::Eof),
        (b"attXack", ReadEnd::Eof),
    )
    .strict()
    .counters(&["tcp_urgent_cleared", "packets_modified"])
    .zero(&["drop_rule"])
}

const FRAGMENTED: &[u8] = b"........attack........";

pub(super) fn fragments() -> Case {
    attack(
        "fragments",
        |c| {
            let b = base(c);
            let whole = c.build(Up, b, ACK | PSH, &[], FRAGMENTED);
            for f in fragment(&whole, &[24, 16], 99) {
                c.push(f);
            }
            fin_at(c, b + FRAGMENTED.len() as u32);
        },
        (FRAGMENTED, ReadEnd::Eof),
        (b"", ReadEnd::Reset),
    )
    .counters(&["ip_datagrams_reassembled"])
}

pub(super) fn fragments_overlap_evil_first() -> Case {
    // Linux discards a later fragment with exactly the same offset and length
    // as a held one (inet_frag_queue_insert: IPFRAG_DUP) and keeps the
    // first: here it reads the attack. (Partially overlapping fragments make
    // Linux drop the whole datagram, RFC 5722, so they prove nothing.)
    attack(
        "fragments-overlap-evil-first",
        |c| overlapping_fragments(c, true),
        (OVERLAP_EVIL, ReadEnd::Eof),
        // sluice drops the datagram; the benign retransmission is read.
        (OVERLAP_GOOD, ReadEnd::Eof),
    )
    .strict()
    .counters(&["drop_fragment_overlap"])
}

pub(super) fn fragments_overlap_good_first() -> Case {
    // The other order: Linux keeps the benign first copy, sluice still drops
    // the datagram (it never guesses the endpoint's policy).
    benign("fragments-overlap-good-first", |c| overlapping_fragments(c, false), (OVERLAP_GOOD, ReadEnd::Eof))
        .strict()
        .counters(&["drop_fragment_overlap"])
}

pub(super) fn ipv6_reordered() -> Case {
    let mut c = reordered();
    c.name = "ipv6-reordered";
    c.v6()
}

const FRAGMENTED6: &[u8] = b"v6 attack in pieces, and some more";

pub(super) fn ipv6_fragments() -> Case {
    attack(
        "ipv6-fragments",
        |c| {
            let b = base(c);
            let whole = c.build(Up, b, ACK | PSH, &[], FRAGMENTED6);
            // The first fragment holds the whole TCP header (RFC 8200:
            // Linux discards a first fragment without the upper-layer header).
            for f in fragment(&whole, &[32, 8], 5) {
                c.push(f);
            }
            fin_at(c, b + FRAGMENTED6.len() as u32);
        },
        (FRAGMENTED6, ReadEnd::Eof),
        (b"", ReadEnd::Reset),
    )
    .v6()
    .counters(&["ip_datagrams_reassembled"])
}

pub(super) fn sequence_wrap() -> Case {
    let mut c = attack(
        "sequence-wrap",
        |c| {
            // ISN 2^32 - 3: the data starts at 2^32 - 2, "att" spans the wrap.
            let b = base(c);
            c.segment(Up, b + 3, ACK | PSH, b"ack").segment(Up, b, ACK | PSH, b"att");
            fin_at(c, b + 6);
        },
        (b"attack", ReadEnd::Eof),
        (b"", ReadEnd::Reset),
    );
    c.conns[0].isn = u32::MAX - 2;
    c
}

/// In-order bytes sent before the window test, more than the SYN-ACK's
/// (unscaled) window, so only windows advertised later cover what follows.
const WINDOW_LEAD: usize = 70_000;
const WINDOW_GAP: usize = 2000;

pub(super) fn window_scaled_benign() -> Case {
    // The server's ACKs carry a window field of about 63, scaled by 2^10 or
    // so. After 70,000 acknowledged bytes the SYN-ACK's window (64,240, never
    // scaled) no longer covers anything; a segment 2000 bytes ahead of the
    // acknowledged point is then inside the receive window only if the
    // scale is applied to the later window fields.
    let lead = WINDOW_LEAD + WINDOW_GAP;
    let mut read = vec![b'.'; lead];
    read.extend_from_slice(b"tail");
    let read: &'static [u8] = Box::leak(read.into_boxed_slice());
    benign(
        "window-scaled-benign",
        |c| {
            let chunk = [b'.'; 1400];
            for _ in 0..WINDOW_LEAD / chunk.len() {
                c.data(Up, &chunk);
            }
            // Wait for the server's ACK of all of it.
            c.ack(sluice::flow::Direction::Down);
            let b = base(c);
            c.segment(Up, b + WINDOW_GAP as u32, ACK | PSH, b"tail");
            c.data(Up, &chunk[..WINDOW_GAP / 2]).data(Up, &chunk[..WINDOW_GAP / 2]);
            fin_at(c, b + WINDOW_GAP as u32 + 4);
        },
        (read, ReadEnd::Eof),
    )
    .step(Duration::from_millis(2))
    .counters(&["tcp_out_of_order_segments"])
    .zero(&["drop_tcp_out_of_window", "drop_rule"])
}

// The receive window's right edge. The server's listener has the smallest
// receive buffer, so its SYN-ACK grants W bytes, less than one full-sized
// segment; each live script reads W (or the edge of a later advertisement)
// from the server's answers and places its bytes relative to it, after
// W - n filler bytes.

pub(super) fn out_of_window() -> Case {
    // One segment from the first byte, W + 3 bytes long: `attac` ends at
    // the right edge, `k!!` lies beyond it. Linux takes a segment whose
    // first new byte is in the window whole (here its receive queue is
    // empty, which Linux 6.17+ also requires of a segment that ends beyond
    // the window): the application reads `attack!!`, a trimming endpoint
    // would read `attac`. So sluice must inspect all of it.
    live(
        "out-of-window",
        |s| {
            let room = s.room_for(5, 3)?;
            let seg = s.up_to_edge(room, 5, b"attack!!");
            s.data(&seg)?;
            s.fin()
        },
        (b"attack!!", ReadEnd::Eof),
        // The segment is dropped and both ends reset.
        (b"", ReadEnd::Reset),
    )
    .rcvbuf(SMALL_RCVBUF)
    .filled(true, false)
    .zero(&["drop_tcp_out_of_window"])
}

pub(super) fn out_of_window_straddle_benign() -> Case {
    // The same straddling segment with harmless bytes (`harml` in the
    // window, `ess!!` beyond), then, once the server acknowledged it, the
    // same segment again (what a sender does after a trimming endpoint's
    // ACK; Linux discards it as old data).
    live(
        "out-of-window-straddle-benign",
        |s| {
            let room = s.room_for(5, 5)?;
            let seg = s.up_to_edge(room, 5, b"harmless!!");
            let seq = s.next;
            s.data(&seg)?;
            s.acked();
            s.segment(seq, ACK | PSH, &seg)?;
            s.fin()
        },
        (b"harmless!!", ReadEnd::Eof),
        (b"harmless!!", ReadEnd::Eof),
    )
    .rcvbuf(SMALL_RCVBUF)
    .filled(true, true)
    .zero(&["drop_tcp_out_of_window", "drop_tcp_overlap_conflict", "drop_rule"])
}

/// Bytes the straddle-queued cases send first and the server application
/// leaves unread, so that its receive queue is not empty.
const QUEUED: [u8; 100] = [b'.'; 100];

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

pub(super) fn out_of_window_straddle_queued_benign() -> Case {
    // A straddling segment while the server's receive queue is not empty:
    // Linux drops it, sluice (which cannot see the queue) inspects and
    // records it. The sender's retransmission carries the same bytes, which
    // match the record and pass: the application reads what rules saw.
    live(
        "out-of-window-straddle-queued-benign",
        |s| straddle_queued(s, b"harmless!!", b"harmless!!"),
        (b"harmless!!", ReadEnd::Eof),
        (b"harmless!!", ReadEnd::Eof),
    )
    .rcvbuf(SMALL_RCVBUF)
    .hold_reads()
    .filled(true, true)
    .zero(&["drop_tcp_out_of_window", "drop_tcp_overlap_conflict", "drop_rule"])
}

pub(super) fn out_of_window_straddle_queued() -> Case {
    // The attack on that divergence: Linux dropped `harmless!!`, so other
    // bytes may take its place, and the application reads them; sluice
    // recorded `harmless!!` there and drops the different bytes, so the
    // stream stops after the queued bytes and the attack never arrives.
    live(
        "out-of-window-straddle-queued",
        |s| straddle_queued(s, b"harmless!!", b"attack!!!!"),
        (b"attack!!!!", ReadEnd::Eof),
        (&QUEUED, ReadEnd::Timeout),
    )
    .rcvbuf(SMALL_RCVBUF)
    .hold_reads()
    .filled(true, false)
    .counters(&["drop_tcp_overlap_conflict"])
    .zero(&["drop_rule"])
}

pub(super) fn out_of_window_edge_benign() -> Case {
    // `ack` out of order, starting exactly at the right edge (the first
    // byte + W); then the W bytes before it (filler, then `att`); once they
    // are acknowledged, `une` at the same place. Linux discards the
    // segment at the edge (it passes tcp_sequence, its first byte not
    // being after the edge and the receive queue empty; tcp_data_queue
    // drops it: TCP_OVERWINDOW) and reads `attune`; sluice must drop it
    // too (recorded, `att` would complete `attack` for rules: a false
    // reset).
    live(
        "out-of-window-edge-benign",
        |s| {
            let room = s.room_for(3, 0)?;
            let edge = s.next + room;
            s.segment(edge, ACK | PSH, b"ack")?;
            let seg = s.up_to_edge(room, 3, b"att");
            s.data(&seg)?;
            // `une` once the application has read (a window is open).
            s.open();
            s.data(b"une")?;
            s.fin()
        },
        (b"attune", ReadEnd::Eof),
        (b"attune", ReadEnd::Eof),
    )
    .rcvbuf(SMALL_RCVBUF)
    .filled(true, true)
    .counters(&["drop_tcp_out_of_window"])
    .zero(&["drop_rule"])
}

/// Bounds the rounds of [`zero_window_benign`]'s filling.
const FILL_ROUNDS: usize = 32;

pub(super) fn zero_window_benign() -> Case {
    // The server application does not read: the client fills the window
    // (each segment up to the right edge last advertised, ending in `att`)
    // until the server acknowledges everything with a zero window. Then
    // `ack` at rcv_nxt, into the closed window: Linux discards it (6.17+
    // in tcp_sequence, TCP_INVALID_END_SEQUENCE, counted as BeyondWindow:
    // it ends beyond the window and the unread receive queue is not empty;
    // earlier kernels in tcp_data_queue, TCP_ZEROWINDOW). The
    // application then reads; once the server
    // advertises an open window, `une` goes at the same place. The
    // application reads the filler, `att`, `une`; sluice must drop the
    // `ack` too (recorded, rules would see `attack`: a false reset).
    live(
        "zero-window-benign",
        |s| {
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
        },
        (b"une", ReadEnd::Eof),
        (b"une", ReadEnd::Eof),
    )
    .rcvbuf(SMALL_RCVBUF)
    .hold_reads()
    .filled(true, true)
    .counters(&["drop_tcp_out_of_window"])
    .zero(&["drop_rule"])
}

pub(super) fn syn_with_data() -> Case {
    // Linux without a TFO cookie ignores the SYN's data, so the client's
    // first data segment may carry other bytes at the same sequence numbers.
    let mut c = attack(
        "syn-with-data",
        |c| {
            let b = base(c);
            c.segment(Up, b, ACK | PSH, b"attack!!").segment(Up, b, ACK | PSH, b"harmless");
            fin_at(c, b + 8);
        },
        (b"attack!!", ReadEnd::Eof),
        // sluice recorded the SYN's bytes: the other bytes are refused, the
        // matching retransmission passes.
        (b"harmless", ReadEnd::Eof),
    )
    .strict()
    .counters(&["drop_tcp_overlap_conflict"]);
    c.conns[0].syn_payload = b"harmless";
    c
}

pub(super) fn reuse_after_reset() -> Case {
    Case::new(
        "reuse-after-reset",
        vec![
            conn(|c| {
                c.data(Up, b"first").rst(Up);
            }),
            Conn {
                isn: 900_000,
                syn_payload: b"",
                play: Play::Script(|c| {
                    c.data(Up, b"second attack").fin(Up);
                }),
            },
        ],
        vec![(b"first", ReadEnd::Reset), (b"second attack", ReadEnd::Eof)],
        vec![(b"first", ReadEnd::Reset), (b"", ReadEnd::Reset)],
    )
    .counters(&["drop_rule"])
}

pub(super) fn reuse_after_close() -> Case {
    Case::new(
        "reuse-after-close",
        vec![
            conn(|c| {
                // FIN, the server's ACK and FIN, the last ACK.
                c.data(Up, b"first").close();
            }),
            Conn {
                isn: 900_000,
                syn_payload: b"",
                play: Play::Script(|c| {
                    c.data(Up, b"second attack").fin(Up);
                }),
            },
        ],
        vec![(b"first", ReadEnd::Eof), (b"second attack", ReadEnd::Eof)],
        vec![(b"first", ReadEnd::Eof), (b"", ReadEnd::Reset)],
    )
    .counters(&["drop_rule"])
}
