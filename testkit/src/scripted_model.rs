//! A model server on loopback that speaks OpenAI Chat Completions (`POST /v1/chat/completions`) and
//! Anthropic Messages (`POST /v1/messages`), streamed (server-sent events) or not, and answers from a
//! script or from a responder that decides per request. The harness's tests, the worker's gateway
//! tests and the end-to-end run tests all use this one server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// How long a test waits for a condition before it fails. Generous: a slow CI machine must not fail
/// a correct system; a broken one fails at the deadline with the last state it saw.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// One scripted model answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Tool calls, each `(name, arguments)`.
    Tools(Vec<(&'static str, Value)>),
    /// Plain text and no tool call.
    Text(&'static str),
    /// Text and tool calls in one answer.
    Said(&'static str, Vec<(&'static str, Value)>),
    /// Never answer (the connection stays open until the server is dropped).
    Hang,
    /// Answer with this HTTP status and, if given, a `Retry-After` header (no reply consumed: the
    /// client is expected to retry and get the next scripted reply).
    Status(u16, Option<&'static str>),
    /// Text and tool calls built at run time (a responder's answer).
    Owned {
        text: Option<String>,
        calls: Vec<(String, Value)>,
    },
    /// Start the answer, then drop the connection: a streamed answer stops after `events` server-sent
    /// events (no usage, no `[DONE]`); a plain answer is cut after half its bytes.
    DieMidStream { text: String, events: usize },
}

/// A reply built at run time: text only.
pub fn owned_text(text: impl Into<String>) -> Reply {
    Reply::Owned {
        text: Some(text.into()),
        calls: Vec::new(),
    }
}

/// A reply built at run time: one tool call.
pub fn owned_tool(name: impl Into<String>, arguments: Value) -> Reply {
    Reply::Owned {
        text: None,
        calls: vec![(name.into(), arguments)],
    }
}

pub fn tool(name: &'static str, arguments: Value) -> Reply {
    Reply::Tools(vec![(name, arguments)])
}

pub fn finish(summary: &str) -> Reply {
    tool("finish", json!({ "summary": summary }))
}

/// What the model server received.
#[derive(Debug, Clone)]
pub struct RecordedModelRequest {
    pub path: String,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl RecordedModelRequest {
    /// Every tool result the agent sent back, in either protocol, as text.
    pub fn tool_results(&self) -> Vec<String> {
        let mut results = Vec::new();
        for message in self.body["messages"].as_array().into_iter().flatten() {
            if message["role"] == "tool" {
                results.push(message["content"].as_str().unwrap_or_default().to_owned());
            }
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" {
                    results.push(block["content"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        results
    }
}

/// Decides the reply to one request.
pub type Responder = dyn Fn(&RecordedModelRequest) -> Reply + Send + Sync;

struct ModelState {
    script: Mutex<VecDeque<Reply>>,
    responder: Option<Box<Responder>>,
    requests: Mutex<Vec<RecordedModelRequest>>,
    calls: Mutex<u32>,
}

/// An OpenAI-compatible (and Anthropic-compatible) model on loopback that replays a script.
pub struct ScriptedModel {
    pub base_url: String,
    state: Arc<ModelState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Token usage the scripted model reports: deterministic, so tests can check the view's ledger.
pub const SCRIPTED_OUTPUT_TOKENS: u64 = 7;

/// Input tokens the scripted model reports for a request: 100 per message it was sent.
pub fn scripted_input_tokens(body: &Value) -> u64 {
    100 * body["messages"].as_array().map_or(0, Vec::len) as u64
}

/// The answer as one JSON body.
fn plain_answer(
    anthropic: bool,
    call_number: u32,
    text: Option<&str>,
    calls: &[(String, Value)],
    input_tokens: u64,
) -> Value {
    if anthropic {
        let mut content: Vec<Value> = text
            .iter()
            .map(|text| json!({ "type": "text", "text": text }))
            .collect();
        for (index, (name, arguments)) in calls.iter().enumerate() {
            content.push(
                json!({ "type": "tool_use", "id": format!("toolu_{call_number}_{index}"),
                                 "name": name, "input": arguments }),
            );
        }
        json!({ "content": content, "stop_reason": "tool_use", "model": "scripted-model-1",
                "usage": { "input_tokens": input_tokens, "output_tokens": SCRIPTED_OUTPUT_TOKENS } })
    } else {
        let tool_calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(index, (name, arguments))| {
                json!({ "id": format!("call_{call_number}_{index}"), "type": "function",
                        "function": { "name": name, "arguments": arguments.to_string() } })
            })
            .collect();
        json!({ "choices": [{ "message": { "role": "assistant", "content": text,
                                           "tool_calls": tool_calls },
                              "finish_reason": "tool_calls" }],
                "model": "scripted-model-1",
                "usage": { "prompt_tokens": input_tokens, "completion_tokens": SCRIPTED_OUTPUT_TOKENS } })
    }
}

/// Splits a text into pieces of at most `size` characters (streams deliver text in fragments).
fn pieces(text: &str, size: usize) -> Vec<String> {
    let characters: Vec<char> = text.chars().collect();
    characters
        .chunks(size)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

/// The same answer as server-sent events, text and tool arguments cut into fragments.
fn streamed_answer(
    anthropic: bool,
    call_number: u32,
    text: Option<&str>,
    calls: &[(String, Value)],
    input_tokens: u64,
) -> Vec<String> {
    let mut events = Vec::new();
    if anthropic {
        let mut push = |name: &str, data: Value| {
            events.push(format!("event: {name}\ndata: {data}\n\n"));
        };
        push(
            "message_start",
            json!({ "type": "message_start", "message": {
            "model": "scripted-model-1", "content": [],
            "usage": { "input_tokens": input_tokens, "output_tokens": 1 } } }),
        );
        let mut index = 0;
        if let Some(text) = text {
            push(
                "content_block_start",
                json!({ "type": "content_block_start", "index": index,
                "content_block": { "type": "text", "text": "" } }),
            );
            push("ping", json!({ "type": "ping" }));
            for piece in pieces(text, 3) {
                push(
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index,
                    "delta": { "type": "text_delta", "text": piece } }),
                );
            }
            push(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }),
            );
            index += 1;
        }
        for (call_index, (name, arguments)) in calls.iter().enumerate() {
            push(
                "content_block_start",
                json!({ "type": "content_block_start", "index": index,
                "content_block": { "type": "tool_use", "id": format!("toolu_{call_number}_{call_index}"),
                                   "name": name, "input": {} } }),
            );
            for piece in pieces(&arguments.to_string(), 5) {
                push(
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index,
                    "delta": { "type": "input_json_delta", "partial_json": piece } }),
                );
            }
            push(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }),
            );
            index += 1;
        }
        push(
            "message_delta",
            json!({ "type": "message_delta",
            "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": SCRIPTED_OUTPUT_TOKENS } }),
        );
        push("message_stop", json!({ "type": "message_stop" }));
    } else {
        let mut push = |data: Value| events.push(format!("data: {data}\n\n"));
        push(
            json!({ "model": "scripted-model-1", "choices": [{ "index": 0,
            "delta": { "role": "assistant", "content": "" } }] }),
        );
        for piece in text.map(|text| pieces(text, 3)).unwrap_or_default() {
            push(json!({ "choices": [{ "index": 0, "delta": { "content": piece } }] }));
        }
        for (call_index, (name, arguments)) in calls.iter().enumerate() {
            push(
                json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": call_index,
                "id": format!("call_{call_number}_{call_index}"), "type": "function",
                "function": { "name": name, "arguments": "" } }] } }] }),
            );
            for piece in pieces(&arguments.to_string(), 5) {
                push(
                    json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [{
                    "index": call_index, "function": { "arguments": piece } }] } }] }),
                );
            }
        }
        push(json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }] }));
        push(
            json!({ "choices": [], "usage": { "prompt_tokens": input_tokens,
                                               "completion_tokens": SCRIPTED_OUTPUT_TOKENS } }),
        );
        events.push("data: [DONE]\n\n".to_owned());
    }
    events
}

