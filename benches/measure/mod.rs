//! What the benchmarks measure besides criterion's wall clock: the heap (a counting global
//! allocator: live bytes and their high-water mark) and the CPU time of the measuring thread
//! (a criterion [`Measurement`]), which a shared, busy machine disturbs far less than the wall
//! clock: another process taking the core stops the clock of this thread too.
//!
//! A bench that uses the allocator declares it itself:
//! `#[global_allocator] static ALLOCATOR: measure::Counting = measure::Counting;`

#![allow(dead_code)] // each bench uses its own part of this

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use rustix::time::{ClockId, clock_gettime};

// ---- heap ---------------------------------------------------------------------------------

/// The binary's allocator (mimalloc, see `src/main.rs`), counting live bytes and their
/// high-water mark.
pub struct Counting;

// Signed: with counting switched off and on again, blocks allocated while it was off may be
// freed while it is on. Only differences are ever reported, and they stay right.
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Switched off during the timings, so they do not pay for counting.
static COUNTING: AtomicBool = AtomicBool::new(true);

fn grew(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let bytes = bytes as isize;
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    CURRENT.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `MiMalloc`; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { MiMalloc.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

/// Live bytes, up to a constant: use differences only.
pub fn live_bytes() -> isize {
    CURRENT.load(Ordering::Relaxed)
}

/// Forgets the high-water mark: from now on the peak is measured from what is live now.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The high-water mark of [`live_bytes`] since [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.load(Ordering::Relaxed)
}

/// Switches counting off (for the timings) or on again.
pub fn counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

pub fn mib(bytes: isize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

// ---- CPU time -----------------------------------------------------------------------------

/// The CPU time this thread has used so far.
pub fn thread_cpu() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Runs `f` and returns its result with the wall and CPU time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu());
    let out = f();
    (out, wall.elapsed(), thread_cpu() - cpu)
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Criterion measurement: CPU time of the benchmark's thread, in nanoseconds.
pub struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu() - started
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Nanoseconds shown as criterion shows times, marked as CPU time.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else if typical < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = 1e9 / *v);
        "runs/s cpu"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Criterion measuring CPU time, configured from the command line.
pub fn cpu_criterion() -> Criterion<CpuTime> {
    Criterion::default().with_measurement(CpuTime).configure_from_args()
}
