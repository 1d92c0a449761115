//! The webhook receivers over real HTTP: the router served on 127.0.0.1, deliveries built from
//! the corpus payloads and signed here, answers and the hooks that reach the sink checked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfleet::webhook::{
    Forge, Hook, PullRequestAction, PullRequestHook, ReceiverSettings, router, sign,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITLAB_TOKEN: &str = "gitlab-token-1";
const GITEA_SECRET: &str = "gitea secret";
const GENERIC_SECRET: &str = "generic secret";

fn corpus(path: &str) -> Vec<u8> {
    let full = format!("{}/../shared/corpus/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|error| panic!("cannot read {full}: {error}"))
}

const GITHUB_PUSH: &str =
    "octokit-webhooks/payload-examples/api.github.com/push/with-new-branch.payload.json";
const GITHUB_PR: &str =
    "octokit-webhooks/payload-examples/api.github.com/pull_request/opened.payload.json";

fn settings(branch: &str) -> ReceiverSettings {
    let mut settings = ReceiverSettings::new(branch);
    settings.github_secret = Some(GITHUB_SECRET.to_string());
    settings.gitlab_token = Some(GITLAB_TOKEN.to_string());
    settings.gitea_secret = Some(GITEA_SECRET.to_string());
    settings.generic_secret = Some(GENERIC_SECRET.to_string());
    settings
}

/// A receiver served on an ephemeral port, and what reached its sink.
struct Receiver {
    base: String,
    hooks: Arc<Mutex<Vec<Hook>>>,
    client: reqwest::Client,
}

impl Receiver {
    async fn start(settings: ReceiverSettings) -> Receiver {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hooks);
        let sink = Arc::new(move |hook: Hook| {
            seen.lock().expect("sink lock").push(hook);
            Ok(())
        });
        let app = router(Arc::new(settings), sink);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .expect("serve");
        });
        Receiver { base: format!("http://{address}"), hooks, client: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("a JSON answer");
        (status, body)
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().expect("sink lock").clone()
    }
}

/// A fresh delivery id: the receivers drop a repeated one.
fn next_delivery_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("delivery-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn github_headers(event: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", next_delivery_id()),
        ("X-Hub-Signature-256", format!("sha256={}", sign(secret.as_bytes(), body))),
        ("Content-Type", "application/json".to_string()),
    ]
}

fn master_push(forge: Forge, repository: &str, commit: &str) -> Hook {
    Hook::Push {
        forge,
        repository: repository.to_string(),
        branch: "master".to_string(),
        commit: commit.to_string(),
    }
}

#[tokio::test]
async fn signed_github_push_reaches_the_sink() {
    let receiver = Receiver::start(settings("master")).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], "push to master at 6113728");
    assert_eq!(
        receiver.hooks(),
        [master_push(
            Forge::GitHub,
            "Codertocat/Hello-World",
            "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
        )]
    );
}

#[tokio::test]
async fn github_ping_and_pull_request() {
    let receiver = Receiver::start(settings("master")).await;
    let ping = corpus("octokit-webhooks/payload-examples/api.github.com/ping/payload.json");
    let headers = github_headers("ping", &ping, GITHUB_SECRET);
    assert_eq!(receiver.post("/hooks/github", &headers, ping).await.0, 200);

    let pr = corpus(GITHUB_PR);
    let headers = github_headers("pull_request", &pr, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, pr).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        receiver.hooks(),
        [
            Hook::Ping { forge: Forge::GitHub },
            Hook::PullRequest(PullRequestHook {
                forge: Forge::GitHub,
                repository: "Codertocat/Hello-World".to_string(),
                project_id: None,
                number: 2,
                action: PullRequestAction::Opened,
                head_commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".to_string(),
                head_branch: "changes".to_string(),
                base_branch: "master".to_string(),
                head_repository: Some("Codertocat/Hello-World".to_string()),
            }),
        ]
    );
}

