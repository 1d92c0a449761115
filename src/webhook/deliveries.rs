//! Which deliveries were already taken: a bounded memory of recent delivery ids (the forge's
//! `X-GitHub-Delivery`, `X-Gitea-Delivery` / `X-Forgejo-Delivery`, `X-Gitlab-Event-UUID`), so a
//! redelivered or replayed hook costs no second sync. Pure (a mutex, no I/O).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// How many ids are remembered; the oldest is forgotten first.
pub const REMEMBERED_DELIVERIES: usize = 1_000;

/// The last [`REMEMBERED_DELIVERIES`] ids, oldest first.
#[derive(Debug, Default)]
pub struct RecentDeliveries {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentDeliveries {
    /// Records `id` and says whether it is new (`false`: seen among the last ids). Atomic: of
    /// two concurrent calls with one id, exactly one gets `true`.
    pub fn first_time(&self, id: &str) -> bool {
        // A poisoned lock only means another request panicked mid-insert; the sets stay valid.
        let mut memory = self.inner.lock().unwrap_or_else(|poison| poison.into_inner());
        if memory.seen.contains(id) {
            return false;
        }
        if memory.order.len() >= REMEMBERED_DELIVERIES {
            if let Some(oldest) = memory.order.pop_front() {
                memory.seen.remove(&oldest);
            }
        }
        memory.order.push_back(id.to_string());
        memory.seen.insert(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_not_new_until_a_thousand_others_came_after_it() {
        let recent = RecentDeliveries::default();
        assert!(recent.first_time("a"));
        assert!(!recent.first_time("a"));
        for n in 0..REMEMBERED_DELIVERIES - 1 {
            assert!(recent.first_time(&format!("id-{n}")));
        }
        // "a" is still among the last 1,000.
        assert!(!recent.first_time("a"));
        assert!(recent.first_time("one more"));
        // Now it was forgotten, and the memory stays bounded.
        assert!(recent.first_time("a"));
        let memory = recent.inner.lock().unwrap();
        assert_eq!(memory.order.len(), REMEMBERED_DELIVERIES);
        assert_eq!(memory.seen.len(), REMEMBERED_DELIVERIES);
    }
}
