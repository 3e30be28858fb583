//! One gateway call, planned before any byte goes upstream: which model and provider, the body to
//! send (with `max_tokens` filled in, usage asked for, translated to the provider's dialect), and
//! the most the call can cost — the amount the spend cap reserves. Then, after the answer, what to
//! charge and what to hand back. Pure: the worker does the I/O around it.

use serde_json::{Value, json};

use super::meter::{Dialect, usage_of_answer};
use super::translate::{
    anthropic_answer_to_openai, anthropic_request_to_openai, openai_answer_to_anthropic,
    openai_request_to_anthropic,
};
use super::workers_ai::{AnswerStamp, openai_request_to_workers_ai, workers_ai_answer_to_openai};
use super::{GatewayClaims, check_model};
use crate::api::{ApiError, ErrorCode, FieldProblem};
use crate::spend::{
    CallBound, CatalogModel, Provider, TokenUsage, bound_call, effective_max_output_tokens,
    read_request_shape, resolve_model,
};

/// The Anthropic API version the gateway speaks upstream.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The dialect a provider speaks.
pub fn provider_dialect(provider: Provider) -> Dialect {
    match provider {
        Provider::OpenaiCompatible => Dialect::OpenAi,
        Provider::Anthropic => Dialect::Anthropic,
        Provider::WorkersAi => Dialect::WorkersAi,
    }
}

/// A call ready to forward.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    pub model: CatalogModel,
    pub caller_dialect: Dialect,
    pub upstream_dialect: Dialect,
    /// The body to send upstream, serialized (its size is the input bound).
    pub upstream_body: String,
    pub stream: bool,
    pub bound: CallBound,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid_fields(vec![FieldProblem::new(field, message)])
}

/// Plans a call from the caller's body: checks the token's model, resolves the price (the
/// account's own prices first), fills in `max_tokens`, asks a streaming OpenAI upstream for its
/// usage, translates when the dialects differ, and bounds the cost.
pub fn plan_call(
    caller_dialect: Dialect,
    claims: &GatewayClaims,
    body: &Value,
    account_models: &[CatalogModel],
) -> Result<PlannedCall, ApiError> {
    let shape =
        read_request_shape(body).map_err(|problem| invalid(problem.field(), problem.message()))?;
    check_model(claims, &shape.model).map_err(|refused| {
        ApiError::new(ErrorCode::ModelNotAllowed, refused.message())
            .with_details(json!({"allowed": refused.allowed, "requested": refused.requested}))
    })?;
    let model = resolve_model(&shape.model, account_models).ok_or_else(|| {
        invalid(
            "model",
            "the gateway has no price for this model; an account admin can price it with \
             PUT /accounts/:id/models/:model (a local model at 0)",
        )
    })?;
    let upstream_dialect = provider_dialect(model.provider);
    let max_output_tokens = effective_max_output_tokens(shape.requested_max_output_tokens, &model);
    let mut request = body.clone();
    let object = request
        .as_object_mut()
        .expect("read_request_shape accepted an object");
    if caller_dialect == Dialect::OpenAi && object.contains_key("max_completion_tokens") {
        object.insert("max_completion_tokens".into(), json!(max_output_tokens));
        object.remove("max_tokens");
    } else {
        object.insert("max_tokens".into(), json!(max_output_tokens));
    }
    let translated = match (caller_dialect, upstream_dialect) {
        (Dialect::OpenAi, Dialect::Anthropic) => openai_request_to_anthropic(&request),
        (Dialect::Anthropic, Dialect::OpenAi) => anthropic_request_to_openai(&request),
        (Dialect::OpenAi, Dialect::WorkersAi) => openai_request_to_workers_ai(&request),
        (Dialect::Anthropic, Dialect::WorkersAi) => anthropic_request_to_openai(&request)
            .and_then(|openai| openai_request_to_workers_ai(&openai)),
        // The same dialect (nobody calls in Workers AI's shape: there is no route for it).
        _ => Ok(request),
    };
    let upstream = translated.map_err(|error| invalid(&error.field, &error.message))?;
    let mut upstream = upstream;
    if upstream_dialect == Dialect::OpenAi && shape.stream {
        // Without this an OpenAI-compatible server never reports a stream's usage.
        upstream["stream_options"] = json!({"include_usage": true});
    }
    let upstream_body = upstream.to_string();
    let bound = bound_call(
        &model,
        upstream_body.len() as u64,
        shape.image_parts,
        max_output_tokens,
    );
    Ok(PlannedCall {
        model,
        caller_dialect,
        upstream_dialect,
        upstream_body,
        stream: shape.stream,
        bound,
    })
}

