//! The scheduler's scenarios, one rule at a time (builders in [`builders`], random cases in
//! [`properties`]).

mod builders;
mod properties;

use builders::*;

use crate::diff::observed::{HostObservation, Observed};
use crate::diff::schedule::{Schedule, schedule};
use crate::model::Model;

// ---- spread -------------------------------------------------------------------------

#[test]
fn spreads_three_replicas_over_three_hosts() {
    let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
    let s = schedule(&m, &nothing());
    assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 c"]);
    assert!(s.unplaced.is_empty());
}

#[test]
fn spread_breaks_ties_by_total_replicas_then_name() {
    let m = model(
        hosts(&["a", "b", "c"]),
        [app("blog", [service("web", 2)]), app("shop", [service("web", 2)])],
    );
    let s = schedule(&m, &nothing());
    // blog fills a and b; shop's first replica goes to the emptiest host, c.
    assert_eq!(layout(&s), ["blog/web#1 a", "blog/web#2 b", "shop/web#1 c", "shop/web#2 a"]);
}

#[test]
fn more_replicas_than_hosts_wrap_around() {
    let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 5)])]);
    let s = schedule(&m, &nothing());
    let expected = ["#1 a", "#2 b", "#3 a", "#4 b", "#5 a"].map(|r| format!("shop/web{r}"));
    assert_eq!(layout(&s), expected);
}

#[test]
fn zero_replicas_and_no_services_schedule_nothing() {
    let m = model(hosts(&["a"]), [app("shop", [service("web", 0)]), app("empty", [])]);
    assert_eq!(schedule(&m, &nothing()), Schedule::default());
}

// ---- constraints --------------------------------------------------------------------

#[test]
fn constraints_select_candidate_hosts() {
    let fleet = [
        host("a").label("zone", "x"),
        host("b").label("zone", "y").platform("linux", "aarch64"),
        host("c").platform("windows", "x86_64"),
    ];
    let cases: &[(&[&str], &[&str])] = &[
        // A service that does not say it runs on Windows runs on Linux only (`platform`).
        (&[], &["a", "b"]),
        (&["node.hostname == b"], &["b"]),
        (&["node.hostname != b"], &["a"]),
        (&["node.labels.zone == x"], &["a"]),
        // A host without the label is "not equal".
        (&["node.labels.zone != x"], &["b"]),
        (&["node.platform.os == windows"], &["c"]),
        (&["node.platform.os != windows"], &["a", "b"]),
        (&["node.platform.arch == aarch64"], &["b"]),
        (&["node.platform.arch != aarch64", "node.labels.zone != y"], &["a"]),
    ];
    for (constraints, expected) in cases {
        let web = constraints.iter().fold(service("web", 6), |s, c| s.constraint(c));
        let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &nothing());
        assert_eq!(hosts_used(&s), *expected, "constraints {constraints:?}");
        assert!(s.unplaced.is_empty(), "constraints {constraints:?}");
    }
}

#[test]
fn unsatisfiable_constraints_name_every_host() {
    let fleet = [host("a").label("zone", "a"), host("b").label("zone", "b")];
    let cases: &[(&[&str], &str)] = &[
        (&["node.labels.zone == c"], "no host satisfies node.labels.zone == c (hosts: a, b)"),
        (
            &["node.labels.zone == b", "node.platform.os == windows"],
            "no host satisfies all placement constraints: a fails node.labels.zone == b; \
             b fails node.platform.os == windows",
        ),
    ];
    for (constraints, reason) in cases {
        let web = constraints.iter().fold(service("web", 2), |s, c| s.constraint(c));
        let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &nothing());
        assert!(s.assignments.is_empty());
        let expected = [format!("shop/web#1: {reason}"), format!("shop/web#2: {reason}")];
        assert_eq!(reasons(&s), expected);
    }
    let s = schedule(&model([], [app("shop", [service("web", 1)])]), &nothing());
    assert_eq!(reasons(&s), ["shop/web#1: the fleet has no hosts"]);
}

#[test]
fn long_host_lists_are_shortened() {
    let names: Vec<String> = (0..15).map(|i| format!("h{i:02}")).collect();
    let fleet = names.iter().map(|n| host(n));
    let web = service("web", 1).constraint("node.labels.zone == z");
    let s = schedule(&model(fleet, [app("shop", [web])]), &nothing());
    assert_eq!(
        reasons(&s),
        ["shop/web#1: no host satisfies node.labels.zone == z (hosts: h00, h01, h02, h03, \
          h04, h05, h06, h07, h08, h09 and 5 more)"]
    );
}

