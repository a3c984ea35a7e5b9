//! What a replay did: counts, the engine's counters, and what was written,
//! as the text `sluice pcap` prints and as JSON (`--summary-json`).

use std::fmt;

use serde_json::json;

use crate::capture::offload::{describe as describe_offload, OffloadedHost};
use crate::stream_dump::DumpSummary;

/// The outcome of a replay. Every record is counted exactly once among
/// `non_ip`, `accepted`, `modified`, `dropped` and `missing_verdicts`.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records read from the input.
    pub packets_in: u64,
    /// IP packets accepted unchanged.
    pub accepted: u64,
    /// IP packets dropped.
    pub dropped: u64,
    /// IP packets accepted with new bytes.
    pub modified: u64,
    /// Packets sluice forged (RSTs) and wrote.
    pub forged: u64,
    /// Frames without an IP packet, written through unchanged.
    pub non_ip: u64,
    /// TCP connections and UDP flows the engine created.
    pub flows: u64,
    /// Alerts raised by rules.
    pub alerts: u64,
    /// Rule errors.
    pub rule_errors: u64,
    /// Each rule that raised errors (`name (file:line)` or `file:line`)
    /// with its count, in declaration order.
    pub rule_errors_by_rule: Vec<(String, u64)>,
    /// Records that never got a verdict (an engine bug; never expected).
    pub missing_verdicts: u64,
    /// Verdicts for packets that were not waiting for one (an engine bug).
    pub unexpected_verdicts: u64,
    /// Records written to the output pcap.
    pub written: u64,
    /// Set if the input ended in the middle of a record: the warning.
    pub truncated: Option<String>,
    /// What the stream dump wrote, if one was asked for.
    pub dump: Option<DumpSummary>,
    /// Every engine counter at the end of the run.
    pub counters: Vec<(&'static str, u64)>,
    /// Hosts whose checksums were not verified (`--checksums auto`), with
    /// what they left to their NIC and their counts.
    pub checksum_offload: Vec<OffloadedHost>,
    /// The run was a `--passive` analysis (verdicts are what would have
    /// happened inline).
    pub passive: bool,
}

impl Summary {
    /// The engine counter `name` at the end of the run (0 if unknown).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    /// True if the driver saw the engine break its contract.
    pub fn has_errors(&self) -> bool {
        self.missing_verdicts > 0 || self.unexpected_verdicts > 0
    }

    /// The summary as JSON (`--summary-json`).
    pub fn to_json(&self) -> serde_json::Value {
        let counters: serde_json::Map<String, serde_json::Value> =
            self.counters.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        json!({
            "packets_in": self.packets_in,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "modified": self.modified,
            "forged": self.forged,
            "non_ip": self.non_ip,
            "flows": self.flows,
            "alerts": self.alerts,
            "rule_errors": self.rule_errors,
            "rule_errors_by_rule": self.rule_errors_by_rule.iter()
                .map(|(rule, n)| json!({"rule": rule, "errors": n})).collect::<Vec<_>>(),
            "missing_verdicts": self.missing_verdicts,
            "unexpected_verdicts": self.unexpected_verdicts,
            "written": self.written,
            "truncated": self.truncated,
            "passive": self.passive,
            "streams": self.dump.as_ref().map(|d| json!({"connections": d.connections, "bytes": d.bytes})),
            "checksum_offload": self.checksum_offload.iter().map(|(host, o, c)| json!({
                "host": host.to_string(),
                "transport_unverified": o.transport,
                "ip_header_unverified": o.ip_header,
                "transport_seen": c.transport_seen,
                "transport_bad": c.transport_bad,
                "ipv4_seen": c.ipv4_seen,
                "ip_header_zero": c.ip_header_zero,
            })).collect::<Vec<_>>(),
            "counters": counters,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets: {} accepted, {} dropped, {} modified, {} not IP; {} forged",
            self.packets_in, self.accepted, self.dropped, self.modified, self.non_ip, self.forged
        )?;
        writeln!(
            f,
            "{} flows, {} alerts, {} rule errors, {} records written",
            self.flows, self.alerts, self.rule_errors, self.written
        )?;
        for (rule, n) in &self.rule_errors_by_rule {
            writeln!(f, "rule errors: {n} in {rule}")?;
        }
        if let Some(d) = &self.dump {
            writeln!(f, "stream dump: {} connections, {} bytes", d.connections, d.bytes)?;
        }
        if self.passive {
            writeln!(
                f,
                "passive: {} gaps ({} bytes missing from the capture), {} overlap conflicts; \
                 drops and forged packets are what would have happened inline",
                self.counter("passive_gaps"),
                self.counter("passive_gap_bytes"),
                self.counter("passive_overlap_conflicts")
            )?;
        } else if self.counter("drop_tcp_bad_ack") > 0 {
            writeln!(
                f,
                "hint: {} packets acknowledge data the capture does not contain (capture loss?); \
                 --passive analyses a capture from a tap or a host",
                self.counter("drop_tcp_bad_ack")
            )?;
        }
        for (host, o, c) in &self.checksum_offload {
            writeln!(f, "checksums: {}", describe_offload(*host, *o, c))?;
        }
        if let Some(t) = &self.truncated {
            writeln!(f, "warning: {t}")?;
        }
        if self.has_errors() {
            writeln!(
                f,
                "error: {} packets got no verdict, {} verdicts for unknown packets",
                self.missing_verdicts, self.unexpected_verdicts
            )?;
        }
        let nonzero: Vec<String> = self
            .counters
            .iter()
            .filter(|(k, v)| *v > 0 && k.starts_with("drop_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !nonzero.is_empty() {
            writeln!(f, "drops: {}", nonzero.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counter, Stats};

    #[test]
    fn summary_json_has_every_counter() {
        let s = Summary { packets_in: 3, counters: Stats::new().snapshot(), ..Summary::default() };
        let j = s.to_json();
        assert_eq!(j["packets_in"], 3);
        assert_eq!(j["counters"].as_object().unwrap().len(), Counter::ALL.len());
        assert!(s.to_string().starts_with("3 packets"));
    }
}
