//! What the page shows, as plain values: a pure function of a status [`Snapshot`] and the
//! time it is rendered at. The templates only lay these values out; every decision (which
//! state a service is in, what needs attention, which link is safe) is made here, where it
//! is unit-tested.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::controller::replicas::{ReplicaPhase, ReplicaStatus};
use crate::controller::state::{
    EventKind, HeadState, HostState, ProblemKind, RevisionInfo, ServiceStatus, Snapshot,
    SyncOutcome,
};
use crate::diff::render::{self, short_commit};
use crate::leader::Role;

/// How many syncs and events the page lists (the snapshot keeps more; `/api/status` has
/// them all).
pub const PAGE_SYNCS: usize = 20;
pub const PAGE_EVENTS: usize = 50;

/// A state as people read it: an icon and a word, and a tone for the colour (never the
/// colour alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Badge {
    /// `ok`, `warn`, `bad` or `idle`: the CSS class, and `data-state` for tests.
    pub tone: &'static str,
    pub icon: &'static str,
    pub word: String,
}

impl Badge {
    fn new(tone: &'static str, word: impl Into<String>) -> Self {
        let icon = match tone {
            "ok" => "✓",
            "warn" => "!",
            "bad" => "✕",
            _ => "…",
        };
        Badge { tone, icon, word: word.into() }
    }
}

/// A point in time: the RFC 3339 value (for `<time datetime>`) and how long ago.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    pub rfc3339: String,
    pub ago: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub commit: String,
    pub short: String,
    pub author: String,
    /// The first line of the message.
    pub subject: String,
    /// The commit's page on the forge, when the repository's web address is known (http(s)
    /// only).
    pub link: Option<String>,
    /// When it was committed.
    pub committed: Option<When>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub fleet: String,
    pub repository: String,
    pub branch: String,
    pub overall: Badge,
    pub deployed: Option<Revision>,
    pub deployed_at: Option<When>,
    /// The branch head, when it is not what runs, with why.
    pub head: Option<Revision>,
    pub head_why: Option<String>,
    /// When the controller last finished a sync.
    pub updated: Option<When>,
    /// The sync running now: since when, and why.
    pub syncing: Option<When>,
    pub syncing_why: Option<String>,
    /// When the poll timer fetches next (`when.ago` reads `in 40 s`).
    pub next_poll: Option<When>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    pub badge: Badge,
    pub title: String,
    /// Each problem, in words (validation errors carry their `file:line:col`).
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sync {
    /// Stable across renders, for the `<details>` kept open while sections are swapped.
    pub id: String,
    pub badge: Badge,
    pub at: When,
    pub duration: String,
    pub reasons: String,
    pub outcome: String,
    pub commit: Option<String>,
    /// The plan it carried out, as `gitfleet plan` prints it (steps with their reasons and
    /// changed fields), when it changed anything.
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCount {
    pub host: String,
    pub running: u32,
    pub healthy: u32,
}

/// One replica's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// `web#2`.
    pub name: String,
    pub badge: Badge,
    /// `data-phase` for tests (`running`, `rolling`, ...).
    pub phase: &'static str,
    pub host: Option<String>,
    /// Docker's state, with the health check's word when it has one.
    pub state: String,
    pub image: Option<String>,
    pub revision: Option<String>,
    /// How long the container exists (`3 min`), while it runs.
    pub uptime: Option<String>,
    pub created: Option<String>,
    pub restarts: u32,
    /// Why it is unplaced.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    pub badge: Badge,
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    pub hosts: Vec<HostCount>,
    pub replicas: Vec<Replica>,
    /// Replicas left out of `replicas` (`and N more`).
    pub more_replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct App {
    pub name: String,
    pub badge: Badge,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    pub badge: Badge,
    /// Why it does not answer.
    pub reason: Option<String>,
    /// Since when it is in its state.
    pub since: When,
    /// Replicas of the fleet running there.
    pub replicas: u32,
    /// As `fleet.yaml` registers it (once a revision was loaded).
    pub endpoint: Option<String>,
    pub platform: Option<String>,
    /// `key=value`.
    pub labels: Vec<String>,
    /// `2 CPUs, 2.0 GiB`, when declared.
    pub capacity: Option<String>,
    /// The engine's version, as it reported it.
    pub engine_version: Option<String>,
    /// The fleet's containers there (any state), when it was seen.
    pub containers: Option<u32>,
    /// Reservations used against the declared capacity, one meter per declared resource.
    pub meters: Vec<Meter>,
}

/// Reservations used of a capacity: a `<meter>` and the same in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meter {
    /// `CPU` or `Memory`.
    pub what: &'static str,
    /// In the resource's unit (millicpus, MiB): the meter's `value` and `max`.
    pub used: u64,
    pub capacity: u64,
    /// `0.5 of 2 CPUs reserved (25 %)`.
    pub text: String,
    /// `data-level`: `ok`, `high` (over 80 %) or `over` (over 100 %).
    pub level: &'static str,
}

