//! Why a sync runs, and the queue that coalesces bursts of reasons into one sync.
//!
//! Every source (poll timer, webhook, file-system notification, Docker events, periodic
//! resync, a host's grace deadline) pushes a [`Trigger`]; the reconcile loop takes everything
//! pending at once with [`Triggers::next`]. While a sync runs, new triggers gather into one
//! pending [`Batch`], so a burst of any size causes at most one running and one pending sync.
//!
//! Reasons that say the repository may have moved also leave a [`FetchWish`] for the
//! repository task ([`Triggers::next_fetch`]), which fetches without the loop waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::Notify;

/// One reason to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The controller started.
    Startup,
    /// The poll interval passed.
    Poll,
    /// A local repository's branch moved (file-system notification).
    Notify,
    /// A forge said the branch moved (push webhook), or someone asked for a sync.
    Webhook { forge: String },
    /// A container of this fleet died, was destroyed, ran out of memory or changed health.
    DockerEvent { host: String, action: String },
    /// The periodic full resync.
    Resync,
    /// A host's grace period ends, or a held-back replica may be restarted.
    Deadline,
    /// The repository task published something new (a head, a fetch problem).
    Repository,
    /// Someone asked to retry a revision whose rollout failed (a signed generic hook): the
    /// failed apps of it, or only `app`.
    Retry { app: Option<String> },
    /// This instance became the leader (high availability): fetch, observe every host, plan.
    Elected,
}

/// What the repository task is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FetchWish {
    /// Fetch only if the last fetch is older than the poll interval (a periodic resync).
    IfStale,
    /// Fetch now (the branch may have moved).
    Now,
}

impl Trigger {
    /// Whether this reason means the repository may have moved, so fetch first.
    pub fn needs_fetch(&self) -> bool {
        matches!(
            self,
            Trigger::Startup
                | Trigger::Poll
                | Trigger::Notify
                | Trigger::Webhook { .. }
                | Trigger::Elected
        )
    }

    /// What this reason asks of the repository task, if anything.
    pub fn fetch_wish(&self) -> Option<FetchWish> {
        if self.needs_fetch() {
            Some(FetchWish::Now)
        } else if *self == Trigger::Resync {
            Some(FetchWish::IfStale)
        } else {
            None
        }
    }

    /// A short name for logs and the status page.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Poll => "poll",
            Trigger::Notify => "notify",
            Trigger::Webhook { .. } => "webhook",
            Trigger::DockerEvent { .. } => "docker-event",
            Trigger::Resync => "resync",
            Trigger::Deadline => "deadline",
            Trigger::Repository => "repository",
            Trigger::Retry { .. } => "retry",
            Trigger::Elected => "elected",
        }
    }
}

/// The reasons gathered for one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Fetch the repository before planning.
    pub fetch: bool,
    /// How many triggers of each kind were coalesced.
    pub reasons: BTreeMap<&'static str, u64>,
    /// What a retry was asked for, if one was.
    pub retry: Option<RetryScope>,
}

/// What a retry request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryScope {
    /// Every app whose rollout failed (`gitfleet retry`).
    All,
    /// Only these apps (`gitfleet retry --app NAME`).
    Apps(BTreeSet<String>),
}

impl RetryScope {
    /// Both requests at once: all absorbs any apps, apps add up.
    fn merge(self, other: RetryScope) -> RetryScope {
        match (self, other) {
            (RetryScope::Apps(mut mine), RetryScope::Apps(theirs)) => {
                mine.extend(theirs);
                RetryScope::Apps(mine)
            }
            _ => RetryScope::All,
        }
    }
}

impl Batch {
    pub fn add(&mut self, trigger: &Trigger) {
        self.fetch |= trigger.needs_fetch();
        if let Trigger::Retry { app } = trigger {
            let asked = match app {
                Some(app) => RetryScope::Apps(BTreeSet::from([app.clone()])),
                None => RetryScope::All,
            };
            self.retry = Some(match self.retry.take() {
                Some(before) => before.merge(asked),
                None => asked,
            });
        }
        *self.reasons.entry(trigger.kind()).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Whether every reason only says the repository may have moved: the repository task
    /// fetches, and the loop syncs when it publishes something new.
    pub fn only_fetch(&self) -> bool {
        self.reasons.keys().all(|kind| matches!(*kind, "startup" | "poll" | "notify" | "webhook"))
    }

    /// `webhook×1000, docker-event×2`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(kind, n)| if *n == 1 { kind.to_string() } else { format!("{kind}×{n}") })
            .collect();
        parts.join(", ")
    }
}

