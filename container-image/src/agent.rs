//! The built-in agent: a tool-calling loop. Each step asks the model for its next move, runs the
//! tools it calls and hands their (redacted) output back, until it calls `finish`, runs out of steps,
//! or stalls. The conversation is kept, so the pipeline can resume the agent with validation output.

use std::time::Duration;

use domain::job::{FailureKind, JobFailure, StallDetector, TranscriptEntry, TranscriptToolCall};
use domain::llm::{ConversationMessage, ToolSpec};

use crate::jobs::JobHandle;
use crate::model::ModelClient;
use crate::tools::{FINISH_TOOL, Workspace, describe_call};

/// The same failing call this many times in a row (or this many replies without a tool call) is a
/// stall: the model is going in circles.
const REPEATS_BEFORE_STALL: u32 = 3;

const NUDGE: &str = "Use the tools to work on the task. When you are done, call the finish tool \
                     with a summary.";

pub struct Agent<'job> {
    handle: &'job JobHandle,
    model: ModelClient,
    workspace: Workspace,
    system_prompt: String,
    tools: Vec<ToolSpec>,
    conversation: Vec<ConversationMessage>,
    steps_used: u32,
    max_steps: u32,
    stall_timeout: Duration,
    stall: StallDetector,
}

fn failure(kind: FailureKind, detail: impl Into<String>) -> JobFailure {
    JobFailure {
        kind,
        detail: detail.into(),
    }
}

impl<'job> Agent<'job> {
    pub fn new(
        handle: &'job JobHandle,
        model: ModelClient,
        workspace: Workspace,
        system_prompt: String,
        tools: Vec<ToolSpec>,
        max_steps: u32,
        stall_timeout: Duration,
    ) -> Self {
        Agent {
            handle,
            model,
            workspace,
            system_prompt,
            tools,
            conversation: Vec::new(),
            steps_used: 0,
            max_steps,
            stall_timeout,
            stall: StallDetector::new(REPEATS_BEFORE_STALL),
        }
    }

    /// Sends `message` and runs the loop until the agent finishes; returns its summary.
    pub async fn run(&mut self, message: String) -> Result<String, JobFailure> {
        self.conversation
            .push(ConversationMessage::User { text: message });
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

            let reply = match tokio::time::timeout(
                self.stall_timeout,
                self.model
                    .next_reply(&self.system_prompt, &self.conversation, &self.tools),
            )
            .await
            {
                Err(_) => {
                    return Err(failure(
                        FailureKind::Stalled,
                        format!(
                            "the model gave no answer within {} s (limits.stallTimeoutSeconds)",
                            self.stall_timeout.as_secs()
                        ),
                    ));
                }
                Ok(Err(problem)) => return Err(failure(FailureKind::Agent, problem)),
                Ok(Ok(reply)) => reply,
            };
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

            let mut summary = None;
            for call in &reply.tool_calls {
                let (output, is_error) = if call.name == FINISH_TOOL {
                    summary = Some(
                        call.arguments
                            .get("summary")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    ("finished".to_owned(), false)
                } else {
                    let action = describe_call(&call.name, &call.arguments);
                    self.handle
                        .update(|record| record.view.progress.last_action = Some(action));
                    let outcome = self.workspace.call(&call.name, &call.arguments).await;
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
                    output,
                    is_error,
                });
                let signature = format!("{} {}", call.name, call.arguments);
                if let Some(reason) = self.stall.observe_tool_call(&signature, is_error) {
                    return Err(failure(FailureKind::Stalled, reason.to_string()));
                }
            }
            if let Some(summary) = summary {
                return Ok(summary);
            }
        }
    }
}
