//! The HTTP receivers: an axum [`Router`] with one `POST` route per forge that checks the
//! delivery's size and signature, reads it, keeps what concerns the watched branch, hands the
//! [`Hook`] to a sink and answers at once.
//!
//! # Answers
//!
//! | status | when | body |
//! | --- | --- | --- |
//! | 200 | accepted: a ping, a push to the watched branch, a pull request into it, a sync request | `{"accepted": "<summary>"}` |
//! | 202 | well signed and well formed, but nothing to do (other branch, tag, unknown event, another repository than [`ReceiverSettings::repository`], a delivery id already taken) | `{"ignored": "<reason>"}` |
//! | 400 | well signed, but not readable (no event header, a missing field, not JSON) | `{"error": "<reason>"}` |
//! | 401 | signature or token missing or wrong | `{"error": "<reason>"}` |
//! | 404 | the route's secret is not configured | `{"error": "..."}` |
//! | 422 | well signed and well formed, but the controller refuses what it asks (a retry of an app it does not know); the reason names it | `{"error": "<reason>"}` |
//! | 413 | the body is larger than [`ReceiverSettings::max_body_bytes`]: refused on its declared `Content-Length` before any of it is read, or as soon as a streamed body passes the limit; the signature is checked only on a body read whole | `{"error": "..."}` |
//!
//! # Guarantees
//!
//! * The sink is called only for an accepted delivery, after its signature was checked, once
//!   per delivery, from the request's task. A delivery about another repository never reaches
//!   it, nor does one whose delivery id (`X-GitHub-Delivery`, `X-Gitea-Delivery` /
//!   `X-Forgejo-Delivery`, `X-Gitlab-Event-UUID`) was among the last
//!   [`REMEMBERED_DELIVERIES`](super::deliveries::REMEMBERED_DELIVERIES) taken (`"duplicate delivery"`). It must be cheap and must not block (it enqueues a
//!   trigger; coalescing and the sync itself happen elsewhere). Nothing slow is awaited here.
//! * Secrets, tokens and signature values are never logged nor echoed. A refused signature is
//!   logged (`warn`) with the forge and the peer address.
//! * No route is served without a secret: a receiver whose secret is unset or empty answers
//!   404, so an unconfigured forge cannot trigger syncs.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::deliveries::RecentDeliveries;
use super::payload::{self, Forge, Hook, Outcome};
use super::signature;

/// Bodies larger than this are refused unless the settings say otherwise (1 MiB; GitHub caps
/// its deliveries at 25 MB, but gitfleet reads only a few fields from a push).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the receivers need to know, parsed once and passed in.
#[derive(Clone)]
pub struct ReceiverSettings {
    /// The watched branch: pushes to other branches, and pull requests into them, are ignored.
    pub branch: String,
    /// The watched repository's path on its forge, normalised by [`repository_path`]
    /// (`owner/name`, lowercase; GitLab: `group/sub/name`). A push or pull request about any
    /// other repository is ignored. `None` (a local path, or unset): not checked.
    pub repository: Option<String>,
    /// Serves `POST /hooks/github` when set.
    pub github_secret: Option<String>,
    /// Serves `POST /hooks/gitlab` when set.
    pub gitlab_token: Option<String>,
    /// Serves `POST /hooks/gitea`, for Gitea and Forgejo, when set.
    pub gitea_secret: Option<String>,
    /// Serves `POST /hooks/generic` when set.
    pub generic_secret: Option<String>,
    pub max_body_bytes: usize,
}

