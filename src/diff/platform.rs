//! Platforms, checked rather than trusted: which operating system and architecture each host
//! runs ([`resolve`]: its declaration in `fleet.yaml` against its engine's `/info`), and on
//! which hosts each service can run ([`Platforms::admit`]: its constraints, its image's
//! platform, Windows builds). Pure: the engine's and the images' answers come in with the
//! [`Observed`] state.
//!
//! # Rules
//!
//! * **Hosts.** A host that declares a platform is checked against what its engine reports; if
//!   they differ (OS, or architecture with `amd64` = `x86_64` and `arm64` = `aarch64`), the
//!   host is *blocked*: it keeps what it runs and nothing is planned onto it (no steps, no new
//!   replicas) until the declaration is fixed. What a host does not declare is the engine's
//!   answer; a host never observed and declaring nothing counts as Linux on x86_64.
//! * **Services.** A service runs on a host only when the host's OS is one its image can run
//!   on: the image on that host (image inspect) if it is there, else what any host or registry
//!   knows about the image (all platforms seen), else Linux, unless its constraints name the
//!   OS (`node.platform.os == windows`). A service naming a Windows path (`C:\data`) runs on
//!   Windows hosts only.
//! * **Windows builds.** A Windows image whose `OsVersion` build is known runs on a Windows
//!   host whose build is known only if the image is not newer than the host, and, with process
//!   isolation (the host's default isolation), only on the same build.
//! * **Windows-only services** cannot have what Windows lacks (`uid`, `gid`, `mode` of
//!   configs and secrets, pids limits); a service that can run on both gets them ignored on
//!   Windows hosts, with a note ([`super::windows`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::observed::{HostObservation, HostState, Observed};
use crate::model::windows::{
    LINUX, WINDOWS, excludes_os, required_os, unsupported_on_windows, windows_paths,
};
use crate::model::{Host, Model, Platform, Service};

/// What a host's engine says about itself (`GET /info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `OSType`: `linux` or `windows`.
    pub os_type: String,
    /// `Architecture`: `x86_64`, `aarch64`.
    pub architecture: String,
    /// `OperatingSystem`: `Debian GNU/Linux 12 (bookworm)`, `Windows Server 2022 Datacenter ...`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operating_system: String,
    /// `OSVersion`: `12`, `10.0 20348 (20348.1.amd64fre.fe_release.210507-1500)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// `KernelVersion`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel_version: String,
    /// `Isolation` (Windows): the default isolation of new containers, `process` or `hyperv`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    /// `ServerVersion`: the engine's version (`20.10.24+dfsg1`), for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_version: String,
}

/// An image's platform: an image's own (image inspect) or one entry of a manifest list.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImagePlatform {
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// Windows: the build the image was made from, `10.0.20348.2113`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
}

/// Where a host's platform comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformSource {
    /// Declared in `fleet.yaml` and confirmed by the engine.
    Checked,
    /// Declared nothing (or part): the engine's answer.
    Engine,
    /// Declared, and the engine has not answered (yet).
    Declared,
    /// Declared nothing and never observed: Linux on x86_64 is assumed.
    Assumed,
}

/// A host's platform as gitfleet plans with it; part of the plan (additive in format 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlatform {
    pub os: String,
    pub arch: String,
    pub source: PlatformSource,
    /// The engine's `OperatingSystem`, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<String>,
    /// Windows: the host's build (`20348`), from the engine's kernel version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_build: Option<u32>,
    /// Windows: the engine's default isolation (`process`, `hyperv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// The declaration and the engine disagree: why nothing is planned onto the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    /// What was translated or ignored for this host (Windows specifics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl HostPlatform {
    pub fn is_windows(&self) -> bool {
        self.os == WINDOWS
    }

    /// `windows/x86_64, Windows Server 2022 Datacenter, build 20348, process isolation`.
    pub fn describe(&self) -> String {
        let mut out = format!("{}/{}", self.os, self.arch);
        if let Some(name) = self.operating_system.as_deref().filter(|n| !n.is_empty()) {
            out.push_str(", ");
            out.push_str(name);
        }
        if let Some(build) = self.windows_build {
            out.push_str(&format!(", build {build}"));
        }
        if let Some(isolation) = &self.isolation {
            out.push_str(&format!(", {isolation} isolation"));
        }
        match self.source {
            PlatformSource::Declared => out.push_str(", declared, not yet confirmed"),
            PlatformSource::Assumed => out.push_str(", assumed"),
            PlatformSource::Checked | PlatformSource::Engine => {}
        }
        out
    }
}

