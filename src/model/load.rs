//! The loading pipeline, from a [`SourceTree`] to a [`Model`] or every problem at once:
//! YAML syntax → `${VAR}` interpolation → unsupported keys → JSON schema → normalisation →
//! semantic checks. Findings are located (file:line:col) only at the end, and only for files
//! that have any, so a clean load never pays for the position-keeping parse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value as Json;

use super::diagnostic::Diagnostic;
use super::encryption::Identities;
use super::finding::{Finding, Findings};
use super::interpolate::{Failure as InterpolationFailure, interpolate_within};
use super::limits::{cap_diagnostics, limit_hint, quoted};
use super::parallel::{FolderJob, load_folders};
use super::partial::{self, Partial};
use super::path::{Path, Segment};
use super::position::{Position, PositionMap};
use super::schema::{self, DocumentKind};
use super::source::{SourceEntry, SourceTree};
use super::types::{App, Fleet, Model};
use super::{compose, document, fleet, semantic, unsupported};
use crate::parallel::available_threads;

/// Path of the fleet file at the repository root.
pub const FLEET_FILE: &str = "fleet.yaml";
/// Folder holding one sub-folder per app.
pub const APPS_DIR: &str = "apps";
/// Names accepted for an app's compose file, in order of preference.
pub const APP_FILES: [&str; 2] = ["compose.yaml", "compose.yml"];

/// What loading needs besides the files: the age identities that decrypt secrets, and the
/// fleet's digest key.
///
/// Every field that changes what an app folder loads to is part of the load cache's key
/// ([`super::cache`]): a field added here must be added there too. `digest_key` is not: it
/// is applied to the finished model ([`super::digest::key_model`]), the cache keeps plain
/// digests.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub identities: Identities,
    /// Digests configs and secrets with an HMAC under this key (`--digest-key-file`).
    pub digest_key: Option<super::digest::DigestKey>,
}

/// Loads and validates the repository in `tree`: the model, or every problem sorted by file
/// and position. Encrypted secrets cannot be decrypted: see [`load_with`].
pub fn load(tree: &SourceTree) -> Result<Model, Vec<Diagnostic>> {
    load_with(tree, &LoadOptions::default())
}

/// [`load`] with options: encrypted secrets are decrypted with `options.identities`.
/// The strict load: the model only if every app validates ([`Partial::into_model`]).
pub fn load_with(tree: &SourceTree, options: &LoadOptions) -> Result<Model, Vec<Diagnostic>> {
    load_partial(tree, options).and_then(Partial::into_model)
}

/// Loads the repository app by app: `Err` only for fleet-level problems (`fleet.yaml`,
/// `apps`), with every problem of the revision; otherwise each app or its own problems
/// (see [`super::partial`]).
pub fn load_partial(tree: &SourceTree, options: &LoadOptions) -> Result<Partial, Vec<Diagnostic>> {
    let (fleet, diagnostics) = load_fleet_located(tree);
    let names = app_folders(tree);
    let jobs: Vec<FolderJob> = names.iter().map(|name| FolderJob { name, tree }).collect();
    let loaded = load_folders(&jobs, fleet.as_ref(), options, available_threads());
    let results = names.into_iter().zip(loaded).collect();
    finish_partial(fleet, results, diagnostics, &|file| bytes_of(tree, file))
        .and_then(|partial| super::digest::keyed_partial(partial, options.digest_key.as_ref()))
}

/// From the fleet, its problems and each folder's result: the [`Partial`], or every problem
/// when the fleet itself has any. `source` gives the bytes of a file, for locating findings.
pub(super) fn finish_partial<'a>(
    fleet: Option<Fleet>,
    results: BTreeMap<String, FolderResult>,
    mut diagnostics: Vec<Diagnostic>,
    source: &dyn Fn(&str) -> Option<&'a [u8]>,
) -> Result<Partial, Vec<Diagnostic>> {
    match fleet {
        Some(fleet) if diagnostics.is_empty() => {
            let results = results
                .into_iter()
                .map(|(name, r)| {
                    let load = match r.app {
                        Some(app) if r.diagnostics.is_empty() => Ok(app),
                        _ => Err(r.diagnostics),
                    };
                    (name, load)
                })
                .collect();
            Ok(partial::split(fleet, results, &|findings| locate(source, findings)))
        }
        _ => {
            diagnostics.extend(results.into_values().flat_map(|r| r.diagnostics));
            diagnostics.sort();
            diagnostics.dedup();
            cap_diagnostics(&mut diagnostics);
            Err(diagnostics)
        }
    }
}

