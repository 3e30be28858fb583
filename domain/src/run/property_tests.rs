//! Property-style tests: seeded random input sequences (a small hand-rolled PRNG, so a failure
//! reproduces from its seed) driven through [`apply`], with the engine's invariants checked after
//! every transition.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::tests::setup;
use super::*;
use crate::agent_output::ExpectedOutput;
use crate::board::BlockStatus;
use crate::job::{FailureKind, JobPhase, JobProgress};
use crate::pipeline::{BuiltInPipeline, CompanionSettings, PipelineStep};

/// SplitMix64: tiny, fast, and good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn dependencies() -> [BlockId; 2] {
    [BlockId::from_random([1; 8]), BlockId::from_random([2; 8])]
}

fn random_pipeline(rng: &mut Rng) -> Pipeline {
    match rng.below(3) {
        0 => BuiltInPipeline::Build.pipeline(),
        1 => BuiltInPipeline::Quick.pipeline(),
        _ => Pipeline {
            name: "custom".to_owned(),
            steps: vec![
                PipelineStep::of(AgentKind::Architect).with_approval_after(),
                PipelineStep::of(AgentKind::Coder),
                PipelineStep {
                    kind: AgentKind::Custom,
                    surface: Surface::Inline,
                    approval_after: false,
                    companion: Some(CompanionSettings {
                        pass_threshold: 0.5,
                        rework_budget: 1,
                    }),
                    instructions: Some("Check the docs changed too.".to_owned()),
                },
                PipelineStep::of(AgentKind::Tester),
            ],
        },
    }
}

/// An answer for the step: valid for what it expects, a decision request, or garbage.
fn random_reply(rng: &mut Rng, request: &JobRequest, state: &RunState) -> String {
    let pipeline_step = &state.pipeline.steps[request.step_index];
    let expected = ExpectedOutput::for_step(pipeline_step.kind, pipeline_step.companion.is_some());
    let roll = rng.below(100);
    if roll < 8 {
        return "I could not decide what to write.".to_owned();
    }
    if roll < 18 {
        return json!({ "decision": { "question": "Which way?", "options": ["left", "right", "back"] } })
            .to_string();
    }
    match expected {
        ExpectedOutput::Text => format!("Output of attempt {}.", request.job_id),
        ExpectedOutput::Estimate => json!({
            "complexity": { "score": 1 + rng.below(5), "reason": "r" },
            "risk": { "score": 1 + rng.below(5), "reason": "r" },
            "impact": { "score": 1 + rng.below(5), "reason": "r" }
        })
        .to_string(),
        ExpectedOutput::ReviewVerdict => {
            let rating = *rng.pick(&[0.1, 0.3, 0.5, 0.7, 0.9, 1.0]);
            json!({ "rating": rating, "comments": [{ "severity": "major", "text": "Do better." }] })
                .to_string()
        }
        ExpectedOutput::TestReport => {
            let passed = rng.chance(70);
            json!({ "passed": passed, "testsRun": 5, "testsFailed": if passed { 0 } else { 2 },
                    "summary": "Ran the suite." })
            .to_string()
        }
    }
}

fn random_outcome(rng: &mut Rng, request: &JobRequest, state: &RunState) -> JobOutcome {
    let roll = rng.below(100);
    if roll < 30 {
        JobOutcome::Running
    } else if roll < 80 {
        let pull_request =
            (request.surface == Surface::RunnerCoding && rng.chance(90)).then(|| {
                PullRequestBrief {
                    number: 1 + rng.below(2),
                    url: "http://forge/pr".to_owned(),
                    branch: "cat/x".to_owned(),
                }
            });
        JobOutcome::Succeeded(JobOutput {
            summary: Some(random_reply(rng, request, state)),
            pull_request,
        })
    } else {
        let kind = *rng.pick(&FailureKind::ALL);
        JobOutcome::Failed(JobOutcomeFailure {
            kind: kind.into(),
            detail: "failed".to_owned(),
            transient: kind.is_transient(),
        })
    }
}

