//! Tests of the engine: compile errors, `find` and the stream matcher,
//! against the `regex` crate run on the whole input.

use proptest::prelude::*;

use super::*;

fn re(p: &str) -> Regex {
    Regex::compile(p, Flags::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn bad(p: &str) -> CompileError {
    match Regex::compile(p, Flags::default()) {
        Ok(_) => panic!("{p} compiled"),
        Err(e) => e,
    }
}

/// Feeds `chunks` (the last with eof) and returns each answer.
fn feed_all(m: &mut StreamMatcher, chunks: &[&[u8]]) -> Vec<Feed> {
    let n = chunks.len();
    chunks.iter().enumerate().map(|(i, c)| m.feed(c, i + 1 == n)).collect()
}

fn matched(start: u64, end: u64) -> Feed {
    Feed::Matched(Match { start, end, start_clipped: false })
}

#[test]
fn find_is_leftmost_first() {
    assert_eq!(re("bar").find(b"foo bar foo"), Some(4..7));
    assert_eq!(re("a|ab").find(b"xab"), Some(1..2), "first alternative wins");
    assert_eq!(re("a+").find(b"baaab"), Some(1..4));
    assert_eq!(re("a*?").find(b"aaa"), Some(0..0));
    assert_eq!(re("abc").find(b"ab"), None);
    assert_eq!(re("").find(b""), Some(0..0));
}

#[test]
fn multi_line_as_haka() {
    assert_eq!(re("^b$").find(b"a\nb\nc"), Some(2..3));
    assert_eq!(re(r"\Ab").find(b"a\nb"), None);
}

#[test]
fn flags() {
    let ci = Flags::from_bits(Flags::CASE_INSENSITIVE).unwrap();
    assert_eq!(Regex::compile("camel case", ci).unwrap().find(b"CaMeL CaSe"), Some(0..10));
    assert_eq!(re("camel case").find(b"CaMeL CaSe"), None);
    let x = Flags::from_bits(Flags::EXTENDED).unwrap();
    assert_eq!(Regex::compile("a b # comment", x).unwrap().find(b"xab"), Some(1..3));
    assert_eq!(Flags::from_bits(4), None);
}

#[test]
fn bytes_not_utf8() {
    assert_eq!(re(".").find(&[0xff]), Some(0..1));
    assert_eq!(re(r"\xff+").find(&[0x41, 0xff, 0xff]), Some(1..3));
    assert_eq!(Regex::compile_bytes(&[0xe9], Flags::default()).unwrap().find(&[0x41, 0xe9]), Some(1..2));
    assert_eq!(re(r"\w+").find("é1".as_bytes()), Some(2..3), "\\w is ASCII");
}

#[test]
fn errors_show_pattern_and_place() {
    let e = bad("ab(c");
    assert_eq!(e.offset(), Some(2));
    assert_eq!(e.to_string(), "bad regular expression \"ab(c\" at offset 2 (at \"(c\"): unclosed group");
    let e = bad("a(?=b)");
    assert_eq!(e.offset(), Some(1));
    assert!(e.to_string().contains("lookahead assertion `(?=...)` is not supported"), "{e}");
    let e = bad("?");
    assert_eq!(e.offset(), Some(0), "{e}");
    let e = bad(r"a\");
    assert!(e.to_string().contains("(the end)") || e.offset() == Some(1), "{e}");
}

#[test]
fn too_large_automaton_is_an_error() {
    let e = bad(r"[a-z]{0,200}[a-z]{200}x(a|b|c|d|e|f|g|h)*[a-q]{100}y");
    assert!(e.reason().contains("larger automaton"), "{e}");
}

#[test]
fn match_spanning_chunks() {
    let r = re("foo");
    let mut m = r.stream();
    assert_eq!(
        feed_all(&mut m, &[b"bar f", b"", b"o", b"o bar"]),
        vec![Feed::NeedMore, Feed::NeedMore, Feed::NeedMore, matched(4, 7)]
    );
}

#[test]
fn match_reported_with_the_chunk_that_completes_it() {
    let r = re("foo");
    let mut m = r.stream();
    assert_eq!(m.feed(b"xx fo", false), Feed::NeedMore);
    assert!(m.is_partial());
    assert_eq!(m.feed(b"o", false), matched(3, 6), "no need to see the next byte");
    assert!(!m.is_partial());
    assert_eq!(m.feed(b"foo", true), matched(3, 6), "the first match sticks");
}

#[test]
fn greedy_match_waits_for_its_end() {
    let r = re("a+");
    let mut m = r.stream();
    assert_eq!(m.feed(b"xaa", false), Feed::NeedMore, "more a's may come");
    assert_eq!(m.feed(b"a", false), Feed::NeedMore);
    assert_eq!(m.feed(b"ab", false), matched(1, 5));
    let mut m = r.stream();
    assert_eq!(m.feed(b"xaa", false), Feed::NeedMore);
    assert_eq!(m.feed(b"", true), matched(1, 3), "end of stream ends it");
}

#[test]
fn end_anchor_waits_for_the_next_byte() {
    let r = re("b$");
    let mut m = r.stream();
    assert_eq!(m.feed(b"ab", false), Feed::NeedMore);
    assert_eq!(m.feed(b"\n", false), matched(1, 2));
}

#[test]
fn idle_streams_keep_no_bytes_unless_a_start_can_repeat() {
    // After "attack" has not begun, nothing before can be part of a match.
    let r = re("attack");
    let mut m = r.stream();
    assert_eq!(m.feed(b"bar bar", false), Feed::NoMatch);
    assert_eq!(m.retained(), 0);
    assert_eq!(m.feed(b"bar at", false), Feed::NeedMore);
    assert_eq!(m.retained(), 6, "a match may have begun");
    // After "aaa", `a*b` may be in the middle of a match that began at 0.
    let r = re("a*b");
    let mut m = r.stream();
    m.feed(b"aaa", false);
    assert_eq!(m.retained(), 3);
    assert_eq!(m.feed(b"b", false), matched(0, 4));
}

#[test]
fn forgotten_bytes_cannot_hold_a_start() {
    // The walk back from the end could go on through the `.*`, but the
    // bytes before the first chunk end were forgotten because no match
    // could start in them: the start found is exact.
    let r = Regex::compile("(?:ab|ca).*", Flags { case_insensitive: true, extended: false }).unwrap();
    let mut m = r.stream();
    assert_eq!(m.feed(b"bxxb", false), Feed::NoMatch);
    assert_eq!(m.retained(), 0);
    assert_eq!(m.feed(b"aaabaaaaa", true), matched(6, 13));
}

#[test]
fn idle_stream_is_not_partial() {
    let r = re("foo");
    let mut m = r.stream();
    assert_eq!(m.feed(b"bar bar", false), Feed::NoMatch);
    assert!(!m.is_partial());
    assert_eq!(m.feed(b"bar", true), Feed::NoMatch);
    assert_eq!(m.feed(b"foo", true), Feed::NoMatch, "nothing after the end");
}

#[test]
fn partial_at_end_of_stream_as_haka() {
    // Haka's test: "abc" fed "aaa" with eof is partial.
    let r = re("abc");
    let mut m = r.stream();
    assert_eq!(m.feed(b"aaa", true), Feed::NoMatch);
    assert!(m.is_partial());
}

#[test]
fn start_beyond_the_window_is_clipped() {
    let r = re("xa*y");
    let mut m = r.stream_with_window(4);
    assert_eq!(m.feed(b"-xaaaa", false), Feed::NeedMore);
    assert_eq!(m.feed(b"aaaaa", false), Feed::NeedMore);
    assert!(m.retained() <= 4);
    let Feed::Matched(got) = m.feed(b"y-", true) else { panic!("no match") };
    assert_eq!(got, Match { start: 7, end: 12, start_clipped: true });
    // The same match within the window is exact.
    let mut m = r.stream_with_window(64);
    assert_eq!(feed_all(&mut m, &[b"-xaaaa", b"aaaaa", b"y-"])[2], matched(1, 12));
}

#[test]
fn window_start_byte_decides_a_word_boundary() {
    // The match starts at the first kept byte: the byte before it (no
    // longer kept) tells whether \b holds there.
    let r = re(r"\bab+");
    let mut m = r.stream_with_window(4);
    assert_eq!(feed_all(&mut m, &[b"-ab", b"bb", b"b-"])[2], matched(1, 6));
    let mut m = r.stream_with_window(4);
    assert_eq!(feed_all(&mut m, &[b"xab", b"bb", b"b-"])[2], Feed::NoMatch);
    // The byte before the window could extend the match back: the start
    // is not known, and the matcher says so.
    let r2 = re(r"x?ab+");
    let mut m = r2.stream_with_window(4);
    let got = feed_all(&mut m, &[b"xab", b"bb", b"b-"])[2];
    assert_eq!(got, Feed::Matched(Match { start: 1, end: 6, start_clipped: true }));
    // One byte less kept: the start cannot be confirmed.
    let mut m = r.stream_with_window(3);
    let got = feed_all(&mut m, &[b"-ab", b"bb", b"b-"])[2];
    assert_eq!(got, Feed::Matched(Match { start: 2, end: 6, start_clipped: true }));
}

#[test]
fn prefilter_skips_but_sees_prefixes_split_across_chunks() {
    let r = re("attack");
    assert!(r.automata().prefilter().is_some(), "a literal gets a prefilter");
    let mut m = r.stream();
    let filler = vec![b'x'; 5000];
    assert_eq!(m.feed(&filler, false), Feed::NoMatch);
    assert!(m.work() < 100, "the prefilter skipped the filler: {} transitions", m.work());
    assert_eq!(m.feed(b"xx at", false), Feed::NeedMore, "a prefix at the end of a chunk is kept");
    assert_eq!(m.feed(b"tack", false), matched(5003, 5009));
    let mut m = r.stream();
    assert_eq!(feed_all(&mut m, &[b"a", b"t", b"t", b"a", b"c", b"k"])[5], matched(0, 6));
}

/// Work done on a pathological pattern grows with the input, not faster.
#[test]
fn pathological_patterns_are_linear() {
    let input = vec![b'a'; 100_000];
    for p in ["(a*)*b", "(a|aa)*c", "(a+a+)+b", "(?:a?){50}a{50}b", "(.*a){10}b"] {
        let r = re(p);
        let (found, work) = r.find_counting(&input);
        assert_eq!(found, None, "{p}");
        assert!(work <= 2 * input.len() as u64, "{p}: {work} transitions for {} bytes", input.len());
        let mut m = r.stream();
        for c in input.chunks(1460) {
            m.feed(c, false);
        }
        m.feed(b"", true);
        assert!(m.work() <= 3 * input.len() as u64, "{p} streamed: {} transitions", m.work());
    }
}

// ---- property tests against the regex crate ----

/// A pattern from a small grammar, valid and equal in meaning in PCRE and
/// in the `regex` crate's syntax.
fn pattern() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "A", "ab", "ba", "abc"]).prop_map(str::to_owned),
        1 => Just(".".to_owned()),
        1 => prop::sample::select(vec!["[ab]", "[^a]", "[a-c]", r"\d", r"\s", r"\w", "[^\\n]"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["^", "$", r"\b", r"\B", r"\A", r"\z"]).prop_map(str::to_owned),
    ];
    atom.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(?:{a}|{b})")),
            (inner.clone(), prop::sample::select(vec!["*", "+", "?", "{1,3}", "*?", "+?", "??", "{2}"]))
                .prop_map(|(a, q)| format!("(?:{a}){q}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

/// Patterns with a literal prefix, so the prefilter is used.
fn prefixed_pattern() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["ab", "abc", "ba", "(?:ab|ca)", "a", "cab"]), pattern())
        .prop_map(|(lit, p)| format!("{lit}{p}"))
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"aabbcA1 \n-".to_vec()), 0..40)
}

