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
//!
//! `desired_new_and_plan` is a cold sync: every spec and hash is made. A controller syncing
//! again with apps it already planned (a resync, or a commit that changed a few apps) keeps
//! them in a `SpecMemo`: `desired_new_memo_and_plan` times that steady state, with every app
//! unchanged, and is reported beside the cold figure, not instead of it.

use std::hint::black_box;

use criterion::measurement::{Measurement, WallTime};
use criterion::{Criterion, SamplingMode};
use fleet::{REPLICAS, REVISION, SERVICES, model, observed, replicas};
use gitfleet::diff::schedule::schedule;
use gitfleet::diff::spec::ContainerSpec;
use gitfleet::diff::{Desired, Observed, SpecMemo, plan};
use gitfleet::model::Model;
use measure::{live_bytes, mib, ms, peak_bytes, reset_peak, timed};

#[global_allocator]
static ALLOCATOR: measure::Counting = measure::Counting;

mod fleet;
mod measure;

// ---- measurements ------------------------------------------------------------------------

/// One size of fleet: `apps` × 10 services × 3 replicas on `hosts` (300 replicas a host).
#[derive(Clone, Copy)]
struct Size {
    hosts: usize,
    apps: usize,
    /// Criterion group, if this size is benchmarked (and not only reported).
    group: Option<&'static str>,
}

const SIZES: [(&str, Size); 3] = [
    ("3k", Size { hosts: 10, apps: 100, group: None }),
    ("30k", Size { hosts: 100, apps: 1_000, group: Some("plan_1000x10x3_on_100_hosts") }),
    ("300k", Size { hosts: 1_000, apps: 10_000, group: Some("plan_10000x10x3_on_1000_hosts") }),
];

/// Builds the inputs of `size`, prints their size, the plan's summary, the peak heap of one
/// `Desired::new` + `plan` and the split of one run (wall and CPU time).
fn report(size: Size) -> (Model, Observed) {
    let Size { hosts, apps, .. } = size;
    let before = live_bytes();
    let model = model(hosts, apps);
    let model_bytes = live_bytes() - before;
    let before = live_bytes();
    let observed = observed(&model);
    let observed_bytes = live_bytes() - before;

    reset_peak();
    let base = live_bytes();
    let (desired, desired_wall, desired_cpu) =
        timed(|| Desired::new(&model, &observed, Some(REVISION.into())));
    let (result, plan_wall, plan_cpu) = timed(|| plan(&desired, &observed));
    let kept = live_bytes() - base;
    let (_, drop_wall, drop_cpu) = timed(|| drop(desired));
    let peak = peak_bytes() - base;

    let s = result.summary;
    println!();
    println!(
        "fleet: {hosts} hosts, {apps} apps × {SERVICES} services × {REPLICAS} replicas; observed \
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
        "peak heap during Desired::new + plan: {} (above the inputs; Desired + Plan live after: {})",
        mib(peak),
        mib(kept)
    );
    println!(
        "one cold run, wall (cpu): Desired::new {} ({}), plan {} ({}), dropping the Desired {} ({})",
        ms(desired_wall),
        ms(desired_cpu),
        ms(plan_wall),
        ms(plan_cpu),
        ms(drop_wall),
        ms(drop_cpu)
    );
    // The parts of Desired::new that can be called on their own, for the split.
    let (schedule, _, scheduling) = timed(|| black_box(schedule(&model, &observed)));
    let (hashes, _, specs) = timed(|| {
        let mut hashes = 0;
        for app in model.apps.values() {
            for service in app.services.values() {
                hashes += black_box(ContainerSpec::of(app, service).hash()).len();
            }
        }
        hashes
    });
    println!(
        "  of which (cpu): schedule {}, {} specs + hashes {}",
        ms(scheduling),
        apps * SERVICES,
        ms(specs)
    );
    // The steady state: a memo warm from the same model (every app unchanged).
    let mut memo = SpecMemo::default();
    let before = live_bytes();
    drop(Desired::new_memo(&model, &observed, Some(REVISION.into()), &mut memo));
    let memo_bytes = live_bytes() - before;
    reset_peak();
    let base = live_bytes();
    let ((warm, warm_plan), _, warm_cpu) = timed(|| {
        let desired = Desired::new_memo(&model, &observed, Some(REVISION.into()), &mut memo);
        let plan = plan(&desired, &observed);
        (desired, plan)
    });
    let warm_peak = peak_bytes() - base;
    assert_eq!(warm_plan, result, "a memo changes no plan");
    println!(
        "with a warm spec memo ({} apps reused): Desired::new + plan {} cpu, peak heap {}; \
         the memo keeps {} between syncs",
        memo.stats().reused,
        ms(warm_cpu),
        mib(warm_peak),
        mib(memo_bytes)
    );
    println!();
    drop((schedule, hashes, result, warm, warm_plan, memo));
    (model, observed)
}

fn bench_size<M: Measurement>(
    c: &mut Criterion<M>,
    group: &str,
    model: &Model,
    observed: &Observed,
) {
    let desired = Desired::new(model, observed, Some(REVISION.into()));
    let large = model.apps.len() > 1_000;
    let mut group = c.benchmark_group(group);
    group.sample_size(if large { 10 } else { 20 });
    // Each run takes tens to hundreds of milliseconds: one run a sample.
    group.sampling_mode(SamplingMode::Flat);
    if !large {
        group.bench_function("desired_new", |b| {
            b.iter(|| Desired::new(black_box(model), black_box(observed), Some(REVISION.into())))
        });
        group.bench_function("plan", |b| b.iter(|| plan(black_box(&desired), black_box(observed))));
    }
    group.bench_function("desired_new_and_plan", |b| {
        b.iter(|| {
            let desired =
                Desired::new(black_box(model), black_box(observed), Some(REVISION.into()));
            plan(&desired, black_box(observed))
        })
    });
    if !large {
        // Steady state, not the target's figure: every app's specs kept from the run before.
        let mut memo = SpecMemo::default();
        drop(Desired::new_memo(model, observed, Some(REVISION.into()), &mut memo));
        group.bench_function("desired_new_memo_and_plan", |b| {
            b.iter(|| {
                let desired = Desired::new_memo(
                    black_box(model),
                    black_box(observed),
                    Some(REVISION.into()),
                    &mut memo,
                );
                plan(&desired, black_box(observed))
            })
        });
    }
    group.finish();
}

/// `PLAN_SIZES` (default `3k,30k,300k`): which sizes to build, report and benchmark.
/// `BENCH_CLOCK=wall` times with the wall clock instead of the thread's CPU time.
fn main() {
    let wanted = std::env::var("PLAN_SIZES").unwrap_or_else(|_| "3k,30k,300k".into());
    let wall = std::env::var("BENCH_CLOCK").is_ok_and(|clock| clock == "wall");
    for (name, size) in SIZES {
        if !wanted.split(',').any(|w| w.trim() == name) {
            continue;
        }
        let (model, observed) = report(size);
        measure::counting(false);
        if let Some(group) = size.group {
            if wall {
                let mut c = Criterion::<WallTime>::default().configure_from_args();
                bench_size(&mut c, group, &model, &observed);
            } else {
                bench_size(&mut measure::cpu_criterion(), group, &model, &observed);
            }
        }
        measure::counting(true);
    }
    measure::cpu_criterion().final_summary();
}
