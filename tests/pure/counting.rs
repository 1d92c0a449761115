//! This test binary's global allocator: the system allocator, counting the live heap bytes of
//! each thread and their peak, so a test can measure what one call on its own thread
//! allocated while other tests run beside it. Frees on another thread than the allocation's
//! count there (they only make that thread's count lower, never a peak higher).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    // `try_with`: a thread being torn down has no counters left; its allocations go uncounted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            add(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            add(layout.size() as isize);
        }
        pointer
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Where this thread's count stands: pass it to [`peak_since`].
pub struct Mark(isize);

/// Starts a measurement on this thread: the peak is reset to the live count.
pub fn start() -> Mark {
    let live = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(live));
    Mark(live)
}

/// The most bytes this thread held at once since `mark`, beyond what it held then.
pub fn peak_since(mark: Mark) -> usize {
    (PEAK.with(Cell::get) - mark.0).max(0) as usize
}
