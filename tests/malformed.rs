//! Malformed input: broken capture files and broken packets must give a
//! clear error or a counted drop, never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use sluice::capture::link::LinkType;
use sluice::capture::pcap::{CaptureError, PcapSource};
use sluice::config::EngineConfig;
use sluice::engine::{ChecksumState, Emitted, Engine, Output, Packet};
use sluice::flow::Direction::{Down, Up};
use sluice::inspect::NoRules;
use sluice::offline::{self, OfflineOptions};
use sluice::pcapgen::{write_pcap, write_pcapng, Conversation, Framing, TimedPacket};
use sluice::time::Timestamp;
use sluice::wire::header::Ipv4;

fn traffic() -> Vec<TimedPacket> {
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake().send(Up, b"hello").send(Down, b"world").close();
    c.into_packets()
}

fn pcap_bytes(framing: &Framing) -> Vec<u8> {
    write_pcap(Vec::new(), framing, &traffic()).unwrap()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files { dir: tempfile::tempdir().unwrap() }
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
    fn rules(&self) -> PathBuf {
        self.write("rules.lua", b"-- no rules\n")
    }
}

fn read_all(path: &Path) -> (Vec<sluice::capture::pcap::Record>, Option<CaptureError>) {
    let mut src = match PcapSource::open(path) {
        Ok(s) => s,
        Err(e) => return (vec![], Some(e)),
    };
    let mut records = vec![];
    for r in src.by_ref() {
        match r {
            Ok(r) => records.push(r),
            Err(e) => return (records, Some(e)),
        }
    }
    (records, None)
}

#[test]
fn truncated_file_header_is_an_error() {
    let f = Files::new();
    let full = pcap_bytes(&Framing::Ethernet);
    for len in [0, 3, 4, 10, 23] {
        let p = f.write("t.pcap", &full[..len]);
        match PcapSource::open(&p) {
            Err(e @ CaptureError::Truncated { .. }) => assert!(e.to_string().contains("t.pcap"), "{e}"),
            Err(e) => panic!("len {len}: expected truncation, got {e}"),
            Ok(_) => panic!("len {len}: opened a truncated header"),
        }
    }
}

#[test]
fn garbage_is_not_a_capture() {
    let f = Files::new();
    let p = f.write("g.pcap", b"this is certainly not a pcap file at all");
    let e = PcapSource::open(&p).err().expect("error");
    assert!(matches!(e, CaptureError::NotACapture { .. }), "{e}");
    assert!(e.to_string().contains("g.pcap"));
}

#[test]
fn truncated_last_record_keeps_the_records_before_it() {
    let f = Files::new();
    let full = pcap_bytes(&Framing::Ethernet);
    let all = read_all(&f.write("full.pcap", &full)).0;
    assert_eq!(all.len(), traffic().len());
    // Cut inside the last record's data, then inside its header.
    for cut in [3, 60] {
        let p = f.write("cut.pcap", &full[..full.len() - cut]);
        let (records, err) = read_all(&p);
        assert_eq!(records.len(), all.len() - 1, "cut {cut}");
        let err = err.expect("truncation reported");
        assert!(err.is_truncation());
        let msg = err.to_string();
        // Numbered from 1, as Wireshark numbers records: the cut one is the last.
        assert!(msg.contains(&format!("record {} ", all.len())) && msg.contains("offset"), "{msg}");

        // The driver processes and writes the packets before it, with a warning.
        let mut opts = OfflineOptions::new(f.rules(), &p);
        opts.output = Some(f.dir.path().join("out.pcap"));
        opts.alerts = Some(f.dir.path().join("alerts.jsonl"));
        let summary = offline::run(&opts).expect("truncation is not fatal");
        assert_eq!(summary.packets_in, all.len() as u64 - 1);
        assert!(summary.truncated.is_some());
        assert_eq!(read_all(&f.dir.path().join("out.pcap")).0.len(), all.len() - 1);
    }
}

