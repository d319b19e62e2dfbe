//! The run's time axis: nanoseconds from the start of the measured window, negative during the
//! warmup. Every recorded time is on this axis, so records from different threads compare.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    /// When the measured window starts (after the warmup).
    pub measured_start: Instant,
}

impl RunClock {
    /// A clock whose measured window starts `warmup` from now.
    pub fn with_warmup(warmup: Duration) -> Self {
        Self {
            measured_start: Instant::now() + warmup,
        }
    }

    /// `at` on the run's axis.
    pub fn nanoseconds_at(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.measured_start) {
            Some(after) => saturating_nanoseconds(after),
            None => -saturating_nanoseconds(self.measured_start - at),
        }
    }

    pub fn now_ns(&self) -> i64 {
        self.nanoseconds_at(Instant::now())
    }

    /// The instant a time on the run's axis names.
    pub fn instant_at(&self, nanoseconds: i64) -> Instant {
        let magnitude = Duration::from_nanos(nanoseconds.unsigned_abs());
        if nanoseconds >= 0 {
            self.measured_start + magnitude
        } else {
            self.measured_start - magnitude
        }
    }
}

fn saturating_nanoseconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_times_are_negative_and_round_trip() {
        let clock = RunClock::with_warmup(Duration::from_secs(5));
        let now = clock.now_ns();
        assert!((-5_000_000_000..-4_900_000_000).contains(&now), "{now}");
        for nanoseconds in [-3_000_000_123, 0, 7_000_000_456] {
            assert_eq!(
                clock.nanoseconds_at(clock.instant_at(nanoseconds)),
                nanoseconds
            );
        }
    }
}
