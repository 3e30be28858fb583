//! Pipelines and runs: the D1 side of the run engine (ADR 14).
//!
//! The RunCoordinator Durable Object owns a run's state; D1 holds what the API lists and reads — the
//! workspace's custom pipelines, and each run's projection (status, summary, the setup a coordinator
//! is created from). Every decision is `domain`'s: `PipelineDraft::validate`, `gate_run_start`,
//! `RunState::new`. What a run does to the board goes through the same command layer as a person's
//! change ([`write_block_status`] with `Actor::Run`), so it is recorded in the outbox like any other
//! write; a run's own events are recorded at most once per (run, run seq) ([`record_run_event`]).

use domain::api::ApiError;
use domain::api::board::UpdateBlockRequest;
use domain::api::runs::{
    CreateRunRequest, PipelineView, RunRecord, built_in_pipeline, dependencies_not_done,
    invalid_pipeline, run_in_progress,
};
use domain::board::{Block, BlockStatus, Level};
use domain::event::{Actor, EventPayload, RunEventRecord};
use domain::ids::{AccountId, BlockId, RunId, WorkspaceId};
use domain::pipeline::{BuiltInPipeline, Pipeline, PipelineDraft};
use domain::prompt::{AncestorBrief, TaskBrief};
use domain::run::{
    EngineSettings, RunEvent, RunRepository, RunSetup, RunState, RunStatus, StartGate,
    gate_run_start, resolve_repository, run_model,
};
use serde::{Deserialize, Serialize};

use crate::board::{MAX_ATTEMPTS, get_block, update_block};
use crate::context::{Committed, EntropyUnavailable, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, Statement, Store};

/// What a coordinator needs besides the engine's state to act for a run: where it belongs, the
/// model, the repository its jobs work on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContext {
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
    pub model_id: String,
    /// `None` for a pipeline with inline steps only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RunRepository>,
}

/// A run's coordinator is created from this (stored in `runs.setup`, so the sweep can re-create a
/// coordinator that lost its storage before its first checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSetupRecord {
    pub state: RunState,
    pub context: RunContext,
}

/// Deployment settings a new run takes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDefaults {
    pub model_id: String,
    /// The local forge's root, when the deployment enables it.
    pub local_forge_root: Option<String>,
    pub settings: EngineSettings,
}

// ---------------------------------------------------------------------------------------------
// Pipelines

#[derive(Deserialize)]
struct PipelineRow {
    id: String,
    definition: String,
}

fn pipeline_of(row: PipelineRow) -> Result<PipelineView, ApiError> {
    let pipeline: Pipeline =
        serde_json::from_str(&row.definition).map_err(|_| ApiError::internal())?;
    Ok(PipelineView::custom(row.id, pipeline))
}

/// The built-in pipelines, then the workspace's own (oldest first).
pub async fn list_pipelines<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
) -> Result<Vec<PipelineView>, ApiError> {
    let rows: Vec<PipelineRow> = store
        .all(Statement::new(
            "SELECT id, definition FROM pipelines WHERE workspace_id = ?1 ORDER BY created_at, id",
            &params![workspace_id.as_str()],
        ))
        .await?;
    let mut views: Vec<PipelineView> = BuiltInPipeline::ALL
        .into_iter()
        .map(PipelineView::built_in)
        .collect();
    for row in rows {
        views.push(pipeline_of(row)?);
    }
    Ok(views)
}

/// A pipeline by id: a built-in key or a custom pipeline of the workspace.
pub async fn get_pipeline<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    pipeline_id: &str,
) -> Result<Option<PipelineView>, ApiError> {
    if let Some(built_in) = built_in_pipeline(pipeline_id) {
        return Ok(Some(PipelineView::built_in(built_in)));
    }
    let row: Option<PipelineRow> = store
        .first(Statement::new(
            "SELECT id, definition FROM pipelines WHERE workspace_id = ?1 AND id = ?2",
            &params![workspace_id.as_str(), pipeline_id],
        ))
        .await?;
    row.map(pipeline_of).transpose()
}

fn built_in_is_fixed(id: &str) -> ApiError {
    ApiError::rule_violated(
        "built_in_pipeline",
        format!(
            "{id:?} is a built-in pipeline and cannot be changed or deleted; create a custom \
             pipeline instead."
        ),
    )
}