#[tokio::test]
async fn bad_signature_is_refused_and_never_reaches_the_sink() {
    let receiver = Receiver::start(settings("master")).await;
    let body = corpus(GITHUB_PUSH);

    let wrong_secret = github_headers("push", &body, "not the secret");
    let (status, answer) = receiver.post("/hooks/github", &wrong_secret, body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "X-Hub-Signature-256 does not match the delivery");

    // Signed, then tampered with.
    let signed = github_headers("push", &body, GITHUB_SECRET);
    let mut tampered = body.clone();
    tampered.push(b'\n');
    assert_eq!(receiver.post("/hooks/github", &signed, tampered).await.0, 401);

    let bare_hex = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature-256", sign(GITHUB_SECRET.as_bytes(), &body)),
    ];
    assert_eq!(receiver.post("/hooks/github", &bare_hex, body.clone()).await.0, 401);

    let wrong_token = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", "gitlab-token-2".to_string()),
    ];
    let gitlab = corpus("go-gitlab/testdata/webhooks/push.json");
    assert_eq!(receiver.post("/hooks/gitlab", &wrong_token, gitlab).await.0, 401);

    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn missing_signature_header_is_refused() {
    let receiver = Receiver::start(settings("master")).await;
    let body = corpus(GITHUB_PUSH);
    let event_only = vec![("X-GitHub-Event", "push".to_string())];
    let (status, answer) = receiver.post("/hooks/github", &event_only, body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "no X-Hub-Signature-256 header");

    let gitlab = vec![("X-Gitlab-Event", "Push Hook".to_string())];
    assert_eq!(receiver.post("/hooks/gitlab", &gitlab, body.clone()).await.0, 401);
    let gitea = vec![("X-Gitea-Event", "push".to_string())];
    assert_eq!(receiver.post("/hooks/gitea", &gitea, body.clone()).await.0, 401);
    assert_eq!(receiver.post("/hooks/generic", &[], Vec::new()).await.0, 401);
    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn push_to_another_branch_is_ignored() {
    let receiver = Receiver::start(settings("main")).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 202);
    assert_eq!(answer["ignored"], "push to branch master, not the watched branch main");

    let tag = corpus("octokit-webhooks/payload-examples/api.github.com/push/payload.json");
    let headers = github_headers("push", &tag, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, tag).await;
    assert_eq!((status, answer["ignored"].as_str()), (202, Some("tag push simple-tag")));

    let issues = b"{}".to_vec();
    let headers = github_headers("issues", &issues, GITHUB_SECRET);
    assert_eq!(receiver.post("/hooks/github", &headers, issues).await.0, 202);
    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn oversize_body_is_refused() {
    let mut settings = settings("master");
    settings.max_body_bytes = 4096;
    let receiver = Receiver::start(settings).await;
    let body = corpus(GITHUB_PUSH);
    assert!(body.len() > 4096);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"], "the body is larger than 4096 bytes");

    // Without a Content-Length (chunked): the limit holds while the body streams in.
    let mut request = b"POST /hooks/github HTTP/1.1\r\nHost: receiver\r\nX-GitHub-Event: push\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"bb8\r\n");
        request.extend_from_slice(&[b' '; 3000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let address = receiver.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    // The receiver may answer and close before it has read everything: a failed write is fine.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(receiver.hooks(), []);
}

/// A client that announces 200 MB and then trickles: refused on the announcement, at once,
/// without the receiver waiting for (or buffering) the body; and one that streams a chunked
/// body slowly past the limit is refused once it passes it, before it has sent the rest.
#[tokio::test]
async fn a_slow_oversize_body_is_refused_before_it_is_read() {
    let mut settings = settings("master");
    settings.max_body_bytes = 64 * 1024;
    let receiver = Receiver::start(settings).await;
    let address = receiver.base.trim_start_matches("http://").to_string();

    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let head = "POST /hooks/github HTTP/1.1\r\nHost: receiver\r\nX-GitHub-Event: push\r\n\
        X-Hub-Signature-256: sha256=00\r\nContent-Length: 209715200\r\n\r\n{\"ref\":";
    stream.write_all(head.as_bytes()).await.expect("send the head");
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 65536 bytes"), "{answer}");
    eprintln!("declared 200 MB: 413 after {:?}", started.elapsed());

    // Chunked, 16 KiB every 50 ms, 4 MiB in all if nobody stops it.
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let head = "POST /hooks/github HTTP/1.1\r\nHost: receiver\r\nX-GitHub-Event: push\r\n\
        X-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the head");
    let (mut reader, mut writer) = stream.into_split();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let trickle = tokio::spawn(async move {
        let chunk = [b' '; 16 * 1024];
        for _ in 0..256 {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if writer.write_all(&framed).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut answer))
        .await
        .expect("answered while the body was still streaming")
        .expect("read");
    let sent_then = sent.load(std::sync::atomic::Ordering::SeqCst);
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(sent_then < 1024 * 1024, "answered only after {sent_then} bytes");
    eprintln!("chunked trickle: 413 after {sent_then} bytes sent");
    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn unconfigured_receiver_is_not_found() {
    let mut settings = settings("master");
    settings.gitlab_token = None;
    settings.generic_secret = Some(String::new());
    let receiver = Receiver::start(settings).await;
    let body = corpus("go-gitlab/testdata/webhooks/push.json");
    let headers = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", GITLAB_TOKEN.to_string()),
    ];
    let (status, answer) = receiver.post("/hooks/gitlab", &headers, body).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"], "the GitLab receiver is not configured");
    assert_eq!(receiver.post("/hooks/generic", &[], Vec::new()).await.0, 404);
    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn malformed_payload_after_a_valid_signature_is_a_bad_request() {
    let receiver = Receiver::start(settings("master")).await;
    let body = br#"{"ref": "refs/heads/master"}"#.to_vec();
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "GitHub push delivery has no after");

    let no_event =
        vec![("X-Hub-Signature-256", format!("sha256={}", sign(GITHUB_SECRET.as_bytes(), &body)))];
    let (status, answer) = receiver.post("/hooks/github", &no_event, body).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("no X-GitHub-Event header")));
    assert_eq!(receiver.hooks(), []);
}

#[tokio::test]
async fn gitlab_token_push_and_merge_request() {
    let receiver = Receiver::start(settings("master")).await;
    let push = corpus("drone-go-scm/scm/driver/gitlab/testdata/webhooks/push.json");
    let headers = |event: &str| {
        vec![("X-Gitlab-Event", event.to_string()), ("X-Gitlab-Token", GITLAB_TOKEN.to_string())]
    };
    assert_eq!(receiver.post("/hooks/gitlab", &headers("Push Hook"), push).await.0, 200);
    let mr = corpus("drone-go-scm/scm/driver/gitlab/testdata/webhooks/pull_request_merge.json");
    assert_eq!(receiver.post("/hooks/gitlab", &headers("Merge Request Hook"), mr).await.0, 200);
    let deleted = corpus("drone-go-scm/scm/driver/gitlab/testdata/webhooks/branch_delete.json");
    let (status, answer) = receiver.post("/hooks/gitlab", &headers("Push Hook"), deleted).await;
    assert_eq!((status, answer["ignored"].as_str()), (202, Some("branch feature deleted")));
    assert_eq!(
        receiver.hooks(),
        [
            master_push(
                Forge::GitLab,
                "gitlab-org/hello-world",
                "2adc9465c4edfc33834e173fe89436a7cb899a1d"
            ),
            Hook::PullRequest(PullRequestHook {
                forge: Forge::GitLab,
                repository: "gitlab-org/hello-world".to_string(),
                project_id: Some(4861503),
                number: 1,
                action: PullRequestAction::Closed,
                head_commit: "c4c79227ed610f1151f05bbc5be33b4f340d39c8".to_string(),
                head_branch: "feature".to_string(),
                base_branch: "master".to_string(),
                head_repository: Some("gitlab-org/hello-world".to_string()),
            }),
        ]
    );
}

#[tokio::test]
async fn gitea_route_takes_gitea_and_forgejo() {
    let receiver = Receiver::start(settings("main")).await;
    let gitea = corpus("drone-go-scm/scm/driver/gitea/testdata/webhooks/push.json");
    let signature = sign(GITEA_SECRET.as_bytes(), &gitea);
    let headers = vec![("X-Gitea-Event", "push".to_string()), ("X-Gitea-Signature", signature)];
    let (status, answer) = receiver.post("/hooks/gitea", &headers, gitea).await;
    assert_eq!(
        (status, answer["ignored"].as_str()),
        (202, Some("push to branch master, not the watched branch main"))
    );

    let forgejo = corpus("woodpecker/server/forge/forgejo/fixtures/HookPush.json");
    let signature = sign(GITEA_SECRET.as_bytes(), &forgejo);
    // What Forgejo sends: its own headers and Gitea's.
    let headers = vec![
        ("X-Forgejo-Event", "push".to_string()),
        ("X-Forgejo-Signature", signature.clone()),
        ("X-Gitea-Event", "push".to_string()),
        ("X-Gitea-Signature", signature),
    ];
    let (status, answer) = receiver.post("/hooks/gitea", &headers, forgejo).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        receiver.hooks(),
        [Hook::Push {
            forge: Forge::Forgejo,
            repository: "gordon/hello-world".to_string(),
            branch: "main".to_string(),
            commit: "ef98532add3b2feb7a137426bba1248724367df5".to_string(),
        }]
    );
}

