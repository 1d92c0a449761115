//! The text of the plan-preview comment: what merging a pull request would do, rendered as
//! markdown from `templates/pr-comment.md.hbs`. Pure: values in, a string out.
//!
//! The template is rendered with escaping turned off; every value is made safe for the
//! markdown context it lands in here, before it reaches the template:
//!
//! * diagnostic messages and hints keep their `backticked` names as code spans; the rest is
//!   text in which markdown punctuation is backslash-escaped, `<`, `>` and `&` become entities
//!   and `@` cannot mention anyone;
//! * locations are code spans whose fence is longer than any backtick run inside;
//! * a failure is one of a few fixed sentences ([`PreviewFailure`]): no text from Git, a
//!   host or a forge ever reaches a comment (the controller logs the details);
//! * the commit in the hidden marker keeps only ASCII letters and digits.

use std::sync::OnceLock;

use handlebars::Handlebars;
use serde::Serialize;

use crate::diff::Plan;
use crate::diff::render;
use crate::model::Diagnostic;

/// The first line of every plan-preview comment; how the comment is found again.
pub const MARKER: &str = "<!-- gitfleet:plan-preview -->";

/// Forges cap a comment's size (GitHub at 65,536 characters); a comment that would be longer
/// shows fewer diagnostics, or the plan's summary only.
pub const MAX_COMMENT_CHARS: usize = 60_000;

const TEMPLATE_NAME: &str = "pr-comment";
const TEMPLATE: &str = include_str!("../../templates/pr-comment.md.hbs");

/// What the comment is about: one commit of a pull request and what came of it.
#[derive(Debug, Clone, Copy)]
pub struct Preview<'a> {
    /// The full commit id; the comment shows its first 12 characters.
    pub commit: &'a str,
    pub outcome: PreviewOutcome<'a>,
    /// The pull request changes `fleet.yaml`, which a preview never uses (it plans with the
    /// base branch's): the comment says so.
    pub fleet_ignored: bool,
}

