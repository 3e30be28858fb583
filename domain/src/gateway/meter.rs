//! Reading what a model call used from the provider's answer, streamed or not.
//!
//! The gateway passes a streamed answer through as it arrives and feeds the same bytes to a
//! [`StreamMeter`], which splits them into server-sent events at whatever chunk boundaries the
//! network chose and keeps the usage the provider reports: OpenAI's final chunk (`usage`, present
//! when the request asked for `stream_options.include_usage`), Anthropic's `message_start` (input)
//! and `message_delta` (cumulative output). If the stream dies before the provider reported usage,
//! [`StreamMeter::usage_seen`] settles from what arrived: the reserved input bound and the output
//! bytes seen, each never more than the reservation held.

use serde_json::Value;

use crate::spend::{CallBound, TokenUsage};

/// Which wire format an answer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (and every compatible server).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Workers AI's own shape, through the `AI` binding (only ever upstream:
    /// [`super::workers_ai`]).
    WorkersAi,
}

/// The usage a non-streamed answer reports, if it reports any. Anthropic's cached input
/// (`cache_creation_input_tokens`, `cache_read_input_tokens`) is billed as input and counted so.
pub fn usage_of_answer(dialect: Dialect, answer: &Value) -> Option<TokenUsage> {
    let usage = answer.get("usage")?;
    read_usage(dialect, usage)
}

fn read_usage(dialect: Dialect, usage: &Value) -> Option<TokenUsage> {
    let count = |field: &str| usage.get(field).and_then(Value::as_u64);
    match dialect {
        Dialect::OpenAi | Dialect::WorkersAi => Some(TokenUsage {
            input_tokens: count("prompt_tokens")?,
            output_tokens: count("completion_tokens").unwrap_or(0),
        }),
        Dialect::Anthropic => Some(TokenUsage {
            input_tokens: count("input_tokens")?
                + count("cache_creation_input_tokens").unwrap_or(0)
                + count("cache_read_input_tokens").unwrap_or(0),
            output_tokens: count("output_tokens").unwrap_or(0),
        }),
    }
}

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined by newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into server-sent events, across any chunk boundaries. Lines end in `\n`,
/// `\r\n` or `\r`; an empty line ends an event; comment lines (`:`) are skipped.
#[derive(Debug, Default)]
pub struct SseSplitter {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    /// The previous chunk ended in `\r`: a `\n` starting this one belongs to that line end.
    after_carriage_return: bool,
}

/// A line longer than this without an end is not a server-sent event stream; the splitter drops it
/// rather than buffer without bound.
pub const MAX_SSE_LINE_BYTES: usize = 4 * 1024 * 1024;

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut bytes = chunk;
        if self.after_carriage_return {
            self.after_carriage_return = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        let mut start = 0;
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            if byte == b'\n' || byte == b'\r' {
                self.pending.extend_from_slice(&bytes[start..index]);
                let line = std::mem::take(&mut self.pending);
                if let Some(event) = self.take_line(&line) {
                    events.push(event);
                }
                if byte == b'\r' {
                    if index + 1 < bytes.len() {
                        if bytes[index + 1] == b'\n' {
                            index += 1;
                        }
                    } else {
                        self.after_carriage_return = true;
                    }
                }
                start = index + 1;
            }
            index += 1;
        }
        self.pending.extend_from_slice(&bytes[start..]);
        if self.pending.len() > MAX_SSE_LINE_BYTES {
            self.pending.clear();
        }
        events
    }

    fn take_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent {
                event: self.event.take(),
                data,
            });
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Follows a streamed answer for what it used and how it ended.
#[derive(Debug)]
pub struct StreamMeter {
    dialect: Dialect,
    splitter: SseSplitter,
    reported_input: Option<u64>,
    reported_output: Option<u64>,
    /// Bytes of generated text and tool arguments seen, for a stream that dies before its usage.
    output_bytes_seen: u64,
    finished: bool,
    upstream_error: Option<String>,
}

impl StreamMeter {
    pub fn new(dialect: Dialect) -> Self {
        StreamMeter {
            dialect,
            splitter: SseSplitter::new(),
            reported_input: None,
            reported_output: None,
            output_bytes_seen: 0,
            finished: false,
            upstream_error: None,
        }
    }

    /// Feeds the next chunk of the upstream body, exactly as it is passed on to the client.
    pub fn push(&mut self, chunk: &[u8]) {
        for event in self.splitter.push(chunk) {
            self.observe(&event);
        }
    }

    fn observe(&mut self, event: &SseEvent) {
        if event.data == "[DONE]" {
            self.finished = true;
            return;
        }
        let Ok(body) = serde_json::from_str::<Value>(&event.data) else {
            return;
        };
        match self.dialect {
            Dialect::OpenAi => self.observe_openai(&body),
            Dialect::Anthropic => self.observe_anthropic(&body),
            Dialect::WorkersAi => self.observe_workers_ai(&body),
        }
    }