/// The result of loading one app folder: the app, or the located problems that kept it
/// out (its folder's own problems only; fleet-wide checks come later).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FolderResult {
    /// Shared: the cache and every model loaded from it hold the same `App`.
    pub app: Option<Arc<App>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// `fleet.yaml` parsed and normalised, and its problems located.
/// Also checks that `apps` is a folder, so that a revision whose apps cannot be seen is an
/// error rather than a fleet with no apps.
pub(super) fn load_fleet_located(tree: &SourceTree) -> (Option<Fleet>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    if let Some(entry) = tree.get(APPS_DIR) {
        diagnostics.push(
            Diagnostic::new(
                APPS_DIR,
                Position::START,
                "not-a-folder",
                format!("{APPS_DIR} is {}, not a folder; no app can be read", describe(entry)),
            )
            .with_hint("commit apps/ as a folder holding one folder per app"),
        );
    }
    let mut findings = Vec::new();
    let fleet = load_fleet(tree, &mut diagnostics, &mut findings);
    diagnostics.extend(locate(&|file| bytes_of(tree, file), findings));
    (fleet, diagnostics)
}

fn bytes_of<'a>(tree: &'a SourceTree, file: &str) -> Option<&'a [u8]> {
    match tree.get(file) {
        Some(SourceEntry::File(bytes)) => Some(bytes.as_slice()),
        _ => None,
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
        Some(SourceEntry::Unreadable(what)) => {
            diagnostics.push(
                Diagnostic::new(
                    FLEET_FILE,
                    Position::START,
                    "not-a-file",
                    format!("fleet.yaml is {what}, not a file"),
                )
                .with_hint("commit fleet.yaml as a plain file"),
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

/// What a tree entry that should have been a folder or a file is, in words.
fn describe(entry: &SourceEntry) -> String {
    match entry {
        SourceEntry::File(_) => "a file".to_string(),
        SourceEntry::Symlink(target) => {
            format!("a symbolic link (to {}; gitfleet does not follow links)", quoted(target))
        }
        SourceEntry::Unreadable(what) => what.clone(),
    }
}

/// The name of every folder under `apps/`, sorted: folders with files in the tree, and
/// folders whose Git id is recorded (their files may have been skipped).
pub(super) fn app_folders(tree: &SourceTree) -> Vec<String> {
    let prefix = format!("{APPS_DIR}/");
    let mut folders: BTreeSet<&str> = BTreeSet::new();
    for path in tree.paths() {
        if let Some(rest) = path.strip_prefix(&prefix) {
            match rest.split_once('/') {
                Some((folder, _)) => {
                    folders.insert(folder);
                }
                // A link or a submodule where an app folder would be: reported by its load.
                None if !matches!(tree.get(path), Some(SourceEntry::File(_))) => {
                    folders.insert(rest);
                }
                None => {}
            }
        }
    }
    for (path, _) in tree.folder_ids() {
        if let Some(folder) = path.strip_prefix(&prefix) {
            if !folder.is_empty() && !folder.contains('/') {
                folders.insert(folder);
            }
        }
    }
    folders.into_iter().map(str::to_string).collect()
}

/// Loads the app in folder `apps/<name>` of `tree`. Reads nothing outside that folder; so
/// its result depends only on the folder's files, the fleet and `options`.
pub(super) fn load_folder(
    name: &str,
    tree: &SourceTree,
    fleet: Option<&Fleet>,
    options: &LoadOptions,
) -> FolderResult {
    let mut diagnostics = Vec::new();
    let Some(file) = app_file(name, tree, &mut diagnostics) else {
        return FolderResult { app: None, diagnostics };
    };
    let Some(SourceEntry::File(text)) = tree.get(&file) else {
        return FolderResult { app: None, diagnostics };
    };
    let mut findings = Vec::new();
    let variables = fleet.map(|f| &f.variables);
    let app = load_app(
        name,
        &file,
        text,
        tree,
        variables,
        fleet,
        &options.identities,
        &mut diagnostics,
        &mut findings,
    );
    diagnostics.extend(locate(&|f| bytes_of(tree, f), findings));
    FolderResult { app: app.filter(|_| diagnostics.is_empty()).map(Arc::new), diagnostics }
}

/// The compose file of app folder `apps/<folder>`, or `None` with the reason in
/// `diagnostics`.
fn app_file(folder: &str, tree: &SourceTree, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let dir = format!("{APPS_DIR}/{folder}");
    if tree.is_skipped(&dir) {
        diagnostics.push(
            Diagnostic::new(
                &dir,
                Position::START,
                "not-read",
                format!("{dir}/ was skipped as unchanged when the commit was read, and no earlier result for it is cached"),
            )
            .with_hint("read the commit again without skipping (a bug in the caller: skip only what LoadCache::is_fresh says)"),
        );
        return None;
    }
    if let Some(entry) = tree.get(&dir) {
        diagnostics.push(
            Diagnostic::new(
                &dir,
                Position::START,
                "not-a-folder",
                format!("app folder {dir} is {}; the app cannot be read", describe(entry)),
            )
            .with_hint("commit the app's files in the folder itself (not a link, not a submodule)"),
        );
        return None;
    }
    let candidates: Vec<String> =
        APP_FILES.iter().map(|f| format!("{dir}/{f}")).filter(|p| tree.get(p).is_some()).collect();
    let Some(file) = candidates.first() else {
        diagnostics.push(
            Diagnostic::new(
                &dir,
                Position::START,
                "missing-file",
                format!("app folder {dir}/ has no compose.yaml"),
            )
            .with_hint("add compose.yaml to the folder, or remove the folder"),
        );
        return None;
    };
    if candidates.len() > 1 {
        diagnostics.push(
            Diagnostic::new(
                &candidates[1],
                Position::START,
                "ambiguous-app-file",
                format!("{dir}/ has both compose.yaml and compose.yml"),
            )
            .with_hint("keep one of them"),
        );
        return None;
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
        return None;
    }
    if let Some(SourceEntry::Unreadable(what)) = tree.get(file) {
        diagnostics.push(
            Diagnostic::new(
                file,
                Position::START,
                "not-a-file",
                format!("{file} is {what}, not a file; the app cannot be read"),
            )
            .with_hint("commit compose.yaml as a plain file"),
        );
        return None;
    }
    if !valid_app_name(folder) {
        diagnostics.push(
            Diagnostic::new(
                file,
                Position::START,
                "invalid-name",
                format!("app name {folder:?} (the folder name) is not a valid Docker name part"),
            )
            .with_hint(
                "use lower-case letters, digits, '-' and '_', starting with a letter or digit",
            ),
        );
        return None;
    }
    Some(file.clone())
}

/// Whether `name` can name an app (its folder under `apps/`): lower-case letters, digits,
/// `-` and `_`, starting with a letter or digit (a part of Docker object names).
pub fn valid_app_name(name: &str) -> bool {
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
    identities: &Identities,
    diagnostics: &mut Vec<Diagnostic>,
    findings: &mut Vec<Finding>,
) -> Option<App> {
    let limits = fleet.map(|f| f.settings.limits).unwrap_or_default();
    let mut document = match document::parse_bounded(file, text, &limits) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return None;
        }
    };
    let mut app_findings = Findings::new(file);
    // Without a valid fleet.yaml there are no declared variables to judge references by.
    if let Some(variables) = variables {
        let mut room = Room {
            string: usize::try_from(limits.max_string).unwrap_or(usize::MAX),
            total: limits.byte_budget(text.len()),
            exhausted: false,
        };
        interpolate_values(&mut document, &Path::root(), variables, &mut room, &mut app_findings);
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
    let app = compose::normalise(name, &document, tree, identities, &limits, &mut app_findings);
    if let Some(fleet) = fleet {
        semantic::check_app(&app, fleet, &mut app_findings);
    }
    let ok = app_findings.list.is_empty();
    findings.append(&mut app_findings.list);
    ok.then_some(app)
}

/// What interpolation may still produce in one file: bytes per string, bytes added in all.
struct Room {
    string: usize,
    total: u64,
    /// Whether the total ran out (reported once).
    exhausted: bool,
}

/// Interpolates every string value (not keys) in place, within `room`.
fn interpolate_values(
    value: &mut Json,
    path: &Path,
    variables: &BTreeMap<String, String>,
    room: &mut Room,
    findings: &mut Findings<'_>,
) {
    if room.exhausted {
        return;
    }
    match value {
        Json::String(text) => match interpolate_within(text, variables, room.string) {
            Ok(expanded) => {
                let added = expanded.len().saturating_sub(text.len()) as u64;
                if added > room.total {
                    room.exhausted = true;
                    findings
                        .add(
                            path.clone(),
                            "limit",
                            "interpolating `${VAR}` references makes the file grow too much \
                             (limit `max_expansion`)",
                        )
                        .with_hint(limit_hint("max_expansion"));
                    return;
                }
                room.total -= added;
                *text = expanded;
            }
            Err(InterpolationFailure::Invalid(message)) => {
                findings.add(path.clone(), "interpolation", message);
            }
            Err(InterpolationFailure::TooLong) => {
                findings
                    .add(
                        path.clone(),
                        "limit",
                        format!(
                            "interpolating this string gives more than {} bytes (limit `max_string`)",
                            room.string
                        ),
                    )
                    .with_hint(limit_hint("max_string"));
            }
        },
        Json::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_values(item, &path.index(i), variables, room, findings);
            }
        }
        Json::Object(map) => {
            for (key, item) in map.iter_mut() {
                // Extension fields are free-form; gitfleet's own `x-routes` is interpolated.
                if key.starts_with("x-") && key != "x-routes" {
                    continue;
                }
                interpolate_values(item, &path.key(key.clone()), variables, room, findings);
            }
        }
        _ => {}
    }
}

