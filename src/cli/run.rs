//! `gitfleet run`: the controller. Settings come from flags, then `GITFLEET_*` environment
//! variables (clap reads both), then the configuration file (`--config`, YAML, the same names
//! in snake_case), then defaults. Every secret can also be read from a file, named by the
//! `--<name>-file` flag, the `<NAME>_FILE` variable or the `<name>_file` key, so secrets stay
//! out of the environment and the process list; a secret given as a flag's value is used, with
//! a warning that other users of the machine can read it (`ps`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use tokio_util::sync::CancellationToken;

use crate::controller::{Controller, Settings};
use crate::controller::{Trigger, Triggers};
use crate::forge::{ForgeClient, ForgeKind};
use crate::leader::{Elector, EtcdTls, LeaderSettings, Role, handoff};
use crate::model::parse_identities;
use crate::router::{self, Router};
use crate::web;
use crate::webhook::ReceiverSettings;
use crate::webhook::{Hook, HookSink};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository to deploy: a path, a file:// URL, or an https / ssh URL to clone.
    #[arg(long, env = "GITFLEET_REPO")]
    repo: Option<String>,
    /// The branch to deploy.
    #[arg(long, env = "GITFLEET_BRANCH")]
    branch: Option<String>,
    /// A YAML file with any of these settings (snake_case names, e.g. `poll_interval: 30s`).
    #[arg(long, env = "GITFLEET_CONFIG")]
    config: Option<PathBuf>,
    /// Where the HTTP server (status page, /api/status, /metrics, health, and the webhooks
    /// unless --hooks-listen is given) listens. Default 127.0.0.1:8080.
    #[arg(long, env = "GITFLEET_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve the webhooks (/hooks/*) on this address instead, apart from the page.
    #[arg(long, env = "GITFLEET_HOOKS_LISTEN")]
    hooks_listen: Option<SocketAddr>,
    /// The branch status commits go to.
    #[arg(long, env = "GITFLEET_STATUS_BRANCH")]
    status_branch: Option<String>,
    /// Write no status commits.
    #[arg(long, env = "GITFLEET_NO_STATUS")]
    no_status: bool,
    /// How often to fetch (±10 %); `0s` disables polling. Default 60s.
    #[arg(long, env = "GITFLEET_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
    /// How often to observe every host and repair drift. Default 60s.
    #[arg(long, env = "GITFLEET_RESYNC_INTERVAL", value_parser = humantime::parse_duration)]
    resync_interval: Option<Duration>,
    /// How long a host may be away before its replicas move. Default 30s.
    #[arg(long, env = "GITFLEET_GRACE_PERIOD", value_parser = humantime::parse_duration)]
    grace_period: Option<Duration>,
    /// Where clones of remote repositories are kept.
    #[arg(long, env = "GITFLEET_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Give up a fetch or push that connects, answers or progresses nothing for this long.
    /// Default 30s.
    #[arg(long, env = "GITFLEET_GIT_TIMEOUT", value_parser = humantime::parse_duration)]
    git_timeout: Option<Duration>,
    /// User name for https fetches with a token (default `git`), or for ssh (default `git`).
    #[arg(long, env = "GITFLEET_GIT_USERNAME")]
    git_username: Option<String>,
    /// Token for https fetches and status pushes (visible in `ps`: prefer --git-token-file).
    #[arg(long, env = "GITFLEET_GIT_TOKEN", hide_env_values = true)]
    git_token: Option<String>,
    /// A file holding --git-token (its trailing newline dropped); keeps it out of `ps`.
    #[arg(long, env = "GITFLEET_GIT_TOKEN_FILE", conflicts_with = "git_token")]
    git_token_file: Option<PathBuf>,
    /// SSH private key for ssh URLs; without it, the ssh agent is asked.
    #[arg(long, env = "GITFLEET_GIT_SSH_KEY")]
    git_ssh_key: Option<PathBuf>,
    /// Secret of the GitHub webhook (visible in `ps`: prefer the -file form); enables POST /hooks/github.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITHUB_SECRET", hide_env_values = true)]
    webhook_github_secret: Option<String>,
    /// A file holding --webhook-github-secret (its trailing newline dropped); keeps it out of `ps`.
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_GITHUB_SECRET_FILE",
        conflicts_with = "webhook_github_secret"
    )]
    webhook_github_secret_file: Option<PathBuf>,
    /// Token of the GitLab webhook (visible in `ps`: prefer the -file form); enables POST /hooks/gitlab.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITLAB_TOKEN", hide_env_values = true)]
    webhook_gitlab_token: Option<String>,
    /// A file holding --webhook-gitlab-token (its trailing newline dropped); keeps it out of `ps`.
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_GITLAB_TOKEN_FILE",
        conflicts_with = "webhook_gitlab_token"
    )]
    webhook_gitlab_token_file: Option<PathBuf>,
    /// Secret of the Gitea / Forgejo webhook (visible in `ps`: prefer the -file form); enables POST /hooks/gitea.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITEA_SECRET", hide_env_values = true)]
    webhook_gitea_secret: Option<String>,
    /// A file holding --webhook-gitea-secret (its trailing newline dropped); keeps it out of `ps`.
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_GITEA_SECRET_FILE",
        conflicts_with = "webhook_gitea_secret"
    )]
    webhook_gitea_secret_file: Option<PathBuf>,
    /// Secret of the generic endpoint (visible in `ps`: prefer the -file form); enables POST /hooks/generic.
    #[arg(long, env = "GITFLEET_WEBHOOK_GENERIC_SECRET", hide_env_values = true)]
    webhook_generic_secret: Option<String>,
    /// A file holding --webhook-generic-secret (its trailing newline dropped); keeps it out of `ps`.
    #[arg(
        long,
        env = "GITFLEET_WEBHOOK_GENERIC_SECRET_FILE",
        conflicts_with = "webhook_generic_secret"
    )]
    webhook_generic_secret_file: Option<PathBuf>,
    /// Which forge to post pull-request plan previews to: github, gitlab or gitea.
    #[arg(long, env = "GITFLEET_FORGE")]
    forge: Option<String>,
    /// The forge's API base URL (default https://api.github.com for github; required otherwise).
    #[arg(long, env = "GITFLEET_FORGE_API")]
    forge_api: Option<String>,
    /// Token for the forge's API (visible in `ps`: prefer --forge-token-file).
    #[arg(long, env = "GITFLEET_FORGE_TOKEN", hide_env_values = true)]
    forge_token: Option<String>,
    /// A file holding --forge-token (its trailing newline dropped); keeps it out of `ps`.
    #[arg(long, env = "GITFLEET_FORGE_TOKEN_FILE", conflicts_with = "forge_token")]
    forge_token_file: Option<PathBuf>,
    /// The repository on the forge whose pull requests are previewed and commented on
    /// (owner/name; GitLab group/sub/name). Default: the path of --repo's URL.
    #[arg(long, env = "GITFLEET_FORGE_REPOSITORY")]
    forge_repository: Option<String>,
    /// Also preview pull requests from forks (their content is anyone's; off by default).
    #[arg(long, env = "GITFLEET_PREVIEW_FORKS")]
    preview_forks: bool,
    /// How long one pull-request preview may take, fetch to comment. Default 120s.
    #[arg(long, env = "GITFLEET_PREVIEW_TIMEOUT", value_parser = humantime::parse_duration)]
    preview_timeout: Option<Duration>,
    /// The most one pull-request preview downloads when it fetches the head (512m, 1g; binary
    /// units). A larger head is not previewed. Default 256m.
    #[arg(long, env = "GITFLEET_PREVIEW_FETCH_LIMIT", value_parser = parse_fetch_limit)]
    preview_fetch_limit: Option<u64>,
    /// Age identity file for encrypted secrets (`*.age`).
    #[arg(long, env = "GITFLEET_AGE_IDENTITY")]
    age_identity: Option<PathBuf>,
    /// The fleet's digest key file: configs and secrets appear in plans and labels as HMACs
    /// under it (fleet.yaml's `settings.digest_key` must name its id).
    #[arg(long, env = "GITFLEET_DIGEST_KEY_FILE")]
    digest_key_file: Option<PathBuf>,
    /// Registry credentials in Docker's config.json format.
    #[arg(long, env = "GITFLEET_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,
    /// Docker operations at once per host.
    #[arg(long, env = "GITFLEET_CONCURRENCY")]
    concurrency: Option<usize>,
    /// How long shutdown on SIGTERM / SIGINT may take (the current step finishes or stops at
    /// a step boundary, HTTP connections close). Default 30s.
    #[arg(long, env = "GITFLEET_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Serve HTTP for every `x-routes` rule on this address (the router); off by default.
    #[arg(long, env = "GITFLEET_ROUTER_LISTEN")]
    router_listen: Option<SocketAddr>,
    /// Serve the same routes over TLS on this address (with --router-tls-cert and its key).
    #[arg(long, env = "GITFLEET_ROUTER_TLS_LISTEN")]
    router_tls_listen: Option<SocketAddr>,
    /// A certificate chain (PEM) for the router's TLS; repeat for more host names: each serves
    /// the names it is valid for (chosen by SNI), the first is the default. Re-read on change.
    #[arg(long, env = "GITFLEET_ROUTER_TLS_CERT", value_delimiter = ',')]
    router_tls_cert: Vec<PathBuf>,
    /// The private key (PEM) of each --router-tls-cert, in the same order.
    #[arg(long, env = "GITFLEET_ROUTER_TLS_KEY_FILE", value_delimiter = ',')]
    router_tls_key_file: Vec<PathBuf>,
    /// The key of a single --router-tls-cert as PEM text (visible in `ps`: prefer the -file form).
    #[arg(
        long,
        env = "GITFLEET_ROUTER_TLS_KEY",
        hide_env_values = true,
        conflicts_with = "router_tls_key_file"
    )]
    router_tls_key: Option<String>,
    /// etcd client URLs, comma-separated: run as one of several instances, of which only the
    /// leader applies. Without it, this is the only instance.
    #[arg(long, env = "GITFLEET_ETCD", value_delimiter = ',')]
    etcd: Option<Vec<String>>,
    /// The leader's lease: a crashed leader's successor starts within about this. Default 5s.
    #[arg(long, env = "GITFLEET_LEASE_TTL", value_parser = humantime::parse_duration)]
    lease_ttl: Option<Duration>,
    /// The group of instances that elect one leader (keys under /gitfleet/<fleet>/).
    /// Default: the fleet's name in fleet.yaml (`settings.name`), read at start.
    #[arg(long, env = "GITFLEET_FLEET")]
    fleet: Option<String>,
    /// This instance's name among the members. Default: host name and process id.
    #[arg(long, env = "GITFLEET_ETCD_MEMBER")]
    etcd_member: Option<String>,
    /// CA certificate (PEM) of the etcd cluster, for https:// endpoints.
    #[arg(long, env = "GITFLEET_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd, with --etcd-key.
    #[arg(long, env = "GITFLEET_ETCD_CERT")]
    etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for etcd.
    #[arg(long, env = "GITFLEET_ETCD_KEY")]
    etcd_key: Option<PathBuf>,
    /// etcd user (etcd's own authentication), with --etcd-password.
    #[arg(long, env = "GITFLEET_ETCD_USER")]
    etcd_user: Option<String>,
    /// etcd password (visible in `ps`: prefer --etcd-password-file).
    #[arg(long, env = "GITFLEET_ETCD_PASSWORD", hide_env_values = true)]
    etcd_password: Option<String>,
    /// A file holding --etcd-password (its trailing newline dropped); keeps it out of `ps`.
    #[arg(long, env = "GITFLEET_ETCD_PASSWORD_FILE", conflicts_with = "etcd_password")]
    etcd_password_file: Option<PathBuf>,
}

