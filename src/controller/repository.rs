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
//!
//! A fetch that fails before anything was read since start deploys what the cache holds from
//! an earlier run (a restart while the remote is down), with the fetch problem reported. The
//! mirror is compacted between fetches once a day ([`COMPACT_EVERY`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::source::{Source, SourceError};
use super::state::RevisionInfo;
use super::trigger::{FetchWish, Triggers};
use crate::model::Partial;

/// What the repository task last found.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The branch head last fetched and read, with its model or why there is none.
    pub head: Option<ReadHead>,
    /// Why the last fetch failed (or has not finished), since when; `None` once one works.
    pub fetch_error: Option<FetchProblem>,
    /// How many fetches had finished at this publication.
    pub fetches: u64,
}

/// A fetched head and what reading it gave.
#[derive(Debug, Clone)]
pub struct ReadHead {
    pub revision: RevisionInfo,
    /// App by app: a broken app is in the `Partial`; only a fleet-level problem is an error.
    pub model: Result<Arc<Partial>, Arc<SourceError>>,
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
    /// The fetch failed before anything was read since start: the head the cache holds
    /// from an earlier run is read instead (deployed while the remote is down).
    FailedWithCached(String, ReadHead),
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
    /// The mirror is compacted (`Mirror::compact`) after a fetch at most this often, the
    /// first time one interval after start.
    compact_every: Duration,
}

