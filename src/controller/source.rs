//! The repository as the reconcile loop sees it: fetch the branch head, load a commit's
//! model (reusing the apps whose Git tree did not change), write the status branch. Blocking
//! (git2); the loop calls it from `block_in_place`.

use std::collections::BTreeMap;

use super::state::RevisionInfo;
use crate::git::{self, GitError, Mirror, MirrorOptions};
use crate::model::{self, Diagnostic, LoadCache, LoadOptions, Partial};

/// Why a commit gives no model.
#[derive(Debug)]
pub enum SourceError {
    /// It does not validate as a whole (`fleet.yaml` is broken, or, for a strict load, any
    /// app): every problem, located.
    Invalid(Vec<Diagnostic>),
    /// It could not be read.
    Unreadable(String),
}

/// The watched repository.
pub struct Source {
    mirror: Mirror,
    branch: String,
    options: LoadOptions,
    cache: LoadCache,
    push_status: bool,
}

impl Source {
    pub fn open(
        location: &str,
        cache_dir: &std::path::Path,
        mirror: MirrorOptions,
        branch: &str,
        options: LoadOptions,
        push_status: bool,
    ) -> Result<Self, GitError> {
        let mirror = Mirror::open_with(location, cache_dir, mirror)?;
        Ok(Source {
            mirror,
            branch: branch.to_string(),
            options,
            cache: LoadCache::default(),
            push_status,
        })
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// What loading needs besides the files (the age identities).
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// Fetches the branch and returns its head.
    pub fn fetch_head(&self) -> Result<RevisionInfo, GitError> {
        let revision = self.mirror.fetch_branch(&self.branch)?;
        Ok(info(revision))
    }

    /// The branch head as last fetched into the cache, without the network (`None`: never
    /// fetched here): what a controller restarted while the remote is down deploys.
    pub fn cached_head(&self) -> Result<Option<RevisionInfo>, GitError> {
        Ok(self.mirror.cached_head(&self.branch)?.map(info))
    }

    /// Fetches a pull request's head (`refs/pull/7/head` ...), receiving at most
    /// `max_bytes`, and returns it.
    pub fn fetch_ref(&self, remote_ref: &str, max_bytes: u64) -> Result<RevisionInfo, GitError> {
        Ok(info(self.mirror.fetch_ref_within(remote_ref, Some(max_bytes))?))
    }

    /// The model of `commit` app by app (a broken app does not block the others; a broken
    /// `fleet.yaml` does), re-reading only the apps whose folder changed since the last load.
    pub fn load(&mut self, commit: &str) -> Result<Partial, SourceError> {
        let cache = &self.cache;
        let tree = git::read_commit_skipping(self.mirror.repository(), commit, &|app, id| {
            cache.is_fresh(app, id)
        })
        .map_err(|e| SourceError::Unreadable(e.to_string()))?;
        model::load_cached_partial(&tree, &self.options, &mut self.cache)
            .map_err(SourceError::Invalid)
    }

    /// Commits the status files to `branch` when they differ from its tip.
    pub fn write_status(
        &self,
        branch: &str,
        files: &BTreeMap<String, Vec<u8>>,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        git::write_status(&self.mirror, branch, files, message, self.push_status)
    }
}

fn info(revision: git::Revision) -> RevisionInfo {
    let time = u64::try_from(revision.time)
        .ok()
        .map(|s| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
    RevisionInfo {
        commit: revision.commit,
        author: revision.author,
        message: revision.summary,
        time,
    }
}
