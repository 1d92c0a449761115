//! The desired state per host: the model, scheduled. For every host, the containers (with
//! their canonical spec and hash), networks and volumes that should exist there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::observed::{Observed, ReplicaKey};
use super::ownership;
use super::platform::HostPlatform;
use super::schedule::{Unplaced, place};
use super::spec::ContainerSpec;
use super::windows;
use crate::model::{App, Model, MountSource, NetworkDef, PullPolicy, Service, VolumeDef};

/// Everything that should exist, per host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// The value of the fleet label.
    pub fleet: String,
    /// The commit the model was read from, when it came from Git.
    pub revision: Option<String>,
    /// The id of the repository deployed from (the `io.gitfleet.repository` label), if known.
    pub repository: Option<String>,
    /// Hosts where another repository deployed this fleet, with why: nothing is planned
    /// there (see [`super::ownership`]).
    pub refused_hosts: BTreeMap<String, String>,
    pub hosts: BTreeMap<String, DesiredHost>,
    /// Replicas the scheduler could not place, with why.
    pub unplaced: Vec<Unplaced>,
    /// Every host's platform as planned with (its declaration checked against its engine),
    /// with notes on what was translated for it.
    pub platforms: BTreeMap<String, HostPlatform>,
    /// How many apps the model has; none at all is refused against a fleet with running
    /// apps unless `allow_empty` ([`super::plan::plan`]).
    #[serde(default)]
    pub apps: usize,
    /// `settings.allow_empty` of the model.
    #[serde(default)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesiredHost {
    pub containers: BTreeMap<ReplicaKey, DesiredContainer>,
    /// Keyed by `(app, network key)`.
    pub networks: BTreeMap<(String, String), DesiredObject>,
    /// Keyed by `(app, volume key)`.
    pub volumes: BTreeMap<(String, String), DesiredObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredContainer {
    /// `<app>-<service>-<replica>`.
    pub name: String,
    /// Shared by every replica of a service.
    pub spec: Arc<ContainerSpec>,
    pub spec_hash: Arc<str>,
    pub pull_policy: PullPolicy,
    /// Services of the same app this one waits for, for ordering.
    pub depends_on: Arc<[String]>,
}

/// A network or volume to exist on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredObject {
    pub name: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// The deterministic container name of a replica.
pub fn container_name(key: &ReplicaKey) -> String {
    format!("{}-{}-{}", key.app, key.service, key.replica)
}

impl Desired {
    /// [`Desired::new`] for the repository `repository` (its `git::repository_id`): hosts
    /// where another repository deployed this fleet are refused, and no replica is placed
    /// there; everything created carries the repository label.
    pub fn for_repository(
        model: &Model,
        observed: &Observed,
        revision: Option<String>,
        repository: Option<String>,
    ) -> Self {
        let Some(ours) = repository else { return Self::new(model, observed, revision) };
        let refused = ownership::refusals(observed, &model.fleet.settings.name, &ours);
        let mut desired =
            Self::new(model, &ownership::without_refused(observed, &refused), revision);
        desired.repository = Some(ours);
        desired.refused_hosts = refused;
        desired
    }

