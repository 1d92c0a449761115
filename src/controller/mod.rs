//! The controller: `gitfleet run`'s reconcile loop, which keeps the hosts at the repository's
//! latest good revision.
//!
//! * [`trigger`]: the reasons to sync and the queue that coalesces them.
//! * [`liveness`]: each host's last observation and whether it is up, away or down.
//! * [`crashloop`]: the brake on replicas that keep stopping.
//! * [`edges`]: the loop's I/O edges as traits (the hosts, the repository's publications)
//!   with their real implementations; the in-process loop tests (`loop_tests`) bring
//!   in-memory ones.
//! * [`isolation`]: per-app isolation: a broken app keeps its last good version, the others
//!   deploy.
//! * [`replicas`]: per-replica rows and per-host usage for the snapshot, from the loop's
//!   observation.
//! * [`state`]: the typed status [`Snapshot`], published by the loop's [`StatusWriter`] and
//!   read through [`StatusReader`]s (web side, router, status writer), never by locking the
//!   loop.
//! * [`health`]: the loop's heartbeat, for `/healthz`.
//! * [`status_files`]: `status.yaml` and `STATUS.md`, rendered from a snapshot.
//! * [`source`]: the repository: fetch, load (cached per app), write status (blocking).
//! * [`repository`]: the task that owns the watched repository's [`Source`], fetches on
//!   wishes and publishes the latest loaded head through a `watch` channel.
//! * [`status_writer`]: the task that commits the status files when the status changed.
//! * [`reconcile`]: one sync: take the published head, observe, plan, apply, record.
//! * [`events`]: Docker events streams, turned into triggers.
//! * [`previews`]: plan previews on pull requests.
//!
//! The HTTP side (status page, API, metrics, webhook listener) is `crate::web`, which reads
//! the state's snapshots.
//! * [`routing`]: the router beside the loop: the snapshot into its table, and the apply guard
//!   that admits new replicas and drains old ones.
//!
//! [`Controller::start`] wires them: the triggers (poll timer with jitter, or file-system
//! notifications for a local repository; webhooks; Docker events; the periodic resync) feed
//! one queue, and one loop takes a coalesced batch at a time and syncs. Every task runs in
//! one `JoinSet`: [`Controller::supervise`] returns as soon as one ends or panics (the
//! process then exits non-zero), and [`Controller::shutdown`] lets the loop finish or stop
//! its current step at a boundary (the cancellation token reaches `apply::execute`).
//!
//! The loop never awaits Git: the repository task fetches and loads, the status writer
//! commits, and previews open their own handle on the repository (same cache directory), so
//! none of them holds anything a deployment needs.

pub mod crashloop;
pub mod edges;
pub mod events;
pub mod health;
pub mod isolation;
pub mod liveness;
pub mod previews;
pub mod reconcile;
pub mod replicas;
pub mod repository;
pub mod routing;
pub mod settings;
pub mod source;
pub mod state;
pub mod status_files;
pub mod status_writer;
pub mod trigger;

#[cfg(test)]
mod loop_tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use health::Heartbeat;
pub use reconcile::{Outcome, Reconciler};
pub use settings::Settings;
pub use state::{Snapshot, StatusReader, StatusWriter};
pub use trigger::{Trigger, Triggers};

use crate::diff::{self, Desired, Plan};
use crate::forge::ForgeClient;
use crate::git::{self, BranchWatch, GitError};
use crate::hosts;
use crate::leader::Leadership;
use crate::model::Model;
use crate::webhook::Hook;
use events::EventWatchers;
use previews::PreviewQueue;
use source::Source;

/// A running controller's handles: the status for the web layer, the loop's heartbeat, its
/// trigger queue, and the supervised tasks.
pub struct Controller {
    pub status: StatusReader,
    pub heartbeat: Arc<Heartbeat>,
    pub triggers: Arc<Triggers>,
    pub previews: Arc<PreviewQueue>,
    cancel: CancellationToken,
    _watch: Option<BranchWatch>,
    tasks: JoinSet<&'static str>,
}

/// How a supervised task ended before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum TaskEnded {
    #[error("the {0} task ended")]
    Returned(&'static str),
    #[error("a task panicked: {0}")]
    Panicked(String),
}

