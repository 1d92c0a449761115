//! The controller's copy of the watched repository: a [`Mirror`] is a bare clone in a cache
//! directory for a URL, or the repository itself for a local path (or a `file://` URL). It
//! fetches one branch, or one PR head, at a time and owns the credentials used to do so.
//!
//! # Guarantees
//!
//! * Credentials never reach a log, an error message or the disk: a URL with credentials in it
//!   (`https://user:token@host/repo.git`) is kept in memory only, the cache directory's config
//!   holds the URL without them, and every message git returns is scrubbed of the password, the
//!   token and the passphrase before it is wrapped in a [`GitError`].
//! * A fetch that fails says so, with the redacted URL and git's own message; a branch the
//!   remote does not advertise is [`GitError::BranchNotFound`], never an empty result.
//! * A fetch writes only the one reference it was asked for (`refs/heads/<branch>`, or
//!   `refs/gitfleet/preview/...` for a PR head). A local repository is never written by a fetch.
//! * The server is asked for each kind of credential once: if it rejects them, the fetch fails
//!   instead of asking again forever.
//! * Every fetch and push over the network is bounded: no connection, no answer or no
//!   progress for [`MirrorOptions::timeout`] (default 30 s) ends it with
//!   [`GitError::Timeout`] (see `deadline`).
//! * A fetch given a byte limit ([`Mirror::fetch_ref_within`], for pull-request heads) stops
//!   once it has received more than that, with [`GitError::TooLarge`]: the partial pack is
//!   dropped and no reference moves.
//! * The last fetched commit of a branch stays usable without the network
//!   ([`Mirror::cached_head`]): a controller restarted while the remote is down deploys it.
//! * Lock files a killed process left in the cache directory are removed on open; in a local
//!   repository they are only reported (see `locks`).
//!
//! # Caveats
//!
//! * Opening never touches the network; the first fetch does.
//! * A URL keyed cache directory is shared by every `Mirror` of that URL (whatever the
//!   credentials); two controllers on one cache directory rely on git's lock files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{
    AutotagOption, Cred, CredentialType, Direction, ErrorCode, FetchOptions, Oid, PushOptions,
    RemoteCallbacks, RemoteUpdateFlags, Repository,
};

use super::GitError;
use super::deadline::{
    DEFAULT_GIT_TIMEOUT, Deadline, SizeLimit, ensure_socket_timeouts, is_timeout,
};
use super::locks;
use super::repository::{Revision, resolve};

/// Where the local copies of PR heads go: `refs/pull/7/head` is fetched into
/// `refs/gitfleet/preview/pull/7/head`.
pub const PREVIEW_PREFIX: &str = "refs/gitfleet/preview/";

/// How the mirror authenticates to its remote. [`fmt::Debug`] never shows a secret.
#[derive(Clone, Default)]
pub enum Credentials {
    /// Nothing, or what the URL itself carries (`https://user:token@host/...`).
    #[default]
    None,
    /// HTTP(S) basic authentication with a token as the password.
    Token { username: String, token: String },
    /// An SSH private key on disk.
    SshKey { username: String, private_key: PathBuf, passphrase: Option<String> },
    /// The keys of the running ssh-agent.
    SshAgent { username: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token { username, .. } => {
                f.debug_struct("Token").field("username", username).field("token", &"***").finish()
            }
            Credentials::SshKey { username, private_key, passphrase } => f
                .debug_struct("SshKey")
                .field("username", username)
                .field("private_key", private_key)
                .field("passphrase", &passphrase.as_ref().map(|_| "***"))
                .finish(),
            Credentials::SshAgent { username } => {
                f.debug_struct("SshAgent").field("username", username).finish()
            }
        }
    }
}

/// Where the remote's `HEAD` is kept when `HEAD` is asked for ([`Mirror::fetch_revision`]).
const REMOTE_HEAD: &str = "refs/gitfleet/remote/HEAD";

/// How a mirror talks to its remote.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub credentials: Credentials,
    /// A fetch or push that connects, answers or progresses nothing for this long is given up
    /// ([`GitError::Timeout`]). Default 30 s.
    pub timeout: Duration,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions { credentials: Credentials::None, timeout: DEFAULT_GIT_TIMEOUT }
    }
}

