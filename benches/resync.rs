//! A full resync at scale: "recorded engine list answers for 30,000 containers on 100 hosts,
//! turned into the observed state and a plan: under 300 ms and under 300 MB."
//!
//! The answers are recorded in code, in the shape a Docker Engine (API 1.41, as Debian's
//! docker.io 20.10 answers) gives to `GET /containers/json?all=true&filters=…`,
//! `GET /networks?filters=…` and `GET /volumes?filters=…`: every field the engine sends, and
//! the labels gitfleet puts on what it creates, including the canonical spec
//! (`io.gitfleet.spec`, about 700 bytes). The containers are those of `benches/plan.rs`'s
//! fleet deployed (1,000 apps × 10 services × 3 replicas on 100 hosts, 1% then disturbed).
//!
//! Measured, as a resync runs it after the bodies arrived: `hosts::host_state` (decoding each
//! host's three bodies into only the fields gitfleet reads, and the observed state), then
//! `Desired::new` + `plan`. Before the timings, one run is made under a
//! counting allocator (peak heap), and the same answers without the spec label are measured
//! too, to say what the label costs.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::measurement::{Measurement, WallTime};
use criterion::{Criterion, SamplingMode};
use fleet::{REVISION, model, observed};
use gitfleet::diff::{Desired, HostObservation, Observed, ObservedContainer, labels, plan};
use gitfleet::hosts::host_state;
use gitfleet::model::Model;
use measure::{live_bytes, mib, ms, peak_bytes, reset_peak, timed};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: measure::Counting = measure::Counting;

mod fleet;
mod measure;

const HOSTS: usize = 100;
const APPS: usize = 1_000;

/// One host's three answers, as the bodies arrive.
struct Answers {
    host: String,
    containers: Vec<u8>,
    networks: Vec<u8>,
    volumes: Vec<u8>,
    /// Containers in the container list.
    count: usize,
}

/// 64 hex digits from a number, for ids.
fn id(kind: u8, n: usize) -> String {
    format!("{kind:02x}{n:062x}")
}

fn container_json(c: &ObservedContainer, n: usize, with_spec: bool) -> serde_json::Value {
    let labels: BTreeMap<&String, &String> =
        c.labels.iter().filter(|(k, _)| with_spec || k.as_str() != labels::SPEC).collect();
    let app = c.labels.get(labels::APP).map_or("", String::as_str);
    let network = format!("{app}_default");
    let image = serde_json::from_str::<serde_json::Value>(
        c.labels.get(labels::SPEC).map_or("{}", String::as_str),
    )
    .ok()
    .and_then(|spec| spec["image"].as_str().map(str::to_string))
    .unwrap_or_default();
    let running = c.state == "running";
    let ip = format!("172.{}.{}.{}", 16 + n / 65_536 % 16, n / 256 % 256, n % 254 + 2);
    json!({
        "Id": id(1, n),
        "Names": [format!("/{}", c.name)],
        "Image": image,
        "ImageID": format!("sha256:{}", id(2, n / 3)),
        "Command": "serve --port 8080",
        "Created": 1_764_700_000 + n as i64,
        "Ports": [{"PrivatePort": 8080, "Type": "tcp"}],
        "Labels": labels,
        "State": c.state,
        "Status": if running { "Up 2 hours (healthy)" } else { "Exited (0) 3 minutes ago" },
        "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"Networks": {network.clone(): {
            "IPAMConfig": null,
            "Links": null,
            "Aliases": null,
            "NetworkID": id(3, n / 30),
            "EndpointID": if running { id(4, n) } else { String::new() },
            "Gateway": if running { "172.18.0.1" } else { "" },
            "IPAddress": if running { ip.as_str() } else { "" },
            "IPPrefixLen": if running { 16 } else { 0 },
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": if running { "02:42:ac:12:00:05" } else { "" },
            "DriverOpts": null
        }}},
        "Mounts": []
    })
}

/// The three bodies every host would send for `observed`.
fn record(observed: &Observed, with_spec: bool) -> Vec<Answers> {
    let mut n = 0;
    let mut answers = Vec::new();
    for (host, observation) in &observed.hosts {
        let HostObservation::Reachable(state) = observation else { continue };
        let containers: Vec<serde_json::Value> = state
            .containers
            .iter()
            .map(|c| {
                n += 1;
                container_json(c, n, with_spec)
            })
            .collect();
        let networks: Vec<serde_json::Value> = state
            .networks
            .iter()
            .enumerate()
            .map(|(i, net)| {
                json!({
                    "Name": net.name,
                    "Id": id(3, i),
                    "Created": "2026-12-01T10:00:00.000000000Z",
                    "Scope": "local",
                    "Driver": "bridge",
                    "EnableIPv6": false,
                    "IPAM": {"Driver": "default", "Options": null, "Config": [
                        {"Subnet": format!("172.{}.0.0/16", 18 + i % 200), "Gateway": "172.18.0.1"}
                    ]},
                    "Internal": false,
                    "Attachable": false,
                    "Ingress": false,
                    "ConfigFrom": {"Network": ""},
                    "ConfigOnly": false,
                    "Containers": {},
                    "Options": {},
                    "Labels": net.labels
                })
            })
            .collect();
        let volumes = json!({"Volumes": [], "Warnings": null});
        answers.push(Answers {
            host: host.clone(),
            containers: serde_json::to_vec(&containers).expect("serialises"),
            networks: serde_json::to_vec(&networks).expect("serialises"),
            volumes: serde_json::to_vec(&volumes).expect("serialises"),
            count: containers.len(),
        });
    }
    answers
}

