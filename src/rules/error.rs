//! Rule errors: what `sluice check` and the loader report, and how an mlua
//! error becomes one readable line with the rule file and line in front.

use std::fmt;

use mlua::Lua;

/// A rule set could not be loaded. Its text reads
/// `path/to/file.lua:LINE: message` whenever Lua knows the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    message: String,
}

impl RuleError {
    /// An error with the given text.
    pub fn new(message: impl Into<String>) -> Self {
        RuleError { message: message.into() }
    }

    /// The error text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

impl From<mlua::Error> for RuleError {
    fn from(e: mlua::Error) -> Self {
        RuleError::new(error_message(&e))
    }
}

/// The one-line message of an mlua error: the innermost cause, without the
/// stack traceback mlua appends (the location is already in the message).
pub(super) fn error_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_message(cause),
        mlua::Error::WithContext { context, cause } => format!("{context}: {}", error_message(cause)),
        mlua::Error::RuntimeError(m) => strip_traceback(m).to_owned(),
        mlua::Error::SyntaxError { message, .. } => strip_traceback(message).to_owned(),
        mlua::Error::MemoryError(_) => "Lua memory limit exceeded".to_owned(),
        other => strip_traceback(&other.to_string()).to_owned(),
    }
}

/// Lua shortens chunk names longer than 60 bytes to `...<end of path>`;
/// this puts the whole `path` back at the start of such a message.
pub(super) fn expand_short_path(msg: &str, path: &str) -> String {
    let Some(rest) = msg.strip_prefix("...") else { return msg.to_owned() };
    let cut = (1..=rest.len())
        .rev()
        .filter(|&k| rest.is_char_boundary(k))
        .find(|&k| rest[k..].starts_with(':') && path.ends_with(&rest[..k]));
    match cut {
        Some(k) => format!("{path}{}", &rest[k..]),
        None => msg.to_owned(),
    }
}

fn strip_traceback(m: &str) -> &str {
    match m.find("\nstack traceback:") {
        Some(i) => &m[..i],
        None => m,
    }
}

/// `file:line` of the innermost rule code running now (skipping sluice's own
/// embedded chunks, whose names start with `=`), like Lua's `luaL_where`.
pub(super) fn rule_location(lua: &Lua) -> Option<String> {
    // Level 0 is the Rust function itself; a few levels cover mlua's
    // generated `__index` wrappers and the prelude's thin wrappers.
    for level in 1..12 {
        let found = lua.inspect_stack(level, |d| {
            let src = d.source();
            let source = src.source.as_deref().unwrap_or("");
            if src.what != "Lua" && src.what != "main" || source.starts_with('=') {
                return None;
            }
            let short = src.short_src.as_deref().unwrap_or("?").to_owned();
            Some(match d.current_line() {
                Some(line) => format!("{short}:{line}"),
                None => short,
            })
        });
        match found {
            None => return None,
            Some(Some(loc)) => return Some(loc),
            Some(None) => {}
        }
    }
    None
}

/// A Lua runtime error whose message starts with the rule location, as
/// `error("...")` would produce from Lua.
pub(super) fn located(lua: &Lua, msg: impl fmt::Display) -> mlua::Error {
    match rule_location(lua) {
        Some(loc) => mlua::Error::runtime(format!("{loc}: {msg}")),
        None => mlua::Error::runtime(msg.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceback_is_stripped() {
        let e = mlua::Error::RuntimeError("a.lua:3: boom\nstack traceback:\n\t[C]: in ?".into());
        assert_eq!(error_message(&e), "a.lua:3: boom");
        let wrapped =
            mlua::Error::CallbackError { traceback: "tb".into(), cause: std::sync::Arc::new(e.clone()) };
        assert_eq!(error_message(&wrapped), "a.lua:3: boom");
    }

    #[test]
    fn shortened_paths_are_expanded() {
        let path = "/a/very/long/directory/name/that/goes/on/and/on/for/ever/rules.lua";
        assert_eq!(expand_short_path("...on/for/ever/rules.lua:3: oops", path), format!("{path}:3: oops"));
        assert_eq!(expand_short_path("...other.lua:3: oops", path), "...other.lua:3: oops");
        assert_eq!(expand_short_path("short.lua:1: x", path), "short.lua:1: x");
    }

    #[test]
    fn located_errors_name_the_calling_line() {
        let lua = Lua::new();
        let f = lua.create_function(|lua, ()| -> mlua::Result<()> { Err(located(lua, "nope")) }).unwrap();
        lua.globals().set("f", f).unwrap();
        let err = lua.load("local x = 1\nf()").set_name("@dir/r.lua").exec().unwrap_err();
        assert_eq!(error_message(&err), "dir/r.lua:2: nope");
    }
}
