//! NFQUEUE driver: binds one netfilter queue over a netlink socket, receives
//! queued packets and sends their verdicts.
//!
//! Why not the `nfq` crate: it discards packet messages that arrive while it
//! waits for a configuration ACK (those packets would never get a verdict),
//! hides its socket (no receive timeout, no `SO_RCVBUF`, no `poll`), and
//! configures bind, copy mode, queue length and flags in separate round trips.
//! The protocol is small (a handful of fixed-layout attributes), so this module
//! speaks it directly on a libc netlink socket: one configuration message
//! carries everything, and any packet received before its ACK is kept.
//!
//! * [`config`](QueueConfig) — how a queue is bound;
//! * `codec` — the netlink messages as bytes, with no socket (fuzzed);
//! * `socket` — the netlink socket: bind, receive, batched verdicts;
//! * `proc_stats` — the kernel's per-queue counters from /proc.

pub(crate) mod codec;
mod config;
mod datagrams;
mod proc_stats;
mod socket;

pub use codec::{QueueVerdict, QueuedPacket};
pub use config::QueueConfig;
pub use proc_stats::{kernel_queue_stats, parse_proc_stats, KernelQueueStats};
pub use socket::{has_net_admin, NfQueue, NfqError};
