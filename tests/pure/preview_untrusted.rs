//! Pull-request previews treat the pull request as untrusted: each case runs a real
//! [`Previewer`] on a real Git repository (the base on `main`, the head on
//! `refs/pull/7/head`), against the fake GitHub of `forge_comments` (which records every
//! request) and, for hosts, small local servers: an "engine" that answers every call with an
//! error body, a port that accepts and never answers, and an "internal address" that counts
//! who connects to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gitfleet::controller::previews::{Handled, PreviewSettings, Previewer};
use gitfleet::controller::source::Source;
use gitfleet::forge::{CommentAction, PreviewFailure};
use gitfleet::git::{Credentials, MirrorOptions, PreviewBudget};
use gitfleet::model::LoadOptions;
use gitfleet::webhook::{Forge as HookForge, PullRequestAction, PullRequestHook};

use crate::forge_comments::{CREATED_ID, Fake, Forge, Odd, api};
use crate::support::GitRepo;

/// What the fake engine says to every request: it must never reach a comment.
const ENGINE_SECRET: &str = "ENGINE-SECRET-db-password-hunter2 at 10.250.152.77";

/// A Docker "engine" on loopback that answers every request with HTTP 500 and
/// [`ENGINE_SECRET`] in Docker's error shape.
pub(crate) async fn failing_engine() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            format!(r#"{{"message":"{ENGINE_SECRET}"}}"#),
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A port that accepts connections, counts them, and never answers.
async fn silent_port() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, count)
}

pub(crate) fn fleet(endpoint: &str, extra: &str) -> String {
    format!(
        "hosts:\n  a:\n    endpoint: {endpoint}\nsettings:\n  name: preview\n  observe_timeout: 3s\n{extra}"
    )
}

pub(crate) const SHOP: &str = "services:\n  web:\n    image: nginx:1.27\n";

/// The repository: `main` at the base (fleet.yaml + `apps/shop`), `refs/pull/7/head` at a
/// head made by `change` on top of it. Returns the repository and the head commit.
pub(crate) fn repository(
    base_fleet: &str,
    change: impl FnOnce(&GitRepo) -> String,
) -> (GitRepo, String) {
    let repo = GitRepo::new(&[("fleet.yaml", base_fleet), ("apps/shop/compose.yaml", SHOP)]);
    let base = repo.head();
    let branch = repo.branch();
    let head = change(&repo);
    let git = git2::Repository::open(repo.path()).unwrap();
    let oid = |id: &str| git2::Oid::from_str(id).unwrap();
    git.reference("refs/pull/7/head", oid(&head), true, "pull request").unwrap();
    git.reference(&format!("refs/heads/{branch}"), oid(&base), true, "base").unwrap();
    (repo, head)
}

pub(crate) fn hook(head: &str) -> PullRequestHook {
    PullRequestHook {
        forge: HookForge::GitHub,
        repository: "acme/shop".into(),
        project_id: None,
        number: 7,
        action: PullRequestAction::Opened,
        head_commit: head.to_string(),
        head_branch: "feature".into(),
        base_branch: "main".into(),
        head_repository: Some("acme/shop".into()),
    }
}

pub(crate) fn previewer(repo: &GitRepo, fake: &Fake, settings: PreviewSettings) -> Previewer {
    let cache = tempfile::tempdir().unwrap();
    let options =
        MirrorOptions { credentials: Credentials::None, timeout: Duration::from_secs(10) };
    let location = repo.path().to_str().unwrap();
    let source = Source::open(
        location,
        cache.path(),
        options,
        &repo.branch(),
        LoadOptions::default(),
        false,
    )
    .unwrap();
    let client = api(Forge::GitHub).client(fake, crate::forge_comments::TOKEN);
    Previewer::new(source, client, settings, "acme/shop", &repo.branch(), None)
}

/// The one comment's body, after exactly one list and one create.
pub(crate) fn posted(fake: &Fake) -> String {
    let api = api(Forge::GitHub);
    let requests = fake.take_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0], api.get(api.first));
    let body = fake.comment(CREATED_ID).expect("a comment").body;
    assert_eq!(requests[1], api.create(&body));
    body
}

