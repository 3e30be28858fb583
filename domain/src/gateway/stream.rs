//! Streamed answers in the caller's dialect: an Anthropic event stream as OpenAI
//! `chat.completion.chunk`s ([`AnthropicToOpenAiStream`]), and an OpenAI chunk stream as Anthropic
//! Messages events ([`OpenAiToAnthropicStream`]). Each takes one upstream server-sent event at a time
//! and returns the (already framed) events it becomes, so nothing is buffered beyond one event.

use serde_json::{Value, json};

use super::meter::{Dialect, SseEvent};
use super::translate::{finish_reason, stop_reason};
use super::workers_ai::{AnswerStamp, WorkersAiToOpenAiStream};

/// What a streamed answer goes through on its way to the caller: nothing when the caller speaks
/// the provider's dialect, else the translator from the one to the other.
#[derive(Debug)]
pub enum StreamTranslator {
    AnthropicToOpenAi(AnthropicToOpenAiStream),
    OpenAiToAnthropic(OpenAiToAnthropicStream),
    WorkersAiToOpenAi(WorkersAiToOpenAiStream),
    /// Through OpenAI's chunks: Workers AI → OpenAI → Anthropic.
    WorkersAiToAnthropic(WorkersAiToOpenAiStream, OpenAiToAnthropicStream),
}

impl StreamTranslator {
    /// The translator for an `upstream` stream read by a `caller`, or `None` when they agree.
    /// `stamp` labels what is made from a Workers AI stream, which carries no id of its own.
    pub fn between(upstream: Dialect, caller: Dialect, stamp: AnswerStamp) -> Option<Self> {
        match (upstream, caller) {
            (Dialect::Anthropic, Dialect::OpenAi) => Some(StreamTranslator::AnthropicToOpenAi(
                AnthropicToOpenAiStream::new(),
            )),
            (Dialect::OpenAi, Dialect::Anthropic) => Some(StreamTranslator::OpenAiToAnthropic(
                OpenAiToAnthropicStream::new(),
            )),
            (Dialect::WorkersAi, Dialect::OpenAi) => Some(StreamTranslator::WorkersAiToOpenAi(
                WorkersAiToOpenAiStream::new(stamp),
            )),
            (Dialect::WorkersAi, Dialect::Anthropic) => {
                Some(StreamTranslator::WorkersAiToAnthropic(
                    WorkersAiToOpenAiStream::new(stamp),
                    OpenAiToAnthropicStream::new(),
                ))
            }
            // Nobody calls the gateway in Workers AI's shape; a stream passes through unchanged.
            (Dialect::OpenAi, Dialect::OpenAi)
            | (Dialect::Anthropic, Dialect::Anthropic)
            | (_, Dialect::WorkersAi) => None,
        }
    }

    /// The caller's events (already framed) that one upstream event becomes.
    pub fn translate(&mut self, event: &SseEvent) -> String {
        match self {
            StreamTranslator::AnthropicToOpenAi(translator) => translator.translate(event),
            StreamTranslator::OpenAiToAnthropic(translator) => translator.translate(event),
            StreamTranslator::WorkersAiToOpenAi(translator) => translator
                .events(event)
                .iter()
                .map(|chunk| format!("data: {}\n\n", chunk.data))
                .collect(),
            StreamTranslator::WorkersAiToAnthropic(to_openai, to_anthropic) => to_openai
                .events(event)
                .iter()
                .map(|chunk| to_anthropic.translate(chunk))
                .collect(),
        }
    }
}

/// Turns an Anthropic event stream into OpenAI `chat.completion.chunk` events, one upstream event
/// at a time, so a caller speaking OpenAI can stream from a Claude model.
#[derive(Debug, Default)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    /// Anthropic numbers content blocks across text and tool use; OpenAI numbers tool calls alone.
    tool_call_index_by_block: Vec<(u64, u64)>,
    tool_calls_started: u64,
}

