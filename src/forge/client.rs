//! [`ForgeClient`]: keeps one plan-preview comment per pull request through a forge's REST
//! API. Lists every page of the pull request's comments, finds the one that starts with
//! [`MARKER`], and creates, edits or leaves it. Also lists a repository's open pull requests
//! ([`ForgeClient::open_pull_requests`]), so previews of closed ones can be pruned. What
//! differs per forge (paths, headers, how the next page is found) is in `github.rs`,
//! `gitlab.rs` and `gitea.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, Url};
use serde_json::Value;

use super::preview::MARKER;
use super::{ForgeError, gitea, github, gitlab};

/// Every request's limit, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// More pages than this (10,000 comments on GitHub or GitLab) is taken for a forge that never
/// stops paging: better an error than a second preview comment.
pub const MAX_PAGES: u32 = 100;

/// An error answer's text is cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// The forges gitfleet can comment on. Forgejo speaks Gitea's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
}

/// The pull request (GitLab: merge request) to comment on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRef {
    /// `owner/name`; on GitLab the project's `path_with_namespace` (`group/sub/project`).
    pub repository: String,
    /// GitLab's numeric project id, used instead of `repository` when set.
    pub project_id: Option<u64>,
    /// The pull request's number (GitLab: the merge request's `iid`).
    pub number: u64,
}

/// What [`ForgeClient::upsert_comment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    Created {
        id: u64,
    },
    Edited {
        id: u64,
    },
    /// The comment already said exactly this; nothing was written.
    Unchanged {
        id: u64,
    },
}

/// One comment as the list endpoints give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Comment {
    pub id: u64,
    pub body: String,
}

/// What a forge module needs to know to find the next page of a list.
pub(super) struct Page<'a> {
    /// The collection's URL, without a query.
    pub collection: &'a str,
    pub headers: &'a HeaderMap,
    /// 1-based number of the page just read.
    pub number: u32,
    /// Items on it.
    pub received: usize,
    /// How many items have been seen so far, this page included.
    pub seen: usize,
}

/// What one page of a list held: its items, those not seen on an earlier page, and how many
/// have been seen so far.
struct Taken {
    received: usize,
    new: usize,
    seen: usize,
}

/// A client for one forge, one token. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ForgeClient {
    kind: ForgeKind,
    /// The API base without a trailing `/`: `https://api.github.com`, `https://gitea.example`.
    base: String,
    base_url: Url,
    http: reqwest::Client,
    /// Kept to scrub it out of anything a forge echoes back.
    token: String,
}

