//! A service's mounts: volumes, binds and tmpfs, and its config and secret file mounts.

use super::*;

impl ServiceBuilder<'_, '_> {
    pub(super) fn mounts(&mut self, raw: &[RawMount]) -> Vec<Mount> {
        let mut mounts = Vec::new();
        for (i, mount) in raw.iter().enumerate() {
            let path = self.path.key("volumes").index(i);
            let (kind, source, target, read_only) = match mount {
                RawMount::Short(text) => {
                    let parts = crate::model::windows::split_short_mount(text);
                    match parts.as_slice() {
                        [target] => ("volume", None, target.to_string(), false),
                        [source, target] => (
                            short_kind(source),
                            Some(source.to_string()),
                            target.to_string(),
                            false,
                        ),
                        [source, target, mode] => {
                            let read_only = mode.split(',').any(|m| m == "ro");
                            (
                                short_kind(source),
                                Some(source.to_string()),
                                target.to_string(),
                                read_only,
                            )
                        }
                        _ => {
                            self.findings
                                .add(
                                    path,
                                    "invalid-mount",
                                    format!("{text:?} is not SOURCE:TARGET[:MODE]"),
                                )
                                .with_hint(
                                    "write it like data:/var/lib/data or data:/var/lib/data:ro",
                                );
                            continue;
                        }
                    }
                }
                RawMount::Long { kind, source, target, read_only } => {
                    (kind.as_str(), source.clone(), target.clone(), *read_only)
                }
            };
            let source = match (kind, source) {
                ("volume", None) => MountSource::Anonymous,
                ("volume", Some(volume)) => MountSource::Volume { volume },
                ("tmpfs", _) => MountSource::Tmpfs,
                ("bind", Some(host_path)) if crate::model::windows::is_absolute(&host_path) => {
                    MountSource::Bind { path: host_path }
                }
                ("bind", Some(host_path)) => {
                    self.findings
                        .add(path, "relative-bind", format!("bind mount source {host_path:?} is relative; on a fleet there is no project folder on the host for it to be relative to"))
                        .with_hint("use a named volume, a config file (`configs:`), or an absolute host path");
                    continue;
                }
                (kind, _) => {
                    self.findings
                        .add(path, "invalid-mount", format!("a {kind} mount needs a source"))
                        .with_hint("name the volume or host path in `source:`");
                    continue;
                }
            };
            if !crate::model::windows::is_absolute(&target) {
                self.findings
                    .add(
                        path,
                        "invalid-mount",
                        format!("mount target {target:?} is not an absolute path"),
                    )
                    .with_hint("container paths start with / (or a drive, C:\\, on Windows)");
                continue;
            }
            mounts.push(Mount { source, target, read_only });
        }
        mounts
    }

    pub(super) fn file_mounts(
        &mut self,
        raw: &[RawFileMount],
        section: &str,
        default_dir: &str,
    ) -> Vec<FileMount> {
        let mut mounts = Vec::new();
        for (i, item) in raw.iter().enumerate() {
            let path = self.path.key(section).index(i);
            let mount = match item {
                RawFileMount::Name(name) => FileMount {
                    name: name.clone(),
                    target: format!("{default_dir}{name}"),
                    uid: None,
                    gid: None,
                    mode: None,
                },
                RawFileMount::Long { source, target, uid, gid, mode } => {
                    let mode = match mode {
                        None => None,
                        Some(Scalar::Number(n)) => n.as_u64().map(|m| m as u32),
                        Some(other) => {
                            match u32::from_str_radix(other.text().trim_start_matches("0o"), 8) {
                                Ok(mode) => Some(mode),
                                Err(_) => {
                                    self.findings
                                        .add(
                                            path.key("mode"),
                                            "invalid-value",
                                            format!(
                                                "mode {:?} is not an octal number",
                                                other.text()
                                            ),
                                        )
                                        .with_hint("write it like \"0440\"");
                                    None
                                }
                            }
                        }
                    };
                    if let Some(t) = target.as_deref().filter(|t| t.split('/').any(|p| p == "..")) {
                        self.findings
                            .add(
                                path.key("target"),
                                "path-escape",
                                format!("target {} uses `..`; a {section} target stays in {default_dir} or is a plain absolute path", quoted(t)),
                            )
                            .with_hint(format!("write a name inside {default_dir}, like {default_dir}{source}, or an absolute path without `..`"));
                        continue;
                    }
                    let target = match target {
                        Some(t) if crate::model::windows::is_absolute(t) => t.clone(),
                        Some(t) => format!("{default_dir}{t}"),
                        None => format!("{default_dir}{source}"),
                    };
                    FileMount {
                        name: source.clone(),
                        target,
                        uid: uid.clone(),
                        gid: gid.clone(),
                        mode,
                    }
                }
            };
            mounts.push(mount);
        }
        mounts
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, shop, tree};
    use crate::model::types::MountSource;

