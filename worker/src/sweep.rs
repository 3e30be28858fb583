//! The scheduled sweep: delivers outbox events no hub has confirmed (a crash between commit and
//! delivery), and prunes what is no longer needed.

use serde::Deserialize;
use worker::Env;

use crate::auth::now_ms;
use crate::params;
use crate::store::{Db, OutboxEvent};

/// Events younger than this are probably still being delivered by their writer.
const SETTLE_MS: i64 = 2_000;
/// Delivered events stay in the outbox this long (for hubs that restart from an empty log).
const RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;
const BATCH: i64 = 500;

#[derive(Deserialize)]
struct WorkspaceRow {
    workspace_id: String,
}

pub async fn run(env: &Env) {
    if let Err(error) = sweep(env).await {
        worker::console_error!("sweep failed: {error}");
    }
}

async fn sweep(env: &Env) -> Result<(), domain::api::ApiError> {
    let db = Db::from_env(env)?;
    let settled = now_ms() - SETTLE_MS;
    let workspaces: Vec<WorkspaceRow> = db
        .all(
            "SELECT DISTINCT workspace_id FROM events WHERE delivered_at IS NULL AND created_at < ?1 LIMIT 100",
            &params![settled],
        )
        .await?;
    for row in workspaces {
        let events: Vec<OutboxEvent> = db
            .all(
                "SELECT seq, body FROM events WHERE workspace_id = ?1 AND delivered_at IS NULL ORDER BY seq LIMIT ?2",
                &params![row.workspace_id.as_str(), BATCH],
            )
            .await?;
        if let Some(answer) = crate::hub::deliver(env, &row.workspace_id, &events).await {
            // Everything up to what the hub has broadcast is delivered.
            db.run(
                "UPDATE events SET delivered_at = ?1 WHERE workspace_id = ?2 AND seq <= ?3 AND delivered_at IS NULL",
                &params![now_ms(), row.workspace_id.as_str(), answer.last_seq],
            )
            .await?;
        }
    }
    db.run(
        "DELETE FROM events WHERE delivered_at IS NOT NULL AND created_at < ?1",
        &params![now_ms() - RETAIN_MS],
    )
    .await?;
    db.run(
        "DELETE FROM revoked_sessions WHERE expires_at < ?1",
        &params![now_ms() / 1000],
    )
    .await?;
    Ok(())
}