impl std::fmt::Debug for ForgeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeClient")
            .field("kind", &self.kind)
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ForgeClient {
    /// A client for the forge whose REST API is at `api_base` (`https://api.github.com`,
    /// `https://gitlab.com`, `https://gitea.example/`; GitHub Enterprise:
    /// `https://ghe.example/api/v3`). `api_base` must be `http` or `https`, with no user,
    /// password, query or fragment.
    pub fn new(kind: ForgeKind, api_base: &str, token: String) -> Result<Self, ForgeError> {
        let base_url = Url::parse(api_base)
            .map_err(|e| ForgeError::Invalid(format!("API base {api_base:?}: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(ForgeError::Invalid(format!(
                "API base {api_base:?} is not an http:// or https:// URL with a host"
            )));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(ForgeError::Invalid(
                "the API base must not carry credentials; pass the token instead".to_string(),
            ));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(ForgeError::Invalid(format!(
                "API base {api_base:?} must not have a query or a fragment"
            )));
        }
        if token.trim().is_empty() {
            return Err(ForgeError::Invalid("the forge token is empty".to_string()));
        }
        if let Some(problem) = plain_http_to_remote(&base_url) {
            return Err(ForgeError::Invalid(format!("the forge token is not sent to {problem}")));
        }
        let base = base_url.as_str().trim_end_matches('/').to_string();

        let mut headers = HeaderMap::new();
        let user_agent = concat!("gitfleet/", env!("CARGO_PKG_VERSION"));
        headers.insert(USER_AGENT, HeaderValue::from_static(user_agent));
        let (name, value) = match kind {
            ForgeKind::GitHub => {
                headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
                headers.insert(
                    HeaderName::from_static("x-github-api-version"),
                    HeaderValue::from_static("2022-11-28"),
                );
                (reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            }
            ForgeKind::GitLab => {
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
                (HeaderName::from_static("private-token"), token.clone())
            }
            ForgeKind::Gitea => {
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
                (reqwest::header::AUTHORIZATION, format!("token {token}"))
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            ForgeError::Invalid("the forge token has characters a header cannot carry".into())
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry the token (PRIVATE-TOKEN is not stripped) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForgeError::Invalid(format!("cannot set up the HTTP client: {e}")))?;
        Ok(ForgeClient { kind, base, base_url, http, token })
    }

    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// Makes `body` the pull request's plan-preview comment: edits the comment that starts
    /// with [`MARKER`] if its text differs, creates one if there is none, and writes nothing
    /// if it already says exactly `body` (line endings and trailing whitespace aside).
    ///
    /// `body` should start with [`MARKER`] (as [`super::render_comment`]'s output does), or the
    /// next call will not find this comment and will create another.
    pub async fn upsert_comment(
        &self,
        pr: &PullRequestRef,
        body: &str,
    ) -> Result<CommentAction, ForgeError> {
        let collection = self.collection(pr)?;
        match self.find_marked(&collection).await? {
            None => {
                let id = self.create(&collection, body).await?;
                Ok(CommentAction::Created { id })
            }
            Some(existing) if same_text(&existing.body, body) => {
                Ok(CommentAction::Unchanged { id: existing.id })
            }
            Some(existing) => {
                self.edit(pr, existing.id, body).await?;
                Ok(CommentAction::Edited { id: existing.id })
            }
        }
    }

    /// The URL of the pull request's comments, without a query.
    fn collection(&self, pr: &PullRequestRef) -> Result<String, ForgeError> {
        match self.kind {
            ForgeKind::GitHub => github::comments(&self.base, pr),
            ForgeKind::GitLab => gitlab::notes(&self.base, pr),
            ForgeKind::Gitea => gitea::comments(&self.base, pr),
        }
    }

    /// The numbers of the open pull requests (GitLab: the `iid`s of the open merge requests)
    /// of `repository` (`owner/name`; GitLab `group/sub/name`), reading every page.
    pub async fn open_pull_requests(&self, repository: &str) -> Result<BTreeSet<u64>, ForgeError> {
        let (collection, query) = match self.kind {
            ForgeKind::GitHub => (github::pulls(&self.base, repository)?, "state=open"),
            ForgeKind::GitLab => (gitlab::merge_requests(&self.base, repository)?, "state=opened"),
            ForgeKind::Gitea => (gitea::pulls(&self.base, repository)?, "state=open"),
        };
        let key = if self.kind == ForgeKind::GitLab { "iid" } else { "number" };
        let mut open = BTreeSet::new();
        let endless = "pages of open pull requests; none are taken as closed";
        self.each_page(&collection, query, endless, |bytes| {
            let numbers = parse_numbers(bytes, key)?;
            let received = numbers.len();
            let new = numbers.into_iter().filter(|n| open.insert(*n)).count();
            Ok(Taken { received, new, seen: open.len() })
        })
        .await?;
        Ok(open)
    }

    /// The oldest (lowest id) comment that starts with [`MARKER`], reading every page.
    async fn find_marked(&self, collection: &str) -> Result<Option<Comment>, ForgeError> {
        let mut seen = BTreeSet::new();
        let mut found: Option<Comment> = None;
        let endless = "pages of comments; not sure there is no preview yet";
        self.each_page(collection, "", endless, |bytes| {
            let comments = parse_comments(bytes)?;
            let received = comments.len();
            let mut new = 0;
            for comment in comments {
                if !seen.insert(comment.id) {
                    continue;
                }
                new += 1;
                if is_marked(&comment.body) && found.as_ref().is_none_or(|f| comment.id < f.id) {
                    found = Some(comment);
                }
            }
            Ok(Taken { received, new, seen: seen.len() })
        })
        .await?;
        Ok(found)
    }

    /// Reads the list at `collection` page by page (each page's URL with `query`, such as
    /// `state=open`, after the paging parameters), handing each page's body to `take`.
    /// Stops after the last page, or on a page with nothing new (the forge ignores paging or
    /// repeats itself); more than [`MAX_PAGES`] pages is an error saying `endless`.
    async fn each_page(
        &self,
        collection: &str,
        query: &str,
        endless: &str,
        mut take: impl FnMut(&[u8]) -> Result<Taken, String>,
    ) -> Result<(), ForgeError> {
        let mut url = match self.kind {
            ForgeKind::GitHub => github::first_page(collection),
            ForgeKind::GitLab => gitlab::first_page(collection),
            ForgeKind::Gitea => gitea::first_page(collection),
        };
        let with_query = |url: String| {
            let has = url.split(['?', '&']).any(|part| part == query);
            if query.is_empty() || has { url } else { format!("{url}&{query}") }
        };
        url = with_query(url);
        for number in 1..=MAX_PAGES {
            let (headers, bytes) = self.send(Method::GET, &url, None).await?;
            let Taken { received, new, seen } =
                take(&bytes).map_err(|reason| answer_error(&Method::GET, &url, reason))?;
            if new == 0 {
                return Ok(());
            }
            let page = Page { collection, headers: &headers, number, received, seen };
            let next = match self.kind {
                ForgeKind::GitHub => github::next_page(&page),
                ForgeKind::GitLab => gitlab::next_page(&page),
                ForgeKind::Gitea => gitea::next_page(&page),
            };
            match next {
                None => return Ok(()),
                Some(next) => {
                    self.check_origin(&next).map_err(|reason| {
                        answer_error(&Method::GET, &url, format!("next page {next:?}: {reason}"))
                    })?;
                    url = with_query(next);
                }
            }
        }
        Err(answer_error(&Method::GET, collection, format!("more than {MAX_PAGES} {endless}")))
    }

    async fn create(&self, collection: &str, body: &str) -> Result<u64, ForgeError> {
        let (_, bytes) = self.send(Method::POST, collection, Some(body)).await?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
            answer_error(&Method::POST, collection, format!("the comment was created, but: {e}"))
        })?;
        answer.get("id").and_then(Value::as_u64).ok_or_else(|| {
            answer_error(&Method::POST, collection, "the created comment has no numeric `id`")
        })
    }

    async fn edit(&self, pr: &PullRequestRef, id: u64, body: &str) -> Result<(), ForgeError> {
        let (method, url) = match self.kind {
            ForgeKind::GitHub => (Method::PATCH, github::comment(&self.base, pr, id)?),
            ForgeKind::GitLab => (Method::PUT, gitlab::note(&self.base, pr, id)?),
            ForgeKind::Gitea => (Method::PATCH, gitea::comment(&self.base, pr, id)?),
        };
        self.send(method, &url, Some(body)).await?;
        Ok(())
    }

    /// One request; a body is sent as `{"body": ...}`. An error status becomes
    /// [`ForgeError::Status`] with the forge's message.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<(HeaderMap, Vec<u8>), ForgeError> {
        let transport = |source: reqwest::Error| ForgeError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: source.without_url(),
        };
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(&serde_json::json!({ "body": body }));
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?.to_vec();
        if !status.is_success() {
            return Err(ForgeError::Status {
                method: method.to_string(),
                url: url.to_string(),
                status: status.as_u16(),
                message: redact(&error_message(&bytes, status), &self.token),
            });
        }
        Ok((headers, bytes))
    }

    /// A next-page URL must lead to the same scheme, host and port as the API base: the token
    /// goes with every request.
    fn check_origin(&self, url: &str) -> Result<(), String> {
        let next = Url::parse(url).map_err(|e| e.to_string())?;
        if next.origin() != self.base_url.origin() {
            return Err(format!("it leaves {}", self.base_url.origin().ascii_serialization()));
        }
        Ok(())
    }
}

