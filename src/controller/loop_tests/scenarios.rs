//! The loop's scenarios, each on fake hosts under paused time: a broken commit, a failed
//! rollout, a host away then down then back, a host answering with errors, a crash loop, a
//! stalled fetch, a shutdown in the middle of an apply.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::fakes::Behaviour;
use super::{Harness, deployed, events};
use crate::controller::state::{
    EventKind, HeadState, HostState, ProblemKind, Subject, SyncOutcome,
};
use crate::controller::trigger::Trigger;

const MINUTE: Duration = Duration::from_secs(60);

const FLEET: &str = "hosts:
  a: {endpoint: 'tcp://10.250.151.1:2375'}
  b: {endpoint: 'tcp://10.250.151.2:2375'}
";

/// An app with one service `web` of `replicas` replicas of `image`, health-checked, updated
/// one replica at a time and rolled back when the update fails its health gate.
fn web(image: &str, replicas: u32) -> String {
    format!(
        "services:
  web:
    image: {image}
    healthcheck:
      test: [\"CMD\", \"true\"]
      interval: 1s
    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 1, monitor: 0s, failure_action: rollback}}
"
    )
}

/// The fleet of host `a` alone.
const FLEET_A: &str = "hosts:\n  a: {endpoint: 'tcp://10.250.151.1:2375'}\n";

/// Commits v1 (host `a` alone, shop's web at `shop:1` × `replicas`) and waits until it is
/// deployed; returns its commit.
async fn deploy_shop_v1_on_a(h: &mut Harness, replicas: u32) -> String {
    let v1 = h.repository.commit(
        "v1",
        &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:1", replicas))],
    );
    h.until("v1 deployed", MINUTE, |s| deployed(s) == Some(v1.as_str())).await;
    v1
}

fn head_state(snapshot: &crate::controller::Snapshot) -> Option<HeadState> {
    snapshot.head.as_ref().map(|h| h.state)
}

fn problems(snapshot: &crate::controller::Snapshot, kind: ProblemKind) -> Vec<String> {
    snapshot.problems.iter().filter(|p| p.kind == kind).map(|p| p.message.clone()).collect()
}

