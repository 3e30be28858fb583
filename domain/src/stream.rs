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

/// WebSocket close code sent to a new socket when its user already has
/// [`MAX_STREAMS_PER_USER`] open on the workspace. The client should not reconnect by itself.
pub const CLOSE_TOO_MANY_STREAMS: u16 = 4409;

/// WebSocket close code sent when a socket sent more than [`MAX_MESSAGES_PER_WINDOW`] frames in
/// [`MESSAGE_WINDOW_MS`] (the text `ping`, answered by the runtime, does not count).
pub const CLOSE_MESSAGE_RATE: u16 = 4429;

/// How many open streams one user may have on one workspace (`HUB_MAX_STREAMS_PER_USER`): many tabs,
/// not a connection flood that would make every broadcast slower for everyone.
pub const MAX_STREAMS_PER_USER: usize = 20;

/// How many frames a socket may send per [`MESSAGE_WINDOW_MS`] (`HUB_MAX_MESSAGES_PER_WINDOW`):
/// presence changes and JSON pings, with room for a burst of clicks.
pub const MAX_MESSAGES_PER_WINDOW: u32 = 60;

/// The message-rate window, in milliseconds.
pub const MESSAGE_WINDOW_MS: i64 = 10_000;

/// Whether a user who has `open_of_user` streams on a workspace may open another.
pub fn admits_another_stream(open_of_user: usize, max: usize) -> bool {
    open_of_user < max
}

/// A socket's message count in its current rate window (kept with the socket, so it survives the
/// hub's hibernation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageWindow {
    pub started_at_ms: i64,
    pub count: u32,
}

/// Counts one frame received at `now_ms`: the new window, and whether the frame is within the limit
/// (a frame over it closes the socket with [`CLOSE_MESSAGE_RATE`]). A fixed window: the count starts
/// again `window_ms` after the window started.
pub fn count_message(
    window: MessageWindow,
    now_ms: i64,
    max: u32,
    window_ms: i64,
) -> (MessageWindow, bool) {
    let window = if now_ms - window.started_at_ms >= window_ms || now_ms < window.started_at_ms {
        MessageWindow {
            started_at_ms: now_ms,
            count: 0,
        }
    } else {
        window
    };
    let counted = MessageWindow {
        count: window.count.saturating_add(1),
        ..window
    };
    (counted, counted.count <= max)
}

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
    /// The event `seq` was written by this client (same user and `clientId`), which applied it
    /// already: instead of the event, its writer's sockets get this, so every socket still sees
    /// every seq and can tell a skipped event from a lost one.
    #[serde(rename = "stream.echo")]
    Echo { seq: i64 },
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

/// One replay page is read from the log and sent before the next is read, so a reconnect holds at
/// most this many bytes of events in the hub's memory at once.
pub const REPLAY_PAGE_BYTES: i64 = 512 * 1024;

/// A replay larger than this is refused with `stream.resync` (the snapshot is smaller than a burst of
/// large edits replayed one by one, and the socket's send buffer stays bounded).
pub const REPLAY_MAX_BYTES: i64 = 16 * 1024 * 1024;

/// An event in the hub's log as replay planning sees it: its seq and the size of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldEvent {
    pub seq: i64,
    pub bytes: i64,
}

/// How a planned replay of `since < seq <= until` goes: pages of consecutive seqs (inclusive ranges),
/// each at most `page_bytes` (or one event, if that alone is larger), or a resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayPages {
    Pages(Vec<(i64, i64)>),
    /// The log does not hold every seq of the range (a hole), or the range is larger than
    /// `max_bytes`: going live after it would skip events or exhaust memory.
    Resync,
}