/// Cut points splitting an input of length `len` into 1..=10 chunks, some
/// possibly empty.
fn chunks_of(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts {
        out.push(input[from..c].to_vec());
        from = c;
    }
    out.push(input[from..].to_vec());
    out
}

fn reference(p: &str, ci: bool) -> regex::bytes::Regex {
    regex::bytes::RegexBuilder::new(p).unicode(false).multi_line(true).case_insensitive(ci).build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn find_agrees_with_regex(p in pattern(), ci in any::<bool>(), hay in input()) {
        let want = reference(&p, ci).find(&hay).map(|m| m.range());
        let ours = Regex::compile(&p, Flags { case_insensitive: ci, extended: false }).unwrap();
        prop_assert_eq!(ours.find(&hay), want);
    }

    #[test]
    fn stream_agrees_with_regex(
        p in pattern(), ci in any::<bool>(), hay in input(), cuts in prop::collection::vec(any::<usize>(), 0..10)
    ) {
        let want = reference(&p, ci).find(&hay).map(|m| (m.start() as u64, m.end() as u64));
        let ours = Regex::compile(&p, Flags { case_insensitive: ci, extended: false }).unwrap();
        let chunks = chunks_of(&hay, &cuts);
        let mut m = ours.stream();
        let mut fed = 0u64;
        let mut got = None;
        for (i, c) in chunks.iter().enumerate() {
            fed += c.len() as u64;
            match m.feed(c, i + 1 == chunks.len()) {
                Feed::Matched(x) => {
                    prop_assert!(!x.start_clipped);
                    prop_assert!(x.end <= fed, "reported a match ending in bytes not yet fed");
                    got = Some((x.start, x.end));
                    break;
                }
                Feed::NoMatch | Feed::NeedMore => {}
            }
        }
        prop_assert_eq!(got, want);
    }

    /// With a small window the end is still exact, and so is the start
    /// unless the matcher says it was clipped.
    #[test]
    fn small_window_keeps_ends_exact(
        p in pattern(), hay in input(), cuts in prop::collection::vec(any::<usize>(), 0..10), window in 0usize..8
    ) {
        let want = reference(&p, false).find(&hay).map(|m| (m.start() as u64, m.end() as u64));
        let ours = Regex::compile(&p, Flags::default()).unwrap();
        let chunks = chunks_of(&hay, &cuts);
        let mut m = ours.stream_with_window(window);
        let mut got = None;
        for (i, c) in chunks.iter().enumerate() {
            if let Feed::Matched(x) = m.feed(c, i + 1 == chunks.len()) {
                got = Some(x);
                break;
            }
            prop_assert!(m.retained() <= window);
        }
        prop_assert_eq!(got.map(|x| x.end), want.map(|w| w.1));
        if let (Some(x), Some(w)) = (got, want) {
            if !x.start_clipped {
                prop_assert_eq!(x.start, w.0);
            }
        }
    }

    #[test]
    fn prefiltered_stream_agrees_with_regex(
        p in prefixed_pattern(), ci in any::<bool>(), hay in input(), cuts in prop::collection::vec(any::<usize>(), 0..10)
    ) {
        let want = reference(&p, ci).find(&hay).map(|m| (m.start() as u64, m.end() as u64));
        let ours = Regex::compile(&p, Flags { case_insensitive: ci, extended: false }).unwrap();
        prop_assert_eq!(ours.find(&hay).map(|r| (r.start as u64, r.end as u64)), want);
        let chunks = chunks_of(&hay, &cuts);
        let mut m = ours.stream();
        let mut got = None;
        for (i, c) in chunks.iter().enumerate() {
            if let Feed::Matched(x) = m.feed(c, i + 1 == chunks.len()) {
                got = Some((x.start, x.end));
                break;
            }
        }
        prop_assert_eq!(got, want);
    }
}