/// How often the mirror is compacted by default.
pub const COMPACT_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

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
            compact_every: COMPACT_EVERY,
        };
        (task, view)
    }

    /// Compacts the mirror after a fetch at most once per `every` ([`COMPACT_EVERY`] unless
    /// set).
    pub fn with_compaction(mut self, every: Duration) -> Self {
        self.compact_every = every;
        self
    }

    /// Serves fetch wishes forever.
    pub async fn run(self) {
        let mut last_fetch: Option<tokio::time::Instant> = None;
        let mut last_compact = tokio::time::Instant::now();
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
            // Publish only what changed: each publication makes the loop sync.
            self.publish.send_if_modified(|published| {
                let mut next = Published::clone(published);
                next.fetches += 1;
                let changed = match fetched {
                    Fetched::Failed(message) => {
                        let since = match &next.fetch_error {
                            Some(old) if old.message == message => return false,
                            _ => SystemTime::now(),
                        };
                        next.fetch_error = Some(FetchProblem { message, since });
                        true
                    }
                    Fetched::FailedWithCached(message, head) => {
                        tracing::warn!(
                            commit = %head.revision.commit,
                            "fetching failed; deploying the head cached by an earlier run"
                        );
                        known = Some(head.revision.commit.clone());
                        next.fetch_error = Some(FetchProblem { message, since: SystemTime::now() });
                        next.head = Some(head);
                        true
                    }
                    Fetched::Same => next.fetch_error.take().is_some(),
                    Fetched::New(head) => {
                        known = Some(head.revision.commit.clone());
                        next.fetch_error = None;
                        next.head = Some(head);
                        true
                    }
                    Fetched::Unreadable(head) => {
                        next.fetch_error = None;
                        next.head = Some(head);
                        true
                    }
                };
                if changed {
                    *published = Arc::new(next);
                }
                changed
            });
            // After publishing, so a new head never waits for it.
            if now.duration_since(last_compact) >= self.compact_every {
                last_compact = now;
                self.compact().await;
            }
        }
    }

    /// Repacks the mirror and drops unreachable objects (bounded by the mirror's timeout),
    /// between fetches; a failure is logged and tried again at the next interval.
    async fn compact(&self) {
        let source = self.source.clone();
        let job = tokio::task::spawn_blocking(move || {
            let source = source.lock().unwrap_or_else(|e| e.into_inner());
            source.mirror().compact()
        });
        match job.await {
            Ok(Ok(())) => tracing::info!("mirror compacted"),
            Ok(Err(error)) => tracing::warn!(%error, "compacting the mirror failed"),
            Err(error) => tracing::warn!(%error, "the compaction task failed"),
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
                Err(error) => {
                    // Nothing read since start: the cache's head from an earlier run.
                    let cached = known.is_none().then(|| source.cached_head().ok().flatten());
                    return match cached.flatten() {
                        Some(revision) => match read(&mut source, revision) {
                            Fetched::New(head) => {
                                Fetched::FailedWithCached(error.to_string(), head)
                            }
                            _ => Fetched::Failed(error.to_string()),
                        },
                        None => Fetched::Failed(error.to_string()),
                    };
                }
            };
            if known.as_deref() == Some(revision.commit.as_str()) {
                return Fetched::Same;
            }
            read(&mut source, revision)
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

/// Loads `revision`'s model (blocking).
fn read(source: &mut Source, revision: RevisionInfo) -> Fetched {
    match source.load(&revision.commit) {
        Ok(model) => Fetched::New(ReadHead { revision, model: Ok(Arc::new(model)) }),
        Err(error @ SourceError::Invalid(_)) => {
            Fetched::New(ReadHead { revision, model: Err(Arc::new(error)) })
        }
        Err(error @ SourceError::Unreadable(_)) => {
            Fetched::Unreadable(ReadHead { revision, model: Err(Arc::new(error)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::trigger::Trigger;
    use crate::model::LoadOptions;

    const FLEET: &str = "hosts:\n  a: {endpoint: unix:///a.sock}\n";
    const APP: &str = "services:\n  web:\n    image: web:1\n";

    /// Commits `files` as the whole tree on `main`.
    fn commit(repository: &git2::Repository, files: &[(&str, &str)]) -> String {
        let mut index = git2::Index::new().unwrap();
        for (path, text) in files {
            let id = repository.blob(text.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: Vec::new(),
            };
            entry.flags = path.len() as u16;
            entry.path = path.as_bytes().to_vec();
            index.add(&entry).unwrap();
        }
        let tree = repository.find_tree(index.write_tree_to(repository).unwrap()).unwrap();
        let who = git2::Signature::now("t", "t@example.test").unwrap();
        let parent = repository.find_reference("refs/heads/main").ok();
        let parent = parent.and_then(|r| r.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let id = repository.commit(Some("refs/heads/main"), &who, &who, "c", &tree, &parents);
        id.unwrap().to_string()
    }

    fn task(location: &str, deadline: Duration) -> (RepositoryTask, RepositoryView, Arc<Triggers>) {
        let cache = std::env::temp_dir().join("gitfleet-repository-task-tests");
        let source = Source::open(
            location,
            &cache,
            crate::git::MirrorOptions::default(),
            "main",
            LoadOptions::default(),
            false,
        )
        .unwrap();
        let triggers = Arc::new(Triggers::new());
        let (task, view) =
            RepositoryTask::new(source, triggers.clone(), Duration::from_secs(60), deadline);
        (task, view, triggers)
    }

    async fn next(view: &mut RepositoryView) -> Arc<Published> {
        tokio::time::timeout(Duration::from_secs(20), view.changed())
            .await
            .expect("published in time")
            .expect("task alive");
        view.borrow_and_update().clone()
    }

    #[tokio::test]
    async fn heads_are_published_once_and_a_resync_fetches_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let repository = git2::Repository::init_bare(dir.path()).unwrap();
        let first = commit(&repository, &[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", APP)]);
        let (task, mut view, triggers) =
            task(dir.path().to_str().unwrap(), Duration::from_secs(30));
        let running = tokio::spawn(task.run());

        triggers.push(Trigger::Startup);
        let published = next(&mut view).await;
        let head = published.head.as_ref().unwrap();
        assert_eq!(head.revision.commit, first);
        assert!(head.model.as_ref().unwrap().apps.contains_key("shop"));

        // The same head again: nothing new is published (so the loop does not sync).
        triggers.push(Trigger::Poll);
        let again = tokio::time::timeout(Duration::from_millis(300), view.changed()).await;
        assert!(again.is_err(), "an unchanged head was published again");

        // A head with a broken app is published with that app's diagnostics.
        let broken = commit(
            &repository,
            &[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", "services: [")],
        );
        triggers.push(Trigger::Resync);
        let skipped = tokio::time::timeout(Duration::from_millis(300), view.changed()).await;
        assert!(skipped.is_err(), "a resync fetched within the poll interval");
        triggers.push(Trigger::Webhook { forge: "generic".into() });
        let published = next(&mut view).await;
        let head = published.head.as_ref().unwrap();
        assert_eq!(head.revision.commit, broken);
        let partial = head.model.as_ref().unwrap();
        assert!(matches!(&partial.apps["shop"], Err(d) if !d.is_empty()));

        // A broken fleet.yaml: the whole head is invalid.
        let fleet_broken =
            commit(&repository, &[("fleet.yaml", "hosts: ["), ("apps/shop/compose.yaml", APP)]);
        triggers.push(Trigger::Webhook { forge: "generic".into() });
        let published = next(&mut view).await;
        let head = published.head.as_ref().unwrap();
        assert_eq!(head.revision.commit, fleet_broken);
        assert!(
            matches!(head.model.as_ref().unwrap_err().as_ref(), SourceError::Invalid(d) if !d.is_empty())
        );
        running.abort();
    }

    #[tokio::test]
    async fn a_fetch_that_hangs_is_reported_while_it_lasts() {
        // A remote that accepts connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/fleet.git", listener.local_addr().unwrap());
        let (task, mut view, triggers) = task(&url, Duration::from_millis(500));
        let running = tokio::spawn(task.run());
        triggers.push(Trigger::Startup);
        let held = tokio::task::spawn_blocking(move || listener.accept().map(|(s, _)| s));
        let published = next(&mut view).await;
        let problem = published.fetch_error.as_ref().expect("a stall is a fetch problem");
        assert!(problem.message.contains("has not finished after"), "{problem:?}");
        assert!(published.head.is_none());
        // Hang up: the fetch fails, and that is published (the blocking thread ends).
        drop(held.await.unwrap().unwrap());
        let published = next(&mut view).await;
        let problem = published.fetch_error.as_ref().unwrap();
        assert!(!problem.message.contains("has not finished"), "{problem:?}");
        running.abort();
    }
}
