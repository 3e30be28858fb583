//! The translation against payloads in the shape the providers really send (`tests/fixtures/gateway/`):
//! every field a real answer carries (cache token counts, `service_tier`, `logprobs`, `refusal`,
//! `usage: null` on every chunk but the last, `ping` events, empty first argument fragments), so a
//! field the hand-written unit tests leave out cannot break metering or a tool call. Workers AI's
//! follow its published schema (`response`, `tool_calls` with object arguments, OpenAI-named usage;
//! a stream of `response` pieces with the `p` padding some models add, the usage on a late event).

use serde_json::Value;

use super::meter::{Dialect, SseSplitter, StreamMeter, usage_of_answer};
use super::stream::StreamTranslator;
use super::translate::{anthropic_answer_to_openai, openai_answer_to_anthropic};
use super::workers_ai::{AnswerStamp, workers_ai_answer_to_openai};
use crate::spend::TokenUsage;

const OPENAI_ANSWER: &str =
    include_str!("../../tests/fixtures/gateway/openai_chat_completion_tool_calls.json");
const OPENAI_STREAM: &str =
    include_str!("../../tests/fixtures/gateway/openai_chat_stream_tool_calls.sse");
const ANTHROPIC_ANSWER: &str =
    include_str!("../../tests/fixtures/gateway/anthropic_message_tool_use.json");
const ANTHROPIC_STREAM: &str =
    include_str!("../../tests/fixtures/gateway/anthropic_message_stream_tool_use.sse");
const WORKERS_AI_ANSWER: &str =
    include_str!("../../tests/fixtures/gateway/workers_ai_answer_tool_calls.json");
const WORKERS_AI_STREAM: &str =
    include_str!("../../tests/fixtures/gateway/workers_ai_stream_text.sse");

