//! The GitHub App's storage and commands (issue 15, ADR 12): installations and the repositories they
//! see, frames linked to repositories, tasks imported from issues, pull requests and CI per commit,
//! each block's GitHub state for the board, and webhook delivery idempotency.
//!
//! Every decision is `domain::github`'s; this module reads what a decision needs and commits its
//! result. A block's GitHub state and its `block.github` event are written in one guarded plan. A
//! pull request, review or CI delivery is ONE plan ([`DeliveryPlan`]): its projection writes, its
//! board effects (block status with `block.updated`, GitHub state with `block.github`) and its
//! `X-GitHub-Delivery` row, guarded by "not recorded yet" and by everything the decision read. So a
//! crash leaves all or nothing (a redelivery redoes it), a replay — even a concurrent one — has no
//! second effect, and two deliveries for the same pull request never lose each other's update.
//! No token is ever stored here.

use domain::api::github::{
    BlockGithub, GithubInstallationView, GithubRepositoryPage, GithubRepositoryView,
    ImportIssuesResult, IssueLinkView, LinkRepositoryRequest, PullRequestView, RepositoryLinkView,
    repository_url, task_title_of_issue,
};
use domain::api::{ApiError, ErrorCode};
use domain::board::{Block, BlockStatus, Level, Position};
use domain::event::{Actor, EventPayload};
use domain::github::app::validate_repository_link;
use domain::github::projection::{
    CiRecord, GithubEffect, ImportedIssue, InstallationProjection, IssueState,
    PullRequestProjection, RepositoryProjection, plan_issue_import,
};
use domain::github::webhook::IssuePayload;
use domain::ids::{AccountId, BlockId, WorkspaceId};
use serde::Deserialize;

use crate::board::{MAX_ATTEMPTS, block_params, conflict_busy, get_block};
use crate::context::{Committed, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, OutboxEvent, Statement, Store};

/// Who a webhook's changes are attributed to on the board.
pub fn webhook_actor() -> Actor {
    Actor::Webhook {
        source: "github".to_owned(),
    }
}

/// The context a webhook writes to `workspace_id` with.
pub fn webhook_context(workspace_id: &WorkspaceId) -> WriteContext {
    WriteContext::with_default_limits(workspace_id.clone(), webhook_actor(), None)
}

fn parse_block_id(text: &str) -> Result<BlockId, ApiError> {
    BlockId::parse(text).map_err(|_| ApiError::internal())
}

fn parse_workspace_id(text: &str) -> Result<WorkspaceId, ApiError> {
    WorkspaceId::parse(text).map_err(|_| ApiError::internal())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Installations and repositories
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct InstallationRow {
    installation_id: i64,
    account_id: Option<String>,
    account_login: String,
    suspended: i64,
}

#[derive(Deserialize)]
struct RepositoryRow {
    repository_id: i64,
    installation_id: i64,
    full_name: String,
    private: i64,
}

/// An installation's projection, and the cat-factory account it is connected to.
pub async fn load_installation<S: Store>(
    store: &S,
    installation_id: u64,
) -> Result<Option<(InstallationProjection, Option<AccountId>)>, ApiError> {
    let mut results = store
        .read(vec![
            Statement::new(
                "SELECT installation_id, account_id, account_login, suspended FROM github_installations
                 WHERE installation_id = ?1",
                &params![to_i64(installation_id)],
            ),
            Statement::new(
                "SELECT repository_id, installation_id, full_name, private FROM github_repositories
                 WHERE installation_id = ?1",
                &params![to_i64(installation_id)],
            ),
        ])
        .await?
        .into_iter();
    let (Some(installations), Some(repositories)) = (results.next(), results.next()) else {
        return Err(ApiError::internal());
    };
    use crate::store::Rows;
    let Some(row) = installations
        .decode::<InstallationRow>()?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let repositories: Vec<RepositoryRow> = repositories.decode()?;
    let account = row
        .account_id
        .as_deref()
        .map(AccountId::parse)
        .transpose()
        .map_err(|_| ApiError::internal())?;
    Ok(Some((
        InstallationProjection {
            installation_id: row.installation_id as u64,
            account_login: row.account_login,
            suspended: row.suspended != 0,
            repositories: repositories
                .into_iter()
                .map(|repository| {
                    (
                        repository.repository_id as u64,
                        RepositoryProjection {
                            id: repository.repository_id as u64,
                            full_name: repository.full_name,
                            private: repository.private != 0,
                        },
                    )
                })
                .collect(),
        },
        account,
    )))
}

/// Writes an installation's projection (and its whole repository list). `account` connects it to a
/// cat-factory account (the setup callback); `None` keeps whatever account it had.
pub async fn store_installation<S: Store>(
    store: &S,
    projection: &InstallationProjection,
    account: Option<&AccountId>,
    now: i64,
) -> Result<(), ApiError> {
    let installation = to_i64(projection.installation_id);
    let mut statements = vec![
        Statement::new(
            "INSERT INTO github_installations (installation_id, account_id, account_login, suspended, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (installation_id) DO UPDATE SET
                 account_id = COALESCE(excluded.account_id, github_installations.account_id),
                 account_login = excluded.account_login, suspended = excluded.suspended,
                 updated_at = excluded.updated_at",
            &params![
                installation,
                account.map(AccountId::as_str),
                projection.account_login.as_str(),
                projection.suspended,
                now
            ],
        ),
        Statement::new(
            "DELETE FROM github_repositories WHERE installation_id = ?1",
            &params![installation],
        ),
    ];
    for repository in projection.repositories.values() {
        statements.push(Statement::new(
            "INSERT INTO github_repositories (repository_id, installation_id, full_name, private, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (repository_id) DO UPDATE SET installation_id = excluded.installation_id,
                 full_name = excluded.full_name, private = excluded.private, updated_at = excluded.updated_at",
            &params![
                to_i64(repository.id),
                installation,
                repository.full_name.as_str(),
                repository.private,
                now
            ],
        ));
    }
    store.write(statements).await?;
    Ok(())
}

/// Forgets an uninstalled installation and its repositories.
pub async fn delete_installation<S: Store>(
    store: &S,
    installation_id: u64,
) -> Result<(), ApiError> {
    store
        .write(vec![
            Statement::new(
                "DELETE FROM github_repositories WHERE installation_id = ?1",
                &params![to_i64(installation_id)],
            ),
            Statement::new(
                "DELETE FROM github_installations WHERE installation_id = ?1",
                &params![to_i64(installation_id)],
            ),
        ])
        .await?;
    Ok(())
}

#[derive(Deserialize)]
struct InstallationViewRow {
    installation_id: i64,
    account_login: String,
    suspended: i64,
    repository_count: i64,
}

/// The installations connected to `account`.
pub async fn installations_of_account<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<Vec<GithubInstallationView>, ApiError> {
    let rows: Vec<InstallationViewRow> = store
        .all(Statement::new(
            "SELECT i.installation_id, i.account_login, i.suspended,
                    (SELECT count(*) FROM github_repositories r WHERE r.installation_id = i.installation_id)
                        AS repository_count
             FROM github_installations i WHERE i.account_id = ?1 ORDER BY i.installation_id",
            &params![account.as_str()],
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| GithubInstallationView {
            installation_id: row.installation_id as u64,
            account_login: row.account_login,
            suspended: row.suspended != 0,
            repository_count: row.repository_count as u64,
        })
        .collect())
}

/// The ids of the installations connected to `account`.
pub async fn installation_ids_of_account<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<Vec<u64>, ApiError> {
    Ok(installations_of_account(store, account)
        .await?
        .into_iter()
        .map(|installation| installation.installation_id)
        .collect())
}

/// Disconnects an installation from `account`: it stays known (webhooks keep its projection true)
/// but no longer serves the account, and every frame of the account's workspaces linked to one of its
/// repositories is unlinked with a warning. 404 when it is not connected to the account.
pub async fn disconnect_installation<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    account: &AccountId,
    installation_id: u64,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let changed = store
        .write(vec![Statement::new(
            "UPDATE github_installations SET account_id = NULL, updated_at = ?3
             WHERE installation_id = ?1 AND account_id = ?2",
            &params![to_i64(installation_id), account.as_str(), runtime.now_ms()],
        )])
        .await?;
    if changed.first().copied().unwrap_or(0) == 0 {
        return Err(ApiError::not_found("This installation"));
    }
    let repositories: Vec<RepositoryRow> = store
        .all(Statement::new(
            "SELECT repository_id, installation_id, full_name, private FROM github_repositories
             WHERE installation_id = ?1",
            &params![to_i64(installation_id)],
        ))
        .await?;
    let mut events = Vec::new();
    for repository in repositories {
        let warning = format!(
            "{} is no longer available to cat-factory (the GitHub installation was disconnected from \
             this account); the service was unlinked. Link it again after connecting GitHub.",
            repository.full_name
        );
        events.extend(
            unlink_frames_of_repository(
                store,
                runtime,
                repository.repository_id as u64,
                Some(account),
                &warning,
            )
            .await?,
        );
    }
    Ok(events)
}

