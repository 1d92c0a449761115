//! `gitfleet plan`: observe every host and print the plan from what runs to the repository.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;

use super::pipeline::{load_or_report, observe_and_plan_for};
use super::source::SourceArgs;
use crate::diff::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Output format: text for terminals, markdown for pull-request comments, json for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write the plan as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Markdown,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let loaded = args.source.read()?;
    let what_now = "fix them, then plan again (see `gitfleet validate`).";
    let Some(model) = load_or_report(&loaded.tree, &loaded.options, what_now) else { return Ok(1) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let revision = loaded.revision.map(|r| r.commit);
    let repository = Some(args.source.repository_id());
    let (plan, _) = runtime.block_on(observe_and_plan_for(&model, revision, repository));
    if let Some(path) = &args.out {
        std::fs::write(path, render::json(&plan))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let output = match args.format {
        Format::Text => render::text(&plan),
        Format::Markdown => render::markdown(&plan),
        Format::Json => render::json(&plan),
    };
    print!("{output}");
    if !output.ends_with('\n') {
        println!();
    }
    if plan.refused.is_some() {
        return Ok(1);
    }
    let complete = plan.summary.unreachable_hosts == 0
        && plan.summary.unplaced == 0
        && plan.summary.refused_hosts == 0;
    Ok(if complete { 0 } else { 2 })
}
