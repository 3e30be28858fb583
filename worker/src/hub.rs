//! `WorkspaceHub`: one Durable Object per workspace, the only fan-out point for its events.
//!
//! Writers deliver committed events (from the D1 outbox, with their sequence numbers) to the hub. The
//! hub keeps a bounded log in its own SQLite storage, deduplicates by `seq`, and broadcasts only
//! gap-free runs, in order; when it sees a gap (a delivery still in flight, or lost in a crash) it reads
//! the missing events from the outbox itself. Sockets use the hibernation API: per-socket facts live in
//! tags (`user:<id>`, `client:<id>`), the text `ping` is answered `pong` by the runtime without waking
//! the object, and nothing is kept in memory that a wake-up would have to rebuild.

use domain::access::Permission;
use domain::api::{ApiError, ErrorCode};
use domain::event::{Actor, WorkspaceEvent};
use domain::hub::{
    AccessRecheck, PendingAccessCheck, PresenceAudience, access_recheck, client_tag, echo_key,
    echo_tag, is_echo, join_changes_presence, jump_past_pruned_outbox, pending_access_check,
    presence_audience, prune_log_through, user_tag, worth_holding,
};
use domain::ids::{UserId, WorkspaceId};
use domain::stream::{
    CLOSE_ACCESS_REVOKED, CLOSE_SIGNED_OUT, ClientMessage, ControlMessage, HeldEvent,
    MAX_MESSAGES_PER_WINDOW, MAX_STREAMS_PER_USER, MESSAGE_WINDOW_MS, MessageWindow, PresentPerson,
    REPLAY_LOG_CAPACITY, REPLAY_MAX_BYTES, REPLAY_PAGE_BYTES, ReplayPages, ReplayPlan,
    admits_another_stream, broadcastable, count_message, page_replay, parse_client_message,
    plan_replay, presence_list,
};
use domain::stream::{CLOSE_MESSAGE_RATE, CLOSE_TOO_MANY_STREAMS};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use worker::{
    DurableObject, Env, Headers, Method, Request, RequestInit, Response, Result, SqlStorageValue,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
    durable_object,
};

use worker::js_sys::{Function, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};

use worker_core::OutboxEvent;

use crate::access::load_access;
use crate::store::Db;

const BINDING: &str = "WORKSPACE_HUB";

#[derive(Serialize, Deserialize)]
struct PublishRequest {
    events: Vec<OutboxEvent>,
}

/// What the hub answers to a delivery: the last sequence number it has broadcast.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishAnswer {
    pub last_seq: i64,
}

fn stub(env: &Env, workspace_id: &str) -> Result<worker::Stub> {
    env.durable_object(BINDING)?
        .id_from_name(workspace_id)?
        .get_stub()
}

fn hub_request(
    path: &str,
    method: Method,
    workspace_id: &str,
    body: Option<String>,
) -> Result<Request> {
    let headers = Headers::new();
    headers.set("x-workspace-id", workspace_id)?;
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(|text| text.into()));
    Request::new_with_init(&format!("https://hub.internal{path}"), &init)
}

/// Hands committed events to their workspace's hub. Never fails the caller: a lost delivery is
/// repaired by the hub's gap fill or by the sweep.
pub async fn deliver(
    env: &Env,
    workspace_id: &str,
    events: &[OutboxEvent],
) -> Option<PublishAnswer> {
    let outcome = async {
        let body = serde_json::to_string(&PublishRequest {
            events: events.to_vec(),
        })?;
        let request = hub_request("/publish", Method::Post, workspace_id, Some(body))?;
        let mut response = stub(env, workspace_id)?.fetch_with_request(request).await?;
        response.json::<PublishAnswer>().await
    }
    .await;
    match outcome {
        Ok(answer) => Some(answer),
        Err(error) => {
            worker::console_error!(
                "delivering {} event(s) to the hub of {workspace_id} failed: {error}",
                events.len()
            );
            None
        }
    }
}

