//! `sync` against real repositories on disk: a bare "origin" served over smart HTTP on
//! 127.0.0.1 by `git http-backend` (behind basic authentication), a working copy that commits
//! and pushes to it, and the controller's [`Mirror`] of it. Also the file-system watcher on a
//! local repository, and status commits written back, locally and by push.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{BareRepo, GitHttpServer, GitRepo};
use gitfleet::git::{Credentials, GitError, Mirror, watch_branch, write_status};
use tempfile::TempDir;

const USER: &str = "fleet-bot";
const TOKEN: &str = "tok-3f9a1c-very-secret";

/// An origin with `main` (from a working copy) behind an HTTP server that wants `USER:TOKEN`.
struct Remote {
    origin: BareRepo,
    work: GitRepo,
    server: GitHttpServer,
    cache: TempDir,
}

impl Remote {
    fn new() -> Self {
        let origin = BareRepo::new("origin.git");
        let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
        work.push(&origin.path(), "HEAD:refs/heads/main");
        let server = GitHttpServer::start(origin.root(), Some((USER, TOKEN)));
        Remote { origin, work, server, cache: TempDir::new().unwrap() }
    }

    fn url(&self) -> String {
        self.server.url(self.origin.name())
    }

    fn token() -> Credentials {
        Credentials::Token { username: USER.into(), token: TOKEN.into() }
    }

    fn mirror(&self) -> Mirror {
        Mirror::open(&self.url(), self.cache.path(), Self::token()).expect("open the mirror")
    }

    /// Commits a change in the working copy and pushes it to origin's `main`.
    fn commit_and_push(&self, text: &str) -> String {
        let commit = self.work.commit(&[("apps/web/compose.yaml", text)], &[]);
        self.work.push(&self.origin.path(), "HEAD:refs/heads/main");
        commit
    }
}

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())).collect()
}

