//! Reading a Git repository with git2: open or clone, resolve, read a commit's tree.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::SyncError;
use crate::model::SourceTree;
use crate::model::load::{APPS_DIR, FLEET_FILE};

/// A resolved commit and what people need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub commit: String,
    pub summary: String,
    pub author: String,
}

/// Opens the repository at `location`: a local path (bare or not) or a `file://` URL, or
/// clones a URL into `cache` first (a bare mirror, reused and fetched on later calls).
pub fn open(location: &str, cache: &Path) -> Result<Repository, SyncError> {
    let local = location.strip_prefix("file://").unwrap_or(location);
    if Path::new(local).exists() {
        return Repository::open(local)
            .map_err(|source| SyncError::Open { location: location.into(), source });
    }
    let target = cache.join(cache_name(location));
    if target.exists() {
        let repository = Repository::open_bare(&target)
            .map_err(|source| SyncError::Open { location: location.into(), source })?;
        fetch(&repository, location)?;
        return Ok(repository);
    }
    std::fs::create_dir_all(cache)
        .map_err(|source| SyncError::Io { path: cache.display().to_string(), source })?;
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(location, &target)
        .map_err(|source| SyncError::Clone { url: location.into(), source })
}

fn fetch(repository: &Repository, url: &str) -> Result<(), SyncError> {
    let mut remote = repository
        .find_remote("origin")
        .map_err(|source| SyncError::Clone { url: url.into(), source })?;
    remote
        .fetch(&["+refs/heads/*:refs/heads/*"], None, None)
        .map_err(|source| SyncError::Clone { url: url.into(), source })
}

/// A directory name for a clone of `url`, readable and unique.
fn cache_name(url: &str) -> PathBuf {
    let readable: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .chars()
        .map(
            |c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' },
        )
        .collect();
    let digest = crate::model::digest::sha256_hex(url.as_bytes());
    PathBuf::from(format!("{readable}-{}", &digest[..12]))
}

/// Resolves `rev` (a branch, tag, commit id, `HEAD`, `main~2` ...) to a commit.
pub fn resolve(repository: &Repository, rev: &str) -> Result<Revision, SyncError> {
    let location = repository.path().display().to_string();
    let error = |source| SyncError::Resolve { rev: rev.into(), location: location.clone(), source };
    let object = repository.revparse_single(rev).map_err(error)?;
    let commit = object.peel_to_commit().map_err(error)?;
    let author = commit.author();
    Ok(Revision {
        commit: commit.id().to_string(),
        summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
        author: format!(
            "{} <{}>",
            author.name().unwrap_or_default(),
            author.email().unwrap_or_default()
        ),
    })
}

/// Reads `fleet.yaml` and everything under `apps/` from the tree of `commit`. Symbolic links
/// are recorded as links (never followed); submodules are skipped.
pub fn read_commit(repository: &Repository, commit: &str) -> Result<SourceTree, SyncError> {
    let read_error =
        |path: &str, source| SyncError::Read { commit: commit.into(), path: path.into(), source };
    let oid = Oid::from_str(commit).map_err(|e| read_error("", e))?;
    let tree = repository.find_commit(oid).and_then(|c| c.tree()).map_err(|e| read_error("", e))?;
    let mut files = SourceTree::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        let path = format!("{dir}{name}");
        let wanted =
            path == FLEET_FILE || path == APPS_DIR || path.starts_with(&format!("{APPS_DIR}/"));
        if !wanted {
            return TreeWalkResult::Skip;
        }
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        match repository.find_blob(entry.id()) {
            Ok(blob) if entry.filemode() == 0o120000 => {
                files.insert_symlink(path, String::from_utf8_lossy(blob.content()).into_owned());
            }
            Ok(blob) => files.insert_file(path, blob.content().to_vec()),
            Err(e) => {
                failure = Some(read_error(&path, e));
                return TreeWalkResult::Abort;
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| failure.take().unwrap_or_else(|| read_error("", e)))?;
    match failure {
        Some(error) => Err(error),
        None => Ok(files),
    }
}
