//! The built-in agent: a tool-calling loop. Each step asks the model for its next move, runs the
//! tools it calls and hands their (redacted) output back, until it calls `finish`, runs out of steps,
//! or stalls. The conversation is kept, so the pipeline can resume the agent with validation output.
//!
//! Besides running tools, the loop records what the job view needs to tell the truth about the
//! ending: each call's token usage, the guard-rail refusals, and (for explore jobs with an
//! `outputSchema`) whether the structured answer fits.

use std::time::Duration;

use domain::job::{
    FailureKind, GuardRailRefusal, JobFailure, JobLimits, ModelCallUsage, StallDetector,
    TranscriptEntry, TranscriptToolCall, guard_rail_refusal_for_call, invalid_answer_feedback,
};
use domain::json_schema::{self, Violation};
use domain::llm::{ConversationMessage, ToolSpec};
use serde_json::{Value, json};

use crate::jobs::JobHandle;
use crate::model::{ModelClient, ModelFailure, ModelObserver};
use crate::tools::{FINISH_TOOL, Workspace, describe_call};

const NUDGE: &str = "Use the tools to work on the task. When you are done, call the finish tool \
                     with a summary.";

/// Which part of the job a call to [`Agent::run`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// The task itself: a reply without a tool call gets a nudge (and, repeated, is a stall).
    Opening,
    /// After red validation: a reply without a tool call ends the round (the model has said its
    /// piece — "Done", "I can't fix this"), and the pipeline judges the round by what changed.
    Repair,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    Finished {
        summary: String,
        /// The structured answer, when the job has an `outputSchema` (already validated).
        output: Option<Value>,
    },
    AnsweredInProse(String),
}

pub struct Agent<'job> {
    handle: &'job JobHandle,
    model: ModelClient,
    workspace: Workspace,
    system_prompt: String,
    tools: Vec<ToolSpec>,
    conversation: Vec<ConversationMessage>,
    steps_used: u32,
    max_steps: u32,
    stall: StallDetector,
    output_schema: Option<Value>,
    invalid_answers: u32,
    max_invalid_answers: u32,
}

fn failure(kind: FailureKind, detail: impl Into<String>) -> JobFailure {
    JobFailure {
        kind,
        detail: detail.into(),
    }
}

/// Reports the model client's retries and signs of life to the job view.
struct ViewObserver<'job>(&'job JobHandle);

impl ModelObserver for ViewObserver<'_> {
    fn retrying(&self, retries_used: u32, error: &str, delay: Duration) {
        let error = format!("{error} (retrying in {} ms)", delay.as_millis());
        self.0.update(|record| {
            record.view.progress.model_retries = retries_used;
            record.view.progress.last_upstream_error = Some(error);
        });
    }

    fn alive(&self) {
        self.0.touch_heartbeat();
    }
}

/// The finish tool, taking `output` of the job's schema when there is one.
fn finish_tool_with_output(schema: &Value) -> ToolSpec {
    ToolSpec {
        name: FINISH_TOOL.to_owned(),
        description: "Stop and report: `output` is your answer in the required shape, `summary` a \
                      sentence or two for a person."
            .to_owned(),
        parameters: json!({
            "type": "object",
            "properties": { "summary": { "type": "string" }, "output": schema },
            "required": ["summary", "output"]
        }),
    }
}

impl<'job> Agent<'job> {
    pub fn new(
        handle: &'job JobHandle,
        model: ModelClient,
        workspace: Workspace,
        system_prompt: String,
        mut tools: Vec<ToolSpec>,
        limits: &JobLimits,
        output_schema: Option<Value>,
    ) -> Self {
        if let Some(schema) = &output_schema {
            tools.retain(|tool| tool.name != FINISH_TOOL);
            tools.push(finish_tool_with_output(schema));
        }
        Agent {
            handle,
            model,
            workspace,
            system_prompt,
            tools,
            conversation: Vec::new(),
            steps_used: 0,
            max_steps: limits.max_agent_steps,
            stall: StallDetector::new(limits.max_repeated_calls),
            output_schema,
            invalid_answers: 0,
            max_invalid_answers: limits.max_invalid_answers,
        }
    }

    /// The summary and the validated output of a `finish` call, or what is wrong with its output.
    fn check_finish(&self, arguments: &Value) -> Result<(String, Option<Value>), Vec<Violation>> {
        let summary = arguments
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(schema) = &self.output_schema else {
            return Ok((summary, None));
        };
        let Some(output) = arguments.get("output") else {
            return Err(vec![Violation {
                pointer: "/output".to_owned(),
                problem: "missing: call finish with `output` in the required shape".to_owned(),
            }]);
        };
        let violations: Vec<Violation> = json_schema::validate(schema, output)
            .into_iter()
            .map(|violation| Violation {
                pointer: format!("/output{}", violation.pointer),
                problem: violation.problem,
            })
            .collect();
        if violations.is_empty() {
            Ok((summary, Some(output.clone())))
        } else {
            Err(violations)
        }
    }

    fn record_refusal(&self, refusal: GuardRailRefusal) {
        self.handle.append_transcript(TranscriptEntry::HarnessNote {
            step: refusal.step,
            text: format!("{}.", refusal.describe()),
        });
        tracing::info!(job = %self.handle.id, rule = refusal.rule.name(), path = %refusal.path, "guard rail refused a write");
        self.handle
            .update(|record| record.view.guard_rail_refusals.push(refusal));
    }