#[derive(Deserialize)]
struct CountRow {
    total: i64,
}

/// One page of the repositories `account`'s installations can see, by name.
pub async fn repositories_page<S: Store>(
    store: &S,
    account: &AccountId,
    page: u32,
    per_page: u32,
) -> Result<GithubRepositoryPage, ApiError> {
    let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
    let mut results = store
        .read(vec![
            Statement::new(
                "SELECT count(*) AS total FROM github_repositories r
                 JOIN github_installations i ON i.installation_id = r.installation_id
                 WHERE i.account_id = ?1",
                &params![account.as_str()],
            ),
            Statement::new(
                "SELECT r.repository_id, r.installation_id, r.full_name, r.private FROM github_repositories r
                 JOIN github_installations i ON i.installation_id = r.installation_id
                 WHERE i.account_id = ?1 ORDER BY lower(r.full_name), r.repository_id LIMIT ?2 OFFSET ?3",
                &params![account.as_str(), i64::from(per_page), offset],
            ),
        ])
        .await?
        .into_iter();
    use crate::store::Rows;
    let (Some(count), Some(rows)) = (results.next(), results.next()) else {
        return Err(ApiError::internal());
    };
    let total = count
        .decode::<CountRow>()?
        .first()
        .map_or(0, |row| row.total);
    let rows: Vec<RepositoryRow> = rows.decode()?;
    let next_page = (offset + i64::from(per_page) < total).then_some(page + 1);
    Ok(GithubRepositoryPage {
        repositories: rows
            .into_iter()
            .map(|row| GithubRepositoryView {
                id: row.repository_id as u64,
                full_name: row.full_name,
                private: row.private != 0,
                installation_id: row.installation_id as u64,
            })
            .collect(),
        next_page,
        total: total as u64,
    })
}

/// `(repository id, owner/name)` of every repository `account`'s installations can see.
pub async fn visible_repositories<S: Store>(
    store: &S,
    account: &AccountId,
) -> Result<Vec<(u64, String)>, ApiError> {
    let rows: Vec<RepositoryRow> = store
        .all(Statement::new(
            "SELECT r.repository_id, r.installation_id, r.full_name, r.private FROM github_repositories r
             JOIN github_installations i ON i.installation_id = r.installation_id
             WHERE i.account_id = ?1 AND i.suspended = 0",
            &params![account.as_str()],
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.repository_id as u64, row.full_name))
        .collect())
}

/// The installation that can see `repository_id`, and the repository's `owner/name`.
pub async fn installation_of_repository<S: Store>(
    store: &S,
    repository_id: u64,
) -> Result<Option<(u64, String)>, ApiError> {
    let row: Option<RepositoryRow> = store
        .first(Statement::new(
            "SELECT r.repository_id, r.installation_id, r.full_name, r.private FROM github_repositories r
             JOIN github_installations i ON i.installation_id = r.installation_id
             WHERE r.repository_id = ?1 AND i.suspended = 0",
            &params![to_i64(repository_id)],
        ))
        .await?;
    Ok(row.map(|row| (row.installation_id as u64, row.full_name)))
}

// ---------------------------------------------------------------------------------------------
// A block's GitHub state
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct StateRow {
    state: String,
}

/// A block's GitHub state as the board shows it (`None`: GitHub never touched it).
pub async fn block_state<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
) -> Result<Option<BlockGithub>, ApiError> {
    let row: Option<StateRow> = store
        .first(Statement::new(
            "SELECT state FROM github_block_state WHERE workspace_id = ?1 AND block_id = ?2",
            &params![workspace_id.as_str(), block_id.as_str()],
        ))
        .await?;
    row.map(|row| serde_json::from_str(&row.state).map_err(|_| ApiError::internal()))
        .transpose()
}

/// The GitHub state of every block of the workspace that has one (blocks deleted since are left out).
pub async fn block_states<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
) -> Result<Vec<BlockGithub>, ApiError> {
    let rows: Vec<StateRow> = store
        .all(Statement::new(
            "SELECT s.state FROM github_block_state s
             JOIN blocks b ON b.workspace_id = s.workspace_id AND b.id = s.block_id
             WHERE s.workspace_id = ?1 ORDER BY s.block_id",
            &params![workspace_id.as_str()],
        ))
        .await?;
    rows.into_iter()
        .map(|row| serde_json::from_str(&row.state).map_err(|_| ApiError::internal()))
        .collect()
}

/// Adds to `plan`: store `state` and record its `block.github` event.
fn push_block_state(
    plan: &mut GuardedPlan,
    context: &WriteContext,
    state: &BlockGithub,
    now: i64,
) -> Result<(), ApiError> {
    let json = serde_json::to_string(state).map_err(|_| ApiError::internal())?;
    plan.push(
        &format!(
            "INSERT INTO github_block_state (workspace_id, block_id, state, updated_at)
             SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}
             ON CONFLICT (workspace_id, block_id) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at"
        ),
        &params![
            context.workspace_id.as_str(),
            state.block_id.as_str(),
            json,
            now
        ],
    );
    events::record(
        plan,
        context,
        EventPayload::BlockGithub {
            github: state.clone(),
        },
        now,
    )
}

/// The guard that a block's stored GitHub state is still `current` (SQL `IS`, so "none yet" holds
/// only while there is none).
const STATE_UNCHANGED: &str =
    "(SELECT state FROM github_block_state WHERE workspace_id = ?1 AND block_id = ?2) IS ?3";

fn state_json(state: Option<&BlockGithub>) -> Result<Option<String>, ApiError> {
    state
        .map(|state| serde_json::to_string(state).map_err(|_| ApiError::internal()))
        .transpose()
}

