//! Mixed Linux / Windows fleets, without Docker: repositories loaded with `model::load`, the
//! engines' and images' answers written into `Observed` as `hosts::` would fill them in
//! (Windows Server 2022 values, as in `tests/support/windows_engine/`), then scheduled,
//! translated and planned. One case a function: where each service goes and why, what a
//! Windows host's containers and networks look like, what validation refuses.

use std::collections::BTreeMap;

use gitfleet::diff::platform::{EngineInfo, ImagePlatform, PlatformSource};
use gitfleet::diff::{
    Desired, HostObservation, HostState, HostStatus, MemoStats, Observed, Plan, SpecMemo, Step,
    plan,
};
use gitfleet::model::{Model, SourceTree, load};

const LINUX_IMAGE: &str = "gitfleet/web:1";
const WINDOWS_IMAGE: &str = "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022";

fn model(fleet: &str, compose: &str) -> Result<Model, Vec<String>> {
    let mut tree = SourceTree::new();
    tree.insert_file("fleet.yaml", fleet.as_bytes().to_vec());
    tree.insert_file("apps/shop/compose.yaml", compose.as_bytes().to_vec());
    tree.insert_file("apps/shop/db.txt", b"hunter2".to_vec());
    tree.insert_file("apps/shop/web.config", b"<configuration/>".to_vec());
    load(&tree).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| format!("{}:{}:{} {}: {}", d.file, d.line, d.column, d.code, d.message))
            .collect()
    })
}

fn linux_engine() -> EngineInfo {
    EngineInfo {
        os_type: "linux".into(),
        architecture: "x86_64".into(),
        operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
        os_version: "12".into(),
        kernel_version: "6.1.0-28-amd64".into(),
        isolation: String::new(),
        server_version: String::new(),
    }
}

fn windows_engine(build: u32, isolation: &str) -> EngineInfo {
    EngineInfo {
        os_type: "windows".into(),
        architecture: "x86_64".into(),
        operating_system: format!(
            "Windows Server 2022 Datacenter Version 2009 (OS Build {build}.2113)"
        ),
        os_version: format!("10.0 {build} ({build}.1.amd64fre.fe_release.210507-1500)"),
        kernel_version: format!("10.0 {build} ({build}.1.amd64fre.fe_release.210507-1500)"),
        isolation: isolation.into(),
        server_version: String::new(),
    }
}

fn image(os: &str, version: &str) -> ImagePlatform {
    ImagePlatform { os: os.into(), architecture: "amd64".into(), os_version: version.into() }
}

/// Hosts `l` (Linux) and `w` (Windows Server 2022, process isolation), both declaring nothing;
/// the Linux image is on `l`, the Windows image on `w`.
const FLEET: &str = "\
hosts:
  l:
    endpoint: tcp://10.250.70.2:2375
  w:
    endpoint: tcp://10.250.71.2:2376
";

fn observed(engines: &[(&str, EngineInfo)]) -> Observed {
    let mut observed = Observed::default();
    for (host, engine) in engines {
        let mut state = HostState { engine: Some(engine.clone()), ..HostState::default() };
        if engine.os_type == "linux" {
            state.images.insert(LINUX_IMAGE.into(), image("linux", ""));
        } else {
            state.images.insert(WINDOWS_IMAGE.into(), image("windows", "10.0.20348.2113"));
        }
        observed.hosts.insert(host.to_string(), HostObservation::Reachable(state));
    }
    observed
}

fn mixed() -> Observed {
    observed(&[("l", linux_engine()), ("w", windows_engine(20348, "process"))])
}

fn planned(model: &Model, observed: &Observed) -> Plan {
    plan(&Desired::new(model, observed, None), observed)
}

/// Host of every placed replica: `service#n -> host`.
fn placement(model: &Model, observed: &Observed) -> BTreeMap<String, String> {
    let desired = Desired::new(model, observed, None);
    let mut out = BTreeMap::new();
    for (host, want) in &desired.hosts {
        for key in want.containers.keys() {
            out.insert(format!("{}#{}", key.service, key.replica), host.clone());
        }
    }
    out
}

