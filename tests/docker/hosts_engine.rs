//! The mutating side of `hosts/` against real Docker daemons from the test bed
//! (tests/support): a container created from a spec with every field set and each field
//! checked on the engine and in the running container; configs and secrets as files with
//! content, mode and owner; status and health over a container's life; exit codes and logs;
//! networks and volumes that are never adopted; idempotent removal that keeps volumes; pulls
//! that fail with the image named, and pulls from a real registry (Debian's docker-registry)
//! with and without basic auth.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{DockerHost, Testbed, Via};
use bollard::Docker;
use gitfleet::diff::ReplicaKey;
use gitfleet::diff::labels;
use gitfleet::diff::spec::{ContainerSpec, SpecFile, SpecMount};
use gitfleet::hosts::{
    ContainerStatus, FileToDeliver, Health, HostError, connect, container_status, create_container,
    ensure_network, ensure_volume, image_present, logs_tail, pull_image, registry_auth_for,
    remove_container, remove_network, rename_container, start_container, stop_container,
};
use gitfleet::model::{Healthcheck, PortMapping, Protocol, ResourceAmounts};
use serde_json::Value as Json;

const FLEET: &str = "test";

// --- helpers -------------------------------------------------------------------------------

async fn client(host: &DockerHost) -> Docker {
    connect(&host.model_host(Via::Tcp)).await.expect("connect over tcp")
}

/// A spec with nothing but the image and a restart policy set.
fn bare_spec(image: &str) -> ContainerSpec {
    ContainerSpec { image: image.into(), restart: "no".into(), ..ContainerSpec::default() }
}

/// gitfleet's labels for replica `n` of `app`/`service`.
fn container_labels(
    spec: &ContainerSpec,
    app: &str,
    service: &str,
    n: u32,
) -> BTreeMap<String, String> {
    let key = ReplicaKey { app: app.into(), service: service.into(), replica: n };
    labels::for_container(FLEET, &key, spec, &spec.hash(), Some("0123abcd"))
}

fn object_labels(app: &str, key: &str) -> BTreeMap<String, String> {
    labels::for_object(FLEET, app, key, &BTreeMap::new())
}

fn inspect(host: &DockerHost, kind: &str, name: &str) -> Json {
    let text = host.docker(&[kind, "inspect", name]);
    let mut all: Vec<Json> = serde_json::from_str(&text).expect("inspect answers JSON");
    all.remove(0)
}

/// `docker exec` as the container's user (or `-u 0` when given), stdout trimmed; panics on
/// failure.
fn exec(host: &DockerHost, container: &str, user: Option<&str>, cmd: &[&str]) -> String {
    let mut args = vec!["exec"];
    if let Some(user) = user {
        args.extend(["-u", user]);
    }
    args.push(container);
    args.extend(cmd);
    host.docker(&args)
}

