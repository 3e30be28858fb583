//! Recording workspace events in the outbox, in the same plan as the change they describe.

use domain::api::ApiError;
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::BlockId;

use crate::context::{Committed, WriteContext};
use crate::params;
use crate::store::{GUARD, GuardedPlan, Store};

/// Adds to `plan`: bump the workspace's sequence number, and insert the event with that number. The
/// event's JSON is built here with `seq: 0`; SQLite writes the real number into it, so numbers are
/// assigned in commit order with no gaps.
pub fn record(
    plan: &mut GuardedPlan,
    context: &WriteContext,
    payload: EventPayload,
    now: i64,
) -> Result<(), ApiError> {
    record_event(plan, context, payload, now, None)
}

/// [`record`] for an event whose block's position the plan itself chooses (a block created
/// without one): SQLite writes the position of `block_id`, as the plan inserted it, into the
/// event's `data.block.position`.
fn record_event(
    plan: &mut GuardedPlan,
    context: &WriteContext,
    payload: EventPayload,
    now: i64,
    position_of: Option<&BlockId>,
) -> Result<(), ApiError> {
    let event_type = payload.name();
    let event = WorkspaceEvent {
        workspace_id: context.workspace_id.clone(),
        seq: 0,
        at: now,
        actor: Some(context.actor.clone()),
        origin: context.origin.clone(),
        payload,
    };
    let body = serde_json::to_string(&event).map_err(|_| ApiError::internal())?;
    let workspace = context.workspace_id.as_str();
    plan.push(
        &format!("UPDATE workspaces SET seq = seq + 1 WHERE id = ?1 AND {GUARD}"),
        &params![workspace],
    );
    match position_of {
        None => plan.push_event(
            &format!(
                "INSERT INTO events (workspace_id, seq, type, body, created_at)
                 SELECT id, seq, ?2, json_set(?3, '$.seq', seq), ?4 FROM workspaces WHERE id = ?1 AND {GUARD}
                 RETURNING seq, body"
            ),
            &params![workspace, event_type, body, now],
        ),
        Some(block_id) => plan.push_event(
            &format!(
                "INSERT INTO events (workspace_id, seq, type, body, created_at)
                 SELECT w.id, w.seq, ?2,
                        json_set(?3, '$.seq', w.seq, '$.data.block.position', json_object('x', b.x, 'y', b.y)), ?4
                 FROM workspaces w JOIN blocks b ON b.workspace_id = w.id AND b.id = ?5
                 WHERE w.id = ?1 AND {GUARD}
                 RETURNING seq, body"
            ),
            &params![workspace, event_type, body, now, block_id.as_str()],
        ),
    }
    Ok(())
}

/// [`commit`] for a created block whose position the plan chooses: the event carries the
/// position the plan wrote for `block_id`.
pub async fn commit_with_position_of<S: Store, T>(
    store: &S,
    mut plan: GuardedPlan,
    context: &WriteContext,
    payload: EventPayload,
    now: i64,
    block_id: &BlockId,
    value: T,
) -> Result<Option<Committed<T>>, ApiError> {
    record_event(&mut plan, context, payload, now, Some(block_id))?;
    let outcome = store.execute(plan).await?;
    Ok(outcome.applied.then(|| Committed {
        value,
        events: outcome.events,
    }))
}

/// Records `payload` in `plan`, executes the plan, and hands back `value` with the events it
/// recorded — or `None` when the guard failed and nothing was written (the caller decides: retry
/// from a fresh read, or say why).
pub async fn commit<S: Store, T>(
    store: &S,
    mut plan: GuardedPlan,
    context: &WriteContext,
    payload: EventPayload,
    now: i64,
    value: T,
) -> Result<Option<Committed<T>>, ApiError> {
    record(&mut plan, context, payload, now)?;
    let outcome = store.execute(plan).await?;
    Ok(outcome.applied.then(|| Committed {
        value,
        events: outcome.events,
    }))
}