// ---- max_replicas_per_node ------------------------------------------------------------

#[test]
fn max_replicas_per_node_is_respected() {
    let web = service("web", 5).max_per_node(2);
    let s = schedule(&model(hosts(&["a", "b"]), [app("shop", [web])]), &nothing());
    assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 a", "shop/web#4 b"]);
    assert_eq!(
        reasons(&s),
        ["shop/web#5: every candidate host (a, b) already runs max_replicas_per_node = 2"]
    );
}

#[test]
fn max_replicas_per_node_zero_means_unlimited() {
    let web = service("web", 3).max_per_node(0);
    let s = schedule(&model(hosts(&["a"]), [app("shop", [web])]), &nothing());
    assert_eq!(s.assignments.len(), 3);
}

// ---- capacity -----------------------------------------------------------------------

#[test]
fn cpu_capacity_exhausted_leaves_replicas_unplaced() {
    let fleet = [host("a").capacity(Some(3500), None), host("b").capacity(Some(1000), None)];
    let web = service("web", 3).reserve(Some(2000), None);
    let s = schedule(&model(fleet, [app("shop", [web])]), &nothing());
    assert_eq!(layout(&s), ["shop/web#1 a"]);
    let reason = "needs 2 CPUs reserved; most free on a candidate host is 1.5 CPUs (a)";
    assert_eq!(reasons(&s), [format!("shop/web#2: {reason}"), format!("shop/web#3: {reason}")]);
}

#[test]
fn memory_capacity_counts_every_service_on_the_host() {
    let fleet = [host("a").capacity(None, Some(GIB)), host("b").capacity(None, Some(GIB))];
    let s = schedule(
        &model(
            fleet,
            [
                app("blog", [service("db", 2).reserve(None, Some(768 * MIB))]),
                app("shop", [service("web", 2).reserve(Some(100), Some(512 * MIB))]),
            ],
        ),
        &nothing(),
    );
    assert_eq!(layout(&s), ["blog/db#1 a", "blog/db#2 b"]);
    let reason = "needs 512 MiB of memory reserved; most free on a candidate host is 256 MiB (a)";
    assert_eq!(reasons(&s), [format!("shop/web#1: {reason}"), format!("shop/web#2: {reason}")]);
}

#[test]
fn unlimited_capacity_takes_anything() {
    let web = service("web", 3).reserve(Some(64_000), Some(1 << 40));
    let s = schedule(&model(hosts(&["a"]), [app("shop", [web])]), &nothing());
    assert_eq!(s.assignments.len(), 3);
}

// ---- ports --------------------------------------------------------------------------

#[test]
fn port_conflict_between_services_of_different_apps() {
    let m = model(
        hosts(&["a", "b"]),
        [
            app("blog", [service("web", 1).publish("8080").constraint("node.hostname == b")]),
            app("shop", [service("web", 1).publish("8080").constraint("node.hostname == a")]),
            app("wiki", [service("web", 1).publish("8080"), service("api", 1).publish("9090")]),
        ],
    );
    let s = schedule(&m, &nothing());
    assert_eq!(layout(&s), ["blog/web#1 b", "shop/web#1 a", "wiki/api#1 a"]);
    assert_eq!(
        reasons(&s),
        ["wiki/web#1: host port 8080/tcp is already published on every candidate host \
          (a by shop/web, b by blog/web)"]
    );
}

#[test]
fn port_conflict_within_one_service() {
    let web = service("web", 3).publish("8080").publish("-");
    let s = schedule(&model(hosts(&["a", "b"]), [app("shop", [web])]), &nothing());
    assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b"]);
    assert_eq!(
        reasons(&s),
        ["shop/web#3: host port 8080/tcp is already published on every candidate host \
          (a by shop/web, b by shop/web)"]
    );
}

