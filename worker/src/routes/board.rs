//! The board: blocks and dependency edges.
//!
//! Each write loads what its rules need, validates it in `domain`, and commits one guarded batch (the
//! change, the workspace's sequence bump and the event). The guard re-checks, inside the transaction,
//! exactly the state the validation relied on; when it no longer holds, the write is retried from a
//! fresh read, so two racing writers can never both win against the same state.

use domain::api::ApiError;
use domain::api::ErrorCode;
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest, missing_block,
    rule_error, stale_revision,
};
use domain::board::{
    Block, BlockStatus, BoardBlock, BoardEdge, BoardIndex, Edge, Level, Position, RuleViolation,
    check_new_edge, check_parent_level, default_size,
};
use domain::event::EventPayload;
use domain::ids::{BlockId, EdgeId, WorkspaceId};
use serde::Deserialize;

use crate::auth::now_ms;
use crate::events;
use crate::http::{HandlerResult, RequestContext, internal, json, no_content};
use crate::ids::random_id_bytes;
use crate::params;
use crate::store::{GUARD, GuardedBatch, Param};
use worker::js_sys;
use worker::wasm_bindgen::JsValue;

/// How often a write is retried when the state it was validated against changed under it.
const MAX_ATTEMPTS: usize = 5;

/// One block as JSON, built by SQLite in exactly the shape of `domain::board::Block`, so a snapshot of
/// thousands of blocks is serialized once, in the database, with no per-row conversion in wasm.
const BLOCK_JSON: &str = "json_object(
    'id', id, 'level', level, 'parentId', parent_id, 'title', title, 'description', description,
    'requirements', requirements, 'status', status,
    'position', json_object('x', x, 'y', y), 'size', json_object('width', width, 'height', height),
    'repoUrl', repo_url, 'archived', json(CASE archived WHEN 1 THEN 'true' ELSE 'false' END),
    'rev', rev, 'createdAt', created_at, 'updatedAt', updated_at)";

/// The snapshot's row for a block (`domain::board::BoardBlockRow`), for rows whose stored
/// `board_json` is missing; the worker stores the same row, made by serde, with every write.
const BOARD_BLOCK_JSON: &str = "json_array(
    id, level, parent_id, title, status, x, y, width, height, repo_url,
    json(CASE archived WHEN 1 THEN 'true' ELSE 'false' END), rev, updated_at)";

/// The snapshot's row for an edge (`domain::board::BoardEdge`).
const EDGE_JSON: &str = "json_array(id, from_id, to_id, created_at)";

fn conflict_busy() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "The board changed while this change was being applied; retry it.",
    )
}

fn workspace_id(context: &RequestContext) -> &WorkspaceId {
    &context.workspace().workspace.id
}

