//! One sync, and the state the loop carries from one sync to the next.
//!
//! A sync: take what the repository task published last (never waiting on Git: a new head
//! with a valid `fleet.yaml` becomes the target app by app, each broken app keeping its last
//! good version ([`super::isolation`]); a head whose `fleet.yaml` is invalid is reported and
//! the last target stays; an app whose rollout failed its health gate goes back to its last
//! good version and is not retried until a new commit arrives or a retry is asked); observe
//! every host through the client pool; fold the observation into the hosts' memory (grace
//! period, failover); plan; hold back crash-looping restarts; apply (stopping at a step
//! boundary when the cancellation token fires); observe again for the replica counts; publish
//! what happened through the [`StatusWriter`] (the status-branch writer is its own task).
//!
//! A high-availability standby runs [`Reconciler::observe_standing_by`] instead ([`standby`]):
//! the same observation and status, read-only, no apply.

mod standby;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::crashloop::CrashLoops;
use super::edges::{DockerHosts, Hosts, Repository};
use super::events::{Noting, Quiet};
use super::health::Heartbeat;
use super::isolation;
use super::liveness::{HostHealth, Liveness};
use super::replicas;
use super::repository::{FetchProblem, Published, RepositoryView};
use super::routing::RoutedGuard;
use super::settings::Settings;
use super::source::SourceError;
use super::state::{
    Deployed, EventKind, Head, HeadState, HostInfo, Problem, ProblemKind, RevisionInfo,
    StatusWriter, Subject, SyncOutcome, SyncRecord, services,
};
use super::trigger::Batch;
use crate::apply::{self, CancelGuard};
use crate::diff::render::short_commit;
use crate::diff::{self, Desired, Observed, Plan, render};
use crate::git::poll::backoff;
use crate::leader::Term;
use crate::model::{Model, compose_last_good};

/// The first wait before an apply that did not complete is tried again; doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// A revision and its model.
#[derive(Clone)]
struct Loaded {
    revision: RevisionInfo,
    /// The revision's good apps, with the last good version of each broken one
    /// ([`crate::model::compose_last_good`]).
    model: Arc<Model>,
    /// Which commit each app's version in `model` comes from.
    origins: BTreeMap<String, String>,
    /// Broken apps with no version in `model`: what runs of them is left alone.
    left_alone: std::collections::BTreeSet<String>,
}

/// What one sync did, in a word or two, for the history and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: every host was seen and runs the target revision.
    InSync,
    /// A plan was applied and every host converged.
    Applied(diff::Summary),
    /// A plan was applied and something failed, the apply was stopped, or a host with
    /// desired replicas could not be seen.
    Incomplete(String),
    /// No revision could be deployed yet (nothing valid fetched).
    NothingDeployable(String),
}

impl Outcome {
    pub fn kind(&self) -> SyncOutcome {
        match self {
            Outcome::InSync => SyncOutcome::InSync,
            Outcome::Applied(_) => SyncOutcome::Applied,
            Outcome::Incomplete(_) => SyncOutcome::Incomplete,
            Outcome::NothingDeployable(_) => SyncOutcome::NothingDeployable,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::InSync => f.write_str("in sync"),
            Outcome::Applied(summary) => write!(f, "applied: {}", render::summary_line(summary)),
            Outcome::Incomplete(why) => write!(f, "incomplete: {why}"),
            Outcome::NothingDeployable(why) => write!(f, "nothing deployable: {why}"),
        }
    }
}

