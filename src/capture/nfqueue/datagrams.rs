//! Many datagrams in one system call: `recvmmsg(2)` into a fixed set of
//! buffers. With `MSG_WAITFORONE` it sleeps until the first datagram comes
//! and then takes whatever else is already waiting without sleeping, so one
//! call is both the wait of a lone packet and the read of a burst: a lone
//! packet costs this call and its verdict's `sendto`, the two calls a
//! minimal blocking `recv` loop makes, and a burst of 32 costs one call.
//!
//! Each buffer is its own allocation so that a datagram holding one packet
//! can be handed on whole ([`Datagrams::take`]) instead of copied out; a
//! buffer given back ([`Datagrams::give_back`]) is received into again, so
//! in the steady state nothing is allocated or copied per packet.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Most buffers one receive fills.
const MAX_SLOTS: usize = 64;

/// Receive buffers, one datagram each.
pub(super) struct Datagrams {
    /// One buffer of `slot_len` bytes per datagram a receive may bring.
    slots: Vec<Vec<u8>>,
    /// Buffers given back, to replace those taken.
    spare: Vec<Vec<u8>>,
    slot_len: usize,
    /// Bytes of each datagram of the last call; `usize::MAX` if it did not
    /// fit its buffer (the kernel cut it: `MSG_TRUNC`).
    lens: Vec<usize>,
    /// The receive timeout set on the socket (`SO_RCVTIMEO`), to set it
    /// only when it changes.
    timeout: Option<Duration>,
}

/// How a receive may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Take only what is waiting now.
    No,
    /// Sleep at most this long for the first datagram (zero: do not sleep).
    For(Duration),
}