impl PlannedCall {
    /// The usage to charge for a complete, non-streamed answer: what the provider reported, or the
    /// whole bound when it reported nothing (the reservation held exactly that, and an answer
    /// without usage cannot be metered more precisely).
    pub fn usage_of(&self, answer: &Value) -> TokenUsage {
        usage_of_answer(self.upstream_dialect, answer).unwrap_or(TokenUsage {
            input_tokens: self.bound.max_input_tokens,
            output_tokens: self.bound.max_output_tokens,
        })
    }

    /// The answer in the caller's dialect; `stamp` labels one from Workers AI, which has no id.
    pub fn answer_for_caller(&self, answer: &Value, stamp: &AnswerStamp) -> Value {
        match (self.upstream_dialect, self.caller_dialect) {
            (Dialect::Anthropic, Dialect::OpenAi) => anthropic_answer_to_openai(answer),
            (Dialect::OpenAi, Dialect::Anthropic) => openai_answer_to_anthropic(answer),
            (Dialect::WorkersAi, Dialect::OpenAi) => workers_ai_answer_to_openai(answer, stamp),
            (Dialect::WorkersAi, Dialect::Anthropic) => {
                openai_answer_to_anthropic(&workers_ai_answer_to_openai(answer, stamp))
            }
            _ => answer.clone(),
        }
    }

    /// What an answer made for this call is labelled with: the call's id and the model, at `now_ms`.
    pub fn stamp(&self, call_id: &str, now_ms: i64) -> AnswerStamp {
        AnswerStamp {
            id: format!("chatcmpl-{call_id}"),
            model: self.model.id.clone(),
            created: now_ms.div_euclid(1000),
        }
    }

    /// The streamed error event a client gets when the upstream dies mid-stream: an `error` event
    /// in the caller's dialect, so an SDK reports a failure rather than a truncated answer.
    pub fn stream_error_event(&self, message: &str) -> String {
        match self.caller_dialect {
            Dialect::OpenAi | Dialect::WorkersAi => format!(
                "data: {}\n\n",
                json!({"error": {"type": "upstream_failed", "code": "upstream_failed", "message": message}})
            ),
            Dialect::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": "api_error", "message": message}})
            ),
        }
    }
}

/// A deployment's or an account's provider base URL: `https://` anywhere, plain `http://` only for
/// a loopback host (a local Ollama or vLLM, the tests' scripted model), so a key never crosses a
/// network in the clear.
pub fn check_base_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() {
            Err("the base URL needs a host".to_owned())
        } else {
            Ok(())
        };
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(
            "the base URL must start with https:// (or http:// for a loopback host)".into(),
        );
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "plain http:// is allowed only for a loopback host (localhost, 127.x, ::1), not `{host}`; use https://"
        ))
    }
}

/// The URL a call goes to: `<base>/chat/completions` for an OpenAI-compatible base (which ends in
/// its version, such as `/v1`), `<base>/v1/messages` for Anthropic; none for Workers AI, which is
/// reached through its binding.
pub fn upstream_url(base_url: &str, dialect: Dialect) -> Option<String> {
    let base = base_url.trim_end_matches('/');
    match dialect {
        Dialect::OpenAi => Some(format!("{base}/chat/completions")),
        Dialect::Anthropic => Some(format!("{base}/v1/messages")),
        Dialect::WorkersAi => None,
    }
}

/// The last four characters of a key, the only part ever shown again.
pub fn key_last4(key: &str) -> String {
    let characters: Vec<char> = key.chars().collect();
    characters[characters.len().saturating_sub(4)..]
        .iter()
        .collect()
}

/// How many times a non-streamed call is sent at most (the first try and two retries).
pub const MAX_WHOLE_CALL_ATTEMPTS: u32 = 3;

/// Whether to retry a non-streamed call after attempt number `attempt` (from 1) failed with
/// `status` (`None`: the provider could not be reached), and after how long: 429 and 5xx (and an
/// unreachable provider) are retried with a doubling backoff, a `Retry-After` of up to 5 s
/// honoured; anything else, or the last attempt, is final.
pub fn retry_delay_ms(
    status: Option<u16>,
    attempt: u32,
    retry_after_ms: Option<u64>,
) -> Option<u64> {
    if attempt >= MAX_WHOLE_CALL_ATTEMPTS {
        return None;
    }
    let retryable = status.is_none_or(crate::llm::retry::is_retryable_status);
    if !retryable {
        return None;
    }
    let backoff = 200_u64 << (attempt - 1).min(4);
    Some(match retry_after_ms {
        Some(wait) if wait <= 5_000 => wait.max(backoff),
        _ => backoff,
    })
}

