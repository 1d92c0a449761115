//! Reading a forge's webhook delivery (GitHub, GitLab, Gitea, Forgejo, or gitfleet's own generic
//! endpoint) into the few facts gitfleet acts on: a [`Hook`] (ping, push to a branch, pull
//! request), or the reason it is [`Outcome::Ignored`]. Then [`triage`] keeps only what concerns
//! the watched branch.
//!
//! Pure: bytes and header values in, values out. No I/O, no clock, no panics on any input.
//!
//! # What is read from each forge
//!
//! | forge | event header | events handled |
//! | --- | --- | --- |
//! | GitHub | `X-GitHub-Event` | `ping`, `push`, `pull_request` |
//! | GitLab | `X-Gitlab-Event` | `Push Hook`, `Merge Request Hook`, `System Hook` (push, merge request) |
//! | Gitea / Forgejo | `X-Gitea-Event` / `X-Forgejo-Event` | `push`, `pull_request` |
//! | generic | none | any body: empty, or `{"ref": "refs/heads/<branch>", "after": "<sha>", "app": "<app>"}` (each field optional) |
//!
//! Any other event kind, a tag push, a push to a ref outside `refs/heads/`, and a branch
//! deletion (`after` all zeros) are [`Outcome::Ignored`] with a reason, not errors. A payload
//! that lacks a field gitfleet needs, or holds one of the wrong type, is a [`PayloadError`]
//! naming the field (`pull_request.head.sha`).

use std::fmt;

use serde_json::Value;

/// Where a delivery comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
    /// gitfleet's own endpoint, for scripts and forges without a receiver here.
    Generic,
}

impl Forge {
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea",
            Forge::Forgejo => "Forgejo",
            Forge::Generic => "generic",
        }
    }

    /// The header that names the event kind; the generic endpoint has none.
    pub fn event_header(self) -> Option<&'static str> {
        match self {
            Forge::GitHub => Some("X-GitHub-Event"),
            Forge::GitLab => Some("X-Gitlab-Event"),
            Forge::Gitea => Some("X-Gitea-Event"),
            Forge::Forgejo => Some("X-Forgejo-Event"),
            Forge::Generic => None,
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A delivery gitfleet acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// The forge checks that the receiver answers (GitHub's `ping`, sent when a hook is created).
    Ping { forge: Forge },
    /// Commits pushed to a branch. `repository` is `owner/name` (GitLab: the project's
    /// `path_with_namespace`); `commit` is the branch's new head.
    Push { forge: Forge, repository: String, branch: String, commit: String },
    /// A pull (merge) request was opened, updated or closed.
    PullRequest(PullRequestHook),
    /// The generic endpoint: "sync now" (and retry a rolled-back rollout). `branch` and
    /// `commit` are there when the caller named them (`{"ref": "refs/heads/main", "after":
    /// "<sha>"}`); `app` when the retry is for that app only (`{"app": "shop"}`, a valid app
    /// name); an empty body names none.
    Sync { branch: Option<String>, commit: Option<String>, app: Option<String> },
}

impl Hook {
    pub fn forge(&self) -> Forge {
        match self {
            Hook::Ping { forge } | Hook::Push { forge, .. } => *forge,
            Hook::PullRequest(pr) => pr.forge,
            Hook::Sync { .. } => Forge::Generic,
        }
    }

    /// One short line for logs and the HTTP answer: `push to main at 6113728`.
    pub fn summary(&self) -> String {
        match self {
            Hook::Ping { forge } => format!("ping from {forge}"),
            Hook::Push { branch, commit, .. } => format!("push to {branch} at {}", short(commit)),
            Hook::PullRequest(pr) => {
                format!("pull request #{} ({}) at {}", pr.number, pr.action, short(&pr.head_commit))
            }
            Hook::Sync { branch, commit, app } => {
                let mut line = String::from("sync request");
                if let Some(app) = app {
                    line.push_str(&format!(" (retry app {app})"));
                }
                if let Some(branch) = branch {
                    line.push_str(&format!(" for {branch}"));
                }
                if let Some(commit) = commit {
                    line.push_str(&format!(" at {}", short(commit)));
                }
                line
            }
        }
    }
}

/// A pull request (GitHub, Gitea, Forgejo) or merge request (GitLab) event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestHook {
    pub forge: Forge,
    /// `owner/name` of the repository the request is against (GitHub, Gitea, Forgejo); GitLab:
    /// the project's `path_with_namespace`.
    pub repository: String,
    /// GitLab's numeric project id (its API addresses projects by it); `None` elsewhere.
    pub project_id: Option<u64>,
    /// The pull request number; GitLab: the merge request's `iid`.
    pub number: u64,
    pub action: PullRequestAction,
    pub head_commit: String,
    pub head_branch: String,
    pub base_branch: String,
    /// The repository the head branch lives in, as the payload names it (`owner/name`;
    /// GitLab: the source project's path); `None` when the payload does not say (a deleted
    /// fork, a trimmed payload). See [`PullRequestHook::from_fork`].
    pub head_repository: Option<String>,
}

impl PullRequestHook {
    /// Whether the head comes from another repository than the one the pull request is
    /// against (a fork), or from one the payload does not name: such content is anyone's,
    /// and previews of it are off unless the operator opts in.
    pub fn from_fork(&self) -> bool {
        self.head_repository
            .as_deref()
            .is_none_or(|head| !head.eq_ignore_ascii_case(&self.repository))
    }
}

