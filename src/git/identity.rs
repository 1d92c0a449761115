//! Which repository a fleet is deployed from, as a stable id for the `io.gitfleet.repository`
//! label: two checkouts of one remote (the controller's mirror, a CI runner's working copy,
//! a laptop's clone over ssh) get the same id; two different repositories never do.

use std::path::{Path, PathBuf};

use git2::Repository;

use super::mirror::{is_scp_like, local_path, strip_userinfo};

/// The id of the repository at `location` (a URL, a path or a `file://` URL):
///
/// * a URL: without credentials, scheme, `.git` suffix and trailing slash, the host in lower
///   case: `https://bob:pw@GitHub.com/org/app.git/` → `github.com/org/app`, as are
///   `ssh://git@github.com/org/app` and `git@github.com:org/app.git`;
/// * a local repository with an `origin` remote: its origin's id (so a CI checkout counts as
///   the remote it was cloned from);
/// * any other local path: its canonical path.
pub fn repository_id(location: &str) -> String {
    match local_path(location) {
        Some(path) => local_id(&path),
        None => url_id(location),
    }
}

fn local_id(path: &Path) -> String {
    if let Ok(repository) = Repository::open(path) {
        if let Ok(origin) = repository.find_remote("origin") {
            if let Ok(url) = origin.url() {
                return match local_path(url) {
                    Some(origin_path) if !origin_path.is_absolute() => {
                        canonical(&repository_root(&repository).join(origin_path))
                    }
                    Some(origin_path) => canonical(&origin_path),
                    None => url_id(url),
                };
            }
        }
        return canonical(&repository_root(&repository));
    }
    canonical(path)
}

/// The working tree of a repository, or its git directory when it is bare.
fn repository_root(repository: &Repository) -> PathBuf {
    repository.workdir().unwrap_or_else(|| repository.path()).to_path_buf()
}

fn canonical(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = path.display().to_string();
    let trimmed = text.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/.git").unwrap_or(trimmed);
    if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }
}

fn url_id(url: &str) -> String {
    let plain = strip_userinfo(url);
    let rest = match plain.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        // scp-like `git@host:org/app.git`: the user goes, `:` becomes `/`.
        None if is_scp_like(&plain) => {
            let without_user = plain.rsplit_once('@').map_or(plain.as_str(), |(_, r)| r);
            without_user.replacen(':', "/", 1)
        }
        None => plain.clone(),
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, r)| r).to_string();
    let (host, path) = rest.split_once('/').unwrap_or((&rest, ""));
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    if path.is_empty() { host.to_lowercase() } else { format!("{}/{path}", host.to_lowercase()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_remote_is_one_id() {
        for url in [
            "https://github.com/org/app",
            "https://bob:s3cr3t@GitHub.com/org/app.git/",
            "http://github.com/org/app.git",
            "ssh://git@github.com/org/app.git",
            "git@github.com:org/app.git",
            "git://github.com/org/app/",
        ] {
            assert_eq!(repository_id(url), "github.com/org/app", "{url}");
        }
        assert_ne!(repository_id("https://github.com/org/other"), "github.com/org/app");
        assert_eq!(repository_id("https://host:8443/a/b.git"), "host:8443/a/b");
    }

    #[test]
    fn a_checkout_is_its_origin_and_a_plain_path_is_itself() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("ci-checkout");
        let repository = Repository::init(&checkout).unwrap();
        let plain = canonical(&checkout);
        assert_eq!(repository_id(&checkout.display().to_string()), plain);
        repository.remote("origin", "https://x:token@github.com/org/app.git").unwrap();
        assert_eq!(repository_id(&checkout.display().to_string()), "github.com/org/app");
        assert_eq!(repository_id(&format!("file://{}", checkout.display())), "github.com/org/app");
        let not_git = dir.path().join("folder");
        std::fs::create_dir(&not_git).unwrap();
        assert_eq!(repository_id(&format!("{}/", not_git.display())), canonical(&not_git));
    }
}