fn answer_error(method: &Method, url: &str, reason: impl Into<String>) -> ForgeError {
    ForgeError::Answer { method: method.to_string(), url: url.to_string(), reason: reason.into() }
}

/// The comments of one list page: a JSON array of objects with a numeric `id` and a `body`
/// (an entry without an id cannot be edited and is skipped; a missing body is empty).
pub(super) fn parse_comments(bytes: &[u8]) -> Result<Vec<Comment>, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON list of comments: {e}"))?;
    let Value::Array(items) = value else {
        return Err(format!("expected a JSON list of comments, got {}", kind_of(&value)));
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let id = item.get("id")?.as_u64()?;
            let body = item.get("body").and_then(Value::as_str).unwrap_or_default();
            Some(Comment { id, body: body.to_string() })
        })
        .collect())
}

/// The numbers at `key` (`number`, GitLab `iid`) of a list page's objects (an entry without
/// one is skipped).
fn parse_numbers(bytes: &[u8], key: &str) -> Result<Vec<u64>, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JSON list of pull requests: {e}"))?;
    let Value::Array(items) = value else {
        return Err(format!("expected a JSON list of pull requests, got {}", kind_of(&value)));
    };
    Ok(items.iter().filter_map(|item| item.get(key)?.as_u64()).collect())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether a comment is a plan preview: it starts with the marker (a reply quoting one does
/// not, as its first line starts with `>`).
pub(super) fn is_marked(body: &str) -> bool {
    body.trim_start().starts_with(MARKER)
}

/// Forges may turn `\r\n` into `\n` and drop trailing whitespace; neither is a change.
fn same_text(stored: &str, wanted: &str) -> bool {
    stored.replace("\r\n", "\n").trim_end() == wanted.replace("\r\n", "\n").trim_end()
}

/// What a forge said in an error answer: GitHub, GitLab and Gitea put it in `message` (GitLab
/// sometimes as an object of field errors), OAuth errors in `error` and `error_description`;
/// anything else is shown as text, cut short.
pub(super) fn error_message(bytes: &[u8], status: reqwest::StatusCode) -> String {
    let fallback = || {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_string()
        } else {
            text.to_string()
        }
    };
    let message = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => {
            let text = |key: &str| match fields.get(key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            match (text("message"), text("error"), text("error_description")) {
                (Some(message), _, _) => message,
                (None, Some(error), Some(description)) => format!("{error}: {description}"),
                (None, Some(error), None) => error,
                (None, None, _) => fallback(),
            }
        }
        _ => fallback(),
    };
    cut(&message, MAX_MESSAGE_CHARS)
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// Why a secret (token, password) must not travel to `url`: it is plain `http://` to a host
/// other than loopback (`127.0.0.0/8`, `::1`, `localhost`), where anyone on the path reads it.
/// `None` for `https://`, for loopback, and for other schemes (ssh, git).
pub fn plain_http_to_remote(url: &Url) -> Option<String> {
    if !url.scheme().eq_ignore_ascii_case("http") {
        return None;
    }
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
    };
    (!loopback).then(|| {
        format!(
            "{host} over plain http:// (readable by anyone on the way; only loopback is allowed): use https://"
        )
    })
}