    /// Sends `message` and runs the loop until the round ends.
    pub async fn run(&mut self, message: String, round: Round) -> Result<TurnEnd, JobFailure> {
        self.conversation
            .push(ConversationMessage::User { text: message });
        self.stall.start_new_round();
        loop {
            if self.steps_used >= self.max_steps {
                return Err(failure(
                    FailureKind::StepBudget,
                    format!(
                        "the agent used all {} steps without finishing (limits.maxAgentSteps)",
                        self.max_steps
                    ),
                ));
            }
            self.steps_used += 1;
            let step = self.steps_used;
            self.handle
                .update(|record| record.view.progress.agent_steps = step);

            let answer = match self
                .model
                .next_reply(
                    &self.system_prompt,
                    &self.conversation,
                    &self.tools,
                    &ViewObserver(self.handle),
                )
                .await
            {
                Err(ModelFailure::Stalled(problem)) => {
                    return Err(failure(FailureKind::Stalled, problem));
                }
                Err(ModelFailure::BudgetExhausted(problem)) => {
                    self.handle.update(|record| {
                        record.view.progress.last_upstream_error = Some(problem.clone())
                    });
                    return Err(failure(FailureKind::BudgetExhausted, problem));
                }
                Err(ModelFailure::Failed(problem)) => {
                    self.handle.update(|record| {
                        record.view.progress.last_upstream_error = Some(problem.clone())
                    });
                    return Err(failure(FailureKind::Agent, problem));
                }
                Ok(answer) => answer,
            };
            let reply = answer.reply;
            let usage = ModelCallUsage {
                step,
                model: reply
                    .model
                    .clone()
                    .unwrap_or_else(|| self.model.model().to_owned()),
                input_tokens: reply.usage.and_then(|usage| usage.input_tokens),
                output_tokens: reply.usage.and_then(|usage| usage.output_tokens),
                latency_ms: answer.latency.as_millis() as u64,
                retries: answer.retries,
                streamed: answer.streamed,
            };
            self.handle.update(|record| record.view.usage.record(usage));
            self.handle.append_transcript(TranscriptEntry::ModelReply {
                step,
                text: reply.text.clone(),
                tool_calls: reply
                    .tool_calls
                    .iter()
                    .map(|call| TranscriptToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    })
                    .collect(),
            });
            self.conversation.push(reply.to_message());

            if reply.tool_calls.is_empty() {
                if round == Round::Repair {
                    return Ok(TurnEnd::AnsweredInProse(
                        reply.text.clone().unwrap_or_default(),
                    ));
                }
                if let Some(reason) = self.stall.observe_reply_without_tool_calls() {
                    return Err(failure(FailureKind::Stalled, reason.to_string()));
                }
                self.handle.append_transcript(TranscriptEntry::HarnessNote {
                    step,
                    text: NUDGE.to_owned(),
                });
                self.conversation.push(ConversationMessage::User {
                    text: NUDGE.to_owned(),
                });
                continue;
            }

            let mut finished = None;
            for call in &reply.tool_calls {
                let (output, is_error) = if call.name == FINISH_TOOL {
                    match self.check_finish(&call.arguments) {
                        Ok(answer) => {
                            finished = Some(answer);
                            ("finished".to_owned(), false)
                        }
                        Err(violations) => {
                            self.invalid_answers += 1;
                            if self.invalid_answers > self.max_invalid_answers {
                                let listed: Vec<String> =
                                    violations.iter().map(ToString::to_string).collect();
                                return Err(failure(
                                    FailureKind::InvalidAnswer,
                                    format!(
                                        "the structured answer did not match outputSchema after {} \
                                         attempt(s) (limits.maxInvalidAnswers): {}",
                                        self.invalid_answers,
                                        listed.join("; ")
                                    ),
                                ));
                            }
                            let tries_left = self.max_invalid_answers + 1 - self.invalid_answers;
                            (invalid_answer_feedback(&violations, tries_left), true)
                        }
                    }
                } else {
                    let action = describe_call(&call.name, &call.arguments);
                    self.handle
                        .update(|record| record.view.progress.last_action = Some(action));
                    let outcome = self.workspace.call(&call.name, &call.arguments).await;
                    if let Some(refusal) = guard_rail_refusal_for_call(
                        &call.name,
                        &call.arguments,
                        outcome.is_error,
                        step,
                    ) {
                        self.record_refusal(refusal);
                    }
                    // Redacted before the model sees it, not only before it is stored.
                    (
                        self.handle.redactor.redact(&outcome.output),
                        outcome.is_error,
                    )
                };
                self.handle.append_transcript(TranscriptEntry::ToolResult {
                    step,
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    output: output.clone(),
                    is_error,
                });
                self.conversation.push(ConversationMessage::ToolResult {
                    call_id: call.id.clone(),
                    output: output.clone(),
                    is_error,
                });
                // A refused answer is the answer budget's business, not the stall detector's.
                if call.name != FINISH_TOOL {
                    let signature = format!("{} {}", call.name, call.arguments);
                    if let Some(reason) =
                        self.stall.observe_tool_call(&signature, &output, is_error)
                    {
                        return Err(failure(FailureKind::Stalled, reason.to_string()));
                    }
                }
            }
            if let Some((summary, output)) = finished {
                return Ok(TurnEnd::Finished { summary, output });
            }
        }
    }
}
