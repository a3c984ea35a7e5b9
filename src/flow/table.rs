//! The flow table. (Being written.)

/// Index of a flow in the table.
pub type FlowId = u64;

/// The flow table.
#[derive(Debug, Default)]
pub struct FlowTable;
