//! Job isolation (ADR 4): who a job's commands run as, and how every process a job started is found
//! and killed, including the ones that left their process group and session.
//!
//! Two modes:
//! - **Job users** (the harness is root and was given a pool, `HARNESS_JOB_USERS=cat-job-`): each
//!   running job leases an unprivileged user of its own; its commands run as that user, its folder
//!   belongs to it, and "every process of the job" is "every process of that user", which no process
//!   of the job can leave (it cannot change user). The harness's own git (with the forge token) runs
//!   as the harness, whose `/proc/<pid>/environ` another user cannot read.
//! - **Shared user** (no pool, or not root): commands run as the harness's user. The harness is a
//!   child subreaper, so a process that daemonizes is re-parented to the harness instead of init,
//!   and "every process of the job" is every descendant of the harness that no running command owns.
//!   Jobs of different repositories are refused while one runs (they could read each other).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

/// An unprivileged user a job's commands run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Parses `/etc/passwd` text for the users whose name starts with `prefix`, in uid order. Users with
/// uid 0 are never taken, whatever their name.
pub fn job_users_from_passwd(passwd: &str, prefix: &str) -> Vec<JobUser> {
    let mut users: Vec<JobUser> = passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (name.starts_with(prefix) && uid != 0 && gid != 0).then(|| JobUser {
                name: name.to_owned(),
                uid,
                gid,
            })
        })
        .collect();
    users.sort_by_key(|user| user.uid);
    users
}

/// The job users this harness hands out, one per running job.
#[derive(Debug)]
pub struct UserPool {
    free: Mutex<Vec<JobUser>>,
    available: tokio::sync::Semaphore,
}

impl UserPool {
    /// The pool of `users`. Whatever runs as one of them belongs to a previous harness's job (one
    /// killed before it could clean up), so it is killed now.
    pub fn new(users: Vec<JobUser>) -> Arc<Self> {
        for user in &users {
            kill_user_processes_now(user.uid);
        }
        Arc::new(UserPool {
            available: tokio::sync::Semaphore::new(users.len()),
            free: Mutex::new(users),
        })
    }

    /// Waits for a free user. Whatever a previous job of that user left running is killed first.
    pub async fn lease(self: &Arc<Self>) -> UserLease {
        let permit = self
            .available
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        permit.forget();
        let user = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
            .expect("a permit means a free user");
        kill_user_processes(user.uid).await;
        UserLease {
            user,
            pool: self.clone(),
        }
    }
}

/// A job's user, returned to the pool (after its processes are killed) when dropped.
#[derive(Debug)]
pub struct UserLease {
    pub user: JobUser,
    pool: Arc<UserPool>,
}

impl Drop for UserLease {
    fn drop(&mut self) {
        kill_user_processes_now(self.user.uid);
        self.pool
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(self.user.clone());
        self.pool.available.add_permits(1);
    }
}

/// How a job's processes are contained: as its own user, or as the harness's.
#[derive(Debug)]
pub struct Sandbox {
    lease: Option<UserLease>,
    /// Time spent killing the job's processes after its commands, for the isolation cost.
    sweeping_nanos: std::sync::atomic::AtomicU64,
}

impl Sandbox {
    pub fn as_job_user(lease: UserLease) -> Arc<Self> {
        Arc::new(Sandbox {
            lease: Some(lease),
            sweeping_nanos: Default::default(),
        })
    }

    pub fn shared_user() -> Arc<Self> {
        Arc::new(Sandbox {
            lease: None,
            sweeping_nanos: Default::default(),
        })
    }

    /// The user commands run as, if not the harness's.
    pub fn user(&self) -> Option<&JobUser> {
        self.lease.as_ref().map(|lease| &lease.user)
    }

