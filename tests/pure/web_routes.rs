//! Every route of the web side, driven with `oneshot` on `gitfleet::web::app` / `hooks`: the
//! page and its assets, the JSON API, server-sent events, metrics (checked with the real
//! `promtool`), health, methods other than GET/HEAD, escaping, and webhook delivery counts.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use std::time::SystemTime;

use gitfleet::controller::state::{
    Deployed, EventKind, EventRecord, Head, HeadState, HostReplicas, HostState, HostStatus,
    Problem, ProblemKind, RevisionInfo, ServiceStatus, Snapshot, StatusWriter, Subject,
    SyncOutcome, SyncRecord,
};
use gitfleet::web::{self, Web};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn revision(commit: &str, message: &str) -> RevisionInfo {
    RevisionInfo {
        commit: commit.into(),
        author: "Ann <ann@example.com>".into(),
        message: message.into(),
        time: None,
    }
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn host(state: HostState, reason: Option<&str>) -> HostStatus {
    HostStatus { state, since: at("2026-01-01T00:00:00Z"), reason: reason.map(String::from) }
}

/// A fleet with a bit of everything: a deployed revision, an invalid head, an away host, a
/// short service, syncs and events.
fn snapshot() -> Snapshot {
    let mut s = Snapshot::new("https://git.example.com/ops/fleet.git", "main");
    s.deployed = Some(Deployed {
        revision: revision("1111111111111111111111111111111111111111", "Scale web to 2"),
        at: at("2026-01-01T00:00:00Z"),
        plan: Default::default(),
    });
    s.head = Some(Head {
        revision: revision("2222222222222222222222222222222222222222", "Use build"),
        state: HeadState::Invalid,
    });
    s.problems.push(Problem {
        kind: ProblemKind::InvalidRevision,
        subject: Subject::Repository,
        message: "apps/shop/compose.yaml:4:5: error[unsupported-key]: `build` is not supported"
            .into(),
        since: at("2026-01-01T00:00:05Z"),
    });
    s.hosts.insert("a".into(), host(HostState::Up, None));
    s.hosts.insert("b".into(), host(HostState::Away, Some("connection refused")));
    let web = ServiceStatus {
        desired: 2,
        running: 1,
        healthy: 1,
        hosts: [("a".to_string(), HostReplicas { running: 1, healthy: 1 })].into(),
        ..Default::default()
    };
    s.services = Arc::new([("shop".to_string(), [("web".to_string(), web)].into())].into());
    s.repository_read = true;
    s.events.push(EventRecord {
        at: at("2026-01-01T00:00:05Z"),
        kind: EventKind::Rollout,
        message: "revision 111111111111 deployed".into(),
        logs: None,
    });
    s
}

fn sync_record() -> SyncRecord {
    SyncRecord {
        number: 0,
        started_at: at("2026-01-01T00:00:03Z"),
        at: at("2026-01-01T00:00:05Z"),
        reasons: "webhook (github)".into(),
        commit: Some("1111111111111111111111111111111111111111".into()),
        outcome: SyncOutcome::Applied,
        detail: "applied: 1 to create".into(),
        millis: 2300,
        plan: Default::default(),
        full_plan: None,
    }
}

struct Site {
    router: Router,
    writer: StatusWriter,
    shutdown: CancellationToken,
}

/// The routes over `snapshot`, with one sync recorded through the loop's writer.
fn site(snapshot: Snapshot, synced: bool) -> Site {
    let writer = StatusWriter::new(snapshot);
    if synced {
        writer.record_sync(sync_record());
    }
    let shutdown = CancellationToken::new();
    let web = Web::new(writer.reader(), shutdown.clone());
    let mut receivers = gitfleet::webhook::ReceiverSettings::new("main");
    receivers.github_secret = Some("s3cret".into());
    let hooks =
        web::hooks(web.clone(), Arc::new(receivers), Arc::new(|_| Ok(())), Duration::from_secs(5));
    Site { router: web::app(web).merge(hooks), writer, shutdown }
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn the_page_shows_the_fleet_with_a_strict_policy() {
    let site = site(snapshot(), true);
    let (code, headers, html) = call(&site.router, Method::GET, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    for needle in [
        "<title>fleet · Needs attention · gitfleet</title>",
        "data-revision=\"1111111111111111111111111111111111111111\"",
        "href=\"https://git.example.com/ops/fleet/commit/1111111111111111111111111111111111111111\"",
        "data-revision=\"2222222222222222222222222222222222222222\"",
        "does not validate",
        "apps/shop/compose.yaml:4:5: error[unsupported-key]",
        "data-host=\"b\"",
        "data-service=\"shop/web\"",
        "<noscript><meta http-equiv=\"refresh\"",
        "role=\"status\"",
        "<caption>",
        "<time datetime=\"2026-01-01T00:00:05Z\"",
        "src=\"/assets/gitfleet.js\"",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page:\n{html}");
    }
    // Nothing from elsewhere.
    assert!(!html.contains("http://") && !html.contains("//cdn"), "{html}");

    let (code, _, body) = call(&site.router, Method::HEAD, "/").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn only_get_and_head_are_served() {
    let site = site(snapshot(), true);
    for path in [
        "/",
        "/api/status",
        "/api/sections",
        "/api/events",
        "/metrics",
        "/healthz",
        "/readyz",
        "/assets/gitfleet.css",
    ] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let (code, headers, _) = call(&site.router, method.clone(), path).await;
            assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let allow = headers["allow"].to_str().unwrap();
            assert!(
                allow.contains("GET") && allow.contains("HEAD") && !allow.contains("POST"),
                "{allow}"
            );
        }
    }
    let (code, _, _) = call(&site.router, Method::GET, "/nothing-here").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_embedded() {
    let site = site(snapshot(), true);
    for (path, content_type, needle) in [
        ("/assets/gitfleet.css", "text/css", "prefers-color-scheme: dark"),
        ("/assets/gitfleet.js", "text/javascript", "EventSource"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
        ("/favicon.ico", "image/svg+xml", "<svg"),
    ] {
        let (code, headers, body) = call(&site.router, Method::GET, path).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(content_type), "{path}");
        assert!(body.contains(needle), "{path}");
    }
}

#[tokio::test]
async fn the_api_gives_the_snapshot_and_the_sections() {
    let site = site(snapshot(), true);
    let (code, _, body) = call(&site.router, Method::GET, "/api/status").await;
    assert_eq!(code, StatusCode::OK);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["version"], 1);
    assert_eq!(status["deployed"]["commit"], "1111111111111111111111111111111111111111");
    assert_eq!(status["hosts"]["b"]["state"], "away");

    let (code, _, body) = call(&site.router, Method::GET, "/api/sections").await;
    assert_eq!(code, StatusCode::OK);
    let sections: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&String> = sections["sections"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "s-apps",
            "s-attention",
            "s-events",
            "s-header",
            "s-hosts",
            "s-members",
            "s-routes",
            "s-syncs"
        ]
    );
    assert!(sections["sections"]["s-hosts"].as_str().unwrap().contains("connection refused"));
}

#[tokio::test]
async fn events_stream_every_snapshot_and_end_on_shutdown() {
    let site = site(snapshot(), true);
    let request = Request::builder().uri("/api/events").body(Body::empty()).unwrap();
    let response = site.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let mut body = response.into_body().into_data_stream();
    let first = next(&mut body).await.unwrap();
    assert!(first.contains("event: status\n"), "{first}");
    assert!(first.contains("retry: 3000\n"), "{first}");
    assert!(first.contains("s-header"), "{first}");

    // A new snapshot is a new event.
    site.writer.update(|s| {
        s.hosts.insert("c".into(), host(HostState::Up, None));
    });
    let second = next(&mut body).await.unwrap();
    assert!(second.contains("data-host=\\\"c\\\""), "{second}");

    // Shutdown ends the stream.
    site.shutdown.cancel();
    assert!(next(&mut body).await.is_none(), "the stream goes on after shutdown");
}

#[tokio::test]
async fn health_and_readiness() {
    let site = site(Snapshot::default(), false);
    let (code, _, body) = call(&site.router, Method::GET, "/healthz").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "ok\n"));
    let (code, _, _) = call(&site.router, Method::GET, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    site.writer.update(|s| s.repository_read = true);
    site.writer.record_sync(sync_record());
    let (code, _, _) = call(&site.router, Method::GET, "/readyz").await;
    assert_eq!(code, StatusCode::OK);
}

