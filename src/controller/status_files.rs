//! `status.yaml` (for machines) and `STATUS.md` (for people), rendered from a [`Snapshot`].
//! Pure and deterministic: they hold only what changes when the status does (no sync times,
//! no durations, no since-when), so the status branch gets a commit only when something
//! changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::isolation::InvalidApp;
use super::state::{Deployed, Head, HeadState, HostStatus, ServiceStatus, Snapshot};
use crate::diff::render::short_commit;

pub const STATUS_YAML: &str = "status.yaml";
pub const STATUS_MD: &str = "STATUS.md";

#[derive(Serialize)]
struct StatusFile<'s> {
    repository: &'s str,
    branch: &'s str,
    deployed: Option<&'s Deployed>,
    head: Option<&'s Head>,
    hosts: BTreeMap<&'s str, HostLine<'s>>,
    services: BTreeMap<&'s str, BTreeMap<&'s str, ServiceLine<'s>>>,
    /// Apps of the head that do not validate, and what runs of them instead.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    invalid_apps: &'s BTreeMap<String, InvalidApp>,
    errors: Vec<&'s str>,
}

/// A service's counts, without its replica rows (they change with every replacement; the
/// status file stays small and is committed only when counts or states change).
#[derive(Serialize)]
struct ServiceLine<'s> {
    desired: u32,
    running: u32,
    healthy: u32,
    hosts: &'s BTreeMap<String, super::state::HostReplicas>,
}

fn service_line(s: &ServiceStatus) -> ServiceLine<'_> {
    ServiceLine { desired: s.desired, running: s.running, healthy: s.healthy, hosts: &s.hosts }
}

#[derive(Serialize)]
struct HostLine<'s> {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'s str>,
}

fn host_line(host: &HostStatus) -> HostLine<'_> {
    HostLine { state: host.state.as_str(), reason: host.reason.as_deref() }
}

/// Both files, keyed by path.
pub fn render(snapshot: &Snapshot) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (STATUS_YAML.to_string(), yaml(snapshot).into_bytes()),
        (STATUS_MD.to_string(), markdown(snapshot).into_bytes()),
    ])
}

pub fn yaml(snapshot: &Snapshot) -> String {
    let file = StatusFile {
        repository: &snapshot.repository,
        branch: &snapshot.branch,
        deployed: snapshot.deployed.as_ref(),
        head: snapshot.head.as_ref(),
        hosts: snapshot.hosts.iter().map(|(name, h)| (name.as_str(), host_line(h))).collect(),
        services: snapshot
            .services
            .iter()
            .map(|(app, services)| {
                let lines = services.iter().map(|(n, s)| (n.as_str(), service_line(s))).collect();
                (app.as_str(), lines)
            })
            .collect(),
        invalid_apps: &snapshot.invalid_apps,
        errors: snapshot.problems.iter().map(|p| p.message.as_str()).collect(),
    };
    let body = serde_yaml::to_string(&file).unwrap_or_else(|e| format!("error: {e}\n"));
    format!("# Written by gitfleet after every change of status; do not edit.\n{body}")
}

pub fn markdown(snapshot: &Snapshot) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# gitfleet status\n");
    let _ = writeln!(md, "Repository `{}`, branch `{}`.\n", snapshot.repository, snapshot.branch);
    match &snapshot.deployed {
        Some(d) => {
            let _ = writeln!(
                md,
                "**Deployed:** `{}` {} ({}), applied {}: {} created, {} replaced, {} removed.\n",
                short_commit(&d.revision.commit),
                escape(&d.revision.message),
                escape(&d.revision.author),
                humantime::format_rfc3339_seconds(d.at),
                d.plan.create,
                d.plan.replace,
                d.plan.remove
            );
        }
        None => md.push_str("**Deployed:** nothing yet.\n\n"),
    }
    if let Some(head) = &snapshot.head {
        let state = match head.state {
            HeadState::Pending => "being rolled out",
            HeadState::Deployed => "deployed",
            HeadState::Invalid => "**invalid**: the deployed revision keeps running",
            HeadState::Failed => "**rollout failed**: not retried until a new commit",
        };
        let _ = writeln!(
            md,
            "**Branch head:** `{}` {}: {state}.\n",
            short_commit(&head.revision.commit),
            escape(&head.revision.message)
        );
    }
    if !snapshot.invalid_apps.is_empty() {
        md.push_str("## Invalid apps\n\n");
        for (name, app) in &snapshot.invalid_apps {
            let runs = match &app.running {
                Some(commit) => {
                    format!("its last good revision `{}` keeps running", short_commit(commit))
                }
                None => "no version of it is deployed".to_string(),
            };
            let _ = writeln!(md, "- **{name}**: {} error(s); {runs}.", app.errors.len());
        }
        md.push('\n');
    }
    if !snapshot.problems.is_empty() {
        md.push_str("## Errors\n\n");
        for problem in &snapshot.problems {
            let _ = writeln!(md, "- {}", escape(&problem.message).replace('\n', "\n  "));
        }
        md.push('\n');
    }
    md.push_str("## Hosts\n\n| host | state |\n| --- | --- |\n");
    for (name, health) in &snapshot.hosts {
        let line = host_line(health);
        let state = match line.reason {
            Some(reason) => format!("{} ({})", line.state, escape(reason)),
            None => line.state.to_string(),
        };
        let _ = writeln!(md, "| {name} | {state} |");
    }
    md.push_str("\n## Services\n\n| service | desired | running | healthy | hosts |\n");
    md.push_str("| --- | ---: | ---: | ---: | --- |\n");
    for (app, services) in snapshot.services.iter() {
        for (name, s) in services {
            let hosts: Vec<String> =
                s.hosts.iter().map(|(h, r)| format!("{h}: {}", r.running)).collect();
            let _ = writeln!(
                md,
                "| {app}/{name} | {} | {} | {} | {} |",
                s.desired,
                s.running,
                s.healthy,
                hosts.join(", ")
            );
        }
    }
    md
}

