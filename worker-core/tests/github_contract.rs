//! The GitHub storage contract on SQLite (the same SQL D1 runs): installations, links, issue import
//! without duplicates, webhook idempotency, pull requests moving their task, CI naming failing
//! checks, and removed repositories unlinking frames without deleting them.

mod common;

use common::{Seeded, TestRuntime, seeded_store};
use domain::api::ApiError;
use domain::api::ErrorCode;
use domain::api::board::CreateBlockRequest;
use domain::api::github::LinkRepositoryRequest;
use domain::board::{Block, BlockStatus};
use domain::event::Actor;
use domain::github::projection::{InstallationProjection, RepositoryProjection};
use domain::github::webhook::{Delivery, IssuePayload, classify};
use domain::ids::BlockId;
use futures_executor::block_on;
use serde_json::{Value, json};
use worker_core::github::{self, DeliveryOutcome};
use worker_core::sqlite::{SqliteRows, SqliteStore};
use worker_core::store::{GuardedPlan, PlanOutcome, Statement, Store};
use worker_core::{WriteContext, board};

const REPOSITORY_ID: u64 = 501;
const REPOSITORY: &str = "acme/billing";
const INSTALLATION_ID: u64 = 9001;

struct Fixture {
    seeded: Seeded,
    runtime: TestRuntime,
    context: WriteContext,
}