#[test]
fn absurd_record_length_is_a_malformed_record_error() {
    let f = Files::new();
    let mut bytes = pcap_bytes(&Framing::Raw);
    // First record's incl_len (little-endian file) at offset 24 + 8.
    bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
    let (records, err) = read_all(&f.write("bad.pcap", &bytes));
    assert!(records.is_empty());
    let err = err.expect("error");
    assert!(matches!(err, CaptureError::Malformed { record: 0, offset: 24, .. }), "{err}");

    let mut opts = OfflineOptions::new(f.rules(), f.dir.path().join("bad.pcap"));
    opts.alerts = Some(f.dir.path().join("alerts.jsonl"));
    let e = offline::run(&opts).expect_err("garbage record is fatal");
    assert!(e.to_string().contains("bad.pcap"), "{e}");
}

#[test]
fn damaged_record_keeps_every_good_record_before_it() {
    let f = Files::new();
    let full = pcap_bytes(&Framing::Ethernet);
    let all = read_all(&f.write("full.pcap", &full)).0;
    // Damage the header of the second-to-last record (its incl_len), so a
    // good record follows the damage: reading must stop there, and every
    // record before it be processed and written.
    let mut offset = 24;
    for r in &all[..all.len() - 2] {
        offset += 16 + r.frame.len();
    }
    let mut bytes = full.clone();
    bytes[offset + 8..offset + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let p = f.write("damaged.pcap", &bytes);
    let good = all.len() - 2;
    let (records, err) = read_all(&p);
    assert_eq!(records.len(), good);
    assert_eq!(records.last().unwrap().frame, all[good - 1].frame);
    let msg = err.expect("damage reported").to_string();
    assert!(msg.contains(&format!("malformed record {} at byte offset {offset}", good + 1)), "{msg}");

    let mut opts = OfflineOptions::new(f.rules(), &p);
    opts.output = Some(f.dir.path().join("out.pcap"));
    opts.alerts = Some(f.dir.path().join("alerts.jsonl"));
    match offline::run(&opts) {
        Err(offline::OfflineError::Damaged { error, summary }) => {
            assert_eq!(error.to_string(), msg);
            assert_eq!(summary.packets_in, good as u64);
            assert_eq!(summary.written, good as u64);
        }
        other => panic!("expected a damaged-capture error, got {other:?}"),
    }
    let written = read_all(&f.dir.path().join("out.pcap")).0;
    let frames = |v: &[sluice::capture::pcap::Record]| v.iter().map(|r| r.frame.clone()).collect::<Vec<_>>();
    assert_eq!(frames(&written), frames(&all[..good]), "every good record written");
}

#[test]
fn unsupported_link_type_is_named() {
    let f = Files::new();
    let mut bytes = pcap_bytes(&Framing::Raw);
    bytes[20..24].copy_from_slice(&147u32.to_le_bytes());
    let e = PcapSource::open(f.write("u.pcap", &bytes)).err().expect("error");
    assert!(matches!(e, CaptureError::UnsupportedLinkType { link: 147, .. }), "{e}");
}

#[test]
fn big_endian_and_nanosecond_pcaps_are_read() {
    let f = Files::new();
    let le = pcap_bytes(&Framing::Raw);
    let expected = read_all(&f.write("le.pcap", &le)).0;
    // Rewrite as big-endian with nanosecond timestamps.
    let mut be = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    be.extend_from_slice(&262_144u32.to_be_bytes());
    be.extend_from_slice(&101u32.to_be_bytes());
    for r in &expected {
        let secs = (r.time_ns / 1_000_000_000) as u32;
        let ns = (r.time_ns % 1_000_000_000) as u32 + 7;
        for v in [secs, ns, r.frame.len() as u32, r.orig_len] {
            be.extend_from_slice(&v.to_be_bytes());
        }
        be.extend_from_slice(&r.frame);
    }
    let mut src = PcapSource::open(f.write("be.pcap", &be)).unwrap();
    assert!(src.nanosecond_timestamps());
    assert_eq!(src.link_type(), LinkType::Raw);
    let got: Vec<_> = src.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.frame, e.frame);
        assert_eq!(g.time_ns, e.time_ns + 7);
        assert_eq!(g.time, e.time, "engine time in µs");
    }
}

#[test]
fn snaplen_truncated_records_are_still_read() {
    let f = Files::new();
    let mut bytes = pcap_bytes(&Framing::Raw);
    // Claim the first record was longer on the wire (orig_len > caplen > snaplen).
    bytes[16..20].copy_from_slice(&40u32.to_le_bytes());
    bytes[36..40].copy_from_slice(&1500u32.to_le_bytes());
    let (records, err) = read_all(&f.write("snap.pcap", &bytes));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records[0].orig_len, 1500);
    assert!(records[0].l3.is_some());
}