/// `text` with every occurrence of the token replaced.
pub(super) fn redact(text: &str, token: &str) -> String {
    if token.is_empty() { text.to_string() } else { text.replace(token, "<redacted>") }
}

/// `owner/name` split in two, each part non-empty and free of `/`.
pub(super) fn owner_and_name(repository: &str) -> Result<(&str, &str), ForgeError> {
    match repository.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((owner, name))
        }
        _ => Err(ForgeError::Invalid(format!(
            "repository {repository:?} is not of the form owner/name"
        ))),
    }
}

/// One path segment, percent-encoded: everything but `A-Z a-z 0-9 - . _ ~`.
pub(super) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn error_messages_from_each_forge() {
        let github =
            br#"{"message":"Bad credentials","documentation_url":"https://docs","status":"401"}"#;
        assert_eq!(error_message(github, StatusCode::UNAUTHORIZED), "Bad credentials");
        let gitlab = br#"{"message":{"note":["can't be blank"]}}"#;
        assert_eq!(
            error_message(gitlab, StatusCode::BAD_REQUEST),
            r#"{"note":["can't be blank"]}"#
        );
        let oauth = br#"{"error":"invalid_token","error_description":"Token was revoked"}"#;
        assert_eq!(
            error_message(oauth, StatusCode::UNAUTHORIZED),
            "invalid_token: Token was revoked"
        );
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>", StatusCode::BAD_GATEWAY),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(error_message(b"", StatusCode::BAD_GATEWAY), "Bad Gateway");
        assert_eq!(error_message(b"[1]", StatusCode::NOT_FOUND), "[1]");
        let long = "x".repeat(5000);
        assert_eq!(error_message(long.as_bytes(), StatusCode::BAD_GATEWAY).chars().count(), 1001);
    }

    #[test]
    fn the_token_is_scrubbed_from_what_a_forge_echoes() {
        assert_eq!(
            redact("bad token s3cr3t (s3cr3t)", "s3cr3t"),
            "bad token <redacted> (<redacted>)"
        );
        assert_eq!(redact("nothing", ""), "nothing");
    }

    #[test]
    fn odd_comment_lists_are_errors_or_skipped_never_panics() {
        assert!(parse_comments(b"<html>").is_err());
        assert!(parse_comments(br#"{"message":"x"}"#).unwrap_err().contains("an object"));
        let comments = parse_comments(
            br#"[{"id":1,"body":"a"},{"id":"2","body":"b"},{"body":"c"},{"id":4},{"id":5,"body":null},7]"#,
        )
        .unwrap();
        assert_eq!(
            comments,
            vec![
                Comment { id: 1, body: "a".into() },
                Comment { id: 4, body: String::new() },
                Comment { id: 5, body: String::new() },
            ]
        );
    }

    #[test]
    fn only_a_comment_that_starts_with_the_marker_is_ours() {
        assert!(is_marked(&format!("{MARKER}\nplan")));
        assert!(is_marked(&format!("\n {MARKER}\nplan")));
        assert!(!is_marked(&format!("> {MARKER}\n> plan\n\nwhy?")));
        assert!(!is_marked("plan"));
    }

    #[test]
    fn line_endings_and_trailing_space_are_not_changes() {
        assert!(same_text("a\r\nb\n", "a\nb"));
        assert!(!same_text("a\nb", "a\nc"));
        assert!(!same_text(" a", "a"));
    }

    #[test]
    fn segments_and_repositories() {
        assert_eq!(encode_segment("group/sub project"), "group%2Fsub%20project");
        assert_eq!(encode_segment("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(owner_and_name("acme/shop").unwrap(), ("acme", "shop"));
        for bad in ["acme", "/shop", "acme/", "a/b/c", ""] {
            assert!(owner_and_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_and_the_token_never_shows() {
        let token = "s3cr3t-token".to_string();
        for bad in ["ftp://x", "not a url", "https://u:p@x", "https://x/?q=1", "https://x/#f"] {
            let err = ForgeClient::new(ForgeKind::GitHub, bad, token.clone()).unwrap_err();
            assert!(!err.to_string().contains(&token), "{err}");
        }
        assert!(ForgeClient::new(ForgeKind::Gitea, "https://x", " ".into()).is_err());
        assert!(ForgeClient::new(ForgeKind::Gitea, "https://x", "a\nb".into()).is_err());
        let client =
            ForgeClient::new(ForgeKind::GitLab, "https://gitlab.example/", token.clone()).unwrap();
        assert_eq!(client.base, "https://gitlab.example");
        assert!(!format!("{client:?}").contains(&token));
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn tokens_go_over_plain_http_only_to_loopback() {
        for url in [
            "https://api.github.com",
            "https://10.0.0.1:3000/api",
            "http://127.0.0.1:8080",
            "http://127.3.2.1/api",
            "http://[::1]:3000",
            "http://localhost:3000",
            "http://LOCALHOST./x",
            "ssh://git@example.com/o/r.git",
        ] {
            assert_eq!(plain_http_to_remote(&Url::parse(url).unwrap()), None, "{url}");
        }
        for (url, host) in [
            ("http://gitea.example:3000", "gitea.example"),
            ("http://10.0.0.1/api", "10.0.0.1"),
            ("http://128.0.0.1/", "128.0.0.1"),
            ("http://[::2]/", "[::2]"),
            ("http://localhost.evil.example/", "localhost.evil.example"),
        ] {
            let problem = plain_http_to_remote(&Url::parse(url).unwrap()).expect(url);
            assert!(problem.starts_with(host), "{problem}");
            assert!(problem.contains("plain http://"), "{problem}");
        }
    }

    #[test]
    fn the_forge_client_refuses_a_remote_plain_http_api() {
        let error = ForgeClient::new(ForgeKind::Gitea, "http://gitea.example:3000", "t".into())
            .expect_err("refused");
        let shown = error.to_string();
        assert!(shown.contains("gitea.example over plain http://"), "{shown}");
        assert!(ForgeClient::new(ForgeKind::Gitea, "http://127.0.0.1:3000", "t".into()).is_ok());
        assert!(ForgeClient::new(ForgeKind::Gitea, "https://gitea.example", "t".into()).is_ok());
    }
}