#[test]
fn which_published_ports_conflict() {
    let cases = [
        ("8080", "8080", true),
        ("8080/tcp", "8080/udp", false),
        ("8080/udp", "8080/udp", true),
        ("8080", "8081", false),
        ("10.0.0.1:8080", "10.0.0.2:8080", false),
        ("10.0.0.1:8080", "10.0.0.1:8080", true),
        ("10.0.0.1:8080", "8080", true),
        ("0.0.0.0:8080", "10.0.0.1:8080", true),
        ("::1:8080", "10.0.0.1:8080", false),
        ("-", "-", false),
    ];
    for (first, second, conflict) in cases {
        let m = model(
            hosts(&["a"]),
            [app("x", [service("one", 1).publish(first), service("two", 1).publish(second)])],
        );
        let s = schedule(&m, &nothing());
        assert_eq!(s.unplaced.len(), usize::from(conflict), "{first} vs {second}: {s:?}");
    }
}

#[test]
fn port_reason_shows_the_address() {
    let m = model(
        hosts(&["a"]),
        [app(
            "x",
            [service("one", 1).publish("10.0.0.1:53/udp"), service("two", 1).publish("53/udp")],
        )],
    );
    assert_eq!(
        reasons(&schedule(&m, &nothing())),
        ["x/two#1: host port 53/udp is already published on every candidate host \
          (a by x/one)"]
    );
}

#[test]
fn different_ports_taken_on_different_hosts() {
    let m = model(
        hosts(&["a", "b"]),
        [
            app("x", [service("dns", 1).publish("53/udp").constraint("node.hostname == a")]),
            app("y", [service("web", 1).publish("8443").constraint("node.hostname == b")]),
            app("z", [service("edge", 1).publish("53/udp").publish("8443")]),
        ],
    );
    assert_eq!(
        reasons(&schedule(&m, &nothing())),
        ["z/edge#1: its host ports are already published on every candidate host \
          (a: 53/udp by x/dns, b: 8443/tcp by y/web)"]
    );
}

#[test]
fn each_host_is_named_with_its_own_reason() {
    let fleet = [host("a"), host("b").capacity(Some(1000), None), host("c"), host("d")];
    let m = model(
        fleet,
        [
            app("blog", [service("web", 1).publish("8080").constraint("node.hostname == c")]),
            app(
                "shop",
                [service("web", 2)
                    .max_per_node(1)
                    .reserve(Some(2000), None)
                    .publish("8080")
                    .constraint("node.hostname != d")],
            ),
        ],
    );
    let s = schedule(&m, &nothing());
    assert_eq!(layout(&s), ["blog/web#1 c", "shop/web#1 a"]);
    assert_eq!(
        reasons(&s),
        ["shop/web#2: no candidate host has room: a already runs max_replicas_per_node = 1; \
          needs 2 CPUs reserved, more than is free on b (1 CPU); \
          host port 8080/tcp is already published on c by blog/web"]
    );
}

// ---- stability ----------------------------------------------------------------------

#[test]
fn adding_a_host_moves_nothing() {
    let web = || service("web", 3);
    let before = model(hosts(&["b", "c"]), [app("shop", [web()])]);
    let first = schedule(&before, &nothing());
    assert_eq!(layout(&first), ["shop/web#1 b", "shop/web#2 c", "shop/web#3 b"]);

    let after = model(hosts(&["a", "b", "c"]), [app("shop", [web()])]);
    let second = schedule(&after, &observed_from(&before, &first, &nothing()));
    assert_eq!(second, first);

    // Scaling up then uses the new host.
    let scaled = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 4)])]);
    let third = schedule(&scaled, &observed_from(&after, &second, &nothing()));
    assert_eq!(layout(&third), ["shop/web#1 b", "shop/web#2 c", "shop/web#3 b", "shop/web#4 a"]);
}

#[test]
fn adding_a_service_moves_nothing() {
    let before = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 2)])]);
    let first = schedule(&before, &nothing());
    let after = model(
        hosts(&["a", "b", "c"]),
        [app("blog", [service("web", 3)]), app("shop", [service("api", 3), service("web", 2)])],
    );
    let second = schedule(&after, &observed_from(&before, &first, &nothing()));
    for (replica, host) in &first.assignments {
        assert_eq!(second.assignments.get(replica), Some(host), "{replica} moved");
    }
    assert_eq!(second.assignments.len(), 8);
}

#[test]
fn existing_replicas_stay_in_any_state_even_where_spread_would_not_put_them() {
    let mut obs = Obs::default().run("c", &["shop/web#1", "shop/web#2"]).build();
    if let Some(HostObservation::Reachable(state)) = obs.hosts.get_mut("c") {
        state.containers[1].state = "exited".into();
    }
    let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
    let s = schedule(&m, &obs);
    assert_eq!(layout(&s), ["shop/web#1 c", "shop/web#2 c", "shop/web#3 a"]);
}

