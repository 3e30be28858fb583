//! The runs contract: pipelines and run records on the SQLite adapter (the same SQL D1 runs) — the
//! built-in pipelines, custom ones validated with the step named, one live run per task, the
//! dependency gate, the projection, run events recorded at most once per (run, seq), and a run's
//! block status written through the board's command with `Actor::Run`.

mod common;

use common::{Seeded, TestRuntime, seeded_store};
use domain::api::board::CreateBlockRequest;
use domain::api::runs::CreateRunRequest;
use domain::api::{ApiError, ErrorCode};
use domain::board::{Block, BlockStatus};
use domain::event::{Actor, EventPayload, WorkspaceEvent};
use domain::ids::{AccountId, BlockId};
use domain::pipeline::PipelineDraft;
use domain::run::{EngineSettings, RunEvent, RunInput, RunRepository, RunStatus, apply};
use futures_executor::block_on;
use serde_json::json;
use worker_core::runs::{self, RunDefaults};
use worker_core::sqlite::SqliteStore;
use worker_core::{Statement, Store, WriteContext, board};

struct Fixture {
    store: SqliteStore,
    runtime: TestRuntime,
    context: WriteContext,
    account: AccountId,
    defaults: RunDefaults,
}

fn fixture() -> Fixture {
    let Seeded {
        store,
        owner,
        account,
        workspace,
    } = seeded_store("owner");
    Fixture {
        store,
        runtime: TestRuntime::ticking(1_700_000_000_000),
        context: WriteContext {
            workspace_id: workspace,
            actor: Actor::User { id: owner },
            origin: Some("tab-1".to_owned()),
            // The deployment runs a local forge (`local_forge_root` below), so `local:` links are allowed.
            limits: domain::limits::WriteLimits {
                repository_links: domain::limits::RepositoryLinkPolicy {
                    local_forge: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        account,
        defaults: RunDefaults {
            model_id: "scripted-model".to_owned(),
            local_forge_root: Some("/srv/forge".to_owned()),
            settings: EngineSettings::default(),
        },
    }
}

fn body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

impl Fixture {
    fn create(&self, request: serde_json::Value) -> Block {
        let request: CreateBlockRequest = body(request);
        block_on(board::create_block(
            &self.store,
            &self.runtime,
            &self.context,
            &request,
        ))
        .unwrap()
        .value
    }

    /// A service linking `local:demo`, a module, and a task in it.
    fn task(&self) -> Block {
        let frame =
            self.create(json!({"level": "frame", "title": "Payments", "repoUrl": "local:demo"}));
        let module =
            self.create(json!({"level": "module", "title": "Ledger", "parentId": frame.id}));
        self.create(
            json!({"level": "task", "title": "Fix rounding", "parentId": module.id,
                           "description": "Totals are off by a cent"}),
        )
    }

    fn sibling_task(&self, of: &Block) -> Block {
        self.create(json!({"level": "task", "title": "Another", "parentId": of.parent_id}))
    }

    fn start(
        &self,
        block: &BlockId,
        request: serde_json::Value,
    ) -> Result<runs::CreatedRun, ApiError> {
        block_on(runs::create_run(
            &self.store,
            &self.runtime,
            &self.context,
            &self.account,
            block,
            &body::<CreateRunRequest>(request),
            &self.defaults,
        ))
    }

    fn outbox(&self) -> Vec<WorkspaceEvent> {
        let rows: Vec<worker_core::OutboxEvent> = block_on(self.store.all(Statement::new(
            "SELECT seq, body FROM events WHERE workspace_id = ?1 ORDER BY seq",
            &[self.context.workspace_id.as_str().into()],
        )))
        .unwrap();
        rows.into_iter()
            .map(|row| serde_json::from_str(&row.body).unwrap())
            .collect()
    }
}

#[test]
fn every_workspace_has_the_built_in_pipelines_and_custom_ones_are_validated() {
    let f = fixture();
    let ws = &f.context.workspace_id;
    let listed = block_on(runs::list_pipelines(&f.store, ws)).unwrap();
    let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["build", "quick"]);

    let bad: PipelineDraft =
        body(json!({"name": "x", "steps": [{"kind": "coder"}, {"kind": "poet"}]}));
    let error = block_on(runs::create_pipeline(&f.store, &f.runtime, ws, &bad)).unwrap_err();
    assert_eq!(error.status(), 422);
    let details = error.details.unwrap();
    assert_eq!(details["rule"], "invalid_pipeline");
    assert_eq!(details["problems"][0]["field"], "steps[1].kind");

    let good: PipelineDraft = body(json!({"name": "Just code", "steps": [{"kind": "coder"}]}));
    let created = block_on(runs::create_pipeline(&f.store, &f.runtime, ws, &good)).unwrap();
    assert!(created.id.starts_with("pip_") && !created.built_in);
    let renamed: PipelineDraft = body(json!({"name": "Code", "steps": [{"kind": "coder"}]}));
    let updated = block_on(runs::update_pipeline(
        &f.store,
        &f.runtime,
        ws,
        &created.id,
        &renamed,
    ))
    .unwrap();
    assert_eq!(updated.name, "Code");
    assert_eq!(
        block_on(runs::get_pipeline(&f.store, ws, &created.id)).unwrap(),
        Some(updated)
    );
    let fixed = block_on(runs::update_pipeline(
        &f.store, &f.runtime, ws, "build", &renamed,
    ));
    assert_eq!(fixed.unwrap_err().status(), 422);
    assert_eq!(
        block_on(runs::delete_pipeline(&f.store, ws, "quick"))
            .unwrap_err()
            .status(),
        422
    );
    block_on(runs::delete_pipeline(&f.store, ws, &created.id)).unwrap();
    assert_eq!(
        block_on(runs::delete_pipeline(&f.store, ws, &created.id))
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        block_on(runs::list_pipelines(&f.store, ws)).unwrap().len(),
        2
    );
}

#[test]
fn a_run_captures_its_task_and_repository_and_a_task_has_one_live_run() {
    let f = fixture();
    let task = f.task();
    let created = f.start(&task.id, json!({"pipelineId": "quick"})).unwrap();
    assert_eq!(created.record.status, RunStatus::Running);
    assert_eq!(created.record.model_id, "scripted-model");
    let state = &created.setup.state;
    assert_eq!(state.task.title, "Fix rounding");
    let ancestors: Vec<&str> = state
        .task
        .ancestors
        .iter()
        .map(|a| a.title.as_str())
        .collect();
    assert_eq!(
        ancestors,
        ["Payments", "Ledger"],
        "the service first, then the module"
    );
    assert_eq!(
        created.setup.context.repository,
        Some(RunRepository::Local {
            bare_repo_path: "/srv/forge/demo.git".to_owned(),
            base_branch: "main".to_owned()
        })
    );
    let ws = &f.context.workspace_id;
    assert_eq!(
        block_on(runs::get_run(&f.store, ws, &created.record.id)).unwrap(),
        Some(created.record.clone())
    );
    assert_eq!(
        block_on(runs::run_setup(&f.store, &created.record.id)).unwrap(),
        Some(created.setup.clone())
    );

    let second = f
        .start(&task.id, json!({"pipelineId": "build"}))
        .unwrap_err();
    assert_eq!(second.status(), 409);
    assert_eq!(second.details.unwrap()["runId"], created.record.id.as_str());

    // Once the run is over (its projection says cancelled), the task can run again.
    let (cancelled, _) = apply(
        apply(
            state.clone(),
            &RunInput::Start {
                now_ms: 2_000_000_000_000,
            },
        )
        .0,
        &RunInput::Cancel {
            now_ms: 2_000_000_000_001,
        },
    );
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    block_on(runs::update_run_projection(&f.store, &cancelled)).unwrap();
    let listed = block_on(runs::list_runs(
        &f.store,
        ws,
        Some(&task.id),
        Some(RunStatus::Cancelled),
    ))
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].summary.status, RunStatus::Cancelled);
    f.start(&task.id, json!({"pipelineId": "quick", "modelId": "other"}))
        .unwrap();
    assert_eq!(
        block_on(runs::list_runs(&f.store, ws, None, None))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn unfinished_dependencies_refuse_a_run_unless_it_is_queued() {
    let f = fixture();
    let task = f.task();
    let dependency = f.sibling_task(&task);
    let edge: domain::api::board::CreateEdgeRequest =
        body(json!({"from": task.id, "to": dependency.id}));
    block_on(board::create_edge(&f.store, &f.runtime, &f.context, &edge)).unwrap();

    let refused = f
        .start(&task.id, json!({"pipelineId": "quick"}))
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::DependenciesNotDone);
    assert_eq!(refused.details.unwrap()["notDone"], json!([dependency.id]));

    let queued = f
        .start(&task.id, json!({"pipelineId": "quick", "queue": true}))
        .unwrap();
    assert_eq!(queued.record.status, RunStatus::Blocked);
    assert_eq!(queued.record.queued_on, vec![dependency.id.clone()]);
    let ws = &f.context.workspace_id;
    assert_eq!(
        block_on(runs::runs_waiting_on(&f.store, ws, &dependency.id)).unwrap(),
        vec![queued.record.id.clone()]
    );
    assert!(
        block_on(runs::runs_waiting_on(&f.store, ws, &task.id))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_run_needs_a_task_and_a_reachable_repository() {
    let f = fixture();
    let task = f.task();
    let module = task.parent_id.clone().unwrap();
    assert_eq!(
        f.start(&module, json!({"pipelineId": "quick"}))
            .unwrap_err()
            .details
            .unwrap()["rule"],
        "runs_on_tasks_only"
    );
    assert_eq!(
        f.start(&task.id, json!({"pipelineId": "nope"}))
            .unwrap_err()
            .details
            .unwrap()["rule"],
        "unknown_pipeline"
    );
    let orphan_frame = f.create(json!({"level": "frame", "title": "No repo"}));
    let orphan = f.create(json!({"level": "task", "title": "t", "parentId": orphan_frame.id}));
    assert_eq!(
        f.start(&orphan.id, json!({"pipelineId": "quick"}))
            .unwrap_err()
            .details
            .unwrap()["rule"],
        "no_repository"
    );
    let mut closed = fixture();
    closed.defaults.local_forge_root = None;
    let task = closed.task();
    assert_eq!(
        closed
            .start(&task.id, json!({"pipelineId": "quick"}))
            .unwrap_err()
            .details
            .unwrap()["rule"],
        "repository_unreachable"
    );
}

#[test]
fn a_run_event_is_recorded_once_per_run_seq() {
    let f = fixture();
    let task = f.task();
    let created = f.start(&task.id, json!({"pipelineId": "quick"})).unwrap();
    let ws = &f.context.workspace_id;
    let before = f.outbox().len();
    let record = runs::run_event_record(&created.setup.state, 1, RunEvent::Started);
    let first = block_on(runs::record_run_event(
        &f.store,
        &f.runtime,
        ws,
        record.clone(),
        5,
    ))
    .unwrap();
    assert_eq!(first.events.len(), 1);
    let again = block_on(runs::record_run_event(&f.store, &f.runtime, ws, record, 5)).unwrap();
    assert!(again.events.is_empty(), "a replayed emit records nothing");
    let outbox = f.outbox();
    assert_eq!(outbox.len(), before + 1);
    let event = outbox.last().unwrap();
    assert_eq!(event.payload.name(), "run.started");
    assert_eq!(
        event.actor,
        Some(Actor::Run {
            id: created.record.id.as_str().to_owned()
        })
    );
    assert!(matches!(&event.payload, EventPayload::Run(record) if record.run_seq == 1));
}

#[test]
fn a_run_writes_the_block_status_through_the_board_command() {
    let f = fixture();
    let task = f.task();
    let created = f.start(&task.id, json!({"pipelineId": "quick"})).unwrap();
    let ws = &f.context.workspace_id;
    let written = block_on(runs::write_block_status(
        &f.store,
        &f.runtime,
        ws,
        &created.record.id,
        &task.id,
        BlockStatus::InProgress,
    ))
    .unwrap();
    assert_eq!(written.value.unwrap().status, BlockStatus::InProgress);
    assert_eq!(written.events.len(), 1);
    let event: WorkspaceEvent = serde_json::from_str(&written.events[0].body).unwrap();
    assert_eq!(event.payload.name(), "block.updated");
    assert!(matches!(event.actor, Some(Actor::Run { .. })));
    let unchanged = block_on(runs::write_block_status(
        &f.store,
        &f.runtime,
        ws,
        &created.record.id,
        &task.id,
        BlockStatus::InProgress,
    ))
    .unwrap();
    assert!(unchanged.events.is_empty(), "no change, no event");
}

#[test]
fn a_run_uses_the_requested_model_else_the_blocks_else_the_workspaces_else_the_deployments() {
    let f = fixture();
    let ws = &f.context.workspace_id;
    let first = f.task();
    let second = f.sibling_task(&first);
    let third = f.sibling_task(&first);
    let fourth = f.sibling_task(&first);
    // The block's own choice, set (and read back) through the board's update command.
    let chosen = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &second.id,
        &body(json!({"rev": second.rev, "modelId": " claude-sonnet-4 "})),
    ))
    .unwrap()
    .value;
    assert_eq!(chosen.model_id.as_deref(), Some("claude-sonnet-4"));
    assert_eq!(
        block_on(board::get_block(&f.store, ws, &second.id))
            .unwrap()
            .unwrap()
            .model_id
            .as_deref(),
        Some("claude-sonnet-4")
    );
    let model_of = |block: &Block, request: serde_json::Value| {
        f.start(&block.id, request).unwrap().record.model_id
    };
    assert_eq!(
        model_of(&first, json!({"pipelineId": "quick"})),
        "scripted-model"
    );
    assert_eq!(
        model_of(&second, json!({"pipelineId": "quick"})),
        "claude-sonnet-4"
    );

    // A workspace default applies to blocks without a choice of their own.
    let current = block_on(worker_core::workspaces::read_workspace(&f.store, ws))
        .unwrap()
        .unwrap();
    let updated = block_on(worker_core::workspaces::update_workspace(
        &f.store,
        &f.runtime,
        &f.context,
        &current,
        &body(json!({"defaultModelId": "gpt-4o"})),
    ))
    .unwrap()
    .value;
    assert_eq!(updated.default_model_id.as_deref(), Some("gpt-4o"));
    assert_eq!(updated.name, current.name, "only the fields sent change");
    assert_eq!(model_of(&third, json!({"pipelineId": "quick"})), "gpt-4o");
    assert_eq!(
        model_of(&fourth, json!({"pipelineId": "quick", "modelId": "o3"})),
        "o3",
        "the run's own choice wins"
    );

    // Clearing the block's choice (`null`) leaves it to the workspace again.
    let cleared = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &second.id,
        &body(json!({"rev": chosen.rev, "modelId": null})),
    ))
    .unwrap();
    assert_eq!(cleared.value.model_id, None);
    let change = cleared.events.last().unwrap();
    let event: serde_json::Value = serde_json::from_str(&change.body).unwrap();
    assert_eq!(event["data"]["changes"], json!({"modelId": null}));
}
