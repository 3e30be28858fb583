//! Scenario tests of the run engine: each drives a run through [`apply`] with the inputs the
//! coordinator would feed it and checks the state and the effects.

use serde_json::json;

use super::*;
use crate::agent_output::Severity;
use crate::board::BlockStatus;
use crate::job::{FailureKind, JobPhase, JobProgress};
use crate::pipeline::{BuiltInPipeline, CompanionSettings, PipelineStep};
use crate::prompt::AncestorBrief;

const START_MS: u64 = 1_000_000;

fn run_id() -> RunId {
    RunId::from_random([7; 8])
}

fn block_id() -> BlockId {
    BlockId::from_random([9; 8])
}

pub(super) fn task_brief() -> TaskBrief {
    TaskBrief {
        title: "Fix the failing pagination test".to_owned(),
        description: "The last page is never shown.".to_owned(),
        requirements: "The test `last_page_is_reachable` passes.".to_owned(),
        ancestors: vec![AncestorBrief {
            level: crate::board::Level::Frame,
            title: "demo".to_owned(),
            description: "The demo service.".to_owned(),
        }],
    }
}

pub(super) fn setup(pipeline: Pipeline, waiting_on: Vec<BlockId>) -> RunSetup {
    RunSetup {
        run_id: run_id(),
        block_id: block_id(),
        pipeline,
        task: task_brief(),
        settings: EngineSettings::default(),
        block_status: BlockStatus::Planned,
        waiting_on,
        created_at_ms: START_MS,
    }
}

fn job_id(step: usize, attempt: u32) -> RunJobId {
    RunJobId::new(run_id(), step, attempt)
}

/// Drives one run and keeps every effect it asked for.
struct Run {
    state: RunState,
    now: u64,
    log: Vec<Effect>,
}

impl Run {
    fn new(pipeline: Pipeline) -> Self {
        Run::with_setup(setup(pipeline, Vec::new()))
    }

    fn with_setup(setup: RunSetup) -> Self {
        Run {
            state: RunState::new(setup),
            now: START_MS,
            log: Vec::new(),
        }
    }

    fn started(pipeline: Pipeline) -> Self {
        let mut run = Run::new(pipeline);
        run.start();
        run
    }

    fn apply(&mut self, input: RunInput) -> Vec<Effect> {
        let (again, again_effects) = apply(self.state.clone(), &input);
        let (state, effects) = apply(self.state.clone(), &input);
        assert_eq!(
            (&again, &again_effects),
            (&state, &effects),
            "apply is deterministic"
        );
        let wire = serde_json::to_value(&state).unwrap();
        assert_eq!(serde_json::from_value::<RunState>(wire).unwrap(), state);
        self.state = state;
        self.log.extend(effects.clone());
        effects
    }

    fn advance(&mut self, ms: u64) -> u64 {
        self.now += ms;
        self.now
    }

    fn start(&mut self) -> Vec<Effect> {
        self.apply(RunInput::Start { now_ms: self.now })
    }

    fn live(&self) -> RunJobId {
        self.state
            .live_job()
            .expect("a job in flight")
            .request
            .job_id
            .clone()
    }

    fn polled(&mut self, outcome: JobOutcome) -> Vec<Effect> {
        let now = self.advance(1_000);
        let view = JobOutcomeView {
            job_id: self.live(),
            phase: JobPhase::Agent,
            progress: JobProgress::default(),
            heartbeat_at_ms: now,
            outcome,
        };
        self.apply(RunInput::JobPolled { now_ms: now, view })
    }

    fn job_done(&mut self, summary: &str) -> Vec<Effect> {
        self.polled(JobOutcome::Succeeded(JobOutput {
            summary: Some(summary.to_owned()),
            pull_request: None,
        }))
    }

    fn coder_done(&mut self, number: u64) -> Vec<Effect> {
        self.polled(JobOutcome::Succeeded(JobOutput {
            summary: Some("Rounded up in last_page.".to_owned()),
            pull_request: Some(pull_request(number)),
        }))
    }

    fn job_failed(&mut self, kind: FailureKind) -> Vec<Effect> {
        self.polled(JobOutcome::Failed(JobOutcomeFailure {
            kind: kind.into(),
            detail: format!("{kind:?}"),
            transient: kind.is_transient(),
        }))
    }

    fn inline_reply(&mut self, text: &str) -> Vec<Effect> {
        let now = self.advance(500);
        let call_id = self.live();
        self.apply(RunInput::InlineReplied {
            now_ms: now,
            call_id,
            text: text.to_owned(),
        })
    }

    fn review(&mut self, rating: f64) -> Vec<Effect> {
        let verdict = json!({
            "rating": rating,
            "comments": [{ "severity": "blocker", "path": "src/page.rs", "text": "Still off by one." }]
        });
        self.job_done(&verdict.to_string())
    }

    fn timer(&mut self, at_ms: u64) -> Vec<Effect> {
        self.now = self.now.max(at_ms);
        self.apply(RunInput::TimerFired { now_ms: at_ms })
    }

    fn open_approval_id(&self) -> String {
        match &self.state.park {
            Some(Park::Approval(approval)) => approval.id.clone(),
            other => panic!("expected an open approval, found {other:?}"),
        }
    }

    fn approve(&mut self, verdict: ApprovalVerdict) -> Vec<Effect> {
        let now = self.advance(60_000);
        let approval_id = self.open_approval_id();
        let input = RunInput::ApprovalGiven {
            now_ms: now,
            approval_id,
            verdict,
        };
        assert_eq!(check_input(&self.state, &input), Ok(()));
        self.apply(input)
    }

    fn step_statuses(&self) -> Vec<StepStatus> {
        self.state.steps.iter().map(|step| step.status).collect()
    }