/// Changes a block's GitHub state with `change` and records `block.github`, retrying from a fresh
/// read when another writer changed it meanwhile. Nothing is written when the state is unchanged or
/// the block is gone. `extra` adds the statements that must commit with the state (a link row).
async fn change_block_state<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    block_id: &BlockId,
    change: impl Fn(&mut BlockGithub),
    extra: impl Fn(&mut GuardedPlan),
) -> Result<Committed<Option<BlockGithub>>, ApiError> {
    let workspace = context.workspace_id.as_str();
    for _ in 0..MAX_ATTEMPTS {
        let current = block_state(store, &context.workspace_id, block_id).await?;
        let mut next = current
            .clone()
            .unwrap_or_else(|| BlockGithub::empty(block_id.clone()));
        change(&mut next);
        if current.as_ref() == Some(&next) {
            return Ok(Committed {
                value: current,
                events: Vec::new(),
            });
        }
        let now = runtime.now_ms();
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            &format!(
                "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2) AND {STATE_UNCHANGED}"
            ),
            &params![workspace, block_id.as_str(), state_json(current.as_ref())?],
        );
        extra(&mut plan);
        push_block_state(&mut plan, context, &next, now)?;
        let outcome = store.execute(plan).await?;
        if outcome.applied {
            return Ok(Committed {
                value: Some(next),
                events: outcome.events,
            });
        }
        if get_block(store, &context.workspace_id, block_id)
            .await?
            .is_none()
        {
            return Ok(Committed {
                value: None,
                events: Vec::new(),
            });
        }
    }
    Err(conflict_busy())
}

/// Sets a block's status through the board's update command (so `block.updated` is recorded like
/// any change), as `context`'s actor. Unchanged: nothing written. Gone: `None`.
pub async fn set_block_status<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    block_id: &BlockId,
    status: BlockStatus,
) -> Result<Committed<Option<Block>>, ApiError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = get_block(store, &context.workspace_id, block_id).await? else {
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
        let request = domain::api::board::UpdateBlockRequest {
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
        match crate::board::update_block(store, runtime, context, block_id, &request).await {
            Ok(committed) => {
                return Ok(Committed {
                    value: Some(committed.value),
                    events: committed.events,
                });
            }
            Err(error) if error.code == ErrorCode::Conflict => continue,
            Err(error) if error.code == ErrorCode::NotFound => {
                return Ok(Committed {
                    value: None,
                    events: Vec::new(),
                });
            }
            Err(error) => return Err(error),
        }
    }
    Err(conflict_busy())
}

// ---------------------------------------------------------------------------------------------
// Repository links
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameLink {
    pub repository_id: u64,
    pub full_name: String,
    pub sub_directory: Option<String>,
}

#[derive(Deserialize)]
struct LinkRow {
    workspace_id: String,
    block_id: String,
    repository_id: i64,
    full_name: String,
    sub_directory: Option<String>,
}

/// The repository a frame links, if any.
pub async fn frame_link<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    frame_id: &BlockId,
) -> Result<Option<FrameLink>, ApiError> {
    let row: Option<LinkRow> = store
        .first(Statement::new(
            "SELECT workspace_id, block_id, repository_id, full_name, sub_directory FROM github_block_links
             WHERE workspace_id = ?1 AND block_id = ?2",
            &params![workspace_id.as_str(), frame_id.as_str()],
        ))
        .await?;
    Ok(row.map(|row| FrameLink {
        repository_id: row.repository_id as u64,
        full_name: row.full_name,
        sub_directory: row.sub_directory,
    }))
}

#[derive(Deserialize)]
struct FrameRow {
    id: String,
}

/// The frame a block belongs to (itself, for a frame).
pub async fn frame_of<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
) -> Result<Option<BlockId>, ApiError> {
    let row: Option<FrameRow> = store
        .first(Statement::new(
            "WITH RECURSIVE chain(id, level, parent_id, depth) AS (
                 SELECT id, level, parent_id, 0 FROM blocks WHERE workspace_id = ?1 AND id = ?2
                 UNION ALL
                 SELECT b.id, b.level, b.parent_id, chain.depth + 1
                 FROM blocks b JOIN chain ON b.id = chain.parent_id
                 WHERE b.workspace_id = ?1 AND chain.depth < 64)
             SELECT id FROM chain WHERE level = 'frame' ORDER BY depth LIMIT 1",
            &params![workspace_id.as_str(), block_id.as_str()],
        ))
        .await?;
    row.map(|row| parse_block_id(&row.id)).transpose()
}

/// Links a frame to a repository `account`'s installations can see (`domain` validates the level,
/// the name, the visibility and the folder), and records `block.github`.
pub async fn link_repository<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    account: &AccountId,
    block_id: &BlockId,
    request: &LinkRepositoryRequest,
    web_url: &str,
) -> Result<Committed<BlockGithub>, ApiError> {
    let block = get_block(store, &context.workspace_id, block_id)
        .await?
        .ok_or_else(|| ApiError::not_found("This block"))?;
    // A board rule and a repository the installation cannot see are not shapes the schema can
    // state: 422 and 404, never a 400 for a well-formed request.
    if block.level != domain::board::Level::Frame {
        return Err(ApiError::rule_violated(
            "repository_on_frame_only",
            "Only frames (services) link a repository; link the service this block belongs to."
                .to_owned(),
        ));
    }
    let visible = visible_repositories(store, account).await?;
    if let Ok(repository) = domain::github::app::RepositoryFullName::parse(&request.repository)
        && !visible
            .iter()
            .any(|(_, full_name)| repository.same_repository(full_name))
    {
        return Err(ApiError::not_found(
            "This repository (the GitHub App's installation cannot see it; grant it access on GitHub)",
        ));
    }
    let link = validate_repository_link(block.level, &request.as_domain(), &visible)
        .map_err(ApiError::invalid_fields)?;
    let view = RepositoryLinkView {
        repository_id: link.repository_id,
        // GitHub's spelling of the name, from the projection.
        repository: visible
            .iter()
            .find(|(id, _)| *id == link.repository_id)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| link.repository.as_str().to_owned()),
        sub_directory: link.sub_directory.clone(),
        url: String::new(),
    };
    let view = RepositoryLinkView {
        url: repository_url(web_url, &view.repository, view.sub_directory.as_deref()),
        ..view
    };
    let now = runtime.now_ms();
    let workspace = context.workspace_id.as_str().to_owned();
    let committed = change_block_state(
        store,
        runtime,
        context,
        block_id,
        |state| {
            state.repo_link = Some(view.clone());
            state.note = None;
        },
        |plan| {
            plan.push(
                &format!(
                    "INSERT INTO github_block_links (workspace_id, block_id, repository_id, full_name, sub_directory, linked_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE {GUARD}
                     ON CONFLICT (workspace_id, block_id) DO UPDATE SET repository_id = excluded.repository_id,
                         full_name = excluded.full_name, sub_directory = excluded.sub_directory,
                         linked_at = excluded.linked_at"
                ),
                &params![
                    workspace.as_str(),
                    block_id.as_str(),
                    to_i64(view.repository_id),
                    view.repository.as_str(),
                    view.sub_directory.clone(),
                    now
                ],
            );
        },
    )
    .await?;
    let value = committed
        .value
        .ok_or_else(|| ApiError::not_found("This block"))?;
    Ok(Committed {
        value,
        events: committed.events,
    })
}

/// Unlinks every frame linked to `repository_id` (only in `account`'s workspaces, when given),
/// keeping the frames and their tasks, and shows `warning` on each.
pub async fn unlink_frames_of_repository<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    repository_id: u64,
    account: Option<&AccountId>,
    warning: &str,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let links: Vec<LinkRow> = store
        .all(Statement::new(
            "SELECT l.workspace_id, l.block_id, l.repository_id, l.full_name, l.sub_directory
             FROM github_block_links l JOIN workspaces w ON w.id = l.workspace_id
             WHERE l.repository_id = ?1 AND (?2 IS NULL OR w.account_id = ?2)",
            &params![to_i64(repository_id), account.map(AccountId::as_str)],
        ))
        .await?;
    let mut events = Vec::new();
    for link in links {
        let workspace_id = parse_workspace_id(&link.workspace_id)?;
        let block_id = parse_block_id(&link.block_id)?;
        let context = webhook_context(&workspace_id);
        let committed = change_block_state(
            store,
            runtime,
            &context,
            &block_id,
            |state| {
                state.repo_link = None;
                state.note = Some(warning.to_owned());
            },
            |plan| {
                plan.push(
                    &format!(
                        "DELETE FROM github_block_links WHERE workspace_id = ?1 AND block_id = ?2 AND {GUARD}"
                    ),
                    &params![link.workspace_id.as_str(), link.block_id.as_str()],
                );
            },
        )
        .await?;
        events.extend(committed.events);
        // A frame deleted meanwhile leaves its link row behind: remove it too.
        store
            .write(vec![Statement::new(
                "DELETE FROM github_block_links WHERE workspace_id = ?1 AND block_id = ?2
                 AND NOT EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2)",
                &params![link.workspace_id.as_str(), link.block_id.as_str()],
            )])
            .await?;
    }
    Ok(events)
}

