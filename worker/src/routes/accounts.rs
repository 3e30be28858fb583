//! `/accounts`: personal and organisation accounts and their members.

use domain::access::AccountRole;
use domain::api::workspaces::{
    Account, AccountKind, AccountMember, AddAccountMemberRequest, CreateAccountRequest, UserRef,
};
use domain::api::{ApiError, FieldProblem};
use domain::ids::{AccountId, UserId};
use serde::Deserialize;

use crate::auth::now_ms;
use crate::http::{HandlerResult, RequestContext, internal, json};
use crate::ids::random_id_bytes;
use crate::params;
use crate::store::Db;

#[derive(Deserialize)]
struct AccountRow {
    id: String,
    kind: String,
    name: String,
    role: String,
}

impl AccountRow {
    fn into_account(self) -> Result<Account, ApiError> {
        Ok(Account {
            id: AccountId::parse(&self.id).map_err(internal("stored account id"))?,
            kind: if self.kind == "personal" {
                AccountKind::Personal
            } else {
                AccountKind::Org
            },
            name: self.name,
            role: AccountRole::parse(&self.role).ok_or_else(ApiError::internal)?,
        })
    }
}

/// The accounts `user_id` belongs to, personal first.
pub async fn accounts_of(db: &Db, user_id: &UserId) -> Result<Vec<Account>, ApiError> {
    let rows: Vec<AccountRow> = db
        .all(
            "SELECT a.id, a.kind, a.name, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id
             WHERE m.user_id = ?1 ORDER BY a.kind = 'personal' DESC, a.created_at, a.id",
            &params![user_id.as_str()],
        )
        .await?;
    rows.into_iter().map(AccountRow::into_account).collect()
}

/// The caller's account, or 404 when they are not in it.
pub async fn account_of(
    db: &Db,
    user_id: &UserId,
    account_id: &AccountId,
) -> Result<Account, ApiError> {
    let row: Option<AccountRow> = db
        .first(
            "SELECT a.id, a.kind, a.name, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id
             WHERE m.user_id = ?1 AND a.id = ?2",
            &params![user_id.as_str(), account_id.as_str()],
        )
        .await?;
    row.ok_or_else(|| ApiError::not_found("This account"))?
        .into_account()
}

#[derive(Deserialize)]
pub struct UserRow {
    pub id: String,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Finds the user a request names, or a field error that says nobody by that name has signed in.
pub async fn resolve_user(db: &Db, user: &UserRef) -> Result<UserRow, ApiError> {
    let (field, row) = match (&user.user_id, &user.login) {
        (Some(id), _) => (
            "userId",
            db.first::<UserRow>(
                "SELECT id, login, name, avatar_url FROM users WHERE id = ?1",
                &params![id.as_str()],
            )
            .await?,
        ),
        (None, Some(login)) => (
            "login",
            db.first::<UserRow>(
                "SELECT id, login, name, avatar_url FROM users WHERE login = ?1 COLLATE NOCASE",
                &params![login.as_str()],
            )
            .await?,
        ),
        (None, None) => ("userId", None),
    };
    row.ok_or_else(|| {
        ApiError::invalid_fields(vec![FieldProblem::new(
            field,
            "names no user; they must sign in once before they can be added",
        )])
    })
}

/// `POST /accounts`.
pub async fn create(context: &RequestContext) -> HandlerResult {
    let request: CreateAccountRequest = context.json()?;
    request.validate()?;
    let db = &context.db;
    let account_id = AccountId::from_random(random_id_bytes());
    let now = now_ms();
    let name = request.name.trim().to_owned();
    db.batch(vec![
        db.statement(
            "INSERT INTO accounts (id, kind, name, created_at) VALUES (?1, 'org', ?2, ?3)",
            &params![account_id.as_str(), name.as_str(), now],
        )?,
        db.statement(
            "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES (?1, ?2, 'admin', ?3)",
            &params![account_id.as_str(), context.caller().user.id.as_str(), now],
        )?,
    ])
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
        &accounts_of(&context.db, &context.caller().user.id).await?,
    )
}

/// `POST /accounts/:id/members`: account admins add people or change their role.
pub async fn add_member(context: &RequestContext) -> HandlerResult {
    let hidden = || ApiError::not_found("This account");
    let account_id = AccountId::parse(context.param("id")).map_err(|_| hidden())?;
    let account = account_of(&context.db, &context.caller().user.id, &account_id).await?;
    if account.role != AccountRole::Admin {
        return Err(ApiError::forbidden(
            "Only an admin of this account can manage its members.",
        ));
    }
    let request: AddAccountMemberRequest = context.json()?;
    request.validate()?;
    if account.kind == AccountKind::Personal {
        return Err(ApiError::invalid_fields(vec![FieldProblem::new(
            "body",
            "a personal account has exactly one member; create an organisation with POST /accounts to share",
        )]));
    }
    let user = resolve_user(&context.db, &request.user()).await?;
    let now = now_ms();
    // Demoting the last admin would leave the account unmanageable: the statement refuses it.
    let changed = context
        .db
        .run(
            "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account_id, user_id) DO UPDATE SET role = excluded.role
             WHERE excluded.role = 'admin'
                OR (SELECT COUNT(*) FROM memberships WHERE account_id = ?1 AND role = 'admin' AND user_id <> ?2) > 0",
            &params![account_id.as_str(), user.id.as_str(), request.role.as_str(), now],
        )
        .await?;
    if changed == 0 {
        return Err(ApiError::rule_violated(
            "last_account_admin",
            "This is the account's last admin; make someone else an admin first.".to_owned(),
        ));
    }
    let user = crate::routes::auth::user(&user.id, user.login, user.name, user.avatar_url)?;
    json(
        200,
        &AccountMember {
            user,
            role: request.role,
        },
    )
}
