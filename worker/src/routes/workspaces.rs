//! `/workspaces`: workspaces, who can see them, and their members.

use domain::access::{AccessMode, AccountRole, WorkspaceRole, effective_role};
use domain::api::workspaces::{
    AddWorkspaceMemberRequest, CreateWorkspaceRequest, UpdateWorkspaceRequest, Workspace,
    WorkspaceMember, WorkspaceView,
};
use domain::api::{ApiError, ErrorCode};
use domain::event::EventPayload;
use domain::ids::{AccountId, UserId, WorkspaceId};
use serde::Deserialize;

use crate::auth::now_ms;
use crate::events;
use crate::http::{HandlerResult, RequestContext, internal, json, no_content};
use crate::ids::random_id_bytes;
use crate::params;
use crate::routes::accounts::{UserRow, account_of, resolve_user};
use crate::store::{Db, GUARD, GuardedBatch};

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
struct WorkspaceRow {
    id: String,
    account_id: String,
    name: String,
    access_mode: String,
    created_at: i64,
    updated_at: i64,
    account_role: Option<String>,
    workspace_role: Option<String>,
}

impl WorkspaceRow {
    fn into_access(self) -> Result<WorkspaceAccess, ApiError> {
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
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            role,
        })
    }
}

const WORKSPACE_COLUMNS: &str =
    "w.id, w.account_id, w.name, w.access_mode, w.created_at, w.updated_at";

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

/// `GET /workspaces`.
pub async fn list(context: &RequestContext) -> HandlerResult {
    let sql = format!(
        "SELECT {WORKSPACE_COLUMNS}, m.role AS account_role, wm.role AS workspace_role
         FROM workspaces w
         LEFT JOIN memberships m ON m.account_id = w.account_id AND m.user_id = ?1
         LEFT JOIN workspace_members wm ON wm.workspace_id = w.id AND wm.user_id = ?1
         WHERE m.role IS NOT NULL OR wm.role IS NOT NULL
         ORDER BY w.created_at, w.id"
    );
    let rows: Vec<WorkspaceRow> = context
        .db
        .all(&sql, &params![context.caller().user.id.as_str()])
        .await?;
    let mut views = Vec::new();
    for row in rows {
        let access = row.into_access()?;
        if access.role.is_some() {
            views.push(access.view());
        }
    }
    json(200, &views)
}

/// `POST /workspaces`.
pub async fn create(context: &RequestContext) -> HandlerResult {
    let request: CreateWorkspaceRequest = context.json()?;
    request.validate()?;
    let caller = &context.caller().user;
    let account = match &request.account_id {
        Some(account_id) => account_of(&context.db, &caller.id, account_id).await?,
        None => crate::routes::accounts::accounts_of(&context.db, &caller.id)
            .await?
            .into_iter()
            .find(|account| account.kind == domain::api::workspaces::AccountKind::Personal)
            .ok_or_else(ApiError::internal)?,
    };
    let now = now_ms();
    let workspace = Workspace {
        id: WorkspaceId::from_random(random_id_bytes()),
        account_id: account.id.clone(),
        name: request.name.trim().to_owned(),
        access_mode: request.access_mode.unwrap_or(AccessMode::Account),
        created_at: now,
        updated_at: now,
    };
    let db = &context.db;
    db.batch(vec![
        db.statement(
            "INSERT INTO workspaces (id, account_id, name, access_mode, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            &params![
                workspace.id.as_str(),
                workspace.account_id.as_str(),
                workspace.name.as_str(),
                workspace.access_mode.as_str(),
                caller.id.as_str(),
                now
            ],
        )?,
        // The creator administers what they made, whatever the access mode.
        db.statement(
            "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES (?1, ?2, 'admin', ?3)",
            &params![workspace.id.as_str(), caller.id.as_str(), now],
        )?,
    ])
    .await?;
    json(
        201,
        &WorkspaceView {
            workspace,
            role: WorkspaceRole::Admin,
        },
    )
}

/// `GET /workspaces/:id`.
pub async fn get(context: &RequestContext) -> HandlerResult {
    json(200, &context.workspace().view())
}

