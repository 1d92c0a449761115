//! The clock leadership is measured on: `CLOCK_BOOTTIME`, which keeps counting while the
//! machine is suspended (Rust's `Instant` is `CLOCK_MONOTONIC` on Linux and stops during
//! suspend, so a leader woken from suspend would believe its lease still had time).

use std::time::Duration;

/// Time since boot, suspend included.
pub fn boot_now() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_clock_moves_forward_with_the_monotonic_clock() {
        let (b0, m0) = (boot_now(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b1, m1) = (boot_now(), std::time::Instant::now());
        assert!(b1 > b0);
        // No suspend in between: both clocks agree to within a few milliseconds.
        let diff = (b1 - b0).as_secs_f64() - (m1 - m0).as_secs_f64();
        assert!(diff.abs() < 0.005, "boot and monotonic clocks differ by {diff}s");
    }
}
