//! An app's configs and secrets: their files read from the app's folder (secrets decrypted
//! when age-encrypted), and the problems of reading them.

use super::*;

/// The configs or secrets of one app. `identities` is `Some` for secrets: encrypted secret
/// files are decrypted with them. Configs are never decrypted, whatever their name.
pub(super) fn file_defs(
    section: &str,
    raw: &BTreeMap<String, RawFileDef>,
    folder: &str,
    tree: &SourceTree,
    identities: Option<&Identities>,
    limits: &Limits,
    findings: &mut Findings<'_>,
) -> BTreeMap<String, FileDef> {
    let mut defs = BTreeMap::new();
    for (name, def) in raw {
        let path = Path::of(&[section, name]);
        let (repo_path, content) = match (&def.file, &def.content) {
            (Some(file), None) => {
                // On failure the entry stays declared (the load fails anyway), so references
                // to it do not add a second, misleading error.
                match read_app_file(folder, file, tree, limits, &path.key("file"), findings) {
                    None => (None, Default::default()),
                    Some((repo_path, bytes)) => match identities {
                        Some(identities) if encryption::is_encrypted(&repo_path, &bytes) => {
                            match encryption::decrypt(&bytes, identities) {
                                Ok(plaintext) => (Some(repo_path), std::sync::Arc::new(plaintext)),
                                Err(failure) => {
                                    let (message, hint) =
                                        decrypt_problem(name, &repo_path, &failure, identities);
                                    findings
                                        .add(path.key("file"), "secret-decrypt", message)
                                        .with_hint(hint);
                                    (Some(repo_path), Default::default())
                                }
                            }
                        }
                        _ => (Some(repo_path), bytes),
                    },
                }
            }
            (None, Some(content)) => (None, std::sync::Arc::new(content.clone().into_bytes())),
            _ => {
                findings
                    .add(
                        path,
                        "invalid-value",
                        format!(
                            "{section} entry `{name}` needs exactly one of `file` or `content`"
                        ),
                    )
                    .with_hint("name a file in the app's folder with `file: ./name`");
                continue;
            }
        };
        let digest = crate::model::digest::sha256_hex(&content);
        defs.insert(name.clone(), FileDef { path: repo_path, digest, content });
    }
    defs
}

/// What to say when secret `name` in `repo_path` does not decrypt: the message, and a hint
/// naming the recipients gitfleet holds (public keys, safe to show).
pub(super) fn decrypt_problem(
    name: &str,
    repo_path: &str,
    failure: &DecryptFailure,
    identities: &Identities,
) -> (String, String) {
    let recipients = identities.recipients();
    let message = format!("secret `{name}`: cannot decrypt {repo_path}: {failure}");
    let encrypt = match recipients.as_slice() {
        [] => format!("age -r <gitfleet's recipient> -o {repo_path} PLAINTEXT_FILE"),
        [only] => format!("age -r {only} -o {repo_path} PLAINTEXT_FILE"),
        several => {
            let flags: Vec<String> = several.iter().map(|r| format!("-r {r}")).collect();
            format!("age {} -o {repo_path} PLAINTEXT_FILE", flags.join(" "))
        }
    };
    let held = if recipients.is_empty() {
        String::new()
    } else {
        format!(" (gitfleet holds the identities of {})", recipients.join(", "))
    };
    let hint = match failure {
        DecryptFailure::NoIdentity => format!(
            "give gitfleet its age identity file (--age-identity FILE or GITFLEET_AGE_IDENTITY),              and encrypt the secret to that identity's recipient: {encrypt}"
        ),
        DecryptFailure::NoMatchingIdentity => {
            format!("encrypt it to the recipient of gitfleet's identity: {encrypt}{held}")
        }
        DecryptFailure::Passphrase => format!(
            "gitfleet cannot type a passphrase; encrypt it to the recipient of gitfleet's \
             identity instead: {encrypt}{held}"
        ),
        DecryptFailure::Corrupt(_) => {
            format!("encrypt the secret again and commit the result: {encrypt}{held}")
        }
    };
    (message, hint)
}

