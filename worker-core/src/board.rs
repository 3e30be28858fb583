//! Board commands: blocks and dependency edges.
//!
//! Each command loads what its rules need, asks `domain`, and commits one guarded plan (the change, the
//! sequence bump and the event). The guard re-checks, inside the transaction, exactly the state the
//! decision relied on; when it no longer holds the command starts again from a fresh read (at most
//! [`MAX_ATTEMPTS`] times), so two racing writers can never both win against the same state.

use domain::api::ApiError;
use domain::api::ErrorCode;
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest, missing_block,
    rule_error, stale_revision,
};
use domain::board::placement::append_rule;
use domain::board::{
    Block, BlockChange, BoardBlock, BoardEdge, BoardIndex, Edge, Level, MAX_NESTING_DEPTH,
    check_nesting_depth, check_new_edge, check_parent_level, check_reparent_guard_size,
};
use domain::event::EventPayload;
use domain::ids::{BlockId, EdgeId, WorkspaceId};
use domain::limits::QuotaKind;
use serde::Deserialize;

use crate::context::{Committed, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, Param, Rows, Statement, Store};

/// How often a command starts again when the state it was validated against changed under it. Five
/// lost races in a row means the block is contended far beyond what a board sees; the caller is asked
/// to retry instead of the request spinning.
pub const MAX_ATTEMPTS: usize = 5;

/// One block as JSON, built by SQLite in exactly the shape of `domain::board::Block`.
pub const BLOCK_JSON: &str = "json_object(
    'id', id, 'level', level, 'parentId', parent_id, 'title', title, 'description', description,
    'requirements', requirements, 'status', status,
    'position', json_object('x', x, 'y', y), 'size', json_object('width', width, 'height', height),
    'repoUrl', repo_url, 'modelId', model_id, 'archived', json(CASE archived WHEN 1 THEN 'true' ELSE 'false' END),
    'rev', rev, 'createdAt', created_at, 'updatedAt', updated_at)";

/// The snapshot's row for a block (`domain::board::BoardBlockRow`), for rows whose stored
/// `board_json` is missing; every write stores the same row, made by serde.
pub const BOARD_BLOCK_JSON: &str = "json_array(
    id, level, parent_id, title, status, x, y, width, height, repo_url,
    json(CASE archived WHEN 1 THEN 'true' ELSE 'false' END), rev, updated_at)";

/// The snapshot's row for an edge (`domain::board::BoardEdge`).
pub const EDGE_JSON: &str = "json_array(id, from_id, to_id, created_at)";

/// The three reads of a board snapshot, to run in one transaction: the workspace's `seq`, then the
/// blocks and the edges as comma-joined chunks of JSON rows (`json`). Rows are aggregated in chunks
/// (by rowid) to stay far below D1's per-value size limit.
pub fn snapshot_statements(workspace_id: &WorkspaceId) -> [Statement; 3] {
    let id = workspace_id.as_str();
    [
        Statement::new("SELECT seq FROM workspaces WHERE id = ?1", &params![id]),
        Statement::new(
            format!(
                "SELECT group_concat(COALESCE(board_json, {BOARD_BLOCK_JSON}), ',') AS json FROM blocks WHERE workspace_id = ?1 GROUP BY rowid >> 10"
            ),
            &params![id],
        ),
        Statement::new(
            format!(
                "SELECT group_concat(COALESCE(board_json, {EDGE_JSON}), ',') AS json FROM edges WHERE workspace_id = ?1 GROUP BY rowid >> 11"
            ),
            &params![id],
        ),
    ]
}

/// A row of the snapshot's `SELECT seq`.
#[derive(Deserialize)]
pub struct SeqRow {
    pub seq: i64,
}

/// A chunk of the snapshot's comma-joined JSON rows.
#[derive(Deserialize)]
pub struct JsonChunk {
    pub json: String,
}

