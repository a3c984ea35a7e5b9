//! What the rules keep for one direction of one connection, for as long as
//! the connection lives: the streamed rules' coroutines and the stream they
//! read, and the bytes each partially consuming rule handed back.

use mlua::Thread;

use super::stream_objects::SharedStream;

/// A streamed rule's coroutine on one direction.
#[derive(Debug, Default)]
pub(super) enum Coroutine {
    /// No data has come yet.
    #[default]
    NotStarted,
    /// Waiting for more bytes (or running).
    Waiting {
        /// The coroutine.
        thread: Thread,
        /// Its iterator's holder in the stream.
        holder: u64,
    },
    /// Its eval returned or failed: it is not called again (as in Haka).
    Done,
}

/// One direction's rule machinery.
#[derive(Debug, Default)]
pub(super) struct PerDirection {
    /// The bytes streamed rules may still read (made with the first one).
    pub stream: Option<SharedStream>,
    /// Streamed coroutines, by the rule's index among `receive_data` rules.
    pub coroutines: Vec<Coroutine>,
    /// Bytes a rule left unconsumed (it returned a count), by the same index.
    pub carry: Vec<Vec<u8>>,
    /// Bytes delivered so far (the stream offset of the next chunk).
    pub delivered: u64,
    /// End of stream was already handled.
    pub finished: bool,
}

impl PerDirection {
    /// The coroutine slot of rule `i`.
    pub(super) fn coroutine(&mut self, i: usize) -> &mut Coroutine {
        if self.coroutines.len() <= i {
            self.coroutines.resize_with(i + 1, Coroutine::default);
        }
        &mut self.coroutines[i]
    }

    /// The carry of rule `i` (empty if none).
    pub(super) fn carry(&mut self, i: usize) -> &mut Vec<u8> {
        if self.carry.len() <= i {
            self.carry.resize_with(i + 1, Vec::new);
        }
        &mut self.carry[i]
    }
}
