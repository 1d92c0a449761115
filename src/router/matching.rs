//! Which rule a request matches, as a pure lookup: the request's host name exactly, else the
//! longest wildcard suffix (`*.example.com`); within that host, the longest path prefix.
//!
//! # Rules
//!
//! * Host names compare case-insensitively, without a port and without a trailing dot
//!   (`Shop.Example.COM.:8080` is `shop.example.com`).
//! * `*.example.com` matches `a.example.com` and `a.b.example.com`, never `example.com`
//!   itself. Of several wildcards the longest suffix wins.
//! * If the exact host has rules but none of its prefixes matches the path, the wildcards
//!   are tried next.
//! * A path prefix matches on segment boundaries: `/api` matches `/api`, `/api/x` and
//!   `/api?q`, not `/apix`. A prefix ending in `/` matches every path under it; `/` matches
//!   every path.

use std::borrow::Cow;
use std::collections::HashMap;

/// Rules keyed by host pattern and path prefix, with values of type `T`.
#[derive(Debug, Clone)]
pub struct Matcher<T> {
    exact: HashMap<String, Prefixes<T>>,
    /// `(".example.com", rules)`, longest suffix first.
    wildcards: Vec<(String, Prefixes<T>)>,
}

#[derive(Debug, Clone)]
struct Prefixes<T> {
    /// Longest prefix first.
    rules: Vec<(String, T)>,
}

impl<T> Default for Prefixes<T> {
    fn default() -> Self {
        Prefixes { rules: Vec::new() }
    }
}

impl<T> Prefixes<T> {
    fn find(&self, path: &str) -> Option<&T> {
        self.rules.iter().find(|(prefix, _)| prefix_matches(prefix, path)).map(|(_, v)| v)
    }

    /// Adds a rule; `false` if the prefix is already there (the first one stays).
    fn insert(&mut self, prefix: String, value: T) -> bool {
        if self.rules.iter().any(|(p, _)| *p == prefix) {
            return false;
        }
        let at = self.rules.iter().position(|(p, _)| p.len() < prefix.len());
        self.rules.insert(at.unwrap_or(self.rules.len()), (prefix, value));
        true
    }
}

impl<T> Default for Matcher<T> {
    fn default() -> Self {
        Matcher { exact: HashMap::new(), wildcards: Vec::new() }
    }
}

impl<T> Matcher<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule for `host` (exact, or `*.suffix`) and `prefix` (made absolute when it is
    /// not). Returns `false`, keeping the earlier rule, when the pair is already taken.
    pub fn insert(&mut self, host: &str, prefix: &str, value: T) -> bool {
        let host = normalize_host(host).into_owned();
        let prefix =
            if prefix.starts_with('/') { prefix.to_string() } else { format!("/{prefix}") };
        if let Some(suffix) = host.strip_prefix('*') {
            let suffix = suffix.to_string();
            if let Some((_, rules)) = self.wildcards.iter_mut().find(|(s, _)| *s == suffix) {
                return rules.insert(prefix, value);
            }
            let mut rules = Prefixes::default();
            rules.insert(prefix, value);
            let at = self.wildcards.iter().position(|(s, _)| s.len() < suffix.len());
            self.wildcards.insert(at.unwrap_or(self.wildcards.len()), (suffix, rules));
            true
        } else {
            self.exact.entry(host).or_default().insert(prefix, value)
        }
    }

    /// The rule for a request to `host` (a `Host` header or `:authority`, port allowed) and
    /// `path` (without the query; a query is ignored if present).
    pub fn find(&self, host: &str, path: &str) -> Option<&T> {
        let host = normalize_host(host);
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if let Some(found) = self.exact.get(host.as_ref()).and_then(|rules| rules.find(path)) {
            return Some(found);
        }
        self.wildcards
            .iter()
            .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .find_map(|(_, rules)| rules.find(path))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.wildcards.iter().map(|(_, r)| r))
            .flat_map(|r| r.rules.iter().map(|(_, v)| v))
    }
}

/// Whether `prefix` matches `path` on a segment boundary.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

/// A host name as rules compare it: lower case, no port, no trailing dot. IPv6 literals keep
/// their brackets (`[::1]:80` → `[::1]`).
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Matcher<&'static str> {
        let mut m = Matcher::new();
        for (host, prefix, name) in [
            ("shop.example.com", "/", "shop"),
            ("shop.example.com", "/api", "shop-api"),
            ("shop.example.com", "/api/v2/", "shop-api-v2"),
            ("*.example.com", "/", "any-example"),
            ("*.eu.example.com", "/", "any-eu"),
            ("*.example.com", "/static", "any-static"),
            ("only-api.example.org", "/api", "only-api"),
            ("*.example.org", "/", "org"),
        ] {
            assert!(m.insert(host, prefix, name));
        }
        m
    }

    #[test]
    fn hosts_and_paths_match_as_documented() {
        let m = table();
        let cases = [
            // (host, path, expected)
            ("shop.example.com", "/", Some("shop")),
            ("shop.example.com", "/cart", Some("shop")),
            ("shop.example.com", "/api", Some("shop-api")),
            ("shop.example.com", "/api/orders", Some("shop-api")),
            ("shop.example.com", "/api?x=1", Some("shop-api")),
            ("shop.example.com", "/apix", Some("shop")),
            ("shop.example.com", "/api/v2/x", Some("shop-api-v2")),
            ("shop.example.com", "/api/v2", Some("shop-api")),
            ("SHOP.Example.com:8443", "/api", Some("shop-api")),
            ("shop.example.com.", "/", Some("shop")),
            ("www.example.com", "/", Some("any-example")),
            ("a.b.example.com", "/static/x.css", Some("any-static")),
            ("x.eu.example.com", "/static/x.css", Some("any-eu")),
            ("example.com", "/", None),
            ("other.com", "/", None),
            ("notexample.com", "/", None),
            // The exact host has no rule for `/`: the wildcard answers.
            ("only-api.example.org", "/", Some("org")),
            ("only-api.example.org", "/api/x", Some("only-api")),
            ("[::1]:80", "/", None),
        ];
        for (host, path, want) in cases {
            assert_eq!(m.find(host, path).copied(), want, "{host}{path}");
        }
    }

    #[test]
    fn a_taken_rule_keeps_the_first() {
        let mut m = table();
        assert!(!m.insert("shop.example.com", "/api", "again"));
        assert!(!m.insert("*.example.com", "/", "again"));
        assert_eq!(m.find("shop.example.com", "/api").copied(), Some("shop-api"));
        assert!(m.insert("new.example.com", "api", "relative"));
        assert_eq!(m.find("new.example.com", "/api").copied(), Some("relative"));
        assert_eq!(m.values().count(), 9);
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("A.B:80"), "a.b");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("a.b."), "a.b");
        assert_eq!(normalize_host("a.b"), "a.b");
    }

    #[test]
    fn prefixes_match_on_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/a", "/a"));
        assert!(prefix_matches("/a", "/a/b"));
        assert!(!prefix_matches("/a", "/ab"));
        assert!(prefix_matches("/a/", "/a/b"));
        assert!(!prefix_matches("/a/", "/a"));
    }
}
