//! Workspace commands that change what the stream's subscribers see: the workspace itself and its
//! explicit members. (Creating and deleting a workspace record no event; they stay in the worker.)

use domain::access::WorkspaceRole;
use domain::api::workspaces::{UpdateWorkspaceRequest, Workspace};
use domain::api::{ApiError, ErrorCode};
use domain::event::EventPayload;
use domain::ids::UserId;
use domain::limits::QuotaKind;
use serde::Deserialize;

use crate::context::{Committed, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, Statement, Store};

/// Renames a workspace or changes its access mode. `current` is the workspace as the caller loaded it.
///
/// Only the fields the request names change: the write is guarded on the name and access mode it was
/// computed from, and re-read and retried when another write changed them in between, so a rename
/// racing a switch to `restricted` can never reopen the workspace (nor the switch undo the rename).
pub async fn update_workspace<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    current: &Workspace,
    request: &UpdateWorkspaceRequest,
) -> Result<Committed<Workspace>, ApiError> {
    request.validate()?;
    let mut current = current.clone();
    for _ in 0..crate::board::MAX_ATTEMPTS {
        let mut workspace = current.clone();
        if let Some(name) = &request.name {
            workspace.name = name.trim().to_owned();
        }
        if let Some(access_mode) = request.access_mode {
            workspace.access_mode = access_mode;
        }
        if let Some(model) = &request.default_model_id {
            workspace.default_model_id = model.as_ref().map(|model| model.trim().to_owned());
        }
        workspace.updated_at = runtime.now_ms();
        let id = workspace.id.as_str();
        let mut plan = GuardedPlan::new(
            runtime.guard_id()?,
            "EXISTS (SELECT 1 FROM workspaces
                     WHERE id = ?1 AND name = ?2 AND access_mode = ?3 AND default_model IS ?4)",
            &params![
                id,
                current.name.as_str(),
                current.access_mode.as_str(),
                current.default_model_id.clone()
            ],
        );
        plan.push(
            &format!("UPDATE workspaces SET name = ?2, access_mode = ?3, updated_at = ?4, default_model = ?5
                      WHERE id = ?1 AND {GUARD}"),
            &params![
                id,
                workspace.name.as_str(),
                workspace.access_mode.as_str(),
                workspace.updated_at,
                workspace.default_model_id.clone()
            ],
        );
        let payload = EventPayload::WorkspaceUpdated {
            workspace: workspace.clone(),
        };
        let now = workspace.updated_at;
        if let Some(committed) =
            events::commit(store, plan, context, payload, now, workspace).await?
        {
            return Ok(committed);
        }
        // Deleted, or changed by another write since it was read: read it again and re-apply only
        // what this request names.
        current = read_workspace(store, &current.id)
            .await?
            .ok_or_else(|| ApiError::not_found("This workspace"))?;
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        "The workspace kept changing while this change was being applied; retry it.",
    ))
}

#[derive(serde::Deserialize)]
struct WorkspaceRow {
    id: String,
    account_id: String,
    name: String,
    access_mode: String,
    default_model: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The workspace as stored now, if it exists.
pub async fn read_workspace<S: Store>(
    store: &S,
    id: &domain::ids::WorkspaceId,
) -> Result<Option<Workspace>, ApiError> {
    let row: Option<WorkspaceRow> = store
        .first(crate::store::Statement::new(
            "SELECT id, account_id, name, access_mode, default_model, created_at, updated_at
             FROM workspaces WHERE id = ?1",
            &params![id.as_str()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored = |_| ApiError::internal();
    Ok(Some(Workspace {
        id: domain::ids::WorkspaceId::parse(&row.id).map_err(stored)?,
        account_id: domain::ids::AccountId::parse(&row.account_id).map_err(stored)?,
        name: row.name,
        access_mode: domain::access::AccessMode::parse(&row.access_mode)
            .ok_or_else(ApiError::internal)?,
        default_model_id: row.default_model,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

/// Makes `user_id` (an existing user) an explicit member with `role`, or changes their role.
pub async fn set_member<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    user_id: &UserId,
    role: WorkspaceRole,
) -> Result<Committed<()>, ApiError> {
    let workspace = context.workspace_id.as_str();
    let now = runtime.now_ms();
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        // A new member needs a free slot (`QuotaKind::MembersPerWorkspace`); a role change does not.
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1) AND EXISTS (SELECT 1 FROM users WHERE id = ?2)
         AND (EXISTS (SELECT 1 FROM workspace_members WHERE workspace_id = ?1 AND user_id = ?2)
              OR (SELECT COUNT(*) FROM workspace_members WHERE workspace_id = ?1) < ?3)",
        &params![
            workspace,
            user_id.as_str(),
            i64::from(context.limits.quotas.members_per_workspace)
        ],
    );
    plan.push(
        &format!(
            "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) SELECT ?1, ?2, ?3, ?4 WHERE {GUARD}
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role"
        ),
        &params![workspace, user_id.as_str(), role.as_str(), now],
    );
    let payload = EventPayload::MemberChanged {
        user_id: user_id.clone(),
        role: Some(role),
    };
    events::record(&mut plan, context, payload, now)?;
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        // The workspace is gone, or it is full (the user exists: the route resolved them).
        let members: Option<MemberCountRow> = store
            .first(Statement::new(
                "SELECT (SELECT COUNT(*) FROM workspace_members WHERE workspace_id = ?1) AS members
                 FROM workspaces WHERE id = ?1",
                &params![workspace],
            ))
            .await?;
        let Some(members) = members else {
            return Err(ApiError::not_found("This workspace"));
        };
        context.limits.quotas.admit(
            QuotaKind::MembersPerWorkspace,
            u64::try_from(members.members).unwrap_or(u64::MAX),
        )?;
        return Err(ApiError::not_found("This user"));
    }
    Ok(Committed {
        value: (),
        events: outcome.events,
    })
}

#[derive(Deserialize)]
struct MemberCountRow {
    members: i64,
}

/// Removes an explicit member (their account role may still give them access).
pub async fn remove_member<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    user_id: &UserId,
) -> Result<Committed<()>, ApiError> {
    let workspace = context.workspace_id.as_str();
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM workspace_members WHERE workspace_id = ?1 AND user_id = ?2)",
        &params![workspace, user_id.as_str()],
    );
    plan.push(
        &format!(
            "DELETE FROM workspace_members WHERE workspace_id = ?1 AND user_id = ?2 AND {GUARD}"
        ),
        &params![workspace, user_id.as_str()],
    );
    let payload = EventPayload::MemberChanged {
        user_id: user_id.clone(),
        role: None,
    };
    events::record(&mut plan, context, payload, runtime.now_ms())?;
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "This user is not an explicit member of the workspace.",
        ));
    }
    Ok(Committed {
        value: (),
        events: outcome.events,
    })
}