// ---------------------------------------------------------------------------------------------
// Issue import
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ImportedRow {
    workspace_id: String,
    repository_id: i64,
    issue_number: i64,
    block_id: String,
    title: String,
    state: String,
}

impl ImportedRow {
    fn imported(&self) -> Result<ImportedIssue, ApiError> {
        Ok(ImportedIssue {
            repository_id: self.repository_id as u64,
            issue_number: self.issue_number as u64,
            block: parse_block_id(&self.block_id)?,
            title: self.title.clone(),
            state: if self.state == "closed" {
                IssueState::Closed
            } else {
                IssueState::Open
            },
        })
    }
}

fn issue_state_text(state: IssueState) -> &'static str {
    match state {
        IssueState::Open => "open",
        IssueState::Closed => "closed",
    }
}

async fn imported_issues_of<S: Store>(
    store: &S,
    workspace_id: &WorkspaceId,
    repository_id: u64,
) -> Result<Vec<ImportedIssue>, ApiError> {
    let rows: Vec<ImportedRow> = store
        .all(Statement::new(
            "SELECT workspace_id, repository_id, issue_number, block_id, title, state
             FROM github_imported_issues WHERE workspace_id = ?1 AND repository_id = ?2",
            &params![workspace_id.as_str(), to_i64(repository_id)],
        ))
        .await?;
    rows.iter().map(ImportedRow::imported).collect()
}

/// Imports `fetched` (one or more pages of the frame's repository's issues) as tasks under the
/// frame: `domain::github::projection::plan_issue_import` decides which are new; each new task, its
/// import row and its `block.github` state are one plan, guarded by "not imported yet", so two
/// concurrent imports never make two tasks of one issue. Refreshed tasks get their new title.
pub async fn import_issues<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    frame: &Block,
    link: &FrameLink,
    fetched: &[IssuePayload],
) -> Result<Committed<ImportIssuesResult>, ApiError> {
    if frame.level != Level::Frame {
        return Err(ApiError::invalid_fields(vec![
            domain::api::FieldProblem::new(
                "blockId",
                "issues are imported into a frame (service) linked to a repository",
            ),
        ]));
    }
    let workspace = context.workspace_id.as_str();
    let imported = imported_issues_of(store, &context.workspace_id, link.repository_id).await?;
    let plan = plan_issue_import(link.repository_id, &imported, fetched);
    let mut result = ImportIssuesResult {
        created: Vec::new(),
        already_imported: plan.already_imported.clone(),
        refreshed: Vec::new(),
    };
    // New tasks go in the frame's free slots, never over what it already holds.
    #[derive(Deserialize)]
    struct ChildRow {
        x: f64,
        y: f64,
        width: f64,
        height: f64,
    }
    let children: Vec<ChildRow> = store
        .all(Statement::new(
            "SELECT x, y, width, height FROM blocks WHERE workspace_id = ?1 AND parent_id = ?2",
            &params![workspace, frame.id.as_str()],
        ))
        .await?;
    let siblings: Vec<(Position, domain::board::Size)> = children
        .iter()
        .map(|child| {
            (
                Position {
                    x: child.x,
                    y: child.y,
                },
                domain::board::Size {
                    width: child.width,
                    height: child.height,
                },
            )
        })
        .collect();
    let slots = domain::board::placement::free_slots(
        Some(frame.size),
        Level::Task,
        domain::board::default_size(Level::Task),
        &siblings,
        plan.create.len(),
    );
    // Every task's id and guard are drawn before the first one is written: a random source that
    // fails part-way must not leave half an import behind a 503.
    let draws = plan
        .create
        .iter()
        .map(|_| Ok((runtime.random_bytes()?, runtime.guard_id()?)))
        .collect::<Result<Vec<_>, crate::context::EntropyUnavailable>>()?;
    let mut events = Vec::new();
    for ((index, issue), (block_bytes, guard_id)) in plan.create.iter().enumerate().zip(draws) {
        let now = runtime.now_ms();
        let request = domain::api::board::CreateBlockRequest {
            level: Level::Task,
            parent_id: Some(frame.id.clone()),
            title: task_title_of_issue(&issue.title, issue.issue_number),
            description: Some(format!("Imported from {}", issue.issue_url)),
            requirements: None,
            status: Some(BlockStatus::Ready),
            position: slots.get(index).copied(),
            size: None,
            repo_url: None,
        };
        let block = request.build(BlockId::from_random(block_bytes), now);
        let state = BlockGithub {
            issue: Some(IssueLinkView {
                repository: link.full_name.clone(),
                number: issue.issue_number,
                url: issue.issue_url.clone(),
                state: IssueState::Open,
            }),
            ..BlockGithub::empty(block.id.clone())
        };
        let mut guarded = GuardedPlan::new(
            guard_id,
            "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2 AND level = 'frame')
             AND NOT EXISTS (SELECT 1 FROM github_imported_issues
                             WHERE workspace_id = ?1 AND repository_id = ?3 AND issue_number = ?4)",
            &params![
                workspace,
                frame.id.as_str(),
                to_i64(link.repository_id),
                to_i64(issue.issue_number)
            ],
        );
        guarded.push(
            &format!(
                "INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status,
                                     x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, 1, ?14, ?14, ?15 WHERE {GUARD}"
            ),
            &block_params(workspace, &block),
        );
        guarded.push(
            &format!(
                "INSERT INTO github_imported_issues (workspace_id, repository_id, issue_number, block_id, title, state, url)
                 SELECT ?1, ?2, ?3, ?4, ?5, 'open', ?6 WHERE {GUARD}"
            ),
            &params![
                workspace,
                to_i64(link.repository_id),
                to_i64(issue.issue_number),
                block.id.as_str(),
                issue.title.as_str(),
                issue.issue_url.as_str()
            ],
        );
        events::record(
            &mut guarded,
            context,
            EventPayload::BlockCreated {
                block: block.clone(),
            },
            now,
        )?;
        push_block_state(&mut guarded, context, &state, now)?;
        let outcome = store.execute(guarded).await?;
        if outcome.applied {
            events.extend(outcome.events);
            result.created.push(block);
        } else if get_block(store, &context.workspace_id, &frame.id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("This block"));
        } else {
            // A concurrent import made this issue's task first.
            result.already_imported.push(issue.issue_number);
        }
    }
    for effect in &plan.refresh {
        if let GithubEffect::UpdateImportedTask {
            block,
            title,
            issue_state,
        } = effect
        {
            let number = imported
                .iter()
                .find(|imported| &imported.block == block)
                .map(|imported| imported.issue_number)
                .unwrap_or_default();
            events.extend(
                refresh_imported_task(
                    store,
                    runtime,
                    context,
                    link.repository_id,
                    number,
                    block,
                    title,
                    *issue_state,
                )
                .await?,
            );
            result.refreshed.push(number);
        }
    }
    Ok(Committed {
        value: result,
        events,
    })
}

