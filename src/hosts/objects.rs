//! Networks and volumes: made once, found again by name, never adopted from someone else
//! ([`ensure_network`], [`ensure_volume`]); networks removed idempotently ([`remove_network`]).
//! Volumes are never removed here: they are data.
//!
//! # Guarantees
//!
//! * An existing object of the wanted name is used only if its `io.gitfleet.fleet` label is the
//!   one gitfleet was asked to put on it; otherwise [`HostError::NotOurs`], and the object is
//!   left exactly as it was (no label added, nothing recreated).
//! * One network per name. Docker 20.10 (API 1.41) creates a second network of the same name
//!   unless the request says `CheckDuplicate`, which bollard 0.21's request type no longer has
//!   (API 1.44 made refusing the only behaviour); it is added to the request body here (newer
//!   daemons ignore it). Even with it, 20.10 checks and creates without a lock: five
//!   concurrent creates of one name make five networks. So this process also serialises the
//!   creation of networks of one name (only the creation: finding an existing network takes
//!   no lock). Another process creating the same name at the same moment is not covered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;

use super::error::HostError;
use crate::diff::labels;

/// Makes sure a network called `name` exists and is this fleet's, and returns its id.
///
/// `labels` are the labels to create it with and must contain `io.gitfleet.fleet`. If a
/// network of that name already exists with the same fleet label, its id is returned as it
/// is (Docker networks cannot be changed; a different driver is not corrected). `driver`
/// `None` is Docker's default (`bridge`); `internal` cuts the network off from the outside.
///
/// # Errors
///
/// [`HostError::NotOurs`] when a network of that name exists without this fleet's label,
/// [`HostError::Invalid`] when `labels` has no fleet label, [`HostError::Refused`] /
/// [`HostError::Interrupted`] for the daemon's answers (an unknown driver, say).
pub async fn ensure_network(
    docker: &Docker,
    name: &str,
    labels: &BTreeMap<String, String>,
    driver: Option<&str>,
    internal: bool,
) -> Result<String, HostError> {
    const CREATING: &str = "creating network";
    let fleet = fleet_label(labels, CREATING, name)?;
    if let Some(id) = existing_network(docker, name, fleet).await? {
        return Ok(id);
    }
    let _creating = NameLock::acquire(name).await;
    // Someone may have made it while this call waited for the lock.
    if let Some(id) = existing_network(docker, name, fleet).await? {
        return Ok(id);
    }
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: driver.map(str::to_string),
        internal: Some(internal),
        labels: Some(to_hash_map(labels)),
        ..Default::default()
    };
    let mut body = serde_json::to_value(&request).map_err(|e| HostError::Invalid {
        operation: CREATING,
        object: name.to_string(),
        reason: e.to_string(),
    })?;
    body["CheckDuplicate"] = serde_json::Value::Bool(true);
    let body = body.to_string().into_bytes();
    // bollard builds the request from `request`; the modifier swaps in the same JSON with
    // `CheckDuplicate` (see the module's guarantees). Only this clone of the client has it.
    let with_check = docker
        .clone()
        .with_request_modifier(move |req| req.map(|_| bollard::body_full(body.clone().into())));
    match with_check.create_network(request).await {
        Ok(created) => Ok(created.id),
        // Lost a race with another creator: whoever made it, the same rule applies.
        Err(err) => {
            let err = HostError::about(CREATING, name, err);
            if err.status() != Some(409) {
                return Err(err);
            }
            existing_network(docker, name, fleet).await?.ok_or(err)
        }
    }
}