/// The configuration file: the same settings as the flags, in snake_case, plus `*_file`
/// variants of the secrets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    repo: Option<String>,
    branch: Option<String>,
    listen: Option<SocketAddr>,
    hooks_listen: Option<SocketAddr>,
    status_branch: Option<String>,
    no_status: Option<bool>,
    #[serde(default, with = "optional_duration")]
    poll_interval: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    resync_interval: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    grace_period: Option<Duration>,
    cache_dir: Option<PathBuf>,
    #[serde(default, with = "optional_duration")]
    git_timeout: Option<Duration>,
    git_username: Option<String>,
    git_token: Option<String>,
    git_token_file: Option<PathBuf>,
    git_ssh_key: Option<PathBuf>,
    webhook_github_secret: Option<String>,
    webhook_github_secret_file: Option<PathBuf>,
    webhook_gitlab_token: Option<String>,
    webhook_gitlab_token_file: Option<PathBuf>,
    webhook_gitea_secret: Option<String>,
    webhook_gitea_secret_file: Option<PathBuf>,
    webhook_generic_secret: Option<String>,
    webhook_generic_secret_file: Option<PathBuf>,
    forge: Option<String>,
    forge_api: Option<String>,
    forge_token: Option<String>,
    forge_token_file: Option<PathBuf>,
    forge_repository: Option<String>,
    preview_forks: Option<bool>,
    #[serde(default, with = "optional_duration")]
    preview_timeout: Option<Duration>,
    preview_fetch_limit: Option<String>,
    age_identity: Option<PathBuf>,
    digest_key_file: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    concurrency: Option<usize>,
    #[serde(default, with = "optional_duration")]
    shutdown_timeout: Option<Duration>,
    router_listen: Option<SocketAddr>,
    router_tls_listen: Option<SocketAddr>,
    /// `[{cert: PATH, key_file: PATH}]` (or `key:` PEM text), the first the default.
    #[serde(default)]
    router_tls: Vec<super::router_tls::ConfigCert>,
    /// A list, or one comma-separated string.
    #[serde(default, deserialize_with = "urls")]
    etcd: Option<Vec<String>>,
    #[serde(default, with = "optional_duration")]
    lease_ttl: Option<Duration>,
    fleet: Option<String>,
    etcd_member: Option<String>,
    etcd_ca: Option<PathBuf>,
    etcd_cert: Option<PathBuf>,
    etcd_key: Option<PathBuf>,
    etcd_user: Option<String>,
    etcd_password: Option<String>,
    etcd_password_file: Option<PathBuf>,
}