fn creates(calls: &[String]) -> Vec<&String> {
    calls.iter().filter(|c| c.contains(": create ")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_broken_commit_keeps_the_last_good_revision_running_and_is_reported() {
    let mut h = Harness::start(&["a", "b"], |_| {});
    let (shop, notes) = (web("shop:1", 2), web("notes:1", 1));
    let v1 = h.repository.commit(
        "v1",
        &[
            ("fleet.yaml", FLEET),
            ("apps/shop/compose.yaml", &shop),
            ("apps/notes/compose.yaml", &notes),
        ],
    );
    h.until("v1 deployed", MINUTE, |s| deployed(s) == Some(v1.as_str())).await;
    let shop_ids = h.hosts.ids("shop-");
    assert_eq!(shop_ids.len(), 2);
    let mark = h.hosts.calls().len();

    // One commit breaks shop (an unclosed flow sequence: a YAML error at its end) and changes
    // notes.
    let broken = "services:\n  web:\n    image: [\n";
    let notes = web("notes:2", 1);
    let v2 = h.repository.commit(
        "break shop, update notes",
        &[
            ("fleet.yaml", FLEET),
            ("apps/shop/compose.yaml", broken),
            ("apps/notes/compose.yaml", &notes),
        ],
    );
    let s = h.until("v2 deployed app by app", MINUTE, |s| deployed(s) == Some(v2.as_str())).await;
    let calls = h.hosts.calls_since(mark);
    assert_eq!(creates(&calls).len(), 1, "{calls:#?}");
    assert!(calls.iter().any(|c| c.ends_with("create notes-web-1 notes:2")), "{calls:#?}");
    assert!(!calls.iter().any(|c| shop_ids.iter().any(|id| c.contains(id.as_str()))), "{calls:#?}");
    assert_eq!(h.hosts.ids("shop-"), shop_ids, "shop's containers are the same ones");
    let invalid = &s.invalid_apps["shop"];
    assert_eq!(invalid.running.as_deref(), Some(v1.as_str()));
    let error = &invalid.errors[0];
    assert!(error.starts_with("apps/shop/compose.yaml:4:1: error[yaml-syntax]"), "{error}");
    let reported = problems(&s, ProblemKind::InvalidApp);
    assert_eq!(reported.len(), 1, "{reported:#?}");
    assert!(
        reported[0].contains(&format!("keeps running revision {}", &v1[..12])),
        "{reported:#?}"
    );
    assert_eq!(s.problems[0].subject, Subject::App { app: "shop".into() });
    assert_eq!(s.services["shop"]["web"].running, 2);
    let rollouts = events(&s, EventKind::Rollout);
    let isolated = format!("invalid app(s) shop (1 error(s), keeps running {})", &v1[..12]);
    assert!(rollouts.iter().any(|e| e.contains(&isolated)), "{rollouts:#?}");

    // A broken fleet.yaml blocks the whole revision: nothing changes, v2 keeps running.
    let mark = h.hosts.calls().len();
    let v3 = h.repository.commit(
        "break the fleet",
        &[
            ("fleet.yaml", "hosts: [\n"),
            ("apps/shop/compose.yaml", &shop),
            ("apps/notes/compose.yaml", &notes),
        ],
    );
    let s = h
        .until("v3 reported invalid", MINUTE, |s| {
            s.head
                .as_ref()
                .is_some_and(|h| h.revision.commit == v3 && h.state == HeadState::Invalid)
        })
        .await;
    assert_eq!(deployed(&s), Some(v2.as_str()));
    assert!(!problems(&s, ProblemKind::InvalidRevision).is_empty(), "{:#?}", s.problems);
    let s = h.sync(Trigger::Resync).await;
    assert_eq!(s.syncs.first().unwrap().outcome, SyncOutcome::InSync);
    assert_eq!(h.hosts.calls_since(mark), Vec::<String>::new());
    assert!(!problems(&s, ProblemKind::InvalidRevision).is_empty(), "still reported");
}

#[tokio::test(start_paused = true)]
async fn a_failed_rollout_goes_back_and_is_not_retried_until_a_retry_or_a_new_commit() {
    let mut h = Harness::start(&["a"], |_| {});
    let v1 = deploy_shop_v1_on_a(&mut h, 2).await;
    let old = h.hosts.ids("shop-web-");

    // shop:2 never passes its health check: the first replica's update fails and goes back.
    h.hosts.set_behaviour("shop:2", Some(Behaviour::Unhealthy));
    let mark = h.hosts.calls().len();
    let v2 = h
        .repository
        .commit("v2", &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:2", 2))]);
    let s = h.until("v2 rejected", MINUTE, |s| head_state(s) == Some(HeadState::Failed)).await;
    let calls = h.hosts.calls_since(mark);
    assert_eq!(creates(&calls), ["a: create shop-web-1 shop:2"], "one replica tried: {calls:#?}");
    assert_eq!(h.hosts.ids("shop-web-"), old, "the very same containers are back");
    let running = ["shop-web-1 shop:1 running", "shop-web-2 shop:1 running"];
    assert_eq!(h.hosts.containers("a"), running);
    assert_eq!(deployed(&s), Some(v1.as_str()));
    assert_eq!(s.counters.rollbacks, 1);
    let failed = problems(&s, ProblemKind::RolloutFailed);
    assert_eq!(failed.len(), 1, "{:#?}", s.problems);
    let rejected = format!("app shop in {} failed and was rolled back", &v2[..12]);
    assert!(failed[0].contains(&rejected), "{failed:?}");
    let rollouts = events(&s, EventKind::Rollout);
    assert!(
        rollouts
            .iter()
            .any(|e| e.contains("failed its health gate and was rolled back (shop/web)")),
        "{rollouts:#?}"
    );

    // Not retried by resyncs, even once the image would pass.
    let mark = h.hosts.calls().len();
    h.sync(Trigger::Resync).await;
    h.hosts.set_behaviour("shop:2", None);
    sleep(10 * MINUTE).await;
    let s = h.sync(Trigger::Resync).await;
    assert_eq!(h.hosts.calls_since(mark), Vec::<String>::new());
    assert_eq!(head_state(&s), Some(HeadState::Failed));

    // A retry on request rolls it out again.
    h.triggers.push(Trigger::Retry { app: None });
    let s = h.until("v2 deployed on retry", MINUTE, |s| deployed(s) == Some(v2.as_str())).await;
    assert_eq!(head_state(&s), Some(HeadState::Deployed));
    assert_eq!(creates(&h.hosts.calls_since(mark)).len(), 2);
    assert!(problems(&s, ProblemKind::RolloutFailed).is_empty(), "{:#?}", s.problems);

    // A new commit that fails is rejected; the next commit rolls out without a retry.
    h.hosts.set_behaviour("shop:3", Some(Behaviour::Unhealthy));
    h.repository
        .commit("v3", &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:3", 2))]);
    h.until("v3 rejected", MINUTE, |s| head_state(s) == Some(HeadState::Failed)).await;
    let v4 = h
        .repository
        .commit("v4", &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:4", 2))]);
    let s = h.until("v4 deployed", MINUTE, |s| deployed(s) == Some(v4.as_str())).await;
    assert_eq!(s.counters.rollbacks, 2);
    assert_eq!(h.hosts.containers("a"), ["shop-web-1 shop:4 running", "shop-web-2 shop:4 running"]);
}

#[tokio::test(start_paused = true)]
async fn a_host_away_moves_nothing_down_moves_its_replicas_and_back_loses_its_leftovers() {
    let grace = Duration::from_secs(5);
    let mut h = Harness::start(&["a", "b"], |s| s.grace = grace);
    let v1 = h
        .repository
        .commit("v1", &[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", &web("shop:1", 2))]);
    h.until("v1 deployed", MINUTE, |s| deployed(s) == Some(v1.as_str())).await;
    assert_eq!(h.hosts.containers("a").len(), 1);
    assert_eq!(h.hosts.containers("b").len(), 1);
    let mark = h.hosts.calls().len();

    // Away for 2 s, less than the grace period: reported, nothing moves.
    let before = h.syncs();
    h.hosts.set_gone("b", Some("connection refused"));
    let s = h.sync_after(before).await;
    assert_eq!(s.hosts["b"].state, HostState::Away);
    assert_eq!(s.syncs.first().unwrap().outcome, SyncOutcome::Incomplete);
    assert_eq!(problems(&s, ProblemKind::HostUnreachable).len(), 1, "{:#?}", s.problems);
    sleep(Duration::from_secs(2)).await;
    let before = h.syncs();
    h.hosts.set_gone("b", None);
    let s = h.sync_after(before).await;
    assert_eq!(s.hosts["b"].state, HostState::Up);
    sleep(grace * 2).await;
    assert_eq!(h.hosts.calls_since(mark), Vec::<String>::new(), "nothing moved");
    let s = h.status.get();
    assert_eq!(s.counters.failovers, 0);
    let hosts = events(&s, EventKind::Host);
    assert!(hosts.iter().any(|e| e == "host b is back"), "{hosts:#?}");

    // Gone for longer than the grace period: its replica starts on a at the deadline.
    let cut = Instant::now();
    let at_cut = h.hosts.calls().len();
    h.hosts.set_gone("b", Some("connection refused"));
    let s = h
        .until("b down and its replica moved", MINUTE, |s| {
            s.hosts["b"].state == HostState::Down && s.services["shop"]["web"].running == 2
        })
        .await;
    let moved: Vec<_> = h.hosts.calls()[at_cut..].to_vec();
    let create = moved.iter().find(|c| c.what.starts_with("create ")).expect("a replica created");
    assert_eq!(create.host, "a");
    let after_cut = create.at - (cut - start_of(&h));
    assert!(
        after_cut >= grace && after_cut < grace + Duration::from_secs(1),
        "moved {after_cut:?} after the cut"
    );
    assert_eq!(s.counters.failovers, 1);
    assert_eq!(problems(&s, ProblemKind::HostDown).len(), 1, "{:#?}", s.problems);
    assert_eq!(h.hosts.containers("a").len(), 2);

    // Back: its stale copy goes at once, the moved replica stays.
    let back = h.hosts.calls().len();
    h.hosts.set_gone("b", None);
    let s = h
        .until("b's leftover removed", MINUTE, |s| {
            s.hosts["b"].state == HostState::Up && s.services["shop"]["web"].running == 2
        })
        .await;
    let calls = h.hosts.calls_since(back);
    assert!(calls.iter().any(|c| c.starts_with("b: remove ")), "{calls:#?}");
    assert!(!calls.iter().any(|c| c.starts_with("a: ")), "a keeps both replicas: {calls:#?}");
    assert_eq!(h.hosts.containers("b"), Vec::<String>::new());
    assert_eq!(h.hosts.containers("a").len(), 2);
    assert_eq!(s.syncs.first().unwrap().outcome, SyncOutcome::Applied);
}

#[tokio::test(start_paused = true)]
async fn a_host_answering_with_errors_is_reported_and_moves_nothing() {
    let grace = Duration::from_secs(5);
    let mut h = Harness::start(&["a", "b"], |s| s.grace = grace);
    let v1 = h
        .repository
        .commit("v1", &[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", &web("shop:1", 2))]);
    h.until("v1 deployed", MINUTE, |s| deployed(s) == Some(v1.as_str())).await;
    let mark = h.hosts.calls().len();

    // b's engine answers 500 for ten grace periods: failing, never away or down.
    h.hosts.set_failing("b", Some("500 Internal Server Error"));
    let s = h.sync(Trigger::Resync).await;
    assert_eq!(s.hosts["b"].state, HostState::Failing);
    for _ in 0..10 {
        sleep(grace).await;
        h.sync(Trigger::Resync).await;
    }
    let s = h.status.get();
    assert_eq!(s.hosts["b"].state, HostState::Failing);
    assert_eq!(h.hosts.calls_since(mark), Vec::<String>::new(), "nothing moved");
    assert_eq!(s.counters.failovers, 0);
    let failing = problems(&s, ProblemKind::HostFailing);
    assert_eq!(failing.len(), 1, "{:#?}", s.problems);
    assert!(failing[0].contains("500 Internal Server Error"), "{failing:?}");
    assert!(problems(&s, ProblemKind::HostDown).is_empty(), "{:#?}", s.problems);

    h.hosts.set_failing("b", None);
    let s = h.sync(Trigger::Resync).await;
    assert_eq!(s.hosts["b"].state, HostState::Up);
    assert_eq!(s.syncs.first().unwrap().outcome, SyncOutcome::InSync);
    let hosts = events(&s, EventKind::Host);
    assert!(hosts.iter().any(|e| e == "host b answers without errors again"), "{hosts:#?}");
}

/// When the fake hosts were made, on the test's clock.
fn start_of(h: &Harness) -> Instant {
    h.hosts.since()
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_is_held_back_with_doubling_waits() {
    let mut h = Harness::start(&["a"], |s| {
        s.restart_backoff = Duration::from_secs(10);
        s.restart_backoff_max = Duration::from_secs(300);
    });
    // Every container of shop:1 exits a second after it starts.
    h.hosts.set_behaviour("shop:1", Some(Behaviour::CrashAfter(Duration::from_secs(1))));
    deploy_shop_v1_on_a(&mut h, 1).await;
    sleep(Duration::from_secs(100)).await;
    let calls = h.hosts.calls();
    let starts: Vec<Duration> =
        calls.iter().filter(|c| c.what.starts_with("create shop-web-1 ")).map(|c| c.at).collect();
    // Started at 0, restarted at once (1 s), then after 10, 20 and 40 s: not 100 times.
    assert_eq!(starts.len(), 5, "{starts:?}");
    let gaps: Vec<u64> =
        starts.windows(2).map(|w| (w[1] - w[0]).as_secs_f64().round() as u64).collect();
    assert_eq!(gaps, [1, 10, 20, 40], "{starts:?}");
    let s = h.status.get();
    let held = events(&s, EventKind::Replica);
    let held: Vec<&String> = held.iter().filter(|e| e.contains("keeps stopping")).collect();
    assert_eq!(held.len(), 4, "{held:#?}");
    assert!(
        held[0].contains("shop/web#1 keeps stopping (1 restart(s)): next restart in 9s"),
        "{held:#?}"
    );
    assert_eq!(s.services["shop"]["web"].replicas[0].restarts, 4);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_fetch_is_reported_while_the_hosts_are_repaired_from_the_last_target() {
    let mut h = Harness::start(&["a"], |_| {});
    let v1 = deploy_shop_v1_on_a(&mut h, 2).await;

    let stalled = "fetching and reading the branch has not finished after 90 s";
    h.repository.fetch_fails(stalled);
    let s = h
        .until("the stall reported", MINUTE, |s| !problems(s, ProblemKind::Fetch).is_empty())
        .await;
    assert_eq!(problems(&s, ProblemKind::Fetch), [format!("fetch failed: {stalled}")]);
    assert!(events(&s, EventKind::Fetch).contains(&format!("fetch failed: {stalled}")));

    // The loop does not wait on the fetch: every resync observes the hosts.
    let observed = h.hosts.observations();
    for _ in 0..3 {
        let s = h.sync(Trigger::Resync).await;
        assert_eq!(s.syncs.first().unwrap().outcome, SyncOutcome::InSync);
    }
    assert_eq!(h.hosts.observations(), observed + 3);

    // Drift meanwhile: a replica removed by hand is back within one sync.
    let mark = h.hosts.calls().len();
    h.hosts.remove_by_hand("a", "shop-web-2");
    let s = h.until("drift repaired", MINUTE, |s| s.counters.drift_repairs == 1).await;
    let calls = h.hosts.calls_since(mark);
    assert_eq!(creates(&calls), ["a: create shop-web-2 shop:1"], "{calls:#?}");
    assert_eq!(s.services["shop"]["web"].running, 2);
    assert_eq!(problems(&s, ProblemKind::Fetch).len(), 1, "the stall is still reported");
    assert_eq!(deployed(&s), Some(v1.as_str()));

    // The fetch works again and brings a new head.
    let v2 = h
        .repository
        .commit("v2", &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:2", 2))]);
    let s = h.until("v2 deployed", MINUTE, |s| deployed(s) == Some(v2.as_str())).await;
    assert!(problems(&s, ProblemKind::Fetch).is_empty(), "{:#?}", s.problems);
    assert!(events(&s, EventKind::Fetch).contains(&"fetching works again".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_mid_apply_stops_at_a_step_boundary_within_the_deadline() {
    let mut h = Harness::start(&["a"], |_| {});
    let v1 = deploy_shop_v1_on_a(&mut h, 2).await;
    let old = h.hosts.ids("shop-web-");

    // shop:2 takes 20 s to become healthy; the shutdown comes 3 s into the first replica's
    // health wait.
    h.hosts.set_behaviour("shop:2", Some(Behaviour::SlowStart(Duration::from_secs(20))));
    let mark = h.hosts.calls().len();
    h.repository
        .commit("v2", &[("fleet.yaml", FLEET_A), ("apps/shop/compose.yaml", &web("shop:2", 2))]);
    sleep(Duration::from_secs(3)).await;
    let started = h.hosts.calls_since(mark);
    assert_eq!(creates(&started), ["a: create shop-web-1 shop:2"], "{started:#?}");
    assert!(h.status.get().syncing.is_some(), "the apply is under way");

    let at_cancel = h.hosts.calls().len();
    let cancelled = Instant::now();
    h.cancel.cancel();
    let deadline = Duration::from_secs(30); // `Settings::shutdown_timeout`'s default
    tokio::time::timeout(deadline, &mut h.running).await.expect("the loop ended in time").unwrap();
    let took = Instant::now() - cancelled;
    assert!(took < Duration::from_secs(1), "stopped {took:?} after the cancellation");

    // The step under way was undone: the new container went, the old one is back; the
    // second replica was never touched.
    let after = h.hosts.calls_since(at_cancel);
    assert!(creates(&after).is_empty(), "{after:#?}");
    assert_eq!(after.len(), 3, "{after:#?}");
    assert!(after[0].starts_with("a: remove a"), "{after:#?}");
    assert!(after[1].ends_with(" shop-web-1") && after[1].starts_with("a: rename "), "{after:#?}");
    assert!(after[2].starts_with("a: start "), "{after:#?}");
    let running = ["shop-web-1 shop:1 running", "shop-web-2 shop:1 running"];
    assert_eq!(h.hosts.containers("a"), running);
    assert_eq!(h.hosts.ids("shop-web-"), old);

    let s = h.status.get();
    let last = s.syncs.first().unwrap();
    assert_eq!(last.outcome, SyncOutcome::Incomplete);
    assert!(last.detail.contains("apply stopped"), "{}", last.detail);
    assert_eq!(deployed(&s), Some(v1.as_str()));
    assert_eq!(head_state(&s), Some(HeadState::Pending));
    assert_eq!(s.counters.rollbacks, 0, "a stop is no failed rollout");
    assert!(events(&s, EventKind::Controller).contains(&"stopped: shutting down".to_string()));
}
