//! The integration tests that need real Docker daemons, as one test binary (the test bed in
//! `tests/support` is compiled once for all of them). Every test here starts its own daemons
//! through `support::Testbed` and runs as root.

#[path = "../support/mod.rs"]
mod support;

mod apply;
mod controller;
mod ha;
mod hosts_engine;
mod hosts_observe;
mod plan_hosts;
mod router;
mod two_repositories;
mod web_browser;
mod windows_mixed;
