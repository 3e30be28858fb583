//! Workspace events: every persisted change to a board, in order.
//!
//! Each event has a per-workspace sequence number with no gaps, assigned in the same D1 transaction
//! as the change it describes (the outbox), so a snapshot taken at `seq` plus the events after it is
//! exactly the board. The names (`block.created`, …) are a public contract: never rename one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::WorkspaceRole;
use crate::api::workspaces::Workspace;
use crate::board::{Block, BlockChange, Edge};
use crate::ids::{BlockId, EdgeId, RunId, UserId, WorkspaceId};
use crate::run::{RunEvent, RunStatus};
use serde_json::json;

/// One event as clients receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceEvent {
    pub workspace_id: WorkspaceId,
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Who made the change (`None` for the platform itself, such as a sweep).
    pub actor: Option<Actor>,
    /// The client id the change came from, so that client can skip its own echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(flatten)]
    pub payload: EventPayload,
}

/// Who changed the board: a signed-in user, a run of the engine, or a webhook from a forge. Serialized
/// as `{"kind": "user", "id": "usr_…"}`, `{"kind": "run", "id": "<run id>"}` or
/// `{"kind": "webhook", "source": "github"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person, through the API or the board.
    User { id: UserId },
    /// A run of the engine, acting on the board without a request in hand.
    Run { id: String },
    /// A webhook delivery from an external system (`source` names it, such as `github`).
    Webhook { source: String },
}

impl Actor {
    /// The user behind the change, when a person made it.
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Actor::User { id } => Some(id),
            Actor::Run { .. } | Actor::Webhook { .. } => None,
        }
    }
}

/// What happened. Serialized as `"type": "<name>", "data": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    #[serde(rename = "block.created")]
    BlockCreated { block: Block },
    /// Only the fields the write changed (`domain::board::BlockChange`): events stay small.
    #[serde(rename = "block.updated")]
    BlockUpdated(BlockChange),
    #[serde(rename = "block.reparented")]
    BlockReparented { block: Block },
    /// The block and its whole subtree are gone, with every edge that touched them.
    #[serde(rename = "block.deleted", rename_all = "camelCase")]
    BlockDeleted {
        block_id: BlockId,
        deleted_block_ids: Vec<BlockId>,
        deleted_edge_ids: Vec<EdgeId>,
    },
    #[serde(rename = "edge.created")]
    EdgeCreated { edge: Edge },
    #[serde(rename = "edge.deleted", rename_all = "camelCase")]
    EdgeDeleted { edge_id: EdgeId },
    #[serde(rename = "workspace.updated")]
    WorkspaceUpdated { workspace: Workspace },
    /// A member was added, changed role (`role` set) or removed (`role: null`).
    #[serde(rename = "member.changed", rename_all = "camelCase")]
    MemberChanged {
        user_id: UserId,
        role: Option<WorkspaceRole>,
    },
    /// A model call through the gateway settled: what it cost, and on which block and run. The board
    /// adds `cost` to the block's running total.
    #[serde(rename = "spend.changed")]
    SpendChanged { call: crate::spend::SettledCall },
    /// A block's GitHub state changed (issue 15): a frame's repository link, a task's pull request,
    /// CI and review, its issue, or a note GitHub caused. The whole state, not a diff.
    #[serde(rename = "block.github")]
    BlockGithub {
        github: crate::api::github::BlockGithub,
    },
    /// A run's event (`run.*`, docs/events.md): its own name in `type`, the run in `data`.
    #[serde(untagged)]
    Run(RunEventRecord),
}

/// A run event as the workspace stream carries it: `{"type": "run.step_started", "data": {"runId",
/// "blockId", "runSeq", "runStatus", …the event's own fields}}`. `runSeq` is the run's own event
/// number (from 1, no gaps), the key that keeps a replayed emit from being recorded twice.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEventRecord {
    pub run_id: RunId,
    pub block_id: BlockId,
    pub run_seq: u64,
    /// The run's status after the transition that emitted the event.
    pub run_status: RunStatus,
    pub event: RunEvent,
}

impl Serialize for RunEventRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut data = serde_json::to_value(&self.event).map_err(S::Error::custom)?;
        let object = data
            .as_object_mut()
            .ok_or_else(|| S::Error::custom("a run event is an object"))?;
        object.remove("type");
        object.insert("runId".to_owned(), json!(self.run_id));
        object.insert("blockId".to_owned(), json!(self.block_id));
        object.insert("runSeq".to_owned(), json!(self.run_seq));
        object.insert("runStatus".to_owned(), json!(self.run_status));
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", self.event.name())?;
        map.serialize_entry("data", &data)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for RunEventRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            name: String,
            data: serde_json::Map<String, serde_json::Value>,
        }
        let Wire { name, mut data } = Wire::deserialize(deserializer)?;
        if !name.starts_with("run.") {
            return Err(D::Error::custom(format!("unknown event type {name:?}")));
        }
        let mut take = |field: &str| {
            data.remove(field)
                .ok_or_else(|| D::Error::custom(format!("a run event needs data.{field}")))
        };
        let run_id = serde_json::from_value(take("runId")?).map_err(D::Error::custom)?;
        let block_id = serde_json::from_value(take("blockId")?).map_err(D::Error::custom)?;
        let run_seq = serde_json::from_value(take("runSeq")?).map_err(D::Error::custom)?;
        let run_status = serde_json::from_value(take("runStatus")?).map_err(D::Error::custom)?;
        data.insert("type".to_owned(), serde_json::Value::String(name));
        let event =
            serde_json::from_value(serde_json::Value::Object(data)).map_err(D::Error::custom)?;
        Ok(RunEventRecord {
            run_id,
            block_id,
            run_seq,
            run_status,
            event,
        })
    }
}