#[test]
fn a_replica_on_a_host_that_no_longer_qualifies_is_moved() {
    let fleet = [host("a").label("zone", "a"), host("b"), host("c")];
    let web = service("web", 2).constraint("node.labels.zone != a");
    let obs = Obs::default().run("a", &["shop/web#1"]).run("b", &["shop/web#2"]).build();
    let s = schedule(&model(fleet, [app("shop", [web])]), &obs);
    assert_eq!(layout(&s), ["shop/web#1 c", "shop/web#2 b"]);
}

#[test]
fn kept_replicas_still_respect_capacity_ports_and_max_per_node() {
    let fleet = [host("a").capacity(Some(1000), None), host("b")];
    let cases = [
        service("web", 2).reserve(Some(1000), None),
        service("web", 2).publish("8080"),
        service("web", 2).max_per_node(1),
    ];
    for web in cases {
        let obs = Obs::default().run("a", &["shop/web#1", "shop/web#2"]).build();
        let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &obs);
        assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b"]);
    }
}

#[test]
fn scaling_down_drops_the_highest_replica_numbers() {
    let obs = Obs::default()
        .run("a", &["shop/web#1", "shop/web#4"])
        .run("b", &["shop/web#2", "shop/web#5"])
        .run("c", &["shop/web#3"])
        .build();
    let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
    let s = schedule(&m, &obs);
    assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 c"]);
    assert!(s.unplaced.is_empty());
}

#[test]
fn a_duplicate_replica_stays_on_the_first_valid_host_by_name() {
    let obs = Obs::default().run("c", &["shop/web#1"]).run("b", &["shop/web#1"]).build();
    let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 2)])]);
    assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 b", "shop/web#2 a"]);

    let web = service("web", 2).constraint("node.hostname != b");
    let m = model(hosts(&["a", "b", "c"]), [app("shop", [web])]);
    assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 c", "shop/web#2 a"]);
}

#[test]
fn containers_on_unregistered_hosts_are_ignored() {
    let obs = Obs::default().run("gone", &["shop/web#1"]).build();
    let m = model(hosts(&["a"]), [app("shop", [service("web", 1)])]);
    assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a"]);
}

// ---- volumes ------------------------------------------------------------------------

#[test]
fn a_stateful_service_follows_its_volume() {
    let db = |replicas| {
        app("db", [service("pg", replicas).mount_volume("data").max_per_node(1)])
            .volume("data", false)
    };
    let cases: &[(&[&str], u32, &[&str])] = &[
        // Volume on c: the replica goes there, not to a.
        (&["c"], 1, &["db/pg#1 c"]),
        // On b and c: those first, then fresh data elsewhere once they are full.
        (&["b", "c"], 3, &["db/pg#1 b", "db/pg#2 c", "db/pg#3 a"]),
        // Nowhere yet: plain spread.
        (&[], 2, &["db/pg#1 a", "db/pg#2 b"]),
    ];
    for (holders, replicas, expected) in cases {
        // Every host observed: an unseen host might hold the volume too.
        let seen = ["a", "b", "c"].iter().fold(Obs::default(), |obs, h| obs.empty(h));
        let obs = holders.iter().fold(seen, |obs, h| obs.volume(h, FLEET, "db", "data")).build();
        let s = schedule(&model(hosts(&["a", "b", "c"]), [db(*replicas)]), &obs);
        assert_eq!(layout(&s), *expected, "volume on {holders:?}");
    }
}

#[test]
fn volumes_that_do_not_pin() {
    let m = model(
        hosts(&["a", "b", "c"]),
        [
            app("db", [service("pg", 1).mount_volume("ext")]).volume("ext", true),
            app("cache", [service("redis", 1).mount_volume("data")]).volume("data", false),
            app("queue", [service("mq", 1).mount_volume("data").constraint("node.hostname != c")])
                .volume("data", false),
        ],
    );
    let obs = Obs::default()
        // External volumes are not the app's data.
        .volume("c", FLEET, "db", "ext")
        // Another app's volume of the same key, and another fleet's.
        .volume("c", FLEET, "other", "data")
        .volume("c", "staging", "cache", "data")
        // The app's volume, on a host the service may not use.
        .volume("c", FLEET, "queue", "data")
        .build();
    // Plain spread for all three: c is the emptiest host for none of them.
    assert_eq!(layout(&schedule(&m, &obs)), ["cache/redis#1 a", "db/pg#1 b", "queue/mq#1 a"]);
}