/// The board as of its `seq`: blocks, edges and the sequence number, read in one transaction. (The
/// worker streams the same statements' chunks straight into its response instead.)
pub async fn snapshot<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
) -> Result<(Vec<BoardBlock>, Vec<BoardEdge>, i64), ApiError> {
    let mut results = store
        .read(Vec::from(snapshot_statements(workspace_id)))
        .await?;
    let edges = results.pop().ok_or_else(ApiError::internal)?;
    let blocks = results.pop().ok_or_else(ApiError::internal)?;
    let head = results.pop().ok_or_else(ApiError::internal)?;
    let seq = head
        .decode::<SeqRow>()?
        .first()
        .map(|row| row.seq)
        .ok_or_else(|| ApiError::not_found("This workspace"))?;
    let parse = |chunks: Vec<JsonChunk>| -> Result<String, ApiError> {
        let joined: Vec<String> = chunks.into_iter().map(|chunk| chunk.json).collect();
        Ok(format!("[{}]", joined.join(",")))
    };
    let blocks: Vec<BoardBlock> =
        serde_json::from_str(&parse(blocks.decode()?)?).map_err(|_| ApiError::internal())?;
    let edges: Vec<BoardEdge> =
        serde_json::from_str(&parse(edges.decode()?)?).map_err(|_| ApiError::internal())?;
    Ok((blocks, edges, seq))
}

pub(crate) fn conflict_busy() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "The board changed while this change was being applied; retry it.",
    )
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

/// What the snapshot sends for `block`, stored with every write (migration 0003).
fn board_json(block: &Block) -> String {
    serde_json::to_string(&BoardBlock::from(block)).expect("a block serializes")
}

/// A block of the workspace, if it exists.
pub async fn get_block<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
) -> Result<Option<Block>, ApiError> {
    let row: Option<JsonRow> = store
        .first(Statement::new(
            format!("SELECT {BLOCK_JSON} AS json FROM blocks WHERE workspace_id = ?1 AND id = ?2"),
            &params![workspace_id.as_str(), block_id.as_str()],
        ))
        .await?;
    row.map(|row| serde_json::from_str::<Block>(&row.json).map_err(|_| ApiError::internal()))
        .transpose()
}

/// The INSERT of a block created without a position: SQLite places it by
/// `domain::board::placement::append_slot` inside the write, from three indexed lookups of its
/// siblings (the last in reading order, the lowest bottom, whether the slot beside the last is
/// free), so no read of the siblings precedes the write. `block_params` bind ?1–?15 (?9 and ?10,
/// the position, unused); ?16–?18 are the rule's gap, top and top-level right edge
/// (`domain::board::placement::AppendRule`). The stored snapshot row gets the chosen x and y
/// (`BoardBlockRow` elements 5 and 6).
const INSERT_APPENDED_BLOCK: &str = "INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status,
                         x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json)
     WITH siblings AS (
            SELECT x, y, width, height FROM blocks
            WHERE workspace_id = ?1 AND parent_id IS ?4 AND archived = 0),
          last AS (SELECT x, y, width FROM siblings ORDER BY y DESC, x DESC LIMIT 1),
          beside AS (SELECT last.x + last.width + ?16 AS x, last.y AS y FROM last),
          choice AS (
            SELECT 0 AS rank, beside.x AS x, beside.y AS y FROM beside
            WHERE beside.x + ?11 + ?16 <= COALESCE(
                    (SELECT width FROM blocks WHERE workspace_id = ?1 AND id = ?4 AND ?4 IS NOT NULL), ?18)
              AND NOT EXISTS (SELECT 1 FROM siblings s
                              WHERE beside.x < s.x + s.width AND s.x < beside.x + ?11
                                AND beside.y < s.y + s.height AND s.y < beside.y + ?12)
            UNION ALL
            SELECT 1, ?16, CASE WHEN EXISTS (SELECT 1 FROM last)
                                THEN MAX((SELECT MAX(y + height) FROM siblings) + ?16, ?17)
                                ELSE ?17 END),
          slot AS (SELECT x, y FROM choice ORDER BY rank LIMIT 1)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, slot.x, slot.y, ?11, ?12, ?13, 0, 1, ?14, ?14,
            json_set(?15, '$[5]', slot.x, '$[6]', slot.y)
     FROM slot WHERE {guard}";

