//! The controller's state in Prometheus' text exposition format, for `/metrics`. Pure: a
//! function of a [`Snapshot`].

use std::fmt::Write as _;

use super::state::{HeadState, HostState, Snapshot, SyncOutcome};

/// The metrics text for `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let syncs = SyncOutcome::ALL.map(|outcome| {
        let n = snapshot.sync_totals.get(&outcome).copied().unwrap_or(0);
        (format!("{{outcome=\"{}\"}}", outcome.as_str()), n)
    });
    family(&mut out, "gitfleet_syncs_total", "counter", "Syncs since start, by outcome.", syncs);
    let head = snapshot.head.as_ref().map(|h| h.state);
    let states = HeadState::ALL
        .map(|state| (format!("{{state=\"{}\"}}", state.as_str()), u64::from(head == Some(state))));
    family(&mut out, "gitfleet_head_state", "gauge", "1 for the state of the branch head.", states);
    let errors = [(String::new(), snapshot.problems.len() as u64)];
    family(&mut out, "gitfleet_errors", "gauge", "Current problems (see /api/status).", errors);
    let hosts = snapshot.hosts.iter().map(|(host, health)| {
        (format!("{{host=\"{}\"}}", escape(host)), u64::from(health.state == HostState::Up))
    });
    family(&mut out, "gitfleet_host_up", "gauge", "1 when the host answers.", hosts);
    let replicas = snapshot.services.iter().flat_map(|(app, services)| {
        services.iter().flat_map(move |(service, s)| {
            [("desired", s.desired), ("running", s.running), ("healthy", s.healthy)].map(
                |(state, n)| {
                    let labels = format!(
                        "{{app=\"{}\",service=\"{}\",state=\"{state}\"}}",
                        escape(app),
                        escape(service)
                    );
                    (labels, u64::from(n))
                },
            )
        })
    });
    family(&mut out, "gitfleet_replicas", "gauge", "Replicas per service and state.", replicas);
    out
}

/// One metric family: its help and type lines, then `name{labels} value` per sample.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::SystemTime;

    use crate::controller::state::{HostStatus, ServiceStatus};

    #[test]
    fn every_family_is_typed_and_labelled() {
        let mut snapshot = Snapshot::default();
        snapshot.sync_totals.insert(SyncOutcome::Applied, 3);
        let now = SystemTime::now();
        snapshot
            .hosts
            .insert("a".into(), HostStatus { state: HostState::Up, since: now, reason: None });
        snapshot.hosts.insert(
            "b".into(),
            HostStatus { state: HostState::Down, since: now, reason: Some("x".into()) },
        );
        let web = ServiceStatus { desired: 2, running: 1, healthy: 1, ..Default::default() };
        snapshot.services =
            Arc::new(BTreeMap::from([("shop".into(), [("web".to_string(), web)].into())]));
        let text = render(&snapshot);
        for line in [
            "# TYPE gitfleet_syncs_total counter",
            "gitfleet_syncs_total{outcome=\"applied\"} 3",
            "gitfleet_syncs_total{outcome=\"incomplete\"} 0",
            "gitfleet_head_state{state=\"deployed\"} 0",
            "gitfleet_errors 0",
            "gitfleet_host_up{host=\"a\"} 1",
            "gitfleet_host_up{host=\"b\"} 0",
            "gitfleet_replicas{app=\"shop\",service=\"web\",state=\"running\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