fn block_id_param(context: &RequestContext) -> Result<BlockId, ApiError> {
    BlockId::parse(context.param("blockId")).map_err(|_| ApiError::not_found("This block"))
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

#[derive(Deserialize)]
struct SnapshotHead {
    seq: i64,
}

/// `GET /workspaces/:id/board`: blocks, edges and `seq`, read in one transaction so they agree.
pub async fn snapshot(context: &RequestContext) -> HandlerResult {
    let db = &context.db;
    let id = workspace_id(context).as_str();
    // Rows are aggregated in chunks (by rowid) to stay far below D1's per-value size limit.
    let blocks_sql = format!(
        "SELECT group_concat(COALESCE(board_json, {BOARD_BLOCK_JSON}), ',') AS json FROM blocks WHERE workspace_id = ?1 GROUP BY rowid >> 10"
    );
    let edges_sql = format!(
        "SELECT group_concat(COALESCE(board_json, {EDGE_JSON}), ',') AS json FROM edges WHERE workspace_id = ?1 GROUP BY rowid >> 11"
    );
    let started = worker::Date::now().as_millis();
    let results = db
        .batch(vec![
            db.statement("SELECT seq FROM workspaces WHERE id = ?1", &params![id])?,
            db.statement(&blocks_sql, &params![id])?,
            db.statement(&edges_sql, &params![id])?,
        ])
        .await?;
    let queried = worker::Date::now().as_millis();
    let seq = results[0]
        .results::<SnapshotHead>()
        .map_err(internal("snapshot seq"))?
        .first()
        .map(|head| head.seq)
        .ok_or_else(|| ApiError::not_found("This workspace"))?;
    let d1_ms: f64 = results
        .iter()
        .filter_map(|result| result.meta().ok().flatten()?.duration)
        .sum();
    let workspace = serde_json::to_string(&context.workspace().workspace)
        .map_err(internal("workspace JSON"))?;

    // The chunks stay JS strings: the body is assembled as a Blob of them, so megabytes of JSON never
    // cross into wasm memory and back.
    let parts = js_sys::Array::new();
    parts.push(&JsValue::from_str(&format!(
        r#"{{"workspace":{workspace},"blocks":["#
    )));
    push_chunks(&parts, &results[1])?;
    parts.push(&JsValue::from_str(r#"],"edges":["#));
    push_chunks(&parts, &results[2])?;
    parts.push(&JsValue::from_str(&format!(r#"],"seq":{seq}}}"#)));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(internal("snapshot blob"))?;
    let init = web_sys::ResponseInit::new();
    init.set_status(200);
    let headers = web_sys::Headers::new().map_err(internal("headers"))?;
    let _ = headers.set("content-type", "application/json");
    // How long D1 spent executing the queries, and the whole read, for whoever profiles the board.
    let _ = headers.set(
        "server-timing",
        &format!("d1;dur={d1_ms:.1}, read;dur={}", queried - started),
    );
    init.set_headers(&headers);
    let response = web_sys::Response::new_with_opt_blob_and_init(Some(&blob), &init)
        .map_err(internal("snapshot response"))?;
    Ok(worker::Response::from(response))
}

#[derive(Deserialize)]
struct JsChunk {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    json: JsValue,
}

/// Appends a query's JSON chunks to `parts`, comma-separated, without copying them into wasm.
fn push_chunks(parts: &js_sys::Array, result: &worker::D1Result) -> Result<(), ApiError> {
    let chunks = result
        .results::<JsChunk>()
        .map_err(internal("snapshot rows"))?;
    for (index, chunk) in chunks.into_iter().enumerate() {
        if index > 0 {
            parts.push(&JsValue::from_str(","));
        }
        parts.push(&chunk.json);
    }
    Ok(())
}

async fn load_block(
    context: &RequestContext,
    block_id: &BlockId,
) -> Result<Option<Block>, ApiError> {
    let sql =
        format!("SELECT {BLOCK_JSON} AS json FROM blocks WHERE workspace_id = ?1 AND id = ?2");
    let row: Option<JsonRow> = context
        .db
        .first(
            &sql,
            &params![workspace_id(context).as_str(), block_id.as_str()],
        )
        .await?;
    row.map(|row| serde_json::from_str::<Block>(&row.json).map_err(internal("stored block")))
        .transpose()
}

/// `GET /workspaces/:id/blocks/:blockId`.
pub async fn get_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let block = load_block(context, &block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    json(200, &block)
}

#[derive(Deserialize)]
struct LevelRow {
    level: String,
}

/// `POST /workspaces/:id/blocks`.
pub async fn create_block(context: &RequestContext) -> HandlerResult {
    let request: CreateBlockRequest = context.json()?;
    request.validate()?;
    if request.repo_url.is_some() && request.level != Level::Frame {
        return Err(rule_error(&RuleViolation::RepoOnNonFrame));
    }
    let workspace = workspace_id(context).as_str();
    for _ in 0..MAX_ATTEMPTS {
        let parent_level = match &request.parent_id {
            None => None,
            Some(parent_id) => {
                let row: Option<LevelRow> = context
                    .db
                    .first(
                        "SELECT level FROM blocks WHERE workspace_id = ?1 AND id = ?2",
                        &params![workspace, parent_id.as_str()],
                    )
                    .await?;
                let row = row.ok_or_else(|| missing_block("parentId"))?;
                Some(Level::parse(&row.level).ok_or_else(ApiError::internal)?)
            }
        };
        check_parent_level(request.level, parent_level)
            .map_err(|violation| rule_error(&violation))?;

        let now = now_ms();
        let block = Block {
            id: BlockId::from_random(random_id_bytes()),
            level: request.level,
            parent_id: request.parent_id.clone(),
            title: request.title.trim().to_owned(),
            description: request.description.clone().unwrap_or_default(),
            requirements: request.requirements.clone().unwrap_or_default(),
            status: request.status.unwrap_or(BlockStatus::Planned),
            position: request.position.unwrap_or(Position { x: 0.0, y: 0.0 }),
            size: request.size.unwrap_or_else(|| default_size(request.level)),
            repo_url: request.repo_url.clone(),
            archived: false,
            rev: 1,
            created_at: now,
            updated_at: now,
        };
        // The parent must still exist when the block is inserted (levels never change).
        let precondition = "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)
            AND (?2 IS NULL OR EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2))";
        let parent = block.parent_id.as_ref().map(BlockId::as_str);
        let mut batch = GuardedBatch::new(&context.db, precondition, &params![workspace, parent])?;
        batch.push(
            &format!(
                "INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status,
                                     x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, 1, ?14, ?14, ?15 WHERE {GUARD}"
            ),
            &block_params(workspace, &block),
        )?;
        events::record_change(
            context,
            &mut batch,
            EventPayload::BlockCreated {
                block: block.clone(),
            },
            now,
        )?;
        if batch.commit().await? {
            return json(201, &block);
        }
    }
    Err(conflict_busy())
}

fn block_params(workspace: &str, block: &Block) -> [Param; 15] {
    params![
        workspace,
        block.id.as_str(),
        block.level.as_str(),
        block.parent_id.as_ref().map(BlockId::as_str),
        block.title.as_str(),
        block.description.as_str(),
        block.requirements.as_str(),
        block.status.as_str(),
        block.position.x,
        block.position.y,
        block.size.width,
        block.size.height,
        block.repo_url.clone(),
        block.created_at,
        board_json(block)
    ]
}

/// What the snapshot sends for `block`, stored with every write (migration 0003).
fn board_json(block: &Block) -> String {
    serde_json::to_string(&BoardBlock::from(block)).expect("a block serializes")
}

/// `PATCH /workspaces/:id/blocks/:blockId`.
pub async fn update_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let request: UpdateBlockRequest = context.json()?;
    request.validate()?;
    let workspace = workspace_id(context).as_str();
    let current = load_block(context, &block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    if current.rev != request.rev {
        return Err(stale_revision(current, request.rev));
    }
    if matches!(request.repo_url, Some(Some(_))) && current.level != Level::Frame {
        return Err(rule_error(&RuleViolation::RepoOnNonFrame));
    }
    let now = now_ms();
    let next = request.apply(&current, now);
    let mut batch = GuardedBatch::new(
        &context.db,
        "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2 AND rev = ?3)",
        &params![workspace, block_id.as_str(), current.rev],
    )?;
    batch.push(
        &format!(
            "UPDATE blocks SET title = ?3, description = ?4, requirements = ?5, status = ?6, x = ?7, y = ?8,
                width = ?9, height = ?10, repo_url = ?11, archived = ?12, rev = ?13, updated_at = ?14,
                board_json = ?15
             WHERE workspace_id = ?1 AND id = ?2 AND {GUARD}"
        ),
        &params![
            workspace,
            block_id.as_str(),
            next.title.as_str(),
            next.description.as_str(),
            next.requirements.as_str(),
            next.status.as_str(),
            next.position.x,
            next.position.y,
            next.size.width,
            next.size.height,
            next.repo_url.clone(),
            next.archived,
            next.rev,
            now,
            board_json(&next)
        ],
    )?;
    events::record_change(
        context,
        &mut batch,
        EventPayload::BlockUpdated {
            block: next.clone(),
        },
        now,
    )?;
    if batch.commit().await? {
        return json(200, &next);
    }
    // Another writer won the race: report the block as it is now.
    match load_block(context, &block_id).await? {
        Some(current) => Err(stale_revision(current, request.rev)),
        None => Err(ApiError::not_found("This block")),
    }
}

#[derive(Deserialize)]
struct AncestryRow {
    id: String,
    level: String,
    parent_id: Option<String>,
    rev: i64,
}

/// A block of an ancestry chain, with what the structural rules and their guards need.
struct AncestryNode {
    id: BlockId,
    level: Level,
    parent_id: Option<BlockId>,
    rev: i64,
}

/// `start` and its ancestors, nearest first, in one query (empty when `start` does not exist).
async fn load_ancestry(
    context: &RequestContext,
    start: &BlockId,
) -> Result<Vec<AncestryNode>, ApiError> {
    let rows: Vec<AncestryRow> = context
        .db
        .all(
            "WITH RECURSIVE chain(id, level, parent_id, rev, depth) AS (
                 SELECT id, level, parent_id, rev, 0 FROM blocks WHERE workspace_id = ?1 AND id = ?2
                 UNION ALL
                 SELECT b.id, b.level, b.parent_id, b.rev, chain.depth + 1
                 FROM blocks b JOIN chain ON b.id = chain.parent_id
                 WHERE b.workspace_id = ?1 AND chain.depth < 64)
             SELECT id, level, parent_id, rev FROM chain ORDER BY depth",
            &params![workspace_id(context).as_str(), start.as_str()],
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(AncestryNode {
                id: BlockId::parse(&row.id).map_err(internal("stored block id"))?,
                level: Level::parse(&row.level).ok_or_else(ApiError::internal)?,
                parent_id: row
                    .parent_id
                    .as_deref()
                    .map(BlockId::parse)
                    .transpose()
                    .map_err(internal("stored parent id"))?,
                rev: row.rev,
            })
        })
        .collect()
}

/// `POST /workspaces/:id/blocks/:blockId/reparent`.
pub async fn reparent_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let request: ReparentRequest = context.json()?;
    request.validate()?;
    let workspace = workspace_id(context).as_str();
    for _ in 0..MAX_ATTEMPTS {
        let current = load_block(context, &block_id)
            .await?
            .ok_or_else(|| ApiError::not_found("This block"))?;
        if current.rev != request.rev {
            return Err(stale_revision(current, request.rev));
        }
        let chain = match &request.parent_id {
            None => Vec::new(),
            Some(parent) => {
                let chain = load_ancestry(context, parent).await?;
                if chain.is_empty() {
                    return Err(missing_block("parentId"));
                }
                chain
            }
        };
        // What the rules need: the block, and the new parent with its ancestors (a cycle would pass
        // through the block itself).
        let mut nodes = vec![(block_id.clone(), current.level, current.parent_id.clone())];
        nodes.extend(
            chain
                .iter()
                .map(|node| (node.id.clone(), node.level, node.parent_id.clone())),
        );
        BoardIndex::new(nodes)
            .check_reparent(&block_id, request.parent_id.as_ref())
            .map_err(|violation| rule_error(&violation))?;

        // The move is valid as long as the block and every ancestor of its new parent are unchanged:
        // any move that could now make a cycle would have changed one of their revs.
        let mut guarded: Vec<(&BlockId, i64)> = vec![(&block_id, current.rev)];
        guarded.extend(chain.iter().map(|node| (&node.id, node.rev)));
        if guarded.len() > 45 {
            return Err(ApiError::rule_violated(
                "nesting_depth",
                "The board is nested too deeply for this move.".to_owned(),
            ));
        }
        let mut precondition_params = vec![Param::from(workspace)];
        let clauses: Vec<String> = guarded
            .iter()
            .map(|(id, rev)| {
                precondition_params.push(Param::from(id.as_str()));
                precondition_params.push(Param::from(*rev));
                let n = precondition_params.len();
                format!("(id = ?{} AND rev = ?{n})", n - 1)
            })
            .collect();
        let precondition = format!(
            "(SELECT COUNT(*) FROM blocks WHERE workspace_id = ?1 AND ({})) = {}",
            clauses.join(" OR "),
            guarded.len()
        );

        let mut next = current.clone();
        let now = now_ms();
        next.parent_id = request.parent_id.clone();
        if let Some(position) = request.position {
            next.position = position;
        }
        next.rev = current.rev + 1;
        next.updated_at = now;
        let mut batch = GuardedBatch::new(&context.db, &precondition, &precondition_params)?;
        batch.push(
            &format!(
                "UPDATE blocks SET parent_id = ?3, x = ?4, y = ?5, rev = ?6, updated_at = ?7, board_json = ?8
                 WHERE workspace_id = ?1 AND id = ?2 AND {GUARD}"
            ),
            &params![
                workspace,
                block_id.as_str(),
                next.parent_id.as_ref().map(BlockId::as_str),
                next.position.x,
                next.position.y,
                next.rev,
                now,
                board_json(&next)
            ],
        )?;
        events::record_change(
            context,
            &mut batch,
            EventPayload::BlockReparented {
                block: next.clone(),
            },
            now,
        )?;
        if batch.commit().await? {
            return json(200, &next);
        }
    }
    Err(conflict_busy())
}

#[derive(Deserialize)]
struct EdgeRow {
    from_id: String,
    to_id: String,
}

/// The subtree of `?2` in workspace `?1`, for use in SQL.
const SUBTREE_CTE: &str = "WITH RECURSIVE subtree(id) AS (
    SELECT id FROM blocks WHERE workspace_id = ?1 AND id = ?2
    UNION SELECT b.id FROM blocks b JOIN subtree s ON b.parent_id = s.id WHERE b.workspace_id = ?1)";

/// `DELETE /workspaces/:id/blocks/:blockId`: the block, its subtree and their edges, in one batch.
pub async fn delete_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let workspace = workspace_id(context).as_str();
    for _ in 0..MAX_ATTEMPTS {
        // The subtree and the edges touching it, read in one transaction.
        let db = &context.db;
        let results = db
            .batch(vec![
                db.statement(
                    &format!("{SUBTREE_CTE} SELECT id FROM subtree"),
                    &params![workspace, block_id.as_str()],
                )?,
                db.statement(
                    &format!(
                        "{SUBTREE_CTE} SELECT id FROM edges WHERE workspace_id = ?1
                         AND (from_id IN subtree OR to_id IN subtree)"
                    ),
                    &params![workspace, block_id.as_str()],
                )?,
            ])
            .await?;
        let subtree: Vec<BlockId> = ids_of(&results[0], BlockId::parse)?;
        if subtree.is_empty() {
            return Err(ApiError::not_found("This block"));
        }
        let deleted_edges: Vec<EdgeId> = ids_of(&results[1], EdgeId::parse)?;
        // The event lists what is deleted; the guard checks, in the transaction, that this is still
        // exactly the subtree and its edges (a concurrent child or edge would change the counts).
        let precondition = format!(
            "({SUBTREE_CTE} SELECT COUNT(*) FROM subtree) = ?3
             AND ({SUBTREE_CTE} SELECT COUNT(*) FROM edges WHERE workspace_id = ?1
                  AND (from_id IN subtree OR to_id IN subtree)) = ?4"
        );
        let mut batch = GuardedBatch::new(
            &context.db,
            &precondition,
            &params![
                workspace,
                block_id.as_str(),
                subtree.len() as i64,
                deleted_edges.len() as i64
            ],
        )?;
        batch.push(
            &format!(
                "{SUBTREE_CTE} DELETE FROM edges WHERE workspace_id = ?1
                 AND (from_id IN subtree OR to_id IN subtree) AND {GUARD}"
            ),
            &params![workspace, block_id.as_str()],
        )?;
        batch.push(
            &format!("{SUBTREE_CTE} DELETE FROM blocks WHERE workspace_id = ?1 AND id IN subtree AND {GUARD}"),
            &params![workspace, block_id.as_str()],
        )?;
        if !deleted_edges.is_empty() {
            batch.push(
                &format!(
                    "UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"
                ),
                &params![workspace],
            )?;
        }
        let payload = EventPayload::BlockDeleted {
            block_id: block_id.clone(),
            deleted_block_ids: subtree.clone(),
            deleted_edge_ids: deleted_edges.clone(),
        };
        events::record_change(context, &mut batch, payload, now_ms())?;
        if batch.commit().await? {
            return no_content();
        }
    }
    Err(conflict_busy())
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

/// The `id` column of a result, parsed.
fn ids_of<T>(
    result: &worker::D1Result,
    parse: fn(&str) -> Result<T, domain::ids::IdError>,
) -> Result<Vec<T>, ApiError> {
    let rows: Vec<IdRow> = result.results().map_err(internal("id rows"))?;
    rows.iter()
        .map(|row| parse(&row.id).map_err(internal("stored id")))
        .collect()
}

#[derive(Deserialize)]
struct EdgesHead {
    edges_rev: i64,
}

/// `POST /workspaces/:id/edges`.
pub async fn create_edge(context: &RequestContext) -> HandlerResult {
    let request: CreateEdgeRequest = context.json()?;
    let workspace = workspace_id(context).as_str();
    for _ in 0..MAX_ATTEMPTS {
        let db = &context.db;
        let results = db
            .batch(vec![
                db.statement(
                    "SELECT edges_rev FROM workspaces WHERE id = ?1",
                    &params![workspace],
                )?,
                db.statement(
                    "SELECT from_id, to_id FROM edges WHERE workspace_id = ?1",
                    &params![workspace],
                )?,
                db.statement(
                    "SELECT id FROM blocks WHERE workspace_id = ?1 AND id IN (?2, ?3)",
                    &params![workspace, request.from.as_str(), request.to.as_str()],
                )?,
            ])
            .await?;
        let edges_rev = results[0]
            .results::<EdgesHead>()
            .map_err(internal("edges_rev"))?
            .first()
            .map(|head| head.edges_rev)
            .ok_or_else(|| ApiError::not_found("This workspace"))?;
        let edges: Vec<EdgeRow> = results[1].results().map_err(internal("edges"))?;
        let found: Vec<IdRow> = results[2].results().map_err(internal("edge ends"))?;
        for (field, end) in [("from", &request.from), ("to", &request.to)] {
            if !found.iter().any(|row| row.id == end.as_str()) {
                return Err(missing_block(field));
            }
        }
        let pairs: Vec<(BlockId, BlockId)> = edges
            .iter()
            .filter_map(|edge| {
                Some((
                    BlockId::parse(&edge.from_id).ok()?,
                    BlockId::parse(&edge.to_id).ok()?,
                ))
            })
            .collect();
        check_new_edge(
            pairs.iter().map(|(from, to)| (from, to)),
            &request.from,
            &request.to,
        )
        .map_err(|violation| rule_error(&violation))?;

        let now = now_ms();
        let edge = Edge {
            id: EdgeId::from_random(random_id_bytes()),
            from: request.from.clone(),
            to: request.to.clone(),
            created_at: now,
        };
        // Valid against this version of the edge set, with both ends still present.
        let precondition = "(SELECT edges_rev FROM workspaces WHERE id = ?1) = ?2
            AND (SELECT COUNT(*) FROM blocks WHERE workspace_id = ?1 AND id IN (?3, ?4)) = 2";
        let mut batch = GuardedBatch::new(
            db,
            precondition,
            &params![workspace, edges_rev, edge.from.as_str(), edge.to.as_str()],
        )?;
        batch.push(
            &format!(
                "INSERT INTO edges (workspace_id, id, from_id, to_id, created_at, board_json)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE {GUARD}"
            ),
            &params![
                workspace,
                edge.id.as_str(),
                edge.from.as_str(),
                edge.to.as_str(),
                now,
                serde_json::to_string(&BoardEdge::from(&edge)).expect("an edge serializes")
            ],
        )?;
        batch.push(
            &format!("UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"),
            &params![workspace],
        )?;
        events::record_change(
            context,
            &mut batch,
            EventPayload::EdgeCreated { edge: edge.clone() },
            now,
        )?;
        if batch.commit().await? {
            return json(201, &edge);
        }
    }
    Err(conflict_busy())
}

/// `DELETE /workspaces/:id/edges/:edgeId`.
pub async fn delete_edge(context: &RequestContext) -> HandlerResult {
    let not_found = || ApiError::not_found("This edge");
    let edge_id = EdgeId::parse(context.param("edgeId")).map_err(|_| not_found())?;
    let workspace = workspace_id(context).as_str();
    let mut batch = GuardedBatch::new(
        &context.db,
        "EXISTS (SELECT 1 FROM edges WHERE workspace_id = ?1 AND id = ?2)",
        &params![workspace, edge_id.as_str()],
    )?;
    batch.push(
        &format!("DELETE FROM edges WHERE workspace_id = ?1 AND id = ?2 AND {GUARD}"),
        &params![workspace, edge_id.as_str()],
    )?;
    batch.push(
        &format!("UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"),
        &params![workspace],
    )?;
    events::record_change(
        context,
        &mut batch,
        EventPayload::EdgeDeleted { edge_id },
        now_ms(),
    )?;
    if !batch.commit().await? {
        return Err(not_found());
    }
    no_content()
}
