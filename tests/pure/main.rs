//! The integration tests that need no Docker daemon, as one test binary: loading and
//! validation (the binary on real repositories, the corpus, fuzzing), planning properties,
//! Git remotes served on loopback, webhook receivers and forge comments against local fakes.

#[path = "../support/mod.rs"]
mod support;

mod corpus;
mod forge_comments;
mod git_remote;
mod load_fuzz;
mod plan_properties;
mod untrusted;
mod validate;
mod validate_age;
mod webhook_receive;
