//! The HTTP side of talking to a model: one request per agent step, in the job's protocol, streamed
//! (SSE) or not. Every attempt is bounded twice: by the request timeout (first byte to last) and by
//! the stall timeout (the longest silence between two bytes). Failed attempts are retried as
//! `domain::llm::retry` decides — 429/5xx/connection errors/request timeouts, honouring
//! `Retry-After`, with jittered exponential backoff — within the job's retry budget.

use std::time::{Duration, Instant};

use domain::harness::{Redactor, truncate_middle};
use domain::job::{JobLimits, LlmEndpoint, LlmProtocol};
use domain::llm::retry::{
    AttemptFailure, RetryDecision, RetryPolicy, decide_retry, is_budget_refusal,
    is_retryable_status, parse_retry_after,
};
use domain::llm::stream::{AnthropicStream, OpenaiStream, SseDecoder};
use domain::llm::{self, ConversationMessage, ModelReply, ToolSpec};

/// Anthropic requires a ceiling on the answer's length.
const ANTHROPIC_MAX_TOKENS: u32 = 8192;
/// A model answer larger than this is refused rather than buffered (no real answer comes close).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error body is kept for the job view and the log.
const MAX_ERROR_BODY_BYTES: usize = 2000;

/// One successful model call.
#[derive(Debug, Clone)]
pub struct ModelAnswer {
    pub reply: ModelReply,
    /// Request sent → answer complete, for the attempt that succeeded.
    pub latency: Duration,
    /// Failed attempts before the one that succeeded.
    pub retries: u32,
    pub streamed: bool,
}

/// Why a model call ended without an answer. Messages are redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFailure {
    /// No byte within the stall timeout: the model stopped answering.
    Stalled(String),
    /// The endpoint failed and retrying was not possible or not allowed any more.
    Failed(String),
    /// The endpoint refused the call for money (402: the gateway's `budget_exhausted`).
    BudgetExhausted(String),
}

/// What the client tells the job while it works: retries for the view, and signs of life.
pub trait ModelObserver: Send + Sync {
    /// An attempt failed and will be retried after `delay`; `retries_used` counts the job's retries.
    fn retrying(&self, retries_used: u32, error: &str, delay: Duration);
    /// Bytes arrived (a streamed answer moves the job's heartbeat while the model writes).
    fn alive(&self);
}

pub struct ModelClient {
    http: reqwest::Client,
    endpoint: LlmEndpoint,
    model: String,
    redactor: Redactor,
    request_timeout: Duration,
    stall_timeout: Duration,
    max_retries: u32,
    policy: RetryPolicy,
    /// Retries used so far by this job (the budget spans the job, not one call).
    retries_used: u32,
}

enum AttemptError {
    Failed(AttemptFailure, String),
    Stalled(String),
}

