//! PCRE syntax → the syntax `regex-syntax` parses, with the same meaning on
//! bytes, or an error naming the PCRE feature a linear-time automaton cannot
//! do.
//!
//! Haka compiled its patterns with PCRE in byte mode (no UTF-8) and always
//! multi-line; sluice parses the translation with Unicode off and
//! multi-line on, so `.`, `\w`, classes and case folding act on bytes the
//! way PCRE's did. The translator reads the pattern once, left to right, and
//! rewrites what the two dialects spell differently:
//!
//! * literal bytes are written as `\xhh` (so `&&`, `--`, `~~`, `[` inside
//!   classes, bytes ≥ 0x80 and spaces mean what PCRE meant; only the
//!   two-digit `\xhh` form is a byte in `regex-syntax`, `\x{hh}` is a code point);
//! * PCRE-only escapes (`\h \H \v \V \R \N \e \cX \0nn \o{} \Q…\E \C`) become
//!   classes or bytes; `\v` is vertical space in PCRE but VT in `regex`;
//! * `{` that is not a quantifier is a literal, as in PCRE;
//! * named groups become plain groups, `(?|` a non-capturing one, `(?#…)`
//!   comments vanish; extended mode (`x`) is applied here, because PCRE keeps
//!   white space inside classes while `regex-syntax` drops it;
//! * backreferences, lookaround, atomic groups, possessive quantifiers,
//!   recursion, subroutine calls, conditionals, callouts, `\K`, `\G`, `\Z`,
//!   backtracking verbs and Unicode properties are refused by name.
//!
//! Every output byte remembers the pattern offset it came from, so a parse
//! error of `regex-syntax` points into the pattern the rule author wrote.

use std::fmt::Write;

/// `{` and `}` as bytes (named, so brace-counting tools read the code right).
const OPEN_BRACE: u8 = 0x7b;
const CLOSE_BRACE: u8 = 0x7d;

/// A translated pattern.
#[derive(Debug, Clone)]
pub(super) struct Translated {
    /// The pattern in `regex-syntax`'s dialect.
    pub pattern: String,
    /// For each byte of `pattern`, the offset in the PCRE pattern it came from.
    origin: Vec<usize>,
    /// Length of the PCRE pattern.
    source_len: usize,
}

impl Translated {
    /// The PCRE pattern offset of byte `offset` of the translation.
    pub(super) fn source_offset(&self, offset: usize) -> usize {
        self.origin.get(offset).copied().unwrap_or(self.source_len)
    }
}

/// A pattern PCRE or sluice refuses, at a byte offset of the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TranslateError {
    /// Offset of the offending construct in the pattern.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Haka's escape rule: every `%` becomes `\`, and the byte after it is kept
/// as it is (so `%%` is `\%`, a literal percent sign, and `%\` is `\\`).
/// The result has the same length, so offsets carry over.
pub fn percent_to_backslash(pattern: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'%' {
            out.push(b'\\');
            if let Some(&next) = pattern.get(i + 1) {
                out.push(next);
            }
            i += 2;
        } else {
            out.push(pattern[i]);
            i += 1;
        }
    }
    out
}

/// Translates the PCRE pattern `src`; `extended` is PCRE's `x` option.
pub(super) fn translate(src: &[u8], extended: bool) -> Result<Translated, TranslateError> {
    let mut t =
        Translator { src, pos: 0, out: String::new(), origin: Vec::new(), x: extended, x_stack: Vec::new() };
    while t.pos < src.len() {
        t.step()?;
    }
    Ok(Translated { pattern: t.out, origin: t.origin, source_len: src.len() })
}

/// One item of a character class.
enum ClassItem {
    Byte(u8),
    Range(u8, u8),
    /// A class in `regex-syntax` spelling (`\d`, `[:alpha:]`, `[^\n]`).
    Nested(String),
}

/// Horizontal and vertical white space as PCRE defines them in byte mode.
const HSPACE: &str = r"\t\x20\xA0";
const VSPACE: &str = r"\n\x0B\x0C\r\x85";