/// `etcd:` in the configuration file: a list of URLs or one comma-separated string.
fn urls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<Urls>::deserialize(d)?.map(|urls| match urls {
        Urls::One(text) => text.split(',').map(|u| u.trim().to_string()).collect(),
        Urls::Many(list) => list,
    }))
}

/// `--preview-fetch-limit`: a byte size (`256m`, `1g`, `1048576`), more than 0.
fn parse_fetch_limit(text: &str) -> Result<u64, String> {
    match crate::model::units::parse_bytes(text)? {
        0 => Err("the preview fetch limit must be more than 0 bytes".to_string()),
        bytes => Ok(bytes),
    }
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Where a secret may come from, in order: the value flag or variable, the `-file` flag or
/// `_FILE` variable, the configuration file's `<name>_file` key, its `<name>` key.
struct SecretSources {
    /// The flag's name without dashes (`git-token`); the variable is `GITFLEET_GIT_TOKEN`.
    flag: &'static str,
    value: Option<String>,
    value_file: Option<PathBuf>,
    in_config: Option<String>,
    in_config_file: Option<PathBuf>,
}

/// Resolves a secret from its [`SecretSources`]. A value given on the command line (not through
/// its variable) is used, with a warning that other users of the machine can read it.
fn secret(sources: SecretSources) -> anyhow::Result<Option<String>> {
    let SecretSources { flag, value, value_file, in_config, in_config_file } = sources;
    let env = format!("GITFLEET_{}", flag.replace('-', "_").to_uppercase());
    if let Some(value) = value {
        if std::env::var(&env).ok().as_deref() != Some(value.as_str()) {
            tracing::warn!(
                "--{flag} is visible to other users of this machine (ps, /proc); use --{flag}-file or {env}_FILE instead"
            );
        }
        return Ok(Some(value));
    }
    let (path, named) = match (value_file, in_config_file) {
        (Some(path), _) => (path, format!("--{flag}-file / {env}_FILE")),
        (None, Some(path)) => {
            (path, format!("{}_file in the configuration file", flag.replace('-', "_")))
        }
        (None, None) => return Ok(in_config),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the secret file {} ({named})", path.display()))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a valid gitfleet configuration", path.display()))
}