/// What happened to a pull request, as far as a plan preview cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    /// New commits or a new target: GitHub `synchronize`, `reopened`, `edited` that changed the
    /// base; Gitea/Forgejo `synchronized`, `reopened`; GitLab `reopen`, and `update` that
    /// carries `oldrev` (the source branch moved).
    Updated,
    /// Closed, merged or not.
    Closed,
    /// Anything else (`labeled`, `assigned`, GitLab `approved`, an `update` without new
    /// commits), with the forge's own word.
    Other(String),
}

impl fmt::Display for PullRequestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullRequestAction::Opened => f.write_str("opened"),
            PullRequestAction::Updated => f.write_str("updated"),
            PullRequestAction::Closed => f.write_str("closed"),
            PullRequestAction::Other(word) => f.write_str(word),
        }
    }
}

/// What a delivery amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Hook(Hook),
    /// Well formed, but nothing for gitfleet to do: the reason says why.
    Ignored {
        reason: String,
    },
}

impl Outcome {
    fn ignored(reason: impl Into<String>) -> Self {
        Outcome::Ignored { reason: reason.into() }
    }
}

/// A delivery that cannot be read. `event` is the event kind as the forge named it
/// (`pull_request`, `Push Hook`; `sync request` for the generic endpoint); `field` is a
/// dotted path into the JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{forge} {event} delivery is not valid JSON: {reason}")]
    NotJson { forge: Forge, event: String, reason: String },
    #[error("{forge} {event} delivery has no {field}")]
    Missing { forge: Forge, event: String, field: String },
    #[error("{forge} {event} delivery: {field} is not {expected}")]
    Invalid { forge: Forge, event: String, field: String, expected: &'static str },
}

/// Reads one delivery. `event` is the value of the forge's event header
/// ([`Forge::event_header`]); it is not looked at for [`Forge::Generic`].
pub fn parse(forge: Forge, event: &str, body: &[u8]) -> Result<Outcome, PayloadError> {
    if forge == Forge::Generic {
        return parse_generic(body);
    }
    let handled = match forge {
        Forge::GitHub => matches!(event, "ping" | "push" | "pull_request"),
        Forge::GitLab => {
            matches!(event, "Push Hook" | "Merge Request Hook" | "System Hook" | "Tag Push Hook")
        }
        Forge::Gitea | Forge::Forgejo => matches!(event, "push" | "pull_request"),
        Forge::Generic => true,
    };
    if !handled {
        return Ok(Outcome::ignored(format!(
            "{forge} event {event:?} is not one gitfleet acts on"
        )));
    }
    let doc = Doc::read(forge, event, body)?;
    match (forge, event) {
        (Forge::GitHub, "ping") => Ok(Outcome::Hook(Hook::Ping { forge })),
        (Forge::GitHub | Forge::Gitea | Forge::Forgejo, "push") => {
            doc.push(&["repository", "full_name"])
        }
        (Forge::GitHub | Forge::Gitea | Forge::Forgejo, "pull_request") => doc.pull_request(),
        (Forge::GitLab, "Push Hook") => doc.push(&["project", "path_with_namespace"]),
        (Forge::GitLab, "Tag Push Hook") => doc.tag_push(),
        (Forge::GitLab, "Merge Request Hook") => doc.merge_request(),
        (Forge::GitLab, _) => doc.system_hook(),
        _ => Ok(Outcome::ignored(format!("{forge} event {event:?} is not one gitfleet acts on"))),
    }
}

/// Keeps what concerns `watched_branch`: pushes to it, pull requests into it, pings, and sync
/// requests that name it or no branch. Everything else becomes [`Outcome::Ignored`].
pub fn triage(outcome: Outcome, watched_branch: &str) -> Outcome {
    let Outcome::Hook(hook) = outcome else { return outcome };
    let off_branch = match &hook {
        Hook::Ping { .. } => None,
        Hook::Push { branch, .. } if branch != watched_branch => {
            Some(format!("push to branch {branch}, not the watched branch {watched_branch}"))
        }
        Hook::Push { .. } => None,
        Hook::PullRequest(pr) if pr.base_branch != watched_branch => Some(format!(
            "pull request #{} targets branch {}, not the watched branch {watched_branch}",
            pr.number, pr.base_branch
        )),
        Hook::PullRequest(_) => None,
        Hook::Sync { branch: Some(branch), .. } if branch != watched_branch => Some(format!(
            "sync request for branch {branch}, not the watched branch {watched_branch}"
        )),
        Hook::Sync { .. } => None,
    };
    match off_branch {
        Some(reason) => Outcome::Ignored { reason },
        None => Outcome::Hook(hook),
    }
}

const GENERIC_EVENT: &str = "sync request";

/// The longest app name a sync request may carry (Docker's names are far shorter in practice).
const MAX_APP_NAME: usize = 200;

