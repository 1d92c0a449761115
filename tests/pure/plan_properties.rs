//! Properties of the planner (`diff::plan`) over random fleets, workloads and observations.
//!
//! The observations are deliberately messy: replicas of this fleet that match, that carry a
//! stale spec hash or no hash, that have exited, that belong to apps, services or replica
//! numbers that no longer exist, duplicates (on one host and across hosts), containers with
//! this fleet's label but incomplete gitfleet labels, hosts no longer registered, this
//! fleet's networks and volumes (some twice, some under an older Docker name), and foreign
//! objects (no labels at all, or another fleet's complete set of labels) that must never be
//! touched.
//!
//! Properties:
//!
//! * idempotence: plan, apply the plan (`diff::simulate::apply_plan`), plan again: nothing to
//!   do on any host;
//! * references: after the plan, every wanted container finds the networks and volumes it
//!   names, by Docker name, on its host;
//! * retained volumes: exactly this fleet's volumes that are not wanted are listed;
//! * safety: every step that names an observed object (replace, remove) names one of this
//!   fleet's, and volumes are only ever retained, never removed;
//! * determinism: planning twice gives byte-identical JSON;
//! * unreachable hosts get no steps;
//! * the epoch label (`io.gitfleet.epoch`) changes no plan: a failover replaces nothing.
//!
//! Every property runs on every input, except idempotence, which also runs (green) on inputs
//! without the one known bug below; on every input it is `#[ignore]`d until that bug is
//! fixed (run it with `--include-ignored`).
//!
//! # Bugs these properties found
//!
//! Fixed in dc69943 (each has a regression test at the end of this file):
//!
//! 1. Networks and volumes of one app and key on a host collapsed into one map entry
//!    (`src/diff/plan.rs`): one duplicate removed per plan, one volume retained per key.
//! 2. Networks and volumes were matched by app and key only, not by Docker name
//!    (`src/diff/plan.rs`): after a `name:` change no create step, and replaced containers
//!    would join a network that does not exist.
//! 3. A stateful replica assigned to an unreachable host moved to a reachable host holding
//!    its volume on the next plan (`src/diff/schedule/`).
//!
//! # Known bug
//!
//! Only for an unreachable host nobody remembers, which is what a one-off `gitfleet plan` or
//! `apply` sees; the controller remembers every host's last observation (`last_seen`), and
//! with it the scheduler gives an unreachable host no new replicas. Generated cases mark
//! their unreachable hosts remembered half of the time, and idempotence holds on all of
//! those.
//!
//! **Replicas assigned to an unreachable host nobody remembers can still move on the next
//! plan**
//! (`src/diff/schedule/`; dc69943 fixed the simplest case). Their placement is recomputed
//! by phase 2 on every plan from whatever else is observed; when the first plan's changes
//! alter that (here: a volume created on another host, which widens the volume pinning),
//! the second plan places them elsewhere and creates them again while the unreachable host
//! may still run them. Example (the ignored `known_bug_...` test at the end): hosts h0
//! (unreachable), h1 (holds `app0_data`), h2; one app with `svc0` and `svc1`, 3 replicas
//! each, both mounting `data`, `svc1` publishing 8080. Plan 1 puts svc0#1 and svc0#3 on h0,
//! and svc1#3 on h2 (8080 is taken on h0 and h1), creating `app0_data` on h2; plan 2 then
//! pins svc0 to h0, h1 and h2, and svc0#3 goes to h2: a second copy.

use std::collections::{BTreeMap, BTreeSet};

use gitfleet::diff::desired::container_name;
use gitfleet::diff::labels;
use gitfleet::diff::render;
use gitfleet::diff::simulate::apply_plan;
use gitfleet::diff::spec::ContainerSpec;
use gitfleet::diff::{
    Desired, HostObservation, HostState, HostStatus, MemoStats, Observed, ObservedContainer,
    ObservedObject, Plan, ReplicaKey, SpecMemo, Step, plan,
};
use gitfleet::model::{
    App, Capacity, Constraint, Dependency, DependencyCondition, Endpoint, Fleet, Host, Model,
    Mount, MountSource, NetworkDef, NodeAttribute, Placement, PortMapping, Protocol,
    ResourceAmounts, Resources, Service, ServiceNetwork, Settings, UpdateConfig, VolumeDef,
};
use proptest::prelude::*;

const FLEET: &str = "prod";
const OTHER_FLEET: &str = "staging";
const ZONES: [&str; 3] = ["a", "b", "c"];
const IMAGES: [&str; 3] = ["nginx:1.27", "redis:7", "postgres:16"];
const PORTS: [u16; 3] = [8080, 8081, 9000];
const GIB: u64 = 1 << 30;
/// Host indices at or above the number of hosts name a host that is no longer registered.
const MAX_HOSTS: usize = 5;

// ---- generated inputs -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct HostSpec {
    zone: usize,
    cpus: Option<u64>,
    memory_gib: Option<u64>,
}

