//! Properties of every schedule, on small random fleets and observations: the invariants,
//! a fixed point, and stability when hosts and apps are added.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::builders::*;
use crate::diff::observed::{Observed, ReplicaKey};
use crate::diff::schedule::demand::specific_ip;
use crate::diff::schedule::{Schedule, schedule};
use crate::model::{Model, Protocol, Service};

/// A small random fleet and workload, and a random (possibly inconsistent) observation.
fn arbitrary_case() -> impl Strategy<Value = (Model, Observed)> {
    let host_spec =
        (any::<bool>(), proptest::option::of(1..=4_u64), proptest::option::of(1..=4_u64));
    let port_spec = (
        prop::sample::select(vec!["80", "81", "-"]),
        any::<bool>(),
        prop::sample::select(vec!["", "10.0.0.1:", "10.0.0.2:", "0.0.0.0:"]),
    );
    let service_spec = (
        0..=4_u32,
        proptest::option::of((any::<bool>(), any::<bool>())),
        proptest::option::of(0..=3_u32),
        (proptest::option::of(0..=3_u64), proptest::option::of(0..=3_u64)),
        prop::collection::vec(port_spec, 0..=2),
        any::<bool>(),
    );
    let apps = prop::collection::vec(prop::collection::vec(service_spec, 1..=3), 1..=3);
    let containers =
        prop::collection::vec((0..3_usize, 0..3_usize, 1..=5_u32, 0..6_usize, 0..5_u8), 0..24);
    let volumes = prop::collection::vec((0..3_usize, 0..6_usize), 0..4);
    let unreachable = prop::collection::vec(prop::bool::weighted(0.15), 6);
    (prop::collection::vec(host_spec, 1..=5), apps, containers, volumes, unreachable).prop_map(
        |(host_specs, app_specs, containers, volumes, unreachable)| {
            let fleet = host_specs.iter().enumerate().map(|(i, (zone, cpu, memory))| {
                host(&format!("h{i}"))
                    .label("zone", if *zone { "x" } else { "y" })
                    .capacity(cpu.map(|c| c * 1000), memory.map(|m| m * GIB))
            });
            let apps = app_specs.iter().enumerate().map(|(a, services)| {
                let services = services.iter().enumerate().map(|(s, spec)| {
                    let (replicas, zone, max, (cpu, memory), ports, stateful) = spec;
                    let mut svc = service(&format!("s{s}"), *replicas)
                        .reserve(cpu.map(|c| c * 500), memory.map(|m| m * GIB / 2));
                    if let Some((equal, x)) = zone {
                        let op = if *equal { "==" } else { "!=" };
                        svc = svc.constraint(&format!(
                            "node.labels.zone {op} {}",
                            if *x { "x" } else { "y" }
                        ));
                    }
                    if let Some(max) = max {
                        svc = svc.max_per_node(*max);
                    }
                    let mut seen = BTreeSet::new();
                    for (port, udp, ip) in ports {
                        let proto = if *udp { "/udp" } else { "/tcp" };
                        // One mapping per port and protocol within a service.
                        if *port == "-" || seen.insert((*port, *udp)) {
                            svc = svc.publish(&format!("{ip}{port}{proto}"));
                        }
                    }
                    if *stateful {
                        svc = svc.mount_volume("data");
                    }
                    svc
                });
                app(&format!("app{a}"), services).volume("data", false)
            });
            let mut obs = Obs::default();
            for (a, s, replica, h, fleet) in containers {
                let fleet = if fleet == 0 { "other" } else { FLEET };
                obs = obs.labelled(&format!("h{h}"), fleet, &format!("app{a}/s{s}#{replica}"));
            }
            for (a, h) in volumes {
                obs = obs.volume(&format!("h{h}"), FLEET, &format!("app{a}"), "data");
            }
            for (h, down) in unreachable.into_iter().enumerate() {
                if down {
                    obs = obs.unreachable(&format!("h{h}"));
                }
            }
            (model(fleet, apps), obs.build())
        },
    )
}

