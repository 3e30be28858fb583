//! A client of a workspace's live event stream, for tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::Client;

/// An open stream and every frame it has received so far.
pub struct EventStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `seq` of every event received, in order.
    pub seqs: Vec<i64>,
    /// Every event received.
    pub events: Vec<Value>,
    /// The `seq` of every `stream.echo` received (this client's own writes), in order.
    pub echoes: Vec<i64>,
    /// How the server closed the socket, once it did.
    pub closed: Option<(u16, String)>,
    /// The latest `stream.presence` list. Presence frames come whenever anyone connects, leaves or
    /// opens a block, so [`EventStream::next_frame`] keeps them here instead of returning them.
    pub presence: Option<Value>,
}

/// Why a stream could not be opened: the HTTP status and the JSON envelope of the refusal.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

impl EventStream {
    /// Gets a ticket as `client` and opens the stream of `workspace`.
    pub async fn open(
        client: &Client,
        workspace: &str,
        since: Option<i64>,
        client_id: Option<&str>,
    ) -> EventStream {
        let ticket = client
            .post(
                &format!("/workspaces/{workspace}/events/ticket"),
                json!(null),
            )
            .await
            .expect(200);
        let ticket = ticket["ticket"].as_str().expect("a ticket").to_owned();
        EventStream::open_with_ticket(&client.base_url, workspace, &ticket, since, client_id)
            .await
            .unwrap_or_else(|refused| panic!("the stream was refused: {refused:?}"))
    }

    pub async fn open_with_ticket(
        base_url: &str,
        workspace: &str,
        ticket: &str,
        since: Option<i64>,
        client_id: Option<&str>,
    ) -> Result<EventStream, Refused> {
        let mut url = format!(
            "{}/workspaces/{workspace}/events?ticket={ticket}",
            base_url.replacen("http", "ws", 1)
        );
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        if let Some(client_id) = client_id {
            url.push_str(&format!("&clientId={client_id}"));
        }
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => Ok(EventStream {
                socket,
                seqs: Vec::new(),
                events: Vec::new(),
                echoes: Vec::new(),
                closed: None,
                presence: None,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|bytes| serde_json::from_slice(bytes).ok());
                // The handshake reader keeps the refusal's body only when it arrived with the head;
                // ask again over plain HTTP (same upgrade header) to read the envelope.
                let body = match body {
                    Some(body) => body,
                    None => {
                        let http_url = url.replacen("ws", "http", 1);
                        let answer = reqwest::Client::new()
                            .get(http_url)
                            .header("upgrade", "websocket")
                            .send()
                            .await
                            .expect("the refusal can be read over HTTP");
                        answer.json().await.unwrap_or(Value::Null)
                    }
                };
                Err(Refused { status, body })
            }
            Err(error) => panic!("the WebSocket handshake failed: {error}"),
        }
    }

    /// The next frame (recording events), or `None` if nothing came within `wait` or the socket closed.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value =
                        serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()));
                    if value["type"] == "stream.presence" {
                        self.presence = Some(value["people"].clone());
                        continue;
                    }
                    if value["type"] == "stream.echo" {
                        self.echoes.extend(value["seq"].as_i64());
                    }
                    if let Some(seq) = value["seq"].as_i64().filter(|_| !is_control(&value)) {
                        self.seqs.push(seq);
                        self.events.push(value.clone());
                    }
                    return Some(value);
                }
                Ok(Message::Close(frame)) => {
                    self.closed = Some(frame.map_or((1005, String::new()), |frame| {
                        (frame.code.into(), frame.reason.to_string())
                    }));
                    return None;
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until the presence list satisfies `condition` (10 s at most), and returns it.
    /// Other frames read meanwhile are not kept: use it where only presence matters.
    pub async fn wait_presence(&mut self, condition: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(people) = self.presence.as_ref().filter(|people| condition(people)) {
                return Some(people.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let raw = tokio::time::timeout(left, self.socket.next())
                .await
                .ok()??;
            if let Ok(Message::Text(text)) = raw {
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                if value["type"] == "stream.presence" {
                    self.presence = Some(value["people"].clone());
                }
            }
        }
    }

    /// Waits for `stream.live` (the end of the replay) and returns its seq.
    pub async fn wait_live(&mut self) -> i64 {
        loop {
            let frame = self
                .next_frame(Duration::from_secs(10))
                .await
                .expect("stream.live within 10 s");
            if frame["type"] == "stream.live" {
                return frame["seq"].as_i64().unwrap();
            }
        }
    }

    /// Every seq this socket has been told about, events and echoes, sorted.
    pub fn every_seq(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self.seqs.iter().chain(&self.echoes).copied().collect();
        all.sort_unstable();
        all
    }

    /// Reads frames until an event or echo with `seq >= target` arrived (true) or `wait` passed.
    pub async fn read_until_seq_or_echo(&mut self, target: i64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while self.every_seq().last().is_none_or(|last| *last < target) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next_frame(left).await.is_none() {
                return false;
            }
        }
        true
    }

    /// Reads frames until an event with `seq >= target` arrived (true) or `wait` passed without one.
    pub async fn read_until_seq(&mut self, target: i64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while self.seqs.last().is_none_or(|last| *last < target) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next_frame(left).await.is_none() {
                return false;
            }
        }
        true
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("the frame is sent");
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

fn is_control(frame: &Value) -> bool {
    frame["type"]
        .as_str()
        .is_some_and(|kind| kind.starts_with("stream."))
}
