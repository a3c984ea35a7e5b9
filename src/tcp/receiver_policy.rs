//! Which receiver model applies to a destination: the per-network table of
//! `--target-policy NET=POLICY` and `--urgent [NET=]MODE`.
//!
//! sluice keeps its invariant (rules see what the endpoint receives) in one
//! of two ways, chosen per receiving host:
//!
//! * [`TargetPolicy::Linux`] (default): sluice predicts what a Linux 6.x
//!   receiver hands to the application (its out-of-order queue, PAWS, TCP-MD5
//!   and TCP-AO checks, SYN data, urgent data, IP fragment duplicates) and
//!   inspects exactly that, so odd but benign traffic passes unchanged.
//! * [`TargetPolicy::Strict`]: for stacks sluice does not model (Windows, the
//!   BSDs, embedded stacks). Wherever two copies of bytes could disagree
//!   sluice drops the newcomer or normalises the packet, so every stack
//!   reads the one version rules saw.
//!
//! The table is looked up once per flow, when the flow is created, with the
//! address of each direction's receiver (the server for client data, the
//! client for server data); the result is stored on the connection, never
//! looked up per packet.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// How sluice keeps a receiver's byte stream and the inspected one equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPolicy {
    /// Predict Linux's receive path and inspect what it delivers.
    Linux,
    /// Drop or normalise whatever any stack could read two ways.
    Strict,
}

/// What the receiving application does with TCP urgent data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrgentMode {
    /// The application reads with default socket options: `read()` skips the
    /// urgent byte (Linux `tcp_recvmsg` without `SO_OOBINLINE`), so rules see
    /// the stream without it. Only meaningful with [`TargetPolicy::Linux`].
    Oob,
    /// sluice clears URG and the urgent pointer, so every application reads
    /// every byte inline, exactly as rules saw them.
    Inline,
}

/// The receiver model of one destination, as resolved from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverModel {
    /// Overlap, PAWS, authentication-option, SYN-data and fragment handling.
    pub policy: TargetPolicy,
    /// Urgent data handling ([`UrgentMode::Inline`] whenever the policy is strict).
    pub urgent: UrgentMode,
}

impl ReceiverModel {
    /// True if sluice predicts Linux's receive path for this receiver.
    pub fn linux(&self) -> bool {
        self.policy == TargetPolicy::Linux
    }

    /// True if urgent bytes are hidden from rules as `read()` hides them.
    pub fn urgent_oob(&self) -> bool {
        self.linux() && self.urgent == UrgentMode::Oob
    }
}

impl Default for ReceiverModel {
    fn default() -> Self {
        ReceiverModel { policy: TargetPolicy::Linux, urgent: UrgentMode::Oob }
    }
}

/// Per-network receiver policies, looked up by longest prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverTable {
    policies: Vec<(IpNet, TargetPolicy)>,
    urgent: Vec<(IpNet, UrgentMode)>,
    /// Urgent mode outside every `urgent` network (default `oob`).
    default_urgent: Option<UrgentMode>,
}

impl ReceiverTable {
    /// Sets the policy of `net` (a later entry for the same prefix replaces
    /// an earlier one).
    pub fn set_policy(&mut self, net: IpNet, policy: TargetPolicy) {
        let net = net.trunc();
        self.policies.retain(|(n, _)| *n != net);
        self.policies.push((net, policy));
    }

    /// Sets the urgent mode of `net`, or the default when `net` is `None`.
    pub fn set_urgent(&mut self, net: Option<IpNet>, mode: UrgentMode) {
        match net.map(|n| n.trunc()) {
            Some(net) => {
                self.urgent.retain(|(n, _)| *n != net);
                self.urgent.push((net, mode));
            }
            None => self.default_urgent = Some(mode),
        }
    }