/// One `x-routes` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `shop.example.com/api`.
    pub rule: String,
    pub service: String,
    pub port: u16,
    pub badge: Badge,
    /// `10.0.0.2:32768 (healthy)`.
    pub backends: Vec<String>,
}

/// High availability: the election as this instance sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Members {
    /// `leader` or `standby`.
    pub role: Badge,
    pub member: Option<String>,
    pub leader: Option<String>,
    pub epoch: Option<i64>,
    pub since: Option<String>,
    pub members: Vec<Member>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub name: String,
    pub leads: bool,
    pub me: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: When,
    /// What it is about, in a word (`revision`, `rollout`, `host`, ...).
    pub kind: &'static str,
    pub message: String,
}

/// The whole page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub header: Header,
    pub attention: Vec<Attention>,
    pub last_sync: Option<Sync>,
    pub syncs: Vec<Sync>,
    pub apps: Vec<App>,
    pub hosts: Vec<Host>,
    pub events: Vec<Event>,
    /// The router's rules (only when the fleet has routes).
    pub routes: Vec<Route>,
    /// The election (only with high availability).
    pub members: Option<Members>,
}

/// Something the web side saw itself (a rejected webhook delivery): not in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEvent {
    pub at: SystemTime,
    pub kind: &'static str,
    pub message: String,
}

/// The page for `snapshot`, as of `now`.
pub fn page(snapshot: &Snapshot, now: SystemTime) -> Page {
    page_with(snapshot, &[], now)
}

/// The page for `snapshot` with the web side's own events (newest first) among the events.
pub fn page_with(snapshot: &Snapshot, local: &[LocalEvent], now: SystemTime) -> Page {
    let total = snapshot.syncs.len();
    let syncs: Vec<Sync> = snapshot
        .syncs
        .iter()
        .take(PAGE_SYNCS)
        .enumerate()
        .map(|(i, s)| {
            let badge = match s.outcome {
                SyncOutcome::InSync => Badge::new("ok", "In sync"),
                SyncOutcome::Applied => Badge::new("ok", "Applied"),
                SyncOutcome::Incomplete => Badge::new("bad", "Incomplete"),
                SyncOutcome::NothingDeployable => Badge::new("warn", "Nothing deployable"),
            };
            let plan = s
                .full_plan
                .as_ref()
                .filter(|p| p.hosts.iter().any(|h| !h.steps.is_empty()) || !p.unplaced.is_empty())
                .map(|p| render::text(p));
            Sync {
                // Newest first: count from the oldest so an id keeps naming the same sync
                // (until the history is full and starts dropping the oldest).
                id: format!("sync-{}", total - i),
                badge,
                at: when(s.at, now),
                duration: duration(Duration::from_millis(s.millis)),
                reasons: s.reasons.clone(),
                outcome: s.detail.clone(),
                commit: s.commit.as_deref().map(|c| short_commit(c).to_string()),
                plan,
            }
        })
        .collect();
    Page {
        header: header(snapshot, now),
        attention: attention(snapshot, now),
        last_sync: syncs.first().cloned(),
        syncs,
        apps: apps(snapshot, now),
        hosts: hosts(snapshot, now),
        events: events(snapshot, local, now),
        routes: routes(snapshot),
        members: members(snapshot),
    }
}

/// The snapshot's events and the local ones, merged newest first, at most [`PAGE_EVENTS`].
fn events(snapshot: &Snapshot, local: &[LocalEvent], now: SystemTime) -> Vec<Event> {
    let mut ours = snapshot.events.iter().take(PAGE_EVENTS).peekable();
    let mut theirs = local.iter().take(PAGE_EVENTS).peekable();
    let mut events = Vec::new();
    while events.len() < PAGE_EVENTS {
        let take_local = match (ours.peek(), theirs.peek()) {
            (Some(a), Some(b)) => b.at > a.at,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => break,
        };
        let event = if take_local {
            let e = theirs.next().expect("peeked");
            Event { at: when(e.at, now), kind: e.kind, message: e.message.clone() }
        } else {
            let e = ours.next().expect("peeked");
            Event { at: when(e.at, now), kind: event_kind(e.kind), message: e.message.clone() }
        };
        events.push(event);
    }
    events
}

