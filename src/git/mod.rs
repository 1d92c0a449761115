//! Git: opening a repository (a local path, or a clone of a URL), resolving a revision to a
//! commit, and reading a commit's tree into a [`SourceTree`] without a checkout, so the same
//! commit always gives the same model. Also reading a plain directory, for `validate DIR`.
//!
//! What the long-running controller needs on top of that:
//!
//! * `mirror`: a [`Mirror`] of the watched repository (a bare clone in a cache directory for a
//!   URL, the repository itself for a local path), fetching one branch or one PR head at a time,
//!   with [`Credentials`] that never reach a log or an error message.
//!   Every transfer is bounded in time (`deadline`); stale lock files a killed process left in
//!   the mirror's cache directory are removed on open (`locks`); preview references of closed
//!   pull requests are pruned (by the previews task, hourly) and the mirror compacted (by the
//!   repository task, daily) on request (`maintenance`). A fetch may also be bounded in size.
//! * `watch`: file-system notifications for a local repository ([`watch_branch`]).
//! * `poll`: when to poll next and how long to back off (pure).
//! * `status_branch`: status written back as commits on a branch of its own ([`write_status`]).
//! * `preview`: what a pull-request preview loads, the base's `fleet.yaml` with the head's
//!   `apps/`, within a budget ([`read_preview`]).

mod blobs;
mod deadline;
mod directory;
mod identity;
mod locks;
mod maintenance;
mod mirror;
pub mod poll;
mod preview;
mod repository;
mod status_branch;
mod watch;

pub use deadline::{DEFAULT_GIT_TIMEOUT, seconds};
pub use directory::read_directory;
pub use identity::repository_id;
pub use mirror::{Credentials, Mirror, MirrorOptions, PREVIEW_PREFIX, redact_url};
pub use preview::{
    DEFAULT_PREVIEW_FETCH_BYTES, PreviewBudget, PreviewReadError, PreviewTree, read_preview,
};
pub use repository::{Revision, read_commit, read_commit_skipping, resolve};
pub use status_branch::{STATUS_EMAIL, STATUS_NAME, write_status};
pub use watch::{BranchWatch, watch_branch};

/// What can go wrong reading a repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open repository {location}: {source}")]
    Open { location: String, source: git2::Error },
    #[error("revision {rev:?} does not name a commit in {location}: {source}")]
    Resolve { rev: String, location: String, source: git2::Error },
    #[error("cannot read {path} at {commit}: {source}")]
    Read { commit: String, path: String, source: git2::Error },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A fetch (or the connection before it) failed. `url` is redacted and `message` is git's
    /// message with every credential scrubbed out.
    #[error("cannot fetch {what} from {url}: {message}")]
    Fetch { what: String, url: String, message: String },
    /// A fetch or push made no progress for `after` (nothing connected, nothing answered, or
    /// only keep-alives): `action` says which, with the redacted URL.
    #[error("{action} timed out after {} (no progress)", deadline::seconds(*after))]
    Timeout { action: String, after: std::time::Duration },
    /// A fetch received more than its limit allows (a pull request's head over the preview
    /// fetch limit): it was stopped, nothing of it kept, no reference moved.
    #[error(
        "{action} stopped after {received} bytes: over its limit of {limit} bytes (nothing was kept)"
    )]
    TooLarge { action: String, received: u64, limit: u64 },
    /// Compacting the mirror (`git gc`) failed or timed out.
    #[error("cannot compact the mirror {location}: {message}")]
    Compact { location: String, message: String },
    /// The remote (or the local repository) has no such branch.
    #[error("branch {branch} not found in {url}")]
    BranchNotFound { branch: String, url: String },
    /// The remote (or the local repository) has no such reference (a PR head, say).
    #[error("{reference} not found in {url}")]
    RefNotFound { reference: String, url: String },
    /// A branch name, reference name or status file path that gitfleet refuses.
    #[error("{name:?} is not a valid {what}: {reason}")]
    InvalidName { what: &'static str, name: String, reason: String },
    /// Pushing the status branch failed (or was rejected twice).
    #[error("cannot push {branch} to {url}: {message}")]
    Push { branch: String, url: String, message: String },
    /// Writing the status commit into the repository failed.
    #[error("cannot write the status commit on {branch} in {location}: {source}")]
    Status { branch: String, location: String, source: git2::Error },
    /// Moving the status branch would move a checked-out branch under its working tree.
    #[error(
        "the status branch {branch} is checked out in {location}; gitfleet never moves a \
         checked-out branch: check out another branch there, or choose another status branch"
    )]
    StatusCheckedOut { branch: String, location: String },
    /// The file-system watcher could not be set up.
    #[error("cannot watch {path} for changes: {source}")]
    Watch { path: String, source: notify::Error },
}
