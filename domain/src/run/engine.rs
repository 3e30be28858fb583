//! [`apply`]: the run's transition function.

use super::{
    ApprovalReason, ApprovalVerdict, Effect, FAILURE_HISTORY_LIMIT, JobOutcome, JobOutcomeView,
    JobOutput, JobRequest, LiveJob, OpenApproval, Park, RunEvent, RunFailure, RunInput, RunJobId,
    RunState, RunStatus, StepActivity, StepFailure, StepFailureKind, StepStatus, Wake, WakeReason,
    open_decision,
};
use crate::agent_output::{AgentReply, ExpectedOutput, ReviewVerdict, parse_agent_reply};
use crate::board::BlockStatus;
use crate::ids::BlockId;
use crate::pipeline::Surface;
use crate::prompt::{
    EarlierOutput, ReworkRequest, UserPromptInput, compose_user_prompt, render_reply, system_prompt,
};

/// The next state and the effects to perform, in order, once that state is stored.
///
/// Deterministic: no clock (the time is in the input), no randomness, no I/O. An input that does not
/// fit the run as it is (a poll of a job that is no longer in flight, an answer to a decision that
/// is not open, anything at all once the run is done or cancelled) changes nothing and asks for
/// nothing, so replaying an input after a crash is harmless.
pub fn apply(state: RunState, input: &RunInput) -> (RunState, Vec<Effect>) {
    if state.status.is_terminal() {
        return (state, Vec::new());
    }
    let mut engine = Engine {
        now: input.now_ms(),
        state,
        effects: Vec::new(),
    };
    engine.handle(input);
    if !engine.effects.is_empty() {
        engine.state.updated_at_ms = engine.now;
    }
    (engine.state, engine.effects)
}

struct Engine {
    state: RunState,
    effects: Vec<Effect>,
    now: u64,
}

impl Engine {
    fn handle(&mut self, input: &RunInput) {
        if !self.state.started && !matches!(input, RunInput::Start { .. } | RunInput::Cancel { .. })
        {
            return;
        }
        match input {
            RunInput::Start { .. } => self.start(),
            RunInput::JobPolled { view, .. } => self.job_polled(view),
            RunInput::JobVanished { job_id, .. } => self.job_vanished(job_id),
            RunInput::RunnerUnreachable { job_id, detail, .. } => {
                self.runner_unreachable(job_id, detail)
            }
            RunInput::InlineReplied { call_id, text, .. } => self.inline_replied(call_id, text),
            RunInput::InlineFailed {
                call_id,
                detail,
                transient,
                ..
            } => self.inline_failed(call_id, detail, *transient),
            RunInput::DecisionAnswered {
                decision_id,
                choice,
                ..
            } => self.decision_answered(decision_id, choice),
            RunInput::ApprovalGiven {
                approval_id,
                verdict,
                ..
            } => self.approval_given(approval_id, verdict),
            RunInput::BudgetRefused { detail, .. } => self.budget_refused(detail),
            RunInput::BudgetFreed { .. } => self.budget_freed(),
            RunInput::TimerFired { .. } => self.timer_fired(),
            RunInput::Cancel { .. } => self.cancel(),
            RunInput::Retry { .. } => self.retry(),
            RunInput::DependencyDone { block_id, .. } => self.dependency_done(block_id),
            RunInput::PullRequestMerged { .. } => self.pull_request_merged(),
        }
    }

    // ----- small helpers -----

    fn emit(&mut self, event: RunEvent) {
        self.state.events_emitted += 1;
        self.effects.push(Effect::Emit {
            seq: self.state.events_emitted,
            at_ms: self.now,
            event,
        });
    }

    fn write_block_status(&mut self, status: BlockStatus) {
        if self.state.block_status != status {
            self.state.block_status = status;
            self.effects.push(Effect::WriteBlockStatus {
                block_id: self.state.block_id.clone(),
                status,
            });
        }
    }

