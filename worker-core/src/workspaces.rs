//! Workspace commands that change what the stream's subscribers see: the workspace itself and its
//! explicit members. (Creating and deleting a workspace record no event; they stay in the worker.)

use domain::access::WorkspaceRole;
use domain::api::workspaces::{UpdateWorkspaceRequest, Workspace};
use domain::api::{ApiError, ErrorCode};
use domain::event::EventPayload;
use domain::ids::UserId;

use crate::context::{Committed, Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, Store};

/// Renames a workspace or changes its access mode. `current` is the workspace as the caller loaded it.
pub async fn update_workspace<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    context: &WriteContext,
    current: &Workspace,
    request: &UpdateWorkspaceRequest,
) -> Result<Committed<Workspace>, ApiError> {
    request.validate()?;
    let mut workspace = current.clone();
    if let Some(name) = &request.name {
        workspace.name = name.trim().to_owned();
    }
    if let Some(access_mode) = request.access_mode {
        workspace.access_mode = access_mode;
    }
    workspace.updated_at = runtime.now_ms();
    let id = workspace.id.as_str();
    let mut plan = GuardedPlan::new(
        runtime.guard_id(),
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1)",
        &params![id],
    );
    plan.push(
        &format!("UPDATE workspaces SET name = ?2, access_mode = ?3, updated_at = ?4 WHERE id = ?1 AND {GUARD}"),
        &params![id, workspace.name.as_str(), workspace.access_mode.as_str(), workspace.updated_at],
    );
    let payload = EventPayload::WorkspaceUpdated {
        workspace: workspace.clone(),
    };
    events::record(&mut plan, context, payload, workspace.updated_at)?;
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        return Err(ApiError::not_found("This workspace"));
    }
    Ok(Committed {
        value: workspace,
        events: outcome.events,
    })
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
        runtime.guard_id(),
        "EXISTS (SELECT 1 FROM workspaces WHERE id = ?1) AND EXISTS (SELECT 1 FROM users WHERE id = ?2)",
        &params![workspace, user_id.as_str()],
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
        return Err(ApiError::not_found("This workspace"));
    }
    Ok(Committed {
        value: (),
        events: outcome.events,
    })
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
        runtime.guard_id(),
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