impl Controller {
    /// Opens the repository and starts the loop and its triggers on the current runtime.
    /// `forge`: where to post plan previews of pull requests, if anywhere. `cancel` stops
    /// everything: the loop finishes (or stops at a step boundary) its current sync.
    ///
    /// `leadership`: with high availability, the election this instance takes part in; the
    /// loop then syncs only while it leads, each apply fenced by the term.
    pub fn start(
        settings: Settings,
        forge: Option<ForgeClient>,
        cancel: CancellationToken,
        leadership: Option<Leadership>,
    ) -> Result<Controller, GitError> {
        if settings.status_branch.as_deref() == Some(settings.branch.as_str()) {
            return Err(GitError::InvalidName {
                what: "status branch",
                name: settings.branch.clone(),
                reason:
                    "the status branch must not be the watched branch (status commits would deploy)"
                        .into(),
            });
        }
        let settings = Arc::new(settings);
        let status = StatusWriter::new(Snapshot::new(
            &git::redact_url(&settings.repository),
            &settings.branch,
        ));
        let reader = status.reader();
        let heartbeat = Arc::new(Heartbeat::new(health::bound(settings.resync_interval)));
        let triggers = Arc::new(Triggers::new());
        let open = || {
            Source::open(
                &settings.repository,
                &settings.cache_dir,
                git::MirrorOptions {
                    credentials: settings.credentials.clone(),
                    timeout: settings.git_timeout,
                },
                &settings.branch,
                settings.load.clone(),
                settings.push_status,
            )
        };
        let source = open()?;
        let watch = if source.mirror().is_local() {
            let triggers = triggers.clone();
            let watch =
                git::watch_branch(source.mirror().repository(), &settings.branch, move || {
                    triggers.push(Trigger::Notify)
                })?;
            Some(watch)
        } else {
            None
        };
        let previews = Arc::new(PreviewQueue::default());
        let mut tasks = JoinSet::new();
        if watch.is_none() {
            if let Some(interval) = settings.poll_interval {
                tasks.spawn(until(cancel.clone(), "poll", poll(interval, triggers.clone())));
            }
        }
        let resync_task = resync(settings.resync_interval, triggers.clone());
        tasks.spawn(until(cancel.clone(), "resync", resync_task));
        if let Some(client) = forge {
            // Their own handle on the repository: a preview never holds what a deploy needs.
            let repository = settings
                .preview
                .repository
                .clone()
                .or_else(|| crate::webhook::repository_path(&settings.repository))
                .ok_or_else(|| GitError::InvalidName {
                    what: "forge repository",
                    name: git::redact_url(&settings.repository),
                    reason: "previews need the repository's path on the forge (owner/name): \
                             give --forge-repository"
                        .into(),
                })?;
            let previewer = previews::Previewer::new(
                open()?,
                client,
                settings.preview.clone(),
                &repository,
                &settings.branch,
                Some(settings.repository_id.clone()),
            );
            let task = previews::run(previews.clone(), Arc::new(previewer));
            tasks.spawn(until(cancel.clone(), "previews", task));
        }
        if let Some(branch) = settings.status_branch.clone() {
            let task = status_writer::run(open()?, branch, reader.clone());
            tasks.spawn(until(cancel.clone(), "status writer", task));
        }
        let (repository, view) = repository::RepositoryTask::new(
            source,
            triggers.clone(),
            settings.poll_interval.unwrap_or(settings.resync_interval),
            settings.repository_deadline,
        );
        tasks.spawn(until(cancel.clone(), "repository", repository.run()));
        let reconciler = Reconciler::new(settings, status, view, cancel.clone(), heartbeat.clone());
        tasks.spawn(reconcile_loop(
            reconciler,
            triggers.clone(),
            cancel.clone(),
            heartbeat.clone(),
            leadership,
        ));
        triggers.push(Trigger::Startup);
        Ok(Controller {
            status: reader,
            heartbeat,
            triggers,
            previews,
            cancel,
            _watch: watch,
            tasks,
        })
    }

