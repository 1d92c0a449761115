//! Choosing a replica: power of two choices over the least requests in flight (default), or
//! round robin. Pure over slices: what is usable and what is loaded are passed in.

use std::cell::Cell;

use serde::{Deserialize, Serialize};

/// How a rule spreads requests over its replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Two usable replicas at random; the one with fewer requests in flight wins.
    #[default]
    PowerOfTwo,
    /// The next usable replica in turn.
    RoundRobin,
}

/// The index of the replica to use among `count`, or `None` if none is usable.
///
/// `usable(i)` says whether replica `i` may be picked (healthy, not draining, not tried yet
/// by this request); `load(i)` is its requests in flight; `turn` is a counter that advances
/// once a call (round robin's position; the random source of power of two choices).
pub fn pick(
    policy: Policy,
    count: usize,
    usable: impl Fn(usize) -> bool,
    load: impl Fn(usize) -> u32,
    turn: u64,
) -> Option<usize> {
    if count == 0 {
        return None;
    }
    match policy {
        Policy::RoundRobin => {
            let start = (turn % count as u64) as usize;
            (0..count).map(|k| (start + k) % count).find(|&i| usable(i))
        }
        Policy::PowerOfTwo => {
            let usable_count = (0..count).filter(|&i| usable(i)).count();
            match usable_count {
                0 => None,
                1 => (0..count).find(|&i| usable(i)),
                n => {
                    let r = random(turn);
                    let a = (r % n as u64) as usize;
                    let mut b = ((r >> 32) % (n as u64 - 1)) as usize;
                    if b >= a {
                        b += 1;
                    }
                    let nth = |k: usize| (0..count).filter(|&i| usable(i)).nth(k);
                    let (a, b) = (nth(a)?, nth(b)?);
                    Some(if load(b) < load(a) { b } else { a })
                }
            }
        }
    }
}

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// A fast per-thread random number, mixed with `salt` (splitmix64).
fn random(salt: u64) -> u64 {
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(17);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_turns_and_skips_unusable() {
        let usable = |i: usize| i != 1;
        let picks: Vec<_> =
            (0..6).map(|t| pick(Policy::RoundRobin, 3, usable, |_| 0, t).unwrap()).collect();
        assert_eq!(picks, [0, 2, 2, 0, 2, 2]);
        assert_eq!(pick(Policy::RoundRobin, 3, |_| false, |_| 0, 0), None);
        assert_eq!(pick(Policy::RoundRobin, 0, |_| true, |_| 0, 0), None);
    }

    #[test]
    fn power_of_two_prefers_the_less_loaded() {
        // Two replicas: both are always the two choices, so the idle one always wins.
        let loads = [5, 0];
        for t in 0..100 {
            assert_eq!(pick(Policy::PowerOfTwo, 2, |_| true, |i| loads[i], t), Some(1));
        }
        // Many replicas, one heavily loaded: it is picked far less than its share.
        let loads = [100, 0, 0, 0];
        let mut hits = [0; 4];
        for t in 0..4000 {
            hits[pick(Policy::PowerOfTwo, 4, |_| true, |i| loads[i], t).unwrap()] += 1;
        }
        assert_eq!(hits[0], 0, "the loaded replica loses every comparison: {hits:?}");
        assert!(hits[1..].iter().all(|&h| h > 800), "the rest share evenly: {hits:?}");
    }

    #[test]
    fn power_of_two_spreads_when_equal_and_honours_usable() {
        let mut hits = [0; 3];
        for t in 0..3000 {
            hits[pick(Policy::PowerOfTwo, 3, |_| true, |_| 0, t).unwrap()] += 1;
        }
        assert!(hits.iter().all(|&h| h > 700), "{hits:?}");
        for t in 0..100 {
            assert_eq!(pick(Policy::PowerOfTwo, 3, |i| i == 2, |_| 0, t), Some(2));
            let p = pick(Policy::PowerOfTwo, 3, |i| i != 0, |_| 0, t).unwrap();
            assert_ne!(p, 0);
        }
        assert_eq!(pick(Policy::PowerOfTwo, 3, |_| false, |_| 0, 0), None);
    }
}