/// Pages a replay over the events the log holds in `since < seq <= until` (`held`, ascending). The
/// replay claims "live" only over a contiguous range: a hole anywhere means resync.
pub fn page_replay(
    since: i64,
    until: i64,
    held: &[HeldEvent],
    page_bytes: i64,
    max_bytes: i64,
) -> ReplayPages {
    let in_range: Vec<&HeldEvent> = held
        .iter()
        .filter(|event| event.seq > since && event.seq <= until)
        .collect();
    let contiguous = in_range.len() as i64 == until - since
        && in_range
            .iter()
            .enumerate()
            .all(|(index, event)| event.seq == since + 1 + index as i64);
    let total: i64 = in_range.iter().map(|event| event.bytes).sum();
    if !contiguous || total > max_bytes {
        return ReplayPages::Resync;
    }
    // Each page: (first seq, last seq, bytes so far).
    let mut pages: Vec<(i64, i64, i64)> = Vec::new();
    for event in in_range {
        match pages.last_mut() {
            Some((_, last, bytes)) if *bytes + event.bytes <= page_bytes => {
                *last = event.seq;
                *bytes += event.bytes;
            }
            _ => pages.push((event.seq, event.seq, event.bytes)),
        }
    }
    let pages = pages
        .into_iter()
        .map(|(first, last, _)| (first, last))
        .collect();
    ReplayPages::Pages(pages)
}

/// What a client does with a frame numbered `seq` (an event, or `stream.echo` of its own write) when
/// it has applied everything up to `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStep {
    /// The next seq: apply it and move on to `seq`.
    Apply,
    /// Already applied (a replay overlapping the snapshot): skip it.
    AlreadySeen,
    /// Seqs `since + 1 .. seq - 1` never arrived: do not apply it; reconnect with `since` (the hub
    /// replays the missing ones, or says resync).
    Gap,
}

/// The client side of "every seq exactly once, in order": never jump past a missing seq.
pub fn next_seq_step(since: i64, seq: i64) -> SeqStep {
    if seq <= since {
        SeqStep::AlreadySeen
    } else if seq == since + 1 {
        SeqStep::Apply
    } else {
        SeqStep::Gap
    }
}

/// What a client does with `stream.live` announcing `live_seq` when it has applied everything up to
/// `since`: going live past a seq it never got would hide a gap.
pub fn live_is_gap(since: i64, live_seq: i64) -> bool {
    live_seq > since
}

/// Parses a client frame; an error frame describes what was wrong.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ApiError> {
    crate::api::body::parse_json::<ClientMessage>(text.as_bytes())
}

/// What a client does with a frame it cannot decode (an event of a newer or older server version,
/// say in a replay across a deploy): if it carries a `seq` the client has not applied, the board
/// must reload from a snapshot — skipping it would leave the board wrong, and reconnecting would
/// replay the same frame forever. A frame without a seq, or one already applied, is ignored.
pub fn unreadable_frame_needs_resync(text: &str, since: i64) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|frame| frame.get("seq").and_then(serde_json::Value::as_i64))
        .is_some_and(|seq| seq > since)
}

/// Whether a stream ticket may still open a socket, given its holder's session generation now
/// (`None`: the user is gone). A ticket minted before its user signed out everywhere (which bumps
/// the generation) opens nothing, used or not.
pub fn check_ticket_holder(
    ticket_generation: i64,
    current_generation: Option<i64>,
) -> Result<(), ApiError> {
    match current_generation {
        None => Err(ApiError::unauthorized(
            "The ticket's user no longer exists.",
        )),
        Some(current) if current != ticket_generation => Err(ApiError::unauthorized(
            "This ticket was issued before you signed out everywhere; sign in again and get a fresh ticket.",
        )),
        Some(_) => Ok(()),
    }
}

/// A ticket opens one socket: `first_use` is whether claiming its id found it unclaimed.
pub fn check_ticket_first_use(first_use: bool) -> Result<(), ApiError> {
    if first_use {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "This ticket was used already; get a fresh one for each connection.",
        ))
    }
}

