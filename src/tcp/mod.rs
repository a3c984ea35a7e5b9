//! TCP: the connection tracker and per-direction stream reassembly.

pub mod auth_option;
pub mod conn;
pub mod ofo;
pub mod passive;
pub mod progress;
pub mod ranges;
pub mod receiver_policy;
pub mod reset_point;
pub mod stream;
mod stream_rings;

pub use conn::{Arrival, Checked, Committed, SegmentKind, TcpConn, TcpState};
pub use progress::Progress;
pub use reset_point::ResetPoint;
pub use stream::{Fit, Reach, Stream, StreamLimits};