fn parse_generic(body: &[u8]) -> Result<Outcome, PayloadError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Outcome::Hook(Hook::Sync { branch: None, commit: None, app: None }));
    }
    let doc = Doc::read(Forge::Generic, GENERIC_EVENT, body)?;
    if !doc.root.is_object() {
        return Err(doc.invalid(&[], "a JSON object"));
    }
    let branch = match doc.opt_str(&["ref"])? {
        None => None,
        Some(reference) => match branch_of(reference) {
            Ok(branch) => Some(branch.to_string()),
            Err(reason) => return Ok(Outcome::Ignored { reason }),
        },
    };
    let commit = match doc.opt_str(&["after"])? {
        None => None,
        Some(after) if is_zero(after) => {
            return Ok(Outcome::ignored(format!(
                "branch {} deleted",
                branch.as_deref().unwrap_or("(unnamed)")
            )));
        }
        Some(_) => Some(doc.commit(&["after"])?),
    };
    let app = match doc.opt_str(&["app"])? {
        None => None,
        Some(app) if crate::model::load::valid_app_name(app) && app.len() <= MAX_APP_NAME => {
            Some(app.to_string())
        }
        Some(_) => {
            return Err(doc.invalid(
                &["app"],
                "an app name (its folder under apps/: lower-case letters, digits, '-' and '_')",
            ));
        }
    };
    Ok(Outcome::Hook(Hook::Sync { branch, commit, app }))
}

/// `refs/heads/<branch>` → `<branch>`; any other ref → the reason it is ignored.
fn branch_of(reference: &str) -> Result<&str, String> {
    match reference.strip_prefix("refs/heads/") {
        Some(branch) if !branch.is_empty() => Ok(branch),
        _ => match reference.strip_prefix("refs/tags/") {
            Some(tag) => Err(format!("tag push {tag}")),
            None => Err(format!("push to {reference}, which is not a branch (refs/heads/...)")),
        },
    }
}

/// The null object id: a deleted ref's new value (SHA-1 or SHA-256 repositories).
fn is_zero(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|b| b == b'0')
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// A parsed delivery and the names that go into its errors.
struct Doc<'a> {
    forge: Forge,
    event: &'a str,
    root: Value,
}

impl<'a> Doc<'a> {
    fn read(forge: Forge, event: &'a str, body: &[u8]) -> Result<Self, PayloadError> {
        match serde_json::from_slice(body) {
            Ok(root) => Ok(Doc { forge, event, root }),
            Err(error) => Err(PayloadError::NotJson {
                forge,
                event: event.to_string(),
                reason: error.to_string(),
            }),
        }
    }

    fn missing(&self, path: &[&str]) -> PayloadError {
        PayloadError::Missing {
            forge: self.forge,
            event: self.event.to_string(),
            field: path.join("."),
        }
    }

    fn invalid(&self, path: &[&str], expected: &'static str) -> PayloadError {
        let field = if path.is_empty() { "the document".to_string() } else { path.join(".") };
        PayloadError::Invalid { forge: self.forge, event: self.event.to_string(), field, expected }
    }

    /// The value at `path`; `null` counts as absent.
    fn get(&self, path: &[&str]) -> Option<&Value> {
        let mut value = &self.root;
        for key in path {
            value = value.get(key)?;
        }
        (!value.is_null()).then_some(value)
    }

