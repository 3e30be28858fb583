//! The HTTP side of talking to a model: one request per agent step, in the job's protocol.

use std::time::Duration;

use domain::harness::{Redactor, truncate_middle};
use domain::job::{LlmEndpoint, LlmProtocol};
use domain::llm::{self, ConversationMessage, ModelReply, ToolSpec};

/// How many times a transient failure (connection refused, 429, 5xx) is retried within one step.
const TRANSIENT_RETRIES: u32 = 2;
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// Anthropic requires a ceiling on the answer's length.
const ANTHROPIC_MAX_TOKENS: u32 = 8192;

pub struct ModelClient {
    http: reqwest::Client,
    endpoint: LlmEndpoint,
    model: String,
    redactor: Redactor,
}

enum Attempt {
    Transient(String),
    Permanent(String),
}

impl ModelClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: LlmEndpoint,
        model: String,
        redactor: Redactor,
    ) -> Self {
        ModelClient {
            http,
            endpoint,
            model,
            redactor,
        }
    }

    /// Asks the model for its next step. The caller bounds the time (stall timeout); errors are
    /// already redacted.
    pub async fn next_reply(
        &self,
        system_prompt: &str,
        conversation: &[ConversationMessage],
        tools: &[ToolSpec],
    ) -> Result<ModelReply, String> {
        let mut attempt = 0;
        loop {
            match self.attempt(system_prompt, conversation, tools).await {
                Ok(reply) => return Ok(reply),
                Err(Attempt::Transient(problem)) if attempt < TRANSIENT_RETRIES => {
                    tracing::warn!(attempt, problem = %self.redactor.redact(&problem), "model call failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(RETRY_BACKOFF * attempt).await;
                }
                Err(Attempt::Transient(problem) | Attempt::Permanent(problem)) => {
                    return Err(self.redactor.redact(&problem));
                }
            }
        }
    }

    async fn attempt(
        &self,
        system_prompt: &str,
        conversation: &[ConversationMessage],
        tools: &[ToolSpec],
    ) -> Result<ModelReply, Attempt> {
        let base = self.endpoint.base_url.trim_end_matches('/');
        let request = match self.endpoint.protocol {
            LlmProtocol::Openai => self
                .http
                .post(format!("{base}{}", llm::openai::CHAT_COMPLETIONS_PATH))
                .bearer_auth(self.endpoint.token.expose())
                .json(&llm::openai_request(
                    &self.model,
                    system_prompt,
                    conversation,
                    tools,
                )),
            LlmProtocol::Anthropic => self
                .http
                .post(format!("{base}{}", llm::anthropic::MESSAGES_PATH))
                .header("x-api-key", self.endpoint.token.expose())
                .header("anthropic-version", llm::anthropic::API_VERSION)
                .json(&llm::anthropic_request(
                    &self.model,
                    system_prompt,
                    conversation,
                    tools,
                    ANTHROPIC_MAX_TOKENS,
                )),
        };
        let response = request.send().await.map_err(|error| {
            Attempt::Transient(format!("the model endpoint did not answer: {error}"))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            Attempt::Transient(format!("the model's answer was cut off: {error}"))
        })?;
        if !status.is_success() {
            let problem = format!(
                "the model endpoint answered {status}: {}",
                truncate_middle(&String::from_utf8_lossy(&body), 2000)
            );
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Transient(problem)
            } else {
                Attempt::Permanent(problem)
            });
        }
        let unreadable = |error: serde_json::Error| {
            Attempt::Permanent(format!(
                "the model's answer is not a valid {:?} response: {error}",
                self.endpoint.protocol
            ))
        };
        match self.endpoint.protocol {
            LlmProtocol::Openai => {
                let parsed = serde_json::from_slice(&body).map_err(unreadable)?;
                llm::openai_reply(parsed).map_err(Attempt::Permanent)
            }
            LlmProtocol::Anthropic => {
                let parsed = serde_json::from_slice(&body).map_err(unreadable)?;
                Ok(llm::anthropic_reply(parsed))
            }
        }
    }
}
