//! A fingerprint of the checkout's working tree, to tell whether a repair round changed anything.
//! It covers what `git status` reports against HEAD (respecting `.gitignore`, so build output does
//! not count) and the content of every file it lists, so a second edit of an already-changed file
//! is a change too.

use std::path::Path;
use std::time::Duration;

use crate::git::{self, Scratch};

const STATUS_TIMEOUT: Duration = Duration::from_secs(120);

/// Computes the fingerprint; `Err` when git cannot read the checkout.
pub async fn working_tree_fingerprint(checkout: &Path, scratch: &Scratch) -> Result<u64, String> {
    let status = git::run_git(
        checkout,
        scratch,
        None,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=no",
            "--no-renames",
        ],
        STATUS_TIMEOUT,
    )
    .await?;
    let mut hash = fnv1a(FNV_OFFSET, status.stdout.as_bytes());
    for entry in status.stdout.split('\0').filter(|entry| entry.len() > 3) {
        // A listed path that is gone (deleted) or a folder contributes its status line only.
        if let Ok(bytes) = tokio::fs::read(checkout.join(&entry[3..])).await {
            hash = fnv1a(hash, &[0]);
            hash = fnv1a(hash, &bytes);
        }
    }
    Ok(hash)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: fast, and collisions only matter if an agent could aim for one, which gains it nothing
/// (a "changed nothing" verdict only ends its own job).
fn fnv1a(start: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(start, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
