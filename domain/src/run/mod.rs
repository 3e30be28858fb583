//! The run engine: a pipeline driven step by step from a task to a merged pull request, as a pure
//! state machine.
//!
//! [`apply`] takes a [`RunState`] and one [`RunInput`] and returns the next state and the
//! [`Effect`]s to perform. It reads no clock (time comes in the input) and makes no randomness, so
//! the same state and input always give the same answer. The RunCoordinator Durable Object stores
//! the new state **before** it performs the effects (checkpoint before effect, ADR 11): after a
//! crash it replays from the checkpoint, and because job ids are a function of the state
//! (`<run>-<step>-<attempt>`, [`RunJobId`]) and the harness's `POST /jobs` is idempotent, a replayed
//! dispatch re-attaches to the job it already started.
//!
//! Run status: `running | blocked | paused | done | failed | cancelled`. Step status:
//! `pending | working | waiting | done | skipped | failed`. A run waiting on a person (a decision, an
//! approval, a merge, its dependencies) is `blocked`, and nothing but that person's answer moves it:
//! no timer, poll or budget change fails it. A budget refusal pauses a run; freeing budget resumes
//! it; neither ever fails it.

mod dispatch;
mod engine;
mod gating;
mod job_id;
mod summary;
mod view;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent_output::{AgentReply, DecisionRequest};
use crate::board::BlockStatus;
use crate::ids::{BlockId, RunId};
use crate::job::{JobPhase, JobProgress};
use crate::pipeline::{AgentKind, Pipeline, Surface};
use crate::prompt::{DecisionAnswer, PullRequestBrief, ReworkRequest, SystemPrompt, TaskBrief};

pub use dispatch::{
    DEFAULT_BASE_BRANCH, GithubJobAccess, JobTarget, LOCAL_FORGE_SCHEME, RunRepository,
    harness_output_schema, is_local_repository_name, job_for, resolve_repository,
};
pub use engine::apply;
pub use gating::{
    DependenciesNotDone, Refusal, RefusalCode, StartGate, check_input, gate_run_start, run_model,
};
pub use job_id::RunJobId;
pub use summary::{RunSummary, StepSummary};
pub use view::{JobOutcome, JobOutcomeFailure, JobOutcomeView, JobOutput};

/// How many past failures a step keeps for the board.
pub const FAILURE_HISTORY_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A step is being worked on, or is about to be retried.
    Running,
    /// Parked for a person: a decision, an approval, a merge, or unfinished dependencies.
    Blocked,
    /// The gateway refused a call for budget; raising the limit resumes the run.
    Paused,
    Done,
    /// A step failed for good; `retry` resumes from it.
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Blocked => "blocked",
            RunStatus::Paused => "paused",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Done and cancelled runs absorb every input.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Done | RunStatus::Cancelled)
    }

    /// A block has at most one live run. A failed run is live: it can still be retried (cancel it to
    /// start over).
    pub fn is_live(self) -> bool {
        !self.is_terminal()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Dispatched, being polled, or waiting out a retry delay.
    Working,
    /// Parked on a person: a decision or an approval.
    Waiting,
    Done,
    Skipped,
    Failed,
}

/// Why a step failed. The harness's kinds are kept as they are; the engine adds its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepFailureKind {
    CloneFailed,
    Agent,
    StepBudget,
    Timeout,
    Stalled,
    ValidationFailed,
    Rejected,
    NoChanges,
    /// The runner's explore job got an answer out of the job's schema, after showing the agent its
    /// errors; unlike [`StepFailureKind::MalformedOutput`] the harness already retried it.
    InvalidAnswer,
    PushFailed,
    PullRequestFailed,
    Cancelled,
    HarnessShutdown,
    Internal,
    /// The runner was unreachable or answered 5xx through every retry.
    Dispatch,
    /// The job disappeared from the runner again after it was re-dispatched once.
    JobVanished,
    /// The agent's answer did not have the shape the step asks for.
    MalformedOutput,
    /// An inline model call failed or did not answer in time.
    ModelCall,
    /// A person rejected the step's work at an approval.
    ApprovalRejected,
    /// The model gateway refused a runner job's call for budget. Never left on a failed step: the
    /// engine pauses the run on it ([`RunStatus::Paused`]) and raising the limit resumes it.
    BudgetExhausted,
}

