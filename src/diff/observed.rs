//! What gitfleet saw on the hosts: plain data, built by `hosts::observe` from one labelled
//! list call per object kind and host, and consumed by the scheduler and the planner.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::labels;

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

/// The fleet-labelled objects on one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedObject>,
    pub volumes: Vec<ObservedObject>,
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub app: String,
    pub service: String,
    pub replica: u32,
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
            app: self.labels.get(labels::APP)?.clone(),
            service: self.labels.get(labels::SERVICE)?.clone(),
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
