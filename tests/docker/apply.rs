//! `gitfleet apply` end to end: the real binary, a real Git repository, two real Docker
//! daemons from the test bed. One scenario walks a fleet through its life (cold apply,
//! idempotence, rolling update, failed update rolled back, scaling, pruning) with a user's
//! own objects on the same hosts that must survive all of it; another kills gitfleet in the
//! middle of an apply and checks that the next one converges cleanly.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{DockerHost, GitRepo, Testbed};

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = String::from(
        "settings: {name: test, observe_timeout: 5s}\nvariables: {WEB_TAG: \"1\"}\nhosts:\n",
    );
    for (host, labels) in bed.hosts().iter().zip(["{zone: a, disk: ssd}", "{zone: b}"]) {
        text.push_str(&format!(
            "  {}:\n    endpoint: {}\n    labels: {labels}\n",
            host.name(),
            host.tcp_endpoint()
        ));
    }
    text
}

const SHOP: &str = "\
services:
  web:
    image: gitfleet/web:${WEB_TAG}
    ports: [\"8080:80\"]
    depends_on:
      api: {condition: service_healthy}
    deploy:
      replicas: 2
      placement: {max_replicas_per_node: 1}
      update_config: {parallelism: 1, monitor: 1s, failure_action: rollback}
  api:
    image: gitfleet/api:1
    configs:
      - source: settings
        target: /etc/api/settings.json
        mode: 0440
    secrets: [token]
    healthcheck:
      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/healthy\"]
      interval: 1s
      retries: 2
    deploy:
      placement: {constraints: [node.labels.zone == a]}
      update_config: {monitor: 1s, failure_action: rollback}
configs:
  settings: {file: ./settings.json}
secrets:
  token: {file: ./token.txt}
";

const NOTES: &str = "\
services:
  db:
    image: gitfleet/db:1
    volumes: [notes-data:/data]
    deploy:
      placement: {constraints: [node.labels.disk == ssd]}
volumes:
  notes-data: {}
";

/// A Git repository the tests commit to, and gitfleet run on it.
struct Repo {
    git: GitRepo,
}

impl Repo {
    fn new(files: &[(&str, &str)]) -> Self {
        Repo { git: GitRepo::new(files) }
    }

    /// Writes `files`, deletes `removed`, commits everything.
    fn commit(&self, files: &[(&str, &str)], removed: &[&str]) {
        self.git.commit(files, removed);
    }

    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
        command.args([verb, "--repo", self.git.path().to_str().unwrap(), "--rev", "HEAD"]);
        command
    }

    fn apply(&self) -> (i32, String) {
        let output: Output =
            self.command("apply").arg("--yes").stdin(Stdio::null()).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }
}

/// `name -> (id, status)` of every container on `host`.
fn containers(host: &DockerHost) -> BTreeMap<String, (String, String)> {
    host.docker(&["ps", "-a", "--format", "{{.Names}}\t{{.ID}}\t{{.State}}"])
        .lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            Some((
                parts.next()?.to_string(),
                (parts.next()?.to_string(), parts.next()?.to_string()),
            ))
        })
        .collect()
}

fn names(host: &DockerHost) -> Vec<String> {
    containers(host).into_keys().collect()
}