/// The hub's counters (test hooks and benchmarks).
pub async fn stats(env: &Env, workspace_id: &str) -> Result<serde_json::Value> {
    let request = hub_request("/stats", Method::Get, workspace_id, None)?;
    let mut response = stub(env, workspace_id)?.fetch_with_request(request).await?;
    response.json().await
}

/// Closes every socket of a workspace that no longer exists, and forgets its log.
pub async fn close_workspace(env: &Env, workspace_id: &str) {
    let outcome = async {
        let request = hub_request("/close", Method::Post, workspace_id, None)?;
        stub(env, workspace_id)?.fetch_with_request(request).await
    }
    .await;
    if let Err(error) = outcome {
        worker::console_error!("closing the hub of {workspace_id} failed: {error}");
    }
}

/// Closes every live stream `user_id` has open, in every workspace they can see: after a sign-out
/// a stream opened with a ticket of the old session must not keep listening. A session that still
/// works simply reconnects.
pub async fn close_user_streams(env: &Env, db: &Db, user_id: &UserId) {
    let workspaces = match crate::access::visible_workspaces(db, user_id).await {
        Ok(workspaces) => workspaces,
        Err(error) => {
            worker::console_error!(
                "listing workspaces to close streams failed: {}",
                error.message
            );
            return;
        }
    };
    for view in workspaces {
        let workspace_id = view.workspace.id.as_str();
        let outcome = async {
            let mut request = hub_request("/sign-out", Method::Post, workspace_id, None)?;
            request.headers_mut()?.set("x-user-id", user_id.as_str())?;
            stub(env, workspace_id)?.fetch_with_request(request).await
        }
        .await;
        if let Err(error) = outcome {
            worker::console_error!("closing streams on the hub of {workspace_id} failed: {error}");
        }
    }
}

/// Opens a socket on the hub for a caller the worker has authenticated and authorized.
pub async fn connect(
    env: &Env,
    workspace_id: &str,
    user_id: &str,
    login: &str,
    client_id: Option<&str>,
    since: Option<i64>,
) -> Result<Response> {
    let mut request = hub_request("/connect", Method::Get, workspace_id, None)?;
    let headers = request.headers_mut()?;
    headers.set("upgrade", "websocket")?;
    headers.set("x-user-id", user_id)?;
    // Who the socket's person is, for the presence list the hub sends everyone.
    headers.set("x-user-login", login)?;
    if let Some(client_id) = client_id {
        headers.set("x-client-id", client_id)?;
    }
    if let Some(since) = since {
        headers.set("x-since", &since.to_string())?;
    }
    stub(env, workspace_id)?.fetch_with_request(request).await
}

#[durable_object]
pub struct WorkspaceHub {
    state: State,
    env: Env,
    /// The presence list last sent to every socket (`domain::hub::presence_audience`); forgotten
    /// when the hub hibernates, which costs one list sent to everyone.
    last_presence: RefCell<Option<String>>,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: i64,
}

#[derive(Deserialize)]
struct LogRow {
    seq: i64,
    body: String,
    origin: Option<String>,
}

#[derive(Deserialize)]
struct SizeRow {
    seq: i64,
    bytes: i64,
}

/// What a socket's hibernation attachment keeps: its person (for presence) and its message-rate
/// window. The person's fields are flattened, so an attachment written before the window existed
/// still reads.
#[derive(Serialize, Deserialize)]
struct SocketState {
    #[serde(flatten)]
    person: PresentPerson,
    #[serde(default)]
    window: MessageWindow,
}

#[derive(Deserialize)]
struct MetaRow {
    value: String,
}

