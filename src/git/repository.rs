//! Reading a Git repository with git2: resolve a revision, read a commit's tree (all of it,
//! or skipping the app folders a load cache already holds). Opening and fetching is the
//! [`Mirror`](super::Mirror)'s job, for the CLI and the controller alike.

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::GitError;
use super::blobs::{Blob, Wanted, read_blobs};
use crate::model::SourceTree;
use crate::model::limits::READ_CEILING;
use crate::model::load::{APPS_DIR, FLEET_FILE};

/// A resolved commit and what people need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub commit: String,
    pub summary: String,
    pub author: String,
    /// The commit time, in seconds since the epoch.
    pub time: i64,
}

/// Resolves `rev` (a branch, tag, commit id, `HEAD`, `main~2` ...) to a commit.
pub fn resolve(repository: &Repository, rev: &str) -> Result<Revision, GitError> {
    let location = repository.path().display().to_string();
    let error = |source| GitError::Resolve { rev: rev.into(), location: location.clone(), source };
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
        time: commit.time().seconds(),
    })
}

/// Reads `fleet.yaml` and everything under `apps/` from the tree of `commit`. Symbolic links
/// are recorded as links (never followed); submodules and blobs over
/// [`READ_CEILING`] as unreadable entries. The Git ids of
/// `fleet.yaml` and of each `apps/<name>` folder are recorded in the tree
/// ([`SourceTree::folder_id`]).
pub fn read_commit(repository: &Repository, commit: &str) -> Result<SourceTree, GitError> {
    read_commit_skipping(repository, commit, &|_, _| false)
}

