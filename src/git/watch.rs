//! File-system notifications for a local repository: [`watch_branch`] calls back when the
//! watched branch's tip has actually changed, so a commit to a local repository is deployed at
//! once instead of at the next poll.
//!
//! # How
//!
//! The git directory itself (not recursively: `HEAD`, `packed-refs`) and `refs/heads/`
//! (recursively) are watched. An event that may concern the branch (its loose ref file, a
//! directory on the way to it, `packed-refs`, `HEAD`, or a watcher error or overflow) starts a
//! burst; the burst ends after [`DEBOUNCE`] without such an event (or [`MAX_BURST`] after it
//! started). Then the branch is resolved, and the callback runs only if the tip differs from
//! the last one seen.
//!
//! # Guarantees
//!
//! * Commits to other branches (the status branch in particular) never call back: their ref
//!   files are not looked at, and a `packed-refs` rewrite that leaves the tip alone is
//!   filtered out by the comparison.
//! * The callback runs on the watcher's own thread, one call at a time.
//! * Dropping the [`BranchWatch`] stops watching and waits for a running callback to finish
//!   (unless it is dropped from inside the callback).
//!
//! # Caveats
//!
//! * A callback that panics ends the watch (its thread is gone); keep it to enqueueing a
//!   trigger.
//! * The callback says "look again", not what changed: the controller fetches and compares.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::GitError;
use super::mirror::branch_ref;

/// A burst of changes ends after this long without a relevant one.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// A burst that never quiets down is looked at this long after it started anyway.
pub const MAX_BURST: Duration = Duration::from_secs(1);

/// Watching a branch; stops on drop.
pub struct BranchWatch {
    watcher: Option<RecommendedWatcher>,
    stop: Sender<Message>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BranchWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchWatch").finish_non_exhaustive()
    }
}

enum Message {
    Event(notify::Result<Event>),
    Stop,
}

/// Calls `on_change` whenever the tip of `branch` in `repository` (a local repository, bare
/// or not) changes, until the returned guard is dropped.
pub fn watch_branch<F>(
    repository: &Repository,
    branch: &str,
    on_change: F,
) -> Result<BranchWatch, GitError>
where
    F: Fn() + Send + 'static,
{
    let refname = branch_ref(branch)?;
    let paths = Paths::of(repository, &refname)?;
    let git_dir = repository.path().to_path_buf();
    let (sender, receiver) = mpsc::channel();
    let events = sender.clone();
    let watch_error =
        |path: &Path, source| GitError::Watch { path: path.display().to_string(), source };
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(Message::Event(event));
    })
    .map_err(|e| watch_error(&git_dir, e))?;
    for (dir, mode) in paths.watched() {
        watcher.watch(&dir, mode).map_err(|e| watch_error(&dir, e))?;
    }
    let initial = tip(&git_dir, &refname);
    let worker = std::thread::Builder::new()
        .name(format!("gitfleet-watch-{branch}"))
        .spawn(move || run(receiver, &paths, &git_dir, &refname, initial, on_change))
        .map_err(|source| GitError::Io { path: paths_display(repository), source })?;
    Ok(BranchWatch { watcher: Some(watcher), stop: sender, worker: Some(worker) })
}

fn paths_display(repository: &Repository) -> String {
    repository.path().display().to_string()
}

