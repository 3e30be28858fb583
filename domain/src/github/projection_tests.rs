use super::*;
use crate::github::webhook::tests::classify_fixture;
use crate::github::webhook::{Delivery, IssueLabel};

const BLOCK: &str = "blk_0123456789abcdef";
const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn block() -> BlockId {
    BlockId::parse(BLOCK).unwrap()
}

fn pull_request_delivery(fixture: &str) -> PullRequestDelivery {
    match classify_fixture("pull_request", fixture) {
        Delivery::PullRequest(delivery) => delivery,
        other => panic!("{other:?}"),
    }
}

fn check_run(
    id: u64,
    name: &str,
    sha: &str,
    status: &str,
    conclusion: Option<&str>,
) -> CiObservation {
    let body = serde_json::json!({
        "action": if status == "completed" { "completed" } else { "created" },
        "check_run": {"id": id, "name": name, "head_sha": sha, "status": status,
                      "conclusion": conclusion, "check_suite": {"id": 5001}},
        "repository": {"id": 700100, "full_name": "acme/billing"}
    });
    match crate::github::webhook::classify("check_run", body.to_string().as_bytes()).unwrap() {
        Delivery::CheckRun(run) => CiObservation::from_check_run(&run),
        other => panic!("{other:?}"),
    }
}

fn status(id: u64, context: &str, sha: &str, state: &str) -> CiObservation {
    let body = serde_json::json!({"id": id, "sha": sha, "context": context, "state": state,
        "repository": {"id": 700100, "full_name": "acme/billing"}});
    match crate::github::webhook::classify("status", body.to_string().as_bytes()).unwrap() {
        Delivery::Status(status) => CiObservation::from_status(&status),
        other => panic!("{other:?}"),
    }
}

fn fold(observations: &[CiObservation]) -> CiRecord {
    observations
        .iter()
        .fold(CiRecord::default(), |record, observation| {
            apply_ci_observation(&record, observation, false)
        })
}

fn red(names: &[&str]) -> CiState {
    CiState::Red {
        failing: names.iter().map(|name| name.to_string()).collect(),
    }
}

#[test]
fn head_branches_map_back_to_their_block() {
    assert_eq!(
        block_of_head_branch("cat/blk_0123456789abcdef"),
        Some(block())
    );
    assert_eq!(head_branch_of_block(&block()), "cat/blk_0123456789abcdef");
    for not_ours in [
        "main",
        "cat/",
        "cat/blk_0123",
        "cat/blk_0123456789abcdef/extra",
        "feature/blk_0123456789abcdef",
        "cat/ws_0123456789abcdef",
        "CAT/blk_0123456789abcdef",
    ] {
        assert_eq!(block_of_head_branch(not_ours), None, "{not_ours}");
    }
}

#[test]
fn a_delivery_id_seen_before_is_acknowledged_without_effect() {
    assert_eq!(decide_delivery(false), DeliveryDecision::Apply);
    assert_eq!(decide_delivery(true), DeliveryDecision::AcknowledgeReplay);
}

#[test]
fn ci_aggregates_checks_and_statuses() {
    let cases: Vec<(&str, Vec<CiObservation>, CiState)> = vec![
        ("nothing reported", vec![], CiState::None),
        (
            "one queued run",
            vec![check_run(1, "test", SHA_A, "queued", None)],
            CiState::Pending,
        ),
        (
            "all passed, neutral and skipped count as passed",
            vec![
                check_run(1, "test", SHA_A, "completed", Some("success")),
                check_run(2, "lint", SHA_A, "completed", Some("neutral")),
                check_run(3, "docs", SHA_A, "completed", Some("skipped")),
                status(10, "ci/jenkins", SHA_A, "success"),
            ],
            CiState::Green,
        ),
        (
            "one failure makes it red even while others run",
            vec![
                check_run(1, "test", SHA_A, "completed", Some("failure")),
                check_run(2, "lint", SHA_A, "in_progress", None),
            ],
            red(&["test"]),
        ),
        (
            "timed out, cancelled and an errored status all fail, sorted by name",
            vec![
                check_run(1, "test", SHA_A, "completed", Some("timed_out")),
                check_run(2, "build", SHA_A, "completed", Some("cancelled")),
                status(10, "ci/jenkins", SHA_A, "error"),
            ],
            red(&["build", "ci/jenkins", "test"]),
        ),
        (
            "a pending status keeps it pending",
            vec![
                check_run(1, "test", SHA_A, "completed", Some("success")),
                status(10, "deploy/preview", SHA_A, "pending"),
            ],
            CiState::Pending,
        ),
    ];
    for (name, observations, expected) in cases {
        assert_eq!(fold(&observations).state(), expected, "{name}");
    }
}

