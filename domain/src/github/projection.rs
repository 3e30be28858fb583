//! Projections of GitHub's state, and what each delivery does to them and to the board.
//!
//! Every decision is `(current projection, delivery) -> (new projection, effects)`. The worker keeps
//! the projections in D1 and performs the effects (block status, notes, the run engine's
//! `PullRequestMerged` input, frame unlinks) in the same guarded batch as the projection write.
//!
//! CI is kept per commit (repository, head sha), not per pull request: a check can be delivered
//! before the `synchronize` that makes its commit the head, and a new push must start from nothing.
//! A pull request's CI is the record of its current head sha.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::board::BlockStatus;
use crate::ids::BlockId;

use super::webhook::{
    CheckRunDelivery, CheckSuiteDelivery, InstallationAction, InstallationDelivery,
    InstallationRepositoriesAction, InstallationRepositoriesDelivery, InstallationRepository,
    IssuePayload, IssuesAction, IssuesDelivery, PullRequestAction, PullRequestDelivery,
    PullRequestReviewDelivery, ReviewVerdict, StatusDelivery,
};

/// The prefix of every branch the harness pushes: `cat/<block id>`.
pub const WORK_BRANCH_PREFIX: &str = "cat/";

/// The block a head branch belongs to, when it is one of ours (`cat/blk_…`).
pub fn block_of_head_branch(head_branch: &str) -> Option<BlockId> {
    head_branch
        .strip_prefix(WORK_BRANCH_PREFIX)
        .and_then(|rest| BlockId::parse(rest).ok())
}

/// The head branch the harness uses for a block.
pub fn head_branch_of_block(block: &BlockId) -> String {
    format!("{WORK_BRANCH_PREFIX}{block}")
}

// ---------------------------------------------------------------------------------------------
// Delivery idempotency
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryDecision {
    /// First time: record the id and apply the delivery, in one batch.
    Apply,
    /// Seen before (a redelivery or a replay): answer 2xx and change nothing.
    AcknowledgeReplay,
}

/// Whether to apply a delivery, given whether its `X-GitHub-Delivery` id is already recorded. The
/// shell records the id in the same batch as the delivery's effects, so a crash between the two
/// cannot apply a delivery twice or lose it.
pub fn decide_delivery(already_recorded: bool) -> DeliveryDecision {
    if already_recorded {
        DeliveryDecision::AcknowledgeReplay
    } else {
        DeliveryDecision::Apply
    }
}

// ---------------------------------------------------------------------------------------------
// CI per commit
// ---------------------------------------------------------------------------------------------

/// One check's latest known outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Pending,
    Passed,
    Failed,
}

/// Where a CI signal came from. Check runs, check suites and commit statuses are separate
/// namespaces: a status context may share a name with a check run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckSource {
    CheckRun,
    CheckSuite,
    Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub source: CheckSource,
    pub name: String,
    pub outcome: CheckOutcome,
    /// GitHub's id of the run, suite or status that gave this outcome: a re-run is a new, larger id,
    /// so a larger id is newer whatever order the deliveries arrive in.
    pub github_id: u64,
    /// For a check run, its suite (so a failed suite that has failing runs is not listed twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite_id: Option<u64>,
}

/// Every CI signal seen for one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRecord {
    /// Keyed by source and check name (the app slug for suites, the context for statuses).
    pub checks: BTreeMap<String, CheckRecord>,
}

/// A commit's CI as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CiState {
    /// No CI signal yet for this commit.
    None,
    Pending,
    Green,
    /// At least one check failed; `failing` names them, sorted.
    Red {
        failing: Vec<String>,
    },
}

/// One CI signal, from any of the three events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiObservation {
    pub repository_id: u64,
    pub head_sha: String,
    pub check: CheckRecord,
}

fn outcome_of(status: Option<&str>, conclusion: Option<&str>) -> CheckOutcome {
    if status.is_some_and(|status| status != "completed") {
        return CheckOutcome::Pending;
    }
    match conclusion {
        None => CheckOutcome::Pending,
        // GitHub's documented conclusions: success, neutral and skipped do not block a merge.
        Some("success" | "neutral" | "skipped") => CheckOutcome::Passed,
        // failure, cancelled, timed_out, action_required, stale, startup_failure, and anything new.
        Some(_) => CheckOutcome::Failed,
    }
}

