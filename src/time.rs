//! Packet time. The engine runs on the timestamps of the packets it is given
//! (capture time inline, the pcap's record time offline), never on a clock, so
//! offline runs are reproducible.

use std::time::{Duration, Instant};

/// A point in packet time, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from seconds and microseconds.
    pub fn from_secs_micros(secs: u64, micros: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Builds a timestamp from a duration since the epoch.
    pub fn from_duration(d: Duration) -> Self {
        Timestamp(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// The current wall-clock time; only drivers call this, never the engine.
    pub fn now() -> Self {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(Self::from_duration)
            .unwrap_or_default()
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch, as a float (for logs and alerts).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// This time plus a duration, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }

    /// How long after `earlier` this time is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// The inline drivers' packet clock: wall-clock time at start, advanced by a
/// monotonic clock. Timeouts run on packet time, so a wall-clock step (NTP,
/// an operator's `date -s`) must not expire every flow at once, nor stop
/// expiry while the clock catches up; alerts still carry wall-clock-like
/// times.
#[derive(Debug, Clone, Copy)]
pub struct PacketClock {
    wall_at_start: Timestamp,
    start: Instant,
}

impl PacketClock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self::starting_at(Timestamp::now(), Instant::now())
    }

    /// A clock reading `wall` at `start`.
    pub fn starting_at(wall: Timestamp, start: Instant) -> Self {
        PacketClock { wall_at_start: wall, start }
    }

    /// Packet time now.
    pub fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// Packet time at `instant` (never before the start).
    pub fn at(&self, instant: Instant) -> Timestamp {
        self.wall_at_start.saturating_add(instant.saturating_duration_since(self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_clock_follows_the_monotonic_clock_from_its_wall_start() {
        let start = Instant::now();
        let clock = PacketClock::starting_at(Timestamp::from_secs_micros(1_000, 0), start);
        assert_eq!(clock.at(start), Timestamp::from_secs_micros(1_000, 0));
        let later = start + Duration::from_millis(2_500);
        assert_eq!(clock.at(later), Timestamp::from_secs_micros(1_002, 500_000));
        // An instant before the start reads as the start, never earlier.
        if let Some(before) = start.checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.at(before), Timestamp::from_secs_micros(1_000, 0));
        }
        assert!(clock.now() >= clock.at(start));
    }
}