/// `PATCH /workspaces/:id`.
pub async fn update(context: &RequestContext) -> HandlerResult {
    let request: UpdateWorkspaceRequest = context.json()?;
    request.validate()?;
    let access = context.workspace();
    let mut workspace = access.workspace.clone();
    if let Some(name) = &request.name {
        workspace.name = name.trim().to_owned();
    }
    if let Some(access_mode) = request.access_mode {
        workspace.access_mode = access_mode;
    }
    workspace.updated_at = now_ms();
    let id = workspace.id.as_str();
    let mut batch = GuardedBatch::new(
        &context.db,
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)",
        &params![id],
    )?;
    batch.push(
        &format!("UPDATE workspaces SET name = ?2, access_mode = ?3, updated_at = ?4 WHERE id = ?1 AND {GUARD}"),
        &params![id, workspace.name.as_str(), workspace.access_mode.as_str(), workspace.updated_at],
    )?;
    let payload = EventPayload::WorkspaceUpdated {
        workspace: workspace.clone(),
    };
    events::record_change(context, &mut batch, payload, workspace.updated_at)?;
    if !batch.commit().await? {
        return Err(ApiError::not_found("This workspace"));
    }
    json(
        200,
        &WorkspaceView {
            workspace,
            role: access.role.expect("authorized"),
        },
    )
}

/// `DELETE /workspaces/:id`: the board, its members and its events go with it.
pub async fn delete(context: &RequestContext) -> HandlerResult {
    let id = context.workspace().workspace.id.as_str();
    let db = &context.db;
    db.batch(vec![
        db.statement("DELETE FROM events WHERE workspace_id = ?1", &params![id])?,
        db.statement("DELETE FROM workspaces WHERE id = ?1", &params![id])?,
    ])
    .await?;
    crate::hub::close_workspace(&context.env, id).await;
    no_content()
}

#[derive(Deserialize)]
struct MemberRow {
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
    role: String,
}

/// `GET /workspaces/:id/members`.
pub async fn list_members(context: &RequestContext) -> HandlerResult {
    let rows: Vec<MemberRow> = context
        .db
        .all(
            "SELECT u.id, u.login, u.name, u.avatar_url, wm.role FROM workspace_members wm
             JOIN users u ON u.id = wm.user_id WHERE wm.workspace_id = ?1 ORDER BY u.login",
            &params![context.workspace().workspace.id.as_str()],
        )
        .await?;
    let members = rows
        .into_iter()
        .map(|row| {
            Ok(WorkspaceMember {
                role: WorkspaceRole::parse(&row.role).ok_or_else(ApiError::internal)?,
                user: crate::routes::auth::user(&row.id, row.login, row.name, row.avatar_url)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    json(200, &members)
}

/// `POST /workspaces/:id/members`: adds a member or changes their role.
pub async fn add_member(context: &RequestContext) -> HandlerResult {
    let request: AddWorkspaceMemberRequest = context.json()?;
    request.validate()?;
    let user: UserRow = resolve_user(&context.db, &request.user()).await?;
    let workspace_id = &context.workspace().workspace.id;
    let now = now_ms();
    let mut batch = GuardedBatch::new(
        &context.db,
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)",
        &params![workspace_id.as_str()],
    )?;
    batch.push(
        &format!(
            "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role"
        ),
        &params![workspace_id.as_str(), user.id.as_str(), request.role.as_str(), now],
    )?;
    let user = crate::routes::auth::user(&user.id, user.login, user.name, user.avatar_url)?;
    let payload = EventPayload::MemberChanged {
        user_id: user.id.clone(),
        role: Some(request.role),
    };
    events::record_change(context, &mut batch, payload, now)?;
    if !batch.commit().await? {
        return Err(ApiError::not_found("This workspace"));
    }
    json(
        200,
        &WorkspaceMember {
            user,
            role: request.role,
        },
    )
}

/// `DELETE /workspaces/:id/members/:userId`.
pub async fn remove_member(context: &RequestContext) -> HandlerResult {
    let not_member = || {
        ApiError::new(
            ErrorCode::NotFound,
            "This user is not an explicit member of the workspace.",
        )
    };
    let user_id = UserId::parse(context.param("userId")).map_err(|_| not_member())?;
    let workspace_id = &context.workspace().workspace.id;
    let now = now_ms();
    let mut batch = GuardedBatch::new(
        &context.db,
        "EXISTS (SELECT 1 FROM workspace_members WHERE workspace_id = ?1 AND user_id = ?2)",
        &params![workspace_id.as_str(), user_id.as_str()],
    )?;
    batch.push(
        &format!(
            "DELETE FROM workspace_members WHERE workspace_id = ?1 AND user_id = ?2 AND {GUARD}"
        ),
        &params![workspace_id.as_str(), user_id.as_str()],
    )?;
    let payload = EventPayload::MemberChanged {
        user_id,
        role: None,
    };
    events::record_change(context, &mut batch, payload, now)?;
    if !batch.commit().await? {
        return Err(not_member());
    }
    no_content()
}
