//! Git: opening a repository (a local path, or a clone of a URL), resolving a revision to a
//! commit, and reading a commit's tree into a [`SourceTree`] without a checkout, so the same
//! commit always gives the same model. Also reading a plain directory, for `validate DIR`.

mod directory;
mod repository;

pub use directory::read_directory;
pub use repository::{Revision, open, read_commit, read_commit_skipping, resolve};

/// What can go wrong reading a repository.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot open repository {location}: {source}")]
    Open { location: String, source: git2::Error },
    #[error("cannot clone {url}: {source}")]
    Clone { url: String, source: git2::Error },
    #[error("revision {rev:?} does not name a commit in {location}: {source}")]
    Resolve { rev: String, location: String, source: git2::Error },
    #[error("cannot read {path} at {commit}: {source}")]
    Read { commit: String, path: String, source: git2::Error },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
}
