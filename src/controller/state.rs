//! What the controller knows, as one immutable [`Snapshot`] published through a
//! `tokio::sync::watch` channel: the revision deployed and the one wanted, every host's state,
//! every service's replicas as observed on the hosts, current problems, the last plan, the
//! sync in progress, and the recent syncs and events.
//!
//! Only the reconcile loop writes, through the [`StatusWriter`] it owns; everyone else (web
//! page, `/api/status`, `/metrics`, the status files, the router) holds a [`StatusReader`] and
//! gets `Arc<Snapshot>`s. A reader never locks the loop and a request never deep-clones the
//! history: the history is a list of `Arc`s shared between successive snapshots.
//!
//! # Guarantees
//!
//! * A snapshot never changes once published; a new one replaces it.
//! * `head.state == deployed` only after an apply of that commit converged (or it was already
//!   in sync); a sync in which a host with desired replicas could not be seen is `incomplete`.
//! * Replica counts come from an observation of the hosts, never from a simulation of a plan.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};
use tokio::sync::watch;

use super::liveness::HostHealth;
use crate::diff::{HostObservation, Observed, Plan, Summary};
use crate::model::Model;

/// How many syncs and events are kept.
pub const HISTORY: usize = 50;
pub const EVENTS: usize = 200;

/// The version of the JSON shape of [`Snapshot`] (`/api/status`); bumped on incompatible change.
pub const STATUS_VERSION: u32 = 1;

/// Times are serialised as RFC 3339 (UTC, seconds).
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*time))
    }

    pub fn option<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serialize(time, s),
            None => s.serialize_none(),
        }
    }
}

/// A commit, as people need to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionInfo {
    pub commit: String,
    pub author: String,
    pub message: String,
    /// The commit time (additive in version 1).
    #[serde(serialize_with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub time: Option<SystemTime>,
}

/// The revision running on the hosts: the last one whose apply converged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub revision: RevisionInfo,
    /// When its apply finished.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// What that apply changed.
    pub plan: Summary,
}

/// The branch's head and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    #[serde(flatten)]
    pub revision: RevisionInfo,
    pub state: HeadState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadState {
    /// Valid and being rolled out: not yet converged on every host.
    Pending,
    /// Its apply converged: the hosts run it.
    Deployed,
    /// It does not validate: the last good revision keeps running.
    Invalid,
    /// Its rollout failed (and was rolled back): not retried until a new commit arrives.
    Failed,
}

impl HeadState {
    pub const ALL: [HeadState; 4] =
        [HeadState::Pending, HeadState::Deployed, HeadState::Invalid, HeadState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            HeadState::Pending => "pending",
            HeadState::Deployed => "deployed",
            HeadState::Invalid => "invalid",
            HeadState::Failed => "failed",
        }
    }
}

/// One service's replicas, as observed on the hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    /// Per host: running and healthy replicas there.
    pub hosts: BTreeMap<String, HostReplicas>,
    /// Each replica (at most [`super::replicas::ROWS_PER_SERVICE`], those that need
    /// attention first). Additive in version 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<super::replicas::ReplicaStatus>,
    /// Replicas left out of `replicas`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_replicas: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostReplicas {
    pub running: u32,
    pub healthy: u32,
}

/// A host as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// It answers.
    Up,
    /// It answers, with errors (an API error, not a lost connection): reported, nothing moves.
    Failing,
    /// Not answering, for less than the grace period: nothing moves.
    Away,
    /// Not answering for longer than the grace period: its replicas run elsewhere.
    Down,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Failing => "failing",
            HostState::Away => "away",
            HostState::Down => "down",
        }
    }
}

/// One host's state, since when, and why (when not up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub state: HostState,
    /// Since when it is in this state (for `up`: since the controller first saw it answer,
    /// or since it came back).
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a sync came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Nothing to do: every host was seen and runs the target revision.
    InSync,
    /// A plan was applied and every host converged.
    Applied,
    /// Something failed, a host with desired replicas could not be seen, or the apply was
    /// stopped (shutdown, lost lease).
    Incomplete,
    /// No revision could be deployed yet (nothing valid fetched).
    NothingDeployable,
}

impl SyncOutcome {
    pub const ALL: [SyncOutcome; 4] = [
        SyncOutcome::InSync,
        SyncOutcome::Applied,
        SyncOutcome::Incomplete,
        SyncOutcome::NothingDeployable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::InSync => "in_sync",
            SyncOutcome::Applied => "applied",
            SyncOutcome::Incomplete => "incomplete",
            SyncOutcome::NothingDeployable => "nothing_deployable",
        }
    }
}

