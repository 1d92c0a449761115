//! The plan-preview comment against a fake of each forge: a real HTTP server on 127.0.0.1 that
//! answers GitHub's, GitLab's or Gitea's comment API as the forge would (pages, headers, error
//! bodies), and its list of open pull requests, and records every request, so each test
//! checks the exact list of requests made.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gitfleet::forge::{
    CommentAction, ForgeClient, ForgeError, ForgeKind, MARKER, Preview, PreviewFailure,
    PreviewOutcome, PullRequestRef, render_comment,
};
use gitfleet::model::Diagnostic;
use gitfleet::model::position::Position;
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "gf-test-token-7f3a9c";
const WRONG_TOKEN: &str = "gf-wrong-token-0b1d2e";
const BOT: &str = "gitfleet-bot";
/// The id the fake gives the first comment created.
pub(crate) const CREATED_ID: u64 = 9001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

/// A misbehaving forge, for the tests of odd answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Odd {
    #[default]
    None,
    /// The comment list is an HTML page.
    HtmlList,
    /// A created comment comes back without an id.
    CreatedWithoutId,
    /// The next-page link points at another origin.
    ForeignLink,
    /// Gitea as it is: `page` and `limit` ignored, every comment at once.
    GiteaIgnoresPaging,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recorded {
    method: String,
    /// Path and query, as sent.
    uri: String,
    /// The headers that matter: auth, accept, API version, user agent, content type.
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Stored {
    id: u64,
    author: String,
    pub(crate) body: String,
}

struct FakeState {
    forge: Forge,
    odd: Odd,
    addr: SocketAddr,
    comments: Vec<Stored>,
    next_id: u64,
    requests: Vec<Recorded>,
    /// The numbers of the open pull requests (GitLab: merge requests' iids).
    open_pulls: Vec<u64>,
}

pub(crate) struct Fake {
    state: Arc<Mutex<FakeState>>,
    addr: SocketAddr,
}

const RECORDED_HEADERS: [&str; 6] = [
    "authorization",
    "private-token",
    "accept",
    "x-github-api-version",
    "user-agent",
    "content-type",
];

impl Fake {
    /// A forge whose pull request holds `others` comments by other people, the first of them a
    /// reply quoting an old preview (which is not the preview).
    pub(crate) async fn start(forge: Forge, odd: Odd, others: usize) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let comments = (0..others)
            .map(|i| Stored {
                id: 1001 + i as u64,
                author: format!("dev{}", i % 3),
                body: if i == 0 {
                    format!("> {MARKER}\n> old plan\n\nWhy does this remove the db?")
                } else {
                    format!("comment {i}: looks good")
                },
            })
            .collect();
        let state = Arc::new(Mutex::new(FakeState {
            forge,
            odd,
            addr,
            comments,
            next_id: CREATED_ID,
            requests: Vec::new(),
            open_pulls: vec![7],
        }));
        let router = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("fake forge");
        });
        Fake { state, addr }
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests since the last call.
    pub(crate) fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.state.lock().unwrap().requests)
    }

    /// Which pull requests the forge lists as open from now on (pull request 7 at start).
    pub(crate) fn set_open_pulls(&self, numbers: &[u64]) {
        self.state.lock().unwrap().open_pulls = numbers.to_vec();
    }

    pub(crate) fn comment(&self, id: u64) -> Option<Stored> {
        self.state.lock().unwrap().comments.iter().find(|c| c.id == id).cloned()
    }

    fn previews(&self) -> usize {
        self.state.lock().unwrap().comments.iter().filter(|c| c.body.starts_with(MARKER)).count()
    }
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn answer(status: StatusCode, headers: HeaderMap, body: Value) -> Response {
    let mut response = (status, headers, body.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("header value")
}

/// The forge's own error bodies.
fn unauthorized(forge: Forge, addr: SocketAddr) -> Value {
    match forge {
        Forge::GitHub => json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        }),
        Forge::GitLab => json!({ "message": "401 Unauthorized" }),
        Forge::Gitea => json!({
            "message": "user does not exist [uid: 0, name: ]",
            "url": format!("http://{addr}/api/swagger")
        }),
    }
}

fn not_found(forge: Forge, addr: SocketAddr) -> Value {
    match forge {
        Forge::GitHub => json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/issues/comments#list-issue-comments",
            "status": "404"
        }),
        Forge::GitLab => json!({ "message": "404 Not found" }),
        Forge::Gitea => json!({
            "errors": ["issue does not exist [id: 0, repo_id: 1, index: 8]"],
            "message": "The target couldn't be found.",
            "url": format!("http://{addr}/api/swagger")
        }),
    }
}

