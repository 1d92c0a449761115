//! Every Compose file of the shared corpus (`../shared/corpus`: awesome-compose,
//! compose-go's loader fixtures, the Compose conformance tests; see its `SOURCES.md`) through
//! `model::load`, one app at a time beside a fixed two-host fleet.
//!
//! A file is either accepted or rejected with diagnostics that say what and where: a code, a
//! message that names the key, value or file at fault, a position from 1:1 in the app's file.
//! The test prints a table (`cargo test --test pure corpus -- --nocapture`): accepted and rejected
//! counts, per source, and the rejections grouped by diagnostic code and by the key or value
//! each message names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gitfleet::model::{Diagnostic, SourceTree, load};

const FLEET: &str = "\
hosts:
  a:
    endpoint: tcp://10.0.0.1:2375
    labels: { zone: a }
  b:
    endpoint: tcp://10.0.0.2:2375
    labels: { zone: b }
";

/// The Compose files of the corpus, by path relative to the corpus root, sorted.
fn compose_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for source in ["awesome-compose", "compose-go", "conformance-tests"] {
        let dir = root.join(source);
        assert!(dir.is_dir(), "corpus source {} is missing", dir.display());
        let mut all = Vec::new();
        walk(&dir, &mut all);
        for path in all {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let is_compose = match source {
                // The samples' own compose files.
                "awesome-compose" | "conformance-tests" => {
                    matches!(
                        name.as_str(),
                        "compose.yaml"
                            | "compose.yml"
                            | "docker-compose.yml"
                            | "docker-compose.yaml"
                    )
                }
                // Every fixture of compose-go's loader is a Compose document (some are only
                // meant to be extended or included).
                _ => name.ends_with(".yaml") || name.ends_with(".yml"),
            };
            if is_compose {
                files.push(path.strip_prefix(root).expect("under the root").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// An app name (a valid Docker name part) from a corpus path, unique among `taken`.
fn app_name(relative: &Path, taken: &mut BTreeSet<String>) -> String {
    let text = relative.with_extension("").to_string_lossy().to_lowercase();
    let text = text
        .replace("awesome-compose/", "ac/")
        .replace("compose-go/loader/testdata/", "cg/")
        .replace("compose-go/loader/", "cg/")
        .replace("conformance-tests/tests/", "ct/");
    let mut name = String::new();
    for c in text.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let base = name.trim_matches('-').to_string();
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The source tree for one corpus file: the fleet, the file as `apps/<app>/compose.yaml`, and
/// the other files of its folder beside it (not sub-folders; not other compose files of the
/// same names, which would make the app ambiguous).
fn tree_for(root: &Path, relative: &Path, app: &str) -> SourceTree {
    let path = root.join(relative);
    let mut tree = SourceTree::new();
    tree.insert_file("fleet.yaml", FLEET.as_bytes().to_vec());
    tree.insert_file(
        format!("apps/{app}/compose.yaml"),
        std::fs::read(&path).expect("readable corpus file"),
    );
    let folder = path.parent().expect("a folder");
    for entry in std::fs::read_dir(folder).expect("readable folder") {
        let sibling = entry.expect("directory entry").path();
        let name =
            sibling.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if sibling == path || !sibling.is_file() || name == "compose.yaml" || name == "compose.yml"
        {
            continue;
        }
        tree.insert_file(
            format!("apps/{app}/{name}"),
            std::fs::read(&sibling).expect("readable sibling"),
        );
    }
    tree
}

/// What a message is about, for grouping: the first `backticked` or "quoted" part (the last
/// one for `missing-key`, whose message names the mapping first and the missing key last;
/// nothing for `interpolation`, whose messages name the variable).
fn subject(d: &Diagnostic) -> String {
    if d.code == "interpolation" {
        // One line per variable would drown the table.
        return String::new();
    }
    let ticks: Vec<&str> = d.message.split('`').skip(1).step_by(2).collect();
    let tick = if d.code == "missing-key" { ticks.last() } else { ticks.first() };
    if let Some(inner) = tick {
        return format!("`{}`", inner.chars().take(40).collect::<String>());
    }
    if let Some(inner) = d.message.split('"').nth(1) {
        return format!("\"{}\"", inner.chars().take(40).collect::<String>());
    }
    String::new()
}

/// Whether a message names what it is about: a key or value in backticks or quotes, a path,
/// a Compose key (`depends_on`), a dotted path (`services.web`), a YAML tag (`!reset`) or a
/// variable (`${X}`). Plain prose alone does not count.
fn names_something(message: &str) -> bool {
    message.contains(['`', '"', '\'', '/', '!', '$'])
        || message.split_whitespace().any(|word| {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            word.contains('_') || (word.contains('.') && word.len() > 2)
        })
}

struct Outcome {
    relative: PathBuf,
    app: String,
    result: Result<(), Vec<Diagnostic>>,
}

#[test]
fn the_compose_corpus_is_accepted_or_rejected_with_reasons() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        root.is_dir(),
        "the Compose corpus is missing: expected it at {} (the repository's sibling \
         `shared/corpus`, described by its SOURCES.md)",
        root.display()
    );
    let files = compose_files(&root);
    assert!(files.len() >= 60, "only {} Compose files found under {}", files.len(), root.display());

    let started = std::time::Instant::now();
    let mut taken = BTreeSet::new();
    let mut outcomes = Vec::new();
    let mut problems = Vec::new();
    for relative in &files {
        let app = app_name(relative, &mut taken);
        let tree = tree_for(&root, relative, &app);
        let inputs: BTreeSet<String> =
            tree.paths().map(str::to_string).chain([format!("apps/{app}")]).collect();
        let result = match load(&tree) {
            Ok(_) => Ok(()),
            Err(diagnostics) => {
                if diagnostics.is_empty() {
                    problems.push(format!("{}: rejected without a diagnostic", relative.display()));
                }
                for d in &diagnostics {
                    let mut wrong = Vec::new();
                    if d.code.is_empty() {
                        wrong.push("no code");
                    }
                    if d.message.trim().is_empty() {
                        wrong.push("no message");
                    } else if !names_something(&d.message) {
                        wrong.push("a message that names no key, value or path");
                    }
                    if d.line < 1 || d.column < 1 {
                        wrong.push("a position before 1:1");
                    }
                    if !inputs.contains(&d.file) {
                        wrong.push("a file that is not an input");
                    }
                    if d.file == "fleet.yaml" {
                        wrong.push("a complaint about the fixed, valid fleet.yaml");
                    }
                    if !wrong.is_empty() {
                        problems.push(format!("{}: {}: {d}", relative.display(), wrong.join(", ")));
                    }
                }
                Err(diagnostics)
            }
        };
        outcomes.push(Outcome { relative: relative.clone(), app, result });
    }
    let elapsed = started.elapsed();

    println!("{}", report(&outcomes, elapsed));

    // compose-go's own tests expect these to fail (SOURCES.md): gitfleet must not accept them.
    for invalid in [
        "compose-go/loader/testdata/compose-depends-on-cycle.yaml",
        "compose-go/loader/testdata/compose-depends-on-self.yaml",
        "compose-go/loader/testdata/compose-depends-on-profile-no-cycle.yaml",
        "compose-go/loader/testdata/compose-include-cycle.yaml",
    ] {
        let outcome = outcomes.iter().find(|o| o.relative == Path::new(invalid));
        match outcome {
            Some(o) if o.result.is_ok() => {
                problems.push(format!("{invalid}: accepted, but it is invalid Compose"))
            }
            Some(_) => {}
            None => problems.push(format!("{invalid}: not in the corpus")),
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

fn report(outcomes: &[Outcome], elapsed: std::time::Duration) -> String {
    let mut out = String::new();
    let accepted = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let rejected = outcomes.len() - accepted;
    let _ = writeln!(
        out,
        "\n== Compose corpus through model::load ({} files, {elapsed:.2?}) ==",
        outcomes.len()
    );
    let _ = writeln!(out, "accepted: {accepted}");
    let _ = writeln!(out, "rejected: {rejected}");

    let _ = writeln!(out, "\n-- by source --");
    let _ = writeln!(out, "{:<20} {:>6} {:>9} {:>9}", "source", "files", "accepted", "rejected");
    let mut sources: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        let source = o
            .relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let entry = sources.entry(source).or_default();
        if o.result.is_ok() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for (source, (a, r)) in &sources {
        let _ = writeln!(out, "{source:<20} {:>6} {a:>9} {r:>9}", a + r);
    }

    // code → (files, diagnostics); (code, subject) → (files, diagnostics)
    let mut by_code: BTreeMap<&str, (BTreeSet<&Path>, usize)> = BTreeMap::new();
    let mut by_subject: BTreeMap<(&str, String), (BTreeSet<&Path>, usize)> = BTreeMap::new();
    for o in outcomes {
        let Err(diagnostics) = &o.result else { continue };
        for d in diagnostics {
            let entry = by_code.entry(d.code).or_default();
            entry.0.insert(&o.relative);
            entry.1 += 1;
            let entry = by_subject.entry((d.code, subject(d))).or_default();
            entry.0.insert(&o.relative);
            entry.1 += 1;
        }
    }
    let _ = writeln!(out, "\n-- rejections by diagnostic code (files with it, diagnostics) --");
    let mut codes: Vec<_> = by_code.iter().collect();
    codes.sort_by(|a, b| b.1.0.len().cmp(&a.1.0.len()).then(a.0.cmp(b.0)));
    for (code, (files, count)) in codes {
        let _ = writeln!(out, "{code:<28} files {:>3}  diagnostics {count:>4}", files.len());
    }
    let _ =
        writeln!(out, "\n-- rejections by code and what the message names (files, diagnostics) --");
    let mut subjects: Vec<_> = by_subject.iter().collect();
    subjects.sort_by(|a, b| b.1.0.len().cmp(&a.1.0.len()).then(a.0.cmp(b.0)));
    for ((code, subject), (files, count)) in subjects {
        let label = format!("{code} {subject}");
        let _ = writeln!(out, "{label:<60} files {:>3}  diagnostics {count:>4}", files.len());
    }

    let _ = writeln!(out, "\n-- rejected files by the set of codes they got --");
    let mut sets: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    for o in outcomes {
        if let Err(diagnostics) = &o.result {
            let codes: BTreeSet<&str> = diagnostics.iter().map(|d| d.code).collect();
            *sets.entry(codes.into_iter().collect()).or_default() += 1;
        }
    }
    let mut sets: Vec<_> = sets.into_iter().collect();
    sets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (codes, files) in sets {
        let _ = writeln!(out, "{:<60} files {files:>3}", codes.join(" + "));
    }

    let _ = writeln!(out, "\n-- every file --");
    for o in outcomes {
        match &o.result {
            Ok(()) => {
                let _ = writeln!(out, "ok       {}", o.relative.display());
            }
            Err(diagnostics) => {
                let codes: BTreeSet<&str> = diagnostics.iter().map(|d| d.code).collect();
                let first = diagnostics
                    .first()
                    .map(|d| d.to_string().lines().next().unwrap_or("").to_string());
                let _ = writeln!(
                    out,
                    "rejected {} (apps/{}): {} diagnostic(s) [{}]; first: {}",
                    o.relative.display(),
                    o.app,
                    diagnostics.len(),
                    codes.into_iter().collect::<Vec<_>>().join(", "),
                    first.unwrap_or_default()
                );
            }
        }
    }
    out
}
