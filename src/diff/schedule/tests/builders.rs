//! Builders for the scheduler's tests: hosts, services, apps, models and observed states
//! written as briefly as a scenario reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::labels;
use crate::diff::observed::{
    HostObservation, HostState, Observed, ObservedContainer, ObservedObject, ReplicaKey,
};
use crate::diff::schedule::Schedule;
use crate::model::{
    App, Capacity, Constraint, Deploy, Endpoint, Fleet, Host, Model, Mount, MountSource,
    NodeAttribute, Placement, Platform, PortMapping, Protocol, Resources, Service, Settings,
    UpdateConfig, VolumeDef,
};

pub(super) const FLEET: &str = "prod";
pub(super) const GIB: u64 = 1 << 30;
pub(super) const MIB: u64 = 1 << 20;

pub(super) fn host(name: &str) -> Host {
    Host {
        name: name.into(),
        endpoint: Endpoint::Unix { path: "/var/run/docker.sock".into() },
        address: None,
        labels: BTreeMap::new(),
        capacity: Capacity::default(),
        platform: Platform::default(),
    }
}

pub(super) trait HostExt {
    fn label(self, key: &str, value: &str) -> Self;
    fn platform(self, os: &str, arch: &str) -> Self;
    fn capacity(self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self;
}

impl HostExt for Host {
    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    fn platform(mut self, os: &str, arch: &str) -> Self {
        self.platform = Platform { os: os.into(), arch: arch.into() };
        self
    }
    fn capacity(mut self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self {
        self.capacity = Capacity { millicpus, memory_bytes };
        self
    }
}

pub(super) fn service(name: &str, replicas: u32) -> Service {
    Service {
        name: name.into(),
        image: "nginx:1.27".into(),
        command: None,
        entrypoint: None,
        environment: BTreeMap::new(),
        ports: Vec::new(),
        expose: Vec::new(),
        networks: BTreeMap::new(),
        mounts: Vec::new(),
        configs: Vec::new(),
        secrets: Vec::new(),
        labels: BTreeMap::new(),
        healthcheck: None,
        depends_on: BTreeMap::new(),
        restart: None,
        user: None,
        working_dir: None,
        stop_grace_period_ms: None,
        stop_signal: None,
        hostname: None,
        extra_hosts: Vec::new(),
        pull_policy: None,
        deploy: Deploy {
            replicas,
            placement: Placement::default(),
            resources: Resources::default(),
            update_config: UpdateConfig::default(),
            rollback_config: UpdateConfig::default(),
            restart_policy: None,
        },
        routes: Vec::new(),
    }
}

/// `"node.labels.zone == a"` and friends, as Compose writes them.
pub(super) fn constraint(text: &str) -> Constraint {
    let (attribute, equal, value) = match text.split_once(" == ") {
        Some((attribute, value)) => (attribute, true, value),
        None => {
            let (attribute, value) = text.split_once(" != ").expect("== or !=");
            (attribute, false, value)
        }
    };
    let attribute = match attribute {
        "node.hostname" => NodeAttribute::Hostname,
        "node.platform.os" => NodeAttribute::Os,
        "node.platform.arch" => NodeAttribute::Arch,
        other => NodeAttribute::Label(
            other.strip_prefix("node.labels.").expect("a node attribute").into(),
        ),
    };
    Constraint { attribute, equal, value: value.into() }
}

pub(super) trait ServiceExt {
    fn constraint(self, text: &str) -> Self;
    fn max_per_node(self, max: u32) -> Self;
    fn reserve(self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self;
    /// `"8080"`, `"8080/udp"`, `"10.0.0.1:8080"`, or `"-"` for a port without `published`.
    fn publish(self, spec: &str) -> Self;
    fn mount_volume(self, key: &str) -> Self;
}

impl ServiceExt for Service {
    fn constraint(mut self, text: &str) -> Self {
        self.deploy.placement.constraints.push(constraint(text));
        self
    }
    fn max_per_node(mut self, max: u32) -> Self {
        self.deploy.placement.max_replicas_per_node = Some(max);
        self
    }
    fn reserve(mut self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self {
        self.deploy.resources.reservations.millicpus = millicpus;
        self.deploy.resources.reservations.memory_bytes = memory_bytes;
        self
    }
    fn publish(mut self, spec: &str) -> Self {
        let (rest, protocol) = match spec.strip_suffix("/udp") {
            Some(rest) => (rest, Protocol::Udp),
            None => (spec.trim_end_matches("/tcp"), Protocol::Tcp),
        };
        let (host_ip, published) = match rest.rsplit_once(':') {
            Some((ip, port)) => (Some(ip.to_string()), port),
            None => (None, rest),
        };
        self.ports.push(PortMapping {
            target: 80,
            published: (published != "-").then(|| published.parse().expect("a port")),
            host_ip,
            protocol,
        });
        self
    }
    fn mount_volume(mut self, key: &str) -> Self {
        self.mounts.push(Mount {
            source: MountSource::Volume { volume: key.into() },
            target: format!("/{key}"),
            read_only: false,
        });
        self
    }
}

pub(super) fn app(name: &str, services: impl IntoIterator<Item = Service>) -> App {
    App {
        name: name.into(),
        file: format!("apps/{name}/compose.yaml"),
        services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        configs: BTreeMap::new(),
        secrets: BTreeMap::new(),
    }
}

pub(super) trait AppExt {
    fn volume(self, key: &str, external: bool) -> Self;
}

impl AppExt for App {
    fn volume(mut self, key: &str, external: bool) -> Self {
        let def = VolumeDef {
            docker_name: format!("{}_{key}", self.name),
            external,
            driver: None,
            labels: BTreeMap::new(),
        };
        self.volumes.insert(key.into(), def);
        self
    }
}

pub(super) fn model(
    hosts: impl IntoIterator<Item = Host>,
    apps: impl IntoIterator<Item = App>,
) -> Model {
    Model {
        fleet: Fleet {
            hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
            settings: Settings { name: FLEET.into(), ..Settings::default() },
            variables: BTreeMap::new(),
        },
        apps: apps.into_iter().map(|a| (a.name.clone(), std::sync::Arc::new(a))).collect(),
    }
}

pub(super) fn hosts(names: &[&str]) -> Vec<Host> {
    names.iter().map(|name| host(name)).collect()
}

/// `"shop/web#2"` → its key.
pub(super) fn key(text: &str) -> ReplicaKey {
    let (app, rest) = text.split_once('/').expect("app/service#n");
    let (service, replica) = rest.split_once('#').expect("app/service#n");
    ReplicaKey { app: app.into(), service: service.into(), replica: replica.parse().unwrap() }
}

pub(super) fn container(fleet: &str, replica: &str) -> ObservedContainer {
    let key = key(replica);
    let labels = [
        (labels::FLEET, fleet.to_string()),
        (labels::APP, key.app.to_string()),
        (labels::SERVICE, key.service.to_string()),
        (labels::REPLICA, key.replica.to_string()),
    ];
    ObservedContainer {
        id: format!("id-{fleet}-{replica}"),
        name: format!("{}-{}-{}", key.app, key.service, key.replica),
        state: "running".into(),
        labels: labels.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        created: 0,
        health: None,
        ports: Vec::new(),
    }
}

pub(super) fn volume(fleet: &str, app: &str, key: &str) -> ObservedObject {
    let labels = [(labels::FLEET, fleet), (labels::APP, app), (labels::OBJECT, key)];
    ObservedObject {
        id: format!("{app}_{key}"),
        name: format!("{app}_{key}"),
        labels: labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// Observed state, built host by host.
#[derive(Default)]
pub(super) struct Obs(pub(super) Observed);

impl Obs {
    pub(super) fn state(&mut self, host: &str) -> &mut HostState {
        let observation = self
            .0
            .hosts
            .entry(host.into())
            .or_insert_with(|| HostObservation::Reachable(HostState::default()));
        match observation {
            HostObservation::Reachable(state) => state,
            HostObservation::Unreachable { .. } => panic!("{host} is unreachable"),
        }
    }
    /// This fleet's containers for `replicas` (`"shop/web#1"`) on `host`.
    pub(super) fn run(mut self, host: &str, replicas: &[&str]) -> Self {
        let state = self.state(host);
        state.containers.extend(replicas.iter().map(|r| container(FLEET, r)));
        self
    }
    /// A container labelled for `fleet` (any fleet) holding `replica`.
    pub(super) fn labelled(mut self, host: &str, fleet: &str, replica: &str) -> Self {
        self.state(host).containers.push(container(fleet, replica));
        self
    }
    pub(super) fn unlabelled(mut self, host: &str) -> Self {
        let bare = ObservedContainer {
            id: "bare".into(),
            name: "hand-made".into(),
            state: "running".into(),
            labels: BTreeMap::new(),
            created: 0,
            health: None,
            ports: Vec::new(),
        };
        self.state(host).containers.push(bare);
        self
    }
    pub(super) fn volume(mut self, host: &str, fleet: &str, app: &str, key: &str) -> Self {
        self.state(host).volumes.push(volume(fleet, app, key));
        self
    }
    /// `host` observed, with nothing of this fleet on it.
    pub(super) fn empty(mut self, host: &str) -> Self {
        self.state(host);
        self
    }
    pub(super) fn unreachable(mut self, host: &str) -> Self {
        let reason = "connection refused".to_string();
        self.0.hosts.insert(host.into(), HostObservation::unreachable(reason));
        self
    }
    /// `host` unreachable now, remembered as it was built so far; `down` past the grace.
    pub(super) fn lost(mut self, host: &str, down: bool) -> Self {
        let last_seen = match self.0.hosts.remove(host) {
            Some(HostObservation::Reachable(state)) => Some(state),
            _ => None,
        };
        let reason = "connection refused".to_string();
        self.0.hosts.insert(host.into(), HostObservation::Unreachable { reason, last_seen, down });
        self
    }
    /// Marks the newest-built container on `host` as created at `when`.
    pub(super) fn created(mut self, host: &str, when: i64) -> Self {
        if let Some(container) = self.state(host).containers.last_mut() {
            container.created = when;
        }
        self
    }
    pub(super) fn build(self) -> Observed {
        self.0
    }
}

pub(super) fn nothing() -> Observed {
    Observed::default()
}

/// What applying `schedule` would leave on the hosts (every host reachable), plus the
/// volumes of `before`.
pub(super) fn observed_from(model: &Model, schedule: &Schedule, before: &Observed) -> Observed {
    let mut obs = Obs::default();
    for name in model.fleet.hosts.keys() {
        obs.state(name);
    }
    for (replica, host) in &schedule.assignments {
        obs = obs.run(host, &[&replica.to_string()]);
    }
    for (name, observation) in &before.hosts {
        if let HostObservation::Reachable(state) = observation {
            obs.state(name).volumes.extend(state.volumes.iter().cloned());
        }
    }
    obs.build()
}

/// `["shop/web#1 a", ...]`
pub(super) fn layout(schedule: &Schedule) -> Vec<String> {
    schedule.assignments.iter().map(|(replica, host)| format!("{replica} {host}")).collect()
}

/// `["shop/web#3: why", ...]`
pub(super) fn reasons(schedule: &Schedule) -> Vec<String> {
    schedule.unplaced.iter().map(|u| format!("{}: {}", u.replica, u.reason)).collect()
}

pub(super) fn hosts_used(schedule: &Schedule) -> Vec<&str> {
    let used: BTreeSet<&str> = schedule.assignments.values().map(String::as_str).collect();
    used.into_iter().collect()
}
