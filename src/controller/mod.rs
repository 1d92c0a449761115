//! The controller: `gitfleet run`'s reconcile loop, which keeps the hosts at the repository's
//! latest good revision.
//!
//! * [`trigger`]: the reasons to sync and the queue that coalesces them.
//! * [`liveness`]: each host's last observation and whether it is up, away or down.
//! * [`crashloop`]: the brake on replicas that keep stopping.
//! * [`state`]: the typed status [`Snapshot`], published by the loop's [`StatusWriter`] and
//!   read through [`StatusReader`]s (web side, router, status writer), never by locking the
//!   loop.
//! * [`health`]: the loop's heartbeat, for `/healthz`.
//! * [`status_files`]: `status.yaml` and `STATUS.md`, rendered from a snapshot.
//! * [`source`]: the repository: fetch, load (cached per app), write status.
//! * [`reconcile`]: one sync: fetch, load, observe, plan, apply, record.
//! * [`events`]: Docker events streams, turned into triggers.
//! * [`previews`]: plan previews on pull requests.
//! * [`metrics`]: a snapshot in Prometheus' text format.
//! * [`http`]: the HTTP side: webhook receivers, health, readiness, metrics, JSON status.
//!
//! [`Controller::start`] wires them: the triggers (poll timer with jitter, or file-system
//! notifications for a local repository; webhooks; Docker events; the periodic resync) feed
//! one queue, and one loop takes a coalesced batch at a time and syncs. Every task runs in
//! one `JoinSet`: [`Controller::supervise`] returns as soon as one ends or panics (the
//! process then exits non-zero), and [`Controller::shutdown`] lets the loop finish or stop
//! its current step at a boundary (the cancellation token reaches `apply::execute`).
//!
//! # Caveats
//!
//! The loop still awaits Git (fetch, load, status commits) and shares the repository with
//! previews through a `Mutex`; a separate repository task is the next step.

pub mod crashloop;
pub mod events;
pub mod health;
pub mod http;
pub mod liveness;
pub mod metrics;
pub mod previews;
pub mod reconcile;
pub mod settings;
pub mod source;
pub mod state;
pub mod status_files;
pub mod trigger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
    pub fn start(
        settings: Settings,
        forge: Option<ForgeClient>,
        cancel: CancellationToken,
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
        let source = Source::open(
            &settings.repository,
            &settings.cache_dir,
            settings.credentials.clone(),
            &settings.branch,
            settings.load.clone(),
            settings.push_status,
        )?;
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
        let source = Arc::new(tokio::sync::Mutex::new(source));
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
            let task = previews::run(previews.clone(), source.clone(), client);
            tasks.spawn(until(cancel.clone(), "previews", task));
        }
        let reconciler =
            Reconciler::new(settings, status, source, cancel.clone(), heartbeat.clone());
        tasks.spawn(reconcile_loop(
            reconciler,
            triggers.clone(),
            cancel.clone(),
            heartbeat.clone(),
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
            Hook::Sync { .. } => triggers.push(Trigger::Webhook { forge: "generic".into() }),
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
) -> &'static str {
    let mut watchers = EventWatchers::new(triggers.clone());
    loop {
        heartbeat.beat();
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
            batch = triggers.next() => {
                reconciler.sync(&batch).await;
                if let Some(model) = reconciler.target_model() {
                    watchers.update(&model);
                }
            }
            _ = tokio::time::sleep(health::TICK) => {}
        }
    }
    reconciler.status().event(state::EventKind::Controller, "stopped: shutting down");
    "reconcile"
}

async fn poll(interval: std::time::Duration, triggers: Arc<Triggers>) {
    loop {
        let random = random_unit();
        tokio::time::sleep(git::poll::next_poll(interval, 0.1, random)).await;
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
    let settings = &model.fleet.settings;
    let timeout = Duration::from_millis(settings.observe_timeout_ms);
    let (observed, clients) =
        hosts::Pool::new().observe_all(&model.fleet.hosts, &settings.name, timeout).await;
    (diff::plan(&Desired::new(model, &observed, revision), &observed), clients)
}
