//! Pull-request plan previews: for a pull request into the watched branch, fetch its head,
//! load it, plan it against the hosts' live state, and keep one comment on the pull request
//! up to date with the result (see `forge::preview`). Previews only read: they observe the
//! hosts, never change them.
//!
//! A pull request's content is anyone's (a fork's author, a compromised account), so:
//!
//! # Guarantees
//!
//! * **Forks are off by default.** A pull request whose head is in another repository, or in
//!   one the payload does not name, is not previewed (nothing is fetched, nothing posted)
//!   unless [`PreviewSettings::forks`] is set (`--preview-forks`).
//! * **The base decides everything but `apps/`.** A preview loads the base branch's
//!   `fleet.yaml` (as this controller last fetched it) with the head's `apps/`
//!   (`git::read_preview`): hosts, TLS file paths, settings, limits and variables are never
//!   the pull request's. The head is read within a [`PreviewBudget`], from Git objects only
//!   (symbolic links are never followed), and loaded under the base's limits.
//! * **No foreign text in a comment.** Git's, a host's and the forge's error messages go to
//!   the log only; the comment says one fixed sentence per kind of failure
//!   (`forge::PreviewFailure`), and an unobserved host is "no answer" or "answered with an
//!   error". A preview asks no registry (no image platform lookups), so an image name cannot
//!   make the controller connect anywhere.
//! * **Comments go to the configured repository.** A hook naming another repository is
//!   dropped; the comment goes to pull request `number` of [`PreviewSettings::repository`]
//!   (the payload's GitLab project id is not used).
//! * **Previews cannot hold up deployments.** The blocking part (fetch, read, load) runs on
//!   a blocking thread with the previews' own repository handle; the whole preview runs under
//!   [`PreviewSettings::deadline`]. One blocking job runs at a time: one given up at the
//!   deadline still holds the slot until it ends, so runaway work never piles up.
//! * **One instance per head.** With high availability ([`PreviewSettings::claims`]), a
//!   pull request head is claimed in etcd before anything is fetched; an instance that finds
//!   it claimed skips it (`leader::claims` says how a dead instance's claim expires).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

use super::source::Source;
use crate::diff::{self, Desired, HostObservation, Observed, Plan};
use crate::forge::{
    CommentAction, ForgeClient, Preview, PreviewFailure, PreviewOutcome, PullRequestRef,
    render_comment,
};
use crate::git::{PreviewBudget, PreviewReadError, read_preview};
use crate::hosts::{FailureClass, Pool};
use crate::leader::claims::Claimed;
use crate::model::{self, Diagnostic, Model};
use crate::webhook::{Forge, PullRequestAction, PullRequestHook};

/// How previews behave; part of the controller's settings.
#[derive(Debug, Clone)]
pub struct PreviewSettings {
    /// Preview pull requests from forks (or from a head repository the payload does not
    /// name). Off by default: `--preview-forks`, `GITFLEET_PREVIEW_FORKS`, `preview_forks:`.
    pub forks: bool,
    /// The repository on the forge (`owner/name`, GitLab `group/sub/name`) whose pull
    /// requests are previewed and where comments go. `None`: derived from the watched
    /// repository's URL (`webhook::repository_path`).
    pub repository: Option<String>,
    /// How long one preview may take, fetch to comment. Default 120 s.
    pub deadline: Duration,
    pub budget: PreviewBudget,
    /// With high availability: claims each pull request head in etcd, so that one instance
    /// previews it (`leader::claims`). `None`: every hook received is previewed.
    pub claims: Option<crate::leader::claims::PreviewClaims>,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings {
            forks: false,
            repository: None,
            deadline: Duration::from_secs(120),
            budget: PreviewBudget::default(),
            claims: None,
        }
    }
}

/// Pending previews, one per pull request (a newer push replaces an older one).
#[derive(Default)]
pub struct PreviewQueue {
    pending: Mutex<BTreeMap<(String, u64), PullRequestHook>>,
    wake: Notify,
}

impl PreviewQueue {
    pub fn push(&self, hook: PullRequestHook) {
        if !matches!(hook.action, PullRequestAction::Opened | PullRequestAction::Updated) {
            return;
        }
        let key = (hook.repository.clone(), hook.number);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(key, hook);
        self.wake.notify_one();
    }

    async fn next(&self) -> PullRequestHook {
        loop {
            let next = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let key = pending.keys().next().cloned();
                key.and_then(|k| pending.remove(&k))
            };
            if let Some(hook) = next {
                return hook;
            }
            self.wake.notified().await;
        }
    }
}

/// The remote reference a forge keeps a pull request's head under.
pub fn head_ref(forge: Forge, number: u64) -> String {
    match forge {
        Forge::GitLab => format!("refs/merge-requests/{number}/head"),
        Forge::GitHub | Forge::Gitea | Forge::Forgejo | Forge::Generic => {
            format!("refs/pull/{number}/head")
        }
    }
}

