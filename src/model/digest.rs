//! Content digests: how configs and secrets appear in plans, the spec label and the spec hash
//! (never their values).
//!
//! Without a key, a digest is the plain SHA-256 of the content, so anyone who can read a
//! plan or a container's labels can confirm a guessed password. With a per-fleet
//! [`DigestKey`] (a secret file only the controller and the fleet's operators hold,
//! `--digest-key-file`), it is `hmac-sha256:<key id>:<HMAC-SHA256(key, content)>`: it still
//! changes exactly when the content does, and reveals nothing without the key.
//!
//! # Switching keys goes through the repository
//!
//! A digest under another key differs, so a new key would replace every container that mounts
//! a config or a secret. That never happens behind anyone's back: the fleet names the key it
//! expects (`settings.digest_key: <key id>` in `fleet.yaml`), and [`key_model`] refuses a
//! revision whose named key is not the one the controller holds (or that names one when the
//! controller holds none, or none when it holds one). Turning keys on, or rotating, is a
//! commit changing `settings.digest_key`, whose plan (and pull-request preview) shows every
//! replacement it causes before anything happens.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostic;
use super::load::FLEET_FILE;
use super::partial::Partial;
use super::position::Position;
use super::types::{App, FileDef, Fleet, Model};

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fleet's digest key. Its [`id`](DigestKey::id) is public (it names the key in
/// `fleet.yaml` and in digests); the key itself never leaves this value (`Debug` shows the
/// id only).
#[derive(Clone)]
pub struct DigestKey {
    key: [u8; 32],
    id: String,
}

/// The fewest bytes a key file must hold (after trimming whitespace).
pub const MIN_KEY_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

impl DigestKey {
    /// A key from the bytes of a key file (leading and trailing whitespace dropped; at least
    /// [`MIN_KEY_BYTES`] left, e.g. `openssl rand -hex 32`).
    pub fn new(secret: &[u8]) -> Result<DigestKey, String> {
        let trimmed = secret.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a digest key needs at least {MIN_KEY_BYTES} bytes (it has {}): write one with `openssl rand -hex 32`",
                trimmed.len()
            ));
        }
        let key: [u8; 32] = Sha256::new_with_prefix(b"gitfleet digest key v1\0")
            .chain_update(trimmed)
            .finalize()
            .into();
        let id = hex::encode(&mac(&key, b"gitfleet digest key id")[..8]);
        Ok(DigestKey { key, id })
    }

    /// 16 hex digits naming the key (not revealing it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `hmac-sha256:<id>:<hex>` of `content`.
    pub fn digest(&self, content: &[u8]) -> String {
        format!("hmac-sha256:{}:{}", self.id, hex::encode(mac(&self.key, content)))
    }
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestKey").field("id", &self.id).finish_non_exhaustive()
    }
}

fn mac(key: &[u8; 32], content: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

/// Puts `model`'s config and secret digests under `key`, after checking that `key` is the one
/// `settings.digest_key` names (see the module's doc). Without a key and without a named
/// one, the plain digests stay. The error is located at `fleet.yaml`.
pub fn key_model(model: &mut Model, key: Option<&DigestKey>) -> Result<(), Diagnostic> {
    if let Some(key) = key_to_use(&model.fleet, key)? {
        model.apps.values_mut().for_each(|app| key_app(app, key));
    }
    Ok(())
}

/// The key digests are put under: `key` once it is the one `settings.digest_key` names, `None`
/// when neither names nor gives one, else the located refusal.
fn key_to_use<'k>(
    fleet: &Fleet,
    key: Option<&'k DigestKey>,
) -> Result<Option<&'k DigestKey>, Diagnostic> {
    let named = fleet.settings.digest_key.as_deref();
    let refuse = |message: String, hint: String| {
        Err(Diagnostic::new(FLEET_FILE, Position::START, "digest-key", message).with_hint(hint))
    };
    match (named, key) {
        (None, None) => Ok(None),
        (Some(named), None) => {
            refuse(
                format!("settings.digest_key names key {named}, but gitfleet was given no digest key"),
                "give the key file whose id this is with --digest-key-file (or GITFLEET_DIGEST_KEY_FILE)".into(),
            )
        }
        (None, Some(key)) => {
            refuse(
                format!(
                    "gitfleet holds digest key {}, but fleet.yaml names none in settings.digest_key",
                    key.id()
                ),
                format!(
                    "commit `digest_key: {}` under `settings:` (its plan replaces, once, every container that mounts a config or secret), or run without --digest-key-file",
                    key.id()
                ),
            )
        }
        (Some(named), Some(key)) if named != key.id() => {
            refuse(
                format!(
                    "settings.digest_key names key {named}, but gitfleet holds key {}",
                    key.id()
                ),
                format!(
                    "give the key file of {named}; or, to rotate, commit `digest_key: {}` (its plan replaces, once, every container that mounts a config or secret)",
                    key.id()
                ),
            )
        }
        (Some(_), Some(key)) => Ok(Some(key)),
    }
}

