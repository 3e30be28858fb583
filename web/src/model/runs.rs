//! Runs as the board shows them: the latest run of each task, live `run.*` events applied to it, what a
//! person may do to a run in each state, how a refused start is explained, and what the badge on a
//! task's card says.
//!
//! The panel and the canvas only draw what these functions decide; every rule here is plain data in,
//! plain data out, so it is tested without a browser.

use crate::model::fast_hash::FastMap;

use domain::api::ErrorCode;
use domain::api::runs::RunRecord;
use domain::event::RunEventRecord;
use domain::ids::BlockId;
use domain::run::{
    ApprovalReason, OpenApproval, OpenDecision, Park, RunEvent, RunFailure, RunStatus,
    StepFailureKind, StepStatus,
};
use domain::spend::{CatalogListing, MicroDollars, catalog_model};

/// The latest run of each block, from `GET /workspaces/:id/runs` (newest first).
pub fn latest_per_block(runs: Vec<RunRecord>) -> FastMap<BlockId, RunRecord> {
    let mut latest: FastMap<BlockId, RunRecord> = FastMap::default();
    for run in runs {
        let newer = latest.get(&run.block_id).is_none_or(|held| {
            (run.created_at, run.id.as_str()) > (held.created_at, held.id.as_str())
        });
        if newer {
            latest.insert(run.block_id.clone(), run);
        }
    }
    latest
}

/// Whether a run event names a run the board does not hold yet (someone started one, or the board
/// loaded before it existed): the page then fetches that run once with `GET …/runs/:id`.
pub fn needs_fetch(runs: &FastMap<BlockId, RunRecord>, event: &RunEventRecord) -> bool {
    runs.get(&event.block_id)
        .is_none_or(|held| held.id != event.run_id)
}

/// Stores a run the API answered with (a start, an action's answer, a fetch), unless the board
/// already holds something newer for its block: a later run, or this run with a later change (live
/// events that arrived while the request was out). Returns whether it was stored.
pub fn store_run(runs: &mut FastMap<BlockId, RunRecord>, run: RunRecord) -> bool {
    let keep_held = runs.get(&run.block_id).is_some_and(|held| {
        (held.created_at, held.id.as_str()) > (run.created_at, run.id.as_str())
            || (held.id == run.id && held.summary.updated_at_ms > run.summary.updated_at_ms)
    });
    if keep_held {
        return false;
    }
    runs.insert(run.block_id.clone(), run);
    true
}

/// What applying a run event did to the board's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunApplied {
    Changed,
    /// The run is not held here (fetch it: [`needs_fetch`]), or the event changes nothing shown.
    Unknown,
}