/// The loop's own state: only the reconcile loop touches it. `H` and `R` are its I/O edges
/// ([`super::edges`]): the Docker hosts and the repository task in production.
pub struct Reconciler<H = DockerHosts, R = RepositoryView> {
    settings: Arc<Settings>,
    status: StatusWriter,
    /// What the repository task publishes.
    repository: R,
    /// The publication last taken.
    taken: Option<Arc<Published>>,
    cancel: CancellationToken,
    heartbeat: Arc<Heartbeat>,
    pool: H,
    liveness: Liveness,
    crash_loops: CrashLoops,
    /// Each app's canonical specs and hashes from the last plan, kept for the next one while
    /// the app is unchanged (the load cache shares unchanged apps): a resync, or a sync after
    /// a commit that changed a few apps, does not make them again.
    specs: diff::SpecMemo,
    /// The branch head last fetched and read (valid or not).
    head: Option<RevisionInfo>,
    /// The newest valid revision that is not known to fail: what the hosts should run.
    target: Option<Loaded>,
    /// The revision last applied with success.
    good: Option<Loaded>,
    /// Revisions whose rollout failed; not retried.
    failed: Option<String>,
    /// Apps of `failed` whose rollout failed: they run their last good version.
    failed_apps: std::collections::BTreeSet<String>,
    /// The revision whose rollout failed, kept for a requested retry.
    rejected: Option<Loaded>,
    /// The failed revision whose other apps were announced as running.
    partly_deployed: Option<String>,
    /// `app/service` of the services that failed rollout rolled back (shown while the failed
    /// revision is the head).
    rolled_back: std::collections::BTreeSet<String>,
    /// Applies in a row that did not complete (not counting rejections): the retry backoff.
    retries: u32,
    /// Problems of the head (validation, reading), kept until the head changes.
    head_problems: Vec<Problem>,
    fetch_error: Option<FetchProblem>,
    /// The last commit announced as new, so an unreadable head is announced once.
    announced: Option<String>,
    /// Tells the Docker events watchers which containers an apply touches.
    quiet: Arc<Quiet>,
    /// When the loop should sync again without a trigger (grace deadline, crash-loop brake).
    wake: Option<tokio::time::Instant>,
    /// With high availability, the leadership term this instance holds: applies are fenced
    /// by it (checked before each batch, epoch-labelled creations). `None` without etcd.
    term: Option<Term>,
}

impl Reconciler {
    /// The loop on the real edges: the Docker hosts of the model, and the repository task's
    /// publications.
    pub fn new(
        settings: Arc<Settings>,
        status: StatusWriter,
        repository: RepositoryView,
        cancel: CancellationToken,
        heartbeat: Arc<Heartbeat>,
    ) -> Self {
        let hosts = DockerHosts::new(settings.registry_config.clone());
        Reconciler::with_edges(settings, status, hosts, repository, cancel, heartbeat)
    }
}

impl<H: Hosts, R: Repository> Reconciler<H, R> {
    /// The loop on the edges given (the in-process tests' doubles).
    pub fn with_edges(
        settings: Arc<Settings>,
        status: StatusWriter,
        hosts: H,
        repository: R,
        cancel: CancellationToken,
        heartbeat: Arc<Heartbeat>,
    ) -> Self {
        Reconciler {
            liveness: Liveness::new(settings.grace),
            crash_loops: CrashLoops::new(settings.restart_backoff, settings.restart_backoff_max),
            specs: diff::SpecMemo::default(),
            settings,
            status,
            repository,
            taken: None,
            quiet: Arc::default(),
            cancel,
            heartbeat,
            pool: hosts,
            head: None,
            target: None,
            good: None,
            failed: None,
            failed_apps: Default::default(),
            rejected: None,
            partly_deployed: None,
            rolled_back: Default::default(),
            retries: 0,
            head_problems: Vec::new(),
            fetch_error: None,
            announced: None,
            wake: None,
            term: None,
        }
    }

    /// The leadership term applies are fenced by (`None`: unfenced, without etcd).
    pub fn term(&self) -> Option<&Term> {
        self.term.as_ref()
    }

    pub fn set_term(&mut self, term: Option<Term>) {
        self.term = term;
    }

    /// The model the hosts are being kept at, if any.
    pub fn target_model(&self) -> Option<Arc<Model>> {
        self.target.as_ref().map(|t| t.model.clone())
    }

    /// When the loop should sync again without a trigger, if ever.
    pub fn wake_at(&self) -> Option<tokio::time::Instant> {
        self.wake
    }

    /// The wake-up came: forget it.
    pub fn woken(&mut self) {
        self.wake = None;
    }

    /// Shares `quiet` with the Docker events watchers.
    pub fn set_quiet(&mut self, quiet: Arc<Quiet>) {
        self.quiet = quiet;
    }

    /// Waits until the repository task publishes something new.
    pub async fn repository_changed(&mut self) {
        if self.repository.changed().await.is_err() {
            // The repository task is gone (the supervisor notices): nothing more will come.
            std::future::pending::<()>().await
        }
    }

