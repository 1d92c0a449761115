//! Loading app folders on several threads.
//!
//! Each app folder loads on its own: its result depends only on its files, the fleet and the
//! load options ([`super::load`]), and fleet-wide checks run afterwards on the whole model. So
//! the folders of a revision can be parsed and validated side by side
//! ([`crate::parallel::map_in_order`]). The YAML parse, the schema and the normalisation are
//! CPU work; with 1,000 apps they are most of a cold load.
//!
//! The results come back in the order of the jobs, whatever thread made them, so a load is
//! as deterministic as a load on one thread. Small jobs (fewer folders than
//! [`FOLDERS_PER_THREAD`]) stay on the calling thread.

use super::load::{FolderResult, LoadOptions, load_folder};
use super::source::SourceTree;
use super::types::Fleet;
use crate::parallel::map_in_order;

/// Folders a worker thread should have at least: below this, a thread costs more to start
/// than it saves.
pub const FOLDERS_PER_THREAD: usize = 16;

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
    let threads = threads.min(jobs.len() / FOLDERS_PER_THREAD);
    map_in_order(
        jobs,
        threads,
        &(),
        || Some(()),
        |(), job| load_folder(job.name, job.tree, fleet, options),
    )
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
