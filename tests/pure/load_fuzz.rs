//! Fuzzing the loader (`model::load`) with proptest: whatever bytes a commit holds, loading
//! never panics, gives the same answer twice, and every diagnostic is usable: a file that is
//! one of the inputs (or an app folder), a line and a column from 1, a code and a message.
//!
//! Inputs, each placed as `fleet.yaml` (beside a valid app) or as `apps/x/compose.yaml`
//! (beside a valid fleet):
//!
//! * random bytes, and random Unicode text;
//! * YAML-ish text from a line grammar (Compose keys and values, indentation with spaces and
//!   tabs, anchors, aliases, merge keys, block scalars, flow collections, directives, CRLF);
//! * YAML trees of Compose-like keys and values, rendered in block style with anchors,
//!   aliases, merge keys, odd indentation widths and the odd tab;
//! * the real `example-repo/` files, mutated (lines deleted, duplicated and re-indented,
//!   characters swapped and inserted, keys inserted, values replaced, truncated).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use gitfleet::model::{Diagnostic, Model, SourceEntry, SourceTree, load};
use proptest::prelude::*;

// ---- the check ------------------------------------------------------------------------------

/// Loads `tree` twice and checks the result: no panic (proptest reports one), the same result
/// both times, and every diagnostic well-formed.
fn check(tree: &SourceTree) -> Result<(), TestCaseError> {
    let first = load(tree);
    let second = load(tree);
    prop_assert!(same(&first, &second), "loading twice gave different results");
    if let Err(diagnostics) = &first {
        prop_assert!(!diagnostics.is_empty(), "rejected without a diagnostic");
        let mut allowed: BTreeSet<String> = tree.paths().map(str::to_string).collect();
        for path in tree.paths() {
            if let Some(rest) = path.strip_prefix("apps/") {
                if let Some((folder, _)) = rest.split_once('/') {
                    allowed.insert(format!("apps/{folder}"));
                }
            }
        }
        for d in diagnostics {
            check_diagnostic(d, &allowed)?;
            check_position(d, tree)?;
        }
    }
    Ok(())
}

fn same(a: &Result<Model, Vec<Diagnostic>>, b: &Result<Model, Vec<Diagnostic>>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// A diagnostic's position is inside its file: on one of its lines, at most one column past
/// the end of that line, or at the very end of the file (libyaml reports the end of a
/// stream that lacks a final line break on the line after the last, column 1). Lines are
/// counted as YAML 1.2 does (`\n`, `\r\n`, `\r`; yaml-rust2, the position map) or as YAML 1.1
/// does (also NEL, LS and PS; libyaml, behind serde_yaml): either will do.
fn check_position(d: &Diagnostic, tree: &SourceTree) -> Result<(), TestCaseError> {
    let Some(SourceEntry::File(bytes)) = tree.get(&d.file) else {
        // An app folder, or a symlink: the start is the only position there is.
        prop_assert_eq!((d.line, d.column), (1, 1), "{}", d);
        return Ok(());
    };
    let text = String::from_utf8_lossy(bytes);
    let yaml_1_2 = split_lines(&text, &[]);
    let yaml_1_1 = split_lines(&text, &['\u{85}', '\u{2028}', '\u{2029}']);
    prop_assert!(
        fits(&yaml_1_2, d) || fits(&yaml_1_1, d),
        "{}:{}:{} is outside the file ({} lines; that line: {:?}): {}",
        d.file,
        d.line,
        d.column,
        yaml_1_2.len(),
        yaml_1_2.get(d.line as usize - 1),
        d
    );
    Ok(())
}

/// The lines of `text`, split at `\n`, `\r\n`, `\r` and `extra`.
fn split_lines(text: &str, extra: &[char]) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if c == '\n' || c == '\r' || extra.contains(&c) {
            lines.push(String::new());
        } else {
            lines.last_mut().expect("never empty").push(c);
        }
    }
    lines
}