/// An imported task's issue changed on GitHub: its title follows the issue's, and its GitHub state
/// shows the issue open or closed. The import row records both, so the next import or delivery
/// compares against them.
#[allow(clippy::too_many_arguments)]
pub async fn refresh_imported_task<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    repository_id: u64,
    issue_number: u64,
    block_id: &BlockId,
    title: &str,
    issue_state: IssueState,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let mut events = Vec::new();
    let new_title = task_title_of_issue(title, issue_number);
    for _ in 0..MAX_ATTEMPTS {
        let Some(block) = get_block(store, &context.workspace_id, block_id).await? else {
            return Ok(events);
        };
        if block.title == new_title {
            break;
        }
        let request = domain::api::board::UpdateBlockRequest {
            rev: block.rev,
            title: Some(new_title.clone()),
            description: None,
            requirements: None,
            status: None,
            position: None,
            size: None,
            repo_url: None,
            model_id: None,
            archived: None,
        };
        match crate::board::update_block(store, runtime, context, block_id, &request).await {
            Ok(committed) => {
                events.extend(committed.events);
                break;
            }
            Err(error) if error.code == ErrorCode::Conflict => continue,
            Err(error) => return Err(error),
        }
    }
    let workspace = context.workspace_id.as_str().to_owned();
    let committed = change_block_state(
        store,
        runtime,
        context,
        block_id,
        |state| {
            if let Some(issue) = state.issue.as_mut() {
                issue.state = issue_state;
            }
        },
        |_| {},
    )
    .await?;
    events.extend(committed.events);
    store
        .write(vec![Statement::new(
            "UPDATE github_imported_issues SET title = ?4, state = ?5
             WHERE workspace_id = ?1 AND repository_id = ?2 AND issue_number = ?3",
            &params![
                workspace.as_str(),
                to_i64(repository_id),
                to_i64(issue_number),
                title,
                issue_state_text(issue_state)
            ],
        )])
        .await?;
    Ok(events)
}

