//! The loading target: "Load and validate 1,000 app files from a Git commit: under 1 s."
//!
//! A real Git repository is generated on disk (in a temporary directory, with git2): a
//! `fleet.yaml` with 10 hosts and 1,000 apps, `apps/appNNNN/compose.yaml` with three services
//! each in the shape people write (image, ports, environment, healthcheck, depends_on, deploy
//! with replicas / placement / resources / update_config, a config file, a route), plus the
//! config file itself, committed once.
//!
//! Measured: `sync::read_commit` (the commit's tree into a `SourceTree`), `model::load`
//! (parse, interpolate, schema, normalise, semantic checks), and the two together.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, SamplingMode, criterion_group};
use git2::{FileMode, Oid, Repository, Signature};
use gitfleet::model::{SourceTree, load};
use gitfleet::sync::read_commit;

const HOSTS: usize = 10;
const APPS: usize = 1_000;

fn fleet_yaml() -> String {
    let mut text = String::from("hosts:\n");
    for h in 0..HOSTS {
        let zone = ["a", "b"][h % 2];
        text.push_str(&format!(
            "  host-{h:02}:\n    endpoint: tcp://10.0.0.{ip}:2375\n    address: 10.0.0.{ip}\n    \
             labels: {{ zone: {zone} }}\n    capacity: {{ cpus: 64, memory: 256g }}\n",
            ip = h + 10
        ));
    }
    text.push_str(
        "settings:\n  name: bench\n  observe_timeout: 5s\nvariables:\n  REGISTRY: \
         registry.example.com\n  LOG_LEVEL: info\n",
    );
    text
}

/// Three services: a web front end publishing a port unique to the app, with a route; an
/// API with a health check and a config file; a worker pinned to a zone.
fn compose_yaml(a: usize) -> String {
    let name = format!("app{a:04}");
    let port = 20_000 + a;
    format!(
        r#"# {name}: web front end, API and background worker.
x-common: &common
  restart: always
  stop_grace_period: 10s
  labels:
    team: team-{team}

services:
  web:
    <<: *common
    image: ${{REGISTRY}}/{name}/web:1.4.2
    ports:
      - "{port}:8080"
    environment:
      API_URL: http://api:8000
      LOG_LEVEL: ${{LOG_LEVEL}}
    depends_on:
      api:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/health"]
      interval: 10s
      timeout: 2s
      retries: 3
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
      resources:
        limits: {{ cpus: "0.5", memory: 256m }}
        reservations: {{ cpus: "0.05", memory: 64m }}
      update_config:
        parallelism: 1
        delay: 5s
        order: start-first
        failure_action: rollback
    x-routes:
      - host: {name}.example.com
        path_prefix: /
        port: 8080

  api:
    <<: *common
    image: ${{REGISTRY}}/{name}/api:2.0.1
    command: ["serve", "--port", "8000"]
    ports:
      - target: 8000
        protocol: tcp
    environment:
      - LOG_LEVEL=${{LOG_LEVEL}}
      - DATABASE_URL=postgres://db.internal:5432/{name}
      - CACHE_TTL=300
    configs:
      - source: api-config
        target: /etc/api/config.json
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://127.0.0.1:8000/health || exit 1"]
      interval: 5s
      timeout: 1s
      retries: 5
      start_period: 10s
    deploy:
      replicas: 3
      resources:
        limits: {{ cpus: "1", memory: 512m }}
        reservations: {{ cpus: "0.1", memory: 128m }}
      update_config:
        parallelism: 2
        delay: 2s
        monitor: 10s
        max_failure_ratio: 0.1
      rollback_config:
        parallelism: 0
      restart_policy:
        condition: on-failure
        max_attempts: 5

  worker:
    <<: *common
    image: ${{REGISTRY}}/{name}/worker:2.0.1
    command: ["worker", "--queue", "{name}"]
    environment:
      LOG_LEVEL: ${{LOG_LEVEL}}
      CONCURRENCY: "4"
    depends_on:
      - api
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.labels.zone == {zone}
      resources:
        limits: {{ memory: 1g }}

configs:
  api-config:
    file: ./config.json
"#,
        team = a % 7,
        zone = ["a", "b"][a % 2],
    )
}

