//! The bounds on loading one revision, so that no file of a commit, however hostile, can make
//! loading use unbounded memory or time: a size per file, a nesting depth checked before the
//! YAML parser runs, a budget of expanded nodes and bytes (aliases, merge keys and `${VAR}`
//! interpolation count every copy), a length per interpolated string, a cap on the number of
//! diagnostics and on the length of any value quoted in one.
//!
//! `fleet.yaml` always loads under [`Limits::default`]; its `settings.limits` then apply to
//! the app files of the same revision.
//!
//! # Guarantees
//!
//! For a file of `n` bytes, the parsed value has at most `4,096 + max_expansion × n / 8`
//! nodes and at most `65,536 + max_expansion × n` bytes of scalars, whatever its aliases,
//! merge keys and interpolations, so loading it uses memory and time linear in `n` (see
//! `tests/pure/load_bounds.rs` for the measured multiple).

use serde::{Deserialize, Serialize};

use super::diagnostic::Diagnostic;
use super::position::Position;

/// At most this many diagnostics are reported for one revision; the rest are counted.
pub const MAX_DIAGNOSTICS: usize = 100;

/// At most this many characters of a value from the repository are quoted in a message.
pub const MAX_QUOTED: usize = 80;

/// Readers (Git trees, directories) never hold more of one file than this, whatever the
/// fleet's settings say; a larger file is recorded as unreadable.
pub const READ_CEILING: u64 = 64 << 20;

/// The YAML parser's own recursion limit; `max_depth` stays below it.
pub const PARSER_DEPTH: u32 = 120;

/// `settings.limits` of `fleet.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest file read from a revision (compose files, configs, secrets, env files), bytes.
    pub max_file_size: u64,
    /// Deepest nesting of mappings and lists in one YAML file.
    pub max_depth: u32,
    /// How many times its own size a file may grow to when aliases, merge keys and
    /// interpolation are expanded (see the module's guarantees for the exact budget).
    pub max_expansion: u64,
    /// Longest string that `${VAR}` interpolation may produce, bytes.
    pub max_string: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file_size: 1 << 20, max_depth: 64, max_expansion: 8, max_string: 64 << 10 }
    }
}

impl Limits {
    /// The most nodes a file of `size` bytes may expand to.
    pub fn node_budget(&self, size: usize) -> u64 {
        4_096u64.saturating_add(self.max_expansion.saturating_mul(size as u64) / 8)
    }

    /// The most scalar bytes a file of `size` bytes may expand to.
    pub fn byte_budget(&self, size: usize) -> u64 {
        65_536u64.saturating_add(self.max_expansion.saturating_mul(size as u64))
    }

    /// A located diagnostic for a file larger than `max_file_size`, or `None`.
    pub fn check_size(&self, file: &str, size: usize) -> Option<Diagnostic> {
        (size as u64 > self.max_file_size).then(|| {
            limit_diagnostic(
                file,
                Position::START,
                "max_file_size",
                format!(
                    "the file is {size} bytes, more than the limit of {} bytes",
                    self.max_file_size
                ),
            )
        })
    }
}

/// The diagnostic for a limit hit: code `limit`, naming the setting and how to change it.
pub fn limit_diagnostic(
    file: &str,
    at: Position,
    setting: &str,
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic::new(file, at, "limit", format!("{} (limit `{setting}`)", message.into()))
        .with_hint(limit_hint(setting))
}

/// How to change limit `setting`.
pub fn limit_hint(setting: &str) -> String {
    format!(
        "make the file smaller or simpler, or raise `settings.limits.{setting}` in fleet.yaml \
         (it applies to app files; fleet.yaml itself always loads under the defaults)"
    )
}

/// `text` for quoting in a message: at most [`MAX_QUOTED`] characters, the rest counted.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        None => format!("{text:?}"),
        Some((cut, _)) => {
            format!("{:?}… ({} bytes in all)", &text[..cut], text.len())
        }
    }
}