    /// Every job dispatched so far (runner jobs and inline calls), in order.
    fn dispatched(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|effect| match effect {
                Effect::DispatchJob { request } | Effect::CallModel { request } => {
                    Some(request.job_id.to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn block_writes(&self) -> Vec<BlockStatus> {
        self.log
            .iter()
            .filter_map(|effect| match effect {
                Effect::WriteBlockStatus { status, .. } => Some(*status),
                _ => None,
            })
            .collect()
    }
}

fn pull_request(number: u64) -> PullRequestBrief {
    PullRequestBrief {
        number,
        url: format!("http://forge/pr/{number}"),
        branch: format!("cat/{}", block_id()),
    }
}

fn event_names(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Emit { event, .. } => Some(event.name()),
            _ => None,
        })
        .collect()
}

fn dispatched_request(effects: &[Effect]) -> &JobRequest {
    effects
        .iter()
        .find_map(|effect| match effect {
            Effect::DispatchJob { request } | Effect::CallModel { request } => Some(request),
            _ => None,
        })
        .expect("a dispatch")
}

fn estimate_json() -> String {
    json!({
        "complexity": { "score": 2, "reason": "One function." },
        "risk": { "score": 1, "reason": "Covered by tests." },
        "impact": { "score": 3, "reason": "Users miss invoices." }
    })
    .to_string()
}

fn test_report_json(passed: bool) -> String {
    json!({
        "passed": passed,
        "commands": ["cargo test"],
        "testsRun": 12,
        "testsFailed": if passed { 0 } else { 1 },
        "failures": if passed { json!([]) } else { json!([{ "name": "page::last", "detail": "expected 3, got 2" }]) },
        "summary": if passed { "All green." } else { "One failure." }
    })
    .to_string()
}

/// Runs `build` up to the reviewer's first verdict: estimator, architect, coder with a PR.
fn build_run_at_first_review() -> Run {
    let mut run = Run::started(BuiltInPipeline::Build.pipeline());
    run.inline_reply(&estimate_json());
    run.job_done("Round up in `last_page`.");
    run.coder_done(7);
    assert_eq!(run.live(), job_id(3, 1));
    run
}

#[test]
fn the_build_pipeline_goes_from_estimate_to_merged_with_one_rework_round() {
    let mut run = Run::new(BuiltInPipeline::Build.pipeline());
    assert!(!run.state.started);

    // Start: the estimator is one inline model call.
    let effects = run.start();
    assert_eq!(event_names(&effects), ["run.started", "run.step_started"]);
    let call = dispatched_request(&effects);
    assert!(matches!(
        effects[1],
        Effect::WriteBlockStatus {
            status: BlockStatus::InProgress,
            ..
        }
    ));
    assert_eq!(call.surface, Surface::Inline);
    assert_eq!(call.system_prompt.version, "estimator@v1");
    assert!(call.output_schema.is_some());
    assert_eq!(run.state.status, RunStatus::Running);

    // The estimate is the step's output; the architect's explore job is dispatched.
    let effects = run.inline_reply(&estimate_json());
    assert_eq!(event_names(&effects), ["run.step_done", "run.step_started"]);
    let architect = dispatched_request(&effects);
    assert_eq!(architect.job_id, job_id(1, 1));
    assert_eq!(architect.surface, Surface::RunnerExplore);
    assert!(
        architect
            .user_prompt
            .contains("## Step 1 (estimator) output\nComplexity 2/5")
    );
    let Some(AgentReply::Estimate(estimate)) = &run.state.steps[0].output else {
        panic!("the estimate is stored on the step")
    };
    assert_eq!(estimate.impact.score, 3);

    // The alarm polls the job; progress is lifted into the step.
    let poll_at = run.state.alarm_at_ms().unwrap();
    assert_eq!(poll_at, run.now + 2_000);
    // Until the runner has answered for the job, the alarm re-posts it (idempotent) instead of
    // polling, so a dispatch lost with a crash is delivered late rather than taken for vanished.
    let effects = run.timer(poll_at);
    let Some(Effect::ResendJob { request }) = effects.first() else {
        panic!("expected a re-post, got {effects:?}")
    };
    assert_eq!(request.job_id, job_id(1, 1));
    let effects = run.polled(JobOutcome::Running);
    assert_eq!(event_names(&effects), ["run.step_progress"]);
    assert!(run.state.steps[1].activity.is_some());
    let poll_at = run.state.alarm_at_ms().unwrap();
    let effects = run.timer(poll_at);
    assert_eq!(
        effects.first(),
        Some(&Effect::PollJob {
            job_id: job_id(1, 1)
        })
    );
    let effects = run.polled(JobOutcome::Running);
    assert_eq!(
        event_names(&effects),
        ["run.step_progress"],
        "the heartbeat moved"
    );

    // The design is stored; the coder's coding job gets the design and the PR title.
    let effects = run.job_done("Round up in `last_page`.");
    let coder = dispatched_request(&effects);
    assert_eq!(coder.job_id, job_id(2, 1));
    assert_eq!(coder.surface, Surface::RunnerCoding);
    assert_eq!(
        coder.pull_request_title.as_deref(),
        Some("Fix the failing pagination test")
    );
    assert!(
        coder
            .user_prompt
            .contains("## Step 2 (architect) output\nRound up")
    );
    assert_eq!(
        coder.checkout_branch, None,
        "no PR yet: start from the base branch"
    );
    assert!(
        !coder.user_prompt.contains("\"decision\""),
        "coding steps cannot ask"
    );

    // The PR opens; the reviewer reads it.
    let effects = run.coder_done(7);
    assert_eq!(
        event_names(&effects),
        [
            "run.pull_request_opened",
            "run.step_done",
            "run.step_started"
        ]
    );
    let reviewer = dispatched_request(&effects);
    assert_eq!(reviewer.job_id, job_id(3, 1));
    assert_eq!(
        reviewer.checkout_branch,
        Some(format!("cat/{}", block_id()))
    );
    assert!(
        reviewer
            .user_prompt
            .contains("## Pull request\n#7 http://forge/pr/7")
    );

    // Below the threshold: the coder goes again on the same branch with the comments.
    let effects = run.review(0.4);
    assert_eq!(
        event_names(&effects),
        ["run.step_done", "run.rework_requested", "run.step_started"]
    );
    let rework = dispatched_request(&effects);
    assert_eq!(rework.job_id, job_id(2, 2));
    assert_eq!(rework.checkout_branch, Some(format!("cat/{}", block_id())));
    assert!(rework.user_prompt.contains(
        "## Review to address (rated 0.40; 0.70 passes)\n- [blocker] src/page.rs: Still off by one."
    ));
    assert_eq!(
        run.step_statuses()[2..4],
        [StepStatus::Working, StepStatus::Pending]
    );

    // The coder pushes again (same PR); the reviewer passes it; a person approves.
    let effects = run.coder_done(7);
    assert!(!event_names(&effects).contains(&"run.pull_request_opened"));
    assert_eq!(run.live(), job_id(3, 2));
    let effects = run.review(0.9);
    assert_eq!(
        event_names(&effects),
        ["run.step_done", "run.approval_requested"]
    );
    assert_eq!(run.state.status, RunStatus::Blocked);
    assert_eq!(run.state.steps[3].status, StepStatus::Waiting);
    assert_eq!(run.open_approval_id(), "apr-3-1");
    let effects = run.approve(ApprovalVerdict::Approve);
    assert_eq!(
        event_names(&effects),
        ["run.approval_given", "run.step_started"]
    );
    assert_eq!(run.live(), job_id(4, 1));

    // The tester's report is green: the PR is ready and the run waits for the merge.
    let effects = run.job_done(&test_report_json(true));
    assert_eq!(event_names(&effects), ["run.step_done", "run.pr_ready"]);
    assert_eq!(run.state.status, RunStatus::Blocked);
    assert_eq!(run.state.park, Some(Park::Merge));
    assert_eq!(run.state.wake, None);

    let now = run.advance(1);
    let effects = run.apply(RunInput::PullRequestMerged { now_ms: now });
    assert_eq!(event_names(&effects), ["run.done"]);
    assert_eq!(run.state.status, RunStatus::Done);
    assert_eq!(run.state.finished_at_ms, Some(now));

    assert_eq!(
        run.dispatched(),
        [
            job_id(0, 1),
            job_id(1, 1),
            job_id(2, 1),
            job_id(3, 1),
            job_id(2, 2),
            job_id(3, 2),
            job_id(4, 1)
        ]
        .map(|id| id.to_string())
    );
    assert_eq!(
        run.block_writes(),
        [
            BlockStatus::InProgress,
            BlockStatus::Blocked,
            BlockStatus::InProgress,
            BlockStatus::PrReady,
            BlockStatus::Done
        ]
    );
    assert!(
        run.step_statuses()
            .iter()
            .all(|status| *status == StepStatus::Done)
    );
}

#[test]
fn a_decision_parks_the_run_until_a_person_answers_then_the_answer_is_in_the_prompt() {
    let mut run = Run::started(BuiltInPipeline::Build.pipeline());
    run.inline_reply(&estimate_json());
    let question =
        json!({ "decision": { "question": "Keep the old API?", "options": ["yes", "no"] } });
    let effects = run.job_done(&question.to_string());
    assert_eq!(event_names(&effects), ["run.decision_requested"]);
    assert_eq!(run.state.status, RunStatus::Blocked);
    assert_eq!(run.state.steps[1].status, StepStatus::Waiting);
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::Blocked));
    let Some(Park::Decision(decision)) = run.state.park.clone() else {
        panic!("parked on the decision")
    };
    assert_eq!(decision.id, "dec-1-1");

