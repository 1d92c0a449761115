//! The labels gitfleet puts on every Docker object it creates, and reading them back.
//! Observed state is rebuilt from these alone: the hosts are the database.

/// Which fleet an object belongs to. Objects without it, or with another fleet's name, are
/// never touched.
pub const FLEET: &str = "io.gitfleet.fleet";
pub const APP: &str = "io.gitfleet.app";
pub const SERVICE: &str = "io.gitfleet.service";
pub const REPLICA: &str = "io.gitfleet.replica";
/// Short hash of the canonical container spec; a different hash means replace.
pub const SPEC_HASH: &str = "io.gitfleet.spec-hash";
/// The canonical spec itself (JSON), so a plan can say which fields changed.
pub const SPEC: &str = "io.gitfleet.spec";
/// The revision (commit id) that created the object.
pub const REVISION: &str = "io.gitfleet.revision";
/// On networks and volumes: the app's key for the object.
pub const OBJECT: &str = "io.gitfleet.object";
/// The repository the object was deployed from (`git::repository_id`): two repositories
/// never share a fleet on a host (see `diff::ownership`). Not part of the spec hash.
pub const REPOSITORY: &str = "io.gitfleet.repository";
/// The leadership epoch of the controller that created the object (with high availability:
/// the etcd election key's create revision). Not part of the spec hash, so a failover
/// replaces nothing; it tells which leader wrote what.
pub const EPOCH: &str = "io.gitfleet.epoch";

use std::collections::BTreeMap;

use super::observed::ReplicaKey;
use super::spec::ContainerSpec;

/// The labels of a replica's container.
pub fn for_container(
    fleet: &str,
    key: &ReplicaKey,
    spec: &ContainerSpec,
    spec_hash: &str,
    revision: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert(FLEET.into(), fleet.into());
    labels.insert(APP.into(), key.app.to_string());
    labels.insert(SERVICE.into(), key.service.to_string());
    labels.insert(REPLICA.into(), key.replica.to_string());
    labels.insert(SPEC_HASH.into(), spec_hash.into());
    labels.insert(SPEC.into(), spec.canonical_json());
    if let Some(revision) = revision {
        labels.insert(REVISION.into(), revision.into());
    }
    labels
}

/// The labels of an app's network or volume (`object` is its key in the app file).
pub fn for_object(
    fleet: &str,
    app: &str,
    object: &str,
    own: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = own.clone();
    labels.insert(FLEET.into(), fleet.into());
    labels.insert(APP.into(), app.into());
    labels.insert(OBJECT.into(), object.into());
    labels
}

/// `labels` with the repository label added, when the repository is known.
pub fn with_repository(
    mut labels: BTreeMap<String, String>,
    repository: Option<&str>,
) -> BTreeMap<String, String> {
    if let Some(repository) = repository {
        labels.insert(REPOSITORY.into(), repository.into());
    }
    labels
}
