//! `gitfleet status`: a running controller's picture in the terminal, read from its
//! `/api/status` (like `argocd app list` or `nomad job status`), or that JSON as it is.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The controller's address (its --listen).
    #[arg(long, env = "GITFLEET_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// `text` for people, `json` for the controller's /api/status as it is.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let url = format!("{}/api/status", args.server.trim_end_matches('/'));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--server must be an http:// or https:// URL, not {:?}", args.server);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status: Value = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        let response = client.get(&url).send().await.with_context(|| {
            format!("cannot reach the controller at {url}: is `gitfleet run` running there?")
        })?;
        let code = response.status();
        if !code.is_success() {
            bail!("{url} answered {code}");
        }
        response.json::<Value>().await.with_context(|| format!("{url} did not answer JSON"))
    })?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Format::Text => print!("{}", render(&status)),
    }
    Ok(0)
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or_default()
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The terminal picture of an `/api/status` answer.
pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "repository {} (branch {})",
        text(status, "repository"),
        text(status, "branch")
    );
    let deployed = &status["deployed"];
    if deployed.is_object() {
        let subject = text(deployed, "message").lines().next().unwrap_or_default();
        let _ = writeln!(
            out,
            "deployed   {} {subject:?} by {}, at {}",
            short(text(deployed, "commit")),
            text(deployed, "author"),
            text(deployed, "at")
        );
    } else {
        let _ = writeln!(out, "deployed   nothing yet");
    }
    let head = &status["head"];
    if head.is_object() && head["commit"] != deployed["commit"] {
        let why = match text(head, "state") {
            "invalid" => "does not validate",
            "failed" => "rollout failed, rolled back",
            _ => "rolling out",
        };
        let _ = writeln!(out, "head       {} ({why})", short(text(head, "commit")));
    }
    if let Some(sync) = status["syncs"].as_array().and_then(|s| s.first()) {
        let _ = writeln!(
            out,
            "last sync  {} at {} ({} ms): {}",
            text(sync, "outcome"),
            text(sync, "at"),
            sync["millis"].as_u64().unwrap_or(0),
            text(sync, "detail")
        );
    }
    let problems = status["problems"].as_array().cloned().unwrap_or_default();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nNEEDS ATTENTION");
        for problem in &problems {
            let _ = writeln!(
                out,
                "  ✕ {} (since {})",
                text(problem, "message"),
                text(problem, "since")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{:<32} {:<10} {:>7} {:>7} {:>7}  WHERE",
        "SERVICE", "STATE", "DESIRED", "RUNNING", "HEALTHY"
    );
    if let Some(apps) = status["services"].as_object() {
        for (app, services) in apps {
            for (name, s) in services.as_object().into_iter().flatten() {
                let n = |k: &str| s[k].as_u64().unwrap_or(0);
                let (desired, running, healthy) = (n("desired"), n("running"), n("healthy"));
                let state = if desired == 0 {
                    "- scaled 0"
                } else if healthy >= desired {
                    "✓ healthy"
                } else if healthy == 0 {
                    "✕ down"
                } else {
                    "! degraded"
                };
                let hosts: Vec<String> = s["hosts"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(h, r)| format!("{h}:{}", r["running"].as_u64().unwrap_or(0)))
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<32} {state:<10} {desired:>7} {running:>7} {healthy:>7}  {}",
                    format!("{app}/{name}"),
                    hosts.join(" ")
                );
            }
        }
    }
    let _ = writeln!(out, "\n{:<16} STATE", "HOST");
    if let Some(hosts) = status["hosts"].as_object() {
        for (host, health) in hosts {
            let state = match text(health, "state") {
                "up" => "✓ up".to_string(),
                other => {
                    format!("✕ {other} since {}: {}", text(health, "since"), text(health, "reason"))
                }
            };
            let _ = writeln!(out, "{host:<16} {state}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_status_for_a_terminal() {
        let status = serde_json::json!({
            "version": 1,
            "repository": "/srv/fleet", "branch": "main",
            "deployed": {"commit": "0123456789abcdef", "author": "Ann", "message": "Scale web\n\nmore", "at": "2026-01-01T00:00:00Z", "plan": {}},
            "head": {"commit": "fedcba9876543210", "author": "Bob", "message": "Break", "state": "invalid"},
            "problems": [{"kind": "invalid_revision", "subject": {"type": "repository"}, "message": "apps/shop/compose.yaml:4:5: error[unsupported-key]: `build`", "since": "2026-01-01T00:00:01Z"}],
            "hosts": {"a": {"state": "up", "since": "2026-01-01T00:00:00Z"}, "b": {"state": "away", "reason": "refused", "since": "2026-01-01T00:00:02Z"}},
            "services": {"shop": {"web": {"desired": 2, "running": 2, "healthy": 1, "hosts": {"a": {"running": 1, "healthy": 1}, "b": {"running": 1, "healthy": 0}}}}},
            "syncs": [{"at": "2026-01-01T00:00:00Z", "reasons": "startup", "commit": null, "outcome": "in_sync", "detail": "in sync", "millis": 80}],
            "events": []
        });
        let text = render(&status);
        for line in [
            "deployed   0123456789ab \"Scale web\" by Ann, at 2026-01-01T00:00:00Z",
            "head       fedcba987654 (does not validate)",
            "  ✕ apps/shop/compose.yaml:4:5: error[unsupported-key]: `build` (since 2026-01-01T00:00:01Z)",
            "b                ✕ away since 2026-01-01T00:00:02Z: refused",
            "last sync  in_sync at 2026-01-01T00:00:00Z (80 ms): in sync",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
        assert!(
            text.contains("shop/web") && text.contains("! degraded") && text.contains("a:1 b:1"),
            "{text}"
        );
    }
}
