//! The contract suite: every command against the SQLite adapter (the same SQL D1 runs), including the
//! races ADR 5 guards against. Races are interleaved at the port: a store that yields before executing
//! a plan lets two commands joined on one executor both read before either writes, deterministically.
//! The integration tests under `wrangler dev` (`tests/tests/board_rules.rs`, `races.rs`, `events.rs`)
//! are the same contract on D1.

mod common;

use std::cell::{Cell, RefCell};

use common::{Seeded, TestRuntime, YieldOnce, seeded_store};
use domain::access::{AccessMode, WorkspaceRole};
use domain::api::board::{
    CreateBlockRequest, CreateEdgeRequest, ReparentRequest, UpdateBlockRequest,
};
use domain::api::workspaces::{UpdateWorkspaceRequest, Workspace};
use domain::api::{ApiError, ErrorCode};
use domain::board::{Block, Level, MAX_REPARENT_GUARDED_BLOCKS};
use domain::event::{Actor, EventPayload, WorkspaceEvent};
use domain::hub::sweep_window;
use domain::ids::{AccountId, BlockId, UserId, WorkspaceId};
use futures_executor::block_on;
use futures_util::future::join;
use serde_json::json;
use worker_core::sqlite::{SqliteRows, SqliteStore};
use worker_core::{
    GuardedPlan, PlanOutcome, Runtime, Statement, Store, WriteContext, board, delivery, workspaces,
};

/// A clock that ticks one millisecond per reading, and a counter as the random source.
/// A store with one workspace, its owner, and a command context for them.
struct Fixture {
    store: SqliteStore,
    runtime: TestRuntime,
    context: WriteContext,
    owner: UserId,
}

fn fixture() -> Fixture {
    let Seeded {
        store,
        owner,
        workspace,
        ..
    } = seeded_store("owner");
    Fixture {
        store,
        runtime: TestRuntime::ticking(1_700_000_000_000),
        context: WriteContext {
            workspace_id: workspace,
            actor: Actor::User { id: owner.clone() },
            origin: Some("tab-1".to_owned()),
            limits: domain::limits::WriteLimits::default(),
        },
        owner,
    }
}

fn request<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> T {
    serde_json::from_value(body).unwrap()
}

fn frame(title: &str) -> CreateBlockRequest {
    request(json!({"level": "frame", "title": title}))
}

fn child(level: &str, parent: &BlockId) -> CreateBlockRequest {
    request(json!({"level": level, "title": format!("{level} child"), "parentId": parent}))
}

fn update(rev: i64, fields: serde_json::Value) -> UpdateBlockRequest {
    let mut body = fields;
    body["rev"] = json!(rev);
    request(body)
}

fn reparent(parent: Option<&BlockId>, rev: i64) -> ReparentRequest {
    request(json!({"parentId": parent, "rev": rev}))
}

fn edge(from: &BlockId, to: &BlockId) -> CreateEdgeRequest {
    request(json!({"from": from, "to": to}))
}

fn rule_of(error: &ApiError) -> &str {
    error.details.as_ref().unwrap()["rule"].as_str().unwrap()
}

impl Fixture {
    fn create(&self, request: &CreateBlockRequest) -> Result<Block, ApiError> {
        block_on(board::create_block(
            &self.store,
            &self.runtime,
            &self.context,
            request,
        ))
        .map(|c| c.value)
    }

    fn new_frame(&self) -> Block {
        self.create(&frame("F")).unwrap()
    }

    fn new_child(&self, level: &str, parent: &Block) -> Block {
        self.create(&child(level, &parent.id)).unwrap()
    }

    fn block(&self, id: &BlockId) -> Option<Block> {
        block_on(board::get_block(
            &self.store,
            &self.context.workspace_id,
            id,
        ))
        .unwrap()
    }

    /// The outbox as stored: (seq, event).
    fn outbox(&self) -> Vec<(i64, WorkspaceEvent)> {
        let rows: Vec<worker_core::OutboxEvent> = block_on(self.store.all(Statement::new(
            "SELECT seq, body FROM events WHERE workspace_id = ?1 ORDER BY seq",
            &[self.context.workspace_id.as_str().into()],
        )))
        .unwrap();
        rows.into_iter()
            .map(|row| (row.seq, serde_json::from_str(&row.body).unwrap()))
            .collect()
    }

    fn workspace_seq(&self) -> i64 {
        block_on(board::snapshot(&self.store, &self.context.workspace_id))
            .unwrap()
            .2
    }

    fn guard_rows(&self) -> i64 {
        self.store
            .connection()
            .query_row("SELECT COUNT(*) FROM write_guards", [], |row| row.get(0))
            .unwrap()
    }
}

// ---- Commands, one by one ----------------------------------------------------------------------

#[test]
fn create_block_stores_the_block_and_records_its_event() {
    let f = fixture();
    let committed = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &f.context,
        &frame("Payments"),
    ))
    .unwrap();
    let block = committed.value;
    assert_eq!(
        (block.level, block.rev, block.title.as_str()),
        (Level::Frame, 1, "Payments")
    );
    assert_eq!(f.block(&block.id), Some(block.clone()));

    assert_eq!(committed.events.len(), 1);
    assert_eq!(committed.events[0].seq, 1);
    let event: WorkspaceEvent = serde_json::from_str(&committed.events[0].body).unwrap();
    assert_eq!(
        event.seq, 1,
        "SQLite wrote the sequence number into the event's JSON"
    );
    assert_eq!(
        event.actor,
        Some(Actor::User {
            id: f.owner.clone()
        })
    );
    assert_eq!(event.origin.as_deref(), Some("tab-1"));
    assert_eq!(
        event.payload,
        EventPayload::BlockCreated {
            block: block.clone()
        }
    );
    assert_eq!(f.outbox(), vec![(1, event)]);

    let (blocks, edges, seq) =
        block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!((blocks.len(), edges.len(), seq), (1, 0, 1));
    assert_eq!(blocks[0], domain::board::BoardBlock::from(&block));
    assert_eq!(f.guard_rows(), 0, "every plan releases its guard");
}