#[derive(Debug, Clone)]
struct ServiceSpec {
    image: usize,
    replicas: u32,
    zone: Option<usize>,
    max_per_node: Option<u32>,
    port: Option<usize>,
    volume: bool,
    environment: BTreeMap<String, String>,
    /// Raw picks; service `i` depends on `pick % i` for every pick (only smaller indices).
    depends_on: Vec<usize>,
    /// Reserved half-CPUs and half-GiBs.
    reserve: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
enum HashKind {
    Current,
    /// Labels of a spec that has since changed (another image).
    Stale,
    /// No spec-hash / spec labels at all.
    Missing,
}

#[derive(Debug, Clone)]
enum ContainerGen {
    /// A container of this fleet. `app` / `service` at or above the model's counts name ones
    /// that are no longer in the repository; `replica` may be above the replica count.
    Ours { host: usize, app: usize, service: usize, replica: u32, running: bool, hash: HashKind },
    /// This fleet's label, but not the app / service / replica labels.
    Incomplete { host: usize },
    /// No labels at all; sometimes with the very name a desired container would have.
    Unlabelled { host: usize, app: usize, service: usize, replica: u32 },
    /// Another fleet's container, with a complete set of labels for one of our replicas.
    OtherFleet { host: usize, app: usize, service: usize, replica: u32 },
}

#[derive(Debug, Clone)]
enum ObjectGen {
    /// This fleet's object of app `app` and key `key` (0: the one in use, 1: an old one).
    /// `renamed`: its Docker name is not the one the model gives it now (the app set `name:`
    /// since, say).
    Ours {
        host: usize,
        app: usize,
        key: usize,
        renamed: bool,
    },
    Unlabelled {
        host: usize,
    },
    OtherFleet {
        host: usize,
        app: usize,
        key: usize,
    },
}

#[derive(Debug, Clone)]
struct Case {
    hosts: Vec<HostSpec>,
    apps: Vec<Vec<ServiceSpec>>,
    reachable: Vec<bool>,
    /// Unreachable hosts come with their last observation, as the controller remembers it.
    remembered: bool,
    containers: Vec<ContainerGen>,
    networks: Vec<ObjectGen>,
    volumes: Vec<ObjectGen>,
}

fn host_spec() -> impl Strategy<Value = HostSpec> {
    (0..3_usize, proptest::option::of(1..=4_u64), proptest::option::of(1..=4_u64))
        .prop_map(|(zone, cpus, memory_gib)| HostSpec { zone, cpus, memory_gib })
}

fn service_spec() -> impl Strategy<Value = ServiceSpec> {
    let environment = prop::collection::btree_map(
        prop::sample::select(vec!["A", "B", "LOG_LEVEL"]).prop_map(String::from),
        prop::sample::select(vec!["1", "2", "debug", ""]).prop_map(String::from),
        0..=2,
    );
    (
        (0..IMAGES.len(), 0..=4_u32, proptest::option::of(0..3_usize)),
        (proptest::option::of(0..=2_u32), proptest::option::of(0..PORTS.len()), any::<bool>()),
        environment,
        prop::collection::vec(0..4_usize, 0..=2),
        proptest::option::weighted(0.3, (0..=2_u64, 0..=2_u64)),
    )
        .prop_map(
            |(
                (image, replicas, zone),
                (max_per_node, port, volume),
                environment,
                depends_on,
                reserve,
            )| {
                ServiceSpec {
                    image,
                    replicas,
                    zone,
                    max_per_node,
                    port,
                    volume,
                    environment,
                    depends_on,
                    reserve,
                }
            },
        )
}

fn hash_kind() -> impl Strategy<Value = HashKind> {
    prop_oneof![
        6 => Just(HashKind::Current),
        2 => Just(HashKind::Stale),
        1 => Just(HashKind::Missing),
    ]
}

fn container_gen() -> impl Strategy<Value = ContainerGen> {
    let host = 0..=MAX_HOSTS;
    let ours =
        (
            host.clone(),
            (0..5_usize, 0..5_usize, 1..=6_u32),
            prop::bool::weighted(0.75),
            hash_kind(),
        )
            .prop_map(|(host, (app, service, replica), running, hash)| {
                ContainerGen::Ours { host, app, service, replica, running, hash }
            });
    let key = (0..5_usize, 0..5_usize, 1..=4_u32);
    let unlabelled = (host.clone(), key.clone()).prop_map(|(host, (app, service, replica))| {
        ContainerGen::Unlabelled { host, app, service, replica }
    });
    let other = (host.clone(), key).prop_map(|(host, (app, service, replica))| {
        ContainerGen::OtherFleet { host, app, service, replica }
    });
    prop_oneof![
        8 => ours,
        1 => host.prop_map(|host| ContainerGen::Incomplete { host }),
        2 => unlabelled,
        2 => other,
    ]
}

fn object_gen() -> impl Strategy<Value = ObjectGen> {
    let host = 0..=MAX_HOSTS;
    let ours = (host.clone(), 0..5_usize, 0..2_usize, prop::bool::weighted(0.2))
        .prop_map(|(host, app, key, renamed)| ObjectGen::Ours { host, app, key, renamed });
    let other = (host.clone(), 0..5_usize, 0..2_usize)
        .prop_map(|(host, app, key)| ObjectGen::OtherFleet { host, app, key });
    prop_oneof![
        4 => ours,
        1 => host.prop_map(|host| ObjectGen::Unlabelled { host }),
        2 => other,
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(host_spec(), 1..=MAX_HOSTS),
        prop::collection::vec(prop::collection::vec(service_spec(), 1..=4), 1..=4),
        prop::collection::vec(prop::bool::weighted(0.8), MAX_HOSTS + 1),
        prop::collection::vec(container_gen(), 0..24),
        prop::collection::vec(object_gen(), 0..8),
        prop::collection::vec(object_gen(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(hosts, apps, reachable, containers, networks, volumes, remembered)| Case {
            hosts,
            apps,
            reachable,
            remembered,
            containers,
            networks,
            volumes,
        })
}

/// [`case`] without the input that trips the known bug (see the file header): stateful
/// services in a fleet with an unreachable host nobody remembers.
fn case_avoiding_known_bug() -> impl Strategy<Value = Case> {
    case().prop_map(|mut case| {
        if !case.remembered && case.reachable[..case.hosts.len()].contains(&false) {
            for service in case.apps.iter_mut().flatten() {
                service.volume = false;
            }
        }
        case
    })
}

// ---- building the model and the observation --------------------------------------------

fn host_name(i: usize) -> String {
    format!("h{i}")
}

fn app_name(i: usize, apps: usize) -> String {
    if i < apps { format!("app{i}") } else { format!("gone{i}") }
}

fn service_name(i: usize, services: usize) -> String {
    if i < services { format!("svc{i}") } else { format!("old{i}") }
}

fn service(index: usize, spec: &ServiceSpec) -> Service {
    let mut mounts = Vec::new();
    if spec.volume {
        mounts.push(Mount {
            source: MountSource::Volume { volume: "data".into() },
            target: "/data".into(),
            read_only: false,
        });
    }
    let ports = spec
        .port
        .map(|p| PortMapping {
            target: 80,
            published: Some(PORTS[p]),
            host_ip: None,
            protocol: Protocol::Tcp,
        })
        .into_iter()
        .collect();
    let constraints = spec
        .zone
        .map(|z| Constraint {
            attribute: NodeAttribute::Label("zone".into()),
            equal: true,
            value: ZONES[z].into(),
        })
        .into_iter()
        .collect();
    let depends_on = if index == 0 {
        BTreeMap::new()
    } else {
        spec.depends_on
            .iter()
            .map(|pick| {
                (
                    service_name(pick % index, usize::MAX),
                    Dependency { condition: DependencyCondition::ServiceStarted, required: true },
                )
            })
            .collect()
    };
    let reservations = match spec.reserve {
        Some((cpu, memory)) => ResourceAmounts {
            millicpus: Some(cpu * 500),
            memory_bytes: Some(memory * GIB / 2),
            pids: None,
        },
        None => ResourceAmounts::default(),
    };
    let mut service = bare_service(&service_name(index, usize::MAX), IMAGES[spec.image]);
    service.environment = spec.environment.clone();
    service.ports = ports;
    service.networks = BTreeMap::from([("default".to_string(), ServiceNetwork::default())]);
    service.mounts = mounts;
    service.depends_on = depends_on;
    service.deploy.replicas = spec.replicas;
    service.deploy.placement = Placement { constraints, max_replicas_per_node: spec.max_per_node };
    service.deploy.resources = Resources { limits: ResourceAmounts::default(), reservations };
    service
}

/// A service with nothing but a name and an image. Built through serde so that optional
/// fields added to `Service` later start as `None` here without touching this test.
fn bare_service(name: &str, image: &str) -> Service {
    let update = serde_json::to_value(UpdateConfig::default()).expect("serialises");
    let json = serde_json::json!({
        "name": name,
        "image": image,
        "environment": {},
        "ports": [],
        "networks": {},
        "mounts": [],
        "configs": [],
        "secrets": [],
        "labels": {},
        "depends_on": {},
        "deploy": {
            "replicas": 1,
            "placement": { "constraints": [] },
            "resources": serde_json::to_value(Resources::default()).expect("serialises"),
            "update_config": update.clone(),
            "rollback_config": update,
        },
        "routes": [],
    });
    serde_json::from_value(json)
        .expect("a bare service deserialises (has `Service` gained a required field?)")
}

/// The Docker name and key of an app's network (`0`: in use, `1`: an old one).
fn network_key(key: usize) -> &'static str {
    ["default", "backend"][key]
}

fn volume_key(key: usize) -> &'static str {
    ["data", "cache"][key]
}

fn build_model(case: &Case) -> Model {
    let hosts = case
        .hosts
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let name = host_name(i);
            let host = Host {
                name: name.clone(),
                endpoint: Endpoint::Tcp { host: format!("10.0.0.{i}"), port: 2375, tls: None },
                address: None,
                labels: BTreeMap::from([("zone".to_string(), ZONES[spec.zone].to_string())]),
                capacity: Capacity {
                    millicpus: spec.cpus.map(|c| c * 1000),
                    memory_bytes: spec.memory_gib.map(|m| m * GIB),
                },
                platform: Default::default(),
            };
            (name, host)
        })
        .collect();
    let apps = case
        .apps
        .iter()
        .enumerate()
        .map(|(a, services)| {
            let name = format!("app{a}");
            let app = App {
                name: name.clone(),
                file: format!("apps/{name}/compose.yaml"),
                services: services
                    .iter()
                    .enumerate()
                    .map(|(s, spec)| (service_name(s, usize::MAX), service(s, spec)))
                    .collect(),
                networks: BTreeMap::from([(
                    "default".to_string(),
                    NetworkDef {
                        docker_name: format!("{name}_default"),
                        external: false,
                        driver: None,
                        internal: false,
                        labels: BTreeMap::new(),
                    },
                )]),
                volumes: BTreeMap::from([(
                    "data".to_string(),
                    VolumeDef {
                        docker_name: format!("{name}_data"),
                        external: false,
                        driver: None,
                        labels: BTreeMap::new(),
                    },
                )]),
                configs: BTreeMap::new(),
                secrets: BTreeMap::new(),
            };
            (name, std::sync::Arc::new(app))
        })
        .collect();
    Model {
        fleet: Fleet {
            hosts,
            settings: Settings { name: FLEET.into(), ..Settings::default() },
            variables: BTreeMap::new(),
        },
        apps,
    }
}

