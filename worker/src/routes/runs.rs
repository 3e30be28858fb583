//! Pipelines and runs. Parse → call `worker_core::runs` (D1) or the run's coordinator → render.
//! Every decision is the domain's; a person's input to a run is checked by the coordinator against
//! its current state (`domain::run::check_input`), so a stale click is a clear 409.

use domain::api::runs::{AnswerDecisionRequest, CreateRunRequest, GiveApprovalRequest, RunRecord};
use domain::api::{ApiError, ErrorCode};
use domain::ids::{BlockId, RunId};
use domain::pipeline::PipelineDraft;
use domain::run::{EngineSettings, RunInput, RunStatus};
use worker_core::runs::{self, RunDefaults};

use crate::auth::{env_value, now_ms};
use crate::coordinator::{self, CoordinatorRequest};
use crate::http::{HandlerResult, RequestContext, json, no_content};
use crate::ids::WorkerRuntime;

fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or_default()
}

fn run_id_param(context: &RequestContext) -> Result<RunId, ApiError> {
    RunId::parse(context.param("runId")).map_err(|_| ApiError::not_found("This run"))
}

fn block_id_param(context: &RequestContext) -> Result<BlockId, ApiError> {
    BlockId::parse(context.param("blockId")).map_err(|_| ApiError::not_found("This block"))
}

/// The deployment's run settings: `RUN_DEFAULT_MODEL`, `LOCAL_FORGE_ROOT` (the local forge is on
/// when it is set) and `RUN_ENGINE_SETTINGS` (JSON, `domain::run::EngineSettings`; tests shorten the
/// delays with it).
fn defaults(context: &RequestContext) -> Result<RunDefaults, ApiError> {
    let settings = match env_value(&context.env, "RUN_ENGINE_SETTINGS") {
        Some(text) => serde_json::from_str::<EngineSettings>(&text).map_err(|error| {
            worker::console_error!("RUN_ENGINE_SETTINGS does not parse: {error}");
            ApiError::internal()
        })?,
        None => EngineSettings::default(),
    };
    Ok(RunDefaults {
        model_id: env_value(&context.env, "RUN_DEFAULT_MODEL")
            .unwrap_or_else(|| "gpt-4o-mini".to_owned()),
        local_forge_root: env_value(&context.env, "LOCAL_FORGE_ROOT"),
        settings,
    })
}

// ---- Pipelines -------------------------------------------------------------------------------

pub async fn list_pipelines(context: &RequestContext) -> HandlerResult {
    let pipelines = runs::list_pipelines(&context.db, &context.workspace().workspace.id).await?;
    json(200, &pipelines)
}

pub async fn create_pipeline(context: &RequestContext) -> HandlerResult {
    let draft: PipelineDraft = context.json()?;
    let created = runs::create_pipeline(
        &context.db,
        &WorkerRuntime,
        &context.workspace().workspace.id,
        &draft,
    )
    .await?;
    json(201, &created)
}

pub async fn update_pipeline(context: &RequestContext) -> HandlerResult {
    let draft: PipelineDraft = context.json()?;
    let updated = runs::update_pipeline(
        &context.db,
        &WorkerRuntime,
        &context.workspace().workspace.id,
        context.param("pipelineId"),
        &draft,
    )
    .await?;
    json(200, &updated)
}

pub async fn delete_pipeline(context: &RequestContext) -> HandlerResult {
    runs::delete_pipeline(
        &context.db,
        &context.workspace().workspace.id,
        context.param("pipelineId"),
    )
    .await?;
    no_content()
}

// ---- Runs ------------------------------------------------------------------------------------

