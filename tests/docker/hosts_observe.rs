//! `hosts::connect`, `hosts::observe_host` and `hosts::observe_all` against real Docker
//! daemons from the test bed (tests/support): what is seen (this fleet's labelled objects,
//! running or not) and what is not (unlabelled objects, other fleets), over TCP, the unix
//! socket and TLS, and hosts that cannot be reached (cut off, frozen, stopped, absent).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{DockerHost, Testbed, Via};
use gitfleet::diff::{HostObservation, HostState, Observed};
use gitfleet::hosts::{HostError, connect, observe_all, observe_host};
use gitfleet::model::{Endpoint, Host};

const FLEET: &str = "test";
const TIMEOUT: Duration = Duration::from_secs(10);

/// `docker run -d` (or `create`) with gitfleet's labels for `fleet`.
fn run_labelled(
    host: &DockerHost,
    verb: &str,
    fleet: &str,
    (app, service, replica): (&str, &str, u32),
    image: &str,
) -> String {
    let name = if fleet == FLEET {
        format!("{app}-{service}-{replica}")
    } else {
        format!("{fleet}-{app}-{service}-{replica}")
    };
    let labels = [
        format!("io.gitfleet.fleet={fleet}"),
        format!("io.gitfleet.app={app}"),
        format!("io.gitfleet.service={service}"),
        format!("io.gitfleet.replica={replica}"),
    ];
    let mut args = vec![verb];
    if verb == "run" {
        args.push("-d");
    }
    args.extend(["--name", &name]);
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.push(image);
    host.docker(&args)
}

fn reachable<'a>(observed: &'a Observed, host: &str) -> &'a HostState {
    match observed.hosts.get(host) {
        Some(HostObservation::Reachable(state)) => state,
        other => panic!("host {host} should be reachable, got {other:?}"),
    }
}