fn comment_json(forge: Forge, c: &Stored) -> Value {
    match forge {
        Forge::GitLab => json!({
            "id": c.id, "body": c.body, "author": { "username": c.author },
            "system": false, "noteable_type": "MergeRequest", "noteable_iid": 7
        }),
        Forge::GitHub | Forge::Gitea => {
            json!({ "id": c.id, "body": c.body, "user": { "login": c.author } })
        }
    }
}

/// Where the request points, once the forge's path shapes are recognised.
enum Target {
    Pulls,
    List,
    Create,
    Edit(u64),
    Missing,
}

fn target(forge: Forge, method: &Method, path: &str) -> Target {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let pulls = matches!(
        (forge, segments.as_slice()),
        (Forge::GitHub, ["repos", "acme", "shop", "pulls"])
            | (Forge::Gitea, ["api", "v1", "repos", "acme", "shop", "pulls"])
            | (
                Forge::GitLab,
                ["api", "v4", "projects", "acme%2Fplatform%2Fshop", "merge_requests"]
            )
    );
    if pulls && *method == Method::GET {
        return Target::Pulls;
    }
    let collection = match (forge, segments.as_slice()) {
        (Forge::GitHub, ["repos", "acme", "shop", "issues", "7", "comments"])
        | (Forge::GitHub, ["repositories", "4242", "issues", "7", "comments"])
        | (Forge::Gitea, ["api", "v1", "repos", "acme", "shop", "issues", "7", "comments"]) => true,
        (Forge::GitLab, ["api", "v4", "projects", project, "merge_requests", "7", "notes"])
            if matches!(*project, "acme%2Fplatform%2Fshop" | "42") =>
        {
            true
        }
        _ => false,
    };
    if collection {
        return match *method {
            Method::GET => Target::List,
            Method::POST => Target::Create,
            _ => Target::Missing,
        };
    }
    let id = match (forge, segments.as_slice()) {
        (Forge::GitHub, ["repos", "acme", "shop", "issues", "comments", id])
        | (Forge::Gitea, ["api", "v1", "repos", "acme", "shop", "issues", "comments", id])
            if *method == Method::PATCH =>
        {
            id.parse().ok()
        }
        (
            Forge::GitLab,
            [
                "api",
                "v4",
                "projects",
                "acme%2Fplatform%2Fshop" | "42",
                "merge_requests",
                "7",
                "notes",
                id,
            ],
        ) if *method == Method::PUT => id.parse().ok(),
        _ => None,
    };
    id.map_or(Target::Missing, Target::Edit)
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let (forge, addr, odd) = (s.forge, s.addr, s.odd);
    let recorded_headers = RECORDED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    let json_body: Option<Value> =
        if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    s.requests.push(Recorded {
        method: method.to_string(),
        uri: uri.path_and_query().map(|pq| pq.to_string()).unwrap_or_default(),
        headers: recorded_headers,
        body: json_body.clone(),
    });

    let (auth_header, expected) = match forge {
        Forge::GitHub => ("authorization", format!("Bearer {TOKEN}")),
        Forge::GitLab => ("private-token", TOKEN.to_string()),
        Forge::Gitea => ("authorization", format!("token {TOKEN}")),
    };
    if headers.get(auth_header).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return answer(StatusCode::UNAUTHORIZED, HeaderMap::new(), unauthorized(forge, addr));
    }

    match target(forge, &method, uri.path()) {
        Target::Missing => answer(StatusCode::NOT_FOUND, HeaderMap::new(), not_found(forge, addr)),
        Target::Pulls => {
            // One page holds them all here; each forge's own headers say so.
            let open = s.open_pulls.clone();
            let items: Vec<Value> = open
                .iter()
                .map(|n| match forge {
                    Forge::GitLab => json!({ "id": 5000 + n, "iid": n, "state": "opened" }),
                    Forge::GitHub | Forge::Gitea => {
                        json!({ "id": 5000 + n, "number": n, "state": "open" })
                    }
                })
                .collect();
            let mut h = HeaderMap::new();
            match forge {
                Forge::GitHub => {}
                Forge::GitLab => {
                    h.insert("x-next-page", header(""));
                }
                Forge::Gitea => {
                    h.insert("x-total-count", header(&open.len().to_string()));
                }
            }
            answer(StatusCode::OK, h, Value::Array(items))
        }
        Target::List if odd == Odd::HtmlList => {
            let mut response =
                (StatusCode::OK, "<html><body>Maintenance</body></html>").into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("text/html"));
            response
        }
        Target::List => {
            let q = query(&uri);
            let number = |key: &str, default: usize| {
                q.get(key).and_then(|v| v.parse::<usize>().ok()).unwrap_or(default)
            };
            let mut all: Vec<&Stored> = s.comments.iter().collect();
            if forge == Forge::GitLab {
                // GitLab lists notes newest first unless asked otherwise.
                all.reverse();
            }
            let total = all.len();
            let (page, per_page) = match forge {
                Forge::GitHub | Forge::GitLab => {
                    (number("page", 1), number("per_page", 20).min(100))
                }
                Forge::Gitea if odd == Odd::GiteaIgnoresPaging => (1, total.max(1)),
                Forge::Gitea => (number("page", 1), number("limit", 30).min(50)),
            };
            let start = (page.max(1) - 1) * per_page;
            let items: Vec<Value> =
                all.iter().skip(start).take(per_page).map(|c| comment_json(forge, c)).collect();
            let has_next = start + per_page < total;
            let mut h = HeaderMap::new();
            match forge {
                Forge::GitHub if has_next => {
                    let origin = if odd == Odd::ForeignLink {
                        format!("http://127.0.0.2:{}", addr.port())
                    } else {
                        format!("http://{addr}")
                    };
                    let link = |p: usize| {
                        format!(
                            "{origin}/repositories/4242/issues/7/comments?per_page={per_page}&page={p}"
                        )
                    };
                    let last = total.div_ceil(per_page);
                    let value = format!(
                        "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                        link(page + 1),
                        link(last)
                    );
                    h.insert("link", header(&value));
                }
                Forge::GitHub => {}
                Forge::GitLab => {
                    h.insert("x-page", header(&page.to_string()));
                    h.insert("x-per-page", header(&per_page.to_string()));
                    h.insert("x-total", header(&total.to_string()));
                    let next = if has_next { (page + 1).to_string() } else { String::new() };
                    h.insert("x-next-page", header(&next));
                }
                Forge::Gitea => {
                    h.insert("x-total-count", header(&total.to_string()));
                }
            }
            answer(StatusCode::OK, h, Value::Array(items))
        }
        Target::Create => {
            let Some(text) = json_body.as_ref().and_then(|b| b.get("body")).and_then(Value::as_str)
            else {
                return answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    HeaderMap::new(),
                    json!({"message": "body is missing"}),
                );
            };
            let stored = Stored { id: s.next_id, author: BOT.to_string(), body: text.to_string() };
            s.next_id += 1;
            s.comments.push(stored.clone());
            let mut created = comment_json(forge, &stored);
            if odd == Odd::CreatedWithoutId {
                created.as_object_mut().unwrap().remove("id");
            }
            answer(StatusCode::CREATED, HeaderMap::new(), created)
        }
        Target::Edit(id) => {
            let Some(text) = json_body.as_ref().and_then(|b| b.get("body")).and_then(Value::as_str)
            else {
                return answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    HeaderMap::new(),
                    json!({"message": "body is missing"}),
                );
            };
            let Some(stored) = s.comments.iter_mut().find(|c| c.id == id) else {
                return answer(StatusCode::NOT_FOUND, HeaderMap::new(), not_found(forge, addr));
            };
            if stored.author != BOT {
                return answer(
                    StatusCode::FORBIDDEN,
                    HeaderMap::new(),
                    json!({"message": "Forbidden"}),
                );
            }
            stored.body = text.to_string();
            let edited = comment_json(forge, stored);
            answer(StatusCode::OK, HeaderMap::new(), edited)
        }
    }
}

