//! The files of one revision, as bytes: what the loader reads instead of the disk, so the
//! same tree always gives the same model. Built from a Git commit (`sync`) or a directory.
//!
//! A tree read from Git also carries the Git object ids of `fleet.yaml` and of each
//! `apps/<name>` folder ([`SourceTree::folder_id`]), and may leave out the files of folders
//! the reader skipped as unchanged ([`SourceTree::is_skipped`]); the load cache
//! (`model::cache`) supplies those from the previous load.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEntry {
    File(Arc<Vec<u8>>),
    /// A symbolic link, with its target; never followed.
    Symlink(String),
    /// Something that is not a file to read: a submodule (gitlink), a FIFO, a device, a
    /// socket, or a file over [`super::limits::READ_CEILING`]; says which. Recorded so the
    /// loader reports it where it matters instead of the entry vanishing.
    Unreadable(String),
}

/// Files keyed by their `/`-separated path relative to the repository root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTree {
    entries: BTreeMap<String, SourceEntry>,
    /// Git object ids by path (`fleet.yaml`, `apps/<name>`); none for a directory read.
    ids: BTreeMap<String, String>,
    /// Folders whose id is recorded but whose files were not read.
    skipped: BTreeSet<String>,
}

impl SourceTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_file(&mut self, path: impl Into<String>, bytes: Vec<u8>) {
        self.entries.insert(path.into(), SourceEntry::File(Arc::new(bytes)));
    }

    pub fn insert_symlink(&mut self, path: impl Into<String>, target: impl Into<String>) {
        self.entries.insert(path.into(), SourceEntry::Symlink(target.into()));
    }

    /// Records that `path` is something that cannot be read as a file (`what` says which).
    pub fn insert_unreadable(&mut self, path: impl Into<String>, what: impl Into<String>) {
        self.entries.insert(path.into(), SourceEntry::Unreadable(what.into()));
    }

    /// Inserts an entry as it is (shared bytes are not copied).
    pub fn insert_entry(&mut self, path: impl Into<String>, entry: SourceEntry) {
        self.entries.insert(path.into(), entry);
    }

    pub fn get(&self, path: &str) -> Option<&SourceEntry> {
        self.entries.get(path)
    }

    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The entries under folder `dir` (no trailing `/`), in path order.
    pub fn entries_under<'a>(
        &'a self,
        dir: &str,
    ) -> impl Iterator<Item = (&'a str, &'a SourceEntry)> + 'a {
        let prefix = format!("{dir}/");
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(path, _)| path.starts_with(&prefix))
            .map(|(path, entry)| (path.as_str(), entry))
    }

    /// Records the Git object id of the tree or blob at `path` (`apps/<name>`, `fleet.yaml`).
    pub fn set_folder_id(&mut self, path: impl Into<String>, id: impl Into<String>) {
        self.ids.insert(path.into(), id.into());
    }

    /// The Git object id recorded for `path`; `None` for a tree read from a directory.
    pub fn folder_id(&self, path: &str) -> Option<&str> {
        self.ids.get(path).map(String::as_str)
    }

    /// Every `(path, id)` recorded, sorted by path.
    pub fn folder_ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ids.iter().map(|(path, id)| (path.as_str(), id.as_str()))
    }

    /// Records that the files of folder `path` were deliberately not read (its id is known
    /// and a cache holds them).
    pub fn mark_skipped(&mut self, path: impl Into<String>) {
        self.skipped.insert(path.into());
    }

    /// Whether the files of folder `path` were left out of this tree.
    pub fn is_skipped(&self, path: &str) -> bool {
        self.skipped.contains(path)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(String, Vec<u8>)> for SourceTree {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(files: I) -> Self {
        let mut tree = SourceTree::new();
        for (path, bytes) in files {
            tree.insert_file(path, bytes);
        }
        tree
    }
}
