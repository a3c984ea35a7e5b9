//! Flows: the normalised 5-tuple key, directions, and the flow table.

pub mod id_set;
pub mod key;
pub mod table;
mod timers;

pub use id_set::FlowIdSet;
pub use key::{Direction, FlowKey, L4Proto};
pub use table::{FlowEntry, FlowId, FlowTable};
