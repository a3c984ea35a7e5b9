//! Fuzz harnesses: one `pub fn <target>(data: &[u8])` per fuzz target.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` are one-liners into these
//! functions, and `tests/fuzz_corpus.rs` replays the committed corpus through
//! the same functions under stable Rust, so a crash the fuzzer found stays
//! fixed in `make test`.
//!
//! A harness does more than "does not panic": each checks the invariants its
//! subject promises (every packet gets exactly one verdict, accessors stay in
//! the buffer, every fragment is verdicted once...) and panics when one
//! breaks, which is how libFuzzer notices. Any panic here is a finding.
//!
//! Not part of sluice's API (hidden from the docs); see `docs/architecture.md`
//! ("Fuzzing") and `make fuzz`.

mod book;
mod defrag;
mod engine;
mod lent;
mod lua_api;
mod nfqueue;
mod pcap;
mod recorder;
mod wire;

/// A harness: takes one fuzz input, panics when an invariant breaks.
pub type Harness = fn(&[u8]);

/// Every target, by the name `cargo fuzz` and `make fuzz TARGET=` use.
pub const TARGETS: &[(&str, Harness)] = &[
    ("wire_decode", wire_decode),
    ("ip_defrag", ip_defrag),
    ("tcp_engine", tcp_engine),
    ("tcp_engine_lua", tcp_engine_lua),
    ("pcap_reader", pcap_reader),
    ("nfqueue_codec", nfqueue_codec),
    ("lua_api", lua_api),
];

/// IPv4/IPv6/TCP/UDP/ICMP decoding and every field accessor.
pub fn wire_decode(data: &[u8]) {
    wire::run(data)
}

/// IPv4 and IPv6 fragment sequences with time steps through the defragmenter.
pub fn ip_defrag(data: &[u8]) {
    defrag::run(data)
}

/// A live TCP connection driven by fuzzer-chosen segments, with scripted
/// (non-Lua) rule decisions.
pub fn tcp_engine(data: &[u8]) {
    engine::run(data, engine::Rules::Scripted)
}

/// The same generator through a small Lua rule set hooking `receive_data`.
pub fn tcp_engine_lua(data: &[u8]) {
    engine::run(data, engine::Rules::Lua)
}

/// The pcap and pcapng readers (and link-layer location of the IP packet).
pub fn pcap_reader(data: &[u8]) {
    pcap::run(data)
}

/// The NFQUEUE netlink codec: received datagrams, and built messages.
pub fn nfqueue_codec(data: &[u8]) {
    nfqueue::run(data)
}

/// The Lua API: a rule calling every method and field with fuzzed arguments.
pub fn lua_api(data: &[u8]) {
    lua_api::run(data)
}

/// Seed inputs for a target (valid examples the fuzzer starts from); empty
/// where the input is structured and random bytes already make valid cases.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "wire_decode" => wire::seeds(),
        "pcap_reader" => pcap::seeds(),
        "nfqueue_codec" => nfqueue::seeds(),
        _ => Vec::new(),
    }
}

/// The structured input a target reads from `data` (for reading a crash
/// found by the fuzzer); `None` for targets that take plain bytes.
pub fn describe(target: &str, data: &[u8]) -> Option<String> {
    match target {
        "ip_defrag" => Some(defrag::describe(data)),
        "tcp_engine" | "tcp_engine_lua" => Some(engine::describe(data)),
        _ => None,
    }
}

/// Asserts that `part` lies inside `whole` (same allocation, in bounds).
fn assert_within(whole: &[u8], part: &[u8], what: &str) {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    assert!(
        part.is_empty() || (p >= w && p + part.len() <= w + whole.len()),
        "{what}: {} bytes at {:#x} outside the {} bytes at {:#x}",
        part.len(),
        p,
        whole.len(),
        w
    );
}
