//! Translation between the two wire formats the gateway speaks: OpenAI Chat Completions and
//! Anthropic Messages.
//!
//! A caller picks its dialect by the path it calls (`/v1/chat/completions` or `/v1/messages`); the
//! model it names decides the provider. When the two differ, the request is translated on the way
//! up and the answer on the way down — messages, system prompts, tool definitions, tool calls, tool
//! results, stop reasons, usage, and streamed events. Bodies are handled as JSON values so fields
//! this module does not know pass through untouched where the dialects share them.

use serde_json::{Map, Value, json};

/// Why a body could not be translated; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    pub field: String,
    pub message: String,
}

fn problem(field: &str, message: &str) -> TranslateError {
    TranslateError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// Text of an OpenAI `content`, which is a string or an array of parts.
fn openai_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// OpenAI content parts → Anthropic content blocks (text and images).
fn openai_parts_to_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(text) if text.is_empty() => Vec::new(),
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Some(
                    json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()}),
                ),
                Some("image_url") => {
                    let url = part.pointer("/image_url/url").and_then(Value::as_str)?;
                    Some(image_block(url))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn image_block(url: &str) -> Value {
    // `data:<media type>;base64,<data>` becomes a base64 source; anything else a URL source.
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// An OpenAI Chat Completions request → an Anthropic Messages request. `max_tokens` is required by
/// Anthropic; the gateway always sets it before translating.
pub fn openai_request_to_anthropic(request: &Value) -> Result<Value, TranslateError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| problem("messages", "`messages` must be an array."))?;
    let mut system_parts: Vec<String> = Vec::new();
    let mut translated: Vec<Value> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let content = message.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system_parts.push(openai_text(content)),
            "user" => push_anthropic(&mut translated, "user", openai_parts_to_blocks(content)),
            "assistant" => {
                let mut blocks = openai_parts_to_blocks(content);
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let arguments = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    let input: Value = serde_json::from_str(arguments).map_err(|_| {
                        problem(
                            &format!("messages[{index}].tool_calls"),
                            "a tool call's `arguments` must be a JSON object encoded as a string",
                        )
                    })?;
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.get("id").cloned().unwrap_or_default(),
                        "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                        "input": input,
                    }));
                }
                push_anthropic(&mut translated, "assistant", blocks);
            }
            "tool" => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id").cloned().unwrap_or_default(),
                    "content": openai_text(content),
                });
                push_anthropic(&mut translated, "user", vec![block]);
            }
            _ => {
                return Err(problem(
                    &format!("messages[{index}].role"),
                    "a message's role must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    let mut body = Map::new();
    copy(request, &mut body, "model", "model");
    body.insert("messages".into(), Value::Array(translated));
    if !system_parts.is_empty() {
        body.insert("system".into(), Value::String(system_parts.join("\n\n")));
    }
    let max_tokens = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .cloned()
        .ok_or_else(|| problem("max_tokens", "`max_tokens` is required"))?;
    body.insert("max_tokens".into(), max_tokens);
    for field in ["temperature", "top_p", "stream"] {
        copy(request, &mut body, field, field);
    }
    match request.get("stop") {
        Some(Value::String(stop)) => {
            body.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) => {
            body.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    if let Some(tools) = request.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = tool.get("function").unwrap_or(tool);
                json!({
                    "name": function.get("name").cloned().unwrap_or_default(),
                    "description": function.get("description").cloned().unwrap_or_default(),
                    "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    match request.get("tool_choice") {
        Some(Value::String(choice)) if choice == "required" => {
            body.insert("tool_choice".into(), json!({"type": "any"}));
        }
        Some(Value::String(choice)) if choice == "auto" => {
            body.insert("tool_choice".into(), json!({"type": "auto"}));
        }
        Some(Value::Object(choice)) => {
            if let Some(name) = choice.get("function").and_then(|f| f.get("name")) {
                body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
            }
        }
        _ => {}
    }
    Ok(Value::Object(body))
}

/// Anthropic requires alternating roles; consecutive messages of one role (several tool results, a
/// tool result followed by user text) merge into one message.
fn push_anthropic(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last.get("role").and_then(Value::as_str) == Some(role)
        && let Some(content) = last.get_mut("content").and_then(Value::as_array_mut)
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

fn copy(from: &Value, to: &mut Map<String, Value>, from_field: &str, to_field: &str) {
    if let Some(value) = from.get(from_field)
        && !value.is_null()
    {
        to.insert(to_field.to_owned(), value.clone());
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> Value {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => json!("stop"),
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Value::Null,
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub(super) fn stop_reason(finish_reason: Option<&str>) -> Value {
    match finish_reason {
        Some("length") => json!("max_tokens"),
        Some("tool_calls" | "function_call") => json!("tool_use"),
        Some("content_filter") => json!("refusal"),
        Some(_) => json!("end_turn"),
        None => Value::Null,
    }
}

/// An Anthropic Messages answer → an OpenAI Chat Completions answer.
pub fn anthropic_answer_to_openai(answer: &Value) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in answer
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let usage = answer.get("usage");
    let count = |field: &str| {
        usage
            .and_then(|usage| usage.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let input = count("input_tokens")
        + count("cache_creation_input_tokens")
        + count("cache_read_input_tokens");
    let output = count("output_tokens");
    json!({
        "id": answer.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "model": answer.get("model").cloned().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(answer.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    })
}

/// An Anthropic Messages request → an OpenAI Chat Completions request.
pub fn anthropic_request_to_openai(request: &Value) -> Result<Value, TranslateError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| problem("messages", "`messages` must be an array."))?;
    let mut translated = Vec::new();
    match request.get("system") {
        Some(Value::String(system)) => {
            translated.push(json!({"role": "system", "content": system}))
        }
        Some(Value::Array(blocks)) => translated
            .push(json!({"role": "system", "content": openai_text(&Value::Array(blocks.clone()))})),
        _ => {}
    }
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(problem(
                &format!("messages[{index}].role"),
                "a message's role must be user or assistant",
            ));
        }
        let blocks = match message.get("content") {
            Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => Vec::new(),
        };
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        for block in &blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(json!({"type": "text", "text": block.get("text").cloned().unwrap_or_default()})),
                Some("image") => {
                    let source = block.get("source");
                    let url = match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            source.and_then(|s| s.get("media_type")).and_then(Value::as_str).unwrap_or("image/png"),
                            source.and_then(|s| s.get("data")).and_then(Value::as_str).unwrap_or("")
                        ),
                        _ => source.and_then(|s| s.get("url")).and_then(Value::as_str).unwrap_or("").to_owned(),
                    };
                    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                }
                Some("tool_use") => tool_calls.push(json!({
                    "id": block.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": block.get("name").cloned().unwrap_or_default(),
                        "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                    },
                })),
                Some("tool_result") => {
                    let content = match block.get("content") {
                        Some(Value::String(text)) => text.clone(),
                        Some(Value::Array(inner)) => openai_text(&Value::Array(inner.clone())),
                        _ => String::new(),
                    };
                    translated.push(json!({
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id").cloned().unwrap_or_default(),
                        "content": content,
                    }));
                }
                _ => {}
            }
        }
        if !parts.is_empty() || !tool_calls.is_empty() {
            let all_text = parts
                .iter()
                .all(|part| part.get("type").and_then(Value::as_str) == Some("text"));
            let content = if parts.is_empty() {
                Value::Null
            } else if all_text {
                Value::String(openai_text(&Value::Array(parts)))
            } else {
                Value::Array(parts)
            };
            let mut out = json!({"role": role, "content": content});
            if !tool_calls.is_empty() {
                out["tool_calls"] = Value::Array(tool_calls);
            }
            translated.push(out);
        }
    }
    let mut body = Map::new();
    copy(request, &mut body, "model", "model");
    body.insert("messages".into(), Value::Array(translated));
    copy(request, &mut body, "max_tokens", "max_tokens");
    for field in ["temperature", "top_p", "stream"] {
        copy(request, &mut body, field, field);
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    copy(request, &mut body, "stop_sequences", "stop");
    if let Some(tools) = request.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.get("name").cloned().unwrap_or_default(),
                    "description": tool.get("description").cloned().unwrap_or_default(),
                    "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = request.get("tool_choice") {
        let translated_choice = match choice.get("type").and_then(Value::as_str) {
            Some("any") => Some(json!("required")),
            Some("auto") => Some(json!("auto")),
            Some("none") => Some(json!("none")),
            Some("tool") => Some(
                json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or_default()}}),
            ),
            _ => None,
        };
        if let Some(choice) = translated_choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(body))
}