    /// Whether the loop has a target to keep the hosts at.
    pub fn has_target(&self) -> bool {
        self.target.is_some()
    }

    /// The status writer (the loop records its own events through it).
    pub fn status(&self) -> &StatusWriter {
        &self.status
    }

    /// Runs one sync for `batch`; never fails: every problem is recorded in the status.
    pub async fn sync(&mut self, batch: &Batch) -> Outcome {
        let span = tracing::info_span!("sync", reasons = %batch.describe(), revision = tracing::field::Empty);
        self.sync_in(batch, &span).instrument(span.clone()).await
    }

    async fn sync_in(&mut self, batch: &Batch, span: &tracing::Span) -> Outcome {
        let started = Instant::now();
        let started_at = SystemTime::now();
        self.status.sync_started(batch.describe());
        self.heartbeat.beat();
        self.take_repository();
        if let Some(scope) = &batch.retry {
            self.retry_requested(scope);
        }
        if let Some(target) = &self.target {
            span.record("revision", target.revision.commit.as_str());
        }
        let (outcome, plan) = match self.target.clone() {
            Some(target) => {
                let (outcome, plan) = self.converge(&target).await;
                (outcome, Some(plan))
            }
            None => {
                // Nothing to converge to: still say why, in the status.
                let problems = self.repository_problems();
                let why = problems
                    .first()
                    .map(|p| p.message.clone())
                    .unwrap_or_else(|| "no valid revision yet".into());
                self.status.set_problems(problems);
                (Outcome::NothingDeployable(why), None)
            }
        };
        let millis = started.elapsed().as_millis() as u64;
        tracing::info!(outcome = %outcome, elapsed_ms = millis, "sync done");
        self.status.record_sync(SyncRecord {
            number: 0, // numbered when recorded
            started_at,
            at: SystemTime::now(),
            reasons: batch.describe(),
            commit: self.target.as_ref().map(|t| t.revision.commit.clone()),
            outcome: outcome.kind(),
            detail: outcome.to_string(),
            millis,
            plan: plan.as_ref().map(|p| p.summary).unwrap_or_default(),
            full_plan: plan,
        });
        self.heartbeat.beat();
        outcome
    }

    /// Takes what the repository task published last, if it is new: fetch problems, and a
    /// new head (valid: the next target; invalid: reported, the last good revision stays).
    /// Never waits on Git.
    fn take_repository(&mut self) {
        let published = self.repository.latest();
        if self.taken.as_ref().is_some_and(|t| Arc::ptr_eq(t, &published)) {
            return;
        }
        self.taken = Some(published.clone());
        match (&self.fetch_error, &published.fetch_error) {
            (Some(_), None) => self.status.event(EventKind::Fetch, "fetching works again"),
            (old, Some(new)) if old.as_ref().map(|o| &o.message) != Some(&new.message) => {
                self.status.event(EventKind::Fetch, format!("fetch failed: {}", new.message))
            }
            _ => {}
        }
        self.fetch_error = published.fetch_error.clone();
        let Some(read) = &published.head else { return };
        let revision = read.revision.clone();
        if self.head.as_ref().is_some_and(|h| h.commit == revision.commit) {
            return;
        }
        if self.announced.as_deref() != Some(revision.commit.as_str()) {
            self.status.event(
                EventKind::Revision,
                format!(
                    "new revision {} by {}: {}",
                    short_commit(&revision.commit),
                    revision.author,
                    revision.message
                ),
            );
            self.announced = Some(revision.commit.clone());
        }
        match &read.model {
            Ok(partial) => {
                self.head = Some(revision.clone());
                let base = self.target.as_ref();
                let composed = compose_last_good(partial, base.map(|b| b.model.as_ref()));
                let origins = isolation::origins(
                    &composed,
                    &revision.commit,
                    base.map(|b| &b.origins),
                    base.map(|b| b.revision.commit.as_str()),
                );
                let invalid = isolation::invalid_apps(&composed, &origins);
                if let Some(event) = isolation::event(&revision, &invalid) {
                    self.status.event(EventKind::Rollout, event);
                }
                self.head_problems = isolation::problems(&revision, &invalid);
                let left_alone = invalid
                    .iter()
                    .filter(|(_, app)| app.running.is_none())
                    .map(|(name, _)| name.clone())
                    .collect();
                self.target = Some(Loaded {
                    revision: revision.clone(),
                    model: Arc::new(composed.model),
                    origins,
                    left_alone,
                });
                self.status.update(|s| s.invalid_apps = invalid);
                self.set_head(revision, HeadState::Pending);
            }
            Err(error) => match error.as_ref() {
                SourceError::Invalid(diagnostics) => {
                    self.head = Some(revision.clone());
                    self.status.update(|s| s.invalid_apps.clear());
                    self.head_problems = diagnostics
                        .iter()
                        .map(|d| {
                            Problem::new(
                                ProblemKind::InvalidRevision,
                                Subject::Repository,
                                d.to_string(),
                            )
                        })
                        .collect();
                    self.status.event(
                        EventKind::Rollout,
                        format!(
                            "revision {} is invalid ({} error(s)); {} keeps running",
                            short_commit(&revision.commit),
                            diagnostics.len(),
                            self.good
                                .as_ref()
                                .map(|g| short_commit(&g.revision.commit).to_string())
                                .unwrap_or_else(|| "nothing".into())
                        ),
                    );
                    self.set_head(revision, HeadState::Invalid);
                }
                SourceError::Unreadable(message) => {
                    // Not remembered as the head: the repository task reads it again.
                    self.head_problems = vec![Problem::new(
                        ProblemKind::UnreadableRevision,
                        Subject::Repository,
                        format!(
                            "revision {} unreadable: {message}",
                            short_commit(&revision.commit)
                        ),
                    )];
                    self.status.event(
                        EventKind::Revision,
                        format!(
                            "revision {} unreadable: {message}",
                            short_commit(&revision.commit)
                        ),
                    );
                    self.set_head(revision, HeadState::Invalid);
                }
            },
        }
    }