fn fixture() -> Fixture {
    let seeded = seeded_store("owner");
    let context = WriteContext {
        workspace_id: seeded.workspace.clone(),
        actor: Actor::User {
            id: seeded.owner.clone(),
        },
        origin: None,
        limits: domain::limits::WriteLimits::default(),
    };
    let fixture = Fixture {
        seeded,
        runtime: TestRuntime::ticking(1_700_000_000_000),
        context,
    };
    let installation = InstallationProjection {
        installation_id: INSTALLATION_ID,
        account_login: "acme".to_owned(),
        suspended: false,
        repositories: [
            (
                REPOSITORY_ID,
                RepositoryProjection {
                    id: REPOSITORY_ID,
                    full_name: REPOSITORY.to_owned(),
                    private: true,
                },
            ),
            (
                502,
                RepositoryProjection {
                    id: 502,
                    full_name: "acme/web".to_owned(),
                    private: false,
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    block_on(github::store_installation(
        fixture.store(),
        &installation,
        Some(&fixture.seeded.account),
        1,
    ))
    .unwrap();
    fixture
}

impl Fixture {
    fn store(&self) -> &SqliteStore {
        &self.seeded.store
    }

    fn create(&self, body: Value) -> Block {
        let request: CreateBlockRequest = serde_json::from_value(body).unwrap();
        block_on(board::create_block(
            self.store(),
            &self.runtime,
            &self.context,
            &request,
        ))
        .unwrap()
        .value
    }

    fn linked_frame(&self) -> Block {
        let frame = self.create(json!({"level": "frame", "title": "Billing"}));
        block_on(github::link_repository(
            self.store(),
            &self.runtime,
            &self.context,
            &self.seeded.account,
            &frame.id,
            &LinkRepositoryRequest {
                repository: REPOSITORY.to_owned(),
                sub_directory: Some("services/billing/".to_owned()),
            },
            "https://github.com",
        ))
        .unwrap();
        frame
    }

    fn block(&self, id: &BlockId) -> Option<Block> {
        block_on(board::get_block(self.store(), &self.seeded.workspace, id)).unwrap()
    }

    fn deliver(&self, id: &str, event: &str, payload: Value) -> github::AppliedDelivery {
        let delivery = classify(event, &serde_json::to_vec(&payload).unwrap()).unwrap();
        block_on(github::apply_delivery(
            self.store(),
            &self.runtime,
            id,
            &delivery,
        ))
        .unwrap()
    }

    fn count(&self, table: &str) -> i64 {
        self.store()
            .connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }
}

fn repository() -> Value {
    json!({"id": REPOSITORY_ID, "full_name": REPOSITORY, "private": true})
}

fn pull_request(action: &str, block: &BlockId, merged: bool, sha: &str) -> Value {
    let state = if action == "closed" { "closed" } else { "open" };
    json!({
        "action": action,
        "pull_request": {
            "number": 17, "title": "Add export", "html_url": "https://github.com/acme/billing/pull/17",
            "state": state, "merged": merged,
            "head": {"ref": format!("cat/{block}"), "sha": sha},
            "base": {"ref": "main", "sha": "base0"}
        },
        "repository": repository(),
        "installation": {"id": INSTALLATION_ID}
    })
}

fn check_run(id: u64, name: &str, sha: &str, conclusion: Option<&str>) -> Value {
    json!({
        "action": if conclusion.is_some() { "completed" } else { "created" },
        "check_run": {
            "id": id, "name": name, "head_sha": sha,
            "status": if conclusion.is_some() { "completed" } else { "in_progress" },
            "conclusion": conclusion
        },
        "repository": repository()
    })
}

fn issue(number: u64, title: &str, state: &str) -> IssuePayload {
    serde_json::from_value(json!({
        "number": number, "title": title, "state": state,
        "html_url": format!("https://github.com/acme/billing/issues/{number}"), "labels": []
    }))
    .unwrap()
}

#[test]
fn linking_validates_against_the_installations_repositories_and_records_the_state() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let state = block_on(github::block_state(
        fixture.store(),
        &fixture.seeded.workspace,
        &frame.id,
    ))
    .unwrap()
    .unwrap();
    let link = state.repo_link.unwrap();
    assert_eq!(link.repository, REPOSITORY);
    assert_eq!(link.sub_directory.as_deref(), Some("services/billing"));
    assert_eq!(
        link.url,
        "https://github.com/acme/billing/tree/HEAD/services/billing"
    );
    // A repository the installation cannot see, and a task, are refused; nothing changes.
    let events_before = fixture.count("events");
    let task = fixture.create(json!({"level": "task", "parentId": frame.id, "title": "t"}));
    let events_before = events_before + 1;
    for (block, repository, code) in [
        (&frame.id, "acme/secret", ErrorCode::NotFound),
        (&task.id, REPOSITORY, ErrorCode::RuleViolated),
    ] {
        let error = block_on(github::link_repository(
            fixture.store(),
            &fixture.runtime,
            &fixture.context,
            &fixture.seeded.account,
            block,
            &LinkRepositoryRequest {
                repository: repository.to_owned(),
                sub_directory: None,
            },
            "https://github.com",
        ))
        .unwrap_err();
        assert_eq!(error.code, code, "{repository}: {error}");
    }
    assert_eq!(fixture.count("events"), events_before);
    assert_eq!(fixture.count("github_block_links"), 1);
    let page = block_on(github::repositories_page(
        fixture.store(),
        &fixture.seeded.account,
        1,
        1,
    ))
    .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.repositories[0].full_name, REPOSITORY);
    assert_eq!(page.next_page, Some(2));
}

#[test]
fn importing_twice_makes_no_duplicates_and_refreshes_changed_titles() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let link = block_on(github::frame_link(
        fixture.store(),
        &fixture.seeded.workspace,
        &frame.id,
    ))
    .unwrap()
    .unwrap();
    let issues = vec![issue(1, "First", "open"), issue(2, "Second", "open")];
    let first = block_on(github::import_issues(
        fixture.store(),
        &fixture.runtime,
        &fixture.context,
        &frame,
        &link,
        &issues,
    ))
    .unwrap();
    assert_eq!(first.value.created.len(), 2);
    assert!(
        first
            .value
            .created
            .iter()
            .all(|task| task.parent_id.as_ref() == Some(&frame.id))
    );
    let renamed = vec![
        issue(1, "First, renamed", "open"),
        issue(2, "Second", "open"),
        issue(3, "Third", "open"),
    ];
    let second = block_on(github::import_issues(
        fixture.store(),
        &fixture.runtime,
        &fixture.context,
        &frame,
        &link,
        &renamed,
    ))
    .unwrap();
    assert_eq!(second.value.created.len(), 1);
    assert_eq!(second.value.already_imported, vec![2]);
    assert_eq!(second.value.refreshed, vec![1]);
    assert_eq!(fixture.count("github_imported_issues"), 3);
    assert_eq!(fixture.count("blocks WHERE level = 'task'"), 3);
    let renamed_task = &first.value.created[0];
    assert_eq!(
        fixture.block(&renamed_task.id).unwrap().title,
        "First, renamed"
    );
    // An `issues` delivery closing issue 2 shows it closed on its task; a replay changes nothing.
    let closing = json!({
        "action": "closed",
        "issue": {"number": 2, "title": "Second", "state": "closed",
                  "html_url": "https://github.com/acme/billing/issues/2", "labels": []},
        "repository": repository()
    });
    let applied = fixture.deliver("d-issue-2", "issues", closing.clone());
    assert_eq!(applied.outcome, DeliveryOutcome::Applied);
    let task = &first.value.created[1];
    let state = block_on(github::block_state(
        fixture.store(),
        &fixture.seeded.workspace,
        &task.id,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        state.issue.unwrap().state,
        domain::github::projection::IssueState::Closed
    );
    let events = fixture.count("events");
    assert_eq!(
        fixture.deliver("d-issue-2", "issues", closing).outcome,
        DeliveryOutcome::Replay
    );
    assert_eq!(fixture.count("events"), events);
}

#[test]
fn a_merged_pull_request_marks_its_task_done_once_however_often_it_is_delivered() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "Export", "status": "in_progress"}),
    );
    let opened = fixture.deliver(
        "d-open",
        "pull_request",
        pull_request("opened", &task.id, false, "sha1"),
    );
    assert_eq!(opened.outcome, DeliveryOutcome::Applied);
    assert_eq!(
        fixture.block(&task.id).unwrap().status,
        BlockStatus::PrReady
    );
    let merged = pull_request("closed", &task.id, true, "sha1");
    let first = fixture.deliver("d-merge", "pull_request", merged.clone());
    assert_eq!(first.outcome, DeliveryOutcome::Applied);
    assert_eq!(
        first.merged,
        vec![(fixture.seeded.workspace.clone(), task.id.clone())]
    );
    let done = fixture.block(&task.id).unwrap();
    assert_eq!(done.status, BlockStatus::Done);
    let (events, rev) = (fixture.count("events"), done.rev);
    let replay = fixture.deliver("d-merge", "pull_request", merged);
    assert_eq!(replay.outcome, DeliveryOutcome::Replay);
    assert!(replay.merged.is_empty() && replay.events.is_empty());
    assert_eq!(fixture.count("events"), events);
    assert_eq!(fixture.block(&task.id).unwrap().rev, rev);
    assert_eq!(fixture.count("github_webhook_deliveries"), 2);
}

