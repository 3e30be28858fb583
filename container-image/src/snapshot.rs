//! Copies the agent's work tree into a fresh tree the harness owns, for the commit (ADR 4). Only what
//! git can store safely crosses: regular files (content and the executable bit) and symlinks (as
//! links, never followed). Nothing is read through a symlinked directory, nothing named `.git` is
//! copied, and files that are not the job's own (hard links to other files, other owners, FIFOs,
//! sockets, devices) are left out. By the time this runs every process of the job is dead, so the
//! tree cannot change underneath it; the checks hold anyway.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// What the copy left out, by path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Regular files over the size limit (the forge would refuse them; the job is refused).
    pub too_large: Vec<String>,
    /// Entries git cannot or must not store: special files, hard links, files of another owner.
    pub left_out: Vec<String>,
}

/// The rules for one copy.
pub struct SnapshotRules {
    pub max_file_bytes: u64,
    /// In the job-user mode: the only owner whose files are copied.
    pub owner_uid: Option<u32>,
}

fn open_directory_beneath(root: &OwnedFd, relative: &str) -> io::Result<Option<OwnedFd>> {
    if relative.is_empty() {
        return rustix::fs::openat(
            root,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(Some)
        .map_err(io::Error::from);
    }
    match rustix::fs::openat2(
        root,
        relative,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(directory) => Ok(Some(directory)),
        // Missing, not a directory, or reached through a symlink: then the path is not in the
        // tree as git sees it (git does not look through symlinked directories either).
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            Ok(None)
        }
        Err(rustix::io::Errno::XDEV) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A path from `git ls-files` that is safe to join: relative, no empty, `.`, `..` or `.git` part.
fn acceptable(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && path.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.eq_ignore_ascii_case(".git")
        })
}

/// Creates `destination/relative_dir` and its parents, refusing to pass through anything that is not
/// a real directory (the destination is the harness's, but a symlink made for one path must never
/// lead another path's files out of it).
fn create_directories(
    destination: &Path,
    relative_dir: &str,
    made: &mut HashSet<String>,
) -> io::Result<PathBuf> {
    let mut current = destination.to_owned();
    let mut so_far = String::new();
    for part in relative_dir.split('/').filter(|part| !part.is_empty()) {
        current.push(part);
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        if made.contains(&so_far) {
            continue;
        }
        match std::fs::symlink_metadata(&current) {
            Ok(found) if found.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{so_far} is not a directory in the copy"
                )));
            }
            Err(_) => std::fs::create_dir(&current)?,
        }
        made.insert(so_far.clone());
    }
    Ok(current)
}

/// Copies `paths` (relative, from `git ls-files`) from `source` into the empty folder `destination`.
/// A path missing from `source` is simply not copied (the commit deletes it).
pub fn copy_work_tree(
    source: &Path,
    paths: &[String],
    destination: &Path,
    rules: &SnapshotRules,
) -> io::Result<SnapshotReport> {
    let root: OwnedFd = rustix::fs::open(
        source,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    let mut report = SnapshotReport::default();
    let mut made = HashSet::new();
    for path in paths {
        if !acceptable(path) {
            report.left_out.push(path.clone());
            continue;
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(parent_directory) = open_directory_beneath(&root, parent)? else {
            continue;
        };
        let stat = match rustix::fs::statat(&parent_directory, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(error) => return Err(error.into()),
        };
        let foreign_owner = rules.owner_uid.is_some_and(|uid| stat.st_uid != uid);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {
                if stat.st_size as u64 > rules.max_file_bytes {
                    report.too_large.push(path.clone());
                    continue;
                }
                if stat.st_nlink > 1 || foreign_owner {
                    report.left_out.push(path.clone());
                    continue;
                }
                let opened = rustix::fs::openat(
                    &parent_directory,
                    name,
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                    Mode::empty(),
                )?;
                // The same checks on what was opened, in case the entry changed since the stat.
                let opened_stat = rustix::fs::fstat(&opened)?;
                if FileType::from_raw_mode(opened_stat.st_mode) != FileType::RegularFile
                    || opened_stat.st_nlink > 1
                    || opened_stat.st_size as u64 > rules.max_file_bytes
                {
                    report.left_out.push(path.clone());
                    continue;
                }
                let executable = opened_stat.st_mode & 0o111 != 0;
                let target_directory = create_directories(destination, parent, &mut made)?;
                let mut input = File::from(opened);
                let mut output = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(target_directory.join(name))?;
                // Never more than the size checked above, whatever the file does meanwhile.
                io::copy(
                    &mut io::Read::take(&mut input, rules.max_file_bytes),
                    &mut output,
                )?;
                output.set_permissions(std::fs::Permissions::from_mode(if executable {
                    0o755
                } else {
                    0o644
                }))?;
            }
            FileType::Symlink => {
                if foreign_owner {
                    report.left_out.push(path.clone());
                    continue;
                }
                let target = rustix::fs::readlinkat(&parent_directory, name, Vec::new())?;
                let target_directory = create_directories(destination, parent, &mut made)?;
                std::os::unix::fs::symlink(
                    OsStr::from_bytes(target.as_bytes()),
                    target_directory.join(name),
                )?;
            }
            // A nested repository or a directory where the base had a file: nothing to copy.
            FileType::Directory => {}
            _ => report.left_out.push(path.clone()),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SnapshotRules {
        SnapshotRules {
            max_file_bytes: 1024,
            owner_uid: None,
        }
    }

    #[test]
    fn regular_files_and_symlinks_cross_and_nothing_is_read_through_a_symlinked_directory() {
        let temp = tempfile::tempdir().unwrap();
        let source = temp.path().join("source");
        let destination = temp.path().join("destination");
        let outside = temp.path().join("outside");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&destination).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::fs::write(source.join("src/lib.rs"), "fn main() {}").unwrap();
        std::fs::write(source.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            source.join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("src/lib.rs", source.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, source.join("escape")).unwrap();
        std::fs::write(source.join("big.bin"), vec![b'x'; 2048]).unwrap();
        std::fs::hard_link(outside.join("secret.txt"), source.join("hard.txt")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            source.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let paths: Vec<String> = [
            "big.bin",
            "escape",
            "escape/secret.txt",
            "hard.txt",
            "link",
            "missing.txt",
            "pipe",
            "run.sh",
            "src/lib.rs",
            ".git/config",
            "../outside/secret.txt",
        ]
        .iter()
        .map(|path| (*path).to_owned())
        .collect();

        let report = copy_work_tree(&source, &paths, &destination, &rules()).unwrap();

        assert_eq!(report.too_large, ["big.bin"]);
        assert_eq!(
            report.left_out,
            ["hard.txt", "pipe", ".git/config", "../outside/secret.txt"]
        );
        assert_eq!(
            std::fs::read_to_string(destination.join("src/lib.rs")).unwrap(),
            "fn main() {}"
        );
        let mode = std::fs::metadata(destination.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(destination.join("link")).unwrap(),
            Path::new("src/lib.rs")
        );
        assert_eq!(
            std::fs::read_link(destination.join("escape")).unwrap(),
            outside
        );
        let mut copied: Vec<String> = std::fs::read_dir(&destination)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        copied.sort();
        assert_eq!(copied, ["escape", "link", "run.sh", "src"]);
    }
}
