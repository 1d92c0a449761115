//! The files of one revision, as bytes: what the loader reads instead of the disk, so the
//! same tree always gives the same model. Built from a Git commit (`sync`) or a directory.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEntry {
    File(Arc<Vec<u8>>),
    /// A symbolic link, with its target; never followed.
    Symlink(String),
}

/// Files keyed by their `/`-separated path relative to the repository root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTree {
    entries: BTreeMap<String, SourceEntry>,
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

    pub fn get(&self, path: &str) -> Option<&SourceEntry> {
        self.entries.get(path)
    }

    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
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