/// One finished sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRecord {
    /// The sync's number since start (the first is 1): set by [`StatusWriter::record_sync`],
    /// so a reader can tell new syncs from old ones after the bounded history dropped some.
    pub number: u64,
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    pub reasons: String,
    pub commit: Option<String>,
    pub outcome: SyncOutcome,
    /// The outcome in words (`applied: 2 created`, `incomplete: host a lost: ...`).
    pub detail: String,
    pub millis: u64,
    /// What the plan of this sync changes, in numbers.
    pub plan: Summary,
    /// The plan itself (shared, not copied; not in the JSON).
    #[serde(skip)]
    pub full_plan: Option<Arc<Plan>>,
}

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new branch head was fetched.
    Revision,
    /// A revision was deployed, rejected, or found invalid.
    Rollout,
    /// A host became unreachable, down, or came back.
    Host,
    /// A replica failed or is held back.
    Replica,
    /// Fetching failed or works again.
    Fetch,
    /// The controller itself (start, shutdown).
    Controller,
}

/// Something that happened, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    pub kind: EventKind,
    pub message: String,
    /// A failed replica's last log lines (capped by the apply), for the page's event list:
    /// never serialized (not in `/api/status`, the status files or a comment).
    #[serde(skip)]
    pub logs: Option<Arc<str>>,
}

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The branch could not be fetched.
    Fetch,
    /// The head does not validate.
    InvalidRevision,
    /// An app of the head does not validate: its last good version keeps running (or none
    /// of it is deployed), the other apps are deployed.
    InvalidApp,
    /// The head could not be read.
    UnreadableRevision,
    /// The head's rollout failed and was rolled back.
    RolloutFailed,
    /// A step of the last apply failed.
    ApplyFailed,
    /// A host does not answer (within the grace period).
    HostUnreachable,
    /// A host is down (past the grace period).
    HostDown,
    /// A host answers with errors (an HTTP 500, say): nothing moves.
    HostFailing,
    /// Another repository deployed this fleet on a host: nothing is planned there.
    HostRefused,
    /// Replicas pinned by their volumes to a host that is down.
    Pinned,
    /// A replica that cannot be placed.
    Unplaced,
    /// A host's engine reports another platform than `fleet.yaml` declares: nothing is
    /// planned onto it.
    PlatformMismatch,
}

/// Whom a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    Repository,
    App { app: String },
    Host { host: String },
    Service { app: String, service: String },
}

/// One current problem, since when it has been there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub subject: Subject,
    pub message: String,
    #[serde(with = "rfc3339")]
    pub since: SystemTime,
}

impl Problem {
    pub fn new(kind: ProblemKind, subject: Subject, message: impl Into<String>) -> Self {
        Problem { kind, subject, message: message.into(), since: SystemTime::now() }
    }
}

/// A sync that is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncInProgress {
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    pub reasons: String,
}

/// A bounded newest-first list shared between snapshots: pushing copies only the `Arc`s
/// when a reader still holds the previous snapshot, never the records.
#[derive(Debug, Clone, PartialEq)]
pub struct History<T> {
    items: Arc<VecDeque<Arc<T>>>,
    cap: usize,
}

impl<T> History<T> {
    pub fn new(cap: usize) -> Self {
        History { items: Arc::new(VecDeque::new()), cap }
    }

    pub fn push(&mut self, item: T) {
        let items = Arc::make_mut(&mut self.items);
        items.push_front(Arc::new(item));
        items.truncate(self.cap);
    }

    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|i| i.as_ref())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn first(&self) -> Option<&T> {
        self.items.front().map(|i| i.as_ref())
    }
}