/// Offsets in a `write_pcapng` file: the section header is 28 bytes, the
/// interface description 20, so the first packet block starts at 48.
const FIRST_PACKET_BLOCK: usize = 48;

/// A block of an unknown type (0x0BAD) with `body` bytes of body.
fn unknown_block(body: usize) -> Vec<u8> {
    let len = (12 + body) as u32;
    let mut b = vec![0xad, 0x0b, 0, 0];
    b.extend_from_slice(&len.to_le_bytes());
    b.extend((0..body).map(|i| i as u8));
    b.extend_from_slice(&len.to_le_bytes());
    b
}

#[test]
fn pcapng_is_read_like_pcap_and_unknown_blocks_are_skipped() {
    let f = Files::new();
    let pcap = read_all(&f.write("a.pcap", &pcap_bytes(&Framing::Sll))).0;
    let mut ng = write_pcapng(Vec::new(), &Framing::Sll, &traffic()).unwrap();
    // An unknown block right after the interface description.
    ng.splice(FIRST_PACKET_BLOCK..FIRST_PACKET_BLOCK, unknown_block(4));
    let mut src = PcapSource::open(f.write("a.pcapng", &ng)).unwrap();
    assert_eq!(src.link_type(), LinkType::LinuxSll);
    let got: Vec<_> = src.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), pcap.len());
    for (g, p) in got.iter().zip(&pcap) {
        assert_eq!((&g.frame, g.time_ns, &g.l3), (&p.frame, p.time_ns, &p.l3));
    }
    // Truncated pcapng: the records before the cut survive.
    let (records, err) = read_all(&f.write("cut.pcapng", &ng[..ng.len() - 10]));
    assert_eq!(records.len(), pcap.len() - 1);
    assert!(err.expect("truncated").is_truncation());
}

#[test]
fn pcapng_garbage_block_is_an_error_with_offset() {
    let f = Files::new();
    let mut ng = write_pcapng(Vec::new(), &Framing::Raw, &traffic()).unwrap();
    // Corrupt the first packet block's trailing length.
    let first_epb = FIRST_PACKET_BLOCK;
    let len = u32::from_le_bytes(ng[first_epb + 4..first_epb + 8].try_into().unwrap()) as usize;
    ng[first_epb + len - 4] ^= 0xff;
    let (records, err) = read_all(&f.write("bad.pcapng", &ng));
    assert!(records.is_empty());
    let err = err.expect("error");
    assert!(matches!(err, CaptureError::Malformed { offset: 48, .. }), "{err}");
}

#[test]
fn pcapng_block_of_any_size_is_skipped_and_the_file_read_on() {
    let f = Files::new();
    let pcap = read_all(&f.write("a.pcap", &pcap_bytes(&Framing::Raw))).0;
    let mut ng = write_pcapng(Vec::new(), &Framing::Raw, &traffic()).unwrap();
    // 9 MB, past any fixed read buffer (pcap-file's is 8 MB), and past the
    // record limit, which applies to packets only.
    ng.splice(FIRST_PACKET_BLOCK..FIRST_PACKET_BLOCK, unknown_block(9 << 20));
    let (records, err) = read_all(&f.write("big.pcapng", &ng));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(records.len(), pcap.len());
    for (g, p) in records.iter().zip(&pcap) {
        assert_eq!((&g.frame, g.time_ns), (&p.frame, p.time_ns));
    }
    // Cut inside the big block: a truncated file, nothing read after it.
    let (records, err) = read_all(&f.write("cut.pcapng", &ng[..FIRST_PACKET_BLOCK + (5 << 20)]));
    assert!(records.is_empty());
    assert!(err.expect("truncated").is_truncation());
}

