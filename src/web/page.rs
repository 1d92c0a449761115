//! The status page's HTML: the whole page, and each section on its own for live swapping.
//! Pure: a function of a [`Snapshot`] and the time.
//!
//! The templates (`templates/web/*.html.hbs`) are compiled into the binary and rendered by a
//! Handlebars registry of this module's own, with Handlebars' HTML escaping (`< > " & ' \` =`)
//! on every value; no template uses the unescaped `{{{ }}}` form (a unit test checks). The
//! pull-request renderer's registry, which turns escaping off for Markdown, is not shared.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use handlebars::Handlebars;
use serde::Serialize;

use super::view::{self, LocalEvent, Page};
use crate::controller::state::Snapshot;

/// The templates, by name: the page, then its sections (each one's outer element has the id
/// `s-<name>`), then small partials.
const TEMPLATES: [(&str, &str); 11] = [
    ("page", include_str!("../../templates/web/page.html.hbs")),
    ("header", include_str!("../../templates/web/header.html.hbs")),
    ("attention", include_str!("../../templates/web/attention.html.hbs")),
    ("syncs", include_str!("../../templates/web/syncs.html.hbs")),
    ("apps", include_str!("../../templates/web/apps.html.hbs")),
    ("hosts", include_str!("../../templates/web/hosts.html.hbs")),
    ("events", include_str!("../../templates/web/events.html.hbs")),
    ("routes", include_str!("../../templates/web/routes.html.hbs")),
    ("members", include_str!("../../templates/web/members.html.hbs")),
    ("revision", include_str!("../../templates/web/revision.html.hbs")),
    ("badge", include_str!("../../templates/web/badge.html.hbs")),
];

/// The sections swapped in place by the page's script.
pub const SECTIONS: [&str; 8] =
    ["header", "attention", "syncs", "apps", "hosts", "routes", "members", "events"];

/// What the templates see: the page and the version of gitfleet.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    page: &'a Page,
    version: &'static str,
}

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        // The default escape function is HTML escaping; set it anyway, so that no change of
        // default can turn it off.
        hb.register_escape_fn(handlebars::html_escape);
        for (name, text) in TEMPLATES {
            // The templates are part of the binary and tested: a syntax error is a bug.
            hb.register_template_string(name, text)
                .unwrap_or_else(|e| panic!("templates/web/{name}.html.hbs: {e}"));
        }
        hb
    })
}

fn render(name: &str, page: &Page) -> String {
    let context = Context { page, version: env!("CARGO_PKG_VERSION") };
    registry().render(name, &context).unwrap_or_else(|e| {
        // Rendering values that serialize cannot fail but for a template bug; say so on the
        // page rather than answering nothing.
        tracing::error!(template = name, error = %e, "cannot render the status page");
        format!(
            "<p>gitfleet could not render {name}: {}</p>",
            handlebars::html_escape(&e.to_string())
        )
    })
}

/// The whole page.
pub fn page(snapshot: &Snapshot, now: SystemTime) -> String {
    page_with(snapshot, &[], now)
}

/// The whole page, with the web side's own events (newest first).
pub fn page_with(snapshot: &Snapshot, local: &[LocalEvent], now: SystemTime) -> String {
    render("page", &view::page_with(snapshot, local, now))
}

/// Every section, by its element id (`s-header`, ...): what the live updates swap in.
pub fn sections(snapshot: &Snapshot, now: SystemTime) -> BTreeMap<String, String> {
    sections_with(snapshot, &[], now)
}

