//! Images: whether one is on a host ([`image_present`]), pulling one ([`pull_image`]), and the
//! registry credentials for it from Docker's `config.json` ([`registry_auth_for`]).
//!
//! # Guarantees
//!
//! * A pull names an explicit tag (`latest` when the reference has none): Docker 20.10 pulls
//!   *every* tag of a repository when asked for a bare name.
//! * A pull's progress stream is read to its end, so a pull that returns `Ok` is complete, and
//!   an error inside the stream (the registry's answer, relayed by Docker) is the error.
//! * Credentials never appear in logs, errors or `Debug` output.

use std::fmt;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use serde_json::Value as Json;

use super::error::HostError;

/// The registry every image without a registry host in its name comes from.
pub const DOCKER_HUB: &str = "docker.io";
/// The server address Docker's own tools file Docker Hub's credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry, as `docker login` stores them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RegistryAuth {
    /// The registry they are for: `docker.io`, `registry.example.com:5000`.
    pub server_address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth identity token (`identitytoken` in `config.json`), instead of a password.
    pub identity_token: Option<String>,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("RegistryAuth")
            .field("server_address", &self.server_address)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("identity_token", &hidden(&self.identity_token))
            .finish()
    }
}

impl RegistryAuth {
    fn credentials(&self) -> DockerCredentials {
        let server = if self.server_address == DOCKER_HUB {
            DOCKER_HUB_AUTH_KEY.to_string()
        } else {
            self.server_address.clone()
        };
        DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            identitytoken: self.identity_token.clone(),
            serveraddress: Some(server),
            ..Default::default()
        }
    }
}

/// The registry an image reference names: the part before the first `/` when it looks like a
/// host (has a `.` or a `:`, or is `localhost`), else Docker Hub. `localhost:5000/web:1` →
/// `localhost:5000`; `nginx:1`, `library/nginx`, `shop/web` → `docker.io`.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            normalize_registry(first)
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// The credentials for `image`'s registry in a Docker `config.json` value (its `auths`
/// object): an entry whose key names that registry (`host:port`, `https://host:port`,
/// `https://host/v2/`; Docker Hub's `https://index.docker.io/v1/`, `docker.io`, ...), with
/// `auth` (base64 of `user:password`), or `username` and `password`, or `identitytoken`.
/// `None` when there is no such entry, or it holds nothing usable. Credential helpers
/// (`credsStore`, `credHelpers`) are not run.
pub fn registry_auth_for(image: &str, docker_config_json: &Json) -> Option<RegistryAuth> {
    let registry = registry_of(image);
    let auths = docker_config_json.get("auths")?.as_object()?;
    // An exact key first, then any key that names the same registry.
    let entry = auths
        .get(&registry)
        .or_else(|| auths.iter().find(|(key, _)| registry_key(key) == registry).map(|(_, v)| v))?;
    let text = |key: &str| {
        entry.get(key).and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    };
    let mut auth = RegistryAuth {
        server_address: registry,
        username: text("username"),
        password: text("password"),
        identity_token: text("identitytoken"),
    };
    if let Some(encoded) = text("auth") {
        let decoded = String::from_utf8(base64_decode(&encoded)?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        auth.username = Some(user.to_string());
        auth.password = Some(password.to_string());
    }
    let usable = auth.identity_token.is_some() || auth.username.is_some();
    usable.then_some(auth)
}

/// A `config.json` `auths` key as a registry name: scheme and path dropped, Docker Hub's
/// aliases folded into `docker.io`.
fn registry_key(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    normalize_registry(key.split('/').next().unwrap_or(key))
}

fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

/// Standard base64 (padding optional, whitespace ignored); `None` if it is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `(repository, tag or digest)`: `web` → `("web", "latest")`, `host:5000/web:2` →
/// `("host:5000/web", "2")`, `web@sha256:..` → `("web", "sha256:..")`.
pub(crate) fn split_reference(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].rfind(':') {
        Some(colon) => (&image[..last + colon], &image[last + colon + 1..]),
        None => (image, "latest"),
    }
}

/// Whether `image` (a reference, or an image id) is on the host.
///
/// # Errors
///
/// [`HostError::Refused`] / [`HostError::Interrupted`] for anything but "no such image".
pub async fn image_present(docker: &Docker, image: &str) -> Result<bool, HostError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(err) => {
            let err = HostError::about("inspecting image", image, err);
            if err.is_not_found() { Ok(false) } else { Err(err) }
        }
    }
}

