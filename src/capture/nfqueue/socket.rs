//! The netlink socket of one bound queue: bind, receive, batched verdicts.
//! The bytes on the socket are built and parsed by [`super::codec`].

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::codec::{
    config_message, verdict_code, verdict_message, NlMessage, NlMessages, QueueVerdict, QueuedPacket,
    NLA_HDRLEN,
};
use super::config::QueueConfig;
use super::datagrams::{Datagrams, Wait};

/// One receive buffer: the largest packet the kernel copies (64 KiB, its
/// copy range) plus netlink and attribute headers.
const RECV_SLOT: usize = 68 * 1024;
/// Datagrams read in one system call at most (see [`Datagrams`]).
const RECV_SLOTS: usize = 32;

/// Why a queue could not be bound, mapped to what an operator can do about it.
#[derive(Debug)]
pub enum NfqError {
    /// The process lacks CAP_NET_ADMIN.
    NotRoot,
    /// Another process (netlink socket) already holds the queue.
    QueueTaken(u16),
    /// The kernel has no NFQUEUE support (nfnetlink_queue not available).
    NoKernelSupport(io::Error),
    /// Anything else.
    Io(io::Error),
}

impl std::fmt::Display for NfqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NfqError::NotRoot => write!(f, "sluice run needs root (CAP_NET_ADMIN)"),
            NfqError::QueueTaken(q) => {
                write!(
                    f,
                    "NFQUEUE queue {q} is already bound by another process (another sluice, suricata, ...?)"
                )
            }
            NfqError::NoKernelSupport(e) => {
                write!(f, "the kernel has no NFQUEUE support ({e}); load it with `modprobe nfnetlink_queue`")
            }
            NfqError::Io(e) => write!(f, "NFQUEUE: {e}"),
        }
    }
}

impl std::error::Error for NfqError {}

/// A bound netfilter queue.
pub struct NfQueue {
    fd: OwnedFd,
    queue_num: u16,
    seq: u32,
    datagrams: Datagrams,
    pending: VecDeque<QueuedPacket>,
    /// Verdict messages not sent yet: several go out in one `sendto`.
    verdicts: Vec<u8>,
    queued_verdicts: usize,
    /// Asynchronous netlink errors seen (e.g. a verdict for an unknown id).
    pub netlink_errors: u64,
    /// [`QueueConfig::busy_poll`].
    busy_poll: Duration,
    /// Receives that found a packet while busy polling, before sleeping.
    pub busy_poll_hits: u64,
}

/// Verdicts sent in one `sendto` at most; a full batch is sent at once.
const VERDICT_BATCH: usize = 32;