impl From<crate::job::FailureKind> for StepFailureKind {
    fn from(kind: crate::job::FailureKind) -> Self {
        use crate::job::FailureKind;
        match kind {
            FailureKind::CloneFailed => StepFailureKind::CloneFailed,
            FailureKind::Agent => StepFailureKind::Agent,
            FailureKind::StepBudget => StepFailureKind::StepBudget,
            FailureKind::Timeout => StepFailureKind::Timeout,
            FailureKind::Stalled => StepFailureKind::Stalled,
            FailureKind::ValidationFailed => StepFailureKind::ValidationFailed,
            FailureKind::Rejected => StepFailureKind::Rejected,
            FailureKind::NoChanges => StepFailureKind::NoChanges,
            FailureKind::PushFailed => StepFailureKind::PushFailed,
            FailureKind::PullRequestFailed => StepFailureKind::PullRequestFailed,
            FailureKind::Cancelled => StepFailureKind::Cancelled,
            FailureKind::HarnessShutdown => StepFailureKind::HarnessShutdown,
            FailureKind::Internal => StepFailureKind::Internal,
            FailureKind::InvalidAnswer => StepFailureKind::InvalidAnswer,
            FailureKind::BudgetExhausted => StepFailureKind::BudgetExhausted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFailure {
    pub kind: StepFailureKind,
    pub detail: String,
    /// Whether the same attempt could succeed if run again unchanged; transient failures are
    /// retried with backoff before the step fails.
    pub transient: bool,
    pub attempt: u32,
    pub at_ms: u64,
}

/// Retry and polling figures, fixed when the run starts so a replay decides the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineSettings {
    pub poll_interval_ms: u64,
    /// How long an inline model call may take before it counts as a transient failure.
    pub inline_call_timeout_ms: u64,
    /// The first retry waits this long; each next one twice as long, up to the maximum.
    pub retry_base_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// Retries of transient failures (and malformed answers) per step activation.
    pub max_transient_retries: u32,
    /// Consecutive unreachable or 5xx answers from the runner before the step fails with `dispatch`.
    pub max_runner_failures: u32,
    /// Re-dispatches after a job vanished (a runner restart) per step activation.
    pub max_vanished_redispatches: u32,
    /// A job whose heartbeat has not moved for this long (by the coordinator's clock) is stopped and
    /// counts as a transient `stalled` failure: the runner answers polls but the job is wedged. Longer
    /// than the harness's own stall timeout, which should catch a stuck agent first.
    pub max_heartbeat_silence_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            poll_interval_ms: 2_000,
            inline_call_timeout_ms: 120_000,
            retry_base_delay_ms: 5_000,
            retry_max_delay_ms: 300_000,
            max_transient_retries: 3,
            max_runner_failures: 5,
            max_vanished_redispatches: 1,
            max_heartbeat_silence_ms: 900_000,
        }
    }
}

impl EngineSettings {
    /// The delay before retry number `retry` (1-based): base · 2^(retry−1), capped.
    pub fn backoff_delay_ms(&self, retry: u32) -> u64 {
        let exponent = retry.saturating_sub(1).min(32);
        self.retry_base_delay_ms
            .saturating_mul(1u64 << exponent)
            .min(self.retry_max_delay_ms)
    }
}

/// What one attempt of a step asks a runner (or the model, inline) to do. The worker adds the
/// repository, the model endpoint with its run token, the forge and the limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRequest {
    pub job_id: RunJobId,
    pub step_index: usize,
    pub kind: AgentKind,
    pub surface: Surface,
    pub system_prompt: SystemPrompt,
    pub user_prompt: String,
    /// The JSON Schema the answer must match, for steps that answer with data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The pull request's title, for coding steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_title: Option<String>,
    /// The branch to check out instead of the base branch: the run's pull request branch once it
    /// exists, so a reviewer reads the change, a tester tests it, and a coder's rework builds on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_branch: Option<String>,
}