/// A repository the controller fetches from; see the module documentation.
pub struct Mirror {
    pub(super) repository: Repository,
    /// The location as given, with credentials redacted.
    pub(super) location: String,
    /// `None` for a local repository.
    origin: Option<Origin>,
    pub(super) timeout: Duration,
}

/// The remote of a cloned mirror. Holds secrets: no `Debug`.
struct Origin {
    /// The URL as given, credentials included: used to connect, never shown.
    url: String,
    credentials: Credentials,
    /// Every string that must not appear in a message (passwords, tokens, passphrases).
    secrets: Vec<String>,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("location", &self.location)
            .field("path", &self.repository.path())
            .field("local", &self.origin.is_none())
            .finish()
    }
}

/// The result of pushing one reference.
pub(super) enum Pushed {
    Accepted,
    /// The remote (or git's fast-forward check) refused the update: someone else moved it.
    Rejected(String),
}

impl Mirror {
    /// Opens `location`: a local repository path (bare or not) or a `file://` URL is used in
    /// place; any other URL (`https://`, `http://`, `ssh://`, `git://`, `user@host:path`) gets
    /// a bare mirror in `cache`, created on first use and reused after. Never touches the
    /// network. A token, or credentials in the URL, for a plain `http://` URL to a host other
    /// than loopback is refused (they would cross the network in the clear).
    pub fn open(
        location: &str,
        cache: &Path,
        credentials: Credentials,
    ) -> Result<Mirror, GitError> {
        Self::open_with(location, cache, MirrorOptions { credentials, ..MirrorOptions::default() })
    }

    /// [`Mirror::open`] with every option. Stale lock files in the cache directory (left by a
    /// killed process, older than this process) are removed; in a local repository they are
    /// only reported (a warning naming them), since a live `git` may hold them.
    pub fn open_with(
        location: &str,
        cache: &Path,
        options: MirrorOptions,
    ) -> Result<Mirror, GitError> {
        let MirrorOptions { credentials, timeout } = options;
        let redacted = redact_url(location);
        let open_error = |source| GitError::Open { location: redacted.clone(), source };
        if let Some(path) = local_path(location) {
            let repository = Repository::open(&path).map_err(open_error)?;
            locks::report_stale(repository.path(), &redacted);
            return Ok(Mirror { repository, location: redacted, origin: None, timeout });
        }
        let carries_secret =
            matches!(credentials, Credentials::Token { .. }) || split_userinfo(location).is_some();
        let in_the_clear = reqwest::Url::parse(location)
            .ok()
            .and_then(|url| crate::forge::client::plain_http_to_remote(&url));
        if let (true, Some(problem)) = (carries_secret, in_the_clear) {
            let message = format!("the git credentials are not sent to {problem}");
            return Err(open_error(git2::Error::from_str(&message)));
        }
        ensure_socket_timeouts(timeout);
        let plain_url = strip_userinfo(location);
        let dir = cache.join(cache_dir_name(&plain_url));
        std::fs::create_dir_all(cache)
            .map_err(|source| GitError::Io { path: cache.display().to_string(), source })?;
        if dir.exists() {
            locks::remove_stale(&dir, &redacted);
        }
        let repository = if dir.exists() {
            Repository::open_bare(&dir).map_err(open_error)?
        } else {
            Repository::init_bare(&dir).map_err(open_error)?
        };
        // For people looking into the cache: where it comes from (without credentials).
        // Fetches and pushes use an anonymous remote with the full URL instead.
        if repository.find_remote("origin").is_err() {
            repository
                .remote_with_fetch("origin", &plain_url, "+refs/heads/*:refs/heads/*")
                .map_err(open_error)?;
        }
        let secrets = secrets_of(location, &credentials);
        Ok(Mirror {
            repository,
            location: redacted,
            origin: Some(Origin { url: location.to_string(), credentials, secrets }),
            timeout,
        })
    }

    /// The last fetched commit of `branch`, without touching the network: what a controller
    /// restarted while the remote is down deploys. `None` when the branch was never fetched
    /// into this cache (or, for a local repository, does not exist).
    pub fn cached_head(&self, branch: &str) -> Result<Option<Revision>, GitError> {
        let refname = branch_ref(branch)?;
        match self.repository.find_reference(&refname) {
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            _ => resolve(&self.repository, &refname).map(Some),
        }
    }