    // Nothing but the answer moves it: timers, stale polls and budget changes do nothing.
    let parked = run.state.clone();
    for input in [
        RunInput::TimerFired {
            now_ms: run.now + 86_400_000,
        },
        RunInput::BudgetRefused {
            now_ms: run.now,
            detail: "spent".to_owned(),
        },
        RunInput::BudgetFreed { now_ms: run.now },
        RunInput::JobVanished {
            now_ms: run.now,
            job_id: job_id(1, 1),
        },
        RunInput::Retry { now_ms: run.now },
    ] {
        assert_eq!(run.apply(input), Vec::new());
        assert_eq!(run.state, parked);
    }

    let refusals = [
        ("dec-9-9", "yes", RefusalCode::DecisionNotOpen),
        ("dec-1-1", "maybe", RefusalCode::ChoiceNotOffered),
    ];
    for (decision_id, choice, code) in refusals {
        let input = RunInput::DecisionAnswered {
            now_ms: run.now,
            decision_id: decision_id.to_owned(),
            choice: choice.to_owned(),
        };
        assert_eq!(check_input(&run.state, &input).unwrap_err().code, code);
        assert_eq!(run.apply(input), Vec::new(), "apply ignores it too");
    }

    let now = run.advance(5_000);
    let input = RunInput::DecisionAnswered {
        now_ms: now,
        decision_id: "dec-1-1".to_owned(),
        choice: "no".to_owned(),
    };
    assert_eq!(check_input(&run.state, &input), Ok(()));
    let effects = run.apply(input);
    assert_eq!(
        event_names(&effects),
        ["run.decision_answered", "run.step_started"]
    );
    let request = dispatched_request(&effects);
    assert_eq!(request.job_id, job_id(1, 2));
    assert!(
        request
            .user_prompt
            .contains("## Answers to your questions\n- Q: Keep the old API?\n  A: no")
    );
    assert_eq!(run.state.status, RunStatus::Running);
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::InProgress));
}

