//! `${VAR}` interpolation in app files, from the variables declared in `fleet.yaml` only, so
//! the same commit always gives the same model. Forms: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, and `$$` for a literal `$`.

use std::collections::BTreeMap;

use super::limits::quoted;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The text is wrong: which variable and why.
    Invalid(String),
    /// The result would be longer than the limit given.
    TooLong,
}

/// Interpolates one string. The error says which variable and why.
pub fn interpolate(text: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    interpolate_within(text, variables, usize::MAX).map_err(|failure| match failure {
        Failure::Invalid(message) => message,
        Failure::TooLong => "the result is too long".to_string(),
    })
}

/// [`interpolate`], stopping as soon as the result would exceed `max_len` bytes (a variable
/// used many times cannot make it grow without bound).
pub fn interpolate_within(
    text: &str,
    variables: &BTreeMap<String, String>,
    max_len: usize,
) -> Result<String, Failure> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len().min(max_len));
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        if out.len() > max_len {
            return Err(Failure::TooLong);
        }
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let close = matching_brace(after).ok_or_else(|| {
                Failure::Invalid(format!("unclosed \"${{\" in {}; close it with \"}}\", or write \"$$\" for a literal \"$\"", quoted(text)))
            })?;
            out.push_str(&expand(&after[..close], variables).map_err(Failure::Invalid)?);
            rest = &after[close + 1..];
        } else {
            let name_len =
                rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if name_len == 0 {
                out.push('$');
                continue;
            }
            out.push_str(&expand(&rest[..name_len], variables).map_err(Failure::Invalid)?);
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    if out.len() > max_len {
        return Err(Failure::TooLong);
    }
    Ok(out)
}

/// Index of the `}` closing an expression, allowing nested `${...}` in defaults.
fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand(expression: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let name_len = expression
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expression.len());
    let (name, modifier) = expression.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("\"${{{expression}}}\" does not start with a variable name"));
    }
    let value = variables.get(name);
    let (value, unset_or_empty) = (value.map(String::as_str), value.is_none_or(|v| v.is_empty()));
    let undeclared = || {
        format!(
            "variable {name} is not declared; gitfleet takes values only from `variables:` in \
             fleet.yaml (declare it there, or give a default with ${{{name}:-value}})"
        )
    };
    match modifier {
        "" => value.map(str::to_string).ok_or_else(undeclared),
        _ if modifier.starts_with(":-") => {
            let default = interpolate(&modifier[2..], variables)?;
            Ok(if unset_or_empty { default } else { value.unwrap_or_default().to_string() })
        }
        _ if modifier.starts_with('-') => {
            let default = interpolate(&modifier[1..], variables)?;
            Ok(value.map_or(default, str::to_string))
        }
        _ if modifier.starts_with(":?") && unset_or_empty => {
            Err(format!("variable {name} is required: {}", &modifier[2..]))
        }
        _ if modifier.starts_with('?') && value.is_none() => {
            Err(format!("variable {name} is required: {}", &modifier[1..]))
        }
        _ if modifier.starts_with(":?") || modifier.starts_with('?') => {
            Ok(value.unwrap_or_default().to_string())
        }
        _ if modifier.starts_with(":+") => {
            Ok(if unset_or_empty { String::new() } else { interpolate(&modifier[2..], variables)? })
        }
        _ if modifier.starts_with('+') => Ok(if value.is_none() {
            String::new()
        } else {
            interpolate(&modifier[1..], variables)?
        }),
        _ => Err(format!(
            "\"${{{expression}}}\" is not a form gitfleet understands; use ${{{name}}} or ${{{name}:-default}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("TAG", "1.2"), ("EMPTY", "")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn expands_declared_variables() {
        assert_eq!(interpolate("web:${TAG}", &vars()).unwrap(), "web:1.2");
        assert_eq!(interpolate("web:$TAG-x", &vars()).unwrap(), "web:1.2-x");
        assert_eq!(interpolate("cost $$5", &vars()).unwrap(), "cost $5");
        assert_eq!(interpolate("a $ b", &vars()).unwrap(), "a $ b");
    }

    #[test]
    fn defaults_apply_to_undeclared_and_empty() {
        assert_eq!(interpolate("${NOPE:-x}", &vars()).unwrap(), "x");
        assert_eq!(interpolate("${EMPTY:-x}", &vars()).unwrap(), "x");
        assert_eq!(interpolate("${EMPTY-x}", &vars()).unwrap(), "");
        assert_eq!(interpolate("${NOPE:-${TAG}}", &vars()).unwrap(), "1.2");
        assert_eq!(interpolate("${TAG:+set}", &vars()).unwrap(), "set");
    }

    #[test]
    fn undeclared_and_required_are_errors() {
        assert!(interpolate("${NOPE}", &vars()).unwrap_err().contains("NOPE is not declared"));
        assert!(interpolate("$NOPE", &vars()).unwrap_err().contains("fleet.yaml"));
        assert!(interpolate("${EMPTY:?must be set}", &vars()).unwrap_err().contains("must be set"));
        assert!(interpolate("${TAG", &vars()).unwrap_err().contains("unclosed"));
        assert!(interpolate("${}", &vars()).is_err());
    }

    #[test]
    fn a_result_longer_than_the_limit_stops_early() {
        let big: BTreeMap<String, String> = [("BIG".to_string(), "x".repeat(1 << 20))].into();
        let text = "${BIG}".repeat(10_000);
        let started = std::time::Instant::now();
        assert_eq!(interpolate_within(&text, &big, 64 << 10), Err(Failure::TooLong));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(interpolate_within("${BIG}", &big, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(interpolate_within("a${BIG}", &big, 1 << 20), Err(Failure::TooLong));
    }

    #[test]
    fn an_unclosed_brace_quotes_a_long_text_cut() {
        let text = format!("${{{}", "A".repeat(10_000));
        let message = interpolate(&text, &vars()).unwrap_err();
        assert!(message.len() < 300, "{message}");
    }
}
