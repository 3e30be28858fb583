//! The jobs this harness knows: running ones with a task each, finished ones from this process or a
//! previous one (read back from the state directory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::harness::Redactor;
use domain::job::{
    FailureKind, Job, JobFailure, JobId, JobPhase, JobState, JobView, Transcript, TranscriptEntry,
    truthful_failure,
};
use tokio::sync::watch;

use crate::isolation::UserPool;
use crate::now_ms;
use crate::pipeline;
use crate::store::{JobRecord, Store};

/// How often a running job's heartbeat advances.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long `DELETE` and shutdown wait for a job's task to wind down before answering anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    HarnessShutdown,
}

/// A job's shared state: the pipeline writes it, the HTTP handlers read it.
pub struct JobHandle {
    pub id: JobId,
    record: Mutex<JobRecord>,
    /// Held while a snapshot is written, so records land on disk in the order they were taken.
    persist_lock: Mutex<()>,
    store: Arc<Store>,
    stop: watch::Sender<Option<StopReason>>,
    ended: watch::Sender<bool>,
    pub redactor: Redactor,
    /// The clone URL of a job this process runs (`None` for records of a previous process).
    repository: Option<String>,
    /// Set once the job has ended: its transcript is then read from the state dir when asked for,
    /// not kept in memory for the harness's lifetime.
    transcript_on_disk: std::sync::atomic::AtomicBool,
}

