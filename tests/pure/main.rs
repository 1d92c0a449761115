//! The integration tests that need no Docker daemon, as one test binary: loading and
//! validation (the binary on real repositories, the corpus, fuzzing), planning properties,
//! Git remotes served on loopback, webhook receivers and forge comments against local fakes.

#[path = "../support/mod.rs"]
mod support;

mod corpus;
mod counting;
mod digest_keys;
mod forge_comments;
mod git_edges;
mod git_remote;
mod hosts_failures;
mod leader_etcd;
mod leader_secure;
mod load_bounds;
mod load_fuzz;
mod plan_properties;
mod preview_claims;
mod preview_untrusted;
mod restart_offline;
mod retry_cli;
mod router_proxy;
mod router_tls;
mod untrusted;
mod validate;
mod validate_age;
mod web_routes;
mod web_run;
mod web_server;
mod webhook_receive;
mod windows_engine;
mod windows_fleet;