#[test]
fn existing_stateful_replicas_stay_away_from_the_volume() {
    let m = model(
        hosts(&["a", "b"]),
        [app("db", [service("pg", 1).mount_volume("data")]).volume("data", false)],
    );
    let obs = Obs::default().run("a", &["db/pg#1"]).volume("b", FLEET, "db", "data").build();
    assert_eq!(layout(&schedule(&m, &obs)), ["db/pg#1 a"]);
}

// ---- unreachable hosts, other fleets, determinism ------------------------------------

#[test]
fn an_unreachable_host_keeps_its_replicas() {
    let m = model(
        hosts(&["a", "b", "c"]),
        [app("blog", [service("web", 2)]), app("shop", [service("web", 3)])],
    );
    let first = schedule(&m, &nothing());
    let everything = observed_from(&m, &first, &nothing());

    let mut c_unreachable = everything.clone();
    c_unreachable.hosts.insert("c".into(), HostObservation::unreachable("x"));
    assert_eq!(schedule(&m, &c_unreachable), first);

    let mut c_missing = everything;
    c_missing.hosts.remove("c");
    assert_eq!(schedule(&m, &c_missing), first);

    // Unreachable hosts are still candidates when nothing is observed at all.
    let all_down = Obs::default().unreachable("a").unreachable("b").unreachable("c").build();
    assert_eq!(schedule(&m, &all_down), first);
}

#[test]
fn a_remembered_host_keeps_its_replicas_and_volumes_while_away() {
    let m = model(
        hosts(&["a", "b", "c"]),
        [
            app("shop", [service("web", 3)]),
            app("db", [service("pg", 1).mount_volume("data")]).volume("data", false),
        ],
    );
    // Everything sits on c, as an earlier spread would never put it: only memory keeps it.
    let seen = Obs::default()
        .empty("a")
        .empty("b")
        .run("c", &["shop/web#1", "shop/web#2", "shop/web#3", "db/pg#1"])
        .volume("c", FLEET, "db", "data");
    let s = schedule(&m, &seen.lost("c", false).build());
    assert_eq!(layout(&s), ["db/pg#1 c", "shop/web#1 c", "shop/web#2 c", "shop/web#3 c"]);
    assert!(s.unplaced.is_empty());
}

#[test]
fn a_down_host_loses_its_stateless_replicas_but_keeps_the_ones_its_volume_pins() {
    let m = model(
        hosts(&["a", "b", "c"]),
        [
            app("shop", [service("web", 3)]),
            app("db", [service("pg", 2).mount_volume("data").max_per_node(1)])
                .volume("data", false),
        ],
    );
    let seen = Obs::default()
        .run("a", &["shop/web#1"])
        .run("b", &["shop/web#2"])
        .run("c", &["shop/web#3", "db/pg#1"])
        .volume("c", FLEET, "db", "data");
    let s = schedule(&m, &seen.lost("c", true).build());
    assert_eq!(layout(&s), ["db/pg#1 c", "shop/web#1 a", "shop/web#2 b", "shop/web#3 a"]);
    // The second replica would need a fresh volume: not while the data is on a down host.
    assert_eq!(
        reasons(&s),
        ["db/pg#2: its volume is on c (down); not placed elsewhere, to keep its data"]
    );
}

#[test]
fn a_down_host_nobody_remembers_is_no_candidate() {
    let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 2)])]);
    let obs = Obs::default().empty("a").lost("b", true).build();
    assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a", "shop/web#2 a"]);
}

#[test]
fn of_two_copies_the_running_then_the_newest_is_kept() {
    let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 1)])]);
    // b came back after its replica had moved to a: a's copy is newer.
    let back = Obs::default()
        .run("a", &["shop/web#1"])
        .created("a", 2_000)
        .run("b", &["shop/web#1"])
        .created("b", 1_000)
        .build();
    assert_eq!(layout(&schedule(&m, &back)), ["shop/web#1 a"]);
    let mut reversed = back.clone();
    for (host, when) in [("a", 1_000), ("b", 2_000)] {
        if let Some(HostObservation::Reachable(state)) = reversed.hosts.get_mut(host) {
            state.containers[0].created = when;
        }
    }
    assert_eq!(layout(&schedule(&m, &reversed)), ["shop/web#1 b"]);
    // A running copy wins over a newer stopped one.
    let mut stopped = back;
    if let Some(HostObservation::Reachable(state)) = stopped.hosts.get_mut("a") {
        state.containers[0].state = "exited".into();
    }
    assert_eq!(layout(&schedule(&m, &stopped)), ["shop/web#1 b"]);
}

