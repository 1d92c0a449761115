//! Real Git repositories on disk for the tests: a working copy in a temporary directory whose
//! every change is a commit on HEAD.

use std::path::Path;

use git2::{IndexAddOption, Repository, Signature};
use tempfile::TempDir;

/// A repository in its own temporary directory, removed on drop.
pub struct GitRepo {
    dir: TempDir,
}

impl GitRepo {
    /// A new repository whose first commit holds `files`.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = TempDir::new().expect("temp dir");
        Repository::init(dir.path()).expect("git init");
        let repo = GitRepo { dir };
        repo.commit(files, &[]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The commit id HEAD points at.
    pub fn head(&self) -> String {
        let repository = Repository::open(self.dir.path()).unwrap();
        repository.head().unwrap().peel_to_commit().unwrap().id().to_string()
    }

    /// The branch HEAD points at (`master` or `main`, as git's defaults say).
    pub fn branch(&self) -> String {
        let repository = Repository::open(self.dir.path()).unwrap();
        let head = repository.find_reference("HEAD").unwrap();
        let target = head.symbolic_target().unwrap().unwrap().to_string();
        target.trim_start_matches("refs/heads/").to_string()
    }

    /// Pushes `refspec` (`HEAD:refs/heads/main`, `+HEAD:refs/pull/1/head` ...) to the
    /// repository at `remote` (a path), as `git push <remote> <refspec>` would.
    pub fn push(&self, remote: &Path, refspec: &str) {
        let repository = Repository::open(self.dir.path()).unwrap();
        let mut remote = repository.remote_anonymous(&remote.display().to_string()).unwrap();
        let (force, spec) = match refspec.strip_prefix('+') {
            Some(spec) => ("+", spec),
            None => ("", refspec),
        };
        // libgit2 pushes references, not `HEAD`: name the branch HEAD points at.
        let spec = match spec.strip_prefix("HEAD:") {
            Some(target) => format!("refs/heads/{}:{target}", self.branch()),
            None => spec.to_string(),
        };
        remote.push(&[format!("{force}{spec}")], None).unwrap();
    }

    /// Writes `files`, deletes the folders or files in `removed`, commits everything on
    /// HEAD; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], removed: &[&str]) -> String {
        let root = self.dir.path();
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        for path in removed {
            let path = root.join(path);
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
        let repository = Repository::open(root).unwrap();
        let mut index = repository.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = repository.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("Test", "test@example.test").unwrap();
        let parent = repository.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repository
            .commit(Some("HEAD"), &signature, &signature, "change", &tree, &parents)
            .unwrap()
            .to_string()
    }
}