/// `GET /` from `address:port`, the body. A service without a health check is "applied" once
/// its container runs, which can be a moment before its server listens: a refused connection
/// is tried again for up to 10 s.
fn http_get(address: std::net::Ipv4Addr, port: u16) -> String {
    let started = std::time::Instant::now();
    let mut stream = loop {
        match TcpStream::connect_timeout(&(address, port).into(), Duration::from_secs(3)) {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                eprintln!("connect to {address}:{port}: {e}; trying again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("connect to {address}:{port}: {e}"),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

/// The daemon's own clock, for `docker events --since/--until`.
fn daemon_time(host: &DockerHost) -> String {
    host.docker(&["info", "-f", "{{.SystemTime}}"]).trim().to_string()
}

/// `docker events` between `since` and now on `host`, with `filters` (`type=...`,
/// `event=...`) and an optional `--format`.
fn events(host: &DockerHost, since: &str, filters: &[&str], format: Option<&str>) -> String {
    let until = daemon_time(host);
    let mut args = vec!["events", "--since", since, "--until", &until];
    for filter in filters {
        args.extend(["--filter", filter]);
    }
    if let Some(format) = format {
        args.extend(["--format", format]);
    }
    host.docker(&args)
}

fn users_objects(host: &DockerHost) {
    host.docker(&["run", "-d", "--name", "users-own", "gitfleet/web:1"]);
    host.docker(&["network", "create", "users-net"]);
    host.docker(&["volume", "create", "users-vol"]);
    // Same names as gitfleet would pick, but not gitfleet's: never adopted, never removed.
    host.docker(&["volume", "create", "shop_unrelated"]);
}

fn users_objects_survive(host: &DockerHost) {
    assert_eq!(host.docker(&["inspect", "-f", "{{.State.Running}}", "users-own"]).trim(), "true");
    host.docker(&["network", "inspect", "users-net"]);
    host.docker(&["volume", "inspect", "users-vol"]);
    host.docker(&["volume", "inspect", "shop_unrelated"]);
}

#[test]
fn a_fleet_through_its_life() {
    let bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);
    users_objects(a);
    users_objects(b);
    let repo = Repo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", SHOP),
        ("apps/shop/settings.json", "{\"greeting\": \"hello\"}\n"),
        ("apps/shop/token.txt", "s3cret-token\n"),
        ("apps/notes/compose.yaml", NOTES),
    ]);

    // A reviewed plan is applied exactly, and refused when a host moved since it was made.
    let reviewed = repo.git.path().join("reviewed-plan.json");
    let output = repo.command("plan").args(["--out", reviewed.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stray = [
        "run",
        "-d",
        "--name",
        "shop-stray-1",
        "--label",
        "io.gitfleet.fleet=test",
        "--label",
        "io.gitfleet.app=shop",
        "--label",
        "io.gitfleet.service=stray",
        "--label",
        "io.gitfleet.replica=1",
        "gitfleet/web:1",
    ];
    a.docker(&stray);
    let apply_reviewed = || {
        let output = repo
            .command("apply")
            .args(["--yes", "--plan", reviewed.to_str().unwrap()])
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, out) = apply_reviewed();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the hosts changed since the plan was made (different plan for: {})",
            a.name()
        )),
        "{out}"
    );
    assert_eq!(containers(a).len(), 2, "nothing applied: {:?}", containers(a));
    a.docker(&["rm", "-f", "shop-stray-1"]);

    // Cold apply of the reviewed plan: everything runs, reachable, with its files.
    let (code, out) = apply_reviewed();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Apply complete: every host converged."), "{out}");
    assert!(!out.contains("s3cret-token"), "a secret's value must never be printed:\n{out}");
    for host in [a, b] {
        assert!(
            http_get(host.address(), 8080).contains("gitfleet web v1"),
            "web on {}",
            host.name()
        );
    }
    let on_a = containers(a);
    for name in ["shop-api-1", "notes-db-1"] {
        assert_eq!(on_a[name].1, "running", "{name}: {on_a:?}");
    }
    assert_eq!(
        a.docker(&["exec", "shop-api-1", "cat", "/etc/api/settings.json"]).trim(),
        "{\"greeting\": \"hello\"}"
    );
    assert_eq!(
        a.docker(&["exec", "shop-api-1", "cat", "/run/secrets/token"]).trim(),
        "s3cret-token"
    );
    assert_eq!(
        a.docker(&[
            "exec",
            "shop-api-1",
            "/bin/busybox",
            "stat",
            "-c",
            "%a",
            "/etc/api/settings.json"
        ])
        .trim(),
        "440"
    );
    let labels = a.docker(&["inspect", "-f", "{{json .Config.Labels}}", "shop-api-1"]);
    assert!(!labels.contains("s3cret"), "secret values never go into labels: {labels}");

    // Idempotent: nothing to do, and not one mutating call (no Docker event at all).
    let since = daemon_time(a);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing to do."), "{out}");
    for host in [a, b] {
        // Health-check execs are the daemon's own doing; every change is one of these.
        let changes = [
            "type=container",
            "type=network",
            "type=volume",
            "event=create",
            "event=start",
            "event=stop",
            "event=kill",
            "event=destroy",
            "event=rename",
            "event=connect",
            "event=disconnect",
            "event=update",
        ];
        let events = events(host, &since, &changes, None);
        assert_eq!(events.trim(), "", "a no-op apply changed {}", host.name());
    }

    // Rolling update of the image: both web replicas now serve v2, nothing else touched.
    let api_before = containers(a)["shop-api-1"].0.clone();
    repo.commit(
        &[("fleet.yaml", &fleet_yaml(&bed).replace("WEB_TAG: \"1\"", "WEB_TAG: \"2\""))],
        &[],
    );
    let (code, out) = apply_reviewed();
    assert_eq!(code, 1, "a plan for an older revision is refused: {out}");
    assert!(out.contains("the plan was made for revision"), "{out}");
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    for host in [a, b] {
        assert!(
            http_get(host.address(), 8080).contains("gitfleet web v2"),
            "web on {}",
            host.name()
        );
        assert!(
            !names(host).iter().any(|n| n.contains(".old-") || n.contains(".next-")),
            "{:?}",
            names(host)
        );
    }
    assert_eq!(containers(a)["shop-api-1"].0, api_before, "api was not part of the change");

    // A config change whose new container fails its health check: rolled back to the old one.
    let broken = SHOP.replace("http://127.0.0.1/healthy", "http://127.0.0.1/no-such-page");
    repo.commit(
        &[
            ("apps/shop/compose.yaml", &broken),
            ("apps/shop/settings.json", "{\"greeting\": \"hi\"}\n"),
        ],
        &[],
    );
    let (code, out) = repo.apply();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("shop-api-1 is unhealthy"), "{out}");
    let after = containers(a);
    assert_eq!(
        after["shop-api-1"],
        (api_before.clone(), "running".to_string()),
        "the old api is back: {after:?}"
    );
    assert_eq!(
        a.docker(&["exec", "shop-api-1", "cat", "/etc/api/settings.json"]).trim(),
        "{\"greeting\": \"hello\"}"
    );
    assert!(!after.keys().any(|n| n.contains(".old-") || n.contains(".next-")), "{after:?}");

    // Fixed: scale web to 3 (one host must take two, so drop the per-host limit and port).
    let scaled = SHOP
        .replace("replicas: 2", "replicas: 3")
        .replace("placement: {max_replicas_per_node: 1}", "placement: {}")
        .replace("ports: [\"8080:80\"]", "ports: [\"80\"]");
    repo.commit(&[("apps/shop/compose.yaml", &scaled)], &[]);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    let all: Vec<String> = names(a).into_iter().chain(names(b)).collect();
    for replica in ["shop-web-1", "shop-web-2", "shop-web-3"] {
        assert_eq!(all.iter().filter(|n| *n == replica).count(), 1, "{replica} once: {all:?}");
    }
    // Scale down: the highest replica number goes first.
    repo.commit(&[("apps/shop/compose.yaml", &scaled.replace("replicas: 3", "replicas: 1"))], &[]);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    let all: Vec<String> = names(a).into_iter().chain(names(b)).collect();
    assert!(
        all.contains(&"shop-web-1".to_string())
            && !all.iter().any(|n| n == "shop-web-2" || n == "shop-web-3"),
        "{all:?}"
    );

    // Prune: the notes app leaves the repository; its container and network go, its data stays.
    repo.commit(&[], &["apps/notes"]);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    assert!(!names(a).contains(&"notes-db-1".to_string()));
    assert!(a.docker_output(&["network", "inspect", "notes_default"]).status.code() != Some(0));
    a.docker(&["volume", "inspect", "notes_notes-data"]);

    for host in [a, b] {
        users_objects_survive(host);
    }
}

