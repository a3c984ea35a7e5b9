//! `--install-iptables`: the FORWARD rules that send traffic to sluice's
//! queues, installed in the current network namespace for the lifetime of
//! the run and removed on exit with the identical spec (`-D`), so exactly
//! what was added goes away, also after SIGTERM/SIGINT.
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
}

/// The tools the rule is installed with (IPv4 and IPv6).
const TOOLS: [&str; 2] = ["iptables", "ip6tables"];
const CHAIN: &str = "FORWARD";

/// Rules installed by this run; removed on drop.
#[derive(Debug)]
pub struct InstalledRules {
    installed: Vec<(&'static str, Vec<String>)>,
}

impl InstalledRules {
    /// Inserts the rule at the top of FORWARD for IPv4 and IPv6.
    pub fn install(spec: &QueueRuleSpec) -> Result<Self, String> {
        let mut rules = InstalledRules { installed: Vec::new() };
        let args = spec.args();
        for tool in TOOLS {
            match run(tool, "-I", &args) {
                Ok(()) => {
                    tracing::info!("installed: {tool} -I {CHAIN} {}", args.join(" "));
                    rules.installed.push((tool, args.clone()));
                }
                // A host without IPv6 netfilter still gets IPv4 filtering.
                Err(e) if tool == "ip6tables" => tracing::warn!("IPv6 traffic is not queued: {e}"),
                Err(e) => return Err(e), // `rules` drops and removes what was installed
            }
        }
        Ok(rules)
    }
}

impl Drop for InstalledRules {
    fn drop(&mut self) {
        for (tool, args) in self.installed.drain(..).rev() {
            match run(tool, "-D", &args) {
                Ok(()) => tracing::info!("removed: {tool} -D {CHAIN} {}", args.join(" ")),
                Err(e) => tracing::error!("could not remove the queue rule, remove it by hand: {e}"),
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
        let one = QueueRuleSpec { queues: (3, 3), mark: 0x5e1ce, bypass: false };
        assert_eq!(one.args().join(" "), "-m mark ! --mark 0x5e1ce -j NFQUEUE --queue-num 3");
        let many = QueueRuleSpec { queues: (0, 3), mark: 16, bypass: true };
        assert_eq!(
            many.args().join(" "),
            "-m mark ! --mark 0x10 -j NFQUEUE --queue-balance 0:3 --queue-bypass"
        );
    }
}