/// Puts one app's config and secret digests under `key` (copying the app only if a digest
/// changes).
fn key_app(app: &mut Arc<App>, key: &DigestKey) {
    let keyed = |defs: &std::collections::BTreeMap<String, FileDef>| {
        defs.values().all(|def| def.digest == key.digest(&def.content))
    };
    if keyed(&app.configs) && keyed(&app.secrets) {
        return;
    }
    let app = Arc::make_mut(app);
    for def in app.configs.values_mut().chain(app.secrets.values_mut()) {
        def.digest = key.digest(&def.content);
    }
}

/// [`key_model`] on a revision loaded app by app: the apps that validate are keyed.
pub(super) fn keyed_partial(
    mut partial: Partial,
    key: Option<&DigestKey>,
) -> Result<Partial, Vec<Diagnostic>> {
    if let Some(key) = key_to_use(&partial.fleet, key).map_err(|diagnostic| vec![diagnostic])? {
        partial.apps.values_mut().flatten().for_each(|app| key_app(app, key));
    }
    Ok(partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SourceTree, load};

    /// A model with one secret, whose fleet names `digest_key` (set after loading: a load
    /// with a named key and none given is refused, as tested here).
    fn model(digest_key: Option<&str>) -> Model {
        let mut tree = SourceTree::new();
        tree.insert_file(
            "fleet.yaml",
            b"hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n".to_vec(),
        );
        tree.insert_file(
            "apps/x/compose.yaml",
            b"services:\n  s:\n    image: x:1\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw\n"
                .to_vec(),
        );
        tree.insert_file("apps/x/pw", b"hunter2".to_vec());
        let mut model = load(&tree).expect("valid");
        model.fleet.settings.digest_key = digest_key.map(str::to_string);
        model
    }

    fn digest(model: &Model) -> String {
        model.apps["x"].secrets["pw"].digest.clone()
    }

    #[test]
    fn a_keyed_digest_reveals_nothing_without_the_key_and_changes_with_the_content() {
        let key = DigestKey::new(b"0123456789abcdef0123456789abcdef\n").unwrap();
        let other = DigestKey::new(b"fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), other.id());
        let keyed = key.digest(b"hunter2");
        assert!(keyed.starts_with(&format!("hmac-sha256:{}:", key.id())), "{keyed}");
        // A dictionary of plain digests finds nothing.
        assert!(!keyed.contains(&sha256_hex(b"hunter2")));
        assert_ne!(keyed, other.digest(b"hunter2"));
        assert_ne!(keyed, key.digest(b"hunter3"));
        assert_eq!(keyed, key.digest(b"hunter2"));
        assert!(!format!("{key:?}").contains("0123456789abcdef0123"));
        assert!(DigestKey::new(b"  short \n").unwrap_err().contains("at least 16 bytes"));
    }

    #[test]
    fn the_model_is_keyed_only_with_the_key_the_fleet_names() {
        let key = DigestKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = DigestKey::new(b"fedcba9876543210fedcba9876543210").unwrap();

        let mut plain = model(None);
        key_model(&mut plain, None).unwrap();
        assert_eq!(digest(&plain), sha256_hex(b"hunter2"));

        let mut named = model(Some(key.id()));
        key_model(&mut named, Some(&key)).unwrap();
        assert_eq!(digest(&named), key.digest(b"hunter2"));
        // Idempotent.
        key_model(&mut named, Some(&key)).unwrap();
        assert_eq!(digest(&named), key.digest(b"hunter2"));

        // A key given but not named, named but not given, or another one: refused, saying how.
        let refused = key_model(&mut model(None), Some(&key)).unwrap_err();
        assert!(refused.hint.as_deref().unwrap().contains(&format!("digest_key: {}", key.id())));
        let refused = key_model(&mut model(Some(key.id())), None).unwrap_err();
        assert!(refused.message.contains("no digest key"), "{refused}");
        let refused = key_model(&mut model(Some(key.id())), Some(&other)).unwrap_err();
        assert!(refused.message.contains(other.id()) && refused.message.contains(key.id()));
        assert_eq!((refused.file.as_str(), refused.code), ("fleet.yaml", "digest-key"));
    }
}