#[test]
fn a_block_created_without_a_position_lands_in_free_space_of_its_parent() {
    let f = fixture();
    let top = f.new_frame();
    let second_frame = f.new_frame();
    assert_ne!(
        top.position, second_frame.position,
        "two frames made without a position do not cover each other"
    );
    let first = f.new_child("module", &top);
    let second = f.new_child("module", &top);
    let rect = |block: &Block| {
        (
            block.position.x,
            block.position.y,
            block.position.x + block.size.width,
            block.position.y + block.size.height,
        )
    };
    let (x0, y0, x1, y1) = rect(&first);
    let (a0, b0, a1, b1) = rect(&second);
    assert!(
        x1 <= a0 || a1 <= x0 || y1 <= b0 || b1 <= y0,
        "{first:?} and {second:?} overlap"
    );
    assert!(
        first.position.y >= 40.0 && second.position.y >= 40.0,
        "children land below the frame's title, not at (0, 0)"
    );
    // A position the request names is kept, even where it overlaps.
    let placed = f
        .create(&request(
            json!({"level": "module", "title": "here", "parentId": top.id,
            "position": {"x": 0, "y": 0}}),
        ))
        .unwrap();
    assert_eq!((placed.position.x, placed.position.y), (0.0, 0.0));
}

#[test]
fn create_block_refuses_what_the_rules_forbid_and_changes_nothing() {
    let f = fixture();
    let top = f.new_frame();
    let task = f.new_child("task", &top);
    let cases: Vec<(CreateBlockRequest, ErrorCode, &str)> = vec![
        (
            request(json!({"level": "task", "title": "orphan"})),
            ErrorCode::RuleViolated,
            "parent_level",
        ),
        (
            child("task", &task.id),
            ErrorCode::RuleViolated,
            "parent_level",
        ),
        (
            request(
                json!({"level": "task", "title": "t", "parentId": top.id, "repoUrl": "https://x/y"}),
            ),
            ErrorCode::RuleViolated,
            "repo_on_non_frame",
        ),
        (
            child("task", &BlockId::from_random([7; 8])),
            ErrorCode::NotFound,
            "parentId",
        ),
        (
            request(json!({"level": "frame", "title": "  "})),
            ErrorCode::ValidationFailed,
            "title",
        ),
    ];
    for (create, code, what) in cases {
        let error = f.create(&create).unwrap_err();
        assert_eq!(error.code, code, "{what}: {error}");
        let details = error.details.clone().unwrap();
        match code {
            ErrorCode::RuleViolated => assert_eq!(rule_of(&error), what),
            // An unknown block is a 404 naming the field.
            ErrorCode::NotFound => assert_eq!(details["field"], what),
            _ => assert_eq!(details["problems"][0]["field"], what),
        }
    }
    assert_eq!(f.workspace_seq(), 2, "refused creates record no event");

    let mut elsewhere = f.context.clone();
    elsewhere.workspace_id = WorkspaceId::from_random([5; 8]);
    let error = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &elsewhere,
        &frame("x"),
    ))
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
}

#[test]
fn update_block_applies_the_change_or_answers_409_with_the_current_block() {
    let f = fixture();
    let top = f
        .create(&request(
            json!({"level": "frame", "title": "F", "repoUrl": "https://github.com/x/r"}),
        ))
        .unwrap();
    let updated = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &top.id,
        &update(1, json!({"title": "G", "repoUrl": null})),
    ))
    .unwrap();
    assert_eq!((updated.value.rev, updated.value.title.as_str()), (2, "G"));
    assert_eq!(updated.value.repo_url, None, "null unlinks the repository");
    assert_eq!(f.block(&top.id), Some(updated.value.clone()));
    assert_eq!(updated.events[0].seq, 2);

    let stale = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &top.id,
        &update(1, json!({"title": "H"})),
    ))
    .unwrap_err();
    assert_eq!(stale.code, ErrorCode::Conflict);
    assert_eq!(stale.status(), 409);
    assert_eq!(stale.details.unwrap()["current"]["rev"], 2);

    let task = f.new_child("task", &top);
    let repo = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &task.id,
        &update(1, json!({"repoUrl": "https://x"})),
    ))
    .unwrap_err();
    assert_eq!(rule_of(&repo), "repo_on_non_frame");
    let missing = block_on(board::update_block(
        &f.store,
        &f.runtime,
        &f.context,
        &BlockId::from_random([9; 8]),
        &update(1, json!({"title": "x"})),
    ))
    .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(f.workspace_seq(), 3);
}

#[test]
fn reparent_moves_a_block_and_refuses_cycles_levels_and_stale_revisions() {
    let f = fixture();
    let a = f.new_frame();
    let b = f.new_frame();
    let module = f.new_child("module", &a);
    let inner = f.new_child("module", &module);

    let moved = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &module.id,
        &request(json!({"parentId": b.id, "rev": 1, "position": {"x": 5, "y": 6}})),
    ))
    .unwrap();
    assert_eq!(moved.value.parent_id.as_ref(), Some(&b.id));
    assert_eq!((moved.value.position.x, moved.value.rev), (5.0, 2));
    let event: WorkspaceEvent = serde_json::from_str(&moved.events[0].body).unwrap();
    assert_eq!(
        event.payload,
        EventPayload::BlockReparented {
            block: moved.value.clone()
        }
    );

    let cycle = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &module.id,
        &reparent(Some(&inner.id), 2),
    ))
    .unwrap_err();
    assert_eq!(rule_of(&cycle), "reparent_cycle");
    let level = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &module.id,
        &reparent(None, 2),
    ))
    .unwrap_err();
    assert_eq!(rule_of(&level), "parent_level");
    let stale = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &module.id,
        &reparent(Some(&a.id), 1),
    ))
    .unwrap_err();
    assert_eq!(stale.status(), 409);
    let missing = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &module.id,
        &reparent(Some(&BlockId::from_random([3; 8])), 2),
    ))
    .unwrap_err();
    // An unknown block is a 404 naming the field.
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(missing.details.unwrap()["field"], "parentId");
    let top = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &a.id,
        &reparent(None, 1),
    ))
    .unwrap();
    assert_eq!(top.value.rev, 2, "a frame may move to the top level");
}

