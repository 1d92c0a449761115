//! The steps `plan` and `apply` share: load the revision's model (or report why not), then
//! observe every host and plan against what runs there.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diff::{self, Desired, Plan};
use crate::hosts;
use crate::model::{self, LoadOptions, Model, SourceTree};

/// The model of `tree`, or `None` after printing every diagnostic and `what_now` to stderr.
pub fn load_or_report(tree: &SourceTree, options: &LoadOptions, what_now: &str) -> Option<Model> {
    match model::load_with(tree, options) {
        Ok(model) => Some(model),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("\n{} error(s): {what_now}", diagnostics.len());
            None
        }
    }
}

/// Observes every host of `model` (each bounded by `settings.observe_timeout`) and plans.
/// Also returns each host's connected client (or why there is none), for an apply to reuse.
pub async fn observe_and_plan(
    model: &Model,
    revision: Option<String>,
) -> (Plan, BTreeMap<String, Result<bollard::Docker, String>>) {
    let settings = &model.fleet.settings;
    let timeout = Duration::from_millis(settings.observe_timeout_ms);
    let (observed, clients) =
        hosts::Pool::new().observe_all(&model.fleet.hosts, &settings.name, timeout).await;
    (diff::plan(&Desired::new(model, &observed, revision), &observed), clients)
}