    /// The model for the receiver at `addr`: the longest matching prefix of
    /// each list, `linux` and `oob` where none matches.
    pub fn lookup(&self, addr: IpAddr) -> ReceiverModel {
        let policy = longest(&self.policies, addr).unwrap_or(TargetPolicy::Linux);
        let urgent = longest(&self.urgent, addr).or(self.default_urgent).unwrap_or(UrgentMode::Oob);
        ReceiverModel { policy, urgent }
    }
}

/// The value of the longest prefix in `list` containing `addr`.
fn longest<T: Copy>(list: &[(IpNet, T)], addr: IpAddr) -> Option<T> {
    list.iter().filter(|(n, _)| n.contains(&addr)).max_by_key(|(n, _)| n.prefix_len()).map(|(_, v)| *v)
}

impl FromStr for TargetPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linux" => Ok(TargetPolicy::Linux),
            "strict" => Ok(TargetPolicy::Strict),
            _ => Err(format!("unknown target policy {s:?} (expected linux or strict)")),
        }
    }
}

impl FromStr for UrgentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oob" => Ok(UrgentMode::Oob),
            "inline" => Ok(UrgentMode::Inline),
            _ => Err(format!("unknown urgent mode {s:?} (expected oob or inline)")),
        }
    }
}

impl fmt::Display for TargetPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetPolicy::Linux => "linux",
            TargetPolicy::Strict => "strict",
        })
    }
}

/// A network: `10.0.0.0/8`, `fd00::/8`, or a bare address (a host).
fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not a network (expected e.g. 10.1.0.0/16, fd00::/8 or an address)"))
}

/// `--target-policy NET=POLICY`.
pub fn parse_target_policy(s: &str) -> Result<(IpNet, TargetPolicy), String> {
    let (net, policy) =
        s.split_once('=').ok_or_else(|| format!("{s:?}: expected NET=POLICY, e.g. 10.1.0.0/16=strict"))?;
    Ok((parse_net(net.trim())?, policy.trim().parse()?))
}

/// `--urgent MODE` (the default) or `--urgent NET=MODE`.
pub fn parse_urgent(s: &str) -> Result<(Option<IpNet>, UrgentMode), String> {
    match s.split_once('=') {
        Some((net, mode)) => Ok((Some(parse_net(net.trim())?), mode.trim().parse()?)),
        None => Ok((None, s.trim().parse()?)),
    }
}

/// The receiver-model flags, shared by `sluice pcap` and `sluice run`
/// (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReceiverArgs {
    /// Receiver model of a destination network, NET=linux|strict (repeatable,
    /// IPv4 and IPv6, longest prefix wins; default linux everywhere).
    #[arg(long = "target-policy", value_name = "NET=POLICY", value_parser = parse_target_policy)]
    pub target_policy: Vec<(IpNet, TargetPolicy)>,
    /// Urgent data under the linux policy: oob (the application's read()
    /// skips the urgent byte; default) or inline (URG cleared). MODE sets the
    /// default, NET=MODE one network (repeatable).
    #[arg(long = "urgent", value_name = "[NET=]MODE", value_parser = parse_urgent)]
    pub urgent: Vec<(Option<IpNet>, UrgentMode)>,
}

