//! The harness's state directory:
//!
//! ```text
//! <state-dir>/harness.lock          held (flock) while a harness uses the directory
//! <state-dir>/jobs/<job-id>.json    each job's view (never a credential), rewritten as it changes
//! <state-dir>/jobs/<job-id>.transcript.jsonl   its transcript, one entry per line, only appended
//! <state-dir>/work/<job-id>/        checkout, scratch HOME and TMPDIR; removed when the job ends
//! <state-dir>/forge/pull-requests.json   the local forge's pull requests
//! ```
//!
//! Job records are what lets a restarted harness answer for the jobs it lost instead of forgetting
//! them.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use domain::harness::{LocalPullRequest, LocalPullRequestList};
use domain::job::{JobId, JobView, TranscriptEntry};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

/// What is persisted per job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub view: JobView,
    /// Kept in its own append-only file (records written before that held it here: still read).
    #[serde(default, skip_serializing)]
    pub transcript: Vec<TranscriptEntry>,
}

pub struct Store {
    root: PathBuf,
    /// Held for the store's lifetime; the OS releases the lock if the process dies.
    _lock: File,
    /// Serializes read-modify-write of the local forge's records.
    local_forge: tokio::sync::Mutex<()>,
}

/// Writes a file so that readers see the old or the new content, never half of one.
fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, content)?;
    std::fs::rename(&temporary, path)
}

impl Store {
    /// Opens (creating) the state directory and takes its lock. Everything in it is the harness's
    /// alone (0700); with job users, the root and `work/` are 0711 instead, so a job's user can pass
    /// through to its own folder without listing anyone else's.
    pub fn open(root: &Path, job_users: bool) -> io::Result<Store> {
        use std::os::unix::fs::PermissionsExt;
        let passable = if job_users { 0o711 } else { 0o700 };
        for (folder, mode) in [
            (root.to_owned(), passable),
            (root.join("jobs"), 0o700),
            (root.join("work"), passable),
            (root.join("forge"), 0o700),
        ] {
            std::fs::create_dir_all(&folder)?;
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode))?;
        }
        let lock = File::create(root.join("harness.lock"))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
            io::Error::other(format!(
                "another cat-harness is using the state directory {}; stop it or pass a \
                 different --state-dir",
                root.display()
            ))
        })?;
        // Work directories of a previous process belong to jobs that can no longer finish.
        if let Ok(entries) = std::fs::read_dir(root.join("work")) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(Store {
            root: root.to_owned(),
            _lock: lock,
            local_forge: tokio::sync::Mutex::new(()),
        })
    }

    pub fn work_dir(&self, id: &JobId) -> PathBuf {
        self.root.join("work").join(id.as_str())
    }

    fn job_path(&self, id: &JobId) -> PathBuf {
        self.root.join("jobs").join(format!("{id}.json"))
    }

    fn transcript_path(&self, id: &JobId) -> PathBuf {
        self.root
            .join("jobs")
            .join(format!("{id}.transcript.jsonl"))
    }

    /// Appends one (already redacted) entry to the job's transcript file: a step costs one line, not
    /// a rewrite of everything so far.
    pub fn append_transcript(&self, id: &JobId, entry: &TranscriptEntry) -> io::Result<()> {
        use std::io::Write;
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.transcript_path(id))?
            .write_all(&line)
    }

    /// The job's transcript from its file (a torn last line, from a crash mid-write, is skipped).
    pub fn load_transcript(&self, id: &JobId) -> Vec<TranscriptEntry> {
        let Ok(text) = std::fs::read_to_string(self.transcript_path(id)) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn save_job(&self, record: &JobRecord) -> io::Result<()> {
        let content = serde_json::to_vec(record).map_err(io::Error::other)?;
        write_atomically(&self.job_path(&record.view.id), &content)
    }

    /// Every readable job record; unreadable ones are logged and skipped.
    pub fn load_jobs(&self) -> Vec<JobRecord> {
        let Ok(entries) = std::fs::read_dir(self.root.join("jobs")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
            .filter_map(|entry| {
                let path = entry.path();
                match std::fs::read(&path)
                    .map_err(|error| error.to_string())
                    .and_then(|bytes| {
                        serde_json::from_slice::<JobRecord>(&bytes)
                            .map_err(|error| error.to_string())
                    }) {
                    Ok(record) => {
                        // A record from before transcripts had their own file: move its
                        // transcript there, so it is served from disk like every other.
                        if !record.transcript.is_empty()
                            && !self.transcript_path(&record.view.id).exists()
                        {
                            for entry in &record.transcript {
                                let _ = self.append_transcript(&record.view.id, entry);
                            }
                        }
                        Some(record)
                    }
                    Err(problem) => {
                        tracing::warn!(path = %path.display(), %problem, "skipping unreadable job record");
                        None
                    }
                }
            })
            .collect()
    }

    fn local_pull_requests_path(&self) -> PathBuf {
        self.root.join("forge").join("pull-requests.json")
    }

    fn read_local_pull_requests(&self) -> io::Result<LocalPullRequestList> {
        match std::fs::read(self.local_pull_requests_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Ok(LocalPullRequestList::default())
            }
            Err(error) => Err(error),
        }
    }

    pub async fn list_local_pull_requests(&self) -> io::Result<LocalPullRequestList> {
        let _guard = self.local_forge.lock().await;
        self.read_local_pull_requests()
    }

    /// Records a pull request; the same branch of the same repository updates its existing record
    /// (keeping its number) rather than opening a second one.
    pub async fn upsert_local_pull_request(
        &self,
        mut record: LocalPullRequest,
    ) -> io::Result<LocalPullRequest> {
        let _guard = self.local_forge.lock().await;
        let mut list = self.read_local_pull_requests()?;
        let existing = list
            .pull_requests
            .iter_mut()
            .find(|pr| pr.repository == record.repository && pr.branch == record.branch);
        let saved = match existing {
            Some(existing) => {
                record.number = existing.number;
                record.created_at_ms = existing.created_at_ms;
                *existing = record.clone();
                record
            }
            None => {
                record.number = list
                    .pull_requests
                    .iter()
                    .map(|pr| pr.number)
                    .max()
                    .unwrap_or(0)
                    + 1;
                list.pull_requests.push(record.clone());
                record
            }
        };
        let content = serde_json::to_vec_pretty(&list).map_err(io::Error::other)?;
        write_atomically(&self.local_pull_requests_path(), &content)?;
        Ok(saved)
    }
}