    fn set_head(&self, revision: RevisionInfo, state: HeadState) {
        self.status.update(|s| {
            s.head = Some(Head { revision, state });
            s.repository_read = true;
        });
    }

    /// The plan from `observed` to `target`, with the spec memo. The apps left alone (broken
    /// apps with no version to keep) are taken out of `observed` first: what runs of them is
    /// not the planner's.
    fn plan_for(&mut self, target: &Loaded, observed: &Observed) -> Plan {
        let seen = isolation::without_apps(observed, &target.left_alone);
        let desired = Desired::for_repository_memo(
            &target.model,
            &seen,
            Some(target.revision.commit.clone()),
            Some(self.settings.repository_id.clone()),
            &mut self.specs,
        );
        diff::plan(&desired, &seen)
    }

    /// Observes, plans and applies `target`.
    async fn converge(&mut self, target: &Loaded) -> (Outcome, Arc<Plan>) {
        let model = &target.model;
        let (observed, clients) = self.observe(model).await;
        let now = now();
        if let Some(deadline) = self.liveness.next_deadline(now) {
            self.wake_after(deadline);
        }
        let mut plan = self.plan_for(target, &observed);
        let held = self.crash_loops.hold_back(&mut plan, now);
        for h in &held {
            self.status.event(
                EventKind::Replica,
                format!(
                    "{} keeps stopping ({} restart(s)): next restart in {}s",
                    h.replica,
                    h.restarts,
                    h.wait.as_secs().max(1)
                ),
            );
        }
        if let Some(wait) = held.iter().map(|h| h.wait).min() {
            self.wake_after(wait);
        }
        let plan = Arc::new(plan);
        // Hosts with desired replicas that could not be seen: the sync cannot be complete.
        let unseen: Vec<String> = plan
            .hosts
            .iter()
            .filter_map(|h| match &h.status {
                diff::HostStatus::Unreachable { replicas, reason } if *replicas > 0 => Some(
                    format!("host {} ({replicas} replica(s)) could not be seen: {reason}", h.host),
                ),
                _ => None,
            })
            .collect();
        let mut problems: Vec<Problem> = Vec::new();
        let nothing_to_do = plan.hosts.iter().all(|h| h.steps.is_empty());
        let (outcome, observed) = if let Some(refused) = &plan.refused {
            // A revision that would remove every app (diff::plan refuses it): nothing runs,
            // and the revision is not recorded as deployed.
            problems.push(Problem::new(
                ProblemKind::InvalidRevision,
                Subject::Repository,
                refused.clone(),
            ));
            (Outcome::Incomplete(refused.clone()), observed)
        } else if nothing_to_do {
            let outcome = if unseen.is_empty() {
                Outcome::InSync
            } else {
                Outcome::Incomplete(unseen.join("; "))
            };
            (outcome, observed)
        } else {
            // Changes while the target already runs: drift being repaired.
            let repairing =
                self.good.as_ref().is_some_and(|g| g.revision.commit == target.revision.commit);
            // The replicas this apply replaces or creates show as rolling meanwhile.
            self.record_services(model, &observed, &plan, true);
            let report = self.apply(model, &plan, clients).await;
            if repairing && report.converged() && report.stopped.is_none() {
                self.status.update(|s| s.counters.drift_repairs += 1);
            }
            // Replica counts come from the hosts as they are now, not from the plan.
            let (after, _) = self.observe(model).await;
            let outcome = if let Some(why) = &report.stopped {
                Outcome::Incomplete(format!("apply stopped: {why}"))
            } else if report.converged() && unseen.is_empty() {
                Outcome::Applied(plan.summary)
            } else if report.converged() {
                Outcome::Incomplete(unseen.join("; "))
            } else {
                let mut failures: Vec<String> = Vec::new();
                for (host, r) in &report.hosts {
                    let subject = Subject::Host { host: host.clone() };
                    for f in &r.failures {
                        failures.push(format!("host {host}: {f}"));
                        problems.push(Problem::new(
                            ProblemKind::ApplyFailed,
                            subject.clone(),
                            format!("host {host}: {f}"),
                        ));
                    }
                    if let Some(lost) = &r.lost {
                        failures.push(format!("host {host} lost: {lost}"));
                    }
                }
                // Only a health gate failed and rolled back makes the revision bad; anything
                // else (a pull refused, an API error, a host lost) is retried with backoff.
                // Per app: only an app whose version differs from its last good one (a new
                // version) is rejected.
                let good = self.good.as_ref().map(|g| g.model.as_ref());
                let new_versions: std::collections::BTreeSet<String> = report
                    .rolled_back
                    .iter()
                    .filter(|service| {
                        let app = isolation::app_of(service);
                        good.and_then(|g| g.apps.get(app)) != model.apps.get(app)
                    })
                    .cloned()
                    .collect();
                if !new_versions.is_empty() {
                    self.reject(target, &new_versions);
                } else {
                    let wait = backoff(self.retries, RETRY_FIRST, RETRY_MAX);
                    self.retries = self.retries.saturating_add(1);
                    self.status.event(
                        EventKind::Rollout,
                        format!("the apply did not complete; trying again in {}s", wait.as_secs()),
                    );
                    self.wake_after(wait);
                }
                Outcome::Incomplete(failures.join("; "))
            };
            (outcome, after)
        };
        if matches!(outcome, Outcome::InSync | Outcome::Applied(_)) {
            self.retries = 0;
            if plan.unplaced.is_empty() {
                self.deployed(target, plan.summary, &outcome);
            }
        }
        self.record(model, &observed, &plan, problems);
        (outcome, plan)
    }