fn fits(lines: &[String], d: &Diagnostic) -> bool {
    let (line, column) = (d.line as usize, d.column as usize);
    if line == lines.len() + 1 && column == 1 {
        return true;
    }
    line <= lines.len() && column <= lines[line - 1].chars().count() + 1
}

fn check_diagnostic(d: &Diagnostic, allowed: &BTreeSet<String>) -> Result<(), TestCaseError> {
    prop_assert!(d.line >= 1, "line 0: {}", d);
    prop_assert!(d.column >= 1, "column 0: {}", d);
    prop_assert!(!d.message.trim().is_empty(), "empty message: {:?}", d);
    prop_assert!(!d.code.is_empty(), "empty code: {:?}", d);
    prop_assert!(
        allowed.contains(&d.file),
        "diagnostic names a file that is not an input: {:?} (inputs: {:?})",
        d,
        allowed
    );
    // Rendering must not panic either.
    let _ = d.to_string();
    Ok(())
}

// ---- the trees ------------------------------------------------------------------------------

const VALID_FLEET: &str = "\
hosts:
  a:
    endpoint: unix:///var/run/docker.sock
    labels: { zone: a }
  b:
    endpoint: tcp://10.0.0.2:2375
    labels: { zone: b }
variables:
  WEB_TAG: \"1\"
";
const VALID_APP: &str = "\
services:
  web:
    image: nginx:${WEB_TAG}
    ports: [\"8080:80\"]
    configs: [cfg]
configs:
  cfg:
    file: ./config.json
";

/// `text` as `fleet.yaml` (`as_fleet`) beside a valid app, or as `apps/x/compose.yaml` beside
/// a valid fleet.
fn tree_with(text: &[u8], as_fleet: bool) -> SourceTree {
    let mut tree = SourceTree::new();
    if as_fleet {
        tree.insert_file("fleet.yaml", text.to_vec());
        tree.insert_file("apps/x/compose.yaml", VALID_APP.as_bytes().to_vec());
    } else {
        tree.insert_file("fleet.yaml", VALID_FLEET.as_bytes().to_vec());
        tree.insert_file("apps/x/compose.yaml", text.to_vec());
    }
    tree.insert_file("apps/x/config.json", b"{\"a\": 1}\n".to_vec());
    tree
}

/// Every file of `example-repo/`, by repository path.
fn example_repo() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(&root).expect("under the root");
                    let name = relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    files.push((name, std::fs::read(&path).expect("readable example file")));
                }
            }
        }
        files.sort();
        assert!(files.iter().any(|(p, _)| p == "fleet.yaml"), "example-repo/fleet.yaml is missing");
        files
    })
}

/// The YAML files of the example repository that mutations target.
fn example_yaml_files() -> Vec<String> {
    example_repo()
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
        .collect()
}

// ---- vocabularies ---------------------------------------------------------------------------

/// Keys that keep a line valid YAML.
const KEYS: &[&str] = &[
    // fleet.yaml
    "hosts",
    "endpoint",
    "address",
    "labels",
    "capacity",
    "cpus",
    "memory",
    "platform",
    "os",
    "arch",
    "tls",
    "ca",
    "cert",
    "key",
    "settings",
    "name",
    "observe_timeout",
    "pull_policy",
    "variables",
    "a",
    "b",
    // compose
    "services",
    "networks",
    "volumes",
    "configs",
    "secrets",
    "version",
    "web",
    "api",
    "db",
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "depends_on",
    "condition",
    "required",
    "healthcheck",
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "deploy",
    "replicas",
    "placement",
    "constraints",
    "max_replicas_per_node",
    "resources",
    "limits",
    "reservations",
    "update_config",
    "rollback_config",
    "parallelism",
    "order",
    "failure_action",
    "restart_policy",
    "restart",
    "user",
    "working_dir",
    "stop_grace_period",
    "stop_signal",
    "hostname",
    "external",
    "driver",
    "internal",
    "aliases",
    "file",
    "content",
    "source",
    "uid",
    "gid",
    "type",
    "read_only",
    "bind",
    "volume",
    "tmpfs",
    "x-routes",
    "host",
    "path_prefix",
    "port",
    "x-common",
    // unsupported Compose keys
    "build",
    "container_name",
    "network_mode",
    "expose",
    "profiles",
    "extends",
    "privileged",
    "links",
    "scale",
    // odd but valid keys
    "<<",
    "8080",
    "true",
    "null",
    "~",
    "\"quoted key\"",
    "'single'",
    "ü",
    "日本",
    "a b",
    "\"\"",
    "x-ü",
];

