//! Observing hosts: what carries this fleet's label on one host ([`observe_host`]) and on all
//! registered hosts at once, each bounded in time, with each engine's platform
//! ([`observe_all`]).

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use futures_util::future::join_all;
use tracing::Instrument;

use super::connect::connect_with_timeout;
use super::error::HostError;
use super::listing::{
    ListedContainer, ListedObject, ListedPort, ListedVolumes, get_body, label_filter,
};
use crate::diff::labels;
use crate::diff::observed::PublishedPort;
use crate::diff::observed::owned_by;
use crate::diff::{HostObservation, HostState, Observed, ObservedContainer, ObservedObject};
use crate::model::Host;

/// The fleet-labelled containers (running or not), networks and volumes on one host.
///
/// Exactly one list call per object kind, each filtered by `label=io.gitfleet.fleet=<fleet>`
/// (the three run concurrently); the state is built from the list answers alone, without
/// inspecting any object. Container names are given without Docker's leading `/`. Each list
/// is sorted by name, so equal hosts give equal states.
///
/// # Errors
///
/// [`HostError::Disconnected`] when the connection breaks, [`HostError::Api`] when the daemon
/// answers a list call with an error or with a body that is not the list. These do not name the endpoint (the client does not
/// expose it); [`observe_all`] adds it.
pub async fn observe_host(docker: &Docker, fleet: &str) -> Result<HostState, HostError> {
    let filter = label_filter(&format!("{}={fleet}", labels::FLEET));
    let containers = async {
        get_body(docker, format!("/containers/json?all=true&{filter}"))
            .await
            .map_err(|e| HostError::from_request(LISTING_CONTAINERS, e))
    };
    let networks = async {
        get_body(docker, format!("/networks?{filter}"))
            .await
            .map_err(|e| HostError::from_request(LISTING_NETWORKS, e))
    };
    let volumes = async {
        get_body(docker, format!("/volumes?{filter}"))
            .await
            .map_err(|e| HostError::from_request(LISTING_VOLUMES, e))
    };
    let (containers, networks, volumes) = tokio::try_join!(containers, networks, volumes)?;
    host_state(containers.as_bytes(), networks.as_bytes(), volumes.as_bytes(), fleet)
}

const LISTING_CONTAINERS: &str = "listing containers";
const LISTING_NETWORKS: &str = "listing networks";
const LISTING_VOLUMES: &str = "listing volumes";

/// Observes every host in `hosts` concurrently, each bounded by `timeout` (connecting and
/// listing together). The answer has one entry per host, keyed like `hosts`.
///
/// A host that cannot be reached, answers with an error, or does not answer in time is
/// [`HostObservation::Unreachable`] with a reason that names its endpoint
/// (`cannot reach tcp://10.250.1.2:2375: connection refused`,
/// `cannot reach tcp://10.250.1.2:2375: no answer within 10s`). The other hosts are observed
/// all the same.
pub async fn observe_all(
    hosts: &BTreeMap<String, Host>,
    fleet: &str,
    timeout: Duration,
) -> Observed {
    let observations = hosts.iter().map(|(name, host)| {
        let span = tracing::debug_span!("observe", host = %name, endpoint = %host.endpoint);
        async move {
            let started = std::time::Instant::now();
            let bounded = tokio::time::timeout(timeout, async {
                let docker = connect_with_timeout(host, timeout).await?;
                let engine = super::platform::engine_info(&docker).await?;
                let mut state = observe_host(&docker, fleet).await?;
                state.engine = Some(engine);
                Ok(state)
            })
            .await;
            let observation = match bounded {
                Ok(Ok(state)) => {
                    tracing::debug!(
                        containers = state.containers.len(),
                        networks = state.networks.len(),
                        volumes = state.volumes.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "observed"
                    );
                    HostObservation::Reachable(state)
                }
                Ok(Err(err)) => unreachable(host, &err),
                Err(_elapsed) => unreachable(
                    host,
                    &HostError::Timeout { endpoint: host.endpoint.to_string(), timeout },
                ),
            };
            (name.clone(), observation)
        }
        .instrument(span)
    });
    Observed { hosts: join_all(observations).await.into_iter().collect() }
}

