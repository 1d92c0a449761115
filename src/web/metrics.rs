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
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::controller::liveness::HostHealth;
use crate::controller::state::Snapshot;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of `gitfleet_sync_duration_seconds`' buckets.
pub const SYNC_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

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
    for result in ["in_sync", "applied", "incomplete", "nothing_deployable"] {
        let n = snapshot.sync_totals.get(result).copied().unwrap_or(0);
        syncs.get_or_create(&ResultLabel { result: result.into() }).inc_by(n);
    }
    registry.register("gitfleet_sync", "Syncs since start, by result", syncs);

    let (sum, count, buckets) = sync_durations(snapshot);
    registry.register(
        "gitfleet_sync_duration_seconds",
        "How long syncs took",
        ConstHistogram { sum, count, buckets },
    );

    let last_good = Gauge::<f64, AtomicU64>::default();
    if let Some(at) = last_successful_sync(snapshot) {
        last_good.set(at);
    }
    registry.register(
        "gitfleet_last_successful_sync_timestamp_seconds",
        "When the last sync that left the hosts at the target revision ended (0: none yet)",
        last_good,
    );

    let replicas = Family::<ReplicaLabels, Gauge>::default();
    for (app, services) in &snapshot.services {
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
            .set(i64::from(matches!(health, HostHealth::Up)));
    }
    registry.register("gitfleet_host_up", "1 when the host answered its last observation", hosts);

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

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The sync durations as `(sum, count, buckets)`.
fn sync_durations(snapshot: &Snapshot) -> (f64, u64, Vec<(f64, u64)>) {
    let mut buckets: Vec<(f64, u64)> =
        SYNC_BUCKETS.iter().map(|b| (*b, 0)).chain([(f64::INFINITY, 0)]).collect();
    let mut sum = 0.0;
    for sync in &snapshot.syncs {
        let seconds = sync.millis as f64 / 1000.0;
        sum += seconds;
        if let Some(bucket) = buckets.iter_mut().find(|(le, _)| seconds <= *le) {
            bucket.1 += 1;
        }
    }
    (sum, snapshot.syncs.len() as u64, buckets)
}

/// When the last sync that ended in sync or applied finished, in seconds since the epoch.
fn last_successful_sync(snapshot: &Snapshot) -> Option<f64> {
    let sync = snapshot.syncs.iter().find(|s| matches!(s.kind.as_str(), "in_sync" | "applied"))?;
    let at = humantime::parse_rfc3339(&sync.at).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::state::{ServiceStatus, SyncRecord};

    #[test]
    fn every_family_is_typed_and_labelled() {
        let mut snapshot = Snapshot::default();
        snapshot.sync_totals.insert("applied".into(), 3);
        snapshot.hosts.insert("a".into(), HostHealth::Up);
        snapshot.hosts.insert("b".into(), HostHealth::Down { reason: "x".into(), for_seconds: 40 });
        let web = ServiceStatus { desired: 2, running: 1, healthy: 1, ..Default::default() };
        snapshot.services.insert("shop".into(), [("web".to_string(), web)].into());
        snapshot.syncs.push_front(SyncRecord {
            at: "2026-01-01T00:00:10Z".into(),
            reasons: "startup".into(),
            commit: None,
            outcome: "applied".into(),
            kind: "applied".into(),
            millis: 700,
        });
        let deliveries: Deliveries = [(("github".into(), "accepted".into()), 2)].into();
        let text = render(&snapshot, &deliveries);
        for line in [
            "# TYPE gitfleet_sync_total counter",
            "gitfleet_sync_total{result=\"applied\"} 3",
            "gitfleet_sync_total{result=\"incomplete\"} 0",
            "# TYPE gitfleet_sync_duration_seconds histogram",
            "gitfleet_sync_duration_seconds_bucket{le=\"1\"} 1",
            "gitfleet_sync_duration_seconds_count 1",
            "gitfleet_last_successful_sync_timestamp_seconds 1767225610.0",
            "gitfleet_host_up{host=\"a\"} 1",
            "gitfleet_host_up{host=\"b\"} 0",
            "gitfleet_service_replicas{app=\"shop\",service=\"web\",state=\"running\"} 1",
            "gitfleet_webhook_deliveries_total{forge=\"github\",result=\"accepted\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(text.contains("gitfleet_build_info{version=\""));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut snapshot = Snapshot::default();
        snapshot.hosts.insert("a\"b\\c\nd".into(), HostHealth::Up);
        let text = render(&snapshot, &Deliveries::new());
        assert!(text.contains(r#"gitfleet_host_up{host="a\"b\\c\nd"} 1"#), "{text}");
    }
}