/// Reads `relative` (as written in the app file) from the app's folder in the tree. Paths
/// that leave the folder (`..`, absolute) or go through a symbolic link are refused.
pub(super) fn read_app_file(
    folder: &str,
    relative: &str,
    tree: &SourceTree,
    limits: &Limits,
    path: &Path,
    findings: &mut Findings<'_>,
) -> Option<(String, std::sync::Arc<Vec<u8>>)> {
    let hint = format!("keep the file inside {folder}/ and name it relative to it, like ./file");
    if relative.starts_with('/') {
        findings
            .add(path.clone(), "path-escape", format!("{relative:?} is an absolute path"))
            .with_hint(hint);
        return None;
    }
    let mut parts: Vec<&str> = folder.split('/').collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                findings
                    .add(
                        path.clone(),
                        "path-escape",
                        format!("{relative:?} leaves the app's folder with `..`"),
                    )
                    .with_hint(hint);
                return None;
            }
            part => parts.push(part),
        }
    }
    // Every prefix must be a plain directory, and the file itself a plain file.
    for end in folder.split('/').count() + 1..=parts.len() {
        let prefix = parts[..end].join("/");
        if let Some(SourceEntry::Symlink(target)) = tree.get(&prefix) {
            findings
                .add(path.clone(), "path-escape", format!("{prefix} is a symbolic link (to {target:?}); gitfleet does not follow links"))
                .with_hint("commit the file itself instead of a link to it");
            return None;
        }
    }
    let repo_path = parts.join("/");
    match tree.get(&repo_path) {
        Some(SourceEntry::File(bytes)) if bytes.len() as u64 > limits.max_file_size => {
            findings
                .add(
                    path.clone(),
                    "limit",
                    format!(
                        "{repo_path} is {} bytes, more than the limit of {} bytes (limit `max_file_size`)",
                        bytes.len(),
                        limits.max_file_size
                    ),
                )
                .with_hint(limit_hint("max_file_size"));
            None
        }
        Some(SourceEntry::File(bytes)) => Some((repo_path, bytes.clone())),
        Some(SourceEntry::Unreadable(what)) => {
            findings
                .add(path.clone(), "not-a-file", format!("{repo_path} is {what}, not a file"))
                .with_hint("commit a plain file at this path");
            None
        }
        _ => {
            findings
                .add(
                    path.clone(),
                    "missing-file",
                    format!("{repo_path} does not exist in this revision"),
                )
                .with_hint("commit the file, or fix the path (it is relative to the app's folder)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, problems, shop, tree};

    /// A service using config `conf`, declared by `declaration` (the lines under `conf:`).
    fn with_config(declaration: &str) -> String {
        format!(
            "services:\n  web:\n    image: nginx:1.27\n    configs: [conf]\nconfigs:\n  conf:\n{declaration}"
        )
    }

    #[test]
    fn a_file_outside_the_folder_or_missing_is_located_at_its_file_key() {
        check(&[
            (
                &with_config("    file: ../blog/site.conf\n"),
                "apps/shop/compose.yaml:7:11: path-escape: \"../blog/site.conf\" leaves the app's folder with `..`",
            ),
            (
                &with_config("    file: /etc/passwd\n"),
                "apps/shop/compose.yaml:7:11: path-escape: \"/etc/passwd\" is an absolute path",
            ),
            (
                &with_config("    file: ./conf/./site.conf\n"),
                "apps/shop/compose.yaml:7:11: missing-file: apps/shop/conf/site.conf does not exist in this revision",
            ),
        ]);
    }

    #[test]
    fn a_link_a_fifo_or_a_file_over_the_limit_is_refused() {
        let compose = with_config("    file: ./conf/site.conf\n");
        let mut linked = tree(&compose, "");
        linked.insert_symlink("apps/shop/conf", "/etc");
        assert_eq!(
            shop(&linked).unwrap_err(),
            [
                "apps/shop/compose.yaml:7:11: path-escape: apps/shop/conf is a symbolic link (to \"/etc\"); gitfleet does not follow links"
            ]
        );
        let mut fifo = tree(&compose, "");
        fifo.insert_unreadable("apps/shop/conf/site.conf", "a FIFO");
        assert_eq!(
            shop(&fifo).unwrap_err(),
            [
                "apps/shop/compose.yaml:7:11: not-a-file: apps/shop/conf/site.conf is a FIFO, not a file"
            ]
        );
        let mut large = tree(&compose, "settings:\n  limits:\n    max_file_size: 1024\n");
        large.insert_file("apps/shop/conf/site.conf", vec![b'x'; 1025]);
        assert_eq!(
            shop(&large).unwrap_err(),
            [
                "apps/shop/compose.yaml:7:11: limit: apps/shop/conf/site.conf is 1025 bytes, more than the limit of 1024 bytes (limit `max_file_size`)"
            ]
        );
        large.insert_file("apps/shop/conf/site.conf", vec![b'x'; 1024]);
        assert!(shop(&large).is_ok());
    }

    /// The schema refuses both (and neither) before the files are read: one problem, at the
    /// entry's first key.
    #[test]
    fn a_file_and_content_together_or_neither_are_refused_at_the_entry() {
        for declaration in ["    file: ./a.conf\n    content: inline\n", "    name: x\n"] {
            let found = problems(&with_config(declaration), &[("a.conf", "x")]);
            assert_eq!(
                found,
                [
                    "apps/shop/compose.yaml:7:5: invalid-value: `configs.conf` is a mapping, expected exactly one of `file` and `content`"
                ]
            );
        }
    }

    #[test]
    fn files_and_contents_are_read_with_their_digests() {
        let compose = "services:\n  web:\n    image: nginx:1.27\n    configs: [conf, inline]\n    secrets: [token]\nconfigs:\n  conf:\n    file: ./conf/./site.conf\n  inline:\n    content: \"listen 80;\"\nsecrets:\n  token:\n    file: token.txt\n";
        let mut tree = tree(compose, "");
        tree.insert_file("apps/shop/conf/site.conf", b"server {}".to_vec());
        tree.insert_file("apps/shop/token.txt", b"s3cret".to_vec());
        let app = shop(&tree).unwrap();
        let conf = &app.configs["conf"];
        assert_eq!(conf.path.as_deref(), Some("apps/shop/conf/site.conf"));
        assert_eq!(conf.content.as_slice(), b"server {}");
        assert_eq!(conf.digest, crate::model::digest::sha256_hex(b"server {}"));
        let inline = &app.configs["inline"];
        assert_eq!((inline.path.as_deref(), inline.content.as_slice()), (None, &b"listen 80;"[..]));
        assert_eq!(app.secrets["token"].content.as_slice(), b"s3cret");
    }
}