/// `amd64` and `x86_64` (and `arm64` / `aarch64`) name one architecture.
fn same_arch(a: &str, b: &str) -> bool {
    let canonical = |s: &str| match s.to_ascii_lowercase().as_str() {
        "amd64" | "x86_64" | "x86-64" => "x86_64".to_string(),
        "arm64" | "aarch64" => "aarch64".to_string(),
        other => other.to_string(),
    };
    canonical(a) == canonical(b)
}

/// The build number in a Windows version: the third number of `10.0.20348.2113` or of
/// `10.0 20348 (20348.1.amd64fre...)`.
pub fn windows_build(version: &str) -> Option<u32> {
    let numbers: Vec<&str> =
        version.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
    match numbers.as_slice() {
        ["10", "0", build, ..] => build.parse().ok(),
        _ => None,
    }
}

/// The platform of `host` (named `name`), from its declaration and its engine's answer.
pub fn resolve(name: &str, declared: &Platform, engine: Option<&EngineInfo>) -> HostPlatform {
    let declared_any = !declared.os.is_empty() || !declared.arch.is_empty();
    let Some(engine) = engine.filter(|e| !e.os_type.is_empty()) else {
        return HostPlatform {
            os: declared.os().to_string(),
            arch: declared.arch().to_string(),
            source: if declared_any { PlatformSource::Declared } else { PlatformSource::Assumed },
            operating_system: None,
            windows_build: None,
            isolation: None,
            mismatch: None,
            notes: Vec::new(),
        };
    };
    let reported_os = engine.os_type.to_ascii_lowercase();
    let os_differs = !declared.os.is_empty() && !declared.os.eq_ignore_ascii_case(&reported_os);
    let arch_differs = !declared.arch.is_empty()
        && !engine.architecture.is_empty()
        && !same_arch(&declared.arch, &engine.architecture);
    let windows = reported_os == WINDOWS;
    let mismatch = (os_differs || arch_differs).then(|| {
        let what = if engine.operating_system.is_empty() {
            String::new()
        } else {
            format!(" ({})", engine.operating_system)
        };
        format!(
            "platform mismatch: host {name} is declared {}/{} in fleet.yaml but its engine reports \
             {reported_os}/{}{what}; nothing is planned onto it until `hosts.{name}.platform` is \
             fixed (or removed, to take the engine's answer)",
            declared.os(),
            declared.arch(),
            engine.architecture,
        )
    });
    let (os, arch) = if mismatch.is_some() {
        (declared.os().to_string(), declared.arch().to_string())
    } else {
        // A declared architecture keeps its spelling: constraints compare what the user wrote.
        let arch = if declared.arch.is_empty() { &engine.architecture } else { &declared.arch };
        (reported_os.clone(), arch.to_string())
    };
    HostPlatform {
        os,
        arch,
        source: if declared_any { PlatformSource::Checked } else { PlatformSource::Engine },
        operating_system: Some(engine.operating_system.clone()).filter(|s| !s.is_empty()),
        windows_build: windows
            .then(|| windows_build(&engine.kernel_version).or(windows_build(&engine.os_version)))
            .flatten(),
        isolation: (windows && !engine.isolation.is_empty()).then(|| engine.isolation.clone()),
        mismatch,
        notes: Vec::new(),
    }
}

/// What any host or registry knows about one image.
#[derive(Default)]
struct Known<'o> {
    oses: BTreeSet<&'o str>,
    platforms: Vec<&'o ImagePlatform>,
    /// Where it was seen first: `on host a`, `in its registry`.
    seen: String,
}

/// The state a host was observed with, now or when last reachable.
fn state_of<'o>(observed: &'o Observed, name: &str) -> Option<&'o HostState> {
    match observed.hosts.get(name)? {
        HostObservation::Reachable(state) => Some(state),
        HostObservation::Unreachable { last_seen, .. } => last_seen.as_ref(),
    }
}