impl ReceiverArgs {
    /// The table the flags describe.
    pub fn table(&self) -> ReceiverTable {
        let mut t = ReceiverTable::default();
        for (net, policy) in &self.target_policy {
            t.set_policy(*net, *policy);
        }
        for (net, mode) in &self.urgent {
            t.set_urgent(*net, *mode);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_for_v4_and_v6_and_linux_is_the_default() {
        let mut t = ReceiverTable::default();
        t.set_policy("10.0.0.0/8".parse().unwrap(), TargetPolicy::Strict);
        t.set_policy("10.1.0.0/16".parse().unwrap(), TargetPolicy::Linux);
        t.set_policy("10.1.2.3/32".parse().unwrap(), TargetPolicy::Strict);
        t.set_policy("fd00::/8".parse().unwrap(), TargetPolicy::Strict);
        assert_eq!(t.lookup(ip("10.9.9.9")).policy, TargetPolicy::Strict);
        assert_eq!(t.lookup(ip("10.1.9.9")).policy, TargetPolicy::Linux);
        assert_eq!(t.lookup(ip("10.1.2.3")).policy, TargetPolicy::Strict);
        assert_eq!(t.lookup(ip("192.168.0.1")), ReceiverModel::default());
        assert_eq!(t.lookup(ip("fd00::1")).policy, TargetPolicy::Strict);
        assert_eq!(t.lookup(ip("fe80::1")).policy, TargetPolicy::Linux);
    }

    #[test]
    fn urgent_per_network_with_a_default() {
        let args = ReceiverArgs {
            target_policy: vec![parse_target_policy("10.2.0.0/16=strict").unwrap()],
            urgent: vec![parse_urgent("inline").unwrap(), parse_urgent("10.1.0.0/16=oob").unwrap()],
        };
        let t = args.table();
        assert_eq!(t.lookup(ip("10.1.0.5")).urgent, UrgentMode::Oob);
        assert!(t.lookup(ip("10.1.0.5")).urgent_oob());
        assert_eq!(t.lookup(ip("10.3.0.5")).urgent, UrgentMode::Inline);
        // A strict receiver never gets oob handling, whatever the flag says.
        let strict = ReceiverModel { policy: TargetPolicy::Strict, urgent: UrgentMode::Oob };
        assert!(!strict.urgent_oob());
        assert_eq!(t.lookup(ip("10.2.0.5")).policy, TargetPolicy::Strict);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = parse_target_policy("10.0.0.0/8=windows").unwrap_err();
        assert!(e.contains("unknown target policy \"windows\""), "{e}");
        let e = parse_target_policy("10.0.0.0/8").unwrap_err();
        assert!(e.contains("expected NET=POLICY"), "{e}");
        let e = parse_target_policy("10.0.0.0/33=strict").unwrap_err();
        assert!(e.contains("is not a network"), "{e}");
        let e = parse_urgent("10.0.0.0/8=sideways").unwrap_err();
        assert!(e.contains("unknown urgent mode"), "{e}");
        assert_eq!(parse_target_policy("fd00::1=strict").unwrap().0, "fd00::1/128".parse::<IpNet>().unwrap());
    }

    /// The flags as `sluice run` and `sluice pcap` flatten them.
    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        receiver: ReceiverArgs,
    }

    #[test]
    fn flags_parse_repeated_and_reject_bad_values_clearly() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "sluice",
            "--target-policy",
            "10.0.0.0/8=strict",
            "--target-policy",
            "2001:db8::/32=strict",
            "--urgent",
            "inline",
            "--urgent",
            "10.1.0.0/16=oob",
        ])
        .unwrap();
        let t = cli.receiver.table();
        assert_eq!(t.lookup(ip("10.2.0.1")).policy, TargetPolicy::Strict);
        assert_eq!(t.lookup(ip("2001:db8::1")).policy, TargetPolicy::Strict);
        assert_eq!(
            t.lookup(ip("192.0.2.1")),
            ReceiverModel { policy: TargetPolicy::Linux, urgent: UrgentMode::Inline }
        );
        let e = Cli::try_parse_from(["sluice", "--target-policy", "10.0.0.0/8=bsd"]).unwrap_err().to_string();
        assert!(e.contains("unknown target policy \"bsd\" (expected linux or strict)"), "{e}");
        let e = Cli::try_parse_from(["sluice", "--urgent", "sometimes"]).unwrap_err().to_string();
        assert!(e.contains("unknown urgent mode"), "{e}");
    }

    #[test]
    fn a_later_entry_for_the_same_prefix_replaces_the_earlier() {
        let mut t = ReceiverTable::default();
        t.set_policy("10.0.0.0/8".parse().unwrap(), TargetPolicy::Strict);
        t.set_policy("10.0.0.1/8".parse().unwrap(), TargetPolicy::Linux);
        assert_eq!(t.lookup(ip("10.0.0.9")).policy, TargetPolicy::Linux);
    }
}
