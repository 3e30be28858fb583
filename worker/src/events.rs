//! Recording workspace events in the outbox, in the same batch as the change they describe.

use domain::api::ApiError;
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{UserId, WorkspaceId};

use crate::params;
use crate::store::{GUARD, GuardedBatch};

/// Adds to `batch`: bump the workspace's sequence number, and insert the event with that number. The
/// event's JSON is built here with `seq: 0`; SQLite writes the real number into it.
pub fn record(
    batch: &mut GuardedBatch<'_>,
    workspace_id: &WorkspaceId,
    actor: Option<&UserId>,
    origin: Option<&str>,
    payload: EventPayload,
    now: i64,
) -> Result<(), ApiError> {
    let event_type = payload.name();
    let event = WorkspaceEvent {
        workspace_id: workspace_id.clone(),
        seq: 0,
        at: now,
        actor: actor.cloned(),
        origin: origin.map(str::to_owned),
        payload,
    };
    let body = serde_json::to_string(&event).map_err(crate::http::internal("event JSON"))?;
    batch.push(
        &format!("UPDATE workspaces SET seq = seq + 1 WHERE id = ?1 AND {GUARD}"),
        &params![workspace_id.as_str()],
    )?;
    batch.push_event(
        &format!(
            "INSERT INTO events (workspace_id, seq, type, body, created_at)
             SELECT id, seq, ?2, json_set(?3, '$.seq', seq), ?4 FROM workspaces WHERE id = ?1 AND {GUARD}
             RETURNING seq, body"
        ),
        &params![workspace_id.as_str(), event_type, body, now],
        workspace_id.as_str(),
    )?;
    Ok(())
}

/// [`record`] for a change made by the caller of a workspace route: the workspace, the actor and the
/// originating client come from the request.
pub fn record_change(
    context: &crate::http::RequestContext,
    batch: &mut GuardedBatch<'_>,
    payload: EventPayload,
    now: i64,
) -> Result<(), ApiError> {
    record(
        batch,
        &context.workspace().workspace.id,
        Some(&context.caller().user.id),
        context.client_id.as_deref(),
        payload,
        now,
    )
}
