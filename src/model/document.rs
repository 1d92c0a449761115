//! Parsing one YAML file into a JSON value for schema validation: syntax errors with their
//! line and column, `<<` merge keys applied, keys made strings, YAML-only values rejected.

use serde_json::{Map, Number, Value as Json};
use serde_yaml::Value as Yaml;

use super::diagnostic::Diagnostic;
use super::position::Position;

/// Parses `text` (the file `file`) into JSON. An empty file is an empty mapping.
pub fn parse(file: &str, text: &[u8]) -> Result<Json, Diagnostic> {
    let text = std::str::from_utf8(text).map_err(|e| {
        Diagnostic::new(file, Position::START, "encoding", format!("the file is not UTF-8 ({e})"))
            .with_hint("save it as UTF-8")
    })?;
    let mut yaml: Yaml = serde_yaml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
    yaml.apply_merge().map_err(|e| syntax_error(file, text, &e))?;
    if yaml.is_null() {
        return Ok(Json::Object(Map::new()));
    }
    to_json(&yaml).map_err(|message| {
        Diagnostic::new(file, Position::START, "yaml-value", message)
            .with_hint("use plain mappings, sequences, strings, numbers and booleans")
    })
}

fn syntax_error(file: &str, text: &str, error: &serde_yaml::Error) -> Diagnostic {
    // An error at the very end of a file without a final newline is reported on the line
    // after the last; point at the end of the last line instead.
    let lines = text.split('\n').count();
    let at = error.location().map_or(Position::START, |l| {
        if l.line() > lines {
            let last = text.split('\n').next_back().unwrap_or_default();
            Position { line: lines as u32, column: last.chars().count() as u32 + 1 }
        } else {
            Position { line: l.line() as u32, column: l.column() as u32 }
        }
    });
    // serde_yaml appends " at line X column Y"; the location is already in front.
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    Diagnostic::new(file, at, "yaml-syntax", format!("invalid YAML: {message}"))
}

fn to_json(yaml: &Yaml) -> Result<Json, String> {
    Ok(match yaml {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => number(n)?,
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                object.insert(key_text(key)?, to_json(value)?);
            }
            Json::Object(object)
        }
        Yaml::Tagged(tagged) => {
            return Err(format!("YAML tag {} is not supported", tagged.tag));
        }
    })
}

fn number(n: &serde_yaml::Number) -> Result<Json, String> {
    if let Some(i) = n.as_i64() {
        Ok(Json::Number(i.into()))
    } else if let Some(u) = n.as_u64() {
        Ok(Json::Number(u.into()))
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        Number::from_f64(f).map(Json::Number).ok_or_else(|| format!("{n} is not a finite number"))
    }
}

fn key_text(key: &Yaml) -> Result<String, String> {
    match key {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Null => Ok("null".to_string()),
        _ => Err("a mapping key must be a plain scalar, not a mapping or a sequence".to_string()),
    }
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
}
