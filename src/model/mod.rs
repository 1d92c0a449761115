//! The repository model: types ([`types`]), loading from a tree of files ([`load()`]) and every
//! check a revision must pass before it may be deployed, each problem a [`Diagnostic`] with
//! its location. Pure: files come in as bytes ([`SourceTree`]); nothing here reads the disk
//! or the network.
//!
//! Pipeline, one module a step: [`document`] (YAML → JSON, syntax errors) →
//! [`interpolate`] → [`unsupported`] → [`schema`] → [`compose`] / [`fleet`] (normalise) →
//! [`semantic`]; [`position`] maps the [`path`] of each [`finding`] to a line and column.
//! [`encryption`] decrypts age-encrypted secret files with identities passed in as values
//! ([`LoadOptions`]); [`cache`] reuses the result of every app whose folder did not change.

pub mod cache;
pub mod compose;
pub mod diagnostic;
pub mod digest;
pub mod document;
pub mod encryption;
pub mod finding;
pub mod fleet;
pub mod interpolate;
pub mod limits;
pub mod load;
mod parallel;
pub mod partial;
pub mod path;
pub mod position;
pub mod schema;
pub mod semantic;
pub mod source;
pub mod types;
pub mod units;
pub mod unsupported;
pub mod windows;

pub use cache::{LoadCache, LoadStats, load_cached, load_cached_partial};
pub use diagnostic::Diagnostic;
pub use encryption::{Identities, parse_identities};
pub use load::{LoadOptions, load, load_partial, load_with};
pub use partial::{AppLoad, Composed, Composition, Partial, compose_last_good};
pub use source::{SourceEntry, SourceTree};
pub use types::*;
