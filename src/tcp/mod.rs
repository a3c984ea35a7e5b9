//! TCP: the connection tracker and per-direction stream reassembly.

pub mod auth_option;
pub mod conn;
pub mod ofo;
pub mod passive;
pub mod ranges;
pub mod receiver_policy;
pub mod stream;

pub use conn::{Arrival, Checked, Committed, SegmentKind, TcpConn, TcpState};
pub use stream::{Fit, Reach, Stream, StreamLimits};
