//! A controller restarted while its remote is down deploys the head its cache fetched in an
//! earlier run (`Mirror::cached_head`), and reports the failing fetch meanwhile.

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
    let options = MirrorOptions { timeout: Duration::from_secs(5), ..MirrorOptions::default() };
    let source = Source::open(url, cache, options, "main", LoadOptions::default(), false).unwrap();
    let triggers = Arc::new(Triggers::new());
    let (task, mut view): (RepositoryTask, RepositoryView) = RepositoryTask::new(
        source,
        triggers.clone(),
        Duration::from_secs(60),
        Duration::from_secs(20),
    );
    let running = tokio::spawn(task.run());
    triggers.push(Trigger::Startup);
    tokio::time::timeout(Duration::from_secs(30), view.changed())
        .await
        .expect("published in time")
        .expect("task alive");
    running.abort();
    view.borrow_and_update().clone()
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