/// Every invariant a schedule must hold for `model`.
fn check_invariants(model: &Model, schedule: &Schedule) -> Result<(), TestCaseError> {
    let mut desired = BTreeSet::new();
    for (a, app) in &model.apps {
        for (s, service) in &app.services {
            for replica in 1..=service.deploy.replicas {
                desired.insert(ReplicaKey {
                    app: a.as_str().into(),
                    service: s.as_str().into(),
                    replica,
                });
            }
        }
    }
    let mut accounted: Vec<&ReplicaKey> = schedule.assignments.keys().collect();
    accounted.extend(schedule.unplaced.iter().map(|u| &u.replica));
    accounted.sort();
    let unique: BTreeSet<&ReplicaKey> = accounted.iter().copied().collect();
    prop_assert_eq!(
        unique.len(),
        accounted.len(),
        "a replica is both placed and unplaced, or twice unplaced"
    );
    prop_assert_eq!(unique, desired.iter().collect::<BTreeSet<_>>());
    for unplaced in &schedule.unplaced {
        prop_assert!(!unplaced.reason.is_empty());
    }

    let mut on_host: BTreeMap<&str, Vec<(&ReplicaKey, &Service)>> = BTreeMap::new();
    for (replica, host_name) in &schedule.assignments {
        let service = &model.apps[&*replica.app].services[&*replica.service];
        let host = &model.fleet.hosts[host_name];
        for c in &service.deploy.placement.constraints {
            prop_assert!(c.satisfied_by(host), "{} on {} breaks {}", replica, host_name, c);
        }
        on_host.entry(host_name).or_default().push((replica, service));
    }
    for (host_name, replicas) in &on_host {
        let capacity = model.fleet.hosts[*host_name].capacity;
        let reserved = |f: fn(&Service) -> Option<u64>| {
            replicas.iter().map(|(_, s)| f(s).unwrap_or(0)).sum::<u64>()
        };
        let cpu = reserved(|s| s.deploy.resources.reservations.millicpus);
        let memory = reserved(|s| s.deploy.resources.reservations.memory_bytes);
        prop_assert!(capacity.millicpus.is_none_or(|c| cpu <= c), "{} over CPU", host_name);
        prop_assert!(
            capacity.memory_bytes.is_none_or(|m| memory <= m),
            "{} over memory",
            host_name
        );

        let mut per_service: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for (replica, service) in replicas {
            let count = per_service.entry((&*replica.app, &*replica.service)).or_default();
            *count += 1;
            if let Some(max) = service.deploy.placement.max_replicas_per_node.filter(|&m| m > 0) {
                prop_assert!(
                    *count <= max,
                    "{} exceeds max_replicas_per_node on {}",
                    replica,
                    host_name
                );
            }
        }

        let published: Vec<(&ReplicaKey, u16, Protocol, Option<&str>)> = replicas
            .iter()
            .flat_map(|(replica, service)| {
                service.ports.iter().filter_map(move |p| {
                    Some((*replica, p.published?, p.protocol, specific_ip(p.host_ip.as_deref())))
                })
            })
            .collect();
        for (i, (r1, port1, proto1, ip1)) in published.iter().enumerate() {
            for (r2, port2, proto2, ip2) in &published[i + 1..] {
                let clash = port1 == port2
                    && proto1 == proto2
                    && (ip1.is_none() || ip2.is_none() || ip1 == ip2);
                prop_assert!(
                    r1 == r2 || !clash,
                    "{} and {} both publish {} on {}",
                    r1,
                    r2,
                    port1,
                    host_name
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn schedules_hold_every_invariant_and_are_a_fixed_point((model, observed) in arbitrary_case()) {
        let first = schedule(&model, &observed);
        check_invariants(&model, &first)?;
        prop_assert_eq!(&schedule(&model, &observed), &first, "not deterministic");
        let applied = observed_from(&model, &first, &observed);
        let second = schedule(&model, &applied);
        prop_assert_eq!(&second.assignments, &first.assignments, "rescheduling moved replicas");
        let unplaced = |s: &Schedule| s.unplaced.iter().map(|u| u.replica.clone()).collect::<Vec<_>>();
        prop_assert_eq!(unplaced(&second), unplaced(&first));
    }

    #[test]
    fn adding_a_host_and_an_app_moves_no_replica((model, observed) in arbitrary_case()) {
        let first = schedule(&model, &observed);
        let applied = observed_from(&model, &first, &observed);
        let mut grown = model.clone();
        let extra = host("h9").label("zone", "x");
        grown.fleet.hosts.insert(extra.name.clone(), extra);
        let newcomer = app("new", [service("web", 3), service("db", 1).max_per_node(1)]);
        grown.apps.insert(newcomer.name.clone(), std::sync::Arc::new(newcomer));
        let second = schedule(&grown, &applied);
        check_invariants(&grown, &second)?;
        for (replica, host) in &first.assignments {
            prop_assert_eq!(second.assignments.get(replica), Some(host), "{} moved", replica);
        }
    }
}