/// The container spec the model wants for `app`/`service`, or a made-up one for what is no
/// longer in the repository.
fn spec_for(model: &Model, app: &str, service: &str, stale: bool) -> ContainerSpec {
    let found = model.apps.get(app).and_then(|a| a.services.get(service).map(|s| (a, s)));
    let (app, mut service) = match found {
        Some((a, s)) => (a.clone(), s.clone()),
        None => {
            let first = model.apps.values().next().expect("at least one app");
            let mut s = first.services.values().next().expect("at least one service").clone();
            s.name = service.to_string();
            (first.clone(), s)
        }
    };
    if stale {
        service.image = "busybox:old".into();
    }
    ContainerSpec::of(&app, &service)
}

fn build_observed(case: &Case, model: &Model) -> Observed {
    let apps = case.apps.len();
    let services_of = |a: usize| case.apps.get(a).map_or(0, Vec::len);
    let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
    let mut next_id = 0_usize;
    let mut id = |prefix: &str| {
        next_id += 1;
        format!("{prefix}{next_id:04}")
    };
    // Docker names are unique per host.
    let mut names: BTreeSet<(String, String)> = BTreeSet::new();
    let mut unique_name = |host: &str, name: String, id: &str| {
        if names.insert((host.to_string(), name.clone())) {
            name
        } else {
            let name = format!("{name}-{id}");
            names.insert((host.to_string(), name.clone()));
            name
        }
    };

    for item in &case.containers {
        let container = match item {
            ContainerGen::Ours { host, app, service, replica, running, hash } => {
                let h = host_name(*host);
                let key = ReplicaKey {
                    app: app_name(*app, apps).into(),
                    service: service_name(*service, services_of(*app)).into(),
                    replica: *replica,
                };
                let spec = spec_for(model, &key.app, &key.service, matches!(hash, HashKind::Stale));
                let mut labels =
                    labels::for_container(FLEET, &key, &spec, &spec.hash(), Some("0123abcd"));
                if matches!(hash, HashKind::Missing) {
                    labels.remove(labels::SPEC_HASH);
                    labels.remove(labels::SPEC);
                }
                let id = id("c");
                let name = unique_name(&h, container_name(&key), &id);
                (
                    h,
                    ObservedContainer {
                        id,
                        name,
                        state: if *running { "running" } else { "exited" }.into(),
                        labels,
                        created: 0,
                        health: None,
                        ports: Vec::new(),
                    },
                )
            }
            ContainerGen::Incomplete { host } => {
                let h = host_name(*host);
                let id = id("c");
                let name = unique_name(&h, "half-labelled".into(), &id);
                let labels = BTreeMap::from([(labels::FLEET.to_string(), FLEET.to_string())]);
                (
                    h,
                    ObservedContainer {
                        id,
                        name,
                        state: "running".into(),
                        labels,
                        created: 0,
                        health: None,
                        ports: Vec::new(),
                    },
                )
            }
            ContainerGen::Unlabelled { host, app, service, replica } => {
                let h = host_name(*host);
                let key = ReplicaKey {
                    app: app_name(*app, apps).into(),
                    service: service_name(*service, services_of(*app)).into(),
                    replica: *replica,
                };
                let id = id("c");
                let name = unique_name(&h, container_name(&key), &id);
                (
                    h,
                    ObservedContainer {
                        id,
                        name,
                        state: "running".into(),
                        labels: BTreeMap::new(),
                        created: 0,
                        health: None,
                        ports: Vec::new(),
                    },
                )
            }
            ContainerGen::OtherFleet { host, app, service, replica } => {
                let h = host_name(*host);
                let key = ReplicaKey {
                    app: app_name(*app, apps).into(),
                    service: service_name(*service, services_of(*app)).into(),
                    replica: *replica,
                };
                let spec = spec_for(model, &key.app, &key.service, true);
                let labels = labels::for_container(OTHER_FLEET, &key, &spec, &spec.hash(), None);
                let id = id("c");
                let name = unique_name(&h, container_name(&key), &id);
                (
                    h,
                    ObservedContainer {
                        id,
                        name,
                        state: "exited".into(),
                        labels,
                        created: 0,
                        health: None,
                        ports: Vec::new(),
                    },
                )
            }
        };
        hosts.entry(container.0).or_default().containers.push(container.1);
    }

    for (is_volume, gens) in [(false, &case.networks), (true, &case.volumes)] {
        for item in gens {
            let key_of = |k: usize| if is_volume { volume_key(k) } else { network_key(k) };
            let (host, object) = match item {
                ObjectGen::Ours { host, app, key, .. }
                | ObjectGen::OtherFleet { host, app, key } => {
                    let (fleet, renamed) = match item {
                        ObjectGen::Ours { renamed, .. } => (FLEET, *renamed),
                        _ => (OTHER_FLEET, false),
                    };
                    let app = app_name(*app, apps);
                    let key = key_of(*key);
                    let name =
                        if renamed { format!("{app}_{key}_v1") } else { format!("{app}_{key}") };
                    let id = if is_volume { name.clone() } else { id("n") };
                    let labels = labels::for_object(fleet, &app, key, &BTreeMap::new());
                    (host, ObservedObject { id, name, labels })
                }
                ObjectGen::Unlabelled { host } => {
                    let name = format!("foreign{}", id(""));
                    let id = if is_volume { name.clone() } else { id("n") };
                    (host, ObservedObject { id, name, labels: BTreeMap::new() })
                }
            };
            let state = hosts.entry(host_name(*host)).or_default();
            if is_volume {
                // A volume's name is its id: one per name on a host.
                if !state.volumes.iter().any(|v| v.id == object.id) {
                    state.volumes.push(object);
                }
            } else {
                state.networks.push(object);
            }
        }
    }

    let mut observed = Observed::default();
    for i in 0..=MAX_HOSTS {
        let name = host_name(i);
        let registered = i < case.hosts.len();
        let state = hosts.remove(&name).unwrap_or_default();
        if !case.reachable[i] {
            let reason = "connection refused".to_string();
            let last_seen = case.remembered.then_some(state);
            observed
                .hosts
                .insert(name, HostObservation::Unreachable { reason, last_seen, down: false });
        } else if registered || !state.containers.is_empty() {
            observed.hosts.insert(name, HostObservation::Reachable(state));
        }
    }
    observed
}

