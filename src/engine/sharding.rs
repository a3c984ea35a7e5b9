//! What a driver needs to run several engines on shards of one packet
//! stream (`sluice pcap --workers N`): IP fragments are reassembled by one
//! engine in front ([`Engine::defragment`]), and the whole datagram is
//! inspected by the engine that owns its flow ([`Engine::process_reassembled`]);
//! flows are numbered by the driver ([`Engine::number_flows_from`]) so that
//! every shard orders its flows as one engine would.
//!
//! One engine alone goes through the same two halves (`fragment` calls
//! [`Engine::defragment_one`] then [`Engine::inspect_reassembled`]), so a
//! sharded run and a single one judge a fragmented datagram alike.

use super::{reassembled_checksum, ChecksumState, Engine, Outcome, Output, Packet, PacketId, Verdict};
use crate::inspect::Inspector;
use crate::ip::defrag::DefragOutcome;
use crate::stats::Counter;
use crate::time::Timestamp;
use crate::wire::decode::decode_ignoring_ip_checksum;
use crate::wire::{decode, DecodeError, Decoded};

/// An IP datagram reassembled from fragments, waiting to be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The whole datagram.
    pub datagram: Vec<u8>,
    /// Its fragments' packet ids in arrival order; each gets the verdict.
    pub fragments: Vec<PacketId>,
    /// Packet time of the fragment that completed it.
    pub time: Timestamp,
    /// What the capture knew of that fragment's transport checksum.
    pub checksum: ChecksumState,
}

/// What [`Engine::defragment`] did with a packet.
#[derive(Debug)]
pub enum Front {
    /// Not a fragment: the packet goes to [`Engine::process`] as it is.
    Whole,
    /// A fragment, held or dropped (any verdict is in the output).
    Taken,
    /// The fragment completed a datagram: inspect it with
    /// [`Engine::process_reassembled`].
    Reassembled(Reassembled),
}

impl<I: Inspector> Engine<I> {
    /// The IP-level front half of [`Engine::process`]: takes fragments (and
    /// their verdicts when refused) and hands back completed datagrams;
    /// every other packet is left [`Front::Whole`] for the engine of its
    /// flow, which counts and judges it. No rule runs here: rules see whole
    /// datagrams only.
    pub fn defragment(&mut self, pkt: Packet<'_>, out: &mut Output) -> Front {
        let decoded = match decode(pkt.data) {
            Ok(d) if d.ip.fragment.is_some() => d,
            Ok(_) => return Front::Whole,
            Err(DecodeError::BadIpChecksum) => match decode_ignoring_ip_checksum(pkt.data) {
                Ok(d) if d.ip.fragment.is_some() => {
                    if !self.ip_checksum_waived(&d) {
                        // As `bad_ip_checksum`: a fragment never reaches rules.
                        self.stats.inc(Counter::PacketsIn);
                        self.drop_one(pkt.id, Counter::DropBadIpChecksum, out);
                        return Front::Taken;
                    }
                    d
                }
                _ => return Front::Whole,
            },
            Err(_) => return Front::Whole,
        };
        self.stats.inc(Counter::PacketsIn);
        match self.defragment_one(pkt, &decoded, out) {
            Some(whole) => Front::Reassembled(whole),
            None => Front::Taken,
        }
    }

    /// True if a bad IPv4 header checksum is let through: checksums are not
    /// verified, or the sender leaves them to NIC offload (counted).
    fn ip_checksum_waived(&self, d: &Decoded<'_>) -> bool {
        if !self.config.verify_checksums {
            return true;
        }
        let offloaded = self.config.checksum_offload.of(&d.ip.src).ip_header;
        if offloaded {
            self.stats.inc(Counter::ChecksumOffloadUnverified);
        }
        offloaded
    }

    /// Inspects a datagram another engine reassembled ([`Engine::defragment`]);
    /// each of its fragments gets the verdict. Its packets were counted there.
    pub fn process_reassembled(&mut self, whole: &Reassembled, out: &mut Output) {
        self.inspect_reassembled(whole, out);
        self.flush_pending(out);
    }

    /// Flows created from now on get ids from `first` up (or from the next
    /// unused id, if that is higher: ids are never reused). A sharded driver
    /// sets it before each packet from the packet's position in the input,
    /// so the flows of all shards sort in the order one engine creates them.
    pub fn number_flows_from(&mut self, first: u64) {
        self.flows.set_next_id(first);
    }

    /// Hands a fragment to the defragmenter: the completed datagram, if
    /// this one completed it (refused fragments get their drop verdicts).
    pub(super) fn defragment_one(
        &mut self,
        pkt: Packet<'_>,
        decoded: &Decoded<'_>,
        out: &mut Output,
    ) -> Option<Reassembled> {
        match self.defrag.push(pkt.id, decoded, pkt.time) {
            DefragOutcome::Held => None,
            DefragOutcome::Rejected { drop, reason } => {
                for id in drop {
                    self.drop_one(id, reason, out);
                }
                None
            }
            DefragOutcome::Complete { datagram, fragments } => {
                Some(Reassembled { datagram, fragments, time: pkt.time, checksum: pkt.checksum })
            }
        }
    }

    /// Judges a reassembled datagram; every fragment gets the verdict.
    pub(super) fn inspect_reassembled(&mut self, whole: &Reassembled, out: &mut Output) {
        self.stats.inc(Counter::FragmentsReassembled);
        let n = whole.fragments.len() as u64;
        let verdict = match decode(&whole.datagram) {
            Ok(d) if d.ip.fragment.is_some() => {
                // A fragment inside a fragment: no endpoint reassembles
                // twice, and inspecting it as a whole would be a guess.
                self.stats.add(Counter::DropFragment, n);
                Verdict::Drop
            }
            // A fragment's checksum state says nothing of the whole
            // datagram's (no NIC verifies a fragmented one).
            Ok(d) => {
                // No batch id: a reassembled datagram's verdict is never deferred.
                let checksum = reassembled_checksum(whole.checksum);
                let outcome = self.inspect(&d, whole.time, checksum, None, out);
                // A datagram's fragments are not marked (`--bypass`): the
                // next whole packet of the flow will be.
                self.bypass_due = false;
                match outcome {
                    // Fragments cannot carry a rewritten datagram; refuse
                    // rather than let the unnormalised bytes through.
                    Outcome::Now(Verdict::AcceptModified(_)) => Verdict::Drop,
                    Outcome::Now(v) => v,
                    // Cannot happen without a batch id; refuse rather than lose a verdict.
                    Outcome::Deferred => Verdict::Drop,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reassembled datagram does not decode");
                self.stats.add(Counter::DropMalformed, n);
                Verdict::Drop
            }
        };
        for &id in &whole.fragments {
            self.emit(out, id, verdict.clone());
        }
    }
}