fn routes(snapshot: &Snapshot) -> Vec<Route> {
    use crate::router::endpoint::DockerHealth;
    snapshot
        .routes
        .iter()
        .map(|r| {
            let serving = r
                .backends
                .iter()
                .filter(|b| matches!(b.health, DockerHealth::None | DockerHealth::Healthy))
                .count();
            let badge = if r.backends.is_empty() {
                Badge::new("bad", "No replica")
            } else if serving == 0 {
                Badge::new("bad", "None healthy")
            } else if serving < r.backends.len() {
                Badge::new("warn", format!("{serving} of {} healthy", r.backends.len()))
            } else {
                Badge::new("ok", "Serving")
            };
            Route {
                rule: format!("{}{}", r.host, r.path_prefix),
                service: r.service.clone(),
                port: r.port,
                badge,
                backends: r
                    .backends
                    .iter()
                    .map(|b| {
                        let health = match b.health {
                            DockerHealth::None => "no health check",
                            DockerHealth::Starting => "starting",
                            DockerHealth::Healthy => "healthy",
                            DockerHealth::Unhealthy => "unhealthy",
                        };
                        format!("{} ({health})", b.address)
                    })
                    .collect(),
            }
        })
        .collect()
}

fn members(snapshot: &Snapshot) -> Option<Members> {
    let view = &snapshot.leadership;
    let role = match view.role {
        Role::Single => return None,
        Role::Leader => Badge::new("ok", "Leader"),
        Role::Standby => Badge::new("idle", "Standby"),
    };
    let mut names = view.members.clone();
    if let Some(leader) = &view.leader {
        if !names.contains(leader) {
            names.push(leader.clone());
        }
    }
    names.sort();
    Some(Members {
        role,
        member: view.member.clone(),
        leader: view.leader.clone(),
        epoch: view.epoch,
        since: view.since.clone(),
        members: names
            .into_iter()
            .map(|name| Member {
                leads: view.leader.as_ref() == Some(&name),
                me: view.member.as_ref() == Some(&name),
                name,
            })
            .collect(),
        error: view.error.clone(),
    })
}

fn event_kind(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Revision => "revision",
        EventKind::Rollout => "rollout",
        EventKind::Host => "host",
        EventKind::Replica => "replica",
        EventKind::Fetch => "fetch",
        EventKind::Controller => "controller",
    }
}

fn header(snapshot: &Snapshot, now: SystemTime) -> Header {
    let web = web_url(&snapshot.repository);
    let revision = |r: &RevisionInfo| Revision {
        commit: r.commit.clone(),
        short: short_commit(&r.commit).to_string(),
        author: r.author.clone(),
        subject: r.message.lines().next().unwrap_or_default().to_string(),
        link: web.as_ref().map(|base| format!("{base}/commit/{}", r.commit)),
        committed: r.time.map(|t| when(t, now)),
    };
    let deployed = snapshot.deployed.as_ref().map(|d| revision(&d.revision));
    let (head, head_why) = match &snapshot.head {
        Some(head)
            if snapshot
                .deployed
                .as_ref()
                .is_none_or(|d| d.revision.commit != head.revision.commit) =>
        {
            let why = match head.state {
                HeadState::Invalid => "does not validate; the deployed revision keeps running",
                HeadState::Failed => "its rollout failed and was rolled back; not retried",
                HeadState::Pending | HeadState::Deployed => "rolling out",
            };
            (Some(revision(&head.revision)), Some(why.to_string()))
        }
        _ => (None, None),
    };
    Header {
        fleet: snapshot
            .fleet
            .clone()
            .or_else(|| snapshot.plan.as_ref().map(|p| p.fleet.clone()))
            .unwrap_or_else(|| fleet_name(&snapshot.repository)),
        repository: snapshot.repository.clone(),
        branch: snapshot.branch.clone(),
        overall: overall(snapshot),
        deployed,
        deployed_at: snapshot.deployed.as_ref().map(|d| when(d.at, now)),
        head,
        head_why,
        updated: snapshot.syncs.first().map(|s| when(s.at, now)),
        syncing: snapshot.syncing.as_ref().map(|s| when(s.started_at, now)),
        syncing_why: snapshot.syncing.as_ref().map(|s| s.reasons.clone()),
        next_poll: snapshot.next_poll.map(|at| until(at, now)),
    }
}

