//! `GET /jobs/{id}`: where a job is, and how it ended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::failure::FailureKind;
use super::identifiers::{JobId, WorkBranch};
use super::outcome::GuardRailRefusal;
use super::spec::{Job, JobMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// Where a running job is; a finished job keeps the phase it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    Queued,
    Cloning,
    Agent,
    Validating,
    Committing,
    Pushing,
    OpeningPullRequest,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFailure {
    pub kind: FailureKind,
    /// What went wrong, for a person; secrets are redacted.
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub agent_steps: u32,
    pub max_agent_steps: u32,
    pub validation_rounds: u32,
    /// The agent's latest tool call, e.g. `edit_file src/lib.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    /// Model requests retried so far (429, 5xx, connection errors, request timeouts), counted
    /// against `limits.maxModelRetries`.
    #[serde(default)]
    pub model_retries: u32,
    /// The last error the model endpoint answered with (redacted), retried or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upstream_error: Option<String>,
}

/// One model call, for the spend ledger: what it cost in tokens and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCallUsage {
    /// The agent step the call answered.
    pub step: u32,
    /// The model that answered (as the provider reported it, else the one the job asked for).
    pub model: String,
    /// `None` when the provider did not report usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Request sent → answer complete, for the attempt that succeeded.
    pub latency_ms: u64,
    /// Attempts before this one that failed and were retried.
    #[serde(default)]
    pub retries: u32,
    pub streamed: bool,
}

/// Every model call of a job, with running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub calls: Vec<ModelCallUsage>,
}

impl ModelUsage {
    pub fn record(&mut self, call: ModelCallUsage) {
        self.input_tokens += call.input_tokens.unwrap_or(0);
        self.output_tokens += call.output_tokens.unwrap_or(0);
        self.calls.push(call);
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestRef {
    pub number: u64,
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    /// The agent's closing summary (the answer, for an explore job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<WorkBranch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestRef>,
    /// An explore job's structured answer, valid against the job's `outputSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutcome {
    pub command: String,
    /// `None` when the command was killed (timeout) or died from a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The end of the combined output, truncated and redacted.
    pub output: String,
}

impl CommandOutcome {
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRound {
    pub commands: Vec<CommandOutcome>,
}

impl ValidationRound {
    pub fn passed(&self) -> bool {
        self.commands.iter().all(CommandOutcome::passed)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub rounds: Vec<ValidationRound>,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.rounds.last().is_some_and(ValidationRound::passed)
    }
}

/// `GET /jobs/{id}` (and the body of `POST /jobs` and `DELETE /jobs/{id}`). It never contains a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: JobId,
    pub mode: JobMode,
    pub state: JobState,
    pub phase: JobPhase,
    pub progress: JobProgress,
    /// Milliseconds since the Unix epoch, by the harness's clock.
    pub started_at_ms: u64,
    /// The last time the harness saw the job alive; it advances while the job runs.
    pub heartbeat_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport>,
    /// Every model call so far: tokens, model, latency.
    #[serde(default, skip_serializing_if = "ModelUsage::is_empty")]
    pub usage: ModelUsage,
    /// What the guard rails refused during the job, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guard_rail_refusals: Vec<GuardRailRefusal>,
    /// True when the job has ended but its work folder could not be removed yet; the harness
    /// removes it at its next start at the latest. A job is reported ended only after its folder
    /// is gone or this is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup_pending: bool,
}

impl JobView {
    /// A job that was just accepted.
    pub fn accepted(job: &Job, now_ms: u64) -> Self {
        JobView {
            id: job.id.clone(),
            mode: job.mode,
            state: JobState::Running,
            phase: JobPhase::Queued,
            progress: JobProgress {
                max_agent_steps: job.limits.max_agent_steps,
                ..JobProgress::default()
            },
            started_at_ms: now_ms,
            heartbeat_at_ms: now_ms,
            finished_at_ms: None,
            result: None,
            failure: None,
            validation: None,
            usage: ModelUsage::default(),
            guard_rail_refusals: Vec::new(),
            cleanup_pending: false,
        }
    }

    /// Ends the job as failed, unless it has already ended: the first ending wins.
    pub fn fail(&mut self, kind: FailureKind, detail: impl Into<String>, now_ms: u64) {
        if self.state != JobState::Running {
            return;
        }
        self.state = JobState::Failed;
        self.failure = Some(JobFailure {
            kind,
            detail: detail.into(),
        });
        self.finished_at_ms = Some(now_ms);
        self.heartbeat_at_ms = now_ms;
    }

    /// Ends the job as done, unless it has already ended.
    pub fn succeed(&mut self, result: JobResult, now_ms: u64) {
        if self.state != JobState::Running {
            return;
        }
        self.state = JobState::Done;
        self.phase = JobPhase::Finished;
        self.result = Some(result);
        self.finished_at_ms = Some(now_ms);
        self.heartbeat_at_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::test_fixtures::job_json;

    #[test]
    fn the_first_ending_of_a_job_wins() {
        let job: Job = serde_json::from_value(job_json()).unwrap();
        let mut view = JobView::accepted(&job, 10);
        assert_eq!(view.state, JobState::Running);
        assert_eq!(view.progress.max_agent_steps, 40);
        view.fail(FailureKind::Cancelled, "aborted", 20);
        view.succeed(JobResult::default(), 30);
        view.fail(FailureKind::HarnessShutdown, "later", 40);
        assert_eq!(view.state, JobState::Failed);
        assert_eq!(view.failure.as_ref().unwrap().kind, FailureKind::Cancelled);
        assert_eq!(view.finished_at_ms, Some(20));
    }

    #[test]
    fn validation_report_passes_only_when_the_last_round_is_green() {
        let outcome = |code| CommandOutcome {
            command: "make test".to_owned(),
            exit_code: code,
            timed_out: false,
            output: String::new(),
        };
        let red = ValidationRound {
            commands: vec![outcome(Some(1))],
        };
        let green = ValidationRound {
            commands: vec![outcome(Some(0))],
        };
        let killed = ValidationRound {
            commands: vec![outcome(None)],
        };
        assert!(!ValidationReport::default().passed());
        assert!(
            ValidationReport {
                rounds: vec![red.clone(), green.clone()]
            }
            .passed()
        );
        assert!(
            !ValidationReport {
                rounds: vec![green, red]
            }
            .passed()
        );
        assert!(
            !ValidationReport {
                rounds: vec![killed]
            }
            .passed()
        );
    }
}
