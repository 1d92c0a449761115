//! Per-app isolation in the loop: a new head whose `fleet.yaml` is valid becomes the target
//! app by app. Its good apps are deployed; each broken app keeps the version the hosts are
//! kept at now ([`crate::model::compose_last_good`]), and is reported with its errors and
//! the revision it still runs.
//!
//! # What happens to an app that is broken
//!
//! * **It had a good version** (in the target the hosts are kept at): that version keeps
//!   running, with drift repair and failover as before, until a revision where it
//!   validates again.
//! * **It never had one the controller knows of** (broken in its first revision, or broken
//!   when the controller starts): nothing of it is created, changed or removed. Containers of
//!   it that exist (deployed before a restart) are left exactly as they are: they are taken
//!   out of what the planner sees ([`without_apps`]), so they are neither repaired nor
//!   removed until the app validates.
//! * **It was deleted** (its folder is gone): that is not a broken app; it is removed, even
//!   if other apps of the revision are broken.
//!
//! Pure: no I/O; the reconciler calls these functions and publishes the result.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::state::{Problem, ProblemKind, RevisionInfo, Subject};
use super::trigger::RetryScope;
use crate::diff::Observed;
use crate::diff::labels;
use crate::diff::observed::HostObservation;
use crate::diff::render::short_commit;
use crate::model::{Composed, Composition, Model};

/// A broken app as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidApp {
    /// Its problems in the head, `file:line:col: error[code]: message` each.
    pub errors: Vec<String>,
    /// The commit whose version of the app runs instead; `None`: no version of it is
    /// deployed by this controller (left as it is on the hosts).
    pub running: Option<String>,
}

/// Which commit each app's version in a composed target comes from: the head's for its
/// current apps, the previous target's for held ones (absent apps have none).
pub fn origins(
    composed: &Composed,
    head: &str,
    previous: Option<&BTreeMap<String, String>>,
    previous_commit: Option<&str>,
) -> BTreeMap<String, String> {
    composed
        .apps
        .iter()
        .filter_map(|(name, state)| {
            let commit = match state {
                Composition::Current => head.to_string(),
                Composition::Held(_) => previous
                    .and_then(|p| p.get(name).cloned())
                    .or_else(|| previous_commit.map(str::to_string))?,
                Composition::Absent(_) => return None,
            };
            Some((name.clone(), commit))
        })
        .collect()
}

/// The broken apps of `composed`, for the status.
pub fn invalid_apps(
    composed: &Composed,
    origins: &BTreeMap<String, String>,
) -> BTreeMap<String, InvalidApp> {
    composed
        .broken()
        .map(|(name, state)| {
            let errors = state.errors().iter().map(ToString::to_string).collect();
            (name.to_string(), InvalidApp { errors, running: origins.get(name).cloned() })
        })
        .collect()
}

/// One problem per error of each broken app, saying what runs instead.
pub fn problems(head: &RevisionInfo, apps: &BTreeMap<String, InvalidApp>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, app) in apps {
        let instead = match &app.running {
            Some(commit) => format!("it keeps running revision {}", short_commit(commit)),
            None => "no version of it is deployed (what runs of it is left as it is)".into(),
        };
        for error in &app.errors {
            problems.push(Problem::new(
                ProblemKind::InvalidApp,
                Subject::App { app: name.clone() },
                format!(
                    "app {name} is invalid in {}: {error}\n{instead}",
                    short_commit(&head.commit)
                ),
            ));
        }
    }
    problems
}

/// The event for a head with broken apps.
pub fn event(head: &RevisionInfo, apps: &BTreeMap<String, InvalidApp>) -> Option<String> {
    if apps.is_empty() {
        return None;
    }
    let each: Vec<String> = apps
        .iter()
        .map(|(name, app)| {
            let runs = match &app.running {
                Some(commit) => format!("keeps running {}", short_commit(commit)),
                None => "not deployed".into(),
            };
            format!("{name} ({} error(s), {runs})", app.errors.len())
        })
        .collect();
    Some(format!(
        "revision {}: invalid app(s) {}; the other apps are deployed",
        short_commit(&head.commit),
        each.join(", ")
    ))
}