/// What each forge is asked, for pull request 7 of acme/shop (GitLab: acme/platform/shop).
pub(crate) struct Api {
    forge: Forge,
    kind: ForgeKind,
    pub(crate) page_size: usize,
    pub(crate) first: &'static str,
    pub(crate) second: &'static str,
    /// The first page of the open pull requests.
    pub(crate) pulls: &'static str,
    create: &'static str,
    edit_method: &'static str,
    edit_prefix: &'static str,
}

pub(crate) fn api(forge: Forge) -> Api {
    match forge {
        Forge::GitHub => Api {
            forge,
            kind: ForgeKind::GitHub,
            page_size: 100,
            first: "/repos/acme/shop/issues/7/comments?per_page=100&page=1",
            // The `Link` header's URL, followed as given.
            second: "/repositories/4242/issues/7/comments?per_page=100&page=2",
            pulls: "/repos/acme/shop/pulls?per_page=100&page=1&state=open",
            create: "/repos/acme/shop/issues/7/comments",
            edit_method: "PATCH",
            edit_prefix: "/repos/acme/shop/issues/comments/",
        },
        Forge::GitLab => Api {
            forge,
            kind: ForgeKind::GitLab,
            page_size: 100,
            first: "/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests/7/notes?per_page=100&page=1",
            second: "/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests/7/notes?per_page=100&page=2",
            pulls: "/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests?per_page=100&page=1&state=opened",
            create: "/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests/7/notes",
            edit_method: "PUT",
            edit_prefix: "/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests/7/notes/",
        },
        Forge::Gitea => Api {
            forge,
            kind: ForgeKind::Gitea,
            page_size: 50,
            first: "/api/v1/repos/acme/shop/issues/7/comments?page=1&limit=50",
            second: "/api/v1/repos/acme/shop/issues/7/comments?page=2&limit=50",
            pulls: "/api/v1/repos/acme/shop/pulls?page=1&limit=50&state=open",
            create: "/api/v1/repos/acme/shop/issues/7/comments",
            edit_method: "PATCH",
            edit_prefix: "/api/v1/repos/acme/shop/issues/comments/",
        },
    }
}