impl<T: Serialize> Serialize for History<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A host as `fleet.yaml` registers it, for people (no TLS file paths, no credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// `unix:///...` or `tcp://host:port` (`(tls)` when it uses TLS).
    pub endpoint: String,
    pub labels: BTreeMap<String, String>,
    /// `os/arch`.
    pub platform: String,
    pub millicpus: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl HostInfo {
    pub fn of(host: &crate::model::Host) -> Self {
        HostInfo {
            endpoint: host.endpoint.to_string(),
            labels: host.labels.clone(),
            platform: format!("{}/{}", host.platform.os, host.platform.arch),
            millicpus: host.capacity.millicpus,
            memory_bytes: host.capacity.memory_bytes,
        }
    }
}

/// Upper bounds, in seconds, of the sync duration histogram's buckets (`+Inf` is implied).
pub const SYNC_SECONDS_BUCKETS: [f64; 10] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// Counts since the controller started, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Applies that brought the hosts back to the revision already deployed (a container
    /// removed, crashed or changed by hand, a host back after failover).
    pub drift_repairs: u64,
    /// Hosts that passed the grace period (their replicas were moved).
    pub failovers: u64,
    /// Rollouts that failed and were rolled back to the last good revision.
    pub rollbacks: u64,
    /// Syncs per duration bucket ([`SYNC_SECONDS_BUCKETS`], then `+Inf`), not cumulative.
    pub sync_seconds_buckets: [u64; SYNC_SECONDS_BUCKETS.len() + 1],
    pub sync_seconds_sum: f64,
    /// When the last sync that left the hosts at the target revision (in sync or applied)
    /// finished.
    #[serde(serialize_with = "rfc3339::option")]
    pub last_success: Option<SystemTime>,
}

/// Everything the status page, the status files, the metrics and the API show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// [`STATUS_VERSION`].
    pub version: u32,
    pub repository: String,
    pub branch: String,
    pub deployed: Option<Deployed>,
    pub head: Option<Head>,
    /// Problems now, each with since-when.
    pub problems: Vec<Problem>,
    pub hosts: BTreeMap<String, HostStatus>,
    /// app → service → replicas, as observed.
    pub services: Arc<BTreeMap<String, BTreeMap<String, ServiceStatus>>>,
    /// Every `x-routes` rule with the replicas that can serve it (host address and published
    /// port, Docker health), as observed: what the router's table is built from. Not in the
    /// JSON (the router's own view has the live states).
    #[serde(skip)]
    pub routes: Arc<Vec<crate::router::RouteSpec>>,
    /// Each host's platform as the last sync planned with it (OS, architecture, what its
    /// engine reports, a mismatch with `fleet.yaml`). Additive in version 1.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, crate::diff::platform::HostPlatform>,
    /// The plan of the last sync (every host's steps with their reasons); not in the JSON.
    #[serde(skip)]
    pub plan: Option<Arc<Plan>>,
    /// The sync running now, if any.
    pub syncing: Option<SyncInProgress>,
    pub syncs: History<SyncRecord>,
    pub events: History<EventRecord>,
    /// Syncs since the controller started, by outcome.
    pub sync_totals: BTreeMap<SyncOutcome, u64>,
    /// The repository has been read at least once (a head was fetched, valid or not).
    pub repository_read: bool,
    /// Counts since start, for metrics.
    pub counters: Counters,
    /// The fleet's name (`settings.name`) and its hosts as registered, from the revision
    /// the hosts are kept at.
    pub fleet: Option<String>,
    pub host_info: BTreeMap<String, HostInfo>,
    /// Apps of the head that do not validate, with their errors and the revision whose
    /// version of them runs instead (per-app isolation). Additive in version 1.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub invalid_apps: BTreeMap<String, super::isolation::InvalidApp>,
    /// High availability: this instance's role (`leader`, `standby`, or `single` without
    /// etcd), the members, the leader, its epoch and since when.
    pub leadership: crate::leader::View,
    /// Per reachable host: the engine's version, the fleet's containers, the reservations of
    /// the replicas running there. Additive in version 1.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub host_usage: BTreeMap<String, super::replicas::HostUsage>,
    /// When the poll timer next fetches the branch (`None`: no polling, e.g. a local
    /// repository watched for changes). Additive in version 1.
    #[serde(serialize_with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub next_poll: Option<SystemTime>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            version: STATUS_VERSION,
            repository: String::new(),
            branch: String::new(),
            deployed: None,
            head: None,
            problems: Vec::new(),
            hosts: BTreeMap::new(),
            services: Arc::default(),
            routes: Arc::default(),
            platforms: BTreeMap::new(),
            plan: None,
            syncing: None,
            syncs: History::new(HISTORY),
            events: History::new(EVENTS),
            sync_totals: BTreeMap::new(),
            repository_read: false,
            counters: Counters::default(),
            fleet: None,
            host_info: BTreeMap::new(),
            invalid_apps: BTreeMap::new(),
            leadership: crate::leader::View::single(),
            host_usage: BTreeMap::new(),
            next_poll: None,
        }
    }
}

