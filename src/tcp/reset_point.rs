//! Where each end of a connection stands, captured before a segment is
//! committed: the sequence numbers a forged RST must carry to be accepted.

use super::{TcpConn, TcpState};
use crate::flow::Direction;
use crate::wire::SeqNumber;

/// Where each end's receiver stands.
#[derive(Debug, Clone, Copy)]
pub struct ResetPoint {
    /// The connection's state.
    pub state: TcpState,
    /// What the server expects next from the client.
    pub server_next: Option<SeqNumber>,
    /// What the server last acknowledged.
    pub server_acked: Option<SeqNumber>,
    /// What the client expects next from the server.
    pub client_next: Option<SeqNumber>,
    /// Everything the client sent (its snd_nxt): a client in SYN-SENT only
    /// accepts an RST that acknowledges exactly this.
    pub client_sent: Option<SeqNumber>,
}

impl ResetPoint {
    /// Where `conn`'s two ends stand now.
    pub fn of(conn: &TcpConn) -> Self {
        ResetPoint {
            state: conn.state(),
            server_next: conn.next_seq(Direction::Up),
            server_acked: conn.acked_seq(Direction::Up),
            client_next: conn.next_seq(Direction::Down),
            client_sent: conn.sent_seq(Direction::Up),
        }
    }
}
