//! A fingerprint of the checkout's working tree, to tell whether a repair round changed anything.
//! It covers what `git status` reports against the base commit (respecting `.gitignore`, so build
//! output does not count) and the content of every file it lists, so a second edit of an
//! already-changed file is a change too.
//!
//! git runs with the harness's own clone as its git directory (ADR 4): the agent's `.git` (its
//! configuration, hooks, fsmonitor) is never read. Listed paths are never followed through a
//! symlink and only regular files are read, so a FIFO or a link to a file outside the checkout
//! cannot hang or leak into the harness.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::git::TrustedClone;

/// Computes the fingerprint; `Err` when git cannot read the checkout.
pub async fn working_tree_fingerprint(
    trusted: &TrustedClone,
    checkout: &Path,
) -> Result<u64, String> {
    let status = trusted.status_of(checkout).await?;
    let checkout: PathBuf = checkout.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hash = fnv1a(FNV_OFFSET, status.as_bytes());
        for entry in status.split('\0').filter(|entry| entry.len() > 3) {
            hash = fnv1a(hash, &[0]);
            hash = hash_listed_path(hash, &checkout.join(&entry[3..]));
        }
        hash
    })
    .await
    .map_err(|error| format!("fingerprint panicked: {error}"))
}

/// Folds one listed path into the hash: a symlink by its target text, a regular file by its content
/// (read without following a symlink put in its place), anything else (a deleted path, a folder, a
/// FIFO) by its status line only.
fn hash_listed_path(hash: u64, path: &Path) -> u64 {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return hash;
    };
    if metadata.file_type().is_symlink() {
        return match std::fs::read_link(path) {
            Ok(target) => fnv1a(hash, target.as_os_str().as_encoded_bytes()),
            Err(_) => hash,
        };
    }
    if !metadata.is_file() {
        return hash;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
    else {
        return hash;
    };
    let mut hash = hash;
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => return hash,
            Ok(read) => hash = fnv1a(hash, &buffer[..read]),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: fast, and collisions only matter if an agent could aim for one, which gains it nothing
/// (a "changed nothing" verdict only ends its own job).
fn fnv1a(start: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(start, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