fn unplaced(plan: &Plan) -> Vec<String> {
    plan.unplaced.iter().map(|u| format!("{}: {}", u.replica, u.reason)).collect()
}

#[test]
fn each_service_goes_to_the_os_its_constraints_or_image_say_and_silence_means_linux() {
    let compose = format!(
        "\
services:
  web:
    image: {LINUX_IMAGE}
    deploy: {{replicas: 2}}
  iis:
    image: {WINDOWS_IMAGE}
    deploy: {{replicas: 2}}
  site:
    image: example.test/site:1
    deploy:
      placement: {{constraints: [node.platform.os == windows]}}
  unknown:
    image: example.test/unknown:1
    deploy: {{replicas: 2}}
  notlinux:
    image: example.test/other:1
    deploy:
      placement: {{constraints: [node.platform.os != linux]}}
"
    );
    let m = model(FLEET, &compose).unwrap();
    let o = mixed();
    let placed = placement(&m, &o);
    let expected: BTreeMap<String, String> = [
        ("web#1", "l"),
        ("web#2", "l"),
        // The image is a Windows image (inspected on w): Windows hosts only.
        ("iis#1", "w"),
        ("iis#2", "w"),
        ("notlinux#1", "w"),
        ("site#1", "w"),
        // Nothing says it runs on Windows: Linux only.
        ("unknown#1", "l"),
        ("unknown#2", "l"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(placed, expected);

    // The plan shows each host's platform, taken from its engine (nothing was declared).
    let p = planned(&m, &o);
    let w = p.hosts.iter().find(|h| h.host == "w").unwrap();
    let platform = w.platform.as_ref().unwrap();
    assert_eq!((platform.os.as_str(), platform.source), ("windows", PlatformSource::Engine));
    assert_eq!(platform.windows_build, Some(20348));
    let text = gitfleet::diff::render::text(&p);
    assert!(
        text.contains("host w: (windows/x86_64, Windows Server 2022 Datacenter Version 2009 (OS Build 20348.2113), build 20348, process isolation)"),
        "{text}"
    );
    assert!(text.contains("host l: (linux/x86_64, Debian GNU/Linux 12 (bookworm))"), "{text}");
    let markdown = gitfleet::diff::render::markdown(&p);
    assert!(markdown.contains("`w` `windows/x86_64"), "{markdown}");
}

#[test]
fn a_registry_answer_decides_for_an_image_no_host_has() {
    let compose = "\
services:
  app:
    image: example.test/win/app:1
    deploy: {replicas: 2}
";
    let m = model(FLEET, compose).unwrap();
    let mut o = mixed();
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("w") else { unreachable!() };
    state.registry_images.insert(
        "example.test/win/app:1".into(),
        vec![image("windows", "10.0.17763.5206"), image("windows", "10.0.20348.2113")],
    );
    let placed = placement(&m, &o);
    assert_eq!(placed.values().collect::<Vec<_>>(), ["w", "w"]);

    // Only a 2019 build published: process isolation on a 2022 host cannot run it.
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("w") else { unreachable!() };
    state
        .registry_images
        .insert("example.test/win/app:1".into(), vec![image("windows", "10.0.17763.5206")]);
    let p = planned(&m, &o);
    assert_eq!(p.unplaced.len(), 2, "{:?}", unplaced(&p));
    let reason = &p.unplaced[0].reason;
    assert!(
        reason.contains("built for Windows build 17763")
            && reason.contains("w runs build 20348 with process isolation"),
        "{reason}"
    );
    assert!(reason.contains("l runs linux"), "{reason}");

    // Hyper-V isolation runs an older build.
    let o = observed(&[("l", linux_engine()), ("w", windows_engine(20348, "hyperv"))]);
    let mut o = o;
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("w") else { unreachable!() };
    state
        .registry_images
        .insert("example.test/win/app:1".into(), vec![image("windows", "10.0.17763.5206")]);
    assert_eq!(placement(&m, &o).values().collect::<Vec<_>>(), ["w", "w"]);
}

#[test]
fn constraints_that_contradict_the_image_are_a_placement_error_with_why() {
    let compose = format!(
        "\
services:
  web:
    image: {LINUX_IMAGE}
    deploy:
      placement: {{constraints: [node.platform.os == windows]}}
"
    );
    let m = model(FLEET, &compose).unwrap();
    let p = planned(&m, &mixed());
    assert_eq!(
        unplaced(&p),
        [format!(
            "shop/web#1: no host it may run on can run it: w runs windows; image {LINUX_IMAGE} is \
             a linux image (on host l)"
        )]
    );
}

#[test]
fn a_host_whose_engine_contradicts_its_declaration_gets_nothing_planned() {
    let fleet = "\
hosts:
  l:
    endpoint: tcp://10.250.70.2:2375
    platform: {os: windows}
  m:
    endpoint: tcp://10.250.72.2:2375
";
    let compose =
        format!("services:\n  web:\n    image: {LINUX_IMAGE}\n    deploy: {{replicas: 2}}\n");
    let m = model(fleet, &compose).unwrap();
    let o = observed(&[("l", linux_engine()), ("m", linux_engine())]);
    let p = planned(&m, &o);
    let l = p.hosts.iter().find(|h| h.host == "l").unwrap();
    assert!(l.steps.is_empty());
    let mismatch = l.platform.as_ref().unwrap().mismatch.clone().unwrap();
    assert!(
        mismatch.contains("host l is declared windows/x86_64")
            && mismatch.contains("engine reports linux/x86_64"),
        "{mismatch}"
    );
    assert!(matches!(&l.status, HostStatus::Unreachable { reason, .. } if *reason == mismatch));
    assert_eq!(p.summary.unreachable_hosts, 1);
    // Both replicas go to the host that is what it says.
    assert_eq!(placement(&m, &o).values().collect::<Vec<_>>(), ["m", "m"]);
    let text = gitfleet::diff::render::text(&p);
    assert!(text.contains("host l: NOT PLANNED: platform mismatch"), "{text}");
    assert!(text.contains("Warning: host l is not planned: platform mismatch"), "{text}");

    // What it runs stays (not moved, not removed) while it is blocked.
    let mut o = o;
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("l") else { unreachable!() };
    state.containers.push(gitfleet::diff::ObservedContainer {
        id: "c1".into(),
        name: "shop-web-1".into(),
        state: "running".into(),
        labels: BTreeMap::from([
            ("io.gitfleet.fleet".into(), "default".into()),
            ("io.gitfleet.app".into(), "shop".into()),
            ("io.gitfleet.service".into(), "web".into()),
            ("io.gitfleet.replica".into(), "1".into()),
        ]),
        created: 1,
        health: None,
        ports: Vec::new(),
    });
    let placed = placement(&m, &o);
    assert_eq!(placed["web#1"], "l");
    assert_eq!(placed["web#2"], "m");
    let p = planned(&m, &o);
    assert!(p.hosts.iter().find(|h| h.host == "l").unwrap().steps.is_empty());
}

#[test]
fn a_windows_host_gets_windows_paths_nat_and_cmd_health_checks() {
    let compose = format!(
        "\
services:
  iis:
    image: {WINDOWS_IMAGE}
    healthcheck:
      test: curl -f http://localhost/
    secrets: [db]
    configs:
      - source: web
        target: /inetpub/wwwroot/web.config
    volumes:
      - data:C:\\data
      - type: bind
        source: C:\\logs
        target: C:\\inetpub\\logs
secrets:
  db: {{file: ./db.txt}}
configs:
  web: {{file: ./web.config}}
volumes:
  data: {{}}
"
    );
    let m = model(FLEET, &compose).unwrap();
    let p = planned(&m, &mixed());
    assert!(p.unplaced.is_empty(), "{:?}", unplaced(&p));
    let w = p.hosts.iter().find(|h| h.host == "w").unwrap();
    let network = w
        .steps
        .iter()
        .find_map(|s| match s {
            Step::CreateNetwork { network, .. } => Some(network),
            _ => None,
        })
        .unwrap();
    assert_eq!(network.driver.as_deref(), Some("nat"));
    let container = w
        .steps
        .iter()
        .find_map(|s| match s {
            Step::CreateContainer { container, .. } => Some(container),
            _ => None,
        })
        .unwrap();
    let spec = &container.spec;
    assert_eq!(spec.os.as_deref(), Some("windows"));
    let targets: Vec<&str> = spec.files.keys().map(String::as_str).collect();
    assert_eq!(targets, [r"C:\ProgramData\Docker\secrets\db", r"C:\inetpub\wwwroot\web.config"]);
    assert_eq!(
        spec.healthcheck.as_ref().unwrap().test,
        ["CMD", "cmd", "/S", "/C", "curl -f http://localhost/"]
    );
    let mounts: Vec<(&str, &str, &str)> = spec
        .mounts
        .iter()
        .map(|m| (m.kind.as_str(), m.source.as_str(), m.target.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("volume", "shop_data", r"C:\data"), ("bind", r"C:\logs", r"C:\inetpub\logs")]
    );
}

/// A service whose image has both OSes (so it runs on either) and which asks for what only
/// Linux has (a pids limit, a secret's uid), on the mixed fleet whose Windows host's
/// registry answers with both manifests.
fn runs_on_both_with_linux_only_settings() -> (Model, Observed) {
    let compose = "\
services:
  app:
    image: example.test/both:1
    deploy:
      replicas: 2
      resources: {limits: {pids: 100}}
    secrets:
      - source: db
        uid: \"1000\"
        mode: 0400
secrets:
  db: {file: ./db.txt}
";
    let m = model(FLEET, compose).unwrap();
    let mut o = mixed();
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("w") else { unreachable!() };
    state.registry_images.insert(
        "example.test/both:1".into(),
        vec![image("linux", ""), image("windows", "10.0.20348.2113")],
    );
    (m, o)
}

#[test]
fn what_windows_lacks_is_ignored_with_a_note_for_a_service_that_runs_on_both() {
    // The image's manifest list has both: the service runs on either OS.
    let (m, mut o) = runs_on_both_with_linux_only_settings();
    let placed = placement(&m, &o);
    assert_eq!(placed.values().collect::<Vec<_>>(), ["l", "w"]);
    let p = planned(&m, &o);
    let w = p.hosts.iter().find(|h| h.host == "w").unwrap();
    assert_eq!(
        w.platform.as_ref().unwrap().notes,
        [
            "shop/app: uid/mode of secret db ignored: Windows has no file owners or modes",
            "shop/app: limits.pids ignored: Windows has no pids limit"
        ]
    );
    let text = gitfleet::diff::render::text(&p);
    assert!(text.contains("  note: shop/app: uid/mode of secret db ignored"), "{text}");
    // The Linux replica keeps them.
    let l = p.hosts.iter().find(|h| h.host == "l").unwrap();
    let linux = l
        .steps
        .iter()
        .find_map(|s| match s {
            Step::CreateContainer { container, .. } => Some(container),
            _ => None,
        })
        .unwrap();
    assert_eq!(linux.spec.files["/run/secrets/db"].mode, Some(0o400));
    assert_eq!(linux.spec.limits.pids, Some(100));
    assert!(l.platform.as_ref().unwrap().notes.is_empty());

    // Known only as a Windows image: the same service is a placement error, with why.
    let Some(HostObservation::Reachable(state)) = o.hosts.get_mut("w") else { unreachable!() };
    state
        .registry_images
        .insert("example.test/both:1".into(), vec![image("windows", "10.0.20348.2113")]);
    let p = planned(&m, &o);
    assert_eq!(p.unplaced.len(), 2);
    assert!(
        p.unplaced[0].reason.contains("it runs only on Windows, which has no `uid` of secret `db`"),
        "{}",
        p.unplaced[0].reason
    );
}

/// The controller plans with a memo of each unchanged app's specs (`Desired::new_memo`): its
/// Windows translations, notes and `nat` networks are those of a plan without it, whether the
/// memo's entry was made for a Linux host only (the Windows variant is added later) or has it.
#[test]
fn a_spec_memo_gives_the_same_windows_translations() {
    let (m, o) = runs_on_both_with_linux_only_settings();
    let linux_only = observed(&[("l", linux_engine())]);
    let mut memo = SpecMemo::default();
    let first = Desired::new_memo(&m, &linux_only, None, &mut memo);
    assert_eq!(first, Desired::new(&m, &linux_only, None));
    assert_eq!(memo.stats(), MemoStats { reused: 0, made: 1 });
    for _ in 0..2 {
        let desired = Desired::new_memo(&m, &o, None, &mut memo);
        assert_eq!(memo.stats(), MemoStats { reused: 1, made: 0 });
        assert_eq!(desired, Desired::new(&m, &o, None));
        assert_eq!(desired.platforms["w"].notes.len(), 2, "{:?}", desired.platforms["w"]);
        let windows = desired.hosts["w"].containers.values().next().unwrap();
        assert_eq!(windows.spec.os.as_deref(), Some("windows"));
        let network = desired.hosts["w"].networks.values().next().unwrap();
        assert_eq!(network.driver.as_deref(), Some("nat"));
    }
}

#[test]
fn validation_refuses_what_windows_lacks_for_a_windows_only_service_and_accepts_its_paths() {
    let compose = "\
services:
  app:
    image: example.test/win:1
    volumes:
      - data:C:\\data
    secrets:
      - source: db
        target: C:\\secrets\\db
        mode: 0400
    deploy:
      resources: {limits: {pids: 100}}
      placement: {constraints: [node.platform.os == windows]}
secrets:
  db: {file: ./db.txt}
volumes:
  data: {}
";
    let errors = model(FLEET, compose).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains(":9:15 unsupported-on-windows:"), "{errors:#?}");
    assert!(errors[0].contains("no `mode` of secret `db`"), "{errors:#?}");
    assert!(errors[1].contains(":11:34 unsupported-on-windows:"), "{errors:#?}");
    assert!(errors[1].contains("no pids limit"), "{errors:#?}");

    // The paths alone are fine.
    let clean = compose
        .replace("        mode: 0400\n", "")
        .replace("      resources: {limits: {pids: 100}}\n", "");
    let m = model(FLEET, &clean).unwrap();
    let service = &m.apps["shop"].services["app"];
    assert_eq!(service.mounts[0].target, r"C:\data");
    assert_eq!(service.secrets[0].target, r"C:\secrets\db");

    // A Windows path kept off Windows hosts is an error.
    let linux = clean.replace("os == windows", "os == linux");
    let errors = model(FLEET, &linux).unwrap_err();
    assert!(errors.iter().all(|e| e.contains("windows-path")), "{errors:#?}");
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn plan_json_adds_the_platform_and_older_plans_still_read() {
    let compose = format!("services:\n  web:\n    image: {LINUX_IMAGE}\n");
    let m = model(FLEET, &compose).unwrap();
    let p = planned(&m, &mixed());
    let json: serde_json::Value = serde_json::from_str(&gitfleet::diff::render::json(&p)).unwrap();
    assert_eq!(json["format_version"], 1);
    let w = json["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "w").unwrap();
    assert_eq!(w["platform"]["os"], "windows");
    assert_eq!(w["platform"]["arch"], "x86_64");
    assert_eq!(w["platform"]["source"], "engine");
    assert_eq!(w["platform"]["windows_build"], 20348);
    assert_eq!(w["platform"]["isolation"], "process");
    assert_eq!(w["status"]["state"], "reachable");
    // A plan written before the field existed reads back, without a platform.
    let mut old = json.clone();
    for host in old["hosts"].as_array_mut().unwrap() {
        host.as_object_mut().unwrap().remove("platform");
    }
    let back: Plan = serde_json::from_value(old).unwrap();
    assert!(back.hosts.iter().all(|h| h.platform.is_none()));
}
