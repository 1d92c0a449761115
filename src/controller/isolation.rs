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
/// keep the revision's version. Per-app rejection.
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