/// The key under which a ticket's single use is recorded among the revoked tokens (a namespace apart
/// from session token ids).
pub fn ticket_use_key(jti: &str) -> String {
    format!("ticket:{jti}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_a_socket_only_for_its_users_current_generation_and_only_once() {
        assert!(check_ticket_holder(3, Some(3)).is_ok());
        let signed_out = check_ticket_holder(3, Some(4)).unwrap_err();
        assert_eq!(signed_out.code, crate::api::ErrorCode::Unauthorized);
        assert!(signed_out.message.contains("signed out everywhere"));
        assert!(
            check_ticket_holder(3, None)
                .unwrap_err()
                .message
                .contains("no longer exists")
        );
        assert!(check_ticket_first_use(true).is_ok());
        assert!(
            check_ticket_first_use(false)
                .unwrap_err()
                .message
                .contains("used already")
        );
        assert_eq!(ticket_use_key("ab12"), "ticket:ab12");
    }

    #[test]
    fn an_unreadable_event_past_what_was_applied_reloads_the_board_anything_else_is_ignored() {
        let newer = r#"{"seq": 8, "type": "block.teleported", "data": {}}"#;
        assert!(unreadable_frame_needs_resync(newer, 7));
        assert!(unreadable_frame_needs_resync(newer, 3), "past a gap too");
        assert!(!unreadable_frame_needs_resync(newer, 8), "already applied");
        assert!(!unreadable_frame_needs_resync(
            r#"{"type": "stream.mystery"}"#,
            0
        ));
        assert!(!unreadable_frame_needs_resync("not json", 0));
    }

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
    fn replay_is_paged_by_bytes_and_claims_live_only_over_a_contiguous_range() {
        let held = |seqs: &[(i64, i64)]| -> Vec<HeldEvent> {
            seqs.iter()
                .map(|&(seq, bytes)| HeldEvent { seq, bytes })
                .collect()
        };
        let small = held(&[(3, 10), (4, 10), (5, 10), (6, 10)]);
        assert_eq!(
            page_replay(2, 6, &small, 25, 1_000),
            ReplayPages::Pages(vec![(3, 4), (5, 6)])
        );
        assert_eq!(
            page_replay(2, 6, &small, 1_000, 1_000),
            ReplayPages::Pages(vec![(3, 6)])
        );
        // An event larger than a page is a page of its own.
        let big = held(&[(1, 50), (2, 5), (3, 5)]);
        assert_eq!(
            page_replay(0, 3, &big, 20, 1_000),
            ReplayPages::Pages(vec![(1, 1), (2, 3)])
        );
        // A hole (4 was pruned, then 3 came back with a re-delivery): resync, never a silent skip.
        let holed = held(&[(3, 10), (5, 10), (6, 10)]);
        assert_eq!(page_replay(2, 6, &holed, 25, 1_000), ReplayPages::Resync);
        assert_eq!(page_replay(1, 6, &small, 25, 1_000), ReplayPages::Resync);
        // Too much to replay: resync.
        assert_eq!(page_replay(2, 6, &small, 25, 39), ReplayPages::Resync);
        assert_eq!(
            page_replay(2, 6, &small, 25, 40),
            ReplayPages::Pages(vec![(3, 4), (5, 6)])
        );
        assert_eq!(
            page_replay(6, 6, &small, 25, 40),
            ReplayPages::Pages(vec![])
        );
    }

    #[test]
    fn a_client_never_jumps_past_a_missing_seq() {
        assert_eq!(next_seq_step(4, 5), SeqStep::Apply);
        assert_eq!(next_seq_step(4, 4), SeqStep::AlreadySeen);
        assert_eq!(next_seq_step(4, 2), SeqStep::AlreadySeen);
        assert_eq!(next_seq_step(4, 6), SeqStep::Gap);
        assert!(!live_is_gap(6, 6));
        assert!(!live_is_gap(6, 5));
        assert!(live_is_gap(6, 7));
        let echo: ServerMessage =
            serde_json::from_str(r#"{"type":"stream.echo","seq":7}"#).unwrap();
        assert_eq!(
            echo,
            ServerMessage::Control(ControlMessage::Echo { seq: 7 })
        );
    }

    #[test]
    fn streams_per_user_and_messages_per_window_are_bounded() {
        assert!(admits_another_stream(0, 2));
        assert!(admits_another_stream(1, 2));
        assert!(!admits_another_stream(2, 2));
        let mut window = MessageWindow::default();
        let mut allowed = Vec::new();
        for at in [1_000, 1_001, 1_002, 1_003] {
            let (next, ok) = count_message(window, at, 3, 100);
            window = next;
            allowed.push(ok);
        }
        assert_eq!(allowed, vec![true, true, true, false]);
        // A new window starts the count again.
        let (next, ok) = count_message(window, 1_100, 3, 100);
        assert!(ok);
        assert_eq!(
            next,
            MessageWindow {
                started_at_ms: 1_100,
                count: 1
            }
        );
        // A clock that went backwards does not lock a socket out.
        assert!(count_message(window, 10, 3, 100).1);
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
