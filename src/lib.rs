//! gitfleet: a GitOps reconciler for plain Docker hosts.
//!
//! # Layout
//!
//! * [`model`]: the repository model (`fleet.yaml`, `apps/<app>/compose.yaml`), loaded from a
//!   tree of files and validated (YAML syntax, JSON schema, semantic checks), every problem
//!   reported with its `file:line:col`. Pure: no Docker, no Git, no clock, no network.
//! * [`diff`]: the scheduler (which replica runs on which host) and the planner
//!   (`plan(desired, observed) -> Plan`) with its text / markdown / JSON renderings. Pure.
//! * [`hosts`]: connections to the registered Docker hosts, observing what runs there, and the
//!   Docker calls that change them.
//! * [`sync`]: Git with git2: reading a commit without a checkout, the controller's mirror
//!   (fetch with credentials), branch notifications, status commits.
//! * [`apply`]: carrying a plan out on the hosts: rolling updates, health waits, rollback.
//! * [`webhook`]: HTTP receivers for forge webhooks (GitHub, GitLab, Gitea/Forgejo, generic):
//!   signature checks in constant time, payloads read into a `Hook` handed to a sink.
//! * [`forge`]: the pull-request plan preview: its markdown comment (pure) and the GitHub,
//!   GitLab and Gitea / Forgejo APIs that keep one such comment per pull request up to date.
//! * [`leader`]: high availability: leadership through an etcd lease (election, keep-alive on
//!   the boot clock, the fence each mutating batch passes), so only one instance applies.
//! * [`controller`]: `gitfleet run`'s reconcile loop: triggers, host liveness and failover,
//!   crash-loop backoff, the state the status and the web layer read.
//! * [`web`]: the read-only status page, `/api/status`, live updates (server-sent events),
//!   `/metrics` and health, from the controller's status snapshots; the hardened HTTP server.
//! * [`parallel`]: independent work on every core with results in a fixed order (loading).
//! * [`cli`]: the `gitfleet` command; thin, it calls the functions above.
//!
//! # Invariants
//!
//! * `model` and `diff` perform no I/O; everything that touches the world sits around them.
//! * Only objects that carry this fleet's `io.gitfleet.fleet` label are ever planned for change.
// `deny`, not `forbid`: the one exception is git::deadline, which sets libgit2's socket
// timeouts (git2 offers them only as `unsafe fn`s).
#![deny(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod controller;
pub mod diff;
pub mod forge;
pub mod git;
pub mod hosts;
pub mod leader;
pub mod model;
pub mod parallel;
pub mod router;
pub mod web;
pub mod webhook;
