//! The kernel's per-queue counters, read from /proc/net/netfilter/nfnetlink_queue.

/// One line of /proc/net/netfilter/nfnetlink_queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelQueueStats {
    /// Queue number.
    pub queue_num: u16,
    /// Packets waiting for a verdict right now.
    pub waiting: u64,
    /// Packets the kernel dropped because the queue was full.
    pub queue_dropped: u64,
    /// Packets the kernel dropped because it could not send them to us (socket buffer full).
    pub user_dropped: u64,
}

/// Reads the kernel's per-queue counters (for this network namespace).
pub fn kernel_queue_stats() -> Vec<KernelQueueStats> {
    std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue")
        .map(|s| parse_proc_stats(&s))
        .unwrap_or_default()
}

/// Parses the /proc table: `queue portid waiting copy_mode copy_range queue_dropped user_dropped id_seq 1`.
pub fn parse_proc_stats(text: &str) -> Vec<KernelQueueStats> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<u64> = line.split_whitespace().map_while(|w| w.parse().ok()).collect();
            if f.len() < 7 {
                return None;
            }
            Some(KernelQueueStats {
                queue_num: u16::try_from(f[0]).ok()?,
                waiting: f[2],
                queue_dropped: f[5],
                user_dropped: f[6],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stats() {
        let t = "    0  12345     3 2 65535     7     1      100  1\n    5  1     0 2 65535     0     0      9  1\n";
        let s = parse_proc_stats(t);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], KernelQueueStats { queue_num: 0, waiting: 3, queue_dropped: 7, user_dropped: 1 });
        assert_eq!(s[1].queue_num, 5);
    }
}