#[test]
fn later_results_for_the_same_check_replace_earlier_ones_whatever_the_delivery_order() {
    let started = check_run(1, "test", SHA_A, "in_progress", None);
    let failed = check_run(1, "test", SHA_A, "completed", Some("failure"));
    let rerun_passed = check_run(2, "test", SHA_A, "completed", Some("success"));
    let cases = [
        (
            "in order",
            vec![started.clone(), failed.clone()],
            red(&["test"]),
        ),
        (
            "completion delivered before start",
            vec![failed.clone(), started.clone()],
            red(&["test"]),
        ),
        (
            "a re-run that passed replaces the failure",
            vec![failed.clone(), rerun_passed.clone()],
            CiState::Green,
        ),
        (
            "a late failure of the old run does not undo the re-run",
            vec![rerun_passed.clone(), failed.clone(), started.clone()],
            CiState::Green,
        ),
        (
            "a later status for the same context replaces the earlier one",
            vec![
                status(10, "ci/jenkins", SHA_A, "failure"),
                status(11, "ci/jenkins", SHA_A, "success"),
            ],
            CiState::Green,
        ),
        (
            "an older status arriving late is ignored",
            vec![
                status(11, "ci/jenkins", SHA_A, "success"),
                status(10, "ci/jenkins", SHA_A, "failure"),
            ],
            CiState::Green,
        ),
    ];
    for (name, observations, expected) in cases {
        assert_eq!(fold(&observations).state(), expected, "{name}");
    }
    let rerequested = apply_ci_observation(&fold(&[failed]), &started, true);
    assert_eq!(
        rerequested.state(),
        CiState::Pending,
        "a re-request makes the same run pending"
    );
}

