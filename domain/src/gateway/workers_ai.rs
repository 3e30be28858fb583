//! Workers AI, reached through the worker's `AI` binding (`env.AI.run(model, input)`), in its own
//! shape: the input is `{messages, max_tokens, stream, tools, …}` with text-only message contents;
//! a whole answer is `{response, tool_calls: [{name, arguments}], usage}` (usage in OpenAI's field
//! names); a streamed answer is server-sent events `data: {"response": "<text>"}` ending with
//! `data: [DONE]`, the usage (when the model reports it) on a late event.
//!
//! The gateway speaks it as a third upstream dialect: an OpenAI request is narrowed to it (an
//! Anthropic request goes through OpenAI first), and its answers become OpenAI's (then Anthropic's
//! when the caller speaks that). Shapes follow Cloudflare's model schema for the text-generation
//! task (`@cf/meta/llama-3.3-70b-instruct-fp8-fast`).

use serde_json::{Map, Value, json};

use super::meter::SseEvent;
use super::translate::TranslateError;

/// What an answer translated from Workers AI is labelled with (it carries no id of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerStamp {
    /// `chatcmpl-…`: the gateway's call id.
    pub id: String,
    pub model: String,
    /// Unix seconds.
    pub created: i64,
}

/// The OpenAI request fields Workers AI's text-generation input shares, copied as they are.
const SHARED_FIELDS: [&str; 8] = [
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "stream",
    "response_format",
];

fn problem(field: &str, message: &str) -> TranslateError {
    TranslateError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// An OpenAI Chat Completions request → a Workers AI text-generation input. The model goes to
/// `run(model, input)` beside it, not in it. Images are refused (these models read text); an
/// assistant's earlier tool calls are written into its turn as the JSON the model emitted them as.
pub fn openai_request_to_workers_ai(request: &Value) -> Result<Value, TranslateError> {
    let mut input = Map::new();
    for field in SHARED_FIELDS {
        if let Some(value) = request.get(field).filter(|value| !value.is_null()) {
            input.insert(field.to_owned(), value.clone());
        }
    }
    if let Some(max) = request.get("max_completion_tokens")
        && !input.contains_key("max_tokens")
    {
        input.insert("max_tokens".to_owned(), max.clone());
    }
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| problem("messages", "must be an array of messages"))?;
    let mut out = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let field = format!("messages[{index}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| problem(&field, "needs a role"))?;
        // OpenAI's newer name for a system prompt.
        let role = if role == "developer" { "system" } else { role };
        let mut content = text_of(message.get("content"), &field)?;
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                let name = call.pointer("/function/name").cloned().unwrap_or_default();
                let arguments = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .unwrap_or_else(|| json!({}));
                if !content.is_empty() {
                    content.push('\n');
                }
                content.push_str(&json!({"name": name, "arguments": arguments}).to_string());
            }
        }
        let mut turn = Map::new();
        turn.insert("role".to_owned(), json!(role));
        turn.insert("content".to_owned(), json!(content));
        if let Some(id) = message.get("tool_call_id") {
            turn.insert("tool_call_id".to_owned(), id.clone());
        }
        out.push(Value::Object(turn));
    }
    input.insert("messages".to_owned(), Value::Array(out));
    if let Some(tools) = request.get("tools").and_then(Value::as_array) {
        // `{type: "function", function: {name, description, parameters}}`, as OpenAI writes them.
        input.insert("tools".to_owned(), Value::Array(tools.clone()));
    }
    Ok(Value::Object(input))
}

