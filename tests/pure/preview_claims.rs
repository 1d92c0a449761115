//! Pull-request previews de-duplicated across instances through etcd (`leader::claims`): two
//! real [`Previewer`](gitfleet::controller::previews::Previewer)s ("instances", each with its
//! own repository handle and its own etcd connection and member name) on a real etcd, the
//! fake GitHub of `forge_comments` recording every request it gets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfleet::controller::previews::{Handled, PreviewSettings};
use gitfleet::forge::CommentAction;
use gitfleet::leader::LeaderSettings;
use gitfleet::leader::claims::{Claimed, PreviewClaims};
use gitfleet::leader::etcd::Etcd;

use crate::forge_comments::{CREATED_ID, Fake, Forge, Odd, api};
use crate::preview_untrusted::{failing_engine, fleet, hook, posted, previewer, repository};
use crate::support::{EtcdCluster, GitRepo};

/// The claims of instance `member`, with a 2 s claim lease (etcd's shortest is about 1.5 s).
async fn claims(cluster: &EtcdCluster, member: &str) -> PreviewClaims {
    let mut settings = LeaderSettings::new(cluster.endpoints(), "previews");
    settings.member = member.into();
    settings.lease_ttl = Duration::from_secs(2);
    let etcd = Etcd::connect(&settings).await.expect("etcd");
    PreviewClaims::new(etcd, Arc::new(settings))
}

/// The repository of `preview_untrusted` with pull request 7 changing `shop`'s image; its
/// fleet's one host answers every call with an error. The head commit.
async fn a_pull_request() -> (GitRepo, String) {
    let engine = failing_engine().await;
    repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    })
}

/// A new head for pull request 7 (the watched branch stays at its base).
fn push_to_the_pull_request(repo: &GitRepo, image: &str) -> String {
    let branch = repo.branch();
    let git = git2::Repository::open(repo.path()).unwrap();
    let base = git.refname_to_id(&format!("refs/heads/{branch}")).unwrap();
    let compose = format!("services:\n  web:\n    image: {image}\n");
    let head = repo.commit(&[("apps/shop/compose.yaml", &compose)], &[]);
    let oid = git2::Oid::from_str(&head).unwrap();
    git.reference("refs/pull/7/head", oid, true, "pull request").unwrap();
    git.reference(&format!("refs/heads/{branch}"), base, true, "base").unwrap();
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pull_request_head_is_previewed_by_one_instance() {
    let cluster = EtcdCluster::start(1);
    let (repo, head) = a_pull_request().await;
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let with = |claims| PreviewSettings { claims: Some(claims), ..Default::default() };
    let a = previewer(&repo, &fake, with(claims(&cluster, "a").await));
    let b = previewer(&repo, &fake, with(claims(&cluster, "b").await));
    let skipped = Handled::Skipped("another instance previews this head");

    // One delivery each for the same head, at the same time: one comment request.
    let delivery = hook(&head);
    let (x, y) = tokio::join!(a.handle(&delivery), b.handle(&delivery));
    let created = Handled::Posted(CommentAction::Created { id: CREATED_ID });
    assert!((x == created && y == skipped) || (x == skipped && y == created), "a: {x:?}, b: {y:?}");
    let body = posted(&fake); // exactly one list and one create
    assert!(body.contains(&head[..7]), "{body}");

    // Redeliveries of that head, to either instance: previewed already, nothing sent.
    assert_eq!(a.handle(&hook(&head)).await, skipped);
    assert_eq!(b.handle(&hook(&head)).await, skipped);
    assert_eq!(fake.take_requests(), []);

    // A new head is claimed by an instance that dies mid-preview (its claim is left behind,
    // renewed by nobody): deliveries are skipped until the claim's lease expires, then one
    // is previewed, and the comment is edited (not a second one).
    let next = push_to_the_pull_request(&repo, "nginx:1.29");
    let dead = claims(&cluster, "c").await;
    let Claimed::Won(claim) = dead.claim(7, &next).await else { panic!("the claim was taken") };
    let claimed = Instant::now();
    drop(claim);
    assert_eq!(b.handle(&hook(&next)).await, skipped);
    let handled = loop {
        let handled = b.handle(&hook(&next)).await;
        if handled != skipped {
            break handled;
        }
        assert!(claimed.elapsed() < Duration::from_secs(10), "the dead claim never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("a dead instance's claim expired after {:.1}s", claimed.elapsed().as_secs_f64());
    assert_eq!(handled, Handled::Posted(CommentAction::Edited { id: CREATED_ID }));
    let api = api(Forge::GitHub);
    let body = fake.comment(CREATED_ID).expect("the comment").body;
    assert!(body.contains(&next[..7]), "{body}");
    assert_eq!(fake.take_requests(), [api.get(api.first), api.edit(CREATED_ID, &body)]);
    assert_eq!(a.handle(&hook(&next)).await, skipped);
    assert_eq!(fake.take_requests(), []);
}

/// A failed preview (here: the head moved since the hook) releases its claim, so the next
/// delivery is previewed again; a head that is not a commit id is previewed unclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preview_releases_its_claim() {
    let cluster = EtcdCluster::start(1);
    let (repo, head) = a_pull_request().await;
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let settings =
        PreviewSettings { claims: Some(claims(&cluster, "a").await), ..Default::default() };
    let a = previewer(&repo, &fake, settings);
    // The hook names a commit the pull request's ref no longer points at.
    let stale = "0123456789abcdef0123456789abcdef01234567";
    let created = Handled::Posted(CommentAction::Created { id: CREATED_ID });
    assert_eq!(a.handle(&hook(stale)).await, created);
    assert!(posted(&fake).contains("moved"), "a failure's sentence");
    let again = a.handle(&hook(stale)).await;
    assert_eq!(again, Handled::Posted(CommentAction::Unchanged { id: CREATED_ID }));
    fake.take_requests();
    let held = claims(&cluster, "b").await;
    assert!(matches!(held.claim(7, "not-a-commit").await, Claimed::Unavailable(_)));
    assert_eq!(held.key(7, &head.to_uppercase()), held.key(7, &head));
}

/// A killed-on-drop `gitfleet run` and the address it listens on.
struct Instance {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _cache: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gitfleet run log ----\n{}", self.log.lock().unwrap());
        }
    }
}