/// Held while a network of one name is being created in this process; see the module's
/// guarantees. Entries leave the table when their last holder lets go.
struct NameLock {
    name: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

type LockTable = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
static NETWORKS_BEING_CREATED: LazyLock<LockTable> = LazyLock::new(Default::default);

impl NameLock {
    async fn acquire(name: &str) -> NameLock {
        let lock = {
            let mut table = NETWORKS_BEING_CREATED.lock().unwrap_or_else(PoisonError::into_inner);
            table.entry(name.to_string()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        NameLock { name: name.to_string(), lock, _guard: guard }
    }
}

impl Drop for NameLock {
    fn drop(&mut self) {
        let mut table = NETWORKS_BEING_CREATED.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours, the table's and the guard's: nobody else waits for this name.
        if Arc::strong_count(&self.lock) <= 3 {
            table.remove(&self.name);
        }
    }
}

/// The id of the network called exactly `name` if it exists and is `fleet`'s; `None` if there
/// is none; [`HostError::NotOurs`] if it is someone else's.
async fn existing_network(
    docker: &Docker,
    name: &str,
    fleet: &str,
) -> Result<Option<String>, HostError> {
    match docker.inspect_network(name, None::<InspectNetworkOptions>).await {
        // Docker also resolves ids and id prefixes; only the exact name counts here.
        Ok(network) if network.name.as_deref() == Some(name) => {
            check_ours("network", name, network.labels.as_ref(), fleet)?;
            Ok(Some(network.id.unwrap_or_default()))
        }
        Ok(_) => Ok(None),
        Err(err) => {
            let err = HostError::about("inspecting network", name, err);
            if err.is_not_found() { Ok(None) } else { Err(err) }
        }
    }
}

/// Makes sure a volume called `name` exists and is this fleet's.
///
/// Same rule as [`ensure_network`]: `labels` must contain `io.gitfleet.fleet`, an existing
/// volume with the same fleet label is used as it is, one without it is refused. Docker's own
/// create is idempotent by name (it answers with the existing volume, labels unchanged), so
/// the answer is checked too, which also covers a volume made between the look and the create.
///
/// # Errors
///
/// [`HostError::NotOurs`], [`HostError::Invalid`] (no fleet label), [`HostError::Refused`]
/// (an unknown driver, or a same-named volume of another driver) and
/// [`HostError::Interrupted`].
pub async fn ensure_volume(
    docker: &Docker,
    name: &str,
    labels: &BTreeMap<String, String>,
    driver: Option<&str>,
) -> Result<(), HostError> {
    const CREATING: &str = "creating volume";
    let fleet = fleet_label(labels, CREATING, name)?;
    match docker.inspect_volume(name).await {
        Ok(volume) => return check_ours("volume", name, Some(&volume.labels), fleet),
        Err(err) => {
            let err = HostError::about("inspecting volume", name, err);
            if !err.is_not_found() {
                return Err(err);
            }
        }
    }
    let request = VolumeCreateRequest {
        name: Some(name.to_string()),
        driver: driver.map(str::to_string),
        labels: Some(to_hash_map(labels)),
        ..Default::default()
    };
    let volume =
        docker.create_volume(request).await.map_err(|e| HostError::about(CREATING, name, e))?;
    check_ours("volume", name, Some(&volume.labels), fleet)
}

/// Removes the network `id` (or name). A network that does not exist is success: the call is
/// idempotent. Docker refuses to remove a network containers are still connected to
/// ([`HostError::Refused`], status 403 on 20.10).
pub async fn remove_network(docker: &Docker, id: &str) -> Result<(), HostError> {
    match docker.remove_network(id).await {
        Ok(()) => Ok(()),
        Err(err) => {
            let err = HostError::about("removing network", id, err);
            if err.is_not_found() { Ok(()) } else { Err(err) }
        }
    }
}

fn fleet_label<'a>(
    labels: &'a BTreeMap<String, String>,
    operation: &'static str,
    name: &str,
) -> Result<&'a str, HostError> {
    labels.get(labels::FLEET).map(String::as_str).ok_or_else(|| HostError::Invalid {
        operation,
        object: name.to_string(),
        reason: format!("its labels lack {}: gitfleet creates nothing without it", labels::FLEET),
    })
}

/// `Ok` if `found` carries `fleet` as its fleet label.
fn check_ours(
    kind: &'static str,
    name: &str,
    found: Option<&HashMap<String, String>>,
    fleet: &str,
) -> Result<(), HostError> {
    let found = match found.and_then(|l| l.get(labels::FLEET)) {
        Some(f) if f == fleet => return Ok(()),
        Some(other) => format!("it belongs to fleet {other:?}"),
        None => format!("it has no {} label", labels::FLEET),
    };
    Err(HostError::NotOurs { kind, name: name.to_string(), fleet: fleet.to_string(), found })
}

pub(crate) fn to_hash_map(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_fleet_label_is_ours() {
        let ours = HashMap::from([(labels::FLEET.to_string(), "prod".to_string())]);
        assert!(check_ours("network", "n", Some(&ours), "prod").is_ok());
        let err = check_ours("network", "n", Some(&ours), "staging").unwrap_err();
        assert!(err.to_string().contains("belongs to fleet \"prod\""), "{err}");
        let err = check_ours("volume", "shop_data", Some(&HashMap::new()), "prod").unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume shop_data already exists on the host and is not fleet \"prod\"'s (it has no \
             io.gitfleet.fleet label); gitfleet never adopts an object it did not create: \
             remove or rename that volume, or give the app's volume another name"
        );
        assert!(check_ours("volume", "v", None, "prod").is_err());
    }

    #[test]
    fn labels_without_the_fleet_are_refused() {
        let err = fleet_label(&BTreeMap::new(), "creating network", "n").unwrap_err();
        assert!(matches!(err, HostError::Invalid { .. }), "{err:?}");
    }
}