impl ReceiverSettings {
    /// Settings for `branch` with no receiver configured and the default body limit.
    pub fn new(branch: impl Into<String>) -> Self {
        ReceiverSettings {
            branch: branch.into(),
            repository: None,
            github_secret: None,
            gitlab_token: None,
            gitea_secret: None,
            generic_secret: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The secret of `route`'s receiver; an empty one counts as unset.
    fn secret(&self, route: Route) -> Option<&str> {
        let secret = match route {
            Route::GitHub => &self.github_secret,
            Route::GitLab => &self.gitlab_token,
            Route::Gitea => &self.gitea_secret,
            Route::Generic => &self.generic_secret,
        };
        secret.as_deref().filter(|secret| !secret.is_empty())
    }

    /// Whether `hook` concerns the watched repository (hooks that name none do).
    fn is_watched(&self, hook: &Hook) -> bool {
        let named = match hook {
            Hook::Push { repository, .. } => repository,
            Hook::PullRequest(pr) => &pr.repository,
            Hook::Ping { .. } | Hook::Sync { .. } => return true,
        };
        let Some(watched) = &self.repository else { return true };
        let named = named.trim_matches('/').to_lowercase();
        // A forge served under a path prefix (https://host/gitlab/group/name) names the
        // repository without the prefix.
        named.contains('/')
            && (*watched == named
                || watched.strip_suffix(named.as_str()).is_some_and(|rest| rest.ends_with('/')))
    }
}

/// A repository URL's path on its forge, as webhooks name it: `owner/name` (GitLab:
/// `group/sub/name`), lowercase, without `.git`. For `https://`, `http://`, `ssh://`,
/// `git://` URLs and scp-like `user@host:owner/name.git`; `None` for a local path, a
/// `file://` URL, or a path with fewer than two segments.
pub fn repository_path(url: &str) -> Option<String> {
    let url = url.trim();
    let path = if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        let (_authority, path) = rest.split_once('/')?;
        path
    } else {
        // scp-like: [user@]host:path, the colon before any slash.
        let (host, path) = url.split_once(':')?;
        if host.is_empty() || host.contains('/') {
            return None;
        }
        path
    };
    let path = path.split(['?', '#']).next().unwrap_or_default().trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    let segments = path.split('/').filter(|segment| !segment.is_empty()).count();
    (segments >= 2 && !path.contains("//")).then(|| path.to_lowercase())
}

/// Shows which secrets are set, never what they are.
impl fmt::Debug for ReceiverSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |secret: &Option<String>| if secret.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ReceiverSettings")
            .field("branch", &self.branch)
            .field("repository", &self.repository)
            .field("github_secret", &set(&self.github_secret))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("gitea_secret", &set(&self.gitea_secret))
            .field("generic_secret", &set(&self.generic_secret))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Where accepted hooks go. Called from the request's task: it must return at once. It may
/// refuse a hook it cannot act on (a retry of an unknown app) with the reason, which the
/// sender gets in a 422 answer.
pub type HookSink = Arc<dyn Fn(Hook) -> Result<(), String> + Send + Sync>;

/// The receivers' routes: `POST /hooks/github`, `/hooks/gitlab`, `/hooks/gitea` (Gitea or
/// Forgejo, told apart by their headers) and `/hooks/generic`.
///
/// The peer address in the logs comes from axum's [`ConnectInfo`]: serve the router with
/// `into_make_service_with_connect_info::<SocketAddr>()` to have it (without, the peer is
/// logged as `unknown`).
pub fn router(settings: Arc<ReceiverSettings>, sink: HookSink) -> Router {
    let limit = settings.max_body_bytes;
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .route("/hooks/gitea", post(gitea))
        .route("/hooks/generic", post(generic))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Receivers { settings, sink, recent: Arc::default() })
}

#[derive(Clone)]
struct Receivers {
    settings: Arc<ReceiverSettings>,
    sink: HookSink,
    recent: Arc<RecentDeliveries>,
}

/// A route, before the request tells Gitea from Forgejo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    GitHub,
    GitLab,
    Gitea,
    Generic,
}

async fn github(State(receivers): State<Receivers>, request: Request) -> Response {
    receive(&receivers, Route::GitHub, request).await
}

async fn gitlab(State(receivers): State<Receivers>, request: Request) -> Response {
    receive(&receivers, Route::GitLab, request).await
}

async fn gitea(State(receivers): State<Receivers>, request: Request) -> Response {
    receive(&receivers, Route::Gitea, request).await
}

async fn generic(State(receivers): State<Receivers>, request: Request) -> Response {
    receive(&receivers, Route::Generic, request).await
}

const FORGEJO_EVENT: &str = "X-Forgejo-Event";