/// Everything `run` needs, resolved.
struct Resolved {
    settings: Settings,
    listen: SocketAddr,
    hooks_listen: Option<SocketAddr>,
    receivers: ReceiverSettings,
    forge: Option<ForgeClient>,
    router_listen: Option<SocketAddr>,
    /// The router's TLS listener and its certificates.
    router_tls: Option<(SocketAddr, Vec<router::tls::CertFiles>)>,
    /// Leader election through etcd, when `--etcd` is given.
    leader: Option<LeaderSettings>,
    /// `--fleet` was not given: the election group is fleet.yaml's name, read at start.
    fleet_from_repository: bool,
}

fn resolve(args: Args) -> anyhow::Result<Resolved> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let Some(repo) = args.repo.or(file.repo) else {
        bail!(
            "no repository: give --repo (or GITFLEET_REPO, or `repo:` in the configuration file)"
        );
    };
    let cache_dir = args.cache_dir.or(file.cache_dir).unwrap_or_else(super::source::default_cache);
    let mut settings = Settings::new(repo, cache_dir);
    if let Some(branch) = args.branch.or(file.branch) {
        settings.branch = branch;
    }
    if let Some(status) = args.status_branch.or(file.status_branch) {
        settings.status_branch = Some(status);
    }
    if args.no_status || file.no_status.unwrap_or(false) {
        settings.status_branch = None;
    }
    if let Some(interval) = args.poll_interval.or(file.poll_interval) {
        settings.poll_interval = (!interval.is_zero()).then_some(interval);
    }
    if let Some(interval) = args.resync_interval.or(file.resync_interval) {
        anyhow::ensure!(!interval.is_zero(), "the resync interval must be more than 0s");
        settings.resync_interval = interval;
    }
    if let Some(grace) = args.grace_period.or(file.grace_period) {
        settings.grace = grace;
    }
    if let Some(timeout) = args.shutdown_timeout.or(file.shutdown_timeout) {
        settings.shutdown_timeout = timeout;
    }
    if let Some(concurrency) = args.concurrency.or(file.concurrency) {
        settings.apply.concurrency = concurrency.max(1);
    }
    if let Some(timeout) = args.git_timeout.or(file.git_timeout) {
        anyhow::ensure!(!timeout.is_zero(), "the git timeout must be more than 0s");
        settings.git_timeout = timeout;
    }
    let token = secret(SecretSources {
        flag: "git-token",
        value: args.git_token,
        value_file: args.git_token_file,
        in_config: file.git_token,
        in_config_file: file.git_token_file,
    })?;
    settings.credentials = super::source::credentials(
        &settings.repository,
        args.git_username.or(file.git_username),
        token,
        args.git_ssh_key.or(file.git_ssh_key),
    );
    if let Some(path) = args.age_identity.or(file.age_identity) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the age identity {}", path.display()))?;
        let identities =
            parse_identities(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        settings.load.identities = identities;
    }
    if let Some(path) = args.digest_key_file.or(file.digest_key_file) {
        settings.load.digest_key = Some(super::source::read_digest_key(&path)?);
    }
    if let Some(path) = args.docker_config.or(file.docker_config) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        settings.registry_config = Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?,
        );
    }
    let mut receivers = ReceiverSettings::new(settings.branch.clone());
    receivers.repository = crate::webhook::repository_path(&settings.repository);
    receivers.github_secret = secret(SecretSources {
        flag: "webhook-github-secret",
        value: args.webhook_github_secret,
        value_file: args.webhook_github_secret_file,
        in_config: file.webhook_github_secret,
        in_config_file: file.webhook_github_secret_file,
    })?;
    receivers.gitlab_token = secret(SecretSources {
        flag: "webhook-gitlab-token",
        value: args.webhook_gitlab_token,
        value_file: args.webhook_gitlab_token_file,
        in_config: file.webhook_gitlab_token,
        in_config_file: file.webhook_gitlab_token_file,
    })?;
    receivers.gitea_secret = secret(SecretSources {
        flag: "webhook-gitea-secret",
        value: args.webhook_gitea_secret,
        value_file: args.webhook_gitea_secret_file,
        in_config: file.webhook_gitea_secret,
        in_config_file: file.webhook_gitea_secret_file,
    })?;
    receivers.generic_secret = secret(SecretSources {
        flag: "webhook-generic-secret",
        value: args.webhook_generic_secret,
        value_file: args.webhook_generic_secret_file,
        in_config: file.webhook_generic_secret,
        in_config_file: file.webhook_generic_secret_file,
    })?;
    let forge = match args.forge.or(file.forge) {
        None => None,
        Some(kind) => {
            let (kind, default_api) = match kind.as_str() {
                "github" => (ForgeKind::GitHub, Some("https://api.github.com")),
                "gitlab" => (ForgeKind::GitLab, None),
                "gitea" | "forgejo" => (ForgeKind::Gitea, None),
                other => bail!("unknown forge {other:?}: use github, gitlab or gitea"),
            };
            let Some(api) = args.forge_api.or(file.forge_api).or(default_api.map(String::from))
            else {
                bail!("--forge {kind:?} needs --forge-api (the forge's base URL)");
            };
            let Some(token) = secret(SecretSources {
                flag: "forge-token",
                value: args.forge_token,
                value_file: args.forge_token_file,
                in_config: file.forge_token,
                in_config_file: file.forge_token_file,
            })?
            else {
                bail!(
                    "--forge needs a token: --forge-token-file (or GITFLEET_FORGE_TOKEN_FILE), or --forge-token"
                );
            };
            let repository = args
                .forge_repository
                .or(file.forge_repository)
                .or_else(|| crate::webhook::repository_path(&settings.repository));
            let Some(repository) = repository else {
                bail!(
                    "--forge needs the repository's path on the forge for its comments: give --forge-repository owner/name (it cannot be read from --repo {})",
                    crate::git::redact_url(&settings.repository)
                );
            };
            settings.preview.repository = Some(repository);
            settings.preview.forks = args.preview_forks || file.preview_forks.unwrap_or(false);
            if let Some(timeout) = args.preview_timeout.or(file.preview_timeout) {
                anyhow::ensure!(!timeout.is_zero(), "the preview timeout must be more than 0s");
                settings.preview.deadline = timeout;
            }
            let fetch_limit = match (args.preview_fetch_limit, file.preview_fetch_limit) {
                (Some(limit), _) => Some(limit),
                (None, Some(text)) => Some(
                    parse_fetch_limit(&text)
                        .map_err(|e| anyhow::anyhow!("preview_fetch_limit: {e}"))?,
                ),
                (None, None) => None,
            };
            if let Some(limit) = fetch_limit {
                settings.preview.budget.max_fetch_bytes = limit;
            }
            Some(ForgeClient::new(kind, &api, token)?)
        }
    };
    let listen =
        args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let mut fleet_from_repository = false;
    let leader = match args.etcd.or(file.etcd).filter(|urls| !urls.is_empty()) {
        None => None,
        Some(endpoints) => {
            let given = args.fleet.or(file.fleet);
            fleet_from_repository = given.is_none();
            // Replaced by fleet.yaml's name at start when not given.
            let fleet = given.unwrap_or_else(|| "gitfleet".into());
            let mut leader = LeaderSettings::new(endpoints, fleet);
            if let Some(ttl) = args.lease_ttl.or(file.lease_ttl) {
                leader.lease_ttl = ttl;
            }
            if let Some(member) = args.etcd_member.or(file.etcd_member) {
                leader.member = member;
            }
            let tls = EtcdTls {
                ca: args.etcd_ca.or(file.etcd_ca),
                cert: args.etcd_cert.or(file.etcd_cert),
                key: args.etcd_key.or(file.etcd_key),
            };
            if tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some() {
                leader.tls = Some(tls);
            }
            let password = secret(SecretSources {
                flag: "etcd-password",
                value: args.etcd_password,
                value_file: args.etcd_password_file,
                in_config: file.etcd_password,
                in_config_file: file.etcd_password_file,
            })?;
            match (args.etcd_user.or(file.etcd_user), password) {
                (Some(user), Some(password)) => leader.credentials = Some((user, password)),
                (None, None) => {}
                _ => bail!("give --etcd-user and --etcd-password together"),
            }
            leader.validate()?;
            Some(leader)
        }
    };
    let hooks_listen = args.hooks_listen.or(file.hooks_listen);
    let router_listen = args.router_listen.or(file.router_listen);
    let key = secret(SecretSources {
        flag: "router-tls-key",
        value: args.router_tls_key,
        value_file: None,
        in_config: None,
        in_config_file: None,
    })?;
    let router_tls = super::router_tls::resolve(super::router_tls::Given {
        listen: args.router_tls_listen.or(file.router_tls_listen),
        certs: args.router_tls_cert,
        key_files: args.router_tls_key_file,
        key,
        in_config: file.router_tls,
    })?;
    Ok(Resolved {
        settings,
        listen,
        hooks_listen,
        receivers,
        forge,
        router_listen,
        router_tls,
        leader,
        fleet_from_repository,
    })
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let resolved = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(resolved))
}