fn inputs(case: &Case) -> (Model, Observed) {
    let model = build_model(case);
    let observed = build_observed(case, &model);
    (model, observed)
}

// ---- helpers ------------------------------------------------------------------------------

fn plan_for(model: &Model, observed: &Observed) -> Plan {
    plan(&Desired::new(model, observed, None), observed)
}

fn reachable<'a>(observed: &'a Observed, host: &str) -> Option<&'a HostState> {
    match observed.hosts.get(host) {
        Some(HostObservation::Reachable(state)) => Some(state),
        _ => None,
    }
}

fn describe(plan: &Plan) -> String {
    render::text(plan)
}

// ---- properties ---------------------------------------------------------------------------

/// Planning again against the state the first plan promises finds nothing to do.
fn check_idempotent(case: &Case) -> Result<(), TestCaseError> {
    let (model, observed) = inputs(case);
    let p1 = plan_for(&model, &observed);
    let o2 = apply_plan(&observed, &p1);
    let p2 = plan_for(&model, &o2);
    prop_assert_eq!(
        (p2.summary.create, p2.summary.replace, p2.summary.remove),
        (0, 0, 0),
        "second plan is not empty:\n{}\nfirst plan:\n{}",
        describe(&p2),
        describe(&p1)
    );
    for host in &p2.hosts {
        prop_assert!(host.steps.is_empty(), "steps left on {}: {:?}", host.host, host.steps);
    }
    Ok(())
}

