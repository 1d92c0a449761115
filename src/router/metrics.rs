//! Per-route counters, kept across table generations, and their Prometheus text rendering
//! (what the web layer's `/metrics` appends).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 8] = [0.001, 0.005, 0.025, 0.1, 0.25, 1.0, 5.0, 30.0];

/// One rule's counters.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    responses: [AtomicU64; 5],
    retries: AtomicU64,
    /// Attempts that failed to connect or got no response.
    upstream_errors: AtomicU64,
    /// Requests answered 503 for want of a usable replica.
    no_replica: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_micros: AtomicU64,
}

impl RouteMetrics {
    pub fn response(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn no_replica(&self) {
        self.no_replica.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.responses.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders `(route name, service, metrics)` in Prometheus' text format.
pub fn render<'a>(routes: impl Iterator<Item = (String, String, &'a RouteMetrics)>) -> String {
    let routes: Vec<_> = routes.collect();
    let mut out = String::new();
    let name = "gitfleet_router_responses_total";
    let _ = writeln!(out, "# HELP {name} Responses by route and status class.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (route, service, m) in &routes {
        for (i, c) in m.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "gitfleet_router_responses_total{{route=\"{}\",service=\"{}\",class=\"{}xx\"}} {}",
                escape(route),
                escape(service),
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
    }
    for (name, help, get) in [
        (
            "gitfleet_router_retries_total",
            "Attempts retried on another replica.",
            (|m: &RouteMetrics| m.retries.load(Ordering::Relaxed)) as fn(&RouteMetrics) -> u64,
        ),
        (
            "gitfleet_router_upstream_errors_total",
            "Attempts that failed to connect or got no response.",
            |m| m.upstream_errors.load(Ordering::Relaxed),
        ),
        ("gitfleet_router_no_replica_total", "Requests answered 503: no usable replica.", |m| {
            m.no_replica.load(Ordering::Relaxed)
        }),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (route, service, m) in &routes {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",service=\"{}\"}} {}",
                escape(route),
                escape(service),
                get(m)
            );
        }
    }
    let name = "gitfleet_router_request_duration_seconds";
    let _ = writeln!(out, "# HELP {name} Time to response headers.\n# TYPE {name} histogram");
    for (route, service, m) in &routes {
        let labels = format!("route=\"{}\",service=\"{}\"", escape(route), escape(service));
        let mut cumulative = 0;
        for (bound, c) in BUCKETS.iter().zip(&m.latency_buckets) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let total = m.total();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let sum = m.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_histogram() {
        let m = RouteMetrics::default();
        m.response(200, Duration::from_millis(2));
        m.response(503, Duration::from_secs(40));
        m.retry();
        let text = render(std::iter::once(("a.test/".to_string(), "shop/web".to_string(), &m)));
        assert!(text.contains(
            "gitfleet_router_responses_total{route=\"a.test/\",service=\"shop/web\",class=\"2xx\"} 1"
        ));
        assert!(
            text.contains(
                "gitfleet_router_retries_total{route=\"a.test/\",service=\"shop/web\"} 1"
            )
        );
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}