impl CiObservation {
    pub fn from_check_run(delivery: &CheckRunDelivery) -> Self {
        let run = &delivery.check_run;
        // A `rerequested` run is about to run again: pending whatever it said before.
        let outcome = if delivery.action == "rerequested" {
            CheckOutcome::Pending
        } else {
            outcome_of(Some(&run.status), run.conclusion.as_deref())
        };
        CiObservation {
            repository_id: delivery.repository.id,
            head_sha: run.head_sha.clone(),
            check: CheckRecord {
                source: CheckSource::CheckRun,
                name: run.name.clone(),
                outcome,
                github_id: run.id,
                suite_id: run.check_suite.as_ref().map(|suite| suite.id),
            },
        }
    }

    pub fn from_check_suite(delivery: &CheckSuiteDelivery) -> Self {
        let suite = &delivery.check_suite;
        let name = suite
            .app
            .as_ref()
            .and_then(|app| app.name.clone().or_else(|| app.slug.clone()))
            .unwrap_or_else(|| format!("check suite {}", suite.id));
        let outcome = if delivery.action == "completed" {
            outcome_of(Some("completed"), suite.conclusion.as_deref())
        } else {
            CheckOutcome::Pending
        };
        CiObservation {
            repository_id: delivery.repository.id,
            head_sha: suite.head_sha.clone(),
            check: CheckRecord {
                source: CheckSource::CheckSuite,
                name,
                outcome,
                github_id: suite.id,
                suite_id: Some(suite.id),
            },
        }
    }

    pub fn from_status(delivery: &StatusDelivery) -> Self {
        let outcome = match delivery.state.as_str() {
            "success" => CheckOutcome::Passed,
            "pending" => CheckOutcome::Pending,
            _ => CheckOutcome::Failed,
        };
        CiObservation {
            repository_id: delivery.repository.id,
            head_sha: delivery.sha.clone(),
            check: CheckRecord {
                source: CheckSource::Status,
                name: delivery.context.clone(),
                outcome,
                github_id: delivery.id,
                suite_id: None,
            },
        }
    }
}

fn check_key(check: &CheckRecord) -> String {
    let source = match check.source {
        CheckSource::CheckRun => "run",
        CheckSource::CheckSuite => "suite",
        CheckSource::Status => "status",
    };
    format!("{source}:{}", check.name)
}

/// Whether `incoming` replaces `current` for the same check. A newer GitHub id (a re-run) always
/// wins; for the same id, a completed outcome is never undone by a late "in progress" delivery,
/// except by a re-request (which the caller marks as pending with the same id — see
/// [`apply_ci_observation`]).
fn replaces(current: &CheckRecord, incoming: &CheckRecord, is_rerequest: bool) -> bool {
    use std::cmp::Ordering;
    match incoming.github_id.cmp(&current.github_id) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => {
            is_rerequest
                || current.outcome == CheckOutcome::Pending
                || incoming.outcome != CheckOutcome::Pending
        }
    }
}

/// Adds one CI signal to its commit's record: later results for the same check replace earlier
/// ones, whatever order GitHub delivers them in.
pub fn apply_ci_observation(
    current: &CiRecord,
    observation: &CiObservation,
    is_rerequest: bool,
) -> CiRecord {
    let mut next = current.clone();
    let key = check_key(&observation.check);
    let keep_current = next
        .checks
        .get(&key)
        .is_some_and(|existing| !replaces(existing, &observation.check, is_rerequest));
    if !keep_current {
        next.checks.insert(key, observation.check.clone());
    }
    next
}