/// After the plan, every container wanted on a reachable host finds the networks and volumes
/// its spec names, by Docker name, on that host.
fn check_references_exist(case: &Case) -> Result<(), TestCaseError> {
    let (model, observed) = inputs(case);
    let desired = Desired::new(&model, &observed, None);
    let p1 = plan(&desired, &observed);
    let o2 = apply_plan(&observed, &p1);
    for (host, want) in &desired.hosts {
        let Some(state) = reachable(&o2, host) else {
            continue;
        };
        let networks: BTreeSet<&str> = state.networks.iter().map(|n| n.name.as_str()).collect();
        let volumes: BTreeSet<&str> = state.volumes.iter().map(|v| v.name.as_str()).collect();
        for (key, container) in &want.containers {
            for network in container.spec.networks.keys() {
                prop_assert!(
                    networks.contains(network.as_str()),
                    "{} on {} joins network {}, absent after the plan (there: {:?})\n{}",
                    key,
                    host,
                    network,
                    networks,
                    describe(&p1)
                );
            }
            for mount in container.spec.mounts.iter().filter(|m| m.kind == "volume") {
                prop_assert!(
                    volumes.contains(mount.source.as_str()),
                    "{} on {} mounts volume {}, absent after the plan (there: {:?})\n{}",
                    key,
                    host,
                    mount.source,
                    volumes,
                    describe(&p1)
                );
            }
        }
    }
    Ok(())
}

