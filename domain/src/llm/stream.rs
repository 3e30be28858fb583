//! Streamed answers (server-sent events) in both protocols, assembled into the same [`ModelReply`]
//! a non-streamed answer gives, so the transcript does not depend on how the answer travelled.

use serde_json::Value;

use super::{ModelReply, TokenUsage, ToolCall, parse_arguments};

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into server-sent events, however the bytes are chunked (a chunk may end in
/// the middle of a line or of a UTF-8 character).
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&String::from_utf8_lossy(&line), &mut events);
        }
        events
    }

    /// Ends the stream: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(
                String::from_utf8_lossy(&rest).trim_end_matches('\r'),
                &mut events,
            );
        }
        self.line("", &mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles an OpenAI chat-completions stream (`data: {chunk}` … `data: [DONE]`).
#[derive(Debug, Default)]
pub struct OpenaiStream {
    text: String,
    tool_calls: Vec<PartialToolCall>,
    usage: Option<TokenUsage>,
    model: Option<String>,
    done: bool,
}

impl OpenaiStream {
    /// Takes one event's data. An `error` object in the stream is the provider's failure.
    pub fn push(&mut self, data: &str) -> Result<(), String> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|error| format!("a streamed chunk is not JSON: {error}"))?;
        if let Some(error) = chunk.get("error") {
            return Err(format!("the model endpoint failed mid-stream: {error}"));
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model = Some(model.to_owned());
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
            self.usage = Some(TokenUsage {
                input_tokens: usage.get("prompt_tokens").and_then(Value::as_u64),
                output_tokens: usage.get("completion_tokens").and_then(Value::as_u64),
            });
        }
        let Some(delta) = chunk.pointer("/choices/0/delta") else {
            return Ok(());
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.text.push_str(text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index > 1024 {
                return Err("a streamed tool call has an absurd index".to_owned());
            }
            while self.tool_calls.len() <= index {
                self.tool_calls.push(PartialToolCall::default());
            }
            let partial = &mut self.tool_calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                partial.id = id.to_owned();
            }
            if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                partial.name.push_str(name);
            }
            if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
                partial.arguments.push_str(arguments);
            }
        }
        Ok(())
    }

    /// The assembled reply. A stream that ended without `[DONE]` was cut off.
    pub fn finish(self) -> Result<ModelReply, String> {
        if !self.done {
            return Err("the streamed answer ended before [DONE]; it was cut off".to_owned());
        }
        Ok(ModelReply {
            text: (!self.text.is_empty()).then_some(self.text),
            tool_calls: self
                .tool_calls
                .into_iter()
                .filter(|call| !call.name.is_empty())
                .map(|call| ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments: parse_arguments(&call.arguments),
                })
                .collect(),
            usage: self.usage,
            model: self.model,
        })
    }
}

#[derive(Debug)]
enum PartialBlock {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
        json: String,
    },
    Other,
}

/// Assembles an Anthropic Messages stream (`message_start`, `content_block_*`, `message_delta`,
/// `message_stop`).
#[derive(Debug, Default)]
pub struct AnthropicStream {
    blocks: Vec<PartialBlock>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    model: Option<String>,
    stopped: bool,
}