impl Snapshot {
    pub fn new(repository: &str, branch: &str) -> Self {
        Snapshot {
            repository: repository.to_string(),
            branch: branch.to_string(),
            ..Snapshot::default()
        }
    }

    /// Ready: the repository has been read and a first sync has finished.
    /// A standby (high availability) syncs nothing and is ready as soon as it runs: it serves
    /// the status and hands webhooks to the leader.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.leadership.role == crate::leader::Role::Standby {
            return Ok(());
        }
        if !self.repository_read {
            return Err("the repository has not been read yet");
        }
        if self.syncs.is_empty() {
            return Err("no sync has finished yet");
        }
        Ok(())
    }

    /// The last plan's steps for `host`.
    pub fn host_plan(&self, host: &str) -> Option<&crate::diff::HostPlan> {
        self.plan.as_ref()?.hosts.iter().find(|h| h.host == host)
    }

    /// The branch head last fetched, if any.
    pub fn head_commit(&self) -> Option<&str> {
        self.head.as_ref().map(|h| h.revision.commit.as_str())
    }
}

/// The read-only handle on the status: what the web side, the router and the status writer
/// hold. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusReader {
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl StatusReader {
    /// The latest snapshot.
    pub fn get(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// The latest snapshot, marking it seen (for [`StatusReader::changed`]).
    pub fn get_and_mark_seen(&mut self) -> Arc<Snapshot> {
        self.rx.borrow_and_update().clone()
    }

    /// Waits until a snapshot newer than the last one seen is published; `Err` once the loop
    /// is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await
    }

    /// The underlying receiver, for `tokio_stream::wrappers::WatchStream` and the like.
    pub fn receiver(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }
}

/// The writing side, owned by the reconcile loop. Every change publishes a new snapshot.
#[derive(Debug)]
pub struct StatusWriter {
    tx: watch::Sender<Arc<Snapshot>>,
}

impl StatusWriter {
    pub fn new(initial: Snapshot) -> Self {
        let (tx, _) = watch::channel(Arc::new(initial));
        StatusWriter { tx }
    }

    pub fn reader(&self) -> StatusReader {
        StatusReader { rx: self.tx.subscribe() }
    }

    /// The snapshot as last published.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Changes the snapshot and publishes it (copy-on-write: the previous one stays intact
    /// for readers that hold it).
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        self.tx.send_modify(|arc| change(Arc::make_mut(arc)));
    }

    pub fn event(&self, kind: EventKind, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(event = %message, kind = ?kind, "event");
        self.update(|s| {
            s.events.push(EventRecord { at: SystemTime::now(), kind, message, logs: None })
        });
    }

    /// An event with a failed replica's last log lines attached (kept out of every
    /// serialization; see [`EventRecord::logs`]).
    pub fn event_with_logs(&self, kind: EventKind, message: impl Into<String>, logs: &str) {
        let message = message.into();
        tracing::info!(event = %message, kind = ?kind, logs, "event");
        let logs: Option<Arc<str>> = Some(logs.into());
        self.update(|s| s.events.push(EventRecord { at: SystemTime::now(), kind, message, logs }));
    }

    pub fn sync_started(&self, reasons: String) {
        self.update(|s| {
            s.syncing = Some(SyncInProgress { started_at: SystemTime::now(), reasons })
        });
    }

    pub fn record_sync(&self, mut record: SyncRecord) {
        self.update(|s| {
            *s.sync_totals.entry(record.outcome).or_default() += 1;
            record.number = s.sync_totals.values().sum();
            let seconds = record.millis as f64 / 1000.0;
            let bucket = SYNC_SECONDS_BUCKETS
                .iter()
                .position(|le| seconds <= *le)
                .unwrap_or(SYNC_SECONDS_BUCKETS.len());
            s.counters.sync_seconds_buckets[bucket] += 1;
            s.counters.sync_seconds_sum += seconds;
            if matches!(record.outcome, SyncOutcome::InSync | SyncOutcome::Applied) {
                s.counters.last_success = Some(record.at);
            }
            s.syncing = None;
            if record.full_plan.is_some() {
                s.plan = record.full_plan.clone();
            }
            s.syncs.push(record);
        });
    }

    /// Sets the current problems, keeping the `since` of those already there (same kind and
    /// subject).
    pub fn set_problems(&self, problems: Vec<Problem>) {
        self.update(|s| s.problems = carry_since(&s.problems, problems));
    }

    /// Sets every host's state from liveness, keeping since-when of unchanged states.
    pub fn set_hosts(&self, health: &BTreeMap<String, HostHealth>, now: SystemTime) {
        self.update(|s| s.hosts = host_statuses(&s.hosts, health, now));
    }
}