/// Every host's platform and what is known about the images, for one schedule.
pub struct Platforms<'a> {
    /// The registered hosts in name order, each with its platform as resolved (borrowed when
    /// that is what it declares).
    hosts: Vec<Cow<'a, Host>>,
    resolved: Vec<HostPlatform>,
    /// The images each host has (image inspect), by host index.
    local: Vec<Option<&'a BTreeMap<String, ImagePlatform>>>,
    known: BTreeMap<&'a str, Known<'a>>,
    /// Every host is Linux and no image is known: nothing to check but Windows paths.
    all_linux: bool,
}

impl<'a> Platforms<'a> {
    pub fn new(model: &'a Model, observed: &'a Observed) -> Self {
        let mut hosts = Vec::with_capacity(model.fleet.hosts.len());
        let mut resolved = Vec::with_capacity(model.fleet.hosts.len());
        let mut local = Vec::with_capacity(model.fleet.hosts.len());
        let mut known: BTreeMap<&str, Known<'_>> = BTreeMap::new();
        for (name, host) in &model.fleet.hosts {
            let state = state_of(observed, name);
            let platform = resolve(name, &host.platform, state.and_then(|s| s.engine.as_ref()));
            let effective = Platform { os: platform.os.clone(), arch: platform.arch.clone() };
            hosts.push(if host.platform == effective {
                Cow::Borrowed(host)
            } else {
                Cow::Owned(Host { platform: effective, ..host.clone() })
            });
            resolved.push(platform);
            local.push(state.map(|s| &s.images));
            for (image, platform) in state.iter().flat_map(|s| &s.images) {
                let entry = known.entry(image.as_str()).or_default();
                if entry.seen.is_empty() {
                    entry.seen = format!("on host {name}");
                }
                entry.oses.insert(platform.os.as_str());
                entry.platforms.push(platform);
            }
        }
        // A registry's answer counts for images no host has.
        for name in model.fleet.hosts.keys() {
            for (image, platforms) in
                state_of(observed, name).iter().flat_map(|s| &s.registry_images)
            {
                let entry = known.entry(image.as_str()).or_default();
                if !entry.seen.is_empty() && !entry.seen.starts_with("in") {
                    continue;
                }
                entry.seen = "in its registry".to_string();
                for platform in platforms {
                    entry.oses.insert(platform.os.as_str());
                    entry.platforms.push(platform);
                }
            }
        }
        let all_linux = known.is_empty() && resolved.iter().all(|p| p.os == LINUX);
        Platforms { hosts, resolved, local, known, all_linux }
    }

    /// The registered hosts in name order, with their platforms as resolved.
    pub fn hosts(&self) -> Vec<&Host> {
        self.hosts.iter().map(|h| h.as_ref()).collect()
    }

    /// Each host's platform, in name order.
    pub fn resolved(&self) -> &[HostPlatform] {
        &self.resolved
    }

    /// `away` with the blocked hosts (platform mismatch) added: they keep their replicas and
    /// get no new ones.
    pub fn with_blocked(&self, mut away: Vec<bool>) -> Vec<bool> {
        for (h, platform) in self.resolved.iter().enumerate() {
            if platform.mismatch.is_some() {
                away[h] = true;
            }
        }
        away
    }

    /// The operating systems `service` can run on: its constraint's, else Windows for a
    /// service naming Windows paths, else what is known about its image, else Linux; less
    /// those its constraints rule out.
    pub fn service_oses(&self, service: &Service) -> BTreeSet<String> {
        let mut oses: BTreeSet<String> = if let Some(os) = required_os(service) {
            BTreeSet::from([os.to_string()])
        } else if !windows_paths(service).is_empty() {
            BTreeSet::from([WINDOWS.to_string()])
        } else if let Some(known) = self.known.get(service.image.as_str()) {
            known.oses.iter().map(|s| s.to_string()).collect()
        } else {
            BTreeSet::from([LINUX.to_string()])
        };
        oses.retain(|os| !excludes_os(service, os));
        oses
    }

