//! Child processes that cannot outlive the test binary.
//!
//! Each child is started as the leader of a new process group, so killing the group also kills what it
//! spawned (wrangler starts workerd; chromedriver starts Chromium). The group is killed when the
//! [`ManagedProcess`] is dropped and, for fixtures kept in statics (which Rust never drops), by an
//! `atexit` hook that runs when the test harness exits.

#![allow(unsafe_code)] // libc calls: kill(2), prctl(2), atexit(3); each is commented where it is used.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static LEFTOVER_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static REGISTER_EXIT_HOOK: Once = Once::new();

/// A running child process group, killed on drop.
pub struct ManagedProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ManagedProcess {
    /// Spawns `command` with stdout and stderr appended to `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> ManagedProcess {
        REGISTER_EXIT_HOOK.call_once(|| {
            // SAFETY: `kill_everything_at_exit` is an `extern "C" fn()` that only touches statics.
            unsafe { libc::atexit(kill_everything_at_exit) };
            stop_children_when_a_panic_aborts();
        });
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", log_path.display()));
        let log_for_stderr = log.try_clone().expect("a log file handle can be cloned");
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; it asks the kernel to kill the child
        // if the test binary dies without running its exit hooks (a SIGKILL, say).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(child.id() as i32);
        ManagedProcess {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (a child that exited is reaped here).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the process wrote, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Terminates the whole group: SIGTERM, a grace period, then SIGKILL.
    pub fn stop(&mut self) {
        let group = self.child.id() as i32;
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Children of the leader (workerd, Chromium) may outlive it; the group kill reaches them.
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|&live| live != group);
    }
}

impl ManagedProcess {
    /// Kills the whole group at once with SIGKILL, as a crash or an out-of-memory kill would: no
    /// grace period, no shutdown handler runs.
    pub fn kill(&mut self) {
        let group = self.child.id() as i32;
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|&live| live != group);
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILLs every process whose command line contains `needle` (for children that left the process
/// group they were started in).
pub fn kill_processes_mentioning(needle: &str) {
    if needle.is_empty() {
        return;
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(command_line) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&command_line).contains(needle) {
            // SAFETY: kill(2) on a pid we just read from /proc; at worst it is already gone (ESRCH).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Removes `dir` when the test binary exits (for fixtures that live in statics).
pub fn remove_at_exit(dir: PathBuf) {
    LEFTOVER_DIRS
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .push(dir);
}

/// A binary built with `panic = "abort"` (the release profile: the benchmarks) runs neither
/// destructors nor `atexit` hooks when it panics, and workerd, a grandchild, does not die with
/// wrangler: a failing benchmark would leave its servers running. A panic hook stops them before the
/// abort. Test binaries unwind instead (their `Drop`s run), and must not: one failing test would stop
/// the server its neighbours share.
fn stop_children_when_a_panic_aborts() {
    if cfg!(panic = "abort") {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            kill_everything_at_exit();
        }));
    }
}

fn signal_group(group: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; we only pass groups we created.
    unsafe {
        libc::kill(-group, signal);
    }
}

extern "C" fn kill_everything_at_exit() {
    let groups = std::mem::take(
        &mut *LIVE_GROUPS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    );
    for group in &groups {
        signal_group(*group, libc::SIGTERM);
    }
    if !groups.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
    for group in groups {
        signal_group(group, libc::SIGKILL);
    }
    let dirs = std::mem::take(
        &mut *LEFTOVER_DIRS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
