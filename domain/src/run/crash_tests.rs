//! The checkpoint-before-effect rule, simulated: a coordinator that keeps only its state, its
//! outbox of effects not yet performed and its alarm, and crashes at random points (losing whatever
//! it held in memory), drives `build` runs against a fake runner that keeps its jobs across
//! restarts, as the harness does. Every run must still end done, and no job may be started twice.

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;

use super::tests::setup;
use super::*;
use crate::job::{JobPhase, JobProgress};
use crate::pipeline::BuiltInPipeline;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct FakeJob {
    request: JobRequest,
    polls_until_done: u32,
    outcome: Option<JobOutcome>,
}

/// A runner that, like `cat-harness serve`, accepts a job id once (a repeated post re-attaches),
/// keeps its jobs across restarts and fails the ones that were running with `harness_shutdown`.
#[derive(Default)]
struct FakeRunner {
    jobs: BTreeMap<RunJobId, FakeJob>,
    started: BTreeMap<RunJobId, u32>,
    reviews: u32,
}

impl FakeRunner {
    fn view(&self, job_id: &RunJobId) -> JobOutcomeView {
        let job = &self.jobs[job_id];
        JobOutcomeView {
            job_id: job_id.clone(),
            phase: JobPhase::Agent,
            progress: JobProgress {
                agent_steps: 10 - job.polls_until_done.min(10),
                ..JobProgress::default()
            },
            heartbeat_at_ms: u64::from(job.polls_until_done),
            outcome: job.outcome.clone().unwrap_or(JobOutcome::Running),
        }
    }

    fn post(&mut self, request: &JobRequest, rng: &mut Rng) -> JobOutcomeView {
        if !self.jobs.contains_key(&request.job_id) {
            let step_index = request.job_id.step_index();
            let still_running = self
                .jobs
                .iter()
                .find(|(id, job)| id.step_index() == step_index && job.outcome.is_none());
            assert!(
                still_running.is_none(),
                "{} posted while {:?} still runs",
                request.job_id,
                still_running.map(|(id, _)| id)
            );
            *self.started.entry(request.job_id.clone()).or_default() += 1;
            self.jobs.insert(
                request.job_id.clone(),
                FakeJob {
                    request: request.clone(),
                    polls_until_done: (rng.next() % 3) as u32,
                    outcome: None,
                },
            );
        }
        self.view(&request.job_id)
    }

    fn poll(&mut self, job_id: &RunJobId, rng: &mut Rng) -> Option<JobOutcomeView> {
        let failing = rng.chance(5);
        let reviews = &mut self.reviews;
        let job = self.jobs.get_mut(job_id)?;
        if job.outcome.is_none() {
            if job.polls_until_done > 0 {
                job.polls_until_done -= 1;
            } else if failing {
                job.outcome = Some(JobOutcome::Failed(JobOutcomeFailure {
                    kind: StepFailureKind::Stalled,
                    detail: "stalled".to_owned(),
                    transient: true,
                }));
            } else {
                job.outcome = Some(JobOutcome::Succeeded(scripted_output(
                    &job.request,
                    reviews,
                )));
            }
        }
        Some(self.view(job_id))
    }

    fn cancel(&mut self, job_id: &RunJobId) {
        if let Some(job) = self.jobs.get_mut(job_id)
            && job.outcome.is_none()
        {
            job.outcome = Some(JobOutcome::Failed(JobOutcomeFailure {
                kind: StepFailureKind::Cancelled,
                detail: "cancelled".to_owned(),
                transient: false,
            }));
        }
    }

    fn restart(&mut self) {
        for job in self.jobs.values_mut() {
            if job.outcome.is_none() {
                job.outcome = Some(JobOutcome::Failed(JobOutcomeFailure {
                    kind: StepFailureKind::HarnessShutdown,
                    detail: "the harness restarted".to_owned(),
                    transient: true,
                }));
            }
        }
    }
}

/// What each step's agent answers: the first review is below the threshold, later ones pass.
fn scripted_output(request: &JobRequest, reviews: &mut u32) -> JobOutput {
    let summary = match request.kind {
        AgentKind::Reviewer => {
            *reviews += 1;
            let rating = if *reviews == 1 { 0.3 } else { 0.9 };
            json!({ "rating": rating, "comments": [] }).to_string()
        }
        AgentKind::Tester => json!({ "passed": true, "testsRun": 3, "testsFailed": 0,
                                     "summary": "green" })
        .to_string(),
        _ => "done".to_owned(),
    };
    JobOutput {
        summary: Some(summary),
        pull_request: (request.surface == Surface::RunnerCoding).then(|| PullRequestBrief {
            number: 1,
            url: "http://forge/pr/1".to_owned(),
            branch: "cat/x".to_owned(),
        }),
    }
}

/// What survives a crash.
struct Durable {
    state: RunState,
    outbox: VecDeque<Effect>,
    alarm: Option<u64>,
}

impl Durable {
    /// One storage write: the new state, the effect just performed taken off the outbox, the new
    /// effects appended.
    fn commit(&mut self, input: Option<&RunInput>, performed_one: bool) {
        if performed_one {
            self.outbox.pop_front();
        }
        if let Some(input) = input {
            let (state, effects) = apply(self.state.clone(), input);
            self.state = state;
            self.outbox.extend(effects);
        }
    }
}