fn config_json(a: usize) -> String {
    format!(
        "{{\n  \"app\": \"app{a:04}\",\n  \"features\": {{ \"search\": true, \"beta\": {} }},\n  \
         \"limits\": {{ \"requests_per_minute\": {} }}\n}}\n",
        a % 3 == 0,
        600 + a
    )
}

/// Writes the repository into `dir` as one commit on `main` and returns its id.
fn generate(dir: &std::path::Path) -> (Repository, String) {
    let repository = Repository::init(dir).expect("init repository");
    let oid = {
        let blob = |text: &str| repository.blob(text.as_bytes()).expect("write blob");
        let mut apps = repository.treebuilder(None).expect("tree builder");
        for a in 0..APPS {
            let mut folder = repository.treebuilder(None).expect("tree builder");
            folder.insert("compose.yaml", blob(&compose_yaml(a)), FileMode::Blob.into()).unwrap();
            folder.insert("config.json", blob(&config_json(a)), FileMode::Blob.into()).unwrap();
            let folder = folder.write().expect("write app tree");
            apps.insert(format!("app{a:04}"), folder, FileMode::Tree.into()).unwrap();
        }
        let apps = apps.write().expect("write apps tree");
        let mut root = repository.treebuilder(None).expect("tree builder");
        root.insert("fleet.yaml", blob(&fleet_yaml()), FileMode::Blob.into()).unwrap();
        root.insert("apps", apps, FileMode::Tree.into()).unwrap();
        root.insert("README.md", blob("# the fleet\n"), FileMode::Blob.into()).unwrap();
        let tree = repository.find_tree(root.write().expect("write root tree")).unwrap();
        let who = Signature::now("bench", "bench@example.com").unwrap();
        let oid: Oid = repository
            .commit(Some("refs/heads/main"), &who, &who, "1,000 apps", &tree, &[])
            .expect("commit");
        repository.set_head("refs/heads/main").expect("set HEAD");
        oid
    };
    (repository, oid.to_string())
}

fn load_ok(tree: &SourceTree) -> gitfleet::model::Model {
    match load(tree) {
        Ok(model) => model,
        Err(diagnostics) => {
            for d in diagnostics.iter().take(10) {
                eprintln!("{d:?}");
            }
            panic!("the generated repository does not validate ({} problems)", diagnostics.len());
        }
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let (repository, commit) = generate(dir.path());
    let generated = started.elapsed();

    // One cold pass first: checks the repository validates and shows the split.
    let started = Instant::now();
    let tree = read_commit(&repository, &commit).expect("read commit");
    let read = started.elapsed();
    let model = load_ok(&tree);
    let total = started.elapsed();
    let services: usize = model.apps.values().map(|a| a.services.len()).sum();
    let bytes: usize = tree
        .paths()
        .filter_map(|p| match tree.get(p) {
            Some(gitfleet::model::SourceEntry::File(b)) => Some(b.len()),
            _ => None,
        })
        .sum();
    println!();
    println!(
        "repository: {} files ({:.1} MiB), {} apps, {services} services, {} hosts; generated in \
         {:.0} ms",
        tree.len(),
        bytes as f64 / (1024.0 * 1024.0),
        model.apps.len(),
        model.fleet.hosts.len(),
        generated.as_secs_f64() * 1e3
    );
    println!(
        "one cold run: read_commit {:.0} ms, load {:.0} ms",
        read.as_secs_f64() * 1e3,
        (total - read).as_secs_f64() * 1e3
    );
    println!();

    let mut group = c.benchmark_group("load_1000_apps");
    group.sample_size(10);
    // Each run takes tens to hundreds of milliseconds: one run a sample.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("read_commit", |b| {
        b.iter(|| read_commit(black_box(&repository), black_box(&commit)).expect("read commit"))
    });
    group.bench_function("load", |b| b.iter(|| load(black_box(&tree)).is_ok()));
    group.bench_function("read_commit_and_load", |b| {
        b.iter(|| {
            let tree = read_commit(black_box(&repository), black_box(&commit)).expect("read");
            load(&tree).is_ok()
        })
    });
    group.finish();
}

criterion_group!(load_benches, benches);

fn main() {
    load_benches();
    Criterion::default().configure_from_args().final_summary();
}
