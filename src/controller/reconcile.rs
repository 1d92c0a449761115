//! One sync, and the state the loop carries from one sync to the next.
//!
//! A sync: fetch the branch when a trigger says it may have moved; load the head's model if
//! it is new (an invalid head is reported and the last good revision stays the target; a
//! head whose rollout failed is not retried until a new commit arrives); observe every host
//! through the client pool; fold the observation into the hosts' memory (grace period,
//! failover); plan; hold back crash-looping restarts; apply; record what happened in the
//! [`Store`]; write the status branch when the status changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::crashloop::CrashLoops;
use super::liveness::{HostHealth, Liveness};
use super::settings::Settings;
use super::source::{Source, SourceError};
use super::state::{
    Deployed, Head, HeadState, RevisionInfo, Store, SyncRecord, now_rfc3339, services,
};
use super::status_files;
use super::trigger::{Batch, Trigger, Triggers};
use crate::apply::docker::DockerEngine;
use crate::apply::{self, EventKind};
use crate::diff::render::short_commit;
use crate::diff::{self, Desired, Observed, Plan, render, simulate};
use crate::hosts::Pool;
use crate::model::Model;

/// A revision and its model.
#[derive(Clone)]
struct Loaded {
    revision: RevisionInfo,
    model: Arc<Model>,
}

/// What one sync did, in a word or two, for the history and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: the hosts run the target revision.
    InSync,
    /// A plan was applied and every host converged.
    Applied(diff::Summary),
    /// A plan was applied and something failed.
    Incomplete(String),
    /// No revision could be deployed yet (nothing valid fetched).
    NothingDeployable(String),
}

impl Outcome {
    /// One word, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applied(_) => "applied",
            Outcome::Incomplete(_) => "incomplete",
            Outcome::NothingDeployable(_) => "nothing_deployable",
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

/// The loop's own state: only the reconcile loop touches it.
pub struct Reconciler {
    settings: Arc<Settings>,
    store: Arc<Store>,
    triggers: Arc<Triggers>,
    source: Arc<tokio::sync::Mutex<Source>>,
    pool: Pool,
    liveness: Liveness,
    crash_loops: CrashLoops,
    /// The branch head last fetched.
    head: Option<RevisionInfo>,
    /// The newest valid revision that is not known to fail: what the hosts should run.
    target: Option<Loaded>,
    /// The revision last applied with success.
    good: Option<Loaded>,
    /// Revisions whose rollout failed; not retried.
    failed: Option<String>,
    /// Errors of the head (validation) and of fetching, kept until they change.
    head_errors: Vec<String>,
    fetch_error: Option<String>,
    /// The status files last written, to commit only on change.
    written: Option<BTreeMap<String, Vec<u8>>>,
}

impl Reconciler {
    pub fn new(
        settings: Arc<Settings>,
        store: Arc<Store>,
        triggers: Arc<Triggers>,
        source: Arc<tokio::sync::Mutex<Source>>,
    ) -> Self {
        Reconciler {
            liveness: Liveness::new(settings.grace),
            crash_loops: CrashLoops::new(settings.restart_backoff, settings.restart_backoff_max),
            settings,
            store,
            triggers,
            source,
            pool: Pool::new(),
            head: None,
            target: None,
            good: None,
            failed: None,
            head_errors: Vec::new(),
            fetch_error: None,
            written: None,
        }
    }

    /// The model the hosts are being kept at, if any.
    pub fn target_model(&self) -> Option<Arc<Model>> {
        self.target.as_ref().map(|t| t.model.clone())
    }

    /// Runs one sync for `batch`; never fails: every problem is recorded in the store.
    pub async fn sync(&mut self, batch: &Batch) -> Outcome {
        let span = tracing::info_span!("sync", reasons = %batch.describe(), revision = tracing::field::Empty);
        self.sync_in(batch, &span).instrument(span.clone()).await
    }

    async fn sync_in(&mut self, batch: &Batch, span: &tracing::Span) -> Outcome {
        let started = Instant::now();
        if batch.fetch || self.head.is_none() {
            self.fetch().await;
        }
        if let Some(target) = &self.target {
            span.record("revision", target.revision.commit.as_str());
        }
        let outcome = match self.target.clone() {
            Some(target) => self.converge(&target).await,
            None => {
                // Nothing to converge to: still say why, in the status.
                let mut errors: Vec<String> =
                    self.fetch_error.iter().map(|e| format!("fetch failed: {e}")).collect();
                errors.extend(self.head_errors.iter().cloned());
                let why = errors.first().cloned().unwrap_or_else(|| "no valid revision yet".into());
                self.store.update(|s| s.errors = errors);
                Outcome::NothingDeployable(why)
            }
        };
        tracing::info!(outcome = %outcome, elapsed_ms = started.elapsed().as_millis() as u64, "sync done");
        self.store.record_sync(SyncRecord {
            at: now_rfc3339(),
            reasons: batch.describe(),
            commit: self.target.as_ref().map(|t| t.revision.commit.clone()),
            outcome: outcome.to_string(),
            kind: outcome.kind().to_string(),
            millis: started.elapsed().as_millis() as u64,
        });
        self.write_status().await;
        outcome
    }