impl<'a> Preview<'a> {
    /// A preview of `commit` whose `fleet.yaml` is the base branch's.
    pub fn new(commit: &'a str, outcome: PreviewOutcome<'a>) -> Self {
        Preview { commit, outcome, fleet_ignored: false }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum PreviewOutcome<'a> {
    /// The commit does not validate: every problem, each with its `file:line:col`.
    Invalid(&'a [Diagnostic]),
    /// The commit validates; this is what merging it would do.
    Planned(&'a Plan),
    /// No plan could be computed; the kind only, never an error's text.
    Failed(PreviewFailure),
}

/// Why a preview has no plan. Each kind is one fixed sentence in the comment; what exactly
/// went wrong (Git's, a host's or the forge's words) is only in the controller's log, since a
/// comment is public and its pull request's author may be anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFailure {
    /// The pull request's head could not be fetched.
    Fetch,
    /// The head fetched is not the commit the hook named (a newer push is on its way).
    HeadMoved,
    /// The watched branch has not been fetched yet: there is no base `fleet.yaml` to plan with.
    NoBase,
    /// The commits could not be read from the repository.
    Unreadable,
    /// The head's `apps/` holds more than a preview reads.
    TooLarge,
    /// Fetching the head took more bytes than a preview downloads.
    FetchTooLarge,
    /// The preview did not finish within its deadline.
    TimedOut,
}

impl PreviewFailure {
    /// The sentence the comment shows.
    pub fn message(self) -> &'static str {
        match self {
            PreviewFailure::Fetch => {
                "The pull request's head could not be fetched. The controller's log says why."
            }
            PreviewFailure::HeadMoved => {
                "The pull request's head moved since this event; the next push updates this comment."
            }
            PreviewFailure::NoBase => {
                "The base branch has not been read yet, so there is no fleet.yaml to plan with; the next push updates this comment."
            }
            PreviewFailure::Unreadable => {
                "The commit could not be read from the repository. The controller's log says why."
            }
            PreviewFailure::TooLarge => {
                "The pull request's apps/ folder holds more files or bytes than a preview reads."
            }
            PreviewFailure::FetchTooLarge => {
                "The pull request's head is larger to download than a preview fetches, so nothing of it was read. The controller's log says how large."
            }
            PreviewFailure::TimedOut => {
                "The preview did not finish in time. The controller's log says where it stopped."
            }
        }
    }
}

#[derive(Serialize)]
struct View {
    marker: &'static str,
    commit: String,
    commit_short: String,
    invalid: Option<InvalidView>,
    planned: Option<PlannedView>,
    failed: Option<String>,
    fleet_ignored: bool,
}

#[derive(Serialize)]
struct InvalidView {
    summary: String,
    items: Vec<DiagnosticView>,
    omitted: usize,
}

#[derive(Serialize)]
struct DiagnosticView {
    location: String,
    code: String,
    message: String,
    hint: Option<String>,
}

#[derive(Serialize)]
struct PlannedView {
    markdown: String,
    truncated: bool,
}

/// The whole comment body, starting with [`MARKER`] on its own line. Deterministic: the same
/// preview always gives the same text, so an unchanged comment is not edited again.
pub fn render_comment(preview: &Preview) -> String {
    let mut view = View {
        marker: MARKER,
        commit: preview.commit.chars().filter(char::is_ascii_alphanumeric).collect(),
        commit_short: code_span(&preview.commit.chars().take(12).collect::<String>()),
        invalid: None,
        planned: None,
        failed: None,
        fleet_ignored: preview.fleet_ignored,
    };
    match preview.outcome {
        PreviewOutcome::Invalid(diagnostics) => {
            let items: Vec<DiagnosticView> = diagnostics.iter().map(diagnostic_view).collect();
            let summary = match diagnostics.len() {
                1 => "1 error".to_string(),
                n => format!("{n} errors"),
            };
            view.invalid = Some(InvalidView { summary, items, omitted: 0 });
        }
        PreviewOutcome::Planned(plan) => {
            view.planned = Some(PlannedView {
                markdown: render::markdown(plan).trim_end().to_string(),
                truncated: false,
            })
        }
        PreviewOutcome::Failed(failure) => view.failed = Some(escape_text(failure.message())),
    }
    let mut body = render_view(&view);
    // Shrink what varies until the comment fits; each round removes content, or gives up.
    while body.chars().count() > MAX_COMMENT_CHARS {
        let length = body.chars().count();
        if let Some(invalid) = view.invalid.as_mut().filter(|i| !i.items.is_empty()) {
            let shown = invalid.items.len();
            let keep = (shown * MAX_COMMENT_CHARS / length).min(shown - 1);
            invalid.omitted += shown - keep;
            invalid.items.truncate(keep);
        } else if let (Some(planned), PreviewOutcome::Planned(plan)) =
            (view.planned.as_mut().filter(|p| !p.truncated), preview.outcome)
        {
            planned.markdown = format!("**{}**", render::summary_line(&plan.summary));
            planned.truncated = true;
        } else {
            break;
        }
        body = render_view(&view);
    }
    body
}

fn templates() -> Result<&'static Handlebars<'static>, &'static str> {
    static TEMPLATES: OnceLock<Result<Handlebars<'static>, String>> = OnceLock::new();
    let built = TEMPLATES.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_template_string(TEMPLATE_NAME, TEMPLATE).map_err(|e| e.to_string())?;
        Ok(hb)
    });
    built.as_ref().map_err(String::as_str)
}

fn render_view(view: &View) -> String {
    let rendered = templates()
        .map_err(str::to_string)
        .and_then(|hb| hb.render(TEMPLATE_NAME, view).map_err(|e| e.to_string()));
    match rendered {
        Ok(body) => body,
        // A template bug must not lose the comment: say so, in a comment that is still found.
        Err(error) => format!(
            "{MARKER}\ngitfleet could not render its plan preview for {}:\n\n{}",
            view.commit_short,
            fenced(&error)
        ),
    }
}

fn diagnostic_view(d: &Diagnostic) -> DiagnosticView {
    DiagnosticView {
        location: code_span(&format!("{}:{}:{}", d.file, d.line, d.column)),
        code: escape_text(d.code),
        message: inline_markdown(&d.message),
        hint: d.hint.as_deref().map(inline_markdown),
    }
}

/// A message as inline markdown: its `backticked` parts as code spans, the rest as escaped
/// text. With an odd number of backticks, nothing is taken for code.
fn inline_markdown(message: &str) -> String {
    let parts: Vec<&str> = message.split('`').collect();
    if parts.len() % 2 == 0 {
        return escape_text(message);
    }
    let mut out = String::with_capacity(message.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(&escape_text(part));
        } else if part.trim().is_empty() {
            out.push_str(&escape_text(&format!("`{part}`")));
        } else {
            out.push_str(&code_span(part));
        }
    }
    out
}

