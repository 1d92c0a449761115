//! A [`Plan`] for people (`text`, Terraform-style), for pull-request comments (`markdown`,
//! one collapsible section per app) and for machines (`json`, the stable shape of `Plan`).
//! Each shows every host's platform (OS, architecture, what its engine reports).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::plan::{HostPlan, HostStatus, Plan, Step, Summary};
use crate::model::PullPolicy;

/// `Plan: 3 to create, 1 to replace, 2 to remove, 14 unchanged.`
pub fn summary_line(summary: &Summary) -> String {
    format!(
        "Plan: {} to create, {} to replace, {} to remove, {} unchanged.",
        summary.create, summary.replace, summary.remove, summary.unchanged
    )
}

fn symbol(step: &Step) -> char {
    match step {
        Step::CreateNetwork { .. } | Step::CreateVolume { .. } | Step::CreateContainer { .. } => {
            '+'
        }
        Step::ReplaceContainer { .. } => '~',
        Step::RemoveContainer { .. } | Step::RemoveNetwork { .. } => '-',
        Step::PullImage { .. } => '>',
    }
}

fn step_line(step: &Step) -> String {
    let (kind, name) = step.target();
    let reason = match step {
        Step::PullImage { policy, reason, .. } => {
            let when = match policy {
                PullPolicy::Always => "pull",
                _ => "pull if missing",
            };
            format!("{when}; {reason}")
        }
        _ => step.reason().to_string(),
    };
    format!("{} {kind:<9} {name:<28} {reason}", symbol(step))
}

fn unreachable_line(host: &str, reason: &str, replicas: usize) -> String {
    format!("host {host} is unreachable ({reason}); its {replicas} replica(s) are not planned")
}

/// Why a host is not planned although it answered: its platform contradicts its declaration.
fn mismatch(host: &HostPlan) -> Option<&str> {
    host.platform.as_ref()?.mismatch.as_deref()
}

/// ` (windows/x86_64, Windows Server 2022 ..., build 20348, process isolation)`, or nothing
/// when the plan does not say.
fn platform_suffix(host: &HostPlan) -> String {
    host.platform.as_ref().map(|p| format!(" ({})", p.describe())).unwrap_or_default()
}

fn trailer(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for host in &plan.hosts {
        if let Some(why) = mismatch(host) {
            lines.push(format!("host {} is not planned: {why}", host.host));
            continue;
        }
        match &host.status {
            HostStatus::Unreachable { reason, replicas } => {
                lines.push(unreachable_line(&host.host, reason, *replicas))
            }
            HostStatus::Refused { reason } => lines.push(format!("host {}: {reason}", host.host)),
            HostStatus::Reachable => {}
        }
    }
    for unplaced in &plan.unplaced {
        lines.push(format!("cannot place {}: {}", unplaced.replica, unplaced.reason));
    }
    lines
}

/// The plan as a terminal shows it.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let revision = plan.revision.as_deref().map(short_commit).unwrap_or("(working tree)");
    let _ = writeln!(out, "gitfleet plan for fleet {:?} at {revision}\n", plan.fleet);
    if let Some(refused) = &plan.refused {
        let _ = writeln!(out, "REFUSED: {refused}");
        return out;
    }
    for host in &plan.hosts {
        let platform = platform_suffix(host);
        match &host.status {
            HostStatus::Unreachable { .. } if mismatch(host).is_some() => {
                let why = mismatch(host).unwrap_or_default();
                let _ = writeln!(out, "host {}: NOT PLANNED: {why}", host.host);
            }
            HostStatus::Unreachable { reason, .. } => {
                let _ = writeln!(out, "host {}: UNREACHABLE: {reason}", host.host);
            }
            HostStatus::Refused { reason } => {
                let _ = writeln!(out, "host {}: REFUSED: {reason}", host.host);
            }
            HostStatus::Reachable if host.steps.is_empty() => {
                let _ = writeln!(
                    out,
                    "host {}: no changes ({} unchanged){platform}",
                    host.host, host.unchanged
                );
            }
            HostStatus::Reachable => {
                let _ = writeln!(out, "host {}:{platform}", host.host);
                for step in &host.steps {
                    let _ = writeln!(out, "  {}", step_line(step));
                }
            }
        }
        for note in host.platform.iter().flat_map(|p| &p.notes) {
            let _ = writeln!(out, "  note: {note}");
        }
        if !host.retained_volumes.is_empty() {
            let _ = writeln!(
                out,
                "  (volumes kept, no longer used: {})",
                host.retained_volumes.join(", ")
            );
        }
    }
    out.push('\n');
    for line in trailer(plan) {
        let _ = writeln!(out, "Warning: {line}");
    }
    let _ = writeln!(out, "{}", summary_line(&plan.summary));
    out
}

