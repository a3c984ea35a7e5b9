//! Lua rules speaking Haka's API (see `docs/rules-api.md`).
//!
//! [`LuaRules`] is the engine's [`Inspector`](crate::inspect::Inspector): one
//! sandboxed Lua 5.4 state with the rules of one rule file. Each worker
//! thread owns its own (`LuaRules` is `Send`, never shared).
//!
//! * `loader` builds the state (sandbox, prelude, `require`) and runs the file;
//! * `dispatch` calls the rules of each event and combines their decisions;
//! * `packet`, `flow`, `data`, `addr` are the objects rules see;
//! * `rule`, `policy`, `alert`, `log` are the `haka.*` functions;
//! * `context` is the state those functions share, `budget` the
//!   instruction limit, `dissectors` the event tables, `error` the messages.

mod addr;
mod alert;
mod budget;
mod c_closure;
mod carry;
mod context;
mod data;
mod data_event;
mod depth_event;
mod dispatch;
mod dissectors;
mod end_event;
mod error;
mod error_log;
mod event_data;
mod event_data_c;
mod flow;
mod flow_fields;
mod flows;
mod gap_event;
mod lent;
mod loader;
mod log;
mod match_state;
mod monologue;
mod packet;
mod per_direction;
mod policy;
mod regexp;
mod rule;
mod stream_buf;
mod stream_match;
mod stream_objects;
mod sub_buffer;
mod time;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use error::RuleError;
pub use error_log::{ErrorLineSink, RuleErrorLine, RuleErrorLog};
pub use log::{print_to_stdout, PrintLineSink};

use crate::alert::AlertSink;
use crate::config::{ErrorPolicy, RulesConfig};
use crate::inspect::Event;
use crate::stats::Stats;
use budget::Budget;
use policy::Policy;
use rule::Rule;

/// Where rules send what they produce.
#[derive(Debug, Clone)]
pub struct RuleSinks {
    /// Alerts (`haka.alert`, policy alerts).
    pub alerts: AlertSink,
    /// Counters (`rule_errors`, `alerts`).
    pub stats: Arc<Stats>,
}

/// A loaded rule set.
pub struct LuaRules {
    lua: mlua::Lua,
    budget: Budget,
    /// Rules per event, indexed by [`Event::index`].
    rules: Vec<Vec<Rule>>,
    /// Policies per `new_connection` event, indexed by [`Event::index`].
    policies: Vec<Vec<Policy>>,
    /// Events the engine must call: the hooked ones, and those the rules
    /// layer builds others from (`receive_data` for monologues,
    /// `end_connection` for the end of streams).
    subscribed: [bool; Event::ALL.len()],
    /// Events some rule or policy hooks.
    hooked: [bool; Event::ALL.len()],
    /// The live connections and their flow objects.
    flows: flows::Flows,
    /// The blocking iterator's constructor (`rules/stream_iter.lua`).
    new_iter: mlua::Function,
    /// Number of streamed `receive_data` rules.
    streamed_rules: usize,
    /// Most stream bytes a connection direction may hold for rules.
    max_held: usize,
    /// Size of a monologue part.
    monologue_cap: usize,
    dirs: [mlua::String; 2],
    /// The rule context, reached without a lookup.
    ctx: context::Ctx,
    on_error: ErrorPolicy,
    memory_limit: usize,
    stats: Arc<Stats>,
    /// Set: rule errors go there instead of the log (`error_log.rs`).
    error_lines: Option<ErrorLineSink>,
    rule_count: usize,
    policy_count: usize,
}

impl std::fmt::Debug for LuaRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaRules")
            .field("rules", &self.rule_count)
            .field("policies", &self.policy_count)
            .finish_non_exhaustive()
    }
}

/// What `sluice check` reports about a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Number of `haka.rule` declarations.
    pub rules: usize,
    /// Number of `haka.policy` declarations.
    pub policies: usize,
    /// The events hooked, as `dissector.event`, in [`Event::ALL`] order.
    pub events: Vec<String>,
}

impl LuaRules {
    /// Loads the rule file at `path`.
    pub fn load(path: &Path, cfg: &RulesConfig, sinks: RuleSinks) -> Result<LuaRules, RuleError> {
        let source = std::fs::read(path).map_err(|e| RuleError::new(format!("{}: {e}", path.display())))?;
        let name = path.display().to_string();
        Self::build(&name, &source, Some(loader::base_dir_of(path)), cfg, sinks)
            .map_err(|e| RuleError::new(error::expand_short_path(e.message(), &name)))
    }