/// The fleet's name in fleet.yaml (`settings.name`) at the branch's head: the election group
/// when `--fleet` is not given, so that instances of one fleet agree on it and two fleets
/// sharing an etcd do not elect one leader between them. One fetch, bounded by the Git
/// timeout.
async fn fleet_name(settings: &Settings) -> anyhow::Result<String> {
    use crate::controller::source::{Source, SourceError};
    let (location, cache, branch) =
        (settings.repository.clone(), settings.cache_dir.clone(), settings.branch.clone());
    let (options, load) = (
        crate::git::MirrorOptions {
            credentials: settings.credentials.clone(),
            timeout: settings.git_timeout,
        },
        settings.load.clone(),
    );
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut source = Source::open(&location, &cache, options, &branch, load, false)?;
        let head = source.fetch_head()?;
        // App by app: only a broken fleet.yaml hides the name (a broken app does not).
        match source.load(&head.commit) {
            Ok(partial) => Ok(partial.fleet.settings.name),
            Err(SourceError::Unreadable(why)) => bail!("{why}"),
            Err(SourceError::Invalid(problems)) => bail!(
                "fleet.yaml at the head {} does not validate ({} problems; see `gitfleet validate`)",
                &head.commit[..head.commit.len().min(12)],
                problems.len()
            ),
        }
    });
    read.await
        .context("reading fleet.yaml")?
        .context("--fleet is not given and fleet.yaml's `settings.name` cannot be read; give --fleet (or GITFLEET_FLEET)")
}