#[test]
fn a_failed_suite_is_named_only_when_no_run_says_what_failed() {
    let suite_failed = match classify_fixture("check_suite", "check_suite_completed_success") {
        Delivery::CheckSuite(mut suite) => {
            suite.check_suite.conclusion = Some("failure".to_owned());
            CiObservation::from_check_suite(&suite)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fold(std::slice::from_ref(&suite_failed)).state(),
        red(&["GitHub Actions"])
    );
    let with_run = fold(&[
        suite_failed,
        check_run(
            3001,
            "test (ubuntu-latest)",
            SHA_A,
            "completed",
            Some("failure"),
        ),
    ]);
    assert_eq!(with_run.state(), red(&["test (ubuntu-latest)"]));
}

fn opened_projection() -> PullRequestProjection {
    decide_pull_request(
        None,
        &pull_request_delivery("pull_request_opened"),
        &CiRecord::default(),
        Some(BlockStatus::InProgress),
    )
    .projection
}

#[test]
fn an_opened_pull_request_puts_its_block_in_review() {
    let decision = decide_pull_request(
        None,
        &pull_request_delivery("pull_request_opened"),
        &CiRecord::default(),
        Some(BlockStatus::InProgress),
    );
    let projection = &decision.projection;
    assert_eq!(projection.block, Some(block()));
    assert_eq!(projection.state, PullRequestState::Open);
    assert_eq!(projection.head_sha, SHA_A);
    assert_eq!(projection.ci, CiState::None);
    assert_eq!(
        decision.effects,
        vec![
            GithubEffect::SetBlockStatus {
                block: block(),
                status: BlockStatus::PrReady,
                note: None
            },
            GithubEffect::PublishPullRequest {
                block: block(),
                pull_request: projection.summary()
            },
        ]
    );
}

#[test]
fn merged_and_closed_pull_requests_move_the_block() {
    let open = opened_projection();
    let cases: Vec<(&str, &str, BlockStatus, PullRequestState, Vec<GithubEffect>)> = vec![
        (
            "merged → done and the run engine hears of it",
            "pull_request_closed_merged",
            BlockStatus::PrReady,
            PullRequestState::Merged,
            vec![
                GithubEffect::SetBlockStatus {
                    block: block(),
                    status: BlockStatus::Done,
                    note: Some("Pull request #17 was merged.".to_owned()),
                },
                GithubEffect::NotifyRunOfMerge { block: block() },
            ],
        ),
        (
            "closed unmerged → ready with a note",
            "pull_request_closed_unmerged",
            BlockStatus::PrReady,
            PullRequestState::Closed,
            vec![GithubEffect::SetBlockStatus {
                block: block(),
                status: BlockStatus::Ready,
                note: Some(
                    "Pull request #17 was closed without merging; the task is ready again."
                        .to_owned(),
                ),
            }],
        ),
        (
            "closed unmerged never reopens a done block",
            "pull_request_closed_unmerged",
            BlockStatus::Done,
            PullRequestState::Closed,
            vec![],
        ),
    ];
    for (name, fixture, block_status, state, mut expected) in cases {
        let decision = decide_pull_request(
            Some(&open),
            &pull_request_delivery(fixture),
            &CiRecord::default(),
            Some(block_status),
        );
        assert_eq!(decision.projection.state, state, "{name}");
        expected.push(GithubEffect::PublishPullRequest {
            block: block(),
            pull_request: decision.projection.summary(),
        });
        assert_eq!(decision.effects, expected, "{name}");
    }
}

#[test]
fn a_replayed_merge_tells_the_run_once_and_a_late_push_does_not_unmerge() {
    let merged = decide_pull_request(
        Some(&opened_projection()),
        &pull_request_delivery("pull_request_closed_merged"),
        &CiRecord::default(),
        Some(BlockStatus::PrReady),
    )
    .projection;
    let again = decide_pull_request(
        Some(&merged),
        &pull_request_delivery("pull_request_closed_merged"),
        &CiRecord::default(),
        Some(BlockStatus::Done),
    );
    assert!(
        !again.effects.iter().any(|effect| matches!(
            effect,
            GithubEffect::NotifyRunOfMerge { .. } | GithubEffect::SetBlockStatus { .. }
        )),
        "{:?}",
        again.effects
    );
    let late_push = decide_pull_request(
        Some(&merged),
        &pull_request_delivery("pull_request_synchronize"),
        &CiRecord::default(),
        Some(BlockStatus::Done),
    );
    assert_eq!(late_push.projection.state, PullRequestState::Merged);
}

#[test]
fn red_ci_keeps_the_block_in_review_with_the_failing_names_and_a_new_push_resets_it() {
    let open = opened_projection();
    let failing_record = fold(&[check_run(
        3001,
        "test (ubuntu-latest)",
        SHA_A,
        "completed",
        Some("failure"),
    )]);
    let red_decision = decide_pull_request_ci(&open, SHA_A, &failing_record);
    assert_eq!(red_decision.projection.ci, red(&["test (ubuntu-latest)"]));
    assert_eq!(
        red_decision.effects,
        vec![GithubEffect::PublishPullRequest {
            block: block(),
            pull_request: red_decision.projection.summary()
        }],
        "red CI publishes the failing names and never moves the block out of pr_ready"
    );
    let unchanged = decide_pull_request_ci(&red_decision.projection, SHA_A, &failing_record);
    assert!(
        unchanged.effects.is_empty(),
        "the same state publishes nothing"
    );

    let pushed = decide_pull_request(
        Some(&red_decision.projection),
        &pull_request_delivery("pull_request_synchronize"),
        &CiRecord::default(),
        Some(BlockStatus::PrReady),
    );
    assert_eq!(pushed.projection.head_sha, SHA_B);
    assert_eq!(
        pushed.projection.ci,
        CiState::None,
        "a new head sha starts CI again"
    );
    assert!(
        !pushed
            .effects
            .iter()
            .any(|effect| matches!(effect, GithubEffect::SetBlockStatus { .. }))
    );

    let late_old_result = decide_pull_request_ci(&pushed.projection, SHA_A, &failing_record);
    assert_eq!(
        late_old_result.projection.ci,
        CiState::None,
        "the old head's CI no longer counts"
    );
    assert!(late_old_result.effects.is_empty());

    let early_check_for_new_head = fold(&[check_run(
        3002,
        "test (ubuntu-latest)",
        SHA_B,
        "in_progress",
        None,
    )]);
    let with_early = decide_pull_request(
        Some(&red_decision.projection),
        &pull_request_delivery("pull_request_synchronize"),
        &early_check_for_new_head,
        Some(BlockStatus::PrReady),
    );
    assert_eq!(
        with_early.projection.ci,
        CiState::Pending,
        "a check delivered before its synchronize counts once the push arrives"
    );
}

#[test]
fn pull_requests_not_opened_by_cat_factory_touch_no_block() {
    let mut delivery = pull_request_delivery("pull_request_closed_merged");
    delivery.pull_request.head.branch = "feature/login".to_owned();
    let decision = decide_pull_request(None, &delivery, &CiRecord::default(), None);
    assert_eq!(decision.projection.block, None);
    assert!(decision.effects.is_empty());
}

#[test]
fn reviews_keep_each_reviewers_latest_verdict() {
    let review = |reviewer: &str, verdict| PullRequestReviewDelivery {
        pull_request_number: 17,
        reviewer: reviewer.to_owned(),
        verdict,
        repository: pull_request_delivery("pull_request_opened").repository,
    };
    let steps = [
        (
            review("ana", ReviewVerdict::Approved),
            ReviewState::Approved,
        ),
        (
            review("bo", ReviewVerdict::ChangesRequested),
            ReviewState::ChangesRequested,
        ),
        (
            review("ana", ReviewVerdict::Commented),
            ReviewState::ChangesRequested,
        ),
        (review("bo", ReviewVerdict::Approved), ReviewState::Approved),
        (
            review("bo", ReviewVerdict::Dismissed),
            ReviewState::Approved,
        ),
        (review("ana", ReviewVerdict::Dismissed), ReviewState::None),
    ];
    let mut projection = opened_projection();
    for (index, (delivery, expected)) in steps.into_iter().enumerate() {
        let decision = decide_pull_request_review(&projection, &delivery);
        assert_eq!(decision.projection.review, expected, "step {index}");
        assert_eq!(
            decision.effects.is_empty(),
            decision.projection.review == projection.review
        );
        projection = decision.projection;
    }
}

fn installation_created() -> InstallationDelivery {
    match classify_fixture("installation", "installation_created") {
        Delivery::Installation(delivery) => delivery,
        other => panic!("{other:?}"),
    }
}

#[test]
fn installations_track_their_repositories_and_removal_unlinks_never_deletes() {
    let created = decide_installation(None, &installation_created());
    let projection = created.projection.clone().unwrap();
    assert_eq!(projection.repositories.len(), 2);
    assert!(created.effects.is_empty());

    let removed = match classify_fixture(
        "installation_repositories",
        "installation_repositories_removed",
    ) {
        Delivery::InstallationRepositories(delivery) => delivery,
        other => panic!("{other:?}"),
    };
    let decision = decide_installation_repositories(Some(&projection), &removed);
    let after = decision.projection.unwrap();
    assert_eq!(
        after.repositories.keys().copied().collect::<Vec<_>>(),
        vec![700200]
    );
    match decision.effects.as_slice() {
        [
            GithubEffect::UnlinkFramesOfRepository {
                repository_id: 700100,
                warning,
            },
        ] => {
            assert!(warning.contains("acme/billing"), "{warning}")
        }
        other => panic!("{other:?}"),
    }

    let mut added = removed.clone();
    added.action = InstallationRepositoriesAction::Added;
    added.repositories_added = added.repositories_removed.split_off(0);
    let readded = decide_installation_repositories(Some(&after), &added);
    assert_eq!(readded.projection.unwrap().repositories.len(), 2);
    assert!(readded.effects.is_empty());

    let mut suspend = installation_created();
    suspend.action = InstallationAction::Suspend;
    assert!(
        decide_installation(Some(&projection), &suspend)
            .projection
            .unwrap()
            .suspended
    );
    suspend.action = InstallationAction::Unsuspend;
    assert!(
        !decide_installation(Some(&projection), &suspend)
            .projection
            .unwrap()
            .suspended
    );

    let mut deleted = installation_created();
    deleted.action = InstallationAction::Deleted;
    let gone = decide_installation(Some(&projection), &deleted);
    assert_eq!(gone.projection, None);
    assert_eq!(
        gone.effects.len(),
        2,
        "every repository's frames are unlinked"
    );
}

fn issue(number: u64, title: &str, state: &str, is_pull_request: bool) -> IssuePayload {
    IssuePayload {
        number,
        title: title.to_owned(),
        state: state.to_owned(),
        html_url: format!("https://github.com/acme/billing/issues/{number}"),
        labels: vec![IssueLabel {
            name: "cat-factory".to_owned(),
        }],
        pull_request: is_pull_request.then(|| serde_json::json!({"url": "x"})),
    }
}

#[test]
fn importing_twice_never_duplicates_and_refreshes_changed_titles() {
    let fetched = vec![
        issue(31, "Export invoices as CSV", "open", false),
        issue(32, "Fix rounding", "open", false),
        issue(33, "A pull request, not an issue", "open", true),
        issue(34, "Already closed", "closed", false),
        issue(31, "Export invoices as CSV", "open", false),
    ];
    let first = plan_issue_import(700100, &[], &fetched);
    assert_eq!(
        first
            .create
            .iter()
            .map(|task| task.issue_number)
            .collect::<Vec<_>>(),
        vec![31, 32]
    );
    let imported: Vec<ImportedIssue> = first
        .create
        .iter()
        .map(|task| ImportedIssue {
            repository_id: 700100,
            issue_number: task.issue_number,
            block: BlockId::from_random([0, 0, 0, 0, 0, 0, 0, task.issue_number as u8]),
            title: task.title.clone(),
            state: IssueState::Open,
        })
        .collect();
    let second = plan_issue_import(700100, &imported, &fetched);
    assert!(second.create.is_empty(), "{second:?}");
    assert_eq!(second.already_imported, vec![31, 32, 31]);

    let renamed = vec![issue(32, "Fix rounding of VAT", "open", false)];
    let third = plan_issue_import(700100, &imported, &renamed);
    assert_eq!(
        third.refresh,
        vec![GithubEffect::UpdateImportedTask {
            block: imported[1].block.clone(),
            title: "Fix rounding of VAT".to_owned(),
            issue_state: IssueState::Open
        }]
    );
    let other_repository = plan_issue_import(700200, &imported, &renamed);
    assert_eq!(
        other_repository.create.len(),
        1,
        "the same number in another repository is another issue"
    );
}

#[test]
fn issue_deliveries_refresh_imported_tasks_only() {
    let edited = match classify_fixture("issues", "issues_edited") {
        Delivery::Issues(delivery) => delivery,
        other => panic!("{other:?}"),
    };
    let imported = ImportedIssue {
        repository_id: 700100,
        issue_number: 31,
        block: block(),
        title: "Export invoices as CSV".to_owned(),
        state: IssueState::Open,
    };
    let (next, effects) = decide_issue_delivery(Some(&imported), &edited);
    assert_eq!(
        next.as_ref().unwrap().title,
        "Export invoices as CSV (with VAT column)"
    );
    assert_eq!(effects.len(), 1);
    let (_, repeated) = decide_issue_delivery(next.as_ref(), &edited);
    assert!(repeated.is_empty(), "an unchanged issue changes nothing");

    let mut closed = edited.clone();
    closed.action = IssuesAction::Closed;
    let (closed_next, closed_effects) = decide_issue_delivery(next.as_ref(), &closed);
    assert_eq!(closed_next.unwrap().state, IssueState::Closed);
    assert_eq!(
        closed_effects,
        vec![GithubEffect::UpdateImportedTask {
            block: block(),
            title: "Export invoices as CSV (with VAT column)".to_owned(),
            issue_state: IssueState::Closed
        }]
    );
    assert_eq!(decide_issue_delivery(None, &edited), (None, vec![]));
}
