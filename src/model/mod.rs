//! The repository model: types ([`types`]), loading from a tree of files ([`load`]) and every
//! check a revision must pass before it may be deployed, each problem a [`Diagnostic`] with
//! its location. Pure: files come in as bytes, nothing here reads the disk or the network.

pub mod types;

pub use types::*;