/// Every import of issue `number` of `repository_id`, across workspaces (an `issues` delivery).
pub async fn imports_of_issue<S: Store>(
    store: &S,
    repository_id: u64,
    issue_number: u64,
) -> Result<Vec<(WorkspaceId, ImportedIssue)>, ApiError> {
    let rows: Vec<ImportedRow> = store
        .all(Statement::new(
            "SELECT workspace_id, repository_id, issue_number, block_id, title, state
             FROM github_imported_issues WHERE repository_id = ?1 AND issue_number = ?2",
            &params![to_i64(repository_id), to_i64(issue_number)],
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((parse_workspace_id(&row.workspace_id)?, row.imported()?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Webhook deliveries, pull requests and CI
// ---------------------------------------------------------------------------------------------

/// Whether a delivery id is already recorded.
pub async fn delivery_recorded<S: Store>(store: &S, delivery_id: &str) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        #[allow(dead_code)]
        delivery_id: String,
    }
    Ok(store
        .first::<Row>(Statement::new(
            "SELECT delivery_id FROM github_webhook_deliveries WHERE delivery_id = ?1",
            &params![delivery_id],
        ))
        .await?
        .is_some())
}

/// Records a delivery that has no projection to write with it (ignored events, installations).
/// `false` when it was already recorded (a replay).
pub async fn record_delivery<S: Store>(
    store: &S,
    delivery_id: &str,
    event: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let changed = store
        .write(vec![Statement::new(
            "INSERT OR IGNORE INTO github_webhook_deliveries (delivery_id, event, received_at) VALUES (?1, ?2, ?3)",
            &params![delivery_id, event, now],
        )])
        .await?;
    Ok(changed.first().copied().unwrap_or(0) == 1)
}

#[derive(Deserialize)]
struct ProjectionRow {
    projection: String,
}

#[derive(Deserialize)]
struct RecordRow {
    record: String,
}

/// A pull request's projection.
pub async fn pull_request<S: Store>(
    store: &S,
    repository_id: u64,
    number: u64,
) -> Result<Option<PullRequestProjection>, ApiError> {
    let row: Option<ProjectionRow> = store
        .first(Statement::new(
            "SELECT projection FROM github_pull_requests WHERE repository_id = ?1 AND number = ?2",
            &params![to_i64(repository_id), to_i64(number)],
        ))
        .await?;
    row.map(|row| serde_json::from_str(&row.projection).map_err(|_| ApiError::internal()))
        .transpose()
}

/// The open pull requests whose head is `head_sha`.
pub async fn pull_requests_with_head<S: Store>(
    store: &S,
    repository_id: u64,
    head_sha: &str,
) -> Result<Vec<PullRequestProjection>, ApiError> {
    let rows: Vec<ProjectionRow> = store
        .all(Statement::new(
            "SELECT projection FROM github_pull_requests WHERE repository_id = ?1 AND head_sha = ?2",
            &params![to_i64(repository_id), head_sha],
        ))
        .await?;
    rows.into_iter()
        .map(|row| serde_json::from_str(&row.projection).map_err(|_| ApiError::internal()))
        .collect()
}

/// A commit's CI record (empty when nothing was reported).
pub async fn ci_record<S: Store>(
    store: &S,
    repository_id: u64,
    head_sha: &str,
) -> Result<CiRecord, ApiError> {
    let row: Option<RecordRow> = store
        .first(Statement::new(
            "SELECT record FROM github_ci_commits WHERE repository_id = ?1 AND head_sha = ?2",
            &params![to_i64(repository_id), head_sha],
        ))
        .await?;
    row.map(|row| serde_json::from_str(&row.record).map_err(|_| ApiError::internal()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// What one delivery writes to the projections: the old values it was decided against (the guard)
/// and the new ones.
#[derive(Debug, Clone, Default)]
pub struct ProjectionWrite {
    pub pull_requests: Vec<(Option<PullRequestProjection>, PullRequestProjection)>,
    /// (repository, head sha, record read, record to write)
    pub ci: Vec<(u64, String, CiRecord, CiRecord)>,
}

/// Renumbers a condition's `?N` parameters by `offset`, so conditions written each with their own
/// `?1…` can share one plan's parameter list.
fn renumber_parameters(sql: &str, offset: usize) -> String {
    let mut renumbered = String::with_capacity(sql.len() + 8);
    let mut characters = sql.chars().peekable();
    while let Some(character) = characters.next() {
        renumbered.push(character);
        if character != '?' {
            continue;
        }
        let mut digits = String::new();
        while let Some(digit) = characters.peek().copied().filter(char::is_ascii_digit) {
            digits.push(digit);
            characters.next();
        }
        match digits.parse::<usize>() {
            Ok(number) => renumbered.push_str(&(number + offset).to_string()),
            Err(_) => renumbered.push_str(&digits),
        }
    }
    renumbered
}

/// A write a delivery plans; turned into statements once every condition is known.
enum PlannedWrite {
    Statement(String, Vec<crate::store::Param>),
    /// A block's new row (its status moved) and its `block.updated` event.
    BlockRow {
        context: WriteContext,
        /// The row as read (the event carries only what changed from it).
        before: Block,
        block: Block,
    },
    /// A block's new GitHub state and its `block.github` event.
    BlockState {
        context: WriteContext,
        state: BlockGithub,
    },
}

/// Everything one webhook delivery changes — its projections, its board effects and its
/// `X-GitHub-Delivery` row — gathered while reading, then committed as ONE guarded plan: either all
/// of it happened or none did, so a crash part-way can never record the delivery without its effect
/// (GitHub's redelivery would then be deduplicated away), and a redelivery redoes the lot.
///
/// The guard holds every fact the decision read: the delivery not recorded yet, each projection row
/// as read, each moved block at the `rev` read, each block's GitHub state as read.
pub struct DeliveryPlan {
    delivery_id: String,
    event: String,
    conditions: Vec<String>,
    guard_params: Vec<crate::store::Param>,
    writes: Vec<PlannedWrite>,
    /// Blocks whose pull request merged, told to the run engine once the plan has committed.
    merged: Vec<(WorkspaceId, BlockId)>,
}

impl DeliveryPlan {
    pub fn new(delivery_id: &str, event: &str) -> Self {
        let mut plan = DeliveryPlan {
            delivery_id: delivery_id.to_owned(),
            event: event.to_owned(),
            conditions: Vec::new(),
            guard_params: Vec::new(),
            writes: Vec::new(),
            merged: Vec::new(),
        };
        plan.condition(
            "NOT EXISTS (SELECT 1 FROM github_webhook_deliveries WHERE delivery_id = ?1)",
            &params![delivery_id],
        );
        plan
    }

    /// Adds a fact the plan's guard must find still true (`sql` numbers its parameters from `?1`).
    fn condition(&mut self, sql: &str, params: &[crate::store::Param]) {
        self.conditions
            .push(renumber_parameters(sql, self.guard_params.len()));
        self.guard_params.extend_from_slice(params);
    }

    /// Adds a delivery's projection writes, guarded by the projections being what was read.
    pub fn add_projection(&mut self, write: &ProjectionWrite, now: i64) -> Result<(), ApiError> {
        for (old, new) in &write.pull_requests {
            let old_json = old
                .as_ref()
                .map(|pr| serde_json::to_string(pr).map_err(|_| ApiError::internal()))
                .transpose()?;
            self.condition(
                "(SELECT projection FROM github_pull_requests WHERE repository_id = ?1 AND number = ?2) IS ?3",
                &params![to_i64(new.repository_id), to_i64(new.number), old_json],
            );
            let new_json = serde_json::to_string(new).map_err(|_| ApiError::internal())?;
            self.writes.push(PlannedWrite::Statement(
                format!(
                    "INSERT INTO github_pull_requests (repository_id, number, block_id, head_sha, projection, updated_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE {GUARD}
                     ON CONFLICT (repository_id, number) DO UPDATE SET block_id = excluded.block_id,
                         head_sha = excluded.head_sha, projection = excluded.projection, updated_at = excluded.updated_at"
                ),
                params![
                    to_i64(new.repository_id),
                    to_i64(new.number),
                    new.block.as_ref().map(BlockId::as_str),
                    new.head_sha.as_str(),
                    new_json,
                    now
                ]
                .to_vec(),
            ));
        }
        for (repository_id, head_sha, old, new) in &write.ci {
            let old_json = (!old.checks.is_empty())
                .then(|| serde_json::to_string(old).map_err(|_| ApiError::internal()))
                .transpose()?;
            self.condition(
                "(SELECT record FROM github_ci_commits WHERE repository_id = ?1 AND head_sha = ?2) IS ?3",
                &params![to_i64(*repository_id), head_sha.as_str(), old_json],
            );
            let new_json = serde_json::to_string(new).map_err(|_| ApiError::internal())?;
            self.writes.push(PlannedWrite::Statement(
                format!(
                    "INSERT INTO github_ci_commits (repository_id, head_sha, record, updated_at)
                     SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}
                     ON CONFLICT (repository_id, head_sha) DO UPDATE SET record = excluded.record,
                         updated_at = excluded.updated_at"
                ),
                params![to_i64(*repository_id), head_sha.as_str(), new_json, now].to_vec(),
            ));
        }
        Ok(())
    }

    /// Adds a pull request decision's board effects (block status, the block's GitHub state and
    /// their events), read now and guarded by what was read. Only a block whose frame links
    /// `repository_id` is touched: a `cat/<block>` branch in a stranger's repository moves nothing.
    pub async fn add_board_effects<S: Store>(
        &mut self,
        store: &S,
        repository_id: u64,
        effects: &[GithubEffect],
        now: i64,
    ) -> Result<(), ApiError> {
        // Several effects may touch one block (a status with its note, and the pull request): one
        // change per block, so one guard and one `block.github` event each.
        let mut changes: Vec<(BlockId, BlockChange)> = Vec::new();
        fn change_of(changes: &mut Vec<(BlockId, BlockChange)>, block: &BlockId) -> usize {
            match changes.iter().position(|(id, _)| id == block) {
                Some(index) => index,
                None => {
                    changes.push((block.clone(), BlockChange::default()));
                    changes.len() - 1
                }
            }
        }
        for effect in effects {
            match effect {
                GithubEffect::SetBlockStatus {
                    block,
                    status,
                    note,
                } => {
                    let index = change_of(&mut changes, block);
                    changes[index].1.status = Some(*status);
                    if note.is_some() {
                        changes[index].1.note = note.clone();
                    }
                }
                GithubEffect::PublishPullRequest {
                    block,
                    pull_request,
                } => {
                    let index = change_of(&mut changes, block);
                    changes[index].1.pull_request = Some(PullRequestView::from(pull_request));
                }
                GithubEffect::NotifyRunOfMerge { block } => {
                    let index = change_of(&mut changes, block);
                    changes[index].1.merged = true;
                }
                // Not decided for pull requests: installations and issues apply their own.
                GithubEffect::UnlinkFramesOfRepository { .. }
                | GithubEffect::UpdateImportedTask { .. } => {}
            }
        }
        for (block_id, change) in changes {
            let Some((workspace_id, block)) =
                block_of_repository(store, &block_id, repository_id).await?
            else {
                continue;
            };
            let context = webhook_context(&workspace_id);
            if let Some(status) = change.status.filter(|status| *status != block.status) {
                let request = domain::api::board::UpdateBlockRequest {
                    rev: block.rev,
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
                self.condition(
                    "EXISTS (SELECT 1 FROM blocks WHERE workspace_id = ?1 AND id = ?2 AND rev = ?3)",
                    &params![workspace_id.as_str(), block_id.as_str(), block.rev],
                );
                self.writes.push(PlannedWrite::BlockRow {
                    context: context.clone(),
                    block: request.apply(&block, now),
                    before: block,
                });
            }
            let current = block_state(store, &workspace_id, &block_id).await?;
            let mut next = current
                .clone()
                .unwrap_or_else(|| BlockGithub::empty(block_id.clone()));
            if let Some(view) = change.pull_request {
                next.pull_request = Some(view);
            }
            if let Some(note) = change.note {
                next.note = Some(note);
            }
            if current.as_ref() != Some(&next) {
                self.condition(
                    STATE_UNCHANGED,
                    &params![
                        workspace_id.as_str(),
                        block_id.as_str(),
                        state_json(current.as_ref())?
                    ],
                );
                self.writes.push(PlannedWrite::BlockState {
                    context,
                    state: next,
                });
            }
            if change.merged {
                self.merged.push((workspace_id, block_id));
            }
        }
        Ok(())
    }

    /// Executes the whole plan. `Ok(Some(..))`: applied, with the events recorded and the merged
    /// blocks; `Ok(None)`: the delivery was already recorded (a replay, or a concurrent copy won);
    /// `Err(conflict)`: something read changed — decide again from a fresh read.
    pub async fn commit<S: Store, R: Runtime>(
        self,
        store: &S,
        runtime: &R,
    ) -> Result<Option<(Vec<OutboxEvent>, Vec<(WorkspaceId, BlockId)>)>, ApiError> {
        let now = runtime.now_ms();
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            &self.conditions.join(" AND "),
            &self.guard_params,
        );
        for write in self.writes {
            match write {
                PlannedWrite::Statement(sql, statement_params) => {
                    plan.push(&sql, &statement_params)
                }
                PlannedWrite::BlockRow {
                    context,
                    before,
                    block,
                } => {
                    crate::board::push_block_row_update(
                        &mut plan,
                        &context.workspace_id,
                        &block,
                        now,
                    );
                    events::record(
                        &mut plan,
                        &context,
                        EventPayload::BlockUpdated(domain::board::BlockChange::between(
                            &before, &block,
                        )),
                        now,
                    )?;
                }
                PlannedWrite::BlockState { context, state } => {
                    push_block_state(&mut plan, &context, &state, now)?;
                }
            }
        }
        plan.push(
            &format!(
                "INSERT INTO github_webhook_deliveries (delivery_id, event, received_at) SELECT ?1, ?2, ?3 WHERE {GUARD}"
            ),
            &params![self.delivery_id.as_str(), self.event.as_str(), now],
        );
        let outcome = store.execute(plan).await?;
        if outcome.applied {
            return Ok(Some((outcome.events, self.merged)));
        }
        if delivery_recorded(store, &self.delivery_id).await? {
            return Ok(None);
        }
        Err(ApiError::new(
            ErrorCode::Conflict,
            "GitHub's state or the board changed while this delivery was applied; decide again.",
        ))
    }
}

/// What a delivery changes on one block.
#[derive(Default)]
struct BlockChange {
    status: Option<BlockStatus>,
    note: Option<String>,
    pull_request: Option<PullRequestView>,
    merged: bool,
}

/// The workspace of a block id (ids are unique across workspaces), and whether the block's frame
/// links `repository_id`: a `cat/<block>` branch in some other repository must not move the block.
pub async fn block_of_repository<S: Store>(
    store: &S,
    block_id: &BlockId,
    repository_id: u64,
) -> Result<Option<(WorkspaceId, Block)>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        workspace_id: String,
    }
    let Some(row) = store
        .first::<Row>(Statement::new(
            "SELECT workspace_id FROM blocks WHERE id = ?1",
            &params![block_id.as_str()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let workspace_id = parse_workspace_id(&row.workspace_id)?;
    let Some(frame) = frame_of(store, &workspace_id, block_id).await? else {
        return Ok(None);
    };
    let linked = frame_link(store, &workspace_id, &frame)
        .await?
        .is_some_and(|link| link.repository_id == repository_id);
    if !linked {
        return Ok(None);
    }
    Ok(get_block(store, &workspace_id, block_id)
        .await?
        .map(|block| (workspace_id, block)))
}

/// Shows a pull request (and an optional note) on its block.
pub async fn publish_pull_request<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    workspace_id: &WorkspaceId,
    block_id: &BlockId,
    pull_request: Option<PullRequestView>,
    note: Option<String>,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let context = webhook_context(workspace_id);
    let committed = change_block_state(
        store,
        runtime,
        &context,
        block_id,
        |state| {
            if let Some(view) = &pull_request {
                state.pull_request = Some(view.clone());
            }
            if let Some(note) = &note {
                state.note = Some(note.clone());
            }
        },
        |_| {},
    )
    .await?;
    Ok(committed.events)
}

// ---------------------------------------------------------------------------------------------
// Applying a delivery
// ---------------------------------------------------------------------------------------------

/// What applying a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// First time: its effects were applied.
    Applied,
    /// Seen before: no second effect.
    Replay,
    /// An event or action cat-factory does not use (recorded, so a replay is a replay).
    Ignored,
}

impl DeliveryOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryOutcome::Applied => "applied",
            DeliveryOutcome::Replay => "replay",
            DeliveryOutcome::Ignored => "ignored",
        }
    }
}

/// A delivery's result: the outcome, the events to deliver, and the blocks whose pull request was
/// merged (the shell tells their run, or the runs queued on them).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedDelivery {
    pub outcome: DeliveryOutcome,
    pub events: Vec<OutboxEvent>,
    pub merged: Vec<(WorkspaceId, BlockId)>,
}

