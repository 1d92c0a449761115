//! The route table's rules from the model and what the hosts run: a pure function.
//!
//! Every `x-routes` rule of every service becomes one [`RouteSpec`] (even with no replica:
//! then the router answers 503, not 404). Its backends are the service's running containers
//! on reachable hosts whose route port is published, at the host's `address` (a host reached
//! over a unix socket is this machine: `127.0.0.1`) and the host port Docker chose. Replicas on
//! an unreachable host are left out at once: a host cut off costs at most the requests in
//! flight to it.

use super::endpoint::{DockerHealth, EndpointKey};
use super::table::{Backend, RouteSpec};
use crate::diff::{HostObservation, Observed};
use crate::model::Model;

/// The rules of `model` with their replicas in `observed`, sorted by host and prefix.
pub fn routes(model: &Model, observed: &Observed) -> Vec<RouteSpec> {
    let fleet = model.fleet.settings.name.as_str();
    let mut specs = Vec::new();
    for (app_name, app) in &model.apps {
        for (service_name, service) in &app.services {
            for route in &service.routes {
                let mut backends = Vec::new();
                for (host_name, observation) in &observed.hosts {
                    let HostObservation::Reachable(state) = observation else { continue };
                    let address = model
                        .fleet
                        .hosts
                        .get(host_name)
                        .and_then(|h| h.address.clone())
                        .unwrap_or_else(|| "127.0.0.1".to_string());
                    for container in &state.containers {
                        let Some((app, service, _)) = container.replica_slot(fleet) else {
                            continue;
                        };
                        if app != app_name || service != service_name || !container.is_running() {
                            continue;
                        }
                        let Some(port) = container.host_port(route.port) else { continue };
                        backends.push(Backend {
                            key: EndpointKey {
                                host: host_name.clone(),
                                container: container.id.clone(),
                            },
                            address: authority(&address, port),
                            replica: container.replica_key(fleet),
                            health: DockerHealth::from_status(container.health.as_deref()),
                        });
                    }
                }
                specs.push(RouteSpec {
                    host: route.host.clone(),
                    path_prefix: route.path_prefix.clone(),
                    service: format!("{app_name}/{service_name}"),
                    port: route.port,
                    backends,
                });
            }
        }
    }
    specs.sort_by(|a, b| (&a.host, &a.path_prefix).cmp(&(&b.host, &b.path_prefix)));
    specs
}

/// `address:port`, with an IPv6 address in brackets.
pub fn authority(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::diff::observed::PublishedPort;
    use crate::diff::{HostState, ObservedContainer, labels};
    use crate::model::SourceTree;

    fn model() -> Model {
        let fleet = "hosts:\n  a:\n    endpoint: tcp://10.250.50.2:2375\n  b:\n    endpoint: unix:///var/run/docker.sock\n";
        let shop = "services:\n  web:\n    image: web:1\n    deploy: {replicas: 2}\n    x-routes:\n      - {host: shop.test, port: 80}\n      - {host: '*.shop.test', path_prefix: /api, port: 8080}\n  db:\n    image: db:1\n    extra_hosts: [\"api.shop.internal=10.0.0.1\", \"b.internal:10.0.0.2\"]\n";
        let tree: SourceTree = [("fleet.yaml", fleet), ("apps/shop/compose.yaml", shop)]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
        crate::model::load(&tree).unwrap()
    }

    fn container(
        id: &str,
        service: &str,
        running: bool,
        ports: &[(u16, u16)],
    ) -> ObservedContainer {
        let labels = [
            (labels::FLEET, "default"),
            (labels::APP, "shop"),
            (labels::SERVICE, service),
            (labels::REPLICA, "1"),
        ];
        ObservedContainer {
            id: id.into(),
            name: id.into(),
            state: if running { "running" } else { "exited" }.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created: 0,
            health: Some("healthy".into()),
            ports: ports
                .iter()
                .map(|(c, h)| PublishedPort {
                    container_port: *c,
                    host_port: *h,
                    protocol: "tcp".into(),
                    host_ip: "0.0.0.0".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn rules_get_running_published_replicas_at_the_host_address() {
        let model = model();
        let mut observed = Observed { hosts: BTreeMap::new() };
        observed.hosts.insert(
            "a".into(),
            HostObservation::Reachable(HostState {
                containers: vec![
                    container("a1", "web", true, &[(80, 32768), (8080, 32769)]),
                    container("a2", "web", false, &[(80, 32770)]),
                    container("a3", "web", true, &[]),
                    container("a4", "db", true, &[(80, 1)]),
                ],
                ..HostState::default()
            }),
        );
        observed.hosts.insert(
            "b".into(),
            HostObservation::Reachable(HostState {
                containers: vec![container("b1", "web", true, &[(80, 40000)])],
                ..HostState::default()
            }),
        );
        observed.hosts.insert("c".into(), HostObservation::unreachable("cut off"));
        let specs = routes(&model, &observed);
        assert_eq!(specs.len(), 2);
        let api = &specs[0];
        assert_eq!((api.host.as_str(), api.path_prefix.as_str()), ("*.shop.test", "/api"));
        let addresses: Vec<_> = api.backends.iter().map(|b| b.address.as_str()).collect();
        assert_eq!(addresses, ["10.250.50.2:32769"]);
        let web = &specs[1];
        assert_eq!(web.service, "shop/web");
        assert_eq!(web.port, 80);
        let addresses: Vec<_> = web.backends.iter().map(|b| b.address.as_str()).collect();
        assert_eq!(addresses, ["10.250.50.2:32768", "127.0.0.1:40000"]);
        assert_eq!(web.backends[0].health, DockerHealth::Healthy);
        assert_eq!(web.backends[0].key.container, "a1");
        // No replica observed: the rule stays (503, not 404).
        let empty = routes(&model, &Observed::default());
        assert!(empty.iter().all(|s| s.backends.is_empty()) && empty.len() == 2);
    }

    #[test]
    fn route_ports_are_published_on_ports_docker_chooses() {
        let model = model();
        let web = &model.apps["shop"].services["web"];
        let spec = crate::diff::spec::ContainerSpec::of(&model.apps["shop"], web);
        let targets: Vec<_> = spec.ports.iter().map(|p| (p.target, p.published)).collect();
        assert_eq!(targets, [(80, None), (8080, None)]);
        assert!(spec.extra_hosts.is_empty());
        assert!(!spec.canonical_json().contains("extra_hosts"), "specs without it keep their hash");
        // Consumers reach a routed service on another host through the router's address.
        let db = crate::diff::spec::ContainerSpec::of(
            &model.apps["shop"],
            &model.apps["shop"].services["db"],
        );
        assert_eq!(db.extra_hosts, ["api.shop.internal:10.0.0.1", "b.internal:10.0.0.2"]);
    }

    #[test]
    fn ipv6_addresses_get_brackets() {
        assert_eq!(authority("fd00::2", 80), "[fd00::2]:80");
        assert_eq!(authority("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(authority("host.example", 80), "host.example:80");
    }
}
