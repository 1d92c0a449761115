//! What the page shows, as plain values: a pure function of a status [`Snapshot`] and the
//! time it is rendered at. The templates only lay these values out; every decision (which
//! state a service is in, what needs attention, which link is safe) is made here, where it
//! is unit-tested.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::controller::liveness::HostHealth;
use crate::controller::state::{HeadState, RevisionInfo, ServiceStatus, Snapshot};
use crate::diff::render::short_commit;

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCount {
    pub host: String,
    pub running: u32,
    pub healthy: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    pub badge: Badge,
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    pub hosts: Vec<HostCount>,
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
    /// Why it does not answer, and for how long.
    pub reason: Option<String>,
    pub away: Option<String>,
    /// Replicas of the fleet running there.
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: When,
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
}

/// The page for `snapshot`, as of `now`.
pub fn page(snapshot: &Snapshot, now: SystemTime) -> Page {
    let syncs: Vec<Sync> = snapshot
        .syncs
        .iter()
        .take(PAGE_SYNCS)
        .enumerate()
        .map(|(i, s)| {
            let badge = match s.kind.as_str() {
                "in_sync" => Badge::new("ok", "In sync"),
                "applied" => Badge::new("ok", "Applied"),
                "incomplete" => Badge::new("bad", "Incomplete"),
                _ => Badge::new("warn", "Nothing deployable"),
            };
            Sync {
                // Newest first: count from the oldest so an id keeps naming the same sync.
                id: format!("sync-{}", snapshot.syncs.len() - i),
                badge,
                at: when(&s.at, now),
                duration: duration(Duration::from_millis(s.millis)),
                reasons: s.reasons.clone(),
                outcome: s.outcome.clone(),
                commit: s.commit.as_deref().map(|c| short_commit(c).to_string()),
            }
        })
        .collect();
    Page {
        header: header(snapshot, now),
        attention: attention(snapshot),
        last_sync: syncs.first().cloned(),
        syncs,
        apps: apps(snapshot),
        hosts: hosts(snapshot),
        events: snapshot
            .events
            .iter()
            .take(PAGE_EVENTS)
            .map(|e| Event { at: when(&e.at, now), message: e.message.clone() })
            .collect(),
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
                HeadState::Deployed => "rolling out",
            };
            (Some(revision(&head.revision)), Some(why.to_string()))
        }
        _ => (None, None),
    };
    Header {
        fleet: fleet_name(&snapshot.repository),
        repository: snapshot.repository.clone(),
        branch: snapshot.branch.clone(),
        overall: overall(snapshot),
        deployed,
        deployed_at: snapshot.deployed.as_ref().map(|d| when(&d.at, now)),
        head,
        head_why,
        updated: snapshot.syncs.front().map(|s| when(&s.at, now)),
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
    if head_broken || !snapshot.errors.is_empty() {
        return Badge::new("warn", "Needs attention");
    }
    let short = snapshot.services.values().flat_map(|s| s.values()).any(|s| s.healthy < s.desired);
    if short {
        return Badge::new("warn", "Converging");
    }
    Badge::new("ok", "Healthy")
}