pub(super) fn unreachable(host: &Host, err: &HostError) -> HostObservation {
    let message =
        if err.names_endpoint() { err.to_string() } else { format!("{}: {err}", host.endpoint) };
    // One line: daemons end their error messages with a newline.
    let reason = message.split_whitespace().collect::<Vec<_>>().join(" ");
    tracing::debug!(%reason, "unreachable");
    HostObservation::unreachable(reason)
}

/// The health check status in a container list's status text (`Up 5 minutes (healthy)`,
/// `Up 2 seconds (health: starting)`), if it shows one.
fn health_of(status: &str) -> Option<String> {
    let inside = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let health = inside.strip_prefix("health: ").unwrap_or(inside);
    matches!(health, "healthy" | "unhealthy" | "starting").then(|| health.to_string())
}

/// Builds the state from the bodies of the three list answers (`GET /containers/json`,
/// `/networks`, `/volumes`), decoding only what gitfleet reads (see `listing`). Objects whose
/// labels do not say `fleet` are dropped even though the daemon's filter should have left them
/// out already: gitfleet never plans for an object without its fleet label, whatever a
/// daemon's filter does. Public for `benches/resync.rs`.
///
/// # Errors
///
/// [`HostError::Api`] naming the list call whose body is not the Engine API's answer.
pub fn host_state(
    containers: &[u8],
    networks: &[u8],
    volumes: &[u8],
    fleet: &str,
) -> Result<HostState, HostError> {
    let undecodable =
        |operation: &'static str| move |err| HostError::Api { operation, source: err_of(err) };
    let containers: Vec<ListedContainer> =
        serde_json::from_slice(containers).map_err(undecodable(LISTING_CONTAINERS))?;
    let networks: Vec<ListedObject> =
        serde_json::from_slice(networks).map_err(undecodable(LISTING_NETWORKS))?;
    let volumes: ListedVolumes =
        serde_json::from_slice(volumes).map_err(undecodable(LISTING_VOLUMES))?;
    let mut state = HostState {
        containers: containers
            .into_iter()
            .map(|c| ObservedContainer {
                id: c.id.unwrap_or_default(),
                name: container_name(c.names.as_deref().unwrap_or_default()),
                state: c.state.map(|s| s.0.into_owned()).unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
                created: c.created.unwrap_or_default(),
                health: health_of(c.status.as_deref().unwrap_or_default()),
                ports: published_ports(c.ports.as_deref().unwrap_or_default()),
            })
            .filter(|c| owned_by(&c.labels, fleet))
            .collect(),
        networks: networks
            .into_iter()
            .map(|n| ObservedObject {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default(),
            })
            .filter(|n| owned_by(&n.labels, fleet))
            .collect(),
        volumes: volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let name = v.name.unwrap_or_default();
                ObservedObject { id: name.clone(), name, labels: v.labels.unwrap_or_default() }
            })
            .filter(|v| owned_by(&v.labels, fleet))
            .collect(),
        ..HostState::default()
    };
    state.containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    state.networks.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    state.volumes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(state)
}

/// A body that does not decode, as bollard reports one.
fn err_of(err: serde_json::Error) -> bollard::errors::Error {
    bollard::errors::Error::JsonSerdeError { err }
}

/// The published ports of a container list entry (unpublished exposed ports are left out),
/// sorted and without duplicates.
fn published_ports(ports: &[ListedPort]) -> Vec<PublishedPort> {
    let mut published: Vec<PublishedPort> = ports
        .iter()
        .filter_map(|p| {
            Some(PublishedPort {
                container_port: p.private_port,
                host_port: p.public_port.filter(|port| *port != 0)?,
                protocol: p.protocol.as_deref().unwrap_or("tcp").to_string(),
                host_ip: p.ip.as_deref().unwrap_or_default().to_string(),
            })
        })
        .collect();
    published.sort_by(|a, b| {
        (a.container_port, a.host_port, &a.protocol, &a.host_ip).cmp(&(
            b.container_port,
            b.host_port,
            &b.protocol,
            &b.host_ip,
        ))
    });
    published.dedup();
    published
}