/// The attempt in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveJob {
    pub request: JobRequest,
    /// The runner has shown it knows the job (a poll answered with its view).
    pub acknowledged: bool,
    pub dispatched_at_ms: u64,
}

/// The latest signs of life of a runner job, lifted from its polled view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepActivity {
    pub phase: JobPhase,
    pub progress: JobProgress,
    pub heartbeat_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub kind: AgentKind,
    pub status: StepStatus,
    /// How many attempts were dispatched; the latest has this number.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<LiveJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<StepActivity>,
    /// The latest answer (kept while the step is redone, so the board still shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AgentReply>,
    /// The latest failure, also while a retry is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    #[serde(default)]
    pub failure_history: Vec<StepFailure>,
    pub transient_retries: u32,
    pub runner_failures: u32,
    pub vanished_redispatches: u32,
    /// For a companion: rework rounds spent since a person last looked.
    pub reworks_used: u32,
    /// For a producer: the companion's comments the next attempt must address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rework: Option<ReworkRequest>,
    /// What an approver asked to change, for the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_feedback: Option<String>,
    /// Every decision a person made for this step, in order.
    #[serde(default)]
    pub answers: Vec<DecisionAnswer>,
    /// Why the last answer was refused (malformed), told to the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_problem: Option<String>,
    /// When (coordinator time) the runner's heartbeat for the job in flight last moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_moved_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

impl StepState {
    fn new(kind: AgentKind) -> Self {
        StepState {
            kind,
            status: StepStatus::Pending,
            attempts: 0,
            job: None,
            activity: None,
            output: None,
            failure: None,
            failure_history: Vec::new(),
            transient_retries: 0,
            runner_failures: 0,
            vanished_redispatches: 0,
            reworks_used: 0,
            rework: None,
            approval_feedback: None,
            answers: Vec::new(),
            answer_problem: None,
            heartbeat_moved_at_ms: None,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }
}

/// A question an agent asked, waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenDecision {
    /// `dec-<step>-<attempt>`: one question per attempt at most.
    pub id: String,
    pub step_index: usize,
    pub question: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalReason {
    /// The pipeline asks for a person's approval after this step.
    Gate,
    /// The companion sent the work back as often as its budget allows and still rates it too low.
    ReworkBudgetSpent,
    /// The tester's report says tests fail.
    TestsFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenApproval {
    /// `apr-<step>-<n>`, n counting every approval the run opened.
    pub id: String,
    pub step_index: usize,
    pub reason: ApprovalReason,
}

/// What a blocked run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Park {
    /// Queued: the task's dependencies are not done yet.
    Dependencies {
        waiting_on: Vec<BlockId>,
    },
    Decision(OpenDecision),
    Approval(OpenApproval),
    /// Every step is done and the pull request is open and green; merging it finishes the run.
    Merge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeReason {
    /// Poll the job in flight.
    PollJob,
    /// Send the dispatch again after the runner was unreachable (same job id: it re-attaches).
    ResendJob,
    /// Start the next attempt of a step after a transient failure.
    RetryStep,
    /// An inline model call did not answer in time.
    InlineCallTimeout,
}

/// When the coordinator's alarm should fire, and why. Exactly one while a running run needs time to
/// pass; the cron sweep re-arms a run whose alarm is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wake {
    pub at_ms: u64,
    pub reason: WakeReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    pub step_index: usize,
    pub failure: StepFailure,
}

/// Everything a run is, as the coordinator checkpoints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub run_id: RunId,
    pub block_id: BlockId,
    pub pipeline: Pipeline,
    pub task: TaskBrief,
    pub settings: EngineSettings,
    pub status: RunStatus,
    /// False until the `start` input; a run is created and started in one request.
    pub started: bool,
    pub steps: Vec<StepState>,
    pub current_step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park: Option<Park>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestBrief>,
    pub pull_request_merged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    /// The block's status as this run last wrote it.
    pub block_status: BlockStatus,
    /// The block's status before the run, restored when the run is cancelled.
    pub block_status_before_run: BlockStatus,
    /// Dependencies still not done when the run was queued.
    #[serde(default)]
    pub queued_on: Vec<BlockId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<Wake>,
    pub approvals_opened: u32,
    /// How many events the run has emitted; the next one gets this plus one.
    pub events_emitted: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

/// What a new run is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSetup {
    pub run_id: RunId,
    pub block_id: BlockId,
    pub pipeline: Pipeline,
    pub task: TaskBrief,
    pub settings: EngineSettings,
    pub block_status: BlockStatus,
    /// From [`gate_run_start`]: empty to start at once, else the dependencies a queued run waits on.
    pub waiting_on: Vec<BlockId>,
    pub created_at_ms: u64,
}