/// The block a `block.created` event carries (with the position the store chose for it).
fn created_block(events: &[crate::store::OutboxEvent]) -> Option<Block> {
    let event: domain::event::WorkspaceEvent = serde_json::from_str(&events.first()?.body).ok()?;
    match event.payload {
        EventPayload::BlockCreated { block } => Some(block),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ParentCheckRow {
    workspace_exists: i64,
    block_count: i64,
    parent_level: Option<String>,
    parent_chain_length: i64,
}

/// The length of the chain of block `?2` in workspace `?1` (it and its ancestors), counting no further
/// than `?5` (the depth bound: a longer chain is refused the same).
const PARENT_CHAIN_LENGTH: &str = "(WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2
        UNION ALL
        SELECT b.id, b.parent_id, c.depth + 1 FROM blocks b JOIN chain c ON b.id = c.parent_id
        WHERE b.workspace_id = ?1 AND c.depth < ?5)
      SELECT COUNT(*) FROM chain)";

/// Creates a block. The happy path is one plan and no read: the guard itself checks that the parent
/// still exists at a level that may hold the block; only when it fails is the board read to say why.
pub async fn create_block<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    request: &CreateBlockRequest,
) -> Result<Committed<Block>, ApiError> {
    request.validate()?;
    request
        .check_rules()
        .map_err(|violation| rule_error(&violation))?;
    context
        .limits
        .check_repository_link(request.repo_url.as_deref())?;
    let workspace = context.workspace_id.as_str();
    let block_quota = i64::from(context.limits.quotas.blocks_per_workspace);
    let parent_levels = request.level.parent_levels();
    let parent_level_params = [
        parent_levels.first().map(|level| level.as_str()),
        parent_levels.last().map(|level| level.as_str()),
    ];
    for _ in 0..MAX_ATTEMPTS {
        let now = runtime.now_ms();
        let block = request.build(BlockId::from_random(runtime.random_bytes()?), now);
        // The new block's parent is the one the request names.
        let parent = request.parent_id.as_ref().map(BlockId::as_str);
        // The workspace exists, and so does the parent, at a level that may hold this block (levels
        // never change, but the parent may be deleted), and not so deep that the new block could
        // never be moved (`domain::board::MAX_NESTING_DEPTH`); and the workspace has room for one
        // more block (`domain::limits::Quotas`).
        let precondition = format!(
            "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)
            AND (SELECT COUNT(*) FROM blocks WHERE workspace_id = ?1) < ?6
            AND (?2 IS NULL OR (EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2 AND level IN (?3, ?4))
                                AND {PARENT_CHAIN_LENGTH} < ?5))"
        );
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            &precondition,
            &params![
                workspace,
                parent,
                parent_level_params[0],
                parent_level_params[1],
                MAX_NESTING_DEPTH as i64,
                block_quota
            ],
        );
        let placed_by_the_store = request.position.is_none();
        if placed_by_the_store {
            // Nobody said where (an API client, a webhook): after its last sibling, not at the
            // origin, where it would cover the parent's title and its first child. The write itself
            // places it; the event and the answer carry the position it chose.
            let rule = append_rule(block.level, block.size, parent.is_some());
            let mut bound = block_params(workspace, &block).to_vec();
            bound.extend(params![rule.gap, rule.top, rule.top_level_right_edge]);
            plan.push(INSERT_APPENDED_BLOCK, &bound);
        } else {
            plan.push(
                &format!(
                    "INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status,
                                         x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, 1, ?14, ?14, ?15 WHERE {GUARD}"
                ),
                &block_params(workspace, &block),
            );
        }
        let payload = EventPayload::BlockCreated {
            block: block.clone(),
        };
        let committed = if placed_by_the_store {
            match events::commit_with_position_of(store, plan, context, payload, now, &block.id, ())
                .await?
            {
                Some(committed) => Some(Committed {
                    value: created_block(&committed.events).ok_or_else(ApiError::internal)?,
                    events: committed.events,
                }),
                None => None,
            }
        } else {
            events::commit(store, plan, context, payload, now, block).await?
        };
        if let Some(committed) = committed {
            return Ok(committed);
        }
        // Why did the guard fail? Read the workspace and the parent.
        let check: Option<ParentCheckRow> = store
            .first(Statement::new(
                format!(
                    "SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = ?1) AS workspace_exists,
                            (SELECT COUNT(*) FROM blocks WHERE workspace_id = ?1) AS block_count,
                            (SELECT level FROM blocks WHERE workspace_id = ?1 AND id = ?2) AS parent_level,
                            {PARENT_CHAIN_LENGTH} AS parent_chain_length"
                ),
                // ?3 and ?4 are unused here (SQLite binds them as NULL); the chain reads ?5.
                &params![workspace, parent, None::<&str>, None::<&str>, MAX_NESTING_DEPTH as i64],
            ))
            .await?;
        let check = check.ok_or_else(ApiError::internal)?;
        if check.workspace_exists == 0 {
            return Err(ApiError::not_found("This workspace"));
        }
        context.limits.quotas.admit(
            QuotaKind::BlocksPerWorkspace,
            u64::try_from(check.block_count).unwrap_or(u64::MAX),
        )?;
        if request.parent_id.is_some() {
            let level = check
                .parent_level
                .ok_or_else(|| missing_block("parentId"))?;
            let level = Level::parse(&level).ok_or_else(ApiError::internal)?;
            check_parent_level(request.level, Some(level))
                .map_err(|violation| rule_error(&violation))?;
            check_nesting_depth(usize::try_from(check.parent_chain_length).unwrap_or(usize::MAX))
                .map_err(|violation| rule_error(&violation))?;
        }
        // The state is fine now: the guard lost a race with a change that has since been undone.
    }
    Err(conflict_busy())
}