impl AnthropicToOpenAiStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> String {
        let body = json!({
            "id": self.id, "object": "chat.completion.chunk", "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        format!("data: {body}\n\n")
    }

    /// The OpenAI server-sent events (already framed) that one Anthropic event becomes.
    pub fn translate(&mut self, event: &SseEvent) -> String {
        let Ok(body) = serde_json::from_str::<Value>(&event.data) else {
            return String::new();
        };
        match body.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = body.get("message");
                self.id = message
                    .and_then(|m| m.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.model = message
                    .and_then(|m| m.get("model"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let usage = message.and_then(|m| m.get("usage"));
                let count = |field: &str| {
                    usage
                        .and_then(|u| u.get(field))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                self.input_tokens = count("input_tokens")
                    + count("cache_creation_input_tokens")
                    + count("cache_read_input_tokens");
                self.output_tokens = count("output_tokens");
                self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)
            }
            Some("content_block_start") => {
                let block = body.get("content_block");
                if block.and_then(|b| b.get("type")).and_then(Value::as_str) != Some("tool_use") {
                    return String::new();
                }
                let block_index = body.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call_index = self.tool_calls_started;
                self.tool_calls_started += 1;
                self.tool_call_index_by_block
                    .push((block_index, call_index));
                self.chunk(
                    json!({"tool_calls": [{
                        "index": call_index,
                        "id": block.and_then(|b| b.get("id")).cloned().unwrap_or_default(),
                        "type": "function",
                        "function": {"name": block.and_then(|b| b.get("name")).cloned().unwrap_or_default(), "arguments": ""},
                    }]}),
                    Value::Null,
                )
            }
            Some("content_block_delta") => {
                let delta = body.get("delta");
                match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                    Some("text_delta") => self.chunk(
                        json!({"content": delta.and_then(|d| d.get("text")).cloned().unwrap_or_default()}),
                        Value::Null,
                    ),
                    Some("input_json_delta") => {
                        let block_index = body.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let call_index = self
                            .tool_call_index_by_block
                            .iter()
                            .find(|(block, _)| *block == block_index)
                            .map_or(0, |(_, call)| *call);
                        self.chunk(
                            json!({"tool_calls": [{"index": call_index, "function": {"arguments": delta.and_then(|d| d.get("partial_json")).cloned().unwrap_or_default()}}]}),
                            Value::Null,
                        )
                    }
                    _ => String::new(),
                }
            }
            Some("message_delta") => {
                if let Some(output) = body.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.output_tokens = output;
                }
                self.chunk(
                    json!({}),
                    finish_reason(body.pointer("/delta/stop_reason").and_then(Value::as_str)),
                )
            }
            Some("message_stop") => {
                let usage = json!({
                    "id": self.id, "object": "chat.completion.chunk", "model": self.model, "choices": [],
                    "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                              "total_tokens": self.input_tokens + self.output_tokens},
                });
                format!("data: {usage}\n\ndata: [DONE]\n\n")
            }
            Some("error") => {
                let error = json!({"error": body.get("error").cloned().unwrap_or_default()});
                format!("data: {error}\n\n")
            }
            _ => String::new(),
        }
    }
}

/// The content block an [`OpenAiToAnthropicStream`] has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text {
        block: u64,
    },
    /// A tool call: OpenAI's index of the call, and the Anthropic block it became.
    Tool {
        call: u64,
        block: u64,
    },
}

/// Turns an OpenAI Chat Completions chunk stream into Anthropic Messages events, so a caller
/// speaking Anthropic (`/v1/messages`) can stream from an OpenAI-compatible model.
///
/// OpenAI sends text and tool-call fragments as deltas of one message, the finish reason in the last
/// choice, and usage in a final chunk without choices (the gateway asks for it with
/// `stream_options.include_usage`), then `[DONE]`. Anthropic frames the same as a `message_start`,
/// one content block per text run or tool call (`content_block_start`, `…_delta`, `…_stop`), a
/// `message_delta` with the stop reason and usage, and a `message_stop`.
#[derive(Debug, Default)]
pub struct OpenAiToAnthropicStream {
    started: bool,
    open: Option<OpenBlock>,
    next_block: u64,
    stop_reason: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    finished: bool,
}

/// One Anthropic server-sent event, framed.
fn anthropic_event(body: Value) -> String {
    let name = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_owned();
    format!("event: {name}\ndata: {body}\n\n")
}