    fn set_wake(&mut self, reason: WakeReason, at_ms: u64) {
        let wake = Wake { at_ms, reason };
        if self.state.wake != Some(wake) {
            self.state.wake = Some(wake);
            self.effects.push(Effect::SetAlarm { at_ms });
        }
    }

    /// Parks or ends the run: nothing needs time to pass, so the alarm may lapse. (A stale alarm
    /// that still fires finds no wake and does nothing.)
    fn clear_wake(&mut self) {
        self.state.wake = None;
    }

    /// The job in flight on the current step, if it is `job_id` and the run is running.
    fn live_job_matches(&self, job_id: &RunJobId) -> bool {
        self.state.status == RunStatus::Running
            && self
                .state
                .live_job()
                .is_some_and(|job| &job.request.job_id == job_id)
    }

    /// Like [`Self::live_job_matches`], for a job on a runner (not an inline model call).
    fn live_runner_job_matches(&self, job_id: &RunJobId) -> bool {
        self.live_job_matches(job_id)
            && self
                .state
                .live_job()
                .is_some_and(|job| job.request.surface.is_runner())
    }

    fn failure(
        &self,
        kind: StepFailureKind,
        detail: impl Into<String>,
        transient: bool,
    ) -> StepFailure {
        StepFailure {
            kind,
            detail: detail.into(),
            transient,
            attempt: self.state.steps[self.state.current_step].attempts,
            at_ms: self.now,
        }
    }

    // ----- starting and advancing -----

    fn start(&mut self) {
        if self.state.started {
            return;
        }
        self.state.started = true;
        if self.state.queued_on.is_empty() {
            self.begin_run();
        } else {
            let waiting_on = self.state.queued_on.clone();
            self.state.status = RunStatus::Blocked;
            self.state.park = Some(Park::Dependencies {
                waiting_on: waiting_on.clone(),
            });
            self.emit(RunEvent::Queued { waiting_on });
        }
    }

    fn begin_run(&mut self) {
        self.state.status = RunStatus::Running;
        self.state.park = None;
        self.emit(RunEvent::Started);
        self.begin_step(0);
    }

    /// Makes `index` the current step and dispatches its first attempt of this activation, or
    /// finishes the pipeline when every step is behind.
    fn begin_step(&mut self, index: usize) {
        if index >= self.state.steps.len() {
            self.finish_pipeline();
            return;
        }
        self.state.current_step = index;
        let now = self.now;
        let step = &mut self.state.steps[index];
        step.status = StepStatus::Working;
        step.started_at_ms.get_or_insert(now);
        step.finished_at_ms = None;
        step.transient_retries = 0;
        step.runner_failures = 0;
        step.vanished_redispatches = 0;
        self.start_attempt();
    }

    /// Dispatches a new attempt of the current step: a new job id, a freshly composed prompt.
    fn start_attempt(&mut self) {
        let index = self.state.current_step;
        self.state.steps[index].attempts += 1;
        let attempt = self.state.steps[index].attempts;
        let job_id = RunJobId::new(self.state.run_id.clone(), index, attempt);
        let request = self.build_request(index, job_id.clone());
        let step = &mut self.state.steps[index];
        step.status = StepStatus::Working;
        step.activity = None;
        step.heartbeat_moved_at_ms = None;
        step.job = Some(LiveJob {
            request: request.clone(),
            acknowledged: false,
            dispatched_at_ms: self.now,
        });
        let kind = step.kind;
        self.write_block_status(BlockStatus::InProgress);
        self.emit(RunEvent::StepStarted {
            step_index: index,
            kind,
            attempt,
            job_id,
        });
        let settings = self.state.settings;
        if request.surface == Surface::Inline {
            self.effects.push(Effect::CallModel { request });
            self.set_wake(
                WakeReason::InlineCallTimeout,
                self.now + settings.inline_call_timeout_ms,
            );
        } else {
            self.effects.push(Effect::DispatchJob { request });
            self.set_wake(WakeReason::PollJob, self.now + settings.poll_interval_ms);
        }
    }