impl RunState {
    /// A run that has not started; apply [`RunInput::Start`] next.
    pub fn new(setup: RunSetup) -> Self {
        RunState {
            run_id: setup.run_id,
            block_id: setup.block_id,
            steps: setup
                .pipeline
                .steps
                .iter()
                .map(|step| StepState::new(step.kind))
                .collect(),
            pipeline: setup.pipeline,
            task: setup.task,
            settings: setup.settings,
            status: RunStatus::Running,
            started: false,
            current_step: 0,
            park: None,
            paused_reason: None,
            pull_request: None,
            pull_request_merged: false,
            failure: None,
            block_status: setup.block_status,
            block_status_before_run: setup.block_status,
            queued_on: setup.waiting_on,
            wake: None,
            approvals_opened: 0,
            events_emitted: 0,
            created_at_ms: setup.created_at_ms,
            updated_at_ms: setup.created_at_ms,
            finished_at_ms: None,
        }
    }

    /// When the coordinator's alarm should fire; the cron sweep re-arms a run whose storage has
    /// none.
    pub fn alarm_at_ms(&self) -> Option<u64> {
        self.wake.map(|wake| wake.at_ms)
    }

    /// The job in flight, if any.
    pub fn live_job(&self) -> Option<&LiveJob> {
        self.steps.get(self.current_step)?.job.as_ref()
    }
}

/// A person's answer at an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ApprovalVerdict {
    Approve,
    /// Send the work back with this feedback (to the producer, when the step is a companion).
    RequestChanges {
        feedback: String,
    },
    /// Fail the run at this step; `retry` can run it again.
    Reject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
    },
}

/// Everything that can happen to a run. Every input carries the time, so [`apply`] never reads a
/// clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum RunInput {
    Start {
        now_ms: u64,
    },
    /// `GET /jobs/{id}` (or the answer to `POST /jobs`) answered with the job's view.
    JobPolled {
        now_ms: u64,
        view: JobOutcomeView,
    },
    /// The runner answered 404 for a job it had: it restarted and lost it.
    JobVanished {
        now_ms: u64,
        job_id: RunJobId,
    },
    /// The runner could not be reached or answered 5xx, for a dispatch or a poll.
    RunnerUnreachable {
        now_ms: u64,
        job_id: RunJobId,
        detail: String,
    },
    InlineReplied {
        now_ms: u64,
        call_id: RunJobId,
        text: String,
    },
    InlineFailed {
        now_ms: u64,
        call_id: RunJobId,
        detail: String,
        transient: bool,
    },
    DecisionAnswered {
        now_ms: u64,
        decision_id: String,
        choice: String,
    },
    ApprovalGiven {
        now_ms: u64,
        approval_id: String,
        verdict: ApprovalVerdict,
    },
    /// The gateway refused a call of this run: the budget is spent.
    BudgetRefused {
        now_ms: u64,
        detail: String,
    },
    /// The limit was raised or a new period began.
    BudgetFreed {
        now_ms: u64,
    },
    /// The coordinator's alarm went off.
    TimerFired {
        now_ms: u64,
    },
    Cancel {
        now_ms: u64,
    },
    /// Resume a failed run from its failed step.
    Retry {
        now_ms: u64,
    },
    /// A block this queued run waits on became done.
    DependencyDone {
        now_ms: u64,
        block_id: BlockId,
    },
    /// The run's pull request was merged.
    PullRequestMerged {
        now_ms: u64,
    },
}