    /// Fetches what `rev` names and resolves it, for the command line's `--rev`: `HEAD` (the
    /// remote's default branch), a branch, a tag, a full reference name, or else anything git
    /// resolves (`a1b2c3d`, `main~2`) after fetching every branch. For a local repository it
    /// only resolves `rev`.
    pub fn fetch_revision(&self, rev: &str) -> Result<Revision, GitError> {
        if self.origin.is_none() {
            return resolve(&self.repository, rev);
        }
        let mut candidates = Vec::new();
        if rev == "HEAD" {
            candidates.push(("HEAD".to_string(), REMOTE_HEAD.to_string()));
        } else if rev.starts_with("refs/heads/") || rev.starts_with("refs/tags/") {
            candidates.push((rev.to_string(), rev.to_string()));
        } else if rev.starts_with("refs/") {
            candidates.push((rev.to_string(), preview_ref(rev)?));
        } else if let Ok(branch) = branch_ref(rev) {
            candidates.push((branch.clone(), branch));
            let tag = format!("refs/tags/{rev}");
            candidates.push((tag.clone(), tag));
        }
        let chosen = self.fetch_chosen(rev, None, |advertised| {
            candidates.iter().find_map(|(remote, local)| {
                let (_, tip) = advertised.iter().find(|(name, _)| name == remote)?;
                Some((remote.clone(), local.clone(), *tip))
            })
        })?;
        match chosen {
            Some(local) => resolve(&self.repository, &local),
            None if rev == "HEAD" || rev.starts_with("refs/") => {
                Err(GitError::RefNotFound { reference: rev.into(), url: self.location.clone() })
            }
            None => {
                self.fetch_all_branches()?;
                resolve(&self.repository, rev)
            }
        }
    }

    /// Fetches `branch` only (`+refs/heads/B:refs/heads/B`) and returns its tip. For a local
    /// repository it only resolves the branch. A branch the remote does not have is
    /// [`GitError::BranchNotFound`].
    pub fn fetch_branch(&self, branch: &str) -> Result<Revision, GitError> {
        let refname = branch_ref(branch)?;
        let not_found =
            || GitError::BranchNotFound { branch: branch.into(), url: self.location.clone() };
        match &self.origin {
            None => self.resolve_local(&refname, not_found),
            Some(_) => match self.fetch_into(&refname, &refname, None)? {
                Some(_) => resolve(&self.repository, &refname),
                None => Err(not_found()),
            },
        }
    }

    /// Fetches one reference of the remote, a PR head such as `refs/pull/7/head` or
    /// `refs/merge-requests/7/head`, into `refs/gitfleet/preview/pull/7/head` (see
    /// [`preview_ref`]) and returns it. For a local repository it only resolves `remote_ref`.
    pub fn fetch_ref(&self, remote_ref: &str) -> Result<Revision, GitError> {
        self.fetch_ref_within(remote_ref, None)
    }

    /// [`Mirror::fetch_ref`], receiving at most `max_bytes` (`None`: no limit): a fetch that
    /// receives more stops with [`GitError::TooLarge`], keeps nothing and moves no reference.
    /// What a pull request's head may cost is anyone's choice, so previews fetch with one.
    pub fn fetch_ref_within(
        &self,
        remote_ref: &str,
        max_bytes: Option<u64>,
    ) -> Result<Revision, GitError> {
        let local = preview_ref(remote_ref)?;
        let not_found =
            || GitError::RefNotFound { reference: remote_ref.into(), url: self.location.clone() };
        match &self.origin {
            None => self.resolve_local(remote_ref, not_found),
            Some(_) => match self.fetch_into(remote_ref, &local, max_bytes)? {
                Some(_) => resolve(&self.repository, &local),
                None => Err(not_found()),
            },
        }
    }

    /// The repository: the cache directory's bare mirror, or the local repository itself.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The location as given, with any credentials redacted: safe for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether this mirror is a local repository used in place (no remote to fetch from).
    pub fn is_local(&self) -> bool {
        self.origin.is_none()
    }

    fn resolve_local(
        &self,
        refname: &str,
        not_found: impl FnOnce() -> GitError,
    ) -> Result<Revision, GitError> {
        match self.repository.find_reference(refname) {
            Err(e) if e.code() == ErrorCode::NotFound => Err(not_found()),
            _ => resolve(&self.repository, refname),
        }
    }