/// `new` with the `since` of each problem taken from `old` where one of the same kind and
/// subject was already there.
pub fn carry_since(old: &[Problem], new: Vec<Problem>) -> Vec<Problem> {
    new.into_iter()
        .map(|mut problem| {
            if let Some(before) =
                old.iter().find(|o| o.kind == problem.kind && o.subject == problem.subject)
            {
                problem.since = before.since;
            }
            problem
        })
        .collect()
}

/// Hosts' states from liveness's view, with since-when: away/down since `now - for`, up since
/// it was first seen up (kept from `old`).
pub fn host_statuses(
    old: &BTreeMap<String, HostStatus>,
    health: &BTreeMap<String, HostHealth>,
    now: SystemTime,
) -> BTreeMap<String, HostStatus> {
    health
        .iter()
        .map(|(name, health)| {
            let (state, reason, away_for) = match health {
                HostHealth::Up => (HostState::Up, None, None),
                HostHealth::Failing { reason, for_seconds } => {
                    (HostState::Failing, Some(reason.clone()), Some(*for_seconds))
                }
                HostHealth::Unreachable { reason, for_seconds } => {
                    (HostState::Away, Some(reason.clone()), Some(*for_seconds))
                }
                HostHealth::Down { reason, for_seconds } => {
                    (HostState::Down, Some(reason.clone()), Some(*for_seconds))
                }
            };
            let since = match (old.get(name), away_for) {
                (Some(before), _) if before.state == state => before.since,
                // Away and down both count from when it stopped answering.
                (_, Some(seconds)) => now.checked_sub(Duration::from_secs(seconds)).unwrap_or(now),
                _ => now,
            };
            (name.clone(), HostStatus { state, since, reason })
        })
        .collect()
}

