//! The three list answers of an observation (`GET /containers/json`, `/networks`, `/volumes`),
//! fetched as raw bodies and decoded into only the fields gitfleet reads.
//!
//! bollard decodes a list answer into its full models (`ContainerSummary` with
//! `NetworkSettings`, `HostConfig`, `Mounts`, `Command`; `Network` with `IPAM` and
//! `Containers`), allocating every field, then gitfleet copies a few of them out. At 30,000
//! containers that decoding was most of a resync (`benches/resync.rs`). Here the body is
//! decoded straight into [`ListedContainer`] and friends: fields gitfleet does not read are
//! skipped by the parser without allocating, strings without escapes are borrowed from the
//! body, and labels go straight into the `BTreeMap` the observed state keeps.
//!
//! bollard has no public call that returns a list answer's raw body. [`get_body`] sends the
//! request through a clone of the client whose request modifier points its `GET /_ping` at
//! the list URL (the same technique `objects` uses to add `CheckDuplicate`): the connection,
//! TLS, timeout and status handling stay bollard's, and a non-2xx answer is bollard's
//! `DockerResponseServerError` as before.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bollard::Docker;
use serde::Deserialize;

/// One entry of `GET /containers/json`: only what `observe::host_state` reads.
#[derive(Deserialize)]
pub(super) struct ListedContainer<'a> {
    #[serde(rename = "Id", default)]
    pub(super) id: Option<String>,
    #[serde(rename = "Names", default, borrow)]
    pub(super) names: Option<Vec<Text<'a>>>,
    #[serde(rename = "State", default, borrow)]
    pub(super) state: Option<Text<'a>>,
    #[serde(rename = "Labels", default)]
    pub(super) labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Created", default)]
    pub(super) created: Option<i64>,
    #[serde(rename = "Status", default, borrow)]
    pub(super) status: Option<Text<'a>>,
    #[serde(rename = "Ports", default, borrow)]
    pub(super) ports: Option<Vec<ListedPort<'a>>>,
}

/// One entry of a container's `Ports`.
#[derive(Deserialize)]
pub(super) struct ListedPort<'a> {
    #[serde(rename = "IP", default, borrow)]
    pub(super) ip: Option<Text<'a>>,
    #[serde(rename = "PrivatePort", default)]
    pub(super) private_port: u16,
    #[serde(rename = "PublicPort", default)]
    pub(super) public_port: Option<u16>,
    #[serde(rename = "Type", default, borrow)]
    pub(super) protocol: Option<Text<'a>>,
}

/// One entry of `GET /networks`, or of `Volumes` in `GET /volumes`.
#[derive(Deserialize)]
pub(super) struct ListedObject {
    #[serde(rename = "Id", default)]
    pub(super) id: Option<String>,
    #[serde(rename = "Name", default)]
    pub(super) name: Option<String>,
    #[serde(rename = "Labels", default)]
    pub(super) labels: Option<BTreeMap<String, String>>,
}

/// The body of `GET /volumes`.
#[derive(Deserialize)]
pub(super) struct ListedVolumes {
    #[serde(rename = "Volumes", default)]
    pub(super) volumes: Option<Vec<ListedObject>>,
}

/// A string of a list answer: borrowed from the body when it has no escapes (names, states,
/// status texts, port types and addresses never do), owned otherwise. (serde borrows a
/// `Cow<str>` only as a struct's own field, not inside an `Option` or a `Vec`.)
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The query string of a list call filtered by `label=<label>`: `filters={"label":[…]}`,
/// percent-encoded as bollard encodes its list options.
pub(super) fn label_filter(label: &str) -> String {
    let filters = serde_json::json!({ "label": [label] }).to_string();
    let mut query = String::from("filters=");
    for byte in filters.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                query.push(byte as char)
            }
            b' ' => query.push('+'),
            _ => query.push_str(&format!("%{byte:02X}")),
        }
    }
    query
}

/// The raw body of `GET <path_and_query>` (`/containers/json?all=true&…`) on `docker`. See
/// the module documentation for how.
pub(super) async fn get_body(
    docker: &Docker,
    path_and_query: String,
) -> Result<String, bollard::errors::Error> {
    let target = path_and_query;
    let listing = docker.clone().with_request_modifier(move |mut request| {
        let uri = request.uri();
        // `/_ping` is the whole path bollard sends; keep any prefix before it.
        let prefix = uri.path().strip_suffix("/_ping").unwrap_or("");
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = format!("{prefix}{target}").parse().ok();
        if let Ok(rewritten) = http::Uri::from_parts(parts) {
            *request.uri_mut() = rewritten;
        }
        request
    });
    listing.ping().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_encoded_as_bollard_encodes_it() {
        assert_eq!(
            label_filter("io.gitfleet.fleet=prod"),
            "filters=%7B%22label%22%3A%5B%22io.gitfleet.fleet%3Dprod%22%5D%7D"
        );
    }

    #[test]
    fn only_the_read_fields_are_decoded_and_plain_strings_are_borrowed() {
        let body = r#"[{"Id":"abc","Names":["/shop-web-1"],"Image":"web:1",
            "Command":"serve","Created":1764700000,"State":"running","Status":"Up 2 hours (healthy)",
            "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":32768,"Type":"tcp"},
                     {"PrivatePort":443,"Type":"tcp"}],
            "Labels":{"io.gitfleet.fleet":"prod","io.gitfleet.spec":"{\"image\":\"web:1\"}"},
            "HostConfig":{"NetworkMode":"default"},
            "NetworkSettings":{"Networks":{"default":{"IPAMConfig":null,"IPAddress":"172.17.0.2"}}},
            "Mounts":[]}]"#;
        let listed: Vec<ListedContainer> = serde_json::from_str(body).unwrap();
        let c = &listed[0];
        assert_eq!(c.id.as_deref(), Some("abc"));
        assert!(matches!(c.names.as_deref(), Some([Text(Cow::Borrowed("/shop-web-1"))])));
        assert!(matches!(c.state, Some(Text(Cow::Borrowed("running")))));
        // With an escape it is owned, and unescaped.
        let escaped: Vec<ListedContainer> =
            serde_json::from_str(r#"[{"Status":"Up \"2\" hours"}]"#).unwrap();
        assert!(matches!(&escaped[0].status, Some(Text(Cow::Owned(s))) if s == r#"Up "2" hours"#));
        assert_eq!(c.created, Some(1_764_700_000));
        let labels = c.labels.as_ref().unwrap();
        assert_eq!(labels["io.gitfleet.spec"], r#"{"image":"web:1"}"#);
        let ports = c.ports.as_ref().unwrap();
        assert_eq!((ports[0].private_port, ports[0].public_port), (80, Some(32768)));
        assert_eq!(ports[1].public_port, None);
        assert!(ports[1].ip.is_none());
        // Nulls are as good as absent.
        let listed: Vec<ListedContainer> =
            serde_json::from_str(r#"[{"Id":"x","Names":null,"Labels":null,"Ports":null}]"#)
                .unwrap();
        assert!(listed[0].names.is_none() && listed[0].labels.is_none());
    }
}
