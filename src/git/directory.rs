//! Reading a plain directory (a working copy) into a [`SourceTree`], the same way a commit is
//! read: `fleet.yaml` and `apps/`, symbolic links recorded and never followed; FIFOs,
//! devices, sockets and files over the read ceiling recorded as unreadable, never opened.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::GitError;
use crate::model::SourceTree;
use crate::model::limits::READ_CEILING;
use crate::model::load::{APPS_DIR, FLEET_FILE};

/// Reads the repository files under `root`.
pub fn read_directory(root: &Path) -> Result<SourceTree, GitError> {
    let mut files = SourceTree::new();
    let fleet = root.join(FLEET_FILE);
    if fleet.symlink_metadata().is_ok() {
        add(root, &fleet, &mut files)?;
    }
    let apps = root.join(APPS_DIR);
    match apps.symlink_metadata() {
        Ok(metadata) if metadata.is_dir() => walk(root, &apps, &mut files)?,
        // A link, a file or anything else is recorded as such (never followed).
        Ok(_) => add(root, &apps, &mut files)?,
        Err(_) => {}
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
    let kind = metadata.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(io_error(path))?;
        files.insert_symlink(key, target.display().to_string());
    } else if metadata.is_file() && metadata.len() > READ_CEILING {
        let what = format!(
            "a file of {} bytes, over the {READ_CEILING}-byte ceiling on reading",
            metadata.len()
        );
        files.insert_unreadable(key, what);
    } else if metadata.is_file() {
        files.insert_file(key, read_capped(path)?);
    } else {
        // Never opened: reading a FIFO would block, a device could be endless.
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        files.insert_unreadable(key, what);
    }
    Ok(())
}

/// Reads a file, at most [`READ_CEILING`] bytes of it (it may grow after its size was
/// read).
fn read_capped(path: &Path) -> Result<Vec<u8>, GitError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::new();
    file.take(READ_CEILING + 1).read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok(bytes)
}