    /// Kills every process of the job that is still alive and reaps the ones the harness adopted.
    /// Called after every command, before the harness commits and pushes, and when the job ends.
    pub async fn kill_everything(&self) {
        let started = Instant::now();
        match self.user() {
            Some(user) => kill_user_processes(user.uid).await,
            None => kill_orphaned_descendants().await,
        }
        self.sweeping_nanos.fetch_add(
            started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long [`Sandbox::kill_everything`] has taken in total.
    pub fn time_spent_sweeping(&self) -> Duration {
        Duration::from_nanos(
            self.sweeping_nanos
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

impl Drop for Sandbox {
    /// In the shared-user mode, whatever escaped the job's commands dies with the job (in the
    /// job-user mode the lease does this when it returns the user).
    fn drop(&mut self) {
        if self.lease.is_none() {
            let started = Instant::now();
            while kill_orphaned_descendants_once() > 0 && started.elapsed() < KILL_DEADLINE {
                reap_adopted_orphans();
                std::thread::sleep(Duration::from_millis(5));
            }
            reap_adopted_orphans();
        }
    }
}

/// Makes the harness the reaper of every process its children orphan (`PR_SET_CHILD_SUBREAPER`), so a
/// daemonizing command stays under the harness where it can be found.
pub fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(std::io::Error::from)
}

// ---- processes the harness spawned itself ------------------------------------------------------

/// The children `command::run` spawned and still waits for. Every other child of the harness is an
/// adopted orphan, which the harness may kill and reap; these it must leave to tokio. Spawning and
/// reaping both hold this lock, so an orphan sweep never reaps a child tokio is about to wait for.
static SPAWNED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn spawned() -> std::sync::MutexGuard<'static, Option<HashSet<i32>>> {
    SPAWNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `spawn` and records the child's pid as the harness's own, atomically with respect to sweeps.
pub fn spawn_tracked<T>(
    spawn: impl FnOnce() -> std::io::Result<(T, Option<u32>)>,
) -> std::io::Result<T> {
    let mut tracked = spawned();
    let (child, pid) = spawn()?;
    if let Some(pid) = pid {
        tracked.get_or_insert_with(HashSet::new).insert(pid as i32);
    }
    Ok(child)
}

/// Forgets a child once tokio has waited for it (or given it up).
pub fn untrack(pid: u32) {
    if let Some(tracked) = spawned().as_mut() {
        tracked.remove(&(pid as i32));
    }
}

// ---- /proc ---------------------------------------------------------------------------------------

struct ProcessInfo {
    pid: i32,
    parent: i32,
    zombie: bool,
    /// Real, effective, saved and file-system uid.
    uids: [u32; 4],
}

fn read_process(pid: i32) -> Option<ProcessInfo> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut parent = None;
    let mut zombie = false;
    let mut uids = None;
    for line in status.lines() {
        if let Some(state) = line.strip_prefix("State:") {
            let state = state.trim_start();
            zombie = state.starts_with('Z') || state.starts_with('X');
        } else if let Some(value) = line.strip_prefix("PPid:") {
            parent = value.trim().parse().ok();
        } else if let Some(values) = line.strip_prefix("Uid:") {
            let parsed: Vec<u32> = values
                .split_whitespace()
                .filter_map(|value| value.parse().ok())
                .collect();
            if let [real, effective, saved, filesystem] = parsed[..] {
                uids = Some([real, effective, saved, filesystem]);
            }
        }
    }
    Some(ProcessInfo {
        pid,
        parent: parent?,
        zombie,
        uids: uids?,
    })
}

fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_process)
        .collect()
}

fn kill(pid: i32) {
    if let Some(pid) = Pid::from_raw(pid) {
        // ESRCH: it died meanwhile, which is what we want.
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Reaps every zombie child of the harness that `command::run` does not wait for (orphans the
/// harness adopted as subreaper). Without this they would stay in the process table forever.
pub fn reap_adopted_orphans() {
    let tracked = spawned();
    let own = rustix::process::getpid().as_raw_nonzero().get();
    for process in all_processes() {
        if process.parent == own
            && process.zombie
            && !tracked
                .as_ref()
                .is_some_and(|tracked| tracked.contains(&process.pid))
            && let Some(pid) = Pid::from_raw(process.pid)
        {
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

/// How long a kill sweep keeps at it before giving up on a process that will not die (one stuck in
/// the kernel); the next sweep tries again.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// Kills every process whose real, effective or saved uid is `uid`, over and over until none is
/// left (a fork bomb can add processes between two passes), then reaps the adopted ones.
async fn kill_user_processes(uid: u32) {
    let started = Instant::now();
    loop {
        let alive = kill_user_processes_once(uid);
        reap_adopted_orphans();
        if alive == 0 || started.elapsed() > KILL_DEADLINE {
            if alive > 0 {
                tracing::warn!(uid, alive, "processes of a job user would not die");
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The same, blocking, for `Drop`.
fn kill_user_processes_now(uid: u32) {
    let started = Instant::now();
    while kill_user_processes_once(uid) > 0 && started.elapsed() < KILL_DEADLINE {
        reap_adopted_orphans();
        std::thread::sleep(Duration::from_millis(5));
    }
    reap_adopted_orphans();
}

/// One pass: SIGKILL to every live process of `uid`; returns how many there were.
fn kill_user_processes_once(uid: u32) -> usize {
    let targets: Vec<i32> = all_processes()
        .into_iter()
        .filter(|process| !process.zombie && process.uids[..3].contains(&uid))
        .map(|process| process.pid)
        .collect();
    for pid in &targets {
        kill(*pid);
    }
    targets.len()
}

/// Kills every descendant of the harness that is not (under) a child `command::run` is waiting for:
/// in the shared-user mode that is exactly what escaped a command (daemons re-parented to the
/// harness, and whatever they started).
async fn kill_orphaned_descendants() {
    let started = Instant::now();
    loop {
        let killed = kill_orphaned_descendants_once();
        reap_adopted_orphans();
        if killed == 0 || started.elapsed() > KILL_DEADLINE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn kill_orphaned_descendants_once() -> usize {
    let own = rustix::process::getpid().as_raw_nonzero().get();
    // Held through the kill, so a command spawned meanwhile is never mistaken for an orphan.
    let tracked_guard = spawned();
    let tracked: &HashSet<i32> = match tracked_guard.as_ref() {
        Some(tracked) => tracked,
        None => &HashSet::new(),
    };
    let processes = all_processes();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut zombies = HashSet::new();
    for process in &processes {
        children
            .entry(process.parent)
            .or_default()
            .push(process.pid);
        if process.zombie {
            zombies.insert(process.pid);
        }
    }
    // The roots are the harness's untracked children; everything under them goes.
    let mut pending: Vec<i32> = children
        .get(&own)
        .into_iter()
        .flatten()
        .copied()
        .filter(|pid| !tracked.contains(pid))
        .collect();
    let mut killed = 0;
    while let Some(pid) = pending.pop() {
        if !zombies.contains(&pid) {
            kill(pid);
            killed += 1;
        }
        pending.extend(children.get(&pid).into_iter().flatten().copied());
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_users_are_the_prefixed_non_root_entries_in_uid_order() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      cat-job-2:x:20002:20002::/nonexistent:/usr/sbin/nologin\n\
                      cat-job-1:x:20001:20001::/nonexistent:/usr/sbin/nologin\n\
                      cat-job-evil:x:0:0::/:/bin/sh\n\
                      cat:x:10001:10001::/home/cat:/usr/sbin/nologin\n\
                      broken line\n";
        let users = job_users_from_passwd(passwd, "cat-job-");
        assert_eq!(
            users,
            vec![
                JobUser {
                    name: "cat-job-1".to_owned(),
                    uid: 20001,
                    gid: 20001
                },
                JobUser {
                    name: "cat-job-2".to_owned(),
                    uid: 20002,
                    gid: 20002
                },
            ]
        );
    }
}
