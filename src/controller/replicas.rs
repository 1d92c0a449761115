//! Per-replica rows and per-host usage for the status snapshot, from the observation the
//! loop already made (no Docker call of its own). Pure.
//!
//! * [`fill`] puts each service's replicas (host, Docker state and health, image, revision,
//!   creation time, restarts gitfleet made, and a [`ReplicaPhase`]) into its
//!   [`ServiceStatus`], at most [`ROWS_PER_SERVICE`] of them (those that need attention
//!   first), with the number left out.
//! * [`host_usage`] counts each host's fleet containers, the reservations of the replicas
//!   running there, and the engine's version.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::state::{ServiceStatus, rfc3339};
use crate::diff::schedule::Unplaced;
use crate::diff::{HostObservation, Observed, Plan, ReplicaKey, Step, labels};
use crate::model::Model;

/// How many replica rows a service keeps in the snapshot; the rest are counted.
pub const ROWS_PER_SERVICE: usize = 20;

/// What a replica is doing, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaPhase {
    /// Running, healthy (or without a health check).
    Running,
    /// Running, its health check not decided yet.
    Starting,
    /// The sync running now replaces or creates it.
    Rolling,
    /// Its service's rollout failed its health gate and was rolled back: it runs the last
    /// good revision.
    RolledBack,
    /// Not running, or unhealthy.
    Failing,
    /// No host can take it.
    Unplaced,
}

impl ReplicaPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaPhase::Running => "running",
            ReplicaPhase::Starting => "starting",
            ReplicaPhase::Rolling => "rolling",
            ReplicaPhase::RolledBack => "rolled_back",
            ReplicaPhase::Failing => "failing",
            ReplicaPhase::Unplaced => "unplaced",
        }
    }

    /// Shown before the others when a service has more replicas than rows.
    fn needs_attention(self) -> bool {
        !matches!(self, ReplicaPhase::Running)
    }
}

/// One replica as observed (or, when unplaced or about to be created, as planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    pub replica: u32,
    /// Where it runs (`None`: unplaced).
    pub host: Option<String>,
    /// Docker's state (`running`, `exited`, ...), `planned` for one the running sync creates,
    /// `unplaced`.
    pub state: String,
    /// Docker's health check status, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// The image reference as the model named it (from the container's spec label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The commit that created the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When Docker created the container (gitfleet replaces a stopped replica, so this is
    /// also when it last started, unless a restart policy restarted it in place).
    #[serde(serialize_with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub created: Option<SystemTime>,
    /// How often gitfleet restarted it lately (its crash-loop count).
    pub restarts: u32,
    pub phase: ReplicaPhase,
    /// Why it is unplaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a host holds of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostUsage {
    /// The engine's version (`/info`'s `ServerVersion`), when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The fleet's containers there, in any state.
    pub containers: u32,
    /// The reservations of the fleet's replicas running there.
    pub reserved_millicpus: u64,
    pub reserved_memory_bytes: u64,
}

/// What [`fill`] needs besides the model and the observation.
#[derive(Default)]
pub struct Context<'a> {
    /// The plan the running sync is about to carry out: the replicas it replaces or creates
    /// are `rolling`. `None` once the sync applied it.
    pub applying: Option<&'a Plan>,
    /// Replicas no host can take.
    pub unplaced: &'a [Unplaced],
    /// `app/service` of services whose rollout was rolled back (while the failed revision is
    /// the head).
    pub rolled_back: Option<&'a BTreeSet<String>>,
    /// Restarts gitfleet made per replica.
    pub restarts: Option<&'a dyn Fn(&ReplicaKey) -> u32>,
}

#[derive(Deserialize)]
struct ImageOnly {
    image: String,
}

/// The image of a container from its `io.gitfleet.spec` label.
fn image_of(labels: &BTreeMap<String, String>) -> Option<String> {
    let spec = labels.get(labels::SPEC)?;
    serde_json::from_str::<ImageOnly>(spec).ok().map(|s| s.image)
}

