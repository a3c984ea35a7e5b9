//! How rule errors are logged. A rule failing on every packet would flood
//! the log, so each rule logs its first ten errors, then every thousandth
//! (the `rule_errors` counter and the per-rule summary count them all).
//!
//! The count is per rule in input order. `sluice pcap --workers N` runs a
//! Lua state per worker, each seeing only its shard's errors, so its
//! workers do not log rule errors themselves: they hand each one over
//! ([`LuaRules::hand_over_error_logs`]) and the merge, which sees them in
//! input order, logs them through a [`RuleErrorLog`] as one worker would.
//!
//! [`LuaRules::hand_over_error_logs`]: super::LuaRules::hand_over_error_logs

use std::collections::HashMap;
use std::fmt;

/// Errors of one rule logged in full before the log thins out.
const LOGGED_ERRORS: u64 = 10;

/// One rule error, for whoever logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrorLine {
    /// The failing rule: its place in the rule file's declarations, the
    /// same in every Lua state loaded from the file; `None` for a failure
    /// outside any rule (an event's setup, a policy), which is always logged.
    pub rule: Option<usize>,
    /// The rule's label (its `name`, else `file:line`), or what failed.
    pub label: String,
    /// The error message.
    pub message: String,
}

/// Where a rule set hands its error lines instead of logging them.
pub type ErrorLineSink = Box<dyn Fn(RuleErrorLine) + Send>;

/// Logs error `nth` of rule `label`: the first ten, then every thousandth;
/// the tenth is followed by a line saying the log thins out. `message` is
/// asked for only when the error is logged.
pub(super) fn log_rule_error<M: fmt::Display>(label: &str, nth: u64, message: impl FnOnce() -> M) {
    if nth <= LOGGED_ERRORS || nth % 1000 == 0 {
        let message = message();
        tracing::warn!(target: "sluice::rules", rule = %label, errors = nth, "rule error: {message}");
    }
    if nth == LOGGED_ERRORS {
        tracing::warn!(
            target: "sluice::rules",
            rule = %label,
            "rule {label} failed {LOGGED_ERRORS} times: from now on only every 1000th of its errors is logged \
             (all are counted in rule_errors and in the per-rule summary)"
        );
    }
}

/// Logs handed-over error lines, counting each rule's errors as its own
/// Lua state would have.
#[derive(Debug, Default)]
pub struct RuleErrorLog {
    counts: HashMap<usize, u64>,
}

impl RuleErrorLog {
    /// Logs `line` as the rule's next error.
    pub fn log(&mut self, line: &RuleErrorLine) {
        let nth = match line.rule {
            Some(rule) => {
                let n = self.counts.entry(rule).or_default();
                *n += 1;
                *n
            }
            None => 1,
        };
        log_rule_error(&line.label, nth, || &line.message);
    }

    /// Errors logged so far of `rule`.
    #[cfg(test)]
    fn count(&self, rule: usize) -> u64 {
        self.counts.get(&rule).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rule: Option<usize>) -> RuleErrorLine {
        RuleErrorLine { rule, label: "r".into(), message: "m".into() }
    }

    #[test]
    fn each_rule_is_counted_apart_and_setup_failures_are_not_counted() {
        let mut log = RuleErrorLog::default();
        for _ in 0..3 {
            log.log(&line(Some(0)));
        }
        log.log(&line(Some(2)));
        log.log(&line(None));
        assert_eq!(log.count(0), 3);
        assert_eq!(log.count(2), 1, "another rule");
        assert_eq!(log.count(1), 0);
    }
}
