//! A minimal tar writer: regular files with mode, numeric owner and mtime, in the POSIX ustar
//! format, with a PAX extended header for what ustar cannot hold (paths over its 100 + 155
//! bytes, ids over 2097151). Enough for Docker's `PUT /containers/{id}/archive`, which
//! extracts with Go's `archive/tar`; no dependency for ~100 lines.
//!
//! No directory entries are written: Docker creates a missing parent directory itself
//! (`0755`, root), and a directory entry would reset an *existing* directory's mode and owner
//! (a config under `/tmp` would turn `/tmp`'s `1777` into the entry's mode).

const BLOCK: usize = 512;

/// One regular file of an archive.
pub(crate) struct TarFile<'a> {
    /// Relative path inside the archive (`run/secrets/db`), `/`-separated, no `..`.
    pub path: &'a str,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    pub content: &'a [u8],
}

/// The archive holding `files`, in order, and the two zero blocks that end a tar.
pub(crate) fn tar(files: &[TarFile<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        let (name, prefix) = split_path(file.path).unwrap_or((file.path, ""));
        let mut pax = Vec::new();
        if split_path(file.path).is_none() {
            pax_record(&mut pax, "path", file.path);
        }
        for (key, id) in [("uid", file.uid), ("gid", file.gid)] {
            if !fits_octal(id, 8) {
                pax_record(&mut pax, key, &id.to_string());
            }
        }
        if !pax.is_empty() {
            let pax_name = format!("PaxHeaders/{}", basename(file.path));
            let pax_name = truncate(&pax_name, 100);
            let header = header(pax_name, "", 0o644, 0, 0, file.mtime, pax.len() as u64, b'x');
            out.extend_from_slice(&header);
            push_padded(&mut out, &pax);
        }
        let name = if name.len() > 100 { truncate(name, 100) } else { name };
        let (uid, gid) = (clamp_octal(file.uid, 8), clamp_octal(file.gid, 8));
        let size = file.content.len() as u64;
        let header = header(name, prefix, file.mode & 0o7777, uid, gid, file.mtime, size, b'0');
        out.extend_from_slice(&header);
        push_padded(&mut out, file.content);
    }
    out.extend_from_slice(&[0; 2 * BLOCK]);
    out
}

/// `(name, prefix)` for a ustar header, if `path` fits: the whole path in `name` (up to 100
/// bytes), or split at a `/` into `prefix` (up to 155) and `name` (up to 100).
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some((path, ""));
    }
    path.match_indices('/')
        .map(|(i, _)| (&path[i + 1..], &path[..i]))
        .find(|(name, prefix)| name.len() <= 100 && !name.is_empty() && prefix.len() <= 155)
}

#[allow(clippy::too_many_arguments)]
fn header(
    name: &str,
    prefix: &str,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    kind: u8,
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field as spaces, and written as six octal digits,
    // a NUL and a space.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// `value` as zero-padded octal digits filling `field` but its last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn fits_octal(value: u64, width: usize) -> bool {
    value < 1 << (3 * (width - 1))
}

fn clamp_octal(value: u64, width: usize) -> u64 {
    if fits_octal(value, width) { value } else { 0 }
}

/// A PAX record: `"<length> <key>=<value>\n"`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut length = rest + 1;
    while length != rest + length.to_string().len() {
        length = rest + length.to_string().len();
    }
    out.extend_from_slice(format!("{length} {key}={value}\n").as_bytes());
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rem = data.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(h: &[u8], range: std::ops::Range<usize>) -> String {
        String::from_utf8_lossy(&h[range]).trim_end_matches('\0').to_string()
    }

    fn checksum_ok(h: &[u8]) -> bool {
        let stored = u32::from_str_radix(field(h, 148..154).trim(), 8).unwrap();
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) })
            .sum();
        stored == sum
    }

    #[test]
    fn one_file_is_a_header_its_padded_content_and_two_zero_blocks() {
        let archive = tar(&[TarFile {
            path: "run/secrets/db",
            mode: 0o400,
            uid: 1000,
            gid: 1001,
            mtime: 1_700_000_000,
            content: b"s3cret",
        }]);
        assert_eq!(archive.len(), 4 * BLOCK);
        let h = &archive[..BLOCK];
        assert_eq!(field(h, 0..100), "run/secrets/db");
        assert_eq!(field(h, 100..108), "0000400");
        assert_eq!(field(h, 108..116), "0001750");
        assert_eq!(field(h, 116..124), "0001751");
        assert_eq!(field(h, 124..136), "00000000006");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(checksum_ok(h));
        assert_eq!(&archive[BLOCK..BLOCK + 6], b"s3cret");
        assert!(archive[BLOCK + 6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn long_paths_use_the_prefix_then_pax() {
        let dir = "d".repeat(120);
        let path = format!("{dir}/file.conf");
        let archive =
            tar(&[TarFile { path: &path, mode: 0o444, uid: 0, gid: 0, mtime: 0, content: b"" }]);
        let h = &archive[..BLOCK];
        assert_eq!(field(h, 0..100), "file.conf");
        assert_eq!(field(h, 345..500), dir);
        assert!(checksum_ok(h));

        let path = format!("{}/{}", "a".repeat(200), "b".repeat(120));
        let archive =
            tar(&[TarFile { path: &path, mode: 0o444, uid: 0, gid: 0, mtime: 0, content: b"x" }]);
        let pax = &archive[..BLOCK];
        assert_eq!(pax[156], b'x');
        assert!(checksum_ok(pax));
        let size = usize::from_str_radix(&field(pax, 124..135), 8).unwrap();
        let record = String::from_utf8(archive[BLOCK..BLOCK + size].to_vec()).unwrap();
        assert_eq!(record, format!("{} path={path}\n", record.len()));
        assert_eq!(archive[2 * BLOCK + 156], b'0');
    }

    #[test]
    fn large_ids_go_to_pax() {
        let archive = tar(&[TarFile {
            path: "f",
            mode: 0o444,
            uid: 3_000_000,
            gid: 5,
            mtime: 0,
            content: b"",
        }]);
        let record = String::from_utf8_lossy(&archive[BLOCK..2 * BLOCK]);
        assert!(record.starts_with("15 uid=3000000\n"), "{record}");
        assert_eq!(field(&archive[2 * BLOCK..3 * BLOCK], 116..124), "0000005");
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", "x");
        assert_eq!(out, b"9 path=x\n");
        let mut out = Vec::new();
        pax_record(&mut out, "path", &"y".repeat(91));
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 path="));
    }
}
