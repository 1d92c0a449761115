//! `gitfleet validate` on real repositories on disk: every problem at once, each located at
//! file:line:col, in text and JSON, from a directory and from a Git commit (no checkout).
//! One case a function, each a small repository written by the test and the exact
//! diagnostics expected: `file:line:col code`.

use std::path::Path;
use std::process::Command;

use crate::support::GitRepo;
use tempfile::TempDir;

const FLEET: &str = "\
hosts:
  a:
    endpoint: tcp://10.250.1.2:2375
    labels: {zone: a}
    capacity: {cpus: 2, memory: 1g}
  b:
    endpoint: unix:///var/run/docker.sock
    labels: {zone: b}
variables:
  TAG: \"1\"
";

/// Writes `files` into a fresh directory.
fn repo_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn gitfleet(args: &[&str]) -> (i32, String, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_gitfleet")).args(args).output().expect("run gitfleet");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `validate --format json` on `files` and returns `file:line:col code` per diagnostic.
fn diagnostics(files: &[(&str, &str)]) -> Vec<String> {
    let dir = repo_dir(files);
    let (code, stdout, stderr) =
        gitfleet(&["validate", dir.path().to_str().unwrap(), "--format", "json"]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let list: Vec<String> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{} {}",
                d["file"].as_str().unwrap(),
                d["line"],
                d["column"],
                d["code"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(code, if list.is_empty() { 0 } else { 1 }, "exit code for {list:?}");
    assert_eq!(report["valid"], list.is_empty());
    list
}

fn check(app: &str, expected: &[&str]) {
    let got = diagnostics(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", app)]);
    assert_eq!(got, expected, "\n{app}");
}

#[test]
fn the_example_repository_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
    let (code, stdout, _) = gitfleet(&["validate", example.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout.trim(), "ok: 2 hosts, 2 apps, 3 services, 4 replicas");
}

#[test]
fn yaml_syntax_error_is_located() {
    check("services:\n  web:\n    image: [unclosed\n", &["apps/shop/compose.yaml:4:1 yaml-syntax"]);
}

#[test]
fn unsupported_and_unknown_keys_are_named_at_the_key() {
    let app = "services:\n  web:\n    image: x\n    build: .\n    imgae: y\n";
    check(
        app,
        &["apps/shop/compose.yaml:4:5 unsupported-key", "apps/shop/compose.yaml:5:5 unknown-key"],
    );
}

#[test]
fn schema_errors_point_at_the_value() {
    let app = "services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n";
    check(app, &["apps/shop/compose.yaml:5:17 wrong-type"]);
}

#[test]
fn every_semantic_problem_is_reported_sorted() {
    let app = "\
services:
  web:
    image: web:${TAG}
    networks: [front]
    depends_on: [api]
    volumes: [data:/data]
  api:
    image: api:${NOPE}
    depends_on:
      web: {condition: service_started}
    secrets: [token]
    deploy:
      placement:
        constraints: [node.labels.zone == c]
";
    check(
        app,
        &[
            "apps/shop/compose.yaml:4:15 unknown-network",
            "apps/shop/compose.yaml:6:15 unknown-volume",
            "apps/shop/compose.yaml:8:12 interpolation",
            "apps/shop/compose.yaml:10:7 dependency-cycle",
            "apps/shop/compose.yaml:11:15 unknown-secret",
            "apps/shop/compose.yaml:14:22 unsatisfiable-placement",
        ],
    );
}

#[test]
fn port_conflicts_where_services_would_share_a_host() {
    let app = "\
services:
  web:
    image: x
    ports: [\"8080:80\"]
    deploy: {placement: {constraints: [node.labels.zone == a]}}
  admin:
    image: x
    ports: [\"8080:81\"]
    deploy: {placement: {constraints: [node.hostname == a]}}
  spread:
    image: x
    ports: [\"9090:80\"]
    deploy: {replicas: 2}
";
    check(
        app,
        &["apps/shop/compose.yaml:4:12 port-conflict", "apps/shop/compose.yaml:8:12 port-conflict"],
    );
}

#[test]
fn files_outside_the_app_folder_are_refused() {
    let app = "\
services:
  web:
    image: x
    configs: [up, abs]
configs:
  up: {file: ../other/x}
  abs: {file: /etc/passwd}
";
    check(
        app,
        &["apps/shop/compose.yaml:6:14 path-escape", "apps/shop/compose.yaml:7:15 path-escape"],
    );
}

#[test]
fn symlinked_secrets_are_refused() {
    let dir = repo_dir(&[
        ("fleet.yaml", FLEET),
        (
            "apps/shop/compose.yaml",
            "services:\n  web:\n    image: x\n    secrets: [s]\nsecrets:\n  s: {file: ./s.txt}\n",
        ),
    ]);
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("apps/shop/s.txt")).unwrap();
    let (code, stdout, _) = gitfleet(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "apps/shop/compose.yaml:6:13: error[path-escape]: apps/shop/s.txt is a symbolic link"
        ),
        "{stdout}"
    );
}

#[test]
fn reservations_larger_than_any_host() {
    let app = "\
services:
  big:
    image: x
    deploy:
      placement: {constraints: [node.labels.zone == a]}
      resources: {reservations: {cpus: \"4\"}}
";
    check(app, &["apps/shop/compose.yaml:6:34 reservation-too-large"]);
}

#[test]
fn fleet_problems_are_located_in_fleet_yaml() {
    let fleet = "hosts:\n  a:\n    endpoint: ssh://a\n  B_: {endpoint: tcp://b:2375}\n";
    let got = diagnostics(&[
        ("fleet.yaml", fleet),
        ("apps/shop/compose.yaml", "services: {web: {image: x}}\n"),
    ]);
    assert_eq!(got, vec!["fleet.yaml:3:15 invalid-value", "fleet.yaml:4:3 invalid-name"]);
}

#[test]
fn missing_fleet_and_app_file_are_reported() {
    let got = diagnostics(&[("apps/shop/README.md", "no compose file here\n")]);
    assert_eq!(got, vec!["apps/shop:1:1 missing-file", "fleet.yaml:1:1 missing-file"]);
}

#[test]
fn text_output_has_hints_and_a_count() {
    let dir = repo_dir(&[
        ("fleet.yaml", FLEET),
        ("apps/shop/compose.yaml", "services:\n  web:\n    image: x\n    container_name: web\n"),
    ]);
    let (code, stdout, _) = gitfleet(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "apps/shop/compose.yaml:4:5: error[unsupported-key]: `container_name` is not supported: gitfleet names containers itself (<app>-<service>-<replica>) so replicas can coexist\n  \
         hint: remove it; reach the service by its name on the app's network\n\n\
         1 error in 1 file; nothing may be deployed from this revision.\n"
    );
}

#[test]
fn validates_a_commit_without_a_checkout() {
    let good = "services:\n  web:\n    image: x\n";
    let git = GitRepo::new(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", good)]);
    let first = git.head();
    git.commit(&[("apps/shop/compose.yaml", "services:\n  web:\n    build: .\n")], &[]);
    // The working tree is broken, and so is HEAD; the first commit is still good.
    let repo = git.path().to_str().unwrap();
    let (code, stdout, _) = gitfleet(&["validate", "--repo", repo, "--rev", &first]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = gitfleet(&["validate", "--repo", repo, "--rev", "HEAD"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("apps/shop/compose.yaml:3:5: error[unsupported-key]"), "{stdout}");
    // The same through a file:// URL (cloned into a cache, not opened in place).
    let cache = TempDir::new().unwrap();
    let url = format!("file://{repo}");
    let (code, stdout, stderr) = gitfleet(&[
        "validate",
        "--repo",
        &url,
        "--rev",
        &first,
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = gitfleet(&["validate", "--repo", repo, "--rev", "no-such-branch"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("revision \"no-such-branch\" does not name a commit"), "{stderr}");
}
