//! `--install-iptables`: the FORWARD rules that send traffic to sluice's
//! queues, installed in the current network namespace for the lifetime of
//! the run and removed on exit with the identical spec (`-D`), so exactly
//! what was added goes away, also after SIGTERM/SIGINT.
//!
//! With `--bypass`, three rules go above the queue rule (B the bypass mark):
//!
//! ```text
//! -m mark --mark B/B -j CONNMARK --save-mark --nfmask B --ctmask B   a marked packet marks its connection
//! -m connmark --mark B/B -j ACCEPT                                   the connection's packets skip the queue
//! -m mark --mark B/B -j ACCEPT                                       a marked packet without conntrack too
//! ```
//!
//! sluice gives a packet of a connection past depth the verdict NF_REPEAT
//! with mark B: the packet runs through FORWARD again from the top, the
//! first rule saves B into the connection's conntrack entry, and from then
//! on the kernel accepts the connection before the queue. The last rule
//! keeps a marked packet that conntrack does not track from being queued
//! again. At exit the queue rule goes first, then these.
//!
//! Only FORWARD is queued (sluice filters a gateway's transit traffic).
//! Forged packets leave through OUTPUT, which is not queued; they still carry
//! the mark, and the FORWARD rule skips marked packets, so the rule stays
//! correct if an operator also queues OUTPUT with the same mark match.

use std::process::Command;

/// What the queue rule matches and where it sends packets.
#[derive(Debug, Clone)]
pub struct QueueRuleSpec {
    /// First and last queue (inclusive).
    pub queues: (u16, u16),
    /// Packets with this mark (sluice's own) are not queued.
    pub mark: u32,
    /// `--queue-bypass`: accept instead of drop while no program binds the queue.
    pub bypass: bool,
    /// `--bypass`: the bypass mark, whose rules go above the queue rule.
    pub bypass_mark: Option<u32>,
}

impl QueueRuleSpec {
    /// The rule's arguments after the chain name.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-m", "mark", "!", "--mark", &format!("{:#x}", self.mark), "-j", "NFQUEUE"]
            .map(String::from)
            .to_vec();
        let (first, last) = self.queues;
        if first == last {
            a.extend(["--queue-num".to_string(), first.to_string()]);
        } else {
            a.extend(["--queue-balance".to_string(), format!("{first}:{last}")]);
        }
        if self.bypass {
            a.push("--queue-bypass".into());
        }
        a
    }

    /// The `--bypass` rules' arguments, top rule first (see the module comment).
    pub fn bypass_args(&self) -> Vec<Vec<String>> {
        let Some(m) = self.bypass_mark else { return Vec::new() };
        let (mark, masked) = (format!("{m:#x}"), format!("{m:#x}/{m:#x}"));
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            words(&[
                "-m",
                "mark",
                "--mark",
                &masked,
                "-j",
                "CONNMARK",
                "--save-mark",
                "--nfmask",
                &mark,
                "--ctmask",
                &mark,
            ]),
            words(&["-m", "connmark", "--mark", &masked, "-j", "ACCEPT"]),
            words(&["-m", "mark", "--mark", &masked, "-j", "ACCEPT"]),
        ]
    }
}

/// The tools the rule is installed with (IPv4 and IPv6).
const TOOLS: [&str; 2] = ["iptables", "ip6tables"];
const CHAIN: &str = "FORWARD";

/// Rules installed by this run; removed on drop.
#[derive(Debug)]
pub struct InstalledRules {
    /// The queue rules.
    queue: Vec<(&'static str, Vec<String>)>,
    /// The `--bypass` rules.
    bypass: Vec<(&'static str, Vec<String>)>,
}

impl InstalledRules {
    /// Inserts the rule at the top of FORWARD for IPv4 and IPv6, and the
    /// `--bypass` rules above it.
    pub fn install(spec: &QueueRuleSpec) -> Result<Self, String> {
        let mut rules = InstalledRules { queue: Vec::new(), bypass: Vec::new() };
        let args = spec.args();
        for tool in TOOLS {
            match run(tool, "-I", &args) {
                Ok(()) => {
                    tracing::info!("installed: {tool} -I {CHAIN} {}", args.join(" "));
                    rules.queue.push((tool, args.clone()));
                }
                // A host without IPv6 netfilter still gets IPv4 filtering.
                Err(e) if tool == "ip6tables" => tracing::warn!("IPv6 traffic is not queued: {e}"),
                Err(e) => return Err(e), // `rules` drops and removes what was installed
            }
        }
        for (tool, _) in rules.queue.clone() {
            // Inserted bottom rule first: each goes to the top.
            for args in spec.bypass_args().into_iter().rev() {
                match run(tool, "-I", &args) {
                    Ok(()) => {
                        tracing::info!("installed: {tool} -I {CHAIN} {}", args.join(" "));
                        rules.bypass.push((tool, args));
                    }
                    Err(e) if tool == "ip6tables" => {
                        tracing::warn!("IPv6 connections are not bypassed: {e}");
                        break;
                    }
                    Err(e) => return Err(format!("{e} (--bypass needs the conntrack and connmark modules)")),
                }
            }
        }
        Ok(rules)
    }
}

impl Drop for InstalledRules {
    fn drop(&mut self) {
        // The queue rule first: bypassed connections must not be queued to
        // a sluice that is about to stop.
        let queue = self.queue.drain(..).rev();
        for (tool, args) in queue.chain(self.bypass.drain(..).rev()) {
            match run(tool, "-D", &args) {
                Ok(()) => tracing::info!("removed: {tool} -D {CHAIN} {}", args.join(" ")),
                Err(e) => tracing::error!("could not remove a FORWARD rule, remove it by hand: {e}"),
            }
        }
    }
}

fn run(tool: &str, op: &str, args: &[String]) -> Result<(), String> {
    // -w: wait for the xtables lock instead of failing when another tool holds it.
    let out = Command::new(tool)
        .args(["-w", "5", op, CHAIN])
        .args(args)
        .output()
        .map_err(|e| format!("running {tool}: {e} (install the iptables package)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {op} {CHAIN} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_arguments() {
        let one = QueueRuleSpec { queues: (3, 3), mark: 0x5e1ce, bypass: false, bypass_mark: None };
        assert!(one.bypass_args().is_empty());
        assert_eq!(one.args().join(" "), "-m mark ! --mark 0x5e1ce -j NFQUEUE --queue-num 3");
        let many = QueueRuleSpec { queues: (0, 3), mark: 16, bypass: true, bypass_mark: Some(0x100_0000) };
        assert_eq!(
            many.args().join(" "),
            "-m mark ! --mark 0x10 -j NFQUEUE --queue-balance 0:3 --queue-bypass"
        );
    }

    #[test]
    fn bypass_rule_arguments() {
        let spec =
            QueueRuleSpec { queues: (0, 0), mark: 0x5e1ce, bypass: false, bypass_mark: Some(0x100_0000) };
        let rules: Vec<String> = spec.bypass_args().iter().map(|a| a.join(" ")).collect();
        assert_eq!(
            rules,
            [
                "-m mark --mark 0x1000000/0x1000000 -j CONNMARK --save-mark --nfmask 0x1000000 --ctmask 0x1000000",
                "-m connmark --mark 0x1000000/0x1000000 -j ACCEPT",
                "-m mark --mark 0x1000000/0x1000000 -j ACCEPT",
            ]
        );
    }
}
