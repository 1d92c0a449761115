//! `leader::Elector` against a real 3-member etcd cluster (Debian's etcd 3.4 on loopback,
//! data on tmpfs): one leader at a time, epochs that only grow, a fast hand-off on resign,
//! no leader change when the member a keep-alive stream is pinned to stalls, and the fence
//! failing at once (the term ending within about its TTL) when etcd loses quorum.

use std::time::{Duration, Instant};

use gitfleet::leader::{Elector, LeaderSettings, Role, Term};
use tokio_util::sync::CancellationToken;

use crate::support::EtcdCluster;

const TTL: Duration = Duration::from_secs(3);

fn settings(cluster: &EtcdCluster, fleet: &str, member: &str) -> LeaderSettings {
    let mut s = LeaderSettings::new(cluster.endpoints(), fleet);
    s.member = member.into();
    s.lease_ttl = TTL;
    s.request_timeout = Duration::from_millis(1000);
    s
}

/// Members `a` and `b` of `fleet`'s election, both running under `scope`.
async fn two_electors(
    cluster: &EtcdCluster,
    fleet: &str,
    scope: &CancellationToken,
) -> (Elector, Elector) {
    let a = Elector::start(settings(cluster, fleet, "a"), scope.clone()).await.unwrap();
    let b = Elector::start(settings(cluster, fleet, "b"), scope.clone()).await.unwrap();
    (a, b)
}