pub(crate) fn block_params(workspace: &str, block: &Block) -> [Param; 15] {
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

/// Changes a block's fields. A `rev` other than the block's is answered 409 with the block as it is;
/// so is losing the race to another writer of the same block.
pub async fn update_block<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    block_id: &BlockId,
    request: &UpdateBlockRequest,
) -> Result<Committed<Block>, ApiError> {
    request.validate()?;
    let workspace = context.workspace_id.as_str();
    let current = get_block(store, &context.workspace_id, block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    if current.rev != request.rev {
        return Err(stale_revision(current, request.rev));
    }
    request
        .check_rules(&current)
        .map_err(|violation| rule_error(&violation))?;
    if let Some(Some(url)) = &request.repo_url {
        context.limits.check_repository_link(Some(url))?;
    }
    let now = runtime.now_ms();
    let next = request.apply(&current, now);
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2 AND rev = ?3)",
        &params![workspace, block_id.as_str(), current.rev],
    );
    push_block_row_update(&mut plan, &context.workspace_id, &next, now);
    if let Some(committed) = events::commit(
        store,
        plan,
        context,
        EventPayload::BlockUpdated(BlockChange::between(&current, &next)),
        now,
        next,
    )
    .await?
    {
        return Ok(committed);
    }
    // Another writer won the race: report the block as it is now.
    match get_block(store, &context.workspace_id, block_id).await? {
        Some(current) => Err(stale_revision(current, request.rev)),
        None => Err(ApiError::not_found("This block")),
    }
}