async fn answer_model(
    State(state): State<Arc<ModelState>>,
    UrlPath(endpoint): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let wants_stream = body["stream"] == json!(true);
    let input_tokens = scripted_input_tokens(&body);
    state.requests.lock().unwrap().push(RecordedModelRequest {
        path: format!("/v1/{endpoint}"),
        authorization: header("authorization"),
        api_key: header("x-api-key"),
        body,
        at: Instant::now(),
    });
    let call_number = {
        let mut calls = state.calls.lock().unwrap();
        *calls += 1;
        *calls
    };
    let next = match &state.responder {
        Some(responder) => {
            let request = state.requests.lock().unwrap().last().cloned();
            request.map(|request| responder(&request))
        }
        None => state.script.lock().unwrap().pop_front(),
    };
    let anthropic = endpoint == "messages";
    let reply = match next {
        None => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "the script has no more replies" })),
            )
                .into_response();
        }
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Status(status, retry_after)) => {
            let status = StatusCode::from_u16(status).unwrap();
            let mut response = (
                status,
                axum::Json(json!({ "error": { "message": format!("scripted {status}") } })),
            )
                .into_response();
            if let Some(retry_after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", retry_after.parse().unwrap());
            }
            return response;
        }
        Some(reply) => reply,
    };
    let owned = |calls: Vec<(&'static str, Value)>| -> Vec<(String, Value)> {
        calls
            .into_iter()
            .map(|(name, arguments)| (name.to_owned(), arguments))
            .collect()
    };
    let (text, calls): (Option<String>, Vec<(String, Value)>) = match reply {
        Reply::Text(text) => (Some(text.to_owned()), Vec::new()),
        Reply::Tools(calls) => (None, owned(calls)),
        Reply::Said(text, calls) => (Some(text.to_owned()), owned(calls)),
        Reply::Owned { text, calls } => (text, calls),
        Reply::DieMidStream { text, events } => {
            return dying_answer(
                anthropic,
                wants_stream,
                call_number,
                &text,
                events,
                input_tokens,
            );
        }
        Reply::Hang | Reply::Status(..) => unreachable!(),
    };
    let text = text.as_deref();
    if wants_stream {
        let events = streamed_answer(anthropic, call_number, text, &calls, input_tokens);
        let stream = futures_util::stream::iter(
            events
                .into_iter()
                .map(|event| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(event))),
        );
        return (
            [("content-type", "text/event-stream")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    axum::Json(plain_answer(
        anthropic,
        call_number,
        text,
        &calls,
        input_tokens,
    ))
    .into_response()
}

impl ScriptedModel {
    /// Answers each request with the next reply of the script (400 when it runs out).
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::serve(script, None).await
    }

    /// Answers each request with what `responder` says for it: for many concurrent callers (runs in
    /// parallel, a gateway under load) whose order no script can know.
    pub async fn start_with(
        responder: impl Fn(&RecordedModelRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(Vec::new(), Some(Box::new(responder))).await
    }

    async fn serve(script: Vec<Reply>, responder: Option<Box<Responder>>) -> Self {
        let state = Arc::new(ModelState {
            responder,
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
            calls: Mutex::new(0),
        });
        let app = Router::new()
            .route("/v1/{*endpoint}", post(answer_model))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedModel {
            base_url: format!("http://{address}/v1"),
            state,
            server,
        }
    }

    pub fn requests(&self) -> Vec<RecordedModelRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until the model has received `count` requests.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<RecordedModelRequest> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the model got {} of {count} requests",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An answer that starts and then loses its connection.
fn dying_answer(
    anthropic: bool,
    wants_stream: bool,
    call_number: u32,
    text: &str,
    events: usize,
    input_tokens: u64,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted death");
    if wants_stream {
        let all = streamed_answer(anthropic, call_number, Some(text), &[], input_tokens);
        let mut parts: Vec<Result<axum::body::Bytes, std::io::Error>> = all
            .into_iter()
            .take(events)
            .map(|event| Ok(axum::body::Bytes::from(event)))
            .collect();
        parts.push(Err(cut));
        return (
            [("content-type", "text/event-stream")],
            axum::body::Body::from_stream(futures_util::stream::iter(parts)),
        )
            .into_response();
    }
    let whole = plain_answer(anthropic, call_number, Some(text), &[], input_tokens).to_string();
    let half = whole.as_bytes()[..whole.len() / 2].to_vec();
    let parts: Vec<Result<axum::body::Bytes, std::io::Error>> =
        vec![Ok(axum::body::Bytes::from(half)), Err(cut)];
    (
        [("content-type", "application/json")],
        axum::body::Body::from_stream(futures_util::stream::iter(parts)),
    )
        .into_response()
}
