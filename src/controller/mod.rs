//! The controller: `gitfleet run`'s reconcile loop, which keeps the hosts at the repository's
//! latest good revision.
//!
//! * [`trigger`]: the reasons to sync and the queue that coalesces them.
//! * [`liveness`]: each host's last observation and whether it is up, away or down.
//! * [`crashloop`]: the brake on replicas that keep stopping.
//! * [`state`]: what the controller knows, in one place the web layer and the status writer
//!   read without reaching into the loop.
//! * [`status_files`]: `status.yaml` and `STATUS.md`, rendered from that state.
//! * [`source`]: the repository: fetch, load (cached per app), write status.
//! * [`reconcile`]: one sync: fetch, load, observe, plan, apply, record.
//! * [`events`]: Docker events streams, turned into triggers.
//! * [`previews`]: plan previews on pull requests.
//! * [`metrics`]: the state in Prometheus' text format.
//! * [`http`]: the HTTP side: webhook receivers, health, metrics and the JSON status.
//!
//! [`Controller::start`] wires them: the triggers (poll timer with jitter, or file-system
//! notifications for a local repository; webhooks; Docker events; the periodic resync) feed
//! one queue, and one loop takes a coalesced batch at a time and syncs.

pub mod crashloop;
pub mod events;
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

pub use reconcile::{Outcome, Reconciler};
pub use settings::Settings;
pub use state::{Snapshot, Store};
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

/// A running controller's handles: its state for the web layer, its trigger queue, and what
/// must live as long as it does.
pub struct Controller {
    pub store: Arc<Store>,
    pub triggers: Arc<Triggers>,
    pub previews: Arc<PreviewQueue>,
    _watch: Option<BranchWatch>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Controller {
    /// Opens the repository and starts the loop and its triggers on the current runtime.
    /// `forge`: where to post plan previews of pull requests, if anywhere.
    pub fn start(settings: Settings, forge: Option<ForgeClient>) -> Result<Controller, GitError> {
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
        let store = Arc::new(Store::new(&git::redact_url(&settings.repository), &settings.branch));
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
        let mut tasks = Vec::new();
        if watch.is_none() {
            if let Some(interval) = settings.poll_interval {
                tasks.push(tokio::spawn(poll(interval, triggers.clone())));
            }
        }
        tasks.push(tokio::spawn(resync(settings.resync_interval, triggers.clone())));
        if let Some(client) = forge {
            tasks.push(tokio::spawn(previews::run(previews.clone(), source.clone(), client)));
        }
        let reconciler = Reconciler::new(settings, store.clone(), triggers.clone(), source);
        tasks.push(tokio::spawn(reconcile_loop(reconciler, triggers.clone())));
        triggers.push(Trigger::Startup);
        Ok(Controller { store, triggers, previews, _watch: watch, tasks })
    }

    /// Where webhook receivers hand their hooks: pushes and sync requests trigger a sync,
    /// pull requests a preview. A push naming the commit already fetched triggers nothing:
    /// redelivered or duplicated hooks cost no sync.
    pub fn hook_sink(&self) -> crate::webhook::HookSink {
        let triggers = self.triggers.clone();
        let previews = self.previews.clone();
        let store = self.store.clone();
        Arc::new(move |hook: Hook| match hook {
            Hook::Ping { .. } => {}
            Hook::Push { forge, commit, .. } => {
                if store.head_commit().as_deref() == Some(commit.as_str()) {
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

async fn reconcile_loop(mut reconciler: Reconciler, triggers: Arc<Triggers>) {
    let mut watchers = EventWatchers::new(triggers.clone());
    loop {
        let batch = triggers.next().await;
        reconciler.sync(&batch).await;
        if let Some(model) = reconciler.target_model() {
            watchers.update(&model);
        }
    }
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
    let (observed, clients) = hosts::Pool::new().observe_model(model).await;
    (diff::plan(&Desired::new(model, &observed, revision), &observed), clients)
}
