//! `gitfleet run` end to end: the real binary as a controller, a bare "origin" repository
//! served over HTTP (so only webhooks and resyncs wake it: polling is off), a working clone
//! that pushes, two real Docker daemons from the test bed, signed GitHub webhooks, and a
//! local HTTP server that plays GitHub's comments API and records every request.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{BareRepo, DockerHost, GitHttpServer, GitRepo, Testbed};

const SECRET: &str = "webhook-secret";

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = String::from("settings: {name: ctl, observe_timeout: 3s}\nhosts:\n");
    for (host, zone) in bed.hosts().iter().zip(["a", "b"]) {
        text.push_str(&format!(
            "  {}:\n    endpoint: {}\n    labels: {{zone: {zone}}}\n",
            host.name(),
            host.tcp_endpoint()
        ));
    }
    text
}

fn shop(tag: &str, replicas: u32) -> String {
    format!(
        "services:\n  web:\n    image: gitfleet/web:{tag}\n    deploy:\n      replicas: {replicas}\n      update_config: {{parallelism: 2, monitor: 1s}}\n"
    )
}

const NOTES: &str = "\
services:
  db:
    image: gitfleet/db:1
    volumes: [data:/data]
    deploy:
      placement: {constraints: [node.labels.zone == b]}
volumes:
  data: {}
";

/// The controller process; killed on drop. (Also used by `ha.rs`.)
pub(crate) struct Controller {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gitfleet run log ----\n{}", self.log.lock().unwrap());
        }
    }
}

impl Controller {
    pub(crate) fn start(repo_url: &str, cache: &std::path::Path, extra: &[&str]) -> Controller {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
        command
            .args(["run", "--repo", repo_url, "--listen", "127.0.0.1:0"])
            .args(["--cache-dir", cache.to_str().unwrap(), "--poll-interval", "0s"])
            .args(["--webhook-github-secret", SECRET])
            .args(extra);
        Controller::spawn(command)
    }