impl DurableObject for WorkspaceHub {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for statement in [
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, origin TEXT)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ] {
            if let Err(error) = sql.exec(statement, None) {
                worker::console_error!("hub schema: {error}");
            }
        }
        // Answered by the runtime itself, without waking a hibernating hub.
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        WorkspaceHub {
            state,
            env,
            last_presence: RefCell::new(None),
        }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let workspace_id = request.headers().get("x-workspace-id")?.unwrap_or_default();
        self.remember_workspace(&workspace_id)?;
        match request.path().as_str() {
            "/publish" => self.publish(request).await,
            "/connect" => self.open_socket(&request).await,
            "/close" => {
                for socket in self.state.get_websockets() {
                    let _ = socket.close(
                        Some(CLOSE_ACCESS_REVOKED),
                        Some("the workspace was deleted"),
                    );
                }
                self.state.storage().delete_all().await?;
                Response::empty()
            }
            "/sign-out" => {
                let user_id = request.headers().get("x-user-id")?.unwrap_or_default();
                for socket in self.state.get_websockets_with_tag(&user_tag(&user_id)) {
                    let _ = socket.close(Some(CLOSE_SIGNED_OUT), Some("signed out"));
                }
                Response::empty()
            }
            "/stats" => Response::from_json(&serde_json::json!({
                "sockets": self.state.get_websockets().len(),
                "lastSeq": self.last_seq()?,
                "oldestSeq": self.oldest_seq()?,
                "logSize": self.state.storage().sql().database_size(),
                // Every event handed to /publish, duplicates included: in the normal path each
                // event arrives once (a test counts them).
                "received": self.meta("received")?.and_then(|value| value.parse::<i64>().ok()).unwrap_or(0),
            })),
            _ => Response::error("no such hub route", 404),
        }
    }

    async fn websocket_message(
        &self,
        socket: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(_) => String::from("<binary>"),
        };
        // The socket's attachment keeps its person and message count (it survives hibernation).
        let mut state = socket
            .deserialize_attachment::<SocketState>()
            .ok()
            .flatten();
        if let Some(state) = &mut state {
            let (window, allowed) = count_message(
                state.window,
                crate::auth::now_ms(),
                self.max_messages_per_window(),
                MESSAGE_WINDOW_MS,
            );
            state.window = window;
            if !allowed {
                // The close code is the machine-readable answer; the reason says what to do.
                let _ = socket.close(
                    Some(CLOSE_MESSAGE_RATE),
                    Some("too many messages; reconnect and send fewer"),
                );
                return Ok(());
            }
        }
        let reply = match parse_client_message(&text) {
            Ok(ClientMessage::Ping {}) => ControlMessage::Pong,
            Ok(ClientMessage::Presence { block_id }) => {
                if let Some(mut state) = state {
                    state.person.block_id = block_id;
                    socket.serialize_attachment(&state)?;
                }
                return self.broadcast_presence(None);
            }
            Err(error) => ControlMessage::Error { error },
        };
        if let Some(state) = &state {
            socket.serialize_attachment(state)?;
        }
        socket.send_with_str(serde_json::to_string(&reply)?)
    }

    async fn websocket_close(
        &self,
        socket: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake; 1005/1006 (no code) cannot be echoed.
        let code = if (1000..5000).contains(&code) && code != 1005 && code != 1006 {
            code as u16
        } else {
            1000
        };
        let _ = socket.close(Some(code), Some("closed"));
        // A socket without a person is left out of the presence list (the closing one may still be
        // among the hub's sockets while this runs).
        socket.serialize_attachment(Option::<SocketState>::None)?;
        self.broadcast_presence(None)
    }

    async fn websocket_error(&self, _socket: WebSocket, error: worker::Error) -> Result<()> {
        worker::console_error!("hub socket error: {error}");
        Ok(())
    }
}