/// Applies one live run event to the run the board holds for its block. Every change *sets* what
/// the event says (never counts), so an event that the fetched run already reflects changes nothing
/// when it is applied again.
pub fn apply_run_event(
    runs: &mut FastMap<BlockId, RunRecord>,
    event: &RunEventRecord,
    at_ms: i64,
) -> RunApplied {
    let Some(run) = runs.get_mut(&event.block_id) else {
        return RunApplied::Unknown;
    };
    if run.id != event.run_id {
        return RunApplied::Unknown;
    }
    run.status = event.run_status;
    run.summary.status = event.run_status;
    run.updated_at = run.updated_at.max(at_ms);
    run.summary.updated_at_ms = run
        .summary
        .updated_at_ms
        .max(u64::try_from(at_ms).unwrap_or_default());
    let summary = &mut run.summary;
    match &event.event {
        RunEvent::Queued { waiting_on } => {
            run.queued_on = waiting_on.clone();
            summary.park = Some(Park::Dependencies {
                waiting_on: waiting_on.clone(),
            });
        }
        RunEvent::Started => {
            run.queued_on.clear();
            summary.park = None;
        }
        RunEvent::StepStarted {
            step_index,
            attempt,
            job_id,
            ..
        } => {
            summary.current_step = *step_index;
            summary.park = None;
            summary.failure = None;
            if let Some(step) = step(summary, *step_index) {
                step.status = StepStatus::Working;
                step.attempts = *attempt;
                step.job_id = Some(job_id.to_string());
                step.failure = None;
            }
        }
        RunEvent::StepProgress {
            step_index,
            activity,
        } => {
            if let Some(step) = step(summary, *step_index) {
                step.activity = Some(activity.clone());
            }
        }
        RunEvent::StepDone { step_index, output } => {
            if let Some(step) = step(summary, *step_index) {
                step.status = StepStatus::Done;
                step.output = Some(output.clone());
                step.job_id = None;
            }
        }
        RunEvent::StepRetryScheduled {
            step_index,
            failure,
            ..
        } => {
            if let Some(step) = step(summary, *step_index) {
                step.failure = Some(failure.clone());
            }
        }
        RunEvent::RunnerUnreachable { .. } | RunEvent::JobVanished { .. } => {}
        RunEvent::StepFailed {
            step_index,
            failure,
        }
        | RunEvent::Failed {
            step_index,
            failure,
        } => {
            if let Some(step) = step(summary, *step_index) {
                step.status = StepStatus::Failed;
                step.failure = Some(failure.clone());
                step.job_id = None;
            }
            if matches!(event.event, RunEvent::Failed { .. }) {
                summary.failure = Some(RunFailure {
                    step_index: *step_index,
                    failure: failure.clone(),
                });
            }
        }
        RunEvent::PullRequestOpened { pull_request } | RunEvent::PrReady { pull_request } => {
            summary.pull_request = Some(pull_request.clone());
            if matches!(event.event, RunEvent::PrReady { .. }) {
                summary.park = Some(Park::Merge);
            }
        }
        RunEvent::ReworkRequested {
            producer_step_index,
            companion_step_index,
            round,
            ..
        } => {
            if let Some(companion) = step(summary, *companion_step_index)
                && let Some((_, budget)) = companion.reworks
            {
                companion.reworks = Some((*round, budget));
            }
            summary.current_step = *producer_step_index;
        }
        RunEvent::DecisionRequested { decision } => {
            if let Some(step) = step(summary, decision.step_index) {
                step.status = StepStatus::Waiting;
            }
            summary.park = Some(Park::Decision(decision.clone()));
        }
        RunEvent::ApprovalRequested { approval } => {
            if let Some(step) = step(summary, approval.step_index) {
                step.status = StepStatus::Waiting;
            }
            summary.park = Some(Park::Approval(approval.clone()));
        }
        RunEvent::DecisionAnswered { .. } | RunEvent::ApprovalGiven { .. } | RunEvent::Resumed => {
            summary.park = None;
            summary.paused_reason = None;
        }
        RunEvent::Paused { reason } => summary.paused_reason = Some(reason.clone()),
        RunEvent::Done | RunEvent::Cancelled => {
            summary.park = None;
            for step in &mut summary.steps {
                step.job_id = None;
            }
        }
        RunEvent::Retried { step_index } => {
            summary.failure = None;
            summary.current_step = *step_index;
            if let Some(step) = step(summary, *step_index) {
                step.status = StepStatus::Working;
            }
        }
    }
    RunApplied::Changed
}

fn step(
    summary: &mut domain::run::RunSummary,
    index: usize,
) -> Option<&mut domain::run::StepSummary> {
    summary.steps.get_mut(index)
}

/// What a person may do about a task's run, as buttons in the run panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunActions {
    /// Start a new run (no live run on the task).
    pub start: bool,
    pub cancel: bool,
    /// Resume a failed run from its failed step.
    pub retry: bool,
    /// The pull request is open, green and every step is done.
    pub merge: bool,
    /// The question an agent asked, with its options.
    pub decision: Option<OpenDecision>,
    /// The approval the run waits for: approve, or request changes with feedback.
    pub approval: Option<OpenApproval>,
}

/// Which actions a run allows (none but reading, for a viewer).
pub fn actions_for(run: Option<&RunRecord>, read_only: bool) -> RunActions {
    if read_only {
        return RunActions::default();
    }
    let Some(run) = run else {
        return RunActions {
            start: true,
            ..RunActions::default()
        };
    };
    if !run.status.is_live() {
        return RunActions {
            start: true,
            ..RunActions::default()
        };
    }
    let park = run.summary.park.as_ref();
    RunActions {
        start: false,
        cancel: true,
        retry: run.status == RunStatus::Failed,
        merge: run.status == RunStatus::Blocked && matches!(park, Some(Park::Merge)),
        decision: match park {
            Some(Park::Decision(decision)) if run.status == RunStatus::Blocked => {
                Some(decision.clone())
            }
            _ => None,
        },
        approval: match park {
            Some(Park::Approval(approval)) if run.status == RunStatus::Blocked => {
                Some(approval.clone())
            }
            _ => None,
        },
    }
}