impl AppliedDelivery {
    fn of(outcome: DeliveryOutcome) -> Self {
        AppliedDelivery {
            outcome,
            events: Vec::new(),
            merged: Vec::new(),
        }
    }

    /// Adds what a committed [`DeliveryPlan`] recorded.
    fn with(mut self, committed: (Vec<OutboxEvent>, Vec<(WorkspaceId, BlockId)>)) -> Self {
        self.events.extend(committed.0);
        self.merged.extend(committed.1);
        self
    }
}

fn event_name(delivery: &domain::github::webhook::Delivery) -> &str {
    use domain::github::webhook::Delivery;
    match delivery {
        Delivery::PullRequest(_) => "pull_request",
        Delivery::PullRequestReview(_) => "pull_request_review",
        Delivery::CheckSuite(_) => "check_suite",
        Delivery::CheckRun(_) => "check_run",
        Delivery::Status(_) => "status",
        Delivery::Installation(_) => "installation",
        Delivery::InstallationRepositories(_) => "installation_repositories",
        Delivery::Issues(_) => "issues",
        Delivery::Ping { .. } => "ping",
        Delivery::Ignored { event, .. } => event,
    }
}

/// Applies one verified delivery once: `domain::github::projection` decides; a pull request, review
/// or CI delivery commits its projection, its board effects (as `Actor::Webhook`) and its id as one
/// [`DeliveryPlan`] (a replay is acknowledged with no second effect). Installation and issue
/// deliveries apply their idempotent effects first and record the id after, so a crash in between
/// repeats them on redelivery rather than losing them.
pub async fn apply_delivery<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    delivery_id: &str,
    delivery: &domain::github::webhook::Delivery,
) -> Result<AppliedDelivery, ApiError> {
    use domain::github::projection::{
        CiObservation, apply_ci_observation, decide_installation, decide_installation_repositories,
        decide_issue_delivery, decide_pull_request, decide_pull_request_ci,
        decide_pull_request_review,
    };
    use domain::github::webhook::Delivery;
    let event = event_name(delivery).to_owned();
    if delivery_recorded(store, delivery_id).await? {
        return Ok(AppliedDelivery::of(DeliveryOutcome::Replay));
    }
    let mut applied = AppliedDelivery::of(DeliveryOutcome::Applied);
    match delivery {
        Delivery::Ping { .. } | Delivery::Ignored { .. } => {
            let first = record_delivery(store, delivery_id, &event, runtime.now_ms()).await?;
            return Ok(AppliedDelivery::of(if first {
                DeliveryOutcome::Ignored
            } else {
                DeliveryOutcome::Replay
            }));
        }
        Delivery::Installation(installation) => {
            let current = load_installation(store, installation.installation.id).await?;
            let decision = decide_installation(current.as_ref().map(|(p, _)| p), installation);
            match &decision.projection {
                Some(projection) => {
                    store_installation(store, projection, None, runtime.now_ms()).await?
                }
                None => delete_installation(store, installation.installation.id).await?,
            }
            perform_effects(store, runtime, &decision.effects, &mut applied).await?;
            record_delivery(store, delivery_id, &event, runtime.now_ms()).await?;
        }
        Delivery::InstallationRepositories(repositories) => {
            let current = load_installation(store, repositories.installation.id).await?;
            let decision =
                decide_installation_repositories(current.as_ref().map(|(p, _)| p), repositories);
            if let Some(projection) = &decision.projection {
                store_installation(store, projection, None, runtime.now_ms()).await?;
            }
            perform_effects(store, runtime, &decision.effects, &mut applied).await?;
            record_delivery(store, delivery_id, &event, runtime.now_ms()).await?;
        }
        Delivery::Issues(issues) => {
            let imports =
                imports_of_issue(store, issues.repository.id, issues.issue.number).await?;
            for (workspace_id, imported) in imports {
                let (_, effects) = decide_issue_delivery(Some(&imported), issues);
                for effect in effects {
                    if let GithubEffect::UpdateImportedTask {
                        block,
                        title,
                        issue_state,
                    } = effect
                    {
                        applied.events.extend(
                            refresh_imported_task(
                                store,
                                runtime,
                                &webhook_context(&workspace_id),
                                imported.repository_id,
                                imported.issue_number,
                                &block,
                                &title,
                                issue_state,
                            )
                            .await?,
                        );
                    }
                }
            }
            record_delivery(store, delivery_id, &event, runtime.now_ms()).await?;
        }
        Delivery::PullRequest(pull) => {
            for attempt in 0..=MAX_ATTEMPTS {
                if attempt == MAX_ATTEMPTS {
                    return Err(conflict_busy());
                }
                let repository_id = pull.repository.id;
                let current = pull_request(store, repository_id, pull.pull_request.number).await?;
                let ci = ci_record(store, repository_id, &pull.pull_request.head.sha).await?;
                let block = match domain::github::projection::block_of_head_branch(
                    &pull.pull_request.head.branch,
                ) {
                    Some(block) => block_of_repository(store, &block, repository_id).await?,
                    None => None,
                };
                let decision = decide_pull_request(
                    current.as_ref(),
                    pull,
                    &ci,
                    block.as_ref().map(|(_, block)| block.status),
                );
                let now = runtime.now_ms();
                let mut plan = DeliveryPlan::new(delivery_id, &event);
                plan.add_projection(
                    &ProjectionWrite {
                        pull_requests: vec![(current, decision.projection.clone())],
                        ci: Vec::new(),
                    },
                    now,
                )?;
                plan.add_board_effects(store, repository_id, &decision.effects, now)
                    .await?;
                match plan.commit(store, runtime).await {
                    Ok(Some(committed)) => return Ok(applied.with(committed)),
                    Ok(None) => return Ok(AppliedDelivery::of(DeliveryOutcome::Replay)),
                    Err(error) if error.code == ErrorCode::Conflict => continue,
                    Err(error) => return Err(error),
                }
            }
        }
        Delivery::PullRequestReview(review) => {
            for attempt in 0..=MAX_ATTEMPTS {
                if attempt == MAX_ATTEMPTS {
                    return Err(conflict_busy());
                }
                let Some(current) =
                    pull_request(store, review.repository.id, review.pull_request_number).await?
                else {
                    record_delivery(store, delivery_id, &event, runtime.now_ms()).await?;
                    return Ok(AppliedDelivery::of(DeliveryOutcome::Ignored));
                };
                let decision = decide_pull_request_review(&current, review);
                let now = runtime.now_ms();
                let mut plan = DeliveryPlan::new(delivery_id, &event);
                plan.add_projection(
                    &ProjectionWrite {
                        pull_requests: vec![(Some(current), decision.projection.clone())],
                        ci: Vec::new(),
                    },
                    now,
                )?;
                plan.add_board_effects(
                    store,
                    decision.projection.repository_id,
                    &decision.effects,
                    now,
                )
                .await?;
                match plan.commit(store, runtime).await {
                    Ok(Some(committed)) => return Ok(applied.with(committed)),
                    Ok(None) => return Ok(AppliedDelivery::of(DeliveryOutcome::Replay)),
                    Err(error) if error.code == ErrorCode::Conflict => continue,
                    Err(error) => return Err(error),
                }
            }
        }
        Delivery::CheckRun(_) | Delivery::CheckSuite(_) | Delivery::Status(_) => {
            let (observation, is_rerequest) = match delivery {
                Delivery::CheckRun(run) => (
                    CiObservation::from_check_run(run),
                    run.action == "rerequested",
                ),
                Delivery::CheckSuite(suite) => (
                    CiObservation::from_check_suite(suite),
                    suite.action == "rerequested",
                ),
                Delivery::Status(status) => (CiObservation::from_status(status), false),
                _ => unreachable!("matched above"),
            };
            for attempt in 0..=MAX_ATTEMPTS {
                if attempt == MAX_ATTEMPTS {
                    return Err(conflict_busy());
                }
                let old =
                    ci_record(store, observation.repository_id, &observation.head_sha).await?;
                let new = apply_ci_observation(&old, &observation, is_rerequest);
                let pulls = pull_requests_with_head(
                    store,
                    observation.repository_id,
                    &observation.head_sha,
                )
                .await?;
                let decisions: Vec<_> = pulls
                    .iter()
                    .map(|pr| (pr, decide_pull_request_ci(pr, &observation.head_sha, &new)))
                    .collect();
                let now = runtime.now_ms();
                let mut plan = DeliveryPlan::new(delivery_id, &event);
                plan.add_projection(
                    &ProjectionWrite {
                        pull_requests: decisions
                            .iter()
                            .filter(|(pr, decision)| **pr != decision.projection)
                            .map(|(pr, decision)| {
                                (Some((*pr).clone()), decision.projection.clone())
                            })
                            .collect(),
                        ci: vec![(
                            observation.repository_id,
                            observation.head_sha.clone(),
                            old,
                            new.clone(),
                        )],
                    },
                    now,
                )?;
                for (_, decision) in &decisions {
                    plan.add_board_effects(
                        store,
                        decision.projection.repository_id,
                        &decision.effects,
                        now,
                    )
                    .await?;
                }
                match plan.commit(store, runtime).await {
                    Ok(Some(committed)) => return Ok(applied.with(committed)),
                    Ok(None) => return Ok(AppliedDelivery::of(DeliveryOutcome::Replay)),
                    Err(error) if error.code == ErrorCode::Conflict => continue,
                    Err(error) => return Err(error),
                }
            }
        }
    }
    Ok(applied)
}

