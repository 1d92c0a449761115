//! A controller restarted while its remote is down deploys the head its cache fetched in an
//! earlier run (`Mirror::cached_head`), and reports the failing fetch meanwhile; the
//! repository task compacts the mirror between fetches.

use std::sync::Arc;
use std::time::Duration;

use gitfleet::controller::Trigger;
use gitfleet::controller::repository::{Published, RepositoryTask, RepositoryView};
use gitfleet::controller::source::Source;
use gitfleet::controller::trigger::Triggers;
use gitfleet::git::MirrorOptions;
use gitfleet::model::LoadOptions;

use crate::support::{BareRepo, GitHttpServer, GitRepo};

const FLEET: &str = "hosts:\n  a: {endpoint: unix:///nonexistent/gitfleet-offline/docker.sock}\n";
const SHOP: &str = "services:\n  web:\n    image: gitfleet/web:1\n";

/// A repository task on `url` with its mirror in `cache`, asked to fetch at once; the first
/// publication.
async fn first_publication(url: &str, cache: &std::path::Path) -> Arc<Published> {
    publication(url, cache, Duration::from_secs(3600)).await
}

/// The first publication of a repository task compacting every `compact_every`.
async fn publication(
    url: &str,
    cache: &std::path::Path,
    compact_every: Duration,
) -> Arc<Published> {
    let options = MirrorOptions { timeout: Duration::from_secs(5), ..MirrorOptions::default() };
    let source = Source::open(url, cache, options, "main", LoadOptions::default(), false).unwrap();
    let triggers = Arc::new(Triggers::new());
    let (task, mut view): (RepositoryTask, RepositoryView) = RepositoryTask::new(
        source,
        triggers.clone(),
        Duration::from_secs(60),
        Duration::from_secs(20),
    );
    let running = tokio::spawn(task.with_compaction(compact_every).run());
    triggers.push(Trigger::Startup);
    tokio::time::timeout(Duration::from_secs(30), view.changed())
        .await
        .expect("published in time")
        .expect("task alive");
    let published = view.borrow_and_update().clone();
    // Let a compaction that follows the publication start before the task is dropped (a
    // blocking job, once started, runs to its end).
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.abort();
    published
}

/// Pack files and loose objects in the bare mirror under `cache`.
fn objects(cache: &std::path::Path) -> (usize, usize) {
    let (mut packs, mut loose) = (0, 0);
    for file in walk(cache) {
        let parent = file.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
        if file.extension().is_some_and(|e| e == "pack") {
            packs += 1;
        } else if parent.is_some_and(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) {
            loose += 1;
        }
    }
    (packs, loose)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_is_compacted_between_fetches() {
    let origin = BareRepo::new("fleet.git");
    let work = GitRepo::new(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", SHOP)]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let server = GitHttpServer::start(origin.root(), None);
    let url = server.url("fleet.git");
    let cache = tempfile::TempDir::new().unwrap();
    let never = Duration::from_secs(3600);
    publication(&url, cache.path(), never).await;
    for tag in ["2", "3"] {
        let app = format!("services:\n  web:\n    image: gitfleet/web:{tag}\n");
        work.commit(&[("apps/shop/compose.yaml", &app)], &[]);
        work.push(&origin.path(), "HEAD:refs/heads/main");
        publication(&url, cache.path(), never).await;
    }
    // Each fetch added objects (a pack each, or loose objects).
    let before = objects(cache.path());
    assert!(before.0 + before.1 > 1, "{before:?}");

    // With an interval of zero, the fetch is followed by a compaction: one pack, nothing loose.
    let app = "services:\n  web:\n    image: gitfleet/web:4\n";
    work.commit(&[("apps/shop/compose.yaml", app)], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let published = publication(&url, cache.path(), Duration::ZERO).await;
    assert_eq!(published.head.as_ref().unwrap().revision.commit, work.head());
    let started = std::time::Instant::now();
    while objects(cache.path()) != (1, 0) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not compacted: {:?} (packs, loose)",
            objects(cache.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("mirror: {before:?} (packs, loose objects) before, (1, 0) after compaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_remote_is_down_deploys_the_cached_head() {
    let origin = BareRepo::new("fleet.git");
    let work = GitRepo::new(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", SHOP)]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let cache = tempfile::TempDir::new().unwrap();

    let server = GitHttpServer::start(origin.root(), None);
    let url = server.url("fleet.git");
    let online = first_publication(&url, cache.path()).await;
    assert!(online.fetch_error.is_none(), "{:?}", online.fetch_error);
    assert_eq!(online.head.as_ref().unwrap().revision.commit, work.head());

    // The remote goes away (connection refused); the controller restarts on the same cache.
    drop(server);
    let offline = first_publication(&url, cache.path()).await;
    let problem = offline.fetch_error.as_ref().expect("the failing fetch is reported");
    assert!(!problem.message.is_empty());
    let head = offline.head.as_ref().expect("the cached head is published");
    assert_eq!(head.revision.commit, work.head());
    assert!(head.model.as_ref().unwrap().apps["shop"].is_ok());

    // Without a cache, nothing to deploy: only the problem.
    let empty = tempfile::TempDir::new().unwrap();
    let nothing = first_publication(&url, empty.path()).await;
    assert!(nothing.fetch_error.is_some() && nothing.head.is_none());
}
