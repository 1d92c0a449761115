//! Per-app isolation: a revision loaded app by app ([`Partial`]), and composing its good
//! apps with the last good version of each broken one ([`compose_last_good`]).
//!
//! # Guarantees
//!
//! * A broken `fleet.yaml` (or an `apps` that is not a folder) is fleet-level: no
//!   [`Partial`] at all, every problem of the revision in the error.
//! * Otherwise every app folder is either an `App` or its own located problems. A fleet-wide
//!   finding (a port or route claimed twice) is the problem of the app whose file it is
//!   located in, so that app is broken and the others are not.
//! * [`Partial::into_model`] is the strict load: the model only if every app is good, else
//!   every problem of the revision (what `validate` prints and exits non-zero on).
//! * [`compose_last_good`] never invents an app: a broken app is taken from the last good
//!   model if it was there (it keeps running as it was), and is absent if it never was good
//!   (nothing of it is deployed; replicas of it that exist are removed, as for any app not
//!   in the model). An app whose folder was deleted is not broken: it is removed, whatever
//!   else in the revision is broken.
//! * The composed model passes the fleet-wide checks as far as the revision's own apps go: a
//!   good app that conflicts with a broken app's last good version is held back too (its
//!   own last good version, or nothing), with a problem naming the conflict.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::diagnostic::Diagnostic;
use super::limits::cap_diagnostics;
use super::position::Position;
use super::semantic;
use super::types::{App, Fleet, Model};

/// One app of a revision: loaded, or why not.
pub type AppLoad = Result<Arc<App>, Vec<Diagnostic>>;

/// A revision whose `fleet.yaml` is valid, loaded app by app.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub fleet: Fleet,
    pub apps: BTreeMap<String, AppLoad>,
}

impl Partial {
    /// Apps that do not validate, with their problems.
    pub fn broken(&self) -> impl Iterator<Item = (&str, &[Diagnostic])> {
        self.apps.iter().filter_map(|(name, load)| match load {
            Ok(_) => None,
            Err(diagnostics) => Some((name.as_str(), diagnostics.as_slice())),
        })
    }

    /// Whether every app validates.
    pub fn is_complete(&self) -> bool {
        self.apps.values().all(Result::is_ok)
    }

    /// The strict load: the model when every app validates, else every problem, sorted.
    pub fn into_model(self) -> Result<Model, Vec<Diagnostic>> {
        let mut apps = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for (name, load) in self.apps {
            match load {
                Ok(app) => {
                    apps.insert(name, app);
                }
                Err(errors) => diagnostics.extend(errors),
            }
        }
        if diagnostics.is_empty() {
            return Ok(Model { fleet: self.fleet, apps });
        }
        diagnostics.sort();
        diagnostics.dedup();
        cap_diagnostics(&mut diagnostics);
        Err(diagnostics)
    }
}

/// Builds the [`Partial`] from the fleet and each app folder's result: runs the fleet-wide
/// checks over the good apps, and makes each app a finding is located in broken.
/// `locate` turns the findings into diagnostics.
pub(super) fn split(
    fleet: Fleet,
    results: BTreeMap<String, AppLoad>,
    locate: &dyn Fn(Vec<super::finding::Finding>) -> Vec<Diagnostic>,
) -> Partial {
    let good: BTreeMap<String, Arc<App>> = results
        .iter()
        .filter_map(|(name, load)| Some((name.clone(), load.as_ref().ok()?.clone())))
        .collect();
    let model = Model { fleet, apps: good };
    let wide = locate(semantic::check_fleet_wide(&model));
    let Model { fleet, .. } = model;
    let mut apps = results;
    for diagnostic in wide {
        let Some(name) = owner(&diagnostic.file) else { continue };
        let Some(load) = apps.get_mut(name) else { continue };
        match load {
            Ok(_) => *load = Err(vec![diagnostic]),
            Err(errors) => errors.push(diagnostic),
        }
    }
    for load in apps.values_mut() {
        if let Err(errors) = load {
            errors.sort();
            errors.dedup();
            cap_diagnostics(errors);
        }
    }
    Partial { fleet, apps }
}

/// The app a repository path belongs to (`apps/<name>/...`).
fn owner(file: &str) -> Option<&str> {
    let rest = file.strip_prefix(super::load::APPS_DIR)?.strip_prefix('/')?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// What became of one app in a composed model.
#[derive(Debug, Clone, PartialEq)]
pub enum Composition {
    /// The revision's own version.
    Current,
    /// Broken in the revision: its last good version is kept.
    Held(Vec<Diagnostic>),
    /// Broken in the revision and never good before: not deployed at all.
    Absent(Vec<Diagnostic>),
}

impl Composition {
    /// The problems of a held or absent app.
    pub fn errors(&self) -> &[Diagnostic] {
        match self {
            Composition::Current => &[],
            Composition::Held(errors) | Composition::Absent(errors) => errors,
        }
    }
}

/// A revision composed with the last good versions of its broken apps.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// What the hosts should run: the revision's fleet, its good apps, and the last good
    /// version of each broken app that had one.
    pub model: Model,
    /// Every app of the revision, and what became of it.
    pub apps: BTreeMap<String, Composition>,
}