/// The fleet in one badge: failing when something is broken, attention when a host is away
/// or a service short of replicas, healthy otherwise; waiting before the first sync.
pub fn overall(snapshot: &Snapshot) -> Badge {
    if snapshot.syncs.is_empty() && snapshot.deployed.is_none() {
        return Badge::new("idle", "Starting");
    }
    let head_broken = snapshot
        .head
        .as_ref()
        .is_some_and(|h| matches!(h.state, HeadState::Invalid | HeadState::Failed));
    let services_down = snapshot
        .services
        .values()
        .flat_map(|s| s.values())
        .any(|s| s.desired > 0 && s.healthy == 0);
    if snapshot.deployed.is_none() || services_down {
        return Badge::new("bad", "Failing");
    }
    if head_broken || !snapshot.problems.is_empty() {
        return Badge::new("warn", "Needs attention");
    }
    let short = snapshot.services.values().flat_map(|s| s.values()).any(|s| s.healthy < s.desired);
    if short {
        return Badge::new("warn", "Converging");
    }
    Badge::new("ok", "Healthy")
}

/// How each kind of problem is introduced: tone, word, title.
fn problem_heading(kind: ProblemKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ProblemKind::Fetch => ("bad", "Fetch failed", "The branch cannot be fetched"),
        ProblemKind::InvalidRevision => (
            "bad",
            "Invalid",
            "The branch head does not validate: nothing of it was deployed, the last good revision keeps running",
        ),
        ProblemKind::InvalidApp => (
            "bad",
            "Invalid app",
            "Apps of the branch head that do not validate: each keeps its last good revision running; the other apps are deployed",
        ),
        ProblemKind::UnreadableRevision => ("bad", "Unreadable", "The branch head cannot be read"),
        ProblemKind::RolloutFailed => (
            "bad",
            "Rolled back",
            "The head's rollout failed and was rolled back; it is not retried until a new commit",
        ),
        ProblemKind::ApplyFailed => ("bad", "Failed", "Steps of the last apply failed"),
        ProblemKind::HostUnreachable => (
            "warn",
            "Unreachable",
            "Hosts not answering: their replicas stay until the grace period ends",
        ),
        ProblemKind::HostDown => (
            "bad",
            "Down",
            "Hosts down: their replicas were moved, except those pinned by a volume",
        ),
        ProblemKind::Pinned => {
            ("warn", "Pinned", "Replicas held by their volume on a host that is down")
        }
        ProblemKind::Unplaced => ("bad", "Unplaced", "Replicas that cannot be placed on any host"),
        ProblemKind::HostFailing => (
            "warn",
            "Failing",
            "Hosts whose engine answers with errors: nothing moves off or onto them meanwhile",
        ),
        ProblemKind::PlatformMismatch => (
            "bad",
            "Mismatch",
            "Hosts whose engine reports another platform than fleet.yaml declares: nothing is planned there",
        ),
        ProblemKind::HostRefused => {
            ("bad", "Refused", "Hosts where this fleet name is deployed from another repository")
        }
    }
}

fn attention(snapshot: &Snapshot, now: SystemTime) -> Vec<Attention> {
    let mut items: Vec<Attention> = Vec::new();
    let mut kinds: Vec<ProblemKind> = snapshot.problems.iter().map(|p| p.kind).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let (tone, word, title) = problem_heading(kind);
        let lines = snapshot
            .problems
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| format!("{} (since {})", p.message, when(p.since, now).ago))
            .collect();
        items.push(Attention { badge: Badge::new(tone, word), title: title.into(), lines });
    }
    let mut services = Vec::new();
    for (app, list) in snapshot.services.iter() {
        for (name, s) in list {
            if s.healthy < s.desired {
                services.push(format!(
                    "{app}/{name}: {} of {} replica(s) healthy, {} running",
                    s.healthy, s.desired, s.running
                ));
            }
        }
    }
    if !services.is_empty() {
        items.push(Attention {
            badge: Badge::new("warn", "Short"),
            title: "Services short of healthy replicas".into(),
            lines: services,
        });
    }
    items
}

fn service_badge(s: &ServiceStatus) -> Badge {
    if s.desired == 0 {
        Badge::new("idle", "Scaled to 0")
    } else if s.healthy >= s.desired {
        Badge::new("ok", "Healthy")
    } else if s.healthy == 0 {
        Badge::new("bad", "Down")
    } else {
        Badge::new("warn", "Degraded")
    }
}

/// A replica's phase as a badge.
fn replica_badge(phase: ReplicaPhase) -> Badge {
    match phase {
        ReplicaPhase::Running => Badge::new("ok", "Running"),
        ReplicaPhase::Starting => Badge::new("idle", "Starting"),
        ReplicaPhase::Rolling => Badge::new("warn", "Rolling"),
        ReplicaPhase::RolledBack => Badge::new("warn", "Rolled back"),
        ReplicaPhase::Failing => Badge::new("bad", "Failing"),
        ReplicaPhase::Unplaced => Badge::new("bad", "Unplaced"),
    }
}