impl RunInput {
    pub fn now_ms(&self) -> u64 {
        match self {
            RunInput::Start { now_ms }
            | RunInput::JobPolled { now_ms, .. }
            | RunInput::JobVanished { now_ms, .. }
            | RunInput::RunnerUnreachable { now_ms, .. }
            | RunInput::InlineReplied { now_ms, .. }
            | RunInput::InlineFailed { now_ms, .. }
            | RunInput::DecisionAnswered { now_ms, .. }
            | RunInput::ApprovalGiven { now_ms, .. }
            | RunInput::BudgetRefused { now_ms, .. }
            | RunInput::BudgetFreed { now_ms }
            | RunInput::TimerFired { now_ms }
            | RunInput::Cancel { now_ms }
            | RunInput::Retry { now_ms }
            | RunInput::DependencyDone { now_ms, .. }
            | RunInput::PullRequestMerged { now_ms } => *now_ms,
        }
    }
}

/// What the coordinator must do after it has stored the new state, in order. It stores the effects
/// with the state and marks each one performed, so a restart performs the rest; every effect is safe
/// to perform twice (a job post re-attaches, a poll or cancel repeats, an event has its `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Effect {
    /// `POST /jobs` for a new attempt. Emitted once per (step, attempt).
    DispatchJob { request: JobRequest },
    /// `POST /jobs` again with the same id and body after the runner was unreachable: the harness
    /// answers with the job it already has, or starts it if the first post never arrived.
    ResendJob { request: JobRequest },
    /// `GET /jobs/{id}`; feed the answer back as `job_polled`, `job_vanished` (404) or
    /// `runner_unreachable`.
    PollJob { job_id: RunJobId },
    /// One model call through the gateway; feed back `inline_replied` or `inline_failed` (or
    /// `budget_refused` on a 402).
    CallModel { request: JobRequest },
    /// `DELETE /jobs/{id}`, best effort; the branch stays.
    CancelJob { job_id: RunJobId },
    /// Replace the coordinator's alarm.
    SetAlarm { at_ms: u64 },
    WriteBlockStatus {
        block_id: BlockId,
        status: BlockStatus,
    },
    /// `seq` counts the run's events from 1 with no gaps: with the run id it is the event's
    /// idempotency key when a restarted coordinator performs a stored effect again.
    Emit {
        seq: u64,
        at_ms: u64,
        event: RunEvent,
    },
}

impl Effect {
    /// Whether this effect hands a job to the runner (`POST /jobs`).
    pub fn is_runner_dispatch(&self) -> bool {
        matches!(self, Effect::DispatchJob { .. } | Effect::ResendJob { .. })
    }
}

/// The order the coordinator performs a stored batch in: the runner dispatches first, then every
/// other effect in the order [`apply`] gave. A dispatch is what the person who started the run
/// waits on (the job's clone and first model call start only when it lands), while the events and
/// block writes before it in the batch each cost a database write and a hub round trip. Every
/// effect is independent and safe to repeat, so the order changes no outcome: the dispatch's
/// answer is applied as the next input only after the whole batch is performed. An inline model
/// call keeps its place: it takes as long as the model does, and the board should hear that the
/// step started before it ends.
pub fn performance_order(effects: &[Effect]) -> impl Iterator<Item = &Effect> {
    effects
        .iter()
        .filter(|effect| effect.is_runner_dispatch())
        .chain(effects.iter().filter(|effect| !effect.is_runner_dispatch()))
}