impl Datagrams {
    /// `slots` buffers (1 to 64) of `slot_len` bytes each.
    pub(super) fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.clamp(1, MAX_SLOTS);
        Datagrams {
            slots: (0..slots).map(|_| vec![0; slot_len]).collect(),
            spare: Vec::with_capacity(slots),
            slot_len,
            lens: Vec::with_capacity(slots),
            timeout: None,
        }
    }

    /// The number of buffers.
    pub(super) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The buffer of datagram `i` of the last receive, for the caller to
    /// keep; the slot gets a spare buffer (or a new one). The datagram's
    /// bytes are at the start of the buffer.
    pub(super) fn take(&mut self, i: usize) -> Vec<u8> {
        let fresh = self.spare.pop().unwrap_or_else(|| vec![0; self.slot_len]);
        match self.slots.get_mut(i) {
            Some(slot) => std::mem::replace(slot, fresh),
            None => fresh,
        }
    }

    /// A buffer that [`Datagrams::take`] handed out, to receive into again.
    pub(super) fn give_back(&mut self, buf: Vec<u8>) {
        if buf.len() == self.slot_len && self.spare.len() < self.slots.len() {
            self.spare.push(buf);
        }
    }

    /// Receives up to `max` datagrams (at most one per buffer) from `fd`;
    /// returns how many came: 0 when the wait ended with none (timeout,
    /// signal). A datagram larger than its buffer is reported by
    /// [`Datagrams::get`] as `None`.
    pub(super) fn recv(&mut self, fd: RawFd, max: usize, wait: Wait) -> io::Result<usize> {
        let n = max.clamp(1, self.slots());
        let flags = match wait {
            Wait::For(t) if !t.is_zero() => {
                self.set_timeout(fd, t)?;
                libc::MSG_WAITFORONE
            }
            _ => libc::MSG_DONTWAIT,
        };
        // SAFETY: an all-zero iovec/mmsghdr is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; MAX_SLOTS] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX_SLOTS] = unsafe { std::mem::zeroed() };
        for ((v, h), slot) in iov.iter_mut().zip(hdrs.iter_mut()).zip(self.slots.iter_mut()).take(n) {
            v.iov_base = slot.as_mut_ptr().cast();
            v.iov_len = slot.len();
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
        }
        self.lens.clear();
        // SAFETY: the first `n` headers each point at one iovec over its own
        // slot buffer, all of which outlive the call.
        let r =
            unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, flags, std::ptr::null_mut()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                // The timeout passed (EAGAIN) or a signal came: nothing to read.
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = usize::try_from(r).unwrap_or(0).min(n);
        for h in &hdrs[..got] {
            let cut = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens.push(if cut { usize::MAX } else { h.msg_len as usize });
        }
        Ok(got)
    }

    /// Datagram `i` of the last receive; `None` if the kernel cut it.
    pub(super) fn get(&self, i: usize) -> Option<&[u8]> {
        self.slots.get(i)?.get(..*self.lens.get(i)?)
    }

    fn set_timeout(&mut self, fd: RawFd, t: Duration) -> io::Result<()> {
        if self.timeout == Some(t) {
            return Ok(());
        }
        let tv = libc::timeval {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // A zero timeval would mean "no timeout": at least 1 µs.
            tv_usec: t.subsec_micros().max(u32::from(t.as_secs() == 0)) as libc::suseconds_t,
        };
        // SAFETY: passes a pointer to a live timeval and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.timeout = Some(t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_burst_is_read_in_one_call_and_a_lone_datagram_wakes_the_wait() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut d = Datagrams::new(4, 64);
        for m in [&b"one"[..], b"two", b"three"] {
            a.send(m).unwrap();
        }
        assert_eq!(d.recv(b.as_raw_fd(), 32, Wait::For(Duration::from_secs(5))).unwrap(), 3);
        assert_eq!([d.get(0), d.get(1), d.get(2)], [Some(&b"one"[..]), Some(b"two"), Some(b"three")]);
        assert_eq!(d.get(3), None);
        // At most one per buffer, and at most `max`.
        for m in [&b"1"[..], b"2", b"3", b"4", b"5", b"6"] {
            a.send(m).unwrap();
        }
        assert_eq!(d.recv(b.as_raw_fd(), 2, Wait::No).unwrap(), 2);
        assert_eq!(d.recv(b.as_raw_fd(), 32, Wait::No).unwrap(), 4);
        assert_eq!(d.get(3), Some(&b"6"[..]));
        // A taken buffer keeps its datagram; the slot receives into another.
        let taken = d.take(3);
        assert_eq!(&taken[..1], b"6");
        a.send(b"7").unwrap();
        assert_eq!(d.recv(b.as_raw_fd(), 32, Wait::No).unwrap(), 1);
        assert_eq!(&taken[..1], b"6");
        d.give_back(taken);
        assert_eq!(d.spare.len(), 1);
        // A lone datagram sent while the receiver sleeps ends the sleep.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            a.send(b"late").unwrap();
        });
        let t0 = Instant::now();
        assert_eq!(d.recv(b.as_raw_fd(), 32, Wait::For(Duration::from_secs(5))).unwrap(), 1);
        assert!(t0.elapsed() < Duration::from_secs(4), "slept through the datagram");
        assert_eq!(d.get(0), Some(&b"late"[..]));
        sender.join().unwrap();
    }

    #[test]
    fn an_empty_socket_times_out_with_nothing_and_a_cut_datagram_is_flagged() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut d = Datagrams::new(2, 8);
        assert_eq!(d.recv(b.as_raw_fd(), 2, Wait::No).unwrap(), 0);
        let t0 = Instant::now();
        assert_eq!(d.recv(b.as_raw_fd(), 2, Wait::For(Duration::from_millis(30))).unwrap(), 0);
        assert!(t0.elapsed() >= Duration::from_millis(25), "did not wait: {:?}", t0.elapsed());
        a.send(b"longer than eight").unwrap();
        a.send(b"short").unwrap();
        assert_eq!(d.recv(b.as_raw_fd(), 2, Wait::No).unwrap(), 2);
        assert_eq!(d.get(0), None);
        assert_eq!(d.get(1), Some(&b"short"[..]));
    }
}