/// Runs the controller and the HTTP server until a signal (exit 0 once everything stopped
/// within the shutdown timeout, 1 otherwise) or until a task ends on its own (exit 1).
async fn serve(resolved: Resolved) -> anyhow::Result<i32> {
    let Resolved {
        mut settings,
        listen,
        hooks_listen,
        receivers,
        forge,
        router_listen,
        router_tls,
        mut leader,
        fleet_from_repository,
    } = resolved;
    if let Some(leader) = leader.as_mut().filter(|_| fleet_from_repository) {
        leader.fleet = fleet_name(&settings).await?;
        leader.validate()?;
    }
    tracing::info!(repository = %crate::git::redact_url(&settings.repository), branch = %settings.branch, %listen, "gitfleet run");
    let shutdown_timeout = settings.shutdown_timeout;
    let cancel = CancellationToken::new();
    let listener = bind(listen).await?;
    let hooks_listener = match hooks_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let router = match router_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("the router cannot listen on {addr}"))?;
            Some(listener)
        }
        None => None,
    };
    let router_tls = match router_tls {
        Some((addr, files)) => {
            let tls = router::tls::Tls::new(files).map_err(anyhow::Error::msg)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("the router cannot listen on {addr} (TLS)"))?;
            Some((listener, tls))
        }
        None => None,
    };
    let router = if router.is_some() || router_tls.is_some() {
        let handle = Router::new(router::Config::default());
        settings.router = Some(handle.clone());
        Some((router, handle))
    } else {
        None
    };
    let elector = match leader {
        Some(leader) => {
            let member = leader.member.clone();
            let elector = Elector::start(leader, cancel.clone())
                .await
                .context("cannot take part in the leader election")?;
            tracing::info!(%member, "campaigning for leadership through etcd");
            Some(Arc::new(elector))
        }
        None => None,
    };
    let leadership = elector.as_ref().map(|e| e.leadership());
    // Each pull request head previewed by one instance: claimed in etcd first.
    settings.preview.claims = elector.as_ref().map(|e| {
        crate::leader::claims::PreviewClaims::new(e.etcd().clone(), Arc::new(e.settings().clone()))
    });
    let mut controller = Controller::start(settings, forge, cancel.clone(), leadership)?;
    let mut sink = controller.hook_sink();
    if let Some(elector) = &elector {
        sink = standby_forwards(sink, elector.clone());
        tokio::spawn(receive_handed_hooks(elector.clone(), controller.triggers.clone()));
    }
    // The router beside the loop: its listener, its prober, and the snapshot into its table.
    let mut routing = tokio::task::JoinSet::new();
    let metrics_router = router.as_ref().map(|(_, r)| r.clone());
    if let Some((listener, router)) = router {
        if let Some(listener) = listener {
            eprintln!("gitfleet: router listening on {}", listener.local_addr()?);
            let (r, c) = (router.clone(), cancel.clone());
            routing.spawn(async move { r.serve(listener, c).await });
        }
        if let Some((listener, tls)) = router_tls {
            eprintln!("gitfleet: router (TLS) listening on {}", listener.local_addr()?);
            let (r, c, t) = (router.clone(), cancel.clone(), tls.clone());
            routing.spawn(async move { r.serve_tls(listener, t, c).await });
            let c = cancel.clone();
            routing.spawn(async move { tls.watch(router::tls::RELOAD_INTERVAL, c).await });
        }
        let (r, c) = (router.clone(), cancel.clone());
        routing.spawn(async move { r.run_prober(c).await });
        routing.spawn(crate::controller::routing::follow(
            router,
            controller.status.clone(),
            cancel.clone(),
        ));
    }
    let site = web::Web::new(controller.status.clone(), cancel.clone())
        .with_heartbeat(controller.heartbeat.clone());
    let mut page = web::app(site.clone());
    if let Some(router) = metrics_router {
        // The router's per-route metrics, Prometheus text, beside the controller's /metrics.
        page = page.route(
            "/metrics/router",
            axum::routing::get(move || std::future::ready(router.metrics_text())),
        );
    }
    // The HTTP side stops with everything else; its own grace stays within the shutdown
    // timeout.
    let limits = web::Limits {
        shutdown_grace: web::Limits::default().shutdown_grace.min(shutdown_timeout),
        ..web::Limits::default()
    };
    let hooks = web::hooks(site.clone(), Arc::new(receivers), sink, limits.body_timeout);
    eprintln!("gitfleet: listening on {}", listener.local_addr()?);
    let mut servers = tokio::task::JoinSet::new();
    match hooks_listener {
        Some(hooks_listener) => {
            eprintln!("gitfleet: webhooks listening on {}", hooks_listener.local_addr()?);
            servers.spawn(web::serve(hooks_listener, hooks, limits, cancel.clone()));
            servers.spawn(web::serve(listener, page, limits, cancel.clone()));
        }
        None => {
            servers.spawn(web::serve(listener, page.merge(hooks), limits, cancel.clone()));
        }
    }
    let mut code = tokio::select! {
        _ = shutdown_signal() => 0,
        ended = controller.supervise() => {
            tracing::error!(error = %ended, "a controller task ended: exiting");
            1
        }
        _ = servers.join_next() => {
            tracing::error!("an HTTP server ended: exiting");
            1
        }
    };
    // A leader resigns first (its term ends, its lease is revoked): a standby takes over in
    // well under a second instead of after the TTL.
    if let Some(elector) = &elector {
        elector.resign().await;
    }
    // Stop taking triggers and requests; let the current step finish, within the timeout.
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    let http_closed = async {
        let all = async { while servers.join_next().await.is_some() {} };
        match tokio::time::timeout_at(deadline, all).await {
            Ok(()) => true,
            Err(_) => {
                servers.abort_all();
                false
            }
        }
    };
    let router_closed = async {
        tokio::time::timeout_at(deadline, async { while routing.join_next().await.is_some() {} })
            .await
            .is_ok()
    };
    let (stopped, closed, router_closed) =
        tokio::join!(controller.shutdown(deadline), http_closed, router_closed);
    let closed = closed && router_closed;
    if !(stopped && closed) {
        tracing::error!(
            timeout_s = shutdown_timeout.as_secs_f64(),
            controller_stopped = stopped,
            http_closed = closed,
            "not everything stopped within the shutdown timeout"
        );
        code = 1;
    } else {
        tracing::info!("stopped");
    }
    Ok(code)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