/// A message's content as text: a string, or text parts joined; an image is refused.
fn text_of(content: Option<&Value>, field: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    _ => {
                        return Err(problem(
                            &format!("{field}.content"),
                            "Workers AI's text models read text only: send text parts (no images or files)",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(problem(
            &format!("{field}.content"),
            "must be a string or an array of parts",
        )),
    }
}

/// A tool call as OpenAI writes it, from Workers AI's `{name, arguments}` (`arguments` an object,
/// or already a string).
fn openai_tool_call(call: &Value, stamp: &AnswerStamp, index: usize) -> Value {
    let arguments = match call.get("arguments") {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => "{}".to_owned(),
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("call_{}_{index}", stamp.id), str::to_owned);
    json!({
        "id": id,
        "type": "function",
        "function": {"name": call.get("name").cloned().unwrap_or_default(), "arguments": arguments},
    })
}

/// Workers AI's `response`: usually text; a JSON-mode answer may be an object, sent on as its text.
fn response_text(answer: &Value) -> Option<String> {
    match answer.get("response")? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// OpenAI usage from Workers AI's (same field names; `total_tokens` filled in when missing).
fn openai_usage(usage: &Value) -> Option<Value> {
    let input = usage.get("prompt_tokens").and_then(Value::as_u64)?;
    let output = usage
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(
        json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}),
    )
}

/// A whole Workers AI answer → an OpenAI `chat.completion`.
pub fn workers_ai_answer_to_openai(answer: &Value, stamp: &AnswerStamp) -> Value {
    let calls: Vec<Value> = answer
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, call)| openai_tool_call(call, stamp, index))
        .collect();
    let mut message = json!({"role": "assistant", "content": response_text(answer)});
    let finish = if calls.is_empty() {
        "stop"
    } else {
        message["tool_calls"] = Value::Array(calls);
        "tool_calls"
    };
    let mut completion = json!({
        "id": stamp.id,
        "object": "chat.completion",
        "created": stamp.created,
        "model": stamp.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let Some(usage) = answer.get("usage").and_then(openai_usage) {
        completion["usage"] = usage;
    }
    completion
}

/// Turns a Workers AI event stream into OpenAI `chat.completion.chunk` events, one upstream event
/// at a time: the first text comes with the assistant's role, each `response` becomes a content
/// delta, tool calls become tool-call deltas, and `[DONE]` the finish chunk, the usage chunk (when
/// the model reported usage) and `[DONE]`.
#[derive(Debug)]
pub struct WorkersAiToOpenAiStream {
    stamp: AnswerStamp,
    started: bool,
    tool_calls: usize,
    usage: Option<Value>,
    finished: bool,
}

impl WorkersAiToOpenAiStream {
    pub fn new(stamp: AnswerStamp) -> Self {
        WorkersAiToOpenAiStream {
            stamp,
            started: false,
            tool_calls: 0,
            usage: None,
            finished: false,
        }
    }

    fn chunk(&self, choices: Value) -> SseEvent {
        SseEvent {
            event: None,
            data: json!({
                "id": self.stamp.id,
                "object": "chat.completion.chunk",
                "created": self.stamp.created,
                "model": self.stamp.model,
                "choices": choices,
            })
            .to_string(),
        }
    }

    fn delta(&mut self, mut delta: Value) -> SseEvent {
        if !self.started {
            self.started = true;
            delta["role"] = json!("assistant");
        }
        self.chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]))
    }

    /// The OpenAI events (unframed) that one Workers AI event becomes.
    pub fn events(&mut self, event: &SseEvent) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if event.data.trim() == "[DONE]" {
            self.finished = true;
            let finish = if self.tool_calls > 0 {
                "tool_calls"
            } else {
                "stop"
            };
            if !self.started {
                out.push(self.delta(json!({"content": ""})));
            }
            out.push(self.chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])));
            if let Some(usage) = self.usage.take() {
                let mut last = self.chunk(json!([]));
                let mut body: Value = serde_json::from_str(&last.data).unwrap_or_default();
                body["usage"] = usage;
                last.data = body.to_string();
                out.push(last);
            }
            out.push(SseEvent {
                event: None,
                data: "[DONE]".to_owned(),
            });
            return out;
        }
        let Ok(body) = serde_json::from_str::<Value>(&event.data) else {
            return out;
        };
        if let Some(error) = body.get("error") {
            // Passed on as OpenAI's error chunk; nothing follows it.
            self.finished = true;
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            out.push(SseEvent {
                event: None,
                data: json!({"error": {"type": "upstream_failed", "code": "upstream_failed", "message": message}})
                    .to_string(),
            });
            return out;
        }
        if let Some(usage) = body.get("usage").and_then(openai_usage) {
            self.usage = Some(usage);
        }
        if let Some(text) = response_text(&body).filter(|text| !text.is_empty()) {
            out.push(self.delta(json!({"content": text})));
        }
        for call in body
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = self.tool_calls;
            self.tool_calls += 1;
            let mut whole = openai_tool_call(call, &self.stamp, index);
            whole["index"] = json!(index);
            out.push(self.delta(json!({"tool_calls": [whole]})));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::meter::{Dialect, SseSplitter, StreamMeter, usage_of_answer};

    fn stamp() -> AnswerStamp {
        AnswerStamp {
            id: "chatcmpl-res1".to_owned(),
            model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast".to_owned(),
            created: 1_796_000_000,
        }
    }

    #[test]
    fn a_request_is_narrowed_to_text_messages_and_the_shared_fields() {
        let request = json!({
            "model": "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Oslo?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "4 °C"},
            ],
            "max_completion_tokens": 300,
            "temperature": 0.2,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "someone",
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        });
        let input = openai_request_to_workers_ai(&request).unwrap();
        assert_eq!(
            input,
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"role": "assistant", "content": "{\"arguments\":{\"city\":\"Oslo\"},\"name\":\"weather\"}"},
                    {"role": "tool", "content": "4 °C", "tool_call_id": "c1"},
                ],
                "max_tokens": 300,
                "temperature": 0.2,
                "stream": true,
                "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            })
        );
    }

    #[test]
    fn an_image_is_refused_with_the_field_named() {
        let request = json!({"messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
        ]});
        let error = openai_request_to_workers_ai(&request).unwrap_err();
        assert_eq!(error.field, "messages[0].content");
        assert!(error.message.contains("text only"), "{}", error.message);
    }

    #[test]
    fn a_whole_answer_becomes_a_chat_completion_with_its_tool_calls_and_usage() {
        let answer = json!({
            "response": null,
            "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138},
        });
        let completion = workers_ai_answer_to_openai(&answer, &stamp());
        assert_eq!(completion["id"], "chatcmpl-res1");
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
        let call = &completion["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "Oslo"})
        );
        // The meter reads the same usage from the upstream answer and from the caller's.
        let charged = usage_of_answer(Dialect::WorkersAi, &answer).unwrap();
        assert_eq!(usage_of_answer(Dialect::OpenAi, &completion), Some(charged));
        assert_eq!((charged.input_tokens, charged.output_tokens), (120, 18));

        let text = workers_ai_answer_to_openai(&json!({"response": "4 °C in Oslo."}), &stamp());
        assert_eq!(text["choices"][0]["message"]["content"], "4 °C in Oslo.");
        assert_eq!(text["choices"][0]["finish_reason"], "stop");
        assert!(text.get("usage").is_none());
    }

    const STREAM: &str = "data: {\"response\":\"Four\",\"p\":\"abc\"}\n\n\
        data: {\"response\":\" degrees\"}\n\n\
        data: {\"response\":\"\",\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":3,\"total_tokens\":43}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn a_stream_becomes_openai_chunks_and_is_metered_the_same_way_round() {
        for piece in [1, 7, 13, STREAM.len()] {
            let mut splitter = SseSplitter::new();
            let mut translator = WorkersAiToOpenAiStream::new(stamp());
            let mut upstream_meter = StreamMeter::new(Dialect::WorkersAi);
            let mut caller_meter = StreamMeter::new(Dialect::OpenAi);
            let mut text = String::new();
            for chunk in STREAM.as_bytes().chunks(piece) {
                upstream_meter.push(chunk);
                for event in splitter.push(chunk) {
                    for out in translator.events(&event) {
                        caller_meter.push(format!("data: {}\n\n", out.data).as_bytes());
                        if let Ok(body) = serde_json::from_str::<Value>(&out.data)
                            && let Some(delta) = body.pointer("/choices/0/delta/content")
                        {
                            text.push_str(delta.as_str().unwrap());
                        }
                    }
                }
            }
            assert_eq!(text, "Four degrees", "in pieces of {piece}");
            assert!(upstream_meter.finished() && caller_meter.finished());
            let usage = upstream_meter.reported_usage().unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (40, 3));
            assert_eq!(caller_meter.reported_usage(), Some(usage));
        }
    }

    #[test]
    fn a_stream_with_a_tool_call_finishes_for_tool_calls_and_an_error_ends_it() {
        let mut translator = WorkersAiToOpenAiStream::new(stamp());
        let event = |data: &str| SseEvent {
            event: None,
            data: data.to_owned(),
        };
        let out = translator.events(&event(
            "{\"response\":\"\",\"tool_calls\":[{\"name\":\"weather\",\"arguments\":{\"city\":\"Oslo\"}}]}",
        ));
        let body: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(body["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(body["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        let done = translator.events(&event("[DONE]"));
        let finish: Value = serde_json::from_str(&done[0].data).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(done.last().unwrap().data, "[DONE]");
        assert!(
            translator
                .events(&event("{\"response\":\"late\"}"))
                .is_empty()
        );

        let mut failing = WorkersAiToOpenAiStream::new(stamp());
        let out = failing.events(&event(
            "{\"error\":{\"message\":\"3040: Capacity temporarily exceeded\"}}",
        ));
        let body: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(body["error"]["code"], "upstream_failed");
        assert!(failing.events(&event("[DONE]")).is_empty());
    }
}