#[test]
fn reparent_under_a_chain_deeper_than_its_guard_can_bind_is_refused() {
    let f = fixture();
    let mut parent = f.new_frame();
    // The frame and MAX - 1 modules below it, as deep as creates go: the guard would check the moved
    // task plus MAX ancestors, one more than it can bind.
    for _ in 1..MAX_REPARENT_GUARDED_BLOCKS {
        parent = f.new_child("module", &parent);
    }
    let top = f.new_frame();
    let task = f.new_child("task", &top);
    let error = block_on(board::reparent_block(
        &f.store,
        &f.runtime,
        &f.context,
        &task.id,
        &reparent(Some(&parent.id), 1),
    ))
    .unwrap_err();
    assert_eq!(rule_of(&error), "nesting_depth");
    assert_eq!(f.block(&task.id).unwrap().parent_id.as_ref(), Some(&top.id));
}

#[test]
fn delete_block_takes_the_subtree_and_every_edge_touching_it() {
    let f = fixture();
    let top = f.new_frame();
    let module = f.new_child("module", &top);
    let task = f.new_child("task", &module);
    let other = f.new_frame();
    let outside = f.new_child("task", &other);
    let into = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&outside.id, &task.id),
    ))
    .unwrap()
    .value;
    let kept = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&outside.id, &other.id),
    ))
    .unwrap()
    .value;

    let deleted = block_on(board::delete_block(
        &f.store, &f.runtime, &f.context, &module.id,
    ))
    .unwrap();
    let mut ids = deleted.value.block_ids.clone();
    ids.sort();
    let mut expected = vec![module.id.clone(), task.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(deleted.value.edge_ids, vec![into.id.clone()]);
    assert!(f.block(&task.id).is_none() && f.block(&top.id).is_some());
    let (blocks, edges, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!(blocks.len(), 3);
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0].0, kept.id);

    let again = block_on(board::delete_block(
        &f.store, &f.runtime, &f.context, &module.id,
    ))
    .unwrap_err();
    assert_eq!(again.code, ErrorCode::NotFound);
}

#[test]
fn edges_refuse_self_duplicates_cycles_and_missing_ends() {
    let f = fixture();
    let top = f.new_frame();
    let a = f.new_child("task", &top);
    let b = f.new_child("task", &top);
    let made = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&a.id, &b.id),
    ))
    .unwrap();
    assert_eq!(
        (made.value.from.clone(), made.value.to.clone()),
        (a.id.clone(), b.id.clone())
    );
    for (request, expected) in [
        (edge(&a.id, &a.id), "self_edge"),
        (edge(&a.id, &b.id), "duplicate_edge"),
        (edge(&b.id, &a.id), "dependency_cycle"),
    ] {
        let error = block_on(board::create_edge(
            &f.store, &f.runtime, &f.context, &request,
        ))
        .unwrap_err();
        assert_eq!(rule_of(&error), expected);
    }
    let missing = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&a.id, &BlockId::from_random([4; 8])),
    ))
    .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(missing.details.unwrap()["field"], "to");

    block_on(board::delete_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &made.value.id,
    ))
    .unwrap();
    let gone = block_on(board::delete_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &made.value.id,
    ))
    .unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    let reverse = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&b.id, &a.id),
    ));
    assert!(
        reverse.is_ok(),
        "with the edge gone, the reverse is no cycle"
    );
}

#[test]
fn workspace_and_membership_changes_record_their_events() {
    let f = fixture();
    let guest = UserId::from_random([0xdd; 8]);
    f.store
        .connection()
        .execute(
            "INSERT INTO users (id, login, created_at) VALUES (?1, 'guest', 1)",
            [guest.as_str()],
        )
        .unwrap();
    let current: Workspace = Workspace {
        id: f.context.workspace_id.clone(),
        account_id: AccountId::from_random([0xbb; 8]),
        name: "Board".to_owned(),
        access_mode: AccessMode::Account,
        default_model_id: None,
        created_at: 1,
        updated_at: 1,
    };
    let renamed = block_on(workspaces::update_workspace(
        &f.store,
        &f.runtime,
        &f.context,
        &current,
        &UpdateWorkspaceRequest {
            name: Some(" New ".to_owned()),
            access_mode: Some(AccessMode::Restricted),
            default_model_id: None,
        },
    ))
    .unwrap();
    assert_eq!(
        (renamed.value.name.as_str(), renamed.value.access_mode),
        ("New", AccessMode::Restricted)
    );
    block_on(workspaces::set_member(
        &f.store,
        &f.runtime,
        &f.context,
        &guest,
        WorkspaceRole::Viewer,
    ))
    .unwrap();
    block_on(workspaces::set_member(
        &f.store,
        &f.runtime,
        &f.context,
        &guest,
        WorkspaceRole::Member,
    ))
    .unwrap();
    block_on(workspaces::remove_member(
        &f.store, &f.runtime, &f.context, &guest,
    ))
    .unwrap();
    let not_member = block_on(workspaces::remove_member(
        &f.store, &f.runtime, &f.context, &guest,
    ))
    .unwrap_err();
    assert_eq!(not_member.code, ErrorCode::NotFound);
    let nobody = block_on(workspaces::set_member(
        &f.store,
        &f.runtime,
        &f.context,
        &UserId::from_random([1; 8]),
        WorkspaceRole::Viewer,
    ))
    .unwrap_err();
    assert_eq!(nobody.code, ErrorCode::NotFound);

    let payloads: Vec<EventPayload> = f
        .outbox()
        .into_iter()
        .map(|(_, event)| event.payload)
        .collect();
    assert_eq!(
        payloads,
        vec![
            EventPayload::WorkspaceUpdated {
                workspace: renamed.value
            },
            EventPayload::MemberChanged {
                user_id: guest.clone(),
                role: Some(WorkspaceRole::Viewer)
            },
            EventPayload::MemberChanged {
                user_id: guest.clone(),
                role: Some(WorkspaceRole::Member)
            },
            EventPayload::MemberChanged {
                user_id: guest,
                role: None
            },
        ]
    );
}

