//! age-encrypted secret files: recognising them, decrypting them with the identities gitfleet
//! holds, and parsing an age identity file. Pure like the rest of the model: the identities
//! come in as values ([`Identities`], built by the CLI or the controller from its
//! configuration); nothing here reads a file.
//!
//! # Guarantees
//!
//! * Neither a secret key nor a decrypted plaintext appears in any `Debug` or `Display`
//!   output or error message produced here: [`Identities`] shows only its recipients (public
//!   keys), and a failure says what went wrong, never with what content.
//! * Only X25519 identities (`AGE-SECRET-KEY-1...`) are supported: no passphrases (they would
//!   need a prompt) and no plugins (they would run programs).

use std::fmt;

use age::x25519::Identity;

/// The first line of a binary age file.
const BINARY_HEADER: &[u8] = b"age-encryption.org/v1";
/// The first line of an ASCII-armored age file.
const ARMOR_HEADER: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// The file extension `age` gives encrypted files.
const EXTENSION: &str = ".age";

/// The age X25519 identities gitfleet decrypts secrets with. `Debug` shows the recipients
/// only.
#[derive(Clone, Default)]
pub struct Identities(Vec<Identity>);

impl Identities {
    pub fn new(identities: Vec<Identity>) -> Self {
        Identities(identities)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The public keys (`age1...`) files must be encrypted to for gitfleet to read them, in
    /// the order the identities were given. Public: safe to print.
    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|identity| identity.to_public().to_string()).collect()
    }

    fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|identity| identity as &dyn age::Identity)
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities").field("recipients", &self.recipients()).finish()
    }
}

impl From<Vec<Identity>> for Identities {
    fn from(identities: Vec<Identity>) -> Self {
        Identities(identities)
    }
}

/// Parses an age identity file: one `AGE-SECRET-KEY-1...` a line; blank lines and lines
/// starting with `#` are ignored. The error names the line (1-based) and never repeats its
/// content, which may be a secret key.
pub fn parse_identities(text: &str) -> Result<Identities, String> {
    let mut identities = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = i + 1;
        if line.starts_with("AGE-PLUGIN-") {
            return Err(format!(
                "line {number}: age plugin identities are not supported; use an X25519 identity \
                 (AGE-SECRET-KEY-1..., made by age-keygen)"
            ));
        }
        match line.parse::<Identity>() {
            Ok(identity) => identities.push(identity),
            Err(reason) => {
                return Err(format!(
                    "line {number}: not an age X25519 identity (AGE-SECRET-KEY-1...): {reason}"
                ));
            }
        }
    }
    if identities.is_empty() {
        return Err("no identity in the file (expected lines like AGE-SECRET-KEY-1...)".into());
    }
    Ok(Identities(identities))
}

/// Whether the secret file at `path` with content `bytes` is age-encrypted: by its `.age`
/// extension, or by an age header (binary or armored) whatever its name.
pub fn is_encrypted(path: &str, bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    path.ends_with(EXTENSION)
        || bytes.starts_with(BINARY_HEADER)
        || bytes[start..].starts_with(ARMOR_HEADER)
}

/// Why a secret could not be decrypted. The messages name no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptFailure {
    /// gitfleet was given no identity at all.
    NoIdentity,
    /// None of the identities is a recipient of the file.
    NoMatchingIdentity,
    /// Encrypted with a passphrase, which gitfleet cannot type.
    Passphrase,
    /// Not an age file, or damaged.
    Corrupt(String),
}

impl fmt::Display for DecryptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecryptFailure::NoIdentity => write!(f, "gitfleet was given no age identity"),
            DecryptFailure::NoMatchingIdentity => {
                write!(f, "it is not encrypted to any identity gitfleet holds")
            }
            DecryptFailure::Passphrase => write!(f, "it is encrypted with a passphrase"),
            DecryptFailure::Corrupt(why) => write!(f, "it is not a readable age file ({why})"),
        }
    }
}

