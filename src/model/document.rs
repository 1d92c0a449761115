//! Parsing one YAML file into a JSON value for schema validation: syntax errors with their
//! line and column, `<<` merge keys applied, keys made strings, YAML-only values rejected.
//!
//! Bounded ([`Limits`]): the file's size and nesting are checked before the parser runs, and
//! the value is built straight from the parser's events under a budget of nodes and bytes,
//! so an alias or merge-key bomb stops at the budget instead of filling memory. Aliases are
//! expanded by the parser replaying the anchor's events, so every copy is counted.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

use super::diagnostic::Diagnostic;
use super::limits::{Limits, limit_diagnostic, nesting_beyond, quoted};
use super::position::Position;

/// Parses `text` (the file `file`) into JSON under the default [`Limits`].
pub fn parse(file: &str, text: &[u8]) -> Result<Json, Diagnostic> {
    parse_bounded(file, text, &Limits::default())
}

/// Parses `text` (the file `file`) into JSON under `limits`. An empty file is an empty
/// mapping.
pub fn parse_bounded(file: &str, text: &[u8], limits: &Limits) -> Result<Json, Diagnostic> {
    if let Some(too_big) = limits.check_size(file, text.len()) {
        return Err(too_big);
    }
    let text = std::str::from_utf8(text).map_err(|e| {
        Diagnostic::new(file, Position::START, "encoding", format!("the file is not UTF-8 ({e})"))
            .with_hint("save it as UTF-8")
    })?;
    let max_depth = limits.max_depth.min(super::limits::PARSER_DEPTH);
    if let Some(at) = nesting_beyond(text, max_depth) {
        return Err(limit_diagnostic(
            file,
            at,
            "max_depth",
            format!("mappings and lists are nested more than {max_depth} deep here"),
        ));
    }
    let budget = Budget {
        nodes: Cell::new(limits.node_budget(text.len())),
        bytes: Cell::new(limits.byte_budget(text.len())),
        depth: Cell::new(max_depth),
        failure: RefCell::new(None),
    };
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let parsed = Node(&budget).deserialize(deserializer);
    let failure = budget.failure.take();
    let value = match (parsed, failure) {
        (Ok(value), _) => value,
        (Err(error), Some(failure)) => return Err(failure.diagnostic(file, text, &error)),
        (Err(error), None) => return Err(syntax_error(file, text, &error)),
    };
    Ok(match value {
        Json::Null => Json::Object(Map::new()),
        value => value,
    })
}

/// What stopped the build of a value, beside the parser's own errors.
enum Failure {
    /// A budget ran out: the setting's name and the message.
    Limit(&'static str, String),
    /// A YAML value JSON has no place for (a tag, a complex key, ...).
    Value(String),
}

impl Failure {
    fn diagnostic(self, file: &str, text: &str, error: &serde_yaml::Error) -> Diagnostic {
        let at = location(text, error);
        match self {
            Failure::Limit(setting, message) => limit_diagnostic(file, at, setting, message),
            Failure::Value(message) => Diagnostic::new(file, at, "yaml-value", message)
                .with_hint("use plain mappings, sequences, strings, numbers and booleans"),
        }
    }
}

/// What is left of the file's budget while its value is built.
struct Budget {
    nodes: Cell<u64>,
    bytes: Cell<u64>,
    depth: Cell<u32>,
    failure: RefCell<Option<Failure>>,
}

impl Budget {
    fn fail<E: de::Error>(&self, failure: Failure) -> E {
        let message = match &failure {
            Failure::Limit(_, m) | Failure::Value(m) => m.clone(),
        };
        self.failure.replace(Some(failure));
        E::custom(message)
    }

    /// Counts one node holding `bytes` bytes of scalar text.
    fn spend<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get();
        if nodes == 0 {
            return Err(self.fail(Failure::Limit(
                "max_expansion",
                "the file expands to too many values (aliases and merge keys count every copy)"
                    .into(),
            )));
        }
        self.nodes.set(nodes - 1);
        let left = self.bytes.get();
        if bytes as u64 > left {
            return Err(self.fail(Failure::Limit(
                "max_expansion",
                "the file expands to too much text (aliases and merge keys count every copy)"
                    .into(),
            )));
        }
        self.bytes.set(left - bytes as u64);
        Ok(())
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let depth = self.depth.get();
        if depth == 0 {
            return Err(self.fail(Failure::Limit(
                "max_depth",
                "mappings and lists are nested too deep here".into(),
            )));
        }
        self.depth.set(depth - 1);
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get() + 1);
    }
}