/// A match that ends where a chunk ends, and whose start depends on
/// whether the stream ends there (`\z`: 0 if it does, else 1), is
/// reported once the next byte (or the end) is known, for every cut
/// (found by `stream_agrees_with_regex`).
#[test]
fn a_start_that_depends_on_what_follows_waits_for_it() {
    let mut hay = b"aA".to_vec();
    hay.extend_from_slice(&[b'a'; 30]);
    let p = r"(?:[^a]|aA\z)";
    let ours = Regex::compile(p, Flags::default()).unwrap();
    let run = |chunks: &[&[u8]]| {
        let mut m = ours.stream();
        for (i, c) in chunks.iter().enumerate() {
            if let Feed::Matched(x) = m.feed(c, i + 1 == chunks.len()) {
                return Some((x.start, x.end));
            }
        }
        None
    };
    for k in 0..=hay.len() {
        for j in k..=hay.len() {
            assert_eq!(run(&[&hay[..k], &hay[k..j], &hay[j..]]), Some((1, 2)), "cuts at {k} and {j}");
        }
    }
    // The stream ends right after "aA": then the match starts at 0.
    assert_eq!(run(&[b"aA", b""]), Some((0, 2)));
    let mut m = ours.stream();
    assert!(matches!(m.feed(b"aA", false), Feed::NeedMore));
    assert!(matches!(m.feed(b"", false), Feed::NeedMore), "still unknown");
    assert!(matches!(m.feed(b"x", false), Feed::Matched(Match { start: 1, end: 2, .. })));
}
