//! The agent's transcript (`GET /jobs/{id}/transcript`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identifiers::JobId;

/// One entry of an agent's transcript (`GET /jobs/{id}/transcript`). Secrets are redacted before an
/// entry is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptEntry {
    /// What the model said in one step, with the tool calls it asked for.
    #[serde(rename_all = "camelCase")]
    ModelReply {
        step: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        tool_calls: Vec<TranscriptToolCall>,
    },
    /// What a tool returned to the model.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        step: u32,
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    /// A message from the harness to the agent (validation output, a nudge).
    #[serde(rename_all = "camelCase")]
    HarnessNote { step: u32, text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub job_id: JobId,
    pub entries: Vec<TranscriptEntry>,
}
