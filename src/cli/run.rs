//! `gitfleet run`: the controller. Settings come from flags, then `GITFLEET_*` environment
//! variables (clap reads both), then the configuration file (`--config`, YAML, the same names
//! in snake_case), then defaults. Every secret can also be read from a file, named by the
//! `<NAME>_FILE` variable or the `<name>_file` key, so secrets stay out of the environment
//! and the process list.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use tokio_util::sync::CancellationToken;

use crate::controller::{Controller, Settings, http};
use crate::forge::{ForgeClient, ForgeKind};
use crate::git::Credentials;
use crate::model::{LoadOptions, parse_identities};
use crate::webhook::ReceiverSettings;

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
    /// Where the HTTP server (webhooks, /healthz, /api/status) listens.
    #[arg(long, env = "GITFLEET_LISTEN")]
    listen: Option<SocketAddr>,
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
    /// User name for https fetches with a token (default `git`), or for ssh (default `git`).
    #[arg(long, env = "GITFLEET_GIT_USERNAME")]
    git_username: Option<String>,
    /// Token for https fetches and status pushes (or GITFLEET_GIT_TOKEN_FILE).
    #[arg(long, env = "GITFLEET_GIT_TOKEN", hide_env_values = true)]
    git_token: Option<String>,
    /// SSH private key for ssh URLs; without it, the ssh agent is asked.
    #[arg(long, env = "GITFLEET_GIT_SSH_KEY")]
    git_ssh_key: Option<PathBuf>,
    /// Secret of the GitHub webhook (or ..._FILE); enables POST /hooks/github.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITHUB_SECRET", hide_env_values = true)]
    webhook_github_secret: Option<String>,
    /// Token of the GitLab webhook (or ..._FILE); enables POST /hooks/gitlab.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITLAB_TOKEN", hide_env_values = true)]
    webhook_gitlab_token: Option<String>,
    /// Secret of the Gitea / Forgejo webhook (or ..._FILE); enables POST /hooks/gitea.
    #[arg(long, env = "GITFLEET_WEBHOOK_GITEA_SECRET", hide_env_values = true)]
    webhook_gitea_secret: Option<String>,
    /// Secret of the generic endpoint (or ..._FILE); enables POST /hooks/generic.
    #[arg(long, env = "GITFLEET_WEBHOOK_GENERIC_SECRET", hide_env_values = true)]
    webhook_generic_secret: Option<String>,
    /// Which forge to post pull-request plan previews to: github, gitlab or gitea.
    #[arg(long, env = "GITFLEET_FORGE")]
    forge: Option<String>,
    /// The forge's API base URL (default https://api.github.com for github; required otherwise).
    #[arg(long, env = "GITFLEET_FORGE_API")]
    forge_api: Option<String>,
    /// Token for the forge's API (or GITFLEET_FORGE_TOKEN_FILE).
    #[arg(long, env = "GITFLEET_FORGE_TOKEN", hide_env_values = true)]
    forge_token: Option<String>,
    /// Age identity file for encrypted secrets (`*.age`).
    #[arg(long, env = "GITFLEET_AGE_IDENTITY")]
    age_identity: Option<PathBuf>,
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
}

