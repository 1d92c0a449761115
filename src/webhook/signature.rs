//! Checking that a delivery comes from whoever holds the shared secret: the HMAC-SHA256
//! signatures of GitHub, Gitea, Forgejo and the generic endpoint, and GitLab's shared token.
//!
//! Pure: the secret, the raw body and the header's raw bytes in, a verdict out. Every
//! comparison of a secret-derived value runs in constant time: the HMACs through
//! [`Mac::verify_slice`], the token through [`subtle::ConstantTimeEq`] over SHA-256 digests of
//! both sides (so the time does not depend on where they differ, nor on the token's length).
//! Errors name the header and what is wrong with its shape; they never carry its value.
//!
//! | forge | header | value |
//! | --- | --- | --- |
//! | GitHub | `X-Hub-Signature-256` | `sha256=` + hex HMAC-SHA256 of the body |
//! | generic | `X-Gitfleet-Signature` | `sha256=` + hex HMAC-SHA256 of the body |
//! | Gitea | `X-Gitea-Signature` | hex HMAC-SHA256 of the body |
//! | Forgejo | `X-Forgejo-Signature` | hex HMAC-SHA256 of the body |
//! | GitLab | `X-Gitlab-Token` | the secret token itself |

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::payload::Forge;

type HmacSha256 = Hmac<Sha256>;

/// Hex digits in a SHA-256 HMAC.
const HEX_LEN: usize = 64;

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no {header} header")]
    Missing { header: &'static str },
    #[error("{header} is malformed: {reason}")]
    Malformed { header: &'static str, reason: &'static str },
    #[error("{header} does not match the delivery")]
    Mismatch { header: &'static str },
}

/// The header that carries `forge`'s signature (GitLab: its token).
pub fn signature_header(forge: Forge) -> &'static str {
    match forge {
        Forge::GitHub => "X-Hub-Signature-256",
        Forge::GitLab => "X-Gitlab-Token",
        Forge::Gitea => "X-Gitea-Signature",
        Forge::Forgejo => "X-Forgejo-Signature",
        Forge::Generic => "X-Gitfleet-Signature",
    }
}