    /// Waits until a task ends. Before cancellation every task runs forever, so this is an
    /// error (the process should exit non-zero rather than run half-alive).
    pub async fn supervise(&mut self) -> TaskEnded {
        match self.tasks.join_next().await {
            Some(Ok(name)) => TaskEnded::Returned(name),
            Some(Err(error)) => TaskEnded::Panicked(error.to_string()),
            None => TaskEnded::Returned("last"),
        }
    }

    /// Cancels every task and waits for them until `deadline`; tasks still running then are
    /// aborted. Whether everything ended in time.
    pub async fn shutdown(mut self, deadline: tokio::time::Instant) -> bool {
        self.cancel.cancel();
        let all = async {
            while let Some(ended) = self.tasks.join_next().await {
                if let Err(error) = ended {
                    tracing::error!(%error, "a task failed while shutting down");
                }
            }
        };
        let in_time = tokio::time::timeout_at(deadline, all).await.is_ok();
        if !in_time {
            tracing::error!("tasks still running at the shutdown deadline: aborted");
            self.tasks.abort_all();
        }
        in_time
    }

    /// Where webhook receivers hand their hooks: pushes and sync requests trigger a sync,
    /// pull requests a preview. A push naming the commit already fetched triggers nothing:
    /// redelivered or duplicated hooks cost no sync.
    pub fn hook_sink(&self) -> crate::webhook::HookSink {
        let triggers = self.triggers.clone();
        let previews = self.previews.clone();
        let status = self.status.clone();
        Arc::new(move |hook: Hook| match hook {
            Hook::Ping { .. } => {}
            Hook::Push { forge, commit, .. } => {
                if status.get().head_commit() == Some(commit.as_str()) {
                    tracing::debug!(%commit, "push hook for the commit already fetched");
                    return;
                }
                triggers.push(Trigger::Webhook { forge: forge.to_string() })
            }
            Hook::Sync { .. } => {
                // Fetch, and sync even if the branch did not move, retrying a revision
                // whose rollout failed.
                triggers.push(Trigger::Webhook { forge: "generic".into() });
                triggers.push(Trigger::Retry);
            }
            Hook::PullRequest(pr) => previews.push(pr),
        })
    }
}

/// Runs `task` until `cancel` fires; then `name` (it ends normally).
async fn until(
    cancel: CancellationToken,
    name: &'static str,
    task: impl std::future::Future<Output = ()>,
) -> &'static str {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = task => {}
    }
    name
}

/// The reconcile loop: takes a batch of triggers at a time and syncs; wakes itself at the
/// reconciler's deadline (grace period, crash-loop brake); beats the heartbeat while idle.
/// Stops taking triggers once `cancel` fires; a sync under way finishes (its apply stops at
/// the next step boundary).
async fn reconcile_loop(
    mut reconciler: Reconciler,
    triggers: Arc<Triggers>,
    cancel: CancellationToken,
    heartbeat: Arc<Heartbeat>,
    mut leadership: Option<Leadership>,
) -> &'static str {
    let quiet = Arc::new(events::Quiet::default());
    reconciler.set_quiet(quiet.clone());
    let mut watchers = EventWatchers::new(triggers.clone(), quiet);
    loop {
        heartbeat.beat();
        let next_poll = triggers.next_poll();
        if reconciler.status().current().next_poll != next_poll {
            reconciler.status().update(|s| s.next_poll = next_poll);
        }
        // With high availability only the leader syncs; a standby waits for a term, and
        // meanwhile observes the hosts read-only on the same triggers (resync, Docker events,
        // a new head) for its status page.
        if let Some(leadership) = &mut leadership {
            if !follow(&mut reconciler, leadership, &triggers) {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    _ = election_changed(leadership) => {}
                    _ = reconciler.repository_changed() => triggers.push(Trigger::Repository),
                    batch = triggers.next() => {
                        if !batch.only_fetch() {
                            // A term won meanwhile does not wait for the observation (cut
                            // short before anything of it is recorded).
                            tokio::select! {
                                _ = reconciler.observe_standing_by(&batch) => {}
                                _ = term_changed(leadership) => {}
                            }
                            if let Some(model) = reconciler.target_model() {
                                watchers.update(&model);
                            }
                        }
                    }
                    _ = tokio::time::sleep(health::TICK) => {}
                }
                continue;
            }
        }
        let wake = reconciler.wake_at();
        let deadline = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = deadline => {
                reconciler.woken();
                triggers.push(Trigger::Deadline);
            }
            _ = reconciler.repository_changed() => triggers.push(Trigger::Repository),
            batch = triggers.next() => {
                // Reasons that only say the branch may have moved are the repository task's:
                // the loop syncs when it publishes something new.
                if batch.only_fetch() {
                    continue;
                }
                reconciler.sync(&batch).await;
                if let Some(model) = reconciler.target_model() {
                    watchers.update(&model);
                }
            }
            _ = async {
                match &mut leadership {
                    Some(leadership) => election_changed(leadership).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = tokio::time::sleep(health::TICK) => {}
        }
    }
    reconciler.status().event(state::EventKind::Controller, "stopped: shutting down");
    "reconcile"
}