/// A custom pipeline's id: `pip_` and 16 hex characters.
fn pipeline_id<R: Runtime>(runtime: &R) -> Result<String, EntropyUnavailable> {
    let hex: String = runtime
        .random_bytes()?
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(format!("pip_{hex}"))
}

pub async fn create_pipeline<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    workspace_id: &WorkspaceId,
    draft: &PipelineDraft,
) -> Result<PipelineView, ApiError> {
    let pipeline = draft.validate().map_err(invalid_pipeline)?;
    let id = pipeline_id(runtime)?;
    let now = runtime.now_ms();
    let definition = serde_json::to_string(&pipeline).map_err(|_| ApiError::internal())?;
    let changed = store
        .write(vec![Statement::new(
            "INSERT INTO pipelines (workspace_id, id, name, definition, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)",
            &params![
                workspace_id.as_str(),
                id.as_str(),
                pipeline.name.as_str(),
                definition,
                now
            ],
        )])
        .await?;
    if changed.first() != Some(&1) {
        return Err(ApiError::not_found("This workspace"));
    }
    Ok(PipelineView::custom(id, pipeline))
}

pub async fn update_pipeline<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    workspace_id: &WorkspaceId,
    pipeline_id: &str,
    draft: &PipelineDraft,
) -> Result<PipelineView, ApiError> {
    if built_in_pipeline(pipeline_id).is_some() {
        return Err(built_in_is_fixed(pipeline_id));
    }
    let pipeline = draft.validate().map_err(invalid_pipeline)?;
    let definition = serde_json::to_string(&pipeline).map_err(|_| ApiError::internal())?;
    let changed = store
        .write(vec![Statement::new(
            "UPDATE pipelines SET name = ?3, definition = ?4, rev = rev + 1, updated_at = ?5
             WHERE workspace_id = ?1 AND id = ?2",
            &params![
                workspace_id.as_str(),
                pipeline_id,
                pipeline.name.as_str(),
                definition,
                runtime.now_ms()
            ],
        )])
        .await?;
    if changed.first() != Some(&1) {
        return Err(ApiError::not_found("This pipeline"));
    }
    Ok(PipelineView::custom(pipeline_id.to_owned(), pipeline))
}