/// The plan as a pull-request comment: a summary, then one collapsible section per app.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let revision = plan.revision.as_deref().map(short_commit).unwrap_or("working tree");
    let _ = writeln!(out, "#### gitfleet plan for `{revision}` (fleet `{}`)\n", plan.fleet);
    if let Some(refused) = &plan.refused {
        let _ = writeln!(out, "> :no_entry: **{refused}**");
        return out;
    }
    let _ = writeln!(out, "**{}**\n", summary_line(&plan.summary));
    for line in trailer(plan) {
        let _ = writeln!(out, "> :warning: {line}\n");
    }
    let platforms: Vec<String> = plan
        .hosts
        .iter()
        // In code spans: the engine's words are not markdown.
        .filter_map(|h| {
            let platform = h.platform.as_ref()?.describe().replace('`', "'");
            Some(format!("`{}` `{platform}`", h.host))
        })
        .collect();
    if !platforms.is_empty() {
        let _ = writeln!(out, "Hosts: {}\n", platforms.join("; "));
    }
    for host in &plan.hosts {
        for note in host.platform.iter().flat_map(|p| &p.notes) {
            let _ = writeln!(out, "> host `{}`: {note}\n", host.host);
        }
    }
    // app -> host -> lines
    let mut apps: BTreeMap<&str, BTreeMap<&str, Vec<&Step>>> = BTreeMap::new();
    for host in &plan.hosts {
        for step in &host.steps {
            let app = step.app().unwrap_or("(images)");
            apps.entry(app).or_default().entry(&host.host).or_default().push(step);
        }
    }
    for (app, hosts) in &apps {
        let steps: Vec<&Step> = hosts.values().flatten().copied().collect();
        let _ = writeln!(out, "<details><summary><b>{app}</b>: {}</summary>\n", counts(&steps));
        out.push_str("```diff\n");
        for (host, steps) in hosts {
            let _ = writeln!(out, "@@ host {host} @@");
            for step in steps {
                // `diff` highlighting knows + and -; a replace shows as `!`.
                let line = step_line(step);
                let line = match line.strip_prefix('~') {
                    Some(rest) => format!("!{rest}"),
                    None => line,
                };
                let _ = writeln!(out, "{line}");
            }
        }
        out.push_str("```\n\n</details>\n\n");
    }
    if apps.is_empty() {
        out.push_str("No changes: the hosts already run this revision.\n");
    }
    out
}

fn counts(steps: &[&Step]) -> String {
    let (mut create, mut replace, mut remove, mut pull) = (0, 0, 0, 0);
    for step in steps {
        match symbol(step) {
            '+' => create += 1,
            '~' => replace += 1,
            '-' => remove += 1,
            _ => pull += 1,
        }
    }
    let mut parts = Vec::new();
    for (n, what) in
        [(create, "to create"), (replace, "to replace"), (remove, "to remove"), (pull, "to pull")]
    {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

/// The plan as JSON (the documented shape of [`Plan`]).
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan always serialises")
}

/// The first 12 characters of a commit id, as people read it.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Whether the plan changes nothing and every host was seen.
pub fn is_complete_noop(plan: &Plan) -> bool {
    plan.summary.is_empty() && plan.summary.unreachable_hosts == 0 && plan.summary.unplaced == 0
}