/// Checks `header_value` (the raw bytes of [`signature_header`]`(forge)`, `None` when the
/// request has none) against `secret` and the raw `body`.
pub fn verify(
    forge: Forge,
    secret: &[u8],
    body: &[u8],
    header_value: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = signature_header(forge);
    let value = header_value.ok_or(SignatureError::Missing { header })?;
    match forge {
        Forge::GitHub | Forge::Generic => {
            let Some(hex_digest) = value.strip_prefix(b"sha256=") else {
                return Err(SignatureError::Malformed {
                    header,
                    reason: "does not start with sha256=",
                });
            };
            verify_hmac(header, secret, body, hex_digest)
        }
        Forge::Gitea | Forge::Forgejo => verify_hmac(header, secret, body, value),
        Forge::GitLab => verify_token(header, secret, value),
    }
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`: what a sender puts in the header
/// (after `sha256=` for GitHub and the generic endpoint).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (a long one is hashed first), so this never fails; the
    // fallback keeps the function total without an unwrap.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
    mac.update(body);
    mac
}

fn verify_hmac(
    header: &'static str,
    secret: &[u8],
    body: &[u8],
    hex_digest: &[u8],
) -> Result<(), SignatureError> {
    if hex_digest.len() != HEX_LEN {
        return Err(SignatureError::Malformed { header, reason: "expected 64 hex digits" });
    }
    let mut tag = [0u8; HEX_LEN / 2];
    if hex::decode_to_slice(hex_digest, &mut tag).is_err() {
        return Err(SignatureError::Malformed { header, reason: "not hexadecimal" });
    }
    mac(secret, body).verify_slice(&tag).map_err(|_| SignatureError::Mismatch { header })
}

fn verify_token(header: &'static str, expected: &[u8], given: &[u8]) -> Result<(), SignatureError> {
    let expected = Sha256::digest(expected);
    let given = Sha256::digest(given);
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch { header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented vector (shared/corpus/github-signature-vector.md).
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn github(secret: &[u8], body: &[u8], value: &str) -> Result<(), SignatureError> {
        verify(Forge::GitHub, secret, body, Some(value.as_bytes()))
    }

    const GITHUB_HEADER: &str = "X-Hub-Signature-256";

    #[test]
    fn github_documented_vector() {
        assert_eq!(sign(SECRET, BODY), HEX);
        assert_eq!(github(SECRET, BODY, &format!("sha256={HEX}")), Ok(()));
    }

    #[test]
    fn wrong_secret_or_tampered_body_mismatch() {
        let value = format!("sha256={HEX}");
        let mismatch = Err(SignatureError::Mismatch { header: GITHUB_HEADER });
        assert_eq!(github(b"It's a secret to everybody", BODY, &value), mismatch);
        assert_eq!(github(b"", BODY, &value), mismatch);
        assert_eq!(github(SECRET, b"Hello, World?", &value), mismatch);
        assert_eq!(github(SECRET, b"Hello, World!\n", &value), mismatch);
        // One digit off.
        let off = format!("sha256={}8", &HEX[..63]);
        assert_eq!(github(SECRET, BODY, &off), mismatch);
    }

    #[test]
    fn malformed_values_are_refused_before_any_comparison() {
        let malformed = |reason| Err(SignatureError::Malformed { header: GITHUB_HEADER, reason });
        assert_eq!(github(SECRET, BODY, HEX), malformed("does not start with sha256="));
        assert_eq!(
            github(SECRET, BODY, &format!("sha1={HEX}")),
            malformed("does not start with sha256=")
        );
        assert_eq!(
            github(SECRET, BODY, &format!("sha256={}", &HEX[..62])),
            malformed("expected 64 hex digits")
        );
        assert_eq!(
            github(SECRET, BODY, &format!("sha256={HEX}00")),
            malformed("expected 64 hex digits")
        );
        assert_eq!(github(SECRET, BODY, "sha256="), malformed("expected 64 hex digits"));
        let non_hex = format!("sha256={}zz", &HEX[..62]);
        assert_eq!(github(SECRET, BODY, &non_hex), malformed("not hexadecimal"));
        let non_ascii = format!("sha256={}é", &HEX[..62]);
        assert_eq!(github(SECRET, BODY, &non_ascii), malformed("not hexadecimal"));
    }

    #[test]
    fn upper_case_hex_is_the_same_digest() {
        assert_eq!(github(SECRET, BODY, &format!("sha256={}", HEX.to_uppercase())), Ok(()));
    }

    #[test]
    fn missing_header() {
        for forge in [Forge::GitHub, Forge::GitLab, Forge::Gitea, Forge::Forgejo, Forge::Generic] {
            assert_eq!(
                verify(forge, SECRET, BODY, None),
                Err(SignatureError::Missing { header: signature_header(forge) })
            );
        }
    }

    #[test]
    fn gitea_and_forgejo_take_bare_hex() {
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let header = signature_header(forge);
            assert_eq!(verify(forge, SECRET, BODY, Some(HEX.as_bytes())), Ok(()));
            assert_eq!(
                verify(forge, b"other", BODY, Some(HEX.as_bytes())),
                Err(SignatureError::Mismatch { header })
            );
            // GitHub's prefixed form is not theirs.
            let prefixed = format!("sha256={HEX}");
            assert_eq!(
                verify(forge, SECRET, BODY, Some(prefixed.as_bytes())),
                Err(SignatureError::Malformed { header, reason: "expected 64 hex digits" })
            );
        }
    }

    #[test]
    fn generic_is_prefixed_like_github() {
        let value = format!("sha256={HEX}");
        assert_eq!(verify(Forge::Generic, SECRET, BODY, Some(value.as_bytes())), Ok(()));
        assert_eq!(
            verify(Forge::Generic, SECRET, b"", Some(value.as_bytes())),
            Err(SignatureError::Mismatch { header: "X-Gitfleet-Signature" })
        );
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        let token = |given: &[u8]| verify(Forge::GitLab, b"s3cret-token", b"ignored", Some(given));
        let mismatch = Err(SignatureError::Mismatch { header: "X-Gitlab-Token" });
        assert_eq!(token(b"s3cret-token"), Ok(()));
        assert_eq!(token(b"s3cret-tokem"), mismatch);
        assert_eq!(token(b"s3cret-token "), mismatch);
        assert_eq!(token(b"s3cret"), mismatch);
        assert_eq!(token(b""), mismatch);
    }

    #[test]
    fn errors_never_show_the_value() {
        let value = format!("sha256={}", "f".repeat(64));
        let error = github(SECRET, BODY, &value).unwrap_err().to_string();
        assert_eq!(error, "X-Hub-Signature-256 does not match the delivery");
        let error = verify(Forge::GitLab, b"token", b"", Some(b"guess")).unwrap_err().to_string();
        assert!(!error.contains("guess") && !error.contains("token\""), "{error}");
    }
}
