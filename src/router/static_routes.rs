//! A static route table written by hand (YAML or JSON), for `gitfleet router-static`:
//! benchmarks, and trying the router without a fleet.
//!
//! ```yaml
//! policy: power-of-two        # or round-robin
//! routes:
//!   - host: bench.test
//!     path_prefix: /          # default /
//!     backends: ["127.0.0.1:8081", "127.0.0.1:8082"]
//! ```

use serde::Deserialize;

use super::balance::Policy;
use super::table::{RouteSpec, static_backend};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRoutes {
    #[serde(default)]
    pub policy: Policy,
    pub routes: Vec<StaticRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    pub host: String,
    #[serde(default = "root")]
    pub path_prefix: String,
    pub backends: Vec<String>,
}

fn root() -> String {
    "/".to_string()
}

/// Parses the file's text into rules; backends are keyed by their address.
pub fn parse(text: &str) -> Result<(Policy, Vec<RouteSpec>), String> {
    let file: StaticRoutes = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let specs = file
        .routes
        .into_iter()
        .map(|r| RouteSpec {
            service: format!("static/{}", r.host),
            port: 0,
            backends: r.backends.iter().map(|a| static_backend("static", a, a)).collect(),
            host: r.host.to_ascii_lowercase(),
            path_prefix: r.path_prefix,
        })
        .collect();
    Ok((file.policy, specs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_errors() {
        let (policy, specs) = parse(
            "policy: round-robin\nroutes:\n  - host: A.test\n    backends: ['127.0.0.1:1']\n",
        )
        .unwrap();
        assert_eq!(policy, Policy::RoundRobin);
        assert_eq!(specs[0].host, "a.test");
        assert_eq!(specs[0].path_prefix, "/");
        assert_eq!(specs[0].backends[0].address, "127.0.0.1:1");
        let error = parse("routes:\n  - host: a\n    backend: []\n").unwrap_err();
        assert!(error.contains("backend"), "{error}");
    }
}
