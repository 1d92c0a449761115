//! What [`execute`](super::execute) asks around its mutating calls: whether it may go on
//! (shutdown, a lost lease), and the hooks before a serving replica is stopped and after a new
//! one is ready (the router drains and adds). [`Unguarded`] says yes to everything;
//! [`CancelGuard`] stops at the next step boundary once its token is cancelled.
//!
//! # Guarantees
//!
//! `check` is asked only at step boundaries: before each host's batch of simple steps (each
//! step on its own), before each replica's create / replace / remove, and before each rolling
//! batch. A step under way is finished, so a stopped apply leaves every replica either as it
//! was, or replaced, never half-made. A rollback already begun is finished too.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::diff::ReplicaKey;

/// Asked by `apply::execute` around its mutating calls.
pub trait Guard: Send + Sync {
    /// Before each mutating batch (a host's simple steps, each replica's replace/create/
    /// remove): Ok(()) to go on, Err(reason) to stop at this step boundary, leaving the
    /// host in a state the next plan recognises.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Before a container that may be serving routed traffic is stopped or removed:
    /// returns once it is out of rotation and drained (bounded by the implementer).
    fn before_stop(
        &self,
        host: &str,
        container_id: &str,
        replica: &ReplicaKey,
    ) -> impl Future<Output = ()> + Send;
    /// After a new replica was started and passed its health gate (router may add it).
    fn after_ready(
        &self,
        host: &str,
        container_id: &str,
        replica: &ReplicaKey,
    ) -> impl Future<Output = ()> + Send;
    /// Resolves (with why) once the apply should stop: health waits select on it, so a
    /// shutdown does not wait out a health timeout. The new replica being waited for is
    /// removed and the one it replaces is back, as after a failed health gate, but nothing
    /// counts as failed. Default: never.
    fn stopped(&self) -> impl Future<Output = String> + Send {
        std::future::pending()
    }
}

/// Always goes on; no hooks (the CLI's `gitfleet apply`, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unguarded;

impl Guard for Unguarded {
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
    async fn before_stop(&self, _: &str, _: &str, _: &ReplicaKey) {}
    async fn after_ready(&self, _: &str, _: &str, _: &ReplicaKey) {}
}

/// Stops at the next step boundary once the token is cancelled (shutdown; with high
/// availability, a child token cancelled when the lease is lost).
#[derive(Debug, Clone, Default)]
pub struct CancelGuard(pub CancellationToken);

impl Guard for CancelGuard {
    async fn check(&self) -> Result<(), String> {
        if self.0.is_cancelled() {
            Err("the apply was stopped (shutting down)".into())
        } else {
            Ok(())
        }
    }
    async fn before_stop(&self, _: &str, _: &str, _: &ReplicaKey) {}
    async fn after_ready(&self, _: &str, _: &str, _: &ReplicaKey) {}
    async fn stopped(&self) -> String {
        self.0.cancelled().await;
        "the apply was stopped (shutting down)".into()
    }
}