impl Api {
    pub(crate) fn pr(&self, number: u64) -> PullRequestRef {
        let repository = match self.forge {
            Forge::GitLab => "acme/platform/shop",
            Forge::GitHub | Forge::Gitea => "acme/shop",
        };
        PullRequestRef { repository: repository.to_string(), project_id: None, number }
    }

    fn headers(&self, token: &str, with_body: bool) -> BTreeMap<String, String> {
        let mut h = BTreeMap::new();
        h.insert("user-agent".to_string(), format!("gitfleet/{}", env!("CARGO_PKG_VERSION")));
        match self.forge {
            Forge::GitHub => {
                h.insert("authorization".into(), format!("Bearer {token}"));
                h.insert("accept".into(), "application/vnd.github+json".into());
                h.insert("x-github-api-version".into(), "2022-11-28".into());
            }
            Forge::GitLab => {
                h.insert("private-token".into(), token.to_string());
                h.insert("accept".into(), "application/json".into());
            }
            Forge::Gitea => {
                h.insert("authorization".into(), format!("token {token}"));
                h.insert("accept".into(), "application/json".into());
            }
        }
        if with_body {
            h.insert("content-type".into(), "application/json".into());
        }
        h
    }

    pub(crate) fn get(&self, uri: &str) -> Recorded {
        self.get_with(uri, TOKEN)
    }

    fn get_with(&self, uri: &str, token: &str) -> Recorded {
        Recorded {
            method: "GET".into(),
            uri: uri.to_string(),
            headers: self.headers(token, false),
            body: None,
        }
    }

    pub(crate) fn create(&self, body: &str) -> Recorded {
        Recorded {
            method: "POST".into(),
            uri: self.create.to_string(),
            headers: self.headers(TOKEN, true),
            body: Some(json!({ "body": body })),
        }
    }

    pub(crate) fn edit(&self, id: u64, body: &str) -> Recorded {
        Recorded {
            method: self.edit_method.into(),
            uri: format!("{}{id}", self.edit_prefix),
            headers: self.headers(TOKEN, true),
            body: Some(json!({ "body": body })),
        }
    }

    pub(crate) fn client(&self, fake: &Fake, token: &str) -> ForgeClient {
        ForgeClient::new(self.kind, &fake.base(), token.to_string()).expect("client")
    }
}

const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

fn first_body() -> String {
    render_comment(&Preview::new(COMMIT_1, PreviewOutcome::Failed(PreviewFailure::Fetch)))
}

fn second_body() -> String {
    let diagnostics = [Diagnostic::new(
        "apps/shop/compose.yaml",
        Position { line: 4, column: 15 },
        "unknown-network",
        "service `web` joins network `front`, which is not declared",
    )
    .with_hint("add `front:` under `networks:`")];
    render_comment(&Preview::new(COMMIT_2, PreviewOutcome::Invalid(&diagnostics)))
}

