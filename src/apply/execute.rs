//! Carrying out a [`Plan`] through an [`Engine`]: hosts in parallel, a bounded number of
//! Docker operations at a time per host, services level by level in `depends_on` order,
//! replacements as rolling updates (`deploy.update_config`), health-gated.
//!
//! # Guarantees
//!
//! * Only the objects the plan names are touched, and the plan only names objects that carry
//!   this fleet's label.
//! * A replaced container is stopped and renamed (`<name>.old-<id>`), not removed, until its
//!   service's rollout has succeeded, so a failed update can be rolled back to the very same
//!   containers (same files, same data). Volumes are never removed.
//! * A host that fails (connection lost) is reported and skipped for the rest of the apply;
//!   the other hosts carry on.
//! * The [`Guard`] is asked before every step and every rolling batch; once it says stop,
//!   the steps under way finish and no new one starts ([`Report::stopped`] says why), so a
//!   stopped apply leaves no half-made replica. `before_stop` is awaited before any replica's
//!   container is stopped, `after_ready` after a new one passed its health gate.
//!
//! # What survives a crash
//!
//! Containers carry their replica's labels from the moment they are created, and names are
//! deterministic, so a killed apply leaves only states the planner recognises: a replica with
//! no container (create), a stopped or `created` one (replace), or two containers for one
//! replica (the better one is kept, the other removed as a duplicate). Planning again and
//! applying converges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep};

use super::engine::{ContainerStatus, Engine, EngineError, FileToDeliver, Health};
use super::guard::Guard;
use super::rollout::{ServiceRollout, arrange, batches};
use crate::diff::desired::DesiredContainer;
use crate::diff::{Plan, ReplicaKey, Step, labels};
use crate::model::{FailureAction, Model, UpdateOrder};

/// How an apply runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Docker operations at once per host.
    pub concurrency: usize,
    /// How often a starting container's status is checked.
    pub poll: Duration,
    /// How long a container may take to become healthy.
    pub health_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 8,
            poll: Duration::from_millis(200),
            health_timeout: Duration::from_secs(120),
        }
    }
}

/// Something that happened, for progress output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub host: String,
    pub kind: EventKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Done,
    Failed,
    Info,
    /// A failed replica's last log lines (at most [`LOG_LINES`] lines, [`LOG_BYTES`] bytes):
    /// for people watching, never part of a failure's text.
    Logs,
}

/// How many of a failed replica's last log lines are shown.
pub const LOG_LINES: usize = 20;
/// At most this many bytes of them (the end is kept).
pub const LOG_BYTES: usize = 2048;

/// The end of `logs`, at most [`LOG_BYTES`] bytes, cut at a line (or character) boundary.
pub fn cap_logs(logs: &str) -> &str {
    let logs = logs.trim_end();
    if logs.len() <= LOG_BYTES {
        return logs;
    }
    let mut start = logs.len() - LOG_BYTES;
    while !logs.is_char_boundary(start) {
        start += 1;
    }
    let tail = &logs[start..];
    match tail.find('\n') {
        Some(newline) if newline + 1 < tail.len() => &tail[newline + 1..],
        _ => tail,
    }
}

/// What the apply did on each host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub hosts: BTreeMap<String, HostReport>,
    /// Set when the guard stopped the apply at a step boundary: why.
    pub stopped: Option<String>,
    /// Services (`app/service`) whose update failed its health gate and was rolled back: the
    /// only failures that make a revision bad. Others (a pull refused, an API error, a host
    /// lost) are worth retrying.
    pub rolled_back: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReport {
    /// Steps carried out.
    pub done: usize,
    /// Steps that failed, each with why.
    pub failures: Vec<String>,
    /// Set when the host was lost mid-apply: nothing more was attempted there.
    pub lost: Option<String>,
    /// Steps not attempted because the host was lost or an earlier step failed.
    pub skipped: usize,
}

impl Report {
    /// Whether every host converged: no failure, nothing skipped, no host lost.
    pub fn converged(&self) -> bool {
        self.stopped.is_none()
            && self
                .hosts
                .values()
                .all(|h| h.failures.is_empty() && h.lost.is_none() && h.skipped == 0)
    }
}

