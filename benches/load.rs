//! The loading target: "Load and validate 1,000 app files from a Git commit: under 1 s."
//!
//! A real Git repository is generated on disk (in a temporary directory, with git2): a
//! `fleet.yaml` with 10 hosts and 1,000 apps, `apps/appNNNN/compose.yaml` with three services
//! each in the shape people write (image, ports, environment, healthcheck, depends_on, deploy
//! with replicas / placement / resources / update_config, a config file, a route), plus the
//! config file itself, committed once.
//!
//! Measured: `git::read_commit` (the commit's tree into a `SourceTree`), `model::load`
//! (parse, interpolate, schema, normalise, semantic checks), and the two together; then the
//! same commit packed (`git repack`), as a controller's mirror holds it.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, SamplingMode, criterion_group};
use fixtures::generate;
use git2::Repository;
use gitfleet::git::read_commit;
use gitfleet::model::{SourceTree, load};

mod fixtures;

/// The binary's allocator (`src/main.rs`), so the figures are the ones `gitfleet` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        b.iter(|| read_and_load(black_box(&repository), black_box(&commit)))
    });

    // The same commit packed, as a controller's mirror holds it after a clone or fetch (the
    // bench's own commit leaves loose objects: one file to open and inflate per blob).
    pack(dir.path());
    let packed = Repository::open(dir.path()).expect("open the packed repository");
    let packed_tree = read_commit(&packed, &commit).expect("read the packed commit");
    assert_eq!(packed_tree.len(), tree.len(), "the packed commit holds the same files");
    group.bench_function("read_commit_packed", |b| {
        b.iter(|| read_commit(black_box(&packed), black_box(&commit)).expect("read commit"))
    });
    group.bench_function("read_commit_packed_and_load", |b| {
        b.iter(|| read_and_load(black_box(&packed), black_box(&commit)))
    });
    group.finish();
}

/// What a cold load of `commit` costs: its tree read, then loaded and validated.
fn read_and_load(repository: &Repository, commit: &str) -> bool {
    let tree = read_commit(repository, commit).expect("read commit");
    load(&tree).is_ok()
}

/// Packs every object of the repository at `dir` and removes the loose copies, with the
/// `git` command (libgit2 has no repack).
fn pack(dir: &std::path::Path) {
    for args in [&["repack", "-a", "-d", "-q"][..], &["prune-packed", "-q"][..]] {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .status()
            .expect("the load bench needs the git command to pack its repository");
        assert!(status.success(), "git {args:?} failed in {}", dir.display());
    }
}

criterion_group!(load_benches, benches);

fn main() {
    load_benches();
    Criterion::default().configure_from_args().final_summary();
}