#[test]
fn a_closed_unmerged_pull_request_puts_the_task_back_to_ready_with_a_note() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "Export", "status": "pr_ready"}),
    );
    fixture.deliver(
        "d-open",
        "pull_request",
        pull_request("opened", &task.id, false, "sha1"),
    );
    fixture.deliver(
        "d-close",
        "pull_request",
        pull_request("closed", &task.id, false, "sha1"),
    );
    assert_eq!(fixture.block(&task.id).unwrap().status, BlockStatus::Ready);
    let state = block_on(github::block_state(
        fixture.store(),
        &fixture.seeded.workspace,
        &task.id,
    ))
    .unwrap()
    .unwrap();
    assert!(state.note.unwrap().contains("closed without merging"));
}

#[test]
fn a_red_check_keeps_the_task_in_review_and_names_the_failing_check() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "Export", "status": "in_progress"}),
    );
    // The check arrives before the pull request: CI is kept per commit.
    fixture.deliver(
        "d-check-1",
        "check_run",
        check_run(3001, "lint", "sha1", Some("success")),
    );
    fixture.deliver(
        "d-open",
        "pull_request",
        pull_request("opened", &task.id, false, "sha1"),
    );
    fixture.deliver(
        "d-check-2",
        "check_run",
        check_run(3002, "unit tests", "sha1", Some("failure")),
    );
    let block = fixture.block(&task.id).unwrap();
    assert_eq!(block.status, BlockStatus::PrReady);
    let state = block_on(github::block_state(
        fixture.store(),
        &fixture.seeded.workspace,
        &task.id,
    ))
    .unwrap()
    .unwrap();
    let pull_request = state.pull_request.unwrap();
    assert_eq!(pull_request.ci, "red");
    assert_eq!(pull_request.failing_checks, vec!["unit tests"]);
}

#[test]
fn a_branch_of_a_repository_the_frame_does_not_link_moves_nothing() {
    let fixture = fixture();
    let frame = fixture.create(json!({"level": "frame", "title": "Unlinked"}));
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "t", "status": "in_progress"}),
    );
    let applied = fixture.deliver(
        "d-foreign",
        "pull_request",
        pull_request("closed", &task.id, true, "sha9"),
    );
    assert_eq!(applied.outcome, DeliveryOutcome::Applied);
    assert!(applied.merged.is_empty());
    assert_eq!(
        fixture.block(&task.id).unwrap().status,
        BlockStatus::InProgress
    );
}