/// Adds to `plan`: write `next` (a block of `workspace_id` as a command decided it) over its row. The
/// caller's guard must pin the row it was decided from (its `rev`), and the caller records the
/// `block.updated` event in the same plan.
pub(crate) fn push_block_row_update(
    plan: &mut GuardedPlan,
    workspace_id: &WorkspaceId,
    next: &Block,
    now: i64,
) {
    plan.push(
        &format!(
            "UPDATE blocks SET title = ?3, description = ?4, requirements = ?5, status = ?6, x = ?7, y = ?8,
                width = ?9, height = ?10, repo_url = ?11, archived = ?12, rev = ?13, updated_at = ?14,
                board_json = ?15, model_id = ?16
             WHERE workspace_id = ?1 AND id = ?2 AND {GUARD}"
        ),
        &params![
            workspace_id.as_str(),
            next.id.as_str(),
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
            board_json(next),
            next.model_id.clone()
        ],
    );
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
async fn load_ancestry<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    start: &BlockId,
) -> Result<Vec<AncestryNode>, ApiError> {
    let rows: Vec<AncestryRow> = store
        .all(Statement::new(
            "WITH RECURSIVE chain(id, level, parent_id, rev, depth) AS (
                 SELECT id, level, parent_id, rev, 0 FROM blocks WHERE workspace_id = ?1 AND id = ?2
                 UNION ALL
                 SELECT b.id, b.level, b.parent_id, b.rev, chain.depth + 1
                 FROM blocks b JOIN chain ON b.id = chain.parent_id
                 WHERE b.workspace_id = ?1 AND chain.depth < 64)
             SELECT id, level, parent_id, rev FROM chain ORDER BY depth",
            &params![workspace_id.as_str(), start.as_str()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(AncestryNode {
                id: BlockId::parse(&row.id).map_err(|_| ApiError::internal())?,
                level: Level::parse(&row.level).ok_or_else(ApiError::internal)?,
                parent_id: row
                    .parent_id
                    .as_deref()
                    .map(BlockId::parse)
                    .transpose()
                    .map_err(|_| ApiError::internal())?,
                rev: row.rev,
            })
        })
        .collect()
}

/// Moves a block under another parent (or to the top level, for a frame).
pub async fn reparent_block<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    block_id: &BlockId,
    request: &ReparentRequest,
) -> Result<Committed<Block>, ApiError> {
    request.validate()?;
    let workspace = context.workspace_id.as_str();
    for _ in 0..MAX_ATTEMPTS {
        let current = get_block(store, &context.workspace_id, block_id)
            .await?
            .ok_or_else(|| ApiError::not_found("This block"))?;
        if current.rev != request.rev {
            return Err(stale_revision(current, request.rev));
        }
        let chain = match &request.parent_id {
            None => Vec::new(),
            Some(parent) => {
                let chain = load_ancestry(store, &context.workspace_id, parent).await?;
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
            .check_reparent(block_id, request.parent_id.as_ref())
            .map_err(|violation| rule_error(&violation))?;

        // The move is valid as long as the block and every ancestor of its new parent are unchanged:
        // any move that could now make a cycle would have changed one of their revs.
        let mut guarded: Vec<(&BlockId, i64)> = vec![(block_id, current.rev)];
        guarded.extend(chain.iter().map(|node| (&node.id, node.rev)));
        check_reparent_guard_size(guarded.len()).map_err(|violation| rule_error(&violation))?;
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

        let now = runtime.now_ms();
        let next = request.apply(&current, now);
        let mut plan = GuardedPlan::new(runtime.guard_id()?, &precondition, &precondition_params);
        plan.push(
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
        );
        if let Some(committed) = events::commit(
            store,
            plan,
            context,
            EventPayload::BlockReparented {
                block: next.clone(),
            },
            now,
            next,
        )
        .await?
        {
            return Ok(committed);
        }
    }
    Err(conflict_busy())
}

/// The subtree of `?2` in workspace `?1`, for use in SQL. The subtree is never bound as parameters
/// (it can be any size); SQL walks it inside the transaction.
const SUBTREE_CTE: &str = "WITH RECURSIVE subtree(id) AS (
    SELECT id FROM blocks WHERE workspace_id = ?1 AND id = ?2
    UNION SELECT b.id FROM blocks b JOIN subtree s ON b.parent_id = s.id WHERE b.workspace_id = ?1)";

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

fn ids_of<T>(
    rows: impl Rows,
    parse: fn(&str) -> Result<T, domain::ids::IdError>,
) -> Result<Vec<T>, ApiError> {
    let rows: Vec<IdRow> = rows.decode()?;
    rows.iter()
        .map(|row| parse(&row.id).map_err(|_| ApiError::internal()))
        .collect()
}

/// What a delete removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub block_ids: Vec<BlockId>,
    pub edge_ids: Vec<EdgeId>,
}

