//! Observing hosts: what carries this fleet's label on one host ([`observe_host`]) and on all
//! registered hosts at once, each bounded in time, with each engine's platform
//! ([`observe_all`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerSummary, Network, Volume};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use futures_util::future::join_all;
use tracing::Instrument;

use super::connect::connect_with_timeout;
use super::error::HostError;
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
/// answers a list call with an error. These do not name the endpoint (the client does not
/// expose it); [`observe_all`] adds it.
pub async fn observe_host(docker: &Docker, fleet: &str) -> Result<HostState, HostError> {
    let filters =
        HashMap::from([("label".to_string(), vec![format!("{}={fleet}", labels::FLEET)])]);
    let containers = async {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        };
        docker
            .list_containers(Some(options))
            .await
            .map_err(|e| HostError::from_request("listing containers", e))
    };
    let networks = async {
        let options = ListNetworksOptions { filters: Some(filters.clone()) };
        docker
            .list_networks(Some(options))
            .await
            .map_err(|e| HostError::from_request("listing networks", e))
    };
    let volumes = async {
        let options = ListVolumesOptions { filters: Some(filters.clone()) };
        docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| HostError::from_request("listing volumes", e))
    };
    let (containers, networks, volumes) = tokio::try_join!(containers, networks, volumes)?;
    Ok(host_state(containers, networks, volumes.volumes.unwrap_or_default(), fleet))
}

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

/// Builds the state from the three list answers (as bollard decodes them). Objects whose
/// labels do not say `fleet` are dropped even though the daemon's filter should have left them
/// out already: gitfleet never plans for an object without its fleet label, whatever a
/// daemon's filter does. Public for `benches/resync.rs`.
pub fn host_state(
    containers: Vec<ContainerSummary>,
    networks: Vec<Network>,
    volumes: Vec<Volume>,
    fleet: &str,
) -> HostState {
    let mut state = HostState {
        containers: containers
            .into_iter()
            .map(|c| ObservedContainer {
                id: c.id.unwrap_or_default(),
                name: container_name(c.names.as_deref().unwrap_or_default()),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
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
                labels: n.labels.unwrap_or_default().into_iter().collect(),
            })
            .filter(|n| owned_by(&n.labels, fleet))
            .collect(),
        volumes: volumes
            .into_iter()
            .map(|v| ObservedObject {
                id: v.name.clone(),
                name: v.name,
                labels: v.labels.into_iter().collect(),
            })
            .filter(|v| owned_by(&v.labels, fleet))
            .collect(),
        ..HostState::default()
    };
    state.containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    state.networks.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    state.volumes.sort_by(|a, b| a.name.cmp(&b.name));
    state
}

/// The published ports of a container list entry (unpublished exposed ports are left out),
/// sorted and without duplicates.
fn published_ports(ports: &[bollard::models::PortSummary]) -> Vec<PublishedPort> {
    let mut published: Vec<PublishedPort> = ports
        .iter()
        .filter_map(|p| {
            Some(PublishedPort {
                container_port: p.private_port,
                host_port: p.public_port.filter(|port| *port != 0)?,
                protocol: p.typ.map_or_else(|| "tcp".to_string(), |t| t.to_string()),
                host_ip: p.ip.clone().unwrap_or_default(),
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
fn container_name(names: &[String]) -> String {
    let own = names.iter().find(|n| !n.trim_start_matches('/').contains('/')).or(names.first());
    own.map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerSummaryStateEnum;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

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
        use bollard::models::{PortSummary, PortSummaryTypeEnum};
        let port = |private, public: Option<u16>, ip: &str| PortSummary {
            ip: Some(ip.into()),
            private_port: private,
            public_port: public,
            typ: Some(PortSummaryTypeEnum::TCP),
        };
        let ports = published_ports(&[
            port(80, Some(32768), "::"),
            port(80, Some(32768), "0.0.0.0"),
            port(443, None, ""),
        ]);
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
        assert_eq!(container_name(&["/web-1".into()]), "web-1");
        assert_eq!(container_name(&["/other/alias".into(), "/db".into()]), "db");
        assert_eq!(container_name(&[]), "");
    }

    #[test]
    fn objects_of_other_fleets_are_dropped_and_lists_sorted() {
        let ours = labels(&[(labels::FLEET, "prod"), (labels::APP, "shop")]);
        let theirs = labels(&[(labels::FLEET, "staging")]);
        let container = |id: &str, name: &str, l: &HashMap<String, String>| ContainerSummary {
            id: Some(id.into()),
            names: Some(vec![format!("/{name}")]),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            labels: Some(l.clone()),
            ..Default::default()
        };
        let state = host_state(
            vec![
                container("2", "b", &ours),
                container("1", "a", &ours),
                container("3", "c", &theirs),
            ],
            vec![Network {
                id: Some("n".into()),
                name: Some("x".into()),
                labels: Some(theirs.clone()),
                ..Default::default()
            }],
            vec![Volume { name: "v".into(), labels: ours.clone(), ..Default::default() }],
            "prod",
        );
        let names: Vec<_> = state.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(state.containers[0].state, "running");
        assert!(state.networks.is_empty());
        assert_eq!(state.volumes[0].id, "v");
    }
}