    /// Observes every host of `model` and folds the result into the hosts' memory.
    async fn observe(&mut self, model: &Model) -> (Observed, H::Clients) {
        // The round's start is when a host that fails to answer was last asked: counting it
        // away from the round's end would add the observe timeout to the grace period.
        let asked = now();
        let round = self.pool.observe_model(model).await;
        let (seen, clients) = (round.observed, round.clients);
        self.heartbeat.beat();
        let (observed, transitions) = self.liveness.observe(seen, &round.failures, asked);
        for transition in &transitions {
            if matches!(transition, super::liveness::Transition::Down { .. }) {
                self.status.update(|s| s.counters.failovers += 1);
            }
            self.status.event(EventKind::Host, transition.to_string());
        }
        (observed, clients)
    }

    async fn apply(&self, model: &Model, plan: &Plan, clients: H::Clients) -> apply::Report {
        // With high availability, the engine is fenced by the term (see `edges::DockerHosts`).
        let engine = self.pool.engine(clients, self.term.as_ref());
        let engine = Noting { engine: &engine, quiet: &self.quiet };
        let status = &self.status;
        let heartbeat = &self.heartbeat;
        let show = |event: apply::Event| {
            heartbeat.beat();
            match event.kind {
                apply::EventKind::Failed => {
                    status.event(EventKind::Replica, format!("host {}: {}", event.host, event.text))
                }
                apply::EventKind::Logs => {
                    // The text is "<name> last log lines:\n<lines>": the lines stay in the
                    // event's log field, out of the message.
                    let (what, logs) = event.text.split_once('\n').unwrap_or((&event.text, ""));
                    status.event_with_logs(
                        EventKind::Replica,
                        format!("host {}: {what}", event.host),
                        logs,
                    )
                }
                apply::EventKind::Done | apply::EventKind::Info => {
                    tracing::debug!(host = %event.host, "{}", event.text)
                }
            }
        };
        tracing::info!(plan = %render::summary_line(&plan.summary), "applying");
        let router = self.settings.router.as_ref();
        let timeout = Duration::from_millis(model.fleet.settings.observe_timeout_ms);
        let hosts = &model.fleet.hosts;
        self.quiet.begin();
        let report = match &self.term {
            // The leader's fence: its term's check before each batch (the engine carries
            // its own-clock gate before each Docker call and its epoch on what it creates).
            Some(term) => {
                let guard = RoutedGuard { inner: term.clone(), router, hosts, timeout };
                apply::execute(&engine, &guard, model, plan, &self.settings.apply, &show).await
            }
            None => {
                let guard =
                    RoutedGuard { inner: CancelGuard(self.cancel.clone()), router, hosts, timeout };
                apply::execute(&engine, &guard, model, plan, &self.settings.apply, &show).await
            }
        };
        self.quiet.end();
        report
    }