    /// An OpenAI-like event's `error` (kept; `false`: nothing more to read) or `usage` (kept).
    fn observe_error_and_usage(&mut self, event: &Value) -> bool {
        if let Some(error) = event.get("error") {
            self.upstream_error = Some(error_text(error));
            return false;
        }
        if let Some(usage) = event
            .get("usage")
            .and_then(|usage| read_usage(self.dialect, usage))
        {
            self.reported_input = Some(usage.input_tokens);
            self.reported_output = Some(usage.output_tokens);
        }
        true
    }

    fn observe_workers_ai(&mut self, event: &Value) {
        if !self.observe_error_and_usage(event) {
            return;
        }
        self.output_bytes_seen += text_len(event.get("response"));
        for call in event
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.output_bytes_seen += text_len(call.get("name"));
            self.output_bytes_seen += call.get("arguments").map_or(0, |arguments| {
                arguments
                    .as_str()
                    .map_or_else(|| arguments.to_string().len(), str::len) as u64
            });
        }
    }

    fn observe_openai(&mut self, chunk: &Value) {
        if !self.observe_error_and_usage(chunk) {
            return;
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            self.output_bytes_seen += text_len(delta.get("content"));
            self.output_bytes_seen += text_len(delta.get("reasoning_content"));
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let function = call.get("function");
                self.output_bytes_seen += text_len(function.and_then(|f| f.get("name")));
                self.output_bytes_seen += text_len(function.and_then(|f| f.get("arguments")));
            }
        }
    }

    fn observe_anthropic(&mut self, event: &Value) {
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(usage) = event
                    .pointer("/message/usage")
                    .and_then(|usage| read_usage(Dialect::Anthropic, usage))
                {
                    self.reported_input = Some(usage.input_tokens);
                    self.reported_output = Some(usage.output_tokens);
                }
            }
            Some("content_block_delta") => {
                let delta = event.get("delta");
                for field in ["text", "partial_json", "thinking"] {
                    self.output_bytes_seen += text_len(delta.and_then(|delta| delta.get(field)));
                }
            }
            Some("message_delta") => {
                // `message_delta` carries the cumulative output count (and, since 2025, may repeat
                // the input count); the last one seen is the answer's.
                if let Some(usage) = event.get("usage") {
                    if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
                        self.reported_output = Some(output);
                    }
                    if let Some(input) = read_usage(Dialect::Anthropic, usage)
                        && input.input_tokens > 0
                    {
                        self.reported_input = Some(input.input_tokens);
                    }
                }
            }
            Some("message_stop") => self.finished = true,
            Some("error") => {
                self.upstream_error = Some(
                    event
                        .get("error")
                        .map(error_text)
                        .unwrap_or_else(|| "upstream error".to_owned()),
                );
            }
            _ => {}
        }
    }

    /// Whether the provider ended the answer properly (`[DONE]` or `message_stop`).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The error event the provider sent mid-stream, if any.
    pub fn upstream_error(&self) -> Option<&str> {
        self.upstream_error.as_deref()
    }

    /// The usage the provider reported, when it reported both directions.
    pub fn reported_usage(&self) -> Option<TokenUsage> {
        Some(TokenUsage {
            input_tokens: self.reported_input?,
            output_tokens: self.reported_output?,
        })
    }

    /// The usage to settle the call with: what the provider reported, or, for a stream that ended
    /// without it, the reserved input bound and one token per output byte seen — never more than
    /// the reservation, so a broken stream cannot charge past what the budget held for it.
    pub fn usage_seen(&self, bound: &CallBound) -> TokenUsage {
        if let Some(usage) = self.reported_usage() {
            return usage;
        }
        TokenUsage {
            input_tokens: self.reported_input.unwrap_or(bound.max_input_tokens),
            output_tokens: self
                .reported_output
                .unwrap_or(self.output_bytes_seen)
                .min(bound.max_output_tokens),
        }
    }
}

fn text_len(value: Option<&Value>) -> u64 {
    value
        .and_then(Value::as_str)
        .map_or(0, |text| text.len() as u64)
}