/// The configuration file: the same settings as the flags, in snake_case, plus `*_file`
/// variants of the secrets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    repo: Option<String>,
    branch: Option<String>,
    listen: Option<SocketAddr>,
    status_branch: Option<String>,
    no_status: Option<bool>,
    #[serde(default, with = "optional_duration")]
    poll_interval: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    resync_interval: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    grace_period: Option<Duration>,
    cache_dir: Option<PathBuf>,
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
    age_identity: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    concurrency: Option<usize>,
    #[serde(default, with = "optional_duration")]
    shutdown_timeout: Option<Duration>,
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A secret: the flag or variable, else `<ENV>_FILE`, else the file's value or `*_file` key.
fn secret(
    given: Option<String>,
    env: &str,
    in_file: Option<String>,
    in_file_path: Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    if given.is_some() {
        return Ok(given);
    }
    let path = std::env::var_os(format!("{env}_FILE")).map(PathBuf::from).or(in_file_path);
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the secret file {} ({env}_FILE)", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(in_file)
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
    receivers: ReceiverSettings,
    forge: Option<ForgeClient>,
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
    let username = args.git_username.or(file.git_username).unwrap_or_else(|| "git".into());
    let token = secret(args.git_token, "GITFLEET_GIT_TOKEN", file.git_token, file.git_token_file)?;
    settings.credentials = match (token, args.git_ssh_key.or(file.git_ssh_key)) {
        (Some(token), _) => Credentials::Token { username: username.clone(), token },
        (None, Some(key)) => Credentials::SshKey { username, private_key: key, passphrase: None },
        (None, None)
            if settings.repository.starts_with("ssh://")
                || settings.repository.contains('@') && !settings.repository.contains("://") =>
        {
            Credentials::SshAgent { username }
        }
        (None, None) => Credentials::None,
    };
    if let Some(path) = args.age_identity.or(file.age_identity) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the age identity {}", path.display()))?;
        let identities =
            parse_identities(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        settings.load = LoadOptions { identities };
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
    receivers.github_secret = secret(
        args.webhook_github_secret,
        "GITFLEET_WEBHOOK_GITHUB_SECRET",
        file.webhook_github_secret,
        file.webhook_github_secret_file,
    )?;
    receivers.gitlab_token = secret(
        args.webhook_gitlab_token,
        "GITFLEET_WEBHOOK_GITLAB_TOKEN",
        file.webhook_gitlab_token,
        file.webhook_gitlab_token_file,
    )?;
    receivers.gitea_secret = secret(
        args.webhook_gitea_secret,
        "GITFLEET_WEBHOOK_GITEA_SECRET",
        file.webhook_gitea_secret,
        file.webhook_gitea_secret_file,
    )?;
    receivers.generic_secret = secret(
        args.webhook_generic_secret,
        "GITFLEET_WEBHOOK_GENERIC_SECRET",
        file.webhook_generic_secret,
        file.webhook_generic_secret_file,
    )?;
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
            let Some(token) = secret(
                args.forge_token,
                "GITFLEET_FORGE_TOKEN",
                file.forge_token,
                file.forge_token_file,
            )?
            else {
                bail!(
                    "--forge needs a token: --forge-token, GITFLEET_FORGE_TOKEN or GITFLEET_FORGE_TOKEN_FILE"
                );
            };
            Some(ForgeClient::new(kind, &api, token)?)
        }
    };
    let listen =
        args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    Ok(Resolved { settings, listen, receivers, forge })
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let resolved = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(resolved))
}

/// Runs the controller and the HTTP server until a signal (exit 0 once everything stopped
/// within the shutdown timeout, 1 otherwise) or until a task ends on its own (exit 1).
async fn serve(resolved: Resolved) -> anyhow::Result<i32> {
    let Resolved { settings, listen, receivers, forge } = resolved;
    tracing::info!(repository = %crate::git::redact_url(&settings.repository), branch = %settings.branch, %listen, "gitfleet run");
    let shutdown_timeout = settings.shutdown_timeout;
    let cancel = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let mut controller = Controller::start(settings, forge, cancel.clone())?;
    let app = http::router(
        controller.status.clone(),
        controller.heartbeat.clone(),
        Arc::new(receivers),
        controller.hook_sink(),
    );
    eprintln!("gitfleet: listening on {}", listener.local_addr()?);
    let stop_serving = cancel.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop_serving.cancelled_owned())
            .await
    });
    let mut code = tokio::select! {
        _ = shutdown_signal() => 0,
        ended = controller.supervise() => {
            tracing::error!(error = %ended, "a controller task ended: exiting");
            1
        }
        served = &mut server => {
            tracing::error!(result = ?served, "the HTTP server ended: exiting");
            1
        }
    };
    // Stop taking triggers and requests; let the current step finish, within the timeout.
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    let http_closed = async {
        if server.is_finished() {
            return true;
        }
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(_) => true,
            Err(_) => {
                server.abort();
                false
            }
        }
    };
    let (stopped, closed) = tokio::join!(controller.shutdown(deadline), http_closed);
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
