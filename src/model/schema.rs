//! The JSON schemas in `schemas/`, embedded in the binary, and turning their errors into
//! findings that name the key at fault in words a Compose user knows.

use std::sync::OnceLock;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use serde_json::Value as Json;

use super::finding::Finding;
use super::limits::{MAX_DIAGNOSTICS, quoted};
use super::path::{Path, Segment};

/// The schema of `fleet.yaml`.
pub const FLEET_SCHEMA: &str = include_str!("../../schemas/fleet.schema.json");
/// The schema of `apps/<app>/compose.yaml`.
pub const APP_SCHEMA: &str = include_str!("../../schemas/app.schema.json");

/// Which file kind a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Fleet,
    App,
}

/// The embedded schema as JSON, parsed once.
fn schema_json(kind: DocumentKind) -> &'static Json {
    static FLEET: OnceLock<Json> = OnceLock::new();
    static APP: OnceLock<Json> = OnceLock::new();
    let (cell, text) = match kind {
        DocumentKind::Fleet => (&FLEET, FLEET_SCHEMA),
        DocumentKind::App => (&APP, APP_SCHEMA),
    };
    // The schemas are part of the binary and tested; failing here is a build defect.
    cell.get_or_init(|| serde_json::from_str(text).expect("embedded schema is valid JSON"))
}

fn validator(kind: DocumentKind) -> &'static Validator {
    static FLEET: OnceLock<Validator> = OnceLock::new();
    static APP: OnceLock<Validator> = OnceLock::new();
    let cell = match kind {
        DocumentKind::Fleet => &FLEET,
        DocumentKind::App => &APP,
    };
    cell.get_or_init(|| {
        jsonschema::draft202012::new(schema_json(kind)).expect("embedded schema compiles")
    })
}

/// Validates `document` (the file `file`) against its schema; every error becomes a finding.
///
/// At most [`MAX_DIAGNOSTICS`] findings are kept; the errors past them are only counted, in
/// one last finding, so a file with a million bad values costs no million messages.
pub fn check(kind: DocumentKind, file: &str, document: &Json) -> Vec<Finding> {
    // The validator builds an error per bad item eagerly (about 2.5 KB each): a list of
    // hundreds of thousands of bad items would cost a gigabyte before any cap applies.
    if let Some(path) = long_list(document, &Path::root()) {
        let finding = Finding::new(
            file,
            path,
            "limit",
            format!("this list has more than {MAX_ITEMS} items (limit `max_items`, fixed)"),
        )
        .hint("no Compose list needs that many items; split the file or remove items");
        return vec![finding];
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut more = 0usize;
    for error in validator(kind).iter_errors(document) {
        if findings.len() >= MAX_DIAGNOSTICS {
            more += 1;
            continue;
        }
        for finding in describe(file, &error) {
            if findings.last() != Some(&finding) {
                findings.push(finding);
            }
        }
    }
    if more > 0 {
        findings.push(
            Finding::new(
                file,
                Path::root(),
                "too-many-diagnostics",
                format!("and {more} more schema errors in this file, not shown"),
            )
            .hint(format!("fix the first {MAX_DIAGNOSTICS} and validate again")),
        );
    }
    findings
}

/// The most items one list of a model may hold.
pub const MAX_ITEMS: usize = 10_000;

/// The first list longer than [`MAX_ITEMS`] in `value`, if any.
fn long_list(value: &Json, path: &Path) -> Option<Path> {
    match value {
        Json::Array(items) if items.len() > MAX_ITEMS => Some(path.clone()),
        Json::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| long_list(item, &path.index(i)))
        }
        Json::Object(map) => map.iter().find_map(|(key, item)| long_list(item, &path.key(key))),
        _ => None,
    }
}

fn to_path(location: &jsonschema::paths::Location) -> Path {
    Path(
        location
            .iter()
            .map(|segment| match segment {
                LocationSegment::Property(key) => Segment::Key(key.to_string()),
                LocationSegment::Index(i) => Segment::Index(i),
            })
            .collect(),
    )
}