/// `model` with each app of `apps` (whose rollout failed its health gate) taken back to its
/// version in `good` (removed if `good` has none), and `origins` to match: the other apps
/// keep the revision's version. Per-app rejection; and, with the rejected target as `good`,
/// a per-app retry ([`Retry::Apps`]).
pub fn fall_back(
    model: &Model,
    origins: &BTreeMap<String, String>,
    apps: &BTreeSet<String>,
    good: Option<(&Model, &BTreeMap<String, String>)>,
) -> (Model, BTreeMap<String, String>) {
    let mut model = model.clone();
    let mut origins = origins.clone();
    for app in apps {
        match good.and_then(|(m, o)| Some((m.apps.get(app)?, o.get(app)?))) {
            Some((version, origin)) => {
                model.apps.insert(app.clone(), version.clone());
                origins.insert(app.clone(), origin.clone());
            }
            None => {
                model.apps.remove(app);
                origins.remove(app);
            }
        }
    }
    (model, origins)
}

/// What a retry request does to a revision whose rollout failed for the apps `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// The whole revision becomes the target again (every failed app is retried).
    Whole,
    /// Only these failed apps go back to the revision's version ([`fall_back`] towards the
    /// rejected target); the other failed apps keep their last good version.
    Apps(BTreeSet<String>),
    /// None of the apps asked for failed: nothing changes, and why.
    Nothing(String),
}

/// What `asked` retries, given the apps `failed` whose rollout failed and was rolled back.
pub fn retry(failed: &BTreeSet<String>, asked: &RetryScope) -> Retry {
    let RetryScope::Apps(apps) = asked else { return Retry::Whole };
    let retried: BTreeSet<String> = apps.intersection(failed).cloned().collect();
    if retried.is_empty() {
        let names: Vec<&str> = apps.iter().map(String::as_str).collect();
        return Retry::Nothing(format!(
            "retry of app(s) {} asked, but no rollout of them failed: nothing to retry",
            names.join(", ")
        ));
    }
    if retried == *failed { Retry::Whole } else { Retry::Apps(retried) }
}

/// `Ok` when `app` is an app of the fleet as `snapshot` shows it (deployed, held or
/// invalid); else the refusal, naming it and the apps there are.
pub fn known_app(snapshot: &super::state::Snapshot, app: &str) -> Result<(), String> {
    if snapshot.services.contains_key(app) || snapshot.invalid_apps.contains_key(app) {
        return Ok(());
    }
    let mut apps: Vec<&str> =
        snapshot.services.keys().chain(snapshot.invalid_apps.keys()).map(String::as_str).collect();
    apps.sort_unstable();
    apps.dedup();
    let known = if apps.is_empty() { "none yet".to_string() } else { apps.join(", ") };
    Err(format!(
        "no app named {app:?} in the fleet this controller keeps (its apps: {known}); nothing was retried"
    ))
}

/// The app of a service named `app/service`.
pub fn app_of(service: &str) -> &str {
    service.split_once('/').map_or(service, |(app, _)| app)
}

/// The apps of rolled-back services (`app/service`).
pub fn apps_of(services: &BTreeSet<String>) -> BTreeSet<String> {
    services.iter().map(|s| app_of(s).to_string()).collect()
}