#[test]
fn a_run_or_a_webhook_writes_through_the_same_commands() {
    let f = fixture();
    let top = f.new_frame();
    for actor in [
        Actor::Run {
            id: "run_1".to_owned(),
        },
        Actor::Webhook {
            source: "github".to_owned(),
        },
    ] {
        let context = WriteContext {
            actor: actor.clone(),
            origin: None,
            ..f.context.clone()
        };
        let block = block_on(board::create_block(
            &f.store,
            &f.runtime,
            &context,
            &child("task", &top.id),
        ))
        .unwrap();
        let event: WorkspaceEvent = serde_json::from_str(&block.events[0].body).unwrap();
        assert_eq!((event.actor, event.origin), (Some(actor), None));
    }
}

#[test]
fn sequence_numbers_have_no_gaps_and_match_what_commands_returned() {
    let f = fixture();
    let mut returned = Vec::new();
    let top = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &f.context,
        &frame("F"),
    ))
    .unwrap();
    returned.extend(top.events);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let task = block_on(board::create_block(
            &f.store,
            &f.runtime,
            &f.context,
            &child("task", &top.value.id),
        ))
        .unwrap();
        returned.extend(task.events);
        tasks.push(task.value);
        // A refused command in between takes no number.
        assert!(
            f.create(&request(json!({"level": "task", "title": "orphan"})))
                .is_err()
        );
    }
    for pair in tasks.windows(2) {
        returned.extend(
            block_on(board::create_edge(
                &f.store,
                &f.runtime,
                &f.context,
                &edge(&pair[0].id, &pair[1].id),
            ))
            .unwrap()
            .events,
        );
    }
    returned.extend(
        block_on(board::delete_block(
            &f.store,
            &f.runtime,
            &f.context,
            &tasks[3].id,
        ))
        .unwrap()
        .events,
    );

    let outbox = f.outbox();
    let seqs: Vec<i64> = outbox.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=outbox.len() as i64).collect::<Vec<_>>());
    assert!(outbox.iter().all(|(seq, event)| *seq == event.seq));
    assert_eq!(f.workspace_seq(), outbox.len() as i64);
    let returned_seqs: Vec<i64> = returned.iter().map(|event| event.seq).collect();
    assert_eq!(
        returned_seqs, seqs,
        "each command returned exactly the events it recorded"
    );
}

// ---- Races, interleaved at the port -------------------------------------------------------------

/// A write made behind a command's back, between its read and its plan.
type Interference<'a> = Box<dyn Fn(&SqliteStore) + 'a>;

/// The SQLite store, but every plan waits one turn before it executes (and `before_execute` may write
/// behind the command's back): the shape of two requests that both read before either writes.
struct RacingStore<'a> {
    inner: &'a SqliteStore,
    executed: Cell<usize>,
    before_execute: RefCell<Option<Interference<'a>>>,
}

impl<'a> RacingStore<'a> {
    fn new(inner: &'a SqliteStore) -> RacingStore<'a> {
        RacingStore {
            inner,
            executed: Cell::new(0),
            before_execute: RefCell::new(None),
        }
    }
}

impl Store for RacingStore<'_> {
    type Rows = SqliteRows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<SqliteRows>, ApiError> {
        self.inner.read(statements).await
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        YieldOnce(false).await;
        if let Some(interfere) = self.before_execute.borrow().as_ref() {
            interfere(self.inner);
        }
        self.executed.set(self.executed.get() + 1);
        self.inner.execute(plan).await
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        self.inner.write(statements).await
    }
}

#[test]
fn two_updates_of_one_block_at_one_rev_one_wins_the_other_gets_409() {
    let f = fixture();
    let top = f.new_frame();
    let racing = RacingStore::new(&f.store);
    let first = update(1, json!({"title": "first"}));
    let second = update(1, json!({"title": "second"}));
    let (a, b) = block_on(join(
        board::update_block(&racing, &f.runtime, &f.context, &top.id, &first),
        board::update_block(&racing, &f.runtime, &f.context, &top.id, &second),
    ));
    assert_eq!(a.unwrap().value.title, "first");
    let lost = b.unwrap_err();
    assert_eq!(lost.status(), 409);
    let current = &lost.details.unwrap()["current"];
    assert_eq!(
        (current["rev"].clone(), current["title"].clone()),
        (json!(2), json!("first"))
    );
    assert_eq!(f.workspace_seq(), 2, "only the winner recorded an event");
    assert_eq!(f.guard_rows(), 0);
}

#[test]
fn a_delete_that_loses_to_a_new_child_retries_and_takes_the_child_too() {
    let f = fixture();
    let top = f.new_frame();
    let racing = RacingStore::new(&f.store);
    // The create executes first (it was polled first); the delete read a subtree of one.
    let (created, deleted) = block_on(join(
        board::create_block(&racing, &f.runtime, &f.context, &child("module", &top.id)),
        board::delete_block(&racing, &f.runtime, &f.context, &top.id),
    ));
    let created = created.unwrap().value;
    let deleted = deleted.unwrap();
    assert_eq!(
        racing.executed.get(),
        3,
        "the delete's first plan lost its guard and was retried"
    );
    assert_eq!(deleted.value.block_ids.len(), 2);
    assert!(deleted.value.block_ids.contains(&created.id));
    assert!(f.block(&created.id).is_none(), "no orphan is left behind");
    let seqs: Vec<i64> = f.outbox().iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn a_create_that_loses_to_the_parents_delete_is_refused_with_the_missing_parent() {
    let f = fixture();
    let top = f.new_frame();
    let racing = RacingStore::new(&f.store);
    let (deleted, created) = block_on(join(
        board::delete_block(&racing, &f.runtime, &f.context, &top.id),
        board::create_block(&racing, &f.runtime, &f.context, &child("module", &top.id)),
    ));
    assert_eq!(deleted.unwrap().value.block_ids, vec![top.id.clone()]);
    let error = created.unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.details.unwrap()["field"], "parentId");
    let (blocks, _, seq) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert!(blocks.is_empty());
    assert_eq!(seq, 2);
}

