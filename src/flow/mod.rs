//! Flows: the normalised 5-tuple key, directions, and the flow table.

pub mod key;
pub mod table;
mod timers;

pub use key::{Direction, FlowKey, L4Proto};
pub use table::{FlowEntry, FlowId, FlowTable};
