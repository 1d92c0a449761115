//! `gitfleet retry` against a running `gitfleet run` (no Docker: its one host is a socket
//! that does not exist): the signed generic hook makes the controller sync with `retry` among
//! its reasons; a wrong secret and an unreachable controller are clear errors, exit code 1.
//! `--app NAME` names one app: one the controller does not know is refused by it (422), and
//! the command says so, naming the app.

use std::process::{Command, Output};
use std::time::Duration;

use super::web_run::{fleet_repo, http, start, wait_until};

fn retry(server: &str, secret_file: &std::path::Path) -> Output {
    retry_with(server, secret_file, &[])
}

fn retry_with(server: &str, secret_file: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["retry", "--server", server, "--secret-file", secret_file.to_str().unwrap()])
        .args(extra)
        .env_remove("GITFLEET_WEBHOOK_GENERIC_SECRET")
        .output()
        .unwrap()
}

/// How many syncs in `/api/status` had `retry` among their reasons.
fn retry_syncs(listen: std::net::SocketAddr) -> usize {
    let (_, body) = http(listen, "GET", "/api/status", &[], "");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["syncs"].as_array().map_or(0, |syncs| {
        syncs.iter().filter(|s| s["reasons"].as_str().unwrap().contains("retry")).count()
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn retry_sends_the_signed_generic_hook_and_says_what_went_wrong() {
    let repo = fleet_repo();
    let cache = tempfile::TempDir::new().unwrap();
    let secrets = tempfile::TempDir::new().unwrap();
    let good = secrets.path().join("good");
    std::fs::write(&good, "generic-s3cret\n").unwrap();
    let wrong = secrets.path().join("wrong");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let run = start(
        &repo,
        cache.path(),
        &["--hooks-listen", "127.0.0.1:0", "--webhook-generic-secret-file", good.to_str().unwrap()],
    );
    let hooks = format!("http://{}", run.hooks.expect("a hooks listener"));
    wait_until("first sync", Duration::from_secs(30), || {
        http(run.listen, "GET", "/readyz", &[], "").0 == 200
    });

    let output = retry(&hooks, &good);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("retry requested"));
    wait_until("a sync for the retry", Duration::from_secs(20), || retry_syncs(run.listen) >= 1);

    let output = retry(&hooks, &wrong);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("the secret is not the controller's"), "{}", stderr(&output));

    // The page's listener has no hooks: a 404 that says so.
    let output = retry(&format!("http://{}", run.listen), &good);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no generic receiver"), "{}", stderr(&output));

    // Nothing listens on port 9 of loopback.
    let output = retry("http://127.0.0.1:9", &good);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot reach the controller"), "{}", stderr(&output));
}

#[test]
fn retry_of_one_app_names_it_and_an_unknown_app_is_refused() {
    let repo = fleet_repo();
    let cache = tempfile::TempDir::new().unwrap();
    let secrets = tempfile::TempDir::new().unwrap();
    let secret = secrets.path().join("secret");
    std::fs::write(&secret, "generic-s3cret\n").unwrap();
    let run = start(
        &repo,
        cache.path(),
        &[
            "--hooks-listen",
            "127.0.0.1:0",
            "--webhook-generic-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    let hooks = format!("http://{}", run.hooks.expect("a hooks listener"));
    wait_until("first sync", Duration::from_secs(30), || {
        http(run.listen, "GET", "/readyz", &[], "").0 == 200
    });

    // The fleet has one app, shop: another name is refused by the controller, which names
    // it and the apps it has; no sync is triggered.
    let output = retry_with(&hooks, &secret, &["--app", "shopp"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("the controller refused the retry"), "{said}");
    assert!(said.contains("no app named \"shopp\""), "{said}");
    assert!(said.contains("(its apps: shop)"), "{said}");

    // Not an app name at all: refused before anything is sent.
    let output = retry_with(&hooks, &secret, &["--app", "../Shop"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is not an app name"), "{}", stderr(&output));
    assert_eq!(retry_syncs(run.listen), 0, "a refused retry synced");

    let output = retry_with(&hooks, &secret, &["--app", "shop"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(said.contains("retry of app shop requested"), "{said}");
    wait_until("a sync for the retry", Duration::from_secs(20), || retry_syncs(run.listen) >= 1);
    // The app reached the loop: no rollout of it failed, and the events say so.
    let (_, body) = http(run.listen, "GET", "/api/status", &[], "");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let said = "retry of app(s) shop asked, but no rollout of them failed: nothing to retry";
    let events = status["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["message"] == said), "{events:?}");
}