struct Translator<'a> {
    src: &'a [u8],
    pos: usize,
    out: String,
    origin: Vec<usize>,
    /// Extended mode in the current group.
    x: bool,
    /// Extended mode of the enclosing groups.
    x_stack: Vec<bool>,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, TranslateError> {
    Err(TranslateError { offset, message: message.into() })
}

/// The refusal of a PCRE feature the automaton cannot do.
fn unsupported<T>(offset: usize, feature: &str) -> Result<T, TranslateError> {
    err(offset, format!("{feature} is not supported (sluice matches in linear time, without backtracking)"))
}

fn hex_byte(b: u8) -> String {
    format!(r"\x{b:02X}")
}

impl Translator<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn emit(&mut self, s: &str, at: usize) {
        self.out.push_str(s);
        self.origin.extend(std::iter::repeat_n(at, s.len()));
    }

    fn emit_byte(&mut self, b: u8, at: usize) {
        if b.is_ascii_alphanumeric() {
            self.emit(&(b as char).to_string(), at);
        } else {
            self.emit(&hex_byte(b), at);
        }
    }

    /// Translates the item at `pos` and moves past it.
    fn step(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        let c = self.src[at];
        match c {
            b'\\' => self.escape(),
            b'[' => self.class(),
            b'(' => self.group(),
            b')' => {
                self.pos += 1;
                if let Some(x) = self.x_stack.pop() {
                    self.x = x;
                }
                self.emit(")", at);
                Ok(())
            }
            b'*' | b'+' | b'?' => {
                self.pos += 1;
                self.emit(&(c as char).to_string(), at);
                self.quantifier_suffix()
            }
            OPEN_BRACE => self.brace(),
            b'|' | b'.' | b'^' | b'$' => {
                self.pos += 1;
                self.emit(&(c as char).to_string(), at);
                Ok(())
            }
            b'#' if self.x => {
                while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                    self.pos += 1;
                }
                Ok(())
            }
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c if self.x => {
                self.pos += 1;
                Ok(())
            }
            _ => {
                self.pos += 1;
                self.emit_byte(c, at);
                Ok(())
            }
        }
    }

    /// After a quantifier: `?` makes it lazy (kept), `+` possessive (refused).
    fn quantifier_suffix(&mut self) -> Result<(), TranslateError> {
        match self.peek(0) {
            Some(b'+') => unsupported(self.pos, "a possessive quantifier (`*+`, `++`, `?+`, `{n,m}+`)"),
            Some(b'?') => {
                self.emit("?", self.pos);
                self.pos += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` are quantifiers; any other `{` is a literal.
    fn brace(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        let rest = &self.src[at + 1..];
        let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
        let n = digits(rest);
        let mut len = n;
        let valid = n > 0 && {
            if rest.get(len) == Some(&b',') {
                len += 1;
                len += digits(&rest[len..]);
            }
            rest.get(len) == Some(&CLOSE_BRACE)
        };
        if !valid {
            self.pos += 1;
            self.emit(&hex_byte(OPEN_BRACE), at);
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.src[at..at + len + 2]).into_owned();
        self.pos = at + len + 2;
        self.emit(&text, at);
        self.quantifier_suffix()
    }

    /// `(`, `(?…`, `(*…`.
    fn group(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        match self.peek(1) {
            Some(b'?') => self.group_extension(),
            Some(b'*') if matches!(self.peek(2), Some(b'A'..=b'Z' | b':')) => {
                unsupported(at, "a backtracking control verb or start option `(*...)`")
            }
            _ => {
                self.pos += 1;
                self.open(at, "(", self.x);
                Ok(())
            }
        }
    }

    fn open(&mut self, at: usize, text: &str, inner_x: bool) {
        self.x_stack.push(self.x);
        self.x = inner_x;
        self.emit(text, at);
    }

    /// The group kinds written `(?…`.
    fn group_extension(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        let c = self.peek(2);
        let c2 = self.peek(3);
        match c {
            Some(b'#') => self.comment(),
            Some(b':') | Some(b'|') => {
                self.pos += 3;
                self.open(at, "(?:", self.x);
                Ok(())
            }
            Some(b'>') => unsupported(at, "an atomic group `(?>...)`"),
            Some(b'=') => unsupported(at, "a lookahead assertion `(?=...)`"),
            Some(b'!') => unsupported(at, "a negative lookahead assertion `(?!...)`"),
            Some(b'<') if c2 == Some(b'=') => unsupported(at, "a lookbehind assertion `(?<=...)`"),
            Some(b'<') if c2 == Some(b'!') => unsupported(at, "a negative lookbehind assertion `(?<!...)`"),
            Some(b'<') => self.named_group(3, b'>'),
            Some(b'\'') => self.named_group(3, b'\''),
            Some(b'P') if c2 == Some(b'<') => self.named_group(4, b'>'),
            Some(b'P') if c2 == Some(b'=') => unsupported(at, "a backreference `(?P=name)`"),
            Some(b'P') if c2 == Some(b'>') => unsupported(at, "a subroutine call `(?P>name)`"),
            Some(b'&') => unsupported(at, "a subroutine call `(?&name)`"),
            Some(b'R' | b'0'..=b'9' | b'+') => {
                unsupported(at, "recursion or a subroutine call (`(?R)`, `(?1)`)")
            }
            Some(b'-') if matches!(c2, Some(b'0'..=b'9')) => {
                unsupported(at, "recursion or a subroutine call (`(?-1)`)")
            }
            Some(b'(') => unsupported(at, "a conditional group `(?(condition)...)`"),
            Some(b'C') => unsupported(at, "a callout `(?C...)`"),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'-' | b')') => self.flags(),
            _ => err(at + 2, "unrecognised character after `(?`"),
        }
    }

    /// `(?#...)`: dropped.
    fn comment(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        match self.src[at..].iter().position(|&b| b == b')') {
            Some(end) => {
                self.pos = at + end + 1;
                Ok(())
            }
            None => err(at, "missing `)` after a `(?#` comment"),
        }
    }

    /// `(?<name>`, `(?'name'`, `(?P<name>`: captures do not matter to a
    /// matcher that reports only the whole match, so a plain group.
    fn named_group(&mut self, name_at: usize, close: u8) -> Result<(), TranslateError> {
        let at = self.pos;
        let start = at + name_at;
        let len = self.src[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        if len == 0 || self.src.get(start + len) != Some(&close) {
            return err(start, "invalid group name");
        }
        self.pos = start + len + 1;
        self.open(at, "(", self.x);
        Ok(())
    }

    /// `(?imsxU-imsxU)` and `(?imsxU-imsxU:...)`. `x` is applied here;
    /// `J`, `X` and `n` change nothing for a whole-match automaton.
    fn flags(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        let mut i = at + 2;
        let mut negate = false;
        let (mut on, mut off) = (String::new(), String::new());
        let mut x = self.x;
        loop {
            let Some(&c) = self.src.get(i) else { return err(at, "missing `)` after `(?` options") };
            match c {
                b'-' if !negate => negate = true,
                b'i' | b'm' | b's' | b'U' => {
                    let side = if negate { &mut off } else { &mut on };
                    side.push(c as char);
                }
                b'x' => x = !negate,
                b'J' | b'X' | b'n' => {}
                b')' | b':' => break,
                _ => return err(i, format!("unknown option letter `{}` in `(?...)`", c as char)),
            }
            i += 1;
        }
        let colon = self.src[i] == b':';
        self.pos = i + 1;
        let mut text = String::from("(?");
        text.push_str(&on);
        if !off.is_empty() {
            text.push('-');
            text.push_str(&off);
        }
        if colon {
            text.push(':');
            self.open(at, &text, x);
        } else {
            self.x = x;
            if text.len() > 2 {
                text.push(')');
                self.emit(&text, at);
            }
        }
        Ok(())
    }

    /// A backslash outside a class.
    fn escape(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        let Some(d) = self.peek(1) else { return err(at, "`\\` at the end of the pattern") };
        self.pos += 2;
        let class = |s: &str| Ok::<Option<String>, TranslateError>(Some(s.to_owned()));
        let text: Option<String> = match d {
            b'1'..=b'9' => return unsupported(at, "a backreference (`\\1`...)"),
            b'g' => {
                return match self.peek(0) {
                    Some(b'<' | b'\'') => unsupported(at, "a subroutine call `\\g<...>`"),
                    _ => unsupported(at, "a backreference `\\g`"),
                }
            }
            b'k' => return unsupported(at, "a backreference `\\k<name>`"),
            b'K' => return unsupported(at, "`\\K` (resetting the match start)"),
            b'G' => return unsupported(at, "`\\G` (the end of the previous match)"),
            b'Z' => return unsupported(at, "`\\Z` (end or before a final newline; use `\\z` or `$`)"),
            b'p' | b'P' => {
                return unsupported(at, "a Unicode property `\\p` (patterns match bytes, without UTF mode)")
            }
            b'X' => return unsupported(at, "`\\X` (an extended grapheme cluster)"),
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' | b'b' | b'B' | b'A' | b'z' => {
                class(&format!("\\{}", d as char))?
            }
            b'h' => class(&format!("[{HSPACE}]"))?,
            b'H' => class(&format!("[^{HSPACE}]"))?,
            b'v' => class(&format!("[{VSPACE}]"))?,
            b'V' => class(&format!("[^{VSPACE}]"))?,
            b'R' => class(&format!(r"(?:\r\n|[{VSPACE}])"))?,
            b'N' => class(r"[^\n]")?,
            b'C' => class("(?s:.)")?,
            b'Q' => {
                self.quoted(|t, b, at| t.emit_byte(b, at));
                None
            }
            b'E' => None,
            _ => {
                self.pos = at;
                let b = self.escaped_byte(false)?;
                self.emit_byte(b, at);
                None
            }
        };
        if let Some(t) = text {
            self.emit(&t, at);
        }
        Ok(())
    }

    /// The bytes of `\Q...\E` (from `pos`, just after `\Q`).
    fn quoted(&mut self, mut each: impl FnMut(&mut Self, u8, usize)) {
        while self.pos < self.src.len() {
            if self.src[self.pos] == b'\\' && self.peek(1) == Some(b'E') {
                self.pos += 2;
                return;
            }
            let b = self.src[self.pos];
            each(self, b, self.pos);
            self.pos += 1;
        }
    }

    /// An escape that stands for one byte, at `pos` (on the backslash):
    /// `\n \r \t \f \a \e \cX \0nn \o{nnn} \xhh \x{hh}`, octal `\nnn` inside
    /// classes, or a non-alphanumeric byte.
    fn escaped_byte(&mut self, in_class: bool) -> Result<u8, TranslateError> {
        let at = self.pos;
        let Some(d) = self.peek(1) else { return err(at, "`\\` at the end of the pattern") };
        self.pos += 2;
        Ok(match d {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'f' => 0x0c,
            b'a' => 0x07,
            b'e' => 0x1b,
            b'b' if in_class => 0x08,
            b'c' => {
                let Some(c) = self.peek(0) else { return err(at, "`\\c` at the end of the pattern") };
                if !c.is_ascii() {
                    return err(at, "`\\c` must be followed by an ASCII character");
                }
                self.pos += 1;
                c.to_ascii_uppercase() ^ 0x40
            }
            b'0' => self.digits(at, 8, 2)?,
            b'1'..=b'7' if in_class => {
                self.pos -= 1;
                self.digits(at, 8, 3)?
            }
            b'o' => self.braced(at, 8)?,
            b'x' if self.peek(0) == Some(OPEN_BRACE) => self.braced(at, 16)?,
            b'x' => self.digits(at, 16, 2)?,
            _ if d.is_ascii_alphanumeric() => {
                return err(at, format!("unrecognised escape `\\{}`", d as char));
            }
            _ => d,
        })
    }

    /// Up to `max` digits in `radix` from `pos`, as a byte.
    fn digits(&mut self, at: usize, radix: u32, max: usize) -> Result<u8, TranslateError> {
        let mut v: u32 = 0;
        for _ in 0..max {
            match self.peek(0).and_then(|c| (c as char).to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    self.pos += 1;
                }
                None => break,
            }
        }
        u8::try_from(v)
            .or_else(|_| err(at, "character value is too large (patterns match bytes: at most 0xFF)"))
    }

    /// `{digits}` in `radix` from `pos`, as a byte.
    fn braced(&mut self, at: usize, radix: u32) -> Result<u8, TranslateError> {
        if self.peek(0) != Some(OPEN_BRACE) {
            return err(at, "`\\o` must be followed by an opening brace");
        }
        let start = self.pos + 1;
        let len = self.src[start..].iter().take_while(|c| (**c as char).is_digit(radix)).count();
        if len == 0 || self.src.get(start + len) != Some(&CLOSE_BRACE) {
            return err(at, "malformed `{...}` character value");
        }
        let text = String::from_utf8_lossy(&self.src[start..start + len]).into_owned();
        self.pos = start + len + 1;
        match u32::from_str_radix(&text, radix).ok().and_then(|v| u8::try_from(v).ok()) {
            Some(b) => Ok(b),
            None => err(at, "character value is too large (patterns match bytes: at most 0xFF)"),
        }
    }

    /// A character class `[...]`.
    fn class(&mut self) -> Result<(), TranslateError> {
        let at = self.pos;
        self.pos += 1;
        let negated = self.peek(0) == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let mut items: Vec<ClassItem> = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek(0) else {
                return err(at, "missing terminating `]` for a character class");
            };
            if c == b']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            let before = items.len();
            self.class_item(&mut items)?;
            self.class_range(&mut items, before)?;
        }
        let mut text = String::from(if negated { "[^" } else { "[" });
        for item in &items {
            match item {
                ClassItem::Byte(b) => text.push_str(&hex_byte(*b)),
                ClassItem::Range(a, b) => {
                    let _ = write!(text, "{}-{}", hex_byte(*a), hex_byte(*b));
                }
                ClassItem::Nested(s) => text.push_str(s),
            }
        }
        text.push(']');
        self.emit(&text, at);
        Ok(())
    }

    /// `a-z`: when the item just read is one byte and `-` follows with a
    /// byte after it, they make a range; otherwise `-` is a literal (PCRE).
    fn class_range(&mut self, items: &mut Vec<ClassItem>, before: usize) -> Result<(), TranslateError> {
        if items.len() != before + 1
            || self.peek(0) != Some(b'-')
            || matches!(self.peek(1), None | Some(b']'))
        {
            return Ok(());
        }
        let Some(ClassItem::Byte(lo)) = items.last() else { return Ok(()) };
        let lo = *lo;
        let dash_at = self.pos;
        self.pos += 1;
        let mut end = Vec::new();
        self.class_item(&mut end)?;
        match end.as_slice() {
            [ClassItem::Byte(hi)] => {
                if *hi < lo {
                    return err(dash_at, "range out of order in a character class");
                }
                items.pop();
                items.push(ClassItem::Range(lo, *hi));
            }
            _ => {
                items.push(ClassItem::Byte(b'-'));
                items.extend(end);
            }
        }
        Ok(())
    }

    /// One item of a class at `pos`.
    fn class_item(&mut self, items: &mut Vec<ClassItem>) -> Result<(), TranslateError> {
        let at = self.pos;
        let c = self.src[at];
        if c == b'[' && self.peek(1) == Some(b':') {
            if let Some(len) = self.src[at + 2..].windows(2).position(|w| w == b":]") {
                let name = &self.src[at + 2..at + 2 + len];
                let neg = name.first() == Some(&b'^');
                let bare = if neg { &name[1..] } else { name };
                if !bare.is_empty() && bare.iter().all(u8::is_ascii_alphabetic) {
                    self.pos = at + 2 + len + 2;
                    items.push(ClassItem::Nested(format!(
                        "[{}]",
                        String::from_utf8_lossy(&self.src[at..self.pos])
                    )));
                    return Ok(());
                }
                return err(at, "unknown POSIX class name");
            }
        }
        if c != b'\\' {
            self.pos += 1;
            items.push(ClassItem::Byte(c));
            return Ok(());
        }
        let nested = |s: String| Some(ClassItem::Nested(s));
        let item = match self.peek(1) {
            Some(d @ (b'd' | b'D' | b'w' | b'W' | b's' | b'S')) => nested(format!("\\{}", d as char)),
            Some(b'h') => nested(format!("[{HSPACE}]")),
            Some(b'H') => nested(format!("[^{HSPACE}]")),
            Some(b'v') => nested(format!("[{VSPACE}]")),
            Some(b'V') => nested(format!("[^{VSPACE}]")),
            Some(b'p' | b'P') => {
                return unsupported(at, "a Unicode property `\\p` (patterns match bytes, without UTF mode)")
            }
            Some(b'Q') => {
                self.pos += 2;
                self.quoted(|_, b, _| items.push(ClassItem::Byte(b)));
                return Ok(());
            }
            Some(b'E') => None,
            Some(d @ (b'B' | b'R' | b'X' | b'N' | b'A' | b'z' | b'Z' | b'G' | b'K')) => {
                return err(at, format!("escape `\\{}` is not allowed in a character class", d as char));
            }
            _ => {
                let b = self.escaped_byte(true)?;
                items.push(ClassItem::Byte(b));
                return Ok(());
            }
        };
        self.pos += 2;
        items.extend(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(p: &str) -> String {
        translate(p.as_bytes(), false).unwrap_or_else(|e| panic!("{p}: {e:?}")).pattern
    }

    fn refused(p: &str) -> TranslateError {
        match translate(p.as_bytes(), false) {
            Ok(t) => panic!("{p} translated to {}", t.pattern),
            Err(e) => e,
        }
    }

    #[test]
    fn percent_rules() {
        let p = |s: &str| String::from_utf8(percent_to_backslash(s.as_bytes())).unwrap();
        assert_eq!(p("%d+"), r"\d+");
        assert_eq!(p("%%"), r"\%", "%% is an escaped percent sign");
        assert_eq!(p("%%d"), r"\%d", "the byte after % is kept as it is");
        assert_eq!(p(r"%\"), r"\\");
        assert_eq!(p(r"a\d"), r"a\d", "backslashes stay");
        assert_eq!(p("%"), r"\", "a final % is a final backslash");
        assert_eq!(p("[%r]?%n"), r"[\r]?\n");
        assert_eq!(p("100%"), r"100\");
    }

    #[test]
    fn literals_become_hex_bytes() {
        assert_eq!(tr("ab c"), r"ab\x20c");
        assert_eq!(tr("a&&b"), r"a\x26\x26b");
        assert_eq!(tr("\u{e9}"), r"\xC3\xA9");
    }

    #[test]
    fn pcre_escapes() {
        assert_eq!(tr(r"\h"), format!("[{HSPACE}]"));
        assert_eq!(tr(r"\v"), format!("[{VSPACE}]"), "\\v is vertical space in PCRE");
        assert_eq!(tr(r"\e\cA\0\012\x4\x41\o{101}"), r"\x1B\x01\x00\x0A\x04AA");
        assert_eq!(tr(r"\Qa.b\E."), r"a\x2Eb.");
        assert_eq!(tr(r"\.\%"), r"\x2E\x25");
        assert_eq!(tr(r"\d\w\s\b\A\z"), r"\d\w\s\b\A\z");
        assert_eq!(refused(r"\q").message, "unrecognised escape `\\q`");
        assert_eq!(refused(r"ab\").offset, 2);
        assert!(refused(r"\x{100}").message.contains("too large"));
    }

    #[test]
    fn braces_that_are_not_quantifiers_are_literal() {
        assert_eq!(tr("a{2,3}"), "a{2,3}");
        assert_eq!(tr("a{2}?"), "a{2}?");
        assert_eq!(tr("a{,3}"), r"a\x7B\x2C3\x7D");
        assert_eq!(tr("{x}"), r"\x7Bx\x7D");
    }

    #[test]
    fn classes() {
        assert_eq!(tr("[a-z]"), r"[\x61-\x7A]");
        assert_eq!(tr("[]a]"), r"[\x5D\x61]", "] first is a literal");
        assert_eq!(tr("[^]]"), r"[^\x5D]");
        assert_eq!(tr("[a-]"), r"[\x61\x2D]");
        assert_eq!(tr(r"[\d-z]"), r"[\d\x2D\x7A]");
        assert_eq!(tr("[[:alpha:]_]"), r"[[[:alpha:]]\x5F]");
        assert_eq!(tr("[[a]"), r"[\x5B\x61]", "[ inside a class is a literal");
        assert_eq!(tr(r"[\b\1]"), r"[\x08\x01]");
        assert_eq!(tr(r"[\h]"), format!("[[{HSPACE}]]"));
        assert!(refused("[z-a]").message.contains("out of order"));
        assert_eq!(refused("ab[cd").offset, 2);
    }

    #[test]
    fn groups_and_flags() {
        assert_eq!(tr("(?<n>a)(?'m'b)(?P<o>c)"), "(a)(b)(c)");
        assert_eq!(tr("(?|a|b)"), "(?:a|b)");
        assert_eq!(tr("a(?#note)b"), "ab");
        assert_eq!(tr("(?i)a(?-i:b)"), "(?i)a(?-i:b)");
        assert_eq!(tr("(?x)a b # c\n d"), "abd");
        assert_eq!(tr("(?x:a b) c"), r"(?:ab)\x20c", "x ends with its group");
        assert_eq!(tr("(?Jims)"), "(?ims)");
        assert!(refused("(?q)").message.contains("unknown option letter `q`"));
    }

    #[test]
    fn extended_mode_keeps_class_spaces() {
        let t = translate(b"a [ ] b # comment", true).unwrap();
        assert_eq!(t.pattern, r"a[\x20]b");
    }

    #[test]
    fn refused_features_are_named() {
        let cases = [
            (r"(a)\1", "backreference", 3),
            (r"(?<n>a)\k<n>", "backreference", 7),
            (r"(?P=n)", "backreference", 0),
            (r"\g{1}", "backreference", 0),
            ("a(?=b)", "lookahead", 1),
            ("a(?!b)", "negative lookahead", 1),
            ("(?<=a)b", "lookbehind", 0),
            ("(?<!a)b", "negative lookbehind", 0),
            ("(?>a+)b", "atomic group", 0),
            ("a*+b", "possessive quantifier", 2),
            ("a++", "possessive quantifier", 2),
            ("a{2}+", "possessive quantifier", 4),
            ("(?R)", "recursion", 0),
            ("(a)(?1)", "recursion", 3),
            ("(?&n)", "subroutine call", 0),
            ("(?(1)a|b)", "conditional group", 0),
            ("(?C1)", "callout", 0),
            (r"a\Kb", "\\K", 1),
            (r"\Ga", "\\G", 0),
            (r"a\Z", "\\Z", 1),
            (r"\p{L}", "Unicode property", 0),
            (r"[\p{L}]", "Unicode property", 1),
            (r"\X", "grapheme", 0),
            ("(*FAIL)", "backtracking control verb", 0),
        ];
        for (p, name, offset) in cases {
            let e = refused(p);
            assert!(e.message.contains(name), "{p}: {}", e.message);
            assert_eq!(e.offset, offset, "{p}");
        }
    }

    #[test]
    fn origins_point_into_the_source() {
        let t = translate(b"ab(c", false).unwrap();
        let paren = t.pattern.find('(').unwrap();
        assert_eq!(t.source_offset(paren), 2);
        assert_eq!(t.source_offset(t.pattern.len()), 4);
    }
}