/// A plausible next input: mostly about the job in flight or the open park, sometimes stale or
/// bogus, with time moving forward.
fn random_input(rng: &mut Rng, state: &RunState, now: &mut u64) -> RunInput {
    *now += rng.below(20_000);
    let now_ms = *now;
    let live = state.live_job().map(|job| job.request.clone());
    let stale_id = RunJobId::new(
        state.run_id.clone(),
        rng.below(state.steps.len() as u64) as usize,
        rng.below(4) as u32,
    );
    let some_job_id = match (&live, rng.chance(80)) {
        (Some(request), true) => request.job_id.clone(),
        _ => stale_id,
    };
    match rng.below(100) {
        0..=2 => RunInput::Start { now_ms },
        3..=32 => match &live {
            Some(request) if request.surface.is_runner() => RunInput::JobPolled {
                now_ms,
                view: JobOutcomeView {
                    job_id: some_job_id,
                    phase: JobPhase::Agent,
                    progress: JobProgress {
                        agent_steps: rng.below(5) as u32,
                        ..JobProgress::default()
                    },
                    heartbeat_at_ms: now_ms,
                    outcome: random_outcome(rng, request, state),
                },
            },
            Some(request) => RunInput::InlineReplied {
                now_ms,
                call_id: some_job_id,
                text: random_reply(rng, request, state),
            },
            None => fire_timer(rng, state, now),
        },
        33..=45 => fire_timer(rng, state, now),
        46..=48 => RunInput::JobVanished {
            now_ms,
            job_id: some_job_id,
        },
        49..=53 => RunInput::RunnerUnreachable {
            now_ms,
            job_id: some_job_id,
            detail: "503".to_owned(),
        },
        54..=55 => RunInput::InlineFailed {
            now_ms,
            call_id: some_job_id,
            detail: "upstream error".to_owned(),
            transient: rng.chance(50),
        },
        56..=64 => {
            let (decision_id, choice) = match &state.park {
                Some(Park::Decision(decision)) if rng.chance(85) => {
                    (decision.id.clone(), rng.pick(&decision.options).clone())
                }
                _ => ("dec-0-1".to_owned(), "left".to_owned()),
            };
            RunInput::DecisionAnswered {
                now_ms,
                decision_id,
                choice,
            }
        }
        65..=75 => {
            let approval_id = match &state.park {
                Some(Park::Approval(approval)) if rng.chance(85) => approval.id.clone(),
                _ => "apr-0-1".to_owned(),
            };
            let verdict = match rng.below(10) {
                0..=5 => ApprovalVerdict::Approve,
                6..=8 => ApprovalVerdict::RequestChanges {
                    feedback: if rng.chance(90) { "Change it." } else { " " }.to_owned(),
                },
                _ => ApprovalVerdict::Reject { feedback: None },
            };
            RunInput::ApprovalGiven {
                now_ms,
                approval_id,
                verdict,
            }
        }
        76..=79 => RunInput::BudgetRefused {
            now_ms,
            detail: "budget spent".to_owned(),
        },
        80..=84 => RunInput::BudgetFreed { now_ms },
        85 => RunInput::Cancel { now_ms },
        86..=90 => RunInput::Retry { now_ms },
        91..=94 => RunInput::DependencyDone {
            now_ms,
            block_id: rng.pick(&dependencies()).clone(),
        },
        _ => RunInput::PullRequestMerged { now_ms },
    }
}

/// The alarm firing: usually on time (moving the clock there), sometimes early or a day late.
fn fire_timer(rng: &mut Rng, state: &RunState, now: &mut u64) -> RunInput {
    if let Some(wake) = state.wake {
        match rng.below(10) {
            0 => {}
            1 => *now = (*now).max(wake.at_ms) + 86_400_000,
            _ => *now = (*now).max(wake.at_ms),
        }
    }
    RunInput::TimerFired { now_ms: *now }
}