    /// The target's rollout failed for the apps of `services`: those apps fall back to
    /// their last good version until a new commit (or a retry); the other apps of the
    /// revision stay.
    fn reject(&mut self, target: &Loaded, services: &std::collections::BTreeSet<String>) {
        let apps = isolation::apps_of(services);
        let list: Vec<&str> = services.iter().map(String::as_str).collect();
        self.status.event(
            EventKind::Rollout,
            format!(
                "rollout of {} failed its health gate and was rolled back ({}); app(s) {} keep their last good version, not retried until a new commit arrives or a retry is requested",
                short_commit(&target.revision.commit),
                list.join(", "),
                apps.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
            ),
        );
        if self.failed.as_ref() != Some(&target.revision.commit) {
            self.failed_apps.clear();
            self.rolled_back.clear();
        }
        self.failed = Some(target.revision.commit.clone());
        self.failed_apps.extend(apps.iter().cloned());
        self.rolled_back.extend(services.iter().cloned());
        if self.rejected.as_ref().is_none_or(|r| r.revision.commit != target.revision.commit) {
            self.rejected = Some(target.clone());
        }
        self.status.update(|s| s.counters.rollbacks += 1);
        self.set_head(target.revision.clone(), HeadState::Failed);
        let good = self.good.as_ref().map(|g| (g.model.as_ref(), &g.origins));
        let (model, origins) = isolation::fall_back(&target.model, &target.origins, &apps, good);
        self.target = Some(Loaded {
            revision: target.revision.clone(),
            model: Arc::new(model),
            origins,
            left_alone: target.left_alone.clone(),
        });
        // Converge back to the good versions now, not at the next trigger.
        self.wake_after(Duration::ZERO);
    }