const SECRET: &str = "preview-claims-secret";

fn run_instance(repo: &GitRepo, cluster: &EtcdCluster, fake: &Fake, member: &str) -> Instance {
    let cache = tempfile::TempDir::new().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command
        .args(["run", "--repo", repo.path().to_str().unwrap(), "--branch", &repo.branch()])
        .args(["--listen", "127.0.0.1:0", "--no-status", "--poll-interval", "0s"])
        .args(["--cache-dir", cache.path().to_str().unwrap()])
        .args(["--etcd", &cluster.endpoints_arg(), "--etcd-member", member])
        .args(["--fleet", "previews", "--lease-ttl", "2s"])
        .args(["--forge", "github", "--forge-api", &fake.base()])
        .args(["--forge-token", crate::forge_comments::TOKEN])
        .args(["--forge-repository", "acme/shop", "--webhook-github-secret", SECRET])
        .env("GITFLEET_LOG", "gitfleet=info");
    let (child, log, rx) = crate::support::spawn_announcing(command, &["gitfleet: listening on "]);
    let (_, addr) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("gitfleet run did not start:\n{}", log.lock().unwrap()));
    Instance { child, addr, log, _cache: cache }
}

/// Posts a signed GitHub `pull_request` delivery; the status code.
fn deliver(addr: std::net::SocketAddr, body: &str, delivery: &str) -> u16 {
    use std::io::{Read, Write};
    let signature = gitfleet::webhook::sign(SECRET.as_bytes(), body.as_bytes());
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: gitfleet\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// The same, end to end: two `gitfleet run --etcd` instances (one leads, one stands by),
/// each gets one delivery of the same pull request head: the fake forge sees exactly one
/// list and one create, and nothing more in the seconds after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gitfleet_run_instances_write_one_comment() {
    let cluster = EtcdCluster::start(1);
    let (repo, head) = a_pull_request().await;
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let instances =
        [run_instance(&repo, &cluster, &fake, "m0"), run_instance(&repo, &cluster, &fake, "m1")];
    let body = serde_json::json!({
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": "acme/shop"}},
            "base": {"ref": repo.branch()},
        },
        "repository": {"full_name": "acme/shop"},
    })
    .to_string();
    let addrs: Vec<_> = instances.iter().map(|i| i.addr).collect();
    let codes = tokio::task::spawn_blocking(move || {
        let first = std::thread::spawn({
            let body = body.clone();
            let addr = addrs[0];
            move || deliver(addr, &body, "delivery-to-m0")
        });
        let second = deliver(addrs[1], &body, "delivery-to-m1");
        [first.join().unwrap(), second]
    })
    .await
    .unwrap();
    assert_eq!(codes, [200, 200], "the deliveries were not accepted");
    let api = api(Forge::GitHub);
    let until = Instant::now() + Duration::from_secs(30);
    while fake.comment(CREATED_ID).is_none() {
        assert!(Instant::now() < until, "no comment within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second preview to show itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let comment = fake.comment(CREATED_ID).unwrap().body;
    assert!(comment.contains(&head[..7]), "{comment}");
    assert_eq!(fake.take_requests(), [api.get(api.first), api.create(&comment)]);
    let skipped = instances
        .iter()
        .filter(|i| i.log.lock().unwrap().contains("pull request head claimed by another preview"));
    assert_eq!(skipped.count(), 1, "one instance skipped the head");
}
