//! The loading pipeline, from a [`SourceTree`] to a [`Model`] or every problem at once:
//! YAML syntax → `${VAR}` interpolation → unsupported keys → JSON schema → normalisation →
//! semantic checks. Findings are located (file:line:col) only at the end, and only for files
//! that have any, so a clean load never pays for the position-keeping parse.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::diagnostic::Diagnostic;
use super::finding::{Finding, Findings};
use super::interpolate::interpolate;
use super::path::{Path, Segment};
use super::position::{Position, PositionMap};
use super::schema::{self, DocumentKind};
use super::source::{SourceEntry, SourceTree};
use super::types::{App, Fleet, Model};
use super::{compose, document, fleet, semantic, unsupported};

/// Path of the fleet file at the repository root.
pub const FLEET_FILE: &str = "fleet.yaml";
/// Folder holding one sub-folder per app.
pub const APPS_DIR: &str = "apps";
/// Names accepted for an app's compose file, in order of preference.
pub const APP_FILES: [&str; 2] = ["compose.yaml", "compose.yml"];

/// Loads and validates the repository in `tree`: the model, or every problem sorted by file
/// and position.
pub fn load(tree: &SourceTree) -> Result<Model, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut findings = Vec::new();

    let fleet = load_fleet(tree, &mut diagnostics, &mut findings);
    let variables = fleet.as_ref().map(|f| &f.variables);
    let mut apps = BTreeMap::new();
    for (name, file) in discover_apps(tree, &mut diagnostics) {
        let text = match tree.get(&file) {
            Some(SourceEntry::File(bytes)) => bytes,
            _ => continue,
        };
        if let Some(app) = load_app(
            &name,
            &file,
            text,
            tree,
            variables,
            fleet.as_ref(),
            &mut diagnostics,
            &mut findings,
        ) {
            apps.insert(name, app);
        }
    }

    let model = fleet.map(|fleet| Model { fleet, apps });
    if diagnostics.is_empty() && findings.is_empty() {
        if let Some(model) = &model {
            findings = semantic::check_fleet_wide(model);
        }
    }
    diagnostics.extend(locate(tree, findings));
    diagnostics.sort();
    diagnostics.dedup();
    match model {
        Some(model) if diagnostics.is_empty() => Ok(model),
        _ => Err(diagnostics),
    }
}

fn load_fleet(
    tree: &SourceTree,
    diagnostics: &mut Vec<Diagnostic>,
    findings: &mut Vec<Finding>,
) -> Option<Fleet> {
    let text = match tree.get(FLEET_FILE) {
        Some(SourceEntry::File(bytes)) => bytes,
        Some(SourceEntry::Symlink(_)) => {
            diagnostics.push(
                Diagnostic::new(
                    FLEET_FILE,
                    Position::START,
                    "path-escape",
                    "fleet.yaml is a symbolic link",
                )
                .with_hint("commit the file itself"),
            );
            return None;
        }
        None => {
            diagnostics.push(
                Diagnostic::new(
                    FLEET_FILE,
                    Position::START,
                    "missing-file",
                    "there is no fleet.yaml at the root of the repository",
                )
                .with_hint("add fleet.yaml with a `hosts:` map naming at least one Docker host"),
            );
            return None;
        }
    };
    let document = match document::parse(FLEET_FILE, text) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return None;
        }
    };
    let schema_findings = schema::check(DocumentKind::Fleet, FLEET_FILE, &document);
    if !schema_findings.is_empty() {
        findings.extend(schema_findings);
        return None;
    }
    let mut fleet_findings = Findings::new(FLEET_FILE);
    let fleet = fleet::normalise(&document, &mut fleet_findings);
    let ok = fleet_findings.list.is_empty();
    findings.append(&mut fleet_findings.list);
    ok.then_some(fleet)
}

