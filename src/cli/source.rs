//! Where the repository comes from: a directory, or `--repo` at `--rev`.

use std::path::PathBuf;

use anyhow::Context;

use crate::model::SourceTree;
use crate::sync;

#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// A directory holding fleet.yaml and apps/ (a working copy); default: the current one.
    #[arg(conflicts_with = "repo")]
    pub dir: Option<PathBuf>,
    /// A Git repository (a path or a URL) to read instead of a directory; no checkout is made.
    #[arg(long, env = "GITFLEET_REPO")]
    pub repo: Option<String>,
    /// The revision of --repo to read: a branch, tag or commit.
    #[arg(long, default_value = "HEAD", requires = "repo")]
    pub rev: String,
    /// Where clones of remote repositories are kept.
    #[arg(long, env = "GITFLEET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The files of the chosen revision, and its commit id when it came from Git.
pub struct Loaded {
    pub tree: SourceTree,
    pub revision: Option<sync::Revision>,
}

impl SourceArgs {
    pub fn read(&self) -> anyhow::Result<Loaded> {
        match &self.repo {
            Some(location) => {
                let cache = self.cache_dir.clone().unwrap_or_else(default_cache);
                let repository = sync::open(location, &cache)?;
                let revision = sync::resolve(&repository, &self.rev)?;
                let tree = sync::read_commit(&repository, &revision.commit)?;
                Ok(Loaded { tree, revision: Some(revision) })
            }
            None => {
                let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
                anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
                let tree = sync::read_directory(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?;
                Ok(Loaded { tree, revision: None })
            }
        }
    }
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gitfleet").join("repos")
}
