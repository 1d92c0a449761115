//! Host liveness: the controller's memory of every host. Pure: the caller passes the clock.
//!
//! Each observation round goes through [`Liveness::observe`], which returns the observation
//! the scheduler should plan against: a reachable host as seen; an unreachable one with what
//! it ran when last seen (`last_seen`), and, once it has been away longer than the grace
//! period, marked `down` so its replicas move. It also says which hosts changed state, for
//! the event log and the status.
//!
//! # Observation errors are not host loss
//!
//! Only connection-level failures ([`FailureClass::Connection`]: refused, timed out, reset,
//! no route, DNS, TLS handshake) make a host away, then down. A host that answers with an
//! error ([`FailureClass::Api`]: an HTTP 500 to `/containers/json`, say) is
//! [`HostHealth::Failing`]: the error is reported, the host is planned against with its last
//! good observation and nothing is planned onto it or moved off it (the planner sees it as
//! unreachable, never down), and its grace period does not run. A host away that comes back
//! failing is back (it answers), and failing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::diff::{HostObservation, HostState, Observed};
use crate::hosts::FailureClass;

/// What the controller knows of one host.
#[derive(Debug, Clone, Default)]
struct Memory {
    last_seen: Option<HostState>,
    /// Since when it has not answered, and why; `None` while it answers.
    away: Option<(Instant, String)>,
    /// Since when it has answered with errors, and the error; `None` while it answers well
    /// (or does not answer at all).
    failing: Option<(Instant, String)>,
    /// Whether its passing the grace period has been reported.
    reported_down: bool,
}