    fn build_request(&self, index: usize, job_id: RunJobId) -> JobRequest {
        let state = &self.state;
        let pipeline_step = &state.pipeline.steps[index];
        let step = &state.steps[index];
        let is_companion = pipeline_step.companion.is_some();
        let earlier_outputs: Vec<EarlierOutput<'_>> = state.steps[..index]
            .iter()
            .enumerate()
            .filter(|(_, earlier)| earlier.status == StepStatus::Done)
            .filter_map(|(step_index, earlier)| {
                earlier.output.as_ref().map(|reply| EarlierOutput {
                    step_index,
                    kind: earlier.kind,
                    reply,
                })
            })
            .collect();
        let user_prompt = compose_user_prompt(&UserPromptInput {
            kind: pipeline_step.kind,
            is_companion,
            task: &state.task,
            earlier_outputs,
            pull_request: state.pull_request.as_ref(),
            rework: step.rework.as_ref(),
            approval_feedback: step.approval_feedback.as_deref(),
            decision_answers: &step.answers,
            previous_answer_problem: step.answer_problem.as_deref(),
            decisions_allowed: pipeline_step.surface != Surface::RunnerCoding,
        });
        JobRequest {
            job_id,
            step_index: index,
            kind: pipeline_step.kind,
            surface: pipeline_step.surface,
            system_prompt: system_prompt(pipeline_step.kind, pipeline_step.instructions.as_deref()),
            user_prompt,
            output_schema: ExpectedOutput::for_step(pipeline_step.kind, is_companion)
                .reply_schema(),
            pull_request_title: (pipeline_step.surface == Surface::RunnerCoding)
                .then(|| state.task.title.trim().to_owned()),
            checkout_branch: state
                .pull_request
                .as_ref()
                .map(|pull_request| pull_request.branch.clone()),
        }
    }

    /// Every step is behind: wait for the merge when there is a pull request, else the run is done.
    fn finish_pipeline(&mut self) {
        self.clear_wake();
        match self.state.pull_request.clone() {
            Some(pull_request) => {
                self.state.status = RunStatus::Blocked;
                self.state.park = Some(Park::Merge);
                self.write_block_status(BlockStatus::PrReady);
                self.emit(RunEvent::PrReady { pull_request });
            }
            // A pipeline that changes no code leaves the task where it was.
            None => self.finish_done(self.state.block_status_before_run),
        }
    }

    fn finish_done(&mut self, block_status: BlockStatus) {
        self.state.status = RunStatus::Done;
        self.state.park = None;
        self.state.finished_at_ms = Some(self.now);
        self.clear_wake();
        self.write_block_status(block_status);
        self.emit(RunEvent::Done);
    }

    // ----- job and model outcomes -----

    fn job_polled(&mut self, view: &JobOutcomeView) {
        if !self.live_runner_job_matches(&view.job_id) {
            return;
        }
        let index = self.state.current_step;
        let step = &mut self.state.steps[index];
        step.runner_failures = 0;
        if let Some(job) = step.job.as_mut() {
            job.acknowledged = true;
        }
        match &view.outcome {
            JobOutcome::Running => {
                let activity = StepActivity {
                    phase: view.phase,
                    progress: view.progress.clone(),
                    heartbeat_at_ms: view.heartbeat_at_ms,
                };
                let heartbeat_moved = step
                    .activity
                    .as_ref()
                    .is_none_or(|previous| previous.heartbeat_at_ms != activity.heartbeat_at_ms);
                if heartbeat_moved {
                    step.heartbeat_moved_at_ms = Some(self.now);
                }
                let silent_for = self
                    .now
                    .saturating_sub(step.heartbeat_moved_at_ms.unwrap_or(self.now));
                let max_silence = self.state.settings.max_heartbeat_silence_ms;
                if silent_for > max_silence {
                    self.effects.push(Effect::CancelJob {
                        job_id: view.job_id.clone(),
                    });
                    self.clear_wake();
                    let failure = self.failure(
                        StepFailureKind::Stalled,
                        format!(
                            "the job's heartbeat has not moved for {} s; the runner answers but the \
                             job is stuck",
                            silent_for / 1000
                        ),
                        true,
                    );
                    self.step_failed(failure);
                    return;
                }
                if step.activity.as_ref() != Some(&activity) {
                    step.activity = Some(activity.clone());
                    self.emit(RunEvent::StepProgress {
                        step_index: index,
                        activity,
                    });
                }
                self.set_wake(
                    WakeReason::PollJob,
                    self.now + self.state.settings.poll_interval_ms,
                );
            }
            JobOutcome::Succeeded(output) => {
                step.job = None;
                self.clear_wake();
                self.job_succeeded(index, output);
            }
            // The gateway refused the job's model call for budget: the run waits for money, it
            // did nothing wrong. Pausing keeps the step's attempt count, and raising the limit
            // starts a fresh attempt.
            JobOutcome::Failed(failure) if failure.kind == StepFailureKind::BudgetExhausted => {
                step.job = None;
                self.budget_refused(&failure.detail);
            }
            JobOutcome::Failed(failure) => {
                step.job = None;
                self.clear_wake();
                let failure = self.failure(failure.kind, failure.detail.clone(), failure.transient);
                self.step_failed(failure);
            }
        }
    }

