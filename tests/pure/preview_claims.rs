//! Pull-request previews de-duplicated across instances through etcd (`leader::claims`): two
//! real [`Previewer`](gitfleet::controller::previews::Previewer)s ("instances", each with its
//! own repository handle and its own etcd connection and member name) on a real etcd, the
//! fake GitHub of `forge_comments` recording every request it gets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfleet::controller::previews::{Handled, PreviewSettings};
use gitfleet::forge::CommentAction;
use gitfleet::leader::LeaderSettings;
use gitfleet::leader::claims::{Claimed, PreviewClaims};
use gitfleet::leader::etcd::Etcd;

use crate::forge_comments::{CREATED_ID, Fake, Forge, Odd, api};
use crate::preview_untrusted::{failing_engine, fleet, hook, posted, previewer, repository};
use crate::support::{EtcdCluster, GitRepo};

/// The claims of instance `member`, with a 2 s claim lease (etcd's shortest is about 1.5 s).
async fn claims(cluster: &EtcdCluster, member: &str) -> PreviewClaims {
    let mut settings = LeaderSettings::new(cluster.endpoints(), "previews");
    settings.member = member.into();
    settings.lease_ttl = Duration::from_secs(2);
    let etcd = Etcd::connect(&settings).await.expect("etcd");
    PreviewClaims::new(etcd, Arc::new(settings))
}

/// A new head for pull request 7 (the watched branch stays at its base).
fn push_to_the_pull_request(repo: &GitRepo, image: &str) -> String {
    let branch = repo.branch();
    let git = git2::Repository::open(repo.path()).unwrap();
    let base = git.refname_to_id(&format!("refs/heads/{branch}")).unwrap();
    let compose = format!("services:\n  web:\n    image: {image}\n");
    let head = repo.commit(&[("apps/shop/compose.yaml", &compose)], &[]);
    let oid = git2::Oid::from_str(&head).unwrap();
    git.reference("refs/pull/7/head", oid, true, "pull request").unwrap();
    git.reference(&format!("refs/heads/{branch}"), base, true, "base").unwrap();
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pull_request_head_is_previewed_by_one_instance() {
    let cluster = EtcdCluster::start(1);
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let with = |claims| PreviewSettings { claims: Some(claims), ..Default::default() };
    let a = previewer(&repo, &fake, with(claims(&cluster, "a").await));
    let b = previewer(&repo, &fake, with(claims(&cluster, "b").await));
    let skipped = Handled::Skipped("another instance previews this head");

    // One delivery each for the same head, at the same time: one comment request.
    let delivery = hook(&head);
    let (x, y) = tokio::join!(a.handle(&delivery), b.handle(&delivery));
    let created = Handled::Posted(CommentAction::Created { id: CREATED_ID });
    assert!((x == created && y == skipped) || (x == skipped && y == created), "a: {x:?}, b: {y:?}");
    let body = posted(&fake); // exactly one list and one create
    assert!(body.contains(&head[..7]), "{body}");

    // Redeliveries of that head, to either instance: previewed already, nothing sent.
    assert_eq!(a.handle(&hook(&head)).await, skipped);
    assert_eq!(b.handle(&hook(&head)).await, skipped);
    assert_eq!(fake.take_requests(), []);

    // A new head is claimed by an instance that dies mid-preview (its claim is left behind,
    // renewed by nobody): deliveries are skipped until the claim's lease expires, then one
    // is previewed, and the comment is edited (not a second one).
    let next = push_to_the_pull_request(&repo, "nginx:1.29");
    let dead = claims(&cluster, "c").await;
    let Claimed::Won(claim) = dead.claim(7, &next).await else { panic!("the claim was taken") };
    let claimed = Instant::now();
    drop(claim);
    assert_eq!(b.handle(&hook(&next)).await, skipped);
    let handled = loop {
        let handled = b.handle(&hook(&next)).await;
        if handled != skipped {
            break handled;
        }
        assert!(claimed.elapsed() < Duration::from_secs(10), "the dead claim never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("a dead instance's claim expired after {:.1}s", claimed.elapsed().as_secs_f64());
    assert_eq!(handled, Handled::Posted(CommentAction::Edited { id: CREATED_ID }));
    let api = api(Forge::GitHub);
    let body = fake.comment(CREATED_ID).expect("the comment").body;
    assert!(body.contains(&next[..7]), "{body}");
    assert_eq!(fake.take_requests(), [api.get(api.first), api.edit(CREATED_ID, &body)]);
    assert_eq!(a.handle(&hook(&next)).await, skipped);
    assert_eq!(fake.take_requests(), []);
}

/// A failed preview (here: the head moved since the hook) releases its claim, so the next
/// delivery is previewed again; a head that is not a commit id is previewed unclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preview_releases_its_claim() {
    let cluster = EtcdCluster::start(1);
    let engine = failing_engine().await;
    let (repo, head) = repository(&fleet(&format!("tcp://{engine}"), ""), |repo| {
        repo.commit(
            &[("apps/shop/compose.yaml", "services:\n  web:\n    image: nginx:1.28\n")],
            &[],
        )
    });
    let fake = Fake::start(Forge::GitHub, Odd::None, 0).await;
    let settings =
        PreviewSettings { claims: Some(claims(&cluster, "a").await), ..Default::default() };
    let a = previewer(&repo, &fake, settings);
    // The hook names a commit the pull request's ref no longer points at.
    let stale = "0123456789abcdef0123456789abcdef01234567";
    let created = Handled::Posted(CommentAction::Created { id: CREATED_ID });
    assert_eq!(a.handle(&hook(stale)).await, created);
    assert!(posted(&fake).contains("moved"), "a failure's sentence");
    let again = a.handle(&hook(stale)).await;
    assert_eq!(again, Handled::Posted(CommentAction::Unchanged { id: CREATED_ID }));
    fake.take_requests();
    let held = claims(&cluster, "b").await;
    assert!(matches!(held.claim(7, "not-a-commit").await, Claimed::Unavailable(_)));
    assert_eq!(held.key(7, &head.to_uppercase()), held.key(7, &head));
}