/// Brings the loop in line with the election: publishes the view in the status, hands the
/// current term to the reconciler (a new term syncs at once: fetch, observe every host, then
/// plan). Whether this instance leads.
fn follow(reconciler: &mut Reconciler, leadership: &mut Leadership, triggers: &Triggers) -> bool {
    let view = leadership.view.borrow_and_update().clone();
    if reconciler.status().current().leadership != view {
        reconciler.status().update(|s| s.leadership = view);
    }
    let term = leadership.terms.borrow_and_update().clone().filter(|t| !t.is_over());
    let old = reconciler.term().map(|t| t.epoch);
    let new = term.as_ref().map(|t| t.epoch);
    if old != new {
        if let Some(epoch) = old {
            reconciler.status().event(
                state::EventKind::Controller,
                format!("no longer the leader (epoch {epoch}): standing by"),
            );
        }
        if let Some(epoch) = new {
            reconciler.status().event(
                state::EventKind::Controller,
                format!("leading with epoch {epoch}: observing every host before planning"),
            );
            triggers.push(Trigger::Elected);
        }
        reconciler.set_term(term);
    }
    new.is_some()
}

/// Resolves when the election's view or term changes (never, once the election has ended).
async fn election_changed(leadership: &mut Leadership) {
    let changed = tokio::select! {
        changed = leadership.view.changed() => changed,
        changed = leadership.terms.changed() => changed,
    };
    if changed.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when a term starts or ends (never, once the election has ended).
async fn term_changed(leadership: &mut Leadership) {
    if leadership.terms.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn poll(interval: std::time::Duration, triggers: Arc<Triggers>) {
    let mut delay = git::poll::next_poll(interval, 0.1, random_unit());
    triggers.set_next_poll(std::time::SystemTime::now() + delay);
    loop {
        tokio::time::sleep(delay).await;
        // The next time is set before the trigger, so the loop shows it when it wakes.
        delay = git::poll::next_poll(interval, 0.1, random_unit());
        triggers.set_next_poll(std::time::SystemTime::now() + delay);
        triggers.push(Trigger::Poll);
    }
}

async fn resync(interval: std::time::Duration, triggers: Arc<Triggers>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        triggers.push(Trigger::Resync);
    }
}

/// A number in [0, 1) for poll jitter: no cryptographic quality needed, so the clock's
/// nanoseconds hashed with the standard library's random-keyed hasher will do.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

/// Observes every host of `model` (each bounded by `settings.observe_timeout`) and plans.
/// Also returns each host's connected client (or why there is none), for an apply to reuse.
/// (One-off: `gitfleet plan` / `apply` and pull-request previews; the reconcile loop folds
/// each observation into the hosts' memory first.)
pub async fn observe_and_plan(
    model: &Model,
    revision: Option<String>,
) -> (Plan, BTreeMap<String, Result<bollard::Docker, String>>) {
    observe_and_plan_for(model, revision, None).await
}

/// [`observe_and_plan`] for the repository `repository` (`git::repository_id`): hosts where
/// another repository deployed this fleet are refused (`diff::ownership`).
pub async fn observe_and_plan_for(
    model: &Model,
    revision: Option<String>,
    repository: Option<String>,
) -> (Plan, BTreeMap<String, Result<bollard::Docker, String>>) {
    let round = hosts::Pool::new().observe_model(model).await;
    let desired = Desired::for_repository(model, &round.observed, revision, repository);
    (diff::plan(&desired, &round.observed), round.clients)
}