    fn job_succeeded(&mut self, index: usize, output: &JobOutput) {
        if self.state.pipeline.steps[index].surface == Surface::RunnerCoding {
            let Some(pull_request) = output.pull_request.clone() else {
                let failure = self.failure(
                    StepFailureKind::PullRequestFailed,
                    "the coding job finished without a pull request",
                    false,
                );
                self.step_failed(failure);
                return;
            };
            if self.state.pull_request.as_ref() != Some(&pull_request) {
                self.state.pull_request = Some(pull_request.clone());
                self.emit(RunEvent::PullRequestOpened { pull_request });
            }
            let summary = output
                .summary
                .clone()
                .filter(|text| !text.trim().is_empty())
                .unwrap_or_else(|| "(the coder left no summary)".to_owned());
            self.complete_step(index, AgentReply::Text { text: summary });
        } else {
            let text = output.summary.clone().unwrap_or_default();
            self.reply_received(index, &text);
        }
    }

    fn reply_received(&mut self, index: usize, text: &str) {
        let pipeline_step = &self.state.pipeline.steps[index];
        let expected =
            ExpectedOutput::for_step(pipeline_step.kind, pipeline_step.companion.is_some());
        let decisions_allowed = pipeline_step.surface != Surface::RunnerCoding;
        match parse_agent_reply(expected, text, decisions_allowed) {
            Err(problem) => {
                self.state.steps[index].answer_problem = Some(problem.0.clone());
                let failure = self.failure(StepFailureKind::MalformedOutput, problem.0, true);
                self.step_failed(failure);
            }
            Ok(AgentReply::Decision(request)) => {
                let attempt = self.state.steps[index].attempts;
                let decision = open_decision(index, attempt, request);
                self.state.steps[index].status = StepStatus::Waiting;
                self.park(Park::Decision(decision.clone()));
                self.emit(RunEvent::DecisionRequested { decision });
            }
            Ok(AgentReply::ReviewVerdict(verdict))
                if self.state.pipeline.steps[index].companion.is_some() =>
            {
                self.companion_verdict(index, verdict)
            }
            Ok(AgentReply::TestReport(report)) if !report.passed => {
                self.record_output(index, AgentReply::TestReport(report));
                self.open_approval(index, ApprovalReason::TestsFailed);
            }
            Ok(reply) => self.complete_step(index, reply),
        }
    }

    fn record_output(&mut self, index: usize, reply: AgentReply) {
        let step = &mut self.state.steps[index];
        step.status = StepStatus::Done;
        step.output = Some(reply.clone());
        step.failure = None;
        step.rework = None;
        step.approval_feedback = None;
        step.answer_problem = None;
        step.finished_at_ms = Some(self.now);
        self.emit(RunEvent::StepDone {
            step_index: index,
            output: reply,
        });
    }

