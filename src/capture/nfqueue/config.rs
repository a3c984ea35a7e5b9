//! The settings a queue is bound with.

use std::time::Duration;

/// How to bind a queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Queue number (`--queue-num` in the iptables rule).
    pub queue_num: u16,
    /// Kernel queue length (packets waiting for a verdict).
    pub max_len: u32,
    /// When the queue is full the kernel accepts new packets instead of dropping them.
    pub fail_open: bool,
    /// Take GSO packets whole and with partial checksums (`NFQA_CFG_F_GSO`)
    /// instead of having the kernel segment them and compute checksums.
    pub gso: bool,
    /// Socket receive buffer in bytes (`SO_RCVBUFFORCE`), if set.
    pub rcvbuf: Option<usize>,
    /// How long a receive keeps asking the socket for a packet before it
    /// sleeps (zero: it sleeps at once). See [`super::NfQueue::recv_batch`].
    pub busy_poll: Duration,
}

impl QueueConfig {
    /// Defaults for queue `queue_num`: 4096 packets, fail closed, GSO on, no busy polling.
    pub fn new(queue_num: u16) -> Self {
        QueueConfig {
            queue_num,
            max_len: 4096,
            fail_open: false,
            gso: true,
            rcvbuf: None,
            busy_poll: Duration::ZERO,
        }
    }
}