/// Every file path of `commit`'s tree, with its content.
fn tree_of(repository: &git2::Repository, commit: &str) -> BTreeMap<String, String> {
    let commit = repository.find_commit(git2::Oid::from_str(commit).unwrap()).unwrap();
    let mut found = BTreeMap::new();
    commit
        .tree()
        .unwrap()
        .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if let Ok(blob) = entry.to_object(repository).and_then(|o| o.peel_to_blob()) {
                let text = String::from_utf8_lossy(blob.content()).into_owned();
                found.insert(format!("{dir}{}", entry.name().unwrap()), text);
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
    found
}

fn parents(repository: &git2::Repository, commit: &str) -> Vec<String> {
    let commit = repository.find_commit(git2::Oid::from_str(commit).unwrap()).unwrap();
    commit.parent_ids().map(|id| id.to_string()).collect()
}

// --- fetching ---------------------------------------------------------------------------

#[test]
fn clone_then_fetch_a_new_commit_of_only_the_watched_branch() {
    let remote = Remote::new();
    remote.work.push(&remote.origin.path(), "HEAD:refs/heads/other");
    let mirror = remote.mirror();
    assert!(!mirror.is_local());
    assert_eq!(mirror.location(), remote.url());

    let first = mirror.fetch_branch("main").unwrap();
    assert_eq!(first.commit, remote.work.head());
    let second = remote.commit_and_push("services: {}\n");
    let fetched = mirror.fetch_branch("main").unwrap();
    assert_eq!(fetched.commit, second);
    assert_eq!(fetched.author, "Test <test@example.test>");

    let repository = mirror.repository();
    assert!(repository.is_bare());
    let tree = gitfleet::git::read_commit(repository, &fetched.commit).unwrap();
    assert_eq!(tree.len(), 2, "fleet.yaml and apps/web/compose.yaml");
    assert!(repository.find_reference("refs/heads/other").is_err(), "fetched only main");
    // The token went over the wire (the server wants it) but never into the cache's config.
    let config = std::fs::read_to_string(repository.path().join("config")).unwrap();
    assert!(!config.contains(TOKEN), "{config}");
    assert!(remote.server.served().iter().any(|s| s.status == 401), "auth was asked for");

    // A second Mirror on the same cache reuses the clone.
    let again = remote.mirror();
    assert_eq!(again.repository().path(), repository.path());
    assert_eq!(again.fetch_branch("main").unwrap().commit, second);
}

#[test]
fn fetch_a_pull_request_head_into_the_preview_namespace() {
    let remote = Remote::new();
    let pr = remote.work.commit(&[("apps/api/compose.yaml", "services: {}\n")], &[]);
    remote.work.push(&remote.origin.path(), "HEAD:refs/pull/1/head");
    let mirror = remote.mirror();

    let fetched = mirror.fetch_ref("refs/pull/1/head").unwrap();
    assert_eq!(fetched.commit, pr);
    let local = mirror.repository().refname_to_id("refs/gitfleet/preview/pull/1/head").unwrap();
    assert_eq!(local.to_string(), pr);
    assert!(mirror.repository().find_reference("refs/heads/main").is_err());

    let missing = mirror.fetch_ref("refs/pull/2/head").unwrap_err();
    assert!(matches!(missing, GitError::RefNotFound { .. }), "{missing:?}");
    assert_eq!(missing.to_string(), format!("refs/pull/2/head not found in {}", remote.url()));
    let invalid = mirror.fetch_ref("pull/1/head").unwrap_err();
    assert!(matches!(invalid, GitError::InvalidName { .. }), "{invalid:?}");
}

#[test]
fn a_missing_branch_is_its_own_error() {
    let remote = Remote::new();
    let mirror = remote.mirror();
    let error = mirror.fetch_branch("nope").unwrap_err();
    assert!(matches!(error, GitError::BranchNotFound { .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("branch nope not found in {}", remote.url()));

    // The same for a local repository.
    let local = Mirror::open(
        &remote.origin.path().display().to_string(),
        Path::new("/nonexistent"),
        Credentials::None,
    )
    .unwrap();
    assert!(local.is_local());
    let error = local.fetch_branch("nope").unwrap_err();
    assert!(matches!(error, GitError::BranchNotFound { .. }), "{error:?}");
    assert_eq!(local.fetch_branch("main").unwrap().commit, remote.work.head());
}

#[test]
fn unreachable_locations_fail_with_the_url_and_gits_message() {
    let cache = TempDir::new().unwrap();
    let error = Mirror::open("file:///nonexistent/x.git", cache.path(), Credentials::None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("file:///nonexistent/x.git"), "{error}");
    assert!(!error.contains("empty"), "{error}");

    let url = "http://127.0.0.1:1/x.git";
    let mirror = Mirror::open(url, cache.path(), Credentials::None).unwrap();
    let error = mirror.fetch_branch("main").unwrap_err();
    assert!(matches!(error, GitError::Fetch { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with(&format!("cannot fetch refs/heads/main from {url}: ")), "{text}");
    assert!(text.len() > format!("cannot fetch refs/heads/main from {url}: ").len(), "{text}");
    assert!(!text.contains("empty"), "{text}");
}

#[test]
fn credentials_never_appear_in_errors() {
    let cache = TempDir::new().unwrap();
    let url = "https://user:secret@127.0.0.1:1/x.git";
    let mirror = Mirror::open(url, cache.path(), Credentials::None).unwrap();
    assert_eq!(mirror.location(), "https://user:***@127.0.0.1:1/x.git");
    let error = mirror.fetch_branch("main").unwrap_err();
    for shown in [error.to_string(), format!("{error:?}"), format!("{mirror:?}")] {
        assert!(!shown.contains("secret"), "{shown}");
    }
    assert!(error.to_string().contains("https://user:***@127.0.0.1:1/x.git"), "{error}");

    // The SSH transport is built in (no "unsupported URL protocol"); a passphrase is a secret.
    let key = Credentials::SshKey {
        username: "git".into(),
        private_key: cache.path().join("id_ed25519"),
        passphrase: Some("pass-phrase-789".into()),
    };
    let ssh = Mirror::open("ssh://git@127.0.0.1:1/x.git", cache.path(), key)
        .unwrap()
        .fetch_branch("main")
        .unwrap_err()
        .to_string();
    assert!(
        ssh.starts_with("cannot fetch refs/heads/main from ssh://git@127.0.0.1:1/x.git"),
        "{ssh}"
    );
    assert!(!ssh.contains("unsupported") && !ssh.contains("pass-phrase-789"), "{ssh}");

    // Against a real server: credentials in the URL work, and a wrong password or token
    // fails (after asking once) without showing it.
    let remote = Remote::new();
    let with =
        |credentials: &str| remote.url().replace("http://", &format!("http://{credentials}@"));
    let embedded = Mirror::open(&with(&format!("{USER}:{TOKEN}")), cache.path(), Credentials::None);
    assert_eq!(embedded.unwrap().fetch_branch("main").unwrap().commit, remote.work.head());
    assert_no_file_contains(cache.path(), TOKEN);

    let wrong =
        Mirror::open(&with(&format!("{USER}:wrong-pw-123")), cache.path(), Credentials::None)
            .unwrap()
            .fetch_branch("main")
            .unwrap_err()
            .to_string();
    assert!(!wrong.contains("wrong-pw-123") && wrong.contains(&format!("{USER}:***@")), "{wrong}");

    let before = remote.server.served().len();
    let token = Credentials::Token { username: USER.into(), token: "bad-token-456".into() };
    let wrong = Mirror::open(&remote.url(), cache.path(), token)
        .unwrap()
        .fetch_branch("main")
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("rejected the credentials") && !wrong.contains("bad-token-456"),
        "{wrong}"
    );
    let asked = remote.server.served().len() - before;
    assert!(asked <= 3, "the server was asked {asked} times");
}

/// No file under `dir` (the mirror's cache: config, FETCH_HEAD, reflogs ...) holds `secret`.
fn assert_no_file_contains(dir: &Path, secret: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_file_contains(&path, secret);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds the secret", path.display());
        }
    }
}

// --- watching a local repository --------------------------------------------------------

/// Counts the callbacks.
fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + 'static) {
    let count = Arc::new(AtomicUsize::new(0));
    let inner = count.clone();
    (count, move || {
        inner.fetch_add(1, Ordering::SeqCst);
    })
}

fn wait_for(count: &AtomicUsize, expected: usize, within: Duration) -> Duration {
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < expected && start.elapsed() < within {
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn local_mirror(work: &GitRepo) -> Mirror {
    Mirror::open(&work.path().display().to_string(), Path::new("/nonexistent"), Credentials::None)
        .unwrap()
}

#[test]
fn the_watcher_fires_within_a_second_of_a_commit_and_stops_on_drop() {
    let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
    let mirror = local_mirror(&work);
    let (count, callback) = counter();
    let watch = watch_branch(mirror.repository(), &work.branch(), callback).unwrap();

    work.commit(&[("fleet.yaml", "hosts: {a: {}}\n")], &[]);
    let took = wait_for(&count, 1, Duration::from_secs(1));
    assert_eq!(count.load(Ordering::SeqCst), 1, "no callback within {took:?}");

    drop(watch);
    work.commit(&[("fleet.yaml", "hosts: {b: {}}\n")], &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count.load(Ordering::SeqCst), 1, "fired after the guard was dropped");
}

#[test]
fn the_watcher_fires_once_for_a_burst_of_commits() {
    let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
    let mirror = local_mirror(&work);
    let (count, callback) = counter();
    let _watch = watch_branch(mirror.repository(), &work.branch(), callback).unwrap();

    for i in 0..5 {
        work.commit(&[("fleet.yaml", &format!("# {i}\nhosts: {{}}\n"))], &[]);
    }
    wait_for(&count, 1, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn the_watcher_ignores_status_branch_commits_and_unmoved_refs() {
    let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
    let mirror = local_mirror(&work);
    let (count, callback) = counter();
    let _watch = watch_branch(mirror.repository(), &work.branch(), callback).unwrap();

    let status = files(&[("status.json", "{}")]);
    write_status(&mirror, "gitfleet/status", &status, "status", false).unwrap().unwrap();
    let status = files(&[("status.json", "{\"ok\": true}")]);
    write_status(&mirror, "gitfleet/status", &status, "status", true).unwrap().unwrap();
    // Rewriting the refs without moving the branch (packing them) is no change either.
    let packed = std::process::Command::new("git")
        .args(["pack-refs", "--all"])
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(packed.success());
    assert!(work.path().join(".git/packed-refs").exists());
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(count.load(Ordering::SeqCst), 0, "a status commit or pack-refs triggered a sync");

    // Still watching the branch itself.
    work.commit(&[("fleet.yaml", "hosts: {a: {}}\n")], &[]);
    wait_for(&count, 1, Duration::from_secs(1));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

// --- status write-back ------------------------------------------------------------------

#[test]
fn status_on_a_local_repository_is_an_orphan_branch_updated_in_place() {
    let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
    let head = work.head();
    let mirror = local_mirror(&work);
    let repository = mirror.repository();
    let branch = "gitfleet/status";

    let first = files(&[("status.json", "{}"), ("apps/web/status.json", "{\"replicas\": 2}")]);
    let c1 = write_status(&mirror, branch, &first, "status: deployed", false).unwrap().unwrap();
    assert!(parents(repository, &c1).is_empty(), "the first status commit is an orphan");
    let tree = tree_of(repository, &c1);
    assert_eq!(tree.keys().collect::<Vec<_>>(), ["apps/web/status.json", "status.json"]);
    let commit = repository.find_commit(git2::Oid::from_str(&c1).unwrap()).unwrap();
    assert_eq!(commit.committer().name().ok(), Some("gitfleet"));
    assert_eq!(commit.author().email().ok(), Some("gitfleet@localhost"));
    assert_eq!(commit.message().ok(), Some("status: deployed"));

    assert_eq!(write_status(&mirror, branch, &first, "again", false).unwrap(), None);

    let second = files(&[("status.json", "{\"ok\": true}")]);
    let c2 = write_status(&mirror, branch, &second, "status: healthy", false).unwrap().unwrap();
    assert_eq!(parents(repository, &c2), [c1]);
    assert_eq!(tree_of(repository, &c2).len(), 1, "exactly the files given");

    // The deployed branch, HEAD, and the working tree are untouched.
    assert_eq!(work.head(), head);
    assert!(!work.path().join("status.json").exists());
    let statuses = repository.statuses(None).unwrap();
    assert!(statuses.is_empty(), "the working tree changed");

    let bad = write_status(&mirror, branch, &files(&[("../x", "")]), "m", false).unwrap_err();
    assert!(matches!(bad, GitError::InvalidName { .. }), "{bad:?}");
}

#[test]
fn a_checked_out_status_branch_is_refused() {
    let work = GitRepo::new(&[("fleet.yaml", "hosts: {}\n")]);
    let mirror = local_mirror(&work);
    let branch = work.branch();
    let error = write_status(&mirror, &branch, &files(&[("s", "x")]), "m", false).unwrap_err();
    assert!(matches!(error, GitError::StatusCheckedOut { .. }), "{error:?}");
}

#[test]
fn status_is_pushed_to_origin_and_main_is_untouched() {
    let remote = Remote::new();
    let main = remote.origin.tip("refs/heads/main").unwrap();
    let mirror = remote.mirror();
    mirror.fetch_branch("main").unwrap();
    let branch = "gitfleet/status";
    let status_ref = "refs/heads/gitfleet/status";

    let first = files(&[("status.json", "{}")]);
    let c1 = write_status(&mirror, branch, &first, "status 1", true).unwrap().unwrap();
    assert_eq!(remote.origin.tip(status_ref).as_deref(), Some(c1.as_str()));
    assert!(parents(&remote.origin.open(), &c1).is_empty());

    assert_eq!(write_status(&mirror, branch, &first, "status 1", true).unwrap(), None);

    // Another controller (its own cache) writes next: ours commits on top of it.
    let cache = TempDir::new().unwrap();
    let other = Mirror::open(&remote.url(), cache.path(), Remote::token()).unwrap();
    let c2 =
        write_status(&other, branch, &files(&[("status.json", "2")]), "s2", true).unwrap().unwrap();
    assert_eq!(parents(&remote.origin.open(), &c2), [c1.as_str()]);
    let c3 = write_status(&mirror, branch, &files(&[("status.json", "3")]), "s3", true)
        .unwrap()
        .unwrap();
    assert_eq!(parents(&remote.origin.open(), &c3), [c2]);
    assert_eq!(remote.origin.tip(status_ref).as_deref(), Some(c3.as_str()));

    assert_eq!(remote.origin.tip("refs/heads/main"), Some(main.clone()));
    assert_eq!(mirror.fetch_branch("main").unwrap().commit, main);
}

#[test]
fn a_rejected_status_push_is_retried_once() {
    let remote = Remote::new();
    let mirror = remote.mirror();
    let branch = "gitfleet/status";
    // The server refuses the first push it sees, then accepts.
    let marker = remote.origin.path().join("reject-once");
    std::fs::write(&marker, "").unwrap();
    remote.origin.hook(
        "pre-receive",
        &format!("if [ -e '{0}' ]; then rm '{0}'; echo 'busy' >&2; exit 1; fi", marker.display()),
    );
    let c1 = write_status(&mirror, branch, &files(&[("s", "1")]), "s1", true).unwrap().unwrap();
    assert_eq!(remote.origin.tip("refs/heads/gitfleet/status").as_deref(), Some(c1.as_str()));

    // A server that always refuses: an error naming the URL, after two attempts.
    remote.origin.hook("pre-receive", "echo 'no' >&2; exit 1");
    let error = write_status(&mirror, branch, &files(&[("s", "2")]), "s2", true).unwrap_err();
    assert!(matches!(error, GitError::Push { .. }), "{error:?}");
    assert!(error.to_string().contains(&remote.url()), "{error}");
    assert_eq!(remote.origin.tip("refs/heads/gitfleet/status").as_deref(), Some(c1.as_str()));
}
