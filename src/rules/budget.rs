//! The instruction budget: a Lua count hook adds up the VM instructions an
//! event runs and aborts the event with an error once it exceeds the limit.
//! The hook is global, so coroutines created by rules are counted too; and
//! once the budget is spent every later hook call fails again, while the
//! prelude's `pcall`/`xpcall`/`coroutine.resume` re-raise the error, so a
//! rule cannot catch its way out of the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mlua::{HookTriggers, Lua, VmState};

/// A per-event instruction budget.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    /// Installs the hook on `lua`, counting `limit` instructions per event.
    pub(super) fn install(lua: &Lua, limit: u64) -> mlua::Result<Budget> {
        let limit = limit.max(1);
        // The hook runs every `step` instructions: small enough to stop a
        // runaway loop close to the limit, large enough to cost nothing.
        let step = u32::try_from(limit.min(1000)).unwrap_or(1000);
        let used = Arc::new(AtomicU64::new(0));
        let counter = used.clone();
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(step), move |_, debug| {
            let total = counter.fetch_add(u64::from(step), Ordering::Relaxed) + u64::from(step);
            if total <= limit {
                return Ok(VmState::Continue);
            }
            let src = debug.source();
            let at = match (src.short_src.as_deref(), debug.current_line()) {
                (Some(s), Some(l)) => format!("{s}:{l}: "),
                _ => String::new(),
            };
            Err(mlua::Error::runtime(format!("{at}instruction limit of {limit} per event exceeded")))
        })?;
        Ok(Budget { used, limit })
    }

    /// A new event starts with the whole budget.
    pub(super) fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
    }

    /// True once the event ran past the limit.
    pub(super) fn exhausted(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit
    }
}