#[test]
fn request_changes_at_the_approval_sends_the_coder_back_with_the_feedback() {
    let mut run = build_run_at_first_review();
    run.review(0.95);
    let refused = RunInput::ApprovalGiven {
        now_ms: run.now,
        approval_id: run.open_approval_id(),
        verdict: ApprovalVerdict::RequestChanges {
            feedback: "  ".to_owned(),
        },
    };
    assert_eq!(
        check_input(&run.state, &refused).unwrap_err().code,
        RefusalCode::FeedbackRequired
    );
    assert_eq!(run.apply(refused), Vec::new());

    let effects = run.approve(ApprovalVerdict::RequestChanges {
        feedback: "Also update the changelog.".to_owned(),
    });
    let coder = dispatched_request(&effects);
    assert_eq!(coder.job_id, job_id(2, 2));
    assert!(
        coder
            .user_prompt
            .contains("## Feedback from the approver\nAlso update the changelog.")
    );
    assert_eq!(
        run.step_statuses()[2..],
        [
            StepStatus::Working,
            StepStatus::Pending,
            StepStatus::Pending
        ]
    );

    // The feedback is spent once the coder delivers; the reviewer grades the new change, and a
    // second approval is asked for.
    run.coder_done(7);
    assert_eq!(run.state.steps[2].approval_feedback, None);
    run.review(0.8);
    assert_eq!(run.open_approval_id(), "apr-3-2");
}

#[test]
fn a_rejected_approval_fails_the_run_and_retry_runs_that_step_again() {
    let mut run = build_run_at_first_review();
    run.review(0.95);
    let effects = run.approve(ApprovalVerdict::Reject {
        feedback: Some("Wrong approach.".to_owned()),
    });
    assert_eq!(
        event_names(&effects),
        ["run.approval_given", "run.step_failed", "run.failed"]
    );
    assert_eq!(run.state.status, RunStatus::Failed);
    let failure = run.state.failure.clone().unwrap();
    assert_eq!(
        (failure.step_index, failure.failure.kind),
        (3, StepFailureKind::ApprovalRejected)
    );
    assert_eq!(failure.failure.detail, "Wrong approach.");

    let effects = run.apply(RunInput::Retry { now_ms: run.now });
    assert_eq!(event_names(&effects), ["run.retried", "run.step_started"]);
    assert_eq!(dispatched_request(&effects).job_id, job_id(3, 2));
    assert_eq!(run.state.failure, None);
}

#[test]
fn a_companion_past_its_rework_budget_parks_for_a_person_and_never_fails_the_run() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    run.coder_done(1);
    for round in 1..=CompanionSettings::DEFAULT.rework_budget {
        let effects = run.review(0.2);
        assert!(
            event_names(&effects).contains(&"run.rework_requested"),
            "round {round}"
        );
        run.coder_done(1);
    }
    let effects = run.review(0.2);
    assert_eq!(
        event_names(&effects),
        ["run.step_done", "run.approval_requested"]
    );
    let Some(Park::Approval(approval)) = run.state.park.clone() else {
        panic!("parked")
    };
    assert_eq!(approval.reason, ApprovalReason::ReworkBudgetSpent);
    assert_eq!(run.state.status, RunStatus::Blocked);

    // A day of alarms later it still waits.
    let parked = run.state.clone();
    run.timer(run.now + 86_400_000);
    assert_eq!(run.state, parked);

    // The person accepts the work as it is: the PR is ready.
    let effects = run.approve(ApprovalVerdict::Approve);
    assert_eq!(
        event_names(&effects),
        ["run.approval_given", "run.pr_ready"]
    );
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::PrReady));
    assert_eq!(
        run.dispatched().len(),
        2 + 2 * CompanionSettings::DEFAULT.rework_budget as usize
    );
}

#[test]
fn a_failing_test_report_asks_a_person_and_request_changes_goes_to_the_coder_with_the_report() {
    let mut run = build_run_at_first_review();
    run.review(0.9);
    run.approve(ApprovalVerdict::Approve);
    let effects = run.job_done(&test_report_json(false));
    assert_eq!(
        event_names(&effects),
        ["run.step_done", "run.approval_requested"]
    );
    let Some(Park::Approval(approval)) = run.state.park.clone() else {
        panic!("parked")
    };
    assert_eq!(
        (approval.step_index, approval.reason),
        (4, ApprovalReason::TestsFailed)
    );
    let effects = run.approve(ApprovalVerdict::RequestChanges {
        feedback: "Fix the failing test.".to_owned(),
    });
    let coder = dispatched_request(&effects);
    assert_eq!(coder.job_id, job_id(2, 2));
    assert!(coder.user_prompt.contains(
        "Fix the failing test.\n\nThe tester's report:\nFailed: 12 tests run, 1 failed. One failure.\n- page::last: expected 3, got 2"
    ));
}

