//! `gitfleet plan` end to end: the real binary, a real Git repository on disk, two real Docker
//! daemons from the test bed (each its own network namespace). Containers are started there by
//! hand, as a previous apply would have left them and as a user might: the plan keeps what
//! matches, replaces what changed or stopped, removes what left the repository, never lists
//! what is not this fleet's, and names a host it cannot reach.

use std::process::Command;

use crate::support::{DockerHost, GitRepo, Testbed};
use serde_json::Value as Json;

const APP: &str = "\
services:
  web:
    image: gitfleet/web:1
    ports: [\"8080:80\"]
    environment: {GREETING: hello}
    deploy:
      replicas: 2
      placement: {max_replicas_per_node: 1}
  api:
    image: gitfleet/api:1
    depends_on: [web]
    deploy:
      placement:
        constraints: [node.labels.zone == a]
";

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = String::from("settings: {name: test, observe_timeout: 3s}\nhosts:\n");
    for (host, zone) in bed.hosts().iter().zip(["a", "b"]) {
        text.push_str(&format!(
            "  {}:\n    endpoint: {}\n    labels: {{zone: {zone}}}\n",
            host.name(),
            host.tcp_endpoint()
        ));
    }
    text
}

fn plan(repo: &GitRepo, format: &str) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args([
            "plan",
            "--repo",
            repo.path().to_str().unwrap(),
            "--rev",
            "HEAD",
            "--format",
            format,
        ])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn plan_json(repo: &GitRepo) -> (i32, Json) {
    let (code, stdout, stderr) = plan(repo, "json");
    (code, serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}\n{stderr}")))
}