    fn complete_step(&mut self, index: usize, reply: AgentReply) {
        self.record_output(index, reply);
        if self.state.pipeline.steps[index].approval_after {
            self.open_approval(index, ApprovalReason::Gate);
        } else {
            self.begin_step(index + 1);
        }
    }

    fn companion_verdict(&mut self, index: usize, verdict: ReviewVerdict) {
        let Some(settings) = self.state.pipeline.steps[index].companion else {
            return;
        };
        if verdict.rating >= settings.pass_threshold {
            self.complete_step(index, AgentReply::ReviewVerdict(verdict));
            return;
        }
        self.record_output(index, AgentReply::ReviewVerdict(verdict.clone()));
        let Some(producer) = self.state.pipeline.producer_of(index) else {
            // A validated pipeline always has one; without it there is nothing to send back.
            self.open_approval(index, ApprovalReason::ReworkBudgetSpent);
            return;
        };
        if self.state.steps[index].reworks_used >= settings.rework_budget {
            self.open_approval(index, ApprovalReason::ReworkBudgetSpent);
            return;
        }
        self.state.steps[index].reworks_used += 1;
        let round = self.state.steps[index].reworks_used;
        self.emit(RunEvent::ReworkRequested {
            producer_step_index: producer,
            companion_step_index: index,
            round,
            rating: verdict.rating,
            pass_threshold: settings.pass_threshold,
        });
        self.state.steps[producer].rework = Some(ReworkRequest {
            rating: verdict.rating,
            pass_threshold: settings.pass_threshold,
            comments: verdict.comments,
        });
        self.send_back(producer, index);
    }

    /// Steps after `target` up to `through` go back to pending, and `target` runs again.
    fn send_back(&mut self, target: usize, through: usize) {
        for step in &mut self.state.steps[target + 1..=through] {
            step.status = StepStatus::Pending;
        }
        self.begin_step(target);
    }

    /// A step's attempt failed: retry a transient failure with backoff, else fail the run.
    fn step_failed(&mut self, failure: StepFailure) {
        let index = self.state.current_step;
        let settings = self.state.settings;
        let step = &mut self.state.steps[index];
        step.job = None;
        push_history(&mut step.failure_history, failure.clone());
        step.failure = Some(failure.clone());
        if failure.transient && step.transient_retries < settings.max_transient_retries {
            step.transient_retries += 1;
            let retry_at_ms = self.now + settings.backoff_delay_ms(step.transient_retries);
            self.set_wake(WakeReason::RetryStep, retry_at_ms);
            self.emit(RunEvent::StepRetryScheduled {
                step_index: index,
                failure,
                retry_at_ms,
            });
        } else {
            self.fail_run(index, failure);
        }
    }

    fn fail_run(&mut self, index: usize, failure: StepFailure) {
        let step = &mut self.state.steps[index];
        step.status = StepStatus::Failed;
        step.job = None;
        step.finished_at_ms = Some(self.now);
        if step.failure.as_ref() != Some(&failure) {
            push_history(&mut step.failure_history, failure.clone());
            step.failure = Some(failure.clone());
        }
        self.state.status = RunStatus::Failed;
        self.state.park = None;
        self.state.failure = Some(RunFailure {
            step_index: index,
            failure: failure.clone(),
        });
        self.clear_wake();
        self.write_block_status(BlockStatus::Blocked);
        self.emit(RunEvent::StepFailed {
            step_index: index,
            failure: failure.clone(),
        });
        self.emit(RunEvent::Failed {
            step_index: index,
            failure,
        });
    }

    fn job_vanished(&mut self, job_id: &RunJobId) {
        if !self.live_runner_job_matches(job_id) {
            return;
        }
        let index = self.state.current_step;
        let max = self.state.settings.max_vanished_redispatches;
        let step = &mut self.state.steps[index];
        step.job = None;
        if step.vanished_redispatches < max {
            step.vanished_redispatches += 1;
            self.emit(RunEvent::JobVanished {
                step_index: index,
                job_id: job_id.clone(),
            });
            self.start_attempt();
        } else {
            let failure = self.failure(
                StepFailureKind::JobVanished,
                format!(
                    "job {job_id} disappeared from the runner again after it was re-dispatched \
                     (the runner keeps restarting)"
                ),
                false,
            );
            self.step_failed(failure);
        }
    }