impl AnthropicStream {
    pub fn push(&mut self, data: &str) -> Result<(), String> {
        let event: Value = serde_json::from_str(data)
            .map_err(|error| format!("a streamed event is not JSON: {error}"))?;
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "message_start" => {
                let message = event.get("message").cloned().unwrap_or_default();
                self.model = message
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.input_tokens = message
                    .pointer("/usage/input_tokens")
                    .and_then(Value::as_u64);
                self.output_tokens = message
                    .pointer("/usage/output_tokens")
                    .and_then(Value::as_u64);
            }
            "content_block_start" => {
                if index > 1024 {
                    return Err("a streamed content block has an absurd index".to_owned());
                }
                let block = event.get("content_block").cloned().unwrap_or_default();
                let partial = match block.get("type").and_then(Value::as_str) {
                    Some("text") => PartialBlock::Text(
                        block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    Some("tool_use") => PartialBlock::ToolUse {
                        id: block
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        input: block.get("input").cloned().unwrap_or(Value::Null),
                        json: String::new(),
                    },
                    _ => PartialBlock::Other,
                };
                while self.blocks.len() < index {
                    self.blocks.push(PartialBlock::Other);
                }
                if self.blocks.len() == index {
                    self.blocks.push(partial);
                } else {
                    self.blocks[index] = partial;
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta").cloned().unwrap_or_default();
                match (
                    self.blocks.get_mut(index),
                    delta.get("type").and_then(Value::as_str),
                ) {
                    (Some(PartialBlock::Text(text)), Some("text_delta")) => text.push_str(
                        delta
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    ),
                    (Some(PartialBlock::ToolUse { json, .. }), Some("input_json_delta")) => json
                        .push_str(
                            delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or_default(),
                        ),
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(tokens) = event
                    .pointer("/usage/output_tokens")
                    .and_then(Value::as_u64)
                {
                    self.output_tokens = Some(tokens);
                }
                if let Some(tokens) = event.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.input_tokens = Some(tokens);
                }
            }
            "message_stop" => self.stopped = true,
            "error" => {
                return Err(format!(
                    "the model endpoint failed mid-stream: {}",
                    event.get("error").cloned().unwrap_or_default()
                ));
            }
            // ping, content_block_stop and event types added later carry nothing we need.
            _ => {}
        }
        Ok(())
    }

    /// The assembled reply, built exactly like a non-streamed response's.
    pub fn finish(self) -> Result<ModelReply, String> {
        if !self.stopped {
            return Err("the streamed answer ended before message_stop; it was cut off".to_owned());
        }
        let mut texts = Vec::new();
        let mut tool_calls = Vec::new();
        for block in self.blocks {
            match block {
                PartialBlock::Text(text) => texts.push(text),
                PartialBlock::ToolUse {
                    id,
                    name,
                    input,
                    json,
                } => {
                    let arguments = if json.trim().is_empty() {
                        match input {
                            Value::Null => Value::Object(Default::default()),
                            input => input,
                        }
                    } else {
                        parse_arguments(&json)
                    };
                    tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments,
                    });
                }
                PartialBlock::Other => {}
            }
        }
        Ok(ModelReply {
            text: (!texts.is_empty()).then(|| texts.join("\n")),
            tool_calls,
            usage: (self.input_tokens.is_some() || self.output_tokens.is_some()).then_some(
                TokenUsage {
                    input_tokens: self.input_tokens,
                    output_tokens: self.output_tokens,
                },
            ),
            model: self.model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_in_pieces(stream: &str, piece: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in stream.as_bytes().chunks(piece) {
            events.extend(decoder.feed(chunk));
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn sse_events_come_out_the_same_however_the_bytes_are_chunked() {
        let stream = ": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata: é1\ndata: two\n\ndata:x";
        let expected = vec![
            SseEvent {
                event: Some("ping".to_owned()),
                data: "{}".to_owned(),
            },
            SseEvent {
                event: None,
                data: "é1\ntwo".to_owned(),
            },
            SseEvent {
                event: None,
                data: "x".to_owned(),
            },
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(decode_in_pieces(stream, piece), expected, "piece {piece}");
        }
    }

    #[test]
    fn an_openai_stream_assembles_text_tool_calls_and_usage() {
        let chunks = [
            json!({"model": "gpt-x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Rea"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "ding."}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "type": "function", "function": {"name": "read_file", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "{\"path\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "\"a\"}"}},
                {"index": 1, "id": "c2", "function": {"name": "finish", "arguments": "{}"}}]}}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 7}}),
        ];
        let mut stream = OpenaiStream::default();
        for chunk in &chunks {
            stream.push(&chunk.to_string()).unwrap();
        }
        stream.push("[DONE]").unwrap();
        let reply = stream.finish().unwrap();
        assert_eq!(reply.text.as_deref(), Some("Reading."));
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].arguments, json!({"path": "a"}));
        assert_eq!(reply.tool_calls[1].name, "finish");
        assert_eq!(reply.model.as_deref(), Some("gpt-x"));
        assert_eq!(
            reply.usage,
            Some(TokenUsage {
                input_tokens: Some(120),
                output_tokens: Some(7)
            })
        );
    }

    #[test]
    fn a_cut_off_or_failing_stream_is_an_error() {
        let mut stream = OpenaiStream::default();
        stream
            .push(&json!({"choices": [{"delta": {"content": "x"}}]}).to_string())
            .unwrap();
        assert!(stream.finish().unwrap_err().contains("cut off"));
        let mut stream = OpenaiStream::default();
        assert!(
            stream
                .push(r#"{"error": {"message": "overloaded"}}"#)
                .is_err()
        );
        let mut stream = AnthropicStream::default();
        stream
            .push(r#"{"type": "message_start", "message": {}}"#)
            .unwrap();
        assert!(stream.finish().is_err());
    }

    #[test]
    fn an_anthropic_stream_assembles_blocks_in_order_with_usage() {
        let events = [
            json!({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 50, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "look."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "read_file", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"pa"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "th\": \"a\"}"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t2", "name": "list_directory", "input": {}}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
            json!({"type": "message_stop"}),
        ];
        let mut stream = AnthropicStream::default();
        for event in &events {
            stream.push(&event.to_string()).unwrap();
        }
        let reply = stream.finish().unwrap();
        assert_eq!(reply.text.as_deref(), Some("Let me look."));
        assert_eq!(reply.tool_calls[0].arguments, json!({"path": "a"}));
        assert_eq!(reply.tool_calls[1].arguments, json!({}));
        assert_eq!(reply.model.as_deref(), Some("claude-x"));
        assert_eq!(
            reply.usage,
            Some(TokenUsage {
                input_tokens: Some(50),
                output_tokens: Some(30)
            })
        );
    }
}