fn replica(service: &str, r: &ReplicaStatus, now: SystemTime) -> Replica {
    let running = r.state == "running";
    Replica {
        name: format!("{service}#{}", r.replica),
        badge: replica_badge(r.phase),
        phase: r.phase.as_str(),
        host: r.host.clone(),
        state: match &r.health {
            Some(health) => format!("{} ({health})", r.state),
            None => r.state.clone(),
        },
        image: r.image.clone(),
        revision: r.revision.as_deref().map(|c| short_commit(c).to_string()),
        uptime: r
            .created
            .filter(|_| running)
            .map(|c| duration(now.duration_since(c).unwrap_or_default())),
        created: r.created.map(|c| humantime::format_rfc3339_seconds(c).to_string()),
        restarts: r.restarts,
        reason: r.reason.clone(),
    }
}

/// The service's badge: its counts, unless a replica stands out (unplaced, rolled back,
/// rolling) and the counts say no worse.
fn service_badge_with_replicas(s: &ServiceStatus) -> Badge {
    let base = service_badge(s);
    let has = |phase| s.replicas.iter().any(|r| r.phase == phase);
    if has(ReplicaPhase::Unplaced) {
        return Badge::new("bad", "Unplaced");
    }
    if base.tone == "bad" {
        return base;
    }
    if has(ReplicaPhase::RolledBack) {
        Badge::new("warn", "Rolled back")
    } else if has(ReplicaPhase::Rolling) {
        Badge::new("warn", "Rolling")
    } else {
        base
    }
}

fn apps(snapshot: &Snapshot, now: SystemTime) -> Vec<App> {
    snapshot
        .services
        .iter()
        .map(|(app, services)| {
            let services: Vec<Service> = services
                .iter()
                .map(|(name, s)| Service {
                    name: name.clone(),
                    badge: service_badge_with_replicas(s),
                    replicas: s.replicas.iter().map(|r| replica(name, r, now)).collect(),
                    more_replicas: s.more_replicas,
                    desired: s.desired,
                    running: s.running,
                    healthy: s.healthy,
                    hosts: s
                        .hosts
                        .iter()
                        .map(|(host, r)| HostCount {
                            host: host.clone(),
                            running: r.running,
                            healthy: r.healthy,
                        })
                        .collect(),
                })
                .collect();
            let worst = services
                .iter()
                .map(|s| &s.badge)
                .max_by_key(|b| match b.tone {
                    "bad" => 3,
                    "warn" => 2,
                    "ok" => 1,
                    _ => 0,
                })
                .cloned()
                .unwrap_or_else(|| Badge::new("idle", "No services"));
            App { name: app.clone(), badge: worst, services }
        })
        .collect()
}

fn hosts(snapshot: &Snapshot, now: SystemTime) -> Vec<Host> {
    snapshot
        .hosts
        .iter()
        .map(|(name, status)| {
            let replicas = snapshot
                .services
                .values()
                .flat_map(|s| s.values())
                .filter_map(|s| s.hosts.get(name))
                .map(|r| r.running)
                .sum();
            let badge = match status.state {
                HostState::Up => Badge::new("ok", "Up"),
                HostState::Failing => Badge::new("warn", "Failing"),
                HostState::Away => Badge::new("warn", "Unreachable"),
                HostState::Down => Badge::new("bad", "Down"),
            };
            let info = snapshot.host_info.get(name);
            let capacity = info.and_then(|i| {
                let mut parts = Vec::new();
                if let Some(m) = i.millicpus {
                    parts.push(format!("{} CPUs", m as f64 / 1000.0));
                }
                if let Some(b) = i.memory_bytes {
                    parts.push(format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64));
                }
                (!parts.is_empty()).then(|| parts.join(", "))
            });
            let usage = snapshot.host_usage.get(name);
            let mut meters = Vec::new();
            if let (Some(usage), Some(info)) = (usage, info) {
                if let Some(cpus) = info.millicpus.filter(|c| *c > 0) {
                    let used = usage.reserved_millicpus;
                    let text = format!(
                        "{} of {} CPUs reserved ({} %)",
                        used as f64 / 1000.0,
                        cpus as f64 / 1000.0,
                        percent(used, cpus)
                    );
                    meters.push(Meter {
                        what: "CPU",
                        used,
                        capacity: cpus,
                        text,
                        level: level(used, cpus),
                    });
                }
                if let Some(bytes) = info.memory_bytes.filter(|b| *b > 0) {
                    let mib = |b: u64| b / (1 << 20);
                    let used = usage.reserved_memory_bytes;
                    let text = format!(
                        "{} of {} reserved ({} %)",
                        bytes_text(used),
                        bytes_text(bytes),
                        percent(used, bytes)
                    );
                    meters.push(Meter {
                        what: "Memory",
                        used: mib(used),
                        capacity: mib(bytes).max(1),
                        text,
                        level: level(used, bytes),
                    });
                }
            }
            Host {
                engine_version: usage.and_then(|u| u.engine_version.clone()),
                containers: usage.map(|u| u.containers),
                meters,
                name: name.clone(),
                badge,
                reason: status.reason.clone(),
                since: when(status.since, now),
                replicas,
                endpoint: info.map(|i| i.endpoint.clone()),
                // What the engine reported when it was last planned with, else the declaration.
                platform: snapshot
                    .platforms
                    .get(name)
                    .map(|p| match &p.operating_system {
                        Some(system) => format!("{}/{} ({system})", p.os, p.arch),
                        None => format!("{}/{}", p.os, p.arch),
                    })
                    .or_else(|| info.map(|i| i.platform.clone())),
                labels: info
                    .map(|i| i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default(),
                capacity,
            }
        })
        .collect()
}

