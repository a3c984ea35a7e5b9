//! Building a rule state: a sandboxed Lua 5.4 with the haka API, the
//! instruction budget and the memory limit, then running the rule file.
//!
//! `require(name)` looks first in the modules embedded in sluice (`rules/`
//! in the source tree), then for `name.lua` beside the rule file, where dots
//! and slashes in the name are directory separators.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value};

use super::budget::Budget;
use super::context::{context, Ctx, RuleContext};
use super::error::{error_message, located, RuleError};
use super::policy::Policy;
use super::rule::{PointPolicies, Rule};
use super::{alert, dissectors, log, policy, rule};
use crate::alert::AlertSink;
use crate::config::RulesConfig;
use crate::stats::Stats;

const PRELUDE: &str = include_str!("../../rules/haka.lua");
const STREAM_ITER: &str = include_str!("../../rules/stream_iter.lua");

/// Named registry slot of the function that adds the iterator case to the
/// `regexp/pcre` module table.
const WRAP_REGEXP: &str = "sluice.regexp.wrap";

/// The Lua modules shipped with sluice, by `require` name.
const EMBEDDED: &[(&str, &str)] = &[
    ("protocol/ipv4", include_str!("../../rules/protocol/ipv4.lua")),
    ("protocol/ipv6", include_str!("../../rules/protocol/ipv6.lua")),
    ("protocol/tcp", include_str!("../../rules/protocol/tcp.lua")),
    ("protocol/udp", include_str!("../../rules/protocol/udp.lua")),
    ("protocol/icmp", include_str!("../../rules/protocol/icmp.lua")),
    ("protocol/tcp_connection", include_str!("../../rules/protocol/tcp_connection.lua")),
    ("protocol/udp_connection", include_str!("../../rules/protocol/udp_connection.lua")),
];

/// Everything the rule files declared.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// Rules, in declaration order.
    pub rules: Vec<Rule>,
    /// Policies on the built-in points, in declaration order.
    pub policies: Vec<Policy>,
    /// Policies on points made by `haka.policy.new` (they live in the point).
    pub point_policies: usize,
}

/// A loaded rule state.
pub(super) struct Loaded {
    /// The Lua state.
    pub lua: Lua,
    /// Its instruction budget.
    pub budget: Budget,
    /// What the rule files declared.
    pub registry: Registry,
    /// The blocking stream iterator's constructor.
    pub new_iter: Function,
    /// `"up"` and `"down"`, made once.
    pub dirs: [mlua::String; 2],
    /// The rule context.
    pub ctx: Ctx,
}

/// Builds a state and runs `source` (named `name`, from `base_dir`) in it.
pub(super) fn load(
    name: &str,
    source: &[u8],
    base_dir: Option<PathBuf>,
    cfg: &RulesConfig,
    alerts: AlertSink,
    stats: Arc<Stats>,
) -> Result<Loaded, RuleError> {
    let state = new_state(cfg, base_dir, alerts, stats)
        .map_err(|e| RuleError::new(format!("cannot set up the rule state: {}", error_message(&e))))?;
    let chunk = state.lua.load(source).set_name(format!("@{name}"));
    let func = chunk.into_function()?;
    state.budget.reset();
    // Declarations go to app data while the files load; taking them out
    // afterwards also makes any later haka.rule/haka.policy call an error.
    state.lua.set_app_data(Vec::<Rule>::new());
    state.lua.set_app_data(Vec::<Policy>::new());
    state.lua.set_app_data(PointPolicies::default());
    set_loading(&state.lua, true)?;
    let ran = func.call::<()>(());
    set_loading(&state.lua, false)?;
    let registry = Registry {
        rules: state.lua.remove_app_data::<Vec<Rule>>().unwrap_or_default(),
        policies: state.lua.remove_app_data::<Vec<Policy>>().unwrap_or_default(),
        point_policies: state.lua.remove_app_data::<PointPolicies>().unwrap_or_default().0,
    };
    ran?;
    let _ = state.lua.gc_collect();
    Ok(Loaded { registry, ..state })
}

fn set_loading(lua: &Lua, on: bool) -> Result<(), RuleError> {
    context(lua)?.loading.set(on);
    Ok(())
}

/// Generational collector settings (percent of heap growth; see `new_state`).
const GC_MINOR_MULTIPLIER: std::ffi::c_int = 50;
const GC_MAJOR_MULTIPLIER: std::ffi::c_int = 300;

