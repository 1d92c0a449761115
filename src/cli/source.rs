//! Where the repository comes from (a directory, or `--repo` at `--rev`) and what loading
//! it needs besides its files (`--age-identity`).

use std::path::PathBuf;

use anyhow::Context;

use crate::git;
use crate::model::{LoadOptions, SourceTree, parse_identities};

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
    /// An age identity file (`AGE-SECRET-KEY-1...` lines, as made by age-keygen) to decrypt
    /// the repository's encrypted secrets (`*.age`) with.
    #[arg(long, env = "GITFLEET_AGE_IDENTITY", value_name = "FILE")]
    pub age_identity: Option<PathBuf>,
}

/// The files of the chosen revision, its commit id when it came from Git, and the options
/// to load it with.
pub struct Loaded {
    pub tree: SourceTree,
    pub revision: Option<git::Revision>,
    pub options: LoadOptions,
}

impl SourceArgs {
    pub fn read(&self) -> anyhow::Result<Loaded> {
        let options = self.load_options()?;
        let (tree, revision) = self.read_tree()?;
        Ok(Loaded { tree, revision, options })
    }

    /// The load options: the identities of `--age-identity`, if given. The error names the
    /// file and line, never a key.
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let Some(path) = &self.age_identity else { return Ok(LoadOptions::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the age identity file {}", path.display()))?;
        let identities = parse_identities(&text).map_err(|e| {
            anyhow::anyhow!("{}: {e}", path.display()).context("reading --age-identity")
        })?;
        tracing::debug!(recipients = ?identities.recipients(), "age identities loaded");
        Ok(LoadOptions { identities })
    }

    fn read_tree(&self) -> anyhow::Result<(SourceTree, Option<git::Revision>)> {
        match &self.repo {
            Some(location) => {
                let cache = self.cache_dir.clone().unwrap_or_else(default_cache);
                let repository = git::open(location, &cache)?;
                let revision = git::resolve(&repository, &self.rev)?;
                let tree = git::read_commit(&repository, &revision.commit)?;
                Ok((tree, Some(revision)))
            }
            None => {
                let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
                anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
                let tree = git::read_directory(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?;
                Ok((tree, None))
            }
        }
    }
}

pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gitfleet").join("repos")
}