/// With high availability: pushes and sync requests that reach a standby are handed to the
/// leader through etcd; the leader (and pull-request previews, which any instance runs for
/// the hooks it receives, each head claimed in etcd by one: `leader::claims`) keep the local
/// sink.
fn standby_forwards(local: HookSink, elector: Arc<Elector>) -> HookSink {
    Arc::new(move |hook: Hook| {
        let (forge, retry) = match &hook {
            Hook::Push { forge, .. } => (forge.to_string(), None),
            // A sync request retries failed rollouts (of its app only, when it names one):
            // the retry goes with it, or `gitfleet retry` sent to a standby would do nothing.
            Hook::Sync { app, .. } => {
                ("generic".to_string(), Some(handoff::Retry { app: app.clone() }))
            }
            Hook::Ping { .. } | Hook::PullRequest(_) => return local(hook),
        };
        if elector.view().borrow().role == Role::Leader {
            return local(hook);
        }
        // Handed on as a webhook: the leader fetches and syncs, and retries when asked.
        let elector = elector.clone();
        tokio::spawn(async move {
            match handoff::forward(elector.etcd(), elector.settings(), &forge, retry).await {
                Ok(()) => tracing::info!(%forge, "webhook handed to the leader"),
                Err(error) => {
                    tracing::warn!(%forge, %error, "cannot hand the webhook to the leader")
                }
            }
        });
        Ok(())
    })
}