impl Composed {
    /// Apps whose revision's version is not what runs (held or absent).
    pub fn broken(&self) -> impl Iterator<Item = (&str, &Composition)> {
        self.apps
            .iter()
            .filter(|(_, c)| **c != Composition::Current)
            .map(|(name, c)| (name.as_str(), c))
    }
}

/// The model to deploy for `partial`: its good apps, and for each broken app its version in
/// `last` (the model the hosts are kept at now), if it has one. See the module's guarantees.
pub fn compose_last_good(partial: &Partial, last: Option<&Model>) -> Composed {
    let mut apps: BTreeMap<String, Arc<App>> = BTreeMap::new();
    let mut states: BTreeMap<String, Composition> = BTreeMap::new();
    let hold =
        |name: &str, errors: Vec<Diagnostic>, apps: &mut BTreeMap<String, Arc<App>>| match last
            .and_then(|m| m.apps.get(name))
        {
            Some(app) => {
                apps.insert(name.to_string(), app.clone());
                Composition::Held(errors)
            }
            None => {
                apps.remove(name);
                Composition::Absent(errors)
            }
        };
    for (name, load) in &partial.apps {
        let state = match load {
            Ok(app) => {
                apps.insert(name.clone(), app.clone());
                Composition::Current
            }
            Err(errors) => hold(name, errors.clone(), &mut apps),
        };
        states.insert(name.clone(), state);
    }
    let mut model = Model { fleet: partial.fleet.clone(), apps };
    // Held versions were checked with other apps than these: a current app in a fleet-wide
    // conflict with one is held back too. Each round holds at least one more app, so this
    // ends within one round per app.
    loop {
        let findings: Vec<(String, super::finding::Finding)> = semantic::check_fleet_wide(&model)
            .into_iter()
            .filter_map(|finding| {
                let name = owner(&finding.file)?.to_string();
                (states.get(&name) == Some(&Composition::Current)).then_some((name, finding))
            })
            .collect();
        if findings.is_empty() {
            break;
        }
        for (name, finding) in findings {
            let diagnostic = Diagnostic::new(
                &finding.file,
                Position::START,
                finding.code,
                format!(
                    "{} (against the last good version of the apps held back)",
                    finding.message
                ),
            );
            let state = match states.remove(&name) {
                Some(Composition::Held(mut errors) | Composition::Absent(mut errors)) => {
                    errors.push(diagnostic);
                    hold(&name, errors, &mut model.apps)
                }
                _ => hold(&name, vec![diagnostic], &mut model.apps),
            };
            states.insert(name, state);
        }
    }
    Composed { model, apps: states }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SourceTree, load_partial};

    const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n";

    fn tree(apps: &[(&str, &str)]) -> SourceTree {
        let mut tree = SourceTree::new();
        tree.insert_file("fleet.yaml", FLEET.into());
        for (name, compose) in apps {
            tree.insert_file(format!("apps/{name}/compose.yaml"), compose.as_bytes().to_vec());
        }
        tree
    }

    fn web(image: &str, port: u16) -> String {
        format!("services:\n  web:\n    image: {image}\n    ports: [\"{port}:80\"]\n")
    }

    const BROKEN: &str = "services:\n  web:\n    image: [unclosed\n";

    fn located(errors: &[Diagnostic]) -> Vec<String> {
        errors.iter().map(|d| format!("{}:{}:{} {}", d.file, d.line, d.column, d.code)).collect()
    }

    #[test]
    fn one_broken_app_leaves_the_others_loaded() {
        let partial = load_partial(
            &tree(&[("one", BROKEN), ("two", &web("two:1", 8002))]),
            &Default::default(),
        )
        .unwrap();
        assert!(partial.apps["two"].is_ok());
        let broken: Vec<&str> = partial.broken().map(|(name, _)| name).collect();
        assert_eq!(broken, ["one"]);
        assert_eq!(
            located(partial.apps["one"].as_ref().unwrap_err()),
            ["apps/one/compose.yaml:4:1 yaml-syntax"]
        );
        // The strict load still refuses the revision.
        let strict = partial.into_model().unwrap_err();
        assert_eq!(located(&strict), ["apps/one/compose.yaml:4:1 yaml-syntax"]);
    }

    #[test]
    fn a_broken_fleet_blocks_everything() {
        let mut tree = tree(&[("two", &web("two:1", 8002))]);
        tree.insert_file("fleet.yaml", b"hosts: [a]\n".to_vec());
        let errors = load_partial(&tree, &Default::default()).unwrap_err();
        assert!(errors.iter().all(|d| d.file == "fleet.yaml"), "{errors:?}");
        assert!(!errors.is_empty());
    }

    #[test]
    fn a_fleet_wide_finding_breaks_the_app_it_is_located_in() {
        // One host: two apps publishing 8000 conflict; a third app is untouched.
        let apps = [
            ("one", web("one:1", 8000)),
            ("two", web("two:1", 8000)),
            ("three", web("three:1", 8003)),
        ];
        let apps: Vec<(&str, &str)> = apps.iter().map(|(n, c)| (*n, c.as_str())).collect();
        let partial = load_partial(&tree(&apps), &Default::default()).unwrap();
        assert!(partial.apps["three"].is_ok());
        assert_eq!(
            located(partial.apps["one"].as_ref().unwrap_err()),
            ["apps/one/compose.yaml:4:12 port-conflict"]
        );
        assert_eq!(
            located(partial.apps["two"].as_ref().unwrap_err()),
            ["apps/two/compose.yaml:4:12 port-conflict"]
        );
    }

    #[test]
    fn broken_apps_keep_their_last_good_version_and_new_ones_are_absent() {
        let options = Default::default();
        let first = load_partial(
            &tree(&[
                ("one", &web("one:1", 8001)),
                ("two", &web("two:1", 8002)),
                ("gone", &web("gone:1", 8009)),
            ]),
            &options,
        )
        .unwrap();
        let first = compose_last_good(&first, None);
        assert!(first.broken().next().is_none());
        assert_eq!(first.model.apps.len(), 3);

        // one breaks, two changes, three is new and broken, gone is deleted.
        let second = tree(&[("one", BROKEN), ("two", &web("two:2", 8002)), ("three", BROKEN)]);
        let second =
            compose_last_good(&load_partial(&second, &options).unwrap(), Some(&first.model));
        assert_eq!(second.model.apps["one"].services["web"].image, "one:1");
        assert_eq!(second.model.apps["two"].services["web"].image, "two:2");
        assert!(!second.model.apps.contains_key("three"));
        assert!(!second.model.apps.contains_key("gone"));
        assert!(matches!(&second.apps["one"], Composition::Held(e) if e[0].code == "yaml-syntax"));
        assert!(
            matches!(&second.apps["three"], Composition::Absent(e) if e[0].code == "yaml-syntax")
        );
        assert_eq!(second.apps["two"], Composition::Current);

        // Broken again, differently: still the version from the first revision.
        let third = tree(&[
            ("one", "services: {web: {image: x, replicas: 2}}\n"),
            ("two", &web("two:3", 8002)),
        ]);
        let third =
            compose_last_good(&load_partial(&third, &options).unwrap(), Some(&second.model));
        assert_eq!(third.model.apps["one"].services["web"].image, "one:1");
        assert!(matches!(&third.apps["one"], Composition::Held(_)));
    }

    #[test]
    fn a_good_app_conflicting_with_a_held_version_is_held_too() {
        let options = Default::default();
        let first = tree(&[("one", &web("one:1", 8001)), ("two", &web("two:1", 8002))]);
        let first = compose_last_good(&load_partial(&first, &options).unwrap(), None);
        // one breaks (so 8001 stays with its last good version); two moves onto 8001.
        let second = tree(&[("one", BROKEN), ("two", &web("two:2", 8001))]);
        let second =
            compose_last_good(&load_partial(&second, &options).unwrap(), Some(&first.model));
        assert_eq!(second.model.apps["one"].services["web"].image, "one:1");
        assert_eq!(second.model.apps["two"].services["web"].image, "two:1");
        let Composition::Held(errors) = &second.apps["two"] else { panic!("{:?}", second.apps) };
        assert_eq!(errors[0].code, "port-conflict");
        assert!(errors[0].message.contains("8001"), "{}", errors[0]);
        // Without a last good version of two, it is not deployed at all.
        let third = compose_last_good(
            &load_partial(&tree(&[("one", BROKEN), ("two", &web("two:2", 8001))]), &options)
                .unwrap(),
            Some(&Model {
                fleet: first.model.fleet.clone(),
                apps: [("one".to_string(), first.model.apps["one"].clone())].into(),
            }),
        );
        assert!(matches!(&third.apps["two"], Composition::Absent(_)));
        assert!(!third.model.apps.contains_key("two"));
    }
}
