//! Log lines in input order with `--workers N`. A worker thread's log lines
//! (rules' `haka.log`, rule errors, engine warnings) are kept with the
//! record that caused them and written to standard error by the merge, in
//! input order, as one worker would have written them. The logging set up
//! by the `sluice` binary writes through [`OrderedStderr`]: on any other
//! thread it is plain standard error.

use std::cell::RefCell;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    /// The lines this thread logged since the last [`take`], if it captures.
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// From now on this thread's log lines are kept for [`take`].
pub(super) fn begin() {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
}

/// Appends this thread's lines logged since the last call to `into`.
pub(super) fn take(into: &mut Vec<u8>) {
    CAPTURED.with(|c| {
        if let Some(buf) = c.borrow_mut().as_mut() {
            into.append(buf);
        }
    });
}

/// How many bytes this thread logged since the last [`take`] (0 if it
/// does not capture): where a line logged now will start.
pub(super) fn pending() -> usize {
    CAPTURED.with(|c| c.borrow().as_ref().map_or(0, Vec::len))
}

/// A `tracing-subscriber` writer: standard error, except on a worker
/// thread of `sluice pcap --workers N`, whose lines wait for their turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderedStderr;

impl<'a> MakeWriter<'a> for OrderedStderr {
    type Writer = OrderedStderrWriter;

    fn make_writer(&'a self) -> Self::Writer {
        OrderedStderrWriter
    }
}

/// What [`OrderedStderr`] makes for each line.
#[derive(Debug)]
pub struct OrderedStderrWriter;

impl Write for OrderedStderrWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let kept = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
            Some(buf) => {
                buf.extend_from_slice(data);
                true
            }
            None => false,
        });
        if kept {
            Ok(data.len())
        } else {
            io::stderr().write(data)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capturing_thread_keeps_its_lines() {
        std::thread::spawn(|| {
            begin();
            let mut w = OrderedStderr.make_writer();
            w.write_all(b"one\n").unwrap();
            w.write_all(b"two\n").unwrap();
            assert_eq!(pending(), 8);
            let mut got = Vec::new();
            take(&mut got);
            assert_eq!(got, b"one\ntwo\n");
            assert_eq!(pending(), 0);
            take(&mut got);
            assert_eq!(got, b"one\ntwo\n", "taken once");
        })
        .join()
        .unwrap();
    }
}