/// What the board hears about a run (`run.*`, a public contract: never rename one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum RunEvent {
    #[serde(rename = "run.queued")]
    Queued { waiting_on: Vec<BlockId> },
    #[serde(rename = "run.started")]
    Started,
    #[serde(rename = "run.step_started")]
    StepStarted {
        step_index: usize,
        kind: AgentKind,
        attempt: u32,
        job_id: RunJobId,
    },
    #[serde(rename = "run.step_progress")]
    StepProgress {
        step_index: usize,
        activity: StepActivity,
    },
    #[serde(rename = "run.step_done")]
    StepDone {
        step_index: usize,
        output: AgentReply,
    },
    #[serde(rename = "run.step_retry_scheduled")]
    StepRetryScheduled {
        step_index: usize,
        failure: StepFailure,
        retry_at_ms: u64,
    },
    #[serde(rename = "run.runner_unreachable")]
    RunnerUnreachable {
        step_index: usize,
        job_id: RunJobId,
        failures: u32,
        retry_at_ms: u64,
        detail: String,
    },
    #[serde(rename = "run.job_vanished")]
    JobVanished { step_index: usize, job_id: RunJobId },
    #[serde(rename = "run.step_failed")]
    StepFailed {
        step_index: usize,
        failure: StepFailure,
    },
    #[serde(rename = "run.pull_request_opened")]
    PullRequestOpened { pull_request: PullRequestBrief },
    #[serde(rename = "run.rework_requested")]
    ReworkRequested {
        producer_step_index: usize,
        companion_step_index: usize,
        round: u32,
        rating: f64,
        pass_threshold: f64,
    },
    #[serde(rename = "run.decision_requested")]
    DecisionRequested { decision: OpenDecision },
    #[serde(rename = "run.decision_answered")]
    DecisionAnswered {
        decision_id: String,
        step_index: usize,
        choice: String,
    },
    #[serde(rename = "run.approval_requested")]
    ApprovalRequested { approval: OpenApproval },
    #[serde(rename = "run.approval_given")]
    ApprovalGiven {
        approval_id: String,
        step_index: usize,
        verdict: ApprovalVerdict,
    },
    #[serde(rename = "run.paused")]
    Paused { reason: String },
    #[serde(rename = "run.resumed")]
    Resumed,
    #[serde(rename = "run.pr_ready")]
    PrReady { pull_request: PullRequestBrief },
    #[serde(rename = "run.done")]
    Done,
    #[serde(rename = "run.failed")]
    Failed {
        step_index: usize,
        failure: StepFailure,
    },
    #[serde(rename = "run.retried")]
    Retried { step_index: usize },
    #[serde(rename = "run.cancelled")]
    Cancelled,
}

impl RunEvent {
    /// The event's stable name, as it appears in `type`.
    pub fn name(&self) -> &'static str {
        match self {
            RunEvent::Queued { .. } => "run.queued",
            RunEvent::Started => "run.started",
            RunEvent::StepStarted { .. } => "run.step_started",
            RunEvent::StepProgress { .. } => "run.step_progress",
            RunEvent::StepDone { .. } => "run.step_done",
            RunEvent::StepRetryScheduled { .. } => "run.step_retry_scheduled",
            RunEvent::RunnerUnreachable { .. } => "run.runner_unreachable",
            RunEvent::JobVanished { .. } => "run.job_vanished",
            RunEvent::StepFailed { .. } => "run.step_failed",
            RunEvent::PullRequestOpened { .. } => "run.pull_request_opened",
            RunEvent::ReworkRequested { .. } => "run.rework_requested",
            RunEvent::DecisionRequested { .. } => "run.decision_requested",
            RunEvent::DecisionAnswered { .. } => "run.decision_answered",
            RunEvent::ApprovalRequested { .. } => "run.approval_requested",
            RunEvent::ApprovalGiven { .. } => "run.approval_given",
            RunEvent::Paused { .. } => "run.paused",
            RunEvent::Resumed => "run.resumed",
            RunEvent::PrReady { .. } => "run.pr_ready",
            RunEvent::Done => "run.done",
            RunEvent::Failed { .. } => "run.failed",
            RunEvent::Retried { .. } => "run.retried",
            RunEvent::Cancelled => "run.cancelled",
        }
    }
}

/// Builds the open decision for a request an agent made.
fn open_decision(step_index: usize, attempt: u32, request: DecisionRequest) -> OpenDecision {
    OpenDecision {
        id: format!("dec-{step_index}-{attempt}"),
        step_index,
        question: request.question,
        options: request.options,
    }
}