    /// Whether `service` can run only on Windows.
    pub fn windows_only(&self, service: &Service) -> bool {
        let oses = self.service_oses(service);
        oses.len() == 1 && oses.contains(WINDOWS)
    }

    /// Why `service` cannot run on host `h`, if it cannot.
    pub fn exclusion(&self, service: &Service, h: usize) -> Option<String> {
        let platform = &self.resolved[h];
        if platform.mismatch.is_some() {
            // Blocked: it keeps what it runs, and gets nothing new anyway.
            return None;
        }
        let name = &self.hosts[h].name;
        let os = platform.os.as_str();
        if os != WINDOWS {
            if let Some((_, _, path)) = windows_paths(service).first() {
                return Some(format!("{name} runs {os}, and it names the Windows path {path:?}"));
            }
        }
        let image = service.image.as_str();
        let mine = self.local[h].and_then(|images| images.get(image));
        let known = self.known.get(image);
        if let Some(here) = mine {
            if here.os != os {
                return Some(format!("image {image} on {name} is a {} image", here.os));
            }
            if os == WINDOWS {
                if let Some(why) = build_conflict(image, here, platform, name) {
                    return Some(why);
                }
            }
        } else if let Some(known) = known {
            if !known.oses.contains(os) {
                let oses: Vec<&str> = known.oses.iter().copied().collect();
                return Some(format!(
                    "{name} runs {os}; image {image} is a {} image ({})",
                    oses.join("/"),
                    known.seen
                ));
            }
            if os == WINDOWS {
                // The engine pulls the entry for its own build: one that fits is enough.
                let conflicts: Vec<Option<String>> = known
                    .platforms
                    .iter()
                    .filter(|p| p.os == WINDOWS)
                    .map(|p| build_conflict(image, p, platform, name))
                    .collect();
                if conflicts.iter().all(Option::is_some) {
                    if let Some(Some(first)) = conflicts.into_iter().next() {
                        return Some(first);
                    }
                }
            }
        } else if os != LINUX && required_os(service) != Some(os) && !excludes_os(service, LINUX) {
            return Some(format!(
                "{name} runs {os}, and nothing says it does: its image {image} is not known to be \
                 a {os} image (add node.platform.os == {os})"
            ));
        }
        if os == WINDOWS && self.windows_only(service) {
            let missing = unsupported_on_windows(service);
            if let Some((_, what)) = missing.first() {
                return Some(format!(
                    "it runs only on Windows, which has no {}; remove it",
                    what.trim_start_matches("a ")
                ));
            }
        }
        None
    }

    /// `satisfying` (host indices meeting the constraints) less the hosts `service` cannot run
    /// on, and, if any were left out, why (for when none is left).
    pub fn admit(
        &self,
        service: &Service,
        satisfying: Rc<[usize]>,
    ) -> (Rc<[usize]>, Option<Rc<str>>) {
        if self.all_linux && windows_paths(service).is_empty() {
            return (satisfying, None);
        }
        let mut kept = Vec::with_capacity(satisfying.len());
        let mut why = Vec::new();
        for &h in satisfying.iter() {
            match self.exclusion(service, h) {
                None => kept.push(h),
                Some(reason) => why.push(reason),
            }
        }
        if why.is_empty() {
            return (satisfying, None);
        }
        let reason = format!("no host it may run on can run it: {}", why.join("; "));
        (kept.into(), Some(reason.into()))
    }
}