impl NfQueue {
    /// Opens a netlink socket and binds `cfg.queue_num` with every setting in
    /// one configuration message.
    pub fn bind(cfg: &QueueConfig) -> Result<NfQueue, NfqError> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER)
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => NfqError::NoKernelSupport(e),
                Some(libc::EPERM) | Some(libc::EACCES) => NfqError::NotRoot,
                _ => NfqError::Io(e),
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut q = NfQueue {
            fd,
            queue_num: cfg.queue_num,
            seq: 0,
            datagrams: Datagrams::new(RECV_SLOTS, RECV_SLOT),
            pending: VecDeque::new(),
            verdicts: Vec::with_capacity(VERDICT_BATCH * 64),
            queued_verdicts: 0,
            netlink_errors: 0,
            busy_poll: cfg.busy_poll,
            busy_poll_hits: 0,
        };
        // Queue overruns are read from /proc; ENOBUFS on the socket would only
        // interrupt the receive loop.
        q.setsockopt_int(libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1).map_err(NfqError::Io)?;
        if let Some(bytes) = cfg.rcvbuf {
            let n = i32::try_from(bytes).unwrap_or(i32::MAX);
            // SO_RCVBUFFORCE ignores rmem_max (root only); fall back to SO_RCVBUF.
            if q.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, n).is_err() {
                q.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF, n).map_err(NfqError::Io)?;
            }
        }
        let msg = config_message(cfg, q.next_seq());
        q.send(&msg).map_err(NfqError::Io)?;
        match q.wait_ack(Duration::from_secs(5)) {
            Ok(()) => Ok(q),
            Err(e) => Err(classify_bind_error(e, cfg.queue_num)),
        }
    }

    /// The bound queue number.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// The next packet, waiting at most `timeout`; `None` on timeout.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Option<QueuedPacket>> {
        let mut one = Vec::with_capacity(1);
        self.recv_batch(&mut one, 1, timeout)?;
        Ok(one.pop())
    }

    /// Appends up to `max` packets to `batch`: those already received, or
    /// else, after sending the batched verdicts (nobody may wait on them
    /// while we sleep), whatever one `recvmmsg` brings, sleeping at most
    /// `timeout` for the first packet. Nothing appended means the timeout
    /// passed (or a signal came).
    ///
    /// One system call serves both a lone packet (it ends the sleep and is
    /// handed over at once) and a burst (every packet already waiting, up
    /// to the batch size, comes with it): no read is spent finding the
    /// socket empty. With busy polling ([`QueueConfig::busy_poll`]) reads
    /// that do not sleep come first, for that long.
    pub fn recv_batch(
        &mut self,
        batch: &mut Vec<QueuedPacket>,
        max: usize,
        timeout: Duration,
    ) -> io::Result<()> {
        if self.pending.is_empty() {
            self.flush_verdicts()?;
            if !self.busy_poll.is_zero() && !timeout.is_zero() {
                self.poll_busily(max)?;
            }
            if self.pending.is_empty() {
                self.recv_datagrams(max, Wait::For(timeout))?;
            }
        }
        while batch.len() < max {
            match self.pending.pop_front() {
                Some(p) => batch.push(p),
                None => break,
            }
        }
        Ok(())
    }

    /// Takes back the buffers of handled packets (emptying `batch`), so that
    /// later receives reuse them instead of allocating.
    pub fn recycle(&mut self, batch: &mut Vec<QueuedPacket>) {
        for p in batch.drain(..) {
            self.datagrams.give_back(p.into_buffer());
        }
    }

    /// Asks the socket for packets without sleeping, again and again, for
    /// at most the busy-poll time: a packet that comes meanwhile is taken at
    /// once, without the wake-up of a sleeping thread (tens of µs on a busy
    /// or virtual machine), at the price of a core kept busy that long after
    /// each packet.
    fn poll_busily(&mut self, max: usize) -> io::Result<()> {
        let deadline = Instant::now() + self.busy_poll;
        loop {
            self.recv_datagrams(max, Wait::No)?;
            if !self.pending.is_empty() {
                self.busy_poll_hits += 1;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }

    /// A packet already readable, without waiting.
    pub fn try_recv(&mut self) -> io::Result<Option<QueuedPacket>> {
        self.recv(Duration::ZERO)
    }

    /// Gives packet `id` its verdict. Verdicts are batched: they reach the
    /// kernel when 32 are queued, before a receive that may sleep, on
    /// [`NfQueue::flush_verdicts`], or when the queue is dropped.
    pub fn verdict(&mut self, id: u32, verdict: QueueVerdict<'_>) -> io::Result<()> {
        let parts = verdict_code(verdict);
        if let Some(p) = parts.payload {
            if p.len() + NLA_HDRLEN > usize::from(u16::MAX) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "modified packet too large for netlink",
                ));
            }
        }
        let seq = self.next_seq();
        let msg = verdict_message(self.queue_num, seq, id, parts);
        // Netlink takes several messages in one datagram, so verdicts are
        // batched: sent when the batch is full or before `recv` would block.
        if self.verdicts.len() + msg.len() > 60_000 {
            self.flush_verdicts()?;
        }
        self.verdicts.extend_from_slice(&msg);
        self.queued_verdicts += 1;
        if self.queued_verdicts >= VERDICT_BATCH {
            self.flush_verdicts()?;
        }
        Ok(())
    }

    /// Sends every batched verdict now.
    pub fn flush_verdicts(&mut self) -> io::Result<()> {
        if self.verdicts.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.verdicts);
        self.queued_verdicts = 0;
        let r = self.send(&batch);
        self.verdicts = batch;
        self.verdicts.clear();
        r
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn setsockopt_int(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: passes a pointer to a live c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: msg and addr are valid for the given lengths.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }

    /// Reads up to `max` datagrams and queues their packets; returns the
    /// errno of the last ACK/error message among them (`Some(0)` is an ACK).
    fn recv_datagrams(&mut self, max: usize, wait: Wait) -> io::Result<Option<i32>> {
        let got = self.datagrams.recv(self.fd.as_raw_fd(), max, wait)?;
        let mut ack = None;
        for i in 0..got {
            let Some(datagram) = self.datagrams.get(i) else {
                // Cannot happen with the copy range capped below the buffer
                // size; the datagrams after it are still read.
                self.netlink_errors += 1;
                tracing::warn!(
                    queue = self.queue_num,
                    "netlink message larger than the receive buffer; skipped"
                );
                continue;
            };
            let first = self.pending.len();
            for msg in NlMessages::new(datagram) {
                match msg {
                    NlMessage::Error(0) => ack = Some(0),
                    NlMessage::Error(errno) => {
                        self.netlink_errors += 1;
                        ack = Some(errno);
                    }
                    NlMessage::Packet(p) => self.pending.push_back(p.in_datagram(datagram)),
                    NlMessage::Other => {}
                }
            }
            if self.pending.len() == first + 1 {
                // The kernel sends each packet in a datagram of its own: the
                // datagram's buffer goes with the packet, nothing is copied.
                let buf = self.datagrams.take(i);
                if let Some(p) = self.pending.back_mut() {
                    p.set_buffer(buf);
                }
            } else {
                // Several packets in one datagram: each gets a copy of its bytes.
                let datagram = self.datagrams.get(i).unwrap_or(&[]);
                for p in self.pending.range_mut(first..) {
                    p.copy_out_of(datagram);
                }
            }
        }
        Ok(ack)
    }

    /// Waits for the ACK of a configuration message, keeping any packet that
    /// arrives meanwhile.
    fn wait_ack(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from nfnetlink"));
            }
            if !self.poll_readable(left)? {
                continue;
            }
            match self.recv_datagrams(1, Wait::No)? {
                Some(0) => return Ok(()),
                Some(errno) => return Err(io::Error::from_raw_os_error(errno)),
                None => {}
            }
        }
    }
}