/// [`read_commit`], except that the files of an app folder for which `skip(folder, tree_id)`
/// (`folder` is `apps/<name>`, `tree_id` its Git tree id) returns true are not read: the
/// folder's id is recorded and the folder marked skipped ([`SourceTree::is_skipped`]), for
/// a load cache to supply. With `model::LoadCache::is_fresh` as `skip`, only the folders
/// that changed since the cached load are read.
pub fn read_commit_skipping(
    repository: &Repository,
    commit: &str,
    skip: &dyn Fn(&str, &str) -> bool,
) -> Result<SourceTree, GitError> {
    let read_error =
        |path: &str, source| GitError::Read { commit: commit.into(), path: path.into(), source };
    let oid = Oid::from_str(commit).map_err(|e| read_error("", e))?;
    let tree = repository.find_commit(oid).and_then(|c| c.tree()).map_err(|e| read_error("", e))?;
    let apps_prefix = format!("{APPS_DIR}/");
    let mut files = SourceTree::new();
    // The walk records folders, links to submodules and the blobs to read; the blobs are
    // read afterwards, on several threads (`blobs`).
    let mut paths = Vec::new();
    let mut wanted = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        let path = format!("{dir}{name}");
        let kept = path == FLEET_FILE || path == APPS_DIR || path.starts_with(&apps_prefix);
        if !kept {
            return TreeWalkResult::Skip;
        }
        if entry.kind() == Some(ObjectType::Tree) && dir == apps_prefix {
            let id = entry.id().to_string();
            let skipped = skip(&path, &id);
            files.set_folder_id(path.clone(), id);
            if skipped {
                files.mark_skipped(path);
                return TreeWalkResult::Skip;
            }
            return TreeWalkResult::Ok;
        }
        if entry.kind() == Some(ObjectType::Commit) {
            // A submodule: its files are not in this repository. Recorded, so that the
            // loader reports it instead of the app vanishing.
            files.insert_unreadable(path, "a submodule (gitlink)");
            return TreeWalkResult::Ok;
        }
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        if path == FLEET_FILE {
            files.set_folder_id(FLEET_FILE, entry.id().to_string());
        }
        wanted.push(Wanted { id: entry.id(), symlink: entry.filemode() == 0o120000 });
        paths.push(path);
        TreeWalkResult::Ok
    })
    .map_err(|e| read_error("", e))?;
    let read = read_blobs(repository, &wanted, crate::parallel::available_threads());
    for (path, blob) in paths.into_iter().zip(read) {
        match blob.map_err(|e| read_error(&path, e))? {
            Blob::File(bytes) => files.insert_file(path, bytes),
            Blob::Symlink(target) => files.insert_symlink(path, target),
            Blob::TooBig(size) => files.insert_unreadable(
                path,
                format!("a file of {size} bytes, over the {READ_CEILING}-byte ceiling on reading"),
            ),
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use git2::{FileMode, Signature};

    use super::*;
    use crate::model::SourceEntry;

    /// Commits `files` (path, text) as the whole tree on `main`; returns the commit id.
    fn commit(repository: &Repository, files: &[(&str, &str)]) -> String {
        let mut index = git2::Index::new().unwrap();
        for (path, text) in files {
            let blob = repository.blob(text.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: u32::from(FileMode::Blob),
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id: blob,
                flags: path.len() as u16,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        let tree = repository.find_tree(index.write_tree_to(repository).unwrap()).unwrap();
        let who = Signature::now("t", "t@example.test").unwrap();
        let parent = repository.find_reference("refs/heads/main").ok();
        let parent = parent.and_then(|r| r.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = repository.commit(Some("refs/heads/main"), &who, &who, "c", &tree, &parents);
        oid.unwrap().to_string()
    }

    fn tree_id(repository: &Repository, commit: &str, path: &str) -> String {
        let tree = repository.find_commit(Oid::from_str(commit).unwrap()).unwrap().tree().unwrap();
        tree.get_path(std::path::Path::new(path)).unwrap().id().to_string()
    }

    #[test]
    fn records_git_ids_and_skips_the_folders_asked() {
        let dir = tempfile::tempdir().unwrap();
        let repository = Repository::init(dir.path()).unwrap();
        let files = [
            ("fleet.yaml", "hosts: {}\n"),
            ("README.md", "not read\n"),
            ("apps/a/compose.yaml", "services: {}\n"),
            ("apps/a/conf/x.json", "{}\n"),
            ("apps/b/compose.yaml", "services: {b: {image: b}}\n"),
        ];
        let first = commit(&repository, &files);

        let full = read_commit(&repository, &first).unwrap();
        let ids: Vec<(&str, &str)> = full.folder_ids().collect();
        let expected = [
            ("apps/a", tree_id(&repository, &first, "apps/a")),
            ("apps/b", tree_id(&repository, &first, "apps/b")),
            ("fleet.yaml", tree_id(&repository, &first, "fleet.yaml")),
        ];
        let expected: Vec<(&str, &str)> = expected.iter().map(|(p, i)| (*p, i.as_str())).collect();
        assert_eq!(ids, expected);
        assert_eq!(full.paths().count(), 4);
        assert!(!full.is_skipped("apps/a"));

        let asked = RefCell::new(Vec::new());
        let skipping = read_commit_skipping(&repository, &first, &|folder, id| {
            asked.borrow_mut().push((folder.to_string(), id.to_string()));
            folder == "apps/a"
        })
        .unwrap();
        // Only app folders are asked about, each once, with its tree id.
        let asked = asked.into_inner();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0], ("apps/a".to_string(), expected[0].1.to_string()));
        assert!(skipping.is_skipped("apps/a") && !skipping.is_skipped("apps/b"));
        assert_eq!(skipping.folder_id("apps/a"), Some(expected[0].1));
        let paths: Vec<&str> = skipping.paths().collect();
        assert_eq!(paths, ["apps/b/compose.yaml", "fleet.yaml"]);
        assert!(matches!(skipping.get("fleet.yaml"), Some(SourceEntry::File(_))));

        // A change to one app changes its folder's id only.
        let mut changed = files;
        changed[4].1 = "services: {b: {image: b2}}\n";
        let second = commit(&repository, &changed);
        let next = read_commit(&repository, &second).unwrap();
        assert_eq!(next.folder_id("apps/a"), full.folder_id("apps/a"));
        assert_eq!(next.folder_id("fleet.yaml"), full.folder_id("fleet.yaml"));
        assert_ne!(next.folder_id("apps/b"), full.folder_id("apps/b"));
    }
}