/// Adds each service's replica rows to `services` (as [`super::state::services`] made it).
pub fn fill(
    services: &mut BTreeMap<String, BTreeMap<String, ServiceStatus>>,
    model: &Model,
    observed: &Observed,
    context: &Context<'_>,
) {
    let fleet = model.fleet.settings.name.as_str();
    let mut rolling: BTreeMap<(String, ReplicaKey), &'static str> = BTreeMap::new();
    if let Some(plan) = context.applying {
        for host in &plan.hosts {
            for step in &host.steps {
                match step {
                    Step::ReplaceContainer { replica, .. } => {
                        rolling.insert((host.host.clone(), replica.clone()), "replace");
                    }
                    Step::CreateContainer { replica, .. } => {
                        rolling.insert((host.host.clone(), replica.clone()), "create");
                    }
                    _ => {}
                }
            }
        }
    }
    let mut rows: BTreeMap<(String, String), Vec<ReplicaStatus>> = BTreeMap::new();
    for (host, observation) in &observed.hosts {
        let HostObservation::Reachable(state) = observation else { continue };
        for container in &state.containers {
            let Some(key) = container.replica_key(fleet) else { continue };
            let Some(status) = services.get(&key.app).and_then(|s| s.get(&key.service)) else {
                continue;
            };
            if key.replica > status.desired {
                continue;
            }
            let health = container.health.clone();
            let service = key.service_in_app();
            let phase = if rolling.remove(&(host.clone(), key.clone())).is_some() {
                ReplicaPhase::Rolling
            } else if !container.is_running() || health.as_deref() == Some("unhealthy") {
                ReplicaPhase::Failing
            } else if context.rolled_back.is_some_and(|r| r.contains(&service)) {
                ReplicaPhase::RolledBack
            } else if health.as_deref() == Some("starting") {
                ReplicaPhase::Starting
            } else {
                ReplicaPhase::Running
            };
            let created = u64::try_from(container.created)
                .ok()
                .filter(|s| *s > 0)
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
            rows.entry((key.app.clone(), key.service.clone())).or_default().push(ReplicaStatus {
                replica: key.replica,
                host: Some(host.clone()),
                state: container.state.clone(),
                health,
                image: image_of(&container.labels),
                revision: container.labels.get(labels::REVISION).cloned(),
                created,
                restarts: context.restarts.map_or(0, |r| r(&key)),
                phase,
                reason: None,
            });
        }
    }
    // Replicas the running sync creates (not observed yet).
    for ((host, key), what) in rolling {
        if what != "create" {
            continue;
        }
        rows.entry((key.app.clone(), key.service.clone())).or_default().push(ReplicaStatus {
            replica: key.replica,
            host: Some(host),
            state: "planned".into(),
            health: None,
            image: None,
            revision: None,
            created: None,
            restarts: 0,
            phase: ReplicaPhase::Rolling,
            reason: None,
        });
    }
    for unplaced in context.unplaced {
        let key = &unplaced.replica;
        rows.entry((key.app.clone(), key.service.clone())).or_default().push(ReplicaStatus {
            replica: key.replica,
            host: None,
            state: "unplaced".into(),
            health: None,
            image: None,
            revision: None,
            created: None,
            restarts: 0,
            phase: ReplicaPhase::Unplaced,
            reason: Some(unplaced.reason.clone()),
        });
    }
    for ((app, service), mut list) in rows {
        let Some(status) = services.get_mut(&app).and_then(|s| s.get_mut(&service)) else {
            continue;
        };
        if list.len() > ROWS_PER_SERVICE {
            // Those that need attention are kept first.
            list.sort_by_key(|r| !r.phase.needs_attention());
            status.more_replicas = (list.len() - ROWS_PER_SERVICE) as u32;
            list.truncate(ROWS_PER_SERVICE);
        }
        list.sort_by(|a, b| (a.replica, &a.host).cmp(&(b.replica, &b.host)));
        status.replicas = list;
    }
}

/// Each reachable host's fleet containers, the reservations of its running replicas, and
/// its engine's version.
pub fn host_usage(model: &Model, observed: &Observed) -> BTreeMap<String, HostUsage> {
    let fleet = model.fleet.settings.name.as_str();
    let mut usage = BTreeMap::new();
    for (host, observation) in &observed.hosts {
        let HostObservation::Reachable(state) = observation else { continue };
        let mut host_usage = HostUsage {
            engine_version: state
                .engine
                .as_ref()
                .map(|e| e.server_version.clone())
                .filter(|v| !v.is_empty()),
            ..HostUsage::default()
        };
        for container in &state.containers {
            let Some((app, service, _)) = container.replica_slot(fleet) else { continue };
            host_usage.containers += 1;
            if !container.is_running() {
                continue;
            }
            let Some(service) = model.apps.get(app).and_then(|a| a.services.get(service)) else {
                continue;
            };
            let reservations = service.deploy.resources.reservations;
            host_usage.reserved_millicpus += reservations.millicpus.unwrap_or(0);
            host_usage.reserved_memory_bytes += reservations.memory_bytes.unwrap_or(0);
        }
        usage.insert(host.clone(), host_usage);
    }
    usage
}