/// `observed` without the containers, networks and volumes of `apps`: what the planner
/// must not touch (broken apps with no version deployed by this controller).
/// Borrowed as it is when there are none (no copy on the common path).
pub fn without_apps<'a>(observed: &'a Observed, apps: &BTreeSet<String>) -> Cow<'a, Observed> {
    if apps.is_empty() {
        return Cow::Borrowed(observed);
    }
    let ours = |labels: &BTreeMap<String, String>| {
        labels.get(labels::APP).is_some_and(|app| apps.contains(app))
    };
    let strip = |state: &mut crate::diff::observed::HostState| {
        state.containers.retain(|c| !ours(&c.labels));
        state.networks.retain(|n| !ours(&n.labels));
        state.volumes.retain(|v| !ours(&v.labels));
    };
    let mut observed = observed.clone();
    for host in observed.hosts.values_mut() {
        match host {
            HostObservation::Reachable(state) => strip(state),
            HostObservation::Unreachable { last_seen: Some(state), .. } => strip(state),
            HostObservation::Unreachable { .. } => {}
        }
    }
    Cow::Owned(observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::observed::{HostState, ObservedContainer, ObservedObject};
    use crate::model::{SourceTree, compose_last_good, load_partial};

    fn tree(apps: &[(&str, &str)]) -> SourceTree {
        let mut tree = SourceTree::new();
        tree.insert_file("fleet.yaml", b"hosts:\n  a: {endpoint: unix:///a.sock}\n".to_vec());
        for (name, compose) in apps {
            tree.insert_file(format!("apps/{name}/compose.yaml"), compose.as_bytes().to_vec());
        }
        tree
    }

    const GOOD: &str = "services:\n  web:\n    image: web:1\n";
    const BROKEN: &str = "services:\n  web:\n    image: [unclosed\n";

    fn head(commit: &str) -> RevisionInfo {
        RevisionInfo { commit: commit.into(), author: "a".into(), message: "m".into(), time: None }
    }

    #[test]
    fn held_apps_name_the_revision_they_run_and_new_broken_ones_run_nothing() {
        let options = Default::default();
        let first = compose_last_good(
            &load_partial(&tree(&[("one", GOOD), ("two", GOOD)]), &options).unwrap(),
            None,
        );
        let first_origins = origins(&first, "aaaaaaaa1", None, None);
        assert_eq!(first_origins["one"], "aaaaaaaa1");

        let second = compose_last_good(
            &load_partial(&tree(&[("one", BROKEN), ("two", GOOD), ("new", BROKEN)]), &options)
                .unwrap(),
            Some(&first.model),
        );
        let second_origins = origins(&second, "bbbbbbbb2", Some(&first_origins), Some("aaaaaaaa1"));
        assert_eq!(second_origins["one"], "aaaaaaaa1");
        assert_eq!(second_origins["two"], "bbbbbbbb2");
        assert!(!second_origins.contains_key("new"));

        let apps = invalid_apps(&second, &second_origins);
        assert_eq!(apps["one"].running.as_deref(), Some("aaaaaaaa1"));
        assert_eq!(apps["new"].running, None);
        assert!(apps["one"].errors[0].starts_with("apps/one/compose.yaml:4:1: error[yaml-syntax]"));
        let problems = problems(&head("bbbbbbbb2"), &apps);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[1].subject, Subject::App { app: "one".into() });
        assert!(
            problems[1].message.contains("apps/one/compose.yaml:4:1"),
            "{}",
            problems[1].message
        );
        assert!(
            problems[1].message.contains("keeps running revision aaaaaaa"),
            "{}",
            problems[1].message
        );
        let event = event(&head("bbbbbbbb2"), &apps).unwrap();
        assert!(event.contains("one (1 error(s), keeps running aaaaaaaa1)"), "{event}");
    }

    #[test]
    fn a_rejected_app_falls_back_alone() {
        let options = Default::default();
        let load = |apps: &[(&str, &str)]| {
            compose_last_good(&load_partial(&tree(apps), &options).unwrap(), None).model
        };
        let good = load(&[("one", GOOD), ("two", GOOD)]);
        let good_origins: BTreeMap<String, String> =
            [("one".into(), "a1".into()), ("two".into(), "a1".into())].into();
        let next = "services:\n  web:\n    image: web:2\n";
        let target = load(&[("one", next), ("two", next), ("three", next)]);
        let origins: BTreeMap<String, String> =
            ["one", "two", "three"].map(|a| (a.to_string(), "b2".to_string())).into();
        let services = BTreeSet::from(["one/web".to_string(), "three/web".to_string()]);
        let apps = apps_of(&services);
        assert_eq!(apps, BTreeSet::from(["one".to_string(), "three".to_string()]));
        let (model, origins) = fall_back(&target, &origins, &apps, Some((&good, &good_origins)));
        assert_eq!(model.apps["one"].services["web"].image, "web:1");
        assert_eq!(model.apps["two"].services["web"].image, "web:2");
        assert!(!model.apps.contains_key("three"));
        assert_eq!(origins, [("one".into(), "a1".into()), ("two".into(), "b2".into())].into());
    }

    #[test]
    fn a_retry_of_one_app_brings_back_its_new_version_alone() {
        let set = |apps: &[&str]| apps.iter().map(|a| a.to_string()).collect::<BTreeSet<_>>();
        let failed = set(&["one", "three"]);
        assert_eq!(retry(&failed, &RetryScope::All), Retry::Whole);
        assert_eq!(retry(&failed, &RetryScope::Apps(set(&["one"]))), Retry::Apps(set(&["one"])));
        assert_eq!(
            retry(&failed, &RetryScope::Apps(set(&["one", "two"]))),
            Retry::Apps(set(&["one"]))
        );
        assert_eq!(retry(&failed, &RetryScope::Apps(set(&["three", "one"]))), Retry::Whole);
        let Retry::Nothing(why) = retry(&failed, &RetryScope::Apps(set(&["two"]))) else {
            panic!("a retry of an app that did not fail changed something");
        };
        assert_eq!(
            why,
            "retry of app(s) two asked, but no rollout of them failed: nothing to retry"
        );
        assert!(matches!(
            retry(&BTreeSet::new(), &RetryScope::Apps(set(&["one"]))),
            Retry::Nothing(_)
        ));

        // The rejected target (every app at its new version) and the target after the
        // rejection (the failed apps one and three back at their good version): retrying
        // one takes one alone to its new version.
        let options = Default::default();
        let load = |apps: &[(&str, &str)]| {
            compose_last_good(&load_partial(&tree(apps), &options).unwrap(), None).model
        };
        let next = "services:\n  web:\n    image: web:2\n";
        let rejected = load(&[("one", next), ("two", next), ("three", next)]);
        let rejected_origins: BTreeMap<String, String> =
            ["one", "two", "three"].map(|a| (a.to_string(), "b2".to_string())).into();
        let good = load(&[("one", GOOD), ("two", GOOD), ("three", GOOD)]);
        let good_origins: BTreeMap<String, String> =
            ["one", "two", "three"].map(|a| (a.to_string(), "a1".to_string())).into();
        let (after, after_origins) =
            fall_back(&rejected, &rejected_origins, &failed, Some((&good, &good_origins)));
        let Retry::Apps(apps) = retry(&failed, &RetryScope::Apps(set(&["one"]))) else {
            panic!("not a retry of apps");
        };
        let (model, origins) =
            fall_back(&after, &after_origins, &apps, Some((&rejected, &rejected_origins)));
        let image = |app: &str| model.apps[app].services["web"].image.as_str();
        assert_eq!((image("one"), image("two"), image("three")), ("web:2", "web:2", "web:1"));
        assert_eq!(
            origins,
            [("one", "b2"), ("three", "a1"), ("two", "b2")]
                .map(|(a, c)| (a.to_string(), c.to_string()))
                .into()
        );
    }

    #[test]
    fn only_an_app_the_status_shows_can_be_retried() {
        use super::super::state::Snapshot;
        let mut snapshot = Snapshot::default();
        let none = known_app(&snapshot, "shop").unwrap_err();
        assert_eq!(
            none,
            "no app named \"shop\" in the fleet this controller keeps (its apps: none yet); nothing was retried"
        );
        snapshot.services = std::sync::Arc::new(BTreeMap::from([
            ("shop".to_string(), BTreeMap::new()),
            ("notes".to_string(), BTreeMap::new()),
        ]));
        snapshot
            .invalid_apps
            .insert("blog".into(), InvalidApp { errors: Vec::new(), running: None });
        for app in ["shop", "notes", "blog"] {
            assert_eq!(known_app(&snapshot, app), Ok(()), "{app}");
        }
        let error = known_app(&snapshot, "shopp").unwrap_err();
        assert!(error.contains("\"shopp\""), "{error}");
        assert!(error.contains("(its apps: blog, notes, shop)"), "{error}");
    }

    #[test]
    fn apps_left_alone_are_out_of_what_the_planner_sees() {
        let labelled = |app: &str| BTreeMap::from([(labels::APP.to_string(), app.to_string())]);
        let container = |app: &str| ObservedContainer {
            id: format!("{app}-id"),
            name: format!("{app}-web-1"),
            state: "running".into(),
            labels: labelled(app),
            created: 0,
            health: None,
            ports: Vec::new(),
        };
        let object = |app: &str| ObservedObject {
            id: format!("{app}-id"),
            name: format!("{app}_default"),
            labels: labelled(app),
        };
        let state = HostState {
            containers: vec![container("one"), container("two")],
            networks: vec![object("one"), object("two")],
            volumes: vec![object("one")],
            ..Default::default()
        };
        let observed = Observed {
            hosts: BTreeMap::from([
                ("a".to_string(), HostObservation::Reachable(state.clone())),
                (
                    "b".to_string(),
                    HostObservation::Unreachable {
                        reason: "x".into(),
                        last_seen: Some(state),
                        down: true,
                    },
                ),
            ]),
        };
        let left = without_apps(&observed, &BTreeSet::from(["one".to_string()]));
        for host in left.hosts.values() {
            let state = match host {
                HostObservation::Reachable(s) => s,
                HostObservation::Unreachable { last_seen, .. } => last_seen.as_ref().unwrap(),
            };
            let names: Vec<&str> = state.containers.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["two-web-1"]);
            assert_eq!(state.networks.len(), 1);
            assert!(state.volumes.is_empty());
        }
        assert!(matches!(without_apps(&observed, &BTreeSet::new()), Cow::Borrowed(_)));
    }
}
