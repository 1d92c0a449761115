//! `/metrics`: the status in Prometheus' text exposition format (0.0.4), encoded by
//! `prometheus-client`. Pure: a function of a [`Snapshot`] and the webhook delivery counts
//! (which the web side itself counts, as it answers them).
//!
//! Names follow Prometheus' conventions: `_total` counters, `_seconds` units, `_info` gauges
//! of 1 carrying text as labels. No commit id or container id labels a counter (their values
//! never repeat, so each would be a new series); the deployed commit is only on
//! `gitfleet_revision_info`, a gauge with one series.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::leader::Role;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::controller::state::{HostState, SYNC_SECONDS_BUCKETS, Snapshot, SyncOutcome};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Webhook deliveries answered, by `(forge, result)`.
pub type Deliveries = BTreeMap<(String, String), u64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabel {
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    app: String,
    service: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabel {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    forge: String,
    result: String,
}

/// A histogram whose buckets were counted elsewhere (the snapshot carries them).
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, observations in this bucket alone)`.
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The exposition for `snapshot` and the webhook deliveries counted so far.
pub fn render(snapshot: &Snapshot, deliveries: &Deliveries) -> String {
    let mut registry = Registry::default();

    let build = Family::<VersionLabel, Gauge>::default();
    build.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").into() }).set(1);
    registry.register("gitfleet_build_info", "The running gitfleet's version", build);

    let revision = Family::<RevisionLabel, Gauge>::default();
    if let Some(deployed) = &snapshot.deployed {
        revision
            .get_or_create(&RevisionLabel { revision: deployed.revision.commit.clone() })
            .set(1);
    }
    registry.register(
        "gitfleet_revision_info",
        "The revision deployed (the last one applied with success)",
        revision,
    );

    let syncs = Family::<ResultLabel, Counter>::default();
    for outcome in SyncOutcome::ALL {
        let n = snapshot.sync_totals.get(&outcome).copied().unwrap_or(0);
        syncs.get_or_create(&ResultLabel { result: outcome.as_str().into() }).inc_by(n);
    }
    registry.register("gitfleet_sync", "Syncs since start, by result", syncs);

    let counters = &snapshot.counters;
    let buckets: Vec<(f64, u64)> = SYNC_SECONDS_BUCKETS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counters.sync_seconds_buckets.iter().copied())
        .collect();
    let count = counters.sync_seconds_buckets.iter().sum();
    registry.register(
        "gitfleet_sync_duration_seconds",
        "How long syncs took",
        ConstHistogram { sum: counters.sync_seconds_sum, count, buckets },
    );

    let last_good = Gauge::<f64, AtomicU64>::default();
    if let Some(at) = counters.last_success {
        last_good.set(at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64());
    }
    registry.register(
        "gitfleet_last_successful_sync_timestamp_seconds",
        "When the last sync that left the hosts at the target revision ended (0: none yet)",
        last_good,
    );

    let replicas = Family::<ReplicaLabels, Gauge>::default();
    for (app, services) in snapshot.services.iter() {
        for (service, s) in services {
            for (state, n) in
                [("desired", s.desired), ("running", s.running), ("healthy", s.healthy)]
            {
                let labels = ReplicaLabels {
                    app: app.clone(),
                    service: service.clone(),
                    state: state.into(),
                };
                replicas.get_or_create(&labels).set(i64::from(n));
            }
        }
    }
    registry.register(
        "gitfleet_service_replicas",
        "Replicas per service: desired, running and healthy",
        replicas,
    );

    let hosts = Family::<HostLabel, Gauge>::default();
    for (host, health) in &snapshot.hosts {
        hosts
            .get_or_create(&HostLabel { host: host.clone() })
            .set(i64::from(matches!(health.state, HostState::Up | HostState::Failing)));
    }
    registry.register("gitfleet_host_up", "1 when the host answered its last observation", hosts);

    for (name, help, n) in [
        (
            "gitfleet_drift_repairs",
            "Applies that brought the hosts back to the revision already deployed",
            counters.drift_repairs,
        ),
        (
            "gitfleet_failovers",
            "Hosts that passed the grace period (replicas moved)",
            counters.failovers,
        ),
        ("gitfleet_rollbacks", "Rollouts that failed and were rolled back", counters.rollbacks),
    ] {
        let counter: Counter = Counter::default();
        counter.inc_by(n);
        registry.register(name, help, counter);
    }

    let hooks = Family::<DeliveryLabels, Counter>::default();
    for ((forge, result), n) in deliveries {
        hooks
            .get_or_create(&DeliveryLabels { forge: forge.clone(), result: result.clone() })
            .inc_by(*n);
    }
    registry.register(
        "gitfleet_webhook_deliveries",
        "Webhook deliveries answered, by forge and result",
        hooks,
    );

    let roles = Family::<RoleLabel, Gauge>::default();
    let leadership = &snapshot.leadership;
    for (role, name) in
        [(Role::Leader, "leader"), (Role::Standby, "standby"), (Role::Single, "single")]
    {
        roles
            .get_or_create(&RoleLabel { role: name.to_string() })
            .set(i64::from(leadership.role == role));
    }
    registry.register("gitfleet_role", "1 for this instance's role (high availability)", roles);
    let epoch: Gauge = Gauge::default();
    epoch.set(leadership.epoch.unwrap_or(0).max(0));
    registry.register("gitfleet_leader_epoch", "The current leader's epoch (0: none known)", epoch);

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::controller::state::{HostStatus, ServiceStatus, StatusWriter, SyncRecord};

    fn host(state: HostState) -> HostStatus {
        HostStatus { state, since: SystemTime::now(), reason: None }
    }

    #[test]
    fn every_family_is_typed_and_labelled() {
        let mut snapshot = Snapshot::default();
        snapshot.sync_totals.insert(SyncOutcome::Applied, 3);
        snapshot.hosts.insert("a".into(), host(HostState::Up));
        snapshot.hosts.insert("b".into(), host(HostState::Down));
        let web = ServiceStatus { desired: 2, running: 1, healthy: 1, ..Default::default() };
        snapshot.services =
            Arc::new([("shop".to_string(), [("web".to_string(), web)].into())].into());
        snapshot.counters.rollbacks = 2;
        // The loop's writer fills the duration histogram and the last success.
        let writer = StatusWriter::new(snapshot);
        let at = humantime::parse_rfc3339("2026-01-01T00:00:10Z").unwrap();
        writer.record_sync(SyncRecord {
            number: 0,
            started_at: at,
            at,
            reasons: "startup".into(),
            commit: None,
            outcome: SyncOutcome::Applied,
            detail: "applied".into(),
            millis: 700,
            plan: Default::default(),
            full_plan: None,
        });
        let snapshot = writer.current();
        let deliveries: Deliveries = [(("github".into(), "accepted".into()), 2)].into();
        let text = render(&snapshot, &deliveries);
        for line in [
            "# TYPE gitfleet_sync_total counter",
            "gitfleet_sync_total{result=\"applied\"} 4",
            "gitfleet_sync_total{result=\"incomplete\"} 0",
            "# TYPE gitfleet_sync_duration_seconds histogram",
            "gitfleet_sync_duration_seconds_bucket{le=\"1\"} 1",
            "gitfleet_sync_duration_seconds_count 1",
            "gitfleet_last_successful_sync_timestamp_seconds 1767225610.0",
            "gitfleet_host_up{host=\"a\"} 1",
            "gitfleet_host_up{host=\"b\"} 0",
            "gitfleet_service_replicas{app=\"shop\",service=\"web\",state=\"running\"} 1",
            "gitfleet_webhook_deliveries_total{forge=\"github\",result=\"accepted\"} 2",
            "gitfleet_rollbacks_total 2",
            "gitfleet_failovers_total 0",
            "gitfleet_drift_repairs_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(text.contains("gitfleet_build_info{version=\""));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut snapshot = Snapshot::default();
        snapshot.hosts.insert("a\"b\\c\nd".into(), host(HostState::Up));
        let text = render(&snapshot, &Deliveries::new());
        assert!(text.contains(r#"gitfleet_host_up{host="a\"b\\c\nd"} 1"#), "{text}");
    }
}
