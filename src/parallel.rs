//! Independent work shared out between threads, the results in the order of the inputs:
//! what loading a revision uses to read a commit's blobs (`git`) and to validate its app
//! folders (`model`) on every core, with results that do not depend on the number of
//! threads.

use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sets the threads a load uses, when it should not be the cores this process may run on.
pub const THREADS_VARIABLE: &str = "GITFLEET_LOAD_THREADS";

/// The threads a load (reading the commit and validating its apps) may use:
/// [`THREADS_VARIABLE`] if it holds a positive number, else the cores this process may run
/// on (1 when that cannot be told). Worked out once per process: asking the system reads
/// the CPU affinity and cgroup quota, which a sync that reloads one app should not pay for.
pub fn available_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var(THREADS_VARIABLE)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    })
}

/// Threads at most, whatever the machine offers or [`THREADS_VARIABLE`] asks.
const MAX_THREADS: usize = 8;

/// The stack of a helper thread: as much as a main thread's, since the YAML parser and the
/// schema recurse as deep as a file's nesting allows.
const HELPER_STACK: usize = 8 * 1024 * 1024;

/// `each(context, item)` for every item of `items`, on the calling thread (with `caller` as
/// its context) and `threads - 1` helpers, at most [`MAX_THREADS`] in all. Each helper has
/// the context `helper()` makes on it; a helper whose context cannot be made takes no work.
/// Threads take the next item from a shared counter, so one slow item does not hold up a
/// fixed share of the others. The results are in the order of `items`.
pub fn map_in_order<T: Sync, R: Send, C>(
    items: &[T],
    threads: usize,
    caller: &C,
    helper: impl Fn() -> Option<C> + Sync,
    each: impl Fn(&C, &T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(MAX_THREADS);
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(|item| each(caller, item)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = |context: &C| {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else { return done };
            done.push((index, each(context, item)));
        }
    };
    let mut results = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                let (helper, work) = (&helper, &work);
                std::thread::Builder::new()
                    .name("gitfleet-load".into())
                    .stack_size(HELPER_STACK)
                    .spawn_scoped(scope, move || helper().map(|own| work(&own)).unwrap_or_default())
                    .ok()
            })
            .collect();
        let mut results = work(caller);
        for helper in helpers {
            match helper.join() {
                Ok(done) => results.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items_on_any_number_of_threads() {
        let items: Vec<u64> = (0..1000).collect();
        let slow_square = |_: &(), n: &u64| {
            // Uneven work, so threads finish their items out of order.
            if n % 97 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n * n
        };
        let one = map_in_order(&items, 1, &(), || Some(()), slow_square);
        let four = map_in_order(&items, 4, &(), || Some(()), slow_square);
        assert_eq!(one, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(one, four);
    }

    #[test]
    fn helpers_without_a_context_leave_the_work_to_the_caller() {
        let items: Vec<u32> = (0..100).collect();
        let caller = std::thread::current().id();
        let threads =
            map_in_order(&items, 4, &(), || None::<()>, |_, _| std::thread::current().id());
        assert!(threads.iter().all(|id| *id == caller));
    }
}