#[test]
fn objects_of_other_fleets_and_unlabelled_ones_are_ignored() {
    let fleet = [host("a").capacity(Some(1000), None), host("b")];
    let m = model(
        fleet,
        [app(
            "shop",
            [service("web", 1).reserve(Some(1000), None).publish("80").mount_volume("data")],
        )
        .volume("data", false)],
    );
    let obs = Obs::default()
        .labelled("b", "staging", "shop/web#1")
        .volume("b", "staging", "shop", "data")
        .unlabelled("a")
        .labelled("a", "staging", "shop/web#2")
        .build();
    assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a"]);
}

/// A scenario with a bit of everything, built in the given orders.
fn busy(reverse: bool) -> (Model, Observed) {
    let mut fleet = vec![
        host("a").label("zone", "x").capacity(Some(4000), Some(8 * GIB)),
        host("b").label("zone", "y").capacity(Some(2000), None),
        host("c").label("zone", "x"),
        host("d").platform("linux", "aarch64"),
    ];
    let mut apps = vec![
        app("blog", [service("web", 3).publish("80"), service("db", 1).mount_volume("data")])
            .volume("data", false),
        app(
            "shop",
            [
                service("web", 4).reserve(Some(1000), Some(GIB)).max_per_node(2),
                service("api", 2).constraint("node.labels.zone == x").publish("80"),
                service("worker", 5).constraint("node.platform.arch != aarch64"),
            ],
        ),
    ];
    let mut hosts_seen = vec![
        ("a", vec!["shop/web#1", "blog/web#1"]),
        ("b", vec!["shop/web#9", "blog/db#1", "shop/worker#2"]),
        ("c", vec!["shop/web#1", "shop/api#1"]),
    ];
    if reverse {
        fleet.reverse();
        apps.reverse();
        hosts_seen.reverse();
        for (_, replicas) in &mut hosts_seen {
            replicas.reverse();
        }
    }
    let obs = hosts_seen
        .iter()
        .fold(Obs::default(), |obs, (h, replicas)| obs.run(h, replicas))
        .volume("d", FLEET, "blog", "data")
        .unreachable("e")
        .build();
    (model(fleet, apps), obs)
}

#[test]
fn deterministic_whatever_the_insertion_order() {
    let (m, obs) = busy(false);
    let first = schedule(&m, &obs);
    assert_eq!(schedule(&m, &obs), first);
    let (m2, obs2) = busy(true);
    assert_eq!(schedule(&m2, &obs2), first);
    assert_eq!(
        layout(&first),
        [
            "blog/db#1 b",
            "blog/web#1 a",
            // c already publishes port 80 (shop/api#1): d is the emptiest.
            "blog/web#2 d",
            "blog/web#3 b",
            "shop/api#1 c",
            "shop/web#1 a", // kept on a, the first of its duplicates on a and c
            "shop/web#2 c",
            "shop/web#3 d",
            "shop/web#4 b",
            "shop/worker#1 a",
            "shop/worker#2 b", // kept
            "shop/worker#3 c",
            "shop/worker#4 a",
            "shop/worker#5 c",
        ]
    );
    assert_eq!(
        reasons(&first),
        ["shop/api#2: host port 80/tcp is already published on every candidate host \
          (a by blog/web, c by shop/api)"]
    );
}

#[test]
fn serialises_to_json_with_readable_keys() {
    let m = model(
        hosts(&["a"]),
        [app("shop", [service("web", 1), service("db", 1).constraint("node.hostname == z")])],
    );
    let json = serde_json::to_value(schedule(&m, &nothing())).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "assignments": { "shop/web#1": "a" },
            "unplaced": [{
                "replica": { "app": "shop", "service": "db", "replica": 1 },
                "reason": "no host satisfies node.hostname == z (hosts: a)"
            }]
        })
    );
}
