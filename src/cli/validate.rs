//! `gitfleet validate`: every problem in the repository at once.

use clap::ValueEnum;
use serde_json::json;

use super::source::SourceArgs;
use crate::model::{self, Diagnostic, Model};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let loaded = args.source.read()?;
    let result = model::load_with(&loaded.tree, &loaded.options);
    let revision = loaded.revision.as_ref().map(|r| r.commit.clone());
    match args.format {
        Format::Text => print_text(&result),
        Format::Json => {
            let (diagnostics, summary) = match &result {
                Ok(model) => (Vec::new(), Some(summary(model))),
                Err(diagnostics) => (diagnostics.clone(), None),
            };
            let report = json!({
                "valid": result.is_ok(),
                "revision": revision,
                "summary": summary,
                "diagnostics": diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

fn print_text(result: &Result<Model, Vec<Diagnostic>>) {
    match result {
        Ok(model) => println!("ok: {}", summary(model)),
        Err(diagnostics) => {
            for diagnostic in diagnostics {
                println!("{diagnostic}");
            }
            let files: std::collections::BTreeSet<&str> =
                diagnostics.iter().map(|d| d.file.as_str()).collect();
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            println!(
                "\n{} error{} in {} file{}; nothing may be deployed from this revision.",
                diagnostics.len(),
                plural(diagnostics.len()),
                files.len(),
                plural(files.len())
            );
        }
    }
}

/// `2 hosts, 3 apps, 7 services, 12 replicas`.
pub fn summary(model: &Model) -> String {
    let services: usize = model.apps.values().map(|a| a.services.len()).sum();
    let replicas: u64 = model
        .apps
        .values()
        .flat_map(|a| a.services.values())
        .map(|s| u64::from(s.deploy.replicas))
        .sum();
    format!(
        "{} hosts, {} apps, {services} services, {replicas} replicas",
        model.fleet.hosts.len(),
        model.apps.len()
    )
}
