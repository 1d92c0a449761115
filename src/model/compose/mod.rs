//! Folding one schema-valid app document (Compose's shape) into the normalised [`App`]:
//! short and long syntaxes into one form, units parsed, env files and config / secret files
//! read from the source tree. Problems found on the way are findings with their YAML path.
//! `raw` holds the serde shapes, `syntax` the string syntaxes (ports, constraints, env
//! files), `files` the configs and secrets, `service` / `mounts` / `deploy` a service's
//! parts.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::encryption::{self, DecryptFailure, Identities};
use super::finding::Findings;
use super::limits::{Limits, limit_hint, quoted};
use super::path::Path;
use super::source::{SourceEntry, SourceTree};
use super::types::*;
use super::units::{parse_bytes, parse_duration_ms, parse_millicpus};

mod deploy;
mod files;
mod mounts;
mod raw;
mod service;
mod syntax;

pub use syntax::parse_constraint;

use files::*;
use raw::*;
use service::*;
use syntax::*;

/// Folds `document` (schema-valid) of app `name` into an [`App`]; problems go to `findings`.
///
/// Secret files that are age-encrypted (see [`encryption::is_encrypted`]) are decrypted with
/// `identities`; the secret's content (and so its digest) is the plaintext.
pub fn normalise(
    name: &str,
    document: &Json,
    tree: &SourceTree,
    identities: &Identities,
    limits: &Limits,
    findings: &mut Findings<'_>,
) -> App {
    let raw: RawApp = match serde_json::from_value(document.clone()) {
        Ok(raw) => raw,
        Err(e) => {
            // The schema should have caught this; say so rather than hide it.
            findings.add(
                Path::root(),
                "schema",
                format!("the file does not have the expected shape: {e}"),
            );
            RawApp::default()
        }
    };
    let folder = findings.file.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
    let mut app = App {
        name: name.to_string(),
        file: findings.file.to_string(),
        services: BTreeMap::new(),
        networks: objects(name, &raw.networks, |o, docker_name| NetworkDef {
            docker_name,
            external: o.external,
            driver: o.driver.clone(),
            internal: o.internal,
            labels: labels(&o.labels),
        }),
        volumes: objects(name, &raw.volumes, |o, docker_name| VolumeDef {
            docker_name,
            external: o.external,
            driver: o.driver.clone(),
            labels: labels(&o.labels),
        }),
        configs: file_defs("configs", &raw.configs, &folder, tree, None, limits, findings),
        secrets: file_defs(
            "secrets",
            &raw.secrets,
            &folder,
            tree,
            Some(identities),
            limits,
            findings,
        ),
    };
    for (key, network) in &app.networks {
        reserved_labels(&Path::of(&["networks", key]), &network.labels, findings);
    }
    for (key, volume) in &app.volumes {
        reserved_labels(&Path::of(&["volumes", key]), &volume.labels, findings);
    }
    for (service_name, service) in &raw.services {
        let path = Path::of(&["services", service_name]);
        let service = ServiceBuilder {
            path: path.clone(),
            folder: &folder,
            tree,
            limits,
            findings: &mut *findings,
        }
        .build(service_name, service);
        reserved_labels(&path, &service.labels, findings);
        app.services.insert(service_name.clone(), service);
    }
    let uses_default = app.services.values().any(|s| s.networks.contains_key(DEFAULT_NETWORK));
    if uses_default && !app.networks.contains_key(DEFAULT_NETWORK) {
        app.networks.insert(
            DEFAULT_NETWORK.to_string(),
            NetworkDef {
                docker_name: format!("{name}_{DEFAULT_NETWORK}"),
                external: false,
                driver: None,
                internal: false,
                labels: BTreeMap::new(),
            },
        );
    }
    app
}

fn objects<T>(
    app: &str,
    raw: &BTreeMap<String, Option<RawObject>>,
    make: impl Fn(&RawObject, String) -> T,
) -> BTreeMap<String, T> {
    let empty = RawObject::default();
    raw.iter()
        .map(|(key, object)| {
            let object = object.as_ref().unwrap_or(&empty);
            let docker_name = match (&object.name, object.external) {
                (Some(name), _) => name.clone(),
                (None, true) => key.clone(),
                (None, false) => format!("{app}_{key}"),
            };
            (key.clone(), make(object, docker_name))
        })
        .collect()
}

/// Labels under `io.gitfleet.` are gitfleet's own (fleet, app, spec hash, ...): a model that
/// sets one is refused, since it could make gitfleet mistake or lose track of its objects.
fn reserved_labels(owner: &Path, labels: &BTreeMap<String, String>, findings: &mut Findings<'_>) {
    for key in labels.keys() {
        if key == "io.gitfleet" || key.starts_with("io.gitfleet.") {
            findings
                .add(
                    owner.key("labels"),
                    "reserved-label",
                    format!("the label {} is reserved for gitfleet's own use", quoted(key)),
                )
                .with_hint("remove it, or name it under your own prefix (com.example.…)");
        }
    }
}

fn labels(raw: &Option<ListOrDict>) -> BTreeMap<String, String> {
    raw.as_ref()
        .map(|l| l.entries().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// What the compose modules' tests share: one app loaded through the whole pipeline (so each
/// problem is seen as a user sees it, located at `file:line:col`).
#[cfg(test)]
mod testing {
    use std::sync::Arc;

    use super::super::{SourceTree, load};
    use super::App;

    /// `fleet.yaml` (one host, plus `settings` when given) and `apps/shop/compose.yaml`.
    pub(super) fn tree(compose: &str, settings: &str) -> SourceTree {
        let mut tree = SourceTree::new();
        let fleet = format!("hosts:\n  a:\n    endpoint: unix:///a.sock\n{settings}");
        tree.insert_file("fleet.yaml", fleet.into_bytes());
        tree.insert_file("apps/shop/compose.yaml", compose.as_bytes().to_vec());
        tree
    }

    /// The app `shop` of `tree`, or every problem as `file:line:col: code: message` (hints
    /// left out).
    pub(super) fn shop(tree: &SourceTree) -> Result<Arc<App>, Vec<String>> {
        match load(tree) {
            Ok(mut model) => Ok(model.apps.remove("shop").expect("the app shop")),
            Err(diagnostics) => Err(diagnostics
                .iter()
                .map(|d| format!("{}:{}:{}: {}: {}", d.file, d.line, d.column, d.code, d.message))
                .collect()),
        }
    }

    /// The problems of `compose` (with `files` beside it, under `apps/shop/`).
    pub(super) fn problems(compose: &str, files: &[(&str, &str)]) -> Vec<String> {
        let mut tree = tree(compose, "");
        for (path, text) in files {
            tree.insert_file(format!("apps/shop/{path}"), text.as_bytes().to_vec());
        }
        match shop(&tree) {
            Ok(app) => panic!("{compose}\nloaded without a problem: {app:?}"),
            Err(problems) => problems,
        }
    }

    /// Checks each `(compose, expected problem)` of a table: exactly that one problem.
    pub(super) fn check(table: &[(&str, &str)]) {
        for (compose, expected) in table {
            assert_eq!(problems(compose, &[]), [expected.to_string()], "{compose}");
        }
    }
}