pub async fn delete_pipeline<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    pipeline_id: &str,
) -> Result<(), ApiError> {
    if built_in_pipeline(pipeline_id).is_some() {
        return Err(built_in_is_fixed(pipeline_id));
    }
    let changed = store
        .write(vec![Statement::new(
            "DELETE FROM pipelines WHERE workspace_id = ?1 AND id = ?2",
            &params![workspace_id.as_str(), pipeline_id],
        )])
        .await?;
    if changed.first() != Some(&1) {
        return Err(ApiError::not_found("This pipeline"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Deserialize)]
struct RunRow {
    id: String,
    workspace_id: String,
    block_id: String,
    pipeline_id: String,
    model_id: String,
    status: String,
    queued_on: String,
    summary: String,
    created_at: i64,
    updated_at: i64,
}

const RUN_COLUMNS: &str = "id, workspace_id, block_id, pipeline_id, model_id, status, queued_on, \
                           summary, created_at, updated_at";

fn record_of(row: RunRow) -> Result<RunRecord, ApiError> {
    let bad = |_| ApiError::internal();
    Ok(RunRecord {
        id: RunId::parse(&row.id).map_err(bad)?,
        workspace_id: WorkspaceId::parse(&row.workspace_id).map_err(bad)?,
        block_id: BlockId::parse(&row.block_id).map_err(bad)?,
        pipeline_id: row.pipeline_id,
        model_id: row.model_id,
        status: serde_json::from_value(serde_json::Value::String(row.status))
            .map_err(|_| ApiError::internal())?,
        queued_on: serde_json::from_str(&row.queued_on).map_err(|_| ApiError::internal())?,
        summary: serde_json::from_str(&row.summary).map_err(|_| ApiError::internal())?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub async fn get_run<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    run_id: &RunId,
) -> Result<Option<RunRecord>, ApiError> {
    let row: Option<RunRow> = store
        .first(Statement::new(
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = ?1 AND id = ?2"),
            &params![workspace_id.as_str(), run_id.as_str()],
        ))
        .await?;
    row.map(record_of).transpose()
}

/// The workspace's runs, newest first, optionally of one block and in one status (at most 200).
pub async fn list_runs<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: Option<&BlockId>,
    status: Option<RunStatus>,
) -> Result<Vec<RunRecord>, ApiError> {
    let rows: Vec<RunRow> = store
        .all(Statement::new(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = ?1
                   AND (?2 IS NULL OR block_id = ?2) AND (?3 IS NULL OR status = ?3)
                 ORDER BY created_at DESC, id DESC LIMIT 200"
            ),
            &params![
                workspace_id.as_str(),
                block_id.map(BlockId::as_str),
                status.map(RunStatus::as_str)
            ],
        ))
        .await?;
    rows.into_iter().map(record_of).collect()
}

#[derive(Deserialize)]
struct SetupRow {
    setup: String,
}

/// The setup a run's coordinator is created from.
pub async fn run_setup<S: Store>(
    store: &S,
    run_id: &RunId,
) -> Result<Option<RunSetupRecord>, ApiError> {
    let row: Option<SetupRow> = store
        .first(Statement::new(
            "SELECT setup FROM runs WHERE id = ?1",
            &params![run_id.as_str()],
        ))
        .await?;
    row.map(|row| serde_json::from_str(&row.setup).map_err(|_| ApiError::internal()))
        .transpose()
}

#[derive(Deserialize)]
struct RunIdRow {
    id: String,
}

fn run_ids(rows: Vec<RunIdRow>) -> Vec<RunId> {
    rows.into_iter()
        .filter_map(|row| RunId::parse(&row.id).ok())
        .collect()
}

/// The live runs of the workspace queued on `block_id` (to tell them it is done).
pub async fn runs_waiting_on<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
) -> Result<Vec<RunId>, ApiError> {
    let rows: Vec<RunIdRow> = store
        .all(Statement::new(
            "SELECT id FROM runs WHERE workspace_id = ?1 AND live = 1
               AND EXISTS (SELECT 1 FROM json_each(runs.queued_on) WHERE value = ?2)",
            &params![workspace_id.as_str(), block_id.as_str()],
        ))
        .await?;
    Ok(run_ids(rows))
}

/// Runs whose coordinator should have an alarm set (running, or paused on a budget), for the
/// sweep's re-arm; at most `limit`, the least recently updated first.
pub async fn runs_to_rearm<S: Store>(store: &S, limit: usize) -> Result<Vec<RunId>, ApiError> {
    let rows: Vec<RunIdRow> = store
        .all(Statement::new(
            "SELECT id FROM runs WHERE live = 1 AND status = 'running' ORDER BY updated_at LIMIT ?1",
            &params![limit],
        ))
        .await?;
    Ok(run_ids(rows))
}

/// The runs of an account paused on its budget (to resume when the limit is raised).
pub async fn paused_runs_of_account<S: Store>(
    store: &S,
    account_id: &AccountId,
) -> Result<Vec<RunId>, ApiError> {
    let rows: Vec<RunIdRow> = store
        .all(Statement::new(
            "SELECT r.id AS id FROM runs r JOIN workspaces w ON w.id = r.workspace_id
              WHERE w.account_id = ?1 AND r.live = 1 AND r.status = 'paused'",
            &params![account_id.as_str()],
        ))
        .await?;
    Ok(run_ids(rows))
}

#[derive(Deserialize)]
struct AccountIdRow {
    account_id: String,
}

/// The accounts with at least one run paused on their budget (the sweep resumes them once their
/// budget has room again: a new billing period, released reservations).
pub async fn accounts_with_paused_runs<S: Store>(store: &S) -> Result<Vec<AccountId>, ApiError> {
    let rows: Vec<AccountIdRow> = store
        .all(Statement::new(
            "SELECT DISTINCT w.account_id AS account_id FROM runs r
               JOIN workspaces w ON w.id = r.workspace_id
              WHERE r.live = 1 AND r.status = 'paused'",
            &params![],
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| AccountId::parse(&row.account_id).ok())
        .collect())
}

#[derive(Deserialize)]
struct LiveRunRow {
    id: String,
}

#[derive(Deserialize)]
struct DefaultModelRow {
    default_model: Option<String>,
}

#[derive(Deserialize)]
struct ChainRow {
    level: String,
    title: String,
    description: String,
    repo_url: Option<String>,
}

#[derive(Deserialize)]
struct DependencyRow {
    id: String,
    status: String,
}

fn parse_status(text: &str) -> Result<BlockStatus, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| ApiError::internal())
}

fn parse_level(text: &str) -> Result<Level, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| ApiError::internal())
}

/// What a new run is: its record, the coordinator's setup.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRun {
    pub record: RunRecord,
    pub setup: RunSetupRecord,
}