#[test]
fn a_budget_refusal_pauses_the_run_and_freeing_budget_resumes_the_same_step() {
    let mut run = Run::started(BuiltInPipeline::Build.pipeline());
    run.inline_reply(&estimate_json());
    assert_eq!(run.live(), job_id(1, 1));
    let effects = run.apply(RunInput::BudgetRefused {
        now_ms: run.now,
        detail: "monthly limit of $10 reached".to_owned(),
    });
    assert_eq!(event_names(&effects), ["run.paused"]);
    assert!(effects.contains(&Effect::CancelJob {
        job_id: job_id(1, 1)
    }));
    assert_eq!(run.state.status, RunStatus::Paused);
    assert_eq!(run.state.steps[1].status, StepStatus::Pending);
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::Blocked));

    // While paused nothing runs and nothing fails: a late poll of the stopped job, alarms, more
    // refusals are all ignored.
    let paused = run.state.clone();
    let late_poll = JobOutcomeView {
        job_id: job_id(1, 1),
        phase: JobPhase::Agent,
        progress: JobProgress::default(),
        heartbeat_at_ms: run.now,
        outcome: JobOutcome::Failed(JobOutcomeFailure {
            kind: StepFailureKind::Cancelled,
            detail: "aborted".to_owned(),
            transient: false,
        }),
    };
    for input in [
        RunInput::JobPolled {
            now_ms: run.now,
            view: late_poll,
        },
        RunInput::TimerFired {
            now_ms: run.now + 10_000_000,
        },
        RunInput::BudgetRefused {
            now_ms: run.now,
            detail: "again".to_owned(),
        },
    ] {
        assert_eq!(run.apply(input), Vec::new());
        assert_eq!(run.state, paused);
    }

    let now = run.advance(3_600_000);
    let effects = run.apply(RunInput::BudgetFreed { now_ms: now });
    assert_eq!(event_names(&effects), ["run.resumed", "run.step_started"]);
    assert_eq!(dispatched_request(&effects).job_id, job_id(1, 2));
    assert_eq!(run.state.status, RunStatus::Running);
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::InProgress));
}

#[test]
fn a_runner_job_refused_for_budget_pauses_the_run_instead_of_failing_the_step() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    assert_eq!(run.live(), job_id(0, 1));
    let effects = run.job_failed(FailureKind::BudgetExhausted);
    assert_eq!(event_names(&effects), ["run.paused"]);
    assert_eq!(run.state.status, RunStatus::Paused);
    assert_eq!(run.state.wake, None, "nothing runs while paused");
    assert_eq!(run.state.steps[0].status, StepStatus::Pending);
    assert_eq!(
        run.state.steps[0].failure, None,
        "the step did nothing wrong"
    );
    assert_eq!(run.state.failure, None);
    assert!(
        !effects
            .iter()
            .any(|effect| matches!(effect, Effect::CancelJob { .. })),
        "the job already ended; there is nothing to stop"
    );

    let now = run.advance(60_000);
    let effects = run.apply(RunInput::BudgetFreed { now_ms: now });
    assert_eq!(event_names(&effects), ["run.resumed", "run.step_started"]);
    assert_eq!(dispatched_request(&effects).job_id, job_id(0, 2));
    assert_eq!(run.state.status, RunStatus::Running);
}

#[test]
fn a_vanished_job_is_re_dispatched_once_then_the_step_fails() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    let now = run.advance(1);
    let effects = run.apply(RunInput::JobVanished {
        now_ms: now,
        job_id: job_id(0, 1),
    });
    assert_eq!(
        event_names(&effects),
        ["run.job_vanished", "run.step_started"]
    );
    assert_eq!(dispatched_request(&effects).job_id, job_id(0, 2));

    // A vanish report about the old job is stale.
    assert_eq!(
        run.apply(RunInput::JobVanished {
            now_ms: run.now,
            job_id: job_id(0, 1)
        }),
        Vec::new()
    );

    let now = run.advance(1);
    let effects = run.apply(RunInput::JobVanished {
        now_ms: now,
        job_id: job_id(0, 2),
    });
    assert_eq!(event_names(&effects), ["run.step_failed", "run.failed"]);
    assert_eq!(
        run.state
            .failure
            .as_ref()
            .map(|failure| failure.failure.kind),
        Some(StepFailureKind::JobVanished)
    );
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::Blocked));
}

#[test]
fn transient_failures_retry_with_exponential_backoff_then_fail_and_retry_resumes_there() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        assert_eq!(run.live(), job_id(0, attempt));
        let effects = run.job_failed(FailureKind::Stalled);
        assert_eq!(event_names(&effects), ["run.step_retry_scheduled"]);
        let wake = run.state.wake.unwrap();
        assert_eq!(wake.reason, WakeReason::RetryStep);
        assert!(effects.contains(&Effect::SetAlarm { at_ms: wake.at_ms }));
        delays.push(wake.at_ms - run.now);
        assert_eq!(run.state.status, RunStatus::Running);

        // An early alarm only re-arms; the one on time starts the next attempt.
        let early = run.apply(RunInput::TimerFired {
            now_ms: wake.at_ms - 1,
        });
        assert_eq!(early, [Effect::SetAlarm { at_ms: wake.at_ms }]);
        let effects = run.timer(wake.at_ms);
        assert_eq!(dispatched_request(&effects).job_id, job_id(0, attempt + 1));
    }
    assert_eq!(delays, [5_000, 10_000, 20_000]);

    let effects = run.job_failed(FailureKind::Stalled);
    assert_eq!(event_names(&effects), ["run.step_failed", "run.failed"]);
    assert_eq!(run.state.status, RunStatus::Failed);
    assert_eq!(run.state.steps[0].failure_history.len(), 4);
    assert_eq!(run.state.steps[0].status, StepStatus::Failed);

    let now = run.advance(1);
    let effects = run.apply(RunInput::Retry { now_ms: now });
    assert_eq!(dispatched_request(&effects).job_id, job_id(0, 5));
    assert_eq!(
        run.state.steps[0].transient_retries, 0,
        "a retry gets the full budget again"
    );
}

