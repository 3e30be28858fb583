//! Account membership changes that reach the workspaces' live streams.
//!
//! Removing someone from an account can take away their access to every workspace of the account
//! (an `account`-mode workspace is open to its account's members). So the removal records a
//! `member.changed` event in each of the account's workspaces, in the same transaction: the hubs
//! re-check that user's access when they broadcast it and close the sockets of a user who lost it,
//! and the outbox (with the sweep) makes sure every hub hears of it even after a crash.

use domain::access::WorkspaceRole;
use domain::api::ApiError;
use domain::event::{Actor, EventPayload};
use domain::ids::{AccountId, UserId, WorkspaceId};
use serde::Deserialize;

use crate::context::{Runtime, WriteContext};
use crate::events;
use crate::params;
use crate::store::{GUARD, GuardedPlan, OutboxEvent, Statement, Store};

/// Why removing an account member was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveRefusal {
    /// The user is not a member of the account.
    NotAMember,
    /// The user is the account's last admin: nobody could manage the account any more.
    LastAdmin,
}

/// The events a removal recorded, per workspace of the account (to deliver to each hub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedAccountMember {
    pub events: Vec<(WorkspaceId, Vec<OutboxEvent>)>,
}

#[derive(Deserialize)]
struct WorkspaceRoleRow {
    id: String,
    role: Option<String>,
}

#[derive(Deserialize)]
struct RoleRow {
    role: String,
}

/// Removes `user_id` from the account, unless they are its last admin. Each workspace of the account
/// gets a `member.changed` event whose `role` is the user's explicit workspace role (what access they
/// keep there), `null` when they have none.
pub async fn remove_account_member<S: Store, R: Runtime>(
    store: &S,
    runtime: &R,
    actor: &Actor,
    origin: Option<String>,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<Result<RemovedAccountMember, RemoveRefusal>, ApiError> {
    let account = account_id.as_str();
    let user = user_id.as_str();
    let workspaces: Vec<WorkspaceRoleRow> = store
        .all(Statement::new(
            "SELECT w.id AS id, m.role AS role FROM workspaces w
             LEFT JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = ?2
             WHERE w.account_id = ?1 ORDER BY w.id",
            &params![account, user],
        ))
        .await?;
    let now = runtime.now_ms();
    let mut plan = GuardedPlan::new(
        runtime.guard_id()?,
        "EXISTS (SELECT 1 FROM memberships WHERE account_id = ?1 AND user_id = ?2)
         AND (NOT EXISTS (SELECT 1 FROM memberships WHERE account_id = ?1 AND user_id = ?2 AND role = 'admin')
              OR (SELECT COUNT(*) FROM memberships WHERE account_id = ?1 AND role = 'admin' AND user_id <> ?2) > 0)",
        &params![account, user],
    );
    plan.push(
        &format!("DELETE FROM memberships WHERE account_id = ?1 AND user_id = ?2 AND {GUARD}"),
        &params![account, user],
    );
    let mut workspace_ids = Vec::with_capacity(workspaces.len());
    for row in &workspaces {
        let workspace_id = WorkspaceId::parse(&row.id).map_err(|_| ApiError::internal())?;
        let context =
            WriteContext::with_default_limits(workspace_id.clone(), actor.clone(), origin.clone());
        let payload = EventPayload::MemberChanged {
            user_id: user_id.clone(),
            role: row.role.as_deref().and_then(WorkspaceRole::parse),
        };
        events::record(&mut plan, &context, payload, now)?;
        workspace_ids.push(workspace_id);
    }
    let outcome = store.execute(plan).await?;
    if !outcome.applied {
        let membership: Option<RoleRow> = store
            .first(Statement::new(
                "SELECT role FROM memberships WHERE account_id = ?1 AND user_id = ?2",
                &params![account, user],
            ))
            .await?;
        return Ok(Err(match membership {
            Some(row) if row.role == "admin" => RemoveRefusal::LastAdmin,
            _ => RemoveRefusal::NotAMember,
        }));
    }
    // Each workspace's record added exactly one event, in the order of the list.
    let events = workspace_ids
        .into_iter()
        .zip(outcome.events)
        .map(|(workspace_id, event)| (workspace_id, vec![event]))
        .collect();
    Ok(Ok(RemovedAccountMember { events }))
}