/// What a resync does with the bodies: decode them and build the state, as `observe_host`.
fn observe(answers: &[Answers], fleet: &str) -> Observed {
    let hosts = answers
        .iter()
        .map(|a| {
            let state = host_state(&a.containers, &a.networks, &a.volumes, fleet)
                .expect("the answers decode");
            (a.host.clone(), HostObservation::Reachable(state))
        })
        .collect();
    Observed { hosts }
}

fn resync(model: &Model, answers: &[Answers]) -> gitfleet::diff::Plan {
    let observed = observe(answers, &model.fleet.settings.name);
    let desired = Desired::new(model, &observed, Some(REVISION.into()));
    plan(&desired, &observed)
}

fn body_bytes(answers: &[Answers]) -> usize {
    answers.iter().map(|a| a.containers.len() + a.networks.len() + a.volumes.len()).sum()
}

/// One run of each step, with the time it takes and the heap it adds.
fn report(model: &Model, answers: &[Answers], what: &str) {
    let containers: usize = answers.iter().map(|a| a.containers.len()).sum();
    let count: usize = answers.iter().map(|a| a.count).sum();
    println!(
        "{what}: {count} containers, bodies {} ({} bytes a container in the list)",
        mib(body_bytes(answers) as isize),
        containers / count.max(1)
    );
    reset_peak();
    let base = live_bytes();
    let (observed, observe_wall, observe_cpu) =
        timed(|| observe(answers, &model.fleet.settings.name));
    let observed_bytes = live_bytes() - base;
    let observe_peak = peak_bytes() - base;
    let ((desired, result), plan_wall, plan_cpu) = timed(|| {
        let desired = Desired::new(model, &observed, Some(REVISION.into()));
        let result = plan(&desired, &observed);
        (desired, result)
    });
    let peak = peak_bytes() - base;
    let s = result.summary;
    println!(
        "  decode + observed state: {} ({} cpu); the state holds {} (peak while decoding {})",
        ms(observe_wall),
        ms(observe_cpu),
        mib(observed_bytes),
        mib(observe_peak)
    );
    println!(
        "  Desired::new + plan: {} ({} cpu); plan: {} create, {} replace, {} remove, {} unchanged",
        ms(plan_wall),
        ms(plan_cpu),
        s.create,
        s.replace,
        s.remove,
        s.unchanged
    );
    println!(
        "  whole resync: {} ({} cpu), peak heap {} above the model, {} with the bodies",
        ms(observe_wall + plan_wall),
        ms(observe_cpu + plan_cpu),
        mib(peak),
        mib(peak + body_bytes(answers) as isize)
    );
    drop((desired, result, observed));
}

fn benches<M: Measurement>(c: &mut Criterion<M>, model: &Model, answers: &[Answers]) {
    let mut group = c.benchmark_group("resync_30000_containers_on_100_hosts");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let fleet = model.fleet.settings.name.as_str();
    group.bench_function("answers_to_observed", |b| b.iter(|| observe(black_box(answers), fleet)));
    group.bench_function("answers_to_plan", |b| b.iter(|| resync(black_box(model), answers)));
    group.finish();
}

/// `BENCH_CLOCK=wall` times with the wall clock instead of the thread's CPU time.
fn main() {
    let model = model(HOSTS, APPS);
    let deployed = observed(&model);
    let answers = record(&deployed, true);
    let light = record(&deployed, false);
    drop(deployed);
    println!();
    report(&model, &answers, "with the spec label");
    report(&model, &light, "without the spec label");
    println!();
    drop(light);
    measure::counting(false);
    if std::env::var("BENCH_CLOCK").is_ok_and(|clock| clock == "wall") {
        let mut c = Criterion::<WallTime>::default().configure_from_args();
        benches(&mut c, &model, &answers);
        c.final_summary();
    } else {
        let mut c = measure::cpu_criterion();
        benches(&mut c, &model, &answers);
        c.final_summary();
    }
}
