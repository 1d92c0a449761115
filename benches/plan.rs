//! The planning target: "Plan for 1,000 apps × 10 services (≈ 30,000 replicas) on 100 hosts,
//! observed state matching all but 1%: under 100 ms, and under 200 MB peak memory."
//!
//! The model is built in code (no parsing: that is `benches/load.rs`). The observed state is
//! what a perfect apply of the plan from nothing leaves behind
//! ([`gitfleet::diff::simulate::apply_plan`]), with 1% of the replicas then perturbed: some
//! containers removed, some with another spec (hash and spec label), some exited.
//!
//! Measured: `Desired::new` (scheduling + canonical specs and hashes), `plan` alone, and the
//! two together (what a sync pays). Before the timings, one run of `Desired::new` + `plan` is
//! made under a counting global allocator and its peak heap is printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, SamplingMode, criterion_group};
use gitfleet::diff::schedule::schedule;
use gitfleet::diff::simulate::apply_plan;
use gitfleet::diff::spec::ContainerSpec;
use gitfleet::diff::{Desired, HostObservation, HostState, Observed, labels, plan};
use gitfleet::model::{
    App, Capacity, Constraint, Dependency, DependencyCondition, Deploy, Endpoint, Fleet,
    Healthcheck, Host, Model, NetworkDef, NodeAttribute, Placement, Platform, PortMapping,
    Protocol, PullPolicy, ResourceAmounts, Resources, Service, ServiceNetwork, Settings,
    UpdateConfig,
};

// ---- peak heap ---------------------------------------------------------------------------

/// The system allocator, counting live bytes and their high-water mark.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Counting is switched off before the timings, so they do not pay for it.
static COUNTING: AtomicBool = AtomicBool::new(true);

fn grew(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Forgets the high-water mark: from now on the peak is measured from what is live now.
fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

// ---- the fleet ---------------------------------------------------------------------------

const FLEET: &str = "bench";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const HOSTS: usize = 100;
const APPS: usize = 1_000;
const SERVICES: usize = 10;
const REPLICAS: u32 = 3;

fn host(i: usize) -> Host {
    let name = format!("host-{i:03}");
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

fn service(app: &str, s: usize) -> Service {
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

fn app(a: usize) -> App {
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

fn model() -> Model {
    Model {
        fleet: Fleet {
            hosts: (0..HOSTS).map(host).map(|h| (h.name.clone(), h)).collect(),
            settings: Settings {
                name: FLEET.into(),
                observe_timeout_ms: 10_000,
                pull_policy: PullPolicy::Missing,
                ..Settings::default()
            },
            variables: BTreeMap::new(),
        },
        apps: (0..APPS).map(app).map(|a| (a.name.clone(), std::sync::Arc::new(a))).collect(),
    }
}

/// Every host reachable and empty.
fn empty(model: &Model) -> Observed {
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
fn observed(model: &Model) -> Observed {
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

fn replicas(observed: &Observed) -> usize {
    observed
        .hosts
        .values()
        .map(|o| match o {
            HostObservation::Reachable(state) => state.containers.len(),
            HostObservation::Unreachable { .. } => 0,
        })
        .sum()
}

// ---- measurements ------------------------------------------------------------------------

/// Builds the inputs once, prints their size, the plan's summary and the peak heap of one
/// `Desired::new` + `plan`, and the rough split of one run between the two.
fn report() -> (Model, Observed) {
    let before = live_bytes();
    let model = model();
    let model_bytes = live_bytes() - before;
    let before = live_bytes();
    let observed = observed(&model);
    let observed_bytes = live_bytes() - before;

    reset_peak();
    let base = live_bytes();
    let started = Instant::now();
    let desired = Desired::new(&model, &observed, Some(REVISION.into()));
    let scheduled = started.elapsed();
    let result = plan(&desired, &observed);
    let total = started.elapsed();
    let peak = peak_bytes() - base;
    let kept = live_bytes() - base;

    let s = result.summary;
    println!();
    println!(
        "fleet: {HOSTS} hosts, {APPS} apps × {SERVICES} services × {REPLICAS} replicas; observed \
         containers: {}",
        replicas(&observed)
    );
    println!(
        "inputs on the heap: model {}, observed state {}",
        mib(model_bytes),
        mib(observed_bytes)
    );
    println!(
        "plan: {} create, {} replace, {} remove, {} unchanged, {} unplaced",
        s.create, s.replace, s.remove, s.unchanged, s.unplaced
    );
    println!(
        "peak heap during Desired::new + plan: {} (above the inputs; Desired + Plan still live \
         after: {})",
        mib(peak),
        mib(kept)
    );
    println!(
        "one cold run: Desired::new {:.1} ms, plan {:.1} ms",
        scheduled.as_secs_f64() * 1e3,
        (total - scheduled).as_secs_f64() * 1e3
    );
    // The parts of Desired::new that can be called on their own, for the split.
    let started = Instant::now();
    let schedule = black_box(schedule(&model, &observed));
    let scheduling = started.elapsed();
    let started = Instant::now();
    let mut hashes = 0;
    for app in model.apps.values() {
        for service in app.services.values() {
            hashes += black_box(ContainerSpec::of(app, service).hash()).len();
        }
    }
    let specs = started.elapsed();
    let started = Instant::now();
    drop(desired);
    let dropping = started.elapsed();
    println!(
        "  of which: schedule {:.1} ms, 10,000 specs + hashes {:.1} ms; dropping the Desired \
         {:.1} ms",
        scheduling.as_secs_f64() * 1e3,
        specs.as_secs_f64() * 1e3,
        dropping.as_secs_f64() * 1e3
    );
    println!();
    drop((schedule, hashes, result));
    COUNTING.store(false, Ordering::Relaxed);
    (model, observed)
}

fn benches(c: &mut Criterion) {
    let (model, observed) = report();
    let desired = Desired::new(&model, &observed, Some(REVISION.into()));

    let mut group = c.benchmark_group("plan_1000x10x3_on_100_hosts");
    group.sample_size(20);
    // Each run takes tens to hundreds of milliseconds: one run a sample.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("desired_new", |b| {
        b.iter(|| Desired::new(black_box(&model), black_box(&observed), Some(REVISION.into())))
    });
    group.bench_function("plan", |b| b.iter(|| plan(black_box(&desired), black_box(&observed))));
    group.bench_function("desired_new_and_plan", |b| {
        b.iter(|| {
            let desired =
                Desired::new(black_box(&model), black_box(&observed), Some(REVISION.into()));
            plan(&desired, black_box(&observed))
        })
    });
    group.finish();
}

criterion_group!(plan_benches, benches);

fn main() {
    plan_benches();
    Criterion::default().configure_from_args().final_summary();
}