    fn runner_unreachable(&mut self, job_id: &RunJobId, detail: &str) {
        if !self.live_runner_job_matches(job_id) {
            return;
        }
        let index = self.state.current_step;
        let settings = self.state.settings;
        let step = &mut self.state.steps[index];
        step.runner_failures += 1;
        let failures = step.runner_failures;
        if failures > settings.max_runner_failures {
            self.effects.push(Effect::CancelJob {
                job_id: job_id.clone(),
            });
            self.clear_wake();
            let failure = self.failure(
                StepFailureKind::Dispatch,
                format!(
                    "the runner could not be reached {failures} times in a row; last: {detail}"
                ),
                false,
            );
            self.step_failed(failure);
        } else {
            let retry_at_ms = self.now + settings.backoff_delay_ms(failures);
            self.set_wake(WakeReason::ResendJob, retry_at_ms);
            self.emit(RunEvent::RunnerUnreachable {
                step_index: index,
                job_id: job_id.clone(),
                failures,
                retry_at_ms,
                detail: detail.to_owned(),
            });
        }
    }

    fn inline_call_matches(&self, call_id: &RunJobId) -> bool {
        self.live_job_matches(call_id)
            && self
                .state
                .live_job()
                .is_some_and(|job| job.request.surface == Surface::Inline)
    }

    fn inline_replied(&mut self, call_id: &RunJobId, text: &str) {
        if !self.inline_call_matches(call_id) {
            return;
        }
        let index = self.state.current_step;
        self.state.steps[index].job = None;
        self.clear_wake();
        self.reply_received(index, text);
    }

    fn inline_failed(&mut self, call_id: &RunJobId, detail: &str, transient: bool) {
        if !self.inline_call_matches(call_id) {
            return;
        }
        self.clear_wake();
        let failure = self.failure(StepFailureKind::ModelCall, detail, transient);
        self.step_failed(failure);
    }

    fn timer_fired(&mut self) {
        let Some(wake) = self.state.wake else {
            return;
        };
        if self.state.status != RunStatus::Running {
            self.clear_wake();
            return;
        }
        if self.now < wake.at_ms {
            // Early (a re-armed or duplicate alarm): set it again for the real time.
            self.effects.push(Effect::SetAlarm { at_ms: wake.at_ms });
            return;
        }
        let poll_at = self.now + self.state.settings.poll_interval_ms;
        let index = self.state.current_step;
        match wake.reason {
            WakeReason::RetryStep => {
                self.clear_wake();
                self.start_attempt();
            }
            WakeReason::PollJob | WakeReason::ResendJob => {
                let Some(job) = self.state.steps[index].job.clone() else {
                    self.clear_wake();
                    return;
                };
                // Until the runner has shown it knows the job, poll by posting it again: the post
                // is idempotent, so a dispatch lost with a crash (its state stored, its effect never
                // performed) is delivered now instead of looking like a vanished job.
                if !job.acknowledged {
                    self.effects.push(Effect::ResendJob {
                        request: job.request,
                    });
                } else {
                    self.effects.push(Effect::PollJob {
                        job_id: job.request.job_id,
                    });
                }
                // Poll again even if this poll's answer is lost with the process.
                self.set_wake(WakeReason::PollJob, poll_at);
            }
            WakeReason::InlineCallTimeout => {
                if self.state.steps[index].job.is_none() {
                    self.clear_wake();
                    return;
                }
                self.clear_wake();
                let timeout = self.state.settings.inline_call_timeout_ms;
                let failure = self.failure(
                    StepFailureKind::ModelCall,
                    format!("the model did not answer within {timeout} ms"),
                    true,
                );
                self.step_failed(failure);
            }
        }
    }