/// How a refused start is told to the person, and whether "queue it" is the way forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRefusal {
    pub message: String,
    /// The task waits on unfinished dependencies: offer to queue the run instead.
    pub offer_queue: bool,
}

/// Explains a refused `POST …/blocks/:id/runs` (`titles` names blocks for the person).
pub fn start_refusal(
    status: u16,
    code: Option<ErrorCode>,
    message: &str,
    details: Option<&serde_json::Value>,
    titles: impl Fn(&str) -> Option<String>,
) -> StartRefusal {
    let plain = |message: &str| StartRefusal {
        message: message.to_owned(),
        offer_queue: false,
    };
    match code {
        Some(ErrorCode::DependenciesNotDone) => {
            let names: Vec<String> = details
                .and_then(|details| details.get("notDone"))
                .and_then(serde_json::Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(|id| {
                            titles(id).map_or_else(|| "a task".to_owned(), |t| format!("“{t}”"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let waiting = if names.is_empty() {
                "some of its dependencies".to_owned()
            } else {
                names.join(", ")
            };
            StartRefusal {
                message: format!(
                    "This task depends on {waiting}, which {} not done yet. Queue the run and it starts by itself when {} done.",
                    if names.len() == 1 { "is" } else { "are" },
                    if names.len() == 1 {
                        "it is"
                    } else {
                        "they are"
                    },
                ),
                offer_queue: true,
            }
        }
        Some(ErrorCode::Conflict)
            if details
                .and_then(|details| details.get("reason"))
                .and_then(serde_json::Value::as_str)
                == Some("run_in_progress") =>
        {
            plain("This task already has a run going. Watch it here, or cancel it to start over.")
        }
        Some(ErrorCode::BudgetExhausted) => {
            let limit = details
                .and_then(|details| details.get("limit"))
                .and_then(serde_json::Value::as_str);
            plain(&match limit {
                Some(limit) => format!(
                    "This month's spending limit of {limit} is used up, so no run can start. An admin of the account can raise the limit."
                ),
                None => "This month's spending limit is used up, so no run can start. An admin of the account can raise the limit.".to_owned(),
            })
        }
        Some(ErrorCode::RuleViolated | ErrorCode::ValidationFailed) => {
            plain(&format!("The run could not start: {}", message.trim()))
        }
        _ => plain(&super::errors::human_error(status, code, message)),
    }
}

/// The badge a task's card shows for its run, beside the task's status: a CSS class and a short
/// label. `None` when the status already says it all (the PR is ready, merged, cancelled).
pub fn card_badge(run: &RunRecord) -> Option<(&'static str, String)> {
    let (class, label) = run_badge(run);
    (!matches!(class, "ready" | "done" | "cancelled")).then_some((class, label))
}

/// A run's state as a CSS class and a short label.
pub fn run_badge(run: &RunRecord) -> (&'static str, String) {
    let current = run
        .summary
        .steps
        .get(run.summary.current_step)
        .map(|step| step.kind.as_str());
    match run.status {
        RunStatus::Running => (
            "running",
            current.map_or_else(|| "running".to_owned(), |kind| format!("{kind}…")),
        ),
        RunStatus::Blocked => match &run.summary.park {
            Some(Park::Merge) => ("ready", "PR ready".to_owned()),
            Some(Park::Decision(_)) => ("waiting", "question".to_owned()),
            Some(Park::Approval(_)) => ("waiting", "approval".to_owned()),
            Some(Park::Dependencies { .. }) => ("queued", "queued".to_owned()),
            None => ("waiting", "waiting".to_owned()),
        },
        RunStatus::Paused => ("paused", "paused: budget".to_owned()),
        RunStatus::Done => ("done", "merged".to_owned()),
        RunStatus::Failed => ("failed", "failed".to_owned()),
        RunStatus::Cancelled => ("cancelled", "cancelled".to_owned()),
    }
}

/// A run's state in a sentence, at the top of the run panel.
pub fn run_headline(run: &RunRecord) -> String {
    match run.status {
        RunStatus::Running => "Running".to_owned(),
        RunStatus::Blocked => match &run.summary.park {
            Some(Park::Merge) => "The pull request is ready to merge".to_owned(),
            Some(Park::Decision(_)) => "Waiting for your answer".to_owned(),
            Some(Park::Approval(approval)) => match approval.reason {
                ApprovalReason::Gate => "Waiting for your approval".to_owned(),
                ApprovalReason::ReworkBudgetSpent => {
                    "The reviewer still rates the work too low: your call".to_owned()
                }
                ApprovalReason::TestsFailed => "Tests fail: your call".to_owned(),
            },
            Some(Park::Dependencies { .. }) => {
                "Queued: starts when its dependencies are done".to_owned()
            }
            None => "Waiting".to_owned(),
        },
        RunStatus::Paused => format!(
            "Paused: {}",
            run.summary
                .paused_reason
                .as_deref()
                .unwrap_or("the account's spending limit is reached")
        ),
        RunStatus::Done => "Done: the pull request is merged".to_owned(),
        RunStatus::Failed => "Failed".to_owned(),
        RunStatus::Cancelled => "Cancelled".to_owned(),
    }
}

/// What a step failure kind means, for a person.
pub fn failure_label(kind: StepFailureKind) -> &'static str {
    match kind {
        StepFailureKind::CloneFailed => "the repository could not be cloned",
        StepFailureKind::Agent => "the agent gave up",
        StepFailureKind::StepBudget => "the agent used all its steps",
        StepFailureKind::Timeout => "it took too long",
        StepFailureKind::Stalled => "the agent stopped making progress",
        StepFailureKind::ValidationFailed => "the checks failed",
        StepFailureKind::Rejected => "the runner refused the job",
        StepFailureKind::NoChanges => "the agent changed nothing",
        StepFailureKind::InvalidAnswer | StepFailureKind::MalformedOutput => {
            "the agent's answer had the wrong shape"
        }
        StepFailureKind::PushFailed => "the branch could not be pushed",
        StepFailureKind::PullRequestFailed => "the pull request could not be opened",
        StepFailureKind::Cancelled => "it was cancelled",
        StepFailureKind::HarnessShutdown => "the runner shut down",
        StepFailureKind::Internal => "something went wrong on the runner",
        StepFailureKind::Dispatch => "the runner could not be reached",
        StepFailureKind::JobVanished => "the runner lost the job",
        StepFailureKind::ModelCall => "the model call failed",
        StepFailureKind::ApprovalRejected => "a person rejected the work",
        StepFailureKind::BudgetExhausted => "the spend limit was reached (raise it to go on)",
    }
}

/// The model a new run starts with: a model the account priced itself (an admin set it up for a
/// reason), else the deployment's documented default `gpt-4o-mini`, else the first one usable now.
pub fn default_model(models: &[CatalogListing]) -> Option<String> {
    let usable = || models.iter().filter(|listing| listing.usable_now);
    usable()
        .find(|listing| catalog_model(&listing.model.id).as_ref() != Some(&listing.model))
        .or_else(|| usable().find(|listing| listing.model.id == "gpt-4o-mini"))
        .or_else(|| usable().next())
        .or_else(|| models.first())
        .map(|listing| listing.model.id.clone())
}

/// The model a task's start form shows first: the task's own choice, else the workspace's default,
/// else [`default_model`]. A choice the catalog does not list is still shown: the server decides
/// whether it can run.
pub fn initial_model(
    block_model: Option<&str>,
    workspace_default: Option<&str>,
    models: &[CatalogListing],
) -> Option<String> {
    block_model
        .or(workspace_default)
        .map(str::to_owned)
        .or_else(|| default_model(models))
}

/// Whether the run panel offers to make the chosen model the workspace's default (for every task
/// without its own choice): only to someone who may change the workspace's settings, and only when
/// the choice is not the default already.
pub fn offer_as_workspace_default(
    chosen: Option<&str>,
    workspace_default: Option<&str>,
    manages_settings: bool,
) -> bool {
    manages_settings && chosen.is_some() && chosen != workspace_default
}

/// How a forecast compares with what is left of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastFit {
    /// No limit (or it is overridden, or the board cannot see the account's budget).
    NoLimit,
    Fits {
        left: MicroDollars,
    },
    /// The run would likely go past the limit; it pauses when the gateway refuses a call.
    Exceeds {
        left: MicroDollars,
    },
}

pub fn forecast_fit(total: MicroDollars, headroom: Option<MicroDollars>) -> ForecastFit {
    match headroom {
        None => ForecastFit::NoLimit,
        Some(left) if total > left => ForecastFit::Exceeds { left },
        Some(left) => ForecastFit::Fits { left },
    }
}

/// The forecast line under the pipeline picker.
pub fn forecast_text(total: MicroDollars, tokens: u64, fit: ForecastFit) -> String {
    let expected = format!("Expected cost about {total} ({} tokens)", thousands(tokens));
    match fit {
        ForecastFit::NoLimit => format!("{expected}. No spending limit is set."),
        ForecastFit::Fits { left } => format!("{expected}; {left} is left of this month's limit."),
        ForecastFit::Exceeds { left } => format!(
            "{expected}, more than the {left} left of this month's limit: the run will pause when the limit is reached."
        ),
    }
}

/// `12345` → `12,345`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A step's elapsed time, `1m 05s` or `42s` (`now_ms` for a step still going).
pub fn elapsed_text(
    started_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
    now_ms: u64,
) -> Option<String> {
    let started = started_at_ms?;
    let seconds = finished_at_ms.unwrap_or(now_ms).saturating_sub(started) / 1000;
    Some(if seconds >= 60 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::event::{EventPayload, WorkspaceEvent};
    use domain::ids::RunId;
    use domain::run::RunJobId;
    use serde_json::json;

    fn block(n: u8) -> BlockId {
        BlockId::from_random([n; 8])
    }

    fn run_id(n: u8) -> RunId {
        RunId::from_random([n; 8])
    }

    /// A `quick` run (coder → reviewer) of `block(task)`, as `GET …/runs/:id` answers.
    fn quick_run(task: u8, run: u8, status: &str, created_at: i64) -> RunRecord {
        serde_json::from_value(json!({
            "id": run_id(run), "workspaceId": "ws_0101010101010101", "blockId": block(task),
            "pipelineId": "quick", "modelId": "scripted", "status": status, "queuedOn": [],
            "createdAt": created_at, "updatedAt": created_at,
            "summary": {
                "id": run_id(run), "blockId": block(task), "pipelineName": "quick", "status": status,
                "currentStep": 0, "createdAtMs": 1, "updatedAtMs": 1,
                "steps": [
                    { "kind": "coder", "surface": "runner_coding", "status": "pending", "attempts": 0,
                      "approvalAfter": false },
                    { "kind": "reviewer", "surface": "runner_explore", "status": "pending", "attempts": 0,
                      "approvalAfter": false, "reworks": [0, 2] }
                ]
            }
        }))
        .expect("a run record")
    }

    /// A run event as the stream delivers it.
    fn event(
        task: u8,
        run: u8,
        status: &str,
        name: &str,
        fields: serde_json::Value,
    ) -> RunEventRecord {
        let mut data = fields;
        data["runId"] = json!(run_id(run));
        data["blockId"] = json!(block(task));
        data["runSeq"] = json!(1);
        data["runStatus"] = json!(status);
        let wire = json!({ "workspaceId": "ws_0101010101010101", "seq": 9, "at": 50, "actor": null,
            "type": name, "data": data });
        match serde_json::from_value::<WorkspaceEvent>(wire)
            .expect("an event")
            .payload
        {
            EventPayload::Run(record) => record,
            other => panic!("not a run event: {other:?}"),
        }
    }

    fn held(run: RunRecord) -> FastMap<BlockId, RunRecord> {
        FastMap::from_iter([(run.block_id.clone(), run)])
    }

    #[test]
    fn the_latest_run_of_each_block_is_kept() {
        let runs = latest_per_block(vec![
            quick_run(1, 2, "done", 20),
            quick_run(1, 1, "cancelled", 10),
            quick_run(2, 3, "running", 5),
        ]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[&block(1)].id, run_id(2));
        assert_eq!(runs[&block(2)].id, run_id(3));
    }

    #[test]
    fn an_answer_older_than_what_the_stream_told_is_not_stored_over_it() {
        let mut runs = FastMap::default();
        assert!(store_run(&mut runs, quick_run(1, 1, "running", 10)));
        // The stream moved the run on while a request was out.
        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "blocked",
                "run.decision_requested",
                json!({
            "decision": { "id": "dec-1-1", "stepIndex": 1, "question": "?", "options": ["a"] } }),
            ),
            60,
        );
        let mut stale = quick_run(1, 1, "running", 10);
        stale.summary.updated_at_ms = 59;
        assert!(!store_run(&mut runs, stale));
        assert_eq!(runs[&block(1)].status, RunStatus::Blocked);
        let mut answered = quick_run(1, 1, "running", 10);
        answered.summary.updated_at_ms = 61;
        assert!(store_run(&mut runs, answered));
        // An older run never replaces a newer one of the same block.
        assert!(store_run(&mut runs, quick_run(1, 2, "running", 20)));
        assert!(!store_run(&mut runs, quick_run(1, 1, "cancelled", 10)));
        assert_eq!(runs[&block(1)].id, run_id(2));
    }

    #[test]
    fn a_run_the_board_does_not_hold_is_fetched_and_left_alone_until_then() {
        let mut runs = held(quick_run(1, 1, "cancelled", 10));
        let newer = event(1, 2, "running", "run.started", json!({}));
        assert!(needs_fetch(&runs, &newer));
        assert_eq!(apply_run_event(&mut runs, &newer, 60), RunApplied::Unknown);
        assert_eq!(runs[&block(1)].status, RunStatus::Cancelled);
        let elsewhere = event(7, 3, "running", "run.started", json!({}));
        assert!(needs_fetch(&runs, &elsewhere));
        let same = event(1, 1, "cancelled", "run.cancelled", json!({}));
        assert!(!needs_fetch(&runs, &same));
    }

    #[test]
    fn events_walk_a_run_through_its_steps_to_a_pull_request_ready_to_merge() {
        let mut runs = held(quick_run(1, 1, "running", 10));
        let job = RunJobId::new(run_id(1), 0, 1);
        let steps = [
            event(1, 1, "running", "run.started", json!({})),
            event(
                1,
                1,
                "running",
                "run.step_started",
                json!({ "stepIndex": 0, "kind": "coder", "attempt": 1, "jobId": job }),
            ),
            event(
                1,
                1,
                "running",
                "run.step_progress",
                json!({ "stepIndex": 0, "activity": {
                "phase": "agent", "heartbeatAtMs": 3,
                "progress": { "agentSteps": 2, "maxAgentSteps": 40, "validationRounds": 0 } } }),
            ),
        ];
        for step in &steps {
            assert_eq!(apply_run_event(&mut runs, step, 60), RunApplied::Changed);
        }
        let run = &runs[&block(1)];
        assert_eq!(run.summary.steps[0].status, StepStatus::Working);
        assert_eq!(run.summary.steps[0].attempts, 1);
        assert_eq!(
            run.summary.steps[0]
                .activity
                .as_ref()
                .unwrap()
                .progress
                .agent_steps,
            2
        );
        assert_eq!(run_badge(run), ("running", "coder…".to_owned()));
        assert_eq!(card_badge(run), Some(("running", "coder…".to_owned())));

        let pull_request = json!({ "number": 4, "url": "http://forge/pr/4", "branch": "cat/x" });
        for later in [
            event(
                1,
                1,
                "running",
                "run.pull_request_opened",
                json!({ "pullRequest": pull_request }),
            ),
            event(
                1,
                1,
                "running",
                "run.step_done",
                json!({ "stepIndex": 0, "output": { "type": "text", "text": "done" } }),
            ),
            event(
                1,
                1,
                "running",
                "run.step_started",
                json!({ "stepIndex": 1, "kind": "reviewer",
                "attempt": 1, "jobId": RunJobId::new(run_id(1), 1, 1) }),
            ),
            event(
                1,
                1,
                "running",
                "run.step_done",
                json!({ "stepIndex": 1,
                "output": { "type": "review_verdict", "rating": 0.9, "comments": [] } }),
            ),
            event(
                1,
                1,
                "blocked",
                "run.pr_ready",
                json!({ "pullRequest": pull_request }),
            ),
        ] {
            apply_run_event(&mut runs, &later, 70);
        }
        let run = &runs[&block(1)];
        assert_eq!(run.summary.current_step, 1);
        assert!(
            run.summary
                .steps
                .iter()
                .all(|step| step.status == StepStatus::Done)
        );
        assert_eq!(run.summary.pull_request.as_ref().unwrap().number, 4);
        assert_eq!(run_badge(run), ("ready", "PR ready".to_owned()));
        assert_eq!(card_badge(run), None, "the task's status says it");
        let actions = actions_for(Some(run), false);
        assert!(actions.merge && actions.cancel && !actions.retry && !actions.start);

        // Applying the last event again changes nothing shown.
        let before = run.clone();
        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "blocked",
                "run.pr_ready",
                json!({ "pullRequest": pull_request }),
            ),
            70,
        );
        assert_eq!(runs[&block(1)], before);

        apply_run_event(&mut runs, &event(1, 1, "done", "run.done", json!({})), 80);
        let run = &runs[&block(1)];
        assert_eq!(run_badge(run), ("done", "merged".to_owned()));
        assert_eq!(
            actions_for(Some(run), false),
            RunActions {
                start: true,
                ..RunActions::default()
            }
        );
    }

    #[test]
    fn a_decision_and_an_approval_park_the_run_and_an_answer_clears_them() {
        let mut runs = held(quick_run(1, 1, "running", 10));
        let decision = json!({ "id": "dec-1-1", "stepIndex": 1, "question": "Which?",
            "options": ["a", "b"] });
        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "blocked",
                "run.decision_requested",
                json!({ "decision": decision }),
            ),
            60,
        );
        let run = &runs[&block(1)];
        assert_eq!(run.summary.steps[1].status, StepStatus::Waiting);
        let actions = actions_for(Some(run), false);
        assert_eq!(actions.decision.as_ref().unwrap().options, vec!["a", "b"]);
        assert!(!actions.merge && actions.approval.is_none());
        assert_eq!(actions_for(Some(run), true), RunActions::default());
        assert_eq!(run_headline(run), "Waiting for your answer");

        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "running",
                "run.decision_answered",
                json!({ "decisionId": "dec-1-1", "stepIndex": 1, "choice": "a" }),
            ),
            61,
        );
        assert!(
            actions_for(Some(&runs[&block(1)]), false)
                .decision
                .is_none()
        );

        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "blocked",
                "run.approval_requested",
                json!({ "approval": { "id": "apr-1-1", "stepIndex": 1, "reason": "gate" } }),
            ),
            62,
        );
        let actions = actions_for(Some(&runs[&block(1)]), false);
        assert_eq!(actions.approval.unwrap().id, "apr-1-1");
    }

    #[test]
    fn a_failed_run_shows_its_kind_and_offers_retry_and_a_retry_clears_it() {
        let mut runs = held(quick_run(1, 1, "running", 10));
        let failure = json!({ "kind": "dispatch", "detail": "503", "transient": false,
            "attempt": 1, "atMs": 5 });
        apply_run_event(
            &mut runs,
            &event(
                1,
                1,
                "failed",
                "run.failed",
                json!({ "stepIndex": 0, "failure": failure }),
            ),
            60,
        );
        let run = &runs[&block(1)];
        assert_eq!(run.summary.steps[0].status, StepStatus::Failed);
        assert_eq!(
            run.summary.failure.as_ref().unwrap().failure.kind,
            StepFailureKind::Dispatch
        );
        assert_eq!(
            failure_label(StepFailureKind::Dispatch),
            "the runner could not be reached"
        );
        let actions = actions_for(Some(run), false);
        assert!(actions.retry && actions.cancel && !actions.start);
        apply_run_event(
            &mut runs,
            &event(1, 1, "running", "run.retried", json!({ "stepIndex": 0 })),
            61,
        );
        let run = &runs[&block(1)];
        assert!(run.summary.failure.is_none());
        assert!(!actions_for(Some(run), false).retry);
    }

    #[test]
    fn refused_starts_are_explained_and_unfinished_dependencies_offer_a_queue() {
        let titles = |id: &str| (id == block(5).as_str()).then(|| "Schema".to_owned());
        let waiting = start_refusal(
            409,
            Some(ErrorCode::DependenciesNotDone),
            "raw",
            Some(&json!({ "notDone": [block(5)] })),
            titles,
        );
        assert!(waiting.offer_queue);
        assert!(
            waiting.message.contains("“Schema”, which is not done yet"),
            "{}",
            waiting.message
        );
        let live = start_refusal(
            409,
            Some(ErrorCode::Conflict),
            "raw run_x",
            Some(&json!({ "reason": "run_in_progress", "runId": "run_x" })),
            titles,
        );
        assert!(
            !live.offer_queue && !live.message.contains("run_x"),
            "{}",
            live.message
        );
        let broke = start_refusal(
            402,
            Some(ErrorCode::BudgetExhausted),
            "raw",
            Some(&json!({ "limit": "$5.00", "limitMicros": 5000000 })),
            titles,
        );
        assert!(
            broke.message.contains("limit of $5.00 is used up"),
            "{}",
            broke.message
        );
        let offline = start_refusal(0, None, "boom", None, titles);
        assert!(offline.message.contains("Could not reach the server"));
    }

    #[test]
    fn the_forecast_is_weighed_against_what_is_left() {
        assert_eq!(forecast_fit(MicroDollars(5), None), ForecastFit::NoLimit);
        assert_eq!(
            forecast_fit(MicroDollars(5), Some(MicroDollars(5))),
            ForecastFit::Fits {
                left: MicroDollars(5)
            }
        );
        let over = forecast_fit(MicroDollars(6), Some(MicroDollars(5)));
        assert_eq!(
            over,
            ForecastFit::Exceeds {
                left: MicroDollars(5)
            }
        );
        let text = forecast_text(MicroDollars(1_230_000), 12_345, over);
        assert!(
            text.starts_with("Expected cost about $1.23 (12,345 tokens)"),
            "{text}"
        );
        assert!(text.contains("will pause"), "{text}");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(
            elapsed_text(Some(1_000), Some(66_000), 0).as_deref(),
            Some("1m 05s")
        );
        assert_eq!(
            elapsed_text(Some(1_000), None, 43_000).as_deref(),
            Some("42s")
        );
        assert_eq!(elapsed_text(None, None, 43_000), None);
    }

    #[test]
    fn a_workspace_admin_is_offered_the_chosen_model_as_the_workspace_default() {
        assert!(offer_as_workspace_default(Some("gpt-4o"), None, true));
        assert!(offer_as_workspace_default(
            Some("gpt-4o"),
            Some("gpt-4o-mini"),
            true
        ));
        assert!(
            !offer_as_workspace_default(Some("gpt-4o"), Some("gpt-4o"), true),
            "already the default"
        );
        assert!(
            !offer_as_workspace_default(Some("gpt-4o"), None, false),
            "not someone who may change the workspace's settings"
        );
        assert!(
            !offer_as_workspace_default(None, None, true),
            "nothing chosen"
        );
    }

    #[test]
    fn the_default_model_is_one_the_account_priced_else_the_documented_default() {
        let listing = |id: &str, usable: bool, own: bool| {
            let mut model = catalog_model("gpt-4o-mini").expect("a built-in model");
            model.id = id.to_owned();
            if own {
                model.priced_on = "2026-11-30".to_owned();
            }
            CatalogListing {
                model,
                usable_now: usable,
            }
        };
        let builtin = |id: &str, usable: bool| CatalogListing {
            model: catalog_model(id).expect("built in"),
            usable_now: usable,
        };
        let mini = builtin("gpt-4o-mini", true);
        assert_eq!(
            default_model(&[mini.clone(), listing("scripted", true, true)]).as_deref(),
            Some("scripted")
        );
        assert_eq!(
            default_model(&[mini.clone(), listing("scripted", false, true)]).as_deref(),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            default_model(&[listing("x", false, true)]).as_deref(),
            Some("x")
        );
        assert_eq!(default_model(&[]), None);
        let models = [mini.clone(), listing("scripted", true, true)];
        assert_eq!(
            initial_model(Some("o3"), Some("gpt-4o"), &models).as_deref(),
            Some("o3"),
            "the task's own choice first"
        );
        assert_eq!(
            initial_model(None, Some("gpt-4o"), &models).as_deref(),
            Some("gpt-4o"),
            "then the workspace's default"
        );
        assert_eq!(
            initial_model(None, None, &models),
            default_model(&models),
            "then the account's"
        );
    }
}
