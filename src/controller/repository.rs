//! The repository task: the one owner of the watched repository's [`Source`] (mirror and
//! per-app load cache). It fetches when the triggers wish it (poll, notification, webhook,
//! start; a resync at most once per poll interval), reads and loads a new head off the
//! runtime (`spawn_blocking`), and publishes the latest result through a `watch` channel.
//! The reconcile loop only reads that channel: it never awaits Git, so hosts keep being
//! repaired from the last published target while a fetch hangs.
//!
//! A fetch (with its load) that has not finished within the deadline is published as a
//! fetch problem ("... has not finished after 90 s") while it goes on; the Git timeouts of
//! the mirror end it eventually, and the next wish is served then.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::source::{Source, SourceError};
use super::state::RevisionInfo;
use super::trigger::{FetchWish, Triggers};
use crate::model::Model;

/// What the repository task last found.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The branch head last fetched and read, with its model or why there is none.
    pub head: Option<ReadHead>,
    /// Why the last fetch failed (or has not finished), since when; `None` once one works.
    pub fetch_error: Option<FetchProblem>,
    /// How many fetches have finished (successfully or not).
    pub fetches: u64,
}

/// A fetched head and what reading it gave.
#[derive(Debug, Clone)]
pub struct ReadHead {
    pub revision: RevisionInfo,
    pub model: Result<Arc<Model>, Arc<SourceError>>,
}

/// A failing (or stalled) fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchProblem {
    pub message: String,
    pub since: SystemTime,
}

/// The receiving side of the repository task, for the reconcile loop.
pub type RepositoryView = watch::Receiver<Arc<Published>>;

/// What one fetch (and load) gave.
enum Fetched {
    Failed(String),
    /// The head did not move since the last successful read.
    Same,
    New(ReadHead),
    /// The head is new but could not be read: not remembered, read again next time.
    Unreadable(ReadHead),
}

/// The task's state and settings.
pub struct RepositoryTask {
    source: Arc<Mutex<Source>>,
    triggers: Arc<Triggers>,
    publish: watch::Sender<Arc<Published>>,
    /// A resync fetches only when the last fetch is older than this.
    resync_fetch_interval: Duration,
    /// How long a fetch (with its load) may run before it is reported as stalled.
    deadline: Duration,
}

impl RepositoryTask {
    pub fn new(
        source: Source,
        triggers: Arc<Triggers>,
        resync_fetch_interval: Duration,
        deadline: Duration,
    ) -> (RepositoryTask, RepositoryView) {
        let (publish, view) = watch::channel(Arc::new(Published::default()));
        let task = RepositoryTask {
            source: Arc::new(Mutex::new(source)),
            triggers,
            publish,
            resync_fetch_interval,
            deadline,
        };
        (task, view)
    }

    /// Serves fetch wishes forever.
    pub async fn run(self) {
        let mut last_fetch: Option<tokio::time::Instant> = None;
        let mut known: Option<String> = None;
        loop {
            let wish = self.triggers.next_fetch().await;
            let now = tokio::time::Instant::now();
            if wish == FetchWish::IfStale
                && last_fetch.is_some_and(|at| now.duration_since(at) < self.resync_fetch_interval)
            {
                continue;
            }
            last_fetch = Some(now);
            let fetched = self.fetch_and_load(known.clone()).await;
            self.publish.send_modify(|published| {
                let mut next = Published::clone(published);
                next.fetches += 1;
                match fetched {
                    Fetched::Failed(message) => {
                        let since = match &next.fetch_error {
                            Some(old) if old.message == message => old.since,
                            _ => SystemTime::now(),
                        };
                        next.fetch_error = Some(FetchProblem { message, since });
                    }
                    Fetched::Same => next.fetch_error = None,
                    Fetched::New(head) => {
                        known = Some(head.revision.commit.clone());
                        next.fetch_error = None;
                        next.head = Some(head);
                    }
                    Fetched::Unreadable(head) => {
                        next.fetch_error = None;
                        next.head = Some(head);
                    }
                }
                *published = Arc::new(next);
            });
        }
    }

    /// Fetches the branch and loads its head if it is not `known`, off the runtime; reports a
    /// stall at the deadline, then waits for the end.
    async fn fetch_and_load(&self, known: Option<String>) -> Fetched {
        let source = self.source.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            let mut source = source.lock().unwrap_or_else(|e| e.into_inner());
            let revision = match source.fetch_head() {
                Ok(revision) => revision,
                Err(error) => return Fetched::Failed(error.to_string()),
            };
            if known.as_deref() == Some(revision.commit.as_str()) {
                return Fetched::Same;
            }
            match source.load(&revision.commit) {
                Ok(model) => Fetched::New(ReadHead { revision, model: Ok(Arc::new(model)) }),
                Err(error @ SourceError::Invalid(_)) => {
                    Fetched::New(ReadHead { revision, model: Err(Arc::new(error)) })
                }
                Err(error @ SourceError::Unreadable(_)) => {
                    Fetched::Unreadable(ReadHead { revision, model: Err(Arc::new(error)) })
                }
            }
        });
        let joined = match tokio::time::timeout(self.deadline, &mut job).await {
            Ok(joined) => joined,
            Err(_) => {
                let message = format!(
                    "fetching and reading the branch has not finished after {} s",
                    self.deadline.as_secs()
                );
                tracing::warn!("{message}");
                self.publish.send_modify(|published| {
                    let mut next = Published::clone(published);
                    if next.fetch_error.is_none() {
                        next.fetch_error = Some(FetchProblem { message, since: SystemTime::now() });
                    }
                    *published = Arc::new(next);
                });
                job.await
            }
        };
        joined.unwrap_or_else(|error| Fetched::Failed(format!("the fetch task failed: {error}")))
    }
}
