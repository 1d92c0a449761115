//! The desired state per host: the model, scheduled. For every host, the containers (with
//! their canonical spec and hash), networks and volumes that should exist there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::observed::{Observed, ReplicaKey};
use super::schedule::{Unplaced, schedule};
use super::spec::ContainerSpec;
use crate::model::{Model, MountSource, PullPolicy};

/// Everything that should exist, per host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// The value of the fleet label.
    pub fleet: String,
    /// The commit the model was read from, when it came from Git.
    pub revision: Option<String>,
    pub hosts: BTreeMap<String, DesiredHost>,
    /// Replicas the scheduler could not place, with why.
    pub unplaced: Vec<Unplaced>,
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
    /// Schedules `model` against what `observed` shows and lays the result out per host.
    pub fn new(model: &Model, observed: &Observed, revision: Option<String>) -> Self {
        let schedule = schedule(model, observed);
        let mut hosts: BTreeMap<String, DesiredHost> =
            model.fleet.hosts.keys().map(|h| (h.clone(), DesiredHost::default())).collect();
        // One spec and hash per service, shared by its replicas.
        type SharedSpec = (Arc<ContainerSpec>, Arc<str>, Arc<[String]>);
        let mut specs: BTreeMap<(&str, &str), SharedSpec> = BTreeMap::new();
        let mut placed: std::collections::BTreeSet<(&str, &str, &str)> = Default::default();
        for (key, host_name) in &schedule.assignments {
            let (Some(app), Some(host)) = (model.apps.get(&key.app), hosts.get_mut(host_name))
            else {
                continue;
            };
            let Some(service) = app.services.get(&key.service) else { continue };
            let (spec, spec_hash, depends_on) = specs
                .entry((app.name.as_str(), service.name.as_str()))
                .or_insert_with(|| {
                    let spec = ContainerSpec::of(app, service);
                    let hash: Arc<str> = spec.hash().into();
                    (Arc::new(spec), hash, service.depends_on.keys().cloned().collect())
                })
                .clone();
            // A service's networks and volumes are the same for all its replicas on a host.
            let first_on_host =
                placed.insert((host_name.as_str(), app.name.as_str(), service.name.as_str()));
            for network_key in service.networks.keys().filter(|_| first_on_host) {
                if let Some(network) = app.networks.get(network_key).filter(|n| !n.external) {
                    host.networks.insert(
                        (app.name.clone(), network_key.clone()),
                        DesiredObject {
                            name: network.docker_name.clone(),
                            driver: network.driver.clone(),
                            internal: network.internal,
                            labels: network.labels.clone(),
                        },
                    );
                }
            }
            for mount in service.mounts.iter().filter(|_| first_on_host) {
                let MountSource::Volume { volume } = &mount.source else { continue };
                if let Some(def) = app.volumes.get(volume).filter(|v| !v.external) {
                    host.volumes.insert(
                        (app.name.clone(), volume.clone()),
                        DesiredObject {
                            name: def.docker_name.clone(),
                            driver: def.driver.clone(),
                            internal: false,
                            labels: def.labels.clone(),
                        },
                    );
                }
            }
            host.containers.insert(
                key.clone(),
                DesiredContainer {
                    name: container_name(key),
                    spec,
                    spec_hash,
                    pull_policy: service.pull_policy.unwrap_or(model.fleet.settings.pull_policy),
                    depends_on,
                },
            );
        }
        Desired {
            fleet: model.fleet.settings.name.clone(),
            revision,
            hosts,
            unplaced: schedule.unplaced,
            apps: model.apps.len(),
            allow_empty: model.fleet.settings.allow_empty,
        }
    }
}
