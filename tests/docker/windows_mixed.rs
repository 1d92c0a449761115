//! Mixed Linux / Windows fleets with the real binary: a real Linux daemon from the test bed
//! beside the stand-in Windows engine (`support::windows_engine`, since a Windows engine cannot
//! run here). A Linux daemon declared `windows` is a mismatch with nothing planned onto it;
//! a mixed fleet places (and applies) each service onto the OS its constraints or image say.

use crate::support::windows_engine::{IIS, NANOSERVER, WindowsEngine};
use crate::support::{DockerHost, Testbed, run_gitfleet, write_files};
use serde_json::Value as Json;

fn linux_entry(host: &DockerHost, platform: Option<&str>) -> String {
    let mut out = format!("  {}:\n    endpoint: {}\n", host.name(), host.tcp_endpoint());
    if let Some(os) = platform {
        out.push_str(&format!("    platform: {{os: {os}}}\n"));
    }
    out
}

#[test]
fn a_linux_daemon_declared_windows_is_a_mismatch_and_gets_nothing_planned() {
    let bed = Testbed::start(1);
    let a = &bed[0];
    let dir = tempfile::tempdir().unwrap();
    let fleet = format!(
        "settings: {{name: test, observe_timeout: 10s}}\nhosts:\n{}",
        linux_entry(a, Some("windows"))
    );
    write_files(
        dir.path(),
        &[
            ("fleet.yaml", &fleet),
            ("apps/shop/compose.yaml", "services:\n  web:\n    image: gitfleet/web:1\n"),
        ],
    );
    let repo = dir.path().to_str().unwrap();
    let (code, text) = run_gitfleet(&["plan", repo]);
    // Incomplete: the host is not planned.
    assert_eq!(code, 2, "{text}");
    let name = a.name();
    assert!(
        text.contains(&format!(
            "host {name}: NOT PLANNED: platform mismatch: host {name} is declared windows/x86_64 \
             in fleet.yaml but its engine reports linux/x86_64 (Debian GNU/Linux"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("hosts.{name}.platform")), "{text}");
    let (code, out) = run_gitfleet(&["plan", repo, "--format", "json"]);
    assert_eq!(code, 2, "{out}");
    let plan: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let host = &plan["hosts"][0];
    assert_eq!(host["steps"], serde_json::json!([]));
    assert_eq!(host["platform"]["os"], "windows");
    assert!(host["platform"]["mismatch"].as_str().unwrap().contains("linux/x86_64"));
    // Nothing may be applied there either.
    let (code, out) = run_gitfleet(&["apply", repo, "--yes"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(a.docker(&["ps", "-aq"]).trim(), "", "{out}");
}

#[test]
fn a_mixed_fleet_plans_and_applies_each_service_onto_its_os() {
    let bed = Testbed::builder().hosts(1).images().start();
    let a = &bed[0];
    let engine = WindowsEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = format!(
        "settings: {{name: test, observe_timeout: 10s}}\nhosts:\n{}{}",
        linux_entry(a, None),
        engine.fleet_entry("w", None)
    );
    let compose = format!(
        "\
services:
  web:
    image: gitfleet/web:1
    deploy: {{replicas: 2, update_config: {{monitor: 1s}}}}
  iis:
    image: {IIS}
    deploy: {{update_config: {{monitor: 1s}}}}
  nano:
    image: {NANOSERVER}
    command: [\"cmd\", \"/c\", \"ping -t localhost\"]
    deploy: {{update_config: {{monitor: 1s}}}}
  site:
    image: {IIS}
    deploy:
      placement: {{constraints: [node.platform.os == windows]}}
      update_config: {{monitor: 1s}}
"
    );
    write_files(dir.path(), &[("fleet.yaml", &fleet), ("apps/shop/compose.yaml", &compose)]);
    let repo = dir.path().to_str().unwrap();

    let (code, out) = run_gitfleet(&["plan", repo, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let plan: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut placed: Vec<(String, String)> = Vec::new();
    for host in plan["hosts"].as_array().unwrap() {
        for step in host["steps"].as_array().unwrap() {
            if step["action"] == "create_container" {
                placed.push((
                    step["container"]["name"].as_str().unwrap().to_string(),
                    host["host"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    placed.sort();
    let name = a.name().to_string();
    let expected: Vec<(String, String)> = [
        ("shop-iis-1", "w"),
        // No host has it; the stand-in's registry says Windows 20348.
        ("shop-nano-1", "w"),
        ("shop-site-1", "w"),
        ("shop-web-1", name.as_str()),
        ("shop-web-2", name.as_str()),
    ]
    .into_iter()
    .map(|(c, h)| (c.to_string(), h.to_string()))
    .collect();
    assert_eq!(placed, expected, "{out}");
    let platforms: Vec<(&str, &str)> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["platform"]["os"].as_str().unwrap()))
        .collect();
    assert_eq!(platforms, [(name.as_str(), "linux"), ("w", "windows")]);
    // The registry was asked through the Windows engine, for the image no host has; the Linux
    // daemon was asked nothing of the kind.
    let asked: Vec<String> = engine
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/distribution/"))
        .map(|r| r.path.clone())
        .collect();
    assert!(asked.contains(&format!("/distribution/{NANOSERVER}/json")), "{asked:?}");
    assert!(!asked.iter().any(|p| p.contains("gitfleet/web")), "{asked:?}");

    // Apply: the Linux replicas run on the real daemon, the Windows ones on the stand-in.
    let (code, out) = run_gitfleet(&["apply", repo, "--yes"]);
    assert_eq!(code, 0, "{out}");
    let mut running = engine.running();
    running.sort();
    assert_eq!(running, ["shop-iis-1", "shop-nano-1", "shop-site-1"], "{out}");
    let mut linux: Vec<String> =
        a.docker(&["ps", "--format", "{{.Names}}"]).lines().map(str::to_string).collect();
    linux.sort();
    assert_eq!(linux, ["shop-web-1", "shop-web-2"], "{out}");
    // The Windows image was pulled on the Windows host only.
    let pulls: Vec<String> = engine
        .requests_to("POST", "/images/create")
        .iter()
        .map(|r| r.query["fromImage"].clone())
        .collect();
    assert!(pulls.contains(&"mcr.microsoft.com/windows/nanoserver".to_string()), "{pulls:?}");
    // The Linux daemon got the Linux spec: no Windows paths, its own bridge network.
    let network_driver = a.docker(&["network", "inspect", "-f", "{{.Driver}}", "shop_default"]);
    assert_eq!(network_driver.trim(), "bridge");
}
