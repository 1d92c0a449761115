//! What gitfleet saw on the hosts: plain data, built by `hosts::observe` from one labelled
//! list call per object kind and host, and consumed by the scheduler and the planner.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::labels;
pub use super::platform::{EngineInfo, ImagePlatform};

/// Every registered host's observation, keyed by host name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub hosts: BTreeMap<String, HostObservation>,
}

/// One host: either what runs there, or why we could not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HostObservation {
    Reachable(HostState),
    Unreachable {
        reason: String,
        /// What the host ran when it was last reachable, if someone remembers (the
        /// controller does; a one-off `plan` does not). The scheduler keeps replicas where
        /// they were last seen, and knows which volumes the host holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<HostState>,
        /// Away for longer than the controller's grace period: its replicas are scheduled on
        /// other hosts, except those pinned there by a named volume.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        down: bool,
    },
}

impl HostObservation {
    /// An unreachable host nobody remembers.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        HostObservation::Unreachable { reason: reason.into(), last_seen: None, down: false }
    }
}

/// The fleet-labelled objects on one host, and what its engine says about its platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedObject>,
    pub volumes: Vec<ObservedObject>,
    /// The engine's `/info` (OS, architecture, version, isolation), read once per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    /// The model's images present on this host, by reference as the model names them, with
    /// their platform (image inspect). Only looked up in fleets with a non-Linux host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImagePlatform>,
    /// What a registry says about the model's images that no host has (the platforms of the
    /// manifest list), asked through this host's engine (`GET /distribution/{name}/json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_images: BTreeMap<String, Vec<ImagePlatform>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    /// Docker's state: `running`, `exited`, `created`, `restarting`, `paused`, `dead`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// When Docker created it, in seconds since the epoch: of two copies of one replica (a
    /// host back after failover), the newer one is kept.
    #[serde(default)]
    pub created: i64,
    /// Docker's health check status (`healthy`, `unhealthy`, `starting`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Container ports published on the host, as Docker reports them (the router reads the
    /// host port Docker chose for a route's port here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
}

/// One published port of a container: `host_port` on the host's `host_ip` (empty, `0.0.0.0`
/// or `::` for every address) reaches `container_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A network or a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedObject {
    /// Docker's id (networks) or name (volumes, whose name is their id).
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Where a replica belongs, read back from a container's labels.
///
/// The names are shared (`Arc<str>`): [`Desired::new`](super::Desired::new) makes one per app
/// and service and every replica's key (and every step naming it) points at them, so a key
/// costs no allocation to make or to clone. They order, compare and serialise as strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub app: Arc<str>,
    pub service: Arc<str>,
    pub replica: u32,
}

impl ReplicaKey {
    /// `app/service`, without the replica number.
    pub fn service_in_app(&self) -> String {
        format!("{}/{}", self.app, self.service)
    }
}

impl std::fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.app, self.service, self.replica)
    }
}

/// Whether an object carries `fleet`'s label: the only objects gitfleet may touch.
pub fn owned_by(labels: &BTreeMap<String, String>, fleet: &str) -> bool {
    labels.get(labels::FLEET).map(String::as_str) == Some(fleet)
}

impl ObservedContainer {
    /// The replica this container holds, if it is `fleet`'s and its labels are complete.
    pub fn replica_key(&self, fleet: &str) -> Option<ReplicaKey> {
        if !owned_by(&self.labels, fleet) {
            return None;
        }
        Some(ReplicaKey {
            app: self.labels.get(labels::APP)?.as_str().into(),
            service: self.labels.get(labels::SERVICE)?.as_str().into(),
            replica: self.labels.get(labels::REPLICA)?.parse().ok()?,
        })
    }

    /// [`replica_key`](Self::replica_key) without allocating: `(app, service, replica)`.
    pub fn replica_slot(&self, fleet: &str) -> Option<(&str, &str, u32)> {
        if !owned_by(&self.labels, fleet) {
            return None;
        }
        Some((
            self.labels.get(labels::APP)?,
            self.labels.get(labels::SERVICE)?,
            self.labels.get(labels::REPLICA)?.parse().ok()?,
        ))
    }

    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(labels::SPEC_HASH).map(String::as_str)
    }

    /// The host port publishing TCP `container_port`, if any (an IPv4 or wildcard binding
    /// first: the router connects to the host's address).
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        let tcp =
            self.ports.iter().filter(|p| p.container_port == container_port && p.protocol == "tcp");
        let mut ports: Vec<&PublishedPort> = tcp.collect();
        ports.sort_by_key(|p| p.host_ip.contains(':'));
        ports.first().map(|p| p.host_port)
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

impl ObservedObject {
    /// `(app, key)` of a network or volume that is `fleet`'s.
    pub fn owner(&self, fleet: &str) -> Option<(String, String)> {
        self.owner_ref(fleet).map(|(app, key)| (app.to_string(), key.to_string()))
    }

    /// [`owner`](Self::owner) without allocating.
    pub fn owner_ref(&self, fleet: &str) -> Option<(&str, &str)> {
        if !owned_by(&self.labels, fleet) {
            return None;
        }
        Some((self.labels.get(labels::APP)?, self.labels.get(labels::OBJECT)?))
    }
}