/// `(app name, compose file)` for every folder under `apps/`.
fn discover_apps(tree: &SourceTree, diagnostics: &mut Vec<Diagnostic>) -> Vec<(String, String)> {
    let mut folders: BTreeSet<&str> = BTreeSet::new();
    for path in tree.paths() {
        if let Some(rest) = path.strip_prefix("apps/") {
            if let Some((folder, _)) = rest.split_once('/') {
                folders.insert(folder);
            }
        }
    }
    let mut apps = Vec::new();
    for folder in folders {
        let candidates: Vec<String> = APP_FILES
            .iter()
            .map(|f| format!("{APPS_DIR}/{folder}/{f}"))
            .filter(|p| tree.get(p).is_some())
            .collect();
        let Some(file) = candidates.first() else {
            diagnostics.push(
                Diagnostic::new(
                    &format!("{APPS_DIR}/{folder}"),
                    Position::START,
                    "missing-file",
                    format!("app folder {APPS_DIR}/{folder}/ has no compose.yaml"),
                )
                .with_hint("add compose.yaml to the folder, or remove the folder"),
            );
            continue;
        };
        if candidates.len() > 1 {
            diagnostics.push(
                Diagnostic::new(
                    &candidates[1],
                    Position::START,
                    "ambiguous-app-file",
                    format!("{APPS_DIR}/{folder}/ has both compose.yaml and compose.yml"),
                )
                .with_hint("keep one of them"),
            );
            continue;
        }
        if let Some(SourceEntry::Symlink(_)) = tree.get(file) {
            diagnostics.push(
                Diagnostic::new(
                    file,
                    Position::START,
                    "path-escape",
                    format!("{file} is a symbolic link"),
                )
                .with_hint("commit the file itself"),
            );
            continue;
        }
        if !valid_app_name(folder) {
            diagnostics.push(
                Diagnostic::new(
                    file,
                    Position::START,
                    "invalid-name",
                    format!(
                        "app name {folder:?} (the folder name) is not a valid Docker name part"
                    ),
                )
                .with_hint(
                    "use lower-case letters, digits, '-' and '_', starting with a letter or digit",
                ),
            );
            continue;
        }
        apps.push((folder.to_string(), file.clone()));
    }
    apps
}

fn valid_app_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[allow(clippy::too_many_arguments)]
fn load_app(
    name: &str,
    file: &str,
    text: &[u8],
    tree: &SourceTree,
    variables: Option<&BTreeMap<String, String>>,
    fleet: Option<&Fleet>,
    diagnostics: &mut Vec<Diagnostic>,
    findings: &mut Vec<Finding>,
) -> Option<App> {
    let mut document = match document::parse(file, text) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return None;
        }
    };
    let mut app_findings = Findings::new(file);
    // Without a valid fleet.yaml there are no declared variables to judge references by.
    if let Some(variables) = variables {
        interpolate_values(&mut document, &Path::root(), variables, &mut app_findings);
    }
    app_findings.list.extend(unsupported::take_unsupported(file, &mut document));
    let mut schema_findings = schema::check(DocumentKind::App, file, &document);
    // A service with `build` and no `image` already has its error saying to add `image:`.
    let built: Vec<Path> = app_findings
        .list
        .iter()
        .filter(|f| f.path.0.last() == Some(&Segment::Key("build".into())))
        .map(|f| Path(f.path.0[..f.path.0.len() - 1].to_vec()))
        .collect();
    schema_findings.retain(|f| {
        !(f.code == "missing-key" && f.message.ends_with("`image`") && built.contains(&f.path))
    });
    if !schema_findings.is_empty() || !app_findings.list.is_empty() && !built.is_empty() {
        findings.append(&mut app_findings.list);
        findings.extend(schema_findings);
        return None;
    }
    let app = compose::normalise(name, &document, tree, &mut app_findings);
    if let Some(fleet) = fleet {
        semantic::check_app(&app, fleet, &mut app_findings);
    }
    let ok = app_findings.list.is_empty();
    findings.append(&mut app_findings.list);
    ok.then_some(app)
}

/// Interpolates every string value (not keys) in place.
fn interpolate_values(
    value: &mut Json,
    path: &Path,
    variables: &BTreeMap<String, String>,
    findings: &mut Findings<'_>,
) {
    match value {
        Json::String(text) => match interpolate(text, variables) {
            Ok(expanded) => *text = expanded,
            Err(message) => {
                findings.add(path.clone(), "interpolation", message);
            }
        },
        Json::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_values(item, &path.index(i), variables, findings);
            }
        }
        Json::Object(map) => {
            for (key, item) in map.iter_mut() {
                // Extension fields are free-form; gitfleet's own `x-routes` is interpolated.
                if key.starts_with("x-") && key != "x-routes" {
                    continue;
                }
                interpolate_values(item, &path.key(key.clone()), variables, findings);
            }
        }
        _ => {}
    }
}

/// Turns findings into diagnostics with line and column, parsing each file's positions once.
fn locate(tree: &SourceTree, findings: Vec<Finding>) -> Vec<Diagnostic> {
    let mut maps: BTreeMap<String, PositionMap> = BTreeMap::new();
    findings
        .into_iter()
        .map(|finding| {
            let map =
                maps.entry(finding.file.clone()).or_insert_with(|| match tree.get(&finding.file) {
                    Some(SourceEntry::File(bytes)) => {
                        PositionMap::parse(&String::from_utf8_lossy(bytes))
                    }
                    _ => PositionMap::default(),
                });
            let at = if finding.on_key { map.key(&finding.path) } else { map.value(&finding.path) };
            let mut diagnostic = Diagnostic::new(&finding.file, at, finding.code, finding.message);
            diagnostic.hint = finding.hint;
            diagnostic
        })
        .collect()
}