    /// Someone asked to retry: a revision rejected after its rollout failed becomes the
    /// target again (while it is still the head), whole or for the apps asked.
    fn retry_requested(&mut self, scope: &super::trigger::RetryScope) {
        let Some(rejected) = self.rejected.take() else {
            // No failed rollout at all: a retry of named apps says so in the events.
            if let isolation::Retry::Nothing(why) = isolation::retry(&Default::default(), scope) {
                self.status.event(EventKind::Rollout, why);
            }
            return;
        };
        if self.head.as_ref().is_none_or(|h| h.commit != rejected.revision.commit) {
            return;
        }
        let apps = match isolation::retry(&self.failed_apps, scope) {
            isolation::Retry::Whole => None,
            isolation::Retry::Apps(apps) => Some(apps),
            isolation::Retry::Nothing(why) => {
                self.status.event(EventKind::Rollout, why);
                self.rejected = Some(rejected);
                return;
            }
        };
        if let (Some(apps), Some(current)) = (apps, self.target.clone()) {
            let names: Vec<&str> = apps.iter().map(String::as_str).collect();
            self.status.event(
                EventKind::Rollout,
                format!(
                    "retrying the rollout of app(s) {} of {} on request",
                    names.join(", "),
                    short_commit(&rejected.revision.commit)
                ),
            );
            let towards = Some((rejected.model.as_ref(), &rejected.origins));
            let (model, origins) =
                isolation::fall_back(&current.model, &current.origins, &apps, towards);
            self.target = Some(Loaded { model: Arc::new(model), origins, ..current });
            self.failed_apps.retain(|app| !apps.contains(app));
            self.rolled_back.retain(|service| !apps.contains(isolation::app_of(service)));
            self.retries = 0;
            self.rejected = Some(rejected);
            return;
        }
        self.status.event(
            EventKind::Rollout,
            format!(
                "retrying the rollout of {} on request",
                short_commit(&rejected.revision.commit)
            ),
        );
        self.failed = None;
        self.failed_apps.clear();
        self.rolled_back.clear();
        self.retries = 0;
        self.set_head(rejected.revision.clone(), HeadState::Pending);
        self.target = Some(rejected);
    }

    /// `target` converged on every host: it is deployed (and so is the head, if it is it).
    /// A revision with apps rolled back is not: its other apps run, the deployed revision
    /// stays the last one deployed in full (invalid apps aside).
    fn deployed(&mut self, target: &Loaded, summary: diff::Summary, outcome: &Outcome) {
        let commit = &target.revision.commit;
        if self.failed.as_ref() == Some(commit) {
            if self.partly_deployed.as_ref() != Some(commit) {
                let apps: Vec<&str> = self.failed_apps.iter().map(String::as_str).collect();
                self.status.event(
                    EventKind::Rollout,
                    format!(
                        "revision {}: its other apps run; app(s) {} rolled back to their last good version",
                        short_commit(commit),
                        apps.join(", ")
                    ),
                );
                self.partly_deployed = Some(commit.clone());
            }
            return;
        }
        if self.head.as_ref().is_some_and(|h| &h.commit == commit) {
            self.status.update(|s| {
                if let Some(head) = s.head.as_mut().filter(|h| &h.revision.commit == commit) {
                    head.state = HeadState::Deployed;
                }
            });
        }
        let changed = self.good.as_ref().is_none_or(|g| &g.revision.commit != commit);
        if changed {
            self.status
                .event(EventKind::Rollout, format!("revision {} deployed", short_commit(commit)));
            self.good = Some(target.clone());
            let plan = if matches!(outcome, Outcome::Applied(_)) {
                summary
            } else {
                diff::Summary::default()
            };
            let deployed =
                Deployed { revision: target.revision.clone(), at: SystemTime::now(), plan };
            self.status.update(|s| s.deployed = Some(deployed));
        }
    }