/// An OpenAI Chat Completions answer → an Anthropic Messages answer.
pub fn openai_answer_to_anthropic(answer: &Value) -> Value {
    let choice = answer.pointer("/choices/0");
    let message = choice.and_then(|choice| choice.get("message"));
    let mut content = Vec::new();
    let text = message
        .and_then(|message| message.get("content"))
        .map(openai_text)
        .unwrap_or_default();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .and_then(|message| message.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let input = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .and_then(|arguments| serde_json::from_str::<Value>(arguments).ok())
            .unwrap_or_else(|| json!({}));
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_default(),
            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
            "input": input,
        }));
    }
    let count = |field: &str| {
        answer
            .get("usage")
            .and_then(|usage| usage.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    json!({
        "id": answer.get("id").cloned().unwrap_or_default(),
        "type": "message",
        "role": "assistant",
        "model": answer.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|choice| choice.get("finish_reason")).and_then(Value::as_str)),
        "stop_sequence": Value::Null,
        "usage": {"input_tokens": count("prompt_tokens"), "output_tokens": count("completion_tokens")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::meter::{Dialect, usage_of_answer};
    use crate::spend::TokenUsage;

    fn openai_conversation() -> Value {
        json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1000,
            "temperature": 0.2,
            "stop": "END",
            "messages": [
                {"role": "system", "content": "You are a coder."},
                {"role": "user", "content": "Fix the test."},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.rs\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"b.rs\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "fn a() {}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "fn b() {}"},
                {"role": "user", "content": [{"type": "text", "text": "Also this:"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "read_file", "description": "Read a file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
            "tool_choice": "required"
        })
    }

    #[test]
    fn an_openai_conversation_becomes_an_anthropic_one() {
        let translated = openai_request_to_anthropic(&openai_conversation()).unwrap();
        assert_eq!(
            translated,
            json!({
                "model": "claude-sonnet-4-20250514",
                "system": "You are a coder.",
                "max_tokens": 1000,
                "temperature": 0.2,
                "stop_sequences": ["END"],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Fix the test."}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "a.rs"}},
                        {"type": "tool_use", "id": "call_2", "name": "read_file", "input": {"path": "b.rs"}}
                    ]},
                    // Both tool results and the next user text merge into one user turn.
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "fn a() {}"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "fn b() {}"},
                        {"type": "text", "text": "Also this:"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                    ]}
                ],
                "tools": [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
                "tool_choice": {"type": "any"}
            })
        );
    }

    #[test]
    fn a_round_trip_keeps_the_conversation() {
        let anthropic = openai_request_to_anthropic(&openai_conversation()).unwrap();
        let back = anthropic_request_to_openai(&anthropic).unwrap();
        let messages = back["messages"].as_array().unwrap();
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": "You are a coder."})
        );
        assert_eq!(
            messages[1],
            json!({"role": "user", "content": "Fix the test."})
        );
        assert_eq!(
            messages[2]["tool_calls"][1]["function"]["name"],
            "read_file"
        );
        assert_eq!(
            serde_json::from_str::<Value>(
                messages[2]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            )
            .unwrap(),
            json!({"path": "a.rs"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "fn a() {}"})
        );
        assert_eq!(messages[4]["tool_call_id"], "call_2");
        assert_eq!(
            messages[5]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        );
        assert_eq!(back["tool_choice"], "required");
        assert_eq!(back["stop"], json!(["END"]));
        assert_eq!(back["tools"][0]["function"]["parameters"]["type"], "object");
    }

    #[test]
    fn bad_messages_name_the_field() {
        let error = openai_request_to_anthropic(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "wizard", "content": "x"}]})).unwrap_err();
        assert_eq!(error.field, "messages[0].role");
        let error = openai_request_to_anthropic(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "not json"}}]}]})).unwrap_err();
        assert_eq!(error.field, "messages[0].tool_calls");
        let error =
            openai_request_to_anthropic(&json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(error.field, "max_tokens");
    }

    #[test]
    fn answers_translate_both_ways_with_usage() {
        let anthropic_answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "Reading."}, {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.rs"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 20}
        });
        let openai = anthropic_answer_to_openai(&anthropic_answer);
        assert_eq!(openai["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(openai["choices"][0]["message"]["content"], "Reading.");
        assert_eq!(
            openai["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "read_file"
        );
        assert_eq!(
            usage_of_answer(Dialect::OpenAi, &openai),
            usage_of_answer(Dialect::Anthropic, &anthropic_answer)
        );
        let back = openai_answer_to_anthropic(&openai);
        assert_eq!(back["content"], anthropic_answer["content"]);
        assert_eq!(back["stop_reason"], "tool_use");
        assert_eq!(
            usage_of_answer(Dialect::Anthropic, &back),
            Some(TokenUsage {
                input_tokens: 100,
                output_tokens: 20
            })
        );
    }
}
