//! Windows specifics, translated rather than failed at run time (pure): a replica placed on a
//! Windows host gets a spec made for Windows ([`translate`]), and a network there the `nat`
//! driver unless the app names one ([`network_driver`]).
//!
//! | spec | on a Windows host |
//! | --- | --- |
//! | secret target `/run/secrets/<name>` | `C:\ProgramData\Docker\secrets\<name>` (where Swarm puts them) |
//! | other `/a/b` config or secret targets | `C:\a\b` (a config's default `/<name>` is `C:\<name>`) |
//! | `uid`, `gid`, `mode` of configs and secrets | dropped, with a note (Windows has no file owners or modes) |
//! | `limits.pids` | dropped, with a note (Windows has no pids limit) |
//! | health check `["CMD-SHELL", c]` | `["CMD", "cmd", "/S", "/C", c]` |
//! | `os` | `windows`, so the engine side (`hosts::create`) writes the files under `C:\` |
//!
//! A service that can run *only* on Windows and asks for what Windows lacks never gets here:
//! validation (constraints) or placement (its image) refuses it with why.
//!
//! The files are written into the created container before it starts, as on Linux: a running
//! Hyper-V isolated container refuses file copies.

use super::spec::ContainerSpec;
use crate::model::windows::{WINDOWS, is_windows_absolute};

/// Where Swarm puts secrets in Windows containers.
pub const SECRETS_DIR: &str = r"C:\ProgramData\Docker\secrets";
/// Where secrets go in Linux containers, by default.
const LINUX_SECRETS_DIR: &str = "/run/secrets/";

/// The Windows path for a config or secret target written for Linux.
pub fn file_target(target: &str, secret: bool) -> String {
    if is_windows_absolute(target) {
        return target.to_string();
    }
    if secret {
        if let Some(rest) = target.strip_prefix(LINUX_SECRETS_DIR) {
            return format!(r"{SECRETS_DIR}\{}", rest.replace('/', "\\"));
        }
    }
    format!(r"C:\{}", target.trim_start_matches('/').replace('/', "\\"))
}

/// The driver of a network on a Windows host: the app's, else `nat` (Windows has no `bridge`).
pub fn network_driver(driver: Option<&str>) -> Option<String> {
    Some(driver.unwrap_or("nat").to_string())
}

/// `spec` made for a Windows host, and notes on what was ignored (each naming the field).
pub fn translate(spec: &ContainerSpec) -> (ContainerSpec, Vec<String>) {
    let mut notes = Vec::new();
    let mut windows = spec.clone();
    windows.os = Some(WINDOWS.to_string());
    windows.files = spec
        .files
        .iter()
        .map(|(target, file)| {
            let mut file = file.clone();
            let ignored: Vec<&str> = [
                ("uid", file.uid.take().is_some()),
                ("gid", file.gid.take().is_some()),
                ("mode", file.mode.take().is_some()),
            ]
            .into_iter()
            .filter_map(|(what, was_set)| was_set.then_some(what))
            .collect();
            if !ignored.is_empty() {
                notes.push(format!(
                    "{} of {} {} ignored: Windows has no file owners or modes",
                    ignored.join("/"),
                    file.kind,
                    file.name
                ));
            }
            (file_target(target, file.kind == "secret"), file)
        })
        .collect();
    if windows.limits.pids.take().is_some() {
        notes.push("limits.pids ignored: Windows has no pids limit".to_string());
    }
    if let Some(health) = &mut windows.healthcheck {
        if let [kind, command] = health.test.as_slice() {
            if kind == "CMD-SHELL" {
                health.test = ["CMD", "cmd", "/S", "/C", command.as_str()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            }
        }
    }
    (windows, notes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::diff::spec::SpecFile;
    use crate::model::Healthcheck;

    fn file(kind: &str, name: &str, mode: Option<u32>) -> SpecFile {
        SpecFile {
            kind: kind.into(),
            name: name.into(),
            digest: "d".into(),
            uid: mode.map(|_| "1000".into()),
            gid: None,
            mode,
        }
    }

    #[test]
    fn targets_move_to_windows_paths() {
        assert_eq!(file_target("/run/secrets/db", true), r"C:\ProgramData\Docker\secrets\db");
        assert_eq!(file_target("/app.conf", false), r"C:\app.conf");
        assert_eq!(file_target("/etc/app/app.conf", false), r"C:\etc\app\app.conf");
        assert_eq!(file_target(r"D:\conf\x", false), r"D:\conf\x");
        assert_eq!(file_target("/run/secrets/db", false), r"C:\run\secrets\db");
    }

    #[test]
    fn a_spec_for_windows_drops_what_windows_lacks_and_says_so() {
        let spec = ContainerSpec {
            image: "iis:1".into(),
            files: BTreeMap::from([
                ("/run/secrets/db".to_string(), file("secret", "db", Some(0o400))),
                ("/web.config".to_string(), file("config", "web", None)),
            ]),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "curl -f http://localhost/".into()],
                interval_ms: None,
                timeout_ms: None,
                retries: None,
                start_period_ms: None,
            }),
            limits: crate::model::ResourceAmounts { pids: Some(64), ..Default::default() },
            ..ContainerSpec::default()
        };
        let (windows, notes) = translate(&spec);
        assert_eq!(windows.os.as_deref(), Some("windows"));
        let targets: Vec<&str> = windows.files.keys().map(String::as_str).collect();
        assert_eq!(targets, [r"C:\ProgramData\Docker\secrets\db", r"C:\web.config"]);
        assert!(
            windows.files.values().all(|f| f.uid.is_none() && f.gid.is_none() && f.mode.is_none())
        );
        assert_eq!(windows.limits.pids, None);
        assert_eq!(
            windows.healthcheck.clone().unwrap().test,
            ["CMD", "cmd", "/S", "/C", "curl -f http://localhost/"]
        );
        assert_eq!(
            notes,
            [
                "uid/mode of secret db ignored: Windows has no file owners or modes",
                "limits.pids ignored: Windows has no pids limit"
            ]
        );
        // The Linux spec's hash is unchanged by the new field; the Windows one differs.
        assert!(!spec.canonical_json().contains("\"os\""));
        assert_ne!(spec.hash(), windows.hash());
        assert_eq!(network_driver(None).as_deref(), Some("nat"));
        assert_eq!(network_driver(Some("transparent")).as_deref(), Some("transparent"));
    }
}
