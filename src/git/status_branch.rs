//! Status written back to the repository as commits on a branch of its own (by default
//! `gitfleet/status`), which shares no history with the branch gitfleet deploys from.
//!
//! # Guarantees
//!
//! * Each status commit's tree holds exactly the files given, nothing else.
//! * Nothing is committed when the files are what the branch already holds.
//! * Only `refs/heads/<status branch>` is written (in the mirror, and on the origin when
//!   pushing); never another branch, never a working tree or an index. A status branch that
//!   is checked out in a non-bare local repository is refused.
//! * A local reference moves only from the commit it was read at (compare and swap); a push
//!   is never forced. When someone else moved the branch in between, the status is
//!   re-committed on top of their commit once.

use std::collections::BTreeMap;

use git2::{ErrorCode, FileMode, Oid, Repository, Signature};

use super::GitError;
use super::mirror::{Mirror, Pushed, branch_ref};

/// The author and committer of status commits.
pub const STATUS_NAME: &str = "gitfleet";
pub const STATUS_EMAIL: &str = "gitfleet@localhost";

/// Commits `files` (path → content; paths may contain `/`) as the whole tree of the next
/// commit on `branch`, with `message`, and returns the new commit's id, or `None` when the
/// branch already holds exactly these files.
///
/// The parent is the branch's current tip; the first commit is an orphan. For a local
/// repository the branch is moved in place. For a clone, `push` fetches the branch from the
/// origin first, commits on top of it and pushes it back (re-committing and retrying once if
/// the push is rejected); without `push` only the mirror's own branch moves.
pub fn write_status(
    mirror: &Mirror,
    branch: &str,
    files: &BTreeMap<String, Vec<u8>>,
    message: &str,
    push: bool,
) -> Result<Option<String>, GitError> {
    let refname = branch_ref(branch)?;
    let repository = mirror.repository();
    let git_error = |source| GitError::Status {
        branch: branch.into(),
        location: mirror.location().into(),
        source,
    };
    refuse_checked_out(mirror, &refname, branch)?;
    let tree = write_tree(repository, files).map_err(|e| match e {
        TreeError::Invalid(error) => error,
        TreeError::Git(source) => git_error(source),
    })?;
    let signature = Signature::now(STATUS_NAME, STATUS_EMAIL).map_err(git_error)?;
    let remote = push && !mirror.is_local();
    let mut last_rejection = String::new();
    for _attempt in 0..2 {
        let parent = if remote {
            mirror.fetch_into(&refname, &refname, None)?
        } else {
            repository.refname_to_id(&refname).ok()
        };
        let parent = match parent {
            Some(id) => Some(repository.find_commit(id).map_err(git_error)?),
            None => None,
        };
        if parent.as_ref().is_some_and(|p| p.tree_id() == tree) {
            return Ok(None);
        }
        let tree = repository.find_tree(tree).map_err(git_error)?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let commit = repository
            .commit(None, &signature, &signature, message, &tree, &parents)
            .map_err(git_error)?;
        let log = format!("gitfleet: status {commit}");
        let moved = match (&parent, remote) {
            // The mirror's copy of a remote branch: the push decides.
            (_, true) => repository.reference(&refname, commit, true, &log).map(|_| ()),
            (Some(parent), false) => {
                repository.reference_matching(&refname, commit, true, parent.id(), &log).map(|_| ())
            }
            (None, false) => repository.reference(&refname, commit, false, &log).map(|_| ()),
        };
        match moved {
            Ok(()) => {}
            Err(e) if is_race(&e) => {
                last_rejection = e.message().to_string();
                continue;
            }
            Err(e) => return Err(git_error(e)),
        }
        if !remote {
            tracing::debug!(branch, %commit, "status committed");
            return Ok(Some(commit.to_string()));
        }
        match mirror.push(&refname, branch)? {
            Pushed::Accepted => {
                tracing::debug!(branch, %commit, url = mirror.location(), "status pushed");
                return Ok(Some(commit.to_string()));
            }
            Pushed::Rejected(reason) => {
                tracing::debug!(branch, %reason, url = mirror.location(), "status push rejected");
                last_rejection = reason;
            }
        }
    }
    Err(GitError::Push {
        branch: branch.into(),
        url: mirror.location().into(),
        message: format!("rejected twice (fetched, re-committed, retried): {last_rejection}"),
    })
}

