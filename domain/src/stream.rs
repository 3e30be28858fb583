//! The live event stream of a workspace: what travels over its WebSocket, and the hub's pure rules for
//! ordering and replay.
//!
//! Server → client frames are either a [`WorkspaceEvent`] (its `type` is the event's name, such as
//! `block.created`) or a control message (its `type` starts with `stream.`). Client → server frames are
//! [`ClientMessage`]s. Both are JSON text frames; the bare text `ping` is answered `pong` without waking
//! the hub.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::event::WorkspaceEvent;
use crate::ids::BlockId;

/// How many events a hub keeps for replay. A client further behind gets `stream.resync`.
pub const REPLAY_LOG_CAPACITY: i64 = 2_000;

/// How long a ticket to open the stream stays valid, in seconds.
pub const TICKET_TTL_SECONDS: i64 = 60;

/// WebSocket close code sent when the user lost access to the workspace (or it was deleted).
pub const CLOSE_ACCESS_REVOKED: u16 = 4403;

/// WebSocket close code sent when the user signed out (this session or everywhere). A board whose
/// session still works reconnects with a fresh ticket; a signed-out one cannot get one.
pub const CLOSE_SIGNED_OUT: u16 = 4401;

/// `POST /workspaces/:id/events/ticket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTicket {
    pub ticket: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// A control frame from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ControlMessage {
    /// Sent once the missing events have been replayed: the stream is live from `seq` on.
    #[serde(rename = "stream.live")]
    Live { seq: i64 },
    /// The client is too far behind (or ahead) for a replay: reload the board snapshot, then reconnect
    /// with its `seq`.
    #[serde(rename = "stream.resync")]
    Resync { reason: String },
    /// A frame from the client was not understood; nothing changed.
    #[serde(rename = "stream.error")]
    Error { error: ApiError },
    #[serde(rename = "stream.pong")]
    Pong,
    /// Who is on the board now, and which block each has open: sent to every socket when someone
    /// connects, leaves or opens another block.
    #[serde(rename = "stream.presence")]
    Presence { people: Vec<PresentPerson> },
}

/// Someone on the board, as `stream.presence` lists them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresentPerson {
    pub login: String,
    pub user_id: String,
    /// The block whose panel they have open (`None`: looking at the board).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<BlockId>,
}

/// The presence list from every open socket's person: one entry per person and block they have
/// open (two tabs on the same block count once; a person with a block open is not listed again as
/// only looking), sorted by login.
pub fn presence_list(sockets: impl IntoIterator<Item = PresentPerson>) -> Vec<PresentPerson> {
    let all: std::collections::BTreeSet<PresentPerson> = sockets.into_iter().collect();
    let with_block: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|person| person.block_id.is_some())
        .map(|person| person.user_id.as_str())
        .collect();
    all.iter()
        .filter(|person| person.block_id.is_some() || !with_block.contains(person.user_id.as_str()))
        .cloned()
        .collect()
}

/// Any frame from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage {
    Control(ControlMessage),
    Event(Box<WorkspaceEvent>),
}

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Answered with `stream.pong`. (A struct variant, so unknown fields are refused.)
    Ping {},
    /// The block whose panel this client has open now (`null`: none); every socket gets the new
    /// `stream.presence`.
    Presence {
        #[serde(rename = "blockId", default)]
        block_id: Option<BlockId>,
    },
}

/// What a hub does for a client that connects having seen everything up to `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Nothing is missing.
    UpToDate,
    /// Send the events with `since < seq <= until` from the log, then go live.
    Replay { since: i64, until: i64 },
    /// The log no longer holds what the client missed.
    Resync,
}

/// Plans the catch-up of a reconnecting client. `oldest` is the oldest seq the log still holds (`None`
/// when it is empty) and `last` the last seq broadcast.
pub fn plan_replay(since: i64, oldest: Option<i64>, last: i64) -> ReplayPlan {
    if since == last {
        return ReplayPlan::UpToDate;
    }
    if since > last || since < 0 {
        // The client claims events the hub never sent: its state cannot be trusted.
        return ReplayPlan::Resync;
    }
    match oldest {
        Some(oldest) if since + 1 >= oldest => ReplayPlan::Replay { since, until: last },
        _ => ReplayPlan::Resync,
    }
}