fn attention(snapshot: &Snapshot) -> Vec<Attention> {
    let mut items = Vec::new();
    if let Some(head) = &snapshot.head {
        let short = short_commit(&head.revision.commit);
        match head.state {
            HeadState::Invalid => items.push(Attention {
                badge: Badge::new("bad", "Invalid"),
                title: format!(
                    "Revision {short} does not validate: nothing of it was deployed, the last good revision keeps running"
                ),
                lines: Vec::new(),
            }),
            HeadState::Failed => items.push(Attention {
                badge: Badge::new("bad", "Rolled back"),
                title: format!(
                    "The rollout of {short} failed and was rolled back; push a fix to try again"
                ),
                lines: Vec::new(),
            }),
            HeadState::Deployed => {}
        }
    }
    let mut hosts = Vec::new();
    for (name, health) in &snapshot.hosts {
        match health {
            HostHealth::Up => {}
            HostHealth::Unreachable { reason, for_seconds } => hosts.push(format!(
                "host {name} has not answered for {} ({reason}); its replicas stay until the grace period ends",
                duration(Duration::from_secs(*for_seconds))
            )),
            HostHealth::Down { reason, for_seconds } => hosts.push(format!(
                "host {name} is down since {} ago ({reason}); its replicas were moved, except those pinned by a volume",
                duration(Duration::from_secs(*for_seconds))
            )),
        }
    }
    if !hosts.is_empty() {
        items.push(Attention {
            badge: Badge::new("bad", "Unreachable"),
            title: "Hosts not answering".into(),
            lines: hosts,
        });
    }
    let mut services = Vec::new();
    for (app, list) in &snapshot.services {
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
    // Host problems are listed above already, in words of their own.
    let errors: Vec<String> =
        snapshot.errors.iter().filter(|e| !e.starts_with("host ")).cloned().collect();
    if !errors.is_empty() {
        items.push(Attention {
            badge: Badge::new("bad", "Errors"),
            title: "Current errors".into(),
            lines: errors,
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

fn apps(snapshot: &Snapshot) -> Vec<App> {
    snapshot
        .services
        .iter()
        .map(|(app, services)| {
            let services: Vec<Service> = services
                .iter()
                .map(|(name, s)| Service {
                    name: name.clone(),
                    badge: service_badge(s),
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

fn hosts(snapshot: &Snapshot) -> Vec<Host> {
    snapshot
        .hosts
        .iter()
        .map(|(name, health)| {
            let replicas = snapshot
                .services
                .values()
                .flat_map(|s| s.values())
                .filter_map(|s| s.hosts.get(name))
                .map(|r| r.running)
                .sum();
            let (badge, reason, away) = match health {
                HostHealth::Up => (Badge::new("ok", "Up"), None, None),
                HostHealth::Unreachable { reason, for_seconds } => (
                    Badge::new("warn", "Unreachable"),
                    Some(reason.clone()),
                    Some(duration(Duration::from_secs(*for_seconds))),
                ),
                HostHealth::Down { reason, for_seconds } => (
                    Badge::new("bad", "Down"),
                    Some(reason.clone()),
                    Some(duration(Duration::from_secs(*for_seconds))),
                ),
            };
            Host { name: name.clone(), badge, reason, away, replicas }
        })
        .collect()
}

/// `rfc3339` with how long before `now` it was; an unreadable time is shown as it is.
pub fn when(rfc3339: &str, now: SystemTime) -> When {
    let ago = humantime::parse_rfc3339(rfc3339)
        .ok()
        .map(|t| format!("{} ago", duration(now.duration_since(t).unwrap_or_default())))
        .unwrap_or_default();
    When { rfc3339: rfc3339.to_string(), ago }
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
    use crate::controller::state::{Deployed, Head, HostReplicas, SyncRecord};

    fn revision(commit: &str) -> RevisionInfo {
        RevisionInfo {
            commit: commit.into(),
            author: "Ann".into(),
            message: "Scale web\n\nbody".into(),
        }
    }

    fn healthy_snapshot() -> Snapshot {
        let mut s = Snapshot {
            repository: "https://git.example.com/ops/fleet.git".into(),
            branch: "main".into(),
            ..Snapshot::default()
        };
        s.deployed = Some(Deployed {
            revision: revision("0123456789abcdef0123"),
            at: "2026-01-01T00:00:00Z".into(),
            plan: Default::default(),
        });
        s.head =
            Some(Head { revision: revision("0123456789abcdef0123"), state: HeadState::Deployed });
        s.hosts.insert("a".into(), HostHealth::Up);
        let web = ServiceStatus {
            desired: 2,
            running: 2,
            healthy: 2,
            hosts: [("a".to_string(), HostReplicas { running: 2, healthy: 2 })].into(),
        };
        s.services.insert("shop".into(), [("web".to_string(), web)].into());
        s.syncs.push_front(SyncRecord {
            at: "2026-01-01T00:00:00Z".into(),
            reasons: "startup".into(),
            commit: Some("0123456789abcdef0123".into()),
            outcome: "in sync".into(),
            kind: "in_sync".into(),
            millis: 1500,
        });
        s
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
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
        s.errors.push("apps/shop/compose.yaml:4:5: error[unsupported-key]: `build`".into());
        s.errors.push("host b is unreachable: refused".into());
        s.hosts.insert(
            "b".into(),
            HostHealth::Unreachable { reason: "refused".into(), for_seconds: 75 },
        );
        let page = page(&s, at("2026-01-01T00:00:42Z"));
        assert_eq!(page.header.overall.tone, "warn");
        assert_eq!(page.header.head.as_ref().unwrap().short, "fedcba987654");
        assert!(page.header.head_why.as_ref().unwrap().contains("does not validate"));
        let titles: Vec<&str> = page.attention.iter().map(|a| a.badge.word.as_str()).collect();
        assert_eq!(titles, ["Invalid", "Unreachable", "Errors"]);
        assert_eq!(
            page.attention[2].lines,
            ["apps/shop/compose.yaml:4:5: error[unsupported-key]: `build`"]
        );
        assert!(page.attention[1].lines[0].contains("for 1 min"));
        assert_eq!(page.hosts[1].badge.word, "Unreachable");
    }

    #[test]
    fn a_service_without_healthy_replicas_fails_the_fleet() {
        let mut s = healthy_snapshot();
        let web = s.services.get_mut("shop").unwrap().get_mut("web").unwrap();
        web.healthy = 0;
        let page = page(&s, at("2026-01-01T00:00:00Z"));
        assert_eq!(page.header.overall.word, "Failing");
        assert_eq!(page.apps[0].badge.word, "Down");
        assert_eq!(page.attention[0].lines, ["shop/web: 0 of 2 replica(s) healthy, 2 running"]);
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
