//! Reading the blobs of one commit on several threads.
//!
//! A repository of 1,000 apps has thousands of small files, and each loose object costs a
//! file to open and inflate twice (its header first, for the size ceiling, then the whole
//! object). The reads are independent, so they are shared out between threads, each with
//! its own handle on the repository (a [`Repository`] may move between threads but not be
//! shared; [`crate::parallel::map_in_order`]). The results come back in the order asked, so
//! a commit reads the same whatever the number of threads.

use git2::{Oid, Repository};

use crate::model::limits::READ_CEILING;
use crate::parallel::map_in_order;

/// Blobs a helper thread should have at least: below this, opening another handle on the
/// repository costs more than it saves.
const BLOBS_PER_THREAD: usize = 64;

/// One blob to read: its id, and whether its tree entry is a symbolic link.
pub(super) struct Wanted {
    pub id: Oid,
    pub symlink: bool,
}

/// What reading one blob gave.
#[derive(Debug)]
pub(super) enum Blob {
    File(Vec<u8>),
    /// A symbolic link's target.
    Symlink(String),
    /// A blob over [`READ_CEILING`] bytes, with its size: never loaded.
    TooBig(usize),
}

/// Reads every blob of `wanted` from `repository`, on up to `threads` threads, each helper
/// with its own handle on the repository. The results are in the order of `wanted`.
pub(super) fn read_blobs(
    repository: &Repository,
    wanted: &[Wanted],
    threads: usize,
) -> Vec<Result<Blob, git2::Error>> {
    let threads = threads.min(wanted.len() / BLOBS_PER_THREAD);
    let path = repository.path();
    // A helper that cannot open its own handle reads nothing; the others take its share.
    map_in_order(wanted, threads, repository, || Repository::open(path).ok(), read_one)
}

fn read_one(repository: &Repository, wanted: &Wanted) -> Result<Blob, git2::Error> {
    // The size from the object header, so a huge blob is never loaded.
    let size = repository.odb().and_then(|odb| odb.read_header(wanted.id)).map(|h| h.0).ok();
    if let Some(size) = size.filter(|&size| size as u64 > READ_CEILING) {
        return Ok(Blob::TooBig(size));
    }
    let blob = repository.find_blob(wanted.id)?;
    Ok(if wanted.symlink {
        Blob::Symlink(String::from_utf8_lossy(blob.content()).into_owned())
    } else {
        Blob::File(blob.content().to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_threads_read_what_one_reads_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let repository = Repository::init(dir.path()).unwrap();
        let mut wanted: Vec<Wanted> = (0..300)
            .map(|i| Wanted {
                id: repository.blob(format!("blob {i}\n").as_bytes()).unwrap(),
                symlink: i % 50 == 7,
            })
            .collect();
        // An id that is not in the repository fails in its place only.
        wanted.insert(150, Wanted { id: Oid::from_bytes(&[7; 20]).unwrap(), symlink: false });
        let describe = |results: Vec<Result<Blob, git2::Error>>| -> Vec<String> {
            results
                .into_iter()
                .map(|r| match r {
                    Ok(Blob::File(bytes)) => String::from_utf8(bytes).unwrap(),
                    Ok(Blob::Symlink(target)) => format!("link to {target}"),
                    Ok(Blob::TooBig(size)) => format!("too big: {size}"),
                    Err(_) => "missing".into(),
                })
                .collect()
        };
        let one = describe(read_blobs(&repository, &wanted, 1));
        let four = describe(read_blobs(&repository, &wanted, 4));
        assert_eq!(one, four);
        assert_eq!(four.len(), 301);
        assert_eq!(four[0], "blob 0\n");
        assert_eq!(four[7], "link to blob 7\n");
        assert_eq!(four[150], "missing");
        assert_eq!(four[300], "blob 299\n");
    }
}