/// [`sections`] with the web side's own events (newest first).
pub fn sections_with(
    snapshot: &Snapshot,
    local: &[LocalEvent],
    now: SystemTime,
) -> BTreeMap<String, String> {
    let page = view::page_with(snapshot, local, now);
    SECTIONS.iter().map(|name| (format!("s-{name}"), render(name, &page))).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::controller::state::{
        HostState, HostStatus, Problem, ProblemKind, ServiceStatus, Subject, SyncOutcome,
        SyncRecord,
    };

    #[test]
    fn no_template_turns_escaping_off() {
        for (name, text) in TEMPLATES {
            assert!(!text.contains("{{{"), "templates/web/{name}.html.hbs uses {{{{{{ }}}}}}");
            assert!(!text.contains("{{&"), "templates/web/{name}.html.hbs uses {{{{& }}}}");
        }
    }

    #[test]
    fn repository_values_are_escaped() {
        let mut s = Snapshot::new("/srv/<b>fleet", "main");
        let evil = "<script>alert(1)</script>";
        let now = SystemTime::now();
        let down = HostStatus { state: HostState::Down, since: now, reason: Some(evil.into()) };
        s.hosts.insert(evil.into(), down);
        let services = [(evil.to_string(), ServiceStatus::default())].into();
        s.services = Arc::new([(evil.to_string(), services)].into());
        s.problems.push(Problem {
            kind: ProblemKind::InvalidRevision,
            subject: Subject::Repository,
            message: format!("apps/x/compose.yaml:1:1: {evil}"),
            since: now,
        });
        s.syncs.push(SyncRecord {
            number: 0,
            started_at: now,
            at: now,
            reasons: evil.into(),
            commit: None,
            outcome: SyncOutcome::InSync,
            detail: "\" onmouseover=\"x".into(),
            millis: 1,
            plan: Default::default(),
            full_plan: None,
        });
        let html = page(&s, SystemTime::now());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>fleet"));
        assert!(!html.contains("\" onmouseover"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        for section in sections(&s, SystemTime::now()).values() {
            assert!(!section.contains("<script>alert"), "{section}");
        }
    }

    #[test]
    fn routes_and_members_render_only_when_configured() {
        use crate::router::endpoint::{DockerHealth, EndpointKey};
        use crate::router::{Backend, RouteSpec};
        let plain = page(&Snapshot::default(), SystemTime::now());
        assert!(plain.contains("id=\"s-routes\" aria-labelledby=\"h-routes\" hidden"));
        assert!(plain.contains("id=\"s-members\" aria-labelledby=\"h-members\" hidden"));
        let mut s = Snapshot::default();
        let backend = |health| Backend {
            key: EndpointKey { host: "a".into(), container: "c1".into() },
            address: "10.250.153.2:32768".into(),
            replica: None,
            health,
        };
        s.routes = Arc::new(vec![RouteSpec {
            host: "shop.test".into(),
            path_prefix: "/api".into(),
            service: "shop/web".into(),
            port: 8080,
            backends: vec![backend(DockerHealth::Healthy), backend(DockerHealth::Unhealthy)],
            sticky: false,
        }]);
        s.leadership = crate::leader::View {
            role: crate::leader::Role::Leader,
            member: Some("m1".into()),
            leader: Some("m1".into()),
            epoch: Some(7),
            since: Some("2026-01-01T00:00:00Z".into()),
            members: vec!["m1".into(), "m2".into()],
            error: None,
        };
        let html = page(&s, SystemTime::now());
        assert!(!html.contains("could not render"), "{html}");
        assert!(html.contains("data-route=\"shop.test/api\" data-state=\"warn\""), "{html}");
        assert!(html.contains("1 of 2 healthy"));
        assert!(html.contains("10.250.153.2:32768 (unhealthy)"));
        assert!(html.contains("data-member=\"m2\""));
        assert!(html.contains("epoch 7"));
    }

    #[test]
    fn every_section_has_its_id() {
        let sections = sections(&Snapshot::default(), SystemTime::now());
        assert_eq!(sections.len(), SECTIONS.len());
        for (id, html) in &sections {
            assert!(html.trim_start().contains(&format!("id=\"{id}\"")), "{id}: {html}");
        }
        let html = page(&Snapshot::default(), SystemTime::now());
        for id in sections.keys() {
            assert_eq!(html.matches(&format!("id=\"{id}\"")).count(), 1, "{id}");
        }
    }
}