impl ModelClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: LlmEndpoint,
        model: String,
        redactor: Redactor,
        limits: &JobLimits,
    ) -> Self {
        ModelClient {
            http,
            endpoint,
            model,
            redactor,
            request_timeout: Duration::from_secs(limits.request_timeout_seconds),
            stall_timeout: Duration::from_secs(limits.stall_timeout_seconds),
            max_retries: limits.max_model_retries,
            policy: RetryPolicy::default(),
            retries_used: 0,
        }
    }

    /// The model the job asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model for its next step, retrying what is worth retrying.
    pub async fn next_reply(
        &mut self,
        system_prompt: &str,
        conversation: &[ConversationMessage],
        tools: &[ToolSpec],
        observer: &dyn ModelObserver,
    ) -> Result<ModelAnswer, ModelFailure> {
        let mut consecutive = 0;
        loop {
            let started = Instant::now();
            let outcome = self
                .attempt(system_prompt, conversation, tools, observer)
                .await;
            let (failure, message) = match outcome {
                Ok((reply, streamed)) => {
                    return Ok(ModelAnswer {
                        reply,
                        latency: started.elapsed(),
                        retries: consecutive,
                        streamed,
                    });
                }
                Err(AttemptError::Stalled(message)) => {
                    return Err(ModelFailure::Stalled(self.redactor.redact(&message)));
                }
                Err(AttemptError::Failed(failure, message)) => {
                    (failure, self.redactor.redact(&message))
                }
            };
            match decide_retry(
                &self.policy,
                &failure,
                self.retries_used,
                self.max_retries,
                consecutive,
                fastrand::f64(),
            ) {
                RetryDecision::RetryAfterMs(delay_ms) => {
                    self.retries_used += 1;
                    consecutive += 1;
                    let delay = Duration::from_millis(delay_ms);
                    tracing::warn!(
                        retries_used = self.retries_used,
                        delay_ms,
                        problem = %message,
                        "model call failed; retrying"
                    );
                    observer.retrying(self.retries_used, &message, delay);
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::GiveUp(_) if matches!(failure, AttemptFailure::Rejected { status } if is_budget_refusal(status)) =>
                {
                    return Err(ModelFailure::BudgetExhausted(message));
                }
                RetryDecision::GiveUp(reason) => {
                    return Err(ModelFailure::Failed(format!("{message} ({reason})")));
                }
            }
        }
    }

    fn request(
        &self,
        system_prompt: &str,
        conversation: &[ConversationMessage],
        tools: &[ToolSpec],
    ) -> reqwest::RequestBuilder {
        let base = self.endpoint.base_url.trim_end_matches('/');
        let stream = self.endpoint.stream;
        match self.endpoint.protocol {
            LlmProtocol::Openai => {
                let mut body = llm::openai_request(&self.model, system_prompt, conversation, tools);
                if stream {
                    body = body.streamed();
                }
                self.http
                    .post(format!("{base}{}", llm::openai::CHAT_COMPLETIONS_PATH))
                    .bearer_auth(self.endpoint.token.expose())
                    .json(&body)
            }
            LlmProtocol::Anthropic => {
                let mut body = llm::anthropic_request(
                    &self.model,
                    system_prompt,
                    conversation,
                    tools,
                    ANTHROPIC_MAX_TOKENS,
                );
                body.stream = stream;
                self.http
                    .post(format!("{base}{}", llm::anthropic::MESSAGES_PATH))
                    .header("x-api-key", self.endpoint.token.expose())
                    .header("anthropic-version", llm::anthropic::API_VERSION)
                    .json(&body)
            }
        }
    }

    /// The instant the next byte must arrive by: the stall timeout from now, or the request's own
    /// deadline if that comes first. Says which one it is.
    fn next_deadline(&self, request_deadline: Instant) -> (Instant, bool) {
        let stall_deadline = Instant::now() + self.stall_timeout;
        if request_deadline <= stall_deadline {
            (request_deadline, true)
        } else {
            (stall_deadline, false)
        }
    }

    fn timed_out(&self, request_deadline_hit: bool) -> AttemptError {
        if request_deadline_hit {
            AttemptError::Failed(
                AttemptFailure::RequestTimeout,
                format!(
                    "the model did not finish its answer within {} s (limits.requestTimeoutSeconds)",
                    self.request_timeout.as_secs()
                ),
            )
        } else {
            AttemptError::Stalled(format!(
                "the model gave no sign of life within {} s (limits.stallTimeoutSeconds)",
                self.stall_timeout.as_secs()
            ))
        }
    }

    async fn attempt(
        &self,
        system_prompt: &str,
        conversation: &[ConversationMessage],
        tools: &[ToolSpec],
        observer: &dyn ModelObserver,
    ) -> Result<(ModelReply, bool), AttemptError> {
        let request_deadline = Instant::now() + self.request_timeout;
        let (deadline, is_request_deadline) = self.next_deadline(request_deadline);
        let mut response = match tokio::time::timeout_at(
            deadline.into(),
            self.request(system_prompt, conversation, tools).send(),
        )
        .await
        {
            Err(_) => return Err(self.timed_out(is_request_deadline)),
            Ok(Err(error)) => {
                return Err(AttemptError::Failed(
                    AttemptFailure::Connection,
                    format!("the model endpoint did not answer: {error}"),
                ));
            }
            Ok(Ok(response)) => response,
        };
        observer.alive();
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, crate::now_ms()));
        let is_event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));

        let mut body = Vec::new();
        let mut decoder = SseDecoder::default();
        let mut streamed = StreamedReply::new(self.endpoint.protocol);
        loop {
            let (deadline, is_request_deadline) = self.next_deadline(request_deadline);
            let chunk = match tokio::time::timeout_at(deadline.into(), response.chunk()).await {
                Err(_) => return Err(self.timed_out(is_request_deadline)),
                Ok(Err(error)) => {
                    return Err(AttemptError::Failed(
                        AttemptFailure::Connection,
                        format!("the model's answer was cut off: {error}"),
                    ));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            observer.alive();
            if status.is_success() && is_event_stream {
                for event in decoder.feed(&chunk) {
                    streamed.push(&event.data).map_err(|problem| {
                        AttemptError::Failed(AttemptFailure::Connection, problem)
                    })?;
                }
            } else {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER_BYTES {
                    return Err(AttemptError::Failed(
                        AttemptFailure::Unreadable,
                        format!("the model's answer is larger than {MAX_ANSWER_BYTES} bytes"),
                    ));
                }
            }
        }

        if !status.is_success() {
            let message = format!(
                "the model endpoint answered {status}: {}",
                truncate_middle(&String::from_utf8_lossy(&body), MAX_ERROR_BODY_BYTES)
            );
            let failure = if is_retryable_status(status.as_u16()) {
                AttemptFailure::Retryable {
                    status: status.as_u16(),
                    retry_after_ms,
                }
            } else {
                AttemptFailure::Rejected {
                    status: status.as_u16(),
                }
            };
            return Err(AttemptError::Failed(failure, message));
        }
        if is_event_stream {
            for event in decoder.finish() {
                streamed
                    .push(&event.data)
                    .map_err(|problem| AttemptError::Failed(AttemptFailure::Connection, problem))?;
            }
            // A stream that stops before its end marker was cut off: worth a retry.
            return streamed
                .finish()
                .map(|reply| (reply, true))
                .map_err(|problem| AttemptError::Failed(AttemptFailure::Connection, problem));
        }
        let unreadable = |problem: String| {
            AttemptError::Failed(
                AttemptFailure::Unreadable,
                format!(
                    "the model's answer is not a valid {:?} response: {problem}",
                    self.endpoint.protocol
                ),
            )
        };
        let reply = match self.endpoint.protocol {
            LlmProtocol::Openai => {
                let parsed =
                    serde_json::from_slice(&body).map_err(|error| unreadable(error.to_string()))?;
                llm::openai_reply(parsed).map_err(unreadable)?
            }
            LlmProtocol::Anthropic => {
                let parsed =
                    serde_json::from_slice(&body).map_err(|error| unreadable(error.to_string()))?;
                llm::anthropic_reply(parsed)
            }
        };
        Ok((reply, false))
    }
}

/// The stream assembler of the job's protocol.
enum StreamedReply {
    Openai(OpenaiStream),
    Anthropic(AnthropicStream),
}

impl StreamedReply {
    fn new(protocol: LlmProtocol) -> Self {
        match protocol {
            LlmProtocol::Openai => StreamedReply::Openai(OpenaiStream::default()),
            LlmProtocol::Anthropic => StreamedReply::Anthropic(AnthropicStream::default()),
        }
    }

    fn push(&mut self, data: &str) -> Result<(), String> {
        match self {
            StreamedReply::Openai(stream) => stream.push(data),
            StreamedReply::Anthropic(stream) => stream.push(data),
        }
    }

    fn finish(self) -> Result<ModelReply, String> {
        match self {
            StreamedReply::Openai(stream) => stream.finish(),
            StreamedReply::Anthropic(stream) => stream.finish(),
        }
    }
}