/// A service, a host and an error holding markup are shown as text.
#[tokio::test]
async fn repository_values_are_escaped_on_the_page() {
    let evil = "<script>alert(1)</script>";
    let mut s = snapshot();
    let mut services = (*s.services).clone();
    let service = ServiceStatus { desired: 1, ..Default::default() };
    services.insert(evil.into(), [(evil.to_string(), service)].into());
    s.services = Arc::new(services);
    s.hosts.insert(format!("h{evil}"), host(HostState::Down, Some(evil)));
    // A host label holding markup.
    s.host_info.insert(
        "a".into(),
        gitfleet::controller::state::HostInfo {
            endpoint: "tcp://10.250.40.2:2375".into(),
            labels: [("zone".to_string(), evil.to_string())].into(),
            platform: "linux/x86_64".into(),
            millicpus: Some(2000),
            memory_bytes: Some(2 << 30),
        },
    );
    s.events.push(EventRecord {
        at: at("2026-01-01T00:00:09Z"),
        kind: EventKind::Host,
        message: evil.into(),
        logs: None,
    });
    s.head.as_mut().unwrap().revision.message = format!("\"><img src=x onerror=alert(1)>{evil}");
    let site = site(s, true);
    for path in ["/", "/api/sections"] {
        let (_, _, body) = call(&site.router, Method::GET, path).await;
        assert!(!body.contains("<script>alert"), "{path}: {body}");
        assert!(!body.contains("<img src=x"), "{path}: {body}");
    }
    let (_, _, html) = call(&site.router, Method::GET, "/").await;
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("zone&#x3D;&lt;script&gt;"), "{html}");
    assert!(html.contains("2 CPUs, 2.0 GiB"), "{html}");
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_deliveries() {
    let site = site(snapshot(), true);
    // Two deliveries: a wrong signature and a forge without a secret.
    for path in ["/hooks/github", "/hooks/gitlab"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", "sha256=00")
            .body(Body::from("{}"))
            .unwrap();
        let response = site.router.clone().oneshot(request).await.unwrap();
        assert!(matches!(response.status().as_u16(), 401 | 404), "{path}");
    }
    let (code, headers, text) = call(&site.router, Method::GET, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        "gitfleet_revision_info{revision=\"1111111111111111111111111111111111111111\"} 1",
        "gitfleet_sync_total{result=\"applied\"} 1",
        "gitfleet_host_up{host=\"b\"} 0",
        "gitfleet_service_replicas{app=\"shop\",service=\"web\",state=\"desired\"} 2",
        "gitfleet_webhook_deliveries_total{forge=\"github\",result=\"unauthorized\"} 1",
        "gitfleet_webhook_deliveries_total{forge=\"gitlab\",result=\"not_configured\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    promtool_check(&text);
}

#[tokio::test]
async fn rejected_deliveries_appear_among_the_events_without_their_body() {
    let writer = StatusWriter::new(snapshot());
    writer.record_sync(sync_record());
    let web = Web::new(writer.reader(), CancellationToken::new());
    let mut receivers = gitfleet::webhook::ReceiverSettings::new("master");
    receivers.github_secret = Some("s3cret".into());
    receivers.repository = Some("ops/fleet".into());
    let hooks =
        web::hooks(web.clone(), Arc::new(receivers), Arc::new(|_| Ok(())), Duration::from_secs(5));
    let router = web::app(web).merge(hooks);
    let post = |body: Vec<u8>, signature: String, delivery: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/hooks/github")
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", signature)
            .body(Body::from(body))
            .unwrap()
    };
    // A bad signature, its body never shown.
    let marker = b"{\"ref\": \"BODY-MARKER <b>\"}".to_vec();
    let request = Request::builder().uri("/api/events").body(Body::empty()).unwrap();
    let mut stream = router.clone().oneshot(request).await.unwrap().into_body().into_data_stream();
    let first = next(&mut stream).await.unwrap();
    assert!(!first.contains("bad signature"), "{first}");
    let response = router.clone().oneshot(post(marker, "sha256=00".into(), "d1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A live page hears of it without a new snapshot.
    let pushed = next(&mut stream).await.unwrap();
    assert!(pushed.contains("rejected: bad signature"), "{pushed}");
    // A push about another repository (Codertocat/Hello-World), signed; then the same
    // delivery again.
    let push = format!(
        "{}/../shared/corpus/octokit-webhooks/payload-examples/api.github.com/push/with-new-branch.payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let push = std::fs::read(&push).unwrap();
    let signature = format!("sha256={}", gitfleet::webhook::sign(b"s3cret", &push));
    let response =
        router.clone().oneshot(post(push.clone(), signature.clone(), "d2")).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&answer).contains("another repository"),
        "the answer is intact"
    );
    let (_, _, body) = call(&router, Method::GET, "/api/sections").await;
    let sections: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events = sections["sections"]["s-events"].as_str().unwrap();
    assert!(events.contains("rejected: bad signature"), "{events}");
    assert!(events.contains("rejected: about another repository"), "{events}");
    assert!(!events.contains("BODY-MARKER"), "the body is never echoed: {events}");
    let (_, _, page) = call(&router, Method::GET, "/").await;
    assert!(page.contains("rejected: bad signature"));
}

/// `promtool check metrics` on `text`; fails (never skips) without promtool.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed (apt-get install prometheus, or bash scripts/install-deps.sh): {e}")
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn next(body: &mut axum::body::BodyDataStream) -> Option<String> {
    use futures_util::StreamExt;
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("an event within 5 s");
    chunk.map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
}