    /// Fetches the branch; loads its head if it is new.
    async fn fetch(&mut self) {
        let source = self.source.clone();
        let mut source = source.lock().await;
        let fetched = tokio::task::block_in_place(|| source.fetch_head());
        let revision = match fetched {
            Ok(revision) => {
                if self.fetch_error.take().is_some() {
                    self.store.event("fetching works again");
                }
                revision
            }
            Err(error) => {
                let message = error.to_string();
                if self.fetch_error.as_deref() != Some(message.as_str()) {
                    self.store.event(format!("fetch failed: {message}"));
                }
                self.fetch_error = Some(message);
                return;
            }
        };
        if self.head.as_ref().is_some_and(|h| h.commit == revision.commit) {
            return;
        }
        self.store.event(format!(
            "new revision {} by {}: {}",
            short_commit(&revision.commit),
            revision.author,
            revision.message
        ));
        self.head = Some(revision.clone());
        match tokio::task::block_in_place(|| source.load(&revision.commit)) {
            Ok(model) => {
                self.head_errors.clear();
                self.target = Some(Loaded { revision: revision.clone(), model: Arc::new(model) });
                self.set_head(revision, HeadState::Deployed);
            }
            Err(SourceError::Invalid(diagnostics)) => {
                self.head_errors = diagnostics.iter().map(|d| d.to_string()).collect();
                self.store.event(format!(
                    "revision {} is invalid ({} error(s)); {} keeps running",
                    short_commit(&revision.commit),
                    diagnostics.len(),
                    self.good
                        .as_ref()
                        .map(|g| short_commit(&g.revision.commit).to_string())
                        .unwrap_or_else(|| "nothing".into())
                ));
                self.set_head(revision, HeadState::Invalid);
            }
            Err(SourceError::Unreadable(message)) => {
                self.head_errors = vec![message.clone()];
                self.store.event(format!(
                    "revision {} unreadable: {message}",
                    short_commit(&revision.commit)
                ));
                self.set_head(revision, HeadState::Invalid);
            }
        }
    }

    fn set_head(&self, revision: RevisionInfo, state: HeadState) {
        self.store.update(|s| s.head = Some(Head { revision, state }));
    }

    /// Observes, plans and applies `target`.
    async fn converge(&mut self, target: &Loaded) -> Outcome {
        let model = &target.model;
        let (seen, clients) = self.pool.observe_model(model).await;
        let now = Instant::now();
        let (observed, transitions) = self.liveness.observe(seen, now);
        for transition in &transitions {
            self.store.event(transition.to_string());
        }
        if let Some(deadline) = self.liveness.next_deadline(now) {
            self.wake_after(deadline);
        }
        let mut plan = diff::plan(
            &Desired::new(model, &observed, Some(target.revision.commit.clone())),
            &observed,
        );
        let held = self.crash_loops.hold_back(&mut plan, now);
        for h in &held {
            self.store.event(format!(
                "{} keeps stopping ({} restart(s)): next restart in {}s",
                h.replica,
                h.restarts,
                h.wait.as_secs().max(1)
            ));
        }
        if let Some(wait) = held.iter().map(|h| h.wait).min() {
            self.wake_after(wait);
        }
        let mut errors: Vec<String> = Vec::new();
        let nothing_to_do = plan.hosts.iter().all(|h| h.steps.is_empty());
        let outcome = if nothing_to_do {
            Outcome::InSync
        } else {
            let report = self.apply(model, &plan, clients).await;
            if report.converged() {
                Outcome::Applied(plan.summary)
            } else {
                let failures: Vec<String> = report
                    .hosts
                    .iter()
                    .flat_map(|(host, r)| {
                        r.failures
                            .iter()
                            .map(move |f| format!("host {host}: {f}"))
                            .chain(r.lost.iter().map(move |l| format!("host {host} lost: {l}")))
                    })
                    .collect();
                let rollout_failed =
                    report.hosts.values().any(|r| !r.failures.is_empty() && r.lost.is_none());
                let is_new =
                    self.good.as_ref().is_none_or(|g| g.revision.commit != target.revision.commit);
                if rollout_failed && is_new {
                    self.reject(target);
                }
                errors.extend(failures.iter().cloned());
                Outcome::Incomplete(failures.join("; "))
            }
        };
        let expected = match &outcome {
            Outcome::Applied(_) => simulate::apply_plan(&observed, &plan),
            _ => observed.clone(),
        };
        if matches!(outcome, Outcome::InSync | Outcome::Applied(_)) && plan.unplaced.is_empty() {
            self.deployed(target, plan.summary, &outcome);
        }
        self.record(model, &expected, &plan, errors);
        outcome
    }

