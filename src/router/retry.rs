//! When a failed attempt may be tried again on another replica. Pure rules plus a retry
//! budget shared by all requests of a router.
//!
//! # Rules
//!
//! * A connect failure sent nothing: any request may be retried (if its body was kept).
//! * A failure after the request was handed to a connection but before any response byte
//!   (a reused keep-alive connection the backend closed, say) may have reached the backend:
//!   retried only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) whose body
//!   is empty or buffered.
//! * Never once response headers were received, never for a streamed body, never past the
//!   timeout of a response.
//! * At most [`MAX_TRIES`] tries within [`TRY_WINDOW`] of the request's arrival, and only
//!   while the budget allows (retries ≤ 20 % of requests plus 10 a second).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::Method;

pub const MAX_TRIES: u32 = 3;
pub const TRY_WINDOW: Duration = Duration::from_secs(5);

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: nothing was sent.
    Connect,
    /// The request may have been sent; no response byte came.
    BeforeResponse,
    /// No response headers within the timeout.
    Timeout,
}

/// Whether to try again after attempt number `tries` (1 for the first) failed.
pub fn may_retry(
    failure: Failure,
    method: &Method,
    body_replayable: bool,
    tries: u32,
    since_arrival: Duration,
) -> bool {
    if tries >= MAX_TRIES || since_arrival >= TRY_WINDOW || !body_replayable {
        return false;
    }
    match failure {
        Failure::Connect => true,
        Failure::BeforeResponse => is_idempotent(method),
        Failure::Timeout => false,
    }
}

pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A budget: retries may be at most `ratio` of the requests seen in the last window plus
/// `per_second` a second, so a failing fleet is not hit with three times its load.
#[derive(Debug)]
pub struct Budget {
    ratio: f64,
    per_second: f64,
    window: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    since: Instant,
    requests: u64,
    retries: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(0.2, 10.0, Duration::from_secs(10))
    }
}

impl Budget {
    pub fn new(ratio: f64, per_second: f64, window: Duration) -> Self {
        Budget {
            ratio,
            per_second,
            window,
            state: Mutex::new(BudgetState { since: Instant::now(), requests: 0, retries: 0 }),
        }
    }

    fn roll(&self, state: &mut BudgetState, now: Instant) {
        if now.duration_since(state.since) >= self.window {
            *state = BudgetState { since: now, requests: 0, retries: 0 };
        }
    }

    /// Counts a request.
    pub fn request(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut s, now);
        s.requests += 1;
    }

    /// Takes one retry from the budget, if there is one left.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut s, now);
        let allowed = self.ratio * s.requests as f64 + self.per_second * self.window.as_secs_f64();
        if (s.retries as f64) < allowed {
            s.retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn rules_table() {
        use Failure::*;
        let post = Method::POST;
        let get = Method::GET;
        let cases = [
            // (failure, method, replayable, tries, elapsed, expected)
            (Connect, &get, true, 1, NOW, true),
            (Connect, &post, true, 1, NOW, true),
            (Connect, &post, false, 1, NOW, false),
            (BeforeResponse, &get, true, 1, NOW, true),
            (BeforeResponse, &Method::PUT, true, 2, NOW, true),
            (BeforeResponse, &post, true, 1, NOW, false),
            (BeforeResponse, &Method::PATCH, true, 1, NOW, false),
            (BeforeResponse, &get, false, 1, NOW, false),
            (Timeout, &get, true, 1, NOW, false),
            (Connect, &get, true, 3, NOW, false),
            (Connect, &get, true, 1, Duration::from_secs(5), false),
        ];
        for (failure, method, replayable, tries, elapsed, want) in cases {
            assert_eq!(
                may_retry(failure, method, replayable, tries, elapsed),
                want,
                "{failure:?} {method} replayable={replayable} tries={tries} after {elapsed:?}"
            );
        }
    }

    #[test]
    fn the_budget_bounds_retries() {
        let budget = Budget::new(0.2, 0.5, Duration::from_secs(10));
        let now = Instant::now();
        // 5 retries a window for free (0.5/s over 10 s), then 1 per 5 requests.
        let free = (0..20).take_while(|_| budget.try_retry(now)).count();
        assert_eq!(free, 5);
        for _ in 0..10 {
            budget.request(now);
        }
        assert!(budget.try_retry(now));
        assert!(budget.try_retry(now));
        assert!(!budget.try_retry(now));
        // A new window starts afresh.
        assert!(budget.try_retry(now + Duration::from_secs(11)));
    }
}