/// What [`Previewer::handle`] did with a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Not previewed, and why (nothing fetched, nothing posted).
    Skipped(&'static str),
    /// The comment was written (or already said this).
    Posted(CommentAction),
    /// The comment could not be written (the forge's answer is in the log).
    NotPosted,
}

/// Makes previews: its own handle on the repository, the forge client, the settings.
pub struct Previewer {
    source: Arc<Mutex<Source>>,
    client: ForgeClient,
    settings: PreviewSettings,
    /// The configured repository on the forge, lowercase.
    repository: String,
    /// `git::repository_id` of the watched repository: hosts another repository deployed
    /// to are shown as refused, as a deployment would refuse them.
    repository_id: Option<String>,
    branch: String,
    /// One blocking job at a time (see the module's guarantees).
    blocking: Arc<Semaphore>,
}

impl Previewer {
    /// `repository` is where comments go (`owner/name`); `branch` the watched branch, whose
    /// last fetched commit gives the base `fleet.yaml`.
    pub fn new(
        source: Source,
        client: ForgeClient,
        settings: PreviewSettings,
        repository: &str,
        branch: &str,
        repository_id: Option<String>,
    ) -> Self {
        Previewer {
            source: Arc::new(Mutex::new(source)),
            client,
            settings,
            repository: repository.trim_matches('/').to_lowercase(),
            repository_id,
            branch: branch.to_string(),
            blocking: Arc::new(Semaphore::new(1)),
        }
    }

    /// Previews `hook`'s head and writes the comment, or says why not.
    pub async fn handle(&self, hook: &PullRequestHook) -> Handled {
        if !matches!(hook.action, PullRequestAction::Opened | PullRequestAction::Updated) {
            return Handled::Skipped("nothing new to preview");
        }
        let Some(target) = self.target(hook) else {
            tracing::info!(repository = %hook.repository, "preview of another repository's pull request dropped");
            return Handled::Skipped("another repository than the configured one");
        };
        if hook.from_fork() && !self.settings.forks {
            tracing::info!(head_repository = ?hook.head_repository, "pull request from a fork: not previewed (see --preview-forks)");
            return Handled::Skipped("a fork's pull request, and previews of forks are off");
        }
        let claim = match &self.settings.claims {
            None => None,
            Some(claims) => match claims.claim(hook.number, &hook.head_commit).await {
                Claimed::Won(claim) => Some(claim),
                Claimed::Taken { by } => {
                    tracing::info!(%by, "pull request head claimed by another preview: skipped");
                    return Handled::Skipped("another instance previews this head");
                }
                Claimed::Unavailable(error) => {
                    tracing::warn!(%error, "cannot claim the preview in etcd: previewing anyway");
                    None
                }
            },
        };
        let (handled, complete) = self.preview(hook, &target).await;
        if let Some(claim) = claim {
            // A failed preview (fetch, timeout) is tried again by the next delivery.
            match handled {
                Handled::Posted(_) if complete => claim.done().await,
                _ => claim.release().await,
            }
        }
        handled
    }

    /// Previews `hook`'s head and writes the comment on `target`; also whether the preview
    /// itself succeeded (a plan or the head's validation errors, not a failure's sentence).
    async fn preview(&self, hook: &PullRequestHook, target: &PullRequestRef) -> (Handled, bool) {
        let (body, complete) =
            match tokio::time::timeout(self.settings.deadline, self.comment(hook)).await {
                Ok(made) => made,
                Err(_) => {
                    tracing::warn!(deadline = ?self.settings.deadline, "preview timed out");
                    let failed = PreviewOutcome::Failed(PreviewFailure::TimedOut);
                    (render_comment(&Preview::new(&hook.head_commit, failed)), false)
                }
            };
        let handled = match self.client.upsert_comment(target, &body).await {
            Ok(action) => {
                tracing::info!(?action, "plan preview posted");
                Handled::Posted(action)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot post the plan preview");
                Handled::NotPosted
            }
        };
        (handled, complete)
    }

    /// The pull request to comment on, if `hook` is about the configured repository (named as
    /// the payload spells it, which is how the forge's API knows it; a forge under a path
    /// prefix names it without the prefix).
    fn target(&self, hook: &PullRequestHook) -> Option<PullRequestRef> {
        let named = hook.repository.trim_matches('/');
        let lower = named.to_lowercase();
        let same = named.contains('/')
            && (self.repository == lower
                || self.repository.strip_suffix(&lower).is_some_and(|rest| rest.ends_with('/')));
        same.then(|| PullRequestRef {
            repository: named.to_string(),
            project_id: None,
            number: hook.number,
        })
    }

