//! Reading a plain directory (a working copy) into a [`SourceTree`], the same way a commit is
//! read: `fleet.yaml` and `apps/`, symbolic links recorded and never followed.

use std::path::Path;

use super::GitError;
use crate::model::SourceTree;
use crate::model::load::{APPS_DIR, FLEET_FILE};

/// Reads the repository files under `root`.
pub fn read_directory(root: &Path) -> Result<SourceTree, GitError> {
    let mut files = SourceTree::new();
    let fleet = root.join(FLEET_FILE);
    if fleet.symlink_metadata().is_ok() {
        add(root, &fleet, &mut files)?;
    }
    let apps = root.join(APPS_DIR);
    if apps.is_dir() {
        walk(root, &apps, &mut files)?;
    }
    Ok(files)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io { path: path.display().to_string(), source }
}

fn walk(root: &Path, dir: &Path, files: &mut SourceTree) -> Result<(), GitError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else {
            add(root, &path, files)?;
        }
    }
    Ok(())
}

fn add(root: &Path, path: &Path, files: &mut SourceTree) -> Result<(), GitError> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let key = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let metadata = path.symlink_metadata().map_err(io_error(path))?;
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(io_error(path))?;
        files.insert_symlink(key, target.display().to_string());
    } else if metadata.is_file() {
        files.insert_file(key, std::fs::read(path).map_err(io_error(path))?);
    }
    Ok(())
}