    // ----- people -----

    fn park(&mut self, park: Park) {
        self.state.status = RunStatus::Blocked;
        self.state.park = Some(park);
        self.clear_wake();
        self.write_block_status(BlockStatus::Blocked);
    }

    fn open_approval(&mut self, index: usize, reason: ApprovalReason) {
        self.state.approvals_opened += 1;
        let approval = OpenApproval {
            id: format!("apr-{index}-{}", self.state.approvals_opened),
            step_index: index,
            reason,
        };
        self.state.steps[index].status = StepStatus::Waiting;
        self.park(Park::Approval(approval.clone()));
        self.emit(RunEvent::ApprovalRequested { approval });
    }

    fn resume_from_park(&mut self) {
        self.state.status = RunStatus::Running;
        self.state.park = None;
    }

    fn decision_answered(&mut self, decision_id: &str, choice: &str) {
        let Some(Park::Decision(decision)) = self.state.park.clone() else {
            return;
        };
        if decision.id != decision_id || !decision.options.iter().any(|option| option == choice) {
            return;
        }
        let index = decision.step_index;
        self.state.steps[index]
            .answers
            .push(crate::prompt::DecisionAnswer {
                question: decision.question.clone(),
                choice: choice.to_owned(),
            });
        self.resume_from_park();
        self.emit(RunEvent::DecisionAnswered {
            decision_id: decision.id,
            step_index: index,
            choice: choice.to_owned(),
        });
        self.state.current_step = index;
        self.start_attempt();
    }

    fn approval_given(&mut self, approval_id: &str, verdict: &ApprovalVerdict) {
        let Some(Park::Approval(approval)) = self.state.park.clone() else {
            return;
        };
        if approval.id != approval_id {
            return;
        }
        if let ApprovalVerdict::RequestChanges { feedback } = verdict
            && feedback.trim().is_empty()
        {
            return;
        }
        let index = approval.step_index;
        self.resume_from_park();
        self.emit(RunEvent::ApprovalGiven {
            approval_id: approval.id.clone(),
            step_index: index,
            verdict: verdict.clone(),
        });
        self.state.current_step = index;
        match verdict {
            ApprovalVerdict::Approve => {
                self.state.steps[index].status = StepStatus::Done;
                self.state.steps[index].reworks_used = 0;
                self.begin_step(index + 1);
            }
            ApprovalVerdict::RequestChanges { feedback } => {
                let target = self.rework_target(index, approval.reason);
                let mut feedback = feedback.trim().to_owned();
                if approval.reason == ApprovalReason::TestsFailed
                    && target != index
                    && let Some(report) = &self.state.steps[index].output
                {
                    feedback.push_str("\n\nThe tester's report:\n");
                    feedback.push_str(&render_reply(report));
                }
                self.state.steps[target].approval_feedback = Some(feedback);
                // A person looked: the companion gets its full budget for the new round.
                self.state.steps[index].reworks_used = 0;
                if target == index {
                    self.begin_step(index);
                } else {
                    self.send_back(target, index);
                }
            }
            ApprovalVerdict::Reject { feedback } => {
                let detail = feedback
                    .as_deref()
                    .map(str::trim)
                    .filter(|text| !text.is_empty())
                    .unwrap_or("rejected at the approval");
                let failure = self.failure(StepFailureKind::ApprovalRejected, detail, false);
                self.fail_run(index, failure);
            }
        }
    }

    /// Which step redoes the work when a person requests changes at `index`: the producer a
    /// companion grades, the coding step before a failed test report, else the step itself.
    fn rework_target(&self, index: usize, reason: ApprovalReason) -> usize {
        if let Some(producer) = self.state.pipeline.producer_of(index) {
            return producer;
        }
        if reason == ApprovalReason::TestsFailed
            && let Some(coder) = (0..index).rev().find(|&earlier| {
                self.state.pipeline.steps[earlier].surface == Surface::RunnerCoding
            })
        {
            return coder;
        }
        index
    }

