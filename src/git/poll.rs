//! When to poll the remote next, and how long to wait after failures. Pure: the caller brings
//! the randomness and the clock; the polling loop itself lives in the controller.

use std::time::Duration;

/// No poll is ever scheduled sooner than this after the previous one, whatever the interval
/// and jitter: a zero or tiny interval must not hammer the remote.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The delay before the next poll: `interval` moved by up to ± `jitter_fraction` of itself,
/// `random_unit` (in `[0, 1]`, uniform) choosing where in that range; never below
/// [`MIN_POLL_INTERVAL`]. Out-of-range inputs are clamped (`jitter_fraction` to `[0, 1]`,
/// `random_unit` to `[0, 1]`, NaN to no jitter) rather than rejected.
pub fn next_poll(interval: Duration, jitter_fraction: f64, random_unit: f64) -> Duration {
    let jitter = if jitter_fraction.is_nan() { 0.0 } else { jitter_fraction.clamp(0.0, 1.0) };
    let unit = if random_unit.is_nan() { 0.5 } else { random_unit.clamp(0.0, 1.0) };
    // A factor in [1 - jitter, 1 + jitter], so within [0, 2].
    let factor = 1.0 + jitter * (2.0 * unit - 1.0);
    let delay = Duration::try_from_secs_f64(interval.as_secs_f64() * factor).unwrap_or(interval);
    delay.max(MIN_POLL_INTERVAL)
}

/// The delay before retry number `attempt` (0 for the first retry) after a failure:
/// `base * 2^attempt`, capped at `max` (and `max` when `base` is larger than `max`).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    2u32.checked_pow(attempt)
        .and_then(|factor| base.checked_mul(factor))
        .map_or(max, |delay| delay.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn next_poll_stays_within_the_jitter() {
        let cases = [
            // interval, jitter, random, expected
            (secs(60), 0.0, 0.3, secs(60)),
            (secs(60), 0.1, 0.5, secs(60)),
            (secs(60), 0.1, 0.0, secs(54)),
            (secs(60), 0.1, 1.0, secs(66)),
            (secs(60), 0.5, 0.25, secs(45)),
            (secs(60), 1.0, 0.0, MIN_POLL_INTERVAL),
        ];
        for (interval, jitter, random, expected) in cases {
            let got = next_poll(interval, jitter, random);
            let error = got.abs_diff(expected);
            assert!(error < Duration::from_micros(1), "{interval:?} {jitter} {random}: {got:?}");
        }
    }

    #[test]
    fn next_poll_never_goes_below_the_floor() {
        assert_eq!(next_poll(Duration::ZERO, 0.1, 0.5), MIN_POLL_INTERVAL);
        assert_eq!(next_poll(Duration::from_millis(10), 0.0, 0.0), MIN_POLL_INTERVAL);
        for step in 0..=100 {
            let random = f64::from(step) / 100.0;
            assert!(next_poll(secs(2), 0.9, random) >= MIN_POLL_INTERVAL);
        }
    }

    #[test]
    fn next_poll_clamps_bad_input_and_never_panics() {
        assert_eq!(next_poll(secs(60), f64::NAN, 0.0), secs(60));
        assert_eq!(next_poll(secs(60), 0.1, f64::NAN), secs(60));
        assert_eq!(next_poll(secs(60), -3.0, 0.0), secs(60));
        assert_eq!(next_poll(secs(60), 7.0, 0.0), MIN_POLL_INTERVAL);
        assert_eq!(next_poll(secs(60), 0.5, 9.0), secs(90));
        assert_eq!(next_poll(secs(60), 0.5, f64::NEG_INFINITY), secs(30));
        assert_eq!(next_poll(Duration::MAX, 1.0, 1.0), Duration::MAX);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(500);
        let max = secs(60);
        let expected = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000];
        for (attempt, millis) in expected.into_iter().enumerate() {
            assert_eq!(backoff(attempt as u32, base, max), Duration::from_millis(millis));
        }
        assert_eq!(backoff(31, base, max), max);
        assert_eq!(backoff(32, base, max), max);
        assert_eq!(backoff(u32::MAX, base, max), max);
        assert_eq!(backoff(0, secs(90), max), max);
        assert_eq!(backoff(3, Duration::ZERO, max), Duration::ZERO);
        assert_eq!(backoff(40, Duration::MAX, Duration::MAX), Duration::MAX);
    }
}