    /// Starts `command` (a `gitfleet run`) and waits until it listens.
    fn spawn(mut command: Command) -> Controller {
        command.env("GITFLEET_LOG", "gitfleet=debug");
        let (child, log, rx) =
            crate::support::spawn_announcing(command, &["gitfleet: listening on "]);
        let (_, addr) = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("gitfleet run did not start listening:\n{}", log.lock().unwrap())
        });
        Controller { child, addr, log }
    }

    fn status(&self) -> serde_json::Value {
        let (code, body) = http(self.addr, "GET", "/api/status", &[], b"");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Sends a GitHub delivery, signed with `secret`; the status code.
    fn github(&self, event: &str, body: &str, secret: &str) -> u16 {
        let signature =
            format!("sha256={}", gitfleet::webhook::sign(secret.as_bytes(), body.as_bytes()));
        let headers = [("X-GitHub-Event", event), ("X-Hub-Signature-256", signature.as_str())];
        http(self.addr, "POST", "/hooks/github", &headers, body.as_bytes()).0
    }

    pub(crate) fn push_hook(&self, commit: &str) -> u16 {
        let body = format!(
            r#"{{"ref": "refs/heads/main", "after": "{commit}", "repository": {{"full_name": "acme/fleet"}}}}"#
        );
        self.github("push", &body, SECRET)
    }

    /// Waits until `check` holds on the status, or fails with the last status and the log.
    fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&serde_json::Value) -> bool) {
        let started = Instant::now();
        loop {
            let status = self.status();
            if check(&status) {
                eprintln!("{what}: after {:.1}s", started.elapsed().as_secs_f64());
                return;
            }
            if started.elapsed() > timeout {
                panic!("{what}: not within {timeout:?}; status:\n{status:#}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The number of the last sync recorded (0 before the first).
    fn last_sync(&self) -> u64 {
        self.status()["syncs"][0]["number"].as_u64().unwrap_or(0)
    }

    /// How many syncs numbered above `mark` had `reason` among their reasons. Counted by
    /// number, not by the length of the history: that is bounded (50) and drops the oldest.
    fn syncs_since(&self, mark: u64, reason: &str) -> usize {
        let status = self.status();
        let syncs = status["syncs"].as_array().unwrap();
        assert!(
            syncs.last().is_none_or(|s| s["number"].as_u64().unwrap() <= mark + 1),
            "more syncs since {mark} than the history holds"
        );
        syncs
            .iter()
            .filter(|s| s["number"].as_u64().unwrap() > mark)
            .filter(|s| s["reasons"].as_str().unwrap_or_default().contains(reason))
            .count()
    }
}

/// One HTTP/1.0 request to `addr`: the status code and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// `name -> (image, state)` of the fleet's containers on `host`.
fn containers(host: &DockerHost) -> BTreeMap<String, (String, String)> {
    host.docker(&[
        "ps",
        "-a",
        "--filter",
        "label=io.gitfleet.fleet=ctl",
        "--format",
        "{{.Names}}\t{{.Image}}\t{{.State}}",
    ])
    .lines()
    .filter_map(|line| {
        let mut parts = line.split('\t');
        Some((parts.next()?.to_string(), (parts.next()?.to_string(), parts.next()?.to_string())))
    })
    .collect()
}

/// The ids of the containers whose name starts with `prefix`, on every host, sorted.
fn ids(bed: &Testbed, prefix: &str) -> Vec<String> {
    let mut ids: Vec<String> = bed
        .hosts()
        .iter()
        .flat_map(|h| {
            h.docker(&["ps", "-aq", "--no-trunc", "--filter", &format!("name=^{prefix}")])
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids
}

fn running_images(bed: &Testbed, service: &str) -> Vec<String> {
    let mut images: Vec<String> = bed
        .hosts()
        .iter()
        .flat_map(|h| containers(h).into_iter())
        .filter(|(name, (_, state))| {
            name.starts_with(service) && !name.contains(".old-") && state == "running"
        })
        .map(|(_, (image, _))| image)
        .collect();
    images.sort();
    images
}

fn deployed(status: &serde_json::Value) -> &str {
    status["deployed"]["commit"].as_str().unwrap_or_default()
}

/// A GitHub comments API on 127.0.0.1 that keeps comments in memory and records requests as
/// `METHOD path auth body`.
struct FakeGitHub {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeGitHub {
    fn start() -> FakeGitHub {
        use axum::extract::{Path, State};
        use axum::http::HeaderMap;
        use axum::routing::{get, patch};
        type Shared = Arc<Mutex<(Vec<serde_json::Value>, Vec<String>)>>;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared: Shared = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record =
            |requests: &Arc<Mutex<Vec<String>>>, line: String| requests.lock().unwrap().push(line);
        let auth = |headers: &HeaderMap| {
            headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
        };
        let app = {
            let (r1, r2, r3) = (requests.clone(), requests.clone(), requests.clone());
            axum::Router::new()
                .route(
                    "/repos/{owner}/{repo}/issues/{number}/comments",
                    get(move |State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, headers: HeaderMap| async move {
                        record(&r1, format!("GET /repos/{o}/{r}/issues/{n}/comments {}", auth(&headers)));
                        axum::Json(serde_json::Value::Array(s.lock().unwrap().0.clone()))
                    })
                    .post(move |State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| async move {
                        record(&r2, format!("POST /repos/{o}/{r}/issues/{n}/comments {}", auth(&headers)));
                        let mut s = s.lock().unwrap();
                        let id = 100 + s.0.len() as u64;
                        let comment = serde_json::json!({"id": id, "body": body["body"]});
                        s.0.push(comment.clone());
                        (axum::http::StatusCode::CREATED, axum::Json(comment))
                    }),
                )
                .route(
                    "/repos/{owner}/{repo}/issues/comments/{id}",
                    patch(move |State(s): State<Shared>, Path((o, r, id)): Path<(String, String, u64)>, headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| async move {
                        record(&r3, format!("PATCH /repos/{o}/{r}/issues/comments/{id} {}", auth(&headers)));
                        let mut s = s.lock().unwrap();
                        for comment in s.0.iter_mut() {
                            if comment["id"] == id {
                                comment["body"] = body["body"].clone();
                            }
                        }
                        axum::Json(serde_json::json!({"id": id, "body": body["body"]}))
                    }),
                )
                .with_state(shared.clone())
        };
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        let requests_for_test = requests;
        FakeGitHub { addr, requests: requests_for_test, _runtime: runtime }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[test]
fn the_controller_keeps_the_fleet_at_the_branch() {
    let bed = Testbed::builder().hosts(2).images().start();
    let origin = BareRepo::new("fleet.git");
    let server = GitHttpServer::start(origin.root(), None);
    let work = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop("1", 2)),
        ("apps/notes/compose.yaml", NOTES),
    ]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let github = FakeGitHub::start();
    let cache = tempfile::TempDir::new().unwrap();
    let ctl = Controller::start(
        &server.url("fleet.git"),
        cache.path(),
        &[
            // Longer than the test: a periodic resync (it fetches) that fell in the pause before
            // the flood below fetched the flooded commit first, and the flood then caused no
            // sync (the flake seen before, when the test ran slowly).
            "--resync-interval",
            "600s",
            "--forge",
            "github",
            "--forge-api",
            &format!("http://{}", github.addr),
            "--forge-token",
            "forge-token",
            "--forge-repository",
            "acme/fleet",
        ],
    );

    // Startup: the head is deployed on both hosts.
    let first = work.head();
    ctl.wait_for("cold deploy", Duration::from_secs(90), |s| deployed(s) == first);
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:1", "gitfleet/web:1"]);
    assert_eq!(containers(&bed[1])["notes-db-1"].1, "running");

    // A push with its webhook: the image changes on every replica.
    work.commit(&[("apps/shop/compose.yaml", &shop("2", 2))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let second = work.head();
    assert_eq!(ctl.push_hook(&second), 200);
    ctl.wait_for("image change", Duration::from_secs(60), |s| deployed(s) == second);
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:2", "gitfleet/web:2"]);

    // Per-app isolation: a commit that breaks shop and changes notes. notes is updated; shop
    // keeps running the second revision's containers (the same ones), and is reported with
    // its location and the revision it runs.
    let shop_ids = ids(&bed, "shop-web");
    work.commit(
        &[
            (
                "apps/shop/compose.yaml",
                "services:\n  web:\n    image: gitfleet/web:2\n    networks: [nowhere]\n",
            ),
            (
                "apps/notes/compose.yaml",
                &NOTES.replace(
                    "    volumes: [data:/data]\n",
                    "    volumes: [data:/data]\n    environment: {MODE: b}\n",
                ),
            ),
        ],
        &[],
    );
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let broken = work.head();
    assert_eq!(ctl.push_hook(&broken), 200);
    ctl.wait_for("the other app deployed, the broken one reported", Duration::from_secs(60), |s| {
        deployed(s) == broken && s["invalid_apps"]["shop"]["running"] == second.as_str()
    });
    let status = ctl.status();
    let errors = status["invalid_apps"]["shop"]["errors"].to_string();
    assert!(errors.contains("apps/shop/compose.yaml:4:"), "{errors}");
    let problems = status["problems"].to_string();
    assert!(problems.contains("apps/shop/compose.yaml:4:"), "{problems}");
    assert!(problems.contains(&format!("keeps running revision {}", &second[..12])), "{problems}");
    let env = bed[1].docker(&["inspect", "-f", "{{json .Config.Env}}", "notes-db-1"]);
    assert!(env.contains("MODE=b"), "notes was not updated: {env}");
    assert_eq!(ids(&bed, "shop-web"), shop_ids, "shop's containers were touched");
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:2", "gitfleet/web:2"]);

    // The next good commit deploys.
    work.commit(&[("apps/shop/compose.yaml", &shop("1", 3))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let fixed = work.head();
    assert_eq!(ctl.push_hook(&fixed), 200);
    ctl.wait_for("fixed commit", Duration::from_secs(60), |s| deployed(s) == fixed);
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:1"; 3]);
    assert!(ctl.status()["invalid_apps"].is_null(), "shop is still reported invalid");

    // A container removed by hand is back within seconds (Docker events, no resync).
    let victim = bed.hosts().iter().find(|h| containers(h).contains_key("shop-web-1")).unwrap();
    victim.docker(&["rm", "-f", "shop-web-1"]);
    let started = Instant::now();
    while containers(victim).get("shop-web-1").map(|c| c.1.as_str()) != Some("running") {
        assert!(started.elapsed() < Duration::from_secs(20), "shop-web-1 did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("removed by hand, back after {:.1}s", started.elapsed().as_secs_f64());

    // A flood of valid deliveries for a new commit: at most one running and one pending sync.
    work.commit(&[("apps/shop/compose.yaml", &format!("# flood\n{}", shop("1", 3)))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let flooded = work.head();
    std::thread::sleep(Duration::from_secs(2));
    let before = ctl.last_sync();
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (addr, flooded) = (ctl.addr, flooded.clone());
            std::thread::spawn(move || {
                let body = format!(r#"{{"ref": "refs/heads/main", "after": "{flooded}", "repository": {{"full_name": "acme/fleet"}}}}"#);
                let signature = format!("sha256={}", gitfleet::webhook::sign(SECRET.as_bytes(), body.as_bytes()));
                (0..100)
                    .filter(|_| http(addr, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signature)], body.as_bytes()).0 == 200)
                    .count()
            })
        })
        .collect();
    let flood_started = Instant::now();
    let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("1,000 deliveries answered in {:.2}s", flood_started.elapsed().as_secs_f64());
    assert_eq!(accepted, 1000);
    ctl.wait_for("flooded commit", Duration::from_secs(30), |s| deployed(s) == flooded);
    std::thread::sleep(Duration::from_secs(1));
    let flood_syncs = ctl.syncs_since(before, "webhook");
    assert!((1..=2).contains(&flood_syncs), "1,000 deliveries caused {flood_syncs} syncs");
    let fixed = flooded;

    // Bad signatures: refused, no sync.
    let before = ctl.last_sync();
    let body = format!(
        r#"{{"ref": "refs/heads/main", "after": "{fixed}", "repository": {{"full_name": "acme/fleet"}}}}"#
    );
    for _ in 0..20 {
        assert_eq!(ctl.github("push", &body, "wrong-secret"), 401);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ctl.syncs_since(before, "webhook"), 0);

    // The status branch says what is deployed.
    ctl.wait_for("status pushed", Duration::from_secs(10), |_| {
        origin.tip("refs/heads/gitfleet/status").is_some_and(|tip| {
            let repo = origin.open();
            let commit = repo.find_commit(git2::Oid::from_str(&tip).unwrap()).unwrap();
            let blob = commit
                .tree()
                .unwrap()
                .get_path(std::path::Path::new("status.yaml"))
                .unwrap()
                .to_object(&repo)
                .unwrap();
            let text = String::from_utf8_lossy(blob.as_blob().unwrap().content()).to_string();
            text.contains(&format!("commit: {fixed}"))
        })
    });
    assert_eq!(origin.tip("refs/heads/main").as_deref(), Some(fixed.as_str()), "main untouched");

    // A pull request: one comment with the plan, edited on the next push.
    work.commit(&[("apps/shop/compose.yaml", &shop("2", 3))], &[]);
    work.push(&origin.path(), "HEAD:refs/pull/7/head");
    let pr_head = work.head();
    let pr = |head: &str| {
        format!(
            r#"{{"action": "{}", "number": 7, "repository": {{"full_name": "acme/fleet"}},
                "pull_request": {{"number": 7, "head": {{"sha": "{head}", "ref": "feature", "repo": {{"full_name": "acme/fleet"}}}}, "base": {{"ref": "main", "sha": "{fixed}"}}}}}}"#,
            if head == pr_head { "opened" } else { "synchronize" }
        )
    };
    assert_eq!(ctl.github("pull_request", &pr(&pr_head), SECRET), 200);
    let started = Instant::now();
    while !github.requests().iter().any(|r| r.starts_with("POST")) {
        assert!(started.elapsed() < Duration::from_secs(30), "no comment: {:?}", github.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    work.commit(
        &[(
            "apps/shop/compose.yaml",
            "services:\n  web:\n    image: gitfleet/web:2\n    ports: [\"99999:80\"]\n",
        )],
        &[],
    );
    work.push(&origin.path(), "+HEAD:refs/pull/7/head");
    let pr_head2 = work.head();
    assert_eq!(ctl.github("pull_request", &pr(&pr_head2), SECRET), 200);
    while !github.requests().iter().any(|r| r.starts_with("PATCH")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no edit: {:?}", github.requests());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        github.requests(),
        [
            "GET /repos/acme/fleet/issues/7/comments Bearer forge-token",
            "POST /repos/acme/fleet/issues/7/comments Bearer forge-token",
            "GET /repos/acme/fleet/issues/7/comments Bearer forge-token",
            "PATCH /repos/acme/fleet/issues/comments/100 Bearer forge-token",
        ]
    );
    // Previews never deploy.
    assert_eq!(deployed(&ctl.status()), fixed);
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:1"; 3]);
}

#[test]
fn a_host_cut_off_has_its_replicas_moved_and_cleaned_up_when_it_returns() {
    let bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);
    let origin = BareRepo::new("fleet.git");
    let work = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop("1", 2)),
        ("apps/notes/compose.yaml", NOTES),
    ]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let cache = tempfile::TempDir::new().unwrap();
    // A local repository: file-system notifications instead of polls.
    let ctl = Controller::start(
        origin.path().to_str().unwrap(),
        cache.path(),
        &["--resync-interval", "1s", "--grace-period", "3s", "--webhook-generic-secret", SECRET],
    );
    let head = work.head();
    ctl.wait_for("cold deploy", Duration::from_secs(90), |s| deployed(s) == head);
    let web_on = |host: &DockerHost| {
        containers(host)
            .iter()
            .filter(|(name, (_, state))| name.starts_with("shop-web-") && state == "running")
            .count()
    };
    assert_eq!((web_on(a), web_on(b)), (1, 1));

    // b is cut off: after the grace period its web replica runs on a; the database, pinned to
    // b by its volume, is not moved, and that is reported.
    b.cut_network();
    ctl.wait_for("b down", Duration::from_secs(30), |s| s["hosts"][b.name()]["state"] == "down");
    let started = Instant::now();
    while web_on(a) != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "web did not move to a: {:?}",
            containers(a)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!containers(a).contains_key("notes-db-1"), "the pinned database moved");
    let errors = ctl.status()["problems"].to_string();
    assert!(errors.contains("pinned there by their volumes are not moved"), "{errors}");

    // b is back: its stale web copy is the older one and is removed; the database stays.
    b.restore_network();
    ctl.wait_for("b up", Duration::from_secs(30), |s| s["hosts"][b.name()]["state"] == "up");
    let started = Instant::now();
    while web_on(b) != 0 || web_on(a) != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "surplus copy not cleaned up: a {:?}, b {:?}",
            containers(a),
            containers(b)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(containers(b)["notes-db-1"].1, "running");

    // A new commit to the local repository is noticed without a poll or a webhook.
    work.commit(&[("apps/shop/compose.yaml", &shop("2", 2))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let next = work.head();
    ctl.wait_for("noticed by notification", Duration::from_secs(30), |s| deployed(s) == next);
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:2", "gitfleet/web:2"]);

    // A rollout that fails is rolled back and not retried in a loop: it is reported as failed
    // until a new commit arrives, while resyncs keep the previous revision running.
    let exiting = "services:\n  web:\n    image: gitfleet/exits:1\n    deploy:\n      replicas: 2\n      update_config: {parallelism: 1, monitor: 3s, failure_action: rollback}\n";
    work.commit(&[("apps/shop/compose.yaml", exiting)], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let failing = work.head();
    ctl.wait_for("rollout failed", Duration::from_secs(60), |s| {
        s["head"]["commit"] == failing.as_str() && s["head"]["state"] == "failed"
    });
    assert_eq!(deployed(&ctl.status()), next);
    let since = a.docker(&["info", "-f", "{{.SystemTime}}"]).trim().to_string();
    std::thread::sleep(Duration::from_secs(4)); // four resyncs
    let until = a.docker(&["info", "-f", "{{.SystemTime}}"]).trim().to_string();
    let creates = a.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
    ]);
    assert_eq!(creates.trim(), "", "the failed revision was tried again");
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:2", "gitfleet/web:2"]);
    assert!(ctl.status()["problems"].to_string().contains("fix it with a new commit"));

    // A signed generic hook retries it without a new commit (it fails again, and is rolled
    // back again).
    let body = "{}";
    let signature =
        format!("sha256={}", gitfleet::webhook::sign(SECRET.as_bytes(), body.as_bytes()));
    let headers = [("X-Gitfleet-Signature", signature.as_str())];
    let (code, answer) = http(ctl.addr, "POST", "/hooks/generic", &headers, body.as_bytes());
    assert_eq!(code, 200, "{answer}");
    ctl.wait_for("retried", Duration::from_secs(30), |s| {
        s["events"].to_string().contains("on request")
    });
    ctl.wait_for("failed again", Duration::from_secs(60), |s| {
        s["head"]["commit"] == failing.as_str() && s["head"]["state"] == "failed"
    });
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:2", "gitfleet/web:2"]);
}

/// Settings from a configuration file and `*_FILE` variables: the webhook secrets come from
/// files, and a wrong one is refused. No Docker host is needed for this.
#[test]
fn settings_come_from_a_configuration_file_and_secret_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let origin = BareRepo::new("fleet.git");
    let work = GitRepo::new(&[
        ("fleet.yaml", "hosts:\n  a: {endpoint: \"tcp://127.0.0.1:1\"}\n"),
        ("apps/shop/compose.yaml", &shop("1", 1)),
    ]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let github_secret = dir.path().join("github-secret");
    std::fs::write(&github_secret, "from-a-file\n").unwrap();
    let gitlab_token = dir.path().join("gitlab-token");
    std::fs::write(&gitlab_token, "token-from-env-file").unwrap();
    let config = dir.path().join("gitfleet.yaml");
    std::fs::write(
        &config,
        format!(
            "repo: {}\nlisten: 127.0.0.1:0\npoll_interval: 0s\nno_status: true\nwebhook_github_secret_file: {}\n",
            origin.path().display(),
            github_secret.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--cache-dir", dir.path().to_str().unwrap()])
        .env("GITFLEET_WEBHOOK_GITLAB_TOKEN_FILE", &gitlab_token);
    let ctl = Controller::spawn(command);
    let body = r#"{"ref": "refs/heads/other", "after": "0123456789012345678901234567890123456789", "repository": {"full_name": "acme/fleet"}}"#;
    // Signed with the file's secret (its trailing newline dropped): accepted (another branch: 202).
    assert_eq!(ctl.github("push", body, "from-a-file"), 202);
    assert_eq!(ctl.github("push", body, SECRET), 401);
    let gitlab = |token: &str| {
        let body = r#"{"object_kind": "push", "ref": "refs/heads/other", "after": "0123456789012345678901234567890123456789", "project": {"id": 1, "path_with_namespace": "acme/fleet"}}"#;
        http(
            ctl.addr,
            "POST",
            "/hooks/gitlab",
            &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)],
            body.as_bytes(),
        )
        .0
    };
    assert_eq!(gitlab("token-from-env-file"), 202);
    assert_eq!(gitlab("wrong"), 401);
    // The unreachable host is reported, the head deployed nowhere, and the controller serves on.
    ctl.wait_for("host reported", Duration::from_secs(30), |s| {
        s["problems"].to_string().contains("host a is unreachable")
    });
    assert_eq!(http(ctl.addr, "GET", "/healthz", &[], b"").0, 200);
    let (code, metrics) = http(ctl.addr, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    assert!(metrics.lines().any(|l| l == "gitfleet_host_up{host=\"a\"} 0"), "{metrics}");
    assert!(metrics.contains("# TYPE gitfleet_sync_total counter"), "{metrics}");
}

/// SIGTERM to an idle `gitfleet run` (after its first sync): it stops within the shutdown
/// timeout and exits 0. Also: `/readyz` answers 200 once the first sync finished.
#[test]
fn sigterm_while_idle_exits_zero_within_the_timeout() {
    let bed = Testbed::builder().hosts(2).images().start();
    let origin = BareRepo::new("fleet.git");
    let server = GitHttpServer::start(origin.root(), None);
    let work = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop("1", 1)),
    ]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let cache = tempfile::TempDir::new().unwrap();
    let mut ctl = Controller::start(
        &server.url("fleet.git"),
        cache.path(),
        &["--no-status", "--shutdown-timeout", "10s"],
    );
    ctl.wait_for("deployed", Duration::from_secs(60), |s| {
        s["head"]["state"] == "deployed" && s["version"] == 1
    });
    assert_eq!(http(ctl.addr, "GET", "/readyz", &[], b"").0, 200);
    assert_eq!(http(ctl.addr, "GET", "/healthz", &[], b"").0, 200);
    let pid = ctl.child.id().to_string();
    let started = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = ctl.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status:?}");
    eprintln!("stopped {:.2}s after SIGTERM", started.elapsed().as_secs_f64());
    // The replica is still there: shutdown does not tear the fleet down.
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:1"]);

    // Again, now in the middle of a rollout whose new replica never gets healthy (its first
    // health check is a minute away): the health wait is cut short, the new container goes
    // and the old one is back, within the timeout.
    let mut ctl = Controller::start(
        &server.url("fleet.git"),
        cache.path(),
        &["--no-status", "--shutdown-timeout", "10s"],
    );
    ctl.wait_for("in sync", Duration::from_secs(60), |s| s["head"]["state"] == "deployed");
    let slow = "services:\n  web:\n    image: gitfleet/web:2\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 60s\n      start_period: 60s\n";
    work.commit(&[("apps/shop/compose.yaml", slow)], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    assert_eq!(ctl.push_hook(&work.head()), 200);
    let waiting = Instant::now();
    while running_images(&bed, "shop-web") != ["gitfleet/web:2"] {
        assert!(waiting.elapsed() < Duration::from_secs(30), "the new replica never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = ctl.child.id().to_string();
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = loop {
        if let Some(status) = ctl.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM mid-apply: {status:?}");
    eprintln!("stopped mid-apply {:.2}s after SIGTERM", started.elapsed().as_secs_f64());
    assert_eq!(running_images(&bed, "shop-web"), ["gitfleet/web:1"]);
    for host in bed.hosts() {
        let names: Vec<String> = containers(host).into_keys().collect();
        assert!(
            names.iter().all(|n| !n.contains(".old-") && !n.contains(".next-")),
            "half-made replica left on {}: {names:?}",
            host.name()
        );
    }
}

/// Sum of the syncs recorded since start, by every outcome.
fn sync_count(status: &serde_json::Value) -> u64 {
    status["sync_totals"]
        .as_object()
        .map(|totals| totals.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0)
}

/// With no periodic resync to lean on (600 s): a rollout costs exactly one sync (its own Docker
/// events trigger none); a host cut off has its replica moved once its grace period (5 s) runs
/// out, found by the events watcher's ping, and its surplus copy goes within seconds of its
/// return.
#[test]
fn failover_is_on_time_and_a_rollout_costs_one_sync() {
    let bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);
    let origin = BareRepo::new("fleet.git");
    let work = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop("1", 2)),
    ]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let cache = tempfile::TempDir::new().unwrap();
    let ctl = Controller::start(
        origin.path().to_str().unwrap(),
        cache.path(),
        &["--resync-interval", "600s", "--grace-period", "5s"],
    );
    let head = work.head();
    ctl.wait_for("cold deploy", Duration::from_secs(90), |s| deployed(s) == head);
    let web_on = |host: &DockerHost| {
        containers(host)
            .iter()
            .filter(|(name, (_, state))| name.starts_with("shop-web-") && state == "running")
            .count()
    };
    assert_eq!((web_on(a), web_on(b)), (1, 1));

    // A rolling update replaces both replicas (stops, removes, creates, renames): one sync.
    std::thread::sleep(Duration::from_secs(4));
    let before = sync_count(&ctl.status());
    work.commit(&[("apps/shop/compose.yaml", &shop("2", 2))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let next = work.head();
    ctl.wait_for("rollout", Duration::from_secs(60), |s| deployed(s) == next);
    std::thread::sleep(Duration::from_secs(6));
    let status = ctl.status();
    assert_eq!(
        sync_count(&status) - before,
        1,
        "syncs after the rollout: {}",
        serde_json::to_string_pretty(&status["syncs"]).unwrap()
    );

    // b is cut off: its replica runs on a once the grace period ran out.
    let cut = Instant::now();
    b.cut_network();
    while web_on(a) != 2 {
        assert!(
            cut.elapsed() < Duration::from_secs(5 + 10),
            "web did not move to a in time: {:?}",
            containers(a)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("failover: replica running on a {:?} after the cut", cut.elapsed());

    // b is back: its stale copy goes within seconds.
    let back = Instant::now();
    b.restore_network();
    while web_on(b) != 0 || web_on(a) != 2 {
        assert!(
            back.elapsed() < Duration::from_secs(8),
            "surplus copy not cleaned up in time: a {:?}, b {:?}",
            containers(a),
            containers(b)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("return: surplus copy removed {:?} after the return", back.elapsed());
}