#[test]
fn a_permanent_failure_fails_at_once_and_retry_does_not_rerun_earlier_steps() {
    let mut run = Run::started(BuiltInPipeline::Build.pipeline());
    run.inline_reply(&estimate_json());
    run.job_done("design");
    let effects = run.job_failed(FailureKind::ValidationFailed);
    assert_eq!(event_names(&effects), ["run.step_failed", "run.failed"]);
    assert_eq!(
        run.state
            .failure
            .as_ref()
            .map(|failure| (failure.step_index, failure.failure.kind)),
        Some((2, StepFailureKind::ValidationFailed))
    );
    assert_eq!(
        run.step_statuses()[..3],
        [StepStatus::Done, StepStatus::Done, StepStatus::Failed]
    );
    let now = run.advance(1);
    let effects = run.apply(RunInput::Retry { now_ms: now });
    assert_eq!(dispatched_request(&effects).job_id, job_id(2, 2));
    assert_eq!(
        run.dispatched(),
        [job_id(0, 1), job_id(1, 1), job_id(2, 1), job_id(2, 2)].map(|id| id.to_string())
    );
}

#[test]
fn an_unreachable_runner_is_retried_with_the_same_job_then_fails_with_dispatch() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    let settings = EngineSettings::default();
    for failures in 1..=settings.max_runner_failures {
        let now = run.advance(10);
        let effects = run.apply(RunInput::RunnerUnreachable {
            now_ms: now,
            job_id: job_id(0, 1),
            detail: "503 Service Unavailable".to_owned(),
        });
        assert_eq!(event_names(&effects), ["run.runner_unreachable"]);
        let wake = run.state.wake.unwrap();
        assert_eq!(wake.reason, WakeReason::ResendJob);
        assert_eq!(wake.at_ms - run.now, settings.backoff_delay_ms(failures));
        let effects = run.timer(wake.at_ms);
        let Some(Effect::ResendJob { request }) = effects.first() else {
            panic!("expected a re-send, got {effects:?}")
        };
        assert_eq!(
            request.job_id,
            job_id(0, 1),
            "the same job: the harness re-attaches"
        );
    }
    let now = run.advance(10);
    let effects = run.apply(RunInput::RunnerUnreachable {
        now_ms: now,
        job_id: job_id(0, 1),
        detail: "connection refused".to_owned(),
    });
    assert!(effects.contains(&Effect::CancelJob {
        job_id: job_id(0, 1)
    }));
    assert_eq!(event_names(&effects), ["run.step_failed", "run.failed"]);
    let failure = run.state.failure.clone().unwrap().failure;
    assert_eq!(failure.kind, StepFailureKind::Dispatch);
    assert!(
        failure.detail.contains("connection refused"),
        "{}",
        failure.detail
    );
    assert_eq!(run.dispatched(), [job_id(0, 1).to_string()]);
}

#[test]
fn a_runner_that_answers_again_resets_the_unreachable_count_and_is_polled() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    for _ in 0..3 {
        let now = run.advance(10);
        run.apply(RunInput::RunnerUnreachable {
            now_ms: now,
            job_id: job_id(0, 1),
            detail: "503".to_owned(),
        });
    }
    run.polled(JobOutcome::Running);
    assert_eq!(run.state.steps[0].runner_failures, 0);
    // Once the runner has shown it knows the job, a later outage polls instead of re-sending.
    let now = run.advance(10);
    run.apply(RunInput::RunnerUnreachable {
        now_ms: now,
        job_id: job_id(0, 1),
        detail: "503".to_owned(),
    });
    let wake = run.state.wake.unwrap();
    let effects = run.timer(wake.at_ms);
    assert_eq!(
        effects.first(),
        Some(&Effect::PollJob {
            job_id: job_id(0, 1)
        })
    );
}

#[test]
fn cancel_stops_the_job_restores_the_block_and_absorbs_everything_after() {
    let mut run = build_run_at_first_review();
    let now = run.advance(1);
    let effects = run.apply(RunInput::Cancel { now_ms: now });
    assert_eq!(event_names(&effects), ["run.cancelled"]);
    assert!(effects.contains(&Effect::CancelJob {
        job_id: job_id(3, 1)
    }));
    assert_eq!(run.state.status, RunStatus::Cancelled);
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::Planned));
    assert_eq!(run.state.wake, None);
    let cancelled = run.state.clone();
    assert_eq!(
        check_input(&run.state, &RunInput::Cancel { now_ms: run.now })
            .unwrap_err()
            .code,
        RefusalCode::RunFinished
    );
    for input in [
        RunInput::Retry { now_ms: run.now },
        RunInput::Cancel { now_ms: run.now },
        RunInput::TimerFired {
            now_ms: run.now + 1,
        },
        RunInput::BudgetFreed { now_ms: run.now },
        RunInput::Start { now_ms: run.now },
        RunInput::PullRequestMerged { now_ms: run.now },
    ] {
        assert_eq!(run.apply(input), Vec::new());
        assert_eq!(run.state, cancelled);
    }
}

