//! A start-first replacement cut short (kill -9 mid-apply, a crash, a lost lease) leaves the
//! new container under its temporary name `<name>.next-<hash>`, with the replica's labels.
//! The next apply must clear it before replacing that replica again: kept, a start-first
//! replacement to the same spec creates the same `.next-` name and Docker answers 409
//! Conflict (the bug this test was written against). Real `gitfleet apply`, a real daemon.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{DockerHost, GitRepo, Testbed};

const APP: &str = "\
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

fn gitfleet(repo: &GitRepo, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command.args([args[0], "--repo", repo.path().to_str().unwrap(), "--rev", "HEAD"]);
    command.args(&args[1..]).stdin(Stdio::null());
    command
}

fn apply(repo: &GitRepo) -> (i32, String) {
    let output = gitfleet(repo, &["apply", "--yes"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// `(name, state)` of every container on `host`.
fn containers(host: &DockerHost) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = host
        .docker(&["ps", "-a", "--format", "{{.Names}}\t{{.State}}"])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    all.sort();
    all
}

/// Exactly one container, `shop-api-1`, running with `GREETING=<greeting>`.
fn only_the_replica(host: &DockerHost, greeting: &str) {
    assert_eq!(containers(host), [("shop-api-1".to_string(), "running".to_string())]);
    let env = host.docker(&["inspect", "-f", "{{json .Config.Env}}", "shop-api-1"]);
    assert!(env.contains(&format!("GREETING={greeting}")), "{env}");
}

#[test]
fn a_next_container_left_by_a_cut_short_replacement_is_cleared_before_the_next_one() {
    let bed = Testbed::builder().hosts(1).images().start();
    let host = &bed[0];
    let fleet = format!(
        "settings: {{name: test}}\nhosts:\n  {}:\n    endpoint: {}\n",
        host.name(),
        host.tcp_endpoint()
    );
    let repo = GitRepo::new(&[("fleet.yaml", &fleet), ("apps/shop/compose.yaml", APP)]);
    let (code, out) = apply(&repo);
    assert_eq!(code, 0, "{out}");
    only_the_replica(host, "hello");

    // 1. What a crash right after the create leaves: the new spec's container, created and
    // never started, under its `.next-` name, with the labels the apply gives it (made here
    // by hand from the running container's labels and the plan's new spec hash).
    repo.commit(&[("apps/shop/compose.yaml", &APP.replace("hello", "bonjour"))], &[]);
    let plan = gitfleet(&repo, &["plan", "--format", "json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let step = &plan["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "replace_container")
        .expect("a replacement")
        .clone();
    let hash = step["container"]["spec_hash"].as_str().unwrap().to_string();
    let labels = host.docker(&["inspect", "-f", "{{json .Config.Labels}}", "shop-api-1"]);
    let mut labels: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&labels).unwrap();
    labels.insert("io.gitfleet.spec-hash".into(), hash.clone().into());
    let next = format!("shop-api-1.next-{}", &hash[..8]);
    let mut create = vec!["create".to_string(), "--name".into(), next.clone()];
    for (key, value) in &labels {
        create.push("--label".into());
        create.push(format!("{key}={}", value.as_str().unwrap()));
    }
    create.extend(["-e".into(), "GREETING=bonjour".into(), "gitfleet/api:1".into()]);
    host.docker(&create.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(containers(host).contains(&(next.clone(), "created".to_string())));

    let (code, out) = apply(&repo);
    assert_eq!(code, 0, "the apply after a cut-short replacement failed:\n{out}");
    only_the_replica(host, "bonjour");

    // 2. The same by killing `gitfleet apply` (SIGKILL) once its `.next-` container exists.
    repo.commit(&[("apps/shop/compose.yaml", &APP.replace("hello", "hola"))], &[]);
    let mut child = gitfleet(&repo, &["apply", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !containers(host).iter().any(|(n, _)| n.contains(".next-")) {
        assert!(Instant::now() < until, "no .next- container within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = containers(host);
    eprintln!("left by the killed apply: {left:?}");
    assert!(left.iter().any(|(n, _)| n.contains(".next-")), "{left:?}");
    let (code, out) = apply(&repo);
    assert_eq!(code, 0, "the apply after a killed one failed:\n{out}");
    only_the_replica(host, "hola");
    let (code, out) = apply(&repo);
    assert!(code == 0 && out.contains("Nothing to do."), "{out}");
}
