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
use crate::git::{self, Checkout, Scratch};
use crate::jobs::{JobHandle, Shared};
use crate::model::ModelClient;
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

pub async fn run(job: &Job, handle: &JobHandle, shared: &Shared) -> Result<JobResult, JobFailure> {
    let work_dir = shared.store.work_dir(&job.id);
    let scratch = Scratch {
        home: work_dir.join("home"),
        tmp: work_dir.join("tmp"),
    };
    // Caches (cargo, go, npm, pip, XDG) live in the job's folder: writable, shared by every command
    // of the job, and gone with it.
    let cache_dir = work_dir.join("cache");
    for directory in [&scratch.home, &scratch.tmp, &cache_dir] {
        tokio::fs::create_dir_all(directory)
            .await
            .map_err(internal("cannot create the job's scratch directory"))?;
    }
    let forge = JobForge::for_job(
        &job.forge,
        &job.repo.clone_url,
        shared.http.clone(),
        shared.store.clone(),
        handle.redactor.clone(),
    );

    handle.set_phase(JobPhase::Cloning);
    let checkout_path = work_dir.join("checkout");
    git::clone(
        job.repo.clone_url.as_str(),
        &job.repo.base_branch,
        &checkout_path,
        &scratch,
        forge.git_credential(),
    )
    .await
    .map_err(|problem| {
        failure(
            FailureKind::CloneFailed,
            format!(
                "cannot clone {} (branch {}): {problem}",
                job.repo.clone_url, job.repo.base_branch
            ),
        )
    })?;
    if let Some(sub) = &job.repo.sub_directory
        && !checkout_path.join(sub.as_str()).is_dir()
    {
        return Err(failure(
            FailureKind::CloneFailed,
            format!(
                "repo.subDirectory {sub} does not exist on branch {}",
                job.repo.base_branch
            ),
        ));
    }
    let checkout = Checkout::adopt(checkout_path.clone(), scratch.clone())
        .await
        .map_err(|problem| failure(FailureKind::CloneFailed, problem))?;
    let base_commit = checkout
        .head_commit()
        .await
        .map_err(|problem| failure(FailureKind::CloneFailed, problem))?;

    handle.set_phase(JobPhase::Agent);
    let command_timeout = Duration::from_secs(job.limits.command_timeout_seconds);
    let agent_environment = ChildEnvironment::minimal(&scratch.home, &scratch.tmp)
        .with_all(shared.toolchain_environment.iter())
        .with_all(job_cache_environment(&cache_dir.display().to_string()).iter());
    let sub_directory = job.repo.sub_directory.as_ref().map(|sub| sub.as_str());
    let can_write = job.mode == JobMode::Coding;
    let workspace = Workspace::new(
        &checkout_path,
        sub_directory,
        can_write,
        agent_environment.clone(),
        command_timeout,
    )
    .map_err(internal("cannot open the checkout"))?;
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
            let before = working_tree_fingerprint(&checkout_path, &scratch)
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
            let after = working_tree_fingerprint(&checkout_path, &scratch)
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
    checkout
        .restore_trusted_git_state()
        .await
        .map_err(|problem| failure(FailureKind::Rejected, problem))?;
    let changed = checkout
        .stage_all()
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?;
    if changed.is_empty() {
        return Err(failure(
            FailureKind::NoChanges,
            format!("the agent finished without changing any file. Its summary: {summary}"),
        ));
    }
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
    let pull_request = job.pull_request.clone().unwrap_or_default();
    let commit_message = format!(
        "{}\n\n{}\n\ncat-factory job {}",
        pull_request.title,
        truncate_middle(&summary, 4000),
        job.id
    );
    let commit = checkout
        .commit(&commit_message)
        .await
        .map_err(|problem| failure(FailureKind::Internal, problem))?;
    let diff_stat = checkout
        .numstat(&base_commit, &commit)
        .await
        .map(|numstat| DiffStat::from_numstat(&numstat))
        .unwrap_or_default();

    handle.set_phase(JobPhase::Pushing);
    let branch = job.work_branch();
    let remote_commit = checkout
        .remote_branch_commit(forge.push_url(), &branch, forge.git_credential())
        .await
        .map_err(|problem| failure(FailureKind::PushFailed, problem))?;
    checkout
        .push_work_branch(
            forge.push_url(),
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
        job.repo.clone_url, job.repo.base_branch
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
) -> ValidationRound {
    let mut commands = Vec::new();
    for command in &job.validation.commands {
        let spec = crate::command::CommandSpec::shell(command, directory, environment.clone())
            .timeout(timeout);
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