#[test]
fn crossed_moves_cannot_both_win_and_make_a_cycle() {
    let f = fixture();
    let top = f.new_frame();
    let one = f.new_child("module", &top);
    let two = f.new_child("module", &top);
    let racing = RacingStore::new(&f.store);
    let (first, second) = block_on(join(
        board::reparent_block(
            &racing,
            &f.runtime,
            &f.context,
            &one.id,
            &reparent(Some(&two.id), 1),
        ),
        board::reparent_block(
            &racing,
            &f.runtime,
            &f.context,
            &two.id,
            &reparent(Some(&one.id), 1),
        ),
    ));
    assert_eq!(first.unwrap().value.parent_id.as_ref(), Some(&two.id));
    assert_eq!(
        rule_of(&second.unwrap_err()),
        "reparent_cycle",
        "retried, then refused"
    );
    assert_eq!(f.block(&two.id).unwrap().parent_id.as_ref(), Some(&top.id));
}

#[test]
fn crossed_edges_cannot_both_win_and_make_a_cycle() {
    let f = fixture();
    let top = f.new_frame();
    let a = f.new_child("task", &top);
    let b = f.new_child("task", &top);
    let racing = RacingStore::new(&f.store);
    let (first, second) = block_on(join(
        board::create_edge(&racing, &f.runtime, &f.context, &edge(&a.id, &b.id)),
        board::create_edge(&racing, &f.runtime, &f.context, &edge(&b.id, &a.id)),
    ));
    assert!(first.is_ok());
    assert_eq!(rule_of(&second.unwrap_err()), "dependency_cycle");
    let (_, edges, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!(edges.len(), 1);
}

#[test]
fn a_command_that_keeps_losing_its_guard_gives_up_with_409_after_max_attempts() {
    let f = fixture();
    let top = f.new_frame();
    let a = f.new_child("task", &top);
    let b = f.new_child("task", &top);
    let racing = RacingStore::new(&f.store);
    // Another writer changes the edge set between every read and write.
    *racing.before_execute.borrow_mut() = Some(Box::new(|store: &SqliteStore| {
        store
            .connection()
            .execute("UPDATE workspaces SET edges_rev = edges_rev + 1", [])
            .unwrap();
    }));
    let error = block_on(board::create_edge(
        &racing,
        &f.runtime,
        &f.context,
        &edge(&a.id, &b.id),
    ))
    .unwrap_err();
    assert_eq!(error.status(), 409);
    assert_eq!(racing.executed.get(), board::MAX_ATTEMPTS);
    assert_eq!(f.workspace_seq(), 3, "no attempt recorded anything");
    assert_eq!(f.guard_rows(), 0);
}

#[test]
fn a_lost_guard_is_retried_from_a_fresh_read_until_it_holds() {
    let f = fixture();
    let top = f.new_frame();
    let a = f.new_child("task", &top);
    let b = f.new_child("task", &top);
    let racing = RacingStore::new(&f.store);
    let interruptions = Cell::new(2);
    *racing.before_execute.borrow_mut() = Some(Box::new(move |store: &SqliteStore| {
        if interruptions.get() > 0 {
            interruptions.set(interruptions.get() - 1);
            store
                .connection()
                .execute("UPDATE workspaces SET edges_rev = edges_rev + 1", [])
                .unwrap();
        }
    }));
    let made = block_on(board::create_edge(
        &racing,
        &f.runtime,
        &f.context,
        &edge(&a.id, &b.id),
    ))
    .unwrap();
    assert_eq!(racing.executed.get(), 3);
    assert_eq!(made.events.len(), 1);
    assert_eq!(made.events[0].seq, 4);
}

// ---- Delivery bookkeeping ------------------------------------------------------------------------

#[test]
fn the_sweep_sees_only_events_that_inline_delivery_did_not_mark() {
    let f = fixture();
    let top = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &f.context,
        &frame("F"),
    ))
    .unwrap();
    let second = block_on(board::create_block(
        &f.store,
        &f.runtime,
        &f.context,
        &frame("G"),
    ))
    .unwrap();
    let workspace = f.context.workspace_id.as_str();
    let later = f.runtime.now_ms() + domain::hub::SWEEP_SETTLE_MS + 1;

    // Inline delivery confirmed the first event only (the hub answered last_seq = 1).
    block_on(delivery::mark_delivered(
        &f.store,
        workspace,
        top.events[0].seq,
        later,
    ))
    .unwrap();
    let missed = block_on(delivery::workspaces_with_missed_events(
        &f.store,
        sweep_window(later),
    ))
    .unwrap();
    assert_eq!(missed, vec![workspace.to_owned()]);
    let events = block_on(delivery::undelivered_events(&f.store, workspace)).unwrap();
    assert_eq!(events, second.events);
    // Too young to be missed: the writer may still be delivering it.
    let early = block_on(delivery::workspaces_with_missed_events(
        &f.store,
        sweep_window(second_created_at(&second)),
    ))
    .unwrap();
    assert!(early.is_empty());

    block_on(delivery::mark_delivered(&f.store, workspace, 2, later)).unwrap();
    assert!(
        block_on(delivery::workspaces_with_missed_events(
            &f.store,
            sweep_window(later)
        ))
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        block_on(delivery::events_after(&f.store, &f.context.workspace_id, 1)).unwrap(),
        second.events
    );
    let pruned = block_on(delivery::prune_delivered(
        &f.store,
        sweep_window(later + domain::hub::OUTBOX_RETAIN_MS),
    ))
    .unwrap();
    assert_eq!(pruned, 2);
}