/// What the invariants need to remember across a run's transitions.
#[derive(Default)]
struct History {
    dispatched: BTreeSet<RunJobId>,
    last_event_seq: u64,
    transitions: u64,
}

fn check_transition(
    seed: u64,
    history: &mut History,
    before: &RunState,
    input: &RunInput,
    after: &RunState,
    effects: &[Effect],
) {
    let context = || format!("seed {seed}, input {input:?}, before {:?}", before.status);

    // Deterministic.
    let (again, again_effects) = apply(before.clone(), input);
    assert_eq!(
        (&again, again_effects.as_slice()),
        (after, effects),
        "{}",
        context()
    );

    // Terminal states absorb every input; a failed run moves only on retry or cancel.
    if before.status.is_terminal()
        || (before.status == RunStatus::Failed
            && !matches!(
                input,
                RunInput::Retry { .. }
                    | RunInput::Cancel { .. }
                    | RunInput::PullRequestMerged { .. }
            ))
    {
        assert_eq!(after, before, "{}", context());
        assert!(effects.is_empty(), "{}", context());
    }

    // A human wait never fails a run: only a person's reject does; a paused run never fails.
    // (A merge ends any run as done; that is a person's word too.)
    if before.status == RunStatus::Blocked && after.status == RunStatus::Failed {
        assert!(
            matches!(
                input,
                RunInput::ApprovalGiven {
                    verdict: ApprovalVerdict::Reject { .. },
                    ..
                }
            ),
            "{}",
            context()
        );
    }
    if before.status == RunStatus::Paused {
        assert_ne!(after.status, RunStatus::Failed, "{}", context());
    }

    // Never two dispatches for the same (step, attempt); a re-send or poll names the job in flight.
    for effect in effects {
        match effect {
            Effect::DispatchJob { request } | Effect::CallModel { request } => {
                assert!(
                    history.dispatched.insert(request.job_id.clone()),
                    "{} dispatched {} twice",
                    context(),
                    request.job_id
                );
                assert_eq!(request.job_id.run_id(), &after.run_id);
            }
            Effect::ResendJob { request } => {
                assert!(
                    request.surface.is_runner(),
                    "{}: re-sent an inline call",
                    context()
                );
                assert!(
                    history.dispatched.contains(&request.job_id),
                    "{}",
                    context()
                );
                assert_eq!(after.live_job().map(|job| &job.request), Some(request));
            }
            Effect::PollJob { job_id } => {
                assert!(
                    after
                        .live_job()
                        .is_some_and(|job| job.request.surface.is_runner()),
                    "{}: polled an inline call",
                    context()
                );
                assert_eq!(
                    after.live_job().map(|job| &job.request.job_id),
                    Some(job_id),
                    "{}",
                    context()
                );
            }
            Effect::SetAlarm { at_ms } => assert!(*at_ms >= input.now_ms(), "{}", context()),
            Effect::Emit { seq, .. } => {
                assert_eq!(
                    *seq,
                    history.last_event_seq + 1,
                    "{}: event seq gap",
                    context()
                );
                history.last_event_seq = *seq;
            }
            _ => {}
        }
    }

    check_state(after, &context());

    // The coordinator checkpoints every state; a sample is enough to catch a type that does not
    // round-trip (a full round trip per transition would make this test slow in debug builds).
    history.transitions += 1;
    if history.transitions.is_multiple_of(8) || after.status != before.status {
        let wire = serde_json::to_string(after).unwrap();
        assert_eq!(&serde_json::from_str::<RunState>(&wire).unwrap(), after);
    }
}

