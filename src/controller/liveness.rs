//! Host liveness: the controller's memory of every host. Pure: the caller passes the clock.
//!
//! Each observation round goes through [`Liveness::observe`], which returns the observation
//! the scheduler should plan against: a reachable host as seen; an unreachable one with what
//! it ran when last seen (`last_seen`), and, once it has been away longer than the grace
//! period, marked `down` so its replicas move. It also says which hosts changed state, for
//! the event log and the status.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::diff::{HostObservation, HostState, Observed};

/// What the controller knows of one host.
#[derive(Debug, Clone, Default)]
struct Memory {
    last_seen: Option<HostState>,
    /// Since when it has not answered, and why; `None` while it answers.
    away: Option<(Instant, String)>,
    /// Whether its passing the grace period has been reported.
    reported_down: bool,
}

/// A host's state as people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostHealth {
    Up,
    /// Not answering, for less than the grace period: nothing moves.
    Unreachable {
        reason: String,
        for_seconds: u64,
    },
    /// Not answering for longer than the grace period: its replicas run elsewhere.
    Down {
        reason: String,
        for_seconds: u64,
    },
}

/// A change of a host's state, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Unreachable { host: String, reason: String },
    Down { host: String, reason: String },
    Back { host: String },
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transition::Unreachable { host, reason } => {
                write!(f, "host {host} is unreachable ({reason})")
            }
            Transition::Down { host, reason } => write!(
                f,
                "host {host} is down ({reason}): its replicas are moved, except those pinned by a volume"
            ),
            Transition::Back { host } => write!(f, "host {host} is back"),
        }
    }
}

/// Every host's memory, and the grace period before failover.
#[derive(Debug, Clone)]
pub struct Liveness {
    grace: Duration,
    hosts: BTreeMap<String, Memory>,
}

impl Liveness {
    pub fn new(grace: Duration) -> Self {
        Liveness { grace, hosts: BTreeMap::new() }
    }

    /// Takes in one observation round made at `now`; returns what to plan against and the
    /// hosts whose state changed. Hosts absent from `observed` are forgotten (no longer
    /// registered).
    pub fn observe(&mut self, observed: Observed, now: Instant) -> (Observed, Vec<Transition>) {
        self.hosts.retain(|name, _| observed.hosts.contains_key(name));
        let mut transitions = Vec::new();
        let mut effective = Observed::default();
        for (name, observation) in observed.hosts {
            let memory = self.hosts.entry(name.clone()).or_default();
            let planned = match observation {
                HostObservation::Reachable(state) => {
                    memory.reported_down = false;
                    if memory.away.take().is_some() {
                        transitions.push(Transition::Back { host: name.clone() });
                    }
                    memory.last_seen = Some(state.clone());
                    HostObservation::Reachable(state)
                }
                HostObservation::Unreachable { reason, .. } => {
                    let since = match &memory.away {
                        Some((since, _)) => *since,
                        None => {
                            transitions.push(Transition::Unreachable {
                                host: name.clone(),
                                reason: reason.clone(),
                            });
                            now
                        }
                    };
                    // A host never seen since the controller started is never down: nobody
                    // knows which volumes it holds, and moving its replicas could start a
                    // stateful service on a fresh, empty volume.
                    let down =
                        now.duration_since(since) >= self.grace && memory.last_seen.is_some();
                    if down && !memory.reported_down {
                        memory.reported_down = true;
                        transitions
                            .push(Transition::Down { host: name.clone(), reason: reason.clone() });
                    }
                    memory.away = Some((since, reason.clone()));
                    HostObservation::Unreachable {
                        reason,
                        last_seen: memory.last_seen.clone(),
                        down,
                    }
                }
            };
            effective.hosts.insert(name, planned);
        }
        (effective, transitions)
    }

    /// Every host's state at `now`.
    pub fn health(&self, now: Instant) -> BTreeMap<String, HostHealth> {
        self.hosts
            .iter()
            .map(|(name, memory)| {
                let health = match &memory.away {
                    None => HostHealth::Up,
                    Some((since, reason)) => {
                        let away = now.duration_since(*since);
                        let reason = reason.clone();
                        let for_seconds = away.as_secs();
                        if away >= self.grace && memory.last_seen.is_some() {
                            HostHealth::Down { reason, for_seconds }
                        } else {
                            HostHealth::Unreachable { reason, for_seconds }
                        }
                    }
                };
                (name.clone(), health)
            })
            .collect()
    }