#[tokio::test]
async fn generic_sync_request() {
    let receiver = Receiver::start(settings("main")).await;
    let signed = |body: &[u8]| {
        vec![("X-Gitfleet-Signature", format!("sha256={}", sign(GENERIC_SECRET.as_bytes(), body)))]
    };
    let (status, answer) = receiver.post("/hooks/generic", &signed(b""), Vec::new()).await;
    assert_eq!((status, answer["accepted"].as_str()), (200, Some("sync request")));
    let body =
        br#"{"ref": "refs/heads/main", "after": "ef98532add3b2feb7a137426bba1248724367df5"}"#;
    assert_eq!(receiver.post("/hooks/generic", &signed(body), body.to_vec()).await.0, 200);
    let other = br#"{"ref": "refs/heads/dev"}"#;
    assert_eq!(receiver.post("/hooks/generic", &signed(other), other.to_vec()).await.0, 202);
    assert_eq!(
        receiver.hooks(),
        [
            Hook::Sync { branch: None, commit: None, app: None },
            Hook::Sync {
                branch: Some("main".to_string()),
                commit: Some("ef98532add3b2feb7a137426bba1248724367df5".to_string()),
                app: None,
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_deliveries_are_all_answered() {
    let receiver = Arc::new(Receiver::start(settings("master")).await);
    let body = corpus(GITHUB_PUSH);
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let headers = github_headers("push", &body, GITHUB_SECRET);
        let (receiver, body) = (Arc::clone(&receiver), body.clone());
        deliveries.spawn(async move { receiver.post("/hooks/github", &headers, body).await.0 });
    }
    let mut answered = 0;
    while let Some(status) = deliveries.join_next().await {
        assert_eq!(status.expect("delivery task"), 200);
        answered += 1;
    }
    assert_eq!(answered, 1000);
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1000);
    let expected = master_push(
        Forge::GitHub,
        "Codertocat/Hello-World",
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    );
    assert!(hooks.iter().all(|hook| *hook == expected));
}

/// Collects what the receiver logs (current-thread runtime: the server task runs on the test's
/// thread, where the subscriber is set).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refused_signature_is_logged_with_forge_and_peer_but_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let receiver = Receiver::start(settings("master")).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, "not the secret");
    let sent_signature = headers[2].1.clone();
    assert_eq!(receiver.post("/hooks/github", &headers, body.clone()).await.0, 401);
    let token = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", "guessed-token".to_string()),
    ];
    assert_eq!(receiver.post("/hooks/gitlab", &token, body).await.0, 401);

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("log lock")).into_owned();
    let refused: Vec<&str> = logs.lines().filter(|line| line.contains("bad signature")).collect();
    assert_eq!(refused.len(), 2, "{logs}");
    assert!(refused[0].contains("WARN") && refused[0].contains("forge=GitHub"), "{logs}");
    assert!(refused[0].contains("peer=127.0.0.1:"), "{logs}");
    assert!(refused[1].contains("forge=GitLab"), "{logs}");
    for secret in [GITHUB_SECRET, GITLAB_TOKEN, "guessed-token", sent_signature.as_str()] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
    let hex = sent_signature.trim_start_matches("sha256=");
    assert!(!logs.contains(hex), "{logs}");
}

