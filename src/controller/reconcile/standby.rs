//! A standby's view of the fleet (high availability): while another instance leads, the loop
//! still observes every host (at the resync interval, on Docker events, when the repository
//! publishes a new head) and publishes the same host cards, replica rows, routes and
//! problems as the leader, with its role beside them. It plans (pure) to find what the
//! leader's plan would report (unplaced replicas, refused hosts), and applies nothing.
//!
//! # Guarantees
//!
//! * **Read-only by construction.** The only handle on the hosts used here is a
//!   [`hosts::Observer`](crate::hosts::Observer), which lists and gives out no Docker client:
//!   no create, start, stop, rename or remove is reachable from a standby's observation. No
//!   apply, no crash-loop brake (it holds nothing back, it restarts nothing).
//! * **Warm for failover.** It observes through the loop's own pool, so the connections (and
//!   each engine's `/info`) are made before this instance wins, and its hosts' memory
//!   (last seen, away since) is current when it starts planning as the leader.

use tracing::Instrument;

use super::{Outcome, Reconciler};
use crate::controller::state::{EventKind, Problem, ProblemKind, Subject};
use crate::controller::trigger::Batch;
use crate::diff;
use crate::hosts::Observer;

impl Reconciler {
    /// A standby's round for `batch`: take the repository's latest, observe every host
    /// read-only, plan without applying, and publish what was seen. Never fails: problems go
    /// to the status.
    ///
    /// Cancel-safe: its only wait is the observation, and nothing of it is recorded before
    /// that returns (the loop drops it when this instance wins a term).
    pub async fn observe_standing_by(&mut self, batch: &Batch) {
        let span = tracing::info_span!("standby observation", reasons = %batch.describe());
        self.observe_standing_by_in().instrument(span).await
    }

    async fn observe_standing_by_in(&mut self) {
        self.heartbeat.beat();
        self.take_repository();
        let Some(target) = self.target.clone() else {
            self.status.set_problems(self.repository_problems());
            return;
        };
        let model = &target.model;
        let asked = super::now();
        let sighting = Observer::of(self.pool.pool()).observe_model(model).await;
        self.heartbeat.beat();
        let (observed, transitions) =
            self.liveness.observe(sighting.observed, &sighting.failures, asked);
        for transition in &transitions {
            // No failover is counted: a standby moves nothing.
            self.status.event(EventKind::Host, transition.to_string());
        }
        let plan = self.plan_for(&target, &observed);
        let mut problems = Vec::new();
        if let Some(refused) = &plan.refused {
            let refused = Problem::new(ProblemKind::InvalidRevision, Subject::Repository, refused);
            problems.push(refused);
        }
        // The hosts run the target as it is (every host seen, nothing to do): the leader
        // deployed it, and the head shows as deployed here too.
        let unseen = plan.hosts.iter().any(|h| {
            matches!(&h.status, diff::HostStatus::Unreachable { replicas, .. } if *replicas > 0)
        });
        let in_sync = plan.refused.is_none()
            && plan.unplaced.is_empty()
            && !unseen
            && plan.hosts.iter().all(|h| h.steps.is_empty());
        if in_sync {
            self.deployed(&target, plan.summary, &Outcome::InSync);
        }
        tracing::debug!(
            in_sync,
            steps = plan.hosts.iter().map(|h| h.steps.len()).sum::<usize>(),
            "observed as a standby"
        );
        self.record(model, &observed, &plan, problems);
    }
}