    /// How long until the first host now unreachable passes the grace period, if any: the
    /// controller syncs again then, so failover does not wait for the next resync.
    pub fn next_deadline(&self, now: Instant) -> Option<Duration> {
        self.hosts
            .values()
            .filter_map(|memory| memory.away.as_ref())
            .map(|(since, _)| (*since + self.grace).saturating_duration_since(now))
            .filter(|left| !left.is_zero())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ObservedContainer;

    fn round(hosts: &[(&str, Option<usize>)]) -> Observed {
        let mut observed = Observed::default();
        for (name, containers) in hosts {
            let observation = match containers {
                Some(n) => HostObservation::Reachable(HostState {
                    containers: (0..*n)
                        .map(|i| ObservedContainer {
                            id: format!("{name}-{i}"),
                            name: format!("c{i}"),
                            state: "running".into(),
                            labels: BTreeMap::new(),
                            created: 0,
                            health: None,
                            ports: Vec::new(),
                        })
                        .collect(),
                    ..HostState::default()
                }),
                None => HostObservation::unreachable("connection refused"),
            };
            observed.hosts.insert(name.to_string(), observation);
        }
        observed
    }

    fn planned<'o>(observed: &'o Observed, host: &str) -> &'o HostObservation {
        &observed.hosts[host]
    }

    #[test]
    fn a_host_is_remembered_while_away_and_down_after_the_grace_period() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        let (_, changes) = liveness.observe(round(&[("a", Some(2)), ("b", Some(1))]), start);
        assert!(changes.is_empty());

        let t1 = start + Duration::from_secs(5);
        let (seen, changes) = liveness.observe(round(&[("a", Some(2)), ("b", None)]), t1);
        assert_eq!(
            changes,
            [Transition::Unreachable { host: "b".into(), reason: "connection refused".into() }]
        );
        match planned(&seen, "b") {
            HostObservation::Unreachable { last_seen: Some(state), down: false, .. } => {
                assert_eq!(state.containers.len(), 1)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(liveness.next_deadline(t1), Some(Duration::from_secs(30)));

        // Still within the grace period: no new transition.
        let t2 = t1 + Duration::from_secs(29);
        let (seen, changes) = liveness.observe(round(&[("a", Some(2)), ("b", None)]), t2);
        assert!(changes.is_empty());
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: false, .. }));

        let t3 = t1 + Duration::from_secs(30);
        let (seen, changes) = liveness.observe(round(&[("a", Some(2)), ("b", None)]), t3);
        assert!(matches!(changes.as_slice(), [Transition::Down { host, .. }] if host == "b"));
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: true, .. }));
        assert!(matches!(liveness.health(t3)["b"], HostHealth::Down { for_seconds: 30, .. }));
        assert_eq!(liveness.next_deadline(t3), None);

        // Down is reported once.
        let (_, changes) = liveness.observe(round(&[("a", Some(2)), ("b", None)]), t3);
        assert!(changes.is_empty());

        let (seen, changes) = liveness.observe(round(&[("a", Some(2)), ("b", Some(0))]), t3);
        assert_eq!(changes, [Transition::Back { host: "b".into() }]);
        assert!(matches!(planned(&seen, "b"), HostObservation::Reachable(_)));
        assert_eq!(liveness.health(t3)["b"], HostHealth::Up);
    }

    #[test]
    fn a_host_never_seen_is_never_down() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        let (seen, _) = liveness.observe(round(&[("a", None)]), start);
        assert!(matches!(
            planned(&seen, "a"),
            HostObservation::Unreachable { last_seen: None, down: false, .. }
        ));
        let later = start + Duration::from_secs(600);
        let (seen, changes) = liveness.observe(round(&[("a", None)]), later);
        assert!(changes.is_empty());
        assert!(matches!(planned(&seen, "a"), HostObservation::Unreachable { down: false, .. }));
        assert!(matches!(liveness.health(later)["a"], HostHealth::Unreachable { .. }));
    }

    #[test]
    fn hosts_no_longer_registered_are_forgotten() {
        let now = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        liveness.observe(round(&[("a", Some(1)), ("b", None)]), now);
        liveness.observe(round(&[("a", Some(1))]), now);
        assert_eq!(liveness.health(now).keys().collect::<Vec<_>>(), ["a"]);
    }
}