/// Every service's desired, running and healthy replicas, from the model and what the hosts
/// run (hosts that cannot be seen count as running nothing).
pub fn services(
    model: &Model,
    observed: &Observed,
) -> BTreeMap<String, BTreeMap<String, ServiceStatus>> {
    let fleet = model.fleet.settings.name.as_str();
    let mut services: BTreeMap<String, BTreeMap<String, ServiceStatus>> = model
        .apps
        .iter()
        .map(|(app_name, app)| {
            let services = app
                .services
                .iter()
                .map(|(name, service)| {
                    let status =
                        ServiceStatus { desired: service.deploy.replicas, ..Default::default() };
                    (name.clone(), status)
                })
                .collect();
            (app_name.clone(), services)
        })
        .collect();
    for (host, observation) in &observed.hosts {
        let HostObservation::Reachable(state) = observation else { continue };
        for container in &state.containers {
            let Some(key) = container.replica_key(fleet) else { continue };
            let Some(status) = services.get_mut(&*key.app).and_then(|s| s.get_mut(&*key.service))
            else {
                continue;
            };
            if key.replica > status.desired || !container.is_running() {
                continue;
            }
            // Without a health check, running is healthy.
            let healthy = container.health.as_deref().is_none_or(|h| h == "healthy");
            let on_host = status.hosts.entry(host.clone()).or_default();
            on_host.running += 1;
            status.running += 1;
            if healthy {
                on_host.healthy += 1;
                status.healthy += 1;
            }
        }
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: SyncOutcome) -> SyncRecord {
        SyncRecord {
            number: 0,
            started_at: SystemTime::UNIX_EPOCH,
            at: SystemTime::UNIX_EPOCH,
            reasons: "resync".into(),
            commit: None,
            outcome,
            detail: outcome.as_str().into(),
            millis: 1,
            plan: Summary::default(),
            full_plan: None,
        }
    }

    #[test]
    fn readers_see_each_published_snapshot_and_old_ones_stay_intact() {
        let writer = StatusWriter::new(Snapshot::new("/r", "main"));
        let mut reader = writer.reader();
        let before = reader.get_and_mark_seen();
        writer.sync_started("startup".into());
        assert!(before.syncing.is_none(), "a published snapshot never changes");
        let now = reader.get_and_mark_seen();
        assert_eq!(now.syncing.as_ref().unwrap().reasons, "startup");
        writer.record_sync(record(SyncOutcome::Applied));
        let after = reader.get();
        assert!(after.syncing.is_none());
        assert_eq!(after.sync_totals[&SyncOutcome::Applied], 1);
        assert_eq!(now.syncs.len(), 0);
        assert_eq!(after.syncs.len(), 1);
    }

    #[test]
    fn history_is_bounded_and_shared_not_copied() {
        let writer = StatusWriter::new(Snapshot::default());
        for i in 0..(EVENTS + 20) {
            writer.event(EventKind::Controller, format!("e{i}"));
        }
        let a = writer.current();
        assert_eq!(a.events.len(), EVENTS);
        assert_eq!(a.events.first().unwrap().message, format!("e{}", EVENTS + 19));
        writer.update(|s| s.branch = "other".into());
        let b = writer.current();
        // The records are the same allocations in both snapshots.
        assert!(Arc::ptr_eq(&a.events.items[0], &b.events.items[0]));
        for _ in 0..(HISTORY + 5) {
            writer.record_sync(record(SyncOutcome::InSync));
        }
        assert_eq!(writer.current().syncs.len(), HISTORY);
        assert_eq!(writer.current().sync_totals[&SyncOutcome::InSync], HISTORY as u64 + 5);
        // Numbers go on counting past the history's bound: the newest is first.
        let numbers: Vec<u64> = writer.current().syncs.iter().map(|r| r.number).take(2).collect();
        assert_eq!(numbers, [HISTORY as u64 + 5, HISTORY as u64 + 4]);
    }

    #[test]
    fn ready_needs_a_read_repository_and_a_finished_sync() {
        let writer = StatusWriter::new(Snapshot::default());
        assert!(writer.current().ready().is_err());
        writer.update(|s| s.repository_read = true);
        assert_eq!(writer.current().ready(), Err("no sync has finished yet"));
        writer.record_sync(record(SyncOutcome::NothingDeployable));
        assert_eq!(writer.current().ready(), Ok(()));
    }

    #[test]
    fn problems_keep_their_since_while_they_last() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let host = Subject::Host { host: "a".into() };
        let mut first = Problem::new(ProblemKind::HostUnreachable, host.clone(), "refused");
        first.since = t0;
        let again = Problem::new(ProblemKind::HostUnreachable, host.clone(), "timed out");
        let other = Problem::new(ProblemKind::Fetch, Subject::Repository, "x");
        let merged = carry_since(&[first], vec![again, other.clone()]);
        assert_eq!(merged[0].since, t0);
        assert_eq!(merged[0].message, "timed out");
        assert_eq!(merged[1].since, other.since);
    }

    #[test]
    fn hosts_carry_since_when_across_states() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let up = BTreeMap::from([("a".to_string(), HostHealth::Up)]);
        let s0 = host_statuses(&BTreeMap::new(), &up, t0);
        assert_eq!(s0["a"], HostStatus { state: HostState::Up, since: t0, reason: None });
        let t1 = t0 + Duration::from_secs(50);
        assert_eq!(host_statuses(&s0, &up, t1)["a"].since, t0, "still up since t0");
        let away = BTreeMap::from([(
            "a".to_string(),
            HostHealth::Unreachable { reason: "refused".into(), for_seconds: 5 },
        )]);
        let s1 = host_statuses(&s0, &away, t1);
        assert_eq!(s1["a"].state, HostState::Away);
        assert_eq!(s1["a"].since, t1 - Duration::from_secs(5));
        let down = BTreeMap::from([(
            "a".to_string(),
            HostHealth::Down { reason: "refused".into(), for_seconds: 35 },
        )]);
        let t2 = t1 + Duration::from_secs(30);
        let s2 = host_statuses(&s1, &down, t2);
        assert_eq!(s2["a"].state, HostState::Down);
        assert_eq!(s2["a"].since, t1 - Duration::from_secs(5), "away and down count alike");
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(
            host_statuses(&s2, &up, t3)["a"],
            HostStatus { state: HostState::Up, since: t3, reason: None }
        );
    }

    #[test]
    fn the_json_is_versioned_with_enums_and_rfc3339_times() {
        let writer = StatusWriter::new(Snapshot::new("/r", "main"));
        writer.event(EventKind::Host, "host a is back");
        writer.record_sync(record(SyncOutcome::Incomplete));
        let json = serde_json::to_value(&*writer.current()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["syncs"][0]["outcome"], "incomplete");
        assert_eq!(json["syncs"][0]["at"], "1970-01-01T00:00:00Z");
        assert_eq!(json["events"][0]["kind"], "host");
        assert_eq!(json["sync_totals"]["incomplete"], 1);
    }
}
