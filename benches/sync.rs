//! The incremental-sync target: "A commit that changes one app in a repository of 1,000
//! apps re-reads and re-validates only that app."
//!
//! The repository of the `load` bench (`fixtures`: 10 hosts, 1,000 apps of three services,
//! 2,001 files) is generated on disk with git2, then a second commit changes one app's web
//! image tag. Measured, loading the second commit:
//!
//! * `full`: `git::read_commit` + `model::load_with`, every file read and every app
//!   validated, as without a cache.
//! * `incremental`: `git::read_commit_skipping` with `LoadCache::is_fresh` as the skip test,
//!   then `model::load_cached`, with the cache warm from the other commit. Each iteration
//!   loads the commit the cache does not hold (the two alternate), so every measured run is
//!   "one app changed since the cached load"; the fleet-wide checks run on all 1,000 apps
//!   every time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group};
use fixtures::{commit_app_change, generate};
use git2::Repository;
use gitfleet::git::{read_commit, read_commit_skipping};
use gitfleet::model::{LoadCache, LoadOptions, LoadStats, Model, load_cached, load_with};

mod fixtures;

/// The binary's allocator (`src/main.rs`), so the figures are the ones `gitfleet` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The app the second commit changes.
const CHANGED: usize = 500;

fn incremental(
    repository: &Repository,
    commit: &str,
    options: &LoadOptions,
    cache: &mut LoadCache,
) -> Model {
    let tree = {
        let cache = &*cache;
        read_commit_skipping(repository, commit, &|folder, id| cache.is_fresh(folder, id))
            .expect("read commit")
    };
    load_cached(&tree, options, cache).expect("the generated repository validates")
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (repository, first) = generate(dir.path());
    let second = commit_app_change(&repository, &first, CHANGED, "1.4.3");
    let options = LoadOptions::default();

    // One pass first: checks both ways give the same model and shows what was reused.
    let started = Instant::now();
    let full = load_with(&read_commit(&repository, &second).expect("read"), &options)
        .expect("the generated repository validates");
    let full_time = started.elapsed();
    let mut cache = LoadCache::new();
    incremental(&repository, &first, &options, &mut cache);
    let started = Instant::now();
    let model = incremental(&repository, &second, &options, &mut cache);
    let incremental_time = started.elapsed();
    assert_eq!(model, full, "load_cached must equal load_with");
    assert_eq!(cache.stats(), LoadStats { reused: fixtures::APPS - 1, revalidated: 0, loaded: 1 });
    println!();
    println!(
        "one run: full {:.1} ms; incremental {:.2} ms ({:?})",
        full_time.as_secs_f64() * 1e3,
        incremental_time.as_secs_f64() * 1e3,
        cache.stats()
    );
    println!();

    let mut group = c.benchmark_group("sync_one_app_changed_of_1000");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("full", |b| {
        b.iter(|| {
            let tree = read_commit(black_box(&repository), black_box(&second)).expect("read");
            load_with(&tree, &options).is_ok()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("sync_one_app_changed_of_1000");
    group.sample_size(30);
    // The cache holds `second` now; each run loads the other commit.
    let mut holds_second = true;
    group.bench_function("incremental", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let next = if holds_second { &first } else { &second };
                let started = Instant::now();
                black_box(incremental(&repository, next, &options, &mut cache));
                total += started.elapsed();
                holds_second = !holds_second;
                assert_eq!(cache.stats().loaded, 1, "one app changed, one app loaded");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(sync_benches, benches);

fn main() {
    sync_benches();
    Criterion::default().configure_from_args().final_summary();
}