    /// The comment for `hook`'s head, and whether it is a preview (not a failure's sentence).
    async fn comment(&self, hook: &PullRequestHook) -> (String, bool) {
        let commit = hook.head_commit.as_str();
        let (loaded, fleet_ignored) = match self.load(hook).await {
            Ok(loaded) => loaded,
            Err(failure) => {
                let failed = Preview::new(commit, PreviewOutcome::Failed(failure));
                return (render_comment(&failed), false);
            }
        };
        let plan;
        let outcome = match &loaded {
            Err(diagnostics) => PreviewOutcome::Invalid(diagnostics),
            Ok(model) => {
                plan = self.plan(model, commit).await;
                PreviewOutcome::Planned(&plan)
            }
        };
        (render_comment(&Preview { commit, outcome, fleet_ignored }), true)
    }

    /// Fetches the head and loads base `fleet.yaml` + head `apps/`, on a blocking thread.
    #[allow(clippy::type_complexity)]
    async fn load(
        &self,
        hook: &PullRequestHook,
    ) -> Result<(Result<Model, Vec<Diagnostic>>, bool), PreviewFailure> {
        let permit = self.blocking.clone().acquire_owned().await.map_err(|_| {
            tracing::warn!("the preview worker is closed");
            PreviewFailure::TimedOut
        })?;
        let source = self.source.clone();
        let (hook, branch, budget) = (hook.clone(), self.branch.clone(), self.settings.budget);
        let span = tracing::Span::current();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            let source = source.lock().unwrap_or_else(|e| e.into_inner());
            load_blocking(&source, &hook, &branch, &budget)
        });
        job.await.unwrap_or_else(|error| {
            tracing::error!(%error, "the preview's load failed");
            Err(PreviewFailure::Unreadable)
        })
    }

    /// Observes the base's hosts (no registry) and plans; unobserved hosts' reasons replaced
    /// by fixed words, their details logged.
    async fn plan(&self, model: &Model, commit: &str) -> Plan {
        let settings = &model.fleet.settings;
        let timeout = Duration::from_millis(settings.observe_timeout_ms);
        let mut round =
            Pool::new().observe_round(&model.fleet.hosts, &settings.name, timeout).await;
        redact_unreachable(&mut round.observed, &round.failures);
        let desired = Desired::for_repository(
            model,
            &round.observed,
            Some(commit.to_string()),
            self.repository_id.clone(),
        );
        diff::plan(&desired, &round.observed)
    }
}

/// The blocking part of a preview: fetch the head, check it is the hook's commit, read the
/// base's `fleet.yaml` and the head's `apps/`, load. Failures are logged here, with Git's
/// words, and returned as kinds.
#[allow(clippy::type_complexity)]
fn load_blocking(
    source: &Source,
    hook: &PullRequestHook,
    branch: &str,
    budget: &PreviewBudget,
) -> Result<(Result<Model, Vec<Diagnostic>>, bool), PreviewFailure> {
    let fetched = source.fetch_ref(&head_ref(hook.forge, hook.number)).map_err(|error| {
        tracing::warn!(%error, "preview: cannot fetch the pull request's head");
        PreviewFailure::Fetch
    })?;
    if fetched.commit != hook.head_commit {
        tracing::info!(fetched = %fetched.commit, "preview: the head moved since the hook");
        return Err(PreviewFailure::HeadMoved);
    }
    let base = match source.mirror().cached_head(branch) {
        Ok(Some(base)) => base,
        Ok(None) => {
            tracing::info!(%branch, "preview: the watched branch was never fetched");
            return Err(PreviewFailure::NoBase);
        }
        Err(error) => {
            tracing::warn!(%error, "preview: cannot read the watched branch");
            return Err(PreviewFailure::Unreadable);
        }
    };
    let repository = source.mirror().repository();
    let read = read_preview(repository, &base.commit, &hook.head_commit, budget);
    let preview = read.map_err(|error| match error {
        PreviewReadError::TooLarge { .. } => {
            tracing::warn!(%error, "preview: the head is too large");
            PreviewFailure::TooLarge
        }
        PreviewReadError::Git(error) => {
            tracing::warn!(%error, "preview: cannot read the commits");
            PreviewFailure::Unreadable
        }
    })?;
    tracing::debug!(base = %base.commit, fleet_changed = preview.fleet_changed, "preview: loading");
    Ok((model::load_with(&preview.tree, source.options()), preview.fleet_changed))
}

/// Replaces the reason of every unobserved host with fixed words (what the failure class
/// says) and logs the real one.
pub fn redact_unreachable(observed: &mut Observed, failures: &BTreeMap<String, FailureClass>) {
    for (host, observation) in &mut observed.hosts {
        if let HostObservation::Unreachable { reason, .. } = observation {
            tracing::warn!(%host, %reason, "preview: host not observed");
            *reason = match failures.get(host) {
                Some(FailureClass::Api) => "the host answered with an error",
                _ => "no answer from the host",
            }
            .to_string();
        }
    }
}

/// Works through the queue forever: one preview at a time.
pub async fn run(queue: Arc<PreviewQueue>, previewer: Arc<Previewer>) {
    loop {
        let hook = queue.next().await;
        let span = tracing::info_span!("preview", pr = hook.number, commit = %hook.head_commit);
        previewer.handle(&hook).instrument(span).await;
    }
}