fn error_text(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spend::MicroDollars;
    use serde_json::json;

    // Shapes of real provider payloads (OpenAI chat.completion.chunk with include_usage; Anthropic
    // Messages streaming events), trimmed to the fields that matter.
    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"{\\\"path\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":812,\"completion_tokens\":23,\"total_tokens\":835}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn bound() -> CallBound {
        CallBound {
            max_input_tokens: 10_000,
            max_output_tokens: 1_000,
            max_cost: MicroDollars(1),
        }
    }

    /// Feeds `stream` in every split of two, and in single bytes, and checks that each gives the
    /// same usage: chunk boundaries must not matter.
    fn meter_every_way(dialect: Dialect, stream: &str) -> TokenUsage {
        let bytes = stream.as_bytes();
        let mut whole = StreamMeter::new(dialect);
        whole.push(bytes);
        let expected = whole.usage_seen(&bound());
        assert!(whole.finished());
        for split in 0..bytes.len() {
            let mut meter = StreamMeter::new(dialect);
            meter.push(&bytes[..split]);
            meter.push(&bytes[split..]);
            assert_eq!(meter.usage_seen(&bound()), expected, "split at {split}");
        }
        let mut bytewise = StreamMeter::new(dialect);
        for byte in bytes {
            bytewise.push(std::slice::from_ref(byte));
        }
        assert_eq!(bytewise.usage_seen(&bound()), expected);
        expected
    }

    #[test]
    fn openai_streams_report_usage_in_their_last_chunk() {
        assert_eq!(
            meter_every_way(Dialect::OpenAi, OPENAI_STREAM),
            TokenUsage {
                input_tokens: 812,
                output_tokens: 23
            }
        );
    }

    #[test]
    fn anthropic_streams_report_input_at_the_start_and_output_at_the_end() {
        assert_eq!(
            meter_every_way(Dialect::Anthropic, ANTHROPIC_STREAM),
            TokenUsage {
                input_tokens: 572,
                output_tokens: 15
            }
        );
        let crlf = ANTHROPIC_STREAM.replace('\n', "\r\n");
        assert_eq!(meter_every_way(Dialect::Anthropic, &crlf).output_tokens, 15);
    }

    #[test]
    fn a_stream_that_dies_settles_from_what_was_seen_within_the_reservation() {
        // Cut the OpenAI stream before its usage chunk: input is the reserved bound, output the
        // bytes of text and tool-call arguments seen.
        let cut = OPENAI_STREAM.find("\"choices\":[],").unwrap();
        let mut meter = StreamMeter::new(Dialect::OpenAi);
        meter.push(&OPENAI_STREAM.as_bytes()[..cut]);
        assert!(!meter.finished());
        let seen = meter.usage_seen(&bound());
        assert_eq!(seen.input_tokens, 10_000);
        assert_eq!(
            seen.output_tokens,
            ("Hello".len() + "read_file".len() + "{\"path\":".len()) as u64
        );
        // Anthropic cut after message_start: the reported input stands.
        let cut = ANTHROPIC_STREAM.find("event: content_block_start").unwrap();
        let mut meter = StreamMeter::new(Dialect::Anthropic);
        meter.push(&ANTHROPIC_STREAM.as_bytes()[..cut]);
        let seen = meter.usage_seen(&bound());
        assert_eq!(seen.input_tokens, 572);
        assert_eq!(seen.output_tokens, 1);
        // Never more output than the reservation held.
        let mut flood = StreamMeter::new(Dialect::OpenAi);
        let long = "x".repeat(5_000);
        flood.push(
            format!(
                "data: {}\n\n",
                json!({"choices":[{"delta":{"content": long}}]})
            )
            .as_bytes(),
        );
        assert_eq!(flood.usage_seen(&bound()).output_tokens, 1_000);
    }

    #[test]
    fn mid_stream_errors_are_kept() {
        let mut meter = StreamMeter::new(Dialect::Anthropic);
        meter.push(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert_eq!(meter.upstream_error(), Some("Overloaded"));
        let mut meter = StreamMeter::new(Dialect::OpenAi);
        meter.push(b"data: {\"error\":{\"message\":\"boom\"}}\n\n");
        assert_eq!(meter.upstream_error(), Some("boom"));
    }

    #[test]
    fn sse_splitting_follows_the_spec() {
        let mut splitter = SseSplitter::new();
        let events =
            splitter.push(b": keep-alive\n\nevent: a\ndata: one\ndata: two\n\ndata:three\r\n\r\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: None,
                    data: "three".into()
                },
            ]
        );
        // An unfinished event stays pending.
        assert!(splitter.push(b"data: four").is_empty());
        assert_eq!(splitter.push(b"\n\n")[0].data, "four");
    }

    #[test]
    fn non_streamed_answers_report_usage_in_both_dialects() {
        let openai = json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}});
        assert_eq!(
            usage_of_answer(Dialect::OpenAi, &openai),
            Some(TokenUsage {
                input_tokens: 10,
                output_tokens: 5
            })
        );
        let anthropic = json!({"content": [], "usage": {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 2}});
        assert_eq!(
            usage_of_answer(Dialect::Anthropic, &anthropic),
            Some(TokenUsage {
                input_tokens: 10,
                output_tokens: 2
            })
        );
        assert_eq!(usage_of_answer(Dialect::OpenAi, &json!({})), None);
    }
}