async fn receive(receivers: &Receivers, route: Route, request: Request) -> Response {
    let settings = &receivers.settings;
    let headers = request.headers().clone();
    let forge = match route {
        Route::GitHub => Forge::GitHub,
        Route::GitLab => Forge::GitLab,
        // Forgejo also sends the X-Gitea-* headers; its own name it alone.
        Route::Gitea
            if headers.contains_key(FORGEJO_EVENT)
                || headers.contains_key(signature::signature_header(Forge::Forgejo)) =>
        {
            Forge::Forgejo
        }
        Route::Gitea => Forge::Gitea,
        Route::Generic => Forge::Generic,
    };
    let Some(secret) = settings.secret(route) else {
        return answer(
            StatusCode::NOT_FOUND,
            "error",
            format!("the {forge} receiver is not configured"),
        );
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0.to_string());

    // The body is read only up to the limit, before any signature check: a declared length
    // over it is refused before a byte of the body is read, and a body that streams past it
    // (chunked, or lying about its length) is refused as soon as it does.
    let limit = settings.max_body_bytes;
    let too_large = || {
        tracing::warn!(%forge, %peer, limit, "webhook delivery too large");
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            "error",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(error) => {
            tracing::warn!(%forge, %peer, %error, "cannot read webhook delivery");
            return answer(StatusCode::BAD_REQUEST, "error", "the body could not be read");
        }
    };

    let value = signature_value(&headers, forge);
    if let Err(error) = signature::verify(forge, secret.as_bytes(), &body, value) {
        tracing::warn!(%forge, %peer, reason = %error, "webhook delivery refused: bad signature");
        return answer(StatusCode::UNAUTHORIZED, "error", error.to_string());
    }

    let event = match event_of(&headers, forge) {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(%forge, %peer, %reason, "webhook delivery refused");
            return answer(StatusCode::BAD_REQUEST, "error", reason);
        }
    };
    let outcome = match payload::parse(forge, event, &body) {
        Ok(outcome) => payload::triage(outcome, &settings.branch),
        Err(error) => {
            tracing::warn!(%forge, %peer, %error, "webhook delivery refused: malformed payload");
            return answer(StatusCode::BAD_REQUEST, "error", error.to_string());
        }
    };
    match outcome {
        Outcome::Hook(hook) if !settings.is_watched(&hook) => {
            tracing::info!(%forge, %peer, hook = %hook.summary(), "webhook about another repository ignored");
            answer(StatusCode::ACCEPTED, "ignored", "another repository than the watched one")
        }
        Outcome::Hook(hook)
            if delivery_id(&headers, forge)
                .is_some_and(|id| !receivers.recent.first_time(&format!("{forge}:{id}"))) =>
        {
            tracing::info!(%forge, %peer, hook = %hook.summary(), "duplicate webhook delivery ignored");
            answer(StatusCode::ACCEPTED, "ignored", "duplicate delivery")
        }
        Outcome::Hook(hook) => {
            let summary = hook.summary();
            match (receivers.sink)(hook) {
                Ok(()) => {
                    tracing::info!(%forge, %peer, hook = %summary, "webhook accepted");
                    answer(StatusCode::OK, "accepted", summary)
                }
                Err(reason) => {
                    tracing::info!(%forge, %peer, hook = %summary, %reason, "webhook refused");
                    answer(StatusCode::UNPROCESSABLE_ENTITY, "error", reason)
                }
            }
        }
        Outcome::Ignored { reason } => {
            tracing::debug!(%forge, %peer, %reason, "webhook ignored");
            answer(StatusCode::ACCEPTED, "ignored", reason)
        }
    }
}

/// The signature header's raw bytes. Forgejo sends its own header and Gitea's, with the same
/// value; either is taken.
fn signature_value(headers: &HeaderMap, forge: Forge) -> Option<&[u8]> {
    let own = headers.get(signature::signature_header(forge));
    let value = match forge {
        Forge::Forgejo => own.or_else(|| headers.get(signature::signature_header(Forge::Gitea))),
        _ => own,
    };
    value.map(|value| value.as_bytes())
}

