//! Where "now" comes from.
//!
//! Everything that decides takes a `now` argument; the daemon asks a [`Clock`] for it once
//! per pass. Tests use [`ManualClock`] and move time by hand, so no test waits for wall time
//! (paused tokio time does not move `chrono::Utc::now()`, which is why the clock is ours).

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;

    /// How long to really wait for this clock to reach `t` (zero if it has).
    fn real_wait_until(&self, t: DateTime<Utc>) -> std::time::Duration {
        (t - self.now()).to_std().unwrap_or_default()
    }
}

/// A clock that runs `speed` times faster than the wall clock from a starting instant: one
/// simulated hour per real minute at speed 60. For demos of a whole week in minutes.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    started_real: std::time::Instant,
    started_at: DateTime<Utc>,
    speed: f64,
}

impl ScaledClock {
    /// A clock at `start` now, running `speed` times faster than real time (speed > 0).
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        ScaledClock {
            started_real: std::time::Instant::now(),
            started_at: start,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.started_real.elapsed().as_secs_f64();
        let simulated = TimeDelta::milliseconds((real * self.speed * 1000.0) as i64);
        self.started_at + simulated
    }

    fn real_wait_until(&self, t: DateTime<Utc>) -> std::time::Duration {
        let simulated = (t - self.now()).to_std().unwrap_or_default();
        simulated.div_f64(self.speed)
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same instant.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `instant` (backwards too: tests of clock skew need it).
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = instant;
    }

    /// Moves the clock forward by `delta`.
    pub fn advance(&self, delta: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += delta;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clock that follows tokio's time from an instant: under a paused test runtime
/// (`#[tokio::test(start_paused = true)]`) it moves exactly as far as the runtime's
/// sleeps, so a job that sleeps until an instant of this clock can be tested without
/// waiting.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    started: tokio::time::Instant,
    at: DateTime<Utc>,
}

#[cfg(test)]
impl TokioClock {
    /// A clock at `at` now (call it inside the runtime).
    pub(crate) fn new(at: DateTime<Utc>) -> TokioClock {
        TokioClock {
            started: tokio::time::Instant::now(),
            at,
        }
    }
}

#[cfg(test)]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        self.at + elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        clock.advance(TimeDelta::minutes(90));
        assert_eq!(shared.now(), start + TimeDelta::minutes(90));
        shared.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn a_scaled_clock_runs_faster_and_waits_shorter() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 18, 0, 0).unwrap();
        let clock = ScaledClock::new(start, 3600.0);
        let now = clock.now();
        assert!(now >= start && now < start + TimeDelta::minutes(10));
        // One simulated hour is about one real second at this speed.
        let wait = clock.real_wait_until(now + TimeDelta::hours(1));
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        assert_eq!(
            clock.real_wait_until(start - TimeDelta::hours(1)),
            std::time::Duration::ZERO
        );
    }

    #[test]
    fn system_clock_reads_the_wall_clock() {
        let before = Utc::now();
        let read = SystemClock.now();
        assert!(read >= before && read <= Utc::now());
    }
}
