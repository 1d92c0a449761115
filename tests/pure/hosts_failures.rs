//! Observation errors are not host loss: a broken engine (an HTTP server on loopback that
//! negotiates the API version, then answers 500 to every list call) is an API failure, a
//! refused port a connection failure; the controller's liveness keeps the broken host
//! `failing` with its last good state, never down.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitfleet::controller::liveness::{HostHealth, Liveness};
use gitfleet::diff::HostObservation;
use gitfleet::hosts::{FailureClass, Pool};

/// Answers `GET /version` like Docker 20.10 and 500 to everything else; records the paths.
fn broken_engine() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default().to_string();
            record.lock().unwrap().push(path.clone());
            let (status, body) = if path.ends_with("/version") {
                ("200 OK", r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#)
            } else {
                ("500 Internal Server Error", r#"{"message":"engine is broken"}"#)
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (addr, seen)
}

fn hosts(endpoints: &[(&str, String)]) -> BTreeMap<String, gitfleet::model::Host> {
    let mut fleet = String::from("hosts:\n");
    for (name, endpoint) in endpoints {
        fleet.push_str(&format!("  {name}:\n    endpoint: {endpoint}\n"));
    }
    let mut tree = gitfleet::model::SourceTree::new();
    tree.insert_file("fleet.yaml", fleet.into_bytes());
    tree.insert_file("apps/x/compose.yaml", b"services:\n  s:\n    image: x:1\n".to_vec());
    gitfleet::model::load(&tree).expect("valid fleet").fleet.hosts
}

#[tokio::test]
async fn a_500_from_the_engine_is_an_api_failure_and_never_makes_the_host_down() {
    let (broken, requests) = broken_engine();
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let hosts =
        hosts(&[("broken", format!("tcp://{broken}")), ("gone", format!("tcp://{refused}"))]);
    let pool = Pool::new();
    let round = pool.observe_round(&hosts, "prod", Duration::from_secs(5)).await;
    assert_eq!(
        round.failures,
        BTreeMap::from([
            ("broken".to_string(), FailureClass::Api),
            ("gone".to_string(), FailureClass::Connection),
        ])
    );
    match &round.observed.hosts["broken"] {
        HostObservation::Unreachable { reason, .. } => {
            assert!(reason.contains("engine is broken"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let asked = requests.lock().unwrap().clone();
    // The engine was reached past /version: its first API answer after it (/info, read once
    // per connection) was the 500.
    assert!(
        asked.iter().any(|p| p.contains("/info") || p.contains("/containers/json")),
        "{asked:?}"
    );

    // Ten minutes of it, with a 30 s grace period: failing, not down, not away.
    let mut liveness = Liveness::new(Duration::from_secs(30));
    let start = Instant::now();
    liveness.observe(round.observed.clone(), &round.failures, start);
    let later = start + Duration::from_secs(600);
    let (planned, _) = liveness.observe(round.observed, &round.failures, later);
    assert!(matches!(planned.hosts["broken"], HostObservation::Unreachable { down: false, .. }));
    let health = liveness.health(later);
    assert!(
        matches!(&health["broken"], HostHealth::Failing { reason, .. } if reason.contains("500") || reason.contains("broken")),
        "{health:?}"
    );
    assert!(matches!(health["gone"], HostHealth::Unreachable { .. }), "{health:?}");
}