fn stamp() -> AnswerStamp {
    AnswerStamp {
        id: "chatcmpl-res_fixture".into(),
        model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast".into(),
        created: 1_796_000_000,
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// Both fixtures of a dialect hold the same turn: the text, then `read_file` and `run_command`.
const TEXT: &str = "I'll read the failing test first.";

fn calls_openai(message: &Value) -> Vec<(String, Value)> {
    message["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| {
            (
                call["function"]["name"].as_str().unwrap().to_owned(),
                json(call["function"]["arguments"].as_str().unwrap()),
            )
        })
        .collect()
}

fn calls_anthropic(content: &Value) -> Vec<(String, Value)> {
    content
        .as_array()
        .unwrap()
        .iter()
        .filter(|block| block["type"] == "tool_use")
        .map(|block| {
            (
                block["name"].as_str().unwrap().to_owned(),
                block["input"].clone(),
            )
        })
        .collect()
}

fn expected_calls() -> Vec<(String, Value)> {
    vec![
        (
            "read_file".into(),
            serde_json::json!({"path": "src/greeting.rs"}),
        ),
        (
            "run_command".into(),
            serde_json::json!({"command": "cargo test greeting"}),
        ),
    ]
}

/// OpenAI counts cached prompt tokens inside `prompt_tokens`; Anthropic reports them beside
/// `input_tokens`. Either way the turn read 1,184 tokens.
const OPENAI_USAGE: TokenUsage = TokenUsage {
    input_tokens: 1184,
    output_tokens: 61,
};
const ANTHROPIC_USAGE: TokenUsage = TokenUsage {
    input_tokens: 1184,
    output_tokens: 97,
};

#[test]
fn an_openai_answer_is_metered_and_becomes_an_anthropic_one() {
    let answer = json(OPENAI_ANSWER);
    assert_eq!(
        usage_of_answer(Dialect::OpenAi, &answer),
        Some(OPENAI_USAGE)
    );
    let translated = openai_answer_to_anthropic(&answer);
    assert_eq!(translated["type"], "message");
    assert_eq!(translated["content"][0]["text"], TEXT);
    assert_eq!(calls_anthropic(&translated["content"]), expected_calls());
    assert_eq!(translated["stop_reason"], "tool_use");
    assert_eq!(
        usage_of_answer(Dialect::Anthropic, &translated),
        Some(OPENAI_USAGE),
        "the caller is told the tokens it is charged for"
    );
}

#[test]
fn an_anthropic_answer_is_metered_and_becomes_an_openai_one() {
    let answer = json(ANTHROPIC_ANSWER);
    assert_eq!(
        usage_of_answer(Dialect::Anthropic, &answer),
        Some(ANTHROPIC_USAGE),
        "cache reads are input tokens too"
    );
    let translated = anthropic_answer_to_openai(&answer);
    let message = &translated["choices"][0]["message"];
    assert_eq!(message["content"], TEXT);
    assert_eq!(calls_openai(message), expected_calls());
    assert_eq!(translated["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        usage_of_answer(Dialect::OpenAi, &translated),
        Some(ANTHROPIC_USAGE)
    );
}

/// Feeds a stream through the translator in small pieces (as a network delivers it), meters what the
/// caller receives, and returns it.
fn translate_stream(stream: &str, upstream: Dialect, caller: Dialect) -> String {
    let mut upstream_meter = StreamMeter::new(upstream);
    let mut splitter = SseSplitter::new();
    let mut translator =
        StreamTranslator::between(upstream, caller, stamp()).expect("different dialects");
    let mut out = String::new();
    for piece in stream.as_bytes().chunks(13) {
        upstream_meter.push(piece);
        for event in splitter.push(piece) {
            out.push_str(&translator.translate(&event));
        }
    }
    assert!(upstream_meter.finished(), "the fixture is a whole stream");
    let mut caller_meter = StreamMeter::new(caller);
    caller_meter.push(out.as_bytes());
    assert!(caller_meter.finished(), "the caller sees the stream end");
    assert_eq!(
        caller_meter.reported_usage(),
        upstream_meter.reported_usage(),
        "the caller is told the usage the gateway charges"
    );
    out
}

/// The text an OpenAI chunk stream carries.
fn openai_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| {
            chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

/// The text an Anthropic event stream carries.
fn anthropic_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|event| event.pointer("/delta/text").and_then(Value::as_str))
        .collect()
}

fn events(stream: &str) -> Vec<Value> {
    SseSplitter::new()
        .push(stream.as_bytes())
        .into_iter()
        .filter(|event| event.data != "[DONE]")
        .map(|event| json(&event.data))
        .collect()
}

#[test]
fn an_openai_stream_is_metered_and_becomes_an_anthropic_stream() {
    let mut meter = StreamMeter::new(Dialect::OpenAi);
    meter.push(OPENAI_STREAM.as_bytes());
    assert_eq!(meter.reported_usage(), Some(OPENAI_USAGE));
    let translated = events(&translate_stream(
        OPENAI_STREAM,
        Dialect::OpenAi,
        Dialect::Anthropic,
    ));
    let text = anthropic_text(&translated);
    assert_eq!(text, TEXT);
    // Each tool call is one block: its start names it, its deltas carry the arguments.
    let mut calls = Vec::new();
    for start in translated
        .iter()
        .filter(|event| event["type"] == "content_block_start")
        .filter(|event| event["content_block"]["type"] == "tool_use")
    {
        let arguments: String = translated
            .iter()
            .filter(|event| {
                event["type"] == "content_block_delta" && event["index"] == start["index"]
            })
            .filter_map(|event| event.pointer("/delta/partial_json").and_then(Value::as_str))
            .collect();
        calls.push((
            start["content_block"]["name"].as_str().unwrap().to_owned(),
            json(&arguments),
        ));
    }
    assert_eq!(calls, expected_calls());
    let stop = translated
        .iter()
        .find(|event| event["type"] == "message_delta")
        .unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
}

#[test]
fn an_anthropic_stream_is_metered_and_becomes_an_openai_stream() {
    let mut meter = StreamMeter::new(Dialect::Anthropic);
    meter.push(ANTHROPIC_STREAM.as_bytes());
    assert_eq!(meter.reported_usage(), Some(ANTHROPIC_USAGE));
    let translated = events(&translate_stream(
        ANTHROPIC_STREAM,
        Dialect::Anthropic,
        Dialect::OpenAi,
    ));
    let text = openai_text(&translated);
    assert_eq!(text, TEXT);
    let mut calls: Vec<(String, String)> = Vec::new();
    for chunk in &translated {
        for call in chunk
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if calls.len() <= index {
                calls.push((
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            calls[index].1 += call["function"]["arguments"].as_str().unwrap_or_default();
        }
    }
    let calls: Vec<(String, Value)> = calls
        .into_iter()
        .map(|(name, arguments)| (name, json(&arguments)))
        .collect();
    assert_eq!(calls, expected_calls());
    assert!(
        translated
            .iter()
            .any(|chunk| chunk.pointer("/choices/0/finish_reason")
                == Some(&Value::from("tool_calls")))
    );
}

#[test]
fn a_workers_ai_answer_is_metered_and_becomes_an_openai_and_an_anthropic_one() {
    let answer = json(WORKERS_AI_ANSWER);
    let charged = TokenUsage {
        input_tokens: 1184,
        output_tokens: 58,
    };
    assert_eq!(usage_of_answer(Dialect::WorkersAi, &answer), Some(charged));
    let openai = workers_ai_answer_to_openai(&answer, &stamp());
    let message = &openai["choices"][0]["message"];
    assert_eq!(message["content"], TEXT);
    assert_eq!(calls_openai(message), expected_calls());
    assert_eq!(openai["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage_of_answer(Dialect::OpenAi, &openai), Some(charged));
    let anthropic = openai_answer_to_anthropic(&openai);
    assert_eq!(anthropic["content"][0]["text"], TEXT);
    assert_eq!(calls_anthropic(&anthropic["content"]), expected_calls());
    assert_eq!(
        usage_of_answer(Dialect::Anthropic, &anthropic),
        Some(charged)
    );
}

#[test]
fn a_workers_ai_stream_is_metered_and_becomes_an_openai_and_an_anthropic_stream() {
    let mut meter = StreamMeter::new(Dialect::WorkersAi);
    meter.push(WORKERS_AI_STREAM.as_bytes());
    assert_eq!(
        meter.reported_usage(),
        Some(TokenUsage {
            input_tokens: 1184,
            output_tokens: 9
        })
    );
    let openai = events(&translate_stream(
        WORKERS_AI_STREAM,
        Dialect::WorkersAi,
        Dialect::OpenAi,
    ));
    let text = openai_text(&openai);
    assert_eq!(text, TEXT);
    assert!(
        openai
            .iter()
            .all(|chunk| chunk["id"] == "chatcmpl-res_fixture")
    );
    let anthropic = events(&translate_stream(
        WORKERS_AI_STREAM,
        Dialect::WorkersAi,
        Dialect::Anthropic,
    ));
    let text = anthropic_text(&anthropic);
    assert_eq!(text, TEXT);
    assert_eq!(anthropic.last().unwrap()["type"], "message_stop");
}
