//! `gitfleet apply`: plan, confirm, carry the plan out on the hosts, report per host.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::pipeline::{load_or_report, observe_and_plan_for};
use super::source::SourceArgs;
use crate::apply::docker::DockerEngine;
use crate::apply::{self, EventKind, Options};
use crate::diff::{Plan, render};
use crate::model;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Apply without asking. Without a terminal, apply never asks and needs this flag.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Apply exactly this plan (from `gitfleet plan --out`); refused if the revision or any
    /// host changed since it was made.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Docker operations at once per host.
    #[arg(long, default_value_t = 8, env = "GITFLEET_CONCURRENCY")]
    concurrency: usize,
    /// Registry credentials, in Docker's `config.json` format (`auths`); default:
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` when it exists.
    #[arg(long, env = "GITFLEET_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,
}

/// The registry credentials file: the one named, else Docker's usual places if present.
fn registry_config(named: Option<&PathBuf>) -> anyhow::Result<Option<serde_json::Value>> {
    let path = match named {
        Some(path) => path.clone(),
        None => {
            let dir = std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
            match dir.map(|d| d.join("config.json")).filter(|p| p.is_file()) {
                Some(path) => path,
                None => return Ok(None),
            }
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(Some(config))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let reviewed: Option<Plan> = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a gitfleet plan", path.display()))?,
            )
        }
        None => None,
    };
    let loaded = args.source.read()?;
    let revision = loaded.revision.map(|r| r.commit);
    if let Some(reviewed) = &reviewed {
        if reviewed.revision != revision {
            eprintln!(
                "error: the plan was made for revision {}, but the repository is now at {}; plan again",
                reviewed.revision.as_deref().unwrap_or("(working tree)"),
                revision.as_deref().unwrap_or("(working tree)")
            );
            return Ok(1);
        }
    }
    let Some(model) = load_or_report(&loaded.tree, &loaded.options, "nothing was applied.") else {
        return Ok(1);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(apply_model(&args, model, revision, reviewed))
}

async fn apply_model(
    args: &Args,
    model: model::Model,
    revision: Option<String>,
    reviewed: Option<Plan>,
) -> anyhow::Result<i32> {
    let repository = Some(args.source.repository_id());
    let (plan, clients) = observe_and_plan_for(&model, revision, repository).await;
    if let Some(reviewed) = &reviewed {
        let moved: Vec<&str> = plan
            .hosts
            .iter()
            .filter(|h| reviewed.hosts.iter().find(|r| r.host == h.host) != Some(h))
            .map(|h| h.host.as_str())
            .collect();
        if !moved.is_empty() || reviewed.unplaced != plan.unplaced {
            eprintln!(
                "error: the hosts changed since the plan was made (different plan for: {}); plan again",
                if moved.is_empty() { "unplaced replicas".to_string() } else { moved.join(", ") }
            );
            return Ok(1);
        }
    }
    print!("{}", render::text(&plan));
    if let Some(refused) = &plan.refused {
        eprintln!("error: {refused}");
        return Ok(1);
    }
    let incomplete = plan.summary.unreachable_hosts > 0
        || plan.summary.unplaced > 0
        || plan.summary.refused_hosts > 0;
    if plan.summary.is_empty() {
        println!("Nothing to do.");
        return Ok(if incomplete { 2 } else { 0 });
    }
    if !args.yes && !confirm()? {
        println!("Apply cancelled.");
        return Ok(1);
    }
    // The clients that observed the hosts: no second connection, no second /version.
    let mut engine = DockerEngine::from_clients(clients);
    if let Some(config) = registry_config(args.docker_config.as_ref())? {
        engine = engine.with_registry_config(config);
    }
    let options = Options { concurrency: args.concurrency, ..Options::default() };
    let progress = Progress::new(&plan);
    let report =
        apply::execute(&engine, &apply::Unguarded, &model, &plan, &options, &|e| progress.show(e))
            .await;
    progress.finish();
    println!();
    for (host, outcome) in &report.hosts {
        let state = match (&outcome.lost, outcome.failures.is_empty() && outcome.skipped == 0) {
            (Some(reason), _) => format!("LOST ({reason})"),
            (None, true) => "converged".to_string(),
            (None, false) => "NOT converged".to_string(),
        };
        println!(
            "host {host}: {state}: {} done, {} failed, {} skipped",
            outcome.done,
            outcome.failures.len(),
            outcome.skipped
        );
        for failure in &outcome.failures {
            println!("  - {}", failure.replace('\n', "\n    "));
        }
    }
    let converged = report.converged() && !incomplete;
    println!(
        "{}",
        if converged {
            "Apply complete: every host converged."
        } else {
            "Apply incomplete: see above."
        }
    );
    Ok(if converged { 0 } else { 1 })
}

/// Live progress: a bar per host on a terminal, plain lines otherwise (logs, CI).
struct Progress {
    bars: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
}

impl Progress {
    fn new(plan: &Plan) -> Self {
        if !std::io::stdout().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = plan
            .hosts
            .iter()
            .filter(|h| !h.steps.is_empty())
            .map(|h| {
                let bar = multi.add(ProgressBar::new(h.steps.len() as u64));
                bar.set_style(style.clone());
                bar.set_prefix(format!("host {}", h.host));
                (h.host.clone(), bar)
            })
            .collect();
        Progress { bars: Some((multi, bars)) }
    }

    fn show(&self, event: apply::Event) {
        let mark = match event.kind {
            EventKind::Done => "ok  ",
            EventKind::Failed => "FAIL",
            EventKind::Info => "    ",
            EventKind::Logs => "log ",
        };
        let line = format!("[{}] {mark} {}", event.host, event.text);
        match &self.bars {
            None => println!("{line}"),
            Some((multi, bars)) => {
                if let Some(bar) = bars.get(&event.host) {
                    if matches!(event.kind, EventKind::Done | EventKind::Failed) {
                        bar.inc(1);
                    }
                    bar.set_message(event.text.lines().next().unwrap_or_default().to_string());
                }
                // Failures and notes stay on screen above the bars.
                if event.kind != EventKind::Done {
                    let _ = multi.println(line);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}

/// Asks on the terminal; without one, refuses (never waits for input that cannot come).
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not asking for confirmation without a terminal; pass --yes to apply");
    }
    print!("\nApply this plan? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
