//! Crash-loop backoff. Pure: the caller passes the clock.
//!
//! A replica whose container keeps stopping is replaced by the next sync each time; without
//! a brake that is a hot loop. [`CrashLoops::hold_back`] takes the plan's "not running"
//! replacements out of a plan while the replica's backoff (doubling from `base` up to `max`
//! per restart) has not passed, and says when to look again. A replica that stays up for
//! `max` after its last restart starts from `base` again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::diff::{Plan, Reason, ReplicaKey, Step};

#[derive(Debug, Clone, Copy)]
struct Restarts {
    count: u32,
    last: Instant,
}

/// Restarts per replica.
#[derive(Debug, Clone)]
pub struct CrashLoops {
    base: Duration,
    max: Duration,
    replicas: BTreeMap<ReplicaKey, Restarts>,
}

/// A replica whose restart waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub replica: ReplicaKey,
    pub restarts: u32,
    pub wait: Duration,
}

impl CrashLoops {
    pub fn new(base: Duration, max: Duration) -> Self {
        CrashLoops { base, max, replicas: BTreeMap::new() }
    }

    /// How often `replica` was restarted lately (0 once it stayed up long enough).
    pub fn restarts(&self, replica: &ReplicaKey) -> u32 {
        self.replicas.get(replica).map_or(0, |r| r.count)
    }

    fn delay(&self, count: u32) -> Duration {
        let factor = 1_u32.checked_shl(count.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Removes from `plan` the restarts that must wait, records the ones that go ahead, and
    /// returns the replicas held back.
    pub fn hold_back(&mut self, plan: &mut Plan, now: Instant) -> Vec<HeldBack> {
        let max = self.max;
        self.replicas.retain(|_, r| now.duration_since(r.last) < max.saturating_mul(2));
        let mut held = Vec::new();
        for host in &mut plan.hosts {
            let before = host.steps.len();
            host.steps.retain(|step| {
                let Step::ReplaceContainer { replica, reason: Reason::NotRunning { .. }, .. } =
                    step
                else {
                    return true;
                };
                match self.replicas.get(replica) {
                    Some(r) if now.duration_since(r.last) < self.delay(r.count) => {
                        let wait = self.delay(r.count) - now.duration_since(r.last);
                        held.push(HeldBack { replica: replica.clone(), restarts: r.count, wait });
                        false
                    }
                    _ => true,
                }
            });
            plan.summary.replace -= before - host.steps.len();
        }
        for host in &plan.hosts {
            for step in &host.steps {
                if let Step::ReplaceContainer {
                    replica, reason: Reason::NotRunning { .. }, ..
                } = step
                {
                    let entry = self
                        .replicas
                        .entry(replica.clone())
                        .or_insert(Restarts { count: 0, last: now });
                    entry.count += 1;
                    entry.last = now;
                }
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::desired::DesiredContainer;
    use crate::diff::{HostPlan, HostStatus, Summary};
    use crate::model::PullPolicy;

    fn replica() -> ReplicaKey {
        ReplicaKey { app: "shop".into(), service: "web".into(), replica: 1 }
    }

    fn restart_plan() -> Plan {
        let step = Step::ReplaceContainer {
            replica: replica(),
            id: "abc".into(),
            container: DesiredContainer {
                name: "shop-web-1".into(),
                spec: Default::default(),
                spec_hash: "0123456789abcdef".into(),
                pull_policy: PullPolicy::Missing,
                depends_on: Vec::new().into(),
            },
            reason: Reason::NotRunning { state: "exited".into() },
        };
        Plan {
            format_version: 1,
            fleet: "prod".into(),
            revision: None,
            repository: None,
            hosts: vec![HostPlan {
                host: "a".into(),
                status: HostStatus::Reachable,
                steps: vec![step],
                unchanged: 0,
                retained_volumes: Vec::new(),
                platform: None,
            }],
            unplaced: Vec::new(),
            refused: None,
            summary: Summary { replace: 1, ..Summary::default() },
        }
    }

    #[test]
    fn restarts_wait_twice_as_long_each_time_up_to_the_maximum() {
        let mut loops = CrashLoops::new(Duration::from_secs(10), Duration::from_secs(40));
        let t0 = Instant::now();
        let mut plan = restart_plan();
        assert!(loops.hold_back(&mut plan, t0).is_empty(), "the first restart goes ahead");
        assert_eq!(plan.summary.replace, 1);

        let mut plan = restart_plan();
        let held = loops.hold_back(&mut plan, t0 + Duration::from_secs(3));
        assert_eq!(held[0].wait, Duration::from_secs(7));
        assert!(plan.hosts[0].steps.is_empty());
        assert_eq!(plan.summary.replace, 0);

        let waits: Vec<u64> = [10, 20, 40, 40]
            .iter()
            .scan(t0, |t, delay| {
                *t += Duration::from_secs(*delay);
                let mut plan = restart_plan();
                let held = loops.hold_back(&mut plan, *t);
                assert!(held.is_empty(), "after {delay}s the restart goes ahead");
                let mut again = restart_plan();
                Some(loops.hold_back(&mut again, *t)[0].wait.as_secs())
            })
            .collect();
        assert_eq!(waits, [20, 40, 40, 40]);
    }

    #[test]
    fn a_replica_that_stayed_up_starts_over() {
        let mut loops = CrashLoops::new(Duration::from_secs(10), Duration::from_secs(40));
        let t0 = Instant::now();
        for i in 0..4 {
            loops.hold_back(&mut restart_plan(), t0 + Duration::from_secs(100 * i));
        }
        let later = t0 + Duration::from_secs(300 + 80);
        assert!(loops.hold_back(&mut restart_plan(), later).is_empty());
        let held = loops.hold_back(&mut restart_plan(), later);
        assert_eq!(held[0].wait, Duration::from_secs(10));
    }
}
