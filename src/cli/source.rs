//! Where the repository comes from (a directory, or `--repo` at `--rev`) and what loading
//! it needs besides its files (`--age-identity`). `--repo` is read through the controller's
//! own [`Mirror`](crate::git::Mirror): the same cache, credentials, timeouts and redaction.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::git::{self, Credentials, Mirror, MirrorOptions};
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
    #[command(flatten)]
    pub git: GitArgs,
    /// An age identity file (`AGE-SECRET-KEY-1...` lines, as made by age-keygen) to decrypt
    /// the repository's encrypted secrets (`*.age`) with.
    #[arg(long, env = "GITFLEET_AGE_IDENTITY", value_name = "FILE")]
    pub age_identity: Option<PathBuf>,
}

/// How to reach a remote repository: credentials and the bound on each fetch. Shared by
/// `validate`, `plan`, `apply` and `run`.
#[derive(Debug, clap::Args)]
pub struct GitArgs {
    /// User name for https fetches with a token, or for ssh (default `git`).
    #[arg(long, env = "GITFLEET_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// Token for https fetches (and status pushes); or GITFLEET_GIT_TOKEN_FILE.
    #[arg(long, env = "GITFLEET_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<String>,
    /// A file holding the token (its first line), so it stays out of the process list.
    #[arg(long, env = "GITFLEET_GIT_TOKEN_FILE", conflicts_with = "git_token")]
    pub git_token_file: Option<PathBuf>,
    /// SSH private key for ssh URLs; without it, the ssh agent is asked.
    #[arg(long, env = "GITFLEET_GIT_SSH_KEY")]
    pub git_ssh_key: Option<PathBuf>,
    /// Give up a fetch or push that connects, answers or progresses nothing for this long.
    /// Default 30s.
    #[arg(long, env = "GITFLEET_GIT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub git_timeout: Option<Duration>,
}

/// The credentials for `repository`: a token when one is given (as a value or in a file),
/// else an SSH key, else the SSH agent for an ssh URL, else none (or what the URL carries).
pub fn credentials(
    repository: &str,
    username: Option<String>,
    token: Option<String>,
    ssh_key: Option<PathBuf>,
) -> Credentials {
    let username = username.unwrap_or_else(|| "git".into());
    match (token, ssh_key) {
        (Some(token), _) => Credentials::Token { username, token },
        (None, Some(key)) => Credentials::SshKey { username, private_key: key, passphrase: None },
        (None, None)
            if repository.starts_with("ssh://")
                || repository.contains('@') && !repository.contains("://") =>
        {
            Credentials::SshAgent { username }
        }
        (None, None) => Credentials::None,
    }
}

/// The first line of a secret file, without its line ending.
pub fn read_secret_file(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {} ({what})", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

impl GitArgs {
    /// The mirror options for `repository`.
    pub fn options(&self, repository: &str) -> anyhow::Result<MirrorOptions> {
        let token = match (&self.git_token, &self.git_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_secret_file(path, "--git-token-file")?),
            (None, None) => None,
        };
        let credentials =
            credentials(repository, self.git_username.clone(), token, self.git_ssh_key.clone());
        let timeout = self.git_timeout.unwrap_or(git::DEFAULT_GIT_TIMEOUT);
        anyhow::ensure!(!timeout.is_zero(), "--git-timeout must be more than 0s");
        Ok(MirrorOptions { credentials, timeout })
    }
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

    /// The stable id of the repository read (`git::repository_id`): what the
    /// `io.gitfleet.repository` label says on everything `apply` creates.
    pub fn repository_id(&self) -> String {
        match &self.repo {
            Some(location) => git::repository_id(location),
            None => {
                let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
                git::repository_id(&dir.display().to_string())
            }
        }
    }

    fn read_tree(&self) -> anyhow::Result<(SourceTree, Option<git::Revision>)> {
        match &self.repo {
            Some(location) => {
                let cache = self.cache_dir.clone().unwrap_or_else(default_cache);
                let mirror = Mirror::open_with(location, &cache, self.git.options(location)?)?;
                let revision = mirror.fetch_revision(&self.rev)?;
                let tree = git::read_commit(mirror.repository(), &revision.commit)?;
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