fn unreachable_reason<'a>(observed: &'a Observed, host: &str) -> &'a str {
    match observed.hosts.get(host) {
        Some(HostObservation::Unreachable { reason, .. }) => {
            eprintln!("host {host}: {reason}");
            reason
        }
        other => panic!("host {host} should be unreachable, got {other:?}"),
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

fn now() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[tokio::test]
async fn sees_this_fleets_objects_and_nothing_else_over_tcp_and_unix() {
    let mut bed = Testbed::builder().hosts(2).images().start();
    let (a, b) = (&bed[0], &bed[1]);

    // Host a: ours (running, created, exited), unlabelled, another fleet's, a fleet name that
    // merely starts like ours.
    let web1 = run_labelled(a, "run", FLEET, ("shop", "web", 1), "gitfleet/web:1");
    let web2 = run_labelled(a, "create", FLEET, ("shop", "web", 2), "gitfleet/web:1");
    let job = run_labelled(a, "run", FLEET, ("shop", "job", 1), "gitfleet/exits:1");
    assert_eq!(a.docker(&["wait", &job]), "3");
    a.docker(&["run", "-d", "--name", "stray", "gitfleet/db:1"]);
    run_labelled(a, "run", "other", ("shop", "web", 1), "gitfleet/web:1");
    run_labelled(a, "create", "test2", ("shop", "web", 1), "gitfleet/web:1");
    for (name, fleet) in
        [("shop_default", Some(FLEET)), ("stray_net", None), ("other_net", Some("other"))]
    {
        let mut args = vec!["network", "create"];
        let label = fleet.map(|f| format!("io.gitfleet.fleet={f}"));
        if let Some(label) = &label {
            args.extend(["--label", label, "--label", "io.gitfleet.app=shop"]);
            args.extend(["--label", "io.gitfleet.object=default"]);
        }
        args.push(name);
        a.docker(&args);
    }
    for (name, fleet) in
        [("shop_data", Some(FLEET)), ("stray_vol", None), ("other_vol", Some("other"))]
    {
        let mut args = vec!["volume", "create"];
        let label = fleet.map(|f| format!("io.gitfleet.fleet={f}"));
        if let Some(label) = &label {
            args.extend(["--label", label, "--label", "io.gitfleet.app=shop"]);
            args.extend(["--label", "io.gitfleet.object=data"]);
        }
        args.push(name);
        a.docker(&args);
    }
    // Host b: one replica of ours, one stray.
    let b_web = run_labelled(b, "run", FLEET, ("shop", "web", 3), "gitfleet/web:2");
    b.docker(&["volume", "create", "stray_vol"]);

    let since = now();
    let started = Instant::now();
    let over_tcp = observe_all(&bed.fleet_hosts(Via::Tcp), FLEET, TIMEOUT).await;
    eprintln!("observe_all over TCP took {:?}", started.elapsed());
    let over_unix = observe_all(&bed.fleet_hosts(Via::Unix), FLEET, TIMEOUT).await;
    let mixed: BTreeMap<String, Host> =
        [("a".to_string(), a.model_host(Via::Tcp)), ("b".to_string(), b.model_host(Via::Unix))]
            .into();
    let over_both = observe_all(&mixed, FLEET, TIMEOUT).await;
    let until = now();

    let state_a = reachable(&over_tcp, "a");
    assert_eq!(
        names(&state_a.containers, |c| &c.name),
        ["shop-job-1", "shop-web-1", "shop-web-2"],
        "only fleet {FLEET:?}'s containers, without the leading /, sorted: {state_a:#?}"
    );
    let by_name = |name: &str| state_a.containers.iter().find(|c| c.name == name).unwrap();
    assert_eq!(by_name("shop-web-1").id, web1);
    assert_eq!(by_name("shop-web-1").state, "running");
    assert_eq!(by_name("shop-web-2").id, web2);
    assert_eq!(by_name("shop-web-2").state, "created");
    assert_eq!(by_name("shop-job-1").id, job);
    assert_eq!(by_name("shop-job-1").state, "exited");
    let key = by_name("shop-web-2").replica_key(FLEET).expect("complete labels");
    assert_eq!((&*key.app, &*key.service, key.replica), ("shop", "web", 2));
    assert!(by_name("shop-web-1").is_running());

    assert_eq!(names(&state_a.networks, |n| &n.name), ["shop_default"]);
    let network_id = a.docker(&["network", "inspect", "-f", "{{.Id}}", "shop_default"]);
    assert_eq!(state_a.networks[0].id, network_id);
    assert_eq!(state_a.networks[0].owner(FLEET), Some(("shop".into(), "default".into())));
    assert_eq!(names(&state_a.volumes, |v| &v.name), ["shop_data"]);
    assert_eq!(state_a.volumes[0].id, "shop_data");
    assert_eq!(state_a.volumes[0].owner(FLEET), Some(("shop".into(), "data".into())));

    let state_b = reachable(&over_tcp, "b");
    assert_eq!(names(&state_b.containers, |c| &c.name), ["shop-web-3"]);
    assert_eq!(state_b.containers[0].id, b_web);
    assert!(state_b.networks.is_empty() && state_b.volumes.is_empty(), "{state_b:#?}");

    // The unix socket and a mix of both see the same.
    assert_eq!(over_unix, over_tcp);
    assert_eq!(over_both, over_tcp);

    // observe_host on a client from connect() agrees.
    let docker = connect(&a.model_host(Via::Tcp)).await.expect("connect over tcp");
    // (observe_all also reads the engine's /info, once per connection; observe_host does not.)
    let without_engine = HostState { engine: None, ..state_a.clone() };
    assert_eq!(observe_host(&docker, FLEET).await.unwrap(), without_engine);
    // Another fleet's view of the same host.
    let other = observe_host(&docker, "other").await.unwrap();
    assert_eq!(names(&other.containers, |c| &c.name), ["other-shop-web-1"]);
    assert_eq!(names(&other.networks, |n| &n.name), ["other_net"]);
    assert_eq!(names(&other.volumes, |v| &v.name), ["other_vol"]);

    // Read-only: observing left no event on either host.
    for host in [a, b] {
        let events = host.docker(&["events", "--since", &since, "--until", &until]);
        assert_eq!(events, "", "observing host {} changed something", host.name());
    }

    // Losing a host (its dockerd killed, its containers left running): refused on both
    // endpoints, while a is still observed. Dropping the test bed then cleans up after it.
    bed[1].kill_daemon();
    let b = &bed[1];
    let mut hosts = bed.fleet_hosts(Via::Tcp);
    hosts.insert("b-unix".into(), b.model_host(Via::Unix));
    let observed = observe_all(&hosts, FLEET, TIMEOUT).await;
    assert_eq!(
        unreachable_reason(&observed, "b"),
        format!("cannot reach {}: connection refused", b.tcp_endpoint())
    );
    assert_eq!(
        unreachable_reason(&observed, "b-unix"),
        format!("cannot reach {}: connection refused", b.unix_endpoint())
    );
    assert_eq!(reachable(&observed, "a"), state_a);
}

#[tokio::test]
async fn unreachable_hosts_name_their_endpoint_and_do_not_hold_up_the_others() {
    let mut bed = Testbed::start(2);
    let (a, b) = (&bed[0], &bed[1]);
    a.docker(&["volume", "create", "--label", "io.gitfleet.fleet=test", "a_data"]);
    b.docker(&["volume", "create", "--label", "io.gitfleet.fleet=test", "b_data"]);

    // A refused port on a's address and a socket that does not exist, beside the real hosts.
    let mut hosts = bed.fleet_hosts(Via::Tcp);
    let mut refused = a.model_host(Via::Tcp);
    refused.endpoint = Endpoint::Tcp { host: a.address().to_string(), port: 2399, tls: None };
    hosts.insert("refused".into(), refused);
    let mut absent = a.model_host(Via::Unix);
    let missing = a.dir().join("missing.sock").display().to_string();
    absent.endpoint = Endpoint::Unix { path: missing.clone() };
    hosts.insert("absent".into(), absent);

    // b cut off: its outer veth down.
    b.cut_network();
    let started = Instant::now();
    let observed = observe_all(&hosts, FLEET, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(names(&reachable(&observed, "a").volumes, |v| &v.name), ["a_data"]);
    assert_eq!(
        unreachable_reason(&observed, "b"),
        format!("cannot reach {}: no route to host", b.tcp_endpoint())
    );
    assert_eq!(
        unreachable_reason(&observed, "refused"),
        format!("cannot reach tcp://{}:2399: connection refused", a.address())
    );
    assert_eq!(
        unreachable_reason(&observed, "absent"),
        format!("cannot reach unix://{missing}: no socket at {missing}")
    );

    // Back on the network, b is seen again.
    b.restore_network();
    let observed = observe_all(&bed.fleet_hosts(Via::Tcp), FLEET, TIMEOUT).await;
    assert_eq!(names(&reachable(&observed, "b").volumes, |v| &v.name), ["b_data"]);

    // A daemon that accepts connections but never answers: bounded by the timeout.
    b.freeze();
    let started = Instant::now();
    let observed = observe_all(&bed.fleet_hosts(Via::Tcp), FLEET, Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    b.thaw();
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&elapsed),
        "took {elapsed:?}"
    );
    assert_eq!(
        unreachable_reason(&observed, "b"),
        format!("cannot reach {}: no answer within 2s", b.tcp_endpoint())
    );
    assert_eq!(names(&reachable(&observed, "a").volumes, |v| &v.name), ["a_data"]);

    // connect() alone reports the same kind of error, typed.
    let err = connect(&bed[1].model_host(Via::Tcp)).await.map(|_| ());
    assert!(err.is_ok(), "thawed host b answers again: {err:?}");

    // A stopped daemon: nothing listens any more.
    bed[1].stop_daemon();
    let b = &bed[1];
    let mut hosts = bed.fleet_hosts(Via::Tcp);
    hosts.insert("b-unix".into(), b.model_host(Via::Unix));
    let observed = observe_all(&hosts, FLEET, TIMEOUT).await;
    assert_eq!(
        unreachable_reason(&observed, "b"),
        format!("cannot reach {}: connection refused", b.tcp_endpoint())
    );
    let reason = unreachable_reason(&observed, "b-unix");
    assert!(reason.starts_with(&format!("cannot reach {}: ", b.unix_endpoint())), "{reason}");
    assert_eq!(names(&reachable(&observed, "a").volumes, |v| &v.name), ["a_data"]);
    match connect(&b.model_host(Via::Tcp)).await {
        Err(HostError::Unreachable { endpoint, reason }) => {
            assert_eq!(endpoint, b.tcp_endpoint());
            assert_eq!(reason, "connection refused");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_hosts_are_observed_with_client_certificates() {
    let bed = Testbed::builder().hosts(1).tls().start();
    let a = &bed[0];
    a.docker(&["volume", "create", "--label", "io.gitfleet.fleet=test", "tls_data"]);
    assert!(a.tcp_endpoint().ends_with(":2376"));

    let hosts = bed.fleet_hosts(Via::Tcp);
    assert!(matches!(&hosts["a"].endpoint, Endpoint::Tcp { tls: Some(_), .. }));
    let observed = observe_all(&hosts, FLEET, TIMEOUT).await;
    assert_eq!(names(&reachable(&observed, "a").volumes, |v| &v.name), ["tls_data"]);

    // Without TLS the daemon answers plain HTTP with an error: unreachable, endpoint named.
    let mut plain = hosts["a"].clone();
    plain.endpoint = Endpoint::Tcp { host: a.address().to_string(), port: 2376, tls: None };
    let observed = observe_all(&BTreeMap::from([("a".to_string(), plain)]), FLEET, TIMEOUT).await;
    let reason = unreachable_reason(&observed, "a");
    assert!(reason.starts_with(&format!("tcp://{}:2376: ", a.address())), "{reason}");

    // A client certificate the daemon's CA did not sign: the handshake fails.
    let mut wrong = hosts["a"].clone();
    if let Endpoint::Tcp { tls: Some(files), .. } = &mut wrong.endpoint {
        // The server's own certificate is not a client certificate.
        files.cert = a.tls().unwrap().server_cert.display().to_string();
        files.key = a.tls().unwrap().server_key.display().to_string();
    }
    let observed = observe_all(&BTreeMap::from([("a".to_string(), wrong)]), FLEET, TIMEOUT).await;
    let reason = unreachable_reason(&observed, "a");
    assert!(
        reason.starts_with(&format!("cannot reach tcp://{}:2376 (tls): ", a.address())),
        "{reason}"
    );
}
