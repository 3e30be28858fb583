//! The board: blocks and dependency edges. Parse → call the command (`worker_core::board`) → deliver
//! its events after the response → render. The commands hold the SQL, the guards and the retries.

use domain::api::ApiError;
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest,
};
use domain::ids::{BlockId, EdgeId};
use serde::Deserialize;
use worker::js_sys;
use worker::wasm_bindgen::JsValue;
use worker_core::board as commands;
use worker_core::board::SeqRow;

use crate::delivery::deliver_after_response;
use crate::http::{HandlerResult, RequestContext, internal, json, no_content};
use crate::ids::WorkerRuntime;

fn block_id_param(context: &RequestContext) -> Result<BlockId, ApiError> {
    BlockId::parse(context.param("blockId")).map_err(|_| ApiError::not_found("This block"))
}

/// `GET /workspaces/:id/board`: blocks, edges and `seq`, read in one transaction so they agree.
pub async fn snapshot(context: &RequestContext) -> HandlerResult {
    let db = &context.db;
    let statements = commands::snapshot_statements(&context.workspace().workspace.id);
    let prepared = statements
        .iter()
        .map(|statement| db.statement(&statement.sql, &statement.params))
        .collect::<Result<Vec<_>, _>>()?;
    let started = worker::Date::now().as_millis();
    let results = db.batch(prepared).await?;
    let queried = worker::Date::now().as_millis();
    let seq = results[0]
        .results::<SeqRow>()
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

/// `GET /workspaces/:id/blocks/:blockId`.
pub async fn get_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let block = commands::get_block(&context.db, &context.workspace().workspace.id, &block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    json(200, &block)
}

/// `POST /workspaces/:id/blocks`.
pub async fn create_block(context: &RequestContext) -> HandlerResult {
    let request: CreateBlockRequest = context.json()?;
    let started = context.clock();
    let committed = commands::create_block(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &request,
    )
    .await;
    context.record_timing("command", started);
    let committed = committed?;
    deliver_after_response(context, committed.events);
    json(201, &committed.value)
}

/// `PATCH /workspaces/:id/blocks/:blockId`.
pub async fn update_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let request: UpdateBlockRequest = context.json()?;
    let started = context.clock();
    let committed = commands::update_block(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &block_id,
        &request,
    )
    .await;
    context.record_timing("command", started);
    let committed = committed?;
    deliver_after_response(context, committed.events);
    if request.status == Some(domain::board::BlockStatus::Done) {
        // A person marked the block done: the runs queued on it hear so (after the response).
        let env = context.env.clone();
        let workspace_id = context.workspace().workspace.id.clone();
        context.execution.wait_until(async move {
            if let Ok(db) = crate::store::Db::from_env(&env) {
                crate::coordinator::block_done(&env, &db, &workspace_id, &block_id).await;
            }
        });
    }
    json(200, &committed.value)
}

/// `POST /workspaces/:id/blocks/:blockId/reparent`.
pub async fn reparent_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let request: ReparentRequest = context.json()?;
    let committed = commands::reparent_block(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &block_id,
        &request,
    )
    .await?;
    deliver_after_response(context, committed.events);
    json(200, &committed.value)
}

/// `DELETE /workspaces/:id/blocks/:blockId`: the block, its subtree and their edges.
pub async fn delete_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let committed = commands::delete_block(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &block_id,
    )
    .await?;
    deliver_after_response(context, committed.events);
    no_content()
}

/// `POST /workspaces/:id/edges`.
pub async fn create_edge(context: &RequestContext) -> HandlerResult {
    let request: CreateEdgeRequest = context.json()?;
    let committed = commands::create_edge(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &request,
    )
    .await?;
    deliver_after_response(context, committed.events);
    json(201, &committed.value)
}

/// `DELETE /workspaces/:id/edges/:edgeId`.
pub async fn delete_edge(context: &RequestContext) -> HandlerResult {
    let edge_id =
        EdgeId::parse(context.param("edgeId")).map_err(|_| ApiError::not_found("This edge"))?;
    let committed = commands::delete_edge(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &edge_id,
    )
    .await?;
    deliver_after_response(context, committed.events);
    no_content()
}