    fn web(extra: &str) -> String {
        format!("services:\n  web:\n    image: nginx:1.27\n{extra}")
    }

    #[test]
    fn mounts_that_cannot_work_on_a_fleet_are_refused_at_their_entry() {
        check(&[
            (
                &web("    volumes:\n      - data:/b:ro:extra\n"),
                // The schema sees it first (a string of at most three parts), at the entry.
                "apps/shop/compose.yaml:5:9: invalid-value: `services.web.volumes[0]` is \"data:/b:ro:extra\", expected a mount",
            ),
            (
                // A one-letter source is a Windows drive: `a:/b` is the source here.
                &web("    volumes:\n      - a:/b:ro\n"),
                "apps/shop/compose.yaml:5:9: invalid-mount: mount target \"ro\" is not an absolute path",
            ),
            (
                &web("    volumes:\n      - ./data:/data\n"),
                "apps/shop/compose.yaml:5:9: relative-bind: bind mount source \"./data\" is relative; on a fleet there is no project folder on the host for it to be relative to",
            ),
            (
                &web("    volumes:\n      - data:var/lib/data\n"),
                "apps/shop/compose.yaml:5:9: invalid-mount: mount target \"var/lib/data\" is not an absolute path",
            ),
            (
                &web("    volumes:\n      - type: bind\n        target: /data\n"),
                "apps/shop/compose.yaml:5:9: invalid-mount: a bind mount needs a source",
            ),
        ]);
    }

    #[test]
    fn file_mount_targets_and_modes_are_checked() {
        let with_secret = |long: &str| {
            format!(
                "services:\n  web:\n    image: nginx:1.27\n    secrets:\n      - source: token\n{long}secrets:\n  token:\n    content: s3cret\n"
            )
        };
        check(&[
            (
                &with_secret("        target: ../../etc/cron.d/x\n"),
                "apps/shop/compose.yaml:6:17: path-escape: target \"../../etc/cron.d/x\" uses `..`; a secrets target stays in /run/secrets/ or is a plain absolute path",
            ),
            (
                // The schema refuses a mode that is not octal digits, at the mode (the entry
                // is a mapping, so the mapping form's own error is the one to show).
                &with_secret("        mode: \"0999\"\n"),
                "apps/shop/compose.yaml:6:15: invalid-value: `services.web.secrets[0].mode` is \"0999\", expected a file mode",
            ),
            (
                &with_secret("        uid: root\n"),
                "apps/shop/compose.yaml:6:14: invalid-value: `services.web.secrets[0].uid` is \"root\", expected a numeric user id",
            ),
        ]);
        let app =
            shop(&tree(&with_secret("        target: db/token\n        mode: \"0440\"\n"), ""))
                .unwrap();
        let mount = &app.services["web"].secrets[0];
        assert_eq!((mount.target.as_str(), mount.mode), ("/run/secrets/db/token", Some(0o440)));
        let app = shop(&tree(&with_secret("        target: /etc/token\n        mode: 288\n"), ""))
            .unwrap();
        let mount = &app.services["web"].secrets[0];
        assert_eq!((mount.target.as_str(), mount.mode), ("/etc/token", Some(0o440)));
        let short = "services:\n  web:\n    image: nginx:1.27\n    configs: [site]\nconfigs:\n  site:\n    content: x\n";
        assert_eq!(shop(&tree(short, "")).unwrap().services["web"].configs[0].target, "/site");
    }

    #[test]
    fn short_and_long_mounts_fold_into_one_form() {
        let compose = web(
            "    volumes:\n      - /cache\n      - data:/data:ro,z\n      - /srv/logs:/logs\n      - type: tmpfs\n        target: /tmp\nvolumes:\n  data: {}\n",
        );
        let mounts = shop(&tree(&compose, "")).unwrap().services["web"].mounts.clone();
        let shapes: Vec<(MountSource, &str, bool)> =
            mounts.iter().map(|m| (m.source.clone(), m.target.as_str(), m.read_only)).collect();
        assert_eq!(
            shapes,
            [
                (MountSource::Anonymous, "/cache", false),
                (MountSource::Volume { volume: "data".into() }, "/data", true),
                (MountSource::Bind { path: "/srv/logs".into() }, "/logs", false),
                (MountSource::Tmpfs, "/tmp", false),
            ]
        );
    }
}