/// Decrypts `bytes` (binary or armored age) with the first of `identities` that is one of
/// its recipients.
pub fn decrypt(bytes: &[u8], identities: &Identities) -> Result<Vec<u8>, DecryptFailure> {
    use std::io::Read;

    use age::DecryptError;

    let corrupt = |error: &DecryptError| {
        DecryptFailure::Corrupt(match error {
            DecryptError::InvalidHeader | DecryptError::UnknownFormat => {
                "the header is missing or invalid".to_string()
            }
            DecryptError::InvalidMac => "the header MAC does not match".to_string(),
            DecryptError::DecryptionFailed => "the payload does not decrypt".to_string(),
            DecryptError::KeyDecryptionFailed => "the file key does not decrypt".to_string(),
            DecryptError::Io(e) => format!("truncated or malformed: {e}"),
            _ => "it cannot be decrypted".to_string(),
        })
    };
    let reader = age::armor::ArmoredReader::new(bytes);
    let decryptor = age::Decryptor::new_buffered(reader).map_err(|e| corrupt(&e))?;
    if decryptor.is_scrypt() {
        return Err(DecryptFailure::Passphrase);
    }
    if identities.is_empty() {
        return Err(DecryptFailure::NoIdentity);
    }
    let mut stream = decryptor.decrypt(identities.as_dyn()).map_err(|e| match e {
        DecryptError::NoMatchingKeys => DecryptFailure::NoMatchingIdentity,
        other => corrupt(&other),
    })?;
    let mut plaintext = Vec::new();
    stream.read_to_end(&mut plaintext).map_err(|e| {
        DecryptFailure::Corrupt(format!("the payload does not decrypt: {}", e.kind()))
    })?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_text(identity: &Identity) -> String {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_string()
    }

    #[test]
    fn identity_file_with_comments_and_several_keys() {
        let (a, b) = (Identity::generate(), Identity::generate());
        let text = format!(
            "# created: today\n# public key: {}\n{}\n\n  {}  \r\n",
            a.to_public(),
            identity_text(&a),
            identity_text(&b)
        );
        let identities = parse_identities(&text).unwrap();
        assert_eq!(
            identities.recipients(),
            vec![a.to_public().to_string(), b.to_public().to_string()]
        );
    }

    #[test]
    fn identity_file_errors_name_the_line_not_the_content() {
        let a = Identity::generate();
        let text = format!("# key\n{}\nAGE-SECRET-KEY-1NOTAKEY\n", identity_text(&a));
        let error = parse_identities(&text).unwrap_err();
        assert!(error.starts_with("line 3: "), "{error}");
        assert!(!error.contains("NOTAKEY"), "{error}");
        assert!(parse_identities("# nothing\n\n").unwrap_err().contains("no identity"));
        assert!(parse_identities("AGE-PLUGIN-YUBIKEY-1XYZ\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn debug_shows_recipients_never_keys() {
        let a = Identity::generate();
        let identities = Identities::new(vec![a.clone()]);
        let debug = format!("{identities:?}");
        assert!(debug.contains(&a.to_public().to_string()), "{debug}");
        assert!(!debug.contains(&identity_text(&a)), "{debug}");
        assert!(!debug.to_ascii_uppercase().contains("AGE-SECRET-KEY"), "{debug}");
    }

    #[test]
    fn detection_by_extension_or_header() {
        assert!(is_encrypted("apps/a/secrets/x.age", b"anything"));
        assert!(is_encrypted("apps/a/x", b"age-encryption.org/v1\n-> X25519 abc\n"));
        assert!(is_encrypted("apps/a/x", b"\n-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"));
        assert!(!is_encrypted("apps/a/x.txt", b"hunter2"));
        assert!(!is_encrypted("apps/a/x", b""));
    }

    #[test]
    fn decrypts_binary_and_armored_and_reports_each_failure() {
        let ours = Identity::generate();
        let theirs = Identity::generate();
        let binary = age::encrypt(&ours.to_public(), b"s3cret").unwrap();
        let armored = age::encrypt_and_armor(&ours.to_public(), b"s3cret").unwrap();
        let held = Identities::new(vec![theirs.clone(), ours]);
        assert_eq!(decrypt(&binary, &held).unwrap(), b"s3cret");
        assert_eq!(decrypt(armored.as_bytes(), &held).unwrap(), b"s3cret");

        let other = Identities::new(vec![theirs]);
        assert_eq!(decrypt(&binary, &other), Err(DecryptFailure::NoMatchingIdentity));
        assert_eq!(decrypt(&binary, &Identities::default()), Err(DecryptFailure::NoIdentity));
        assert!(matches!(decrypt(b"plain text", &held), Err(DecryptFailure::Corrupt(_))));
        let mut damaged = binary.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(decrypt(&damaged, &held), Err(DecryptFailure::Corrupt(_))));
        let truncated = &binary[..binary.len() - 5];
        assert!(matches!(decrypt(truncated, &held), Err(DecryptFailure::Corrupt(_))));
    }

    #[test]
    fn passphrase_files_are_named_as_such() {
        let passphrase = age::secrecy::SecretString::from("correct horse".to_string());
        let mut recipient = age::scrypt::Recipient::new(passphrase);
        recipient.set_work_factor(2);
        let encrypted = age::encrypt(&recipient, b"x").unwrap();
        let held = Identities::new(vec![Identity::generate()]);
        assert_eq!(decrypt(&encrypted, &held), Err(DecryptFailure::Passphrase));
    }

    proptest::proptest! {
        /// Whatever follows an age header, decrypting fails cleanly or succeeds; it never
        /// panics.
        #[test]
        fn arbitrary_bytes_after_a_header_never_panic(
            armored in proptest::bool::ANY,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        ) {
            let held = Identities::new(vec![Identity::generate()]);
            let mut bytes = if armored { ARMOR_HEADER.to_vec() } else { BINARY_HEADER.to_vec() };
            bytes.push(b'\n');
            bytes.extend(tail);
            let _ = decrypt(&bytes, &held);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let held = Identities::new(vec![Identity::generate()]);
        for input in [
            &b"age-encryption.org/v1\n"[..],
            b"age-encryption.org/v1\n-> X25519\n--- \n",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!\n-----END AGE ENCRYPTED FILE-----\n",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n",
            b"\xff\xfe\x00",
        ] {
            assert!(decrypt(input, &held).is_err());
        }
    }
}