/// While this instance leads: turns the webhooks standbys hand on into triggers.
async fn receive_handed_hooks(elector: Arc<Elector>, triggers: Arc<Triggers>) {
    let mut terms = elector.terms();
    loop {
        let term = terms.borrow_and_update().clone();
        if let Some(term) = term.filter(|t| !t.is_over()) {
            let triggers = triggers.clone();
            handoff::receive(elector.etcd().clone(), elector.settings(), term.token, move |h| {
                tracing::info!(forge = %h.forge, from = %h.member, "webhook handed on by a standby");
                triggers.push(Trigger::Webhook { forge: h.forge });
                if let Some(retry) = h.retry {
                    triggers.push(Trigger::Retry { app: retry.app });
                }
            })
            .await;
        }
        if terms.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use crate::git::Credentials;
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// `examples/gitfleet.yaml` resolves into the settings it says, with its secret files in
    /// place.
    #[test]
    fn the_example_configuration_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        for name in ["git-token", "webhook-secret", "github-token"] {
            std::fs::write(secrets.join(name), format!("{name}-value\n")).unwrap();
        }
        let example = include_str!("../../examples/gitfleet.yaml")
            .replace("/etc/gitfleet/secrets", secrets.to_str().unwrap());
        let config = dir.path().join("gitfleet.yaml");
        std::fs::write(&config, example).unwrap();
        let wrapper = Cli::try_parse_from(["x", "--config", config.to_str().unwrap()]).unwrap();
        let resolved = resolve(wrapper.args).unwrap();
        assert_eq!(resolved.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(resolved.hooks_listen, Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(resolved.settings.branch, "main");
        assert_eq!(resolved.settings.poll_interval, Some(Duration::from_secs(60)));
        assert_eq!(resolved.settings.cache_dir, PathBuf::from("/var/lib/gitfleet"));
        assert_eq!(resolved.receivers.github_secret.as_deref(), Some("webhook-secret-value"));
        assert!(resolved.forge.is_some());
        assert!(
            matches!(resolved.settings.credentials, Credentials::Token { ref token, .. } if token == "git-token-value")
        );
    }

    #[test]
    fn etcd_endpoints_in_the_configuration_file_are_a_list_or_one_string() {
        let list: ConfigFile =
            serde_yaml::from_str("etcd: [http://a:2379, http://b:2379]\nlease_ttl: 3s").unwrap();
        assert_eq!(list.etcd.unwrap(), ["http://a:2379", "http://b:2379"]);
        assert_eq!(list.lease_ttl, Some(Duration::from_secs(3)));
        let one: ConfigFile = serde_yaml::from_str("etcd: http://a:2379, http://b:2379").unwrap();
        assert_eq!(one.etcd.unwrap(), ["http://a:2379", "http://b:2379"]);
        let none: ConfigFile = serde_yaml::from_str("fleet: prod").unwrap();
        assert!(none.etcd.is_none());
    }

    fn resolved(flags: &[&str]) -> anyhow::Result<Resolved> {
        let mut argv = vec!["gitfleet", "--repo", "https://github.com/owner/fleet.git"];
        argv.extend_from_slice(flags);
        resolve(Cli::try_parse_from(argv)?.args)
    }

    #[test]
    fn every_secret_flag_has_a_file_form_whose_value_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        let (git, github, gitlab, gitea, generic, forge) = (
            write("git", "git-secret\n"),
            write("github", "gh secret\r\n"),
            write("gitlab", "gl-token"),
            write("gitea", "gt\n"),
            write("generic", "gen\n"),
            write("forge", "forge-secret\n"),
        );
        let resolved = resolved(&[
            "--git-token-file",
            &git,
            "--webhook-github-secret-file",
            &github,
            "--webhook-gitlab-token-file",
            &gitlab,
            "--webhook-gitea-secret-file",
            &gitea,
            "--webhook-generic-secret-file",
            &generic,
            "--forge",
            "github",
            "--forge-token-file",
            &forge,
        ])
        .unwrap();
        match &resolved.settings.credentials {
            Credentials::Token { token, .. } => assert_eq!(token, "git-secret"),
            other => panic!("not a token: {other:?}"),
        }
        let receivers = &resolved.receivers;
        assert_eq!(receivers.github_secret.as_deref(), Some("gh secret"));
        assert_eq!(receivers.gitlab_token.as_deref(), Some("gl-token"));
        assert_eq!(receivers.gitea_secret.as_deref(), Some("gt"));
        assert_eq!(receivers.generic_secret.as_deref(), Some("gen"));
        assert_eq!(receivers.repository.as_deref(), Some("owner/fleet"));
        assert!(resolved.forge.is_some());
    }

    #[test]
    fn previews_of_forks_are_off_unless_asked_and_comments_need_a_repository() {
        let forge = ["--forge", "github", "--forge-token", "t"];
        let plain = resolved(&forge).unwrap();
        assert!(!plain.settings.preview.forks);
        assert_eq!(plain.settings.preview.repository.as_deref(), Some("owner/fleet"));
        assert_eq!(plain.settings.preview.deadline, Duration::from_secs(120));
        assert_eq!(plain.settings.preview.budget.max_fetch_bytes, 256 << 20);

        let mut flags = forge.to_vec();
        flags.extend([
            "--preview-forks",
            "--forge-repository",
            "acme/prod",
            "--preview-timeout",
            "45s",
            "--preview-fetch-limit",
            "8m",
        ]);
        let asked = resolved(&flags).unwrap();
        assert!(asked.settings.preview.forks);
        assert_eq!(asked.settings.preview.repository.as_deref(), Some("acme/prod"));
        assert_eq!(asked.settings.preview.deadline, Duration::from_secs(45));
        assert_eq!(asked.settings.preview.budget.max_fetch_bytes, 8 << 20);
        let mut zero = forge.to_vec();
        zero.extend(["--preview-fetch-limit", "0"]);
        let refused = resolved(&zero).map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("must be more than 0 bytes"), "{refused}");

        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gitfleet.yaml");
        std::fs::write(
            &config,
            "forge: github\nforge_token: t\npreview_forks: true\nforge_repository: acme/x\npreview_fetch_limit: 1g\n",
        )
        .unwrap();
        let from_file = resolved(&["--config", config.to_str().unwrap()]).unwrap();
        assert!(from_file.settings.preview.forks);
        assert_eq!(from_file.settings.preview.repository.as_deref(), Some("acme/x"));
        assert_eq!(from_file.settings.preview.budget.max_fetch_bytes, 1 << 30);

        // A local repository names no repository on the forge: say how to give it.
        let argv = ["gitfleet", "--repo", "/srv/fleet", "--forge", "github", "--forge-token", "t"];
        let Err(error) = resolve(Cli::try_parse_from(argv).unwrap().args) else {
            panic!("a forge without a repository resolved")
        };
        assert!(error.to_string().contains("--forge-repository owner/name"), "{error}");
    }

    #[test]
    fn an_unreadable_secret_file_is_an_error_naming_it() {
        let Err(error) = resolved(&["--webhook-gitea-secret-file", "/nonexistent/gitea-secret"])
        else {
            panic!("an unreadable secret file was accepted");
        };
        let shown = format!("{error:#}");
        assert!(shown.contains("/nonexistent/gitea-secret"), "{shown}");
        assert!(shown.contains("--webhook-gitea-secret-file"), "{shown}");
    }

    #[test]
    fn a_value_and_a_file_for_one_secret_conflict() {
        let error = Cli::try_parse_from(["gitfleet", "--git-token", "t", "--git-token-file", "/f"])
            .expect_err("a conflict");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_value_flag_still_works() {
        let resolved = resolved(&["--webhook-github-secret", "plain"]).unwrap();
        assert_eq!(resolved.receivers.github_secret.as_deref(), Some("plain"));
    }
}
