//! A random source that fails: every command that draws an id, a token or a plan's guard returns
//! `entropy_unavailable` (503, retryable) and the store is exactly as it was — no row, no sequence
//! bump, no outbox event — and once the source is back the next command commits with the next seq,
//! no gap. (In workerd a draw can fail, e.g. outside a request; the worker's `WorkerRuntime` hands
//! that failure to these commands instead of panicking the isolate.)

mod common;

use common::{Seeded, TestRuntime, seeded_store};
use domain::access::WorkspaceRole;
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest,
};
use domain::api::runs::CreateRunRequest;
use domain::api::workspaces::UpdateWorkspaceRequest;
use domain::api::{ApiError, ErrorCode};
use domain::board::{Block, BlockStatus};
use domain::event::Actor;
use domain::ids::{AccountId, UserId};
use domain::pipeline::PipelineDraft;
use domain::run::{EngineSettings, RunEvent};
use domain::spend::MicroDollars;
use futures_executor::block_on;
use serde_json::{Value, json};
use worker_core::runs::{self, RunDefaults};
use worker_core::spend::{self, CallAttribution, ReserveRefused};
use worker_core::sqlite::SqliteStore;
use worker_core::{Statement, Store, WriteContext, accounts, board, workspaces};

fn body<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

struct Fixture {
    store: SqliteStore,
    runtime: TestRuntime,
    context: WriteContext,
    owner: UserId,
    account: AccountId,
    colleague: UserId,
}

