//! The JSON schemas in `schemas/`, embedded in the binary, and turning their errors into
//! findings that name the key at fault in words a Compose user knows.
//!
//! What a value should look like is written in the schema, beside the shape it describes, so
//! a new field gets its message without code: `"x-error": {"expected": ..., "hint": ...}` on
//! a node says what a bad value there should have been ("a size") and how to write one; a
//! failing `pattern`, `type` or `oneOf` of that node is reported with those words. A `oneOf`
//! without them is explained by its one branch of the value's type (a mapping with a bad key
//! inside is reported at that key), or by the types its branches take.

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
        for finding in describe(file, &error, 0) {
            if findings.len() >= MAX_DIAGNOSTICS {
                more += 1;
            } else if findings.last() != Some(&finding) {
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

/// How deep [`describe`] follows the branches of nested `oneOf`s (the schemas nest three).
const MAX_BRANCH_DEPTH: usize = 8;

fn at(path: &Path) -> String {
    if path.0.is_empty() { "the document".to_string() } else { format!("`{path}`") }
}

fn describe(file: &str, error: &jsonschema::ValidationError<'_>, depth: usize) -> Vec<Finding> {
    let path = to_path(error.instance_path());
    let instance = error.instance();
    let kind = kind_of(file);
    let keyword = error.schema_path().as_str();
    // The schema's own words for the node whose `type` or `pattern` failed, if it has them.
    let expected = || {
        let node = keyword.strip_suffix("/type").or_else(|| keyword.strip_suffix("/pattern"))?;
        expected_finding(kind, file, node, &path, instance)
    };
    if matches!(
        error.kind(),
        ValidationErrorKind::Type { .. } | ValidationErrorKind::Pattern { .. }
    ) {
        if let Some(finding) = expected() {
            return vec![finding];
        }
    }
    let finding = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } => {
            return one_of(file, error, context, false, depth);
        }
        ValidationErrorKind::OneOfMultipleValid { context } => {
            return one_of(file, error, context, true, depth);
        }
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
        ValidationErrorKind::Pattern { .. } => {
            let finding = Finding::new(
                file,
                path.clone(),
                "invalid-value",
                format!("{} is {}, which is not of the expected form", at(&path), shown(instance)),
            );
            match pattern_message(kind, keyword) {
                Some(hint) => finding.hint(hint),
                None => finding,
            }
        }
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

/// A JSON Schema type in a Compose user's words.
fn type_name(t: &str) -> String {
    match t {
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "null" => "nothing".to_string(),
        "integer" => "an integer".to_string(),
        other => format!("a {other}"),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| type_name(&t.to_string());
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

/// The schema's own words for a pattern (`patternErrorMessage` beside the failing `pattern`),
/// else the description of the key.
fn pattern_message(kind: DocumentKind, keyword: &str) -> Option<String> {
    let node = schema_json(kind).pointer(keyword.strip_suffix("/pattern")?)?;
    let words = node.get("patternErrorMessage").or_else(|| node.get("description"))?;
    words.as_str().map(str::to_string)
}

/// A finding in the words of the `x-error` annotation of the schema node at `pointer` (its
/// canonical location, as jsonschema reports it), if the node has one: "`path` is VALUE,
/// expected EXPECTED", with the annotation's hint.
fn expected_finding(
    kind: DocumentKind,
    file: &str,
    pointer: &str,
    path: &Path,
    instance: &Json,
) -> Option<Finding> {
    let words = schema_json(kind).pointer(pointer)?.get("x-error")?;
    let expected = words.get("expected")?.as_str()?;
    let finding = Finding::new(
        file,
        path.clone(),
        "invalid-value",
        format!("{} is {}, expected {expected}", at(path), shown(instance)),
    );
    Some(match words.get("hint").and_then(Json::as_str) {
        Some(hint) => finding.hint(hint),
        None => finding,
    })
}

/// Explains a failed `oneOf` (no branch fits, or `multiple`: more than one does). `context`
/// holds each branch's own errors, in branch order.
///
/// A mapping or list of the type of exactly one branch is explained by that branch's errors,
/// which name the key or item at fault. Otherwise the node's `x-error` words say what was
/// expected; without them, a value of no branch's type gets the list of types, and any other
/// the node's description.
fn one_of(
    file: &str,
    error: &jsonschema::ValidationError<'_>,
    context: &[Vec<jsonschema::ValidationError<'static>>],
    multiple: bool,
    depth: usize,
) -> Vec<Finding> {
    let kind = kind_of(file);
    let schema = schema_json(kind);
    let path = to_path(error.instance_path());
    let instance = error.instance();
    let keyword = error.schema_path().as_str();
    let pointer = keyword.strip_suffix("/oneOf").unwrap_or(keyword);
    let node = schema.pointer(pointer).unwrap_or(&Json::Null);
    let branches: Vec<&Json> = node
        .get("oneOf")
        .and_then(Json::as_array)
        .map(|shapes| shapes.iter().map(|shape| follow_ref(schema, shape)).collect())
        .unwrap_or_default();
    let fitting: Vec<usize> = (0..branches.len())
        .filter(|&i| takes_type(schema, branches[i], instance, MAX_BRANCH_DEPTH))
        .collect();
    // The errors of the one branch of the value's type, when there is such a branch.
    let inner = match fitting.as_slice() {
        [only] if !multiple && depth < MAX_BRANCH_DEPTH => {
            context.get(*only).filter(|errors| !errors.is_empty())
        }
        _ => None,
    };
    let inner_findings = |errors: &Vec<jsonschema::ValidationError<'static>>| {
        errors.iter().flat_map(|e| describe(file, e, depth + 1)).collect::<Vec<_>>()
    };
    let structured = instance.is_object() || instance.is_array();
    if let Some(errors) = inner.filter(|_| structured) {
        return inner_findings(errors);
    }
    if let Some(finding) = expected_finding(kind, file, pointer, &path, instance) {
        return vec![finding];
    }
    if let Some(errors) = inner {
        return inner_findings(errors);
    }
    let finding = if fitting.is_empty() && !branches.is_empty() {
        let mut types: Vec<String> = Vec::new();
        for name in branches.iter().flat_map(|b| branch_types(schema, b, MAX_BRANCH_DEPTH)) {
            if !types.contains(&name) {
                types.push(name);
            }
        }
        Finding::new(
            file,
            path.clone(),
            "wrong-type",
            format!("{} is {}, expected {}", at(&path), json_kind(instance), types.join(" or ")),
        )
    } else {
        let what = if multiple { "fits more than one" } else { "fits none" };
        let finding = Finding::new(
            file,
            path.clone(),
            "invalid-value",
            format!("{} is {}, which {what} of the forms allowed here", at(&path), shown(instance)),
        );
        match node.get("description").and_then(Json::as_str) {
            Some(description) => finding.hint(description),
            None => finding,
        }
    };
    vec![finding]
}

/// Follows a local `$ref` (a chain of them, bounded).
fn follow_ref<'a>(root: &'a Json, mut node: &'a Json) -> &'a Json {
    for _ in 0..8 {
        match node.get("$ref").and_then(Json::as_str) {
            Some(reference) => {
                node = root.pointer(reference.trim_start_matches('#')).unwrap_or(&Json::Null)
            }
            None => break,
        }
    }
    node
}

/// The JSON types a schema node names, through `$ref` and nested `oneOf` (empty: any).
fn branch_types(root: &Json, node: &Json, depth: usize) -> Vec<String> {
    let node = follow_ref(root, node);
    match node.get("type") {
        Some(Json::String(t)) => vec![type_name(t)],
        Some(Json::Array(types)) => types.iter().filter_map(Json::as_str).map(type_name).collect(),
        _ if depth > 0 => node
            .get("oneOf")
            .and_then(Json::as_array)
            .map(|shapes| shapes.iter().flat_map(|s| branch_types(root, s, depth - 1)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether a schema node accepts `value`'s JSON type (a node naming no type accepts any).
fn takes_type(root: &Json, node: &Json, value: &Json, depth: usize) -> bool {
    let node = follow_ref(root, node);
    let names = |t: &str| match (t, value) {
        ("null", Json::Null)
        | ("boolean", Json::Bool(_))
        | ("number", Json::Number(_))
        | ("string", Json::String(_))
        | ("array", Json::Array(_))
        | ("object", Json::Object(_)) => true,
        ("integer", Json::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    };
    match node.get("type") {
        Some(Json::String(t)) => names(t),
        Some(Json::Array(types)) => types.iter().filter_map(Json::as_str).any(names),
        _ => match node.get("oneOf").and_then(Json::as_array) {
            Some(shapes) if depth > 0 => {
                shapes.iter().any(|s| takes_type(root, s, value, depth - 1))
            }
            _ => true,
        },
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
fn resolve<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    let node = follow_ref(root, node);
    let Some(shapes) = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Json::as_array)
    else {
        return node;
    };
    shapes.iter().map(|s| resolve(root, s)).find(|s| s.get("properties").is_some()).unwrap_or(node)
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

    /// `(message, hint)` of the only finding for `doc` as an app file.
    fn only(kind: DocumentKind, doc: Json) -> (String, Option<String>) {
        let file = if kind == DocumentKind::Fleet { "fleet.yaml" } else { "apps/a/compose.yaml" };
        let findings = check(kind, file, &doc);
        assert_eq!(findings.len(), 1, "{doc}: {findings:?}");
        (findings[0].message.clone(), findings[0].hint.clone())
    }

    #[test]
    fn a_value_failing_a_one_of_says_what_was_expected_in_the_schema_words() {
        use serde_json::json;
        let web = |service: Json| json!({"services": {"web": service}});
        let size = "write a number with an optional unit b, k, m, g or t (powers of 1024), like 512m or 1g, or a whole number of bytes like 268435456";
        let table = [
            // The node's `x-error` words, for a scalar of a matching type and of none.
            (
                web(json!({"image": "x", "deploy": {"resources": {"limits": {"memory": "12q"}}}})),
                "`services.web.deploy.resources.limits.memory` is \"12q\", expected a size",
                Some(size),
            ),
            (
                web(json!({"image": "x", "deploy": {"resources": {"limits": {"memory": [1]}}}})),
                "`services.web.deploy.resources.limits.memory` is a list, expected a size",
                Some(size),
            ),
            (
                web(json!({"image": "x", "deploy": {"resources": {"limits": {"cpus": "lots"}}}})),
                "`services.web.deploy.resources.limits.cpus` is \"lots\", expected a number of CPUs",
                Some("write a number like 0.5 or 2, or the same as a string (\"0.5\")"),
            ),
            (
                web(json!({"image": "x", "ports": ["80:80:80:80"]})),
                "`services.web.ports[0]` is \"80:80:80:80\", expected a port",
                Some(
                    "write [HOST_IP:][PUBLISHED:]TARGET[/tcp|/udp], like \"8080:80\" or \"127.0.0.1:8080:80/udp\", a container port number like 80, or a mapping with target and published",
                ),
            ),
            // A mapping of the one mapping branch: that branch's own error, at its key.
            (
                web(json!({"image": "x", "ports": [{"target": 80, "published": "http"}]})),
                "`services.web.ports[0].published` is \"http\", expected a published port",
                Some(
                    "write a host port number like 8080, or a range as a string like \"8000-8010\"",
                ),
            ),
            (
                web(json!({"image": "x", "configs": [{"source": "c", "mode": 440.5}]})),
                "`services.web.configs[0].mode` is 440.5, expected a file mode",
                Some(
                    "write an octal string like \"0440\" (quoted: YAML reads 0440 unquoted as the number 440), or the decimal number of the bits like 288",
                ),
            ),
            // No branch of the value's type and no words: the types the branches take.
            (
                web(json!({"image": "x", "networks": 5})),
                "`services.web.networks` is the number 5, expected a list or a mapping",
                None,
            ),
            // Both branches fit a mapping: the words again, for none and for both.
            (
                json!({"services": {"web": {"image": "x"}}, "configs": {"c": {"name": "n"}}}),
                "`configs.c` is a mapping, expected exactly one of `file` and `content`",
                Some(
                    "write `file: ./NAME` for a file in the app's folder, or `content: TEXT` for inline text, not both",
                ),
            ),
            (
                json!({"services": {"web": {"image": "x"}}, "configs": {"c": {"file": "./a", "content": "b"}}}),
                "`configs.c` is a mapping, expected exactly one of `file` and `content`",
                Some(
                    "write `file: ./NAME` for a file in the app's folder, or `content: TEXT` for inline text, not both",
                ),
            ),
            // A failed `type` of a node with words uses them too.
            (
                web(json!({"image": "x", "stop_grace_period": 10})),
                "`services.web.stop_grace_period` is 10, expected a duration",
                Some("write numbers with units ns, us, ms, s, m or h, like 30s, 1m30s or 500ms"),
            ),
        ];
        for (doc, message, hint) in table {
            let got = only(DocumentKind::App, doc.clone());
            assert_eq!(got, (message.to_string(), hint.map(str::to_string)), "{doc}");
        }
        let fleet = json!({"hosts": {"a": {"endpoint": "unix:///a.sock", "capacity": {"cpus": true, "memory": "1g"}}}});
        assert_eq!(
            only(DocumentKind::Fleet, fleet).0,
            "`hosts.a.capacity.cpus` is true, expected a number of CPUs"
        );
    }

    /// Every place a value can fail for its form has words in the schema: a `pattern` its
    /// `patternErrorMessage` or `x-error`, a `oneOf` its `x-error` unless its branches take
    /// distinct types (then a failure is a wrong type, or inside the one branch of its type).
    #[test]
    fn every_form_check_of_the_schemas_has_words() {
        fn walk(root: &Json, node: &Json, at: &str, problems: &mut Vec<String>) {
            match node {
                Json::Object(map) => {
                    let words = map.get("x-error");
                    if let Some(words) = words {
                        for key in ["expected", "hint"] {
                            if words.get(key).and_then(Json::as_str).is_none_or(str::is_empty) {
                                problems.push(format!("{at}: x-error without {key}"));
                            }
                        }
                    }
                    let in_condition = at.contains("/if/") || at.contains("/not");
                    if map.contains_key("pattern")
                        && !map.contains_key("patternErrorMessage")
                        && words.is_none()
                        && !in_condition
                    {
                        problems.push(format!("{at}: pattern without words"));
                    }
                    if let (Some(Json::Array(shapes)), None) = (map.get("oneOf"), words) {
                        let mut seen: Vec<String> = Vec::new();
                        for shape in shapes {
                            let types = branch_types(root, shape, MAX_BRANCH_DEPTH);
                            if types.is_empty() || types.iter().any(|t| seen.contains(t)) {
                                problems.push(format!(
                                    "{at}: oneOf of overlapping types without x-error"
                                ));
                            }
                            seen.extend(types);
                        }
                    }
                    for (key, value) in map {
                        walk(root, value, &format!("{at}/{key}"), problems);
                    }
                }
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(root, item, &format!("{at}/{i}"), problems);
                    }
                }
                _ => {}
            }
        }
        let mut problems = Vec::new();
        for kind in [DocumentKind::Fleet, DocumentKind::App] {
            let root = schema_json(kind);
            walk(root, root, &format!("{kind:?}"), &mut problems);
        }
        assert_eq!(problems, Vec::<String>::new());
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
