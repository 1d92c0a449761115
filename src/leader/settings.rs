//! How an instance reaches etcd and campaigns: endpoints, lease TTL, the group's name, the
//! member's name, TLS and credentials. Built by `gitfleet run` (flags, `GITFLEET_*`, the
//! configuration file); validated here.

use std::path::PathBuf;
use std::time::Duration;

use super::LeaderError;

/// The shortest TTL accepted: etcd 3.4 itself raises shorter leases to about 1.5 s (its
/// election timeout × 1.5), and a keep-alive every TTL/4 needs room.
pub const MIN_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// etcd client URLs (`http://127.0.0.1:2379`, `https://…`).
    pub endpoints: Vec<String>,
    /// The lease's time to live: a crashed leader's successor starts within about this.
    pub lease_ttl: Duration,
    /// The group of instances that elect one leader: keys live under `/gitfleet/<fleet>/`.
    pub fleet: String,
    /// This instance's name among the members (default: host name and process id).
    pub member: String,
    /// TLS for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// etcd user and password (etcd's own authentication).
    pub credentials: Option<(String, String)>,
    /// Bound of every single etcd request (connect, grant, transaction).
    pub request_timeout: Duration,
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's certificates (default: the system's roots are not used;
    /// etcd clusters normally have their own CA, so give it).
    pub ca: Option<PathBuf>,
    /// Client certificate and key, when etcd asks for one (`--client-cert-auth`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl LeaderSettings {
    /// Settings with defaults for everything but the endpoints and the group.
    pub fn new(endpoints: Vec<String>, fleet: impl Into<String>) -> Self {
        LeaderSettings {
            endpoints,
            lease_ttl: Duration::from_secs(5),
            fleet: fleet.into(),
            member: default_member_name(),
            tls: None,
            credentials: None,
            request_timeout: Duration::from_secs(2),
        }
    }

    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |what: &str, reason: String| {
            Err(LeaderError::Settings { what: what.to_string(), reason })
        };
        if self.endpoints.is_empty() {
            return bad("--etcd", "no endpoint given".into());
        }
        for endpoint in &self.endpoints {
            let https = endpoint.starts_with("https://");
            if !https && !endpoint.starts_with("http://") {
                return bad("--etcd", format!("`{endpoint}` must start with http:// or https://"));
            }
            if https != self.tls.is_some() {
                return bad(
                    "--etcd",
                    format!(
                        "`{endpoint}`: use https:// together with --etcd-ca (and --etcd-cert/--etcd-key), http:// without"
                    ),
                );
            }
        }
        if self.lease_ttl < MIN_TTL {
            return bad(
                "--lease-ttl",
                format!(
                    "{} is shorter than {}s (etcd raises shorter leases itself)",
                    humantime::format_duration(self.lease_ttl),
                    MIN_TTL.as_secs()
                ),
            );
        }
        if self.lease_ttl.subsec_nanos() != 0 {
            return bad(
                "--lease-ttl",
                format!(
                    "{}: etcd leases are whole seconds",
                    humantime::format_duration(self.lease_ttl)
                ),
            );
        }
        if self.fleet.is_empty() || self.fleet.contains('/') {
            return bad(
                "--fleet",
                format!("`{}` must be a non-empty name without `/`", self.fleet),
            );
        }
        if self.member.is_empty() || self.member.contains('/') {
            return bad(
                "--etcd-member",
                format!("`{}` must be a non-empty name without `/`", self.member),
            );
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return bad("--etcd-cert", "give --etcd-cert and --etcd-key together".into());
            }
        }
        Ok(())
    }

    /// The election key: `/gitfleet/<fleet>/leader`.
    pub fn leader_key(&self) -> String {
        format!("/gitfleet/{}/leader", self.fleet)
    }

    /// The prefix of the members' keys: `/gitfleet/<fleet>/members/`.
    pub fn members_prefix(&self) -> String {
        format!("/gitfleet/{}/members/", self.fleet)
    }

    /// The prefix of webhooks handed from standbys to the leader: `/gitfleet/<fleet>/hooks/`.
    pub fn hooks_prefix(&self) -> String {
        format!("/gitfleet/{}/hooks/", self.fleet)
    }

    /// The prefix of pull-request preview claims: `/gitfleet/<fleet>/previews/`.
    pub fn previews_prefix(&self) -> String {
        format!("/gitfleet/{}/previews/", self.fleet)
    }
}

/// `<host name>-<process id>`.
pub fn default_member_name() -> String {
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy().replace('/', "-");
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaderSettings {
        LeaderSettings::new(vec!["http://127.0.0.1:2379".into()], "prod")
    }

    #[test]
    fn defaults_are_valid_and_name_the_keys() {
        let s = settings();
        s.validate().unwrap();
        assert_eq!(s.leader_key(), "/gitfleet/prod/leader");
        assert_eq!(s.members_prefix(), "/gitfleet/prod/members/");
        assert!(s.member.contains(&std::process::id().to_string()));
    }

    #[test]
    fn bad_settings_say_which_flag() {
        type Change = fn(&mut LeaderSettings);
        let cases: [(Change, &str); 7] = [
            (|s| s.endpoints.clear(), "--etcd"),
            (|s| s.endpoints = vec!["127.0.0.1:2379".into()], "--etcd"),
            (|s| s.endpoints = vec!["https://e:2379".into()], "--etcd"),
            (|s| s.lease_ttl = Duration::from_secs(1), "--lease-ttl"),
            (|s| s.lease_ttl = Duration::from_millis(2500), "--lease-ttl"),
            (|s| s.fleet = "a/b".into(), "--fleet"),
            (|s| s.member = String::new(), "--etcd-member"),
        ];
        for (change, flag) in cases {
            let mut s = settings();
            change(&mut s);
            let error = s.validate().unwrap_err().to_string();
            assert!(error.contains(flag), "{error} should name {flag}");
        }
    }
}