    // ----- budget, cancel, retry, dependencies, merge -----

    fn budget_refused(&mut self, detail: &str) {
        if self.state.status != RunStatus::Running {
            // Parked on a person or already paused: nothing is spending. The next call after the
            // person answers is refused again if the budget is still spent.
            return;
        }
        let index = self.state.current_step;
        if let Some(job) = self.state.steps[index].job.take()
            && job.request.surface.is_runner()
        {
            self.effects.push(Effect::CancelJob {
                job_id: job.request.job_id,
            });
        }
        let step = &mut self.state.steps[index];
        step.status = StepStatus::Pending;
        step.activity = None;
        self.state.status = RunStatus::Paused;
        self.state.paused_reason = Some(detail.to_owned());
        self.clear_wake();
        self.write_block_status(BlockStatus::Blocked);
        self.emit(RunEvent::Paused {
            reason: detail.to_owned(),
        });
    }

    fn budget_freed(&mut self) {
        if self.state.status != RunStatus::Paused {
            return;
        }
        self.state.status = RunStatus::Running;
        self.state.paused_reason = None;
        self.emit(RunEvent::Resumed);
        let index = self.state.current_step;
        self.state.steps[index].status = StepStatus::Working;
        self.start_attempt();
    }

    fn cancel(&mut self) {
        let index = self.state.current_step;
        if let Some(job) = self
            .state
            .steps
            .get_mut(index)
            .and_then(|step| step.job.take())
            && job.request.surface.is_runner()
        {
            self.effects.push(Effect::CancelJob {
                job_id: job.request.job_id,
            });
        }
        if let Some(step) = self.state.steps.get_mut(index)
            && matches!(step.status, StepStatus::Working | StepStatus::Waiting)
        {
            step.status = StepStatus::Failed;
            step.finished_at_ms = Some(self.now);
        }
        self.state.status = RunStatus::Cancelled;
        self.state.park = None;
        self.state.finished_at_ms = Some(self.now);
        self.clear_wake();
        self.write_block_status(self.state.block_status_before_run);
        self.emit(RunEvent::Cancelled);
    }

    fn retry(&mut self) {
        if self.state.status != RunStatus::Failed {
            return;
        }
        let index = self
            .state
            .failure
            .take()
            .map_or(self.state.current_step, |failure| failure.step_index);
        self.state.status = RunStatus::Running;
        self.emit(RunEvent::Retried { step_index: index });
        self.begin_step(index);
    }

    fn dependency_done(&mut self, block_id: &BlockId) {
        let Some(Park::Dependencies { waiting_on }) = &mut self.state.park else {
            return;
        };
        waiting_on.retain(|waiting| waiting != block_id);
        if waiting_on.is_empty() {
            self.begin_run();
        }
    }

    /// A merged pull request is the last word on the task: the run is done whatever step it was
    /// at (a person merged early, or merged a failed run's PR by hand). The step in flight is
    /// stopped and the steps not run are skipped.
    fn pull_request_merged(&mut self) {
        if self.state.pull_request.is_none() || self.state.pull_request_merged {
            return;
        }
        self.state.pull_request_merged = true;
        let index = self.state.current_step;
        if let Some(job) = self.state.steps[index].job.take()
            && job.request.surface.is_runner()
        {
            self.effects.push(Effect::CancelJob {
                job_id: job.request.job_id,
            });
        }
        for step in &mut self.state.steps {
            if matches!(
                step.status,
                StepStatus::Pending
                    | StepStatus::Working
                    | StepStatus::Waiting
                    | StepStatus::Failed
            ) {
                step.status = StepStatus::Skipped;
            }
        }
        self.state.failure = None;
        self.state.paused_reason = None;
        self.finish_done(BlockStatus::Done);
    }
}

fn push_history(history: &mut Vec<StepFailure>, failure: StepFailure) {
    history.push(failure);
    if history.len() > FAILURE_HISTORY_LIMIT {
        history.remove(0);
    }
}