    /// Loads rules from a string named `name` (tests; `require` finds only
    /// the embedded modules).
    pub fn from_source(
        name: &str,
        source: &str,
        cfg: &RulesConfig,
        sinks: RuleSinks,
    ) -> Result<LuaRules, RuleError> {
        Self::build(name, source.as_bytes(), None, cfg, sinks)
    }

    fn build(
        name: &str,
        source: &[u8],
        base_dir: Option<std::path::PathBuf>,
        cfg: &RulesConfig,
        sinks: RuleSinks,
    ) -> Result<LuaRules, RuleError> {
        let loaded = loader::load(name, source, base_dir, cfg, sinks.alerts, sinks.stats.clone())?;
        let n = Event::ALL.len();
        let mut rules: Vec<Vec<Rule>> = vec![Vec::new(); n];
        let mut policies: Vec<Vec<Policy>> = vec![Vec::new(); n];
        let rule_count = loaded.registry.rules.len();
        let policy_count = loaded.registry.policies.len() + loaded.registry.point_policies;
        for r in loaded.registry.rules {
            rules[r.event.index()].push(r);
        }
        for p in loaded.registry.policies {
            policies[p.event.index()].push(p);
        }
        let mut hooked = [false; Event::ALL.len()];
        for (i, s) in hooked.iter_mut().enumerate() {
            *s = !rules[i].is_empty() || !policies[i].is_empty();
        }
        let mut subscribed = hooked;
        subscribed[Event::TcpData.index()] |= hooked[Event::TcpMonologue.index()];
        subscribed[Event::TcpEndConnection.index()] |= subscribed[Event::TcpData.index()];
        let streamed_rules = rules[Event::TcpData.index()].iter().filter(|r| r.streamed).count();
        Ok(LuaRules {
            lua: loaded.lua,
            budget: loaded.budget,
            rules,
            policies,
            subscribed,
            hooked,
            flows: flows::Flows::default(),
            new_iter: loaded.new_iter,
            streamed_rules,
            max_held: cfg.max_held_bytes,
            monologue_cap: cfg.monologue_cap.max(1),
            dirs: loaded.dirs,
            ctx: loaded.ctx,
            on_error: cfg.on_error,
            memory_limit: cfg.memory_limit,
            stats: sinks.stats,
            error_lines: None,
            rule_count,
            policy_count,
        })
    }

    /// From now on each rule error is handed to `sink` instead of being
    /// logged (it is still counted): for a caller that runs several rule
    /// sets over shards of one input and logs their errors in input order
    /// through one [`RuleErrorLog`].
    pub fn hand_over_error_logs(&mut self, sink: ErrorLineSink) {
        self.error_lines = Some(sink);
    }

    /// From now on each line the rules `print` is handed to `sink`
    /// (without its newline) instead of being written to standard output.
    pub fn hand_over_prints(&mut self, sink: PrintLineSink) {
        self.lua.set_app_data(log::PrintSink(sink));
    }

    /// Number of rules (`haka.rule`) loaded.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Number of policies (`haka.policy`) loaded.
    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    /// Each rule that raised errors, by its label (`name (file:line)` or
    /// `file:line`), with its error count, in declaration order.
    pub fn rule_errors(&self) -> Vec<(String, u64)> {
        let mut all: Vec<&Rule> = self.rules.iter().flatten().filter(|r| r.errors > 0).collect();
        all.sort_by_key(|r| r.order);
        all.iter().map(|r| (r.label.clone(), r.errors)).collect()
    }

    /// Every rule's label and error count (errors or not), in declaration
    /// order: what `sluice pcap --workers N` adds up over its workers.
    pub fn rule_error_table(&self) -> Vec<(String, u64)> {
        let mut all: Vec<&Rule> = self.rules.iter().flatten().collect();
        all.sort_by_key(|r| r.order);
        all.iter().map(|r| (r.label.clone(), r.errors)).collect()
    }

    /// The events some rule or policy hooks, as `dissector.event`.
    pub fn hooked_events(&self) -> Vec<String> {
        Event::ALL
            .iter()
            .filter(|e| self.hooked[e.index()])
            .map(|e| {
                let (d, n) = e.lua_name();
                format!("{d}.{n}")
            })
            .collect()
    }
}

/// Loads the rule file at `path` with the default configuration and alerts
/// kept in memory, and reports what it declares (`sluice check`).
pub fn check(path: &Path, cfg: &RulesConfig) -> Result<CheckReport, RuleError> {
    let (alerts, _) = AlertSink::memory();
    let sinks = RuleSinks { alerts, stats: Arc::new(Stats::new()) };
    let rules = LuaRules::load(path, cfg, sinks)?;
    Ok(CheckReport {
        rules: rules.rule_count(),
        policies: rules.policy_count(),
        events: rules.hooked_events(),
    })
}