/// Create, then edit among two pages of other people's comments, then leave alone.
async fn keeps_one_comment(forge: Forge) {
    let api = api(forge);
    // One more than a page: our comment is never alone on a page.
    let fake = Fake::start(forge, Odd::None, api.page_size + 1).await;
    let client = api.client(&fake, TOKEN);
    let pr = api.pr(7);

    let first = first_body();
    let action = client.upsert_comment(&pr, &first).await.expect("create");
    assert_eq!(action, CommentAction::Created { id: CREATED_ID });
    assert_eq!(
        fake.take_requests(),
        vec![api.get(api.first), api.get(api.second), api.create(&first)]
    );
    assert_eq!(fake.comment(CREATED_ID).expect("created").body, first);

    let second = second_body();
    let action = client.upsert_comment(&pr, &second).await.expect("edit");
    assert_eq!(action, CommentAction::Edited { id: CREATED_ID });
    assert_eq!(
        fake.take_requests(),
        vec![api.get(api.first), api.get(api.second), api.edit(CREATED_ID, &second)]
    );
    assert_eq!(fake.comment(CREATED_ID).expect("edited").body, second);
    // The quoting reply was left alone.
    assert!(fake.comment(1001).expect("reply").body.starts_with("> "));

    let action = client.upsert_comment(&pr, &second).await.expect("unchanged");
    assert_eq!(action, CommentAction::Unchanged { id: CREATED_ID });
    assert_eq!(fake.take_requests(), vec![api.get(api.first), api.get(api.second)]);
    assert_eq!(fake.previews(), 1);
}

/// A 401 and a 404 come back with the forge's message, and never with the token.
async fn errors_say_what_the_forge_said(forge: Forge) {
    let api = api(forge);
    let fake = Fake::start(forge, Odd::None, 3).await;

    let wrong = api.client(&fake, WRONG_TOKEN);
    let err = wrong.upsert_comment(&api.pr(7), &first_body()).await.expect_err("401");
    let expected = unauthorized(forge, fake.addr)["message"].as_str().unwrap().to_string();
    assert_status(&err, 401, &expected);
    assert_eq!(fake.take_requests(), vec![api.get_with(api.first, WRONG_TOKEN)]);

    let client = api.client(&fake, TOKEN);
    let err = client.upsert_comment(&api.pr(8), &first_body()).await.expect_err("404");
    let expected = not_found(forge, fake.addr)["message"].as_str().unwrap().to_string();
    assert_status(&err, 404, &expected);
    assert_eq!(fake.take_requests(), vec![api.get(&api.first.replace("/7/", "/8/"))]);
    assert_eq!(fake.previews(), 0);
}