#[tokio::test]
async fn a_fork_is_previewed_only_when_the_operator_opts_in() {
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let mut from_fork = hook(&head);
    from_fork.head_repository = Some("mallory/shop".into());
    let mut unnamed = hook(&head);
    unnamed.head_repository = None;

    let closed = previewer(&repo, &fake, PreviewSettings::default());
    for hook in [&from_fork, &unnamed] {
        let handled = closed.handle(hook).await;
        assert!(matches!(handled, Handled::Skipped(why) if why.contains("fork")), "{handled:?}");
    }
    assert_eq!(fake.take_requests(), []);

    let open = previewer(&repo, &fake, PreviewSettings { forks: true, ..Default::default() });
    let handled = open.handle(&from_fork).await;
    assert_eq!(handled, Handled::Posted(CommentAction::Created { id: CREATED_ID }));
    assert!(posted(&fake).contains("gitfleet plan preview for `"));
}

#[tokio::test]
async fn the_base_fleet_decides_hosts_and_limits_and_the_head_gives_only_apps() {
    let engine = failing_engine().await;
    let (internal, connections) = silent_port().await;
    let big = format!("services:\n  web:\n    image: nginx:1.27\n# {}\n", "x".repeat(1_200_000));
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        // The pull request points the fleet at an internal address with TLS files from the
        // controller's machine, raises the limits, and adds a file over the base's limit.
        let hostile = "hosts:\n  a:\n    endpoint: tcp://{INTERNAL}\n    tls:\n      ca: /etc/shadow\n      cert: /etc/shadow\n      key: /etc/shadow\nsettings:\n  name: preview\n  limits:\n    max_file_size: 100000000\n";
        repo.commit(
            &[
                ("fleet.yaml", &hostile.replace("{INTERNAL}", &internal.to_string())),
                ("apps/big/compose.yaml", &big),
            ],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let previewer = previewer(&repo, &fake, PreviewSettings::default());
    assert_eq!(
        previewer.handle(&hook(&head)).await,
        Handled::Posted(CommentAction::Created { id: CREATED_ID })
    );
    let body = posted(&fake);
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the head's host was contacted");
    assert!(body.contains("This pull request changes `fleet.yaml`."), "{body}");
    // The base's limit (1 MiB) applies to the head's file.
    assert!(body.contains("apps/big/compose.yaml:1:1"), "{body}");
    assert!(body.contains("(limit `max_file_size`)"), "{body}");
    assert!(!body.contains("/etc/shadow"), "{body}");
}

#[tokio::test]
async fn host_and_forge_error_bodies_never_reach_a_comment() {
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/notes/compose.yaml", "services:\n  db:\n    image: postgres:16\n")],
            &[],
        )
    });
    // First the forge refuses the token: what it said stays in the log.
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let wrong = {
        let cache = tempfile::tempdir().unwrap();
        let options =
            MirrorOptions { credentials: Credentials::None, timeout: Duration::from_secs(10) };
        let source = Source::open(
            repo.path().to_str().unwrap(),
            cache.path(),
            options,
            &repo.branch(),
            LoadOptions::default(),
            false,
        )
        .unwrap();
        let client = api(Forge::GitHub).client(&fake, "gf-wrong-token-0b1d2e");
        Previewer::new(
            source,
            client,
            PreviewSettings::default(),
            "acme/shop",
            &repo.branch(),
            None,
        )
    };
    assert_eq!(wrong.handle(&hook(&head)).await, Handled::NotPosted);
    fake.take_requests();

    let previewer = previewer(&repo, &fake, PreviewSettings::default());
    assert_eq!(
        previewer.handle(&hook(&head)).await,
        Handled::Posted(CommentAction::Created { id: CREATED_ID })
    );
    let body = posted(&fake);
    assert!(body.contains("host a is unreachable (the host answered with an error)"), "{body}");
    for leaked in [ENGINE_SECRET, "hunter2", "10.250.152.77", "Bad credentials"] {
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }

    // A host that answers nothing: the fixed words for that.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (repo, head) = repository(&fleet(&format!("tcp://{closed}"), ""), |repo| {
        repo.commit(
            &[("apps/notes/compose.yaml", "services:\n  db:\n    image: postgres:16\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let unanswered = self::previewer(&repo, &fake, PreviewSettings::default());
    unanswered.handle(&hook(&head)).await;
    let body = posted(&fake);
    assert!(body.contains("host a is unreachable (no answer from the host)"), "{body}");
    assert!(!body.contains(&closed.port().to_string()), "{body}");
}

#[tokio::test]
async fn comments_go_only_to_the_configured_repository() {
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let previewer = previewer(&repo, &fake, PreviewSettings::default());
    let mut elsewhere = hook(&head);
    elsewhere.repository = "mallory/shop".into();
    elsewhere.head_repository = Some("mallory/shop".into());
    let handled = previewer.handle(&elsewhere).await;
    assert_eq!(handled, Handled::Skipped("another repository than the configured one"));
    let mut suffix = hook(&head);
    suffix.repository = "hop".into();
    assert!(matches!(previewer.handle(&suffix).await, Handled::Skipped(_)));
    assert_eq!(fake.take_requests(), []);

    // A GitLab-style project id in the payload is not where the comment goes.
    let mut with_id = hook(&head);
    with_id.project_id = Some(999);
    assert_eq!(
        previewer.handle(&with_id).await,
        Handled::Posted(CommentAction::Created { id: CREATED_ID })
    );
    posted(&fake);
}

#[tokio::test]
async fn symlinks_in_the_head_read_nothing_outside_the_repository() {
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        let app = repo.path().join("apps/leak");
        std::fs::create_dir_all(&app).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", app.join("passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/hostname", app.join("host.txt")).unwrap();
        let compose = "services:\n  web:\n    image: nginx:1.27\n    configs: [passwd, host]\nconfigs:\n  passwd:\n    file: ./passwd\n  host:\n    file: ./host.txt\n";
        let linked = repo.path().join("apps/linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", linked.join("compose.yaml")).unwrap();
        repo.commit(&[("apps/leak/compose.yaml", compose)], &[])
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let previewer = previewer(&repo, &fake, PreviewSettings::default());
    assert_eq!(
        previewer.handle(&hook(&head)).await,
        Handled::Posted(CommentAction::Created { id: CREATED_ID })
    );
    let body = posted(&fake);
    assert!(body.contains("does not validate"), "{body}");
    assert!(body.contains("apps/leak/compose.yaml"), "{body}");
    assert!(body.contains("apps/linked/compose.yaml"), "{body}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().unwrap();
    assert!(!body.contains(first), "{body}");
    assert!(!body.contains("root:"), "{body}");
}

#[tokio::test]
async fn a_head_over_the_budget_is_not_read() {
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        let files: Vec<(String, String)> =
            (0..20).map(|i| (format!("apps/many/conf/{i}.json"), "{}".to_string())).collect();
        let files: Vec<(&str, &str)> =
            files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        repo.commit(&files, &[])
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let budget = PreviewBudget { max_entries: 10, max_bytes: 1 << 20 };
    let previewer = previewer(&repo, &fake, PreviewSettings { budget, ..Default::default() });
    previewer.handle(&hook(&head)).await;
    let body = posted(&fake);
    assert!(body.contains(&escape(PreviewFailure::TooLarge.message())), "{body}");
}

/// A preview has a deadline, and its blocking work runs off the runtime: on a
/// single-threaded runtime (where `block_in_place` would panic), a ticker keeps ticking while
/// the preview waits on a host that never answers, and the preview gives up at its deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_preview_has_a_deadline_and_blocks_nothing_else() {
    let (silent, connections) = silent_port().await;
    let base = fleet(&format!("tcp://{silent}"), "")
        .replace("observe_timeout: 3s", "observe_timeout: 60s");
    let (repo, head) = repository(&base, |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let deadline = Duration::from_secs(1);
    let previewer = previewer(&repo, &fake, PreviewSettings { deadline, ..Default::default() });
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let started = Instant::now();
    let handled = previewer.handle(&hook(&head)).await;
    let took = started.elapsed();
    ticker.abort();
    assert_eq!(handled, Handled::Posted(CommentAction::Created { id: CREATED_ID }));
    assert!(took >= deadline && took < Duration::from_secs(10), "{took:?}");
    assert!(connections.load(Ordering::SeqCst) >= 1, "the host was never asked");
    // A 10 ms ticker over at least a second: a runtime blocked by the preview would show
    // a handful at most.
    let ticked = ticks.load(Ordering::SeqCst);
    assert!(ticked >= 30, "the runtime was blocked: {ticked} ticks in {took:?}");
    let body = posted(&fake);
    assert!(body.contains(&escape(PreviewFailure::TimedOut.message())), "{body}");
}

/// The comment escapes markdown punctuation in fixed sentences too.
fn escape(text: &str) -> String {
    text.replace('_', "\\_")
}