/// Creates a run on a task: the pipeline exists, the task has no live run, its dependencies are
/// done (or the request queues it), its service links a repository the deployment can reach (when
/// a step needs one). The run is stored with the coordinator's setup; the caller starts the
/// coordinator.
pub async fn create_run<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    account_id: &AccountId,
    block_id: &BlockId,
    request: &CreateRunRequest,
    defaults: &RunDefaults,
) -> Result<CreatedRun, ApiError> {
    request.validate()?;
    let workspace_id = &context.workspace_id;
    let workspace = workspace_id.as_str();
    let pipeline_view = get_pipeline(store, workspace_id, request.pipeline_id.trim())
        .await?
        .ok_or_else(|| {
            ApiError::rule_violated(
                "unknown_pipeline",
                format!(
                    "There is no pipeline {:?} in this workspace; GET /workspaces/{workspace}/pipelines \
                     lists them.",
                    request.pipeline_id
                ),
            )
        })?;
    let pipeline = pipeline_view.pipeline();
    let block = get_block(store, workspace_id, block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    if block.level != Level::Task {
        return Err(ApiError::rule_violated(
            "runs_on_tasks_only",
            "A pipeline runs on a task; pick a task on the board (not a service or a module)."
                .to_owned(),
        ));
    }
    let mut results = store
        .read(vec![
            Statement::new(
                "WITH RECURSIVE chain (id, parent_id, level, title, description, repo_url, depth) AS (
                     SELECT id, parent_id, level, title, description, repo_url, 0 FROM blocks
                      WHERE workspace_id = ?1 AND id = ?2
                     UNION ALL
                     SELECT b.id, b.parent_id, b.level, b.title, b.description, b.repo_url, c.depth + 1
                       FROM blocks b JOIN chain c ON b.workspace_id = ?1 AND b.id = c.parent_id
                      WHERE c.depth < 16)
                 SELECT level, title, description, repo_url FROM chain WHERE depth > 0 ORDER BY depth DESC",
                &params![workspace, block_id.as_str()],
            ),
            Statement::new(
                "SELECT default_model FROM workspaces WHERE id = ?1",
                &params![workspace],
            ),
            Statement::new(
                "SELECT b.id AS id, b.status AS status FROM edges e
                   JOIN blocks b ON b.workspace_id = e.workspace_id AND b.id = e.to_id
                  WHERE e.workspace_id = ?1 AND e.from_id = ?2",
                &params![workspace, block_id.as_str()],
            ),
        ])
        .await?;
    use crate::store::Rows;
    let dependencies: Vec<DependencyRow> =
        results.pop().ok_or_else(ApiError::internal)?.decode()?;
    let workspace_default: Vec<DefaultModelRow> =
        results.pop().ok_or_else(ApiError::internal)?.decode()?;
    let chain: Vec<ChainRow> = results.pop().ok_or_else(ApiError::internal)?.decode()?;
    let mut ancestors = Vec::new();
    let mut repo_url = None;
    for row in chain {
        if row.repo_url.is_some() {
            repo_url = row.repo_url.clone();
        }
        ancestors.push(AncestorBrief {
            level: parse_level(&row.level)?,
            title: row.title,
            description: row.description,
        });
    }
    let needs_repository = pipeline.steps.iter().any(|step| step.surface.is_runner());
    // A frame linked to a GitHub repository (issue 15) runs there; otherwise its `repo_url`.
    let github_link = if needs_repository {
        github_repository_of(store, workspace_id, block_id).await?
    } else {
        None
    };
    let repository = if let Some(github) = github_link {
        Some(github)
    } else if needs_repository {
        let url = repo_url.ok_or_else(|| {
            ApiError::rule_violated(
                "no_repository",
                "This task's service links no repository; link one on the service (frame) first."
                    .to_owned(),
            )
        })?;
        Some(
            resolve_repository(&url, defaults.local_forge_root.as_deref())
                .map_err(|message| ApiError::rule_violated("repository_unreachable", message))?,
        )
    } else {
        None
    };
    let dependencies = dependencies
        .into_iter()
        .map(|row| {
            Ok((
                BlockId::parse(&row.id).map_err(|_| ApiError::internal())?,
                parse_status(&row.status)?,
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let waiting_on = match gate_run_start(&dependencies, request.queue) {
        Ok(StartGate::StartNow) => Vec::new(),
        Ok(StartGate::Queued { waiting_on }) => waiting_on,
        Err(refusal) => return Err(dependencies_not_done(&refusal)),
    };
    let model_id = run_model(
        request.model_id.as_deref(),
        block.model_id.as_deref(),
        workspace_default
            .first()
            .and_then(|row| row.default_model.as_deref()),
        &defaults.model_id,
    );
    let run_id = RunId::from_random(runtime.random_bytes()?);
    let now = runtime.now_ms();
    let state = RunState::new(RunSetup {
        run_id: run_id.clone(),
        block_id: block_id.clone(),
        pipeline,
        task: TaskBrief {
            title: block.title.clone(),
            description: block.description.clone(),
            requirements: block.requirements.clone(),
            ancestors,
        },
        settings: defaults.settings,
        block_status: block.status,
        waiting_on: waiting_on.clone(),
        created_at_ms: u64::try_from(now).unwrap_or_default(),
    });
    let setup = RunSetupRecord {
        state,
        context: RunContext {
            workspace_id: workspace_id.clone(),
            account_id: account_id.clone(),
            model_id: model_id.clone(),
            repository,
        },
    };
    let summary = setup.state.summary();
    let record = RunRecord {
        id: run_id.clone(),
        workspace_id: workspace_id.clone(),
        block_id: block_id.clone(),
        pipeline_id: pipeline_view.id.clone(),
        model_id,
        status: if waiting_on.is_empty() {
            RunStatus::Running
        } else {
            RunStatus::Blocked
        },
        queued_on: waiting_on,
        summary,
        created_at: now,
        updated_at: now,
    };
    let created_by = match &context.actor {
        Actor::User { id } => id.as_str().to_owned(),
        Actor::Run { id } => id.clone(),
        Actor::Webhook { source } => source.clone(),
    };
    // The block still exists and has no live run (the unique index says the same; the guard makes
    // the answer a clear 409 instead of a constraint error).
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2)
         AND NOT EXISTS (SELECT 1 FROM runs WHERE workspace_id = ?1 AND block_id = ?2 AND live = 1)",
        &params![workspace, block_id.as_str()],
    );
    plan.push(
        &format!(
            "INSERT INTO runs (workspace_id, id, block_id, pipeline_id, model_id, status, live, queued_on,
                               summary, setup, created_by, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10, ?11, ?11 WHERE {GUARD}"
        ),
        &params![
            workspace,
            run_id.as_str(),
            block_id.as_str(),
            record.pipeline_id.as_str(),
            record.model_id.as_str(),
            record.status.as_str(),
            encode(&record.queued_on)?,
            encode(&record.summary)?,
            encode(&setup)?,
            created_by,
            now
        ],
    );
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        let live: Option<LiveRunRow> = store
            .first(Statement::new(
                "SELECT id FROM runs WHERE workspace_id = ?1 AND block_id = ?2 AND live = 1",
                &params![workspace, block_id.as_str()],
            ))
            .await?;
        return Err(match live.and_then(|row| RunId::parse(&row.id).ok()) {
            Some(live) => run_in_progress(&live),
            None => ApiError::not_found("This block"),
        });
    }
    Ok(CreatedRun { record, setup })
}

fn encode<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|_| ApiError::internal())
}