/// Text that markdown shows as it is, on one line.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // An empty HTML comment between `@` and a name keeps the forge from mentioning.
            '@' => out.push_str("@<!-- -->"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '|' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// `text` as a code span on one line, whatever backticks it holds.
fn code_span(text: &str) -> String {
    let text: String =
        text.chars().map(|c| if matches!(c, '\r' | '\n' | '\t') { ' ' } else { c }).collect();
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    // A span that starts or ends with a backtick (or a space) needs a space inside the fence,
    // which markdown strips again.
    let pad = if text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']) { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `text` as a fenced code block that nothing inside can close.
fn fenced(text: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
    format!("{fence}text\n{}\n{fence}", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{Desired, HostObservation, HostState, Observed, plan};
    use crate::model::position::Position;
    use crate::model::{SourceTree, load};

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n  b:\n    endpoint: unix:///var/run/docker.sock\nsettings:\n  name: preview\n";
    const SHOP: &str = "services:\n  web:\n    image: nginx:1.27\n    deploy:\n      replicas: 2\n  worker:\n    image: busybox:1.36\n";
    const NOTES: &str = "services:\n  db:\n    image: postgres:16\n";

    fn real_plan() -> Plan {
        let mut tree = SourceTree::new();
        tree.insert_file("fleet.yaml", FLEET.as_bytes().to_vec());
        tree.insert_file("apps/shop/compose.yaml", SHOP.as_bytes().to_vec());
        tree.insert_file("apps/notes/compose.yaml", NOTES.as_bytes().to_vec());
        let model = load(&tree).expect("the test repository validates");
        // Both hosts seen, with nothing of this fleet on them yet.
        let mut observed = Observed::default();
        for host in ["a", "b"] {
            observed
                .hosts
                .insert(host.to_string(), HostObservation::Reachable(HostState::default()));
        }
        let desired = Desired::new(&model, &observed, Some(COMMIT.to_string()));
        plan(&desired, &observed)
    }

    fn real_diagnostics() -> Vec<Diagnostic> {
        let mut tree = SourceTree::new();
        tree.insert_file("fleet.yaml", FLEET.as_bytes().to_vec());
        let broken =
            "services:\n  web:\n    image: nginx\n    networks: [front]\n    depends_on: [db]\n";
        tree.insert_file("apps/shop/compose.yaml", broken.as_bytes().to_vec());
        load(&tree).expect_err("the test repository does not validate")
    }

    #[test]
    fn starts_with_the_marker_and_names_the_commit() {
        let plan = real_plan();
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Planned(&plan)));
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some(MARKER));
        assert_eq!(lines.next(), Some(format!("<!-- gitfleet:commit {COMMIT} -->").as_str()));
        assert_eq!(lines.next(), Some("### gitfleet plan preview for `0123456789ab`"));
    }

    #[test]
    fn a_plan_is_shown_per_app_in_collapsible_sections() {
        let plan = real_plan();
        assert!(plan.summary.create > 0, "{plan:?}");
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Planned(&plan)));
        assert!(body.contains("Merging this pull request would cause this plan:\n\n"));
        assert!(body.contains(render::markdown(&plan).trim_end()), "{body}");
        assert!(body.contains("<details><summary><b>notes</b>"));
        assert!(body.contains("<details><summary><b>shop</b>"));
        assert!(body.contains(&render::summary_line(&plan.summary)));
        assert!(!body.contains("Validation errors"));
        assert!(!body.contains("too long"));
    }

    #[test]
    fn the_same_preview_renders_the_same_text() {
        let plan = real_plan();
        let preview = Preview::new(COMMIT, PreviewOutcome::Planned(&plan));
        assert_eq!(render_comment(&preview), render_comment(&preview));
    }

    #[test]
    fn validation_errors_are_listed_with_their_locations() {
        let diagnostics = real_diagnostics();
        assert!(diagnostics.len() >= 2, "{diagnostics:?}");
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Invalid(&diagnostics)));
        assert!(body.starts_with(&format!("{MARKER}\n")));
        assert!(body.contains(&format!("does not validate ({} errors)", diagnostics.len())));
        for d in &diagnostics {
            let location = format!("- `{}:{}:{}` **", d.file, d.line, d.column);
            assert!(body.contains(&location), "{location} in {body}");
            assert!(body.contains(&format!("**{}**", escape_text(d.code))), "{body}");
        }
        let with_hint = diagnostics.iter().filter(|d| d.hint.is_some()).count();
        assert_eq!(body.matches("\n  - hint: ").count(), with_hint, "{body}");
        assert!(!body.contains("Merging this pull request would cause"));
    }

    #[test]
    fn a_message_cannot_break_the_markdown() {
        let nasty = Diagnostic::new(
            "apps/x`y/compose.yaml",
            Position { line: 3, column: 9 },
            "schema",
            "service `web` has </details> <script>alert(1)</script> and a stray ` and *stars* @admin",
        )
        .with_hint("write `a<b`\nand [link](http://x)");
        let paired = Diagnostic::new(
            "apps/shop/compose.yaml",
            Position { line: 1, column: 1 },
            "unknown-network",
            "service `web` uses network `front<1>`, which is not declared",
        );
        let diagnostics = [nasty, paired];
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Invalid(&diagnostics)));
        // Odd backticks: the whole message is escaped text.
        assert!(body.contains(
            "- ``apps/x`y/compose.yaml:3:9`` **schema**: service \\`web\\` has &lt;/details&gt; \
             &lt;script&gt;alert(1)&lt;/script&gt; and a stray \\` and \\*stars\\* @<!-- -->admin\n"
        ), "{body}");
        // Paired backticks stay code; the text between them is escaped, the code is not.
        assert!(body.contains("  - hint: write `a<b` and \\[link\\](http://x)\n"), "{body}");
        assert!(
            body.contains(
                "- `apps/shop/compose.yaml:1:1` **unknown-network**: service `web` uses network \
             `front<1>`, which is not declared\n"
            ),
            "{body}"
        );
        // The only raw HTML is the template's own.
        assert_eq!(body.matches("</details>").count(), 1, "{body}");
        assert!(!body.contains("<script>"));
    }

    #[test]
    fn a_failure_is_a_fixed_sentence() {
        for failure in [
            PreviewFailure::Fetch,
            PreviewFailure::HeadMoved,
            PreviewFailure::NoBase,
            PreviewFailure::Unreadable,
            PreviewFailure::TooLarge,
            PreviewFailure::FetchTooLarge,
            PreviewFailure::TimedOut,
        ] {
            let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Failed(failure)));
            assert!(body.contains("**No plan could be computed for this commit.**"));
            assert!(body.contains(&escape_text(failure.message())), "{body}");
            assert!(body.chars().count() < 1000, "{body}");
        }
    }

    #[test]
    fn a_changed_fleet_file_is_mentioned() {
        let plan = real_plan();
        let mut preview = Preview::new(COMMIT, PreviewOutcome::Planned(&plan));
        assert!(!render_comment(&preview).contains("changes `fleet.yaml`"));
        preview.fleet_ignored = true;
        let body = render_comment(&preview);
        assert!(body.contains("This pull request changes `fleet.yaml`."), "{body}");
    }

    #[test]
    fn a_commit_cannot_break_the_hidden_marker() {
        let body = render_comment(&Preview::new(
            "abc--> <b>",
            PreviewOutcome::Failed(PreviewFailure::Fetch),
        ));
        assert!(body.contains("<!-- gitfleet:commit abcb -->\n"), "{body}");
        assert!(body.contains("### gitfleet plan preview for `abc--> <b>`\n"), "{body}");
    }

    #[test]
    fn too_many_diagnostics_are_cut_to_fit_a_comment() {
        let many: Vec<Diagnostic> = (1..=5000)
            .map(|i| {
                Diagnostic::new(
                    "apps/big/compose.yaml",
                    Position { line: i, column: 1 },
                    "schema",
                    format!("value number {i} is not allowed here, as the schema explains"),
                )
            })
            .collect();
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Invalid(&many)));
        assert!(body.chars().count() <= MAX_COMMENT_CHARS, "{}", body.len());
        assert!(body.contains("(5000 errors)"));
        let shown = body.matches("\n- `apps/big/compose.yaml:").count();
        assert!(shown > 100, "{shown}");
        assert!(
            body.contains(&format!("- … and {} more: run `gitfleet validate`", 5000 - shown)),
            "{body}"
        );
        // The first ones are the ones kept.
        assert!(body.contains("`apps/big/compose.yaml:1:1`"));
    }

    #[test]
    fn a_plan_too_long_for_a_comment_shows_its_summary() {
        let mut plan = real_plan();
        let hosts = plan.hosts.clone();
        for i in 0..2000 {
            plan.hosts.extend(hosts.iter().cloned().map(|mut h| {
                h.host = format!("{}-{i}", h.host);
                h
            }));
        }
        assert!(render::markdown(&plan).len() > MAX_COMMENT_CHARS);
        let body = render_comment(&Preview::new(COMMIT, PreviewOutcome::Planned(&plan)));
        assert!(body.chars().count() <= MAX_COMMENT_CHARS);
        assert!(body.contains(&format!("**{}**", render::summary_line(&plan.summary))));
        assert!(body.contains("run `gitfleet plan` on this commit"));
        assert!(!body.contains("<details>"));
    }

    #[test]
    fn escaping_helpers() {
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_span("a\nb"), "`a b`");
        assert_eq!(inline_markdown("a `` b"), "a \\`\\` b");
        assert_eq!(escape_text("snake_case #1 a|b"), "snake\\_case \\#1 a\\|b");
        assert_eq!(fenced("x"), "```text\nx\n```");
    }
}