fn describe(file: &str, error: &jsonschema::ValidationError<'_>) -> Vec<Finding> {
    let path = to_path(error.instance_path());
    let at = |p: &Path| if p.0.is_empty() { "the document".to_string() } else { format!("`{p}`") };
    let instance = error.instance();
    let finding = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|key| {
                    let allowed = allowed_keys(kind_of(file), &path);
                    let mut finding = Finding::new(
                        file,
                        path.key(key),
                        "unknown-key",
                        format!("unknown key `{key}` in {}", at(&path)),
                    )
                    .on_key();
                    finding.hint = Some(match closest(key, &allowed) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None if allowed.is_empty() => "remove it".to_string(),
                        None => format!("allowed here: {}", allowed.join(", ")),
                    });
                    finding
                })
                .collect();
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            Finding::new(
                file,
                path.clone(),
                "missing-key",
                format!("{} needs the key `{key}`", at(&path)),
            )
        }
        ValidationErrorKind::Type { kind } => Finding::new(
            file,
            path.clone(),
            "wrong-type",
            format!("{} is {}, expected {}", at(&path), json_kind(instance), type_names(kind)),
        ),
        ValidationErrorKind::Enum { options } => Finding::new(
            file,
            path.clone(),
            "invalid-value",
            format!(
                "{} is {}, expected one of {}",
                at(&path),
                shown(instance),
                options_list(options)
            ),
        ),
        ValidationErrorKind::Pattern { .. } => Finding::new(
            file,
            path.clone(),
            "invalid-value",
            format!("{} is {}, which is not of the expected form", at(&path), shown(instance)),
        )
        .hint(
            pattern_message(kind_of(file), error.schema_path().as_str())
                .unwrap_or_else(|| pattern_hint(&path)),
        ),
        ValidationErrorKind::Maximum { limit } => Finding::new(
            file,
            path.clone(),
            "invalid-value",
            format!("{} is {}, more than the maximum of {limit}", at(&path), shown(instance)),
        ),
        ValidationErrorKind::Minimum { limit } => Finding::new(
            file,
            path.clone(),
            "invalid-value",
            format!("{} is {}, less than the minimum of {limit}", at(&path), shown(instance)),
        ),
        ValidationErrorKind::PropertyNames { error: inner } => {
            let name = inner.instance();
            let name = name.as_str().unwrap_or_default();
            Finding::new(file, path.key(name), "invalid-name", format!("the name {} in {} is not allowed", quoted(name), at(&path)))
                .on_key()
                .hint("names use lower-case letters, digits, '-' and '_', and start with a letter or digit")
        }
        _ => Finding::new(
            file,
            path.clone(),
            "schema",
            format!("{}: {}", at(&path), cut(&error.to_string())),
        ),
    };
    vec![finding]
}

fn kind_of(file: &str) -> DocumentKind {
    if file == "fleet.yaml" { DocumentKind::Fleet } else { DocumentKind::App }
}