/// Keys that usually break the line, or the document.
const NASTY_KEYS: &[&str] =
    &["-", "? x", "[a]", "{b: 1}", "&k key", "*a", "!tag key", "\"open", "key\t", ": x"];

/// Values that keep a line valid YAML (as plain or quoted scalars, or small flow collections).
const VALUES: &[&str] = &[
    "nginx:1.27",
    "gitfleet/web:${WEB_TAG}",
    "\"8080:80\"",
    "80",
    "8080:80/udp",
    "127.0.0.1:8080:80",
    "\"[::1]:80:80\"",
    "65536",
    "0",
    "3",
    "-1",
    "1.5",
    "1e400",
    ".inf",
    ".nan",
    "0x1F",
    "0o17",
    "99999999999999999999",
    "true",
    "yes",
    "no",
    "on",
    "~",
    "null",
    "\"\"",
    "''",
    "\"${WEB_TAG}\"",
    "${UNDECLARED}",
    "${WEB_TAG:-x}",
    "${X:?required}",
    "$$HOME",
    "${",
    "${}",
    "node.labels.zone == a",
    "node.hostname != b",
    "node.labels.zone = a",
    "node.platform.os == linux",
    "service_healthy",
    "service_completed_successfully",
    "start-first",
    "rollback",
    "\"0.5\"",
    "64m",
    "2g",
    "5s",
    "1h30m",
    "-5s",
    "10x",
    "./config.json",
    "../escape",
    "/etc/passwd",
    "./secrets/api-token.txt",
    "./missing.txt",
    "data:/data",
    "/host:/container:ro",
    "./rel:/c",
    "notes-data:/data",
    "tcp://10.0.0.1:2375",
    "unix:///var/run/docker.sock",
    "http://example.test",
    "tcp://:0",
    "[1, 2]",
    "{a: 1}",
    "[]",
    "{}",
    "ü",
    "日本語",
    "\u{200b}",
    "🚀",
    "'it''s'",
    "\"\\u0000\"",
    "[\"CMD\", \"true\"]",
    "[CMD-SHELL, exit 0]",
    "[NONE]",
    "{cpus: \"0.5\", memory: 64m}",
    "[node.labels.zone == a]",
    "{condition: service_healthy}",
    "web",
    "api",
    "cfg",
];

/// Values that often break the document: unknown aliases, unterminated collections and
/// quotes, tags, block indicators, reserved characters, control characters.
const NASTY_VALUES: &[&str] = &[
    "*a",
    "*b",
    "*nope",
    "[1, 2",
    "{",
    "}",
    "\"unterminated",
    "'unterminated",
    "|",
    ">-",
    "|+",
    "!!binary aGVsbG8=",
    "!custom x",
    "!!str 5",
    "!!int x",
    "!!map {}",
    "\u{feff}x",
    "\u{0}",
    "\u{1b}[31m",
    "a: b",
    "- x",
    "# comment",
    "\"\\xff\"",
    "\"\\uD800\"",
    "? complex",
    "@reserved",
    "`back`",
    "&a value",
    "&b {x: 1}",
    "<<",
    "key: &a",
    "%",
    "\\",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => prop::sample::select(NASTY_KEYS).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
        1 => "\\PC{1,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        24 => prop::sample::select(VALUES).prop_map(str::to_string),
        2 => prop::sample::select(NASTY_VALUES).prop_map(str::to_string),
        2 => "[a-z0-9:./_-]{0,16}",
        1 => "\\PC{0,8}",
    ]
}