fn simulate(seed: u64) -> (RunState, FakeRunner, usize) {
    let mut rng = Rng(seed);
    let mut runner = FakeRunner::default();
    let mut durable = Durable {
        state: RunState::new(setup(BuiltInPipeline::Build.pipeline(), Vec::new())),
        outbox: VecDeque::new(),
        alarm: None,
    };
    let mut now = 1_000_000u64;
    let mut events: BTreeMap<u64, RunEvent> = BTreeMap::new();
    let mut crashes = 0;
    durable.commit(Some(&RunInput::Start { now_ms: now }), false);
    for _ in 0..5_000 {
        if durable.state.status.is_terminal() && durable.outbox.is_empty() {
            break;
        }
        now += 100;
        let Some(effect) = durable.outbox.front().cloned() else {
            // Nothing to perform: a person acts, or time passes to the alarm.
            let input = match (&durable.state.status, &durable.state.park) {
                (RunStatus::Blocked, Some(Park::Approval(approval))) => RunInput::ApprovalGiven {
                    now_ms: now,
                    approval_id: approval.id.clone(),
                    verdict: ApprovalVerdict::Approve,
                },
                (RunStatus::Blocked, Some(Park::Merge)) => {
                    RunInput::PullRequestMerged { now_ms: now }
                }
                (RunStatus::Failed, _) => RunInput::Retry { now_ms: now },
                _ => {
                    // The cron sweep re-arms a running run whose alarm was lost.
                    let at = durable
                        .alarm
                        .take()
                        .or(durable.state.alarm_at_ms())
                        .expect("a running run always has an alarm");
                    now = now.max(at);
                    RunInput::TimerFired { now_ms: now }
                }
            };
            durable.commit(Some(&input), false);
            continue;
        };
        if rng.chance(2) {
            runner.restart();
        }
        let outcome_input = match &effect {
            Effect::DispatchJob { request } | Effect::ResendJob { request } => {
                if rng.chance(10) {
                    // Half the time the post reached the runner and only the answer was lost.
                    if rng.chance(50) {
                        runner.post(request, &mut rng);
                    }
                    Some(RunInput::RunnerUnreachable {
                        now_ms: now,
                        job_id: request.job_id.clone(),
                        detail: "503".to_owned(),
                    })
                } else {
                    Some(RunInput::JobPolled {
                        now_ms: now,
                        view: runner.post(request, &mut rng),
                    })
                }
            }
            Effect::PollJob { job_id } => Some(match runner.poll(job_id, &mut rng) {
                Some(view) => RunInput::JobPolled { now_ms: now, view },
                None => RunInput::JobVanished {
                    now_ms: now,
                    job_id: job_id.clone(),
                },
            }),
            Effect::CallModel { request } => Some(RunInput::InlineReplied {
                now_ms: now,
                call_id: request.job_id.clone(),
                text: json!({
                    "complexity": { "score": 2, "reason": "r" },
                    "risk": { "score": 2, "reason": "r" },
                    "impact": { "score": 2, "reason": "r" }
                })
                .to_string(),
            }),
            Effect::CancelJob { job_id } => {
                runner.cancel(job_id);
                None
            }
            Effect::SetAlarm { at_ms } => {
                durable.alarm = Some(*at_ms);
                None
            }
            Effect::WriteBlockStatus { .. } => None,
            Effect::Emit { seq, event, .. } => {
                // A re-performed emit repeats the same event under the same seq.
                let previous = events.insert(*seq, event.clone());
                assert!(
                    previous.is_none_or(|previous| &previous == event),
                    "seed {seed}"
                );
                None
            }
        };
        if rng.chance(8) {
            // Crash after performing the effect, before storing its outcome: the input is lost,
            // the effect stays in the outbox and is performed again on restart; the alarm may be
            // lost with the process.
            crashes += 1;
            if rng.chance(50) {
                durable.alarm = None;
            }
            continue;
        }
        durable.commit(outcome_input.as_ref(), true);
    }
    (durable.state, runner, crashes)
}

#[test]
fn runs_survive_crashes_at_any_point_and_no_job_starts_twice() {
    let mut total_crashes = 0;
    for seed in 0..40 {
        let (state, runner, crashes) = simulate(seed);
        total_crashes += crashes;
        assert_eq!(
            state.status,
            RunStatus::Done,
            "seed {seed}: {:?}",
            state.park
        );
        assert_eq!(
            state.block_status,
            crate::board::BlockStatus::Done,
            "seed {seed}"
        );
        for (job_id, starts) in &runner.started {
            assert_eq!(
                *starts, 1,
                "seed {seed}: job {job_id} started {starts} times"
            );
        }
        // (FakeRunner::post also checks that no attempt starts while an earlier attempt of the same
        // step still runs.)
        assert!(
            state
                .steps
                .iter()
                .all(|step| step.status == StepStatus::Done)
        );
    }
    assert!(
        total_crashes > 100,
        "the simulation crashed too rarely: {total_crashes}"
    );
}