/// Builds one value (and everything under it) from the parser, spending the budget.
#[derive(Clone, Copy)]
struct Node<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        self.0.spend(0)?;
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        self.0.spend(0)?;
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        self.0.spend(0)?;
        Ok(Json::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Json, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Json, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        self.0.spend(0)?;
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| self.0.fail(Failure::Value(format!("{v} is not a finite number"))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        self.0.spend(v.len())?;
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        self.0.spend(v.len())?;
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        self.0.spend(0)?;
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        self.0.spend(0)?;
        self.0.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        self.0.leave();
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        self.0.spend(0)?;
        self.0.enter()?;
        let mut object = Map::new();
        let mut merged = None;
        while let Some(key) = map.next_key_seed(Key { node: self, object: &object })? {
            let value = map.next_value_seed(self)?;
            if key == "<<" {
                merged = Some(value);
            } else {
                object.insert(key, value);
            }
        }
        if let Some(merged) = merged {
            merge(&mut object, merged).map_err(|m| self.0.fail(Failure::Value(m)))?;
        }
        self.0.leave();
        Ok(Json::Object(object))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Json, A::Error> {
        // serde_yaml hands a tagged node over as an enum whose variant is the tag.
        let (tag, _): (String, _) = data.variant()?;
        Err(self.0.fail(Failure::Value(format!("YAML tag !{tag} is not supported"))))
    }
}

/// A mapping key: a plain scalar as text, not already a key of `object` (checked while the
/// parser is at the key, so an error points at it).
struct Key<'b, 'o> {
    node: Node<'b>,
    object: &'o Map<String, Json>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Key<'_, '_> {
    /// `key` unless the mapping has it already; raised inside the key's own visit, so the
    /// parser marks the error at the key.
    fn fresh<E: de::Error>(&self, key: String) -> Result<String, E> {
        let budget = self.node.0;
        budget.spend(key.len())?;
        if self.object.contains_key(&key) {
            return Err(
                budget.fail(Failure::Value(format!("the key {} appears twice", quoted(&key))))
            );
        }
        Ok(key)
    }

    fn complex<E: de::Error>(&self) -> E {
        self.node.0.fail(Failure::Value(
            "a mapping key must be a plain scalar, not a mapping or a sequence".to_string(),
        ))
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain scalar key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.fresh(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.fresh(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.fresh(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        match Number::from_f64(v) {
            Some(n) => self.fresh(n.to_string()),
            None => Err(self.node.0.fail(Failure::Value(format!("{v} is not a finite number")))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.fresh(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.fresh("null".to_string())
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.complex())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.complex())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<String, A::Error> {
        let (tag, _): (String, _) = data.variant()?;
        Err(self.node.0.fail(Failure::Value(format!("YAML tag !{tag} is not supported"))))
    }
}

/// Applies a `<<` merge key: `merged` is a mapping or a list of mappings whose keys are
/// added where `object` lacks them (the mapping's own keys win, then earlier sources).
fn merge(object: &mut Map<String, Json>, merged: Json) -> Result<(), String> {
    let sources = match merged {
        Json::Object(source) => vec![source],
        Json::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Json::Object(source) => Ok(source),
                _ => Err("a `<<` merge list may hold only mappings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("`<<` merges a mapping or a list of mappings".to_string()),
    };
    for source in sources {
        for (key, value) in source {
            object.entry(key).or_insert(value);
        }
    }
    Ok(())
}

/// Where `error` happened, inside the file.
fn location(text: &str, error: &serde_yaml::Error) -> Position {
    // An error at the very end of a file without a final newline is reported on the line
    // after the last; point at the end of the last line instead.
    let lines = text.split('\n').count();
    error.location().map_or(Position::START, |l| {
        if l.line() > lines {
            let last = text.split('\n').next_back().unwrap_or_default();
            Position { line: lines as u32, column: last.chars().count() as u32 + 1 }
        } else {
            Position { line: l.line() as u32, column: l.column() as u32 }
        }
    })
}

fn syntax_error(file: &str, text: &str, error: &serde_yaml::Error) -> Diagnostic {
    let at = location(text, error);
    // serde_yaml appends " at line X column Y"; the location is already in front.
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    Diagnostic::new(file, at, "yaml-syntax", format!("invalid YAML: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_their_location() {
        let error = parse("f.yaml", b"a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(error.file, "f.yaml");
        assert_eq!(error.code, "yaml-syntax");
        assert!(error.line >= 2, "{error}");
        assert!(!error.message.contains(" at line "), "{error}");
    }

    #[test]
    fn an_error_at_the_end_of_the_file_points_into_the_file() {
        let error = parse("f.yaml", b"a: {b").unwrap_err();
        assert_eq!((error.line, error.column), (1, 6), "{error}");
    }

    #[test]
    fn merge_keys_are_applied_and_keys_become_strings() {
        let json = parse("f.yaml", b"base: &b {x: 1}\nm:\n  <<: *b\n  80: y\n").unwrap();
        assert_eq!(json["m"]["x"], 1);
        assert_eq!(json["m"]["80"], "y");
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        assert_eq!(parse("f.yaml", b"").unwrap(), Json::Object(Map::new()));
        assert_eq!(parse("f.yaml", b"# only a comment\n").unwrap(), Json::Object(Map::new()));
    }

    #[test]
    fn tags_and_invalid_utf8_are_errors() {
        assert_eq!(parse("f.yaml", b"a: !custom 1").unwrap_err().code, "yaml-value");
        assert_eq!(parse("f.yaml", b"a: \xff").unwrap_err().code, "encoding");
    }

    /// The alias bomb of issue 9: N items anchored, then N aliases to them.
    fn alias_bomb(n: usize) -> String {
        let items = vec!["x"; n].join(", ");
        let aliases = vec!["*a"; n].join(", ");
        format!("a: &a [{items}]\nb: [{aliases}]\n")
    }

    #[test]
    fn an_alias_bomb_stops_at_the_budget_with_a_located_limit() {
        let text = alias_bomb(3_000);
        let started = std::time::Instant::now();
        let error = parse("f.yaml", text.as_bytes()).unwrap_err();
        assert_eq!(error.code, "limit", "{error}");
        assert!(error.message.contains("max_expansion"), "{error}");
        assert!(error.hint.as_deref().unwrap().contains("settings.limits.max_expansion"));
        assert!(error.line >= 1 && error.column >= 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // A few aliases are fine.
        assert!(parse("f.yaml", alias_bomb(20).as_bytes()).is_ok());
    }

    #[test]
    fn a_merge_key_bomb_stops_at_the_budget() {
        // Each level merges the previous one twice over: 2^40 keys if expanded.
        let mut text = String::from("l0: &l0 {k0: 1, j0: 2}\n");
        for i in 1..40 {
            text.push_str(&format!(
                "l{i}: &l{i} {{<<: [*l{p}, *l{p}], k{i}: [*l{p}, *l{p}]}}\n",
                p = i - 1
            ));
        }
        let error = parse("f.yaml", text.as_bytes()).unwrap_err();
        assert_eq!(error.code, "limit", "{error}");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let text = "[".repeat(100_000);
        let started = std::time::Instant::now();
        let error = parse("f.yaml", text.as_bytes()).unwrap_err();
        // The document's own level counts: the 64th bracket is the 65th level.
        assert_eq!((error.code, error.line, error.column), ("limit", 1, 64), "{error}");
        assert!(error.message.contains("max_depth"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Within the limit, nesting parses.
        let ok = format!("a: {}1{}", "[".repeat(60), "]".repeat(60));
        assert!(parse("f.yaml", ok.as_bytes()).is_ok());
    }

    #[test]
    fn a_file_over_the_size_limit_is_not_parsed() {
        let limits = Limits { max_file_size: 10, ..Limits::default() };
        let error = parse_bounded("f.yaml", b"a: 12345678901", &limits).unwrap_err();
        assert_eq!(error.code, "limit");
        assert!(error.message.contains("max_file_size"), "{error}");
    }

    #[test]
    fn duplicate_keys_and_bad_merges_are_errors() {
        let error = parse("f.yaml", b"a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(error.code, "yaml-value", "{error}");
        assert_eq!(error.line, 3, "{error}");
        assert_eq!(parse("f.yaml", b"a:\n  <<: 1\n").unwrap_err().code, "yaml-value");
        // Keys of the mapping win over merged ones, whatever the order.
        let json = parse("f.yaml", b"b: &b {x: 1, y: 2}\nm: {x: 9, <<: *b}\n").unwrap();
        assert_eq!((json["m"]["x"].as_i64(), json["m"]["y"].as_i64()), (Some(9), Some(2)));
    }
}