#[test]
fn a_removed_repository_unlinks_its_frames_with_a_warning_and_deletes_nothing() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(json!({"level": "task", "parentId": frame.id, "title": "t"}));
    let blocks = fixture.count("blocks");
    let applied = fixture.deliver(
        "d-removed",
        "installation_repositories",
        json!({
            "action": "removed",
            "installation": {"id": INSTALLATION_ID, "account": {"login": "acme", "id": 1}},
            "repositories_added": [],
            "repositories_removed": [{"id": REPOSITORY_ID, "full_name": REPOSITORY, "private": true}]
        }),
    );
    assert_eq!(applied.outcome, DeliveryOutcome::Applied);
    assert_eq!(fixture.count("blocks"), blocks);
    assert!(fixture.block(&frame.id).is_some() && fixture.block(&task.id).is_some());
    assert_eq!(fixture.count("github_block_links"), 0);
    let state = block_on(github::block_state(
        fixture.store(),
        &fixture.seeded.workspace,
        &frame.id,
    ))
    .unwrap()
    .unwrap();
    assert!(state.repo_link.is_none());
    assert!(
        state
            .note
            .unwrap()
            .contains("acme/billing is no longer available")
    );
    let visible = block_on(github::visible_repositories(
        fixture.store(),
        &fixture.seeded.account,
    ))
    .unwrap();
    assert_eq!(visible, vec![(502, "acme/web".to_owned())]);
}

#[test]
fn unknown_events_are_acknowledged_once_and_recorded() {
    let fixture = fixture();
    let payload = json!({"action": "created", "star": true});
    let delivery = classify("star", &serde_json::to_vec(&payload).unwrap()).unwrap();
    assert!(matches!(delivery, Delivery::Ignored { .. }));
    assert_eq!(
        fixture.deliver("d-star", "star", payload.clone()).outcome,
        DeliveryOutcome::Ignored
    );
    assert_eq!(
        fixture.deliver("d-star", "star", payload).outcome,
        DeliveryOutcome::Replay
    );
    assert_eq!(fixture.count("github_webhook_deliveries"), 1);
}

#[test]
fn disconnecting_an_installation_unlinks_the_accounts_frames() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let events = block_on(github::disconnect_installation(
        fixture.store(),
        &fixture.runtime,
        &fixture.seeded.account,
        INSTALLATION_ID,
    ))
    .unwrap();
    assert_eq!(events.len(), 1);
    assert!(fixture.block(&frame.id).is_some());
    assert!(
        block_on(github::installations_of_account(
            fixture.store(),
            &fixture.seeded.account
        ))
        .unwrap()
        .is_empty()
    );
    let error = block_on(github::disconnect_installation(
        fixture.store(),
        &fixture.runtime,
        &fixture.seeded.account,
        INSTALLATION_ID,
    ))
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
}

/// What a [`FaultyStore`] does to one plan before it reaches SQLite.
enum Fault {
    /// The plan fails as a crash or a lost D1 connection would: nothing of it is written.
    Fail,
    /// Another writer changes the board first (between the delivery's reads and its plan).
    Interfere(Box<dyn Fn(&SqliteStore)>),
}

/// The SQLite store, but the first plan that writes `marker` meets `fault` (once).
struct FaultyStore<'a> {
    inner: &'a SqliteStore,
    marker: &'static str,
    fault: std::cell::RefCell<Option<Fault>>,
}

impl<'a> FaultyStore<'a> {
    fn new(inner: &'a SqliteStore, marker: &'static str, fault: Fault) -> Self {
        FaultyStore {
            inner,
            marker,
            fault: std::cell::RefCell::new(Some(fault)),
        }
    }
}

impl Store for FaultyStore<'_> {
    type Rows = SqliteRows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<SqliteRows>, ApiError> {
        self.inner.read(statements).await
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        let writes_marker = plan
            .clone()
            .into_statements()
            .iter()
            .any(|statement| statement.sql.contains(self.marker));
        if writes_marker {
            match self.fault.borrow_mut().take() {
                Some(Fault::Fail) => return Err(ApiError::internal()),
                Some(Fault::Interfere(interfere)) => interfere(self.inner),
                None => {}
            }
        }
        self.inner.execute(plan).await
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        self.inner.write(statements).await
    }
}