/// Every volume of this fleet on a reachable host that is not wanted there (by app, key and
/// Docker name) is listed as retained, and nothing else.
fn check_retained_volumes_complete(case: &Case) -> Result<(), TestCaseError> {
    let (model, observed) = inputs(case);
    let desired = Desired::new(&model, &observed, None);
    let p1 = plan(&desired, &observed);
    for host in &p1.hosts {
        let Some(state) = reachable(&observed, &host.host) else {
            continue;
        };
        let want = &desired.hosts[&host.host].volumes;
        let unused: BTreeSet<&str> = state
            .volumes
            .iter()
            .filter(|v| {
                v.owner(FLEET).is_some_and(|(app, key)| {
                    let key = (app.into(), key.into());
                    want.get(&key).is_none_or(|wanted| wanted.name != v.name)
                })
            })
            .map(|v| v.name.as_str())
            .collect();
        let retained: BTreeSet<&str> = host.retained_volumes.iter().map(String::as_str).collect();
        prop_assert_eq!(retained, unused, "retained volumes on {}", &host.host);
    }
    Ok(())
}

proptest! {
    // No failure persistence: a failing case is printed, not written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Plan, carry the plan out, plan again: nothing left to do anywhere.
    #[test]
    fn planning_is_idempotent(case in case_avoiding_known_bug()) {
        check_idempotent(&case)?;
    }

    #[test]
    #[ignore = "fails: known bug in src/diff/schedule/ (replicas on an unreachable host move); \
                see the file header"]
    fn planning_is_idempotent_on_every_input(case in case()) {
        check_idempotent(&case)?;
    }

    /// Networks and volumes are matched by Docker name, not only by app and key.
    #[test]
    fn containers_find_their_networks_and_volumes(case in case()) {
        check_references_exist(&case)?;
    }

    #[test]
    fn retained_volumes_are_complete(case in case()) {
        check_retained_volumes_complete(&case)?;
    }

    /// Only this fleet's objects are replaced or removed; volumes are never removed, and only
    /// this fleet's volumes are listed as retained.
    #[test]
    fn only_this_fleets_objects_are_touched(case in case()) {
        let (model, observed) = inputs(&case);
        let desired = Desired::new(&model, &observed, None);
        let p1 = plan(&desired, &observed);
        let json = render::json(&p1);
        prop_assert!(!json.contains("remove_volume"), "a plan removes a volume");
        let ours = |labels: &BTreeMap<String, String>| {
            labels.get(labels::FLEET).map(String::as_str) == Some(FLEET)
        };
        for host in &p1.hosts {
            let Some(state) = reachable(&observed, &host.host) else {
                continue;
            };
            for step in &host.steps {
                match step {
                    Step::ReplaceContainer { id, .. } | Step::RemoveContainer { id, .. } => {
                        let found = state.containers.iter().find(|c| &c.id == id);
                        prop_assert!(
                            found.is_some_and(|c| ours(&c.labels)),
                            "{:?} on {} names no container of this fleet: {:?}",
                            step,
                            host.host,
                            found
                        );
                    }
                    Step::RemoveNetwork { id, .. } => {
                        let found = state.networks.iter().find(|n| &n.id == id);
                        prop_assert!(
                            found.is_some_and(|n| ours(&n.labels)),
                            "{:?} on {} names no network of this fleet: {:?}",
                            step,
                            host.host,
                            found
                        );
                    }
                    Step::CreateNetwork { .. }
                    | Step::CreateVolume { .. }
                    | Step::PullImage { .. }
                    | Step::CreateContainer { .. } => {}
                }
            }
            for name in &host.retained_volumes {
                let found = state.volumes.iter().find(|v| &v.name == name);
                prop_assert!(
                    found.is_some_and(|v| v.owner(FLEET).is_some()),
                    "retained volume {} on {} is not one of this fleet's: {:?}",
                    name,
                    host.host,
                    found
                );
            }
        }
    }

    /// The same inputs give the same plan, byte for byte.
    #[test]
    fn planning_is_deterministic(case in case()) {
        let (model, observed) = inputs(&case);
        let first = render::json(&plan_for(&model, &observed));
        let (model2, observed2) = inputs(&case);
        let second = render::json(&plan_for(&model2, &observed2));
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(first, render::json(&plan_for(&model, &observed)));
    }

    /// A failover replaces nothing: the leadership epoch a controller labels on what it
    /// creates (`io.gitfleet.epoch`) is not part of the spec hash, so containers, networks and
    /// volumes created by another epoch plan exactly as if unlabelled.
    #[test]
    fn the_epoch_label_changes_no_plan(case in case()) {
        let (model, observed) = inputs(&case);
        let unlabelled = render::json(&plan_for(&model, &observed));
        let mut stamped = observed.clone();
        for host in stamped.hosts.values_mut() {
            if let HostObservation::Reachable(state) = host {
                for container in &mut state.containers {
                    container.labels.insert(labels::EPOCH.into(), "41".into());
                }
                for object in state.networks.iter_mut().chain(state.volumes.iter_mut()) {
                    object.labels.insert(labels::EPOCH.into(), "41".into());
                }
            }
        }
        prop_assert_eq!(unlabelled, render::json(&plan_for(&model, &stamped)));
    }

    /// Planning with a memo of each app's specs (`Desired::new_memo`, as the controller
    /// plans) gives what planning without one gives: with the memo holding another model's
    /// apps (nothing found), this very model's (every app found), or all but one app of it
    /// (a commit that changed one app: that one is made again).
    #[test]
    fn a_spec_memo_changes_no_desired_state(case in case(), other in case()) {
        let (model, observed) = inputs(&case);
        let (other_model, other_observed) = inputs(&other);
        let fresh = Desired::new(&model, &observed, None);
        let mut memo = SpecMemo::default();
        Desired::new_memo(&other_model, &other_observed, None, &mut memo);
        prop_assert_eq!(&Desired::new_memo(&model, &observed, None, &mut memo), &fresh);
        prop_assert_eq!(memo.stats(), MemoStats { reused: 0, made: model.apps.len() });
        prop_assert_eq!(&Desired::new_memo(&model, &observed, None, &mut memo), &fresh);
        prop_assert_eq!(memo.stats(), MemoStats { reused: model.apps.len(), made: 0 });
        prop_assert_eq!(memo.len(), model.apps.len());
        // One app changed (a new `Arc<App>` with another image), the others shared.
        let mut changed = model.clone();
        if let Some(app) = changed.apps.values_mut().next() {
            let mut edited = App::clone(app);
            for service in edited.services.values_mut() {
                service.image.push_str("-next");
            }
            *app = std::sync::Arc::new(edited);
        }
        let expected = Desired::new(&changed, &observed, None);
        prop_assert_eq!(&Desired::new_memo(&changed, &observed, None, &mut memo), &expected);
        let made = usize::from(!model.apps.is_empty());
        prop_assert_eq!(memo.stats(), MemoStats { reused: model.apps.len() - made, made });
    }

    /// A host that could not be observed gets no steps and is reported unreachable.
    #[test]
    fn unreachable_hosts_get_no_steps(case in case()) {
        let (model, observed) = inputs(&case);
        let p1 = plan_for(&model, &observed);
        let mut unreachable = 0;
        for host in &p1.hosts {
            if reachable(&observed, &host.host).is_none() {
                unreachable += 1;
                prop_assert!(
                    host.steps.is_empty(),
                    "steps on unreachable host {}: {:?}",
                    host.host,
                    host.steps
                );
                prop_assert!(
                    matches!(host.status, HostStatus::Unreachable { .. }),
                    "{} is not reported unreachable",
                    host.host
                );
                prop_assert!(host.retained_volumes.is_empty());
            } else {
                prop_assert_eq!(&host.status, &HostStatus::Reachable);
            }
        }
        prop_assert_eq!(p1.summary.unreachable_hosts, unreachable);
        // Every registered host is in the plan, and only those.
        let planned: Vec<&str> = p1.hosts.iter().map(|h| h.host.as_str()).collect();
        let registered: Vec<&str> = model.fleet.hosts.keys().map(String::as_str).collect();
        prop_assert_eq!(planned, registered);
    }
}