#[test]
fn killed_mid_apply_then_rerun_converges() {
    let bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);
    users_objects(a);
    let many: String = (1..=6)
        .map(|i| format!("  s{i}:\n    image: gitfleet/db:1\n    volumes: [data{i}:/data]\n    deploy: {{replicas: 2}}\n"))
        .collect();
    let volumes: String = (1..=6).map(|i| format!("  data{i}: {{}}\n")).collect();
    let app = format!("services:\n{many}volumes:\n{volumes}");
    let repo = Repo::new(&[("fleet.yaml", &fleet_yaml(&bed)), ("apps/many/compose.yaml", &app)]);

    // Kill -9 at several moments of a cold apply, then of an update.
    for (round, wait_ms) in [(0, 300u64), (1, 900), (2, 1500)] {
        if round == 2 {
            repo.commit(
                &[("apps/many/compose.yaml", &app.replace("gitfleet/db:1", "gitfleet/web:1"))],
                &[],
            );
        }
        let mut child = repo
            .command("apply")
            .arg("--yes")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let started = Instant::now();
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    eprintln!("re-run converged in {:?}", started.elapsed());
    let (code, out) = repo.apply();
    assert!(code == 0 && out.contains("Nothing to do."), "{out}");

    // Exactly one container per replica, nothing parked or half-made left behind.
    let mut all: Vec<String> =
        names(a).into_iter().chain(names(b)).filter(|n| n != "users-own").collect();
    all.sort();
    let expected: Vec<String> = {
        let mut e: Vec<String> =
            (1..=6).flat_map(|i| [format!("many-s{i}-1"), format!("many-s{i}-2")]).collect();
        e.sort();
        e
    };
    assert_eq!(all, expected);
    for host in [a, b] {
        for (name, (_, state)) in containers(host) {
            assert_eq!(state, "running", "{name} on {}", host.name());
        }
    }
    users_objects_survive(a);
}