impl Drop for NfQueue {
    fn drop(&mut self) {
        // Verdicts still batched must not be lost with the socket.
        if let Err(e) = self.flush_verdicts() {
            tracing::warn!("last verdicts could not be sent: {e}");
        }
    }
}

fn classify_bind_error(e: io::Error, queue: u16) -> NfqError {
    match e.raw_os_error() {
        // The kernel answers EPERM both without CAP_NET_ADMIN and when another
        // socket owns the queue; the capability tells them apart.
        Some(libc::EPERM) | Some(libc::EBUSY) => {
            if has_net_admin() {
                NfqError::QueueTaken(queue)
            } else {
                NfqError::NotRoot
            }
        }
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOENT) | Some(libc::EPROTONOSUPPORT) => {
            NfqError::NoKernelSupport(e)
        }
        _ => NfqError::Io(e),
    }
}

/// True if this process has CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .map(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_map_to_what_an_operator_can_do() {
        for errno in [libc::EINVAL, libc::EOPNOTSUPP, libc::ENOENT, libc::EPROTONOSUPPORT] {
            let e = classify_bind_error(io::Error::from_raw_os_error(errno), 3);
            assert!(matches!(e, NfqError::NoKernelSupport(_)), "errno {errno}: {e:?}");
            assert!(e.to_string().contains("modprobe nfnetlink_queue"), "{e}");
        }
        // EPERM means "not root" or "queue taken": the capability decides.
        let e = classify_bind_error(io::Error::from_raw_os_error(libc::EPERM), 3);
        if has_net_admin() {
            assert!(matches!(e, NfqError::QueueTaken(3)), "{e:?}");
            assert!(e.to_string().contains("queue 3 is already bound"), "{e}");
        } else {
            assert!(matches!(e, NfqError::NotRoot), "{e:?}");
        }
        let e = classify_bind_error(io::Error::from_raw_os_error(libc::ENOMEM), 3);
        assert!(matches!(e, NfqError::Io(_)), "{e:?}");
    }
}