/// Pulls `image` onto the host, with `auth` for its registry if given, and returns once the
/// whole progress stream has been read.
///
/// # Errors
///
/// [`HostError::Refused`] with operation `pulling image`, the image as the object and the
/// registry's message as Docker relays it (`manifest unknown`, `no basic auth credentials`,
/// `dial tcp ...: connection refused`); [`HostError::Interrupted`] if the connection breaks.
pub async fn pull_image(
    docker: &Docker,
    image: &str,
    auth: Option<&RegistryAuth>,
) -> Result<(), HostError> {
    const PULLING: &str = "pulling image";
    let (repository, tag) = split_reference(image);
    let options = CreateImageOptions {
        from_image: Some(repository.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let mut progress =
        docker.create_image(Some(options), None, auth.map(RegistryAuth::credentials));
    let mut last_status = None;
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => last_status = info.status.or(last_status),
            Err(err) => return Err(HostError::about(PULLING, image, err)),
        }
    }
    tracing::debug!(
        %image,
        status = last_status.as_deref().unwrap_or(""),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "pulled"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registries_come_from_the_first_component_when_it_is_a_host() {
        assert_eq!(registry_of("nginx:1"), "docker.io");
        assert_eq!(registry_of("library/nginx"), "docker.io");
        assert_eq!(registry_of("shop/web:2"), "docker.io");
        assert_eq!(registry_of("localhost/web"), "localhost");
        assert_eq!(registry_of("localhost:5000/web:1"), "localhost:5000");
        assert_eq!(registry_of("10.250.3.1:5000/gitfleet/web:1"), "10.250.3.1:5000");
        assert_eq!(registry_of("ghcr.io/org/app@sha256:abc"), "ghcr.io");
        assert_eq!(registry_of("index.docker.io/library/nginx"), "docker.io");
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("web"), ("web", "latest"));
        assert_eq!(split_reference("web:2"), ("web", "2"));
        assert_eq!(split_reference("localhost:5000/web"), ("localhost:5000/web", "latest"));
        assert_eq!(split_reference("localhost:5000/a/web:1.2"), ("localhost:5000/a/web", "1.2"));
        assert_eq!(split_reference("web@sha256:00ff"), ("web", "sha256:00ff"));
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("dXNlcjpwYXNzMQ==").unwrap(), b"user:pass1");
        assert_eq!(base64_decode("dXNlcjpwYXNzMQ").unwrap(), b"user:pass1");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn credentials_are_found_by_registry() {
        let config = json!({
            "auths": {
                "https://index.docker.io/v1/": { "auth": "aHViOmh1Yi1wYXNz" },
                "localhost:5000": { "username": "u", "password": "p:with:colons" },
                "https://registry.example.com/v2/": { "auth": "YWxpY2U6czNjcjN0OngK" },
                "token.example.com": { "identitytoken": "tok" },
                "empty.example.com": {}
            },
            "credsStore": "desktop"
        });
        let hub = registry_auth_for("nginx:1", &config).unwrap();
        assert_eq!(hub.server_address, "docker.io");
        assert_eq!(hub.username.as_deref(), Some("hub"));
        assert_eq!(hub.password.as_deref(), Some("hub-pass"));
        assert_eq!(hub.credentials().serveraddress.as_deref(), Some(DOCKER_HUB_AUTH_KEY));

        let local = registry_auth_for("localhost:5000/web:1", &config).unwrap();
        assert_eq!(local.username.as_deref(), Some("u"));
        assert_eq!(local.password.as_deref(), Some("p:with:colons"));
        assert_eq!(local.credentials().serveraddress.as_deref(), Some("localhost:5000"));

        let example = registry_auth_for("registry.example.com/shop/web", &config).unwrap();
        assert_eq!(example.username.as_deref(), Some("alice"));
        assert_eq!(example.password.as_deref(), Some("s3cr3t:x\n"));

        let token = registry_auth_for("token.example.com/a", &config).unwrap();
        assert_eq!(token.identity_token.as_deref(), Some("tok"));

        assert_eq!(registry_auth_for("empty.example.com/a", &config), None);
        assert_eq!(registry_auth_for("other.example.com/a", &config), None);
        assert_eq!(registry_auth_for("nginx", &json!({})), None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let auth = RegistryAuth {
            server_address: "docker.io".into(),
            username: Some("u".into()),
            password: Some("hunter2".into()),
            identity_token: Some("tok-secret".into()),
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok-secret"), "{shown}");
        assert!(shown.contains("<hidden>"));
    }
}
