//! Platform facts from the engines, for [`crate::diff::platform`]: what each engine says
//! about itself ([`engine_info`], `GET /info`, read once per connection), and the platforms of
//! the model's images ([`observe_images`]): image inspect on every host, and for an image no
//! host has, the registry's manifest list through the distribution endpoint of an engine that
//! is not Linux (`GET /distribution/{name}/json`), kept per image.
//!
//! # Guarantees
//!
//! * Read-only: `GET` requests only.
//! * Cheap where nothing needs it: images are looked up only in a fleet with a host that is
//!   not Linux (declared or reported); an all-Linux fleet sends no request more than before
//!   but one `/info` per connection.
//! * Bounded: every lookup runs under the caller's timeout; an engine or registry that does
//!   not answer leaves the image unknown (placement then falls back to the rules for unknown
//!   images), it never holds up the observation.
//!
//! # Caveats
//!
//! * The distribution endpoint is asked without registry credentials: a private registry's
//!   manifest stays unknown unless the image is on a host.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::future::join_all;
use tokio::sync::Mutex;

use super::error::HostError;
use crate::diff::platform::{EngineInfo, ImagePlatform};
use crate::diff::{HostObservation, HostState, Observed};
use crate::model::windows::LINUX;
use crate::model::{Host, Model};

/// How long a registry that did not answer about an image is not asked again.
const UNKNOWN_FOR: Duration = Duration::from_secs(300);

/// The engine's `/info`, as [`EngineInfo`].
pub async fn engine_info(docker: &Docker) -> Result<EngineInfo, HostError> {
    let info =
        docker.info().await.map_err(|e| HostError::from_request("reading the engine's info", e))?;
    Ok(EngineInfo {
        os_type: info.os_type.unwrap_or_default(),
        architecture: info.architecture.unwrap_or_default(),
        operating_system: info.operating_system.unwrap_or_default(),
        os_version: info.os_version.unwrap_or_default(),
        kernel_version: info.kernel_version.unwrap_or_default(),
        isolation: info.isolation.map(|i| i.to_string()).unwrap_or_default(),
        server_version: info.server_version.unwrap_or_default(),
    })
}

/// The platform of `image` on this host, or `None` if the host does not have it.
pub async fn image_platform(
    docker: &Docker,
    image: &str,
) -> Result<Option<ImagePlatform>, HostError> {
    match docker.inspect_image(image).await {
        Ok(inspect) => Ok(Some(ImagePlatform {
            os: inspect.os.unwrap_or_default(),
            architecture: inspect.architecture.unwrap_or_default(),
            os_version: inspect.os_version.unwrap_or_default(),
        })),
        Err(err) => {
            let err = HostError::about("inspecting image", image, err);
            if err.is_not_found() { Ok(None) } else { Err(err) }
        }
    }
}

/// The platforms the registry publishes `image` for, asked through this engine.
pub async fn registry_platforms(
    docker: &Docker,
    image: &str,
) -> Result<Vec<ImagePlatform>, HostError> {
    let inspect = docker
        .inspect_registry_image(image, None)
        .await
        .map_err(|e| HostError::about("asking the registry about image", image, e))?;
    Ok(inspect
        .platforms
        .into_iter()
        .map(|p| ImagePlatform {
            os: p.os.unwrap_or_default(),
            architecture: p.architecture.unwrap_or_default(),
            os_version: p.os_version.unwrap_or_default(),
        })
        .filter(|p| !p.os.is_empty())
        .collect())
}

/// Registry answers kept between observations, per image reference.
#[derive(Default)]
pub struct RegistryCache {
    answers: Mutex<BTreeMap<String, Answer>>,
}

#[derive(Clone)]
enum Answer {
    Platforms(Vec<ImagePlatform>),
    /// No engine could tell, at this instant.
    Unknown(Instant),
}

/// Whether the fleet has a host that is not Linux, declared or as its engine reports.
pub fn mixed(hosts: &BTreeMap<String, Host>, observed: &Observed) -> bool {
    let declared = hosts.values().any(|h| !h.platform.os.is_empty() && h.platform.os != LINUX);
    declared
        || observed.hosts.values().any(|o| match o {
            HostObservation::Reachable(state) => {
                state.engine.as_ref().is_some_and(|e| !e.os_type.is_empty() && e.os_type != LINUX)
            }
            HostObservation::Unreachable { .. } => false,
        })
}