impl WorkspaceHub {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows: Vec<MetaRow> = self
            .sql()
            .exec(
                "SELECT value FROM meta WHERE key = ?",
                Some(vec![key.into()]),
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            Some(vec![key.into(), value.into()]),
        )?;
        Ok(())
    }

    fn remember_workspace(&self, workspace_id: &str) -> Result<()> {
        if !workspace_id.is_empty() && self.meta("workspace")?.is_none() {
            self.set_meta("workspace", workspace_id)?;
        }
        Ok(())
    }

    /// How many events the log keeps for replay (`HUB_LOG_CAPACITY`, for tests of the resync path).
    fn log_capacity(&self) -> i64 {
        crate::auth::env_value(&self.env, "HUB_LOG_CAPACITY")
            .and_then(|value| value.parse().ok())
            .filter(|capacity: &i64| *capacity > 0)
            .unwrap_or(REPLAY_LOG_CAPACITY)
    }

    fn last_seq(&self) -> Result<i64> {
        Ok(self
            .meta("last")?
            .and_then(|value| value.parse().ok())
            .unwrap_or(0))
    }

    fn oldest_seq(&self) -> Result<Option<i64>> {
        let rows: Vec<SeqRow> = self
            .sql()
            .exec("SELECT MIN(seq) AS seq FROM log", None)?
            .to_array()
            .unwrap_or_default();
        Ok(rows.into_iter().next().map(|row| row.seq))
    }

    fn hold(&self, events: &[OutboxEvent]) -> Result<()> {
        let last = self.last_seq()?;
        for event in events.iter().filter(|event| worth_holding(last, event.seq)) {
            // The log's `origin` column holds the writer's echo key (user and client id), not the
            // client id alone, which any member could claim.
            let origin = serde_json::from_str::<OriginOnly>(&event.body)
                .ok()
                .and_then(|parsed| {
                    let user = parsed.actor.as_ref().and_then(Actor::user_id);
                    echo_key(user.map(UserId::as_str), parsed.origin.as_deref())
                });
            let origin = origin.map_or(SqlStorageValue::Null, SqlStorageValue::String);
            self.sql().exec(
                "INSERT OR IGNORE INTO log (seq, body, origin) VALUES (?, ?, ?)",
                Some(vec![
                    SqlStorageValue::Integer(event.seq),
                    event.body.clone().into(),
                    origin,
                ]),
            )?;
        }
        Ok(())
    }

    /// Broadcasts every held event that continues the gap-free run, in order. Synchronous: no other
    /// event of this object runs in between, so two deliveries can never interleave their broadcasts.
    fn flush(&self) -> Result<()> {
        let last = self.last_seq()?;
        let held: Vec<SeqRow> = self
            .sql()
            .exec(
                "SELECT seq FROM log WHERE seq > ? ORDER BY seq",
                Some(vec![SqlStorageValue::Integer(last)]),
            )?
            .to_array()?;
        let run = broadcastable(last, &held.iter().map(|row| row.seq).collect::<Vec<_>>());
        let Some(&new_last) = run.last() else {
            return Ok(());
        };
        let rows: Vec<LogRow> = self
            .sql()
            .exec(
                "SELECT seq, body, origin FROM log WHERE seq > ? AND seq <= ? ORDER BY seq",
                Some(vec![
                    SqlStorageValue::Integer(last),
                    SqlStorageValue::Integer(new_last),
                ]),
            )?
            .to_array()?;
        let sockets = self.state.get_websockets();
        // Every socket shares `WebSocket.prototype.send`; look it up once.
        let send = sockets.first().and_then(|socket| {
            let socket: &JsValue = socket.as_ref().as_ref();
            Reflect::get(socket, &JsValue::from_str("send"))
                .ok()
                .map(JsCast::unchecked_into::<Function>)
        });
        for row in &rows {
            // The writer's own sockets get `stream.echo` instead of the event they applied already,
            // so they still see every seq and can tell a skipped event from a lost one.
            let echo =
                echo_tag(row.origin.as_deref()).map(|tag| self.state.get_websockets_with_tag(&tag));
            let echo_text = match &echo {
                Some(echo) if !echo.is_empty() => Some(JsValue::from_str(&serde_json::to_string(
                    &ControlMessage::Echo { seq: row.seq },
                )?)),
                _ => None,
            };
            // The event's text is converted to a JS string once and that same string is sent to every
            // socket, instead of one UTF-8 → UTF-16 copy per socket.
            let text = JsValue::from_str(&row.body);
            for socket in &sockets {
                let frame = match (&echo, &echo_text) {
                    (Some(echo), Some(echo_text)) if echo.contains(socket) => echo_text,
                    _ => &text,
                };
                // A socket that is closing refuses the send; it is gone on the next event anyway.
                if let Some(send) = &send {
                    let _ = send.call1(socket.as_ref().as_ref(), frame);
                }
            }
        }
        self.set_meta("last", &new_last.to_string())?;
        self.sql().exec(
            "DELETE FROM log WHERE seq <= ?",
            Some(vec![SqlStorageValue::Integer(prune_log_through(
                new_last,
                self.log_capacity(),
            ))]),
        )?;
        Ok(())
    }

    /// Reads events the hub has not got from the D1 outbox (a delivery still in flight, or lost) and
    /// broadcasts them, one bounded page at a time (`worker_core::delivery::OUTBOX_BATCH_BYTES`), until
    /// the run reaches `through` or the outbox has nothing more: a hub far behind never holds the
    /// whole backlog in memory.
    async fn fill_from_outbox(&self, through: i64) -> Result<()> {
        let Some(workspace_id) = self
            .meta("workspace")?
            .and_then(|id| WorkspaceId::parse(&id).ok())
        else {
            return Ok(());
        };
        let db =
            Db::from_env(&self.env).map_err(|error| worker::Error::RustError(error.message))?;
        loop {
            let last = self.last_seq()?;
            if last >= through {
                return Ok(());
            }
            let rows = worker_core::delivery::events_after(&db, &workspace_id, last)
                .await
                .map_err(|error| worker::Error::RustError(error.message))?;
            if rows.is_empty() {
                return Ok(());
            }
            // The outbox may no longer have the events right after `last` (pruned): nobody can get
            // them, so the run continues after them and older clients will be told to resync.
            if let Some(new_last) =
                jump_past_pruned_outbox(last, rows.first().map(|row| row.seq), self.oldest_seq()?)
            {
                self.set_meta("last", &new_last.to_string())?;
            }
            self.hold(&rows)?;
            self.flush()?;
            if self.last_seq()? <= last {
                // No progress (a hole the outbox cannot fill yet): the next delivery tries again.
                return Ok(());
            }
        }
    }

    async fn publish(&self, mut request: Request) -> Result<Response> {
        let publish: PublishRequest = request.json().await?;
        let received = self
            .meta("received")?
            .and_then(|value| value.parse::<i64>().ok())
            .unwrap_or(0);
        self.set_meta(
            "received",
            &(received + publish.events.len() as i64).to_string(),
        )?;
        self.hold(&publish.events)?;
        self.flush()?;
        // The access re-checks of what was just broadcast (and any a failed delivery left owed) run
        // before the gap fill, so a failing fill cannot skip them.
        self.enforce_owed_access().await?;
        let through = publish.events.iter().map(|event| event.seq).max();
        if let Some(through) = through.filter(|through| *through > self.last_seq().unwrap_or(0)) {
            // A gap: an earlier event has not arrived. It is committed (sequence numbers exist only
            // in committed transactions), so the outbox has it.
            let filled = self.fill_from_outbox(through).await;
            self.enforce_owed_access().await?;
            filled?;
        }
        Response::from_json(&PublishAnswer {
            last_seq: self.last_seq()?,
        })
    }

    async fn open_socket(&self, request: &Request) -> Result<Response> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .ok()
                .flatten()
                .filter(|value| !value.is_empty())
        };
        let user_id = header("x-user-id").unwrap_or_default();
        let login = header("x-user-login").unwrap_or_default();
        let client_key = echo_key(Some(&user_id), header("x-client-id").as_deref());
        let since = header("x-since").and_then(|value| value.parse::<i64>().ok());
        if let Some(since) = since.filter(|since| *since > self.last_seq().unwrap_or(0)) {
            // The client has seen more than this hub has broadcast: catch up from the outbox first,
            // with the same access re-checks as any other broadcast.
            let filled = self.fill_from_outbox(since).await;
            self.enforce_owed_access().await?;
            filled?;
        }

        let pair = WebSocketPair::new()?;
        let open_of_user = self
            .state
            .get_websockets_with_tag(&user_tag(&user_id))
            .len();
        if !admits_another_stream(open_of_user, self.max_streams_per_user()) {
            // Accepted only to be closed with a code the client can act on (an HTTP refusal of
            // the upgrade reaches a browser as an anonymous failure).
            pair.server.accept()?;
            let _ = pair.server.close(
                Some(CLOSE_TOO_MANY_STREAMS),
                Some("too many live streams of this workspace open; close some tabs"),
            );
            return Response::from_websocket(pair.client);
        }
        let mut tags = vec![user_tag(&user_id)];
        if let Some(client_key) = &client_key {
            tags.push(client_tag(client_key));
        }
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.state
            .accept_websocket_with_tags(&pair.server, &tag_refs);
        pair.server.serialize_attachment(SocketState {
            person: PresentPerson {
                login,
                user_id: user_id.clone(),
                block_id: None,
            },
            window: MessageWindow::default(),
        })?;

        // From here to the end nothing awaits, so no broadcast can slip between the replay and going
        // live: the client gets every event exactly once.
        let last = self.last_seq()?;
        let since = since.unwrap_or(last);
        match plan_replay(since, self.oldest_seq()?, last) {
            ReplayPlan::UpToDate => {}
            ReplayPlan::Replay { since, until } => {
                // Sizes first: the replay goes live only over a contiguous range, and is read and
                // sent one bounded page at a time.
                let sizes: Vec<SizeRow> = self
                    .sql()
                    .exec(
                        "SELECT seq, length(CAST(body AS BLOB)) AS bytes FROM log WHERE seq > ? AND seq <= ? ORDER BY seq",
                        Some(vec![
                            SqlStorageValue::Integer(since),
                            SqlStorageValue::Integer(until),
                        ]),
                    )?
                    .to_array()?;
                let held: Vec<HeldEvent> = sizes
                    .iter()
                    .map(|row| HeldEvent {
                        seq: row.seq,
                        bytes: row.bytes,
                    })
                    .collect();
                let pages = match page_replay(
                    since,
                    until,
                    &held,
                    REPLAY_PAGE_BYTES,
                    self.replay_max_bytes(),
                ) {
                    ReplayPages::Pages(pages) => pages,
                    ReplayPages::Resync => {
                        let reason = "This stream cannot replay every event since your seq in one go; reload the board and reconnect with its seq.".to_owned();
                        pair.server.send_with_str(serde_json::to_string(
                            &ControlMessage::Resync { reason },
                        )?)?;
                        return Response::from_websocket(pair.client);
                    }
                };
                for (first, last_in_page) in pages {
                    let rows: Vec<LogRow> = self
                        .sql()
                        .exec(
                            "SELECT seq, body, origin FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq",
                            Some(vec![
                                SqlStorageValue::Integer(first),
                                SqlStorageValue::Integer(last_in_page),
                            ]),
                        )?
                        .to_array()?;
                    for row in rows {
                        if is_echo(row.origin.as_deref(), client_key.as_deref()) {
                            pair.server.send_with_str(serde_json::to_string(
                                &ControlMessage::Echo { seq: row.seq },
                            )?)?;
                        } else {
                            pair.server.send_with_str(&row.body)?;
                        }
                    }
                }
            }
            ReplayPlan::Resync => {
                let reason = format!(
                    "This stream can replay events after {}; reload the board and reconnect with its seq.",
                    self.oldest_seq()?.map_or(last, |oldest| oldest - 1)
                );
                pair.server
                    .send_with_str(serde_json::to_string(&ControlMessage::Resync { reason })?)?;
                return Response::from_websocket(pair.client);
            }
        }
        pair.server
            .send_with_str(serde_json::to_string(&ControlMessage::Live { seq: last })?)?;
        self.tell_presence_after_join(&pair.server, open_of_user)?;
        Response::from_websocket(pair.client)
    }

    /// Tells a socket that just opened who is on the board. Another socket of someone already
    /// listed changes nobody's list (`domain::hub::join_changes_presence`): it gets the last list as
    /// it was sent to everyone, without reading every socket's attachment.
    fn tell_presence_after_join(
        &self,
        joined: &WebSocket,
        other_sockets_of_person: usize,
    ) -> Result<()> {
        if !join_changes_presence(other_sockets_of_person)
            && let Some(list) = self.last_presence.borrow().as_deref()
        {
            let _ = joined.send_with_str(list);
            return Ok(());
        }
        self.broadcast_presence(Some(joined))
    }

    /// Tells who is on the board now (`stream.presence`): every socket when the list changed, else
    /// only `joined`, the socket that just opened (`domain::hub::presence_audience`).
    fn broadcast_presence(&self, joined: Option<&WebSocket>) -> Result<()> {
        let sockets = self.state.get_websockets();
        let people = presence_list(sockets.iter().filter_map(|socket| {
            socket
                .deserialize_attachment::<SocketState>()
                .ok()
                .flatten()
                .map(|state| state.person)
        }));
        let frame = serde_json::to_string(&ControlMessage::Presence { people })?;
        let audience = presence_audience(
            self.last_presence.borrow().as_deref(),
            &frame,
            joined.is_some(),
        );
        match (audience, joined) {
            (PresenceAudience::Everyone, _) => {
                // The same JS string goes to every socket (one UTF-8 → UTF-16 copy), through the
                // `send` every socket shares, as `flush` does.
                let text = JsValue::from_str(&frame);
                let send = sockets.first().and_then(|socket| {
                    let socket: &JsValue = socket.as_ref().as_ref();
                    Reflect::get(socket, &JsValue::from_str("send"))
                        .ok()
                        .map(JsCast::unchecked_into::<Function>)
                });
                for socket in &sockets {
                    // A socket that is closing refuses the frame; the others still get it.
                    if let Some(send) = &send {
                        let _ = send.call1(socket.as_ref().as_ref(), &text);
                    }
                }
                *self.last_presence.borrow_mut() = Some(frame);
            }
            (PresenceAudience::Joiner, Some(joined)) => {
                let _ = joined.send_with_str(&frame);
            }
            (PresenceAudience::Joiner, None) | (PresenceAudience::Nobody, _) => {}
        }
        Ok(())
    }

    /// `HUB_MAX_STREAMS_PER_USER`, else the domain's default.
    fn max_streams_per_user(&self) -> usize {
        crate::auth::env_value(&self.env, "HUB_MAX_STREAMS_PER_USER")
            .and_then(|value| value.parse().ok())
            .filter(|max: &usize| *max > 0)
            .unwrap_or(MAX_STREAMS_PER_USER)
    }

    /// `HUB_MAX_MESSAGES_PER_WINDOW`, else the domain's default.
    fn max_messages_per_window(&self) -> u32 {
        crate::auth::env_value(&self.env, "HUB_MAX_MESSAGES_PER_WINDOW")
            .and_then(|value| value.parse().ok())
            .filter(|max: &u32| *max > 0)
            .unwrap_or(MAX_MESSAGES_PER_WINDOW)
    }

    /// The largest replay the hub sends (`HUB_REPLAY_MAX_BYTES`, for tests), else a resync.
    fn replay_max_bytes(&self) -> i64 {
        crate::auth::env_value(&self.env, "HUB_REPLAY_MAX_BYTES")
            .and_then(|value| value.parse().ok())
            .filter(|bytes: &i64| *bytes > 0)
            .unwrap_or(REPLAY_MAX_BYTES)
    }

    /// Runs the access re-checks that the broadcast events call for (a membership or access-mode
    /// change closes the sockets of users who lost access) and that are still owed: the progress is
    /// kept in `meta.access_checked` and advanced only once the re-checks succeeded, so a failed one
    /// (a D1 error) is repeated by the next delivery, the sweep's included.
    async fn enforce_owed_access(&self) -> Result<()> {
        let last = self.last_seq()?;
        let checked = self
            .meta("access_checked")?
            .and_then(|value| value.parse::<i64>().ok())
            .unwrap_or(0);
        let recheck = match pending_access_check(checked, last, self.oldest_seq()?) {
            PendingAccessCheck::Nothing => return Ok(()),
            PendingAccessCheck::EveryoneConnected => AccessRecheck {
                users: Vec::new(),
                everyone_connected: true,
            },
            PendingAccessCheck::Events { from, to } => {
                let rows: Vec<BodyRow> = self
                    .sql()
                    .exec(
                        "SELECT body FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq",
                        Some(vec![
                            SqlStorageValue::Integer(from),
                            SqlStorageValue::Integer(to),
                        ]),
                    )?
                    .to_array()?;
                let payloads: Vec<_> = rows
                    .iter()
                    .filter_map(|row| serde_json::from_str::<WorkspaceEvent>(&row.body).ok())
                    .map(|event| event.payload)
                    .collect();
                access_recheck(&payloads)
            }
        };
        if !recheck.is_empty() {
            self.close_sockets_without_access(recheck).await?;
        }
        self.set_meta("access_checked", &last.to_string())
    }

    /// Every user with an open socket.
    fn connected_users(&self) -> Vec<UserId> {
        let mut connected = Vec::new();
        for socket in self.state.get_websockets() {
            for tag in self.state.get_tags(&socket) {
                if let Some(user) = tag
                    .strip_prefix("user:")
                    .and_then(|id| UserId::parse(id).ok())
                {
                    connected.push(user);
                }
            }
        }
        connected
    }

    /// Looks up the access of `recheck`'s users in D1 and closes the sockets (4403) of those who can
    /// no longer read the workspace.
    async fn close_sockets_without_access(&self, recheck: AccessRecheck) -> Result<()> {
        let users_to_check = recheck.users(|| self.connected_users());
        let Some(workspace_id) = self
            .meta("workspace")?
            .and_then(|id| WorkspaceId::parse(&id).ok())
        else {
            return Ok(());
        };
        let db =
            Db::from_env(&self.env).map_err(|error| worker::Error::RustError(error.message))?;
        for user_id in users_to_check {
            let sockets = self
                .state
                .get_websockets_with_tag(&user_tag(user_id.as_str()));
            if sockets.is_empty() {
                continue;
            }
            let access = load_access(&db, &workspace_id, &user_id)
                .await
                .map_err(|error| worker::Error::RustError(error.message))?;
            let may_read = access
                .and_then(|access| access.role)
                .is_some_and(|role| role.allows(Permission::Read));
            if !may_read {
                for socket in sockets {
                    let error = ApiError::new(
                        ErrorCode::NotFound,
                        "You no longer have access to this workspace.",
                    );
                    let _ = socket
                        .send_with_str(serde_json::to_string(&ControlMessage::Error { error })?);
                    let _ = socket.close(Some(CLOSE_ACCESS_REVOKED), Some("access revoked"));
                }
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct OriginOnly {
    origin: Option<String>,
    actor: Option<Actor>,
}