#[test]
fn one_workspace_the_sweep_cannot_deliver_does_not_stop_the_others() {
    let f = fixture();
    // Three workspaces with one missed event each: the seeded one and two more of the same owner.
    let mut contexts = vec![f.context.clone()];
    for name in ["second", "third"] {
        let id = WorkspaceId::from_random([name.len() as u8; 8]);
        f.store
            .connection()
            .execute_batch(&format!(
                "INSERT INTO workspaces (id, account_id, name, access_mode, created_by, created_at, updated_at)
                 SELECT '{id}', account_id, '{name}', 'account', created_by, 1, 1 FROM workspaces
                  WHERE id = '{}'",
                f.context.workspace_id
            ))
            .unwrap();
        contexts.push(WriteContext {
            workspace_id: id,
            ..f.context.clone()
        });
    }
    for context in &contexts {
        block_on(board::create_block(
            &f.store,
            &f.runtime,
            context,
            &frame("F"),
        ))
        .unwrap();
    }
    let later = f.runtime.now_ms() + domain::hub::SWEEP_SETTLE_MS + 1;
    let broken = contexts[1].workspace_id.to_string();
    let mut offered = Vec::new();
    let failures = block_on(delivery::redeliver_missed(
        &f.store,
        sweep_window(later),
        later,
        |workspace_id, events| {
            offered.push(workspace_id.clone());
            let broken = workspace_id == broken;
            async move {
                if broken {
                    Err(ApiError::new(ErrorCode::Unavailable, "the hub is down"))
                } else {
                    Ok(events.last().unwrap().seq)
                }
            }
        },
    ))
    .unwrap();
    assert_eq!(
        offered.len(),
        3,
        "every workspace was offered, after the failing one too"
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].workspace_id, broken);
    // The two that were delivered are marked; only the broken one is left for the next sweep.
    let missed = block_on(delivery::workspaces_with_missed_events(
        &f.store,
        sweep_window(later),
    ))
    .unwrap();
    assert_eq!(missed, vec![broken]);
}

#[test]
fn gap_fills_and_sweeps_read_the_outbox_in_pages_bounded_by_bytes() {
    let f = fixture();
    // 80 events of about 20 KB each (1.6 MB): more than one page of outbox text.
    let large = "x".repeat(domain::api::board::DESCRIPTION_MAX_CHARS);
    let mut seqs = Vec::new();
    for n in 0..80 {
        let made = block_on(board::create_block(
            &f.store,
            &f.runtime,
            &f.context,
            &request(json!({"level": "frame", "title": format!("F{n}"), "description": large})),
        ))
        .unwrap();
        seqs.extend(made.events.iter().map(|event| event.seq));
    }
    let page_bytes = |page: &[worker_core::OutboxEvent]| -> i64 {
        page.iter().map(|event| event.body.len() as i64).sum()
    };
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = block_on(delivery::events_after(
            &f.store,
            &f.context.workspace_id,
            after,
        ))
        .unwrap();
        let Some(last) = page.last() else { break };
        assert!(
            page_bytes(&page) <= delivery::OUTBOX_BATCH_BYTES,
            "a page of {} bytes",
            page_bytes(&page)
        );
        after = last.seq;
        read.extend(page.iter().map(|event| event.seq));
    }
    assert_eq!(read, seqs, "paging reads every event once, in order");
    let undelivered = block_on(delivery::undelivered_events(
        &f.store,
        f.context.workspace_id.as_str(),
    ))
    .unwrap();
    assert!(undelivered.len() < seqs.len());
    assert!(page_bytes(&undelivered) <= delivery::OUTBOX_BATCH_BYTES);
    assert_eq!(undelivered[0].seq, seqs[0]);
}

fn second_created_at(committed: &worker_core::Committed<Block>) -> i64 {
    committed.value.created_at
}

#[test]
fn a_rename_racing_a_switch_to_restricted_keeps_both() {
    let f = fixture();
    let loaded = block_on(workspaces::read_workspace(
        &f.store,
        &f.context.workspace_id,
    ))
    .unwrap()
    .expect("the fixture's workspace");
    assert_eq!(loaded.access_mode, AccessMode::Account);
    // Both requests were authorized against the same loaded workspace; the restriction lands first.
    let restricted = block_on(workspaces::update_workspace(
        &f.store,
        &f.runtime,
        &f.context,
        &loaded,
        &UpdateWorkspaceRequest {
            name: None,
            access_mode: Some(AccessMode::Restricted),
            default_model_id: None,
        },
    ))
    .unwrap();
    assert_eq!(restricted.value.access_mode, AccessMode::Restricted);
    let renamed = block_on(workspaces::update_workspace(
        &f.store,
        &f.runtime,
        &f.context,
        &loaded,
        &UpdateWorkspaceRequest {
            name: Some("Renamed".to_owned()),
            access_mode: None,
            default_model_id: None,
        },
    ))
    .unwrap();
    assert_eq!(
        (renamed.value.name.as_str(), renamed.value.access_mode),
        ("Renamed", AccessMode::Restricted),
        "the rename must not reopen the restricted workspace"
    );
    let stored = block_on(workspaces::read_workspace(
        &f.store,
        &f.context.workspace_id,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.access_mode),
        ("Renamed", AccessMode::Restricted)
    );
    // The rename's event tells subscribers the truth too.
    let event: serde_json::Value =
        serde_json::from_str(&renamed.events.last().expect("an event").body).unwrap();
    assert_eq!(
        event["data"]["workspace"]["accessMode"], "restricted",
        "{event}"
    );
}