// ---- the bugs found, one example each -----------------------------------------------------

fn plain_service(replicas: u32, volume: bool) -> ServiceSpec {
    ServiceSpec {
        image: 0,
        replicas,
        zone: None,
        max_per_node: None,
        port: None,
        volume,
        environment: BTreeMap::new(),
        depends_on: Vec::new(),
        reserve: None,
    }
}

fn plain_case(hosts: usize, services: Vec<ServiceSpec>) -> Case {
    Case {
        hosts: vec![HostSpec { zone: 0, cpus: None, memory_gib: None }; hosts],
        apps: vec![services],
        reachable: vec![true; MAX_HOSTS + 1],
        remembered: false,
        containers: Vec::new(),
        networks: Vec::new(),
        volumes: Vec::new(),
    }
}

fn steps_on<'p>(plan: &'p Plan, host: &str) -> Vec<&'p Step> {
    plan.hosts.iter().filter(|h| h.host == host).flat_map(|h| &h.steps).collect()
}

/// Bug 1 (fixed): two networks of this fleet for one app and key (Docker allows duplicate
/// network names) collapsed into one.
#[test]
fn every_network_of_a_removed_app_is_removed() {
    let mut case = plain_case(1, vec![plain_service(0, false)]);
    // Two networks of app `gone1` (no longer in the repository) on h0.
    let network = ObjectGen::Ours { host: 0, app: 1, key: 0, renamed: false };
    case.networks = vec![network.clone(), network];
    let (model, observed) = inputs(&case);
    let p1 = plan_for(&model, &observed);
    let removed =
        steps_on(&p1, "h0").iter().filter(|s| matches!(s, Step::RemoveNetwork { .. })).count();
    assert_eq!(removed, 2, "{}", describe(&p1));
}

