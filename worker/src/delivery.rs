//! Delivering committed events to their workspace's hub, after the response.
//!
//! A command returns the events it recorded; the handler hands them here. Delivery runs in
//! `ctx.wait_until`, so nothing of it is on the response's path: the hub broadcasts, answers the last
//! seq it has broadcast, and the events up to it are marked delivered in the outbox. The sweep then
//! only redelivers what this missed (a crash between commit and delivery, an unreachable hub).

use worker::Env;
use worker_core::OutboxEvent;

use crate::http::RequestContext;
use crate::store::Db;

/// Delivers `events` (all of the request's workspace) once the response is on its way.
pub fn deliver_after_response(context: &RequestContext, events: Vec<OutboxEvent>) {
    if events.is_empty() || !context.deliver_events {
        return;
    }
    let Some(workspace) = &context.workspace else {
        return;
    };
    let env = context.env.clone();
    let workspace_id = workspace.workspace.id.to_string();
    context
        .execution
        .wait_until(async move { deliver_and_mark(&env, &workspace_id, &events).await });
}

/// Hands `events` to the hub and marks what it confirmed delivered. Never fails the caller: a lost
/// delivery is repaired by the hub's gap fill or by the sweep.
pub async fn deliver_and_mark(env: &Env, workspace_id: &str, events: &[OutboxEvent]) {
    let Some(answer) = crate::hub::deliver(env, workspace_id, events).await else {
        return;
    };
    let outcome = async {
        let db = Db::from_env(env)?;
        worker_core::delivery::mark_delivered(
            &db,
            workspace_id,
            answer.last_seq,
            crate::auth::now_ms(),
        )
        .await
    }
    .await;
    if let Err(error) = outcome {
        worker::console_error!("marking events of {workspace_id} delivered failed: {error}");
    }
}