async fn workspace_of_block<S: Store>(
    store: &S,
    block_id: &BlockId,
) -> Result<Option<WorkspaceId>, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        workspace_id: String,
    }
    store
        .first::<Row>(Statement::new(
            "SELECT workspace_id FROM blocks WHERE id = ?1",
            &params![block_id.as_str()],
        ))
        .await?
        .map(|row| parse_workspace_id(&row.workspace_id))
        .transpose()
}

/// Performs `domain::github::projection`'s effects on the board, as `Actor::Webhook`.
async fn perform_effects<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    effects: &[GithubEffect],
    applied: &mut AppliedDelivery,
) -> Result<(), ApiError> {
    for effect in effects {
        match effect {
            GithubEffect::SetBlockStatus {
                block,
                status,
                note,
            } => {
                let Some(workspace_id) = workspace_of_block(store, block).await? else {
                    continue;
                };
                let context = webhook_context(&workspace_id);
                applied.events.extend(
                    set_block_status(store, runtime, &context, block, *status)
                        .await?
                        .events,
                );
                if note.is_some() {
                    applied.events.extend(
                        publish_pull_request(
                            store,
                            runtime,
                            &workspace_id,
                            block,
                            None,
                            note.clone(),
                        )
                        .await?,
                    );
                }
            }
            GithubEffect::NotifyRunOfMerge { block } => {
                if let Some(workspace_id) = workspace_of_block(store, block).await? {
                    applied.merged.push((workspace_id, block.clone()));
                }
            }
            GithubEffect::PublishPullRequest {
                block,
                pull_request,
            } => {
                let Some(workspace_id) = workspace_of_block(store, block).await? else {
                    continue;
                };
                applied.events.extend(
                    publish_pull_request(
                        store,
                        runtime,
                        &workspace_id,
                        block,
                        Some(PullRequestView::from(pull_request)),
                        None,
                    )
                    .await?,
                );
            }
            GithubEffect::UnlinkFramesOfRepository {
                repository_id,
                warning,
            } => {
                applied.events.extend(
                    unlink_frames_of_repository(store, runtime, *repository_id, None, warning)
                        .await?,
                );
            }
            // Imported tasks are refreshed with their issue's number at hand (see `Issues`).
            GithubEffect::UpdateImportedTask { .. } => {}
        }
    }
    Ok(())
}