    fn opt_str(&self, path: &[&str]) -> Result<Option<&str>, PayloadError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(path, "a string")),
        }
    }

    fn str(&self, path: &[&str]) -> Result<&str, PayloadError> {
        self.opt_str(path)?.ok_or_else(|| self.missing(path))
    }

    /// A non-empty string.
    fn name(&self, path: &[&str]) -> Result<String, PayloadError> {
        match self.str(path)? {
            "" => Err(self.invalid(path, "a non-empty string")),
            text => Ok(text.to_string()),
        }
    }

    fn opt_u64(&self, path: &[&str]) -> Result<Option<u64>, PayloadError> {
        match self.get(path) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| self.invalid(path, "a number")),
        }
    }

    fn u64(&self, path: &[&str]) -> Result<u64, PayloadError> {
        self.opt_u64(path)?.ok_or_else(|| self.missing(path))
    }

    /// A commit id: 40 (SHA-1) or 64 (SHA-256) hex digits, returned in lower case.
    fn commit(&self, path: &[&str]) -> Result<String, PayloadError> {
        let id = self.str(path)?;
        if (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(id.to_ascii_lowercase())
        } else {
            Err(self.invalid(path, "a commit id (40 or 64 hex digits)"))
        }
    }

    /// A push (GitHub, Gitea, Forgejo, GitLab): `ref`, `after`, and the repository's name at
    /// `repository`.
    fn push(&self, repository: &[&str]) -> Result<Outcome, PayloadError> {
        let branch = match branch_of(self.str(&["ref"])?) {
            Ok(branch) => branch.to_string(),
            Err(reason) => return Ok(Outcome::Ignored { reason }),
        };
        let deleted = self.get(&["deleted"]).and_then(Value::as_bool) == Some(true);
        if deleted || is_zero(self.str(&["after"])?) {
            return Ok(Outcome::ignored(format!("branch {branch} deleted")));
        }
        Ok(Outcome::Hook(Hook::Push {
            forge: self.forge,
            repository: self.name(repository)?,
            branch,
            commit: self.commit(&["after"])?,
        }))
    }

    /// GitLab `Tag Push Hook`: always ignored, with the tag's name.
    fn tag_push(&self) -> Result<Outcome, PayloadError> {
        let reference = self.str(&["ref"])?;
        let tag = reference.strip_prefix("refs/tags/").unwrap_or(reference);
        Ok(Outcome::ignored(format!("tag push {tag}")))
    }

    /// GitHub, Gitea and Forgejo `pull_request`.
    fn pull_request(&self) -> Result<Outcome, PayloadError> {
        let word = self.str(&["action"])?;
        let action = match word {
            "opened" => PullRequestAction::Opened,
            "synchronize" | "synchronized" | "reopened" => PullRequestAction::Updated,
            // GitHub says what an edit changed; only a new base (or head) changes the plan.
            "edited" if self.get(&["changes", "base"]).is_some() => PullRequestAction::Updated,
            "edited" if self.get(&["changes", "head"]).is_some() => PullRequestAction::Updated,
            "closed" => PullRequestAction::Closed,
            other => PullRequestAction::Other(other.to_string()),
        };
        let number = match self.opt_u64(&["number"])? {
            Some(number) => number,
            None => self.u64(&["pull_request", "number"])?,
        };
        let repository = self.name(&["repository", "full_name"])?;
        let head_repository = match self.opt_str(&["pull_request", "head", "repo", "full_name"]) {
            Ok(Some(name)) if !name.is_empty() => Some(name.to_string()),
            // Gitea and Forgejo also give the repositories' ids.
            _ => match (
                self.get(&["pull_request", "head", "repo_id"]).and_then(Value::as_u64),
                self.get(&["pull_request", "base", "repo_id"]).and_then(Value::as_u64),
            ) {
                (Some(head), Some(base)) if head == base && head != 0 => Some(repository.clone()),
                _ => None,
            },
        };
        Ok(Outcome::Hook(Hook::PullRequest(PullRequestHook {
            forge: self.forge,
            repository,
            project_id: None,
            number,
            action,
            head_commit: self.commit(&["pull_request", "head", "sha"])?,
            head_branch: self.name(&["pull_request", "head", "ref"])?,
            base_branch: self.name(&["pull_request", "base", "ref"])?,
            head_repository,
        })))
    }

    /// GitLab `Merge Request Hook` (and the system hook's `merge_request`).
    fn merge_request(&self) -> Result<Outcome, PayloadError> {
        let attributes = "object_attributes";
        let word = self.str(&[attributes, "action"])?;
        let action = match word {
            "open" => PullRequestAction::Opened,
            "reopen" => PullRequestAction::Updated,
            // `oldrev` is there only when the update pushed commits to the source branch.
            "update" if self.get(&[attributes, "oldrev"]).is_some() => PullRequestAction::Updated,
            "close" | "merge" => PullRequestAction::Closed,
            other => PullRequestAction::Other(other.to_string()),
        };
        let repository = match self.opt_str(&["project", "path_with_namespace"])? {
            Some(path) if !path.is_empty() => path.to_string(),
            _ => self.name(&[attributes, "target", "path_with_namespace"])?,
        };
        let project_id = match self.opt_u64(&["project", "id"])? {
            Some(id) => Some(id),
            None => self.opt_u64(&[attributes, "target_project_id"])?,
        };
        let source_id = self.get(&[attributes, "source_project_id"]).and_then(Value::as_u64);
        let target_id = self.get(&[attributes, "target_project_id"]).and_then(Value::as_u64);
        let head_repository = match (source_id, target_id) {
            (Some(source), Some(target)) if source == target => Some(repository.clone()),
            (Some(_), Some(_)) => self
                .opt_str(&[attributes, "source", "path_with_namespace"])
                .ok()
                .flatten()
                .filter(|path| !path.eq_ignore_ascii_case(&repository))
                .map(str::to_string),
            _ => None,
        };
        Ok(Outcome::Hook(Hook::PullRequest(PullRequestHook {
            forge: self.forge,
            repository,
            project_id,
            number: self.u64(&[attributes, "iid"])?,
            action,
            head_commit: self.commit(&[attributes, "last_commit", "id"])?,
            head_branch: self.name(&[attributes, "source_branch"])?,
            base_branch: self.name(&[attributes, "target_branch"])?,
            head_repository,
        })))
    }

    /// GitLab `System Hook`: the kind is in `object_kind` (or `event_name`).
    fn system_hook(&self) -> Result<Outcome, PayloadError> {
        let kind = match self.opt_str(&["object_kind"])? {
            Some(kind) => kind,
            None => self.str(&["event_name"])?,
        };
        match kind {
            "push" => self.push(&["project", "path_with_namespace"]),
            "tag_push" => self.tag_push(),
            "merge_request" => self.merge_request(),
            other => Ok(Outcome::ignored(format!(
                "GitLab system event {other:?} is not one gitfleet acts on"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(path: &str) -> Vec<u8> {
        let full = format!("{}/../shared/corpus/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|error| panic!("cannot read {full}: {error}"))
    }

    fn hook(forge: Forge, event: &str, path: &str) -> Hook {
        match parse(forge, event, &corpus(path)) {
            Ok(Outcome::Hook(hook)) => hook,
            other => panic!("{path}: expected a hook, got {other:?}"),
        }
    }

    fn ignored(forge: Forge, event: &str, path: &str) -> String {
        match parse(forge, event, &corpus(path)) {
            Ok(Outcome::Ignored { reason }) => reason,
            other => panic!("{path}: expected ignored, got {other:?}"),
        }
    }

    fn push(forge: Forge, repository: &str, branch: &str, commit: &str) -> Hook {
        Hook::Push {
            forge,
            repository: repository.to_string(),
            branch: branch.to_string(),
            commit: commit.to_string(),
        }
    }

    const GITHUB: &str = "octokit-webhooks/payload-examples/api.github.com";

    #[test]
    fn github_pings() {
        for file in ["payload.json", "with-app_id.payload.json", "with-organization.payload.json"] {
            let path = format!("{GITHUB}/ping/{file}");
            assert_eq!(hook(Forge::GitHub, "ping", &path), Hook::Ping { forge: Forge::GitHub });
        }
    }

    #[test]
    fn github_branch_pushes() {
        for file in ["with-new-branch.payload.json", "with-no-username-committer.payload.json"] {
            assert_eq!(
                hook(Forge::GitHub, "push", &format!("{GITHUB}/push/{file}")),
                push(
                    Forge::GitHub,
                    "Codertocat/Hello-World",
                    "master",
                    "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
                ),
                "{file}"
            );
        }
    }

    #[test]
    fn github_tag_deletions_are_ignored() {
        for file in [
            "payload.json",
            "1.payload.json",
            "with-installation.payload.json",
            "with-organization.payload.json",
        ] {
            let reason = ignored(Forge::GitHub, "push", &format!("{GITHUB}/push/{file}"));
            assert_eq!(reason, "tag push simple-tag", "{file}");
        }
    }

    fn github_pr(action: PullRequestAction) -> Hook {
        Hook::PullRequest(PullRequestHook {
            forge: Forge::GitHub,
            repository: "Codertocat/Hello-World".to_string(),
            project_id: None,
            number: 2,
            action,
            head_commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".to_string(),
            head_branch: "changes".to_string(),
            base_branch: "master".to_string(),
            head_repository: Some("Codertocat/Hello-World".to_string()),
        })
    }

    #[test]
    fn github_pull_requests() {
        let cases = [
            ("opened.payload.json", PullRequestAction::Opened),
            ("opened.with-organization.payload.json", PullRequestAction::Opened),
            ("opened.with-null-body.json", PullRequestAction::Opened),
            ("synchronize.payload.json", PullRequestAction::Updated),
            ("closed.payload.json", PullRequestAction::Closed),
            ("closed.with-organization.payload.json", PullRequestAction::Closed),
        ];
        for (file, action) in cases {
            let path = format!("{GITHUB}/pull_request/{file}");
            assert_eq!(hook(Forge::GitHub, "pull_request", &path), github_pr(action), "{file}");
        }
    }

    #[test]
    fn github_edited_pull_request_is_updated_only_when_the_base_changed() {
        let base = r#"{"action": "edited", "number": 2, "repository": {"full_name": "o/r"},
            "pull_request": {"head": {"sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "ref": "f"},
                             "base": {"ref": "main"}}"#;
        let with_base = format!(r#"{base}, "changes": {{"base": {{"ref": {{"from": "dev"}}}}}}}}"#);
        let title_only = format!(r#"{base}, "changes": {{"title": {{"from": "old"}}}}}}"#);
        let action = |body: &str| match parse(Forge::GitHub, "pull_request", body.as_bytes()) {
            Ok(Outcome::Hook(Hook::PullRequest(pr))) => pr.action,
            other => panic!("{other:?}"),
        };
        assert_eq!(action(&with_base), PullRequestAction::Updated);
        assert_eq!(action(&title_only), PullRequestAction::Other("edited".to_string()));
    }

    #[test]
    fn github_other_events_are_ignored() {
        let reason = ignored(Forge::GitHub, "issues", &format!("{GITHUB}/ping/payload.json"));
        assert_eq!(reason, r#"GitHub event "issues" is not one gitfleet acts on"#);
    }

    #[test]
    fn gitlab_pushes() {
        let diaspora = ("mike/diaspora", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        let hello = ("gitlab-org/hello-world", "2adc9465c4edfc33834e173fe89436a7cb899a1d");
        let cases = [
            ("go-gitlab/testdata/webhooks/push.json", diaspora),
            ("go-playground-webhooks/testdata/gitlab/push-event.json", diaspora),
            ("drone-go-scm/scm/driver/gitlab/testdata/webhooks/push.json", hello),
        ];
        for (path, (repository, commit)) in cases {
            assert_eq!(
                hook(Forge::GitLab, "Push Hook", path),
                push(Forge::GitLab, repository, "master", commit),
                "{path}"
            );
        }
    }

    #[test]
    fn gitlab_tags_and_deletions_are_ignored() {
        let tag = "go-gitlab/testdata/webhooks/tag_push.json";
        assert_eq!(ignored(Forge::GitLab, "Tag Push Hook", tag), "tag push v1.0.0");
        let tag = "drone-go-scm/scm/driver/gitlab/testdata/webhooks/tag_create.json";
        assert_eq!(ignored(Forge::GitLab, "Tag Push Hook", tag), "tag push v1.0.0");
        // The same tag payload sent as a push (a system hook, say) is still not a branch.
        assert_eq!(ignored(Forge::GitLab, "Push Hook", tag), "tag push v1.0.0");
        let delete = "drone-go-scm/scm/driver/gitlab/testdata/webhooks/branch_delete.json";
        assert_eq!(ignored(Forge::GitLab, "Push Hook", delete), "branch feature deleted");
    }

    #[test]
    fn gitlab_merge_requests() {
        let gitlab_test = |path: &str| {
            assert_eq!(
                hook(Forge::GitLab, "Merge Request Hook", path),
                Hook::PullRequest(PullRequestHook {
                    forge: Forge::GitLab,
                    repository: "gitlabhq/gitlab-test".to_string(),
                    project_id: Some(1),
                    number: 1,
                    action: PullRequestAction::Opened,
                    head_commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".to_string(),
                    head_branch: "ms-viewport".to_string(),
                    base_branch: "master".to_string(),
                    head_repository: Some("gitlabhq/gitlab-test".to_string()),
                }),
                "{path}"
            );
        };
        gitlab_test("go-gitlab/testdata/webhooks/merge_request.json");
        gitlab_test("go-playground-webhooks/testdata/gitlab/merge-request-event.json");

        let drone = "drone-go-scm/scm/driver/gitlab/testdata/webhooks";
        for (file, action) in [
            ("pull_request_create.json", PullRequestAction::Opened),
            ("pull_request_close.json", PullRequestAction::Closed),
            ("pull_request_merge.json", PullRequestAction::Closed),
        ] {
            assert_eq!(
                hook(Forge::GitLab, "Merge Request Hook", &format!("{drone}/{file}")),
                Hook::PullRequest(PullRequestHook {
                    forge: Forge::GitLab,
                    repository: "gitlab-org/hello-world".to_string(),
                    project_id: Some(4861503),
                    number: 1,
                    action,
                    head_commit: "c4c79227ed610f1151f05bbc5be33b4f340d39c8".to_string(),
                    head_branch: "feature".to_string(),
                    base_branch: "master".to_string(),
                    head_repository: Some("gitlab-org/hello-world".to_string()),
                }),
                "{file}"
            );
        }
    }

    #[test]
    fn gitlab_update_is_updated_only_with_oldrev() {
        let body = |extra: &str| {
            format!(
                r#"{{"object_kind": "merge_request", "project": {{"id": 7, "path_with_namespace": "g/p"}},
                "object_attributes": {{"iid": 3, "action": "update", {extra}
                "last_commit": {{"id": "c4c79227ed610f1151f05bbc5be33b4f340d39c8"}},
                "source_branch": "f", "target_branch": "main"}}}}"#
            )
        };
        let action =
            |body: String| match parse(Forge::GitLab, "Merge Request Hook", body.as_bytes()) {
                Ok(Outcome::Hook(Hook::PullRequest(pr))) => pr.action,
                other => panic!("{other:?}"),
            };
        let moved = r#""oldrev": "9217710ce8c7e1eae7a5d1c45f6e43e1c769f866","#;
        assert_eq!(action(body(moved)), PullRequestAction::Updated);
        assert_eq!(action(body("")), PullRequestAction::Other("update".to_string()));
    }

    #[test]
    fn gitlab_system_hooks() {
        let push_file = "go-gitlab/testdata/webhooks/push.json";
        assert_eq!(
            hook(Forge::GitLab, "System Hook", push_file),
            push(
                Forge::GitLab,
                "mike/diaspora",
                "master",
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
            )
        );
        let mr = "go-gitlab/testdata/webhooks/merge_request.json";
        assert!(matches!(hook(Forge::GitLab, "System Hook", mr), Hook::PullRequest(_)));
        let tag = "go-gitlab/testdata/webhooks/tag_push.json";
        assert_eq!(ignored(Forge::GitLab, "System Hook", tag), "tag push v1.0.0");
        let body = br#"{"object_kind": "repository_update"}"#;
        assert!(matches!(
            parse(Forge::GitLab, "System Hook", body),
            Ok(Outcome::Ignored { reason }) if reason.contains("repository_update")
        ));
    }

    #[test]
    fn gitea_pushes() {
        assert_eq!(
            hook(Forge::Gitea, "push", "drone-go-scm/scm/driver/gitea/testdata/webhooks/push.json"),
            push(
                Forge::Gitea,
                "gogits/hello-world",
                "master",
                "4522cbcefc20728a5b72b3a86af35e608622c514"
            )
        );
        assert_eq!(
            hook(Forge::Gitea, "push", "go-playground-webhooks/testdata/gitea/push-event.json"),
            push(
                Forge::Gitea,
                "example/example",
                "master",
                "67b56589a45103f891bdee7c0546e5d40bc02001"
            )
        );
    }

    #[test]
    fn gitea_pull_requests() {
        let drone = "drone-go-scm/scm/driver/gitea/testdata/webhooks";
        for (file, action) in [
            ("pull_request_opened.json", PullRequestAction::Opened),
            ("pull_request_synchronized.json", PullRequestAction::Updated),
            ("pull_request_closed.json", PullRequestAction::Closed),
            ("pull_request_merged.json", PullRequestAction::Closed),
        ] {
            assert_eq!(
                hook(Forge::Gitea, "pull_request", &format!("{drone}/{file}")),
                Hook::PullRequest(PullRequestHook {
                    forge: Forge::Gitea,
                    repository: "jcitizen/my-repo".to_string(),
                    project_id: None,
                    number: 1,
                    action,
                    head_commit: "2eba238e33607c1fa49253182e9fff42baafa1eb".to_string(),
                    head_branch: "feature".to_string(),
                    base_branch: "master".to_string(),
                    head_repository: Some("jcitizen/my-repo".to_string()),
                }),
                "{file}"
            );
        }
        // A pull request from a fork: the repository is the base's.
        let fork = "go-playground-webhooks/testdata/gitea/pull-request-event.json";
        assert_eq!(
            hook(Forge::Gitea, "pull_request", fork),
            Hook::PullRequest(PullRequestHook {
                forge: Forge::Gitea,
                repository: "example/example".to_string(),
                project_id: None,
                number: 2,
                action: PullRequestAction::Opened,
                head_commit: "48e773f892a831faa47c0a160d1b7f0cd369ae2a".to_string(),
                head_branch: "master".to_string(),
                base_branch: "master".to_string(),
                head_repository: Some("example2/example".to_string()),
            })
        );
    }

    const FORGEJO: &str = "woodpecker/server/forge/forgejo/fixtures";

    #[test]
    fn forgejo_pushes() {
        let cases = [
            (
                "HookPush.json",
                "gordon/hello-world",
                "main",
                "ef98532add3b2feb7a137426bba1248724367df5",
            ),
            (
                "HookPushMulti.json",
                "Test-CI/multi-line-secrets",
                "main",
                "29be01c073851cf0db0c6a466e396b725a670453",
            ),
            (
                "HookPushBranch.json",
                "meisam/woodpecktester",
                "fdsafdsa",
                "28c3613ae62640216bea5e7dc71aa65356e4298b",
            ),
        ];
        for (file, repository, branch, commit) in cases {
            assert_eq!(
                hook(Forge::Forgejo, "push", &format!("{FORGEJO}/{file}")),
                push(Forge::Forgejo, repository, branch, commit),
                "{file}"
            );
        }
        // A tag is announced as `create`, which gitfleet does not act on.
        let reason = ignored(Forge::Forgejo, "create", &format!("{FORGEJO}/HookTag.json"));
        assert_eq!(reason, r#"Forgejo event "create" is not one gitfleet acts on"#);
    }

    #[test]
    fn forgejo_pull_requests() {
        let pr =
            |file: &str| match hook(Forge::Forgejo, "pull_request", &format!("{FORGEJO}/{file}")) {
                Hook::PullRequest(pr) => pr,
                other => panic!("{file}: {other:?}"),
            };
        assert_eq!(
            pr("HookPullRequest.json"),
            PullRequestHook {
                forge: Forge::Forgejo,
                repository: "gordon/hello-world".to_string(),
                project_id: None,
                number: 1,
                action: PullRequestAction::Opened,
                head_commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".to_string(),
                head_branch: "feature/changes".to_string(),
                base_branch: "main".to_string(),
                head_repository: None,
            }
        );
        assert_eq!(
            pr("HookPullRequestUpdated.json"),
            PullRequestHook {
                forge: Forge::Forgejo,
                repository: "Test-CI/multi-line-secrets".to_string(),
                project_id: None,
                number: 2,
                action: PullRequestAction::Updated,
                head_commit: "788ed8d02d3b7fcfcf6386dbcbca696aa1d4dc25".to_string(),
                head_branch: "test-patch-1".to_string(),
                base_branch: "main".to_string(),
                head_repository: Some("Test-CI/multi-line-secrets".to_string()),
            }
        );
        for file in ["HookPullRequestClosed.json", "HookPullRequestMerged.json"] {
            let closed = pr(file);
            assert_eq!(closed.action, PullRequestAction::Closed, "{file}");
            assert_eq!(closed.repository, "anbraten/test-repo");
            assert_eq!(closed.head_commit, "d555a5dd07f4d0148a58d4686ec381502ae6a2d4");
            assert_eq!(
                (closed.head_branch.as_str(), closed.base_branch.as_str()),
                ("anbraten-patch-1", "main")
            );
        }
    }

    #[test]
    fn generic_sync_requests() {
        let sync = |body: &str| parse(Forge::Generic, "", body.as_bytes());
        let hook = |branch: Option<&str>, commit: Option<&str>| {
            Ok(Outcome::Hook(Hook::Sync {
                branch: branch.map(str::to_string),
                commit: commit.map(str::to_string),
                app: None,
            }))
        };
        let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        assert_eq!(sync(""), hook(None, None));
        assert_eq!(sync(" \n"), hook(None, None));
        assert_eq!(sync("{}"), hook(None, None));
        assert_eq!(sync(r#"{"ref": "refs/heads/main"}"#), hook(Some("main"), None));
        assert_eq!(sync(&format!(r#"{{"after": "{sha}"}}"#)), hook(None, Some(sha)));
        assert_eq!(
            sync(&format!(r#"{{"ref": "refs/heads/main", "after": "{}"}}"#, sha.to_uppercase())),
            hook(Some("main"), Some(sha))
        );
        assert_eq!(
            sync(r#"{"app": "shop-2"}"#),
            Ok(Outcome::Hook(Hook::Sync {
                branch: None,
                commit: None,
                app: Some("shop-2".into())
            }))
        );
        assert_eq!(
            sync(r#"{"ref": "refs/tags/v1"}"#),
            Ok(Outcome::Ignored { reason: "tag push v1".to_string() })
        );
        let zeros = "0".repeat(40);
        assert_eq!(
            sync(&format!(r#"{{"ref": "refs/heads/old", "after": "{zeros}"}}"#)),
            Ok(Outcome::Ignored { reason: "branch old deleted".to_string() })
        );
    }

    #[test]
    fn generic_rejects_what_it_cannot_read() {
        let error = |body: &str| match parse(Forge::Generic, "", body.as_bytes()) {
            Err(error) => error.to_string(),
            other => panic!("{body}: {other:?}"),
        };
        assert!(error("{").starts_with("generic sync request delivery is not valid JSON"));
        assert_eq!(error("[]"), "generic sync request delivery: the document is not a JSON object");
        assert_eq!(error(r#"{"ref": 3}"#), "generic sync request delivery: ref is not a string");
        let not_a_name = "generic sync request delivery: app is not an app name (its folder under apps/: lower-case letters, digits, '-' and '_')";
        for bad in [r#"{"app": "Shop"}"#, r#"{"app": "../x"}"#, r#"{"app": ""}"#] {
            assert_eq!(error(bad), not_a_name, "{bad}");
        }
        assert_eq!(error(&format!(r#"{{"app": "{}"}}"#, "a".repeat(201))), not_a_name);
        assert_eq!(error(r#"{"app": 1}"#), "generic sync request delivery: app is not a string");
        assert_eq!(
            error(r#"{"after": "main"}"#),
            "generic sync request delivery: after is not a commit id (40 or 64 hex digits)"
        );
    }

    #[test]
    fn malformed_deliveries_name_the_missing_field() {
        let error = |forge, event, body: &str| match parse(forge, event, body.as_bytes()) {
            Err(error) => error.to_string(),
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(error(Forge::GitHub, "push", "{}"), "GitHub push delivery has no ref");
        assert_eq!(
            error(Forge::GitHub, "push", r#"{"ref": "refs/heads/main"}"#),
            "GitHub push delivery has no after"
        );
        assert_eq!(
            error(
                Forge::Gitea,
                "push",
                r#"{"ref": "refs/heads/main", "after": "4522cbcefc20728a5b72b3a86af35e608622c514"}"#
            ),
            "Gitea push delivery has no repository.full_name"
        );
        assert_eq!(
            error(Forge::GitHub, "pull_request", r#"{"action": "opened", "number": 1}"#),
            "GitHub pull_request delivery has no repository.full_name"
        );
        assert_eq!(
            error(
                Forge::GitLab,
                "Merge Request Hook",
                r#"{"object_attributes": {"action": "open"}}"#
            ),
            "GitLab Merge Request Hook delivery has no object_attributes.target.path_with_namespace"
        );
        assert_eq!(
            error(Forge::GitHub, "pull_request", r#"{"action": 5}"#),
            "GitHub pull_request delivery: action is not a string"
        );
        assert!(
            error(Forge::Forgejo, "push", "not json")
                .starts_with("Forgejo push delivery is not valid JSON")
        );
        assert!(
            error(Forge::GitHub, "ping", "").starts_with("GitHub ping delivery is not valid JSON")
        );
    }

    #[test]
    fn no_input_panics() {
        let bodies: [&[u8]; 8] = [
            b"",
            b"null",
            b"[1,2]",
            b"\"text\"",
            b"{\"ref\": null, \"after\": null}",
            b"{\"ref\": \"refs/heads/\", \"after\": \"x\"}",
            b"\xff\xfe",
            b"{\"pull_request\": {\"head\": []}, \"number\": -1, \"action\": \"opened\"}",
        ];
        let events = [
            (Forge::GitHub, "push"),
            (Forge::GitHub, "pull_request"),
            (Forge::GitHub, "ping"),
            (Forge::GitLab, "Push Hook"),
            (Forge::GitLab, "Merge Request Hook"),
            (Forge::GitLab, "System Hook"),
            (Forge::GitLab, "Tag Push Hook"),
            (Forge::Gitea, "push"),
            (Forge::Forgejo, "pull_request"),
            (Forge::Generic, ""),
        ];
        for body in bodies {
            for (forge, event) in events {
                let _ = parse(forge, event, body);
            }
        }
    }

    #[test]
    fn triage_keeps_what_concerns_the_watched_branch() {
        let on_master = Outcome::Hook(push(Forge::GitHub, "o/r", "master", "a"));
        assert_eq!(triage(on_master.clone(), "master"), on_master);
        assert_eq!(
            triage(on_master, "main"),
            Outcome::Ignored {
                reason: "push to branch master, not the watched branch main".to_string()
            }
        );
        let pr = Outcome::Hook(github_pr(PullRequestAction::Opened));
        assert_eq!(triage(pr.clone(), "master"), pr);
        assert_eq!(
            triage(pr, "main"),
            Outcome::Ignored {
                reason: "pull request #2 targets branch master, not the watched branch main"
                    .to_string()
            }
        );
        let ping = Outcome::Hook(Hook::Ping { forge: Forge::GitHub });
        assert_eq!(triage(ping.clone(), "main"), ping);
        let any = Outcome::Hook(Hook::Sync { branch: None, commit: None, app: None });
        assert_eq!(triage(any.clone(), "main"), any);
        let other =
            Outcome::Hook(Hook::Sync { branch: Some("dev".to_string()), commit: None, app: None });
        assert!(matches!(triage(other, "main"), Outcome::Ignored { .. }));
        let ignored = Outcome::Ignored { reason: "tag push v1".to_string() };
        assert_eq!(triage(ignored.clone(), "main"), ignored);
    }

    #[test]
    fn summaries() {
        let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        assert_eq!(push(Forge::GitHub, "o/r", "main", sha).summary(), "push to main at 6113728");
        assert_eq!(
            github_pr(PullRequestAction::Updated).summary(),
            "pull request #2 (updated) at ec26c3e"
        );
        assert_eq!(Hook::Ping { forge: Forge::Gitea }.summary(), "ping from Gitea");
        let sync = Hook::Sync {
            branch: Some("main".to_string()),
            commit: Some(sha.to_string()),
            app: None,
        };
        assert_eq!(sync.summary(), "sync request for main at 6113728");
        let retry = Hook::Sync { branch: None, commit: None, app: Some("shop".into()) };
        assert_eq!(retry.summary(), "sync request (retry app shop)");
        assert_eq!(sync.forge(), Forge::Generic);
    }
}
