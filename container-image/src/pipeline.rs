//! One job from start to end: clone → agent → validation (with repair rounds) → guard-rail checks →
//! commit → push `cat/<block>` → pull request. Each stage maps its errors to a [`FailureKind`] with a
//! detail a person can act on. Nothing is pushed unless validation is green and the diff passes the
//! guard rails.

use std::time::Duration;

use domain::harness::{DiffStat, truncate_middle};
use domain::job::{
    CommandOutcome, FailureKind, Job, JobFailure, JobMode, JobPhase, JobResult, RepairRoundEnd,
    TranscriptEntry, ValidationNext, ValidationReport, ValidationRound, after_repair_round,
    after_validation_round, guard_rail_refusals_in_diff,
};
use domain::toolchain_env::job_cache_environment;

use crate::agent::{Agent, Round, TurnEnd};
use crate::command::ChildEnvironment;
use crate::fingerprint::working_tree_fingerprint;
use crate::forge::{Forge, JobForge, PullRequestDraft};
use crate::git::{Scratch, TrustedClone};
use crate::isolation::{JobUser, Sandbox};
use crate::jobs::{JobHandle, Shared};
use crate::model::ModelClient;
use crate::snapshot::{SnapshotRules, copy_work_tree};
use crate::tools::{self, Workspace};

/// Validation output handed back to the agent and kept in the report.
const MAX_VALIDATION_OUTPUT_BYTES: usize = 8 * 1024;

fn failure(kind: FailureKind, detail: impl Into<String>) -> JobFailure {
    JobFailure {
        kind,
        detail: detail.into(),
    }
}

fn internal(context: &str) -> impl FnOnce(std::io::Error) -> JobFailure + '_ {
    move |error| failure(FailureKind::Internal, format!("{context}: {error}"))
}

/// What isolating a job cost (ADR 4), beyond what an unisolated harness does anyway: leasing a user
/// (and killing what it left), the agent's own copy of the clone, the kill sweeps after commands, and
/// copying the agent's files for the commit. Logged per job; `scripts/bench harness` reads it.
#[derive(Debug, Default)]
struct IsolationCost {
    lease: Duration,
    agent_checkout: Duration,
    sweeping: Duration,
    snapshot: Duration,
}

impl IsolationCost {
    fn log(&self, job: &Job) {
        let milliseconds = |duration: Duration| duration.as_secs_f64() * 1000.0;
        tracing::info!(
            job = %job.id,
            total_ms = milliseconds(self.lease + self.agent_checkout + self.sweeping + self.snapshot),
            lease_ms = milliseconds(self.lease),
            agent_checkout_ms = milliseconds(self.agent_checkout),
            sweeping_ms = milliseconds(self.sweeping),
            snapshot_ms = milliseconds(self.snapshot),
            "isolation cost"
        );
    }
}

/// Files larger than this are never committed (GitHub refuses files over 100 MB).
const MAX_COMMITTED_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Creates a folder with exactly `mode`, owned by the harness.
async fn private_directory(path: &std::path::Path, mode: u32) -> Result<(), JobFailure> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(path)
        .await
        .map_err(internal("cannot create the job's folder"))?;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(internal("cannot set the job's folder's permissions"))
}