/// The images the model's services run.
pub fn model_images(model: &Model) -> BTreeSet<String> {
    model.apps.values().flat_map(|app| app.services.values().map(|s| s.image.clone())).collect()
}

/// Fills in the platforms of `images` in `observed`: on every reachable host, the images it
/// has (`HostState::images`); for the images no host has, the registry's answer through one
/// engine that is not Linux (`HostState::registry_images` of the host that answered). Each
/// request is bounded by `timeout`; what fails stays unknown.
pub async fn observe_images(
    observed: &mut Observed,
    clients: &BTreeMap<String, Result<Docker, String>>,
    images: &BTreeSet<String>,
    cache: &RegistryCache,
    timeout: Duration,
) {
    let reachable: Vec<(&String, &Docker)> = clients
        .iter()
        .filter_map(|(name, client)| Some((name, client.as_ref().ok()?)))
        .filter(|(name, _)| {
            matches!(observed.hosts.get(*name), Some(HostObservation::Reachable(_)))
        })
        .collect();
    let inspections = reachable.iter().flat_map(|&(name, docker)| {
        images.iter().map(move |image| async move {
            let answer = tokio::time::timeout(timeout, image_platform(docker, image)).await;
            match answer {
                Ok(Ok(platform)) => (name, image, platform),
                Ok(Err(error)) => {
                    tracing::debug!(host = %name, %image, %error, "cannot inspect image");
                    (name, image, None)
                }
                Err(_) => (name, image, None),
            }
        })
    });
    let mut present: BTreeSet<&String> = BTreeSet::new();
    for (name, image, platform) in join_all(inspections).await {
        if let (Some(platform), Some(HostObservation::Reachable(state))) =
            (platform, observed.hosts.get_mut(name))
        {
            present.insert(image);
            state.images.insert(image.clone(), platform);
        }
    }

    // Only engines that are not Linux are asked: an image nothing is known about runs on
    // Linux anyway, so only a non-Linux answer changes a placement, and these engines are the
    // ones set up for those images' registries.
    let askers: Vec<(&String, &Docker)> = reachable
        .iter()
        .copied()
        .filter(|(name, _)| {
            matches!(
                observed.hosts.get(*name),
                Some(HostObservation::Reachable(HostState { engine: Some(engine), .. }))
                    if !engine.os_type.is_empty() && engine.os_type != LINUX
            )
        })
        .collect();
    let missing: Vec<&String> = images.iter().filter(|i| !present.contains(i)).collect();
    let lookups = missing.into_iter().map(|image| {
        let askers = &askers;
        async move {
            if let Some(answer) = cache.answers.lock().await.get(image).cloned() {
                match answer {
                    Answer::Platforms(platforms) => return (image, None, Some(platforms)),
                    Answer::Unknown(when) if when.elapsed() < UNKNOWN_FOR => {
                        return (image, None, None);
                    }
                    Answer::Unknown(_) => {}
                }
            }
            // One engine after the other, all of them within one `timeout`.
            let ask = async {
                for &(name, docker) in askers {
                    match registry_platforms(docker, image).await {
                        Ok(platforms) if !platforms.is_empty() => return Some((name, platforms)),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(host = %name, %image, %error, "no registry answer");
                        }
                    }
                }
                None
            };
            match tokio::time::timeout(timeout, ask).await {
                Ok(Some((name, platforms))) => {
                    let answer = Answer::Platforms(platforms.clone());
                    cache.answers.lock().await.insert(image.clone(), answer);
                    (image, Some(name), Some(platforms))
                }
                _ => {
                    cache
                        .answers
                        .lock()
                        .await
                        .insert(image.clone(), Answer::Unknown(Instant::now()));
                    (image, None, None)
                }
            }
        }
    });
    let first_reachable = askers.first().map(|(name, _)| (*name).clone());
    for (image, through, platforms) in join_all(lookups).await {
        let Some(platforms) = platforms else { continue };
        // A cached answer is filed under the first host that could be asked now.
        let Some(host) = through.cloned().or_else(|| first_reachable.clone()) else { continue };
        if let Some(HostObservation::Reachable(state)) = observed.hosts.get_mut(&host) {
            state.registry_images.insert(image.clone(), platforms);
        }
    }
}