async fn current_record(context: &RequestContext, run_id: &RunId) -> Result<RunRecord, ApiError> {
    runs::get_run(&context.db, &context.workspace().workspace.id, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This run"))
}

/// `POST /workspaces/:id/blocks/:blockId/runs`: stores the run, then starts its coordinator (which
/// dispatches the first step before answering). If the coordinator cannot be reached, the sweep
/// starts it from the stored setup.
pub async fn create_run(context: &RequestContext) -> HandlerResult {
    let request: CreateRunRequest = context.json()?;
    let block_id = block_id_param(context)?;
    let started = context.clock();
    let created = runs::create_run(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &context.workspace().workspace.account_id,
        &block_id,
        &request,
        &defaults(context)?,
    )
    .await?;
    context.record_timing("command", started);
    let run_id = created.record.id.clone();
    let coordinated = context.clock();
    let start = CoordinatorRequest::Start {
        setup: Box::new(created.setup),
    };
    if let Err(error) = coordinator::send(&context.env, &run_id, &start).await {
        worker::console_error!("starting run {run_id}: {error}; the sweep will start it");
        return json(201, &created.record);
    }
    context.record_timing("coordinator", coordinated);
    json(201, &current_record(context, &run_id).await?)
}

pub async fn list_runs(context: &RequestContext) -> HandlerResult {
    let query: std::collections::HashMap<String, String> =
        context.url.query_pairs().into_owned().collect();
    let block = match query.get("block") {
        Some(text) => Some(BlockId::parse(text).map_err(|_| {
            ApiError::invalid_fields(vec![domain::api::FieldProblem::new(
                "block",
                "must be a block id (blk_…)",
            )])
        })?),
        None => None,
    };
    let status = match query.get("status") {
        Some(text) => Some(
            serde_json::from_value::<RunStatus>(serde_json::Value::String(text.clone())).map_err(
                |_| {
                    ApiError::invalid_fields(vec![domain::api::FieldProblem::new(
                        "status",
                        "must be one of running, blocked, paused, done, failed, cancelled",
                    )])
                },
            )?,
        ),
        None => None,
    };
    let listed = runs::list_runs(
        &context.db,
        &context.workspace().workspace.id,
        block.as_ref(),
        status,
    )
    .await?;
    json(200, &listed)
}

pub async fn get_run(context: &RequestContext) -> HandlerResult {
    let run_id = run_id_param(context)?;
    json(200, &current_record(context, &run_id).await?)
}

/// Hands a person's input to the run's coordinator and answers with the run as it is afterwards.
async fn give_input(context: &RequestContext, input: RunInput) -> HandlerResult {
    let run_id = run_id_param(context)?;
    // The run must be this workspace's (a run id of another workspace is a 404, never an input).
    current_record(context, &run_id).await?;
    coordinator::send(
        &context.env,
        &run_id,
        &CoordinatorRequest::Input {
            input: Box::new(input),
        },
    )
    .await?;
    json(200, &current_record(context, &run_id).await?)
}

pub async fn cancel_run(context: &RequestContext) -> HandlerResult {
    give_input(context, RunInput::Cancel { now_ms: now() }).await
}

pub async fn retry_run(context: &RequestContext) -> HandlerResult {
    give_input(context, RunInput::Retry { now_ms: now() }).await
}

pub async fn answer_decision(context: &RequestContext) -> HandlerResult {
    let request: AnswerDecisionRequest = context.json()?;
    request.validate()?;
    give_input(
        context,
        RunInput::DecisionAnswered {
            now_ms: now(),
            decision_id: context.param("decisionId").to_owned(),
            choice: request.choice,
        },
    )
    .await
}

pub async fn give_approval(context: &RequestContext) -> HandlerResult {
    let request: GiveApprovalRequest = context.json()?;
    let verdict = request.verdict()?;
    give_input(
        context,
        RunInput::ApprovalGiven {
            now_ms: now(),
            approval_id: context.param("approvalId").to_owned(),
            verdict,
        },
    )
    .await
}

/// `POST /workspaces/:id/blocks/:blockId/merge`: merges the task's pull request on the local forge
/// (through the runner, which hosts the bare repositories), then tells the run: it marks the block
/// done, which starts the runs queued on it.
pub async fn merge_block(context: &RequestContext) -> HandlerResult {
    let block_id = block_id_param(context)?;
    let workspace_id = &context.workspace().workspace.id;
    let live = runs::list_runs(&context.db, workspace_id, Some(&block_id), None)
        .await?
        .into_iter()
        .find(|run| run.status.is_live())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Conflict,
                "This task has no run with a pull request to merge.",
            )
            .with_details(serde_json::json!({ "reason": "no_pull_request" }))
        })?;
    let pull_request = live.summary.pull_request.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "This task's run has not opened a pull request yet.",
        )
        .with_details(serde_json::json!({ "reason": "no_pull_request" }))
    })?;
    let setup = runs::run_setup(&context.db, &live.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let Some(repository) = setup.context.repository else {
        return Err(ApiError::internal());
    };
    crate::runner::merge_local(
        &context.env,
        live.id.as_str(),
        &repository,
        &pull_request.branch,
    )
    .await?;
    coordinator::send(
        &context.env,
        &live.id,
        &CoordinatorRequest::Input {
            input: Box::new(RunInput::PullRequestMerged { now_ms: now() }),
        },
    )
    .await?;
    json(200, &current_record(context, &live.id).await?)
}