    /// Fetches `remote_ref` of the origin into `local_ref` (forced), receiving at most
    /// `max_bytes` when given. `None` when the remote does not advertise `remote_ref`; the
    /// local reference is then left as it is.
    pub(super) fn fetch_into(
        &self,
        remote_ref: &str,
        local_ref: &str,
        max_bytes: Option<u64>,
    ) -> Result<Option<Oid>, GitError> {
        if self.origin.is_none() {
            return Ok(self.repository.refname_to_id(local_ref).ok());
        }
        let chosen = self.fetch_chosen(remote_ref, max_bytes, |advertised| {
            let (_, tip) = advertised.iter().find(|(name, _)| name == remote_ref)?;
            Some((remote_ref.to_string(), local_ref.to_string(), *tip))
        })?;
        Ok(chosen.and_then(|local| self.repository.refname_to_id(&local).ok()))
    }

    /// Connects, lists the origin's references, lets `choose` pick one (remote name, local
    /// name, advertised tip) and fetches it into the local name (forced). Returns the local
    /// name, or `None` when `choose` picked nothing. `what` names the fetch in errors; more
    /// than `max_bytes` received (when given) stops it.
    fn fetch_chosen(
        &self,
        what: &str,
        max_bytes: Option<u64>,
        choose: impl FnOnce(&[(String, Oid)]) -> Option<(String, String, Oid)>,
    ) -> Result<Option<String>, GitError> {
        let Some(origin) = &self.origin else { return Ok(None) };
        let deadline = Deadline::new(self.timeout);
        let limit = max_bytes.map(SizeLimit::new);
        let error = |e: git2::Error| self.fetch_error(what, origin, &deadline, limit.as_ref(), e);
        let mut remote = self.repository.remote_anonymous(&origin.url).map_err(error)?;
        let mut connection = remote
            .connect_auth(Direction::Fetch, Some(origin.callbacks(&deadline, limit.as_ref())), None)
            .map_err(error)?;
        let advertised: Vec<(String, Oid)> = connection
            .list()
            .map_err(error)?
            .iter()
            .map(|head| (head.name().to_string(), head.oid()))
            .collect();
        let Some((remote_ref, local_ref, tip)) = choose(&advertised) else { return Ok(None) };
        let current = self.repository.refname_to_id(&local_ref).ok();
        if current == Some(tip) && self.repository.find_object(tip, None).is_ok() {
            tracing::debug!(url = %self.location, reference = %remote_ref, %tip, "up to date");
            return Ok(Some(local_ref));
        }
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(origin.callbacks(&deadline, limit.as_ref()))
            .download_tags(AutotagOption::None);
        connection
            .remote()
            .download(&[format!("+{remote_ref}:{local_ref}")], Some(&mut options))
            .map_err(error)?;
        drop(connection);
        self.repository.find_object(tip, None).map_err(|e| GitError::Fetch {
            what: remote_ref.clone(),
            url: self.location.clone(),
            message: format!("the remote advertised {tip} but did not send it: {}", e.message()),
        })?;
        self.repository
            .reference(&local_ref, tip, true, &format!("gitfleet: fetch {remote_ref}"))
            .map_err(error)?;
        tracing::debug!(url = %self.location, reference = %remote_ref, %tip, "fetched");
        Ok(Some(local_ref))
    }

    /// Fetches every branch of the origin (`+refs/heads/*:refs/heads/*`), for a revision
    /// that names no reference (a commit id, `main~2`).
    fn fetch_all_branches(&self) -> Result<(), GitError> {
        let Some(origin) = &self.origin else { return Ok(()) };
        let what = "refs/heads/*";
        let deadline = Deadline::new(self.timeout);
        let error = |e: git2::Error| self.fetch_error(what, origin, &deadline, None, e);
        let mut remote = self.repository.remote_anonymous(&origin.url).map_err(error)?;
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(origin.callbacks(&deadline, None))
            .download_tags(AutotagOption::None);
        remote.download(&["+refs/heads/*:refs/heads/*"], Some(&mut options)).map_err(error)?;
        remote
            .update_tips(None, RemoteUpdateFlags::empty(), AutotagOption::None, Some("gitfleet"))
            .map_err(error)?;
        Ok(())
    }