/// A container's own name from the list answer's `Names`: `/web-1` → `web-1`. Legacy links add
/// names such as `/other/alias`; the container's own is the one without a second `/`.
fn container_name<S: AsRef<str>>(names: &[S]) -> String {
    let own = names
        .iter()
        .map(AsRef::as_ref)
        .find(|n| !n.trim_start_matches('/').contains('/'))
        .or(names.first().map(AsRef::as_ref));
    own.map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_is_read_from_the_status_text() {
        assert_eq!(health_of("Up 5 minutes (healthy)").as_deref(), Some("healthy"));
        assert_eq!(health_of("Up 1 second (health: starting)").as_deref(), Some("starting"));
        assert_eq!(health_of("Up 3 hours (unhealthy)").as_deref(), Some("unhealthy"));
        assert_eq!(health_of("Up 3 hours"), None);
        assert_eq!(health_of("Exited (1) 2 minutes ago"), None);
        assert_eq!(health_of("Up (Paused)"), None);
    }

    #[test]
    fn published_ports_are_read_back() {
        let ports = json!([
            {"IP": "::", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
            {"IP": "", "PrivatePort": 443, "Type": "tcp"},
        ])
        .to_string();
        let ports: Vec<ListedPort> = serde_json::from_str(&ports).unwrap();
        let ports = published_ports(&ports);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].protocol, "tcp");
        let c = ObservedContainer {
            id: "x".into(),
            name: "x".into(),
            state: "running".into(),
            labels: BTreeMap::new(),
            created: 0,
            health: None,
            ports,
        };
        assert_eq!(c.host_port(80), Some(32768));
        assert_eq!(c.host_port(443), None);
    }

    #[test]
    fn names_lose_the_slash_and_links_are_ignored() {
        assert_eq!(container_name(&["/web-1"]), "web-1");
        assert_eq!(container_name(&["/other/alias", "/db"]), "db");
        assert_eq!(container_name::<&str>(&[]), "");
    }

    #[test]
    fn objects_of_other_fleets_are_dropped_and_lists_sorted() {
        let label_map = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
            json!(map)
        };
        let ours = label_map(&[(labels::FLEET, "prod"), (labels::APP, "shop")]);
        let theirs = label_map(&[(labels::FLEET, "staging")]);
        let container = |id: &str, name: &str, labels: &serde_json::Value| {
            json!({"Id": id, "Names": [format!("/{name}")], "State": "running",
                   "Status": "Up 2 hours (healthy)", "Labels": labels, "Created": 7,
                   "NetworkSettings": {"Networks": {}}, "Mounts": []})
        };
        let containers = json!([
            container("2", "b", &ours),
            container("1", "a", &ours),
            container("3", "c", &theirs)
        ]);
        let networks = json!([{"Id": "n", "Name": "x", "Labels": theirs, "IPAM": {}}]);
        let volumes = json!({"Volumes": [{"Name": "v", "Labels": ours}], "Warnings": null});
        let body = |v: &serde_json::Value| serde_json::to_vec(v).unwrap();
        let state =
            host_state(&body(&containers), &body(&networks), &body(&volumes), "prod").unwrap();
        let names: Vec<_> = state.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(state.containers[0].state, "running");
        assert_eq!(state.containers[0].health.as_deref(), Some("healthy"));
        assert_eq!((state.containers[0].id.as_str(), state.containers[0].created), ("1", 7));
        assert!(state.networks.is_empty());
        assert_eq!(state.volumes[0].id, "v");
        // An answer that is not a list names the call.
        let err = host_state(b"{}", &body(&networks), &body(&volumes), "prod").unwrap_err();
        assert!(err.to_string().starts_with("listing containers: "), "{err}");
    }
}