/// Writes the coordinator's state into the run's projection. Only a newer state wins (a slow
/// write after a newer one changes nothing).
pub async fn update_run_projection<S: Store>(store: &S, state: &RunState) -> Result<(), ApiError> {
    let summary = serde_json::to_string(&state.summary()).map_err(|_| ApiError::internal())?;
    // What a queued run still waits on (the engine drops each dependency as it is done).
    let queued_on = match &state.park {
        Some(domain::run::Park::Dependencies { waiting_on }) => {
            serde_json::to_string(waiting_on).map_err(|_| ApiError::internal())?
        }
        _ => "[]".to_owned(),
    };
    let updated_at = i64::try_from(state.updated_at_ms).unwrap_or(i64::MAX);
    store
        .write(vec![Statement::new(
            "UPDATE runs SET status = ?2, live = ?3, queued_on = ?4, summary = ?5, updated_at = ?6
             WHERE id = ?1 AND updated_at <= ?6",
            &params![
                state.run_id.as_str(),
                state.status.as_str(),
                state.status.is_live(),
                queued_on,
                summary,
                updated_at
            ],
        )])
        .await?;
    Ok(())
}

/// Records one of a run's events in the workspace outbox, at most once per (run, `run_seq`): a
/// restarted coordinator that performs a stored emit again records nothing and gets no events back.
pub async fn record_run_event<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    workspace_id: &WorkspaceId,
    record: RunEventRecord,
    at_ms: u64,
) -> Result<Committed<()>, ApiError> {
    let context = WriteContext::with_default_limits(
        workspace_id.clone(),
        Actor::Run {
            id: record.run_id.as_str().to_owned(),
        },
        None,
    );
    let run_id = record.run_id.as_str().to_owned();
    let run_seq = i64::try_from(record.run_seq).unwrap_or(i64::MAX);
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)
         AND NOT EXISTS (SELECT 1 FROM run_events WHERE run_id = ?2 AND run_seq = ?3)",
        &params![workspace_id.as_str(), run_id.as_str(), run_seq],
    );
    plan.push(
        &format!(
            "INSERT INTO run_events (run_id, run_seq, workspace_seq)
             SELECT ?1, ?2, seq + 1 FROM workspaces WHERE id = ?3 AND {GUARD}"
        ),
        &params![run_id.as_str(), run_seq, workspace_id.as_str()],
    );
    events::record(
        &mut plan,
        &context,
        EventPayload::Run(record),
        i64::try_from(at_ms).unwrap_or(i64::MAX),
    )?;
    let outcome = store.execute(plan).await?;
    Ok(Committed {
        value: (),
        events: outcome.events,
    })
}

