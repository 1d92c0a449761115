//! `gitfleet plan` and `apply` (the real binary) against the stand-in Windows engine
//! (`support::windows_engine`: TLS with client certificates, recorded Windows Server 2022
//! answers), checking the exact requests gitfleet sends: the `nat` network, the Windows
//! secret and config paths written before start, no file owner or mode, `cmd /S /C` health
//! checks. No Docker daemon is involved: a Windows engine cannot run here.

use crate::support::windows_engine::{IIS, WindowsEngine};
use crate::support::{run_gitfleet, write_files};
use serde_json::Value as Json;

/// The regular files of a ustar archive: `(path, mode, uid, gid, content)`.
fn tar_entries(archive: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
    let field = |block: &[u8], at: usize, len: usize| {
        let text = String::from_utf8_lossy(&block[at..at + len]);
        text.trim_matches(|c: char| c == '\0' || c == ' ').to_string()
    };
    let octal = |text: String| u64::from_str_radix(&text, 8).unwrap_or(0);
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() && archive[at..at + 512].iter().any(|&b| b != 0) {
        let block = &archive[at..at + 512];
        let name = field(block, 0, 100);
        let prefix = field(block, 345, 155);
        let size = octal(field(block, 124, 12)) as usize;
        let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let content = archive[at + 512..at + 512 + size].to_vec();
        if block[156] == b'0' {
            entries.push((
                path,
                octal(field(block, 100, 8)) as u32,
                octal(field(block, 108, 8)),
                octal(field(block, 116, 8)),
                content,
            ));
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

#[test]
fn a_windows_engine_gets_nat_windows_paths_files_before_start_and_no_owner_or_mode() {
    let engine = WindowsEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = format!(
        "settings: {{name: test, observe_timeout: 10s}}\nhosts:\n{}",
        engine.fleet_entry("w", None)
    );
    let compose = format!(
        "\
services:
  iis:
    image: {IIS}
    ports: [\"8080:80\"]
    healthcheck:
      test: powershell -command \"try {{ iwr http://localhost -UseBasicParsing }} catch {{ exit 1 }}\"
      interval: 1s
    secrets: [db]
    configs:
      - source: site
        target: C:\\inetpub\\wwwroot\\web.config
    volumes:
      - data:C:\\data
    deploy:
      update_config: {{monitor: 1s}}
secrets:
  db: {{file: ./db.txt}}
configs:
  site: {{file: ./web.config}}
volumes:
  data: {{}}
"
    );
    write_files(
        dir.path(),
        &[
            ("fleet.yaml", &fleet),
            ("apps/shop/compose.yaml", &compose),
            ("apps/shop/db.txt", "hunter2"),
            ("apps/shop/web.config", "<configuration/>"),
        ],
    );
    let repo = dir.path().to_str().unwrap();

    // The plan says what the host is, from its engine (fleet.yaml declares nothing).
    let (code, out) = run_gitfleet(&["plan", repo, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    // One observation of a Windows host: the API version, /info, the three labelled lists,
    // and (a fleet with a Windows host) the model's image.
    let mut asked: Vec<String> =
        engine.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    asked.sort();
    let image = format!("GET /images/{IIS}/json");
    assert_eq!(
        asked,
        [
            "GET /containers/json",
            image.as_str(),
            "GET /info",
            "GET /networks",
            "GET /version",
            "GET /volumes"
        ]
    );
    let plan: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let host = &plan["hosts"][0];
    assert_eq!(host["platform"]["os"], "windows", "{out}");
    assert_eq!(host["platform"]["source"], "engine");
    assert_eq!(host["platform"]["windows_build"], 20348);
    assert_eq!(host["platform"]["isolation"], "process");
    let (code, text) = run_gitfleet(&["plan", repo]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(
            "host w: (windows/x86_64, Windows Server 2022 Datacenter Version 2009 (OS Build \
             20348.2113), build 20348, process isolation)"
        ),
        "{text}"
    );
    // Observing and planning only read.
    assert_eq!(engine.changes(), Vec::<String>::new());

    let (code, out) = run_gitfleet(&["apply", repo, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(engine.running(), ["shop-iis-1"]);

    let networks = engine.requests_to("POST", "/networks/create");
    assert_eq!(networks.len(), 1);
    let network = networks[0].json();
    assert_eq!(network["Name"], "shop_default");
    assert_eq!(network["Driver"], "nat");
    assert_eq!(network["Labels"]["io.gitfleet.fleet"], "test");

    let creates = engine.requests_to("POST", "/containers/create");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].query["name"], "shop-iis-1");
    let create = creates[0].json();
    assert_eq!(create["Image"], IIS);
    assert_eq!(
        create["Healthcheck"]["Test"],
        serde_json::json!([
            "CMD",
            "cmd",
            "/S",
            "/C",
            "powershell -command \"try { iwr http://localhost -UseBasicParsing } catch { exit 1 }\""
        ])
    );
    let host_config = &create["HostConfig"];
    assert_eq!(host_config["NetworkMode"], "shop_default");
    assert_eq!(
        host_config["Mounts"],
        serde_json::json!([{ "Target": "C:\\data", "Source": "shop_data", "Type": "volume", "ReadOnly": false }])
    );
    assert_eq!(host_config["PortBindings"]["80/tcp"][0]["HostPort"], "8080");
    assert!(host_config.get("PidsLimit").is_none_or(Json::is_null), "{host_config}");
    assert!(create.get("User").is_none_or(Json::is_null), "{create}");
    // The spec label says it was made for Windows, with the Windows paths.
    let spec: Json =
        serde_json::from_str(create["Labels"]["io.gitfleet.spec"].as_str().unwrap()).unwrap();
    assert_eq!(spec["os"], "windows");
    assert!(spec["files"]["C:\\ProgramData\\Docker\\secrets\\db"].is_object(), "{spec}");

    // The files, written before the container starts, under C:\ without owner or mode.
    let archives =
        engine.requests_to("PUT", &format!("/containers/{}/archive", container_id(&engine)));
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].query["path"], "C:\\");
    let entries = tar_entries(&archives[0].body);
    let listed: Vec<(&str, u32, u64, u64, &[u8])> = entries
        .iter()
        .map(|(p, mode, uid, gid, content)| (p.as_str(), *mode, *uid, *gid, content.as_slice()))
        .collect();
    assert_eq!(
        listed,
        [
            ("ProgramData/Docker/secrets/db", 0o444, 0, 0, b"hunter2".as_slice()),
            ("inetpub/wwwroot/web.config", 0o444, 0, 0, b"<configuration/>".as_slice()),
        ]
    );
    let changes = engine.changes();
    let archive_at = changes.iter().position(|c| c.ends_with("/archive")).unwrap();
    let start_at = changes.iter().position(|c| c.ends_with("/start")).unwrap();
    assert!(archive_at < start_at, "{changes:#?}");
    // Networks and volumes first (in any order), then the container.
    let mut others: Vec<&String> =
        changes.iter().filter(|c| !c.ends_with("/archive") && !c.ends_with("/start")).collect();
    assert_eq!(others.pop().map(String::as_str), Some("POST /containers/create"), "{changes:#?}");
    others.sort();
    assert_eq!(others, ["POST /networks/create", "POST /volumes/create"], "{changes:#?}");
    // Nothing was asked that a Windows engine would not know.
    let unknown: Vec<String> = engine
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/swarm") || r.path.starts_with("/plugins"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");

    // Applied: the next plan has nothing to do.
    let (code, text) = run_gitfleet(&["plan", repo]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Plan: 0 to create, 0 to replace, 0 to remove"), "{text}");
}

fn container_id(engine: &WindowsEngine) -> String {
    let starts: Vec<_> =
        engine.requests().into_iter().filter(|r| r.path.ends_with("/start")).collect();
    let path = &starts.first().expect("a start").path;
    path.trim_start_matches("/containers/").trim_end_matches("/start").to_string()
}