    /// Problems of the repository: fetching, the head.
    fn repository_problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .fetch_error
            .iter()
            .map(|e| {
                let mut problem = Problem::new(
                    ProblemKind::Fetch,
                    Subject::Repository,
                    format!("fetch failed: {}", e.message),
                );
                problem.since = e.since;
                problem
            })
            .collect();
        if let Some(failed) = &self.failed {
            if self.head.as_ref().is_some_and(|h| &h.commit == failed) {
                for app in &self.failed_apps {
                    problems.push(Problem::new(
                        ProblemKind::RolloutFailed,
                        Subject::App { app: app.clone() },
                        format!(
                            "the rollout of app {app} in {} failed and was rolled back: its last good version runs; fix it with a new commit (or request a retry)",
                            short_commit(failed)
                        ),
                    ));
                }
            }
        }
        problems.extend(self.head_problems.iter().cloned());
        problems
    }

    /// Records hosts, services (as observed) and current problems.
    fn record(&self, model: &Model, observed: &Observed, plan: &Plan, mut problems: Vec<Problem>) {
        let hosts = self.liveness.health(now());
        for (name, health) in &hosts {
            let subject = Subject::Host { host: name.clone() };
            match health {
                HostHealth::Up => {}
                HostHealth::Failing { reason, .. } => problems.push(Problem::new(
                    ProblemKind::HostFailing,
                    subject,
                    format!("host {name} answers with an error: {reason}"),
                )),
                HostHealth::Unreachable { reason, .. } => problems.push(Problem::new(
                    ProblemKind::HostUnreachable,
                    subject,
                    format!("host {name} is unreachable: {reason}"),
                )),
                HostHealth::Down { reason, .. } => problems.push(Problem::new(
                    ProblemKind::HostDown,
                    subject,
                    format!("host {name} is down ({reason}): its replicas run elsewhere, except those pinned by a volume"),
                )),
            }
        }
        for host in &plan.hosts {
            if let diff::HostStatus::Refused { reason } = &host.status {
                problems.push(Problem::new(
                    ProblemKind::HostRefused,
                    Subject::Host { host: host.host.clone() },
                    format!("host {}: {reason}", host.host),
                ));
            }
            let down = matches!(hosts.get(&host.host), Some(HostHealth::Down { .. }));
            if let (true, diff::HostStatus::Unreachable { replicas, .. }) = (down, &host.status) {
                if *replicas > 0 {
                    problems.push(Problem::new(
                        ProblemKind::Pinned,
                        Subject::Host { host: host.host.clone() },
                        format!(
                            "host {}: {replicas} replica(s) pinned there by their volumes are not moved; they run again when it is back",
                            host.host
                        ),
                    ));
                }
            }
        }
        // A host whose engine contradicts its declared platform (named with both values).
        for host in &plan.hosts {
            if let Some(mismatch) = host.platform.as_ref().and_then(|p| p.mismatch.clone()) {
                let subject = Subject::Host { host: host.host.clone() };
                problems.push(Problem::new(ProblemKind::PlatformMismatch, subject, mismatch));
            }
        }
        for unplaced in &plan.unplaced {
            problems.push(Problem::new(
                ProblemKind::Unplaced,
                Subject::Service {
                    app: unplaced.replica.app.to_string(),
                    service: unplaced.replica.service.to_string(),
                },
                format!("{} cannot be placed: {}", unplaced.replica, unplaced.reason),
            ));
        }
        problems.extend(self.repository_problems());
        self.record_services(model, observed, plan, false);
        let routes = Arc::new(crate::router::derive_routes(model, observed));
        self.status.set_hosts(&hosts, SystemTime::now());
        self.status.set_problems(problems);
        let platforms =
            plan.hosts.iter().filter_map(|h| Some((h.host.clone(), h.platform.clone()?))).collect();
        let fleet = model.fleet.settings.name.clone();
        let host_info =
            model.fleet.hosts.iter().map(|(name, h)| (name.clone(), HostInfo::of(h))).collect();
        self.status.update(|s| {
            s.fleet = Some(fleet);
            s.host_info = host_info;
            s.routes = routes;
            s.platforms = platforms;
        });
    }

    /// Records every service's replicas and every host's usage from `observed`; `applying`:
    /// `plan` is about to be applied (its replacements and creations are rolling).
    fn record_services(&self, model: &Model, observed: &Observed, plan: &Plan, applying: bool) {
        let mut services = services(model, observed);
        let head_failed =
            self.failed.is_some() && self.head.as_ref().map(|h| &h.commit) == self.failed.as_ref();
        let restarts = |key: &diff::ReplicaKey| self.crash_loops.restarts(key);
        let context = replicas::Context {
            applying: applying.then_some(plan),
            unplaced: &plan.unplaced,
            rolled_back: head_failed.then_some(&self.rolled_back),
            restarts: Some(&restarts),
        };
        replicas::fill(&mut services, model, observed, &context);
        let usage = replicas::host_usage(model, observed);
        let services = Arc::new(services);
        self.status.update(|s| {
            s.services = services;
            s.host_usage = usage;
        });
    }

    /// Makes the loop sync again after `delay` (the earliest of all such wishes wins).
    fn wake_after(&mut self, delay: Duration) {
        let at = tokio::time::Instant::now() + delay + Duration::from_millis(50);
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }
}

/// The clock of host liveness and the crash-loop brake: tokio's, so the in-process tests
/// move it with `tokio::time::pause` / `advance` (outside them it is the system's monotonic
/// clock, as `Instant::now()` is).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