/// Deletes a block, its whole subtree and every edge touching them, in one plan.
pub async fn delete_block<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    block_id: &BlockId,
) -> Result<Committed<Deleted>, ApiError> {
    let workspace = context.workspace_id.as_str();
    for _ in 0..MAX_ATTEMPTS {
        // The subtree and the edges touching it, read in one transaction.
        let mut results = store
            .read(vec![
                Statement::new(
                    format!("{SUBTREE_CTE} SELECT id FROM subtree"),
                    &params![workspace, block_id.as_str()],
                ),
                Statement::new(
                    format!(
                        "{SUBTREE_CTE} SELECT id FROM edges WHERE workspace_id = ?1
                         AND (from_id IN subtree OR to_id IN subtree)"
                    ),
                    &params![workspace, block_id.as_str()],
                ),
            ])
            .await?;
        let edge_rows = results.pop().ok_or_else(ApiError::internal)?;
        let block_rows = results.pop().ok_or_else(ApiError::internal)?;
        let subtree: Vec<BlockId> = ids_of(block_rows, BlockId::parse)?;
        if subtree.is_empty() {
            return Err(ApiError::not_found("This block"));
        }
        let deleted_edges: Vec<EdgeId> = ids_of(edge_rows, EdgeId::parse)?;
        // The event lists what is deleted; the guard checks, in the transaction, that this is still
        // exactly the subtree and its edges (a concurrent child or edge would change the counts).
        let precondition = format!(
            "({SUBTREE_CTE} SELECT COUNT(*) FROM subtree) = ?3
             AND ({SUBTREE_CTE} SELECT COUNT(*) FROM edges WHERE workspace_id = ?1
                  AND (from_id IN subtree OR to_id IN subtree)) = ?4"
        );
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            &precondition,
            &params![
                workspace,
                block_id.as_str(),
                subtree.len(),
                deleted_edges.len()
            ],
        );
        plan.push(
            &format!(
                "{SUBTREE_CTE} DELETE FROM edges WHERE workspace_id = ?1
                 AND (from_id IN subtree OR to_id IN subtree) AND {GUARD}"
            ),
            &params![workspace, block_id.as_str()],
        );
        plan.push(
            &format!("{SUBTREE_CTE} DELETE FROM blocks WHERE workspace_id = ?1 AND id IN subtree AND {GUARD}"),
            &params![workspace, block_id.as_str()],
        );
        if !deleted_edges.is_empty() {
            plan.push(
                &format!(
                    "UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"
                ),
                &params![workspace],
            );
        }
        let payload = EventPayload::BlockDeleted {
            block_id: block_id.clone(),
            deleted_block_ids: subtree.clone(),
            deleted_edge_ids: deleted_edges.clone(),
        };
        if let Some(committed) = events::commit(
            store,
            plan,
            context,
            payload,
            runtime.now_ms(),
            Deleted {
                block_ids: subtree,
                edge_ids: deleted_edges,
            },
        )
        .await?
        {
            return Ok(committed);
        }
    }
    Err(conflict_busy())
}