    async fn apply(
        &self,
        model: &Model,
        plan: &Plan,
        clients: BTreeMap<String, Result<bollard::Docker, String>>,
    ) -> apply::Report {
        let mut engine = DockerEngine::from_clients(clients);
        if let Some(config) = &self.settings.registry_config {
            engine = engine.with_registry_config(config.clone());
        }
        let store = &self.store;
        let show = |event: apply::Event| match event.kind {
            EventKind::Failed => store.event(format!("host {}: {}", event.host, event.text)),
            EventKind::Done | EventKind::Info => {
                tracing::debug!(host = %event.host, "{}", event.text)
            }
        };
        tracing::info!(plan = %render::summary_line(&plan.summary), "applying");
        apply::execute(&engine, model, plan, &self.settings.apply, &show).await
    }

    /// The target's rollout failed: fall back to the last good revision until a new commit.
    fn reject(&mut self, target: &Loaded) {
        self.store.event(format!(
            "rollout of {} failed; it is not retried until a new commit arrives",
            short_commit(&target.revision.commit)
        ));
        self.failed = Some(target.revision.commit.clone());
        self.set_head(target.revision.clone(), HeadState::Failed);
        self.target = self.good.clone();
        // Converge back to the good revision now, not at the next trigger.
        self.wake_after(Duration::ZERO);
    }

    fn deployed(&mut self, target: &Loaded, summary: diff::Summary, outcome: &Outcome) {
        let changed =
            self.good.as_ref().is_none_or(|g| g.revision.commit != target.revision.commit);
        if changed {
            self.store
                .event(format!("revision {} deployed", short_commit(&target.revision.commit)));
            self.good = Some(target.clone());
            let plan = if matches!(outcome, Outcome::Applied(_)) {
                summary
            } else {
                diff::Summary::default()
            };
            let deployed = Deployed { revision: target.revision.clone(), at: now_rfc3339(), plan };
            self.store.update(|s| s.deployed = Some(deployed));
        }
    }

    /// Records hosts, services and current errors.
    fn record(&self, model: &Model, observed: &Observed, plan: &Plan, mut errors: Vec<String>) {
        let now = Instant::now();
        let hosts = self.liveness.health(now);
        for (name, health) in &hosts {
            match health {
                HostHealth::Up => {}
                HostHealth::Unreachable { reason, .. } => {
                    errors.push(format!("host {name} is unreachable: {reason}"))
                }
                HostHealth::Down { reason, .. } => errors.push(format!(
                    "host {name} is down ({reason}): its replicas run elsewhere, except those pinned by a volume"
                )),
            }
        }
        for host in &plan.hosts {
            let down = matches!(hosts.get(&host.host), Some(HostHealth::Down { .. }));
            if let (true, diff::HostStatus::Unreachable { replicas, .. }) = (down, &host.status) {
                if *replicas > 0 {
                    errors.push(format!(
                        "host {}: {replicas} replica(s) pinned there by their volumes are not moved; they run again when it is back",
                        host.host
                    ));
                }
            }
        }
        // A host whose engine contradicts its declared platform (named with both values).
        errors.extend(plan.hosts.iter().filter_map(|h| h.platform.as_ref()?.mismatch.clone()));
        for unplaced in &plan.unplaced {
            errors.push(format!("{} cannot be placed: {}", unplaced.replica, unplaced.reason));
        }
        if let Some(fetch) = &self.fetch_error {
            errors.push(format!("fetch failed: {fetch}"));
        }
        if let Some(failed) = &self.failed {
            if self.head.as_ref().is_some_and(|h| &h.commit == failed) {
                errors.push(format!(
                    "the rollout of {} failed; fix it with a new commit",
                    short_commit(failed)
                ));
            }
        }
        errors.extend(self.head_errors.iter().cloned());
        let services = services(model, observed);
        self.store.update(|s| {
            s.hosts = hosts;
            s.services = services;
            s.errors = errors;
        });
    }

    /// Commits the status files to the status branch when they changed.
    async fn write_status(&mut self) {
        let Some(branch) = self.settings.status_branch.clone() else { return };
        let files = status_files::render(&self.store.snapshot());
        if self.written.as_ref() == Some(&files) {
            return;
        }
        let message = self
            .store
            .snapshot()
            .deployed
            .map(|d| format!("gitfleet status: {} deployed", short_commit(&d.revision.commit)))
            .unwrap_or_else(|| "gitfleet status".to_string());
        let source = self.source.lock().await;
        match tokio::task::block_in_place(|| source.write_status(&branch, &files, &message)) {
            Ok(commit) => {
                if let Some(commit) = commit {
                    tracing::info!(%commit, %branch, "status written");
                }
                self.written = Some(files);
            }
            Err(error) => {
                tracing::warn!(%error, %branch, "cannot write status");
            }
        }
    }

    /// Makes the loop sync again after `delay`.
    fn wake_after(&self, delay: Duration) {
        let triggers = self.triggers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay + Duration::from_millis(50)).await;
            triggers.push(Trigger::Deadline);
        });
    }
}