/// Turns findings into diagnostics with line and column, parsing each file's positions once.
/// `source` gives a file's bytes.
fn locate<'a>(
    source: &dyn Fn(&str) -> Option<&'a [u8]>,
    findings: Vec<Finding>,
) -> Vec<Diagnostic> {
    let mut maps: BTreeMap<String, PositionMap> = BTreeMap::new();
    findings
        .into_iter()
        .map(|finding| {
            let map = maps.entry(finding.file.clone()).or_insert_with(|| {
                source(&finding.file)
                    .map(|bytes| PositionMap::parse(&String::from_utf8_lossy(bytes)))
                    .unwrap_or_default()
            });
            let at = if finding.on_key { map.key(&finding.path) } else { map.value(&finding.path) };
            let mut diagnostic = Diagnostic::new(&finding.file, at, finding.code, finding.message);
            diagnostic.hint = finding.hint;
            diagnostic
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use age::x25519::Identity;

    use super::*;
    use crate::model::digest::sha256_hex;

    const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n";

    const SHOP: &str = "\
services:
  db:
    image: postgres:16
    secrets: [db_password]
secrets:
  db_password:
    file: ./secrets/db_password.age
";

    /// An app with a problem of its own, to show the others still validate.
    const BLOG: &str = "services:\n  web:\n    image: nginx\n    networks: [nope]\n";

    fn tree(secret: Vec<u8>) -> SourceTree {
        let mut tree = SourceTree::new();
        tree.insert_file(FLEET_FILE, FLEET.into());
        tree.insert_file("apps/shop/compose.yaml", SHOP.into());
        tree.insert_file("apps/shop/secrets/db_password.age", secret);
        tree
    }

    fn options(identities: Vec<Identity>) -> LoadOptions {
        LoadOptions { identities: Identities::new(identities), ..LoadOptions::default() }
    }

    fn secret(model: &Model) -> &crate::model::FileDef {
        &model.apps["shop"].secrets["db_password"]
    }

    #[test]
    fn binary_age_secret_is_decrypted_and_hashed_as_plaintext() {
        let identity = Identity::generate();
        let encrypted = age::encrypt(&identity.to_public(), b"hunter2").unwrap();
        let model = load_with(&tree(encrypted), &options(vec![identity.clone()])).unwrap();
        assert_eq!(secret(&model).content.as_slice(), b"hunter2");
        assert_eq!(secret(&model).digest, sha256_hex(b"hunter2"));
        assert_eq!(secret(&model).path.as_deref(), Some("apps/shop/secrets/db_password.age"));

        // Encrypting the same value again gives other bytes, and the same digest.
        let again = age::encrypt(&identity.to_public(), b"hunter2").unwrap();
        let model_again = load_with(&tree(again), &options(vec![identity])).unwrap();
        assert_eq!(secret(&model_again).digest, secret(&model).digest);
    }

    #[test]
    fn armored_secret_is_decrypted_whatever_its_name() {
        let ours = Identity::generate();
        let armored = age::encrypt_and_armor(&ours.to_public(), b"s3cret\n").unwrap();
        let mut tree = tree(Vec::new());
        let app = SHOP.replace("./secrets/db_password.age", "./secrets/db_password");
        tree.insert_file("apps/shop/compose.yaml", app.into_bytes());
        tree.insert_file("apps/shop/secrets/db_password", armored.into_bytes());
        // The first identity does not match; the second does.
        let model = load_with(&tree, &options(vec![Identity::generate(), ours])).unwrap();
        assert_eq!(secret(&model).content.as_slice(), b"s3cret\n");
    }

    #[test]
    fn plaintext_never_shows_in_debug_output() {
        let identity = Identity::generate();
        let encrypted = age::encrypt(&identity.to_public(), b"hunter2").unwrap();
        let model = load_with(&tree(encrypted), &options(vec![identity])).unwrap();
        let debug = format!("{model:?} {:#?}", options(vec![]));
        assert!(!debug.contains("hunter2"), "{debug}");
        // Nor as the bytes' numbers, as a derived Debug of Vec<u8> would print them.
        assert!(!debug.contains("104, 117, 110"), "{debug}");
        assert!(debug.contains("<7 bytes>"), "{debug}");
    }

    #[test]
    fn wrong_identity_is_located_at_the_file_entry_and_names_the_recipients() {
        let theirs = Identity::generate();
        let ours = Identity::generate();
        let encrypted = age::encrypt(&theirs.to_public(), b"hunter2").unwrap();
        let mut tree = tree(encrypted);
        tree.insert_file("apps/blog/compose.yaml", BLOG.into());
        let diagnostics = load_with(&tree, &options(vec![ours.clone()])).unwrap_err();
        let located: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{}:{}:{} {}", d.file, d.line, d.column, d.code))
            .collect();
        assert_eq!(
            located,
            [
                "apps/blog/compose.yaml:4:15 unknown-network",
                "apps/shop/compose.yaml:7:11 secret-decrypt",
            ]
        );
        let decrypt = &diagnostics[1];
        assert!(decrypt.message.contains("apps/shop/secrets/db_password.age"), "{decrypt}");
        assert!(decrypt.message.contains("not encrypted to any identity"), "{decrypt}");
        let hint = decrypt.hint.as_deref().unwrap();
        assert!(hint.contains(&format!("age -r {}", ours.to_public())), "{hint}");
        assert!(!format!("{diagnostics:?}").contains("hunter2"));
    }

    #[test]
    fn without_identities_the_hint_says_how_to_give_one() {
        let encrypted = age::encrypt(&Identity::generate().to_public(), b"x").unwrap();
        let diagnostics = load(&tree(encrypted)).unwrap_err();
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!((diagnostics[0].code, diagnostics[0].line), ("secret-decrypt", 7));
        assert!(diagnostics[0].hint.as_deref().unwrap().contains("--age-identity"));
    }

    #[test]
    fn corrupt_secret_is_a_diagnostic() {
        let identity = Identity::generate();
        let mut encrypted = age::encrypt(&identity.to_public(), b"hunter2").unwrap();
        encrypted.truncate(encrypted.len() - 3);
        let diagnostics = load_with(&tree(encrypted), &options(vec![identity])).unwrap_err();
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].code, "secret-decrypt");
        assert!(diagnostics[0].message.contains("not a readable age file"), "{}", diagnostics[0]);
    }

    #[test]
    fn a_config_named_age_is_not_decrypted() {
        let mut tree = SourceTree::new();
        tree.insert_file(FLEET_FILE, FLEET.into());
        let app = "services:\n  web:\n    image: nginx\n    configs: [site]\nconfigs:\n  site:\n    file: ./site.age\n";
        tree.insert_file("apps/web/compose.yaml", app.into());
        tree.insert_file("apps/web/site.age", b"not encrypted".to_vec());
        let model = load_with(&tree, &options(vec![Identity::generate()])).unwrap();
        assert_eq!(model.apps["web"].configs["site"].content.as_slice(), b"not encrypted");
    }

    #[test]
    fn plaintext_secrets_are_read_as_before() {
        let mut tree = tree(Vec::new());
        let app = SHOP.replace("./secrets/db_password.age", "./secrets/db_password.txt");
        tree.insert_file("apps/shop/compose.yaml", app.into_bytes());
        tree.insert_file("apps/shop/secrets/db_password.txt", b"plain".to_vec());
        let model = load(&tree).unwrap();
        assert_eq!(secret(&model).content.as_slice(), b"plain");
    }
}
