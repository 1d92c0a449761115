//! The controller's settings, as values: where the repository is, what to watch, how often,
//! and the secrets it needs. Built by `gitfleet run` from flags, `GITFLEET_*` variables and a
//! configuration file (`cli/run.rs`); defaults here.

use std::path::PathBuf;
use std::time::Duration;

use crate::apply;
use crate::git::Credentials;
use crate::model::LoadOptions;

/// Everything the reconcile loop and its triggers need.
pub struct Settings {
    /// A local path, `file://` URL, or a URL to clone (https, ssh).
    pub repository: String,
    /// Its stable id (`git::repository_id`), the `io.gitfleet.repository` label.
    pub repository_id: String,
    pub branch: String,
    /// Where status commits go; `None` writes no status.
    pub status_branch: Option<String>,
    /// Push status commits to the remote (a clone); local repositories are written in place.
    pub push_status: bool,
    pub credentials: Credentials,
    /// A fetch or push that progresses nothing for this long is given up.
    pub git_timeout: Duration,
    /// Where clones of remote repositories are kept.
    pub cache_dir: PathBuf,
    /// Poll interval (±10 % jitter); `None`: no polling (webhooks or notifications only).
    pub poll_interval: Option<Duration>,
    /// Full resync interval: observe every host and repair drift.
    pub resync_interval: Duration,
    /// How long a host may be away before its replicas move.
    pub grace: Duration,
    /// First wait before restarting a replica that keeps stopping; doubles up to the max.
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    pub apply: apply::Options,
    /// Docker's `config.json` (`auths`) for private registries.
    pub registry_config: Option<serde_json::Value>,
    /// Age identities for encrypted secrets.
    pub load: LoadOptions,
    /// How long shutdown (SIGTERM, SIGINT) may take: the current step finishes or stops at a
    /// boundary, HTTP connections close; whatever still runs then is aborted.
    pub shutdown_timeout: Duration,
    /// How long a fetch with its load may run before the status reports it as stalled (the
    /// Git timeouts end it; meanwhile the hosts are kept at the last target).
    pub repository_deadline: Duration,
    /// The router (`--router-listen`): apply lets it admit new replicas and drain old ones.
    pub router: Option<crate::router::Router>,
}

impl Settings {
    /// Settings for `repository` with every default.
    pub fn new(repository: impl Into<String>, cache_dir: PathBuf) -> Self {
        let repository = repository.into();
        Settings {
            repository_id: crate::git::repository_id(&repository),
            repository,
            branch: "main".into(),
            status_branch: Some("gitfleet/status".into()),
            push_status: true,
            credentials: Credentials::None,
            git_timeout: crate::git::DEFAULT_GIT_TIMEOUT,
            cache_dir,
            poll_interval: Some(Duration::from_secs(60)),
            resync_interval: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            restart_backoff: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(300),
            apply: apply::Options::default(),
            registry_config: None,
            load: LoadOptions::default(),
            shutdown_timeout: Duration::from_secs(30),
            repository_deadline: Duration::from_secs(90),
            router: None,
        }
    }
}