    /// A failed fetch of `what` as a [`GitError`]: over its size limit or timed out when it
    /// was, else git's message, scrubbed.
    fn fetch_error(
        &self,
        what: &str,
        origin: &Origin,
        deadline: &Deadline,
        limit: Option<&SizeLimit>,
        e: git2::Error,
    ) -> GitError {
        if let Some(limit) = limit.filter(|l| l.tripped()) {
            return GitError::TooLarge {
                action: format!("fetch of {what} from {}", self.location),
                received: limit.received(),
                limit: limit.max(),
            };
        }
        if is_timeout(&e, deadline) {
            return GitError::Timeout {
                action: format!("fetch of {what} from {}", self.location),
                after: deadline.timeout(),
            };
        }
        GitError::Fetch {
            what: what.into(),
            url: self.location.clone(),
            message: origin.scrub(e.message()),
        }
    }

    /// Pushes `refname` to the same name on the origin (not forced). `Rejected` when the
    /// remote's reference moved to something that is not an ancestor.
    pub(super) fn push(&self, refname: &str, branch: &str) -> Result<Pushed, GitError> {
        let Some(origin) = &self.origin else { return Ok(Pushed::Accepted) };
        let deadline = Deadline::new(self.timeout);
        let error = |e: git2::Error| {
            if is_timeout(&e, &deadline) {
                return GitError::Timeout {
                    action: format!("push of {branch} to {}", self.location),
                    after: deadline.timeout(),
                };
            }
            GitError::Push {
                branch: branch.into(),
                url: self.location.clone(),
                message: origin.scrub(e.message()),
            }
        };
        let mut remote = self.repository.remote_anonymous(&origin.url).map_err(error)?;
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut callbacks = origin.callbacks(&deadline, None);
        // Progress, so that later keep-alives are measured from the last byte sent.
        callbacks.push_transfer_progress(|current, _, bytes| {
            deadline.alive((current + bytes) as u64);
        });
        callbacks.push_update_reference(|_, status| {
            if let Some(status) = status {
                *rejected.borrow_mut() = Some(status.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let outcome = remote.push(&[format!("{refname}:{refname}")], Some(&mut options));
        drop(options);
        match outcome {
            Ok(()) => match rejected.into_inner() {
                Some(status) => Ok(Pushed::Rejected(origin.scrub(&status))),
                None => Ok(Pushed::Accepted),
            },
            Err(e) if e.code() == ErrorCode::NotFastForward => {
                Ok(Pushed::Rejected(origin.scrub(e.message())))
            }
            Err(e) => Err(error(e)),
        }
    }
}

impl Origin {
    /// Callbacks that answer credential requests, each kind once, and abort the transfer
    /// when `deadline` says nothing moved for too long, or `limit` that too much came.
    fn callbacks<'a>(
        &'a self,
        deadline: &'a Deadline,
        limit: Option<&'a SizeLimit>,
    ) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(move |progress| {
            if limit.is_some_and(|l| !l.allows(progress.received_bytes() as u64)) {
                return false;
            }
            let mark = progress.received_bytes() as u64
                + progress.indexed_objects() as u64
                + progress.indexed_deltas() as u64;
            deadline.alive(mark)
        });
        callbacks.sideband_progress(move |text| deadline.message(text));
        let mut offered = CredentialType::empty();
        callbacks.credentials(move |_url, username_from_url, allowed| {
            let (kind, cred) = self.credential(username_from_url, allowed)?;
            if offered.contains(kind) {
                return Err(git2::Error::from_str(
                    "the server rejected the credentials (check the username, token or key)",
                ));
            }
            offered |= kind;
            cred
        });
        callbacks
    }

    /// The credential to offer for a request allowing `allowed`, and its kind.
    fn credential(
        &self,
        username_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<(CredentialType, Result<Cred, git2::Error>), git2::Error> {
        let userpass = CredentialType::USER_PASS_PLAINTEXT;
        let ssh_key = CredentialType::SSH_KEY;
        let username = CredentialType::USERNAME;
        let answer = match &self.credentials {
            Credentials::None => {
                if let (true, Some((user, password))) =
                    (allowed.contains(userpass), userinfo(&self.url))
                {
                    (userpass, Cred::userpass_plaintext(&user, &password.unwrap_or_default()))
                } else if allowed.contains(CredentialType::DEFAULT) {
                    (CredentialType::DEFAULT, Cred::default())
                } else {
                    return Err(git2::Error::from_str(
                        "the server asks for credentials and none are configured",
                    ));
                }
            }
            Credentials::Token { username: user, token } if allowed.contains(userpass) => {
                (userpass, Cred::userpass_plaintext(user, token))
            }
            Credentials::SshKey { username: user, private_key, passphrase } => {
                if allowed.contains(username) {
                    (username, Cred::username(user))
                } else if allowed.contains(ssh_key) {
                    let user = username_from_url.unwrap_or(user);
                    (ssh_key, Cred::ssh_key(user, None, private_key, passphrase.as_deref()))
                } else {
                    return Err(mismatch("an SSH key", allowed));
                }
            }
            Credentials::SshAgent { username: user } => {
                if allowed.contains(username) {
                    (username, Cred::username(user))
                } else if allowed.contains(ssh_key) {
                    (ssh_key, Cred::ssh_key_from_agent(username_from_url.unwrap_or(user)))
                } else {
                    return Err(mismatch("the SSH agent", allowed));
                }
            }
            Credentials::Token { username: user, .. } if allowed.contains(username) => {
                (username, Cred::username(user))
            }
            Credentials::Token { .. } => return Err(mismatch("a token", allowed)),
        };
        Ok(answer)
    }

    /// `text` with every secret replaced by `***`.
    fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secrets)
    }
}

fn mismatch(what: &str, allowed: CredentialType) -> git2::Error {
    git2::Error::from_str(&format!(
        "the credentials configured are {what}, but the server asks for {allowed:?}"
    ))
}

/// `refs/heads/<branch>`, if that is a valid reference name.
pub(super) fn branch_ref(branch: &str) -> Result<String, GitError> {
    let refname = format!("refs/heads/{branch}");
    if branch.is_empty() || branch.starts_with('-') || !git2::Reference::is_valid_name(&refname) {
        return Err(GitError::InvalidName {
            what: "branch name",
            name: branch.into(),
            reason: "git does not allow it as a branch name".into(),
        });
    }
    Ok(refname)
}

/// Where a fetched PR head is kept: `refs/pull/7/head` → `refs/gitfleet/preview/pull/7/head`.
pub fn preview_ref(remote_ref: &str) -> Result<String, GitError> {
    let invalid = |reason: &str| GitError::InvalidName {
        what: "reference to fetch",
        name: remote_ref.into(),
        reason: reason.into(),
    };
    let Some(rest) = remote_ref.strip_prefix("refs/") else {
        return Err(invalid("it must be a full reference name such as refs/pull/7/head"));
    };
    if !git2::Reference::is_valid_name(remote_ref) || remote_ref.contains('*') {
        return Err(invalid("git does not allow it as a reference name"));
    }
    if remote_ref.starts_with(PREVIEW_PREFIX) {
        return Err(invalid("it is one of gitfleet's own preview references"));
    }
    Ok(format!("{PREVIEW_PREFIX}{rest}"))
}

/// The path of a local repository location: a `file://` URL or anything that is not a URL.
pub(super) fn local_path(location: &str) -> Option<PathBuf> {
    if let Some(path) = location.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    if location.contains("://") || is_scp_like(location) {
        return None;
    }
    Some(PathBuf::from(location))
}

/// `user@host:path` or `host:path` (git's scp-like syntax), unless it is an existing path.
pub(super) fn is_scp_like(location: &str) -> bool {
    match location.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/') && !Path::new(location).exists(),
        None => false,
    }
}