impl JobHandle {
    fn new(record: JobRecord, store: Arc<Store>, redactor: Redactor) -> Self {
        let already_ended = record.view.state != JobState::Running;
        JobHandle {
            repository: None,
            transcript_on_disk: std::sync::atomic::AtomicBool::new(false),
            id: record.view.id.clone(),
            record: Mutex::new(record),
            persist_lock: Mutex::new(()),
            store,
            stop: watch::channel(None).0,
            ended: watch::channel(already_ended).0,
            redactor,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobRecord> {
        // A panic while holding the lock leaves plain data behind; reading it is still fine.
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn view(&self) -> JobView {
        self.lock().view.clone()
    }

    pub fn transcript(&self) -> Transcript {
        let entries = if self
            .transcript_on_disk
            .load(std::sync::atomic::Ordering::Acquire)
        {
            self.store.load_transcript(&self.id)
        } else {
            self.lock().transcript.clone()
        };
        Transcript {
            job_id: self.id.clone(),
            entries,
        }
    }

    /// Drops the in-memory transcript of an ended job (the state dir has every entry).
    fn release_transcript(&self) {
        self.transcript_on_disk
            .store(true, std::sync::atomic::Ordering::Release);
        self.lock().transcript = Vec::new();
    }

    /// Changes the record and writes it to the state directory.
    pub fn update(&self, change: impl FnOnce(&mut JobRecord)) {
        {
            let mut record = self.lock();
            change(&mut record);
            record.view.heartbeat_at_ms = now_ms().max(record.view.heartbeat_at_ms);
        }
        self.persist();
    }

    pub fn set_phase(&self, phase: JobPhase) {
        self.update(|record| record.view.phase = phase);
    }

    /// Adds a transcript entry, redacted here so nothing unredacted is ever stored.
    pub fn append_transcript(&self, entry: TranscriptEntry) {
        let entry = redact_entry(&self.redactor, entry);
        if let Err(error) = self.store.append_transcript(&self.id, &entry) {
            tracing::error!(job = %self.id, %error, "cannot append to the transcript");
        }
        self.update(|record| record.transcript.push(entry));
    }

    fn persist(&self) {
        let _order = self
            .persist_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let snapshot = self.lock().clone();
        if let Err(error) = self.store.save_job(&snapshot) {
            tracing::error!(job = %self.id, %error, "cannot persist the job record");
        }
    }

    /// Moves the heartbeat without writing the record (a streamed answer calls this per chunk).
    pub fn touch_heartbeat(&self) {
        let mut record = self.lock();
        record.view.heartbeat_at_ms = now_ms();
    }

    /// Asks the job to stop and waits (bounded) until its task has ended.
    async fn stop_and_wait(&self, reason: StopReason) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
        let mut ended = self.ended.subscribe();
        let _ = tokio::time::timeout(STOP_GRACE, ended.wait_for(|ended| *ended)).await;
    }
}

fn redact_entry(redactor: &Redactor, entry: TranscriptEntry) -> TranscriptEntry {
    match entry {
        TranscriptEntry::ModelReply {
            step,
            text,
            tool_calls,
        } => TranscriptEntry::ModelReply {
            step,
            text: text.map(|text| redactor.redact(&text)),
            tool_calls: tool_calls
                .into_iter()
                .map(|mut call| {
                    call.arguments = redactor.redact_json(&call.arguments);
                    call
                })
                .collect(),
        },
        TranscriptEntry::ToolResult {
            step,
            call_id,
            name,
            output,
            is_error,
        } => TranscriptEntry::ToolResult {
            step,
            call_id,
            name,
            output: redactor.redact(&output),
            is_error,
        },
        TranscriptEntry::HarnessNote { step, text } => TranscriptEntry::HarnessNote {
            step,
            text: redactor.redact(&text),
        },
    }
}

/// What every job's pipeline shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<Store>,
    pub http: reqwest::Client,
    /// Redacted from every job's output too, in case an agent ever finds it.
    pub harness_secret: Option<String>,
    /// The runner's toolchain variables (`domain::toolchain_env`), resolved once at start and given
    /// to every agent and validation command.
    pub toolchain_environment: Arc<Vec<(String, String)>>,
    /// The job users (ADR 4); `None` in the shared-user mode, where jobs of different repositories
    /// never run at once.
    pub job_users: Option<Arc<UserPool>>,
}

pub struct JobRegistry {
    shared: Shared,
    jobs: Mutex<HashMap<JobId, Arc<JobHandle>>>,
}

impl JobRegistry {
    /// Loads the records in the state directory. A job recorded as running belongs to a harness
    /// process that is gone, so it is failed with `harness_shutdown` (never left unknown).
    pub fn open(shared: Shared) -> Self {
        let mut jobs = HashMap::new();
        for mut record in shared.store.load_jobs() {
            if record.view.state == JobState::Running {
                record.view.fail(
                    FailureKind::HarnessShutdown,
                    format!(
                        "the harness stopped while this job was in phase {:?}; dispatch it again",
                        record.view.phase
                    ),
                    now_ms(),
                );
                if let Err(error) = shared.store.save_job(&record) {
                    tracing::error!(job = %record.view.id, %error, "cannot persist the job record");
                }
                tracing::info!(job = %record.view.id, "marked a job lost in a restart as failed");
            }
            let handle = JobHandle::new(record, shared.store.clone(), Redactor::default());
            handle.release_transcript();
            jobs.insert(handle.id.clone(), Arc::new(handle));
        }
        JobRegistry {
            shared,
            jobs: Mutex::new(jobs),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<JobHandle>>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, id: &JobId) -> Option<Arc<JobHandle>> {
        self.jobs().get(id).cloned()
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Starts the job, or returns the existing one with the same id (a replayed dispatch attaches to
    /// the job it already started). The flag says whether this call started it. Without job users,
    /// a job of another repository than a running one is refused: both would run as the harness's
    /// user and could read each other's checkouts.
    pub fn submit(&self, job: Job) -> Result<(JobView, bool), String> {
        let mut jobs = self.jobs();
        if let Some(existing) = jobs.get(&job.id) {
            return Ok((existing.view(), false));
        }
        if self.shared.job_users.is_none()
            && let Some(other) = jobs.values().find(|running| {
                running.view().state == JobState::Running
                    && running
                        .repository
                        .as_deref()
                        .is_some_and(|repository| repository != job.repo.clone_url.as_str())
            })
        {
            return Err(format!(
                "job {} of another repository is running, and this harness has no job users to \
                 keep the two apart (HARNESS_JOB_USERS, as root); dispatch again when it ends",
                other.id
            ));
        }
        let mut secrets = job.secrets();
        secrets.extend(self.shared.harness_secret.clone());
        let redactor = Redactor::new(secrets);
        let record = JobRecord {
            view: JobView::accepted(&job, now_ms()),
            transcript: Vec::new(),
        };
        let mut handle = JobHandle::new(record, self.shared.store.clone(), redactor);
        handle.repository = Some(job.repo.clone_url.as_str().to_owned());
        let handle = Arc::new(handle);
        handle.persist();
        jobs.insert(job.id.clone(), handle.clone());
        let view = handle.view();
        tokio::spawn(drive(handle, job, self.shared.clone()));
        Ok((view, true))
    }

    /// Aborts a job and answers with the state it reached.
    pub async fn cancel(&self, id: &JobId) -> Option<JobView> {
        let handle = self.get(id)?;
        if handle.view().state == JobState::Running {
            handle.stop_and_wait(StopReason::Cancelled).await;
        }
        Some(handle.view())
    }

    /// Stops every running job as `harness_shutdown`, for a graceful exit.
    pub async fn shutdown(&self) {
        let running: Vec<Arc<JobHandle>> = self
            .jobs()
            .values()
            .filter(|handle| handle.view().state == JobState::Running)
            .cloned()
            .collect();
        for handle in &running {
            handle.stop_and_wait(StopReason::HarnessShutdown).await;
        }
    }
}

async fn wait_for_stop(mut stop: watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn beat(handle: &JobHandle) {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        ticker.tick().await;
        handle.touch_heartbeat();
    }
}

/// Runs one job to its end. Whatever ends it (the pipeline, a stop request, the wall-clock limit),
/// the pipeline's future is dropped before the ending is recorded, which kills every process it
/// started, so a job reported as ended has nothing left running.
async fn drive(handle: Arc<JobHandle>, job: Job, shared: Shared) {
    let wall_limit = Duration::from_secs(job.limits.max_wall_seconds);
    let work_dir = shared.store.work_dir(&job.id);
    tracing::info!(job = %job.id, mode = ?job.mode, "job started");
    let outcome: Result<domain::job::JobResult, JobFailure> = tokio::select! {
        // Biased, stop first: once a stop is requested the pipeline is never polled again, so a
        // DELETE cannot race it into starting a push.
        biased;
        reason = wait_for_stop(handle.stop.subscribe()) => {
            let phase = handle.view().phase;
            Err(match reason {
                StopReason::Cancelled => JobFailure {
                    kind: FailureKind::Cancelled,
                    detail: format!("aborted by DELETE /jobs/{} during phase {phase:?}", job.id),
                },
                StopReason::HarnessShutdown => JobFailure {
                    kind: FailureKind::HarnessShutdown,
                    detail: format!("the harness shut down during phase {phase:?}"),
                },
            })
        }
        () = tokio::time::sleep(wall_limit) => Err(JobFailure {
            kind: FailureKind::Timeout,
            detail: format!("the job ran past its limit of {} s (limits.maxWallSeconds)", wall_limit.as_secs()),
        }),
        outcome = pipeline::run(&job, &handle, &shared) => outcome,
        () = beat(&handle) => unreachable!("the heartbeat never ends"),
    };
    // The work folder goes first: a job is reported ended only once nothing of it is left on disk
    // (or the view says the cleanup is pending), so a harness stopped right after a job ends leaves
    // nothing behind.
    let cleanup_pending = match remove_work_dir(&work_dir).await {
        Ok(()) => false,
        Err(error) => {
            tracing::error!(job = %job.id, %error, path = %work_dir.display(), "cannot remove the job's work folder; the next start removes it");
            true
        }
    };
    let now = now_ms();
    match outcome {
        Ok(result) => handle.update(|record| {
            record.view.cleanup_pending = cleanup_pending;
            record.view.succeed(result, now)
        }),
        Err(failure) => {
            let failure = truthful_failure(failure, &handle.view().guard_rail_refusals);
            let detail = handle.redactor.redact(&failure.detail);
            tracing::warn!(job = %job.id, kind = failure.kind.name(), %detail, "job failed");
            handle.update(|record| {
                record.view.cleanup_pending = cleanup_pending;
                record.view.fail(failure.kind, detail, now)
            });
        }
    }
    tracing::info!(job = %job.id, state = ?handle.view().state, "job ended");
    // The work folder is already gone (above); the transcript is on disk, one line per entry.
    handle.release_transcript();
    handle.ended.send_replace(true);
}

/// Removes a job's work folder, trying a few times: a process that is still being reaped can hold
/// a file open for a moment. A folder that is already gone is fine.
async fn remove_work_dir(work_dir: &std::path::Path) -> std::io::Result<()> {
    let mut last_error = None;
    for attempt in 0..3u64 {
        match tokio::fs::remove_dir_all(work_dir).await {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("cannot remove the work folder")))
}
