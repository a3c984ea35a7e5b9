//! TCP: the connection tracker and per-direction stream reassembly.

pub mod conn;
pub mod passive;
pub mod ranges;
pub mod stream;

pub use conn::{Checked, Committed, SegmentKind, TcpConn, TcpState};
pub use stream::{Fit, Stream, StreamLimits};