/// Splits `scheme://authority/...` into (`scheme://`, userinfo, rest-after-`@`), when the URL
/// has a userinfo part.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let after = &url[scheme_end..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    // The last `@` of the authority: a password may (wrongly, but commonly) contain `@`.
    let at = after[..authority_end].rfind('@')?;
    Some((&url[..scheme_end], &after[..at], &after[at + 1..]))
}

/// (username, password) from a URL's userinfo, percent-decoded.
fn userinfo(url: &str) -> Option<(String, Option<String>)> {
    let (_, info, _) = split_userinfo(url)?;
    Some(match info.split_once(':') {
        Some((user, password)) => (percent_decode(user), Some(percent_decode(password))),
        None => (percent_decode(info), None),
    })
}

/// `url` for logs and errors: `https://user:***@host/...`, and `https://***@host/...` for a
/// bare username over HTTP(S) (which is often a token). An SSH username is kept.
pub fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, info, rest)) => match info.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{rest}"),
            None if scheme.starts_with("http") => format!("{scheme}***@{rest}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `url` without its userinfo, whatever it holds.
pub(super) fn strip_userinfo(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, _, rest)) => format!("{scheme}{rest}"),
        None => url.to_string(),
    }
}

/// Everything secret about a remote: what its URL and its credentials carry.
fn secrets_of(url: &str, credentials: &Credentials) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((scheme, info, _)) = split_userinfo(url) {
        match info.split_once(':') {
            Some((_, password)) => {
                secrets.push(password.to_string());
                secrets.push(percent_decode(password));
            }
            None if scheme.starts_with("http") => {
                secrets.push(info.to_string());
                secrets.push(percent_decode(info));
            }
            None => {}
        }
    }
    match credentials {
        Credentials::Token { token, .. } => secrets.push(token.clone()),
        Credentials::SshKey { passphrase: Some(passphrase), .. } => {
            secrets.push(passphrase.clone())
        }
        _ => {}
    }
    secrets.retain(|s| !s.is_empty());
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A directory name for the mirror of `url` (given without credentials): readable and unique.
fn cache_dir_name(url: &str) -> String {
    let last = url.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or_default();
    let readable: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let readable = readable.trim_start_matches('.');
    let readable = if readable.is_empty() { "repository" } else { readable };
    let digest = crate::model::digest::sha256_hex(url.as_bytes());
    format!("{readable}-{}", &digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_plain_http_only_to_loopback() {
        let cache = tempfile::tempdir().unwrap();
        let token = || Credentials::Token { username: "bot".into(), token: "t0ken".into() };
        let refused = |location: &str, credentials| {
            let Err(error) = Mirror::open(location, cache.path(), credentials) else {
                panic!("{location} was opened");
            };
            let shown = error.to_string();
            assert!(shown.contains("over plain http://"), "{shown}");
            assert!(!shown.contains("t0ken") && !shown.contains("s3cret"), "{shown}");
        };
        refused("http://git.example/o/r.git", token());
        refused("http://bot:s3cret@10.1.2.3/o/r.git", Credentials::None);
        for (location, credentials) in [
            ("http://127.0.0.1:3000/o/r.git", token()),
            ("http://localhost/o/r.git", token()),
            ("http://[::1]/o/r.git", token()),
            ("https://git.example/o/r.git", token()),
            ("http://git.example/o/r.git", Credentials::None),
        ] {
            assert!(Mirror::open(location, cache.path(), credentials).is_ok(), "{location}");
        }
    }

    #[test]
    fn redaction_hides_passwords_and_http_tokens() {
        let cases = [
            ("https://user:secret@127.0.0.1:1/x.git", "https://user:***@127.0.0.1:1/x.git"),
            ("https://ghp_token@github.com/o/r.git", "https://***@github.com/o/r.git"),
            ("https://u:p@ss@host/r", "https://u:***@host/r"),
            ("ssh://git@host/r.git", "ssh://git@host/r.git"),
            ("https://host/r.git", "https://host/r.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("https://host/a@b", "https://host/a@b"),
            ("/srv/repo", "/srv/repo"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn scrubbing_removes_every_secret_spelling() {
        let credentials = Credentials::Token { username: "bot".into(), token: "t0ken".into() };
        let secrets = secrets_of("https://me:p%40ss@host/r", &credentials);
        let message = "failed for https://me:p%40ss@host/r (p@ss) with t0ken";
        assert_eq!(scrub(message, &secrets), "failed for https://me:***@host/r (***) with ***");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let token = Credentials::Token { username: "bot".into(), token: "t0ken".into() };
        let key = Credentials::SshKey {
            username: "git".into(),
            private_key: "/k".into(),
            passphrase: Some("hunter2".into()),
        };
        let shown = format!("{token:?} {key:?}");
        assert!(!shown.contains("t0ken") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn locations_are_classified() {
        assert_eq!(local_path("file:///srv/r.git"), Some(PathBuf::from("/srv/r.git")));
        assert_eq!(local_path("/srv/r"), Some(PathBuf::from("/srv/r")));
        assert_eq!(local_path("relative/dir"), Some(PathBuf::from("relative/dir")));
        assert_eq!(local_path("https://h/r.git"), None);
        assert_eq!(local_path("git@github.com:o/r.git"), None);
    }

    #[test]
    fn reference_names_are_checked() {
        assert_eq!(preview_ref("refs/pull/7/head").unwrap(), "refs/gitfleet/preview/pull/7/head");
        assert_eq!(
            preview_ref("refs/merge-requests/7/head").unwrap(),
            "refs/gitfleet/preview/merge-requests/7/head"
        );
        for bad in
            ["pull/7/head", "refs/pull/*", "refs/a..b", "refs/x\0y", "refs/gitfleet/preview/x"]
        {
            assert!(preview_ref(bad).is_err(), "{bad:?}");
        }
        assert_eq!(branch_ref("main").unwrap(), "refs/heads/main");
        assert_eq!(branch_ref("gitfleet/status").unwrap(), "refs/heads/gitfleet/status");
        for bad in ["", "-x", "a b", "a..b", "x.lock", "a\0b", "a~1"] {
            assert!(branch_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cache_names_are_readable_and_credential_free() {
        let name = cache_dir_name("https://host/org/app.git");
        assert!(name.starts_with("app.git-"), "{name}");
        assert_ne!(name, cache_dir_name("https://other/org/app.git"));
        assert!(cache_dir_name("git@host:app").starts_with("app-"));
        assert!(cache_dir_name("https://host/").starts_with("host-"));
        assert!(cache_dir_name("https://host/..").starts_with("repository-"));
        assert_eq!(strip_userinfo("https://u:p@h/r"), "https://h/r");
    }

    #[test]
    fn each_kind_of_credentials_answers_its_own_requests() {
        let origin = |url: &str, credentials| Origin {
            url: url.into(),
            secrets: secrets_of(url, &credentials),
            credentials,
        };
        let kind = |origin: &Origin, allowed| origin.credential(Some("git"), allowed).map(|a| a.0);
        let (userpass, key, user) = (
            CredentialType::USER_PASS_PLAINTEXT,
            CredentialType::SSH_KEY,
            CredentialType::USERNAME,
        );

        let token =
            origin("https://h/r", Credentials::Token { username: "u".into(), token: "t".into() });
        assert_eq!(kind(&token, userpass).unwrap(), userpass);
        assert!(kind(&token, key).is_err());

        let ssh = Credentials::SshKey {
            username: "git".into(),
            private_key: "/k".into(),
            passphrase: None,
        };
        let ssh = origin("ssh://h/r", ssh);
        assert_eq!(kind(&ssh, user).unwrap(), user);
        assert_eq!(kind(&ssh, key | userpass).unwrap(), key);
        assert!(kind(&ssh, userpass).is_err());

        let agent = origin("ssh://h/r", Credentials::SshAgent { username: "git".into() });
        assert_eq!(kind(&agent, key).unwrap(), key);

        let embedded = origin("https://u:p@h/r", Credentials::None);
        assert_eq!(kind(&embedded, userpass).unwrap(), userpass);
        let nothing = origin("https://h/r", Credentials::None);
        assert!(kind(&nothing, userpass).is_err());
    }

    /// A remote that accepts connections and never answers: the fetch gives up after the
    /// timeout, says so, and shows no credential.
    #[test]
    fn a_silent_remote_times_out_without_showing_credentials() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cache = tempfile::tempdir().unwrap();
        for url in [
            format!("http://bob:s3cr3t@127.0.0.1:{port}/x.git"),
            format!("git://127.0.0.1:{port}/x.git"),
        ] {
            let timeout = Duration::from_secs(1);
            let options = MirrorOptions { credentials: Credentials::None, timeout };
            let mirror = Mirror::open_with(&url, cache.path(), options).unwrap();
            let started = std::time::Instant::now();
            let error = mirror.fetch_branch("main").unwrap_err();
            let elapsed = started.elapsed();
            assert!(matches!(error, GitError::Timeout { .. }), "{url}: {error:?}");
            let message = error.to_string();
            assert!(message.contains("timed out after 1 s (no progress)"), "{message}");
            assert!(message.contains("refs/heads/main"), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
            // The bound holds with slack for a loaded machine (connect + one read).
            assert!(elapsed < Duration::from_secs(5), "{url}: {elapsed:?}");
        }
        drop(listener);
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
