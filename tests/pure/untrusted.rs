//! Hostile or mistaken revisions (issue 9): every way a commit could make apps vanish is a
//! located error, never "ok: 0 apps"; a revision with no apps is refused against a fleet
//! with containers unless it says `allow_empty`; the bombs stop at their limit with one
//! located diagnostic; gitfleet's own labels and escaping targets are refused. Through the
//! real binary (`gitfleet validate`) on directories and Git commits, and through the pure
//! planner.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use gitfleet::diff::simulate::apply_plan;
use gitfleet::diff::{Desired, HostObservation, HostState, Observed, plan};
use gitfleet::model::{SourceTree, load};
use tempfile::TempDir;

const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n";
const APP: &str = "services:\n  web:\n    image: nginx\n";

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// `gitfleet validate ARGS --format json`: exit code and `file:line:col code` per diagnostic.
fn validate(args: &[&str]) -> (i32, Vec<String>, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .arg("validate")
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run gitfleet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    let list = report["diagnostics"]
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
    (output.status.code().unwrap_or(-1), list, report)
}

fn validate_dir(dir: &Path) -> (i32, Vec<String>) {
    let (code, list, _) = validate(&[dir.to_str().unwrap()]);
    (code, list)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.test",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is installed");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

// ---- silent drops -----------------------------------------------------------------------

#[test]
fn apps_as_a_symlink_or_a_file_is_an_error_not_zero_apps() {
    let elsewhere = TempDir::new().unwrap();
    write(elsewhere.path(), &[("shop/compose.yaml", APP)]);
    let dir = TempDir::new().unwrap();
    write(dir.path(), &[("fleet.yaml", FLEET)]);
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("apps")).unwrap();
    assert_eq!(validate_dir(dir.path()), (1, vec!["apps:1:1 not-a-folder".to_string()]));

    std::fs::remove_file(dir.path().join("apps")).unwrap();
    write(dir.path(), &[("apps", "shop\n")]);
    assert_eq!(validate_dir(dir.path()), (1, vec!["apps:1:1 not-a-folder".to_string()]));
}

#[test]
fn an_app_folder_that_is_a_symlink_or_a_fifo_compose_file_is_an_error() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), &[("fleet.yaml", FLEET), ("apps/real/compose.yaml", APP)]);
    std::os::unix::fs::symlink("real", dir.path().join("apps/linked")).unwrap();
    assert_eq!(validate_dir(dir.path()), (1, vec!["apps/linked:1:1 not-a-folder".to_string()]));

    std::fs::remove_file(dir.path().join("apps/linked")).unwrap();
    std::fs::create_dir(dir.path().join("apps/piped")).unwrap();
    let fifo = dir.path().join("apps/piped/compose.yaml");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)");
    assert!(status.success());
    // Never opened (reading a FIFO would block): a located error, quickly.
    let started = std::time::Instant::now();
    assert_eq!(
        validate_dir(dir.path()),
        (1, vec!["apps/piped/compose.yaml:1:1 not-a-file".to_string()])
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_submodule_or_a_symlinked_app_folder_in_a_commit_is_an_error() {
    let sub = TempDir::new().unwrap();
    git(sub.path(), &["init", "-q"]);
    write(sub.path(), &[("compose.yaml", APP)]);
    git(sub.path(), &["add", "."]);
    git(sub.path(), &["commit", "-qm", "sub"]);
    let sub_head = git(sub.path(), &["rev-parse", "HEAD"]);

    let repo = TempDir::new().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), &[("fleet.yaml", FLEET), ("apps/real/compose.yaml", APP)]);
    std::os::unix::fs::symlink("real", repo.path().join("apps/linked")).unwrap();
    git(repo.path(), &["add", "."]);
    // A gitlink, as `git submodule add` records it.
    let cacheinfo = format!("160000,{sub_head},apps/vendored");
    git(repo.path(), &["update-index", "--add", "--cacheinfo", &cacheinfo]);
    git(repo.path(), &["commit", "-qm", "c"]);
    let (code, list, _) = validate(&["--repo", repo.path().to_str().unwrap(), "--rev", "HEAD"]);
    assert_eq!(
        (code, list),
        (
            1,
            vec![
                "apps/linked:1:1 not-a-folder".to_string(),
                "apps/vendored:1:1 not-a-folder".to_string()
            ]
        )
    );
}

// ---- the empty revision -----------------------------------------------------------------

fn tree(files: &[(&str, &str)]) -> SourceTree {
    files.iter().map(|(p, t)| (p.to_string(), t.as_bytes().to_vec())).collect()
}

fn empty_observed() -> Observed {
    Observed {
        hosts: BTreeMap::from([(
            "a".to_string(),
            HostObservation::Reachable(HostState::default()),
        )]),
    }
}

