//! Until when a leader may act, from the keep-alives etcd acknowledged (pure: times are
//! passed in, read from [`super::clock::boot_now`] by the caller).
//!
//! A keep-alive sent at `t` and acknowledged with a TTL of `ttl` proves the lease lives at
//! least until `t + ttl` on the server's side (the server renewed it after `t`). The leader
//! acts only until `t + ttl − margin` of the *last acknowledged* keep-alive, so it stops
//! `margin` before anyone else could have taken over, whatever etcd says later. The margin
//! covers the clock-rate difference between this machine and the etcd leader and the time a
//! Docker call already sent takes to land.
//!
//! Keep-alives go every TTL/4. A stream that stays silent for `reopen_after` (about 500 ms)
//! after a keep-alive was sent is re-opened on another member: a stream pinned to a stalled
//! member otherwise loses the lease while the cluster is healthy.

use std::collections::VecDeque;
use std::time::Duration;

/// The margin for a TTL: a fifth of it, between 200 ms and 2 s.
pub fn margin_for(ttl: Duration) -> Duration {
    (ttl / 5).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// The keep-alive bookkeeping of one lease. Times are boot-clock readings.
#[derive(Debug, Clone)]
pub struct LeaseClock {
    interval: Duration,
    margin: Duration,
    reopen_after: Duration,
    deadline: Duration,
    /// Send times of keep-alives not yet acknowledged on the current stream, oldest first
    /// (etcd answers a stream's requests in order).
    outstanding: VecDeque<Duration>,
    last_sent: Duration,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send a keep-alive now.
    Send,
    /// The stream has been silent too long: open a new one (on another member).
    Reopen,
    /// The deadline passed: the lease must be taken as lost.
    Expired,
    /// Nothing until this boot-clock time.
    WaitUntil(Duration),
}

impl LeaseClock {
    /// A lease of `ttl` granted by a request sent at `granted_sent_at`.
    pub fn new(
        ttl: Duration,
        margin: Duration,
        reopen_after: Duration,
        granted_sent_at: Duration,
    ) -> Self {
        LeaseClock {
            interval: ttl / 4,
            margin,
            reopen_after,
            deadline: (granted_sent_at + ttl).saturating_sub(margin),
            outstanding: VecDeque::new(),
            last_sent: granted_sent_at,
        }
    }

    /// Until when the holder may act (boot clock).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A keep-alive was sent at `at`.
    pub fn sent(&mut self, at: Duration) {
        self.outstanding.push_back(at);
        self.last_sent = at;
    }

    /// The oldest outstanding keep-alive was acknowledged with `ttl` (etcd's answer; zero or
    /// less means the lease is gone). Returns whether the lease still lives.
    pub fn acked(&mut self, ttl_secs: i64) -> bool {
        let Some(sent) = self.outstanding.pop_front() else {
            // An answer nobody waits for (the first answer of a re-opened stream is consumed
            // by the client library): it extends nothing.
            return ttl_secs > 0;
        };
        if ttl_secs <= 0 {
            return false;
        }
        let until = (sent + Duration::from_secs(ttl_secs as u64)).saturating_sub(self.margin);
        self.deadline = self.deadline.max(until);
        true
    }

    /// The stream was dropped: its outstanding keep-alives will never be answered.
    pub fn reopened(&mut self) {
        self.outstanding.clear();
    }

    /// What to do at `now`.
    pub fn next(&self, now: Duration) -> Next {
        if now >= self.deadline {
            return Next::Expired;
        }
        if let Some(oldest) = self.outstanding.front() {
            let silent_until = *oldest + self.reopen_after;
            if now >= silent_until {
                return Next::Reopen;
            }
            // Wait for the answer, but send on schedule if it is late (a slow but live stream).
            let send_at = self.last_sent + self.interval;
            if now >= send_at {
                return Next::Send;
            }
            return Next::WaitUntil(silent_until.min(send_at).min(self.deadline));
        }
        let send_at = self.last_sent + self.interval;
        if now >= send_at {
            return Next::Send;
        }
        Next::WaitUntil(send_at.min(self.deadline))
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Duration) -> Duration {
        self.deadline.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn clock_at(start: u64) -> LeaseClock {
        LeaseClock::new(TTL, ms(1000), ms(500), ms(start))
    }

    #[test]
    fn margin_is_a_fifth_of_the_ttl_within_bounds() {
        assert_eq!(margin_for(TTL), ms(1000));
        assert_eq!(margin_for(Duration::from_secs(2)), ms(400));
        assert_eq!(margin_for(Duration::from_millis(500)), ms(200));
        assert_eq!(margin_for(Duration::from_secs(60)), ms(2000));
    }

    #[test]
    fn the_grant_gives_ttl_minus_margin_from_its_send_time() {
        let clock = clock_at(10_000);
        assert_eq!(clock.deadline(), ms(14_000));
        assert_eq!(clock.remaining(ms(13_000)), ms(1000));
        assert_eq!(clock.remaining(ms(15_000)), Duration::ZERO);
    }

    #[test]
    fn keep_alives_go_every_quarter_ttl() {
        let clock = clock_at(0);
        assert_eq!(clock.next(ms(0)), Next::WaitUntil(ms(1250)));
        assert_eq!(clock.next(ms(1250)), Next::Send);
    }

    #[test]
    fn an_ack_extends_from_the_send_time_not_the_arrival_time() {
        let mut clock = clock_at(0);
        clock.sent(ms(1250));
        // Answered late (at 1,700 ms): still counted from 1,250.
        assert!(clock.acked(5));
        assert_eq!(clock.deadline(), ms(5250));
    }

    #[test]
    fn acks_are_matched_to_sends_in_order() {
        let mut clock = clock_at(0);
        clock.sent(ms(1250));
        clock.sent(ms(2500));
        assert!(clock.acked(5));
        assert_eq!(clock.deadline(), ms(5250));
        assert!(clock.acked(5));
        assert_eq!(clock.deadline(), ms(6500));
    }

    #[test]
    fn a_shorter_ttl_in_an_ack_never_moves_the_deadline_back() {
        let mut clock = clock_at(0);
        clock.sent(ms(100));
        assert!(clock.acked(1));
        assert_eq!(clock.deadline(), ms(4000));
    }

    #[test]
    fn a_zero_ttl_means_the_lease_is_gone() {
        let mut clock = clock_at(0);
        clock.sent(ms(1250));
        assert!(!clock.acked(0));
        assert_eq!(clock.deadline(), ms(4000), "a lost lease extends nothing");
    }

    #[test]
    fn silence_after_a_send_reopens_the_stream() {
        let mut clock = clock_at(0);
        clock.sent(ms(1250));
        assert_eq!(clock.next(ms(1300)), Next::WaitUntil(ms(1750)));
        assert_eq!(clock.next(ms(1750)), Next::Reopen);
        clock.reopened();
        // The new stream's first keep-alive is sent at once by the caller.
        clock.sent(ms(1760));
        assert!(clock.acked(5));
        assert_eq!(clock.deadline(), ms(5760));
    }

    #[test]
    fn answers_of_a_dropped_stream_do_not_count() {
        let mut clock = clock_at(0);
        clock.sent(ms(1250));
        clock.reopened();
        // The first answer on the new stream, with nothing outstanding, extends nothing.
        assert!(clock.acked(5));
        assert_eq!(clock.deadline(), ms(4000));
    }

    #[test]
    fn without_acks_the_deadline_passes() {
        let mut clock = clock_at(0);
        for t in [1250, 1760, 2270, 2780, 3290, 3800] {
            clock.sent(ms(t));
            clock.reopened();
        }
        assert!(matches!(clock.next(ms(3999)), Next::Send | Next::WaitUntil(_)));
        assert_eq!(clock.next(ms(4000)), Next::Expired);
    }

    #[test]
    fn waits_never_pass_the_deadline() {
        let clock = LeaseClock::new(TTL, ms(4000), ms(500), ms(0));
        assert_eq!(clock.next(ms(0)), Next::WaitUntil(ms(1000)));
    }
}
