//! Workspaces as the worker reads them: who may see a workspace (the access check every workspace route
//! and the hub's re-checks use), the list of visible workspaces, and the workspace writes that record
//! no event (create, delete). Routes call these; only this module and `worker_core` hold their SQL.

use domain::access::{AccessMode, AccountRole, WorkspaceRole, effective_role};
use domain::api::ApiError;
use domain::api::auth::User;
use domain::api::workspaces::{Workspace, WorkspaceMember, WorkspaceView};
use domain::ids::{AccountId, UserId, WorkspaceId};
use domain::limits::{QuotaKind, Quotas, quota_exceeded};
use serde::Deserialize;

use crate::http::internal;
use crate::params;
use crate::store::{Db, changes};

/// A workspace and the caller's effective role in it (`None`: they may not see it).
pub struct WorkspaceAccess {
    pub workspace: Workspace,
    pub role: Option<WorkspaceRole>,
}

impl WorkspaceAccess {
    pub fn view(&self) -> WorkspaceView {
        WorkspaceView {
            workspace: self.workspace.clone(),
            role: self.role.expect("only visible workspaces are viewed"),
        }
    }
}

#[derive(Deserialize)]
pub struct WorkspaceRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub access_mode: String,
    pub default_model: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub account_role: Option<String>,
    pub workspace_role: Option<String>,
}

impl WorkspaceRow {
    pub fn into_access(self) -> Result<WorkspaceAccess, ApiError> {
        let access_mode = AccessMode::parse(&self.access_mode).ok_or_else(ApiError::internal)?;
        let role = effective_role(
            self.account_role.as_deref().and_then(AccountRole::parse),
            access_mode,
            self.workspace_role
                .as_deref()
                .and_then(WorkspaceRole::parse),
        );
        Ok(WorkspaceAccess {
            workspace: Workspace {
                id: WorkspaceId::parse(&self.id).map_err(internal("stored workspace id"))?,
                account_id: AccountId::parse(&self.account_id)
                    .map_err(internal("stored account id"))?,
                name: self.name,
                access_mode,
                default_model_id: self.default_model,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            role,
        })
    }
}

pub const WORKSPACE_COLUMNS: &str =
    "w.id, w.account_id, w.name, w.access_mode, w.default_model, w.created_at, w.updated_at";

/// Loads a workspace with the user's effective role, in one query.
pub async fn load_access(
    db: &Db,
    workspace_id: &WorkspaceId,
    user_id: &UserId,
) -> Result<Option<WorkspaceAccess>, ApiError> {
    let sql = format!(
        "SELECT {WORKSPACE_COLUMNS},
                (SELECT role FROM memberships WHERE account_id = w.account_id AND user_id = ?2) AS account_role,
                (SELECT role FROM workspace_members WHERE workspace_id = w.id AND user_id = ?2) AS workspace_role
         FROM workspaces w WHERE w.id = ?1"
    );
    let row: Option<WorkspaceRow> = db
        .first(&sql, &params![workspace_id.as_str(), user_id.as_str()])
        .await?;
    row.map(WorkspaceRow::into_access).transpose()
}

/// The workspaces `user_id` can see, oldest first, with their role in each.
pub async fn visible_workspaces(db: &Db, user_id: &UserId) -> Result<Vec<WorkspaceView>, ApiError> {
    let sql = format!(
        "SELECT {WORKSPACE_COLUMNS}, m.role AS account_role, wm.role AS workspace_role
         FROM workspaces w
         LEFT JOIN memberships m ON m.account_id = w.account_id AND m.user_id = ?1
         LEFT JOIN workspace_members wm ON wm.workspace_id = w.id AND wm.user_id = ?1
         WHERE m.role IS NOT NULL OR wm.role IS NOT NULL
         ORDER BY w.created_at, w.id"
    );
    let rows: Vec<WorkspaceRow> = db.all(&sql, &params![user_id.as_str()]).await?;
    let mut views = Vec::new();
    for row in rows {
        let access = row.into_access()?;
        if access.role.is_some() {
            views.push(access.view());
        }
    }
    Ok(views)
}

/// Stores a new workspace with its creator as an explicit admin (whatever the access mode, the
/// creator administers what they made), if the account has room for it: the count and the insert
/// are one transaction, so racing creates cannot both take the last slot.
pub async fn insert_workspace(
    db: &Db,
    workspace: &Workspace,
    creator: &UserId,
    quotas: &Quotas,
) -> Result<(), ApiError> {
    let results = db
        .batch(vec![
            db.statement(
                "INSERT INTO workspaces (id, account_id, name, access_mode, created_by, created_at, updated_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
                 WHERE (SELECT COUNT(*) FROM workspaces WHERE account_id = ?2) < ?7",
                &params![
                    workspace.id.as_str(),
                    workspace.account_id.as_str(),
                    workspace.name.as_str(),
                    workspace.access_mode.as_str(),
                    creator.as_str(),
                    workspace.created_at,
                    i64::from(quotas.workspaces_per_account)
                ],
            )?,
            db.statement(
                "INSERT INTO workspace_members (workspace_id, user_id, role, created_at)
                 SELECT ?1, ?2, 'admin', ?3 WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)",
                &params![workspace.id.as_str(), creator.as_str(), workspace.created_at],
            )?,
        ])
        .await?;
    if results.first().map(changes) == Some(1) {
        return Ok(());
    }
    Err(quota_exceeded(
        QuotaKind::WorkspacesPerAccount,
        quotas.workspaces_per_account,
    ))
}

/// Deletes a workspace; its board and members go with it (foreign keys), and its events.
pub async fn delete_workspace(db: &Db, workspace_id: &WorkspaceId) -> Result<(), ApiError> {
    let id = workspace_id.as_str();
    db.batch(vec![
        db.statement("DELETE FROM events WHERE workspace_id = ?1", &params![id])?,
        db.statement("DELETE FROM workspaces WHERE id = ?1", &params![id])?,
    ])
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct MemberRow {
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
    role: String,
}

/// The explicit members of a workspace, by login.
pub async fn members(
    db: &Db,
    workspace_id: &WorkspaceId,
) -> Result<Vec<WorkspaceMember>, ApiError> {
    let rows: Vec<MemberRow> = db
        .all(
            "SELECT u.id, u.login, u.name, u.avatar_url, wm.role FROM workspace_members wm
             JOIN users u ON u.id = wm.user_id WHERE wm.workspace_id = ?1 ORDER BY u.login",
            &params![workspace_id.as_str()],
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(WorkspaceMember {
                role: WorkspaceRole::parse(&row.role).ok_or_else(ApiError::internal)?,
                user: User {
                    id: UserId::parse(&row.id).map_err(internal("stored user id"))?,
                    login: row.login,
                    name: row.name,
                    avatar_url: row.avatar_url,
                },
            })
        })
        .collect()
}