fn percent(used: u64, capacity: u64) -> u64 {
    (used as u128 * 100 / capacity.max(1) as u128) as u64
}

fn level(used: u64, capacity: u64) -> &'static str {
    match percent(used, capacity) {
        0..=80 => "ok",
        81..=100 => "high",
        _ => "over",
    }
}

/// `512 MiB`, `1.5 GiB`.
fn bytes_text(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / (1 << 20))
    }
}

/// `at` in RFC 3339 with how long after `now` it comes (`in 40 s`; `due` once passed).
pub fn until(at: SystemTime, now: SystemTime) -> When {
    When {
        rfc3339: humantime::format_rfc3339_seconds(at).to_string(),
        ago: match at.duration_since(now) {
            Ok(d) if d.as_secs() > 0 => format!("in {}", duration(d)),
            _ => "due now".into(),
        },
    }
}

/// `at` in RFC 3339 (UTC, seconds) with how long before `now` it was.
pub fn when(at: SystemTime, now: SystemTime) -> When {
    When {
        rfc3339: humantime::format_rfc3339_seconds(at).to_string(),
        ago: format!("{} ago", duration(now.duration_since(at).unwrap_or_default())),
    }
}

/// A duration in the largest unit that fits: `850 ms`, `12 s`, `3 min`, `5 h`, `2 d`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 if d.as_millis() > 0 => format!("{} ms", d.as_millis()),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// The repository's web address, for links to commits: an `https://` or `http://` clone URL
/// without credentials and without `.git`. Anything else (a path, ssh, git://) has none.
pub fn web_url(repository: &str) -> Option<String> {
    let rest = repository
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| repository.strip_prefix("http://").map(|r| ("http://", r)))?;
    let (scheme, rest) = rest;
    // Drop user info (the URL in the snapshot is redacted, but never show it either way).
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{host}/{path}")
        }
        None => rest.rsplit('@').next().unwrap_or(rest).to_string(),
    };
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let safe = rest.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\'));
    (safe && rest.contains('/')).then(|| format!("{scheme}{rest}"))
}