impl Drop for BranchWatch {
    fn drop(&mut self) {
        let _ = self.stop.send(Message::Stop);
        drop(self.watcher.take());
        if let Some(worker) = self.worker.take() {
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

/// The files whose changes may move the branch.
struct Paths {
    /// The git directory (`HEAD` lives here).
    git_dir: PathBuf,
    /// The common directory (`refs/`, `packed-refs`); the git directory except in a worktree.
    common_dir: PathBuf,
    /// `<common>/refs/heads/<branch>`.
    loose_ref: PathBuf,
}

impl Paths {
    fn of(repository: &Repository, refname: &str) -> Result<Paths, GitError> {
        let canonical = |path: &Path| {
            path.canonicalize()
                .map_err(|source| GitError::Io { path: path.display().to_string(), source })
        };
        let git_dir = canonical(repository.path())?;
        let common_dir = canonical(repository.commondir())?;
        let loose_ref = refname.split('/').fold(common_dir.clone(), |path, part| path.join(part));
        Ok(Paths { git_dir, common_dir, loose_ref })
    }

    fn heads(&self) -> PathBuf {
        self.common_dir.join("refs").join("heads")
    }

    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut watched = vec![(self.git_dir.clone(), RecursiveMode::NonRecursive)];
        if self.common_dir != self.git_dir {
            watched.push((self.common_dir.clone(), RecursiveMode::NonRecursive));
        }
        watched.push((self.heads(), RecursiveMode::Recursive));
        watched
    }

    /// Whether a change to `path` may have moved the branch.
    fn concerns(&self, path: &Path) -> bool {
        path == self.loose_ref
            || path == self.common_dir.join("packed-refs")
            || path == self.git_dir.join("HEAD")
            // A directory on the way to the ref (`refs/heads/feature` for `feature/x`) that
            // appears or goes: the ref file may come with it before it is watched.
            || (path.starts_with(self.heads()) && self.loose_ref.starts_with(path))
    }

    fn relevant(&self, event: &notify::Result<Event>) -> bool {
        let Ok(event) = event else { return true };
        if let EventKind::Access(access) = event.kind {
            // Opening and reading (our own resolving included) change nothing.
            if access != AccessKind::Close(AccessMode::Write) {
                return false;
            }
        }
        // No paths: a rescan or an overflow, anything may have changed.
        event.paths.is_empty() || event.paths.iter().any(|path| self.concerns(path))
    }
}

/// The branch's tip, read afresh (no cached reference database).
fn tip(git_dir: &Path, refname: &str) -> Option<Oid> {
    Repository::open(git_dir).ok()?.refname_to_id(refname).ok()
}

fn run(
    receiver: Receiver<Message>,
    paths: &Paths,
    git_dir: &Path,
    refname: &str,
    mut last: Option<Oid>,
    on_change: impl Fn(),
) {
    loop {
        match receiver.recv() {
            Ok(Message::Event(event)) if paths.relevant(&event) => {
                if let Err(error) = event {
                    tracing::warn!(%error, branch = refname, "file-system watcher error");
                }
            }
            Ok(Message::Event(_)) => continue,
            Ok(Message::Stop) | Err(_) => return,
        }
        if !wait_for_quiet(&receiver, paths) {
            return;
        }
        let current = tip(git_dir, refname);
        if current != last {
            tracing::debug!(branch = refname, tip = ?current, "watched branch moved");
            last = current;
            on_change();
        }
    }
}

/// Waits until no relevant event came for [`DEBOUNCE`] (or [`MAX_BURST`] passed); false
/// when told to stop.
fn wait_for_quiet(receiver: &Receiver<Message>, paths: &Paths) -> bool {
    let started = Instant::now();
    let mut quiet_at = started + DEBOUNCE;
    loop {
        let deadline = quiet_at.min(started + MAX_BURST);
        let Some(wait) = deadline.checked_duration_since(Instant::now()) else { return true };
        match receiver.recv_timeout(wait) {
            Ok(Message::Event(event)) => {
                if paths.relevant(&event) {
                    quiet_at = Instant::now() + DEBOUNCE;
                }
            }
            Err(RecvTimeoutError::Timeout) => return true,
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    fn paths() -> Paths {
        Paths {
            git_dir: PathBuf::from("/r/.git"),
            common_dir: PathBuf::from("/r/.git"),
            loose_ref: PathBuf::from("/r/.git/refs/heads/feature/x"),
        }
    }

    fn event(kind: EventKind, path: &str) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path(PathBuf::from(path)))
    }

    #[test]
    fn only_the_branch_packed_refs_and_head_matter() {
        let p = paths();
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        for path in [
            "/r/.git/refs/heads/feature/x",
            "/r/.git/refs/heads/feature",
            "/r/.git/packed-refs",
            "/r/.git/HEAD",
        ] {
            assert!(p.relevant(&event(renamed, path)), "{path}");
        }
        for path in [
            "/r/.git/refs/heads/gitfleet/status",
            "/r/.git/refs/heads/gitfleet",
            "/r/.git/refs/heads/feature/x.lock",
            "/r/.git/refs/heads/feature/xy",
            "/r/.git/refs/heads/main",
            "/r/.git/index",
            "/r/.git/refs",
            "/r/.git/packed-refs.lock",
        ] {
            assert!(!p.relevant(&event(renamed, path)), "{path}");
        }
    }

    #[test]
    fn reads_are_not_changes_but_errors_and_rescans_are() {
        let p = paths();
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!p.relevant(&event(open, "/r/.git/packed-refs")));
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(p.relevant(&event(written, "/r/.git/packed-refs")));
        assert!(p.relevant(&Ok(Event::new(EventKind::Create(CreateKind::Any)))));
        assert!(p.relevant(&Err(notify::Error::generic("overflow"))));
    }
}
