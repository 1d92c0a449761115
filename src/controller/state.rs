//! What the controller knows, in one place: the revision deployed and the one wanted, every
//! host's state, every service's replicas, current errors, and the recent syncs and events.
//!
//! The reconcile loop writes it through [`Store`]'s methods; the status writer and the web
//! layer take a [`Snapshot`] (a clone) and never reach into the loop.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::time::SystemTime;

use serde::Serialize;

use super::liveness::HostHealth;
use crate::diff::{HostObservation, Observed, Summary};
use crate::model::Model;

/// How many syncs and events are kept.
pub const HISTORY: usize = 50;
pub const EVENTS: usize = 200;

/// A commit, as people need to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionInfo {
    pub commit: String,
    pub author: String,
    pub message: String,
}

/// The revision running on the hosts: the last one applied with success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub revision: RevisionInfo,
    /// When its apply finished, RFC 3339.
    pub at: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadState {
    /// Deployed (or being deployed).
    Deployed,
    /// It does not validate: the last good revision keeps running.
    Invalid,
    /// Its rollout failed (and was rolled back): not retried until a new commit arrives.
    Failed,
}

/// One service's replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    /// Per host: running and healthy replicas there.
    pub hosts: BTreeMap<String, HostReplicas>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostReplicas {
    pub running: u32,
    pub healthy: u32,
}

/// One finished sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRecord {
    pub at: String,
    pub reasons: String,
    pub commit: Option<String>,
    pub outcome: String,
    /// `in_sync`, `applied`, `incomplete` or `nothing_deployable`.
    pub kind: String,
    pub millis: u64,
}

/// Something that happened, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    pub at: String,
    pub message: String,
}

/// Everything the status page, the status files and the API show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub repository: String,
    pub branch: String,
    pub deployed: Option<Deployed>,
    pub head: Option<Head>,
    /// Problems now: invalid head, failed rollout, unreachable hosts, unplaced replicas,
    /// fetch errors.
    pub errors: Vec<String>,
    pub hosts: BTreeMap<String, HostHealth>,
    /// app → service → replicas.
    pub services: BTreeMap<String, BTreeMap<String, ServiceStatus>>,
    pub syncs: VecDeque<SyncRecord>,
    pub events: VecDeque<EventRecord>,
    /// Syncs since the controller started, by outcome (`in_sync`, `applied`, `incomplete`,
    /// `nothing_deployable`), for metrics.
    pub sync_totals: BTreeMap<String, u64>,
}

/// The shared store.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Snapshot>,
}

/// Now, in RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Store {
    pub fn new(repository: &str, branch: &str) -> Self {
        let snapshot = Snapshot {
            repository: repository.to_string(),
            branch: branch.to_string(),
            ..Snapshot::default()
        };
        Store { inner: RwLock::new(snapshot) }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state under the lock.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        change(&mut self.inner.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// The branch head last fetched, if any.
    pub fn head_commit(&self) -> Option<String> {
        let snapshot = self.inner.read().unwrap_or_else(|e| e.into_inner());
        snapshot.head.as_ref().map(|h| h.revision.commit.clone())
    }

    pub fn event(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(event = %message, "event");
        self.update(|s| {
            s.events.push_front(EventRecord { at: now_rfc3339(), message });
            s.events.truncate(EVENTS);
        });
    }

    pub fn record_sync(&self, record: SyncRecord) {
        self.update(|s| {
            *s.sync_totals.entry(record.kind.clone()).or_default() += 1;
            s.syncs.push_front(record);
            s.syncs.truncate(HISTORY);
        });
    }
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
            let Some(status) = services.get_mut(&key.app).and_then(|s| s.get_mut(&key.service))
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