#[tokio::test]
async fn a_delivery_about_another_repository_is_ignored() {
    let mut watched = settings("master");
    watched.repository = gitfleet::webhook::repository_path("git@github.com:someone/else.git");
    let receiver = Receiver::start(watched).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ignored"], "another repository than the watched one");
    let body = corpus(GITHUB_PR);
    let headers = github_headers("pull_request", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    assert!(receiver.hooks().is_empty(), "{:?}", receiver.hooks());

    // The same delivery, with the watched repository named by its https URL, goes through.
    let mut watched = settings("master");
    watched.repository =
        gitfleet::webhook::repository_path("https://github.com/Codertocat/Hello-World.git");
    let receiver = Receiver::start(watched).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(receiver.hooks().len(), 1);
}

#[tokio::test]
async fn a_repeated_delivery_id_reaches_the_sink_once() {
    let receiver = Receiver::start(settings("master")).await;
    let body = corpus(GITHUB_PUSH);
    let headers = github_headers("push", &body, GITHUB_SECRET);
    let (status, answer) = receiver.post("/hooks/github", &headers, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = receiver.post("/hooks/github", &headers, body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ignored"], "duplicate delivery");
    assert_eq!(receiver.hooks().len(), 1);

    // GitLab's id header; a new id is a new delivery.
    let body = corpus("drone-go-scm/scm/driver/gitlab/testdata/webhooks/push.json");
    let gitlab = |uuid: &str| {
        vec![
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Token", GITLAB_TOKEN.to_string()),
            ("X-Gitlab-Event-UUID", uuid.to_string()),
        ]
    };
    for (uuid, expected) in [("u-1", 200), ("u-1", 202), ("u-2", 200)] {
        let (status, answer) = receiver.post("/hooks/gitlab", &gitlab(uuid), body.clone()).await;
        assert_eq!(status, expected, "{uuid}: {answer}");
    }
    assert_eq!(receiver.hooks().len(), 3);
}