/// Why a Windows image of build `image` cannot run on a Windows host, if both builds are
/// known: newer than the host never runs; process isolation needs the same build.
fn build_conflict(
    image: &str,
    platform: &ImagePlatform,
    host: &HostPlatform,
    name: &str,
) -> Option<String> {
    let wanted = windows_build(&platform.os_version)?;
    let has = host.windows_build?;
    let hyperv = host.isolation.as_deref() == Some("hyperv");
    if wanted > has {
        return Some(format!(
            "image {image} is built for Windows build {wanted}, newer than {name}'s build {has}"
        ));
    }
    if wanted != has && !hyperv {
        return Some(format!(
            "image {image} is built for Windows build {wanted}; {name} runs build {has} with \
             process isolation, which needs the same build (Hyper-V isolation could run it)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(os: &str, arch: &str) -> EngineInfo {
        EngineInfo {
            os_type: os.into(),
            architecture: arch.into(),
            operating_system: if os == WINDOWS {
                "Windows Server 2022 Datacenter Version 2009 (OS Build 20348.2113)".into()
            } else {
                "Debian GNU/Linux 12 (bookworm)".into()
            },
            kernel_version: if os == WINDOWS {
                "10.0 20348 (20348.1.amd64fre.fe_release.210507-1500)".into()
            } else {
                "6.1.0-28-amd64".into()
            },
            isolation: if os == WINDOWS { "process".into() } else { String::new() },
            ..EngineInfo::default()
        }
    }

    fn declared(os: &str, arch: &str) -> Platform {
        Platform { os: os.into(), arch: arch.into() }
    }

    #[test]
    fn builds_are_read_from_either_spelling() {
        assert_eq!(windows_build("10.0.20348.2113"), Some(20348));
        assert_eq!(
            windows_build("10.0 20348 (20348.1.amd64fre.fe_release.210507-1500)"),
            Some(20348)
        );
        assert_eq!(windows_build("10.0.17763"), Some(17763));
        assert_eq!(windows_build("6.1.0-28-amd64"), None);
        assert_eq!(windows_build(""), None);
    }

    #[test]
    fn an_undeclared_host_takes_the_engines_answer() {
        let p = resolve("w", &Platform::undeclared(), Some(&engine("windows", "x86_64")));
        assert_eq!((p.os.as_str(), p.arch.as_str()), ("windows", "x86_64"));
        assert_eq!(p.source, PlatformSource::Engine);
        assert_eq!(p.windows_build, Some(20348));
        assert_eq!(p.isolation.as_deref(), Some("process"));
        assert_eq!(p.mismatch, None);
        let p = resolve("a", &Platform::undeclared(), None);
        assert_eq!((p.os.as_str(), p.source), ("linux", PlatformSource::Assumed));
    }

    #[test]
    fn a_declaration_is_checked_and_a_mismatch_names_the_host_and_both_values() {
        let p = resolve("a", &declared("windows", ""), Some(&engine("linux", "x86_64")));
        let why = p.mismatch.expect("a mismatch");
        assert!(why.contains("host a"), "{why}");
        assert!(why.contains("windows/x86_64") && why.contains("linux/x86_64"), "{why}");
        assert!(why.contains("hosts.a.platform"), "{why}");
        // The declared spelling of an architecture is kept when it means the same.
        let p = resolve("b", &declared("linux", "amd64"), Some(&engine("linux", "x86_64")));
        assert_eq!(
            (p.arch.as_str(), p.source, p.mismatch),
            ("amd64", PlatformSource::Checked, None)
        );
        let p = resolve("c", &declared("", "aarch64"), Some(&engine("linux", "x86_64")));
        assert!(p.mismatch.is_some());
        let p = resolve("d", &declared("windows", ""), None);
        assert_eq!((p.os.as_str(), p.source), ("windows", PlatformSource::Declared));
    }

    #[test]
    fn builds_follow_the_isolation_rules() {
        let image = |v: &str| ImagePlatform {
            os: "windows".into(),
            os_version: v.into(),
            ..Default::default()
        };
        let mut host = resolve("w", &Platform::undeclared(), Some(&engine("windows", "x86_64")));
        assert_eq!(build_conflict("i", &image("10.0.20348.2113"), &host, "w"), None);
        let older = build_conflict("i", &image("10.0.17763.5206"), &host, "w").unwrap();
        assert!(older.contains("process isolation") && older.contains("17763"), "{older}");
        let newer = build_conflict("i", &image("10.0.26100.1"), &host, "w").unwrap();
        assert!(newer.contains("newer"), "{newer}");
        host.isolation = Some("hyperv".into());
        assert_eq!(build_conflict("i", &image("10.0.17763.5206"), &host, "w"), None);
        assert!(build_conflict("i", &image("10.0.26100.1"), &host, "w").is_some());
        assert_eq!(build_conflict("i", &image(""), &host, "w"), None);
    }
}
