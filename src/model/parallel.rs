//! Loading app folders on several threads.
//!
//! Each app folder loads on its own: its result depends only on its files, the fleet and the
//! load options ([`super::load`]), and fleet-wide checks run afterwards on the whole model. So
//! the folders of a revision can be parsed and validated side by side. The YAML parse, the
//! schema and the normalisation are CPU work; with 1,000 apps they are most of a cold load.
//!
//! The results come back in the order of the jobs, whatever thread made them, so a load is
//! as deterministic as a load on one thread. Small jobs (fewer folders than
//! [`FOLDERS_PER_THREAD`]) stay on the calling thread.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::load::{FolderResult, LoadOptions, load_folder};
use super::source::SourceTree;
use super::types::Fleet;

/// Folders a worker thread should have at least: below this, a thread costs more to start
/// than it saves.
pub const FOLDERS_PER_THREAD: usize = 16;

/// Threads at most, whatever the machine offers.
const MAX_THREADS: usize = 8;

/// The stack of a worker: as much as a main thread's, since the parser and the schema
/// recurse as deep as a file's nesting allows (`settings.limits.max_depth`).
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// One folder to load: its app name and the tree that holds its files.
pub(super) struct FolderJob<'a> {
    pub name: &'a str,
    pub tree: &'a SourceTree,
}

/// Loads every job's folder ([`load_folder`]), on up to `threads` threads; the results are
/// in the order of `jobs`.
pub(super) fn load_folders(
    jobs: &[FolderJob<'_>],
    fleet: Option<&Fleet>,
    options: &LoadOptions,
    threads: usize,
) -> Vec<FolderResult> {
    let load = |job: &FolderJob<'_>| load_folder(job.name, job.tree, fleet, options);
    let threads = threads.min(jobs.len() / FOLDERS_PER_THREAD).min(MAX_THREADS);
    if threads <= 1 {
        return jobs.iter().map(load).collect();
    }
    // Workers take the next job from a shared counter, so one slow folder does not hold up
    // a fixed share of the others.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(index) else { return done };
            done.push((index, load(job)));
        }
    };
    let mut results: Vec<(usize, FolderResult)> = std::thread::scope(|scope| {
        // The calling thread works too; `threads - 1` more join it.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("gitfleet-load".into())
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut results = work();
        for helper in helpers {
            match helper.join() {
                Ok(done) => results.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Sets the threads a load uses, when it should not be the cores this process may run on.
pub const THREADS_VARIABLE: &str = "GITFLEET_LOAD_THREADS";

/// The threads a load (and reading a commit for it, `git::read_commit`) may use: [`THREADS_VARIABLE`] if it holds a positive number, else the
/// cores this process may run on (1 when that cannot be told).
pub fn available_threads() -> usize {
    std::env::var(THREADS_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::SourceTree;

    fn repository(apps: usize) -> SourceTree {
        let mut tree = SourceTree::new();
        tree.insert_file(
            "fleet.yaml",
            b"hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n".to_vec(),
        );
        for i in 0..apps {
            // Every seventh app is broken, so results that came back in the wrong order
            // would put diagnostics on the wrong app.
            let image = if i % 7 == 3 { "[1, 2]" } else { "busybox:1" };
            tree.insert_file(
                format!("apps/app{i:03}/compose.yaml"),
                format!(
                    "services:\n  web:\n    image: {image}\n    command: [\"echo\", \"{i}\"]\n"
                )
                .into_bytes(),
            );
        }
        tree
    }

    #[test]
    fn several_threads_give_the_results_of_one_in_the_same_order() {
        let tree = repository(100);
        let (fleet, problems) = super::super::load::load_fleet_located(&tree);
        assert!(problems.is_empty(), "{problems:?}");
        let names = super::super::load::app_folders(&tree);
        let jobs: Vec<FolderJob> =
            names.iter().map(|name| FolderJob { name, tree: &tree }).collect();
        let options = LoadOptions::default();
        let one = load_folders(&jobs, fleet.as_ref(), &options, 1);
        let four = load_folders(&jobs, fleet.as_ref(), &options, 4);
        assert_eq!(one.len(), 100);
        assert_eq!(one, four);
        let broken: Vec<usize> = (0..100).filter(|i| four[*i].app.is_none()).collect();
        assert_eq!(broken, (0..100).filter(|i| i % 7 == 3).collect::<Vec<_>>());
        assert!(four[3].diagnostics.iter().all(|d| d.file == "apps/app003/compose.yaml"));
    }
}
