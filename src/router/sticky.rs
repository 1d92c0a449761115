//! Cookie stickiness (`sticky: true` on an `x-routes` rule): a client's requests keep going
//! to the replica that answered it first, while that replica is in rotation. Pure: names,
//! tokens and headers.
//!
//! * The cookie is one per rule: `gitfleet-<8 hex of the rule's host and prefix>`, with
//!   `Path=<prefix>`, `HttpOnly`, `SameSite=Lax`, and `Secure` over TLS. It holds an opaque
//!   token of the replica (a hash of its host and container id; nothing of the fleet leaks).
//! * A pinned replica that is draining, ejected, unhealthy or gone is not used: the request
//!   goes where the balancer sends it, and the answer re-pins the cookie there. So a rollout
//!   moves sticky clients to the new replicas as the old ones drain.

use http::header::{self, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::endpoint::EndpointKey;

/// The cookie's name for the rule `host` + `prefix`.
pub fn cookie_name(host: &str, prefix: &str) -> String {
    let digest = Sha256::digest(format!("{host}\n{prefix}").as_bytes());
    format!("gitfleet-{}", hex::encode(&digest[..4]))
}

/// A replica's token: 16 hex digits, the same for the same host and container.
pub fn token(key: &EndpointKey) -> String {
    let digest = Sha256::digest(format!("{}\n{}", key.host, key.container).as_bytes());
    hex::encode(&digest[..8])
}

/// The token the client's `Cookie` headers hold for `name`, if any (the first one).
pub fn pinned<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The `Set-Cookie` value that pins the client to `token` for the rule at `prefix`.
pub fn set_cookie(name: &str, token: &str, prefix: &str, tls: bool) -> Option<HeaderValue> {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={token}; Path={prefix}; HttpOnly; SameSite=Lax{secure}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_name_the_rule_and_tokens_the_replica() {
        let name = cookie_name("shop.test", "/");
        assert_eq!(name, cookie_name("shop.test", "/"));
        assert_ne!(name, cookie_name("shop.test", "/api"));
        assert!(name.starts_with("gitfleet-") && name.len() == "gitfleet-".len() + 8);
        let key = |c: &str| EndpointKey { host: "a".into(), container: c.into() };
        assert_eq!(token(&key("c1")).len(), 16);
        assert_ne!(token(&key("c1")), token(&key("c2")));

        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("theme=dark; other=1"));
        headers.append(header::COOKIE, HeaderValue::from_str(&format!("{name}=abc; x=2")).unwrap());
        assert_eq!(pinned(&headers, &name), Some("abc"));
        assert_eq!(pinned(&headers, "gitfleet-00000000"), None);
        assert_eq!(pinned(&HeaderMap::new(), &name), None);

        let plain = set_cookie(&name, "abc", "/api", false).unwrap();
        assert_eq!(plain, format!("{name}=abc; Path=/api; HttpOnly; SameSite=Lax").as_str());
        assert!(
            set_cookie(&name, "abc", "/", true).unwrap().to_str().unwrap().ends_with("; Secure")
        );
    }
}