/// A name for the fleet from its repository: the last path component without `.git`.
fn fleet_name(repository: &str) -> String {
    let trimmed = repository.trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':']).next().unwrap_or(trimmed);
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() { "gitfleet".into() } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::state::{
        Deployed, Head, HostReplicas, HostStatus, Problem, Subject, SyncRecord,
    };

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn revision(commit: &str) -> RevisionInfo {
        RevisionInfo {
            commit: commit.into(),
            author: "Ann".into(),
            message: "Scale web\n\nbody".into(),
            time: Some(at("2025-12-31T23:00:00Z")),
        }
    }

    fn healthy_snapshot() -> Snapshot {
        let mut s = Snapshot::new("https://git.example.com/ops/fleet.git", "main");
        s.deployed = Some(Deployed {
            revision: revision("0123456789abcdef0123"),
            at: at("2026-01-01T00:00:00Z"),
            plan: Default::default(),
        });
        s.head =
            Some(Head { revision: revision("0123456789abcdef0123"), state: HeadState::Deployed });
        s.hosts.insert(
            "a".into(),
            HostStatus { state: HostState::Up, since: at("2026-01-01T00:00:00Z"), reason: None },
        );
        let web = ServiceStatus {
            desired: 2,
            running: 2,
            healthy: 2,
            hosts: [("a".to_string(), HostReplicas { running: 2, healthy: 2 })].into(),
            ..Default::default()
        };
        s.services =
            std::sync::Arc::new([("shop".to_string(), [("web".to_string(), web)].into())].into());
        s.syncs.push(SyncRecord {
            number: 0,
            started_at: at("2026-01-01T00:00:00Z"),
            at: at("2026-01-01T00:00:00Z"),
            reasons: "startup".into(),
            commit: Some("0123456789abcdef0123".into()),
            outcome: SyncOutcome::InSync,
            detail: "in sync".into(),
            millis: 1500,
            plan: Default::default(),
            full_plan: None,
        });
        s
    }

    #[test]
    fn a_healthy_fleet_needs_no_attention() {
        let page = page(&healthy_snapshot(), at("2026-01-01T00:00:42Z"));
        assert_eq!(page.header.overall.word, "Healthy");
        assert_eq!(page.header.fleet, "fleet");
        assert!(page.attention.is_empty());
        assert_eq!(page.header.updated.as_ref().unwrap().ago, "42 s ago");
        let deployed = page.header.deployed.unwrap();
        assert_eq!(deployed.short, "0123456789ab");
        assert_eq!(deployed.subject, "Scale web");
        assert_eq!(
            deployed.link.as_deref(),
            Some("https://git.example.com/ops/fleet/commit/0123456789abcdef0123")
        );
        assert!(page.header.head.is_none());
        assert_eq!(page.hosts[0].replicas, 2);
        assert_eq!(page.last_sync.unwrap().duration, "1 s");
    }

    #[test]
    fn an_invalid_head_and_an_away_host_need_attention() {
        let mut s = healthy_snapshot();
        s.head = Some(Head { revision: revision("fedcba9876543210"), state: HeadState::Invalid });
        let since = at("2026-01-01T00:00:30Z");
        s.problems.push(Problem {
            kind: ProblemKind::InvalidRevision,
            subject: Subject::Repository,
            message: "apps/shop/compose.yaml:4:5: error[unsupported-key]: `build`".into(),
            since,
        });
        s.problems.push(Problem {
            kind: ProblemKind::HostUnreachable,
            subject: Subject::Host { host: "b".into() },
            message: "host b is unreachable: refused".into(),
            since,
        });
        s.hosts.insert(
            "b".into(),
            HostStatus { state: HostState::Away, since, reason: Some("refused".into()) },
        );
        let page = page(&s, at("2026-01-01T00:01:42Z"));
        assert_eq!(page.header.overall.tone, "warn");
        assert_eq!(page.header.head.as_ref().unwrap().short, "fedcba987654");
        assert!(page.header.head_why.as_ref().unwrap().contains("does not validate"));
        let words: Vec<&str> = page.attention.iter().map(|a| a.badge.word.as_str()).collect();
        assert_eq!(words, ["Invalid", "Unreachable"]);
        assert_eq!(
            page.attention[0].lines,
            ["apps/shop/compose.yaml:4:5: error[unsupported-key]: `build` (since 1 min ago)"]
        );
        assert_eq!(page.hosts[1].badge.word, "Unreachable");
        assert_eq!(page.hosts[1].since.ago, "1 min ago");
    }

    #[test]
    fn a_service_without_healthy_replicas_fails_the_fleet() {
        let mut s = healthy_snapshot();
        let mut services = (*s.services).clone();
        services.get_mut("shop").unwrap().get_mut("web").unwrap().healthy = 0;
        s.services = std::sync::Arc::new(services);
        let page = page(&s, at("2026-01-01T00:00:00Z"));
        assert_eq!(page.header.overall.word, "Failing");
        assert_eq!(page.apps[0].badge.word, "Down");
        assert_eq!(page.attention[0].lines, ["shop/web: 0 of 2 replica(s) healthy, 2 running"]);
    }

    #[test]
    fn a_host_shows_the_platform_its_engine_reported() {
        let mut s = healthy_snapshot();
        let reported = crate::diff::platform::HostPlatform {
            os: "windows".into(),
            arch: "x86_64".into(),
            source: crate::diff::platform::PlatformSource::Engine,
            operating_system: Some("Windows Server 2022 Datacenter".into()),
            windows_build: Some(20348),
            isolation: Some("process".into()),
            mismatch: None,
            notes: Vec::new(),
        };
        s.platforms.insert("a".into(), reported);
        let page = page(&s, at("2026-01-01T00:00:00Z"));
        let host = page.hosts.iter().find(|h| h.name == "a").unwrap();
        assert_eq!(
            host.platform.as_deref(),
            Some("windows/x86_64 (Windows Server 2022 Datacenter)")
        );
    }

    #[test]
    fn replicas_hosts_and_the_header_show_what_the_snapshot_adds() {
        use crate::controller::replicas::{HostUsage, ReplicaStatus};
        let mut s = healthy_snapshot();
        let now = at("2026-01-01T00:10:00Z");
        let row = |replica, phase, state: &str| ReplicaStatus {
            replica,
            host: Some("a".into()),
            state: state.into(),
            health: Some("healthy".into()),
            image: Some("gitfleet/web:1".into()),
            revision: Some("0123456789abcdef0123".into()),
            created: Some(at("2026-01-01T00:07:00Z")),
            restarts: 2,
            phase,
            reason: None,
        };
        let mut services = (*s.services).clone();
        let web = services.get_mut("shop").unwrap().get_mut("web").unwrap();
        web.replicas = vec![
            row(1, ReplicaPhase::Running, "running"),
            row(2, ReplicaPhase::Rolling, "running"),
        ];
        web.more_replicas = 3;
        s.services = std::sync::Arc::new(services);
        s.host_info.insert(
            "a".into(),
            crate::controller::state::HostInfo {
                millicpus: Some(2000),
                memory_bytes: Some(1 << 30),
                ..Default::default()
            },
        );
        s.host_usage.insert(
            "a".into(),
            HostUsage {
                engine_version: Some("20.10.24".into()),
                containers: 3,
                reserved_millicpus: 500,
                reserved_memory_bytes: 1536 << 20,
            },
        );
        s.next_poll = Some(at("2026-01-01T00:10:40Z"));
        let page = page(&s, now);
        let service = &page.apps[0].services[0];
        assert_eq!(service.badge.word, "Rolling", "a rolling replica stands out");
        let first = &service.replicas[0];
        assert_eq!(first.name, "web#1");
        assert_eq!(first.state, "running (healthy)");
        assert_eq!(first.uptime.as_deref(), Some("3 min"));
        assert_eq!(first.revision.as_deref(), Some("0123456789ab"));
        assert_eq!(service.replicas[1].badge.word, "Rolling");
        assert_eq!(service.more_replicas, 3);
        let host = &page.hosts[0];
        assert_eq!(host.engine_version.as_deref(), Some("20.10.24"));
        assert_eq!(host.containers, Some(3));
        assert_eq!(host.meters[0].text, "0.5 of 2 CPUs reserved (25 %)");
        assert_eq!(host.meters[0].level, "ok");
        assert_eq!(host.meters[1].text, "1.5 GiB of 1.0 GiB reserved (150 %)");
        assert_eq!(host.meters[1].level, "over");
        assert_eq!(page.header.next_poll.as_ref().unwrap().ago, "in 40 s");
        let committed = page.header.deployed.as_ref().unwrap().committed.as_ref().unwrap();
        assert_eq!(committed.ago, "1 h ago");
        assert!(page.routes.is_empty() && page.members.is_none(), "shown only when configured");
    }

    #[test]
    fn local_events_merge_newest_first() {
        let mut s = healthy_snapshot();
        s.events.push(crate::controller::state::EventRecord {
            at: at("2026-01-01T00:00:10Z"),
            kind: EventKind::Rollout,
            message: "revision deployed".into(),
            logs: None,
        });
        let local = [LocalEvent {
            at: at("2026-01-01T00:00:20Z"),
            kind: "webhook",
            message: "github delivery rejected: bad signature".into(),
        }];
        let page = page_with(&s, &local, at("2026-01-01T00:01:00Z"));
        let kinds: Vec<&str> = page.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["webhook", "rollout"]);
    }

    #[test]
    fn the_election_is_shown_with_high_availability() {
        let mut s = healthy_snapshot();
        s.leadership = crate::leader::View {
            role: Role::Standby,
            member: Some("m2".into()),
            leader: Some("m1".into()),
            epoch: Some(42),
            since: Some("2026-01-01T00:00:00Z".into()),
            members: vec!["m2".into(), "m1".into()],
            error: None,
        };
        let members = page(&s, at("2026-01-01T00:01:00Z")).members.unwrap();
        assert_eq!(members.role.word, "Standby");
        let names: Vec<_> =
            members.members.iter().map(|m| (m.name.as_str(), m.leads, m.me)).collect();
        assert_eq!(names, [("m1", true, false), ("m2", false, true)]);
    }

    #[test]
    fn links_only_to_http_and_https() {
        assert_eq!(
            web_url("https://tok:***@git.example.com/a/b.git").as_deref(),
            Some("https://git.example.com/a/b")
        );
        assert_eq!(web_url("http://h/a/b/").as_deref(), Some("http://h/a/b"));
        for other in [
            "/srv/fleet",
            "ssh://git@h/a/b",
            "git@h:a/b.git",
            "javascript:alert(1)",
            "https://h",
            "https://h/a\"onload",
        ] {
            assert_eq!(web_url(other), None, "{other}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_secs(59)), "59 s");
        assert_eq!(duration(Duration::from_secs(3599)), "59 min");
        assert_eq!(duration(Duration::from_secs(7200)), "2 h");
        assert_eq!(duration(Duration::from_secs(200_000)), "2 d");
    }
}