/// Keeps the first [`MAX_DIAGNOSTICS`] of `diagnostics` (already sorted) and replaces the
/// rest by one diagnostic that counts them.
pub fn cap_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    if diagnostics.len() <= MAX_DIAGNOSTICS {
        return;
    }
    let more = diagnostics.len() - MAX_DIAGNOSTICS;
    let last = diagnostics[MAX_DIAGNOSTICS].clone();
    diagnostics.truncate(MAX_DIAGNOSTICS);
    diagnostics.push(
        Diagnostic::new(
            &last.file,
            Position { line: last.line, column: last.column },
            "too-many-diagnostics",
            format!("and {more} more problems, not shown"),
        )
        .with_hint(format!("fix the first {MAX_DIAGNOSTICS} and validate again")),
    );
}

/// Where the nesting of `text` first goes deeper than `max_depth`, counted cheaply before
/// any parsing: flow brackets (`[`, `{`) open minus closed, wherever they are (an
/// overestimate inside quoted text, never an underestimate), plus block indentation levels
/// and `- ` sequence entries opened on one line. Linear in the length of `text`.
pub fn nesting_beyond(text: &str, max_depth: u32) -> Option<Position> {
    let max = max_depth as usize;
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let mut block = 0;
        if flow == 0 && !body.is_empty() && !body.starts_with('#') {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            let mut rest = body;
            let mut dashes = 0;
            while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
                dashes += 1;
                rest = after.trim_start_matches([' ', '\t']);
            }
            block = indents.len() + dashes;
            if block > max {
                return Some(Position { line: number as u32 + 1, column: indent as u32 + 1 });
            }
        }
        for (column, c) in line.chars().enumerate() {
            match c {
                '[' | '{' => {
                    flow += 1;
                    if block + flow > max {
                        return Some(Position {
                            line: number as u32 + 1,
                            column: column as u32 + 1,
                        });
                    }
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_indentation_and_dashes() {
        assert_eq!(nesting_beyond("a: [[[1]]]\n", 4), None);
        assert_eq!(nesting_beyond("a: [[[[1]]]]\n", 4), Some(Position { line: 1, column: 7 }));
        let deep = "a:\n  b:\n    c:\n      d: 1\n";
        assert_eq!(nesting_beyond(deep, 4), None);
        assert_eq!(nesting_beyond(deep, 3), Some(Position { line: 4, column: 7 }));
        assert_eq!(nesting_beyond("- - - - x\n", 3), Some(Position { line: 1, column: 1 }));
        // Siblings do not add up; closing brackets give back.
        assert_eq!(nesting_beyond("a: 1\nb: 2\nc: [1]\nd: [[2]]\n", 3), None);
    }

    #[test]
    fn nesting_scan_is_linear() {
        // 10⁶ brackets: a quadratic scan would take minutes.
        let text = "[".repeat(1_000_000);
        let started = std::time::Instant::now();
        assert!(nesting_beyond(&text, 64).is_some());
        let flat = "a: [1]\n".repeat(150_000);
        assert_eq!(nesting_beyond(&flat, 64), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn quoting_cuts_long_values() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "x".repeat(1000);
        let q = quoted(&long);
        assert!(q.len() < 120 && q.ends_with("(1000 bytes in all)"), "{q}");
        // Never cuts inside a character.
        let wide = "é".repeat(200);
        assert!(quoted(&wide).contains("(400 bytes in all)"));
    }

    #[test]
    fn diagnostics_beyond_the_cap_are_counted() {
        let mut list: Vec<Diagnostic> = (0..250)
            .map(|i| Diagnostic::new("f.yaml", Position { line: i + 1, column: 1 }, "x", "m"))
            .collect();
        cap_diagnostics(&mut list);
        assert_eq!(list.len(), MAX_DIAGNOSTICS + 1);
        assert_eq!(list[MAX_DIAGNOSTICS].message, "and 150 more problems, not shown");
        assert_eq!(list[MAX_DIAGNOSTICS].line, 101);
    }

    #[test]
    fn budgets_grow_with_the_file() {
        let limits = Limits::default();
        assert_eq!(limits.node_budget(0), 4_096);
        assert_eq!(limits.node_budget(8_000), 12_096);
        assert_eq!(limits.byte_budget(1_000), 65_536 + 8_000);
        assert!(limits.check_size("f", 1 << 20).is_none());
        let over = limits.check_size("f", (1 << 20) + 1).unwrap();
        assert_eq!(over.code, "limit");
        assert!(over.message.contains("max_file_size"), "{over}");
        assert!(over.hint.unwrap().contains("settings.limits.max_file_size"));
    }
}