#[test]
fn a_block_cannot_be_created_deeper_than_it_could_be_moved() {
    let f = fixture();
    // A frame and a chain of modules under it: the deepest module's chain is MAX_NESTING_DEPTH long.
    let mut deepest = f.new_frame();
    for _ in 1..domain::board::MAX_NESTING_DEPTH {
        deepest = f.new_child("module", &deepest);
    }
    let seq_before = f.workspace_seq();
    let error = f.create(&child("task", &deepest.id)).unwrap_err();
    assert_eq!(error.code, ErrorCode::RuleViolated, "{error}");
    assert_eq!(rule_of(&error), "nesting_depth");
    assert_eq!(
        f.workspace_seq(),
        seq_before,
        "a refused create records nothing"
    );
    // One level up there is still room, and the block made there can be moved where it was.
    let parent_of_deepest = deepest.parent_id.clone().unwrap();
    let allowed = f
        .create(&child("task", &parent_of_deepest))
        .expect("a block at the deepest allowed level");
    assert_eq!(allowed.parent_id, Some(parent_of_deepest));
}

/// The fixture with quotas lowered to `quotas` (JSON, as the `QUOTAS` variable takes them).
fn with_quotas(mut f: Fixture, quotas: serde_json::Value) -> Fixture {
    f.context.limits.quotas = domain::limits::Quotas::from_json(&quotas.to_string()).unwrap();
    f
}

#[test]
fn creates_stop_at_the_block_quota_and_a_refusal_changes_nothing() {
    let f = with_quotas(fixture(), json!({ "blocksPerWorkspace": 3 }));
    let top = f.new_frame();
    f.new_child("module", &top);
    f.new_child("module", &top);
    let seq_before = f.workspace_seq();
    let error = f.create(&child("module", &top.id)).unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded, "{error}");
    assert_eq!(error.status(), 422);
    assert_eq!(error.details.unwrap()["quota"], "blocksPerWorkspace");
    assert_eq!(
        f.workspace_seq(),
        seq_before,
        "a refused create records nothing"
    );
    let (blocks, _, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!(blocks.len(), 3);
}

#[test]
fn two_creates_racing_for_the_last_slot_cannot_both_win() {
    let f = with_quotas(fixture(), json!({ "blocksPerWorkspace": 2 }));
    let top = f.new_frame();
    let racing = RacingStore::new(&f.store);
    let (first, second) = block_on(join(
        board::create_block(&racing, &f.runtime, &f.context, &child("module", &top.id)),
        board::create_block(&racing, &f.runtime, &f.context, &child("module", &top.id)),
    ));
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one of the racing creates fits: {outcomes:?}"
    );
    let refused = if first.is_ok() { second } else { first };
    assert_eq!(refused.unwrap_err().code, ErrorCode::QuotaExceeded);
    let (blocks, _, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!(blocks.len(), 2);
}

#[test]
fn edges_stop_at_the_edge_quota() {
    let f = with_quotas(fixture(), json!({ "edgesPerWorkspace": 1 }));
    let top = f.new_frame();
    let a = f.new_child("task", &top);
    let b = f.new_child("task", &top);
    let c = f.new_child("task", &top);
    block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&a.id, &b.id),
    ))
    .unwrap();
    let error = block_on(board::create_edge(
        &f.store,
        &f.runtime,
        &f.context,
        &edge(&b.id, &c.id),
    ))
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded);
    assert_eq!(error.details.unwrap()["quota"], "edgesPerWorkspace");
    let (_, edges, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
    assert_eq!(edges.len(), 1);
}

#[test]
fn a_service_links_only_https_repositories_on_allowed_hosts() {
    let f = fixture();
    let linked = f
        .create(&request(json!({
            "level": "frame", "title": "shop", "repoUrl": "https://github.com/acme/shop"
        })))
        .unwrap();
    // Not a link's shape (400, the published pattern), or the right shape on a host or a local
    // forge this deployment does not have (422 `repository_not_allowed`): both name the field.
    for (bad, code) in [
        (
            "https://internal.example/acme/shop",
            ErrorCode::RuleViolated,
        ),
        ("http://github.com/acme/shop", ErrorCode::ValidationFailed),
        ("file:///etc", ErrorCode::ValidationFailed),
        ("local:shop", ErrorCode::RuleViolated),
    ] {
        let seq_before = f.workspace_seq();
        let error = f
            .create(&request(
                json!({ "level": "frame", "title": "x", "repoUrl": bad }),
            ))
            .unwrap_err();
        assert_eq!(error.code, code, "{bad}: {error}");
        let details = error.details.unwrap();
        if code == ErrorCode::RuleViolated {
            assert_eq!(details["rule"], "repository_not_allowed");
            assert_eq!(details["field"], "repoUrl");
        } else {
            assert_eq!(details["problems"][0]["field"], "repoUrl");
        }
        let error = block_on(board::update_block(
            &f.store,
            &f.runtime,
            &f.context,
            &linked.id,
            &update(1, json!({ "repoUrl": bad })),
        ))
        .unwrap_err();
        assert_eq!(error.code, code, "{bad}: {error}");
        assert_eq!(
            f.workspace_seq(),
            seq_before,
            "{bad}: a refused link changes nothing"
        );
    }
    // With a local forge the deployment accepts its repositories, and unlinking always works.
    let mut local = fixture();
    local.context.limits.repository_links.local_forge = true;
    let frame = local
        .create(&request(
            json!({ "level": "frame", "title": "demo", "repoUrl": "local:demo" }),
        ))
        .unwrap();
    let unlinked = block_on(board::update_block(
        &local.store,
        &local.runtime,
        &local.context,
        &frame.id,
        &update(1, json!({ "repoUrl": null })),
    ))
    .unwrap();
    assert_eq!(unlinked.value.repo_url, None);
}