/// Keeps a message from breaking the table or the page.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::controller::state::{
        EventKind, HostReplicas, HostState, Problem, ProblemKind, RevisionInfo, Subject,
    };
    use crate::diff::Summary;

    fn host(state: HostState, reason: Option<&str>, since_secs: u64) -> HostStatus {
        HostStatus {
            state,
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(since_secs),
            reason: reason.map(String::from),
        }
    }

    fn snapshot() -> Snapshot {
        let revision = RevisionInfo {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            author: "Ada <ada@example.com>".into(),
            message: "web: image 2 | faster".into(),
            time: None,
        };
        let mut snapshot = Snapshot {
            repository: "/srv/fleet.git".into(),
            branch: "main".into(),
            deployed: Some(Deployed {
                revision: revision.clone(),
                at: humantime::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
                plan: Summary { replace: 2, ..Summary::default() },
            }),
            head: Some(Head { revision, state: HeadState::Deployed }),
            problems: vec![Problem::new(
                ProblemKind::HostUnreachable,
                Subject::Host { host: "b".into() },
                "host b is unreachable",
            )],
            ..Snapshot::default()
        };
        snapshot.hosts.insert("a".into(), host(HostState::Up, None, 0));
        snapshot.hosts.insert("b".into(), host(HostState::Away, Some("connection refused"), 5));
        let web = ServiceStatus {
            desired: 2,
            running: 2,
            healthy: 1,
            hosts: BTreeMap::from([("a".into(), HostReplicas { running: 2, healthy: 1 })]),
            ..Default::default()
        };
        snapshot.services =
            Arc::new(BTreeMap::from([("shop".into(), BTreeMap::from([("web".into(), web)]))]));
        snapshot
    }

    #[test]
    fn the_yaml_says_what_runs_and_parses_back() {
        let text = yaml(&snapshot());
        let value: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        assert_eq!(value["deployed"]["commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(value["deployed"]["plan"]["replace"], 2);
        assert_eq!(value["head"]["state"], "deployed");
        assert_eq!(value["hosts"]["b"]["state"], "away");
        assert_eq!(value["services"]["shop"]["web"]["hosts"]["a"]["healthy"], 1);
        assert_eq!(value["errors"][0], "host b is unreachable");
    }

    #[test]
    fn invalid_apps_say_what_runs_instead() {
        let mut snapshot = snapshot();
        snapshot.invalid_apps.insert(
            "blog".into(),
            InvalidApp {
                errors: vec!["apps/blog/compose.yaml:4:5: error[schema]: bad".into()],
                running: Some("fedcba9876543210fedcba9876543210fedcba98".into()),
            },
        );
        snapshot.invalid_apps.insert(
            "new".into(),
            InvalidApp {
                errors: vec!["apps/new/compose.yaml:1:1: error[syntax]: x".into()],
                running: None,
            },
        );
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml(&snapshot)).unwrap();
        assert_eq!(
            value["invalid_apps"]["blog"]["errors"][0],
            "apps/blog/compose.yaml:4:5: error[schema]: bad"
        );
        assert_eq!(
            value["invalid_apps"]["blog"]["running"],
            "fedcba9876543210fedcba9876543210fedcba98"
        );
        assert!(value["invalid_apps"]["new"]["running"].is_null());
        let md = markdown(&snapshot);
        assert!(
            md.contains(
                "- **blog**: 1 error(s); its last good revision `fedcba987654` keeps running."
            ),
            "{md}"
        );
        assert!(md.contains("- **new**: 1 error(s); no version of it is deployed."), "{md}");
        // Without invalid apps, the files do not mention them.
        assert!(!yaml(&self::snapshot()).contains("invalid_apps"));
    }

    #[test]
    fn durations_do_not_change_the_files() {
        let mut later = snapshot();
        later.hosts.insert("b".into(), host(HostState::Away, Some("connection refused"), 9));
        later.problems[0].since = SystemTime::now();
        later.events.push(crate::controller::state::EventRecord {
            at: SystemTime::now(),
            kind: EventKind::Host,
            message: "x".into(),
            logs: Some("boom".into()),
        });
        assert_eq!(render(&snapshot()), render(&later));
    }

    #[test]
    fn the_markdown_escapes_table_breakers() {
        let md = markdown(&snapshot());
        assert!(md.contains("`0123456789ab` web: image 2 \\| faster"), "{md}");
        assert!(md.contains("| shop/web | 2 | 2 | 1 | a: 2 |"), "{md}");
        assert!(md.contains("| b | away (connection refused) |"), "{md}");
    }
}