/// Facts about any single state.
fn check_state(state: &RunState, context: &str) {
    for (index, step) in state.steps.iter().enumerate() {
        if index != state.current_step {
            assert!(
                step.job.is_none(),
                "{context}: a job outside the current step"
            );
        }
        if step.status == StepStatus::Waiting {
            let parked_here = match &state.park {
                Some(Park::Decision(decision)) => decision.step_index == index,
                Some(Park::Approval(approval)) => approval.step_index == index,
                _ => false,
            };
            assert!(parked_here, "{context}: step {index} waits on nothing");
        }
    }
    if !state.started {
        return;
    }
    assert_eq!(
        state.status == RunStatus::Blocked,
        state.park.is_some(),
        "{context}: blocked exactly when parked ({:?})",
        state.park
    );
    if state.status == RunStatus::Running {
        // A running run always has a way forward: an alarm to poll, re-send, retry or time out.
        assert!(state.wake.is_some(), "{context}: running without an alarm");
        assert_eq!(
            state.steps[state.current_step].status,
            StepStatus::Working,
            "{context}"
        );
    } else {
        assert!(
            state.live_job().is_none(),
            "{context}: a job in flight while {:?}",
            state.status
        );
    }
    if state.status == RunStatus::Failed {
        assert!(state.failure.is_some(), "{context}");
    }

    // The block's status follows its run.
    let before_run = state.block_status_before_run;
    let expected_block_status: &[BlockStatus] = match (state.status, &state.park) {
        (RunStatus::Running, _) => &[BlockStatus::InProgress],
        (RunStatus::Blocked, Some(Park::Dependencies { .. })) => &[before_run],
        (RunStatus::Blocked, Some(Park::Merge)) => &[BlockStatus::PrReady],
        (RunStatus::Blocked | RunStatus::Paused | RunStatus::Failed, _) => &[BlockStatus::Blocked],
        (RunStatus::Done, _) => &[BlockStatus::Done, before_run],
        (RunStatus::Cancelled, _) => &[before_run],
    };
    assert!(
        expected_block_status.contains(&state.block_status),
        "{context}: block {:?} while the run is {:?} ({:?})",
        state.block_status,
        state.status,
        state.park
    );
}

#[test]
fn random_input_sequences_keep_every_invariant() {
    let mut final_statuses: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut events_seen: BTreeSet<&'static str> = BTreeSet::new();
    for seed in 0..200u64 {
        let mut rng = Rng(seed);
        let pipeline = random_pipeline(&mut rng);
        let waiting_on = if rng.chance(20) {
            dependencies().to_vec()
        } else {
            Vec::new()
        };
        let mut state = RunState::new(setup(pipeline, waiting_on));
        let mut now = state.created_at_ms;
        let mut history = History::default();
        for turn in 0..100 {
            let input = if turn == 0 {
                RunInput::Start { now_ms: now }
            } else {
                random_input(&mut rng, &state, &mut now)
            };
            let (after, effects) = apply(state.clone(), &input);
            check_transition(seed, &mut history, &state, &input, &after, &effects);
            for effect in &effects {
                if let Effect::Emit { event, .. } = effect {
                    events_seen.insert(event.name());
                }
            }
            state = after;
        }
        *final_statuses.entry(state.status.as_str()).or_default() += 1;
    }
    // The generator must reach every corner, or the invariants above prove little.
    for status in ["done", "failed", "cancelled", "blocked"] {
        assert!(
            final_statuses.get(status).copied().unwrap_or(0) > 0,
            "no run ended {status}: {final_statuses:?}"
        );
    }
    for name in [
        "run.queued",
        "run.rework_requested",
        "run.decision_requested",
        "run.decision_answered",
        "run.approval_given",
        "run.job_vanished",
        "run.runner_unreachable",
        "run.step_retry_scheduled",
        "run.paused",
        "run.resumed",
        "run.retried",
        "run.pr_ready",
        "run.done",
    ] {
        assert!(
            events_seen.contains(name),
            "never saw {name}: {events_seen:?}"
        );
    }
}