impl CiRecord {
    /// Aggregates the record: red if anything failed (naming it), else pending if anything is
    /// still running, else green; `None` when nothing was reported.
    pub fn state(&self) -> CiState {
        if self.checks.is_empty() {
            return CiState::None;
        }
        let suites_with_failing_runs: Vec<u64> = self
            .checks
            .values()
            .filter(|check| {
                check.source == CheckSource::CheckRun && check.outcome == CheckOutcome::Failed
            })
            .filter_map(|check| check.suite_id)
            .collect();
        let mut failing: Vec<String> = self
            .checks
            .values()
            .filter(|check| check.outcome == CheckOutcome::Failed)
            .filter(|check| {
                // A failed suite is named only when none of its runs says what failed.
                !(check.source == CheckSource::CheckSuite
                    && check
                        .suite_id
                        .is_some_and(|suite| suites_with_failing_runs.contains(&suite)))
            })
            .map(|check| check.name.clone())
            .collect();
        if !failing.is_empty() {
            failing.sort();
            failing.dedup();
            return CiState::Red { failing };
        }
        if self
            .checks
            .values()
            .any(|check| check.outcome == CheckOutcome::Pending)
        {
            CiState::Pending
        } else {
            CiState::Green
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pull requests and their block
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestState {
    Open,
    Closed,
    Merged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// No review yet (or only comments).
    None,
    Approved,
    ChangesRequested,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestProjection {
    pub repository_id: u64,
    pub repository_full_name: String,
    pub number: u64,
    pub title: String,
    pub url: String,
    pub head_branch: String,
    pub head_sha: String,
    /// The block of a `cat/<block>` head branch; `None` for pull requests cat-factory did not open.
    pub block: Option<BlockId>,
    pub state: PullRequestState,
    pub review: ReviewState,
    /// The latest verdict per reviewer: one approval does not hide another reviewer's request for
    /// changes.
    #[serde(default)]
    pub reviews: BTreeMap<String, ReviewVerdict>,
    /// The CI of `head_sha`.
    pub ci: CiState,
}

/// What a delivery asks the shell to do. Each is idempotent on its own, so a retried batch is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum GithubEffect {
    /// Set the block's status; `note` is shown on the block (why it moved).
    SetBlockStatus {
        block: BlockId,
        status: BlockStatus,
        note: Option<String>,
    },
    /// Feed the block's live run the run engine's `PullRequestMerged` input (its dependency gate
    /// then sees the block done).
    NotifyRunOfMerge { block: BlockId },
    /// Publish the block's pull request summary (state, review, CI) to the board.
    PublishPullRequest {
        block: BlockId,
        pull_request: PullRequestSummary,
    },
    /// Unlink every frame linked to this repository, keeping the frames and showing the warning.
    UnlinkFramesOfRepository { repository_id: u64, warning: String },
    /// Refresh an imported task from its issue.
    UpdateImportedTask {
        block: BlockId,
        title: String,
        issue_state: IssueState,
    },
}

/// The board's view of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestSummary {
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    pub review: ReviewState,
    pub ci: CiState,
}

impl PullRequestProjection {
    pub fn summary(&self) -> PullRequestSummary {
        PullRequestSummary {
            number: self.number,
            url: self.url.clone(),
            state: self.state,
            review: self.review,
            ci: self.ci.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestDecision {
    pub projection: PullRequestProjection,
    pub effects: Vec<GithubEffect>,
}

fn review_state(reviews: &BTreeMap<String, ReviewVerdict>) -> ReviewState {
    if reviews
        .values()
        .any(|verdict| *verdict == ReviewVerdict::ChangesRequested)
    {
        ReviewState::ChangesRequested
    } else if reviews
        .values()
        .any(|verdict| *verdict == ReviewVerdict::Approved)
    {
        ReviewState::Approved
    } else {
        ReviewState::None
    }
}

/// The block's status for a pull request's state, given where the block is now. A `done` block is
/// never moved back by a late delivery; an open pull request puts the block in review.
fn block_effects(
    projection: &PullRequestProjection,
    block_status: Option<BlockStatus>,
    previous_state: Option<PullRequestState>,
) -> Vec<GithubEffect> {
    let Some(block) = projection.block.clone() else {
        return Vec::new();
    };
    let mut effects = Vec::new();
    let state_changed = previous_state != Some(projection.state);
    match projection.state {
        PullRequestState::Merged => {
            if block_status != Some(BlockStatus::Done) {
                effects.push(GithubEffect::SetBlockStatus {
                    block: block.clone(),
                    status: BlockStatus::Done,
                    note: Some(format!("Pull request #{} was merged.", projection.number)),
                });
            }
            if state_changed {
                effects.push(GithubEffect::NotifyRunOfMerge {
                    block: block.clone(),
                });
            }
        }
        PullRequestState::Closed => {
            if state_changed && block_status.is_some_and(|status| status != BlockStatus::Done) {
                effects.push(GithubEffect::SetBlockStatus {
                    block: block.clone(),
                    status: BlockStatus::Ready,
                    note: Some(format!(
                        "Pull request #{} was closed without merging; the task is ready again.",
                        projection.number
                    )),
                });
            }
        }
        PullRequestState::Open => {
            let in_review_or_done =
                matches!(block_status, Some(BlockStatus::PrReady | BlockStatus::Done));
            if state_changed && block_status.is_some() && !in_review_or_done {
                effects.push(GithubEffect::SetBlockStatus {
                    block: block.clone(),
                    status: BlockStatus::PrReady,
                    note: None,
                });
            }
        }
    }
    effects.push(GithubEffect::PublishPullRequest {
        block,
        pull_request: projection.summary(),
    });
    effects
}

/// A `pull_request` delivery. `ci_of_new_head` is the CI record of the delivery's head sha (empty
/// when none was seen): on `synchronize` the pull request's CI starts again from that commit.
/// `block_status` is the status of the head branch's block, `None` when there is no such block.
pub fn decide_pull_request(
    current: Option<&PullRequestProjection>,
    delivery: &PullRequestDelivery,
    ci_of_new_head: &CiRecord,
    block_status: Option<BlockStatus>,
) -> PullRequestDecision {
    let payload = &delivery.pull_request;
    let state = if payload.merged {
        PullRequestState::Merged
    } else if payload.state == "closed" || delivery.action == PullRequestAction::Closed {
        PullRequestState::Closed
    } else {
        PullRequestState::Open
    };
    // A merge is final: a late `synchronize` or `edited` for a merged pull request changes nothing
    // about its state.
    let state = match current.map(|pr| pr.state) {
        Some(PullRequestState::Merged) => PullRequestState::Merged,
        _ => state,
    };
    // A new push keeps the reviews: GitHub dismisses stale approvals itself (with a `dismissed`
    // delivery) when the repository asks for it.
    let reviews = current.map(|pr| pr.reviews.clone()).unwrap_or_default();
    let projection = PullRequestProjection {
        repository_id: delivery.repository.id,
        repository_full_name: delivery.repository.full_name.clone(),
        number: payload.number,
        title: payload.title.clone(),
        url: payload.html_url.clone(),
        head_branch: payload.head.branch.clone(),
        head_sha: payload.head.sha.clone(),
        block: block_of_head_branch(&payload.head.branch),
        state,
        review: review_state(&reviews),
        reviews,
        ci: ci_of_new_head.state(),
    };
    let effects = block_effects(&projection, block_status, current.map(|pr| pr.state));
    PullRequestDecision {
        projection,
        effects,
    }
}

/// A CI signal for a pull request whose head is `observation.head_sha`: the pull request's CI
/// becomes the commit's aggregated state. A signal for another commit (an older head, or one
/// whose `synchronize` has not arrived) leaves the pull request as it is.
pub fn decide_pull_request_ci(
    current: &PullRequestProjection,
    head_sha: &str,
    ci_of_that_commit: &CiRecord,
) -> PullRequestDecision {
    if current.head_sha != head_sha || current.state != PullRequestState::Open {
        return PullRequestDecision {
            projection: current.clone(),
            effects: Vec::new(),
        };
    }
    let mut projection = current.clone();
    projection.ci = ci_of_that_commit.state();
    let effects = match (&projection.block, projection.ci != current.ci) {
        (Some(block), true) => vec![GithubEffect::PublishPullRequest {
            block: block.clone(),
            pull_request: projection.summary(),
        }],
        _ => Vec::new(),
    };
    PullRequestDecision {
        projection,
        effects,
    }
}

/// A review submitted or dismissed.
pub fn decide_pull_request_review(
    current: &PullRequestProjection,
    delivery: &PullRequestReviewDelivery,
) -> PullRequestDecision {
    let mut projection = current.clone();
    match delivery.verdict {
        // A comment does not change a reviewer's verdict.
        ReviewVerdict::Commented => {}
        ReviewVerdict::Dismissed => {
            projection.reviews.remove(&delivery.reviewer);
        }
        verdict => {
            projection
                .reviews
                .insert(delivery.reviewer.clone(), verdict);
        }
    }
    projection.review = review_state(&projection.reviews);
    let effects = match (&projection.block, projection.review != current.review) {
        (Some(block), true) => vec![GithubEffect::PublishPullRequest {
            block: block.clone(),
            pull_request: projection.summary(),
        }],
        _ => Vec::new(),
    };
    PullRequestDecision {
        projection,
        effects,
    }
}

// ---------------------------------------------------------------------------------------------
// Installations and repositories
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryProjection {
    pub id: u64,
    pub full_name: String,
    pub private: bool,
}

impl From<&InstallationRepository> for RepositoryProjection {
    fn from(repository: &InstallationRepository) -> Self {
        RepositoryProjection {
            id: repository.id,
            full_name: repository.full_name.clone(),
            private: repository.private,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationProjection {
    pub installation_id: u64,
    pub account_login: String,
    pub suspended: bool,
    /// Keyed by GitHub's repository id.
    pub repositories: BTreeMap<u64, RepositoryProjection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationDecision {
    /// `None` once the installation is deleted.
    pub projection: Option<InstallationProjection>,
    pub effects: Vec<GithubEffect>,
}

fn unlink_warning(full_name: &str, why: &str) -> String {
    format!(
        "{full_name} is no longer available to cat-factory ({why}); the service was unlinked. Link it \
         again after granting the GitHub App access."
    )
}

/// `installation` created, deleted, suspended or unsuspended.
pub fn decide_installation(
    current: Option<&InstallationProjection>,
    delivery: &InstallationDelivery,
) -> InstallationDecision {
    let installation = &delivery.installation;
    match delivery.action {
        InstallationAction::Created => InstallationDecision {
            projection: Some(InstallationProjection {
                installation_id: installation.id,
                account_login: installation.account.login.clone(),
                suspended: false,
                repositories: delivery
                    .repositories
                    .iter()
                    .map(|repository| (repository.id, repository.into()))
                    .collect(),
            }),
            effects: Vec::new(),
        },
        InstallationAction::Deleted => InstallationDecision {
            projection: None,
            effects: current
                .map(|projection| {
                    projection
                        .repositories
                        .values()
                        .map(|repository| GithubEffect::UnlinkFramesOfRepository {
                            repository_id: repository.id,
                            warning: unlink_warning(
                                &repository.full_name,
                                "the GitHub App was uninstalled",
                            ),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        InstallationAction::Suspend | InstallationAction::Unsuspend => {
            let suspended = delivery.action == InstallationAction::Suspend;
            let projection = current.cloned().map(|mut projection| {
                projection.suspended = suspended;
                projection
            });
            InstallationDecision {
                projection: projection.or_else(|| {
                    Some(InstallationProjection {
                        installation_id: installation.id,
                        account_login: installation.account.login.clone(),
                        suspended,
                        repositories: BTreeMap::new(),
                    })
                }),
                effects: Vec::new(),
            }
        }
    }
}

/// `installation_repositories` added or removed. A removed repository unlinks its frames (with a
/// warning); the frames and their tasks are never deleted.
pub fn decide_installation_repositories(
    current: Option<&InstallationProjection>,
    delivery: &InstallationRepositoriesDelivery,
) -> InstallationDecision {
    let mut projection = current.cloned().unwrap_or_else(|| InstallationProjection {
        installation_id: delivery.installation.id,
        account_login: delivery.installation.account.login.clone(),
        suspended: false,
        repositories: BTreeMap::new(),
    });
    let mut effects = Vec::new();
    if delivery.action == InstallationRepositoriesAction::Added {
        for repository in &delivery.repositories_added {
            projection
                .repositories
                .insert(repository.id, repository.into());
        }
    }
    // GitHub lists both on either action in some payloads; removals are applied whatever the action.
    for repository in &delivery.repositories_removed {
        projection.repositories.remove(&repository.id);
        effects.push(GithubEffect::UnlinkFramesOfRepository {
            repository_id: repository.id,
            warning: unlink_warning(
                &repository.full_name,
                "it was removed from the GitHub App's installation",
            ),
        });
    }
    InstallationDecision {
        projection: Some(projection),
        effects,
    }
}

// ---------------------------------------------------------------------------------------------
// Issue import
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    Open,
    Closed,
}

impl IssueState {
    fn of(text: &str) -> IssueState {
        if text == "closed" {
            IssueState::Closed
        } else {
            IssueState::Open
        }
    }
}

/// A task made from an issue: the bookkeeping row that lets a second import find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedIssue {
    pub repository_id: u64,
    pub issue_number: u64,
    pub block: BlockId,
    pub title: String,
    pub state: IssueState,
}

/// A task to create from an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTaskFromIssue {
    pub issue_number: u64,
    pub title: String,
    pub issue_url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueImportPlan {
    pub create: Vec<NewTaskFromIssue>,
    /// Already imported, but their title or state changed: refresh the task.
    pub refresh: Vec<GithubEffect>,
    /// Issue numbers already imported and unchanged.
    pub already_imported: Vec<u64>,
}

/// Which issues of one page of `GET /repos/{o}/{r}/issues` become new tasks. Pull requests (the
/// issues API lists them too) and closed issues are skipped; an issue already imported is found by
/// (repository id, number) and never duplicated, also when it appears twice in the same pages.
pub fn plan_issue_import(
    repository_id: u64,
    already_imported: &[ImportedIssue],
    fetched: &[IssuePayload],
) -> IssueImportPlan {
    let mut plan = IssueImportPlan::default();
    for issue in fetched {
        if issue.is_pull_request() || IssueState::of(&issue.state) == IssueState::Closed {
            continue;
        }
        let existing = already_imported.iter().find(|imported| {
            imported.repository_id == repository_id && imported.issue_number == issue.number
        });
        match existing {
            Some(imported) => {
                let state = IssueState::of(&issue.state);
                if imported.title != issue.title || imported.state != state {
                    plan.refresh.push(GithubEffect::UpdateImportedTask {
                        block: imported.block.clone(),
                        title: issue.title.clone(),
                        issue_state: state,
                    });
                } else {
                    plan.already_imported.push(issue.number);
                }
            }
            None if plan
                .create
                .iter()
                .any(|planned| planned.issue_number == issue.number) => {}
            None => plan.create.push(NewTaskFromIssue {
                issue_number: issue.number,
                title: issue.title.clone(),
                issue_url: issue.html_url.clone(),
            }),
        }
    }
    plan
}

/// An `issues` delivery for an issue that may have been imported: edited, closed and reopened
/// refresh the task's title and issue state. An issue never imported (`None`) changes nothing:
/// import is explicit, never automatic.
pub fn decide_issue_delivery(
    imported: Option<&ImportedIssue>,
    delivery: &IssuesDelivery,
) -> (Option<ImportedIssue>, Vec<GithubEffect>) {
    let Some(imported) = imported else {
        return (None, Vec::new());
    };
    let state = match delivery.action {
        IssuesAction::Closed => IssueState::Closed,
        IssuesAction::Reopened => IssueState::Open,
        IssuesAction::Opened | IssuesAction::Edited => IssueState::of(&delivery.issue.state),
    };
    let next = ImportedIssue {
        title: delivery.issue.title.clone(),
        state,
        ..imported.clone()
    };
    if next == *imported {
        return (Some(next), Vec::new());
    }
    let effect = GithubEffect::UpdateImportedTask {
        block: next.block.clone(),
        title: next.title.clone(),
        issue_state: next.state,
    };
    (Some(next), vec![effect])
}

#[cfg(test)]
#[path = "projection_tests.rs"]
mod tests;
