//! Workspace events: every persisted change to a board, in order.
//!
//! Each event has a per-workspace sequence number with no gaps, assigned in the same D1 transaction
//! as the change it describes (the outbox), so a snapshot taken at `seq` plus the events after it is
//! exactly the board. The names (`block.created`, …) are a public contract: never rename one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::WorkspaceRole;
use crate::api::workspaces::Workspace;
use crate::board::{Block, Edge};
use crate::ids::{BlockId, EdgeId, UserId, WorkspaceId};

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
    #[serde(rename = "block.updated")]
    BlockUpdated { block: Block },
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
}

impl EventPayload {
    pub fn name(&self) -> &'static str {
        match self {
            EventPayload::BlockCreated { .. } => "block.created",
            EventPayload::BlockUpdated { .. } => "block.updated",
            EventPayload::BlockReparented { .. } => "block.reparented",
            EventPayload::BlockDeleted { .. } => "block.deleted",
            EventPayload::EdgeCreated { .. } => "edge.created",
            EventPayload::EdgeDeleted { .. } => "edge.deleted",
            EventPayload::WorkspaceUpdated { .. } => "workspace.updated",
            EventPayload::MemberChanged { .. } => "member.changed",
            EventPayload::SpendChanged { .. } => "spend.changed",
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