#[test]
fn a_full_workspace_takes_no_new_member_but_still_changes_roles() {
    // The fixture's workspace has no explicit members (its owner has access through the account).
    let f = with_quotas(fixture(), json!({ "membersPerWorkspace": 1 }));
    let users: Vec<UserId> = (0..2u8)
        .map(|n| {
            let user = UserId::from_random([0xd0 + n; 8]);
            f.store
                .connection()
                .execute(
                    "INSERT INTO users (id, login, created_at) VALUES (?1, ?2, 1)",
                    [user.as_str(), &format!("guest{n}")],
                )
                .unwrap();
            user
        })
        .collect();
    let set = |user: &UserId, role| {
        block_on(workspaces::set_member(
            &f.store, &f.runtime, &f.context, user, role,
        ))
    };
    set(&users[0], WorkspaceRole::Viewer).unwrap();
    let seq_before = f.workspace_seq();
    let error = set(&users[1], WorkspaceRole::Viewer).unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded, "{error}");
    assert_eq!(error.details.unwrap()["quota"], "membersPerWorkspace");
    assert_eq!(
        f.workspace_seq(),
        seq_before,
        "a refused member records nothing"
    );
    set(&users[0], WorkspaceRole::Member).expect("a role change needs no new slot");
}

// ---- Account membership --------------------------------------------------------------------------

#[test]
fn removing_an_account_member_tells_every_workspace_of_the_account_and_keeps_the_last_admin() {
    use worker_core::accounts::{RemoveRefusal, remove_account_member};
    let Seeded {
        store,
        owner,
        account,
        workspace,
    } = seeded_store("owner");
    let colleague = UserId::from_random([0x11; 8]);
    let restricted = WorkspaceId::from_random([0xcd; 8]);
    store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO users (id, login, created_at) VALUES ('{colleague}', 'colleague', 1);
             INSERT INTO memberships (account_id, user_id, role, created_at) VALUES ('{account}', '{colleague}', 'member', 1);
             INSERT INTO workspaces (id, account_id, name, access_mode, created_by, created_at, updated_at)
                 VALUES ('{restricted}', '{account}', 'Closed', 'restricted', '{owner}', 1, 1);
             INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES ('{restricted}', '{colleague}', 'viewer', 1);"
        ))
        .unwrap();
    let runtime = TestRuntime::ticking(1_700_000_000_000);
    let admin = Actor::User { id: owner.clone() };
    let removed = block_on(remove_account_member(
        &store, &runtime, &admin, None, &account, &colleague,
    ))
    .unwrap()
    .expect("a member is removed");
    let mut told: Vec<(WorkspaceId, Option<WorkspaceRole>)> = removed
        .events
        .iter()
        .map(|(workspace_id, events)| {
            assert_eq!(events.len(), 1);
            let event: WorkspaceEvent = serde_json::from_str(&events[0].body).unwrap();
            assert_eq!(&event.workspace_id, workspace_id);
            match event.payload {
                EventPayload::MemberChanged { user_id, role } => {
                    assert_eq!(user_id, colleague);
                    (workspace_id.clone(), role)
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    told.sort();
    let mut expected = vec![
        (workspace.clone(), None),
        (restricted.clone(), Some(WorkspaceRole::Viewer)),
    ];
    expected.sort();
    assert_eq!(
        told, expected,
        "each workspace hears the role the user keeps there"
    );
    // Gone: removing again says so and records nothing.
    assert_eq!(
        block_on(remove_account_member(
            &store, &runtime, &admin, None, &account, &colleague,
        ))
        .unwrap(),
        Err(RemoveRefusal::NotAMember)
    );
    // The last admin stays.
    assert_eq!(
        block_on(remove_account_member(
            &store, &runtime, &admin, None, &account, &owner,
        ))
        .unwrap(),
        Err(RemoveRefusal::LastAdmin)
    );
    let undelivered = block_on(delivery::undelivered_events(&store, workspace.as_str())).unwrap();
    assert_eq!(undelivered.len(), 1, "the refusals recorded no event");
}

#[test]
fn the_store_places_a_block_without_a_position_by_the_domain_rule_inside_the_write() {
    use domain::board::placement::append_slot_among;
    use domain::board::{BoardBlock, Position, Size};
    let f = fixture();
    let frame = f.new_frame();
    // An irregular parent: tasks placed by hand, one of them tall, reaching down past the others.
    for (x, y, height) in [
        (14.0, 40.0, 72.0),
        (228.0, 20.0, 300.0),
        (14.0, 126.0, 72.0),
    ] {
        f.create(&request(
            json!({"level": "task", "title": "by hand", "parentId": frame.id,
            "position": {"x": x, "y": y}, "size": {"width": 200, "height": height}}),
        ))
        .unwrap();
    }
    for n in 0..6 {
        let (blocks, _, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
        let siblings: Vec<(Position, Size)> = blocks
            .iter()
            .filter(|block| block.parent_id.as_ref() == Some(&frame.id) && !block.archived)
            .map(|block| (block.position, block.size))
            .collect();
        let expected = append_slot_among(
            Some(frame.size.width),
            Level::Task,
            domain::board::default_size(Level::Task),
            &siblings,
        );
        let committed = block_on(board::create_block(
            &f.store,
            &f.runtime,
            &f.context,
            &request(
                json!({"level": "task", "title": format!("appended {n}"), "parentId": frame.id}),
            ),
        ))
        .unwrap();
        let block = committed.value;
        assert_eq!(block.position, expected, "appended {n}");
        // The stored row, the snapshot's row and the event all carry the position the write chose.
        assert_eq!(f.block(&block.id), Some(block.clone()));
        let (blocks, _, _) = block_on(board::snapshot(&f.store, &f.context.workspace_id)).unwrap();
        assert!(blocks.contains(&BoardBlock::from(&block)));
        let event: WorkspaceEvent = serde_json::from_str(&committed.events[0].body).unwrap();
        assert_eq!(event.payload, EventPayload::BlockCreated { block });
    }
    // At the top level: four columns, then the next row.
    let frames: Vec<Block> = (0..4).map(|_| f.new_frame()).collect();
    assert_eq!(frames[2].position.y, frame.position.y, "same row");
    assert!(
        frames[3].position.y > frame.position.y,
        "the fifth frame starts a row"
    );
}