/// Someone else moved or created the reference between our read and our write.
fn is_race(error: &git2::Error) -> bool {
    matches!(error.code(), ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked)
}

fn refuse_checked_out(mirror: &Mirror, refname: &str, branch: &str) -> Result<(), GitError> {
    let repository = mirror.repository();
    if repository.is_bare() {
        return Ok(());
    }
    let head = repository.find_reference("HEAD").ok();
    if head.as_ref().and_then(|h| h.symbolic_target().ok().flatten()) == Some(refname) {
        return Err(GitError::StatusCheckedOut {
            branch: branch.into(),
            location: mirror.location().into(),
        });
    }
    Ok(())
}

enum TreeError {
    Invalid(GitError),
    Git(git2::Error),
}

impl From<git2::Error> for TreeError {
    fn from(error: git2::Error) -> Self {
        TreeError::Git(error)
    }
}

/// A directory of the tree being built.
#[derive(Default)]
struct Dir {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    File(Oid),
    Dir(Dir),
}

/// Writes the blobs and trees for `files`; returns the root tree's id.
fn write_tree(
    repository: &Repository,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Oid, TreeError> {
    let mut root = Dir::default();
    for (path, content) in files {
        let components = check_path(path).map_err(TreeError::Invalid)?;
        let blob = repository.blob(content)?;
        insert(&mut root, path, &components, blob).map_err(TreeError::Invalid)?;
    }
    write_dir(repository, &root)
}

fn invalid_path(path: &str, reason: &str) -> GitError {
    GitError::InvalidName { what: "status file path", name: path.into(), reason: reason.into() }
}

/// The components of a relative, normal path; anything git or a checkout would trip over is
/// refused.
fn check_path(path: &str) -> Result<Vec<&str>, GitError> {
    if path.contains('\0') || path.contains('\\') {
        return Err(invalid_path(path, "it contains a NUL or a backslash"));
    }
    let components: Vec<&str> = path.split('/').collect();
    for component in &components {
        if component.is_empty() {
            return Err(invalid_path(path, "it is absolute, empty, or has an empty component"));
        }
        if *component == "." || *component == ".." {
            return Err(invalid_path(path, "it has a `.` or `..` component"));
        }
        if component.eq_ignore_ascii_case(".git") {
            return Err(invalid_path(path, "it has a `.git` component"));
        }
    }
    Ok(components)
}

fn insert(dir: &mut Dir, path: &str, components: &[&str], blob: Oid) -> Result<(), GitError> {
    let conflict = || invalid_path(path, "it is both a file and a directory of the status tree");
    match components {
        [] => Err(conflict()),
        [name] => match dir.entries.insert((*name).to_string(), Entry::File(blob)) {
            Some(_) => Err(conflict()),
            None => Ok(()),
        },
        [name, rest @ ..] => {
            let entry = dir
                .entries
                .entry((*name).to_string())
                .or_insert_with(|| Entry::Dir(Dir::default()));
            match entry {
                Entry::Dir(sub) => insert(sub, path, rest, blob),
                Entry::File(_) => Err(conflict()),
            }
        }
    }
}

fn write_dir(repository: &Repository, dir: &Dir) -> Result<Oid, TreeError> {
    let mut builder = repository.treebuilder(None)?;
    for (name, entry) in &dir.entries {
        match entry {
            Entry::File(blob) => builder.insert(name, *blob, FileMode::Blob.into())?,
            Entry::Dir(sub) => {
                let tree = write_dir(repository, sub)?;
                builder.insert(name, tree, FileMode::Tree.into())?
            }
        };
    }
    Ok(builder.write()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(check_path("a/b/c.json").unwrap(), ["a", "b", "c.json"]);
        for bad in
            ["", "/abs", "a//b", "a/", "./a", "a/../b", ".git/config", "x/.GIT", "a\\b", "a\0"]
        {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_path_cannot_be_file_and_directory() {
        let mut root = Dir::default();
        let blob = Oid::ZERO_SHA1;
        insert(&mut root, "a", &["a"], blob).unwrap();
        assert!(insert(&mut root, "a/b", &["a", "b"], blob).is_err());
        insert(&mut root, "d/e", &["d", "e"], blob).unwrap();
        assert!(insert(&mut root, "d", &["d"], blob).is_err());
    }
}
