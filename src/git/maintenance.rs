//! Keeping a mirror's cache directory from growing without bound: preview references of
//! pull requests that are no longer open are deleted ([`Mirror::prune_previews`]), and the
//! mirror is repacked into one pack with unreachable objects dropped ([`Mirror::compact`]).
//!
//! Compacting runs `git gc` (git is a dependency of the machine, see
//! `scripts/install-deps.sh`) rather than git2's `PackBuilder`: libgit2 can write a pack but
//! has no prune, so deleting the old packs and loose objects safely against concurrent readers
//! would be ours to write; `git gc` does it, with git's own locking. It runs under the
//! mirror's timeout and is killed when it takes longer.
//!
//! # Guarantees
//!
//! * Only gitfleet's cache directory is ever pruned or compacted: for a local repository both
//!   do nothing (a user's repository is not gitfleet's to rewrite).
//! * Only references under `refs/gitfleet/preview/` are deleted by pruning.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::GitError;
use super::deadline::seconds;
use super::mirror::{Mirror, PREVIEW_PREFIX, preview_ref};

impl Mirror {
    /// Deletes the preview reference of every pull request whose remote reference
    /// (`refs/pull/7/head`, `refs/merge-requests/7/head`) is not in `open`; returns the
    /// remote references whose previews were deleted. A local repository: nothing.
    pub fn prune_previews(&self, open: &BTreeSet<String>) -> Result<Vec<String>, GitError> {
        if self.is_local() {
            return Ok(Vec::new());
        }
        let keep: BTreeSet<String> = open.iter().filter_map(|r| preview_ref(r).ok()).collect();
        let error = |source| GitError::Open { location: self.location.clone(), source };
        let mut names = Vec::new();
        for reference in
            self.repository.references_glob(&format!("{PREVIEW_PREFIX}*")).map_err(error)?
        {
            let reference = reference.map_err(error)?;
            if let Ok(name) = reference.name() {
                names.push(name.to_string());
            }
        }
        let mut pruned = Vec::new();
        for name in names.into_iter().filter(|n| !keep.contains(n)) {
            let mut reference = self.repository.find_reference(&name).map_err(error)?;
            reference.delete().map_err(error)?;
            let remote = format!("refs/{}", &name[PREVIEW_PREFIX.len()..]);
            tracing::debug!(reference = %remote, "preview of a closed pull request pruned");
            pruned.push(remote);
        }
        Ok(pruned)
    }

    /// Repacks the mirror into one pack and drops unreachable objects (`git gc
    /// --prune=now`, reflogs expired), bounded by the mirror's timeout. Call it between
    /// fetches (it takes git's locks, a concurrent fetch may fail and be retried). A local
    /// repository: nothing.
    pub fn compact(&self) -> Result<(), GitError> {
        if self.is_local() {
            return Ok(());
        }
        let failed =
            |message: String| GitError::Compact { location: self.location.clone(), message };
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(self.repository.path())
            .args([
                "-c",
                "gc.reflogExpire=now",
                "-c",
                "gc.reflogExpireUnreachable=now",
                "-c",
                "gc.autoDetach=false",
                "gc",
                "--prune=now",
                "--quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run git (is it installed?): {e}")))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(format!(
                        "git gc did not finish within {}; it was stopped",
                        seconds(self.timeout)
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(failed(format!("waiting for git gc: {e}"))),
            }
        };
        if !status.success() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
            }
            return Err(failed(format!("git gc failed ({status}): {}", stderr.trim())));
        }
        tracing::debug!(repository = %self.location, elapsed_ms = started.elapsed().as_millis() as u64, "mirror compacted");
        Ok(())
    }
}
