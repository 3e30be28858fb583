//! Talking to a model: a protocol-neutral conversation, and the two wire protocols it maps onto
//! (OpenAI-compatible chat completions, Anthropic's Messages API). Pure data and conversions; the
//! harness does the HTTP.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod retry;
pub mod stream;

/// A tool the model may call, with a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// A tool call the model asked for. `arguments` is the parsed JSON object; when the model sent
/// something that is not JSON it is kept as a string so the tool can say so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One message of the agent's conversation, independent of the wire protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConversationMessage {
    User {
        text: String,
    },
    Assistant {
        text: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        output: String,
        is_error: bool,
    },
}

/// Tokens one call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// What the model answered in one turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelReply {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// What the call cost, when the provider said.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
    /// The model that answered, when the provider said.
    #[serde(default)]
    pub model: Option<String>,
}

impl ModelReply {
    pub fn to_message(&self) -> ConversationMessage {
        ConversationMessage::Assistant {
            text: self.text.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}

/// OpenAI's chat-completions wire format (also spoken by vLLM, Ollama, llama.cpp and the worker's
/// proxy).
pub mod openai {
    use super::*;

    /// Appended to the endpoint's base URL.
    pub const CHAT_COMPLETIONS_PATH: &str = "/chat/completions";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatRequest {
        pub model: String,
        pub messages: Vec<ChatMessage>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<ChatTool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<String>,
        /// Ask for server-sent events instead of one JSON body.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub stream: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stream_options: Option<StreamOptions>,
    }

    /// `include_usage` makes the last streamed chunk carry the token usage.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct StreamOptions {
        pub include_usage: bool,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Usage {
        #[serde(default)]
        pub prompt_tokens: Option<u64>,
        #[serde(default)]
        pub completion_tokens: Option<u64>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatMessage {
        pub role: String,
        /// `null` is allowed for an assistant message that only calls tools.
        #[serde(default)]
        pub content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tool_calls: Vec<ChatToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_call_id: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatTool {
        #[serde(rename = "type")]
        pub kind: String,
        pub function: ChatFunction,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatFunction {
        pub name: String,
        #[serde(default)]
        pub description: String,
        pub parameters: Value,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatToolCall {
        pub id: String,
        #[serde(rename = "type", default = "function_kind")]
        pub kind: String,
        pub function: ChatFunctionCall,
    }

    fn function_kind() -> String {
        "function".to_owned()
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatFunctionCall {
        pub name: String,
        /// A JSON document in a string, as the protocol has it.
        #[serde(default)]
        pub arguments: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatResponse {
        pub choices: Vec<ChatChoice>,
        #[serde(default)]
        pub usage: Option<Usage>,
        #[serde(default)]
        pub model: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatChoice {
        pub message: ChatMessage,
        #[serde(default)]
        pub finish_reason: Option<String>,
    }
}

/// Builds the chat-completions request for a conversation.
pub fn openai_request(
    model: &str,
    system_prompt: &str,
    conversation: &[ConversationMessage],
    tools: &[ToolSpec],
) -> openai::ChatRequest {
    let mut messages = vec![openai::ChatMessage {
        role: "system".to_owned(),
        content: Some(system_prompt.to_owned()),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }];
    for message in conversation {
        messages.push(match message {
            ConversationMessage::User { text } => openai::ChatMessage {
                role: "user".to_owned(),
                content: Some(text.clone()),
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
            ConversationMessage::Assistant { text, tool_calls } => openai::ChatMessage {
                role: "assistant".to_owned(),
                content: text.clone(),
                tool_calls: tool_calls
                    .iter()
                    .map(|call| openai::ChatToolCall {
                        id: call.id.clone(),
                        kind: "function".to_owned(),
                        function: openai::ChatFunctionCall {
                            name: call.name.clone(),
                            arguments: match &call.arguments {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            },
                        },
                    })
                    .collect(),
                tool_call_id: None,
            },
            ConversationMessage::ToolResult {
                call_id, output, ..
            } => openai::ChatMessage {
                role: "tool".to_owned(),
                content: Some(output.clone()),
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id.clone()),
            },
        });
    }
    openai::ChatRequest {
        model: model.to_owned(),
        messages,
        tools: tools
            .iter()
            .map(|tool| openai::ChatTool {
                kind: "function".to_owned(),
                function: openai::ChatFunction {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                },
            })
            .collect(),
        tool_choice: (!tools.is_empty()).then(|| "auto".to_owned()),
        stream: false,
        stream_options: None,
    }
}

impl openai::ChatRequest {
    /// The same request, answered as a stream that ends with the usage.
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self.stream_options = Some(openai::StreamOptions {
            include_usage: true,
        });
        self
    }
}

/// Reads the first choice of a chat-completions response.
pub fn openai_reply(response: openai::ChatResponse) -> Result<ModelReply, String> {
    let usage = response.usage.map(|usage| TokenUsage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    });
    let model = response.model;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "the model's response has no choices".to_owned())?;
    let tool_calls = choice
        .message
        .tool_calls
        .into_iter()
        .map(|call| ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: parse_arguments(&call.function.arguments),
        })
        .collect();
    Ok(ModelReply {
        text: choice.message.content.filter(|text| !text.is_empty()),
        tool_calls,
        usage,
        model,
    })
}

pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Anthropic's Messages API wire format.
pub mod anthropic {
    use super::*;

    /// Appended to the endpoint's base URL.
    pub const MESSAGES_PATH: &str = "/messages";
    /// The API version header value this harness speaks.
    pub const API_VERSION: &str = "2023-06-01";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MessagesRequest {
        pub model: String,
        pub max_tokens: u32,
        pub system: String,
        pub messages: Vec<Message>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tool>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub stream: bool,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Message {
        pub role: String,
        pub content: Vec<ContentBlock>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ContentBlock {
        Text {
            text: String,
        },
        ToolUse {
            id: String,
            name: String,
            input: Value,
        },
        ToolResult {
            tool_use_id: String,
            content: String,
            #[serde(default)]
            is_error: bool,
        },
        /// Blocks this harness does not use (thinking, images); kept so a response still parses.
        #[serde(other)]
        Other,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tool {
        pub name: String,
        pub description: String,
        pub input_schema: Value,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct MessagesResponse {
        pub content: Vec<ContentBlock>,
        #[serde(default)]
        pub stop_reason: Option<String>,
        #[serde(default)]
        pub usage: Option<Usage>,
        #[serde(default)]
        pub model: Option<String>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Usage {
        #[serde(default)]
        pub input_tokens: Option<u64>,
        #[serde(default)]
        pub output_tokens: Option<u64>,
    }
}

/// Builds the Messages API request. Anthropic wants strictly alternating roles with tool results
/// inside a user message, so consecutive messages of one role are merged into one.
pub fn anthropic_request(
    model: &str,
    system_prompt: &str,
    conversation: &[ConversationMessage],
    tools: &[ToolSpec],
    max_tokens: u32,
) -> anthropic::MessagesRequest {
    use anthropic::ContentBlock;
    let mut messages: Vec<anthropic::Message> = Vec::new();
    for message in conversation {
        let (role, blocks) = match message {
            ConversationMessage::User { text } => {
                ("user", vec![ContentBlock::Text { text: text.clone() }])
            }
            ConversationMessage::Assistant { text, tool_calls } => {
                let mut blocks: Vec<ContentBlock> = text
                    .iter()
                    .map(|text| ContentBlock::Text { text: text.clone() })
                    .collect();
                blocks.extend(tool_calls.iter().map(|call| ContentBlock::ToolUse {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    input: match &call.arguments {
                        Value::Object(_) => call.arguments.clone(),
                        _ => Value::Object(Default::default()),
                    },
                }));
                ("assistant", blocks)
            }
            ConversationMessage::ToolResult {
                call_id,
                output,
                is_error,
            } => (
                "user",
                vec![ContentBlock::ToolResult {
                    tool_use_id: call_id.clone(),
                    content: output.clone(),
                    is_error: *is_error,
                }],
            ),
        };
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(anthropic::Message {
                role: role.to_owned(),
                content: blocks,
            }),
        }
    }
    anthropic::MessagesRequest {
        model: model.to_owned(),
        max_tokens,
        system: system_prompt.to_owned(),
        messages,
        tools: tools
            .iter()
            .map(|tool| anthropic::Tool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                input_schema: tool.parameters.clone(),
            })
            .collect(),
        stream: false,
    }
}

pub fn anthropic_reply(response: anthropic::MessagesResponse) -> ModelReply {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            anthropic::ContentBlock::Text { text } => texts.push(text),
            anthropic::ContentBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: input,
            }),
            anthropic::ContentBlock::ToolResult { .. } | anthropic::ContentBlock::Other => {}
        }
    }
    ModelReply {
        text: (!texts.is_empty()).then(|| texts.join("\n")),
        tool_calls,
        usage: response.usage.map(|usage| TokenUsage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        }),
        model: response.model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conversation() -> Vec<ConversationMessage> {
        vec![
            ConversationMessage::User {
                text: "Fix it.".to_owned(),
            },
            ConversationMessage::Assistant {
                text: None,
                tool_calls: vec![
                    ToolCall {
                        id: "c1".to_owned(),
                        name: "read_file".to_owned(),
                        arguments: json!({"path": "a"}),
                    },
                    ToolCall {
                        id: "c2".to_owned(),
                        name: "list_directory".to_owned(),
                        arguments: json!({}),
                    },
                ],
            },
            ConversationMessage::ToolResult {
                call_id: "c1".to_owned(),
                output: "1: x".to_owned(),
                is_error: false,
            },
            ConversationMessage::ToolResult {
                call_id: "c2".to_owned(),
                output: "a".to_owned(),
                is_error: false,
            },
            ConversationMessage::User {
                text: "Validation failed.".to_owned(),
            },
        ]
    }

    fn tools() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "read_file".to_owned(),
            description: "Reads".to_owned(),
            parameters: json!({"type": "object"}),
        }]
    }

    #[test]
    fn openai_request_has_system_first_and_string_arguments() {
        let request = openai_request("m", "sys", &conversation(), &tools());
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(
            wire["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(wire["messages"][2]["content"], Value::Null);
        assert_eq!(
            wire["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"path\":\"a\"}"
        );
        assert_eq!(wire["messages"][3]["role"], "tool");
        assert_eq!(wire["messages"][3]["tool_call_id"], "c1");
        assert_eq!(wire["tools"][0]["type"], "function");
        assert_eq!(wire["tool_choice"], "auto");
    }

    #[test]
    fn openai_reply_parses_tool_call_arguments_and_keeps_bad_json_as_text() {
        let response: openai::ChatResponse = serde_json::from_value(json!({
            "choices": [{ "message": { "role": "assistant", "content": null, "tool_calls": [
                { "id": "a", "type": "function", "function": { "name": "write_file", "arguments": "{\"path\":\"x\"}" } },
                { "id": "b", "type": "function", "function": { "name": "finish", "arguments": "{oops" } }
            ]}, "finish_reason": "tool_calls" }]
        }))
        .unwrap();
        let reply = openai_reply(response).unwrap();
        assert_eq!(reply.text, None);
        assert_eq!(reply.tool_calls[0].arguments, json!({"path": "x"}));
        assert_eq!(reply.tool_calls[1].arguments, json!("{oops"));
    }

    #[test]
    fn openai_reply_without_choices_is_an_error() {
        let response = openai::ChatResponse {
            choices: vec![],
            usage: None,
            model: None,
        };
        assert!(openai_reply(response).is_err());
    }

    #[test]
    fn anthropic_request_merges_tool_results_and_following_user_text() {
        let request = anthropic_request("m", "sys", &conversation(), &tools(), 4096);
        let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(request.messages[2].content.len(), 3);
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(wire["system"], "sys");
        assert_eq!(wire["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(wire["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(wire["tools"][0]["input_schema"], json!({"type": "object"}));
    }

    #[test]
    fn anthropic_reply_collects_text_and_tool_uses_and_ignores_unknown_blocks() {
        let response: anthropic::MessagesResponse = serde_json::from_value(json!({
            "content": [
                { "type": "thinking", "thinking": "hm" },
                { "type": "text", "text": "Reading." },
                { "type": "tool_use", "id": "t1", "name": "read_file", "input": { "path": "a" } }
            ],
            "stop_reason": "tool_use"
        }))
        .unwrap();
        let reply = anthropic_reply(response);
        assert_eq!(reply.text.as_deref(), Some("Reading."));
        assert_eq!(reply.tool_calls[0].name, "read_file");
    }
}