impl JsonSchema for RunEventRecord {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunEventRecord".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A run event (`run.*`): see docs/events.md",
            "required": ["type", "data"],
            "properties": {
                "type": { "type": "string", "pattern": "^run\\." },
                "data": { "type": "object", "required": ["runId", "blockId", "runSeq", "runStatus"] }
            }
        })
    }
}

impl EventPayload {
    pub fn name(&self) -> &'static str {
        match self {
            EventPayload::BlockCreated { .. } => "block.created",
            EventPayload::BlockUpdated(_) => "block.updated",
            EventPayload::BlockReparented { .. } => "block.reparented",
            EventPayload::BlockDeleted { .. } => "block.deleted",
            EventPayload::EdgeCreated { .. } => "edge.created",
            EventPayload::EdgeDeleted { .. } => "edge.deleted",
            EventPayload::WorkspaceUpdated { .. } => "workspace.updated",
            EventPayload::MemberChanged { .. } => "member.changed",
            EventPayload::Run(record) => record.event.name(),
            EventPayload::SpendChanged { .. } => "spend.changed",
            EventPayload::BlockGithub { .. } => "block.github",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_their_stable_names() {
        let event = WorkspaceEvent {
            workspace_id: WorkspaceId::from_random([1; 8]),
            seq: 7,
            at: 1_000,
            actor: None,
            origin: None,
            payload: EventPayload::EdgeDeleted {
                edge_id: EdgeId::from_random([2; 8]),
            },
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["type"], "edge.deleted");
        assert_eq!(wire["data"]["edgeId"], "edg_0202020202020202");
        assert_eq!(wire["seq"], 7);
        assert_eq!(
            serde_json::from_value::<WorkspaceEvent>(wire).unwrap(),
            event
        );
        assert_eq!(event.payload.name(), "edge.deleted");
    }

    #[test]
    fn a_run_event_travels_under_its_own_name_with_the_run_in_its_data() {
        let event = WorkspaceEvent {
            workspace_id: WorkspaceId::from_random([1; 8]),
            seq: 9,
            at: 5,
            actor: Some(Actor::Run {
                id: "run_0404040404040404".to_owned(),
            }),
            origin: None,
            payload: EventPayload::Run(RunEventRecord {
                run_id: RunId::from_random([4; 8]),
                block_id: BlockId::from_random([5; 8]),
                run_seq: 3,
                run_status: RunStatus::Running,
                event: RunEvent::Retried { step_index: 1 },
            }),
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["type"], "run.retried");
        assert_eq!(wire["data"]["runId"], "run_0404040404040404");
        assert_eq!(wire["data"]["runSeq"], 3);
        assert_eq!(wire["data"]["runStatus"], "running");
        assert_eq!(wire["data"]["stepIndex"], 1);
        assert_eq!(event.payload.name(), "run.retried");
        assert_eq!(
            serde_json::from_value::<WorkspaceEvent>(wire).unwrap(),
            event
        );
        let unknown = serde_json::json!({"workspaceId": "ws_0101010101010101", "seq": 1, "at": 1,
            "actor": null, "type": "nope.nope", "data": {}});
        assert!(serde_json::from_value::<WorkspaceEvent>(unknown).is_err());
    }

    #[test]
    fn every_actor_kind_has_a_stable_tagged_form() {
        let user = UserId::from_random([3; 8]);
        let cases = [
            (
                Actor::User { id: user.clone() },
                serde_json::json!({"kind": "user", "id": "usr_0303030303030303"}),
            ),
            (
                Actor::Run {
                    id: "run-1".to_owned(),
                },
                serde_json::json!({"kind": "run", "id": "run-1"}),
            ),
            (
                Actor::Webhook {
                    source: "github".to_owned(),
                },
                serde_json::json!({"kind": "webhook", "source": "github"}),
            ),
        ];
        for (actor, wire) in cases {
            assert_eq!(serde_json::to_value(&actor).unwrap(), wire);
            assert_eq!(serde_json::from_value::<Actor>(wire).unwrap(), actor);
        }
        assert_eq!(Actor::User { id: user.clone() }.user_id(), Some(&user));
        assert_eq!(Actor::Run { id: "r".to_owned() }.user_id(), None);
    }
}