/// `docker exec` that may fail: (success, stdout + stderr).
fn try_exec(host: &DockerHost, container: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", container];
    args.extend(cmd);
    let out = host.docker_output(&args);
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `busybox nslookup name` inside `container` (Docker's embedded DNS): the address, if any.
fn resolve(host: &DockerHost, container: &str, name: &str) -> Option<String> {
    let (ok, out) = try_exec(host, container, &["busybox", "nslookup", name]);
    let answer = out.split_once(&format!("Name:\t{name}"))?.1;
    let address = answer.lines().find_map(|l| l.strip_prefix("Address: "))?;
    ok.then(|| address.trim().to_string())
}

/// A plain HTTP/1.0 GET over std's TcpStream; the body.
fn http_get(address: Ipv4Addr, port: u16, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from((address, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!("unexpected answer: {answer:?}"))),
    }
}

/// Polls the container's status until `done` says so, or panics after `limit`.
async fn wait_status(
    docker: &Docker,
    id: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&ContainerStatus) -> bool,
) -> ContainerStatus {
    let started = Instant::now();
    loop {
        let status = container_status(docker, id).await.expect("container status");
        if done(&status) {
            eprintln!("{what} after {:.1}s", started.elapsed().as_secs_f64());
            return status;
        }
        assert!(started.elapsed() < limit, "not {what} within {limit:?}: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names_of(json: &Json) -> Vec<String> {
    json.as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

// --- a container with every field ----------------------------------------------------------

#[tokio::test]
async fn every_spec_field_reaches_the_engine_and_the_running_container() {
    let started = Instant::now();
    let bed = Testbed::builder().hosts(1).images().start();
    let a = &bed[0];
    let docker = client(a).await;

    let front = ensure_network(&docker, "shop_front", &object_labels("shop", "front"), None, false)
        .await
        .expect("front network");
    let back = ensure_network(&docker, "shop_back", &object_labels("shop", "back"), None, false)
        .await
        .expect("back network");
    ensure_volume(&docker, "shop_data", &object_labels("shop", "data"), None).await.unwrap();
    let bind_dir = tempfile::tempdir().unwrap();
    std::fs::write(bind_dir.path().join("host.txt"), "from the host\n").unwrap();
    let bind_source = bind_dir.path().display().to_string();

    let healthy_check = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthy"];
    let spec = ContainerSpec {
        image: "gitfleet/api:1".into(),
        entrypoint: Some(vec!["sh".into(), "-c".into()]),
        command: Some(vec![
            "trap 'exit 0' INT; \
             echo \"started as $(id -u):$(id -g) in $(pwd) on $(hostname) with $GREETING\"; \
             httpd -f -p 8080 -h /www & wait"
                .into(),
        ]),
        environment: BTreeMap::from([
            ("GREETING".into(), "hello world".into()),
            ("EMPTY".into(), String::new()),
            ("EQUALS".into(), "a=b".into()),
        ]),
        expose: vec!["9000/tcp".into()],
        ports: vec![
            PortMapping {
                target: 8080,
                published: Some(18080),
                host_ip: None,
                protocol: Protocol::Tcp,
            },
            PortMapping { target: 8080, published: None, host_ip: None, protocol: Protocol::Tcp },
            PortMapping {
                target: 8080,
                published: Some(18081),
                host_ip: Some(a.address().to_string()),
                protocol: Protocol::Tcp,
            },
            PortMapping {
                target: 5353,
                published: Some(15353),
                host_ip: None,
                protocol: Protocol::Udp,
            },
        ],
        networks: BTreeMap::from([
            ("shop_front".into(), vec!["web".into(), "www-front".into()]),
            ("shop_back".into(), vec!["backend".into(), "web".into()]),
        ]),
        mounts: vec![
            SpecMount {
                kind: "volume".into(),
                source: "shop_data".into(),
                target: "/data".into(),
                read_only: false,
            },
            SpecMount {
                kind: "bind".into(),
                source: bind_source.clone(),
                target: "/host".into(),
                read_only: true,
            },
            SpecMount {
                kind: "anonymous".into(),
                source: String::new(),
                target: "/cache".into(),
                read_only: false,
            },
            SpecMount {
                kind: "tmpfs".into(),
                source: String::new(),
                target: "/scratch".into(),
                read_only: false,
            },
        ],
        files: BTreeMap::from([
            (
                "/etc/app/app.conf".into(),
                SpecFile {
                    kind: "config".into(),
                    name: "app".into(),
                    digest: "d1".into(),
                    uid: None,
                    gid: None,
                    mode: None,
                },
            ),
            (
                "/run/secrets/db_password".into(),
                SpecFile {
                    kind: "secret".into(),
                    name: "db_password".into(),
                    digest: "d2".into(),
                    uid: Some("1000".into()),
                    gid: Some("1000".into()),
                    mode: Some(0o400),
                },
            ),
            (
                "/tmp/probe.conf".into(),
                SpecFile {
                    kind: "config".into(),
                    name: "probe".into(),
                    digest: "d3".into(),
                    uid: Some("0".into()),
                    gid: Some("1000".into()),
                    mode: Some(0o640),
                },
            ),
        ]),
        labels: BTreeMap::from([("com.example.team".into(), "shop".into())]),
        healthcheck: Some(Healthcheck {
            test: healthy_check.iter().map(|s| s.to_string()).collect(),
            interval_ms: Some(1_000),
            timeout_ms: Some(2_000),
            retries: Some(2),
            start_period_ms: Some(1_500),
        }),
        restart: "on-failure:5".into(),
        user: Some("1000:1000".into()),
        working_dir: Some("/www".into()),
        stop_grace_period_ms: Some(2_500),
        stop_signal: Some("SIGINT".into()),
        hostname: Some("shop-web-host".into()),
        extra_hosts: vec!["api.shop.internal:10.250.50.9".into()],
        limits: ResourceAmounts {
            millicpus: Some(500),
            memory_bytes: Some(64 << 20),
            pids: Some(64),
        },
        os: None,
    };
    let secret = Arc::new(b"s3cr3t-pa55".to_vec());
    let files = vec![
        FileToDeliver {
            target: "/etc/app/app.conf".into(),
            content: Arc::new(b"listen 8080\n".to_vec()),
            uid: None,
            gid: None,
            mode: None,
        },
        FileToDeliver {
            target: "/run/secrets/db_password".into(),
            content: secret.clone(),
            uid: Some("1000".into()),
            gid: Some("1000".into()),
            mode: Some(0o400),
        },
        FileToDeliver {
            target: "/tmp/probe.conf".into(),
            content: Arc::new(b"probe=1\n".to_vec()),
            uid: Some("0".into()),
            gid: Some("1000".into()),
            mode: Some(0o640),
        },
    ];
    let labels = container_labels(&spec, "shop", "web", 1);
    let t = Instant::now();
    let id = create_container(&docker, "shop-web-1", &spec, &labels, &files).await.expect("create");
    eprintln!("create_container (create, connect, upload) took {:?}", t.elapsed());

    // --- the engine's view, before start ---
    let c = inspect(a, "container", &id);
    let config = &c["Config"];
    let host_config = &c["HostConfig"];
    assert_eq!(c["Name"], "/shop-web-1");
    assert_eq!(c["State"]["Status"], "created");
    assert_eq!(config["Image"], "gitfleet/api:1");
    assert_eq!(names_of(&config["Entrypoint"]), ["sh", "-c"]);
    assert_eq!(names_of(&config["Cmd"]), spec.command.clone().unwrap());
    let env = names_of(&config["Env"]);
    for expected in ["GREETING=hello world", "EMPTY=", "EQUALS=a=b", "PATH=/bin"] {
        assert!(env.contains(&expected.to_string()), "{expected} missing from {env:?}");
    }
    let exposed: Vec<&String> = config["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(
        exposed,
        ["5353/udp", "80/tcp", "8080/tcp", "9000/tcp"],
        "ours (ports and expose), and the image's EXPOSE 80"
    );
    let bindings = &host_config["PortBindings"];
    let tcp: Vec<(String, String)> = bindings["8080/tcp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["HostIp"].as_str().unwrap().into(), b["HostPort"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        tcp,
        [
            (String::new(), "18080".to_string()),
            (String::new(), String::new()),
            (a.address().to_string(), "18081".to_string())
        ]
    );
    assert_eq!(bindings["5353/udp"][0]["HostPort"], "15353");
    let got_labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).unwrap();
    assert_eq!(got_labels, labels, "exactly the given labels");
    assert_eq!(got_labels["com.example.team"], "shop");
    assert_eq!(got_labels[labels::SPEC_HASH], spec.hash());
    let health = &config["Healthcheck"];
    assert_eq!(names_of(&health["Test"]), healthy_check);
    assert_eq!(health["Interval"], 1_000_000_000i64);
    assert_eq!(health["Timeout"], 2_000_000_000i64);
    assert_eq!(health["StartPeriod"], 1_500_000_000i64);
    assert_eq!(health["Retries"], 2);
    assert_eq!(host_config["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(host_config["RestartPolicy"]["MaximumRetryCount"], 5);
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["WorkingDir"], "/www");
    assert_eq!(config["Hostname"], "shop-web-host");
    assert_eq!(config["StopSignal"], "SIGINT");
    assert_eq!(config["StopTimeout"], 3, "2.5 s rounds up to 3 s");
    assert_eq!(host_config["NanoCpus"], 500_000_000i64);
    assert_eq!(host_config["Memory"], 64i64 << 20);
    assert_eq!(host_config["PidsLimit"], 64);
    assert_eq!(host_config["NetworkMode"], "shop_back", "the first network by name");
    let mounts: Vec<(String, Option<String>, String, bool)> = host_config["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Type"].as_str().unwrap().into(),
                m["Source"].as_str().map(str::to_string),
                m["Target"].as_str().unwrap().into(),
                m["ReadOnly"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("volume".into(), Some("shop_data".into()), "/data".into(), false),
            ("bind".into(), Some(bind_source.clone()), "/host".into(), true),
            ("volume".into(), None, "/cache".into(), false),
            ("tmpfs".into(), None, "/scratch".into(), false),
        ]
    );

    // --- start: health starting, then healthy ---
    start_container(&docker, &id).await.expect("start");
    start_container(&docker, &id).await.expect("starting a running container is fine");
    let status = container_status(&docker, &id).await.unwrap();
    assert!(status.running, "{status:?}");
    assert_eq!(status.state, "running");
    assert_eq!(status.exit_code, None);
    assert_eq!(status.health, Some(Health::Starting), "{status:?}");
    assert_eq!(status.restart_count, 0);
    let status = wait_status(&docker, &id, Duration::from_secs(30), "healthy", |s| {
        s.health == Some(Health::Healthy)
    })
    .await;
    assert!(status.running && !status.oom_killed && status.error.is_none(), "{status:?}");

    // --- ports: published on every address, on the host address only, and Docker-picked ---
    let c = inspect(a, "container", &id);
    let port_map = &c["NetworkSettings"]["Ports"]["8080/tcp"];
    let host_ports: Vec<u16> = port_map
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["HostIp"] != "::")
        .map(|b| b["HostPort"].as_str().unwrap().parse().unwrap())
        .collect();
    let picked = *host_ports.iter().find(|p| **p != 18080 && **p != 18081).expect("a picked port");
    for port in [18080, 18081, picked] {
        let body = http_get(a.address(), port, "/").unwrap_or_else(|e| panic!("GET :{port}: {e}"));
        assert_eq!(body, "gitfleet api v1\n", "port {port}");
    }

    // --- the container's own view: user, dir, hostname, env via its start line ---
    let log = logs_tail(&docker, &id, 10).await.unwrap();
    assert!(
        log.contains("started as 1000:1000 in /www on shop-web-host with hello world"),
        "{log:?}"
    );
    assert_eq!(exec(a, &id, None, &["hostname"]), "shop-web-host");
    assert!(
        exec(a, &id, None, &["cat", "/etc/hosts"]).contains("10.250.50.9\tapi.shop.internal"),
        "extra_hosts reach /etc/hosts"
    );
    assert_eq!(
        exec(a, &id, None, &["sh", "-c", "echo \"$EQUALS|$EMPTY|$GREETING\""]),
        "a=b||hello world"
    );

    // --- configs and secrets: content, mode, owner; parents made, /tmp untouched ---
    let stat = |path: &str| exec(a, &id, None, &["busybox", "stat", "-c", "%a %u %g", path]);
    assert_eq!(exec(a, &id, None, &["cat", "/etc/app/app.conf"]), "listen 8080");
    assert_eq!(stat("/etc/app/app.conf"), "444 0 0");
    assert_eq!(exec(a, &id, None, &["cat", "/run/secrets/db_password"]), "s3cr3t-pa55");
    assert_eq!(stat("/run/secrets/db_password"), "400 1000 1000");
    assert_eq!(stat("/run/secrets"), "755 0 0", "missing parents are made by Docker");
    assert_eq!(exec(a, &id, None, &["cat", "/tmp/probe.conf"]), "probe=1");
    assert_eq!(stat("/tmp/probe.conf"), "640 0 1000");
    assert_eq!(stat("/tmp"), "1777 0 0", "an existing parent keeps its mode");

    // --- mounts at work ---
    exec(a, &id, Some("0"), &["sh", "-c", "echo kept > /data/kept"]);
    assert_eq!(exec(a, &id, None, &["cat", "/host/host.txt"]), "from the host");
    let (ok, out) = try_exec(a, &id, &["touch", "/host/new"]);
    assert!(!ok && out.contains("Read-only file system"), "{out}");
    let mounts =
        exec(a, &id, None, &["busybox", "grep", "-E", " /(scratch|cache|data) ", "/proc/mounts"]);
    assert!(mounts.lines().any(|l| l.starts_with("tmpfs /scratch ")), "{mounts}");
    assert_eq!(mounts.lines().count(), 3, "{mounts}");
    let c = inspect(a, "container", &id);
    let anonymous =
        c["Mounts"].as_array().unwrap().iter().find(|m| m["Destination"] == "/cache").unwrap();
    assert_eq!(anonymous["Type"], "volume");
    assert_eq!(anonymous["Name"].as_str().unwrap().len(), 64, "{anonymous}");

    // --- networks: both joined with their aliases; the aliases resolve per network ---
    let networks = &c["NetworkSettings"]["Networks"];
    assert_eq!(networks.as_object().unwrap().len(), 2, "{networks}");
    assert_eq!(networks["shop_front"]["NetworkID"], front.as_str());
    assert_eq!(networks["shop_back"]["NetworkID"], back.as_str());
    let aliases = |net: &str| names_of(&networks[net]["Aliases"]);
    assert!(
        aliases("shop_front").contains(&"www-front".to_string()),
        "{:?}",
        aliases("shop_front")
    );
    assert!(aliases("shop_front").contains(&"web".to_string()));
    assert!(aliases("shop_back").contains(&"backend".to_string()), "{:?}", aliases("shop_back"));
    a.docker(&["run", "-d", "--name", "probe-back", "--network", "shop_back", "gitfleet/web:1"]);
    a.docker(&["run", "-d", "--name", "probe-front", "--network", "shop_front", "gitfleet/web:1"]);
    // The images' busybox is static glibc: its wget cannot resolve names (no NSS), so the
    // alias is resolved with busybox's own nslookup against Docker's DNS, and fetched by IP.
    for (probe, network, alias) in [
        ("probe-back", "shop_back", "backend"),
        ("probe-back", "shop_back", "web"),
        ("probe-front", "shop_front", "www-front"),
        ("probe-front", "shop_front", "web"),
    ] {
        let ip = networks[network]["IPAddress"].as_str().unwrap();
        let answer = resolve(a, probe, alias);
        assert_eq!(answer.as_deref(), Some(ip), "{alias} from {probe}");
        let url = format!("http://{ip}:8080/");
        let body = exec(a, probe, None, &["wget", "-q", "-O", "-", &url]);
        assert_eq!(body, "gitfleet api v1", "{alias} from {probe}");
    }
    assert_eq!(resolve(a, "probe-back", "www-front"), None, "shop_front's alias, not shop_back's");

    // --- unhealthy once the check fails ---
    exec(a, &id, Some("0"), &["rm", "/www/healthy"]);
    let status = wait_status(&docker, &id, Duration::from_secs(30), "unhealthy", |s| {
        s.health == Some(Health::Unhealthy)
    })
    .await;
    assert!(status.running, "unhealthy is still running: {status:?}");
    assert!(status.health_output.is_some(), "{status:?}");

    // --- stop: the stop signal (SIGINT, trapped) ends it at once, well within the grace ---
    let t = Instant::now();
    stop_container(&docker, &id, Duration::from_secs(20)).await.expect("stop");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "SIGINT should end it at once, took {took:?}");
    let status = container_status(&docker, &id).await.unwrap();
    assert_eq!(
        (status.running, status.state.as_str(), status.exit_code),
        (false, "exited", Some(0))
    );
    stop_container(&docker, &id, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container");

    // The secret's content is nowhere in the labels.
    let c = inspect(a, "container", &id);
    assert!(!c["Config"]["Labels"].to_string().contains("s3cr3t"), "secret leaked into labels");
    eprintln!("every_spec_field test took {:.1}s", started.elapsed().as_secs_f64());
}

// --- a replica that fails --------------------------------------------------------------------

#[tokio::test]
async fn a_failing_replica_reports_exit_code_restarts_and_log() {
    let bed = Testbed::builder().hosts(1).images().start();
    let a = &bed[0];
    let docker = client(a).await;

    // The image as built: exits 3 after a second.
    let spec = bare_spec("gitfleet/exits:1");
    let id = create_container(
        &docker,
        "job-exits-1",
        &spec,
        &container_labels(&spec, "job", "exits", 1),
        &[],
    )
    .await
    .unwrap();
    start_container(&docker, &id).await.unwrap();
    let status = wait_status(&docker, &id, Duration::from_secs(20), "exited", |s| !s.running).await;
    assert_eq!(status.state, "exited");
    assert_eq!(status.exit_code, Some(3));
    assert_eq!(status.health, None, "no health check, no health");
    assert_eq!(status.restart_count, 0, "restart: no");

    // With output on both streams and a bounded restart policy.
    let mut spec = bare_spec("gitfleet/exits:1");
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo starting; sleep 1; echo 'config missing' >&2; exit 3".into(),
    ]);
    spec.restart = "on-failure:2".into();
    let id = create_container(
        &docker,
        "job-exits-2",
        &spec,
        &container_labels(&spec, "job", "exits", 2),
        &[],
    )
    .await
    .unwrap();
    start_container(&docker, &id).await.unwrap();
    let status =
        wait_status(&docker, &id, Duration::from_secs(30), "given up after 2 restarts", |s| {
            s.restart_count == 2 && s.state == "exited"
        })
        .await;
    assert_eq!(status.exit_code, Some(3));
    assert_eq!(logs_tail(&docker, &id, 1).await.unwrap(), "config missing\n");
    let three_runs = logs_tail(&docker, &id, 100).await.unwrap();
    assert_eq!(three_runs, "starting\nconfig missing\n".repeat(3), "{three_runs:?}");
    assert_eq!(logs_tail(&docker, &id, 0).await.unwrap(), "");

    // A command that cannot run: start fails with Docker's reason, the object named.
    let mut spec = bare_spec("gitfleet/web:1");
    spec.entrypoint = Some(vec!["/no/such/binary".into()]);
    let id = create_container(
        &docker,
        "job-broken-1",
        &spec,
        &container_labels(&spec, "job", "broken", 1),
        &[],
    )
    .await
    .unwrap();
    let err = start_container(&docker, &id).await.unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.starts_with(&format!("starting container {id}: ")), "{text}");
    assert!(text.contains("/no/such/binary") && text.contains("no such file"), "{text}");
    let status = container_status(&docker, &id).await.unwrap();
    assert!(!status.running);
    assert!(status.error.as_deref().unwrap_or("").contains("/no/such/binary"), "{status:?}");

    // Creating from an image that is not there names the container and the image.
    let spec = bare_spec("gitfleet/absent:1");
    let err = create_container(
        &docker,
        "job-absent-1",
        &spec,
        &container_labels(&spec, "job", "absent", 1),
        &[],
    )
    .await
    .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("creating container job-absent-1: ") && text.contains("gitfleet/absent:1"),
        "{text}"
    );

    // A name in use: 409, Docker's message.
    let spec = bare_spec("gitfleet/web:1");
    let err = create_container(
        &docker,
        "job-exits-1",
        &spec,
        &container_labels(&spec, "job", "exits", 1),
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err:?}");
    assert!(err.to_string().contains("is already in use"), "{err}");
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_and_never_shows_the_secret() {
    let bed = Testbed::builder().hosts(1).images().start();
    let a = &bed[0];
    let docker = client(a).await;
    ensure_network(&docker, "app_one", &object_labels("app", "one"), None, false).await.unwrap();

    // A second network that does not exist: the create succeeds, the connect fails, and the
    // container is removed again.
    let mut spec = bare_spec("gitfleet/web:1");
    spec.networks = BTreeMap::from([
        ("app_one".into(), vec!["web".into()]),
        ("app_two".into(), vec!["web".into()]),
    ]);
    let err = create_container(
        &docker,
        "app-web-1",
        &spec,
        &container_labels(&spec, "app", "web", 1),
        &[],
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("connecting app-web-1 to network app_two: "), "{text}");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(a.docker(&["ps", "-aq", "--filter", "name=app-web-1"]), "", "nothing left behind");

    // A file where the image has a directory: the upload fails, nothing is left, and the
    // error names the container but not the content.
    let spec = bare_spec("gitfleet/web:1");
    let files = [FileToDeliver {
        target: "/www".into(),
        content: Arc::new(b"hunter2-very-secret".to_vec()),
        uid: None,
        gid: None,
        mode: Some(0o400),
    }];
    let err = create_container(
        &docker,
        "app-web-2",
        &spec,
        &container_labels(&spec, "app", "web", 2),
        &files,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.starts_with("writing configs and secrets into container app-web-2: "), "{text}");
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{text}");
    assert_eq!(a.docker(&["ps", "-aq", "--filter", "name=app-web-2"]), "");

    // A target that cannot be expressed: refused before anything is sent.
    let files = [FileToDeliver {
        target: "relative/secret".into(),
        content: Arc::new(b"hunter2-very-secret".to_vec()),
        uid: None,
        gid: None,
        mode: None,
    }];
    let err = create_container(
        &docker,
        "app-web-3",
        &spec,
        &container_labels(&spec, "app", "web", 3),
        &files,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HostError::Invalid { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
    assert_eq!(a.docker(&["ps", "-aq", "--filter", "name=app-web-3"]), "");

    // A bind source that does not exist: the Mounts API refuses it at create (it does not
    // make host directories as `-v` does).
    let mut spec = bare_spec("gitfleet/web:1");
    spec.mounts = vec![SpecMount {
        kind: "bind".into(),
        source: "/nonexistent/gitfleet-bind".into(),
        target: "/data".into(),
        read_only: false,
    }];
    let err = create_container(
        &docker,
        "app-web-5",
        &spec,
        &container_labels(&spec, "app", "web", 5),
        &[],
    )
    .await
    .unwrap_err();
    eprintln!("{err}");
    let text = err.to_string();
    assert!(text.starts_with("creating container app-web-5: "), "{text}");
    assert!(text.contains("/nonexistent/gitfleet-bind"), "{text}");
    assert_eq!(a.docker(&["ps", "-aq", "--filter", "name=app-web-5"]), "");

    // An unknown restart policy: the same.
    let mut spec = bare_spec("gitfleet/web:1");
    spec.restart = "sometimes".into();
    let err = create_container(
        &docker,
        "app-web-4",
        &spec,
        &container_labels(&spec, "app", "web", 4),
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "creating container app-web-4: unknown restart policy \"sometimes\" (no, always, \
         unless-stopped, on-failure[:N])"
    );
}

// --- networks and volumes --------------------------------------------------------------------

#[tokio::test]
async fn networks_and_volumes_are_made_once_and_never_adopted() {
    let bed = Testbed::start(1);
    let a = &bed[0];
    let docker = client(a).await;

    // The user's own objects, and another fleet's.
    a.docker(&["network", "create", "shop_default"]);
    a.docker(&["volume", "create", "shop_data"]);
    a.docker(&["network", "create", "--label", "io.gitfleet.fleet=other", "other_net"]);
    a.docker(&["volume", "create", "--label", "io.gitfleet.fleet=other", "other_vol"]);

    let err =
        ensure_network(&docker, "shop_default", &object_labels("shop", "default"), None, false)
            .await
            .unwrap_err();
    assert!(matches!(err, HostError::NotOurs { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "network shop_default already exists on the host and is not fleet \"test\"'s (it has no \
         io.gitfleet.fleet label); gitfleet never adopts an object it did not create: remove or \
         rename that network, or give the app's network another name"
    );
    let err = ensure_volume(&docker, "shop_data", &object_labels("shop", "data"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("volume shop_data already exists"), "{err}");
    let err = ensure_network(&docker, "other_net", &object_labels("shop", "x"), None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("it belongs to fleet \"other\""), "{err}");
    let err =
        ensure_volume(&docker, "other_vol", &object_labels("shop", "x"), None).await.unwrap_err();
    assert!(err.to_string().contains("it belongs to fleet \"other\""), "{err}");
    // ... and they are exactly as they were: one of each, labels untouched.
    assert_eq!(inspect(a, "network", "shop_default")["Labels"], serde_json::json!({}));
    assert!(inspect(a, "volume", "shop_data")["Labels"].is_null());
    let network_names = a.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(network_names.lines().filter(|n| *n == "shop_default").count(), 1);

    // Ours: made with the labels, driver and internal flag, found again by name.
    let labels = object_labels("shop", "back");
    let id = ensure_network(&docker, "shop_back", &labels, Some("bridge"), true).await.unwrap();
    let n = inspect(a, "network", "shop_back");
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Internal"], true);
    let got: BTreeMap<String, String> = serde_json::from_value(n["Labels"].clone()).unwrap();
    assert_eq!(got, labels);
    assert_eq!(
        ensure_network(&docker, "shop_back", &labels, Some("bridge"), true).await.unwrap(),
        id
    );

    // Concurrent creates of one name give one network (CheckDuplicate on API 1.41).
    let labels = object_labels("shop", "race");
    let racers = (0..4).map(|_| ensure_network(&docker, "shop_race", &labels, None, false));
    let ids: Vec<String> =
        futures_util::future::join_all(racers).await.into_iter().map(Result::unwrap).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let network_names = a.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(network_names.lines().filter(|n| *n == "shop_race").count(), 1, "{network_names}");

    let labels = object_labels("shop", "data2");
    ensure_volume(&docker, "shop_data2", &labels, None).await.unwrap();
    ensure_volume(&docker, "shop_data2", &labels, None).await.unwrap();
    let v = inspect(a, "volume", "shop_data2");
    let got: BTreeMap<String, String> = serde_json::from_value(v["Labels"].clone()).unwrap();
    assert_eq!(got, labels);
    assert_eq!(v["Driver"], "local");

    // No fleet label, nothing made.
    let err =
        ensure_network(&docker, "unlabelled", &BTreeMap::new(), None, false).await.unwrap_err();
    assert!(matches!(err, HostError::Invalid { .. }), "{err:?}");
    let err = ensure_volume(&docker, "unlabelled", &BTreeMap::new(), None).await.unwrap_err();
    assert!(matches!(err, HostError::Invalid { .. }), "{err:?}");

    // An unknown driver: Docker's message, the network named.
    let err = ensure_network(
        &docker,
        "shop_odd",
        &object_labels("shop", "odd"),
        Some("no-such-driver"),
        false,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with("creating network shop_odd: "), "{err}");
    assert!(err.to_string().contains("no-such-driver"), "{err}");
}

// --- removal ---------------------------------------------------------------------------------

#[tokio::test]
async fn removal_is_idempotent_and_keeps_every_volume() {
    let bed = Testbed::builder().hosts(1).images().start();
    let a = &bed[0];
    let docker = client(a).await;
    ensure_volume(&docker, "db_data", &object_labels("db", "data"), None).await.unwrap();
    let net = ensure_network(&docker, "db_default", &object_labels("db", "default"), None, false)
        .await
        .unwrap();

    let mut spec = bare_spec("gitfleet/db:1");
    spec.mounts = vec![
        SpecMount {
            kind: "volume".into(),
            source: "db_data".into(),
            target: "/data".into(),
            read_only: false,
        },
        SpecMount {
            kind: "anonymous".into(),
            source: String::new(),
            target: "/cache".into(),
            read_only: false,
        },
    ];
    spec.networks = BTreeMap::from([("db_default".into(), vec!["db".into()])]);
    spec.restart = "always".into();
    let id =
        create_container(&docker, "db-db-1", &spec, &container_labels(&spec, "db", "db", 1), &[])
            .await
            .unwrap();
    start_container(&docker, &id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !try_exec(a, &id, &["test", "-s", "/data/log"]).0 {
        assert!(Instant::now() < deadline, "db never wrote /data/log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anonymous = inspect(a, "container", &id)["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/cache")
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .unwrap();

    // A network in use cannot go: Docker says why, the network named.
    let err = remove_network(&docker, &net).await.unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().starts_with(&format!("removing network {net}: ")), "{err}");
    assert!(err.to_string().contains("active endpoints"), "{err}");

    // Rename (start-first updates), then remove while running, twice.
    rename_container(&docker, &id, "db-db-1-old").await.unwrap();
    // Again, as an apply killed right after a rename would: already done, not an error.
    rename_container(&docker, &id, "db-db-1-old").await.unwrap();
    assert_eq!(inspect(a, "container", &id)["Name"], "/db-db-1-old");
    let err = rename_container(&docker, "no-such-container", "x").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    remove_container(&docker, &id).await.expect("remove a running container");
    remove_container(&docker, &id).await.expect("removing it again is fine");
    remove_container(&docker, "never-existed").await.expect("removing nothing is fine");
    assert_eq!(a.docker(&["ps", "-aq"]), "", "the container is gone");

    // Both volumes stay, the named one with its data.
    let volumes = a.docker(&["volume", "ls", "-q"]);
    assert!(volumes.lines().any(|v| v == "db_data"), "{volumes}");
    assert!(volumes.lines().any(|v| v == anonymous), "anonymous volume kept: {volumes}");
    let log =
        a.docker(&["run", "--rm", "-v", "db_data:/data", "gitfleet/db:1", "cat", "/data/log"]);
    assert!(!log.is_empty(), "the data survived");

    // Networks: removed, and removing again or a name never seen is fine.
    remove_network(&docker, &net).await.unwrap();
    remove_network(&docker, &net).await.unwrap();
    remove_network(&docker, "never-existed").await.unwrap();
    assert!(!a.docker(&["network", "ls", "--format", "{{.Name}}"]).contains("db_default"));

    // Stopping what is not there is fine; starting it is not, and says so.
    stop_container(&docker, "never-existed", Duration::from_secs(1)).await.unwrap();
    let err = start_container(&docker, "never-existed").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().starts_with("starting container never-existed: "), "{err}");
    let err = container_status(&docker, "never-existed").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

// --- images ----------------------------------------------------------------------------------

#[tokio::test]
async fn images_are_found_and_failed_pulls_name_the_image() {
    let bed = Testbed::builder().hosts(1).images().start();
    let docker = client(&bed[0]).await;
    assert!(image_present(&docker, "gitfleet/web:1").await.unwrap());
    assert!(!image_present(&docker, "gitfleet/web:9").await.unwrap());
    assert!(!image_present(&docker, "gitfleet/nothing").await.unwrap());

    // Loopback inside the host's own namespace: nothing listens on port 1.
    let started = Instant::now();
    let err = pull_image(&docker, "127.0.0.1:1/none:1", None).await.unwrap_err();
    let text = err.to_string();
    eprintln!("{text} ({:?})", started.elapsed());
    assert!(text.starts_with("pulling image 127.0.0.1:1/none:1: "), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(!text.contains('\n'));
}

// --- a real registry ---------------------------------------------------------------------------

/// Debian's docker-registry (distribution 2.8), serving one address; killed by pid on drop.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

/// htpasswd line (bcrypt) for user `gitfleet`, password `correct horse battery`; made with
/// `htpasswd -Bbn -C 5`, fixed here so the test needs no apache2-utils.
const HTPASSWD: &str = "gitfleet:$2y$05$OmtegjmNzbk7bVb/jm5buezT.PWOG1pZwBCPyjLmAUPAyowbMKwS2\n";
const REGISTRY_USER: &str = "gitfleet";
const REGISTRY_PASSWORD: &str = "correct horse battery";

impl Registry {
    fn start(addr: SocketAddr, basic_auth: bool) -> Registry {
        let binary = Path::new("/usr/bin/docker-registry");
        assert!(
            binary.is_file(),
            "the pull tests need Debian's docker-registry: apt-get install -y docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if basic_auth {
            std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gitfleet-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, _dir: dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn pulls_from_a_real_registry_with_and_without_basic_auth() {
    let started = Instant::now();
    // Plain-HTTP registries on the test hosts' gateways (10.250.<k>.1, the root namespace's
    // end of each host's link): the daemons must call them insecure.
    let bed = Testbed::builder()
        .hosts(1)
        .images()
        .daemon_arg("--insecure-registry=10.250.0.0/16")
        .start();
    let a = &bed[0];
    let open = Registry::start(SocketAddr::from((a.gateway(), 5000)), false);
    let locked = Registry::start(SocketAddr::from((a.gateway(), 5001)), true);
    let open_ref = format!("{}/shop/web:1", open.addr);
    let locked_ref = format!("{}/shop/api:1", locked.addr);

    // Push with the CLI (it logs in to the locked one), then forget the tags locally.
    a.docker(&["tag", "gitfleet/web:1", &open_ref]);
    a.docker(&["push", &open_ref]);
    let server = locked.addr.to_string();
    a.docker(&["login", "-u", REGISTRY_USER, "-p", REGISTRY_PASSWORD, &server]);
    a.docker(&["tag", "gitfleet/api:1", &locked_ref]);
    a.docker(&["push", &locked_ref]);
    // The CLI's config.json: Docker's own `auths` format, as the controller would hold it.
    let config_text = std::fs::read_to_string(a.dir().join("cli/config.json")).unwrap();
    let docker_config: Json = serde_json::from_str(&config_text).unwrap();
    a.docker(&["logout", &server]);
    a.docker(&["rmi", &open_ref, &locked_ref]);

    let docker = client(a).await;
    assert!(!image_present(&docker, &open_ref).await.unwrap());

    // Open registry: no credentials needed.
    pull_image(&docker, &open_ref, None).await.expect("pull from the open registry");
    assert!(image_present(&docker, &open_ref).await.unwrap());
    let err = pull_image(&docker, &format!("{}/shop/web:9", open.addr), None).await.unwrap_err();
    eprintln!("{err}");
    assert!(
        err.to_string().starts_with(&format!("pulling image {}/shop/web:9: ", open.addr)),
        "{err}"
    );
    assert!(
        err.to_string().contains("not found") || err.to_string().contains("manifest unknown"),
        "{err}"
    );

    // Locked registry: refused without credentials, and with a wrong password.
    let err = pull_image(&docker, &locked_ref, None).await.unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().starts_with(&format!("pulling image {locked_ref}: ")), "{err}");
    assert!(err.to_string().contains("no basic auth credentials"), "{err}");
    let auth =
        registry_auth_for(&locked_ref, &docker_config).expect("credentials for the registry");
    assert_eq!(auth.server_address, server);
    assert_eq!(auth.username.as_deref(), Some(REGISTRY_USER));
    let mut wrong = auth.clone();
    wrong.password = Some("wrong password".into());
    let err = pull_image(&docker, &locked_ref, Some(&wrong)).await.unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("unauthorized"), "{err}");
    assert!(!err.to_string().contains("wrong password"), "{err}");
    assert!(!image_present(&docker, &locked_ref).await.unwrap());

    // With the credentials from config.json: pulled.
    pull_image(&docker, &locked_ref, Some(&auth)).await.expect("pull with basic auth");
    assert!(image_present(&docker, &locked_ref).await.unwrap());
    // And it runs.
    let spec = bare_spec(&locked_ref);
    let id = create_container(
        &docker,
        "shop-api-1",
        &spec,
        &container_labels(&spec, "shop", "api", 1),
        &[],
    )
    .await
    .unwrap();
    start_container(&docker, &id).await.unwrap();
    wait_status(&docker, &id, Duration::from_secs(30), "healthy", |s| {
        s.health == Some(Health::Healthy)
    })
    .await;
    eprintln!("registry test took {:.1}s", started.elapsed().as_secs_f64());
    drop((open, locked));
}
