//! `haka.log` and `print`. Rule logs become `tracing` events with target
//! `sluice::rules` (the prelude formats them with `string.format` first);
//! `print` writes one line to standard output (or hands it over).

use std::io::Write;

use mlua::Lua;

use super::error::rule_location;

/// The raw log function: `(level, message)`.
pub(super) fn log(lua: &Lua, (level, msg): (mlua::String, mlua::String)) -> mlua::Result<()> {
    let msg = msg.to_string_lossy();
    let at = rule_location(lua).unwrap_or_default();
    match &level.as_bytes()[..] {
        b"debug" => tracing::debug!(target: "sluice::rules", at = %at, "{msg}"),
        b"warning" | b"warn" => tracing::warn!(target: "sluice::rules", at = %at, "{msg}"),
        b"error" => tracing::error!(target: "sluice::rules", at = %at, "{msg}"),
        _ => tracing::info!(target: "sluice::rules", at = %at, "{msg}"),
    }
    Ok(())
}

/// Where `print` lines go instead of standard output, if set (app data of
/// the Lua state; see [`super::LuaRules::hand_over_prints`]).
pub(super) struct PrintSink(pub(super) PrintLineSink);

/// Takes each line a rule prints, without its newline.
pub type PrintLineSink = Box<dyn Fn(&[u8]) + Send>;

/// The raw print function: one line, already joined by the prelude.
pub(super) fn print(lua: &Lua, line: mlua::String) -> mlua::Result<()> {
    if let Some(sink) = lua.app_data_ref::<PrintSink>() {
        (sink.0)(&line.as_bytes());
        return Ok(());
    }
    print_to_stdout(&line.as_bytes());
    Ok(())
}

/// Writes one printed line to standard output, as `print` does (also for
/// lines handed over and written later).
pub fn print_to_stdout(line: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not turn into a rule error, nor stop a run.
    let _ = out.write_all(line).and_then(|()| out.write_all(b"\n"));
}
