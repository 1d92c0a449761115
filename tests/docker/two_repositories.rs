//! Two repositories never prune each other: two repositories that use one fleet name on one
//! real host. The first deploys; the second is refused on that host with an error naming the
//! first, and the first's containers are untouched. A clone of the first (a CI checkout of
//! the same remote) counts as the same repository.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{GitRepo, Testbed};

fn apply(repository: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["apply", "--repo", repository.to_str().unwrap(), "--rev", "HEAD", "--yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run gitfleet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_second_repository_with_the_same_fleet_name_is_refused_and_touches_nothing() {
    let bed = Testbed::builder().hosts(1).images().start();
    let host = &bed[0];
    let fleet = format!(
        "settings: {{name: shared, observe_timeout: 5s}}\nhosts:\n  {}:\n    endpoint: {}\n",
        host.name(),
        host.tcp_endpoint()
    );
    let app = |name: &str| format!("services:\n  {name}:\n    image: gitfleet/web:1\n");
    let first = GitRepo::new(&[("fleet.yaml", &fleet), ("apps/one/compose.yaml", &app("web"))]);
    let second = GitRepo::new(&[("fleet.yaml", &fleet), ("apps/two/compose.yaml", &app("api"))]);

    let (code, out) = apply(first.path());
    assert_eq!(code, 0, "{out}");
    let before =
        host.docker(&["ps", "-aq", "--no-trunc", "--filter", "label=io.gitfleet.fleet=shared"]);
    assert_eq!(before.lines().count(), 1, "{before}");
    let owner = host.docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"io.gitfleet.repository\"}}",
        "one-web-1",
    ]);
    let first_id = std::fs::canonicalize(first.path()).unwrap().display().to_string();
    assert_eq!(owner.trim(), first_id);

    // The second repository: refused on the host, naming the first; nothing changes.
    let (code, out) = apply(second.path());
    assert_eq!(code, 2, "{out}");
    let refusal = format!(
        "fleet \"shared\" on this host is deployed from {first_id}; a second repository \
         cannot share a fleet name — rename the fleet in fleet.yaml"
    );
    assert!(out.contains(&refusal), "{out}");
    assert!(!out.contains("one-web-1") || !out.contains("remove"), "{out}");
    let after =
        host.docker(&["ps", "-aq", "--no-trunc", "--filter", "label=io.gitfleet.fleet=shared"]);
    assert_eq!(after, before, "the first repository's containers are untouched");

    // A clone of the first (as a CI runner checks it out) is the same repository.
    let checkout = tempfile::TempDir::new().unwrap();
    git2::Repository::clone(first.path().to_str().unwrap(), checkout.path()).unwrap();
    let (code, out) = apply(checkout.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing to do."), "{out}");
    let again =
        host.docker(&["ps", "-aq", "--no-trunc", "--filter", "label=io.gitfleet.fleet=shared"]);
    assert_eq!(again, before);
}