/// Bug 2 (fixed): a network or volume of this fleet was taken as the wanted one by app and
/// key alone, even when its Docker name is not the one the containers will join.
#[test]
fn a_network_under_an_old_name_does_not_count() {
    let mut case = plain_case(1, vec![plain_service(1, false)]);
    // app0's `default` network exists, but as `app0_default_v1`.
    case.networks = vec![ObjectGen::Ours { host: 0, app: 0, key: 0, renamed: true }];
    let (model, observed) = inputs(&case);
    let p1 = plan_for(&model, &observed);
    let created: Vec<&str> = steps_on(&p1, "h0")
        .iter()
        .filter_map(|s| match s {
            Step::CreateNetwork { network, .. } => Some(network.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(created, ["app0_default"], "{}", describe(&p1));
}

/// Bug 3 (fixed): a stateful service's replica assigned to an unreachable host moved to a
/// reachable one on the next sync, because the volume that the first plan created there
/// pinned it.
#[test]
fn a_stateful_replica_on_an_unreachable_host_stays_there() {
    let mut case = plain_case(2, vec![plain_service(2, true)]);
    case.reachable[0] = false;
    let (model, observed) = inputs(&case);
    let p1 = plan_for(&model, &observed);
    let o2 = apply_plan(&observed, &p1);
    let p2 = plan_for(&model, &o2);
    assert!(
        steps_on(&p2, "h1").is_empty(),
        "first plan:\n{}\nsecond plan:\n{}",
        describe(&p1),
        describe(&p2)
    );
}

/// The known bug's input, with the unreachable host remembered as the controller does: the
/// new replicas go to hosts that can be seen, and nothing moves on the second plan.
#[test]
fn with_the_controllers_memory_nothing_moves_when_a_volume_appears() {
    let mut web = plain_service(3, true);
    web.port = Some(0); // publishes 8080
    let mut case = plain_case(3, vec![plain_service(3, true), web]);
    case.reachable[0] = false;
    case.remembered = true;
    case.volumes = vec![ObjectGen::Ours { host: 1, app: 0, key: 0, renamed: false }];
    let (model, observed) = inputs(&case);
    let p1 = plan_for(&model, &observed);
    let o2 = apply_plan(&observed, &p1);
    let p2 = plan_for(&model, &o2);
    assert!(
        p2.summary.is_empty(),
        "first plan:\n{}\nsecond plan:\n{}",
        describe(&p1),
        describe(&p2)
    );
}

/// The known bug (see the file header): a volume that the first plan creates on another host
/// moves a replica that phase 2 had assigned to the unreachable host.
#[test]
#[ignore = "known bug in src/diff/schedule/; see the file header"]
fn known_bug_replicas_on_an_unreachable_host_move_when_a_volume_appears() {
    let mut web = plain_service(3, true);
    web.port = Some(0); // publishes 8080
    let mut case = plain_case(3, vec![plain_service(3, true), web]);
    case.reachable[0] = false;
    case.volumes = vec![ObjectGen::Ours { host: 1, app: 0, key: 0, renamed: false }];
    let (model, observed) = inputs(&case);
    let p1 = plan_for(&model, &observed);
    let o2 = apply_plan(&observed, &p1);
    let p2 = plan_for(&model, &o2);
    assert!(
        p2.summary.is_empty(),
        "first plan:\n{}\nsecond plan:\n{}",
        describe(&p1),
        describe(&p2)
    );
}