/// Hands a folder and everything in it to the job's user (without following symlinks).
async fn give_to(path: &std::path::Path, user: &JobUser) -> Result<(), JobFailure> {
    let root = path.to_owned();
    let (uid, gid) = (user.uid, user.gid);
    tokio::task::spawn_blocking(move || {
        let mut pending = vec![root];
        while let Some(path) = pending.pop() {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            if std::fs::symlink_metadata(&path)?.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .map_err(|error| failure(FailureKind::Internal, format!("chown panicked: {error}")))?
    .map_err(internal("cannot hand the checkout to the job's user"))
}

/// The job's folder (`<state>/work/<job>`):
///
/// ```text
/// harness/   0700, the harness's: its clone (the only git the harness commits and pushes from),
///            the copy of the agent's files it commits, its git's HOME and TMPDIR
/// agent/     0700, the job user's: the agent's checkout, its HOME, TMPDIR and caches
/// ```
///
/// The job folder itself is 0711 in the job-user mode (the job's user passes through to `agent/`
/// but cannot list it), else 0700.
struct JobFolders {
    harness_scratch: Scratch,
    trusted_clone: std::path::PathBuf,
    staging: std::path::PathBuf,
    agent: std::path::PathBuf,
    agent_scratch: Scratch,
    /// The job's caches (cargo, go, npm, pip, XDG): the job user's, shared by every command of the
    /// job, and gone with it.
    agent_cache: std::path::PathBuf,
    checkout: std::path::PathBuf,
}

impl JobFolders {
    async fn create(work_dir: &std::path::Path, sandbox: &Sandbox) -> Result<Self, JobFailure> {
        let harness = work_dir.join("harness");
        let agent = work_dir.join("agent");
        private_directory(
            work_dir,
            if sandbox.user().is_some() {
                0o711
            } else {
                0o700
            },
        )
        .await?;
        private_directory(&harness, 0o700).await?;
        private_directory(&agent, 0o700).await?;
        let folders = JobFolders {
            harness_scratch: Scratch {
                home: harness.join("home"),
                tmp: harness.join("tmp"),
            },
            trusted_clone: harness.join("clone"),
            staging: harness.join("staging"),
            agent_scratch: Scratch {
                home: agent.join("home"),
                tmp: agent.join("tmp"),
            },
            agent_cache: agent.join("cache"),
            checkout: agent.join("checkout"),
            agent,
        };
        for directory in [
            &folders.harness_scratch.home,
            &folders.harness_scratch.tmp,
            &folders.agent_scratch.home,
            &folders.agent_scratch.tmp,
            &folders.agent_cache,
        ] {
            private_directory(directory, 0o700).await?;
        }
        Ok(folders)
    }
}

pub async fn run(job: &Job, handle: &JobHandle, shared: &Shared) -> Result<JobResult, JobFailure> {
    let work_dir = shared.store.work_dir(&job.id);
    // The job's own user (waiting for one if all are busy), or the harness's in the shared mode.
    let leasing = std::time::Instant::now();
    let sandbox = match &shared.job_users {
        Some(pool) => Sandbox::as_job_user(pool.lease().await),
        None => Sandbox::shared_user(),
    };
    let mut cost = IsolationCost {
        lease: leasing.elapsed(),
        ..IsolationCost::default()
    };
    let folders = JobFolders::create(&work_dir, &sandbox).await?;
    let forge = JobForge::for_job(
        &job.forge,
        &job.repo.clone_url,
        shared.http.clone(),
        shared.store.clone(),
        handle.redactor.clone(),
    );

    handle.set_phase(JobPhase::Cloning);
    // A revision starts from the job's own work branch, so its commit builds on the earlier one.
    let checkout_branch = job.repo.checkout_branch();
    let clone_failed = |problem: String| {
        failure(
            FailureKind::CloneFailed,
            format!(
                "cannot clone {} (branch {}): {problem}",
                job.repo.clone_url, checkout_branch
            ),
        )
    };
    let (trusted, base_commit) = TrustedClone::create(
        job.repo.clone_url.as_str(),
        checkout_branch,
        &folders.trusted_clone,
        &folders.harness_scratch,
        forge.git_credential(),
    )
    .await
    .map_err(clone_failed)?;
    let copying = std::time::Instant::now();
    trusted
        .make_agent_checkout(
            checkout_branch,
            &folders.checkout,
            job.repo.clone_url.as_str(),
        )
        .await
        .map_err(clone_failed)?;
    let checkout_path = folders.checkout.clone();
    if let Some(sub) = &job.repo.sub_directory
        && !checkout_path.join(sub.as_str()).is_dir()
    {
        return Err(failure(
            FailureKind::CloneFailed,
            format!(
                "repo.subDirectory {sub} does not exist on branch {}",
                checkout_branch
            ),
        ));
    }
    if let Some(user) = sandbox.user() {
        give_to(&folders.agent, user).await?;
    }
    cost.agent_checkout = copying.elapsed();
    let scratch = folders.agent_scratch.clone();

    handle.set_phase(JobPhase::Agent);
    let command_timeout = Duration::from_secs(job.limits.command_timeout_seconds);
    let agent_environment = ChildEnvironment::minimal(&scratch.home, &scratch.tmp)
        .with_all(shared.toolchain_environment.iter())
        .with_all(job_cache_environment(&folders.agent_cache.display().to_string()).iter());
    let sub_directory = job.repo.sub_directory.as_ref().map(|sub| sub.as_str());
    let can_write = job.mode == JobMode::Coding;
    let workspace = Workspace::new(
        &checkout_path,
        sub_directory,
        can_write,
        agent_environment.clone(),
        command_timeout,
    )
    .map_err(internal("cannot open the checkout"))?
    .with_sandbox(sandbox.clone());
    let model = ModelClient::new(
        shared.http.clone(),
        job.llm.clone(),
        job.model.clone(),
        handle.redactor.clone(),
        &job.limits,
    );
    let output_schema = match job.mode {
        JobMode::Explore => job.output_schema.clone(),
        JobMode::Coding => None,
    };
    let mut agent = Agent::new(
        handle,
        model,
        workspace,
        job.system_prompt.clone(),
        tools::tool_specs(can_write),
        &job.limits,
        output_schema,
    );
    let (mut summary, output) = match agent.run(opening_message(job), Round::Opening).await? {
        TurnEnd::Finished { summary, output } => (summary, output),
        TurnEnd::AnsweredInProse(text) => (text, None),
    };

    if job.mode == JobMode::Explore {
        return Ok(JobResult {
            summary: Some(handle.redactor.redact(&summary)),
            output: output.map(|output| handle.redactor.redact_json(&output)),
            ..JobResult::default()
        });
    }

    if !job.validation.commands.is_empty() {
        let command_directory = match sub_directory {
            Some(sub) => checkout_path.join(sub),
            None => checkout_path.clone(),
        };
        let mut report = ValidationReport::default();
        loop {
            handle.set_phase(JobPhase::Validating);
            let round = validate(
                job,
                handle,
                &command_directory,
                &agent_environment,
                command_timeout,
                &sandbox,
            )
            .await;
            report.rounds.push(round);
            let rounds = report.rounds.len() as u32;
            let report_so_far = report.clone();
            handle.update(|record| {
                record.view.validation = Some(report_so_far);
                record.view.progress.validation_rounds = rounds;
            });
            let feedback = match after_validation_round(&report, job.validation.max_repair_rounds) {
                ValidationNext::Proceed => break,
                ValidationNext::Fail(failure) => return Err(failure),
                ValidationNext::Repair { feedback } => feedback,
            };
            handle.append_transcript(TranscriptEntry::HarnessNote {
                step: handle.view().progress.agent_steps,
                text: feedback.clone(),
            });
            handle.set_phase(JobPhase::Agent);
            // Whether the round changed anything is judged on the checkout, not on what the agent
            // says: "Done" after no edit cannot turn red checks green.
            let before = working_tree_fingerprint(&trusted, &checkout_path)
                .await
                .map_err(|problem| failure(FailureKind::Internal, problem))?;
            let end = match agent.run(feedback, Round::Repair).await? {
                TurnEnd::Finished {
                    summary: repaired, ..
                } => {
                    summary = repaired;
                    RepairRoundEnd::Finished
                }
                TurnEnd::AnsweredInProse(text) => RepairRoundEnd::AnsweredInProse(text),
            };
            let after = working_tree_fingerprint(&trusted, &checkout_path)
                .await
                .map_err(|problem| failure(FailureKind::Internal, problem))?;
            if let Some(failure) = after_repair_round(&report, &end, before != after) {
                return Err(failure);
            }
        }
    }
    drop(agent);
    let summary = handle.redactor.redact(&summary);

    handle.set_phase(JobPhase::Committing);
    // Nothing of the job may run while its files are copied, committed and pushed.
    sandbox.kill_everything().await;
    let (commit, snapshot_time) = commit_agent_work(
        job,
        handle,
        &trusted,
        &folders,
        &sandbox,
        &base_commit,
        &summary,
    )
    .await?;
    cost.snapshot = snapshot_time;
    cost.sweeping = sandbox.time_spent_sweeping();
    cost.log(job);
    let diff_stat = trusted
        .numstat(&base_commit, &commit)
        .await
        .map(|numstat| DiffStat::from_numstat(&numstat))
        .unwrap_or_default();

    handle.set_phase(JobPhase::Pushing);
    let branch = job.work_branch();
    let remote_commit = trusted
        .remote_branch_commit(forge.push_url(), &branch, forge.git_credential())
        .await
        .map_err(|problem| failure(FailureKind::PushFailed, problem))?;
    trusted
        .push_work_branch(
            forge.push_url(),
            &commit,
            &branch,
            remote_commit.as_deref(),
            forge.git_credential(),
        )
        .await
        .map_err(|problem| {
            failure(
                FailureKind::PushFailed,
                format!("cannot push {branch}: {problem}"),
            )
        })?;

    let pull_request = job.pull_request.clone().unwrap_or_default();
    handle.set_phase(JobPhase::OpeningPullRequest);
    let body = if summary.trim().is_empty() {
        pull_request.body.clone()
    } else {
        format!(
            "{}\n\n---\n**Agent summary**\n\n{}",
            pull_request.body,
            truncate_middle(&summary, 8000)
        )
    };
    let draft = PullRequestDraft {
        job_id: job.id.clone(),
        title: pull_request.title.clone(),
        body: handle.redactor.redact(&body),
        head: branch.clone(),
        base: job.repo.base_branch.clone(),
        commit: commit.clone(),
        diff_stat,
    };
    let pull_request = forge.open_pull_request(&draft).await.map_err(|problem| {
        failure(
            FailureKind::PullRequestFailed,
            format!("{branch} was pushed but the pull request could not be opened: {problem}"),
        )
    })?;
    Ok(JobResult {
        summary: Some(summary),
        branch: Some(branch),
        commit: Some(commit),
        pull_request: Some(pull_request),
        output: None,
    })
}

/// The first message: the user's prompt, then how this harness works, so the model knows the rules
/// before it hits them.
fn opening_message(job: &Job) -> String {
    let mut message = job.user_prompt.clone();
    message.push_str("\n\n---\nHow this session works:\n");
    message.push_str(&format!(
        "- You are in a git checkout of {} (branch {}). Tool paths are relative to the repository root.\n",
        job.repo.clone_url,
        job.repo.checkout_branch()
    ));
    if let Some(sub) = &job.repo.sub_directory {
        message.push_str(&format!(
            "- The service you work on is in {sub}/; commands run there.\n"
        ));
    }
    match job.mode {
        JobMode::Explore => message.push_str(
            "- This is a read-only task: explore, then call finish with your answer as the summary.\n",
        ),
        JobMode::Coding => {
            message.push_str(
                "- Make the change with the tools. Do not commit or push: the harness does that and \
                 opens the pull request after you call finish with a summary of the change.\n\
                 - Files under .github/workflows/ must not be changed.\n",
            );
            if !job.validation.commands.is_empty() {
                message.push_str(&format!(
                    "- After you finish, these checks must pass: {}\n",
                    job.validation.commands.join(" && ")
                ));
            }
        }
    }
    message
}

async fn validate(
    job: &Job,
    handle: &JobHandle,
    directory: &std::path::Path,
    environment: &ChildEnvironment,
    timeout: Duration,
    sandbox: &std::sync::Arc<Sandbox>,
) -> ValidationRound {
    let mut commands = Vec::new();
    for command in &job.validation.commands {
        let spec = crate::command::CommandSpec::shell(command, directory, environment.clone())
            .timeout(timeout)
            .sandbox(Some(sandbox.clone()));
        let outcome = match crate::command::run(spec).await {
            Ok(output) => CommandOutcome {
                command: command.clone(),
                exit_code: output.exit_code,
                timed_out: output.timed_out,
                output: handle.redactor.redact(&truncate_middle(
                    &output.stdout,
                    MAX_VALIDATION_OUTPUT_BYTES,
                )),
            },
            Err(error) => CommandOutcome {
                command: command.clone(),
                exit_code: None,
                timed_out: false,
                output: format!("could not start the command: {error}"),
            },
        };
        let passed = outcome.passed();
        commands.push(outcome);
        // Later checks usually depend on earlier ones (build before test); stop at the first red.
        if !passed {
            break;
        }
    }
    ValidationRound { commands }
}

/// Commits the agent's work from the harness's own clone: a fresh copy of the agent's files (never
/// its `.git`), one commit on the base commit, and the guard rails checked on exactly what will be
/// pushed — the base commit against that commit — so a workflow the agent committed, a rewritten
/// history or a `.github` symlink is seen like any other change. Returns the commit and how long
/// copying the files took (part of the isolation cost).
async fn commit_agent_work(
    job: &Job,
    handle: &JobHandle,
    trusted: &TrustedClone,
    folders: &JobFolders,
    sandbox: &Sandbox,
    base_commit: &str,
    summary: &str,
) -> Result<(String, Duration), JobFailure> {
    let snapshotting = std::time::Instant::now();
    let paths = trusted
        .paths_to_commit(&folders.checkout)
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?;
    let _ = tokio::fs::remove_dir_all(&folders.staging).await;
    private_directory(&folders.staging, 0o700).await?;
    let (source, destination) = (folders.checkout.clone(), folders.staging.clone());
    let rules = SnapshotRules {
        max_file_bytes: MAX_COMMITTED_FILE_BYTES,
        owner_uid: sandbox.user().map(|user| user.uid),
    };
    let report =
        tokio::task::spawn_blocking(move || copy_work_tree(&source, &paths, &destination, &rules))
            .await
            .map_err(|error| failure(FailureKind::Internal, format!("copy panicked: {error}")))?
            .map_err(internal("cannot copy the agent's files for the commit"))?;
    let snapshot_time = snapshotting.elapsed();
    if !report.too_large.is_empty() {
        return Err(failure(
            FailureKind::Rejected,
            format!(
                "files over {} MB are never committed (the forge refuses them): {}",
                MAX_COMMITTED_FILE_BYTES / (1024 * 1024),
                report.too_large.join(", ")
            ),
        ));
    }
    if !report.left_out.is_empty() {
        handle.append_transcript(TranscriptEntry::HarnessNote {
            step: handle.view().progress.agent_steps,
            text: format!(
                "Left out of the commit (not a regular file or symlink of this job, or a hard \
                 link): {}",
                report.left_out.join(", ")
            ),
        });
    }

    let pull_request = job.pull_request.clone().unwrap_or_default();
    let commit_message = format!(
        "{}\n\n{}\n\ncat-factory job {}",
        pull_request.title,
        truncate_middle(summary, 4000),
        job.id
    );
    let commit = trusted
        .commit(&folders.staging, &commit_message)
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?
        .ok_or_else(|| {
            failure(
                FailureKind::NoChanges,
                format!("the agent finished without changing any file. Its summary: {summary}"),
            )
        })?;
    let parents = trusted
        .parents(&commit)
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?;
    if parents != [base_commit] {
        return Err(failure(
            FailureKind::Internal,
            format!(
                "the commit to push has parents {parents:?}, not the base commit {base_commit}"
            ),
        ));
    }
    let changed = trusted
        .changed_paths(base_commit, &commit)
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?;
    // The guard rails judge exactly what would be pushed; a refusal is recorded (rule and path) so
    // the job ends `rejected` naming it.
    let refusals = guard_rail_refusals_in_diff(&changed);
    if let Some(first) = refusals.first() {
        let detail = format!(
            "the change was refused by the final diff check: {}",
            refusals
                .iter()
                .map(|refusal| refusal.describe())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let first = first.clone();
        handle.append_transcript(TranscriptEntry::HarnessNote {
            step: handle.view().progress.agent_steps,
            text: format!("{}.", first.describe()),
        });
        handle.update(|record| record.view.guard_rail_refusals.extend(refusals));
        return Err(failure(FailureKind::Rejected, detail));
    }
    Ok((commit, snapshot_time))
}
