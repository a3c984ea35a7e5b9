//! `sluice pcap --checksums`: the engine configuration each mode gives, and
//! in `auto` the scan for hosts that left checksums to their NIC
//! ([`crate::capture::offload`]), run when the replay first meets a wrong
//! checksum.
//!
//! Only a wrong checksum depends on its host's verdict (a right one is right
//! whatever its host), so a capture with no wrong checksum is read once,
//! and one with some is scanned whole before the first wrong checksum is
//! judged: the verdicts are those of the whole file, as deterministic as a
//! scan before the replay.

use std::sync::{Arc, OnceLock};

use crate::capture::offload::{describe, OffloadScan, OffloadedHost};
use crate::capture::pcap::PcapSource;
use crate::config::{EngineConfig, OffloadHosts};
use crate::engine::ChecksumState;

use super::{ChecksumMode, OfflineError, OfflineOptions};

/// The scan's result, once it ran.
#[derive(Debug, Clone, Default)]
pub(super) struct OffloadFinding(Arc<OnceLock<OffloadScan>>);

impl OffloadFinding {
    /// The checksum state the engine gets for record `index`: once the scan
    /// ran, the records it found right are not summed again.
    pub(super) fn state(&self, index: u64) -> ChecksumState {
        self.0.get().map_or(ChecksumState::Unchecked, |scan| scan.good.state(index))
    }

    /// The hosts found to leave checksums to their NIC. None if the scan
    /// never ran: no checksum was wrong, and a host is offloaded only if
    /// most of its checksums are.
    pub(super) fn offloaded(&self) -> Vec<OffloadedHost> {
        self.0.get().map(OffloadScan::offloaded).unwrap_or_default()
    }

    /// True once the scan ran.
    #[cfg(test)]
    pub(super) fn ran(&self) -> bool {
        self.0.get().is_some()
    }
}

/// What `--checksums auto` says when it meets a wrong checksum in a capture
/// it can read only once.
fn read_once_warning(path: &str) -> String {
    format!(
        "checksums: {path} is a stream (pipe, FIFO, device or standard input) that can be read \
         only once, so --checksums auto cannot count which hosts left their checksums to NIC \
         offload: every wrong checksum is dropped, as with --checksums verify. To recognise \
         offloading hosts, save the capture to a file; to accept every checksum, pass \
         --checksums ignore"
    )
}

/// The engine configuration for `opts.checksums`, and where `auto`'s scan
/// of `source`'s capture (on `opts.workers` threads) leaves its result.
pub(super) fn checksum_config(
    opts: &OfflineOptions,
    source: &PcapSource,
) -> Result<(EngineConfig, OffloadFinding), OfflineError> {
    let mut config = opts.engine.clone();
    let finding = OffloadFinding::default();
    match opts.checksums {
        ChecksumMode::Ignore => config.verify_checksums = false,
        ChecksumMode::Verify => {}
        ChecksumMode::Auto if !config.verify_checksums => {}
        ChecksumMode::Auto if !source.rereadable() => {
            // The counting pass needs a second reading, which a stream does
            // not allow: every checksum is verified, and the first wrong one
            // says why hosts offloading to their NIC are not recognised.
            let path = source.path().display().to_string();
            config.checksum_offload = OffloadHosts::found_by(Box::new(move || {
                tracing::warn!("{}", read_once_warning(&path));
                Default::default()
            }));
        }
        ChecksumMode::Auto => {
            let source = source.rewound()?;
            let (threads, result) = (opts.workers, Arc::clone(&finding.0));
            config.checksum_offload = OffloadHosts::found_by(Box::new(move || {
                // As many threads as workers: a mapped capture is read in parts.
                let scan = OffloadScan::of_source_threads(source, threads);
                let offloaded = scan.offloaded();
                for (host, offload, counts) in &offloaded {
                    // Said once, in the summary; here only for debugging.
                    tracing::info!("checksums: {}", describe(*host, *offload, counts));
                }
                let _ = result.set(scan);
                offloaded.into_iter().map(|(host, offload, _)| (host, offload)).collect()
            }));
        }
    }
    Ok((config, finding))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::Engine;
    use crate::inject::pcap_writer::PcapOutput;
    use crate::inspect::NoRules;
    use crate::pcapgen::{write_pcap_file, Framing};
    use crate::time::Timestamp;
    use crate::wire::decode::v4;
    use crate::wire::forge::udp_packet;

    /// Replays a capture of DNS-like UDP packets in `auto` mode, the
    /// packets numbered in `wrong` with a wrong checksum. Returns the
    /// finding and the packets accepted.
    fn replay_auto(wrong: &[usize]) -> (OffloadFinding, u64) {
        let packets: Vec<_> = (0..6u16)
            .map(|i| {
                let mut p = udp_packet(v4(10, 0, 0, 1), 1000 + i, v4(10, 0, 0, 2), 53, b"query");
                if wrong.contains(&usize::from(i)) {
                    let n = p.len();
                    p[n - 1] ^= 1;
                }
                (Timestamp(1_700_000_000_000_000 + u64::from(i)), p)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        write_pcap_file(&path, &Framing::Ethernet, &packets).unwrap();
        let opts = OfflineOptions::new(Path::new("unused.lua"), &path);
        let mut source = PcapSource::open(&path).unwrap();
        let (config, finding) = checksum_config(&opts, &source).unwrap();
        let mut engine = Engine::new(config, NoRules);
        let (summary, result) = crate::offline::replay::replay(
            &mut engine,
            &mut source,
            &finding,
            None::<&mut PcapOutput<Vec<u8>>>,
            Path::new("-"),
            None,
        );
        result.unwrap();
        (finding, summary.accepted)
    }

    #[test]
    fn a_capture_with_no_wrong_checksum_is_not_scanned() {
        let (finding, accepted) = replay_auto(&[]);
        assert!(!finding.ran());
        assert!(finding.offloaded().is_empty());
        assert_eq!(accepted, 6);
    }

    #[test]
    fn the_first_wrong_checksum_has_the_whole_capture_scanned() {
        // Most of the host's sums are wrong, the first of them at packet 1,
        // where the packets read so far could not tell: the verdict counts
        // the whole capture.
        let (finding, accepted) = replay_auto(&[1, 2, 4, 5]);
        assert!(finding.ran());
        let off = finding.offloaded();
        assert_eq!(off.len(), 1, "{off:?}");
        assert_eq!((off[0].2.transport_bad, off[0].2.transport_seen), (4, 6));
        assert_eq!(accepted, 6, "an offloaded host's wrong sums are waived");
        assert_eq!(finding.state(0), ChecksumState::CheckedGood, "right sums are not computed again");
        assert_eq!(finding.state(1), ChecksumState::Unchecked);
        // A minority of wrong sums is damage, dropped.
        let (finding, accepted) = replay_auto(&[5]);
        assert!(finding.ran() && finding.offloaded().is_empty());
        assert_eq!(accepted, 5);
    }
}