fn new_state(
    cfg: &RulesConfig,
    base_dir: Option<PathBuf>,
    alerts: AlertSink,
    stats: Arc<Stats>,
) -> mlua::Result<Loaded> {
    // No io, package or debug library: rules get no files, no native code
    // and no way around the sandbox.
    let libs = StdLib::COROUTINE | StdLib::TABLE | StdLib::OS | StdLib::STRING | StdLib::UTF8 | StdLib::MATH;
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    lua.set_memory_limit(cfg.memory_limit)?;
    // Every event makes short-lived garbage (its objects, strings from
    // `asstring`); generational collection reclaims it cheaply. With Lua's
    // defaults (minor 20%, major 100%) a chunk's string (up to ~46 KB) often
    // doubles the small heap and forces a full collection: minor at 50% and
    // major at 300% cut the collector's instructions per packet by 40% on a
    // bulk capture (callgrind), while the memory limit still bounds the heap.
    lua.gc_gen(GC_MINOR_MULTIPLIER, GC_MAJOR_MULTIPLIER);
    let budget = Budget::install(&lua, cfg.instruction_limit)?;

    let ctx = Ctx::new(RuleContext::new(base_dir, alerts, stats));
    lua.set_app_data(ctx.clone());
    super::event_data::install(&lua, &ctx)?;

    let (dissectors, hooks) = dissectors::build(&lua)?;
    let raw = lua.create_table()?;
    raw.raw_set("dissectors", dissectors)?;
    raw.raw_set("rule", rule::rule_function(&lua, hooks.clone())?)?;
    raw.raw_set("alert", alert::install(&lua)?)?;
    raw.raw_set("policy", policy::install(&lua, hooks)?)?;
    raw.raw_set("log", lua.create_function(log::log)?)?;
    raw.raw_set("print", lua.create_function(log::print)?)?;
    raw.raw_set("require", require_function(&lua)?)?;
    raw.raw_set("vars", vars_table(&lua, &cfg.vars)?)?;
    raw.raw_set("time", lua.create_function(super::time::haka_time)?)?;
    raw.raw_set("network_time", lua.create_function(super::time::network_time)?)?;
    let b = budget.clone();
    raw.raw_set("exhausted", lua.create_function(move |_, ()| Ok(b.exhausted()))?)?;
    // Before the prelude runs: the iterator captures the real coroutine.yield.
    let iter_module: Table = lua.load(STREAM_ITER).set_name("=[sluice]stream_iter").call(())?;
    let new_iter: Function = iter_module.get("new")?;
    lua.set_named_registry_value(WRAP_REGEXP, iter_module.get::<Function>("wrap_regexp")?)?;
    lua.set_named_registry_value(super::regexp::RE_MATCH, iter_module.get::<Function>("re_match")?)?;
    lua.load(PRELUDE).set_name("=[sluice]haka").call::<()>(raw)?;

    let dirs = [lua.create_string("up")?, lua.create_string("down")?];
    Ok(Loaded { lua, budget, registry: Registry::default(), new_iter, dirs, ctx })
}

/// `sluice.vars`: the `--var NAME=VALUE` settings, as strings.
fn vars_table(lua: &Lua, vars: &[(String, String)]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (k, v) in vars {
        t.raw_set(k.as_str(), v.as_str())?;
    }
    Ok(t)
}

/// The `require` function; loaded modules are cached in a private table.
fn require_function(lua: &Lua) -> mlua::Result<Function> {
    let loaded = lua.create_table()?;
    // Marks a module whose top level is running (catches require cycles).
    let loading = lua.create_table()?;
    lua.create_function(move |lua, name: String| {
        // "a.b" and "a/b" name the same module, cached once.
        let name = name.trim().replace('.', "/");
        let cached: Value = loaded.raw_get(name.as_str())?;
        if cached == Value::Table(loading.clone()) {
            return Err(located(lua, format!("require: '{name}' requires itself (cycle)")));
        }
        if !cached.is_nil() {
            return Ok(cached);
        }
        if let Some(module) = super::regexp::native_module(lua, &name)? {
            // Its iterator case is Lua code (rules/stream_iter.lua).
            let wrap: Function = lua.named_registry_value(WRAP_REGEXP)?;
            let module: Value = wrap.call(module)?;
            loaded.raw_set(name.as_str(), module.clone())?;
            return Ok(module);
        }
        let (chunk_name, source) = match EMBEDDED.iter().find(|(n, _)| *n == name) {
            Some((n, src)) => (format!("=[sluice]{n}"), src.as_bytes().to_vec()),
            None => {
                let path = module_path(lua, &name)?;
                let src = std::fs::read(&path).map_err(|e| {
                    located(lua, format!("require: cannot read module '{name}' ({}): {e}", path.display()))
                })?;
                (format!("@{}", path.display()), src)
            }
        };
        let func = lua.load(source).set_name(chunk_name).into_function()?;
        loaded.raw_set(name.as_str(), loading.clone())?;
        let result = func.call::<Value>(name.as_str());
        let value = match result {
            Ok(Value::Nil) => Value::Boolean(true),
            Ok(v) => v,
            Err(e) => {
                loaded.raw_set(name.as_str(), Value::Nil)?;
                return Err(e);
            }
        };
        loaded.raw_set(name.as_str(), value.clone())?;
        Ok(value)
    })
}

/// `<rule dir>/<name with dots and slashes as separators>.lua`. Names are
/// plain identifiers separated by dots or slashes, so a module can never
/// be looked for outside the rule directory.
fn module_path(lua: &Lua, name: &str) -> mlua::Result<PathBuf> {
    let ctx = context(lua)?;
    let Some(base) = ctx.base_dir.as_deref() else {
        return Err(located(
            lua,
            format!("require: no module '{name}' (rules loaded from a string have no directory)"),
        ));
    };
    let parts: Vec<&str> = name.split('/').collect();
    let valid =
        |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !parts.iter().all(valid) {
        return Err(located(lua, format!("require: invalid module name '{name}'")));
    }
    let mut path = base.to_path_buf();
    for p in &parts {
        path.push(p);
    }
    path.set_extension("lua");
    Ok(path)
}

/// The directory of a rule file (for `require`).
pub(super) fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
