//! Checks that need the whole normalised model: references between services and top-level
//! objects, depends_on cycles, placement no host satisfies, reservations no host can hold,
//! published ports that would have to share a host, routes claimed twice.

use std::collections::{BTreeMap, BTreeSet};

use super::finding::{Finding, Findings};
use super::path::Path;
use super::types::*;
use super::units::{format_bytes, format_millicpus};

/// Checks one app against itself and the fleet's hosts.
pub fn check_app(app: &App, fleet: &Fleet, findings: &mut Findings<'_>) {
    for (name, service) in &app.services {
        let path = Path::of(&["services", name]);
        check_references(app, service, &path, findings);
        check_placement(service, fleet, &path, findings);
        super::windows::check_service(service, &path, findings);
    }
    check_cycles(app, findings);
}

fn check_references(app: &App, service: &Service, path: &Path, findings: &mut Findings<'_>) {
    let declared = |keys: Vec<&String>| {
        if keys.is_empty() {
            "none is declared".to_string()
        } else {
            format!("declared: {}", join(keys))
        }
    };
    for network in service.networks.keys() {
        if !app.networks.contains_key(network) {
            findings
                .add(
                    path.key("networks").key(network),
                    "unknown-network",
                    format!("service `{}` joins network `{network}`, which is not declared under top-level `networks` ({})", service.name, declared(app.networks.keys().collect())),
                )
                .with_hint(format!("add `{network}:` under `networks:` at the top of the file, or fix the name"));
        }
    }
    for (i, mount) in service.mounts.iter().enumerate() {
        if let MountSource::Volume { volume } = &mount.source {
            if !app.volumes.contains_key(volume) {
                findings
                    .add(
                        path.key("volumes").index(i),
                        "unknown-volume",
                        format!("service `{}` mounts volume `{volume}`, which is not declared under top-level `volumes` ({})", service.name, declared(app.volumes.keys().collect())),
                    )
                    .with_hint(format!("add `{volume}:` under `volumes:` at the top of the file; a path starting with / or ./ would be a bind mount"));
            }
        }
    }
    for (section, mounts, defs) in
        [("configs", &service.configs, &app.configs), ("secrets", &service.secrets, &app.secrets)]
    {
        for (i, mount) in mounts.iter().enumerate() {
            if !defs.contains_key(&mount.name) {
                findings
                    .add(
                        path.key(section).index(i),
                        if section == "configs" { "unknown-config" } else { "unknown-secret" },
                        format!("service `{}` uses {section} entry `{}`, which is not declared under top-level `{section}` ({})", service.name, mount.name, declared(defs.keys().collect())),
                    )
                    .with_hint(format!("add `{}: {{file: ./{}}}` under `{section}:` at the top of the file", mount.name, mount.name));
            }
        }
    }
    for dependency in service.depends_on.keys() {
        if !app.services.contains_key(dependency) {
            findings
                .add(
                    path.key("depends_on").key(dependency),
                    "unknown-service",
                    format!("service `{}` depends on `{dependency}`, which is not a service of this app ({})", service.name, join(app.services.keys().collect())),
                )
                .with_hint("depends_on names services in the same compose file");
        }
    }
}

fn check_placement(service: &Service, fleet: &Fleet, path: &Path, findings: &mut Findings<'_>) {
    let deploy = &service.deploy;
    if deploy.replicas == 0 {
        return;
    }
    let candidates: Vec<&Host> = fleet
        .hosts
        .values()
        .filter(|h| deploy.placement.constraints.iter().all(|c| c.may_be_satisfied_by(h)))
        .collect();
    if candidates.is_empty() && !fleet.hosts.is_empty() {
        let why: Vec<String> = fleet
            .hosts
            .values()
            .map(|h| {
                let failed =
                    deploy.placement.constraints.iter().find(|c| !c.may_be_satisfied_by(h));
                format!("{} fails {}", h.name, failed.map(ToString::to_string).unwrap_or_default())
            })
            .collect();
        findings
            .add(
                path.key("deploy").key("placement").key("constraints"),
                "unsatisfiable-placement",
                format!(
                    "no host satisfies the placement constraints of `{}`: {}",
                    service.name,
                    why.join("; ")
                ),
            )
            .with_hint("fix the constraint, or add the label to a host in fleet.yaml");
        return;
    }
    if let Some(max) = deploy.placement.max_replicas_per_node {
        let room = candidates.len() as u64 * u64::from(max);
        if u64::from(deploy.replicas) > room {
            findings
                .add(
                    path.key("deploy").key("replicas"),
                    "too-many-replicas",
                    format!("{} replicas of `{}` cannot run with max_replicas_per_node = {max} on {} host(s) ({})", deploy.replicas, service.name, candidates.len(), join(candidates.iter().map(|h| &h.name).collect())),
                )
                .with_hint("lower replicas, raise max_replicas_per_node, or register more hosts");
        }
    }
    let reservations = deploy.resources.reservations;
    let fits = |h: &&Host| {
        reservations.millicpus.zip(h.capacity.millicpus).is_none_or(|(need, has)| need <= has)
            && reservations
                .memory_bytes
                .zip(h.capacity.memory_bytes)
                .is_none_or(|(need, has)| need <= has)
    };
    if !candidates.is_empty() && !candidates.iter().any(fits) {
        let mut need = Vec::new();
        if let Some(m) = reservations.millicpus {
            need.push(format_millicpus(m));
        }
        if let Some(b) = reservations.memory_bytes {
            need.push(format_bytes(b));
        }
        let largest: Vec<String> = candidates
            .iter()
            .map(|h| {
                let cpus = h.capacity.millicpus.map_or("unlimited CPUs".into(), format_millicpus);
                let memory =
                    h.capacity.memory_bytes.map_or("unlimited memory".into(), format_bytes);
                format!("{} has {cpus}, {memory}", h.name)
            })
            .collect();
        findings
            .add(
                path.key("deploy").key("resources").key("reservations"),
                "reservation-too-large",
                format!(
                    "`{}` reserves {} per replica, more than any candidate host holds ({})",
                    service.name,
                    need.join(" and "),
                    largest.join("; ")
                ),
            )
            .with_hint("lower the reservation, or raise the host's `capacity` in fleet.yaml");
    }
}