#[test]
fn pcapng_skipped_block_with_a_wrong_trailer_is_an_error_with_offset() {
    let f = Files::new();
    let mut ng = write_pcapng(Vec::new(), &Framing::Raw, &traffic()).unwrap();
    let mut bad = unknown_block(100);
    let n = bad.len();
    bad[n - 4] ^= 0xff;
    let at = FIRST_PACKET_BLOCK + u32::from_le_bytes(ng[52..56].try_into().unwrap()) as usize;
    ng.splice(at..at, bad);
    let (records, err) = read_all(&f.write("trailer.pcapng", &ng));
    assert_eq!(records.len(), 1, "the packet before the bad block is read");
    let err = err.expect("error");
    assert!(matches!(&err, CaptureError::Malformed { offset, .. } if *offset == at as u64), "{err}");
    assert!(err.to_string().contains("trailing length"), "{err}");
}

#[test]
fn pcapng_packet_block_over_the_limit_is_an_error_not_a_huge_allocation() {
    let f = Files::new();
    let mut ng = write_pcapng(Vec::new(), &Framing::Raw, &traffic()).unwrap();
    let p = FIRST_PACKET_BLOCK;
    ng[p + 4..p + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let (records, err) = read_all(&f.write("huge.pcapng", &ng));
    assert!(records.is_empty());
    let err = err.expect("error");
    assert!(matches!(err, CaptureError::Malformed { offset: 48, .. }), "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");
}

/// A big-endian pcapng, built by hand: section header, a raw-IP interface
/// with microsecond timestamps, one enhanced packet block per packet.
fn big_endian_pcapng(packets: &[TimedPacket]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, type_: u32, body: &[u8]) {
        let len = (12 + body.len()) as u32;
        out.extend_from_slice(&type_.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let mut out = Vec::new();
    let mut shb = vec![0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0];
    shb.extend_from_slice(&(-1i64).to_be_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = 101u16.to_be_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&65535u32.to_be_bytes());
    block(&mut out, 1, &idb);
    for (t, ip) in packets {
        let mut epb = 0u32.to_be_bytes().to_vec();
        epb.extend_from_slice(&((t.0 >> 32) as u32).to_be_bytes());
        epb.extend_from_slice(&(t.0 as u32).to_be_bytes());
        epb.extend_from_slice(&(ip.len() as u32).to_be_bytes());
        epb.extend_from_slice(&(ip.len() as u32).to_be_bytes());
        epb.extend_from_slice(ip);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn big_endian_pcapng_is_read_like_little_endian() {
    let f = Files::new();
    let le = read_all(&f.write("le.pcapng", &write_pcapng(Vec::new(), &Framing::Raw, &traffic()).unwrap()));
    let be = read_all(&f.write("be.pcapng", &big_endian_pcapng(&traffic())));
    assert!(le.1.is_none() && be.1.is_none(), "{:?} {:?}", le.1, be.1);
    assert_eq!(be.0.len(), traffic().len());
    for (b, l) in be.0.iter().zip(&le.0) {
        assert_eq!((&b.frame, b.time_ns, b.orig_len), (&l.frame, l.time_ns, l.orig_len));
    }
}

/// Frames with truncated IP or TCP headers and lying lengths reach the
/// engine, get exactly one verdict each and end up counted.
#[test]
fn broken_packets_in_a_pcap_get_verdicts() {
    let f = Files::new();
    let good = traffic();
    let syn = good[0].1.clone();
    let mut broken: Vec<Vec<u8>> = vec![
        syn[..10].to_vec(),                  // truncated IPv4 header
        syn[..30].to_vec(),                  // truncated TCP header
        vec![0x45],                          // one byte
        vec![0x60; 39],                      // truncated IPv6 header
        [&syn[..], &[0u8; 30][..]].concat(), // trailing junk (link padding)
    ];
    let mut lying = syn.clone();
    Ipv4::new_checked(&mut lying[..]).unwrap().set_total_len(4000); // total length > bytes
    broken.push(lying);
    let mut short = syn.clone();
    Ipv4::new_checked(&mut short[..]).unwrap().set_total_len(10); // total length < header
    broken.push(short);
    let packets: Vec<TimedPacket> = broken.into_iter().map(|p| (good[0].0, p)).collect();
    let p = f.dir.path().join("broken.pcap");
    fs::write(&p, write_pcap(Vec::new(), &Framing::Ethernet, &packets).unwrap()).unwrap();
    let mut opts = OfflineOptions::new(f.rules(), &p);
    opts.alerts = Some(f.dir.path().join("alerts.jsonl"));
    opts.output = Some(f.dir.path().join("out.pcap"));
    let s = offline::run(&opts).unwrap();
    assert_eq!(s.packets_in, packets.len() as u64);
    assert_eq!(s.accepted + s.dropped + s.modified + s.non_ip, s.packets_in);
    assert!(!s.has_errors());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes as IP packets: every one gets exactly one verdict.
    #[test]
    fn random_ip_packets_get_one_verdict_each(packets in proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            // Start with a plausible version nibble to get past the first check.
            proptest::collection::vec(any::<u8>(), 20..80).prop_map(|mut v| { v[0] = 0x45; v }),
            proptest::collection::vec(any::<u8>(), 40..100).prop_map(|mut v| { v[0] = 0x60; v }),
        ], 1..20)) {
        let mut engine = Engine::new(EngineConfig::default(), NoRules);
        let mut out = Output::new();
        let mut verdicts = std::collections::HashMap::new();
        for (i, p) in packets.iter().enumerate() {
            let t = Timestamp(1_000_000 + i as u64);
            engine.tick(t, &mut out);
            engine.process(Packet { id: i as u64, data: p, time: t, checksum: ChecksumState::Unchecked }, &mut out);
        }
        engine.finish(Timestamp(2_000_000), &mut out);
        for item in &out.items {
            if let Emitted::Verdict(id, _) = item {
                *verdicts.entry(*id).or_insert(0) += 1;
            }
        }
        prop_assert_eq!(verdicts.len(), packets.len());
        prop_assert!(verdicts.values().all(|n| *n == 1));
    }

    /// Random bytes, and valid files with random corruption, as capture
    /// files: the reader returns records or an error, never panics.
    #[test]
    fn random_files_never_panic(
        junk in proptest::collection::vec(any::<u8>(), 0..400),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
        kind in 0u8..3,
    ) {
        let f = Files::new();
        let mut bytes = match kind {
            0 => junk,
            1 => pcap_bytes(&Framing::Vlan(vec![5, 6])),
            _ => write_pcapng(Vec::new(), &Framing::Ethernet, &traffic()).unwrap(),
        };
        if kind > 0 && !bytes.is_empty() {
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            let n = bytes.len();
            bytes.truncate(n - cut % (n / 4 + 1));
        }
        let p = f.write("r.pcap", &bytes);
        let (records, _err) = read_all(&p);
        prop_assert!(records.len() <= 64);
        // And through the whole driver.
        let mut opts = OfflineOptions::new(f.rules(), &p);
        opts.alerts = Some(f.dir.path().join("alerts.jsonl"));
        opts.output = Some(f.dir.path().join("out.pcap"));
        if let Ok(s) = offline::run(&opts) {
            prop_assert!(!s.has_errors());
        }
    }
}

/// A capture that another process truncates while `sluice pcap` reads it
/// (regular files are mapped): sluice says so and exits with status 1, not
/// with a bare "Bus error".
#[test]
fn a_capture_truncated_while_it_is_read_is_named() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let files = Files::new();
    let mut c = Conversation::new("10.0.0.1:40000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    c.handshake();
    for _ in 0..50_000 {
        c.send(Up, &[b'x'; 600]);
    }
    c.close();
    let capture =
        files.write("big.pcap", &write_pcap(Vec::new(), &Framing::Ethernet, &c.into_packets()).unwrap());
    // Slow per packet, and says when the first packet reached the rules.
    let rules = files.write(
        "slow.lua",
        br#"require("protocol/ipv4")
local first = true
haka.rule {
  on = haka.dissectors.ipv4.events.receive_packet,
  eval = function (pkt)
    if first then first = false; haka.log.info("first packet") end
    local x = 0
    for i = 1, 20000 do x = x + i end
  end
}
"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["pcap", "--no-progress", "--alerts", "/dev/null"])
        .arg(&rules)
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("first packet") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = rx.recv_timeout(Duration::from_secs(60));
    // Cut the file down to its header under the running reader.
    fs::OpenOptions::new().write(true).open(&capture).unwrap().set_len(24).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice pcap did not end within 120 s of the truncation");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    assert!(started.is_ok(), "the rules never saw a packet: {stderr}");
    assert_eq!(status.code(), Some(1), "{status:?}: {stderr}");
    assert!(stderr.contains("the capture file shrank while it was being read"), "{stderr}");
}
