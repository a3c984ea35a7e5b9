#![warn(missing_docs, unreachable_pub)]
//! sluice: an inline Linux packet filter with Haka-compatible Lua rules.
//!
//! The crate is layered as described in `docs/architecture.md`:
//!
//! * [`wire`] — typed, zero-copy views of IPv4/IPv6/TCP/UDP/ICMP packets and
//!   builders for the packets sluice forges (TCP RSTs).
//! * [`ip`] — IP fragment reassembly.
//! * [`flow`] — flow keys (normalised 5-tuples), directions and the flow table.
//! * [`tcp`] — the TCP connection tracker and per-direction stream reassembly.
//! * [`engine`] — the sans-IO core: bytes and a timestamp in, verdicts and forged
//!   packets out. It never touches a socket or a clock.
//! * [`inspect`] — the interface between the engine and rules; [`rules`] implements
//!   it with Lua.
//! * [`capture`] and [`inject`] — thin drivers at the edge (NFQUEUE, pcap files,
//!   raw sockets).

pub mod alert;
pub mod capture;
pub mod config;
pub mod engine;
pub mod flow;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod inject;
pub mod inline;
pub mod inspect;
pub mod ip;
pub mod limits_args;
pub mod offline;
pub mod packet_id;
pub mod pcapgen;
pub mod regexp;
pub mod rules;
pub mod stats;
pub mod stream_dump;
pub mod tcp;
pub mod time;
pub mod verdict_book;
pub mod wire;