/// Builds the record of a run event.
pub fn run_event_record(state: &RunState, run_seq: u64, event: RunEvent) -> RunEventRecord {
    RunEventRecord {
        run_id: state.run_id.clone(),
        block_id: state.block_id.clone(),
        run_seq,
        run_status: state.status,
        event,
    }
}

/// The GitHub repository the task's frame links, with the installation that can see it; a link
/// whose repository the installation no longer sees is refused with what to do.
async fn github_repository_of<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
) -> Result<Option<RunRepository>, ApiError> {
    let Some(frame) = crate::github::frame_of(store, workspace_id, block_id).await? else {
        return Ok(None);
    };
    let Some(link) = crate::github::frame_link(store, workspace_id, &frame).await? else {
        return Ok(None);
    };
    let (installation_id, full_name) =
        crate::github::installation_of_repository(store, link.repository_id)
            .await?
            .ok_or_else(|| {
                ApiError::rule_violated(
                    "repository_unreachable",
                    format!(
                        "The service links {}, which the GitHub App's installation no longer sees; \
                         grant it access on GitHub or link another repository.",
                        link.full_name
                    ),
                )
            })?;
    Ok(Some(RunRepository::Github {
        repository: full_name,
        repository_id: link.repository_id,
        installation_id,
        sub_directory: link.sub_directory,
    }))
}

/// Sets a block's status on behalf of a run (`Actor::Run`), through the board's update command so it
/// records `block.updated` like any other change. Unchanged status: nothing is written. A block
/// deleted meanwhile: `None`.
pub async fn write_block_status<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    workspace_id: &WorkspaceId,
    run_id: &RunId,
    block_id: &BlockId,
    status: BlockStatus,
) -> Result<Committed<Option<Block>>, ApiError> {
    let context = WriteContext::with_default_limits(
        workspace_id.clone(),
        Actor::Run {
            id: run_id.as_str().to_owned(),
        },
        None,
    );
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = get_block(store, workspace_id, block_id).await? else {
            return Ok(Committed {
                value: None,
                events: Vec::new(),
            });
        };
        if current.status == status {
            return Ok(Committed {
                value: Some(current),
                events: Vec::new(),
            });
        }
        let request = UpdateBlockRequest {
            rev: current.rev,
            title: None,
            description: None,
            requirements: None,
            status: Some(status),
            position: None,
            size: None,
            repo_url: None,
            model_id: None,
            archived: None,
        };
        match update_block(store, runtime, &context, block_id, &request).await {
            Ok(committed) => {
                return Ok(Committed {
                    value: Some(committed.value),
                    events: committed.events,
                });
            }
            // Someone edited the block between the read and the write: read again.
            Err(error) if error.code == domain::api::ErrorCode::Conflict => continue,
            Err(error) if error.code == domain::api::ErrorCode::NotFound => {
                return Ok(Committed {
                    value: None,
                    events: Vec::new(),
                });
            }
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::new(
        domain::api::ErrorCode::Conflict,
        "The block kept changing while the run wrote its status; the run retries.",
    ))
}