/// `(action, name, reason kind)` of every step on `host`.
fn steps(plan: &Json, host: &str) -> Vec<(String, String, String)> {
    let host_plan = plan["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host).unwrap();
    host_plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["container"]["name"]
                .as_str()
                .or(s["name"].as_str())
                .or(s["network"]["name"].as_str())
                .or(s["image"].as_str())
                .unwrap_or_default();
            (
                s["action"].as_str().unwrap().into(),
                name.into(),
                s["reason"]["kind"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn step(action: &str, name: &str, reason: &str) -> (String, String, String) {
    (action.into(), name.into(), reason.into())
}

/// Starts, by hand, the container a create step of `plan` describes, as apply would: same
/// name, gitfleet's labels, and `hash` as its spec-hash label.
fn run_as_planned(host: &DockerHost, plan: &Json, name: &str, hash: Option<&str>) {
    let step = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["steps"].as_array().unwrap())
        .find(|s| s["action"] == "create_container" && s["container"]["name"] == name)
        .unwrap_or_else(|| panic!("no create step for {name} in {plan:#}"));
    let replica = &step["replica"];
    let container = &step["container"];
    let labels = [
        "io.gitfleet.fleet=test".to_string(),
        format!("io.gitfleet.app={}", replica["app"].as_str().unwrap()),
        format!("io.gitfleet.service={}", replica["service"].as_str().unwrap()),
        format!("io.gitfleet.replica={}", replica["replica"]),
        format!(
            "io.gitfleet.spec-hash={}",
            hash.unwrap_or(container["spec_hash"].as_str().unwrap())
        ),
        format!("io.gitfleet.spec={}", serde_json::to_string(&container["spec"]).unwrap()),
    ];
    let mut args = vec!["run", "-d", "--name", name];
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.push(container["spec"]["image"].as_str().unwrap());
    host.docker(&args);
}

#[test]
fn plans_against_two_real_hosts() {
    let bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);
    let repo = GitRepo::new(&[("fleet.yaml", &fleet_yaml(&bed)), ("apps/shop/compose.yaml", APP)]);

    // Empty hosts: everything to create, spread over both, api where zone == a (placed first,
    // services in name order, so web's first replica goes to b).
    let (code, first) = plan_json(&repo);
    assert_eq!(code, 0, "{first:#}");
    let (ha, hb) = (a.name(), b.name());
    assert_eq!(
        steps(&first, ha),
        vec![
            step("create_network", "shop_default", "missing"),
            step("pull_image", "gitfleet/api:1", "needed_by"),
            step("pull_image", "gitfleet/web:1", "needed_by"),
            step("create_container", "shop-web-2", "missing"),
            step("create_container", "shop-api-1", "missing"),
        ]
    );
    assert_eq!(
        steps(&first, hb),
        vec![
            step("create_network", "shop_default", "missing"),
            step("pull_image", "gitfleet/web:1", "needed_by"),
            step("create_container", "shop-web-1", "missing"),
        ]
    );
    assert_eq!(first["summary"]["create"], 5);

    // What a user and an earlier apply left on the hosts.
    a.docker(&["run", "-d", "--name", "users-own", "gitfleet/web:1"]);
    a.docker(&["network", "create", "users-net"]);
    a.docker(&["volume", "create", "users-vol"]);
    a.docker(&[
        "run",
        "-d",
        "--name",
        "other-fleet",
        "--label",
        "io.gitfleet.fleet=other",
        "--label",
        "io.gitfleet.app=shop",
        "--label",
        "io.gitfleet.service=web",
        "--label",
        "io.gitfleet.replica=1",
        "gitfleet/web:1",
    ]);
    a.docker(&[
        "network",
        "create",
        "--label",
        "io.gitfleet.fleet=test",
        "--label",
        "io.gitfleet.app=shop",
        "--label",
        "io.gitfleet.object=default",
        "shop_default",
    ]);
    run_as_planned(a, &first, "shop-web-2", None); // as planned: unchanged
    run_as_planned(a, &first, "shop-api-1", Some("0123456789abcdef")); // an older spec
    run_as_planned(b, &first, "shop-web-1", None);
    b.docker(&["stop", "-t", "1", "shop-web-1"]); // stopped: replace
    b.docker(&[
        "run",
        "-d",
        "--name",
        "shop-gone-1",
        "--label",
        "io.gitfleet.fleet=test",
        "--label",
        "io.gitfleet.app=shop",
        "--label",
        "io.gitfleet.service=gone",
        "--label",
        "io.gitfleet.replica=1",
        "gitfleet/web:1",
    ]);

    let (code, second) = plan_json(&repo);
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(
        steps(&second, ha),
        vec![
            step("pull_image", "gitfleet/api:1", "needed_by"),
            step("replace_container", "shop-api-1", "spec_changed")
        ]
    );
    assert_eq!(
        steps(&second, hb),
        vec![
            step("create_network", "shop_default", "missing"),
            step("pull_image", "gitfleet/web:1", "needed_by"),
            step("remove_container", "shop-gone-1", "not_in_repository"),
            step("replace_container", "shop-web-1", "not_running"),
        ]
    );
    assert_eq!(
        second["summary"],
        serde_json::json!({"create": 1, "replace": 2, "remove": 1, "unchanged": 2, "unreachable_hosts": 0, "unplaced": 0})
    );
    let text = serde_json::to_string(&second).unwrap();
    for foreign in ["users-own", "users-net", "users-vol", "other-fleet"] {
        assert!(!text.contains(foreign), "{foreign} must not appear in the plan");
    }

    // The same plan for people: replaced fields named, the summary line Terraform-style.
    let (_, text, _) = plan(&repo, "text");
    assert!(
        text.contains("~ container shop-web-1                   not running (exited)"),
        "{text}"
    );
    assert!(text.contains("~ container shop-api-1"), "{text}");
    assert!(
        text.ends_with("Plan: 1 to create, 2 to replace, 1 to remove, 2 unchanged.\n"),
        "{text}"
    );
    let (_, markdown, _) = plan(&repo, "markdown");
    assert!(
        markdown.contains(
            "<details><summary><b>shop</b>: 1 to create, 2 to replace, 1 to remove</summary>"
        ),
        "{markdown}"
    );

    // A changed environment variable: both web replicas replaced, the field named.
    repo.commit(
        &[("apps/shop/compose.yaml", &APP.replace("GREETING: hello", "GREETING: bonjour"))],
        &[],
    );
    let (_, text, _) = plan(&repo, "text");
    assert!(
        text.contains("~ container shop-web-2                   changed: environment.GREETING"),
        "{text}"
    );

    // Host b cut off: named with the reason, nothing planned there, exit 2.
    b.cut_network();
    let (code, text, _) = plan(&repo, "text");
    assert_eq!(code, 2, "{text}");
    let endpoint = b.tcp_endpoint();
    assert!(text.contains(&format!("host {hb}: UNREACHABLE: cannot reach {endpoint}")), "{text}");
    assert!(text.contains(&format!("Warning: host {hb} is unreachable")), "{text}");
    b.restore_network();

    // Planning is read-only: the user's objects are all still there.
    assert_eq!(a.docker(&["inspect", "-f", "{{.State.Running}}", "users-own"]).trim(), "true");
    a.docker(&["network", "inspect", "users-net"]);
    a.docker(&["volume", "inspect", "users-vol"]);
}