    /// Schedules `model` against what `observed` shows and lays the result out per host.
    pub fn new(model: &Model, observed: &Observed, revision: Option<String>) -> Self {
        let mut placement = place(model, observed);
        let mut layouts: Vec<Layout> = placement
            .platforms
            .iter()
            .map(|p| Layout { on_windows: p.is_windows(), ..Layout::default() })
            .collect();
        // Replicas come sorted by service: one spec and hash per service and OS (Windows
        // hosts get a translated one), shared by its replicas, and its networks and volumes
        // once per host it runs on.
        for replicas in placement.placed.chunk_by(|a, b| a.0 == b.0) {
            let index = replicas[0].0;
            let (app, service) = placement.services[index];
            let shared = |spec: ContainerSpec| {
                let spec_hash: Arc<str> = spec.hash().into();
                (Arc::new(spec), spec_hash)
            };
            let linux = ContainerSpec::of(app, service);
            let mut windows_spec: Option<(Arc<ContainerSpec>, Arc<str>, Vec<String>)> = None;
            let on_windows = |h: usize| layouts[h].on_windows;
            if replicas.iter().any(|&(_, _, h)| on_windows(h)) {
                let (translated, said) = windows::translate(&linux);
                let (spec, hash) = shared(translated);
                let service_in_app = format!("{}/{}", app.name, service.name);
                let notes = said.iter().map(|n| format!("{service_in_app}: {n}")).collect();
                windows_spec = Some((spec, hash, notes));
            }
            let (linux_spec, linux_hash) = shared(linux);
            let depends_on: Arc<[String]> = service.depends_on.keys().cloned().collect();
            let pull_policy = service.pull_policy.unwrap_or(model.fleet.settings.pull_policy);
            for &(_, replica, h) in replicas {
                let layout = &mut layouts[h];
                let (spec, spec_hash) = match (&windows_spec, layout.on_windows) {
                    (Some((spec, hash, _)), true) => (spec, hash),
                    _ => (&linux_spec, &linux_hash),
                };
                if layout.last_service != Some(index) {
                    layout.last_service = Some(index);
                    layout.add_objects(app, service);
                    if let (Some((_, _, notes)), true) = (&windows_spec, layout.on_windows) {
                        let platform = &mut placement.platforms[h];
                        for note in notes {
                            if !platform.notes.contains(note) {
                                platform.notes.push(note.clone());
                            }
                        }
                    }
                }
                let key =
                    ReplicaKey { app: app.name.clone(), service: service.name.clone(), replica };
                let container = DesiredContainer {
                    name: container_name(&key),
                    spec: spec.clone(),
                    spec_hash: spec_hash.clone(),
                    pull_policy,
                    depends_on: depends_on.clone(),
                };
                layout.containers.push((key, container));
            }
        }
        let hosts = placement
            .hosts
            .iter()
            .zip(layouts)
            .map(|(name, layout)| (name.to_string(), layout.into_host()))
            .collect();
        let platforms =
            placement.hosts.iter().map(|name| name.to_string()).zip(placement.platforms).collect();
        Desired {
            fleet: model.fleet.settings.name.clone(),
            revision,
            repository: None,
            refused_hosts: BTreeMap::new(),
            hosts,
            unplaced: placement.unplaced,
            platforms,
            apps: model.apps.len(),
            allow_empty: model.fleet.settings.allow_empty,
        }
    }
}

/// One host's desired objects while they are laid out.
#[derive(Default)]
struct Layout<'m> {
    /// In replica order.
    containers: Vec<(ReplicaKey, DesiredContainer)>,
    /// `(app, key, definition)`, with repeats (services of one app share networks).
    networks: Vec<(&'m str, &'m str, &'m NetworkDef)>,
    volumes: Vec<(&'m str, &'m str, &'m VolumeDef)>,
    /// The service whose networks and volumes were added last.
    last_service: Option<usize>,
    /// The host runs Windows: its specs are translated, its networks default to `nat`.
    on_windows: bool,
}

impl<'m> Layout<'m> {
    /// The app's own (not external) networks and named volumes `service` uses.
    fn add_objects(&mut self, app: &'m App, service: &'m Service) {
        for key in service.networks.keys() {
            if let Some((key, network)) = app.networks.get_key_value(key) {
                if !network.external {
                    self.networks.push((&app.name, key, network));
                }
            }
        }
        for mount in &service.mounts {
            let MountSource::Volume { volume } = &mount.source else { continue };
            if let Some((key, def)) = app.volumes.get_key_value(volume) {
                if !def.external {
                    self.volumes.push((&app.name, key, def));
                }
            }
        }
    }

    fn into_host(mut self) -> DesiredHost {
        self.networks.sort_unstable_by_key(|&(app, key, _)| (app, key));
        self.networks.dedup_by_key(|&mut (app, key, _)| (app, key));
        self.volumes.sort_unstable_by_key(|&(app, key, _)| (app, key));
        self.volumes.dedup_by_key(|&mut (app, key, _)| (app, key));
        DesiredHost {
            // Sorted input: the maps are built in one pass.
            containers: self.containers.into_iter().collect(),
            networks: self
                .networks
                .into_iter()
                .map(|(app, key, network)| {
                    let driver = match self.on_windows {
                        true => windows::network_driver(network.driver.as_deref()),
                        false => network.driver.clone(),
                    };
                    let object = DesiredObject {
                        name: network.docker_name.clone(),
                        driver,
                        internal: network.internal,
                        labels: network.labels.clone(),
                    };
                    ((app.to_string(), key.to_string()), object)
                })
                .collect(),
            volumes: self
                .volumes
                .into_iter()
                .map(|(app, key, def)| {
                    let object = DesiredObject {
                        name: def.docker_name.clone(),
                        driver: def.driver.clone(),
                        internal: false,
                        labels: def.labels.clone(),
                    };
                    ((app.to_string(), key.to_string()), object)
                })
                .collect(),
        }
    }
}
