//! The fleet the planning benchmarks use, built in code (no YAML): hosts with zone and disk
//! labels and a capacity, apps of 10 services × 3 replicas in the shape people write, and the
//! state a perfect deploy leaves on the hosts with 1% of it then disturbed.

#![allow(dead_code)] // each bench uses its own part of this

use std::collections::BTreeMap;

use gitfleet::diff::simulate::apply_plan;
use gitfleet::diff::{Desired, HostObservation, HostState, Observed, labels, plan};
use gitfleet::model::{
    App, Capacity, Constraint, Dependency, DependencyCondition, Deploy, Endpoint, Fleet,
    Healthcheck, Host, Model, NetworkDef, NodeAttribute, Placement, Platform, PortMapping,
    Protocol, PullPolicy, ResourceAmounts, Resources, Service, ServiceNetwork, Settings,
    UpdateConfig,
};

pub const FLEET: &str = "bench";
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
pub const SERVICES: usize = 10;
pub const REPLICAS: u32 = 3;

pub fn host(i: usize) -> Host {
    let name = format!("host-{i:04}");
    let zone = ["a", "b", "c"][i % 3];
    let mut labels = BTreeMap::from([("zone".to_string(), zone.to_string())]);
    if i % 2 == 0 {
        labels.insert("disk".into(), "ssd".into());
    }
    Host {
        endpoint: Endpoint::Tcp {
            host: format!("10.0.{}.{}", i / 250, i % 250 + 1),
            port: 2375,
            tls: None,
        },
        address: Some(format!("10.0.{}.{}", i / 250, i % 250 + 1)),
        labels,
        // 300 replicas a host on average, each reserving 50m CPU and 64 MiB.
        capacity: Capacity { millicpus: Some(64_000), memory_bytes: Some(128 << 30) },
        platform: Platform::default(),
        name,
    }
}

pub fn service(app: &str, s: usize) -> Service {
    let name = format!("svc{s}");
    let mut depends_on = BTreeMap::new();
    if s > 0 {
        // A chain of two levels at most: svc0 ← svc1..svc9.
        let dependency =
            Dependency { condition: DependencyCondition::ServiceStarted, required: true };
        depends_on.insert("svc0".to_string(), dependency);
    }
    let constraints = if s == 0 {
        // The stateful-looking one wants fast disks.
        vec![Constraint {
            attribute: NodeAttribute::Label("disk".into()),
            equal: true,
            value: "ssd".into(),
        }]
    } else {
        Vec::new()
    };
    Service {
        image: format!("registry.example.com/{app}/{name}:1.{s}.0"),
        command: (s % 2 == 1).then(|| vec!["serve".into(), "--port".into(), "8080".into()]),
        entrypoint: None,
        environment: BTreeMap::from([
            ("LOG_LEVEL".to_string(), "info".to_string()),
            ("DATABASE_URL".to_string(), format!("postgres://{app}-svc0:5432/{app}")),
        ]),
        ports: vec![PortMapping {
            target: 8080,
            published: None,
            host_ip: None,
            protocol: Protocol::Tcp,
        }],
        expose: Vec::new(),
        networks: BTreeMap::from([("default".to_string(), ServiceNetwork::default())]),
        mounts: Vec::new(),
        configs: Vec::new(),
        secrets: Vec::new(),
        labels: BTreeMap::from([("team".to_string(), format!("team-{}", s % 4))]),
        healthcheck: Some(Healthcheck {
            test: vec![
                "CMD".into(),
                "wget".into(),
                "-q".into(),
                "-O-".into(),
                "http://127.0.0.1:8080/health".into(),
            ],
            interval_ms: Some(10_000),
            timeout_ms: Some(2_000),
            retries: Some(3),
            start_period_ms: Some(5_000),
        }),
        depends_on,
        restart: None,
        user: None,
        working_dir: None,
        stop_grace_period_ms: Some(10_000),
        stop_signal: None,
        hostname: None,
        extra_hosts: Vec::new(),
        pull_policy: None,
        deploy: Deploy {
            replicas: REPLICAS,
            placement: Placement { constraints, max_replicas_per_node: None },
            resources: Resources {
                limits: ResourceAmounts {
                    millicpus: Some(500),
                    memory_bytes: Some(256 << 20),
                    pids: None,
                },
                reservations: ResourceAmounts {
                    millicpus: Some(50),
                    memory_bytes: Some(64 << 20),
                    pids: None,
                },
            },
            update_config: UpdateConfig::default(),
            rollback_config: UpdateConfig::default(),
            restart_policy: None,
        },
        routes: Vec::new(),
        name,
    }
}

pub fn app(a: usize) -> App {
    let name = format!("app{a:04}");
    let network = NetworkDef {
        docker_name: format!("{name}_default"),
        external: false,
        driver: None,
        internal: false,
        labels: BTreeMap::new(),
    };
    App {
        file: format!("apps/{name}/compose.yaml"),
        services: (0..SERVICES).map(|s| service(&name, s)).map(|s| (s.name.clone(), s)).collect(),
        networks: BTreeMap::from([("default".to_string(), network)]),
        volumes: BTreeMap::new(),
        configs: BTreeMap::new(),
        secrets: BTreeMap::new(),
        name,
    }
}

/// A fleet of `apps` apps × 10 services × 3 replicas on `hosts` hosts.
pub fn model(hosts: usize, apps: usize) -> Model {
    Model {
        fleet: Fleet {
            hosts: (0..hosts).map(host).map(|h| (h.name.clone(), h)).collect(),
            settings: Settings {
                name: FLEET.into(),
                observe_timeout_ms: 10_000,
                pull_policy: PullPolicy::Missing,
                ..Settings::default()
            },
            variables: BTreeMap::new(),
        },
        apps: (0..apps).map(app).map(|a| (a.name.clone(), std::sync::Arc::new(a))).collect(),
    }
}

/// Every host reachable and empty.
pub fn empty(model: &Model) -> Observed {
    let hosts = model
        .fleet
        .hosts
        .keys()
        .map(|h| (h.clone(), HostObservation::Reachable(HostState::default())))
        .collect();
    Observed { hosts }
}

/// What the hosts run once the model is deployed, with 1% of the replicas then disturbed:
/// a third removed, a third running an older spec, a third exited.
pub fn observed(model: &Model) -> Observed {
    let nothing = empty(model);
    let desired = Desired::new(model, &nothing, Some(REVISION.into()));
    let first = plan(&desired, &nothing);
    let mut observed = apply_plan(&nothing, &first);
    let mut n = 0_usize;
    for observation in observed.hosts.values_mut() {
        let HostObservation::Reachable(state) = observation else { continue };
        state.containers.retain_mut(|container| {
            n += 1;
            // Every 100th container, in three kinds by turn.
            if n % 100 != 0 {
                return true;
            }
            match (n / 100) % 3 {
                0 => false,
                1 => {
                    let spec = container.labels.get(labels::SPEC).cloned().unwrap_or_default();
                    let older = spec.replace(":1.", ":0.");
                    container.labels.insert(labels::SPEC.into(), older);
                    container.labels.insert(labels::SPEC_HASH.into(), "0000000000000000".into());
                    true
                }
                _ => {
                    container.state = "exited".into();
                    true
                }
            }
        });
    }
    observed
}

pub fn replicas(observed: &Observed) -> usize {
    observed
        .hosts
        .values()
        .map(|o| match o {
            HostObservation::Reachable(state) => state.containers.len(),
            HostObservation::Unreachable { .. } => 0,
        })
        .sum()
}