fn json_kind(value: &Json) -> String {
    match value {
        Json::Null => "empty".into(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {}", quoted(s)),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
    }
}

/// A value from the file for a message: strings quoted and cut, lists and mappings named.
fn shown(value: &Json) -> String {
    match value {
        Json::String(s) => quoted(s),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
        other => other.to_string(),
    }
}

/// A message that may embed a value of the file, cut to a readable length.
fn cut(message: &str) -> String {
    match message.char_indices().nth(4 * super::limits::MAX_QUOTED) {
        None => message.to_string(),
        Some((end, _)) => format!("{}… (cut)", &message[..end]),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "null" => "nothing".to_string(),
        "integer" => "an integer".to_string(),
        other => format!("a {other}"),
    };
    match kind {
        jsonschema::error::TypeKind::Single(t) => name(t),
        jsonschema::error::TypeKind::Multiple(types) => {
            types.iter().map(|t| name(&t)).collect::<Vec<_>>().join(" or ")
        }
    }
}

fn options_list(options: &Json) -> String {
    match options {
        Json::Array(values) => values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The schema's own words for a pattern (`patternErrorMessage` beside the failing `pattern`).
fn pattern_message(kind: DocumentKind, keyword: &str) -> Option<String> {
    let parent = keyword.strip_suffix("/pattern")?;
    schema_json(kind).pointer(parent)?.get("patternErrorMessage")?.as_str().map(str::to_string)
}

fn pattern_hint(path: &Path) -> String {
    let last = path.0.iter().rev().find_map(|s| match s {
        Segment::Key(key) => Some(key.as_str()),
        Segment::Index(_) => None,
    });
    match last.unwrap_or_default() {
        "endpoint" => "write unix:///var/run/docker.sock or tcp://HOST:PORT".into(),
        "interval" | "timeout" | "start_period" | "start_interval" | "delay" | "monitor"
        | "window" | "stop_grace_period" | "observe_timeout" => {
            "write a duration like 10s, 1m30s or 500ms".into()
        }
        "memory" => "write a size like 512m or 2g".into(),
        _ => "see the schema's description of this key".into(),
    }
}

/// The keys the schema allows at `path`, for "did you mean" hints.
fn allowed_keys(kind: DocumentKind, path: &Path) -> Vec<String> {
    let schema = schema_json(kind);
    let mut node = schema;
    for segment in &path.0 {
        node = resolve(schema, node);
        node = match segment {
            Segment::Key(key) => node
                .get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
                .unwrap_or(&Json::Null),
            Segment::Index(_) => node.get("items").unwrap_or(&Json::Null),
        };
    }
    let node = resolve(schema, node);
    let mut keys: Vec<String> = node
        .get("properties")
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Follows a local `$ref` and, for a `oneOf`/`anyOf` of shapes, the first mapping shape.
fn resolve<'a>(root: &'a Json, mut node: &'a Json) -> &'a Json {
    for _ in 0..8 {
        if let Some(reference) = node.get("$ref").and_then(Json::as_str) {
            let pointer = reference.trim_start_matches('#');
            node = root.pointer(pointer).unwrap_or(&Json::Null);
        } else if let Some(shapes) =
            node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Json::as_array)
        {
            let mapping =
                shapes.iter().map(|s| resolve(root, s)).find(|s| s.get("properties").is_some());
            match mapping {
                Some(shape) => node = shape,
                None => return node,
            }
        } else {
            return node;
        }
    }
    node
}

/// The allowed key nearest to `key` by edit distance, if near enough to be a typo.
fn closest<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        validator(DocumentKind::Fleet);
        validator(DocumentKind::App);
    }

    #[test]
    fn typos_get_a_suggestion() {
        let allowed: Vec<String> = ["image", "environment", "ports"].map(String::from).into();
        assert_eq!(closest("imgae", &allowed), Some("image"));
        assert_eq!(closest("enviroment", &allowed), Some("environment"));
        assert_eq!(closest("zzz", &allowed), None);
    }

    #[test]
    fn unknown_service_key_is_named_with_a_suggestion() {
        let doc = serde_json::json!({"services": {"web": {"image": "x", "imgae": "y"}}});
        let findings = check(DocumentKind::App, "apps/a/compose.yaml", &doc);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, "unknown-key");
        assert_eq!(findings[0].path, Path::of(&["services", "web", "imgae"]));
        assert_eq!(findings[0].hint.as_deref(), Some("did you mean `image`?"));
    }

    #[test]
    fn wrong_types_and_missing_keys() {
        let doc = serde_json::json!({"services": {"web": {"deploy": {"replicas": "three"}}}});
        let findings = check(DocumentKind::App, "apps/a/compose.yaml", &doc);
        let codes: Vec<_> = findings.iter().map(|f| f.code).collect();
        assert!(codes.contains(&"missing-key"), "{findings:?}");
        assert!(codes.contains(&"wrong-type"), "{findings:?}");
    }
}
