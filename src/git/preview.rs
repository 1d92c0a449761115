//! The tree a pull-request preview loads: `fleet.yaml` from the base commit (the watched
//! branch as this controller last fetched it) and everything under `apps/` from the pull
//! request's head, nothing else, read within a budget.
//!
//! # Guarantees
//!
//! * Nothing of the head outside `apps/` is used: its `fleet.yaml` (hosts, TLS file paths,
//!   settings, limits, variables) never is, so a pull request cannot point the controller at
//!   an address, name a file on the controller's machine, or raise the load limits.
//! * Nothing is read from the file system: entries come from Git objects, symbolic links are
//!   recorded as links and never followed (the loader refuses them where a file is needed).
//! * Before any blob of the head is read, its sizes (from the object headers) and the number
//!   of entries are added up; over the [`PreviewBudget`], nothing is read.
//! * The fetch of the head is bounded too: [`PreviewBudget::max_fetch_bytes`] is the most a
//!   preview downloads (`Mirror::fetch_ref_within`), so a head of any size costs the
//!   controller at most that much network, disk and time before it is refused.

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::GitError;
use super::repository::{read_commit, read_commit_skipping};
use crate::model::SourceTree;
use crate::model::load::{APPS_DIR, FLEET_FILE};

/// How much of a head a preview reads at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewBudget {
    /// Files, links and other entries under `apps/` (and `fleet.yaml`).
    pub max_entries: usize,
    /// Their bytes, added up.
    pub max_bytes: u64,
    /// The bytes the fetch of the head may receive (the pack the remote sends: the head's
    /// commits, trees and blobs the mirror does not have yet, compressed).
    pub max_fetch_bytes: u64,
}

/// The default of [`PreviewBudget::max_fetch_bytes`]: 256 MiB.
pub const DEFAULT_PREVIEW_FETCH_BYTES: u64 = 256 << 20;

impl Default for PreviewBudget {
    /// 10,000 entries and 64 MiB read, 256 MiB fetched: far above a real fleet's pull
    /// request, far below what hurts a controller.
    fn default() -> Self {
        PreviewBudget {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            max_fetch_bytes: DEFAULT_PREVIEW_FETCH_BYTES,
        }
    }
}

/// The tree to load, and whether the head's `fleet.yaml` differs from the base's (ignored).
#[derive(Debug)]
pub struct PreviewTree {
    pub tree: SourceTree,
    pub fleet_changed: bool,
}

/// Why no preview tree could be read.
#[derive(Debug, thiserror::Error)]
pub enum PreviewReadError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "the head holds {entries} entries and {bytes} bytes under apps/, over the preview budget ({budget:?})"
    )]
    TooLarge { entries: usize, bytes: u64, budget: PreviewBudget },
}

/// `fleet.yaml` of `base` with `apps/` of `head` (both full commit ids in `repository`).
pub fn read_preview(
    repository: &Repository,
    base: &str,
    head: &str,
    budget: &PreviewBudget,
) -> Result<PreviewTree, PreviewReadError> {
    let (entries, bytes) = measure(repository, head, budget)?;
    if entries > budget.max_entries || bytes > budget.max_bytes {
        return Err(PreviewReadError::TooLarge { entries, bytes, budget: *budget });
    }
    // The base's app folders are skipped unread: only its fleet.yaml is wanted.
    let base_tree = read_commit_skipping(repository, base, &|_, _| true)?;
    let head_tree = read_commit(repository, head)?;
    let mut tree = SourceTree::new();
    if let Some(entry) = base_tree.get(FLEET_FILE) {
        tree.insert_entry(FLEET_FILE, entry.clone());
    }
    if let Some(id) = base_tree.folder_id(FLEET_FILE) {
        tree.set_folder_id(FLEET_FILE, id);
    }
    let apps_prefix = format!("{APPS_DIR}/");
    for path in head_tree.paths() {
        if path == APPS_DIR || path.starts_with(&apps_prefix) {
            if let Some(entry) = head_tree.get(path) {
                tree.insert_entry(path, entry.clone());
            }
        }
    }
    for (path, id) in head_tree.folder_ids() {
        if path.starts_with(&apps_prefix) {
            tree.set_folder_id(path, id);
        }
    }
    let fleet_changed = base_tree.folder_id(FLEET_FILE) != head_tree.folder_id(FLEET_FILE)
        || base_tree.get(FLEET_FILE) != head_tree.get(FLEET_FILE);
    Ok(PreviewTree { tree, fleet_changed })
}

/// Entries and bytes that reading `head` would take (`fleet.yaml` and `apps/`), counted from
/// the trees and object headers only; stops counting once over `budget`.
fn measure(
    repository: &Repository,
    head: &str,
    budget: &PreviewBudget,
) -> Result<(usize, u64), GitError> {
    let read_error =
        |path: &str, source| GitError::Read { commit: head.into(), path: path.into(), source };
    let oid = Oid::from_str(head).map_err(|e| read_error("", e))?;
    let tree = repository.find_commit(oid).and_then(|c| c.tree()).map_err(|e| read_error("", e))?;
    let odb = repository.odb().map_err(|e| read_error("", e))?;
    let apps_prefix = format!("{APPS_DIR}/");
    let (mut entries, mut bytes) = (0usize, 0u64);
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        if !(path == FLEET_FILE || path == APPS_DIR || path.starts_with(&apps_prefix)) {
            return TreeWalkResult::Skip;
        }
        entries += 1;
        if entry.kind() == Some(ObjectType::Blob) {
            bytes += odb.read_header(entry.id()).map(|(size, _)| size as u64).unwrap_or(0);
        }
        if entries > budget.max_entries || bytes > budget.max_bytes {
            TreeWalkResult::Abort
        } else {
            TreeWalkResult::Ok
        }
    })
    .or_else(|e| if e.code() == git2::ErrorCode::User { Ok(()) } else { Err(read_error("", e)) })?;
    Ok((entries, bytes))
}