/// Reports each depends_on cycle once, naming it, at the service it is found from.
fn check_cycles(app: &App, findings: &mut Findings<'_>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        InProgress,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> =
        app.services.keys().map(|k| (k.as_str(), Mark::Unvisited)).collect();
    let mut reported: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        app: &'a App,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        marks.insert(name, Mark::InProgress);
        stack.push(name);
        for dependency in app.services[name].depends_on.keys() {
            match marks.get(dependency.as_str()) {
                Some(Mark::Unvisited) => visit(dependency, app, marks, stack, cycles),
                Some(Mark::InProgress) => {
                    let start = stack.iter().position(|s| s == dependency).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(dependency.clone());
                    cycles.push(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
    }
    let names: Vec<&str> = marks.keys().copied().collect();
    for name in names {
        if marks[name] == Mark::Unvisited {
            let mut cycles = Vec::new();
            visit(name, app, &mut marks, &mut Vec::new(), &mut cycles);
            for cycle in cycles {
                if reported.insert(cycle.iter().cloned().collect()) {
                    let first = &cycle[0];
                    findings
                        .add(
                            Path::of(&["services", first, "depends_on"]),
                            "dependency-cycle",
                            format!("depends_on forms a cycle: {}", cycle.join(" → ")),
                        )
                        .with_hint("remove one of these dependencies; services cannot each wait for the other");
                }
            }
        }
    }
}

/// Checks across apps: published ports that would have to share a host, and routes
/// (host + path prefix) claimed by two services.
pub fn check_fleet_wide(model: &Model) -> Vec<Finding> {
    let mut findings = Vec::new();
    // (port, protocol) -> [(app, service, replicas, candidate hosts)]
    type Publisher<'a> = (&'a App, &'a Service, u32, BTreeSet<&'a str>);
    let mut publishers: BTreeMap<(u16, Protocol), Vec<Publisher<'_>>> = BTreeMap::new();
    let mut routes: BTreeMap<(&str, &str), (&App, &Service)> = BTreeMap::new();
    for app in model.apps.values() {
        for service in app.services.values() {
            let candidates: BTreeSet<&str> = model
                .fleet
                .hosts
                .values()
                .filter(|h| {
                    service.deploy.placement.constraints.iter().all(|c| c.may_be_satisfied_by(h))
                })
                .map(|h| h.name.as_str())
                .collect();
            let ports: BTreeSet<(u16, Protocol)> =
                service.ports.iter().filter_map(|p| Some((p.published?, p.protocol))).collect();
            for port in ports {
                publishers.entry(port).or_default().push((
                    app,
                    service,
                    service.deploy.replicas,
                    candidates.clone(),
                ));
            }
            for (i, route) in service.routes.iter().enumerate() {
                let key = (route.host.as_str(), route.path_prefix.as_str());
                if let Some((other_app, other)) = routes.get(&key) {
                    findings.push(
                        Finding::new(
                            &app.file,
                            Path::of(&["services", &service.name, "x-routes"]).index(i),
                            "duplicate-route",
                            format!("route {}{} is already claimed by {}/{}", route.host, route.path_prefix, other_app.name, other.name),
                        )
                        .hint("each host and path prefix goes to one service; use a longer path prefix"),
                    );
                } else {
                    routes.insert(key, (app, service));
                }
            }
        }
    }
    for ((port, protocol), group) in publishers {
        let replicas: u64 = group.iter().map(|(_, _, r, _)| u64::from(*r)).sum();
        let hosts: BTreeSet<&str> =
            group.iter().flat_map(|(_, _, _, c)| c.iter().copied()).collect();
        if replicas <= hosts.len() as u64 || hosts.is_empty() {
            continue;
        }
        let who: Vec<String> = group
            .iter()
            .map(|(a, s, r, _)| {
                format!("{}/{} ({r} replica{})", a.name, s.name, if *r == 1 { "" } else { "s" })
            })
            .collect();
        let protocol = if protocol == Protocol::Tcp { "tcp" } else { "udp" };
        for (app, service, _, _) in &group {
            findings.push(
                Finding::new(
                    &app.file,
                    Path::of(&["services", &service.name, "ports"]),
                    "port-conflict",
                    format!(
                        "host port {port}/{protocol} is published by {} but they can run only on {} host(s) ({}), so two would share a host",
                        who.join(" and "),
                        hosts.len(),
                        join(hosts.iter().collect())
                    ),
                )
                .hint("publish a different port, or let the services run on more hosts"),
            );
        }
    }
    findings
}

fn join<T: std::fmt::Display>(items: Vec<T>) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