/// The delivery's id, if the forge sent one (Forgejo: its own header, else Gitea's).
fn delivery_id(headers: &HeaderMap, forge: Forge) -> Option<&str> {
    let value = match forge {
        Forge::GitHub => headers.get("X-GitHub-Delivery"),
        Forge::GitLab => headers.get("X-Gitlab-Event-UUID"),
        Forge::Gitea => headers.get("X-Gitea-Delivery"),
        Forge::Forgejo => {
            headers.get("X-Forgejo-Delivery").or_else(|| headers.get("X-Gitea-Delivery"))
        }
        Forge::Generic => None,
    };
    value.and_then(|value| value.to_str().ok()).filter(|id| !id.is_empty())
}

/// The event kind from the forge's event header (Forgejo: its own, else Gitea's); the
/// generic endpoint has none.
fn event_of(headers: &HeaderMap, forge: Forge) -> Result<&str, String> {
    let Some(name) = forge.event_header() else { return Ok("") };
    let value = match forge {
        Forge::Forgejo => headers.get(name).or_else(|| headers.get("X-Gitea-Event")),
        _ => headers.get(name),
    };
    match value {
        None => Err(format!("no {name} header")),
        Some(value) => value.to_str().map_err(|_| format!("the {name} header is not text")),
    }
}

fn answer(status: StatusCode, key: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ key: message.into() }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secrets() {
        let mut settings = ReceiverSettings::new("main");
        settings.github_secret = Some("hunter2".to_string());
        settings.gitlab_token = Some(String::new());
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("github_secret: \"<set>\""), "{shown}");
        assert!(shown.contains("gitea_secret: \"<unset>\""), "{shown}");
    }

    #[test]
    fn repository_paths_from_urls() {
        let cases = [
            ("https://github.com/Owner/Repo.git", Some("owner/repo")),
            ("https://token@github.com/owner/repo/", Some("owner/repo")),
            ("http://127.0.0.1:3000/owner/repo", Some("owner/repo")),
            ("ssh://git@gitlab.example:2222/group/sub/name.git", Some("group/sub/name")),
            ("git@github.com:owner/repo.git", Some("owner/repo")),
            ("/srv/fleet", None),
            ("file:///srv/fleet", None),
            ("https://github.com/owner", None),
            ("relative/dir", None),
        ];
        for (url, path) in cases {
            assert_eq!(repository_path(url).as_deref(), path, "{url}");
        }
    }

    #[test]
    fn only_the_watched_repository_is_watched() {
        let push = |repository: &str| Hook::Push {
            forge: Forge::GitHub,
            repository: repository.to_string(),
            branch: "main".to_string(),
            commit: "0".repeat(40),
        };
        let mut settings = ReceiverSettings::new("main");
        assert!(settings.is_watched(&push("anyone/anything")));
        settings.repository = repository_path("https://git.example/gitlab/Group/Repo.git");
        assert!(settings.is_watched(&push("group/repo")));
        assert!(settings.is_watched(&push("Gitlab/Group/Repo")));
        assert!(!settings.is_watched(&push("other/repo")));
        assert!(!settings.is_watched(&push("roup/repo")));
        assert!(!settings.is_watched(&push("repo")));
        assert!(settings.is_watched(&Hook::Ping { forge: Forge::GitHub }));
    }

    #[test]
    fn an_empty_secret_leaves_the_route_unconfigured() {
        let mut settings = ReceiverSettings::new("main");
        settings.gitlab_token = Some(String::new());
        settings.github_secret = Some("s".to_string());
        assert_eq!(settings.secret(Route::GitLab), None);
        assert_eq!(settings.secret(Route::GitHub), Some("s"));
        assert_eq!(settings.secret(Route::Generic), None);
    }

    #[test]
    fn forgejo_headers_fall_back_to_gitea_ones() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Gitea-Event", "push".parse().unwrap());
        headers.insert("X-Gitea-Signature", "abc".parse().unwrap());
        assert_eq!(event_of(&headers, Forge::Forgejo), Ok("push"));
        assert_eq!(signature_value(&headers, Forge::Forgejo), Some(&b"abc"[..]));
        assert_eq!(event_of(&headers, Forge::GitHub), Err("no X-GitHub-Event header".to_string()));
        assert_eq!(event_of(&headers, Forge::Generic), Ok(""));
    }
}