fn fixture() -> Fixture {
    let Seeded {
        store,
        owner,
        account,
        workspace,
    } = seeded_store("owner");
    let colleague = UserId::from_random([0xee; 8]);
    store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO users (id, login, created_at) VALUES ('{colleague}', 'colleague', 1);
             INSERT INTO memberships (account_id, user_id, role, created_at) VALUES ('{account}', '{colleague}', 'member', 1);"
        ))
        .unwrap();
    Fixture {
        store,
        runtime: TestRuntime::ticking(1_700_000_000_000),
        context: WriteContext {
            workspace_id: workspace,
            actor: Actor::User { id: owner.clone() },
            origin: Some("tab-1".to_owned()),
            limits: domain::limits::WriteLimits {
                repository_links: domain::limits::RepositoryLinkPolicy {
                    local_forge: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        owner,
        account,
        colleague,
    }
}

impl Fixture {
    fn create(&self, request: Value) -> Result<Block, ApiError> {
        block_on(board::create_block(
            &self.store,
            &self.runtime,
            &self.context,
            &body::<CreateBlockRequest>(request),
        ))
        .map(|committed| committed.value)
    }

    /// Every row of every table, in a stable order: what "nothing changed" compares.
    fn everything(&self) -> Vec<(String, Vec<Value>)> {
        #[derive(serde::Deserialize)]
        struct Table {
            name: String,
        }
        let tables: Vec<Table> = block_on(self.store.all(Statement::new(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            &[],
        )))
        .unwrap();
        tables
            .into_iter()
            .map(|table| {
                let mut rows: Vec<Value> = block_on(self.store.all(Statement::new(
                    format!("SELECT * FROM \"{}\"", table.name),
                    &[],
                )))
                .unwrap();
                rows.sort_by_key(Value::to_string);
                (table.name, rows)
            })
            .collect()
    }

    fn seq(&self) -> i64 {
        self.store
            .connection()
            .query_row(
                "SELECT seq FROM workspaces WHERE id = ?1",
                [self.context.workspace_id.as_str()],
                |row| row.get(0),
            )
            .unwrap()
    }
}

fn assert_entropy_unavailable<T: std::fmt::Debug>(command: &str, outcome: Result<T, ApiError>) {
    let error = outcome.expect_err(command);
    assert_eq!(
        error.code,
        ErrorCode::EntropyUnavailable,
        "{command}: {error}"
    );
    assert_eq!(error.status(), 503, "{command}");
    assert_eq!(
        error.details.as_ref().unwrap()["retryable"],
        true,
        "{command}"
    );
}

#[test]
fn every_command_that_draws_fails_closed_and_changes_nothing_then_the_next_one_commits() {
    let f = fixture();
    // The board as the failing commands find it, built while the source works.
    let frame = f
        .create(json!({"level": "frame", "title": "Payments", "repoUrl": "local:demo"}))
        .unwrap();
    let module = f
        .create(json!({"level": "module", "title": "Ledger", "parentId": frame.id}))
        .unwrap();
    let other_module = f
        .create(json!({"level": "module", "title": "Audit", "parentId": frame.id}))
        .unwrap();
    let task = f
        .create(json!({"level": "task", "title": "Fix rounding", "parentId": module.id}))
        .unwrap();
    let second = f
        .create(json!({"level": "task", "title": "Report", "parentId": module.id}))
        .unwrap();
    let third = f
        .create(json!({"level": "task", "title": "Archive", "parentId": module.id}))
        .unwrap();
    let edge = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &body::<CreateEdgeRequest>(json!({"from": task.id, "to": second.id})),
    ))
    .unwrap()
    .value;
    let defaults = RunDefaults {
        model_id: "scripted-model".to_owned(),
        local_forge_root: Some("/srv/forge".to_owned()),
        settings: EngineSettings::default(),
    };
    let run = block_on(runs::create_run(
        &f.store,
        &f.runtime,
        &f.context,
        &f.account,
        &second.id,
        &body::<CreateRunRequest>(json!({"pipelineId": "quick"})),
        &defaults,
    ))
    .unwrap();
    let attribution = CallAttribution {
        account: f.account.clone(),
        workspace: f.context.workspace_id.clone(),
        block: Some(second.id.clone()),
        run: Some(run.record.id.as_str().to_owned()),
        step: Some(0),
        user: None,
        model: "gpt-4o-mini".to_owned(),
    };
    // The account's budget object's book (ADR 27), adopted from D1 as the object does.
    let book = worker_core::sqlite::SqliteStore::with_schema(worker_core::budget::SCHEMA).unwrap();
    let adoption = block_on(spend::adoption(&f.store, &f.account)).unwrap();
    block_on(worker_core::budget::adopt(
        &book,
        "guard_adopt".to_owned(),
        &adoption,
        1,
    ))
    .unwrap();
    let reservation = block_on(spend::reserve(
        &book,
        &f.runtime,
        &attribution,
        MicroDollars(500),
    ))
    .unwrap();
    let workspace = block_on(workspaces::read_workspace(
        &f.store,
        &f.context.workspace_id,
    ))
    .unwrap()
    .unwrap();

    let before = f.everything();
    let seq_before = f.seq();
    f.runtime.entropy_fails.set(true);

    assert_entropy_unavailable(
        "create_block",
        f.create(json!({"level": "task", "title": "New", "parentId": module.id})),
    );
    assert_entropy_unavailable(
        "update_block",
        block_on(board::update_block(
            &f.store,
            &f.runtime,
            &f.context,
            &second.id,
            &body::<UpdateBlockRequest>(json!({"rev": second.rev, "title": "Renamed"})),
        )),
    );
    assert_entropy_unavailable(
        "reparent_block",
        block_on(board::reparent_block(
            &f.store,
            &f.runtime,
            &f.context,
            &second.id,
            &body::<ReparentRequest>(json!({"parentId": other_module.id, "rev": second.rev})),
        )),
    );
    assert_entropy_unavailable(
        "delete_block",
        block_on(board::delete_block(
            &f.store, &f.runtime, &f.context, &second.id,
        )),
    );
    assert_entropy_unavailable(
        "create_edge",
        block_on(board::create_edge(
            &f.store,
            &f.runtime,
            &f.context,
            &body::<CreateEdgeRequest>(json!({"from": second.id, "to": third.id})),
        )),
    );
    assert_entropy_unavailable(
        "delete_edge",
        block_on(board::delete_edge(
            &f.store, &f.runtime, &f.context, &edge.id,
        )),
    );
    assert_entropy_unavailable(
        "update_workspace",
        block_on(workspaces::update_workspace(
            &f.store,
            &f.runtime,
            &f.context,
            &workspace,
            &body::<UpdateWorkspaceRequest>(json!({"name": "Renamed"})),
        )),
    );
    assert_entropy_unavailable(
        "set_member",
        block_on(workspaces::set_member(
            &f.store,
            &f.runtime,
            &f.context,
            &f.colleague,
            WorkspaceRole::Member,
        )),
    );
    assert_entropy_unavailable(
        "remove_member",
        block_on(workspaces::remove_member(
            &f.store,
            &f.runtime,
            &f.context,
            &f.colleague,
        )),
    );
    assert_entropy_unavailable(
        "remove_account_member",
        block_on(accounts::remove_account_member(
            &f.store,
            &f.runtime,
            &Actor::User {
                id: f.owner.clone(),
            },
            None,
            &f.account,
            &f.colleague,
        )),
    );
    assert_entropy_unavailable(
        "create_pipeline",
        block_on(runs::create_pipeline(
            &f.store,
            &f.runtime,
            &f.context.workspace_id,
            &body::<PipelineDraft>(json!({"name": "Just code", "steps": [{"kind": "coder"}]})),
        )),
    );
    assert_entropy_unavailable(
        "create_run",
        block_on(runs::create_run(
            &f.store,
            &f.runtime,
            &f.context,
            &f.account,
            &task.id,
            &body::<CreateRunRequest>(json!({"pipelineId": "quick", "queue": true})),
            &defaults,
        )),
    );
    assert_entropy_unavailable(
        "record_run_event",
        block_on(runs::record_run_event(
            &f.store,
            &f.runtime,
            &f.context.workspace_id,
            runs::run_event_record(&run.setup.state, 1, RunEvent::Started),
            5,
        )),
    );
    assert_entropy_unavailable(
        "write_block_status",
        block_on(runs::write_block_status(
            &f.store,
            &f.runtime,
            &f.context.workspace_id,
            &run.record.id,
            &second.id,
            BlockStatus::InProgress,
        )),
    );
    let book_before = book_rows(&book);
    assert_entropy_unavailable(
        "reserve",
        block_on(spend::reserve(
            &book,
            &f.runtime,
            &attribution,
            MicroDollars(500),
        ))
        .map_err(|refused| match refused {
            ReserveRefused::Failed(error) => error,
            ReserveRefused::BudgetExhausted(exhausted) => exhausted.to_api_error(),
        }),
    );
    let outcome = common::completed_call(
        Some(second.id.clone()),
        Some(run.record.id.as_str().to_owned()),
        300,
    );
    assert_entropy_unavailable(
        "settle_on_book",
        block_on(spend::settle_on_book(
            &book,
            &f.runtime,
            &reservation,
            &outcome,
        )),
    );
    assert_eq!(book_rows(&book), book_before, "the book is untouched");
    assert_entropy_unavailable(
        "record_settlement",
        block_on(spend::record_settlement(
            &f.store,
            &f.runtime,
            &spend::SettlementRecord {
                reservation: reservation.clone(),
                outcome,
                at_ms: 5,
            },
        )),
    );

    assert_eq!(f.seq(), seq_before, "no sequence number was taken");
    assert_eq!(
        f.everything(),
        before,
        "a command that could not draw wrote nothing"
    );

    // The source is back: the next write commits with the very next seq.
    f.runtime.entropy_fails.set(false);
    let created = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &f.context,
        &body::<CreateBlockRequest>(
            json!({"level": "task", "title": "New", "parentId": module.id}),
        ),
    ))
    .unwrap();
    assert_eq!(created.events.len(), 1);
    assert_eq!(created.events[0].seq, seq_before + 1);
}

/// Every row of a budget book, for "nothing changed" comparisons.
fn book_rows(book: &worker_core::sqlite::SqliteStore) -> Vec<String> {
    let mut rows = Vec::new();
    for table in [
        "budget_account",
        "budget_overrides",
        "budget_totals",
        "budget_open",
        "budget_settled",
        "budget_unmirrored",
        "write_guards",
    ] {
        let mut statement = book
            .connection()
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap();
        let columns = statement.column_count();
        let mut query = statement.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|index| format!("{:?}", row.get_ref(index).unwrap()))
                .collect();
            rows.push(format!("{table}: {}", values.join(", ")));
        }
    }
    rows
}