/// Waits (bounded) until one of `electors` holds a term; returns its index and the term.
async fn leader_of(electors: &[&Elector], within: Duration) -> (usize, Term) {
    let until = Instant::now() + within;
    loop {
        let leaders: Vec<(usize, Term)> = electors
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.terms().borrow().clone().map(|t| (i, t)))
            .filter(|(_, t)| !t.is_over())
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let Some(found) = leaders.into_iter().next() {
            return found;
        }
        assert!(Instant::now() < until, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_then_a_fast_hand_off_on_resign() {
    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    let (a, b) = two_electors(&cluster, "handoff", &scope).await;
    let (first, term) = leader_of(&[&a, &b], Duration::from_secs(5)).await;
    assert!(term.epoch > 0);
    term.check().await.expect("the leader passes its own fence");
    assert!(!term.token.is_cancelled());

    let (old, new) = if first == 0 { (&a, &b) } else { (&b, &a) };
    // Both see the same leader, epoch and members.
    tokio::time::sleep(Duration::from_millis(TTL.as_millis() as u64 / 2)).await;
    let standby_view = new.view().borrow().clone();
    assert_eq!(standby_view.role, Role::Standby);
    assert_eq!(standby_view.epoch, Some(term.epoch));
    assert_eq!(standby_view.leader.as_deref(), Some(if first == 0 { "a" } else { "b" }));
    assert_eq!(standby_view.members, vec!["a".to_string(), "b".to_string()]);

    let resigned = Instant::now();
    old.resign().await;
    assert!(term.token.is_cancelled(), "resigning ends the term");
    assert!(term.check().await.is_err(), "a resigned term fails the fence");
    let (_, next) = leader_of(&[new], Duration::from_secs(2)).await;
    let handoff = resigned.elapsed();
    assert!(next.epoch > term.epoch, "epochs grow: {} then {}", term.epoch, next.epoch);
    assert!(handoff < Duration::from_millis(1000), "hand-off took {handoff:?}");
    next.check().await.expect("the new leader passes the fence");
    eprintln!("hand-off on resign: {handoff:?}");
    scope.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_under_the_keep_alive_stream_changes_no_leader() {
    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    // Member 0 is the first endpoint: the one every stream starts on. It is made a Raft
    // follower first: a frozen Raft leader also stops every lease renewal until etcd elects
    // another (its election timeout, 1 s), which at a 3 s TTL can cost the term (measured;
    // see benches/HA.md).
    cluster.move_leader_off(0);
    let a = Elector::start(settings(&cluster, "stall", "a"), scope.clone()).await.unwrap();
    let (_, term) = leader_of(&[&a], Duration::from_secs(5)).await;
    cluster.freeze(0);
    tokio::time::sleep(TTL * 2).await;
    let still = a.terms().borrow().clone().expect("still leading");
    assert_eq!(still.epoch, term.epoch, "the leader changed while the cluster was healthy");
    assert!(!term.token.is_cancelled());
    term.check().await.expect("the fence passes through the healthy members");
    cluster.thaw(0);
    scope.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_quorum_stops_the_leader_within_its_ttl() {
    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    let (a, b) = two_electors(&cluster, "quorum", &scope).await;
    let (_, term) = leader_of(&[&a, &b], Duration::from_secs(5)).await;
    let lost = Instant::now();
    cluster.freeze(1);
    cluster.freeze(2);
    // The fence stops passing at once: a check either fails or waits (bounded by the time
    // left); nothing is applied from here.
    let mut last_pass = None;
    loop {
        match term.check().await {
            Ok(()) => last_pass = Some(lost.elapsed()),
            Err(_) => break,
        }
        assert!(lost.elapsed() < TTL, "the fence still passed {TTL:?} after quorum loss");
    }
    let fenced = lost.elapsed();
    assert!(
        last_pass.is_none_or(|t| t < Duration::from_millis(300)),
        "the fence passed {last_pass:?} after quorum loss"
    );
    // The term itself ends on the own clock: the etcd leader renews leases until it steps
    // down (its election timeout, 1 s by default), then TTL - margin passes.
    let until = lost + TTL + Duration::from_millis(1500);
    while !term.token.is_cancelled() {
        assert!(Instant::now() < until, "the term outlived quorum loss by more than TTL + 1.5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = lost.elapsed();
    assert!(term.check().await.is_err());
    // Nobody leads without quorum.
    tokio::time::sleep(TTL).await;
    for e in [&a, &b] {
        assert!(e.terms().borrow().as_ref().is_none_or(|t| t.is_over()));
    }
    eprintln!(
        "quorum lost: last passed check {last_pass:?}, first failed {fenced:?}, term ended {stopped:?} (TTL {TTL:?})"
    );
    cluster.thaw(1);
    cluster.thaw(2);
    let (_, next) = leader_of(&[&a, &b], TTL * 4).await;
    assert!(next.epoch > term.epoch);
    scope.cancel();
}

/// The cost of the fence a leader runs before each mutating batch: one linearizable etcd
/// transaction. Prints `FENCE` percentiles (`GITFLEET_FENCE_ROUNDS` checks, 200 by default;
/// `scripts/ha-faults.sh` runs 2,000); asserts only that every check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_costs_one_transaction() {
    let rounds: usize =
        std::env::var("GITFLEET_FENCE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    let a = Elector::start(settings(&cluster, "fence", "a"), scope.clone()).await.unwrap();
    let (_, term) = leader_of(&[&a], Duration::from_secs(5)).await;
    let mut micros = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        term.check().await.expect("the leader passes its fence");
        micros.push(started.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    eprintln!(
        "FENCE rounds={rounds} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    scope.cancel();
}

/// A Docker API that accepts connections and never answers (a hung engine), as one host of
/// the leader's engine: a call to it is abandoned when the term's own-clock deadline passes
/// (here: quorum lost, so no keep-alive is acknowledged any more), not after bollard's 120 s,
/// so it cannot keep the leader acting past its deadline. Ground truth: the moment the
/// listener sees the leader's connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_docker_call_is_abandoned_at_the_leaders_deadline() {
    use gitfleet::apply::Engine;
    use gitfleet::apply::docker::DockerEngine;
    use gitfleet::leader::clock::boot_now;
    use std::io::Read;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let closed_tx = closed_tx.clone();
            std::thread::spawn(move || {
                // Read the request and answer nothing; report when the client gives up.
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
                let _ = closed_tx.send(boot_now());
            });
        }
    });

    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    let a = Elector::start(settings(&cluster, "hung", "a"), scope.clone()).await.unwrap();
    let (_, term) = leader_of(&[&a], Duration::from_secs(5)).await;
    let client = bollard::Docker::connect_with_http(
        &format!("tcp://{addr}"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let engine = DockerEngine::from_clients([("hung".to_string(), Ok(client))].into()).fenced(
        term.epoch,
        term.gate(),
        term.ended(),
    );
    let spec = gitfleet::diff::spec::ContainerSpec {
        image: "gitfleet/web:1".into(),
        ..Default::default()
    };
    let call = tokio::spawn(async move {
        let result = engine.create("hung", "shop-web-1", &spec, &Default::default(), &[]).await;
        (result, boot_now())
    });
    // The call hangs while the term lives (the leader keeps renewing).
    tokio::time::sleep(TTL).await;
    assert!(!call.is_finished(), "the call ended while the term lived");
    let lost = boot_now();
    cluster.freeze(1);
    cluster.freeze(2);
    let (result, returned) = tokio::time::timeout(TTL * 3, call)
        .await
        .expect("the hung call was not abandoned within 3 TTL of quorum loss")
        .unwrap();
    let error = result.expect_err("a hung engine cannot answer");
    assert!(error.message.contains(&format!("epoch {}", term.epoch)), "{error}");
    let deadline = term.deadline();
    assert!(term.token.is_cancelled(), "the term is over");
    assert!(
        returned <= deadline + Duration::from_millis(300),
        "the call outlived the deadline by {:?}",
        returned.saturating_sub(deadline)
    );
    assert!(returned + Duration::from_millis(300) >= deadline, "abandoned before the deadline");
    let closed = closed_rx.recv_timeout(Duration::from_secs(2)).expect("connection closed");
    assert!(closed <= deadline + Duration::from_millis(500), "the connection stayed open");
    // The lease on etcd's side lives at least until the deadline + margin: nobody else can
    // have led while the call was waiting.
    eprintln!(
        "hung call: quorum lost at +0, deadline at +{:?}, call abandoned at +{:?}, connection closed at +{:?}",
        deadline.saturating_sub(lost),
        returned.saturating_sub(lost),
        closed.saturating_sub(lost)
    );
    cluster.thaw(1);
    cluster.thaw(2);
    scope.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_a_standby_receives_reaches_the_leader_with_its_app() {
    use gitfleet::leader::handoff::{self, Retry};
    let cluster = EtcdCluster::start(3);
    let scope = CancellationToken::new();
    let (a, b) = two_electors(&cluster, "retries", &scope).await;
    let (first, term) = leader_of(&[&a, &b], Duration::from_secs(5)).await;
    let (leader, standby) = if first == 0 { (&a, &b) } else { (&b, &a) };
    let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
    let receiving = tokio::spawn({
        let (etcd, settings, token) =
            (leader.etcd().clone(), leader.settings().clone(), term.token);
        async move {
            handoff::receive(etcd, &settings, token, move |h| {
                let _ = seen.send(h);
            })
            .await
        }
    });
    // The leader's watch starts from the current revision: give it a moment to open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forward = |retry| handoff::forward(standby.etcd(), standby.settings(), "generic", retry);
    forward(Some(Retry { app: Some("shop".into()) })).await.unwrap();
    forward(None).await.unwrap();
    forward(Some(Retry { app: None })).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("the leader sees each handed-on hook within 5 s")
            .unwrap();
        got.push(next.retry);
    }
    assert_eq!(
        got,
        vec![Some(Retry { app: Some("shop".into()) }), None, Some(Retry { app: None })],
        "each write, in order, with its retry and app"
    );
    scope.cancel();
    receiving.abort();
}