impl OpenAiToAnthropicStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn close_block(&mut self, out: &mut String) {
        if let Some(open) = self.open.take() {
            let (OpenBlock::Text { block } | OpenBlock::Tool { block, .. }) = open;
            out.push_str(&anthropic_event(
                json!({"type": "content_block_stop", "index": block}),
            ));
        }
    }

    fn open_block(&mut self, out: &mut String, open: impl FnOnce(u64) -> OpenBlock, block: Value) {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(open(index));
        out.push_str(&anthropic_event(
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
    }

    /// The Anthropic events (already framed) that one OpenAI event becomes.
    pub fn translate(&mut self, event: &SseEvent) -> String {
        let mut out = String::new();
        if self.finished {
            return out;
        }
        if event.data.trim() == "[DONE]" {
            self.close_block(&mut out);
            out.push_str(&anthropic_event(json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.clone().map_or(json!("end_turn"), Value::String),
                          "stop_sequence": Value::Null},
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            })));
            out.push_str(&anthropic_event(json!({"type": "message_stop"})));
            self.finished = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
            return out;
        };
        if let Some(error) = chunk.get("error") {
            out.push_str(&anthropic_event(json!({"type": "error", "error": {
                "type": "api_error",
                "message": error.get("message").cloned().unwrap_or_else(|| error.clone()),
            }})));
            return out;
        }
        if !self.started {
            self.started = true;
            out.push_str(&anthropic_event(
                json!({"type": "message_start", "message": {
                    "id": chunk.get("id").cloned().unwrap_or_default(),
                    "type": "message",
                    "role": "assistant",
                    "model": chunk.get("model").cloned().unwrap_or_default(),
                    "content": [],
                    "stop_reason": Value::Null,
                    "stop_sequence": Value::Null,
                    // OpenAI reports usage only at the end; the final `message_delta` carries it.
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            ));
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            let count = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
            self.input_tokens = count("prompt_tokens");
            self.output_tokens = count("completion_tokens");
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta");
        if let Some(text) = delta
            .and_then(|delta| delta.get("content"))
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
        {
            if !matches!(self.open, Some(OpenBlock::Text { .. })) {
                self.open_block(
                    &mut out,
                    |block| OpenBlock::Text { block },
                    json!({"type": "text", "text": ""}),
                );
            }
            let Some(OpenBlock::Text { block }) = self.open else {
                unreachable!("a text block was just opened")
            };
            out.push_str(&anthropic_event(
                json!({"type": "content_block_delta", "index": block,
                "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta
            .and_then(|delta| delta.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let continuing =
                matches!(self.open, Some(OpenBlock::Tool { call, .. }) if call == index);
            if !continuing {
                self.open_block(
                    &mut out,
                    |block| OpenBlock::Tool { call: index, block },
                    json!({"type": "tool_use",
                           "id": call.get("id").cloned().unwrap_or_default(),
                           "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                           "input": {}}),
                );
            }
            let Some(OpenBlock::Tool { block, .. }) = self.open else {
                unreachable!("a tool block was just opened")
            };
            if let Some(arguments) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|arguments| !arguments.is_empty())
            {
                out.push_str(&anthropic_event(
                    json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                ));
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = stop_reason(Some(reason)).as_str().map(str::to_owned);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::meter::{Dialect, SseSplitter, StreamMeter};
    use crate::spend::TokenUsage;

    #[test]
    fn an_anthropic_stream_becomes_an_openai_stream_with_the_same_usage() {
        let upstream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"read_file\",\"input\":{}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\": \\\"a.rs\\\"}\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":30}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut splitter = SseSplitter::new();
        let mut translator = AnthropicToOpenAiStream::new();
        let translated: String = splitter
            .push(upstream.as_bytes())
            .iter()
            .map(|event| translator.translate(event))
            .collect();
        let mut meter = StreamMeter::new(Dialect::OpenAi);
        meter.push(translated.as_bytes());
        assert!(meter.finished());
        assert_eq!(
            meter.reported_usage(),
            Some(TokenUsage {
                input_tokens: 50,
                output_tokens: 30
            })
        );
        let chunks: Vec<Value> = SseSplitter::new()
            .push(translated.as_bytes())
            .into_iter()
            .filter(|event| event.data != "[DONE]")
            .map(|event| serde_json::from_str(&event.data).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|chunk| {
                chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, "Let me look.");
        let arguments: String = chunks
            .iter()
            .filter_map(|chunk| {
                chunk
                    .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(arguments, "{\"path\": \"a.rs\"}");
        assert!(
            chunks.iter().any(
                |chunk| chunk.pointer("/choices/0/delta/tool_calls/0/index") == Some(&json!(0))
            )
        );
        assert!(
            chunks.iter().any(
                |chunk| chunk.pointer("/choices/0/finish_reason") == Some(&json!("tool_calls"))
            )
        );
    }

    #[test]
    fn an_openai_stream_becomes_an_anthropic_stream_with_the_same_usage() {
        let upstream = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me \"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"look.\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"path\\\": \"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"a.rs\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"list\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":30,\"total_tokens\":80}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut translator = OpenAiToAnthropicStream::new();
        // Fed in awkward pieces, as a network delivers them.
        let mut splitter = SseSplitter::new();
        let translated: String = upstream
            .as_bytes()
            .chunks(7)
            .flat_map(|piece| splitter.push(piece))
            .map(|event| translator.translate(&event))
            .collect();
        let mut meter = StreamMeter::new(Dialect::Anthropic);
        meter.push(translated.as_bytes());
        assert!(meter.finished(), "{translated}");
        assert_eq!(
            meter.reported_usage(),
            Some(TokenUsage {
                input_tokens: 50,
                output_tokens: 30
            })
        );
        let events: Vec<(Option<String>, Value)> = SseSplitter::new()
            .push(translated.as_bytes())
            .into_iter()
            .map(|event| {
                (
                    event.event.clone(),
                    serde_json::from_str(&event.data).unwrap(),
                )
            })
            .collect();
        for (name, body) in &events {
            assert_eq!(name.as_deref(), body["type"].as_str(), "named as typed");
        }
        let kinds: Vec<String> = events
            .iter()
            .map(|(_, body)| match body["type"].as_str().unwrap() {
                kind @ ("content_block_start" | "content_block_delta" | "content_block_stop") => {
                    format!("{kind}:{}", body["index"])
                }
                kind => kind.to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start:0",
                "content_block_delta:0",
                "content_block_delta:0",
                "content_block_stop:0",
                "content_block_start:1",
                "content_block_delta:1",
                "content_block_delta:1",
                "content_block_stop:1",
                "content_block_start:2",
                "content_block_delta:2",
                "content_block_stop:2",
                "message_delta",
                "message_stop",
            ]
        );
        let text: String = events
            .iter()
            .filter_map(|(_, body)| body.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        assert_eq!(text, "Let me look.");
        let first_call: String = events
            .iter()
            .filter(|(_, body)| body["index"] == 1)
            .filter_map(|(_, body)| body.pointer("/delta/partial_json").and_then(Value::as_str))
            .collect();
        assert_eq!(first_call, "{\"path\": \"a.rs\"}");
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(_, body)| body["type"] == "content_block_start")
            .map(|(_, body)| &body["content_block"])
            .collect();
        assert_eq!(starts[1]["id"], "call_a");
        assert_eq!(starts[1]["name"], "read_file");
        assert_eq!(starts[2]["name"], "list");
        let (_, last_delta) = &events[events.len() - 2];
        assert_eq!(last_delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[0].1["message"]["model"], "gpt-4o");
    }

    #[test]
    fn a_stream_is_translated_only_between_different_dialects() {
        use Dialect::*;
        let stamp = || AnswerStamp {
            id: "chatcmpl-x".into(),
            model: "m".into(),
            created: 0,
        };
        assert!(StreamTranslator::between(OpenAi, OpenAi, stamp()).is_none());
        assert!(StreamTranslator::between(Anthropic, Anthropic, stamp()).is_none());
        assert!(matches!(
            StreamTranslator::between(Anthropic, OpenAi, stamp()),
            Some(StreamTranslator::AnthropicToOpenAi(_))
        ));
        assert!(matches!(
            StreamTranslator::between(OpenAi, Anthropic, stamp()),
            Some(StreamTranslator::OpenAiToAnthropic(_))
        ));
        assert!(matches!(
            StreamTranslator::between(WorkersAi, OpenAi, stamp()),
            Some(StreamTranslator::WorkersAiToOpenAi(_))
        ));
        assert!(matches!(
            StreamTranslator::between(WorkersAi, Anthropic, stamp()),
            Some(StreamTranslator::WorkersAiToAnthropic(..))
        ));
    }

    #[test]
    fn an_openai_stream_error_is_an_anthropic_error_event_and_nothing_follows_the_end() {
        let mut translator = OpenAiToAnthropicStream::new();
        let event = |data: &str| SseEvent {
            event: None,
            data: data.to_owned(),
        };
        let error = translator.translate(&event(r#"{"error":{"message":"overloaded"}}"#));
        assert!(error.starts_with("event: error\n"), "{error}");
        assert!(error.contains("overloaded"));
        let end = translator.translate(&event("[DONE]"));
        assert!(end.contains("message_stop"), "{end}");
        assert!(end.contains("\"stop_reason\":\"end_turn\""), "{end}");
        assert_eq!(translator.translate(&event("[DONE]")), "", "one end only");
    }
}
