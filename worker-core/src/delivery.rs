//! The outbox's bookkeeping: which events reached their hub, what the sweep redelivers, what it prunes.
//!
//! A writer delivers its events to the hub right after commit (inline) and, when the hub confirms,
//! marks them delivered; the sweep redelivers only what is still unmarked after
//! `domain::hub::SWEEP_SETTLE_MS` (a delivery lost to a crash or an unreachable hub). So in the normal
//! path every event reaches its hub once.

use domain::api::ApiError;
use domain::hub::SweepWindow;
use domain::ids::WorkspaceId;
use serde::Deserialize;

use crate::params;
use crate::store::{OutboxEvent, Statement, Store};

/// How many outbox rows one gap fill or one sweep of a workspace reads.
pub const OUTBOX_BATCH: i64 = 500;
/// How many bytes of event text one gap fill or one sweep of a workspace reads (at least one event,
/// however large): a hub filling a gap after a burst of large edits pages through them instead of
/// holding them all in memory.
pub const OUTBOX_BATCH_BYTES: i64 = 1024 * 1024;

/// Reads the first rows of `filter` (a `WHERE` over `events` with `?1` the workspace and `?2` a seq)
/// in seq order, at most [`OUTBOX_BATCH`] rows and [`OUTBOX_BATCH_BYTES`] bytes (always one row).
fn bounded_outbox_read(filter: &str) -> String {
    format!(
        "SELECT seq, body FROM ( \
           SELECT seq, body, length(CAST(body AS BLOB)) AS size, \
                  SUM(length(CAST(body AS BLOB))) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running \
           FROM events WHERE {filter} ORDER BY seq LIMIT ?3 \
         ) WHERE running <= ?4 OR running = size ORDER BY seq"
    )
}

/// How many workspaces one sweep visits; the next minute's sweep takes the rest.
pub const SWEEP_WORKSPACES: i64 = 100;

/// Marks the workspace's events up to `through_seq` delivered: the hub has broadcast them.
pub async fn mark_delivered<S: Store>(
    store: &S,
    workspace_id: &str,
    through_seq: i64,
    now: i64,
) -> Result<(), ApiError> {
    store
        .write(vec![Statement::new(
            "UPDATE events SET delivered_at = ?1 WHERE workspace_id = ?2 AND seq <= ?3 AND delivered_at IS NULL",
            &params![now, workspace_id, through_seq],
        )])
        .await?;
    Ok(())
}

/// The first events after `after_seq`, oldest first, one bounded page (a hub filling its gap reads
/// page after page).
pub async fn events_after<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    after_seq: i64,
) -> Result<Vec<OutboxEvent>, ApiError> {
    store
        .all(Statement::new(
            bounded_outbox_read("workspace_id = ?1 AND seq > ?2"),
            &params![
                workspace_id.as_str(),
                after_seq,
                OUTBOX_BATCH,
                OUTBOX_BATCH_BYTES
            ],
        ))
        .await
}

#[derive(Deserialize)]
struct WorkspaceRow {
    workspace_id: String,
}

/// Workspaces with an event that inline delivery missed (undelivered and older than the window).
pub async fn workspaces_with_missed_events<S: Store>(
    store: &S,
    window: SweepWindow,
) -> Result<Vec<String>, ApiError> {
    let rows: Vec<WorkspaceRow> = store
        .all(Statement::new(
            "SELECT DISTINCT workspace_id FROM events WHERE delivered_at IS NULL AND created_at < ?1 LIMIT ?2",
            &params![window.redeliver_created_before, SWEEP_WORKSPACES],
        ))
        .await?;
    Ok(rows.into_iter().map(|row| row.workspace_id).collect())
}

/// A workspace the sweep could not redeliver this time, and why; the next sweep tries it again.
#[derive(Debug)]
pub struct SweepFailure {
    pub workspace_id: String,
    pub error: ApiError,
}

/// Redelivers what inline delivery missed, one workspace at a time: `deliver` hands a workspace's
/// events to its hub and answers the last seq the hub broadcast, which is then marked delivered. A
/// workspace whose events cannot be read, delivered or marked is reported and left to the next
/// sweep; the others go on (one broken workspace must not stop redelivery, or the caller's
/// pruning, for everyone).
pub async fn redeliver_missed<S, D, F>(
    store: &S,
    window: SweepWindow,
    now: i64,
    mut deliver: D,
) -> Result<Vec<SweepFailure>, ApiError>
where
    S: Store,
    D: FnMut(String, Vec<OutboxEvent>) -> F,
    F: std::future::Future<Output = Result<i64, ApiError>>,
{
    let mut failures = Vec::new();
    for workspace_id in workspaces_with_missed_events(store, window).await? {
        let events = match undelivered_events(store, &workspace_id).await {
            Ok(events) => events,
            Err(error) => {
                failures.push(SweepFailure {
                    workspace_id,
                    error,
                });
                continue;
            }
        };
        let outcome = match deliver(workspace_id.clone(), events).await {
            Ok(last_seq) => mark_delivered(store, &workspace_id, last_seq, now).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            failures.push(SweepFailure {
                workspace_id,
                error,
            });
        }
    }
    Ok(failures)
}

/// A workspace's first undelivered events, oldest first, one bounded page.
pub async fn undelivered_events<S: Store>(
    store: &S,
    workspace_id: &str,
) -> Result<Vec<OutboxEvent>, ApiError> {
    store
        .all(Statement::new(
            bounded_outbox_read("workspace_id = ?1 AND seq > ?2 AND delivered_at IS NULL"),
            &params![workspace_id, 0_i64, OUTBOX_BATCH, OUTBOX_BATCH_BYTES],
        ))
        .await
}

/// Deletes delivered events older than the retention window.
pub async fn prune_delivered<S: Store>(store: &S, window: SweepWindow) -> Result<usize, ApiError> {
    let changed = store
        .write(vec![Statement::new(
            "DELETE FROM events WHERE delivered_at IS NOT NULL AND created_at < ?1",
            &params![window.prune_delivered_created_before],
        )])
        .await?;
    Ok(changed.into_iter().sum())
}
