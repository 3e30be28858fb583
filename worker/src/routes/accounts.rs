//! `/accounts`: personal and organisation accounts and their members.

use domain::access::{AccountRole, MemberChange, check_account_member_change};
use domain::api::ApiError;
use domain::api::workspaces::{
    Account, AccountKind, AccountMember, AddAccountMemberRequest, CreateAccountRequest,
};
use domain::event::Actor;
use domain::ids::{AccountId, UserId};
use worker_core::accounts::{RemoveRefusal, remove_account_member};

use crate::auth::now_ms;
use crate::http::{HandlerResult, RequestContext, json, no_content};
use crate::ids::random_id_bytes;
use crate::people;

/// `POST /accounts`.
pub async fn create(context: &RequestContext) -> HandlerResult {
    let request: CreateAccountRequest = context.json()?;
    request.validate()?;
    let account_id = AccountId::from_random(random_id_bytes()?);
    let name = request.name.trim().to_owned();
    people::insert_org_account(
        &context.db,
        &account_id,
        &name,
        &context.caller().user.id,
        now_ms(),
    )
    .await?;
    json(
        201,
        &Account {
            id: account_id,
            kind: AccountKind::Org,
            name,
            role: AccountRole::Admin,
        },
    )
}

/// `GET /accounts`.
pub async fn list(context: &RequestContext) -> HandlerResult {
    json(
        200,
        &people::accounts_of(&context.db, &context.caller().user.id).await?,
    )
}

/// `GET /accounts/:id/members`: the account's members, for anyone in it (404 for everyone else, so a
/// stranger does not learn the account exists).
pub async fn list_members(context: &RequestContext) -> HandlerResult {
    let hidden = || ApiError::not_found("This account");
    let account_id = AccountId::parse(context.param("id")).map_err(|_| hidden())?;
    people::account_of(&context.db, &context.caller().user.id, &account_id).await?;
    json(
        200,
        &people::account_members(&context.db, &account_id).await?,
    )
}

/// `POST /accounts/:id/members`: account admins add people or change their role.
pub async fn add_member(context: &RequestContext) -> HandlerResult {
    let hidden = || ApiError::not_found("This account");
    let account_id = AccountId::parse(context.param("id")).map_err(|_| hidden())?;
    let account = people::account_of(&context.db, &context.caller().user.id, &account_id).await?;
    check_account_member_change(account.kind, account.role, MemberChange::Add)?;
    let request: AddAccountMemberRequest = context.json()?;
    request.validate()?;
    let user = people::resolve_user(&context.db, &request.user()).await?;
    let now = now_ms();
    people::set_account_member(
        &context.db,
        &account_id,
        &user.id,
        request.role,
        now,
        &context.limits.quotas,
    )
    .await?;
    let user = people::user(&user.id, user.login, user.name, user.avatar_url)?;
    json(
        200,
        &AccountMember {
            user,
            role: request.role,
        },
    )
}

/// `DELETE /accounts/:id/members/:userId`: account admins remove someone (never the last admin). Each
/// of the account's workspaces records a `member.changed` for them, so every hub re-checks their access
/// and closes the sockets of the workspaces they can no longer read.
pub async fn remove_member(context: &RequestContext) -> HandlerResult {
    let hidden = || ApiError::not_found("This account");
    let account_id = AccountId::parse(context.param("id")).map_err(|_| hidden())?;
    let account = people::account_of(&context.db, &context.caller().user.id, &account_id).await?;
    check_account_member_change(account.kind, account.role, MemberChange::Remove)?;
    let not_a_member = || ApiError::not_found("This member of the account");
    let user_id = UserId::parse(context.param("userId")).map_err(|_| not_a_member())?;
    let actor = Actor::User {
        id: context.caller().user.id.clone(),
    };
    let removed = remove_account_member(
        &context.db,
        &crate::ids::WorkerRuntime,
        &actor,
        context.client_id.clone(),
        &account_id,
        &user_id,
    )
    .await?
    .map_err(|refusal| match refusal {
        RemoveRefusal::NotAMember => not_a_member(),
        RemoveRefusal::LastAdmin => ApiError::rule_violated(
            "last_account_admin",
            "This is the account's last admin; make someone else an admin first.".to_owned(),
        ),
    })?;
    if context.deliver_events {
        for (workspace_id, events) in removed.events {
            let env = context.env.clone();
            context.execution.wait_until(async move {
                crate::delivery::deliver_and_mark(&env, workspace_id.as_str(), &events).await
            });
        }
    }
    no_content()
}
