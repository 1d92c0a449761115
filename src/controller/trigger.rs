//! Why a sync runs, and the queue that coalesces bursts of reasons into one sync.
//!
//! Every source (poll timer, webhook, file-system notification, Docker events, periodic
//! resync, a host's grace deadline) pushes a [`Trigger`]; the reconcile loop takes everything
//! pending at once with [`Triggers::next`]. While a sync runs, new triggers gather into one
//! pending [`Batch`], so a burst of any size causes at most one running and one pending sync.

use std::collections::BTreeMap;
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
    /// This instance became the leader (high availability): fetch, observe every host, plan.
    Elected,
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
}

impl Batch {
    pub fn add(&mut self, trigger: &Trigger) {
        self.fetch |= trigger.needs_fetch();
        *self.reasons.entry(trigger.kind()).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
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
}

impl Triggers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reason; cheap and never blocks on a running sync.
    pub fn push(&self, trigger: Trigger) {
        tracing::trace!(trigger = trigger.kind(), "trigger");
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).add(&trigger);
        self.wake.notify_one();
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