#[test]
fn a_host_lost_mid_apply_does_not_stop_the_others() {
    let mut bed = Testbed::builder().hosts(2).images().start();
    // A chain of services, each waiting for the one before to be healthy: the apply takes a
    // few seconds, level by level, on both hosts.
    let chain: String = (1..=5)
        .map(|i| {
            let wait = if i > 1 { format!("    depends_on:\n      s{}: {{condition: service_healthy}}\n", i - 1) } else { String::new() };
            format!(
                "  s{i}:\n    image: gitfleet/api:1\n{wait}    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/healthy\"]\n      interval: 1s\n    deploy: {{replicas: 2, placement: {{max_replicas_per_node: 1}}}}\n"
            )
        })
        .collect();
    let repo = Repo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/chain/compose.yaml", &format!("services:\n{chain}")),
    ]);
    let child = repo
        .command("apply")
        .arg("--yes")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    bed[1].kill_daemon();
    let output = child.wait_with_output().unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{out}");
    let lost = bed[1].name().to_string();
    assert!(out.contains(&format!("host {lost}: LOST")), "{out}");
    let kept = bed[0].name().to_string();
    assert!(out.contains(&format!("host {kept}: converged")), "{out}");
    let on_a = containers(&bed[0]);
    for i in 1..=5 {
        let running: Vec<_> = on_a
            .iter()
            .filter(|(n, (_, s))| n.starts_with(&format!("chain-s{i}-")) && s == "running")
            .collect();
        assert_eq!(running.len(), 1, "s{i} on the surviving host: {on_a:?}");
    }
}

#[test]
fn start_first_keeps_the_old_replica_until_the_new_one_is_healthy() {
    let bed = Testbed::builder().hosts(1).images().start();
    let host = &bed[0];
    let fleet = format!(
        "settings: {{name: test}}\nhosts:\n  {}:\n    endpoint: {}\n",
        host.name(),
        host.tcp_endpoint()
    );
    let app = "\
services:
  api:
    image: gitfleet/api:1
    environment: {GREETING: hello}
    healthcheck:
      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/healthy\"]
      interval: 1s
    deploy:
      update_config: {order: start-first, monitor: 1s}
";
    let repo = Repo::new(&[("fleet.yaml", &fleet), ("apps/shop/compose.yaml", app)]);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");
    let old = containers(host)["shop-api-1"].0.clone();

    let since = daemon_time(host);
    repo.commit(&[("apps/shop/compose.yaml", &app.replace("hello", "bonjour"))], &[]);
    let (code, out) = repo.apply();
    assert_eq!(code, 0, "{out}");

    // The new container started, and was healthy, before the old one was stopped.
    let filters = ["type=container", "event=start", "event=health_status", "event=die"];
    let events = events(host, &since, &filters, Some("{{.Action}} {{.Actor.ID}}"));
    let lines: Vec<&str> = events.lines().collect();
    let position = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    // `docker ps` gives short ids, events full ones.
    let is_old = |l: &str| l.rsplit(' ').next().is_some_and(|id| id.starts_with(&old));
    let new_started = position(&|l| l.starts_with("start ") && !is_old(l)).expect("new start");
    let new_healthy =
        position(&|l| l.starts_with("health_status: healthy") && !is_old(l)).expect("healthy");
    let old_died = position(&|l| l.starts_with("die ") && is_old(l)).expect("old stopped");
    assert!(new_started < new_healthy && new_healthy < old_died, "{events}");
    let now = containers(host);
    assert_eq!(now.len(), 1, "the old container is gone, the new one has the name: {now:?}");
    assert_ne!(now["shop-api-1"].0, old);
    let env = host.docker(&["inspect", "-f", "{{json .Config.Env}}", "shop-api-1"]);
    assert!(env.contains("GREETING=bonjour"), "{env}");
}