/// The error a caller gets when the provider failed: `upstream_failed` with the provider's status
/// and message, where any occurrence of the provider key is blanked (some providers echo a part
/// of a rejected key) and the text is cut short.
pub fn upstream_error(status: Option<u16>, body: &str, key: Option<&str>) -> ApiError {
    let mut text = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    if let Some(key) = key.filter(|key| !key.is_empty()) {
        text = text.replace(key, "[redacted]");
        // A prefix of the key (say its first 8 characters) is still the key's.
        if key.len() >= 8 {
            text = text.replace(&key[..8], "[redacted]");
        }
    }
    let text: String = text.chars().take(300).collect();
    let message = match status {
        Some(status) => format!("The model provider answered HTTP {status}: {text}"),
        None => "The model provider could not be reached; try again in a moment.".to_owned(),
    };
    ApiError::new(ErrorCode::UpstreamFailed, message)
        .with_details(json!({"upstreamStatus": status}))
}

/// The AES-256-GCM key provider keys are sealed under, derived from the deployment secret (so the
/// secret itself is never used directly as a cipher key, and rotating it is one variable).
pub fn sealing_key(deployment_secret: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"cat-factory provider keys v1\0");
    hasher.update(deployment_secret);
    hasher.finalize().into()
}

/// A sealed key as stored: base64 of the 12-byte nonce followed by the ciphertext.
pub fn encode_sealed(nonce: &[u8; 12], ciphertext: &[u8]) -> String {
    use base64::Engine;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(ciphertext);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The nonce and ciphertext of a stored sealed key.
pub fn decode_sealed(text: &str) -> Option<([u8; 12], Vec<u8>)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() <= 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    Some((nonce.try_into().ok()?, ciphertext.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, WorkspaceId};
    use crate::spend::MicroDollars;

    fn claims(model: &str) -> GatewayClaims {
        GatewayClaims {
            account: AccountId::from_random([1; 8]),
            workspace: WorkspaceId::from_random([2; 8]),
            block: None,
            run: None,
            step: None,
            user: None,
            model: model.into(),
            iat: 0,
            exp: 10,
            jti: "j".into(),
        }
    }

    #[test]
    fn a_wrongly_typed_stream_is_a_400_naming_the_field_and_null_means_false() {
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let body = json!({"model": "gpt-4o-mini", "stream": "yes", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]});
            let error = plan_call(dialect, &claims("gpt-4o-mini"), &body, &[]).unwrap_err();
            assert_eq!(error.code, ErrorCode::ValidationFailed);
            assert_eq!(error.status(), 400);
            assert_eq!(error.details.unwrap()["problems"][0]["field"], "stream");
        }
        let body = json!({"model": "gpt-4o-mini", "stream": null,
            "messages": [{"role": "user", "content": "hi"}]});
        let planned = plan_call(Dialect::OpenAi, &claims("gpt-4o-mini"), &body, &[]).unwrap();
        assert!(!planned.stream);
    }

    #[test]
    fn a_call_is_planned_with_max_tokens_usage_and_a_bound() {
        let body = json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        let planned = plan_call(Dialect::OpenAi, &claims("gpt-4o-mini"), &body, &[]).unwrap();
        let sent: Value = serde_json::from_str(&planned.upstream_body).unwrap();
        assert_eq!(sent["max_tokens"], 16_384);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(planned.bound.max_output_tokens, 16_384);
        assert_eq!(
            planned.bound.max_input_tokens,
            planned.upstream_body.len() as u64
        );
        assert!(planned.bound.max_cost > MicroDollars::ZERO);
    }

    #[test]
    fn another_model_or_an_unpriced_one_is_refused() {
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        let refused = plan_call(Dialect::OpenAi, &claims("gpt-4o-mini"), &body, &[]).unwrap_err();
        assert_eq!(
            (refused.code, refused.status()),
            (ErrorCode::ModelNotAllowed, 403)
        );
        let local = json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]});
        let unpriced = plan_call(Dialect::OpenAi, &claims("llama3"), &local, &[]).unwrap_err();
        assert_eq!(unpriced.code, ErrorCode::ValidationFailed);
        assert!(format!("{unpriced:?}").contains("PUT /accounts"));
    }

    #[test]
    fn an_openai_caller_of_a_claude_model_is_translated_both_ways() {
        let body = json!({"model": "claude-3-5-haiku-20241022", "max_tokens": 100,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]});
        let planned = plan_call(
            Dialect::OpenAi,
            &claims("claude-3-5-haiku-20241022"),
            &body,
            &[],
        )
        .unwrap();
        assert_eq!(planned.upstream_dialect, Dialect::Anthropic);
        let sent: Value = serde_json::from_str(&planned.upstream_body).unwrap();
        assert_eq!(sent["system"], "be brief");
        assert_eq!(sent["max_tokens"], 100);
        let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 3}});
        assert_eq!(
            planned.usage_of(&answer),
            TokenUsage {
                input_tokens: 12,
                output_tokens: 3
            }
        );
        let translated = planned.answer_for_caller(&answer, &planned.stamp("res_1", 0));
        assert_eq!(translated["choices"][0]["message"]["content"], "hello");
        // No usage reported: the whole bound is charged.
        assert_eq!(
            planned.usage_of(&json!({})).output_tokens,
            planned.bound.max_output_tokens
        );
    }

    #[test]
    fn an_anthropic_caller_streams_an_openai_model_with_usage_asked_for() {
        let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
            "system": "be brief", "messages": [{"role": "user", "content": "hi"}]});
        let planned = plan_call(Dialect::Anthropic, &claims("gpt-4o-mini"), &body, &[]).unwrap();
        assert_eq!(planned.upstream_dialect, Dialect::OpenAi);
        assert!(planned.stream);
        let sent: Value = serde_json::from_str(&planned.upstream_body).unwrap();
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["messages"][0]["role"], "system");
    }

    #[test]
    fn a_workers_ai_model_is_called_in_its_own_shape_and_answers_in_the_callers() {
        let model = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";
        let body = json!({"model": model, "max_tokens": 200, "stream": true, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        let planned = plan_call(Dialect::Anthropic, &claims(model), &body, &[]).unwrap();
        assert_eq!(planned.upstream_dialect, Dialect::WorkersAi);
        let sent: Value = serde_json::from_str(&planned.upstream_body).unwrap();
        // The model is `run`'s first argument, not part of the input; no OpenAI-only options.
        assert_eq!(
            sent,
            json!({"max_tokens": 200, "stream": true, "messages": [
                {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})
        );
        let answer =
            json!({"response": "hello", "usage": {"prompt_tokens": 9, "completion_tokens": 2}});
        assert_eq!(
            planned.usage_of(&answer),
            TokenUsage {
                input_tokens: 9,
                output_tokens: 2
            }
        );
        let stamp = planned.stamp("res_9", 1_796_000_000_500);
        assert_eq!(
            (stamp.id.as_str(), stamp.created),
            ("chatcmpl-res_9", 1_796_000_000)
        );
        let translated = planned.answer_for_caller(&answer, &stamp);
        assert_eq!(translated["type"], "message");
        assert_eq!(translated["content"][0]["text"], "hello");
        assert_eq!(translated["usage"]["input_tokens"], 9);
        assert_eq!(upstream_url("https://x", Dialect::WorkersAi), None);
    }

    #[test]
    fn plain_http_only_reaches_loopback_and_keys_show_their_last_four() {
        assert!(check_base_url("https://api.openai.com/v1").is_ok());
        assert!(check_base_url("http://127.0.0.1:11434/v1").is_ok());
        assert!(check_base_url("http://localhost:8000/v1").is_ok());
        assert!(check_base_url("http://[::1]:8000/v1").is_ok());
        assert!(check_base_url("http://example.com/v1").is_err());
        assert!(check_base_url("http://127.evil.com/v1").is_err());
        assert!(check_base_url("ftp://x").is_err());
        assert_eq!(
            upstream_url("http://127.0.0.1:1/v1/", Dialect::OpenAi).unwrap(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert_eq!(
            upstream_url("https://api.anthropic.com", Dialect::Anthropic).unwrap(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(key_last4("sk-secret-abcd"), "abcd");
        assert_eq!(key_last4("ab"), "ab");
    }

    #[test]
    fn retries_are_bounded_and_upstream_errors_never_carry_the_key() {
        assert_eq!(retry_delay_ms(Some(429), 1, None), Some(200));
        assert_eq!(retry_delay_ms(Some(503), 2, Some(1_000)), Some(1_000));
        assert_eq!(retry_delay_ms(None, 2, None), Some(400));
        assert_eq!(
            retry_delay_ms(Some(500), MAX_WHOLE_CALL_ATTEMPTS, None),
            None
        );
        assert_eq!(retry_delay_ms(Some(400), 1, None), None);
        let error = upstream_error(
            Some(401),
            r#"{"error":{"message":"Incorrect API key provided: sk-live-1234567890abcdef"}}"#,
            Some("sk-live-1234567890abcdef"),
        );
        assert_eq!(
            (error.code, error.status()),
            (ErrorCode::UpstreamFailed, 502)
        );
        assert!(!error.message.contains("sk-live"), "{}", error.message);
        let partial = upstream_error(
            Some(401),
            "bad key sk-live-12***",
            Some("sk-live-1234567890abcdef"),
        );
        assert!(
            !partial.message.contains("sk-live-1"),
            "{}",
            partial.message
        );
    }

    #[test]
    fn sealed_keys_round_trip_their_framing_and_keys_differ_per_secret() {
        let sealed = encode_sealed(&[7; 12], b"ciphertext");
        assert_eq!(
            decode_sealed(&sealed),
            Some(([7; 12], b"ciphertext".to_vec()))
        );
        assert_eq!(decode_sealed("AAAA"), None);
        assert_ne!(sealing_key(b"one"), sealing_key(b"two"));
    }
}
