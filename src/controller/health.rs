//! Liveness of the reconcile loop, for `/healthz`: a heartbeat the loop updates while it
//! waits for triggers (every [`TICK`]) and at each stage of a sync (fetched, observed, each
//! apply event). `/healthz` fails once no beat came for [`bound`] of the resync interval:
//! `max(3 × resync interval, 2 min)`, long enough for a slow health wait (120 s at most by
//! default) and short enough that a hung fetch or Docker call is noticed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the idle loop beats.
pub const TICK: Duration = Duration::from_secs(5);

/// How long the loop may go without a beat before it counts as stuck.
pub fn bound(resync_interval: Duration) -> Duration {
    (resync_interval * 3).max(Duration::from_secs(120))
}

/// The loop's last sign of progress.
#[derive(Debug)]
pub struct Heartbeat {
    last: Mutex<Instant>,
    bound: Duration,
}

impl Heartbeat {
    pub fn new(bound: Duration) -> Self {
        Heartbeat { last: Mutex::new(Instant::now()), bound }
    }

    pub fn beat(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Ok while the last beat is within the bound at `now`; otherwise why not.
    pub fn check_at(&self, now: Instant) -> Result<(), String> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        let quiet = now.saturating_duration_since(last);
        if quiet > self.bound {
            Err(format!(
                "the reconcile loop has made no progress for {}s (bound {}s)",
                quiet.as_secs(),
                self.bound.as_secs()
            ))
        } else {
            Ok(())
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_three_resyncs_but_at_least_two_minutes() {
        assert_eq!(bound(Duration::from_secs(10)), Duration::from_secs(120));
        assert_eq!(bound(Duration::from_secs(60)), Duration::from_secs(180));
    }

    #[test]
    fn a_quiet_loop_fails_after_the_bound() {
        let heartbeat = Heartbeat::new(Duration::from_secs(120));
        let start = Instant::now();
        assert!(heartbeat.check_at(start + Duration::from_secs(119)).is_ok());
        let err = heartbeat.check_at(start + Duration::from_secs(200)).unwrap_err();
        assert!(
            err.contains("no progress for 200s") || err.contains("no progress for 199s"),
            "{err}"
        );
        heartbeat.beat();
        assert!(heartbeat.check().is_ok());
    }
}