// ---- (b1) line grammar ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Line {
    KeyValue(String, String),
    KeyOnly(String),
    Item(String),
    ItemKeyValue(String, String),
    Anchor(String, &'static str),
    Merge(&'static str),
    BlockScalar(String, &'static str, Vec<String>),
    Comment(String),
    Raw(String),
    Marker(&'static str),
}

fn line() -> impl Strategy<Value = Line> {
    let anchor = prop::sample::select(vec!["a", "b", "c"]);
    let style = prop::sample::select(vec!["|", ">", "|-", ">+", "|2"]);
    let block = (key(), style, prop::collection::vec(value(), 0..3))
        .prop_map(|(k, s, lines)| Line::BlockScalar(k, s, lines));
    let marker =
        prop::sample::select(vec!["---", "...", "%YAML 1.2", "%TAG ! tag:x,2000:", "? ", ": "]);
    prop_oneof![
        10 => (key(), value()).prop_map(|(k, v)| Line::KeyValue(k, v)),
        6 => key().prop_map(Line::KeyOnly),
        4 => value().prop_map(Line::Item),
        4 => (key(), value()).prop_map(|(k, v)| Line::ItemKeyValue(k, v)),
        2 => (key(), anchor.clone()).prop_map(|(k, a)| Line::Anchor(k, a)),
        2 => anchor.prop_map(Line::Merge),
        1 => block,
        1 => "[ -~]{0,20}".prop_map(Line::Comment),
        1 => value().prop_map(Line::Raw),
        1 => marker.prop_map(Line::Marker),
    ]
}

#[derive(Debug, Clone)]
struct LineSoup {
    /// (indent level, indent with a tab, line)
    lines: Vec<(usize, bool, Line)>,
    unit: usize,
    crlf: bool,
}

fn line_soup() -> impl Strategy<Value = LineSoup> {
    (
        prop::collection::vec((0..5_usize, prop::bool::weighted(0.05), line()), 0..30),
        prop::sample::select(vec![1_usize, 2, 2, 2, 3, 4]),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(lines, unit, crlf)| LineSoup { lines, unit, crlf })
}

impl LineSoup {
    fn render(&self) -> String {
        let newline = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        for (level, tab, line) in &self.lines {
            let indent =
                if *tab { "\t".repeat(*level.max(&1)) } else { " ".repeat(level * self.unit) };
            let pad = " ".repeat((level + 1) * self.unit);
            let text = match line {
                Line::KeyValue(k, v) => format!("{indent}{k}: {v}"),
                Line::KeyOnly(k) => format!("{indent}{k}:"),
                Line::Item(v) => format!("{indent}- {v}"),
                Line::ItemKeyValue(k, v) => format!("{indent}- {k}: {v}"),
                Line::Anchor(k, a) => format!("{indent}{k}: &{a}"),
                Line::Merge(a) => format!("{indent}<<: *{a}"),
                Line::BlockScalar(k, style, lines) => {
                    let body: Vec<String> =
                        lines.iter().map(|l| format!("{indent}{pad}{l}")).collect();
                    format!("{indent}{k}: {style}{newline}{}", body.join(newline))
                }
                Line::Comment(c) => format!("{indent}#{c}"),
                Line::Raw(v) => format!("{indent}{v}"),
                Line::Marker(m) => m.to_string(),
            };
            out.push_str(&text);
            out.push_str(newline);
        }
        out
    }
}

// ---- (b2) YAML trees ------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    /// `&name` on the node.
    Anchored(&'static str, Box<Node>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = value().prop_map(Node::Scalar);
    leaf.prop_recursive(5, 48, 6, |inner| {
        let map = prop::collection::vec((key(), inner.clone()), 0..6)
            .prop_map(|entries| Node::Map(unique(entries)));
        let seq = prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Seq);
        let anchored = (prop::sample::select(vec!["a", "b"]), inner)
            .prop_map(|(a, n)| Node::Anchored(a, Box::new(n)));
        prop_oneof![4 => map, 2 => seq, 1 => anchored]
    })
}

/// A document whose top level has Compose's (or the fleet's) section names, so that the
/// schema and semantic checks get to see it.
fn document() -> impl Strategy<Value = (Node, usize, Option<usize>)> {
    let section = prop::sample::select(vec![
        "services",
        "networks",
        "volumes",
        "configs",
        "secrets",
        "hosts",
        "settings",
        "variables",
        "x-common",
        "version",
    ]);
    let service =
        prop::collection::vec((key(), node()), 0..6).prop_map(|entries| Node::Map(unique(entries)));
    let services = prop::collection::vec(
        (prop::sample::select(vec!["web", "api", "db", "<<"]).prop_map(str::to_string), service),
        0..3,
    )
    .prop_map(Node::Map);
    (
        prop::collection::vec(
            prop_oneof![
                2 => services.prop_map(|s| ("services".to_string(), s)),
                3 => (section.prop_map(str::to_string), node()),
            ],
            0..4,
        ),
        prop::sample::select(vec![1_usize, 2, 2, 3, 4]),
        proptest::option::weighted(0.1, 0..40_usize),
    )
        .prop_map(|(entries, unit, tab_at)| (Node::Map(unique(entries)), unit, tab_at))
}

/// The entries without repeated keys (a repeated key is a YAML error that the mutations
/// already reach; here it would hide everything behind it).
fn unique(entries: Vec<(String, Node)>) -> Vec<(String, Node)> {
    let mut seen = BTreeSet::new();
    entries.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect()
}

impl Node {
    /// Block-style YAML for this node as the value after `key:` (or `-`) at `level`.
    fn render(&self, level: usize, unit: usize, out: &mut String) {
        match self {
            Node::Scalar(s) => {
                out.push(' ');
                out.push_str(s);
                out.push('\n');
            }
            Node::Anchored(name, inner) => {
                out.push_str(" &");
                out.push_str(name);
                inner.render(level, unit, out);
            }
            Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
            Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            Node::Map(entries) => {
                out.push('\n');
                for (k, v) in entries {
                    out.push_str(&" ".repeat(level * unit));
                    out.push_str(k);
                    out.push(':');
                    v.render(level + 1, unit, out);
                }
            }
            Node::Seq(items) => {
                out.push('\n');
                for item in items {
                    out.push_str(&" ".repeat(level * unit));
                    out.push('-');
                    item.render(level + 1, unit, out);
                }
            }
        }
    }

    fn to_document(&self, unit: usize, tab_at: Option<usize>) -> String {
        let mut out = String::new();
        match self {
            Node::Map(entries) => {
                for (k, v) in entries {
                    out.push_str(k);
                    out.push(':');
                    v.render(1, unit, &mut out);
                }
            }
            other => {
                out.push_str("---");
                other.render(0, unit, &mut out);
            }
        }
        if let Some(n) = tab_at {
            // Replace the leading whitespace of one line with a tab.
            let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
            if !lines.is_empty() {
                let i = n % lines.len();
                let trimmed = lines[i].trim_start_matches(' ').to_string();
                lines[i] = format!("\t{trimmed}");
            }
            out = lines.join("\n");
            out.push('\n');
        }
        out
    }
}

// ---- (c) mutations of the example repository -------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapChars(usize),
    InsertChar(usize, char),
    InsertKey {
        line: usize,
        indent: usize,
        key: String,
        value: String,
    },
    /// A key inserted beside line `line`, at its indentation (and after its `- `, if any).
    InsertSibling {
        line: usize,
        key: String,
        value: String,
    },
    Reindent {
        line: usize,
        by: i8,
    },
    ReplaceValue {
        line: usize,
        value: String,
    },
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>().prop_map(|i| i.index(usize::MAX / 2));
    let special = prop::sample::select(vec![
        ':', '\t', '-', ' ', '&', '*', '"', '{', '[', '#', '\n', '$', 'ü',
    ]);
    let char = prop_oneof![special, any::<char>()];
    let insert_key = (index.clone(), 0..6_usize, key(), value())
        .prop_map(|(line, indent, key, value)| Mutation::InsertKey { line, indent, key, value });
    let replace =
        (index.clone(), value()).prop_map(|(line, value)| Mutation::ReplaceValue { line, value });
    prop_oneof![
        3 => index.clone().prop_map(Mutation::DeleteLine),
        2 => index.clone().prop_map(Mutation::DuplicateLine),
        2 => index.clone().prop_map(Mutation::SwapChars),
        2 => (index.clone(), char).prop_map(|(i, c)| Mutation::InsertChar(i, c)),
        4 => insert_key,
        2 => (index.clone(), -4..=4_i8).prop_map(|(line, by)| Mutation::Reindent { line, by }),
        3 => replace,
        1 => index.prop_map(Mutation::Truncate),
    ]
}

/// Mutations that mostly keep the file valid YAML, so that the schema and semantic checks
/// see the result.
fn value_mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>().prop_map(|i| i.index(usize::MAX / 2));
    let replace =
        (index.clone(), value()).prop_map(|(line, value)| Mutation::ReplaceValue { line, value });
    let sibling = (index.clone(), key(), value())
        .prop_map(|(line, key, value)| Mutation::InsertSibling { line, key, value });
    prop_oneof![4 => replace, 3 => sibling, 1 => index.prop_map(Mutation::DeleteLine)]
}