/// The events the hub may broadcast now: the run of consecutive sequence numbers right after `last`
/// among `held` (sorted ascending). Anything after a gap waits until the gap is filled.
pub fn broadcastable(last: i64, held: &[i64]) -> Vec<i64> {
    let mut next = last + 1;
    let mut run = Vec::new();
    for &seq in held {
        if seq < next {
            continue;
        }
        if seq != next {
            break;
        }
        run.push(seq);
        next += 1;
    }
    run
}

/// Parses a client frame; an error frame describes what was wrong.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ApiError> {
    crate::api::body::parse_json::<ClientMessage>(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_lists_each_person_once_per_open_block_and_reads_client_frames() {
        let person = |login: &str, block: Option<u8>| PresentPerson {
            login: login.to_owned(),
            user_id: format!("usr_{login}"),
            block_id: block.map(|n| BlockId::from_random([n; 8])),
        };
        let listed = presence_list([
            person("bob", None),
            person("alice", Some(1)),
            person("alice", Some(1)),
            person("alice", None),
            person("bob", None),
            person("carol", Some(2)),
            person("carol", Some(3)),
        ]);
        assert_eq!(
            listed,
            vec![
                person("alice", Some(1)),
                person("bob", None),
                person("carol", Some(2)),
                person("carol", Some(3)),
            ]
        );
        let block = BlockId::from_random([1; 8]);
        assert_eq!(
            parse_client_message(&format!(r#"{{"type":"presence","blockId":"{block}"}}"#)),
            Ok(ClientMessage::Presence {
                block_id: Some(block)
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"presence","blockId":null}"#),
            Ok(ClientMessage::Presence { block_id: None })
        );
        assert!(parse_client_message(r#"{"type":"presence","who":"x"}"#).is_err());
        let wire = serde_json::to_value(ControlMessage::Presence {
            people: vec![person("alice", None)],
        })
        .unwrap();
        assert_eq!(wire["type"], "stream.presence");
        assert_eq!(wire["people"][0]["login"], "alice");
    }
    use crate::event::EventPayload;
    use crate::ids::{EdgeId, WorkspaceId};

    #[test]
    fn replay_plans() {
        let cases = [
            (10, Some(1), 10, ReplayPlan::UpToDate),
            (
                0,
                Some(1),
                10,
                ReplayPlan::Replay {
                    since: 0,
                    until: 10,
                },
            ),
            (
                4,
                Some(5),
                10,
                ReplayPlan::Replay {
                    since: 4,
                    until: 10,
                },
            ),
            (3, Some(5), 10, ReplayPlan::Resync),
            (11, Some(1), 10, ReplayPlan::Resync),
            (-1, Some(1), 10, ReplayPlan::Resync),
            (0, None, 0, ReplayPlan::UpToDate),
            (2, None, 5, ReplayPlan::Resync),
        ];
        for (since, oldest, last, expected) in cases {
            assert_eq!(
                plan_replay(since, oldest, last),
                expected,
                "since {since}, oldest {oldest:?}, last {last}"
            );
        }
    }

    #[test]
    fn only_a_gap_free_run_is_broadcast() {
        assert_eq!(broadcastable(4, &[5, 6, 8]), vec![5, 6]);
        assert_eq!(broadcastable(4, &[3, 4, 5]), vec![5]);
        assert_eq!(broadcastable(4, &[6, 7]), Vec::<i64>::new());
        assert_eq!(broadcastable(0, &[]), Vec::<i64>::new());
    }

    #[test]
    fn frames_decode_as_control_or_event() {
        let live: ServerMessage =
            serde_json::from_str(r#"{"type":"stream.live","seq":3}"#).unwrap();
        assert_eq!(
            live,
            ServerMessage::Control(ControlMessage::Live { seq: 3 })
        );
        let event = WorkspaceEvent {
            workspace_id: WorkspaceId::from_random([1; 8]),
            seq: 4,
            at: 9,
            actor: None,
            origin: None,
            payload: EventPayload::EdgeDeleted {
                edge_id: EdgeId::from_random([2; 8]),
            },
        };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Event(Box::new(event))
        );
    }

    #[test]
    fn client_frames_are_checked() {
        assert_eq!(
            parse_client_message(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping {})
        );
        for bad in [
            "",
            "ping?",
            r#"{"type":"shout"}"#,
            r#"{"type":"ping","x":1}"#,
            "[]",
        ] {
            assert!(parse_client_message(bad).is_err(), "{bad}");
        }
    }
}
