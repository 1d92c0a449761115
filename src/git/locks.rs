//! Stale lock files: git (and libgit2) create `<file>.lock` beside a file they rewrite
//! (`refs/heads/main.lock`, `packed-refs.lock`, `config.lock`, `index.lock`, `HEAD.lock`) and
//! rename it over the file when done. A process killed in between leaves the lock behind, and
//! every later update of that file fails ("failed to lock file ... for writing") forever.
//!
//! # Guarantees
//!
//! * In gitfleet's own cache directory (the bare mirror of a URL), a lock file older than this
//!   process's first use of a mirror is removed on open: no transfer of this process can have
//!   made it, so it is a leftover. Younger lock files are left alone.
//! * In a local repository (a user's working copy or bare repository used in place) nothing
//!   is ever removed: a live `git` may hold the lock. Stale-looking locks are reported (a
//!   warning naming each file and what to do).
//! * Only regular files named `*.lock` directly in the git directory, or anywhere under its
//!   `refs/`, are considered; nothing else is touched.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::SystemTime;

/// When this process first asked about locks: every lock it makes is younger.
static STARTED: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

/// Removes the lock files in the mirror at `git_dir` older than this process; returns the
/// ones removed. `location` (redacted) is for the log.
pub(super) fn remove_stale(git_dir: &Path, location: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for lock in stale_locks(git_dir, *STARTED) {
        match std::fs::remove_file(&lock) {
            Ok(()) => {
                tracing::warn!(file = %lock.display(), repository = %location,
                    "removed a stale lock file left by a process that stopped mid-write");
                removed.push(lock);
            }
            Err(error) => {
                tracing::warn!(file = %lock.display(), repository = %location, %error,
                    "cannot remove a stale lock file; fetches may fail until it is removed");
            }
        }
    }
    removed
}

/// Reports (never removes) the lock files in the local repository at `git_dir` older than
/// this process; returns them.
pub(super) fn report_stale(git_dir: &Path, location: &str) -> Vec<PathBuf> {
    let locks = stale_locks(git_dir, *STARTED);
    for lock in &locks {
        tracing::warn!(file = %lock.display(), repository = %location,
            "lock file in the repository: if no git command is running there, remove it; \
             gitfleet never removes locks in a repository it does not own");
    }
    locks
}

/// The `*.lock` files directly in `git_dir` and under `git_dir/refs` last modified before
/// `before`, sorted.
fn stale_locks(git_dir: &Path, before: SystemTime) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect(git_dir, false, &mut found);
    collect(&git_dir.join("refs"), true, &mut found);
    found.retain(|path| {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < before)
    });
    found.sort();
    found
}

fn collect(dir: &Path, recurse: bool, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() && recurse {
            collect(&path, true, found);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "lock") {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn touch(path: &Path, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn only_old_lock_files_in_the_git_dir_and_refs_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path();
        let old = Duration::from_secs(3600);
        touch(&git.join("refs/heads/main.lock"), old);
        touch(&git.join("refs/heads/team/x.lock"), old);
        touch(&git.join("packed-refs.lock"), old);
        touch(&git.join("config.lock"), old);
        touch(&git.join("objects/pack/tmp.lock"), old);
        touch(&git.join("refs/heads/main"), old);
        touch(&git.join("index.lock"), Duration::ZERO);
        let cutoff = SystemTime::now() - Duration::from_secs(60);
        let stale: Vec<String> = stale_locks(git, cutoff)
            .iter()
            .map(|p| p.strip_prefix(git).unwrap().display().to_string())
            .collect();
        assert_eq!(
            stale,
            ["config.lock", "packed-refs.lock", "refs/heads/main.lock", "refs/heads/team/x.lock"]
        );
    }
}
