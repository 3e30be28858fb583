//! `/workspaces`: workspaces, who can see them, and their members. Parse → call → render: the
//! commands are `worker_core::workspaces`, the reads `crate::access`.

use domain::access::{AccessMode, WorkspaceRole};
use domain::api::workspaces::{
    AddWorkspaceMemberRequest, CreateWorkspaceRequest, UpdateWorkspaceRequest, Workspace,
    WorkspaceMember, WorkspaceView,
};
use domain::api::{ApiError, ErrorCode};
use domain::ids::{UserId, WorkspaceId};
use worker_core::workspaces as commands;

use crate::access;
use crate::auth::now_ms;
use crate::delivery::deliver_after_response;
use crate::http::{HandlerResult, RequestContext, json, no_content};
use crate::ids::{WorkerRuntime, random_id_bytes};
use crate::people::{account_of, accounts_of, resolve_user};

/// `GET /workspaces`.
pub async fn list(context: &RequestContext) -> HandlerResult {
    let views = access::visible_workspaces(&context.db, &context.caller().user.id).await?;
    json(200, &views)
}

/// `POST /workspaces`.
pub async fn create(context: &RequestContext) -> HandlerResult {
    let request: CreateWorkspaceRequest = context.json()?;
    request.validate()?;
    let caller = &context.caller().user;
    let account = match &request.account_id {
        Some(account_id) => account_of(&context.db, &caller.id, account_id).await?,
        None => accounts_of(&context.db, &caller.id)
            .await?
            .into_iter()
            .find(|account| account.kind == domain::api::workspaces::AccountKind::Personal)
            .ok_or_else(ApiError::internal)?,
    };
    let now = now_ms();
    let workspace = Workspace {
        id: WorkspaceId::from_random(random_id_bytes()?),
        account_id: account.id.clone(),
        name: request.name.trim().to_owned(),
        access_mode: request.access_mode.unwrap_or(AccessMode::Account),
        default_model_id: None,
        created_at: now,
        updated_at: now,
    };
    access::insert_workspace(&context.db, &workspace, &caller.id, &context.limits.quotas).await?;
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
    let access = context.workspace();
    let committed = commands::update_workspace(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &access.workspace,
        &request,
    )
    .await?;
    deliver_after_response(context, committed.events);
    json(
        200,
        &WorkspaceView {
            workspace: committed.value,
            role: access.role.expect("authorized"),
        },
    )
}

/// `DELETE /workspaces/:id`: the board, its members and its events go with it.
pub async fn delete(context: &RequestContext) -> HandlerResult {
    let id = &context.workspace().workspace.id;
    access::delete_workspace(&context.db, id).await?;
    crate::hub::close_workspace(&context.env, id.as_str()).await;
    no_content()
}

/// `GET /workspaces/:id/members`.
pub async fn list_members(context: &RequestContext) -> HandlerResult {
    let members = access::members(&context.db, &context.workspace().workspace.id).await?;
    json(200, &members)
}

/// `POST /workspaces/:id/members`: adds a member or changes their role.
pub async fn add_member(context: &RequestContext) -> HandlerResult {
    let request: AddWorkspaceMemberRequest = context.json()?;
    request.validate()?;
    let user = resolve_user(&context.db, &request.user()).await?;
    let user = crate::people::user(&user.id, user.login, user.name, user.avatar_url)?;
    let committed = commands::set_member(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &user.id,
        request.role,
    )
    .await?;
    deliver_after_response(context, committed.events);
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
    let user_id = UserId::parse(context.param("userId")).map_err(|_| {
        ApiError::new(
            ErrorCode::NotFound,
            "This user is not an explicit member of the workspace.",
        )
    })?;
    let committed = commands::remove_member(
        &context.db,
        &WorkerRuntime,
        &context.write_context(),
        &user_id,
    )
    .await?;
    deliver_after_response(context, committed.events);
    no_content()
}