#[test]
fn a_queued_run_starts_by_itself_when_its_last_dependency_is_done() {
    let first = BlockId::from_random([1; 8]);
    let second = BlockId::from_random([2; 8]);
    let mut run = Run::with_setup(setup(
        BuiltInPipeline::Quick.pipeline(),
        vec![first.clone(), second.clone()],
    ));
    let effects = run.start();
    assert_eq!(event_names(&effects), ["run.queued"]);
    assert_eq!(run.state.status, RunStatus::Blocked);
    assert!(run.dispatched().is_empty());
    assert!(
        run.block_writes().is_empty(),
        "a queued task keeps its status"
    );

    assert_eq!(
        run.apply(RunInput::DependencyDone {
            now_ms: run.now,
            block_id: first.clone()
        }),
        Vec::new()
    );
    assert_eq!(
        run.state.park,
        Some(Park::Dependencies {
            waiting_on: vec![second.clone()]
        })
    );
    let now = run.advance(1);
    let effects = run.apply(RunInput::DependencyDone {
        now_ms: now,
        block_id: second,
    });
    assert_eq!(event_names(&effects), ["run.started", "run.step_started"]);
    assert_eq!(run.state.status, RunStatus::Running);
    assert_eq!(run.dispatched(), [job_id(0, 1).to_string()]);
}

#[test]
fn inputs_before_start_are_ignored_and_start_is_idempotent() {
    let mut run = Run::new(BuiltInPipeline::Quick.pipeline());
    let fresh = run.state.clone();
    assert_eq!(
        run.apply(RunInput::TimerFired { now_ms: START_MS }),
        Vec::new()
    );
    assert_eq!(
        run.apply(RunInput::BudgetFreed { now_ms: START_MS }),
        Vec::new()
    );
    assert_eq!(run.state, fresh);
    run.start();
    let started = run.state.clone();
    assert_eq!(run.start(), Vec::new());
    assert_eq!(run.state, started);
}

#[test]
fn an_inline_call_that_never_answers_times_out_into_a_retry() {
    let mut run = Run::started(BuiltInPipeline::Build.pipeline());
    let wake = run.state.wake.unwrap();
    assert_eq!(wake.reason, WakeReason::InlineCallTimeout);
    assert_eq!(
        wake.at_ms,
        START_MS + EngineSettings::default().inline_call_timeout_ms
    );
    let effects = run.timer(wake.at_ms);
    assert_eq!(event_names(&effects), ["run.step_retry_scheduled"]);
    assert_eq!(
        run.state.steps[0].failure.as_ref().map(|f| f.kind),
        Some(StepFailureKind::ModelCall)
    );
    // The late reply to the timed-out call is stale.
    let stale = RunInput::InlineReplied {
        now_ms: run.now,
        call_id: job_id(0, 1),
        text: estimate_json(),
    };
    assert_eq!(run.apply(stale), Vec::new());
    let retry_at = run.state.wake.unwrap().at_ms;
    let effects = run.timer(retry_at);
    assert_eq!(dispatched_request(&effects).job_id, job_id(0, 2));
}

#[test]
fn a_malformed_answer_is_retried_like_a_transient_failure() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    run.coder_done(3);
    let effects = run.job_done("LGTM, ship it!");
    assert_eq!(event_names(&effects), ["run.step_retry_scheduled"]);
    let failure = run.state.steps[1].failure.clone().unwrap();
    assert_eq!(failure.kind, StepFailureKind::MalformedOutput);
    assert!(failure.detail.contains("JSON"), "{}", failure.detail);
}

#[test]
fn a_coding_job_without_a_pull_request_fails_the_step() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    let effects = run.job_done("I changed nothing.");
    assert_eq!(event_names(&effects), ["run.step_failed", "run.failed"]);
    assert_eq!(
        run.state.failure.unwrap().failure.kind,
        StepFailureKind::PullRequestFailed
    );
}

#[test]
fn a_pipeline_without_code_ends_done_and_gives_the_block_its_status_back() {
    let pipeline = Pipeline {
        name: "design only".to_owned(),
        steps: vec![PipelineStep::of(AgentKind::Architect).with_approval_after()],
    };
    let mut run = Run::started(pipeline);
    run.job_done("A design.");
    let effects = run.approve(ApprovalVerdict::Approve);
    assert_eq!(event_names(&effects), ["run.approval_given", "run.done"]);
    assert_eq!(
        run.block_writes(),
        [
            BlockStatus::InProgress,
            BlockStatus::Blocked,
            BlockStatus::Planned
        ]
    );
}

#[test]
fn a_merge_at_any_point_ends_the_run_done_and_skips_what_is_left() {
    let mut run = build_run_at_first_review();
    let now = run.advance(1);
    let effects = run.apply(RunInput::PullRequestMerged { now_ms: now });
    assert_eq!(event_names(&effects), ["run.done"]);
    assert!(effects.contains(&Effect::CancelJob {
        job_id: job_id(3, 1)
    }));
    assert_eq!(run.state.status, RunStatus::Done);
    assert_eq!(
        run.step_statuses(),
        [
            StepStatus::Done,
            StepStatus::Done,
            StepStatus::Done,
            StepStatus::Skipped,
            StepStatus::Skipped
        ]
    );
    assert_eq!(run.block_writes().last(), Some(&BlockStatus::Done));

    // A failed run whose PR a person merges by hand is done too.
    let mut run = build_run_at_first_review();
    run.job_failed(FailureKind::Rejected);
    assert_eq!(run.state.status, RunStatus::Failed);
    let now = run.advance(1);
    run.apply(RunInput::PullRequestMerged { now_ms: now });
    assert_eq!(run.state.status, RunStatus::Done);
    assert_eq!(run.state.failure, None);

    // Without a pull request there is nothing to merge.
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    assert_eq!(
        run.apply(RunInput::PullRequestMerged { now_ms: run.now }),
        Vec::new()
    );
}

#[test]
fn retry_is_refused_unless_the_run_failed() {
    let run = Run::started(BuiltInPipeline::Quick.pipeline());
    let refusal = check_input(&run.state, &RunInput::Retry { now_ms: 0 }).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::RunNotFailed);
    assert_eq!(refusal.code.http_status(), 409);
    assert!(refusal.message.contains("running"));
}