/// A host's state as people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostHealth {
    Up,
    /// Answering, with errors (an API error, not a lost connection): reported, nothing moves,
    /// however long it lasts.
    Failing {
        reason: String,
        for_seconds: u64,
    },
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
    Unreachable {
        host: String,
        reason: String,
    },
    Down {
        host: String,
        reason: String,
    },
    Back {
        host: String,
    },
    /// It answers, with an error.
    Failing {
        host: String,
        reason: String,
    },
    /// It answers without errors again.
    Recovered {
        host: String,
    },
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
            Transition::Failing { host, reason } => write!(
                f,
                "host {host} answers with an error ({reason}): nothing is moved while it does"
            ),
            Transition::Recovered { host } => write!(f, "host {host} answers without errors again"),
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
    /// registered). `failures` says, for hosts that could not be observed, whether they are
    /// gone or answering with errors (`hosts::Round::failures`); a host missing from it counts
    /// as gone.
    pub fn observe(
        &mut self,
        observed: Observed,
        failures: &BTreeMap<String, FailureClass>,
        now: Instant,
    ) -> (Observed, Vec<Transition>) {
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
                    if memory.failing.take().is_some() {
                        transitions.push(Transition::Recovered { host: name.clone() });
                    }
                    memory.last_seen = Some(state.clone());
                    HostObservation::Reachable(state)
                }
                HostObservation::Unreachable { reason, .. }
                    if failures.get(&name) == Some(&FailureClass::Api) =>
                {
                    memory.reported_down = false;
                    if memory.away.take().is_some() {
                        transitions.push(Transition::Back { host: name.clone() });
                    }
                    let since = match &memory.failing {
                        Some((since, _)) => *since,
                        None => {
                            transitions.push(Transition::Failing {
                                host: name.clone(),
                                reason: reason.clone(),
                            });
                            now
                        }
                    };
                    memory.failing = Some((since, reason.clone()));
                    // Planned as unreachable, never down: nothing onto it, nothing off it.
                    HostObservation::Unreachable {
                        reason,
                        last_seen: memory.last_seen.clone(),
                        down: false,
                    }
                }
                HostObservation::Unreachable { reason, .. } => {
                    memory.failing = None;
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
                let health = match (&memory.away, &memory.failing) {
                    (None, None) => HostHealth::Up,
                    (None, Some((since, reason))) => HostHealth::Failing {
                        reason: reason.clone(),
                        for_seconds: now.duration_since(*since).as_secs(),
                    },
                    (Some((since, reason)), _) => {
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
        let (_, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", Some(1))]), &BTreeMap::new(), start);
        assert!(changes.is_empty());

        let t1 = start + Duration::from_secs(5);
        let (seen, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", None)]), &BTreeMap::new(), t1);
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
        let (seen, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", None)]), &BTreeMap::new(), t2);
        assert!(changes.is_empty());
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: false, .. }));

        let t3 = t1 + Duration::from_secs(30);
        let (seen, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", None)]), &BTreeMap::new(), t3);
        assert!(matches!(changes.as_slice(), [Transition::Down { host, .. }] if host == "b"));
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: true, .. }));
        assert!(matches!(liveness.health(t3)["b"], HostHealth::Down { for_seconds: 30, .. }));
        assert_eq!(liveness.next_deadline(t3), None);

        // Down is reported once.
        let (_, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", None)]), &BTreeMap::new(), t3);
        assert!(changes.is_empty());

        let (seen, changes) =
            liveness.observe(round(&[("a", Some(2)), ("b", Some(0))]), &BTreeMap::new(), t3);
        assert_eq!(changes, [Transition::Back { host: "b".into() }]);
        assert!(matches!(planned(&seen, "b"), HostObservation::Reachable(_)));
        assert_eq!(liveness.health(t3)["b"], HostHealth::Up);
    }

    #[test]
    fn a_host_never_seen_is_never_down() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        let (seen, _) = liveness.observe(round(&[("a", None)]), &BTreeMap::new(), start);
        assert!(matches!(
            planned(&seen, "a"),
            HostObservation::Unreachable { last_seen: None, down: false, .. }
        ));
        let later = start + Duration::from_secs(600);
        let (seen, changes) = liveness.observe(round(&[("a", None)]), &BTreeMap::new(), later);
        assert!(changes.is_empty());
        assert!(matches!(planned(&seen, "a"), HostObservation::Unreachable { down: false, .. }));
        assert!(matches!(liveness.health(later)["a"], HostHealth::Unreachable { .. }));
    }

    /// Host `b` answers every round but one with an HTTP 500, as a broken engine would.
    #[test]
    fn an_api_error_is_reported_and_moves_nothing_however_long_it_lasts() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        let api = BTreeMap::from([("b".to_string(), FailureClass::Api)]);
        liveness.observe(round(&[("a", Some(1)), ("b", Some(2))]), &BTreeMap::new(), start);

        let t1 = start + Duration::from_secs(1);
        let (seen, changes) = liveness.observe(round(&[("a", Some(1)), ("b", None)]), &api, t1);
        assert!(
            matches!(changes.as_slice(), [Transition::Failing { host, .. }] if host == "b"),
            "{changes:?}"
        );
        // Planned against its last good observation, never down.
        match planned(&seen, "b") {
            HostObservation::Unreachable { last_seen: Some(state), down: false, .. } => {
                assert_eq!(state.containers.len(), 2)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(liveness.next_deadline(t1), None, "no grace period runs");

        // Ten minutes of errors: still failing, not down; reported once.
        let t2 = t1 + Duration::from_secs(600);
        let (seen, changes) = liveness.observe(round(&[("a", Some(1)), ("b", None)]), &api, t2);
        assert!(changes.is_empty(), "{changes:?}");
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: false, .. }));
        assert_eq!(
            liveness.health(t2)["b"],
            HostHealth::Failing { reason: "connection refused".into(), for_seconds: 600 }
        );
        assert_eq!(liveness.health(t2)["a"], HostHealth::Up);

        let (seen, changes) =
            liveness.observe(round(&[("a", Some(1)), ("b", Some(2))]), &BTreeMap::new(), t2);
        assert_eq!(changes, [Transition::Recovered { host: "b".into() }]);
        assert!(matches!(planned(&seen, "b"), HostObservation::Reachable(_)));
        assert_eq!(liveness.health(t2)["b"], HostHealth::Up);
    }

    #[test]
    fn a_host_away_that_answers_with_errors_is_back_and_failing_and_its_grace_stops() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        let none = BTreeMap::new();
        let api = BTreeMap::from([("b".to_string(), FailureClass::Api)]);
        let connection = BTreeMap::from([("b".to_string(), FailureClass::Connection)]);
        liveness.observe(round(&[("b", Some(1))]), &none, start);
        let t1 = start + Duration::from_secs(20);
        let (_, changes) = liveness.observe(round(&[("b", None)]), &connection, t1);
        assert!(matches!(changes.as_slice(), [Transition::Unreachable { .. }]));
        let t2 = t1 + Duration::from_secs(20);
        let (_, changes) = liveness.observe(round(&[("b", None)]), &api, t2);
        assert!(matches!(
            changes.as_slice(),
            [Transition::Back { .. }, Transition::Failing { .. }]
        ));
        // Past the grace period since it went away, but it answers: not down.
        let t3 = t1 + Duration::from_secs(90);
        let (seen, _) = liveness.observe(round(&[("b", None)]), &api, t3);
        assert!(matches!(planned(&seen, "b"), HostObservation::Unreachable { down: false, .. }));
        assert!(matches!(liveness.health(t3)["b"], HostHealth::Failing { for_seconds: 70, .. }));
        // Gone again: the grace period starts afresh.
        let (_, changes) = liveness.observe(round(&[("b", None)]), &connection, t3);
        assert!(matches!(changes.as_slice(), [Transition::Unreachable { .. }]));
        assert_eq!(liveness.next_deadline(t3), Some(Duration::from_secs(30)));
    }

    #[test]
    fn hosts_no_longer_registered_are_forgotten() {
        let now = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(30));
        liveness.observe(round(&[("a", Some(1)), ("b", None)]), &BTreeMap::new(), now);
        liveness.observe(round(&[("a", Some(1))]), &BTreeMap::new(), now);
        assert_eq!(liveness.health(now).keys().collect::<Vec<_>>(), ["a"]);
    }
}