/// Carries out `plan`, made from `model`, through `engine`, asking `guard` at every step
/// boundary.
pub async fn execute<E: Engine, G: Guard>(
    engine: &E,
    guard: &G,
    model: &Model,
    plan: &Plan,
    options: &Options,
    events: &(dyn Fn(Event) + Sync),
) -> Report {
    let run = Run {
        engine,
        guard,
        stopped: Mutex::new(None),
        unhealthy: Mutex::default(),
        rolled_back: Mutex::default(),
        model,
        plan,
        options,
        events,
        permits: plan
            .hosts
            .iter()
            .map(|h| (h.host.clone(), Semaphore::new(options.concurrency.max(1))))
            .collect(),
        report: Mutex::new(
            plan.hosts.iter().map(|h| (h.host.clone(), HostReport::default())).collect(),
        ),
    };
    let rollout = arrange(plan, model);
    join_all(rollout.prepare.iter().map(|(host, steps)| run.simple_steps(host, steps))).await;
    join_all(rollout.removals.iter().map(|(host, steps)| run.simple_steps(host, steps))).await;
    for level in &rollout.levels {
        join_all(level.iter().map(|service| run.roll_service(service))).await;
    }
    join_all(rollout.cleanup.iter().map(|(host, steps)| run.simple_steps(host, steps))).await;
    Report {
        hosts: run.report.into_inner().unwrap_or_else(|e| e.into_inner()),
        stopped: run.stopped.into_inner().unwrap_or_else(|e| e.into_inner()),
        rolled_back: run.rolled_back.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

struct Run<'a, E, G> {
    engine: &'a E,
    guard: &'a G,
    /// Why the guard stopped the apply, once it did.
    stopped: Mutex<Option<String>>,
    /// Replicas (`app/service`) whose new container failed its health gate.
    unhealthy: Mutex<BTreeSet<String>>,
    /// Services rolled back after a failed health gate.
    rolled_back: Mutex<BTreeSet<String>>,
    model: &'a Model,
    plan: &'a Plan,
    options: &'a Options,
    events: &'a (dyn Fn(Event) + Sync),
    permits: BTreeMap<String, Semaphore>,
    report: Mutex<BTreeMap<String, HostReport>>,
}

/// A replica replaced, remembered until its service's rollout is over.
#[derive(Clone)]
struct Replaced {
    host: String,
    replica: ReplicaKey,
    name: String,
    old_id: String,
    new_id: String,
}

impl<E: Engine, G: Guard> Run<'_, E, G> {
    /// Asks the guard whether a new step on `host` may start; if not, the step is counted as
    /// skipped and the reason kept (reported once).
    async fn go_on(&self, host: &str) -> bool {
        let refusal = {
            let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
            stopped.clone()
        };
        let refusal = match refusal {
            Some(why) => Some(why),
            None => self.guard.check().await.err(),
        };
        let Some(why) = refusal else { return true };
        let first = {
            let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
            let first = stopped.is_none();
            stopped.get_or_insert_with(|| why.clone());
            first
        };
        if first {
            self.emit(host, EventKind::Info, format!("apply stopped: {why}"));
        }
        self.skip(host);
        false
    }

    fn emit(&self, host: &str, kind: EventKind, text: String) {
        (self.events)(Event { host: host.to_string(), kind, text });
    }

    fn with_report<T>(&self, host: &str, f: impl FnOnce(&mut HostReport) -> T) -> T {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        f(report.entry(host.to_string()).or_default())
    }

    fn lost(&self, host: &str) -> bool {
        self.with_report(host, |r| r.lost.is_some())
    }

    fn skip(&self, host: &str) {
        self.with_report(host, |r| r.skipped += 1);
    }

    /// Runs one Docker operation on `host` under the host's concurrency bound.
    async fn op<T>(
        &self,
        host: &str,
        operation: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, String> {
        let _permit = self.permit(host).await?;
        self.call(host, operation).await
    }

    /// One of `host`'s concurrency permits (none for a host without a bound); refused once
    /// the host is lost.
    async fn permit(&self, host: &str) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, String> {
        if self.lost(host) {
            return Err(format!("host {host} was lost earlier in this apply"));
        }
        match self.permits.get(host) {
            Some(semaphore) => Ok(Some(semaphore.acquire().await.map_err(|e| e.to_string())?)),
            None => Ok(None),
        }
    }

    /// Runs one Docker operation on `host`, the caller holding a permit; a lost host is
    /// recorded and reported once.
    async fn call<T>(
        &self,
        host: &str,
        operation: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, String> {
        operation.await.map_err(|error| {
            if error.host_lost {
                let first = self.with_report(host, |r| {
                    let first = r.lost.is_none();
                    r.lost.get_or_insert_with(|| error.message.clone());
                    first
                });
                if first {
                    self.emit(host, EventKind::Failed, format!("host lost: {}", error.message));
                }
            }
            error.message
        })
    }

    fn finished(&self, host: &str, what: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => {
                self.with_report(host, |r| r.done += 1);
                self.emit(host, EventKind::Done, what.to_string());
            }
            Err(_) if self.lost(host) => self.skip(host),
            // Stopped (shutdown) while waiting for a replica: undone, not failed.
            Err(_) if self.is_stopped() => {
                self.skip(host);
                self.emit(host, EventKind::Info, format!("{what}: not done (apply stopped)"));
            }
            Err(error) => {
                let failure = format!("{what}: {error}");
                self.with_report(host, |r| r.failures.push(failure.clone()));
                self.emit(host, EventKind::Failed, failure);
            }
        }
    }

    /// Networks, volumes, images, removals: independent steps, all at once (bounded).
    async fn simple_steps(&self, host: &str, steps: &[Step]) {
        join_all(steps.iter().map(|step| async move {
            if !self.go_on(host).await {
                return;
            }
            let (kind, name) = step.target();
            let what = match step {
                Step::PullImage { .. } => format!("image {name} ready"),
                Step::RemoveContainer { .. } | Step::RemoveNetwork { .. } => {
                    format!("{kind} {name} removed")
                }
                _ => format!("{kind} {name} created"),
            };
            let result = self.simple_step(host, step).await;
            self.finished(host, &what, &result);
        }))
        .await;
    }

    async fn simple_step(&self, host: &str, step: &Step) -> Result<(), String> {
        let fleet = &self.plan.fleet;
        match step {
            Step::CreateNetwork { app, key, network, .. } => {
                let labels = labels::for_object(fleet, app, key, &network.labels);
                let labels = labels::with_repository(labels, self.plan.repository.as_deref());
                self.op(host, self.engine.ensure_network(host, network, &labels)).await
            }
            Step::CreateVolume { app, key, volume, .. } => {
                let labels = labels::for_object(fleet, app, key, &volume.labels);
                let labels = labels::with_repository(labels, self.plan.repository.as_deref());
                self.op(host, self.engine.ensure_volume(host, volume, &labels)).await
            }
            Step::PullImage { image, policy, .. } => {
                self.op(host, self.engine.ensure_image(host, image, *policy)).await
            }
            Step::RemoveContainer { id, replica, .. } => {
                if let Some(replica) = replica {
                    self.guard.before_stop(host, id, replica).await;
                }
                self.op(host, self.engine.stop(host, id, Duration::from_secs(10))).await?;
                self.op(host, self.engine.remove(host, id)).await
            }
            Step::RemoveNetwork { id, .. } => {
                self.op(host, self.engine.remove_network(host, id)).await
            }
            Step::CreateContainer { .. } | Step::ReplaceContainer { .. } => {
                Err("containers are created by their service's rollout".to_string())
            }
        }
    }

    /// One service: new replicas at once, then replacements in rolling batches.
    async fn roll_service(&self, service: &ServiceRollout) {
        join_all(service.creates.iter().map(|(host, step)| async move {
            let Step::CreateContainer { replica, container, .. } = step else { return };
            if !self.go_on(host).await {
                return;
            }
            let what = format!("container {} started", container.name);
            let result = self.create_replica(host, replica, container, service.wait_healthy).await;
            self.finished(host, &what, &result.map(|_| ()));
        }))
        .await;

        let update = &service.update;
        let mut replaced: Vec<Replaced> = Vec::new();
        let all = batches(&service.replaces, update.parallelism);
        let count = all.len();
        for (i, batch) in all.into_iter().enumerate() {
            let host = batch.first().map(|(h, _)| h.as_str()).unwrap_or_default();
            if !self.go_on(host).await {
                // This batch and the following ones are not started.
                for (host, _) in batch.iter().skip(1) {
                    self.skip(host);
                }
                self.skip_remaining(service, i + 1, count, "stopped");
                break;
            }
            let results = join_all(batch.iter().map(|(host, step)| async move {
                let Step::ReplaceContainer { replica, id, container, .. } = step else {
                    return (host.clone(), Err("not a replacement".to_string()));
                };
                let result = self.replace_replica(host, replica, id, container, update.order).await;
                let what = format!("container {} replaced", container.name);
                self.finished(host, &what, &result.as_ref().map(|_| ()).map_err(Clone::clone));
                (host.clone(), result)
            }))
            .await;
            let mut failed = false;
            for (_, result) in results {
                match result {
                    Ok(done) => replaced.push(done),
                    Err(_) => failed = true,
                }
            }
            if failed && self.is_stopped() {
                // Stopped mid-batch: the replicas replaced so far stand, the rest were put
                // back as they were; nothing more is started.
                self.skip_remaining(service, i + 1, count, "stopped");
                break;
            }
            if failed {
                match update.failure_action {
                    FailureAction::Continue => {}
                    FailureAction::Pause => {
                        self.skip_remaining(service, i + 1, count, "paused");
                        break;
                    }
                    FailureAction::Rollback => {
                        let key = format!("{}/{}", service.app, service.service);
                        if self.unhealthy.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
                            self.rolled_back.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
                        }
                        self.skip_remaining(service, i + 1, count, "rolled back");
                        // Back in batches by `rollback_config`, most recent first.
                        replaced.reverse();
                        let back = batches(&replaced, service.rollback.parallelism);
                        for (j, batch) in back.iter().enumerate() {
                            join_all(batch.iter().map(|done| self.roll_back(done))).await;
                            if j + 1 < back.len() && service.rollback.delay_ms > 0 {
                                sleep(Duration::from_millis(service.rollback.delay_ms)).await;
                            }
                        }
                        replaced.clear();
                        break;
                    }
                }
            }
            if i + 1 < count && update.delay_ms > 0 {
                sleep(Duration::from_millis(update.delay_ms)).await;
            }
        }
        // The update stands: the old containers go.
        join_all(replaced.iter().map(|done| async move {
            let _ = self.op(&done.host, self.engine.remove(&done.host, &done.old_id)).await;
        }))
        .await;
    }

    fn skip_remaining(
        &self,
        service: &ServiceRollout,
        next_batch: usize,
        batches: usize,
        why: &str,
    ) {
        let per_batch = if service.update.parallelism == 0 {
            service.replaces.len()
        } else {
            service.update.parallelism as usize
        };
        let remaining = service.replaces.iter().skip(next_batch * per_batch);
        for (host, _) in remaining {
            self.skip(host);
        }
        let host = service.replaces.first().map(|(h, _)| h.as_str()).unwrap_or_default();
        self.emit(
            host,
            EventKind::Info,
            format!(
                "update of {}/{} {why} after batch {next_batch} of {batches}",
                service.app, service.service
            ),
        );
    }

    /// Creates `container` under `name`, starts it and waits until it is up (healthy when
    /// `healthy` and it has a health check, then watched for `monitor`). A container that does
    /// not come up is removed again; the error says why.
    async fn launch(
        &self,
        host: &str,
        name: &str,
        replica: &ReplicaKey,
        container: &DesiredContainer,
        healthy: bool,
        monitor: Duration,
    ) -> Result<String, String> {
        let files = self.files_for(replica, container)?;
        let labels = labels::for_container(
            &self.plan.fleet,
            replica,
            &container.spec,
            &container.spec_hash,
            self.plan.revision.as_deref(),
        );
        let labels = labels::with_repository(labels, self.plan.repository.as_deref());
        // Create and start under one permit, so a container starts as soon as it exists
        // rather than after every other create queued on the host.
        let (id, started) = {
            let _permit = self.permit(host).await?;
            let create = self.engine.create(host, name, &container.spec, &labels, &files);
            let id = self.call(host, create).await?;
            let started = self.call(host, self.engine.start(host, &id)).await;
            (id, started)
        };
        let up = match started {
            Ok(()) => {
                let ready = self.wait_ready(host, &id, &container.name, healthy, monitor).await;
                if ready.is_err() && !self.is_stopped() && !self.lost(host) {
                    self.unhealthy
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(format!("{}/{}", replica.app, replica.service));
                }
                ready
            }
            Err(error) => Err(error),
        };
        if let Err(error) = up {
            let _ = self.op(host, self.engine.remove(host, &id)).await;
            return Err(error);
        }
        Ok(id)
    }

    /// Creates and starts a new replica, and waits until it is up.
    async fn create_replica(
        &self,
        host: &str,
        replica: &ReplicaKey,
        container: &DesiredContainer,
        wait_healthy: bool,
    ) -> Result<String, String> {
        let id = self
            .launch(host, &container.name, replica, container, wait_healthy, Duration::ZERO)
            .await?;
        self.guard.after_ready(host, &id, replica).await;
        Ok(id)
    }

    /// Replaces one replica by `order`; on failure the old container is back as it was.
    async fn replace_replica(
        &self,
        host: &str,
        replica: &ReplicaKey,
        old_id: &str,
        container: &DesiredContainer,
        order: UpdateOrder,
    ) -> Result<Replaced, String> {
        let monitor = Duration::from_millis(
            self.model
                .apps
                .get(&*replica.app)
                .and_then(|a| a.services.get(&*replica.service))
                .map_or(0, |s| s.deploy.update_config.monitor_ms),
        );
        let grace = Duration::from_millis(container.spec.stop_grace_period_ms.unwrap_or(10_000));
        let parked = format!("{}.old-{}", container.name, &old_id[..old_id.len().min(12)]);
        let replaced = |new_id: String| Replaced {
            host: host.into(),
            replica: replica.clone(),
            name: container.name.clone(),
            old_id: old_id.into(),
            new_id,
        };
        // Two containers cannot publish the same host port: such replicas update stop-first.
        // Ports Docker chooses (`published: None`, as routed services' route ports are) never
        // clash, so those replicas may start first.
        let publishes = container.spec.ports.iter().any(|p| p.published.is_some());
        if order == UpdateOrder::StartFirst && !publishes {
            let hash = &container.spec_hash[..8.min(container.spec_hash.len())];
            let next = format!("{}.next-{hash}", container.name);
            let id = self.launch(host, &next, replica, container, true, monitor).await?;
            self.guard.after_ready(host, &id, replica).await;
            self.guard.before_stop(host, old_id, replica).await;
            self.op(host, self.engine.stop(host, old_id, grace)).await?;
            self.op(host, self.engine.rename(host, old_id, &parked)).await?;
            self.op(host, self.engine.rename(host, &id, &container.name)).await?;
            return Ok(replaced(id));
        }
        self.guard.before_stop(host, old_id, replica).await;
        self.op(host, self.engine.stop(host, old_id, grace)).await?;
        self.op(host, self.engine.rename(host, old_id, &parked)).await?;
        match self.launch(host, &container.name, replica, container, true, monitor).await {
            Ok(id) => {
                self.guard.after_ready(host, &id, replica).await;
                Ok(replaced(id))
            }
            Err(error) => {
                // Put the old replica back as it was.
                let _ = self.op(host, self.engine.rename(host, old_id, &container.name)).await;
                if self.op(host, self.engine.start(host, old_id)).await.is_ok() {
                    self.guard.after_ready(host, old_id, replica).await;
                }
                Err(error)
            }
        }
    }

    /// Undoes one successful replacement: the new container goes, the old one comes back.
    async fn roll_back(&self, done: &Replaced) {
        let host = done.host.as_str();
        let result = async {
            self.guard.before_stop(host, &done.new_id, &done.replica).await;
            self.op(host, self.engine.stop(host, &done.new_id, Duration::from_secs(10))).await?;
            self.op(host, self.engine.remove(host, &done.new_id)).await?;
            self.op(host, self.engine.rename(host, &done.old_id, &done.name)).await?;
            self.op(host, self.engine.start(host, &done.old_id)).await?;
            self.guard.after_ready(host, &done.old_id, &done.replica).await;
            Ok::<(), String>(())
        }
        .await;
        match result {
            Ok(()) => self.emit(
                host,
                EventKind::Info,
                format!("container {} rolled back to its previous spec", done.name),
            ),
            Err(error) => self.finished(host, &format!("rollback of {}", done.name), &Err(error)),
        }
    }

    /// Waits until the container runs (and, with a health check and `healthy`, is healthy),
    /// then watches it for `monitor`. A failure names the exit code or the health; the last
    /// log lines go out as an [`EventKind::Logs`] event.
    async fn wait_ready(
        &self,
        host: &str,
        id: &str,
        name: &str,
        healthy: bool,
        monitor: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.options.health_timeout;
        loop {
            let status = self.op(host, self.engine.status(host, id)).await?;
            if let Some(problem) = self.problem(host, id, name, &status).await {
                return Err(problem);
            }
            let ready = status.running && (!healthy || status.health != Some(Health::Starting));
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} was not healthy within {:?}",
                    self.options.health_timeout
                ));
            }
            self.pause(self.options.poll, name).await?;
        }
        let watch_until = Instant::now() + monitor;
        while Instant::now() < watch_until {
            self.pause(self.options.poll.min(watch_until - Instant::now()), name).await?;
            let status = self.op(host, self.engine.status(host, id)).await?;
            if let Some(problem) = self.problem(host, id, name, &status).await {
                return Err(problem);
            }
        }
        Ok(())
    }

    /// Sleeps `wait` during a health wait, unless the guard says stop first: then the apply
    /// is marked stopped and the wait ends with an error the caller undoes like a failed
    /// health gate (but [`Run::finished`] does not count it as a failure).
    async fn pause(&self, wait: Duration, name: &str) -> Result<(), String> {
        tokio::select! {
            _ = sleep(wait) => Ok(()),
            why = self.guard.stopped() => {
                self.stopped
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| why.clone());
                Err(format!("stopped while waiting for {name} to be ready: {why}"))
            }
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    async fn problem(
        &self,
        host: &str,
        id: &str,
        name: &str,
        status: &ContainerStatus,
    ) -> Option<String> {
        let what = match (&status.health, status.state.as_str()) {
            (Some(Health::Unhealthy), _) => "is unhealthy".to_string(),
            (_, "exited" | "dead") => {
                format!("exited with code {}", status.exit_code.unwrap_or(-1))
            }
            (_, "restarting") => {
                format!("keeps restarting (last exit code {})", status.exit_code.unwrap_or(-1))
            }
            _ => return None,
        };
        let logs = self.op(host, self.engine.logs(host, id, LOG_LINES)).await.unwrap_or_default();
        let logs = cap_logs(&logs);
        if !logs.is_empty() {
            self.emit(host, EventKind::Logs, format!("{name} last log lines:\n{logs}"));
        }
        Some(format!("{name} {what}"))
    }

    /// The config and secret files of a replica, from the model the plan was made from.
    fn files_for(
        &self,
        replica: &ReplicaKey,
        container: &DesiredContainer,
    ) -> Result<Vec<FileToDeliver>, String> {
        let app = self
            .model
            .apps
            .get(&*replica.app)
            .ok_or_else(|| format!("app {} is not in the model", replica.app))?;
        container
            .spec
            .files
            .iter()
            .map(|(target, file)| {
                let defs = if file.kind == "secret" { &app.secrets } else { &app.configs };
                let def =
                    defs.get(&file.name).filter(|d| d.digest == file.digest).ok_or_else(|| {
                        format!(
                            "{} {} of {} is not the one the plan was made with; plan again",
                            file.kind, file.name, replica.app
                        )
                    })?;
                Ok(FileToDeliver {
                    target: target.clone(),
                    content: def.content.clone(),
                    uid: file.uid.clone(),
                    gid: file.gid.clone(),
                    mode: file.mode,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::apply::engine::EngineResult;
    use crate::apply::guard::Unguarded;
    use crate::diff::desired::DesiredObject;
    use crate::diff::simulate::apply_plan;
    use crate::diff::spec::ContainerSpec;
    use crate::diff::{Desired, HostObservation, HostState, Observed, plan};
    use crate::model::{PullPolicy, SourceTree, load};

    /// Records every call; containers whose image or id is in `unhealthy` never become
    /// healthy.
    #[derive(Default)]
    struct FakeEngine {
        calls: Mutex<Vec<String>>,
        images: Mutex<BTreeMap<String, String>>,
        unhealthy: Vec<String>,
        /// Images whose containers stay `starting` forever.
        starting: Vec<String>,
    }

    impl FakeEngine {
        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Engine for FakeEngine {
        async fn ensure_network(
            &self,
            host: &str,
            o: &DesiredObject,
            _: &BTreeMap<String, String>,
        ) -> EngineResult<()> {
            self.record(format!("{host}: network {}", o.name));
            Ok(())
        }
        async fn ensure_volume(
            &self,
            host: &str,
            o: &DesiredObject,
            _: &BTreeMap<String, String>,
        ) -> EngineResult<()> {
            self.record(format!("{host}: volume {}", o.name));
            Ok(())
        }
        async fn ensure_image(&self, host: &str, image: &str, _: PullPolicy) -> EngineResult<()> {
            self.record(format!("{host}: image {image}"));
            Ok(())
        }
        async fn create(
            &self,
            host: &str,
            name: &str,
            spec: &ContainerSpec,
            _: &BTreeMap<String, String>,
            _: &[FileToDeliver],
        ) -> EngineResult<String> {
            self.record(format!("{host}: create {name}"));
            let id = format!("new-{name}");
            self.images.lock().unwrap().insert(id.clone(), spec.image.clone());
            Ok(id)
        }
        async fn start(&self, host: &str, id: &str) -> EngineResult<()> {
            self.record(format!("{host}: start {id}"));
            Ok(())
        }
        async fn stop(&self, host: &str, id: &str, _: Duration) -> EngineResult<()> {
            self.record(format!("{host}: stop {id}"));
            Ok(())
        }
        async fn remove(&self, host: &str, id: &str) -> EngineResult<()> {
            self.record(format!("{host}: remove {id}"));
            Ok(())
        }
        async fn rename(&self, host: &str, id: &str, name: &str) -> EngineResult<()> {
            self.record(format!("{host}: rename {id} {name}"));
            Ok(())
        }
        async fn status(&self, _: &str, id: &str) -> EngineResult<ContainerStatus> {
            let image = self.images.lock().unwrap().get(id).cloned().unwrap_or_default();
            let sick = self.unhealthy.contains(&image) || self.unhealthy.iter().any(|u| u == id);
            let health = if sick {
                Health::Unhealthy
            } else if self.starting.contains(&image) {
                Health::Starting
            } else {
                Health::Healthy
            };
            Ok(ContainerStatus {
                running: true,
                state: "running".into(),
                exit_code: None,
                health: Some(health),
                health_output: None,
                restart_count: 0,
                oom_killed: false,
                error: None,
            })
        }
        async fn logs(&self, _: &str, _: &str, _: usize) -> EngineResult<String> {
            Ok("boom".into())
        }
        async fn remove_network(&self, host: &str, id: &str) -> EngineResult<()> {
            self.record(format!("{host}: remove network {id}"));
            Ok(())
        }
    }

    const FLEET: &str = "hosts:\n  a: {endpoint: unix:///a.sock}\n";

    fn app(image: &str, failure_action: &str) -> String {
        format!(
            "services:\n  web:\n    image: {image}\n    deploy:\n      replicas: 2\n      update_config: {{parallelism: 1, monitor: 0s, failure_action: {failure_action}}}\n"
        )
    }

    fn model(app: &str) -> Model {
        let tree: SourceTree = [
            ("fleet.yaml".to_string(), FLEET.as_bytes().to_vec()),
            ("apps/shop/compose.yaml".to_string(), app.as_bytes().to_vec()),
        ]
        .into_iter()
        .collect();
        load(&tree).expect("valid test model")
    }

    /// Runs v1 → v2 where every v2 container is unhealthy; returns the calls and the report.
    fn failed_update(failure_action: &str) -> (Vec<String>, Report) {
        update_with_unhealthy(failure_action, "web:2")
    }

    /// Runs v1 → v2 where the containers named (by image or id) in `unhealthy` fail.
    fn update_with_unhealthy(failure_action: &str, unhealthy: &str) -> (Vec<String>, Report) {
        let (calls, report, _) = update_with_unhealthy_events(failure_action, unhealthy);
        (calls, report)
    }

    /// [`update_with_unhealthy`], with the events the apply emitted.
    fn update_with_unhealthy_events(
        failure_action: &str,
        unhealthy: &str,
    ) -> (Vec<String>, Report, Vec<Event>) {
        let empty = Observed {
            hosts: BTreeMap::from([(
                "a".to_string(),
                HostObservation::Reachable(HostState::default()),
            )]),
        };
        let v1 = model(&app("web:1", failure_action));
        let running = apply_plan(&empty, &plan(&Desired::new(&v1, &empty, None), &empty));
        let v2 = model(&app("web:2", failure_action));
        let update = plan(&Desired::new(&v2, &running, None), &running);
        let engine = FakeEngine { unhealthy: vec![unhealthy.into()], ..FakeEngine::default() };
        let options = Options { poll: Duration::from_millis(1), ..Options::default() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let events = std::sync::Mutex::new(Vec::new());
        let report = runtime.block_on(execute(&engine, &Unguarded, &v2, &update, &options, &|e| {
            events.lock().unwrap().push(e)
        }));
        (engine.calls(), report, events.into_inner().unwrap())
    }

    #[test]
    fn a_failed_update_with_rollback_restores_the_old_container() {
        let (calls, report) = failed_update("rollback");
        let old = "ctr-shop-web-1-";
        let calls: Vec<String> = calls.into_iter().filter(|c| !c.contains("image")).collect();
        assert_eq!(calls.len(), 7, "{calls:#?}");
        assert!(calls[0].starts_with(&format!("a: stop {old}")), "{calls:#?}");
        assert!(calls[1].contains(" shop-web-1.old-"), "parked: {calls:#?}");
        assert_eq!(
            calls[2..5],
            ["a: create shop-web-1", "a: start new-shop-web-1", "a: remove new-shop-web-1"]
        );
        assert!(
            calls[5].starts_with(&format!("a: rename {old}")) && calls[5].ends_with(" shop-web-1"),
            "{calls:#?}"
        );
        assert!(calls[6].starts_with(&format!("a: start {old}")), "{calls:#?}");
        // Rollback stops at the first failed batch: replica 2 is never touched.
        assert!(!calls.iter().any(|c| c.contains("shop-web-2")), "{calls:#?}");
        let host = &report.hosts["a"];
        assert_eq!(host.skipped, 1);
        assert_eq!(host.failures.len(), 1);
        assert!(host.failures[0].contains("shop-web-1 is unhealthy"), "{host:?}");
        assert!(!report.converged());
        assert_eq!(report.rolled_back, BTreeSet::from(["shop/web".to_string()]));
    }

    #[test]
    fn a_failed_replicas_logs_are_an_event_never_part_of_the_failure() {
        let (_, report, events) = update_with_unhealthy_events("rollback", "web:2");
        let failure = &report.hosts["a"].failures[0];
        assert!(!failure.contains("boom"), "logs stay out of failures: {failure}");
        let logs: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Logs).collect();
        assert_eq!(logs.len(), 1, "{events:#?}");
        assert_eq!(logs[0].text, "shop-web-1 last log lines:\nboom");
    }

    #[test]
    fn a_shutdown_during_a_health_wait_puts_the_old_replica_back_and_fails_nothing() {
        let empty = Observed {
            hosts: BTreeMap::from([(
                "a".to_string(),
                HostObservation::Reachable(HostState::default()),
            )]),
        };
        let v1 = model(&app("web:1", "rollback"));
        let running = apply_plan(&empty, &plan(&Desired::new(&v1, &empty, None), &empty));
        let v2 = model(&app("web:2", "rollback"));
        let update = plan(&Desired::new(&v2, &running, None), &running);
        let engine = FakeEngine { starting: vec!["web:2".into()], ..FakeEngine::default() };
        // The health timeout is far away: only the token can end the wait.
        let options = Options {
            poll: Duration::from_millis(100),
            health_timeout: Duration::from_secs(3600),
            ..Options::default()
        };
        let token = tokio_util::sync::CancellationToken::new();
        let guard = crate::apply::CancelGuard(token.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let started = runtime.block_on(async { Instant::now() });
        let report = runtime.block_on(async {
            tokio::spawn(async move {
                sleep(Duration::from_secs(5)).await;
                token.cancel();
            });
            execute(&engine, &guard, &v2, &update, &options, &|_| {}).await
        });
        let waited = runtime.block_on(async { Instant::now() }) - started;
        assert!(waited < Duration::from_secs(6), "the wait ended with the token: {waited:?}");
        let calls = engine.calls();
        assert!(report.stopped.is_some(), "{report:?}");
        let host = &report.hosts["a"];
        assert!(host.failures.is_empty(), "a stop is no failure: {host:?}");
        assert!(report.rolled_back.is_empty(), "a stop rolls nothing back: {report:?}");
        assert!(calls.contains(&"a: remove new-shop-web-1".to_string()), "{calls:#?}");
        let last = calls.last().unwrap();
        assert!(last.starts_with("a: start ctr-shop-web-1-"), "old one back: {calls:#?}");
        assert!(!calls.iter().any(|c| c.contains("shop-web-2")), "{calls:#?}");
    }

    #[test]
    fn logs_are_capped_at_the_end_on_a_line_boundary() {
        assert_eq!(cap_logs("a\nb\n\n"), "a\nb");
        let long: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let capped = cap_logs(&long);
        assert!(capped.len() <= LOG_BYTES);
        assert!(capped.starts_with("line "), "{capped:.20}");
        assert!(capped.ends_with("line 999"));
        let wide = "é".repeat(3000);
        assert!(cap_logs(&wide).len() <= LOG_BYTES);
    }

    #[test]
    fn a_later_failure_rolls_back_the_replicas_already_updated() {
        let (calls, report) = update_with_unhealthy("rollback", "new-shop-web-2");
        let position = |call: &str| calls.iter().position(|c| c == call);
        let second_failed = position("a: remove new-shop-web-2").expect("failed replica removed");
        // Replica 1 was updated first; after replica 2 fails, its new container goes and the
        // parked old one comes back under its name.
        let first_undone = position("a: remove new-shop-web-1").expect("rolled back");
        assert!(second_failed < first_undone, "{calls:#?}");
        let restored = calls[first_undone + 1..]
            .iter()
            .any(|c| c.starts_with("a: rename ctr-shop-web-1-") && c.ends_with(" shop-web-1"));
        assert!(restored, "{calls:#?}");
        assert_eq!(report.hosts["a"].failures.len(), 1);
        assert!(!report.converged());
    }

    #[test]
    fn continue_goes_on_to_the_next_batch() {
        let (calls, report) = failed_update("continue");
        assert!(calls.iter().any(|c| c == "a: create shop-web-2"), "{calls:#?}");
        assert_eq!(report.hosts["a"].failures.len(), 2);
        assert_eq!(report.hosts["a"].skipped, 0);
        assert!(report.rolled_back.is_empty(), "nothing rolled back: {report:?}");
    }

    /// Records its hooks in the engine's call log; refuses once `stop_after` is in the log
    /// (`""`: always).
    struct RecordingGuard<'e> {
        engine: &'e FakeEngine,
        stop_after: Option<&'static str>,
    }

    impl Guard for RecordingGuard<'_> {
        async fn check(&self) -> Result<(), String> {
            let stop = self.stop_after.is_some_and(|after| {
                after.is_empty() || self.engine.calls().iter().any(|c| c.contains(after))
            });
            if stop { Err("shutting down".into()) } else { Ok(()) }
        }
        async fn before_stop(&self, host: &str, id: &str, replica: &ReplicaKey) {
            self.engine.record(format!("{host}: before_stop {id} {replica}"));
        }
        async fn after_ready(&self, host: &str, id: &str, replica: &ReplicaKey) {
            self.engine.record(format!("{host}: after_ready {id} {replica}"));
        }
    }

    /// Plans v1 (running) → v2 and runs it under a [`RecordingGuard`].
    fn guarded_update(
        v1: &str,
        v2: &str,
        stop_after: Option<&'static str>,
    ) -> (Vec<String>, Report) {
        let empty = Observed {
            hosts: BTreeMap::from([(
                "a".to_string(),
                HostObservation::Reachable(HostState::default()),
            )]),
        };
        let v1 = model(v1);
        let running = apply_plan(&empty, &plan(&Desired::new(&v1, &empty, None), &empty));
        let v2 = model(v2);
        let update = plan(&Desired::new(&v2, &running, None), &running);
        let engine = FakeEngine::default();
        let guard = RecordingGuard { engine: &engine, stop_after };
        let options = Options { poll: Duration::from_millis(1), ..Options::default() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let report = runtime.block_on(execute(&engine, &guard, &v2, &update, &options, &|_| {}));
        (engine.calls(), report)
    }

    fn replicas(image: &str, n: u32) -> String {
        format!(
            "services:\n  web:\n    image: {image}\n    deploy:\n      replicas: {n}\n      update_config: {{parallelism: 1, monitor: 0s}}\n"
        )
    }

    #[test]
    fn a_stopped_apply_ends_at_a_batch_boundary_with_no_half_made_replica() {
        // Stop once the first new container has started: replica 1's replacement finishes,
        // replica 2 is never touched.
        let (calls, report) =
            guarded_update(&replicas("web:1", 2), &replicas("web:2", 2), Some("start new-"));
        assert_eq!(report.stopped.as_deref(), Some("shutting down"));
        assert!(!report.converged());
        assert_eq!(report.hosts["a"].skipped, 1, "{report:?}");
        assert!(report.hosts["a"].failures.is_empty(), "{report:?}");
        assert!(
            calls.iter().any(|c| c == "a: after_ready new-shop-web-1 shop/web#1"),
            "{calls:#?}"
        );
        // The parked old container of the finished replica is cleaned up, as in any apply.
        assert!(calls.iter().any(|c| c.starts_with("a: remove ctr-shop-web-1-")), "{calls:#?}");
        assert!(!calls.iter().any(|c| c.contains("shop-web-2")), "{calls:#?}");
    }

    #[test]
    fn a_guard_that_refuses_at_once_changes_nothing() {
        let (calls, report) =
            guarded_update(&replicas("web:1", 2), &replicas("web:2", 2), Some(""));
        assert!(report.stopped.is_some());
        assert!(calls.is_empty(), "{calls:#?}");
    }

    #[test]
    fn before_stop_comes_before_every_stop_of_a_replica() {
        // Replica 1 is replaced, replica 2 removed (scaled down to 1).
        let (calls, report) = guarded_update(&replicas("web:1", 2), &replicas("web:2", 1), None);
        assert!(report.converged(), "{report:?}");
        let stops: Vec<usize> =
            (0..calls.len()).filter(|&i| calls[i].starts_with("a: stop ")).collect();
        assert_eq!(stops.len(), 2, "{calls:#?}");
        for i in stops {
            let id = calls[i].trim_start_matches("a: stop ");
            let announced =
                calls[..i].iter().any(|c| c.starts_with(&format!("a: before_stop {id} ")));
            assert!(announced, "stop of {id} not announced: {calls:#?}");
        }
        let ready = calls.iter().position(|c| c == "a: after_ready new-shop-web-1 shop/web#1");
        let started = calls.iter().position(|c| c == "a: start new-shop-web-1");
        assert!(ready.is_some() && started < ready, "{calls:#?}");
    }
}