fn assert_status(err: &ForgeError, status: u16, message: &str) {
    match err {
        ForgeError::Status { status: s, message: m, .. } => {
            assert_eq!((*s, m.as_str()), (status, message));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(err.status(), Some(status));
    let shown = err.to_string();
    assert!(shown.contains(message), "{shown}");
    assert!(shown.contains(&format!("HTTP {status}")), "{shown}");
    for text in [shown, format!("{err:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains(WRONG_TOKEN), "{text}");
    }
}

#[tokio::test]
async fn github_keeps_one_comment() {
    keeps_one_comment(Forge::GitHub).await;
}

#[tokio::test]
async fn gitlab_keeps_one_comment() {
    keeps_one_comment(Forge::GitLab).await;
}

#[tokio::test]
async fn gitea_keeps_one_comment() {
    keeps_one_comment(Forge::Gitea).await;
}

#[tokio::test]
async fn github_errors_say_what_the_forge_said() {
    errors_say_what_the_forge_said(Forge::GitHub).await;
}

#[tokio::test]
async fn gitlab_errors_say_what_the_forge_said() {
    errors_say_what_the_forge_said(Forge::GitLab).await;
}

#[tokio::test]
async fn gitea_errors_say_what_the_forge_said() {
    errors_say_what_the_forge_said(Forge::Gitea).await;
}

#[tokio::test]
async fn gitlab_prefers_the_project_id() {
    let api = api(Forge::GitLab);
    let fake = Fake::start(Forge::GitLab, Odd::None, 2).await;
    let client = api.client(&fake, TOKEN);
    let pr = PullRequestRef { project_id: Some(42), ..api.pr(7) };
    let body = first_body();
    assert_eq!(
        client.upsert_comment(&pr, &body).await.expect("create"),
        CommentAction::Created { id: CREATED_ID }
    );
    let notes = "/api/v4/projects/42/merge_requests/7/notes";
    assert_eq!(
        fake.take_requests(),
        vec![
            api.get(&format!("{notes}?per_page=100&page=1")),
            Recorded { uri: notes.to_string(), ..api.create(&body) },
        ]
    );
}

/// Gitea's issue-comments endpoint answers every comment at once, whatever `page` and `limit`
/// say: one list request, no second page, no duplicate.
#[tokio::test]
async fn gitea_that_ignores_paging_is_read_once() {
    let api = api(Forge::Gitea);
    let fake = Fake::start(Forge::Gitea, Odd::GiteaIgnoresPaging, 120).await;
    let client = api.client(&fake, TOKEN);
    let first = first_body();
    assert_eq!(
        client.upsert_comment(&api.pr(7), &first).await.expect("create"),
        CommentAction::Created { id: CREATED_ID }
    );
    assert_eq!(fake.take_requests(), vec![api.get(api.first), api.create(&first)]);
    let second = second_body();
    assert_eq!(
        client.upsert_comment(&api.pr(7), &second).await.expect("edit"),
        CommentAction::Edited { id: CREATED_ID }
    );
    assert_eq!(fake.take_requests(), vec![api.get(api.first), api.edit(CREATED_ID, &second)]);
}

#[tokio::test]
async fn a_list_that_is_not_json_is_an_error_and_nothing_is_written() {
    let api = api(Forge::GitHub);
    let fake = Fake::start(Forge::GitHub, Odd::HtmlList, 3).await;
    let err = api.client(&fake, TOKEN).upsert_comment(&api.pr(7), &first_body()).await;
    let err = err.expect_err("html");
    assert!(matches!(err, ForgeError::Answer { .. }), "{err:?}");
    assert!(err.to_string().contains("not a JSON list of comments"), "{err}");
    assert_eq!(fake.take_requests(), vec![api.get(api.first)]);
}

#[tokio::test]
async fn a_created_comment_without_an_id_is_an_error() {
    let api = api(Forge::Gitea);
    let fake = Fake::start(Forge::Gitea, Odd::CreatedWithoutId, 1).await;
    let body = first_body();
    let err = api.client(&fake, TOKEN).upsert_comment(&api.pr(7), &body).await;
    let err = err.expect_err("no id");
    assert!(err.to_string().contains("no numeric `id`"), "{err}");
    assert_eq!(fake.take_requests(), vec![api.get(api.first), api.create(&body)]);
}

#[tokio::test]
async fn a_next_page_on_another_origin_is_not_followed() {
    let api = api(Forge::GitHub);
    let fake = Fake::start(Forge::GitHub, Odd::ForeignLink, 150).await;
    let err = api.client(&fake, TOKEN).upsert_comment(&api.pr(7), &first_body()).await;
    let err = err.expect_err("foreign link");
    assert!(matches!(err, ForgeError::Answer { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
    assert_eq!(fake.take_requests(), vec![api.get(api.first)]);
}

#[tokio::test]
async fn an_unreachable_forge_is_a_transport_error_without_the_token() {
    // Nothing listens on port 1 of the loopback address.
    let client =
        ForgeClient::new(ForgeKind::GitLab, "http://127.0.0.1:1", TOKEN.to_string()).unwrap();
    let err = client.upsert_comment(&api(Forge::GitLab).pr(7), "x").await.expect_err("refused");
    assert!(matches!(err, ForgeError::Transport { .. }), "{err:?}");
    assert_eq!(err.status(), None);
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

/// The open pull requests, as each forge lists them (GitLab by `iid`), with one request.
async fn lists_the_open_pull_requests(forge: Forge) {
    let fake = Fake::start(forge, Odd::None, 0).await;
    let api = api(forge);
    fake.set_open_pulls(&[3, 7, 12]);
    let client = api.client(&fake, TOKEN);
    let open = client.open_pull_requests(&api.pr(7).repository).await.unwrap();
    assert_eq!(open, [3, 7, 12].into());
    assert_eq!(fake.take_requests(), [api.get(api.pulls)]);
    fake.set_open_pulls(&[]);
    assert!(client.open_pull_requests(&api.pr(7).repository).await.unwrap().is_empty());
}

#[tokio::test]
async fn github_lists_the_open_pull_requests() {
    lists_the_open_pull_requests(Forge::GitHub).await;
}

#[tokio::test]
async fn gitlab_lists_the_open_merge_requests() {
    lists_the_open_pull_requests(Forge::GitLab).await;
}

#[tokio::test]
async fn gitea_lists_the_open_pull_requests() {
    lists_the_open_pull_requests(Forge::Gitea).await;
}