impl Mutation {
    fn apply(&self, text: &str) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let pick = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match self {
            Mutation::DeleteLine(i) if !lines.is_empty() => {
                let i = pick(*i, lines.len());
                lines.remove(i);
            }
            Mutation::DuplicateLine(i) if !lines.is_empty() => {
                let i = pick(*i, lines.len());
                lines.insert(i, lines[i].clone());
            }
            Mutation::SwapChars(i) => {
                let mut chars: Vec<char> = text.chars().collect();
                if chars.len() >= 2 {
                    let i = pick(*i, chars.len() - 1);
                    chars.swap(i, i + 1);
                }
                return chars.into_iter().collect();
            }
            Mutation::InsertChar(i, c) => {
                let mut chars: Vec<char> = text.chars().collect();
                let i = pick(*i, chars.len() + 1);
                chars.insert(i, *c);
                return chars.into_iter().collect();
            }
            Mutation::InsertKey { line, indent, key, value } => {
                let i = pick(*line, lines.len() + 1);
                lines.insert(i, format!("{}{key}: {value}", " ".repeat(indent * 2)));
            }
            Mutation::InsertSibling { line, key, value } if !lines.is_empty() => {
                // Before the first line from `line` on that holds a key or an item: a key
                // there is a sibling of that line's key.
                let start = pick(*line, lines.len());
                let found = (start..lines.len()).chain(0..start).find(|&i| {
                    let body = lines[i].trim_start();
                    !body.is_empty() && !body.starts_with('#')
                });
                if let Some(i) = found {
                    let body = lines[i].trim_start_matches(' ');
                    let indent = " ".repeat(lines[i].len() - body.len());
                    let text = if body.starts_with("- ") {
                        format!("{indent}- {key}: {value}")
                    } else {
                        format!("{indent}{key}: {value}")
                    };
                    lines.insert(i, text);
                }
            }
            Mutation::Reindent { line, by } if !lines.is_empty() => {
                let i = pick(*line, lines.len());
                let body = lines[i].trim_start_matches(' ').to_string();
                let current = lines[i].len() - body.len();
                let indent = (current as isize + *by as isize).max(0) as usize;
                lines[i] = format!("{}{body}", " ".repeat(indent));
            }
            Mutation::ReplaceValue { line, value } if !lines.is_empty() => {
                let i = pick(*line, lines.len());
                if let Some((k, _)) = lines[i].split_once(": ") {
                    lines[i] = format!("{k}: {value}");
                } else if let Some((dash, _)) = lines[i].split_once("- ") {
                    lines[i] = format!("{dash}- {value}");
                }
            }
            Mutation::Truncate(i) => {
                let chars: Vec<char> = text.chars().collect();
                let i = pick(*i, chars.len() + 1);
                return chars[..i].iter().collect();
            }
            _ => {}
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

/// The example repository with `mutations` applied to the YAML file number `target`.
fn mutated_example(target: usize, mutations: &[Mutation]) -> (String, SourceTree) {
    let files = example_yaml_files();
    let target = files[target % files.len()].clone();
    let mut tree = SourceTree::new();
    for (path, bytes) in example_repo() {
        if *path == target {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for m in mutations {
                text = m.apply(&text);
            }
            tree.insert_file(path.clone(), text.into_bytes());
        } else {
            tree.insert_file(path.clone(), bytes.clone());
        }
    }
    (target, tree)
}

// ---- (d) located findings -------------------------------------------------------------------

/// Blocks of lines a service may hold, relative to the service's indentation (in units).
const SERVICE_BLOCKS: &[&[(usize, &str)]] = &[
    &[(0, "environment:"), (1, "A: \"1\""), (1, "B: two")],
    &[(0, "ports:"), (1, "- \"80\"")],
    &[(0, "deploy:"), (1, "replicas: 2"), (1, "placement:"), (2, "max_replicas_per_node: 1")],
    &[(0, "restart: always")],
    &[(0, "command: [\"sh\", \"-c\", \"sleep 1\"]")],
    &[(0, "labels:"), (1, "a: b")],
    &[(0, "<<: *common")],
];

const UNSUPPORTED: &[(&str, &str)] = &[
    ("build", "."),
    ("container_name", "x"),
    ("privileged", "true"),
    ("scale", "2"),
    ("profiles", "[debug]"),
    ("links", "[db]"),
    ("ulimits", "{nofile: 1024}"),
    ("dns", "[10.0.0.1]"),
    ("cap_add", "[NET_ADMIN]"),
];

#[derive(Debug, Clone)]
struct Located {
    unit: usize,
    /// Per service, the blocks it holds (indices into [`SERVICE_BLOCKS`]).
    services: Vec<Vec<usize>>,
    /// Service, position among its blocks, which unsupported key, quoted or not.
    at: (usize, usize, usize, bool),
}

fn located() -> impl Strategy<Value = Located> {
    (
        prop::sample::select(vec![2_usize, 3, 4]),
        prop::collection::vec(prop::collection::vec(0..SERVICE_BLOCKS.len(), 0..5), 1..4),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            0..UNSUPPORTED.len(),
            prop::bool::weighted(0.2),
        ),
    )
        .prop_map(|(unit, services, (s, p, k, quoted))| {
            let s = s.index(services.len());
            let p = p.index(services[s].len() + 1);
            Located { unit, services, at: (s, p, k, quoted) }
        })
}

impl Located {
    /// The compose file, and the line and column of the unsupported key.
    fn render(&self) -> (String, String, u32, u32) {
        let pad = |level: usize| " ".repeat(level * self.unit);
        let mut lines =
            vec!["x-common: &common".to_string(), format!("{}stop_grace_period: 5s", pad(1))];
        lines.push("services:".into());
        let (target, position, key, quoted) = self.at;
        let mut expected = (String::new(), 0, 0);
        for (i, blocks) in self.services.iter().enumerate() {
            lines.push(format!("{}svc{i}:", pad(1)));
            lines.push(format!("{}image: nginx:1.27", pad(2)));
            let mut seen = BTreeSet::new();
            let blocks: Vec<usize> = blocks.iter().copied().filter(|b| seen.insert(*b)).collect();
            for j in 0..=blocks.len() {
                if i == target && j == position.min(blocks.len()) {
                    let (name, value) = UNSUPPORTED[key];
                    let shown = if quoted { format!("\"{name}\"") } else { name.to_string() };
                    lines.push(format!("{}{shown}: {value}", pad(2)));
                    expected = (name.to_string(), lines.len() as u32, (2 * self.unit + 1) as u32);
                }
                if let Some(&b) = blocks.get(j) {
                    for (level, text) in SERVICE_BLOCKS[b] {
                        lines.push(format!("{}{text}", pad(2 + level)));
                    }
                }
            }
        }
        (lines.join("\n") + "\n", expected.0, expected.1, expected.2)
    }
}

// ---- properties ---------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    // No failure persistence: a failing case is printed, not written into the tree.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

#[test]
fn the_example_repository_loads() {
    let tree: SourceTree = example_repo().iter().cloned().collect();
    if let Err(diagnostics) = load(&tree) {
        let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        panic!("example-repo/ does not load (the mutations start from it):\n{}", text.join("\n"));
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        as_fleet in any::<bool>(),
    ) {
        check(&tree_with(&bytes, as_fleet))?;
    }

    #[test]
    fn random_text(text in "\\PC{0,200}", as_fleet in any::<bool>()) {
        check(&tree_with(text.as_bytes(), as_fleet))?;
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn yaml_lines(soup in line_soup(), as_fleet in any::<bool>()) {
        check(&tree_with(soup.render().as_bytes(), as_fleet))?;
    }

    #[test]
    fn yaml_trees((doc, unit, tab_at) in document(), as_fleet in any::<bool>()) {
        check(&tree_with(doc.to_document(unit, tab_at).as_bytes(), as_fleet))?;
    }

}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn example_repository_with_other_values(
        target in 0..8_usize,
        mutations in prop::collection::vec(value_mutation(), 1..4),
    ) {
        let (_, tree) = mutated_example(target, &mutations);
        check(&tree)?;
    }

    #[test]
    fn mutated_example_repository(
        target in 0..8_usize,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let (_, tree) = mutated_example(target, &mutations);
        check(&tree)?;
    }

}

proptest! {
    #![proptest_config(config(500))]

    /// An unsupported key is reported on its own line and column, wherever it sits among a
    /// service's other keys.
    #[test]
    fn unsupported_keys_are_located(case in located()) {
        let (text, key, line, column) = case.render();
        let tree = tree_with(text.as_bytes(), false);
        check(&tree)?;
        let diagnostics = load(&tree).err().unwrap_or_default();
        let found: Vec<&Diagnostic> =
            diagnostics.iter().filter(|d| d.code == "unsupported-key").collect();
        prop_assert_eq!(
            found.len(),
            1,
            "expected one unsupported-key diagnostic for `{}`:\n{}\n{:#?}",
            key,
            text,
            diagnostics
        );
        let d = found[0];
        prop_assert!(
            d.message.contains(&format!("`{key}`")),
            "message does not name `{}`: {}",
            key,
            d
        );
        prop_assert_eq!(
            (d.file.as_str(), d.line, d.column),
            ("apps/x/compose.yaml", line, column),
            "`{}` is reported at {}:{} instead of {}:{} in\n{}",
            key, d.line, d.column, line, column, text
        );
        prop_assert_eq!(diagnostics.len(), 1, "other diagnostics: {:#?}\n{}", diagnostics, text);
    }
}