fn deliver_through<S: Store>(
    store: &S,
    runtime: &TestRuntime,
    id: &str,
    event: &str,
    payload: &Value,
) -> Result<github::AppliedDelivery, ApiError> {
    let delivery = classify(event, &serde_json::to_vec(payload).unwrap()).unwrap();
    block_on(github::apply_delivery(store, runtime, id, &delivery))
}

impl Fixture {
    fn events_of_type(&self, event_type: &str) -> i64 {
        self.store()
            .connection()
            .query_row(
                "SELECT count(*) FROM events WHERE type = ?1",
                [event_type],
                |row| row.get(0),
            )
            .unwrap()
    }
}

#[test]
fn a_delivery_that_fails_while_moving_its_block_records_nothing_so_the_redelivery_applies_it_once()
{
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "Export", "status": "in_progress"}),
    );
    let opened = pull_request("opened", &task.id, false, "sha1");
    // Linking recorded the frame's `block.github`; the delivery's own are counted from here.
    let github_before = fixture.events_of_type("block.github");
    let failing = FaultyStore::new(fixture.store(), "UPDATE blocks SET", Fault::Fail);
    // The write that moves the block fails (a crash, a lost connection): the whole delivery fails…
    deliver_through(
        &failing,
        &fixture.runtime,
        "d-open",
        "pull_request",
        &opened,
    )
    .expect_err("the injected failure reaches the caller, so GitHub redelivers");
    // …and none of it is recorded: no delivery id, no projection, no state, no event.
    assert_eq!(fixture.count("github_webhook_deliveries"), 0);
    assert_eq!(fixture.count("github_pull_requests"), 0);
    assert_eq!(fixture.events_of_type("block.github"), github_before);
    assert_eq!(
        fixture.block(&task.id).unwrap().status,
        BlockStatus::InProgress
    );
    // GitHub's redelivery (same id) applies it, exactly once.
    let updated_before = fixture.events_of_type("block.updated");
    let redelivered = deliver_through(
        fixture.store(),
        &fixture.runtime,
        "d-open",
        "pull_request",
        &opened,
    )
    .unwrap();
    assert_eq!(redelivered.outcome, DeliveryOutcome::Applied);
    assert_eq!(
        fixture.block(&task.id).unwrap().status,
        BlockStatus::PrReady
    );
    assert_eq!(fixture.events_of_type("block.updated"), updated_before + 1);
    assert_eq!(fixture.events_of_type("block.github"), github_before + 1);
    let again = fixture.deliver("d-open", "pull_request", opened);
    assert_eq!(again.outcome, DeliveryOutcome::Replay);
    assert_eq!(fixture.events_of_type("block.updated"), updated_before + 1);
    assert_eq!(fixture.count("github_webhook_deliveries"), 1);
}

#[test]
fn a_delivery_whose_block_changed_meanwhile_decides_again_and_keeps_the_other_change() {
    let fixture = fixture();
    let frame = fixture.linked_frame();
    let task = fixture.create(
        json!({"level": "task", "parentId": frame.id, "title": "Export", "status": "in_progress"}),
    );
    let task_id = task.id.clone();
    let github_before = fixture.events_of_type("block.github");
    // Someone renames the task between the delivery's reads and its plan: the plan's guard (the
    // block at the rev read) fails, nothing of the delivery is written, and it decides again.
    let rename = move |store: &SqliteStore| {
        let changed = store
            .connection()
            .execute(
                "UPDATE blocks SET title = 'Export to CSV', rev = rev + 1 WHERE id = ?1",
                [task_id.as_str()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    };
    let racing = FaultyStore::new(
        fixture.store(),
        "github_webhook_deliveries",
        Fault::Interfere(Box::new(rename)),
    );
    let merged = deliver_through(
        &racing,
        &fixture.runtime,
        "d-merge",
        "pull_request",
        &pull_request("closed", &task.id, true, "sha1"),
    )
    .unwrap();
    assert_eq!(merged.outcome, DeliveryOutcome::Applied);
    let block = fixture.block(&task.id).unwrap();
    assert_eq!(
        (block.status, block.title.as_str(), block.rev),
        (BlockStatus::Done, "Export to CSV", 3)
    );
    assert_eq!(fixture.count("github_webhook_deliveries"), 1);
    assert_eq!(fixture.events_of_type("block.github"), github_before + 1);
}