#[derive(Deserialize)]
struct EdgesHead {
    edges_rev: i64,
}

#[derive(Deserialize)]
struct EdgeRow {
    from_id: String,
    to_id: String,
}

/// Adds the dependency `from → to`, refusing self edges, duplicates and cycles.
pub async fn create_edge<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    request: &CreateEdgeRequest,
) -> Result<Committed<Edge>, ApiError> {
    let workspace = context.workspace_id.as_str();
    for _ in 0..MAX_ATTEMPTS {
        let mut results = store
            .read(vec![
                Statement::new(
                    "SELECT edges_rev FROM workspaces WHERE id = ?1",
                    &params![workspace],
                ),
                Statement::new(
                    "SELECT from_id, to_id FROM edges WHERE workspace_id = ?1",
                    &params![workspace],
                ),
                Statement::new(
                    "SELECT id FROM blocks WHERE workspace_id = ?1 AND id IN (?2, ?3)",
                    &params![workspace, request.from.as_str(), request.to.as_str()],
                ),
            ])
            .await?;
        let found: Vec<IdRow> = results.pop().ok_or_else(ApiError::internal)?.decode()?;
        let edges: Vec<EdgeRow> = results.pop().ok_or_else(ApiError::internal)?.decode()?;
        let edges_rev = results
            .pop()
            .ok_or_else(ApiError::internal)?
            .decode::<EdgesHead>()?
            .first()
            .map(|head| head.edges_rev)
            .ok_or_else(|| ApiError::not_found("This workspace"))?;
        for (field, end) in [("from", &request.from), ("to", &request.to)] {
            if !found.iter().any(|row| row.id == end.as_str()) {
                return Err(missing_block(field));
            }
        }
        // The guard below holds the edge set at this version, so the count cannot move under it.
        context.limits.quotas.admit(
            QuotaKind::EdgesPerWorkspace,
            u64::try_from(edges.len()).unwrap_or(u64::MAX),
        )?;
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

        let now = runtime.now_ms();
        let edge = Edge {
            id: EdgeId::from_random(runtime.random_bytes()?),
            from: request.from.clone(),
            to: request.to.clone(),
            created_at: now,
        };
        // Valid against this version of the edge set, with both ends still present.
        let precondition = "(SELECT edges_rev FROM workspaces WHERE id = ?1) = ?2
            AND (SELECT COUNT(*) FROM blocks WHERE workspace_id = ?1 AND id IN (?3, ?4)) = 2";
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            precondition,
            &params![workspace, edges_rev, edge.from.as_str(), edge.to.as_str()],
        );
        plan.push(
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
        );
        plan.push(
            &format!("UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"),
            &params![workspace],
        );
        if let Some(committed) = events::commit(
            store,
            plan,
            context,
            EventPayload::EdgeCreated { edge: edge.clone() },
            now,
            edge,
        )
        .await?
        {
            return Ok(committed);
        }
    }
    Err(conflict_busy())
}

/// Removes a dependency.
pub async fn delete_edge<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    edge_id: &EdgeId,
) -> Result<Committed<()>, ApiError> {
    let workspace = context.workspace_id.as_str();
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM edges WHERE workspace_id = ?1 AND id = ?2)",
        &params![workspace, edge_id.as_str()],
    );
    plan.push(
        &format!("DELETE FROM edges WHERE workspace_id = ?1 AND id = ?2 AND {GUARD}"),
        &params![workspace, edge_id.as_str()],
    );
    plan.push(
        &format!("UPDATE workspaces SET edges_rev = edges_rev + 1 WHERE id = ?1 AND {GUARD}"),
        &params![workspace],
    );
    events::record(
        &mut plan,
        context,
        EventPayload::EdgeDeleted {
            edge_id: edge_id.clone(),
        },
        runtime.now_ms(),
    )?;
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        return Err(ApiError::not_found("This edge"));
    }
    Ok(Committed {
        value: (),
        events: outcome.events,
    })
}
