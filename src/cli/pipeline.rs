//! The steps `plan` and `apply` share: load the revision's model (or report why not), then
//! observe every host and plan against what runs there.

pub use crate::controller::observe_and_plan_for;
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
