//! `--age-identity` on the command line (`validate`, `plan`, `apply`): age-encrypted secrets
//! in real repositories on disk, decrypted with an identity file the test writes, from a
//! directory and from a Git commit, by flag and by `GITFLEET_AGE_IDENTITY`. Encryption uses
//! the age crate, as `age -r` would. The plaintext never reaches the output.

use std::process::Command;

use crate::support::GitRepo;
use age::secrecy::ExposeSecret;
use age::x25519::Identity;
use tempfile::TempDir;

const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n";

const SHOP: &str = "\
services:
  db:
    image: postgres:16
    secrets: [db_password]
secrets:
  db_password:
    file: ./secrets/db_password.age
";

const PLAINTEXT: &str = "correct-horse-battery-staple";

/// A repository directory whose shop secret is encrypted to `to`, and an identity file
/// holding `held` (with a comment line, as age-keygen writes it).
struct Case {
    repo: TempDir,
    identity_file: std::path::PathBuf,
}

fn case(to: &Identity, held: &Identity) -> Case {
    let repo = TempDir::new().unwrap();
    let write = |path: &str, bytes: &[u8]| {
        let path = repo.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write("fleet.yaml", FLEET.as_bytes());
    write("apps/shop/compose.yaml", SHOP.as_bytes());
    let encrypted = age::encrypt(&to.to_public(), PLAINTEXT.as_bytes()).unwrap();
    write("apps/shop/secrets/db_password.age", &encrypted);
    let identity_file = repo.path().join("gitfleet.key");
    let text = format!(
        "# created: 2026-11-22\n# public key: {}\n{}\n",
        held.to_public(),
        held.to_string().expose_secret()
    );
    std::fs::write(&identity_file, text).unwrap();
    Case { repo, identity_file }
}

fn gitfleet(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command.args(args).env_remove("GITFLEET_AGE_IDENTITY");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run gitfleet");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(!stdout.contains(PLAINTEXT) && !stderr.contains(PLAINTEXT), "{stdout}{stderr}");
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn the_identity_decrypts_the_secret() {
    let key = Identity::generate();
    let case = case(&key, &key);
    let dir = case.repo.path().to_str().unwrap();
    let identity = case.identity_file.to_str().unwrap();
    let (code, stdout, stderr) = gitfleet(&["validate", dir, "--age-identity", identity], &[]);
    assert_eq!(
        (code, stdout.trim()),
        (0, "ok: 1 hosts, 1 apps, 1 services, 1 replicas"),
        "{stderr}"
    );

    // The same through the environment.
    let (code, _, stderr) = gitfleet(&["validate", dir], &[("GITFLEET_AGE_IDENTITY", identity)]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn from_a_git_commit_too() {
    let key = Identity::generate();
    let case = case(&key, &key);
    // GitRepo commits text and age's binary format is not: commit the armored form.
    let armored = age::encrypt_and_armor(&key.to_public(), PLAINTEXT.as_bytes()).unwrap();
    let git = GitRepo::new(&[
        ("fleet.yaml", FLEET),
        ("apps/shop/compose.yaml", SHOP),
        ("apps/shop/secrets/db_password.age", &armored),
    ]);
    let repo = git.path().to_str().unwrap();
    let identity = case.identity_file.to_str().unwrap();
    let (code, stdout, stderr) =
        gitfleet(&["validate", "--repo", repo, "--age-identity", identity], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_wrong_identity_is_a_located_diagnostic_naming_our_recipient() {
    let (theirs, ours) = (Identity::generate(), Identity::generate());
    let case = case(&theirs, &ours);
    let dir = case.repo.path().to_str().unwrap();
    let identity = case.identity_file.to_str().unwrap();
    let (code, stdout, _) =
        gitfleet(&["validate", dir, "--age-identity", identity, "--format", "json"], &[]);
    assert_eq!(code, 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{stdout}");
    let d = &diagnostics[0];
    let located = format!(
        "{}:{}:{} {}",
        d["file"].as_str().unwrap(),
        d["line"],
        d["column"],
        d["code"].as_str().unwrap()
    );
    assert_eq!(located, "apps/shop/compose.yaml:7:11 secret-decrypt");
    let hint = d["hint"].as_str().unwrap();
    assert!(hint.contains(&format!("age -r {}", ours.to_public())), "{hint}");
    assert!(!hint.contains(&theirs.to_public().to_string()), "{hint}");

    // plan refuses before it contacts any host, with the same diagnostic.
    let (code, _, stderr) = gitfleet(&["plan", dir, "--age-identity", identity], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("apps/shop/compose.yaml:7:11: error[secret-decrypt]"), "{stderr}");
}

#[test]
fn without_an_identity_the_hint_names_the_option() {
    let key = Identity::generate();
    let case = case(&key, &key);
    let (code, stdout, _) = gitfleet(&["validate", case.repo.path().to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("error[secret-decrypt]"), "{stdout}");
    assert!(stdout.contains("--age-identity FILE or GITFLEET_AGE_IDENTITY"), "{stdout}");
}

#[test]
fn a_bad_identity_file_names_the_file_and_line_but_not_the_key() {
    let key = Identity::generate();
    let case = case(&key, &key);
    let secret_key = key.to_string().expose_secret().to_string();
    // Damage the key's last character: still key-shaped, no longer valid.
    let damaged = format!(
        "{}{}",
        &secret_key[..secret_key.len() - 1],
        if secret_key.ends_with('Q') { 'P' } else { 'Q' }
    );
    std::fs::write(&case.identity_file, format!("# comment\n\n{damaged}\n")).unwrap();
    let identity = case.identity_file.to_str().unwrap();
    for command in ["validate", "plan", "apply"] {
        let (code, _, stderr) = gitfleet(
            &[command, case.repo.path().to_str().unwrap(), "--age-identity", identity],
            &[],
        );
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("{identity}: line 3: not an age X25519 identity")),
            "{stderr}"
        );
        assert!(!stderr.contains(&damaged[20..]), "{stderr}");
    }
}