/// The queue: a pending batch and a wake-up.
#[derive(Debug, Default)]
pub struct Triggers {
    pending: Mutex<Batch>,
    wake: Notify,
    fetch: Mutex<Option<FetchWish>>,
    fetch_wake: Notify,
    /// When the poll timer fires next (for the status page).
    next_poll: Mutex<Option<std::time::SystemTime>>,
}

impl Triggers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The poll timer says when it fires next.
    pub fn set_next_poll(&self, at: std::time::SystemTime) {
        *self.next_poll.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// When the poll timer fires next (`None`: no poll timer).
    pub fn next_poll(&self) -> Option<std::time::SystemTime> {
        *self.next_poll.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a reason; cheap and never blocks on a running sync.
    pub fn push(&self, trigger: Trigger) {
        tracing::trace!(trigger = trigger.kind(), "trigger");
        if let Some(wish) = trigger.fetch_wish() {
            let mut fetch = self.fetch.lock().unwrap_or_else(|e| e.into_inner());
            *fetch = Some(fetch.map_or(wish, |w| w.max(wish)));
            self.fetch_wake.notify_one();
        }
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).add(&trigger);
        self.wake.notify_one();
    }

    /// Waits until a fetch is wished, then takes the wish (several coalesce into one).
    pub async fn next_fetch(&self) -> FetchWish {
        loop {
            if let Some(wish) = self.fetch.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return wish;
            }
            self.fetch_wake.notified().await;
        }
    }

    /// Waits until something is pending, then takes all of it.
    pub async fn next(&self) -> Batch {
        loop {
            let batch =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                return batch;
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_becomes_one_batch() {
        let triggers = Triggers::new();
        for _ in 0..1000 {
            triggers.push(Trigger::Webhook { forge: "github".into() });
        }
        triggers.push(Trigger::DockerEvent { host: "a".into(), action: "die".into() });
        let batch = triggers.next().await;
        assert!(batch.fetch);
        assert_eq!(batch.describe(), "docker-event, webhook×1000");
        // Nothing left: the next call waits for a new trigger.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), triggers.next()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn fetch_wishes_coalesce_and_the_strongest_wins() {
        let triggers = Triggers::new();
        triggers.push(Trigger::Resync);
        assert_eq!(triggers.next_fetch().await, FetchWish::IfStale);
        triggers.push(Trigger::Resync);
        triggers.push(Trigger::Poll);
        triggers.push(Trigger::Resync);
        assert_eq!(triggers.next_fetch().await, FetchWish::Now);
        triggers.push(Trigger::DockerEvent { host: "a".into(), action: "die".into() });
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), triggers.next_fetch()).await;
        assert!(waited.is_err(), "a docker event wishes no fetch");
        let batch = triggers.next().await;
        assert!(!batch.only_fetch());
    }

    #[test]
    fn retries_of_apps_add_up_and_a_retry_of_all_covers_them() {
        let retry = |app: Option<&str>| Trigger::Retry { app: app.map(str::to_string) };
        let mut batch = Batch::default();
        batch.add(&retry(Some("shop")));
        batch.add(&retry(Some("notes")));
        batch.add(&retry(Some("shop")));
        let apps = BTreeSet::from(["notes".to_string(), "shop".to_string()]);
        assert_eq!(batch.retry, Some(RetryScope::Apps(apps)));
        assert_eq!(batch.describe(), "retry×3");
        batch.add(&retry(None));
        batch.add(&retry(Some("web")));
        assert_eq!(batch.retry, Some(RetryScope::All));
        assert_eq!(Batch::default().retry, None);
    }

    #[tokio::test]
    async fn docker_events_alone_do_not_fetch() {
        let triggers = Triggers::new();
        triggers.push(Trigger::DockerEvent { host: "a".into(), action: "die".into() });
        triggers.push(Trigger::Resync);
        assert!(!triggers.next().await.fetch);
    }

    #[tokio::test]
    async fn a_waiting_loop_wakes_on_push() {
        let triggers = std::sync::Arc::new(Triggers::new());
        let waiter = tokio::spawn({
            let triggers = triggers.clone();
            async move { triggers.next().await }
        });
        tokio::task::yield_now().await;
        triggers.push(Trigger::Poll);
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(batch.describe(), "poll");
    }
}
