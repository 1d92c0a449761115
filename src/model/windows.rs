//! Windows containers in the model: Windows paths (`C:\data`) where Compose takes container
//! or host paths, the short mount syntax with drive letters, and the checks for a service
//! that runs only on Windows because its constraints say `node.platform.os == windows`:
//! Windows has no file owners or modes (`uid`, `gid`, `mode` of configs and secrets) and no
//! pids limit, so asking for them there is an error rather than something silently dropped.
//!
//! A service whose constraints say nothing may still run on Windows when its image is a
//! Windows image; that is only known once the hosts are observed, so the same rules are
//! applied again at placement (`diff::platform`), and ignored with a note for a service that
//! can run on both.

use super::finding::Findings;
use super::path::Path;
use super::types::{NodeAttribute, Service};

/// The operating system name Docker reports for Windows engines and images.
pub const WINDOWS: &str = "windows";
/// The operating system name Docker reports for Linux engines and images.
pub const LINUX: &str = "linux";

/// `C:\data`, `c:/data`: an absolute path with a drive letter.
pub fn is_windows_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'\\' | b'/')
}

/// An absolute container or host path: `/data`, or `C:\data` on Windows.
pub fn is_absolute(path: &str) -> bool {
    path.starts_with('/') || is_windows_absolute(path)
}

/// The parts of a short mount `SOURCE:TARGET[:MODE]`, where a drive letter's colon
/// (`C:\data:C:\data:ro`) does not separate parts.
pub fn split_short_mount(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b':' {
            // `X:\` or `X:/` right at the start of a part is a drive letter.
            if i == start + 1 && is_windows_absolute(&text[start..]) {
                i += 1;
                continue;
            }
            parts.push(&text[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// The operating system a service's constraints require (`node.platform.os == X`), if any.
pub fn required_os(service: &Service) -> Option<&str> {
    service
        .deploy
        .placement
        .constraints
        .iter()
        .find(|c| c.attribute == NodeAttribute::Os && c.equal)
        .map(|c| c.value.as_str())
}

/// Whether the service's constraints rule out hosts running `os`.
pub fn excludes_os(service: &Service, os: &str) -> bool {
    service
        .deploy
        .placement
        .constraints
        .iter()
        .any(|c| c.attribute == NodeAttribute::Os && (c.equal != (c.value == os)))
}

/// Where the service names a Windows path (mount targets and sources, config and secret
/// targets), as `(section, index, path)`: `("volumes", 0, "C:\\data")`.
pub fn windows_paths(service: &Service) -> Vec<(&'static str, usize, &str)> {
    let mut found = Vec::new();
    for (i, mount) in service.mounts.iter().enumerate() {
        if is_windows_absolute(&mount.target) {
            found.push(("volumes", i, mount.target.as_str()));
        }
        if let super::types::MountSource::Bind { path } = &mount.source {
            if is_windows_absolute(path) {
                found.push(("volumes", i, path.as_str()));
            }
        }
    }
    for (section, mounts) in [("configs", &service.configs), ("secrets", &service.secrets)] {
        for (i, mount) in mounts.iter().enumerate() {
            if is_windows_absolute(&mount.target) {
                found.push((section, i, mount.target.as_str()));
            }
        }
    }
    found
}

/// What Windows does not have, as the service asks for it: `(YAML path under the service,
/// what)`. Empty for a service that asks for none of it.
pub fn unsupported_on_windows(service: &Service) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    for (section, mounts) in [("configs", &service.configs), ("secrets", &service.secrets)] {
        for (i, mount) in mounts.iter().enumerate() {
            for (key, set) in [
                ("uid", mount.uid.is_some()),
                ("gid", mount.gid.is_some()),
                ("mode", mount.mode.is_some()),
            ] {
                if set {
                    found.push((
                        vec![section.to_string(), i.to_string(), key.to_string()],
                        format!("`{key}` of {} `{}`", &section[..section.len() - 1], mount.name),
                    ));
                }
            }
        }
    }
    for kind in ["limits", "reservations"] {
        let amounts = if kind == "limits" {
            &service.deploy.resources.limits
        } else {
            &service.deploy.resources.reservations
        };
        if amounts.pids.is_some() {
            found.push((
                ["deploy", "resources", kind, "pids"].map(str::to_string).to_vec(),
                format!("a pids {}", &kind[..kind.len() - 1]),
            ));
        }
    }
    found
}

/// Checks one service against Windows' rules; see the module documentation.
pub fn check_service(service: &Service, path: &Path, findings: &mut Findings<'_>) {
    let windows_only = required_os(service) == Some(WINDOWS);
    if windows_only {
        for (at, what) in unsupported_on_windows(service) {
            let mut here = path.clone();
            for key in &at {
                here = match key.parse::<usize>() {
                    Ok(i) => here.index(i),
                    Err(_) => here.key(key),
                };
            }
            findings
                .add(
                    here,
                    "unsupported-on-windows",
                    format!(
                        "service `{}` runs only on Windows (node.platform.os == windows), which has \
                         no {what}",
                        service.name,
                        what = what.trim_start_matches("a ")
                    ),
                )
                .with_hint("remove it: Windows containers have no file owners or modes, nor a pids limit");
        }
    } else if excludes_os(service, WINDOWS) {
        for (section, index, windows_path) in windows_paths(service) {
            findings
                .add(
                    path.key(section).index(index),
                    "windows-path",
                    format!(
                        "service `{}` names the Windows path {windows_path:?} but its constraints \
                         keep it off Windows hosts",
                        service.name
                    ),
                )
                .with_hint(
                    "use a Linux path (/data), or place it with node.platform.os == windows",
                );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_are_absolute() {
        assert!(is_absolute("/data"));
        assert!(is_absolute(r"C:\data"));
        assert!(is_absolute("c:/data"));
        assert!(!is_absolute("data"));
        assert!(!is_absolute("C:data"));
        assert!(!is_windows_absolute("/data"));
    }

    #[test]
    fn short_mounts_keep_drive_letters() {
        assert_eq!(split_short_mount("data:/var/lib/data"), ["data", "/var/lib/data"]);
        assert_eq!(split_short_mount(r"data:C:\data"), ["data", r"C:\data"]);
        assert_eq!(split_short_mount(r"C:\src:C:\data:ro"), [r"C:\src", r"C:\data", "ro"]);
        assert_eq!(split_short_mount(r"C:\cache"), [r"C:\cache"]);
        assert_eq!(split_short_mount("/srv:/srv:ro"), ["/srv", "/srv", "ro"]);
        assert_eq!(split_short_mount("a:b:c:d"), ["a", "b", "c", "d"]);
    }
}
