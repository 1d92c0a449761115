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
use std::sync::Arc;
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

/// The `(app, service)` a replica's row is listed under: the key's own shared names.
fn service_row(key: &ReplicaKey) -> (Arc<str>, Arc<str>) {
    (key.app.clone(), key.service.clone())
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
    let mut rows: BTreeMap<(Arc<str>, Arc<str>), Vec<ReplicaStatus>> = BTreeMap::new();
    for (host, observation) in &observed.hosts {
        let HostObservation::Reachable(state) = observation else { continue };
        for container in &state.containers {
            let Some(key) = container.replica_key(fleet) else { continue };
            let Some(status) = services.get(&*key.app).and_then(|s| s.get(&*key.service)) else {
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
            rows.entry(service_row(&key)).or_default().push(ReplicaStatus {
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
        rows.entry(service_row(&key)).or_default().push(ReplicaStatus {
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
        rows.entry(service_row(key)).or_default().push(ReplicaStatus {
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
        let Some(status) = services.get_mut(&*app).and_then(|s| s.get_mut(&*service)) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::state::services;
    use crate::diff::platform::EngineInfo;
    use crate::diff::{HostState, ObservedContainer};
    use crate::model::SourceTree;

    fn model(replicas: u32) -> Model {
        let fleet = "hosts:\n  a:\n    endpoint: tcp://10.250.153.2:2375\n    capacity: {cpus: 2, memory: 1g}\n  b:\n    endpoint: tcp://10.250.153.3:2375\n";
        let shop = format!(
            "services:\n  web:\n    image: web:1\n    deploy:\n      replicas: {replicas}\n      resources: {{reservations: {{cpus: '0.5', memory: 256m}}}}\n  db:\n    image: db:1\n"
        );
        let tree: SourceTree = [("fleet.yaml", fleet), ("apps/shop/compose.yaml", shop.as_str())]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
        crate::model::load(&tree).unwrap()
    }

    fn container(
        service: &str,
        replica: u32,
        state: &str,
        health: Option<&str>,
    ) -> ObservedContainer {
        let spec = format!("{{\"image\":\"{service}:1\",\"env\":{{}}}}");
        let labels = [
            (labels::FLEET, "default".to_string()),
            (labels::APP, "shop".into()),
            (labels::SERVICE, service.into()),
            (labels::REPLICA, replica.to_string()),
            (labels::SPEC, spec),
            (labels::REVISION, "0123456789abcdef".into()),
        ];
        ObservedContainer {
            id: format!("{service}{replica}"),
            name: format!("shop-{service}-{replica}"),
            state: state.into(),
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            created: 1_700_000_000,
            health: health.map(String::from),
            ports: Vec::new(),
        }
    }

    fn observed(containers: Vec<ObservedContainer>) -> Observed {
        let engine = EngineInfo { server_version: "20.10.24".into(), ..EngineInfo::default() };
        let a = HostState { containers, engine: Some(engine), ..HostState::default() };
        Observed {
            hosts: [
                ("a".to_string(), HostObservation::Reachable(a)),
                ("b".to_string(), HostObservation::unreachable("refused")),
            ]
            .into(),
        }
    }

    #[test]
    fn each_replica_gets_a_row_with_its_image_revision_and_phase() {
        let model = model(3);
        let observed = observed(vec![
            container("web", 1, "running", Some("healthy")),
            container("web", 2, "exited", None),
            container("web", 3, "running", Some("starting")),
            container("db", 1, "running", None),
        ]);
        let mut all = services(&model, &observed);
        let restarts = |k: &ReplicaKey| if k.replica == 2 { 4 } else { 0 };
        let context = Context { restarts: Some(&restarts), ..Context::default() };
        fill(&mut all, &model, &observed, &context);
        let web = &all["shop"]["web"];
        let phases: Vec<_> = web.replicas.iter().map(|r| (r.replica, r.phase)).collect();
        assert_eq!(
            phases,
            [(1, ReplicaPhase::Running), (2, ReplicaPhase::Failing), (3, ReplicaPhase::Starting)]
        );
        let first = &web.replicas[0];
        assert_eq!(first.host.as_deref(), Some("a"));
        assert_eq!(first.image.as_deref(), Some("web:1"));
        assert_eq!(first.revision.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            first.created,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(web.replicas[1].restarts, 4);
        assert_eq!(all["shop"]["db"].replicas.len(), 1);
    }

    #[test]
    fn rolling_rolled_back_and_unplaced_stand_out() {
        let model = model(2);
        let observed = observed(vec![container("web", 1, "running", None)]);
        let key = |replica| ReplicaKey { app: "shop".into(), service: "web".into(), replica };
        let unplaced = [Unplaced { replica: key(2), reason: "no host has 0.5 CPUs free".into() }];
        let rolled = BTreeSet::from(["shop/web".to_string()]);
        let mut all = services(&model, &observed);
        let context =
            Context { unplaced: &unplaced, rolled_back: Some(&rolled), ..Context::default() };
        fill(&mut all, &model, &observed, &context);
        let web = &all["shop"]["web"].replicas;
        assert_eq!(web[0].phase, ReplicaPhase::RolledBack);
        assert_eq!(web[1].phase, ReplicaPhase::Unplaced);
        assert_eq!(web[1].host, None);
        assert_eq!(web[1].reason.as_deref(), Some("no host has 0.5 CPUs free"));
    }

    #[test]
    fn rows_are_capped_keeping_those_that_need_attention() {
        let n = ROWS_PER_SERVICE as u32 + 5;
        let model = model(n);
        let state = |i| if i == n { "exited" } else { "running" };
        let observed = observed((1..=n).map(|i| container("web", i, state(i), None)).collect());
        let mut all = services(&model, &observed);
        fill(&mut all, &model, &observed, &Context::default());
        let web = &all["shop"]["web"];
        assert_eq!(web.replicas.len(), ROWS_PER_SERVICE);
        assert_eq!(web.more_replicas, 5);
        assert!(web.replicas.iter().any(|r| r.replica == n && r.phase == ReplicaPhase::Failing));
        assert!(web.replicas.windows(2).all(|w| w[0].replica < w[1].replica), "in order");
    }

    #[test]
    fn hosts_count_containers_and_reservations_of_running_replicas() {
        let model = model(2);
        let observed = observed(vec![
            container("web", 1, "running", None),
            container("web", 2, "exited", None),
            container("db", 1, "running", None),
        ]);
        let usage = host_usage(&model, &observed);
        let a = &usage["a"];
        assert_eq!(a.engine_version.as_deref(), Some("20.10.24"));
        assert_eq!(a.containers, 3);
        assert_eq!(a.reserved_millicpus, 500);
        assert_eq!(a.reserved_memory_bytes, 256 << 20);
        assert!(!usage.contains_key("b"), "an unreachable host has no usage");
    }
}