#[test]
fn a_revision_without_apps_is_refused_against_running_apps_unless_allowed() {
    let before = load(&tree(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", APP)])).unwrap();
    let first = plan(&Desired::new(&before, &empty_observed(), None), &empty_observed());
    assert!(first.refused.is_none());
    let running = apply_plan(&empty_observed(), &first);

    let empty = load(&tree(&[("fleet.yaml", FLEET)])).unwrap();
    let refused = plan(&Desired::new(&empty, &running, None), &running);
    let why = refused.refused.as_deref().expect("refused");
    assert!(why.contains("settings.allow_empty: true"), "{why}");
    assert!(refused.hosts.iter().all(|h| h.steps.is_empty()));
    assert!(gitfleet::diff::render::text(&refused).contains("REFUSED"));
    assert!(gitfleet::diff::render::markdown(&refused).contains("allow_empty"));

    // Nothing running: an empty revision is fine.
    assert!(
        plan(&Desired::new(&empty, &empty_observed(), None), &empty_observed()).refused.is_none()
    );

    let allowed_fleet = format!("{FLEET}settings:\n  allow_empty: true\n");
    let allowed = load(&tree(&[("fleet.yaml", &allowed_fleet)])).unwrap();
    let removal = plan(&Desired::new(&allowed, &running, None), &running);
    assert!(removal.refused.is_none());
    assert!(removal.summary.remove > 0, "{removal:?}");
}

// ---- limits through the binary ----------------------------------------------------------

fn app_dir(app: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    write(dir.path(), &[("fleet.yaml", FLEET), ("apps/x/compose.yaml", app)]);
    dir
}

#[test]
fn an_alias_bomb_is_one_located_limit() {
    let n = 2_000;
    let bomb = format!(
        "x-a: &a [{}]\nx-b: [{}]\nservices:\n  web:\n    image: nginx\n",
        vec!["x"; n].join(","),
        vec!["*a"; n].join(",")
    );
    let dir = app_dir(&bomb);
    let (code, list, report) = validate(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].starts_with("apps/x/compose.yaml:") && list[0].ends_with(" limit"), "{list:?}");
    let hint = report["diagnostics"][0]["hint"].as_str().unwrap();
    assert!(hint.contains("settings.limits.max_expansion"), "{hint}");
}

#[test]
fn the_size_limit_is_configurable_in_fleet_yaml() {
    let padding = format!("# {}\n", "p".repeat(2_000));
    let app = format!("{padding}{APP}");
    let fleet = format!("{FLEET}settings:\n  limits:\n    max_file_size: 1024\n");
    let dir = TempDir::new().unwrap();
    write(dir.path(), &[("fleet.yaml", &fleet), ("apps/x/compose.yaml", &app)]);
    assert_eq!(validate_dir(dir.path()), (1, vec!["apps/x/compose.yaml:1:1 limit".to_string()]));
    // Under the default (1 MiB) it loads.
    assert_eq!(validate_dir(app_dir(&app).path()), (0, vec![]));
}

#[test]
fn a_flood_of_errors_is_cut_at_a_hundred_and_counted() {
    let ports: Vec<String> = (0..5_000).map(|i| format!("      - \"bad{i}\"\n")).collect();
    let app = format!("services:\n  web:\n    image: nginx\n    ports:\n{}", ports.concat());
    let (code, list, report) = validate(&[app_dir(&app).path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(list.len(), 101, "{}", list.len());
    assert!(list[100].ends_with("too-many-diagnostics"), "{}", list[100]);
    let last = report["diagnostics"][100]["message"].as_str().unwrap();
    assert!(last.starts_with("and ") && last.contains("more"), "{last}");
}

#[test]
fn a_list_of_hundreds_of_thousands_of_bad_items_is_one_limit() {
    let app = format!(
        "services:\n  web:\n    image: nginx\n    ports: [{}]\n",
        vec!["b"; 400_000].join(",")
    );
    let (code, list, _) = validate(&[app_dir(&app).path().to_str().unwrap()]);
    assert_eq!((code, list), (1, vec!["apps/x/compose.yaml:4:12 limit".to_string()]));
}

#[test]
fn replicas_have_a_maximum_the_scheduler_holds() {
    let over = "services:\n  web:\n    image: nginx\n    deploy: {replicas: 4294967295}\n";
    let (code, list, _) = validate(&[app_dir(over).path().to_str().unwrap()]);
    assert_eq!((code, list), (1, vec!["apps/x/compose.yaml:4:24 invalid-value".to_string()]));
    // The largest valid count plans without aborting.
    let most = "services:\n  web:\n    image: nginx\n    deploy: {replicas: 1000}\n";
    let model = load(&tree(&[("fleet.yaml", FLEET), ("apps/x/compose.yaml", most)])).unwrap();
    let planned = plan(&Desired::new(&model, &empty_observed(), None), &empty_observed());
    // 1,000 containers and the app's default network.
    assert_eq!(planned.summary.create, 1001);
}

#[test]
fn gitfleet_labels_and_escaping_targets_are_refused() {
    let app = "\
services:
  web:
    image: nginx
    labels: {io.gitfleet.fleet: other}
    secrets:
      - source: pw
        target: ../../etc/shadow
    configs:
      - source: cfg
        target: /etc/../root/x
networks:
  n:
    labels: [io.gitfleet.app=shop]
secrets:
  pw:
    content: x
configs:
  cfg:
    content: y
";
    let (code, list, _) = validate(&[app_dir(app).path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        list,
        [
            "apps/x/compose.yaml:4:14 reserved-label",
            "apps/x/compose.yaml:7:17 path-escape",
            "apps/x/compose.yaml:10:17 path-escape",
            "apps/x/compose.yaml:13:13 reserved-label",
        ]
    );
}