#[test]
fn stale_polls_of_earlier_attempts_change_nothing() {
    let mut run = build_run_at_first_review();
    run.review(0.3);
    assert_eq!(run.live(), job_id(2, 2));
    let before = run.state.clone();
    for stale in [job_id(2, 1), job_id(3, 1), job_id(1, 1)] {
        let view = JobOutcomeView {
            job_id: stale,
            phase: JobPhase::Finished,
            progress: JobProgress::default(),
            heartbeat_at_ms: run.now,
            outcome: JobOutcome::Succeeded(JobOutput {
                summary: Some("old".to_owned()),
                pull_request: None,
            }),
        };
        assert_eq!(
            run.apply(RunInput::JobPolled {
                now_ms: run.now,
                view
            }),
            Vec::new()
        );
    }
    assert_eq!(run.state, before);
}

#[test]
fn events_and_inputs_have_stable_wire_names() {
    let event = RunEvent::StepStarted {
        step_index: 2,
        kind: AgentKind::Coder,
        attempt: 1,
        job_id: job_id(2, 1),
    };
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({ "type": "run.step_started", "stepIndex": 2, "kind": "coder", "attempt": 1,
                "jobId": "run_0707070707070707-2-1" })
    );
    let input: RunInput = serde_json::from_value(json!({
        "type": "approval_given", "nowMs": 5, "approvalId": "apr-3-1",
        "verdict": { "verdict": "request_changes", "feedback": "More tests." }
    }))
    .unwrap();
    assert_eq!(
        input,
        RunInput::ApprovalGiven {
            now_ms: 5,
            approval_id: "apr-3-1".to_owned(),
            verdict: ApprovalVerdict::RequestChanges {
                feedback: "More tests.".to_owned()
            }
        }
    );
    let comment_severity = serde_json::to_value(Severity::Blocker).unwrap();
    assert_eq!(comment_severity, "blocker");
    let status = serde_json::to_value(RunStatus::Cancelled).unwrap();
    assert_eq!(status, "cancelled");
}

#[test]
fn backoff_doubles_from_the_base_up_to_the_cap() {
    let settings = EngineSettings::default();
    let delays: Vec<u64> = (1..=8)
        .map(|retry| settings.backoff_delay_ms(retry))
        .collect();
    assert_eq!(
        delays,
        [
            5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000
        ]
    );
    assert_eq!(settings.backoff_delay_ms(u32::MAX), 300_000);
}

#[test]
fn a_job_whose_heartbeat_stops_moving_is_stopped_and_retried_as_stalled() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    let frozen_heartbeat = run.now;
    let poll = |run: &mut Run, now: u64| {
        let view = JobOutcomeView {
            job_id: run.live(),
            phase: JobPhase::Agent,
            progress: JobProgress::default(),
            heartbeat_at_ms: frozen_heartbeat,
            outcome: JobOutcome::Running,
        };
        run.apply(RunInput::JobPolled { now_ms: now, view })
    };
    let silence = EngineSettings::default().max_heartbeat_silence_ms;
    assert_eq!(
        event_names(&poll(&mut run, START_MS + 1)),
        ["run.step_progress"]
    );
    assert_eq!(
        event_names(&poll(&mut run, START_MS + 1 + silence)),
        Vec::<&str>::new()
    );
    let effects = poll(&mut run, START_MS + 2 + silence);
    assert!(effects.contains(&Effect::CancelJob {
        job_id: job_id(0, 1)
    }));
    assert_eq!(event_names(&effects), ["run.step_retry_scheduled"]);
    assert_eq!(
        run.state.steps[0]
            .failure
            .as_ref()
            .map(|failure| failure.kind),
        Some(StepFailureKind::Stalled)
    );
}

#[test]
fn a_malformed_answer_is_explained_to_the_next_attempt() {
    let mut run = Run::started(BuiltInPipeline::Quick.pipeline());
    run.coder_done(3);
    run.job_done("LGTM");
    let retry_at = run.state.wake.unwrap().at_ms;
    let effects = run.timer(retry_at);
    let request = dispatched_request(&effects);
    assert_eq!(request.job_id, job_id(1, 2));
    assert!(request.user_prompt.contains(
        "## Your previous answer could not be used\nexpected a JSON object with the review"
    ));
    run.review(0.9);
    assert_eq!(run.state.steps[1].answer_problem, None);
}

#[test]
fn a_batch_is_performed_dispatch_first_and_otherwise_in_order() {
    let mut run = Run::new(BuiltInPipeline::Quick.pipeline());
    let effects = run.start();
    let names: Vec<&str> = effects
        .iter()
        .map(|effect| match effect {
            Effect::DispatchJob { .. } => "dispatch",
            Effect::Emit { event, .. } => event.name(),
            Effect::WriteBlockStatus { .. } => "block",
            Effect::SetAlarm { .. } => "alarm",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        [
            "run.started",
            "block",
            "run.step_started",
            "dispatch",
            "alarm"
        ]
    );
    let ordered: Vec<&Effect> = crate::run::performance_order(&effects).collect();
    assert_eq!(ordered.len(), effects.len());
    assert!(ordered[0].is_runner_dispatch());
    let rest: Vec<&Effect> = effects
        .iter()
        .filter(|effect| !effect.is_runner_dispatch())
        .collect();
    assert_eq!(ordered[1..], rest[..], "the others keep their order");

    // An inline call keeps its place after the events that say the step started.
    let mut build = Run::new(BuiltInPipeline::Build.pipeline());
    let effects = build.start();
    let ordered: Vec<&Effect> = crate::run::performance_order(&effects).collect();
    assert_eq!(ordered, effects.iter().collect::<Vec<_>>());
}
