//! People and accounts as the worker stores them: sign-in (users, identities, personal accounts),
//! session revocation, API tokens, accounts and their members. Routes call these; only this module holds
//! their SQL.

use domain::access::AccountRole;
use domain::api::auth::{ApiTokenInfo, User};
use domain::api::workspaces::{Account, AccountKind, AccountMember, UserRef};
use domain::api::{ApiError, ErrorCode};
use domain::ids::{AccountId, ApiTokenId, UserId};
use domain::limits::{QuotaKind, Quotas, quota_exceeded};
use serde::Deserialize;

use crate::auth::now_ms;
use crate::http::internal;
use crate::ids::random_id_bytes;
use crate::params;
use crate::store::Db;

#[derive(Deserialize)]
struct IdentityRow {
    user_id: String,
    session_generation: i64,
}

/// Who a sign-in says the person is.
pub struct Profile<'a> {
    pub provider: &'a str,
    pub provider_user_id: String,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Finds or creates the user behind an identity (with their personal account), refreshing the
/// profile. Returns the user id and their session generation.
pub async fn sign_in(db: &Db, profile: &Profile<'_>) -> Result<(UserId, i64), ApiError> {
    let lookup =
        "SELECT i.user_id, u.session_generation FROM identities i JOIN users u ON u.id = i.user_id
                  WHERE i.provider = ?1 AND i.provider_user_id = ?2";
    let identity_params = params![profile.provider, profile.provider_user_id.as_str()];
    // GitHub logins can be renamed and reused: whoever signs in with a login now holds it, and a
    // stale holder (who has not signed in since they renamed) steps aside to a placeholder no login
    // can match, so "add member by login" never picks them.
    let displace = |except: &str| {
        db.statement(
            "UPDATE users SET login = ?3 || id WHERE login = ?1 COLLATE NOCASE AND id <> ?2",
            &params![
                profile.login.as_str(),
                except,
                domain::signin::DISPLACED_LOGIN_PREFIX
            ],
        )
    };
    if let Some(row) = db.first::<IdentityRow>(lookup, &identity_params).await? {
        db.batch(vec![
            displace(&row.user_id)?,
            db.statement(
                "UPDATE users SET login = ?2, name = ?3, avatar_url = ?4 WHERE id = ?1",
                &params![
                    row.user_id.as_str(),
                    profile.login.as_str(),
                    profile.name.clone(),
                    profile.avatar_url.clone()
                ],
            )?,
        ])
        .await?;
        let user_id = UserId::parse(&row.user_id).map_err(internal("stored user id"))?;
        return Ok((user_id, row.session_generation));
    }
    let user_id = UserId::from_random(random_id_bytes()?);
    let account_id = AccountId::from_random(random_id_bytes()?);
    let now = now_ms();
    let statements = vec![
        displace(user_id.as_str())?,
        db.statement(
            "INSERT INTO users (id, login, name, avatar_url, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            &params![user_id.as_str(), profile.login.as_str(), profile.name.clone(), profile.avatar_url.clone(), now],
        )?,
        db.statement(
            "INSERT INTO identities (provider, provider_user_id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            &params![profile.provider, profile.provider_user_id.as_str(), user_id.as_str(), now],
        )?,
        db.statement(
            "INSERT INTO accounts (id, kind, name, personal_user_id, created_at) VALUES (?1, 'personal', ?2, ?3, ?4)",
            &params![account_id.as_str(), profile.login.as_str(), user_id.as_str(), now],
        )?,
        db.statement(
            "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES (?1, ?2, 'admin', ?3)",
            &params![account_id.as_str(), user_id.as_str(), now],
        )?,
    ];
    if db.batch(statements).await.is_err() {
        // Two first sign-ins of the same person raced; the other one created the user.
        if let Some(row) = db.first::<IdentityRow>(lookup, &identity_params).await? {
            let user_id = UserId::parse(&row.user_id).map_err(internal("stored user id"))?;
            return Ok((user_id, row.session_generation));
        }
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "Signing in collided with another change; try again.",
        ));
    }
    Ok((user_id, 0))
}

#[derive(Deserialize)]
struct StreamHolderRow {
    login: String,
    session_generation: i64,
}

/// A user's login and session generation, for the live stream (`None`: the user is gone).
pub async fn stream_holder(db: &Db, user_id: &UserId) -> Result<Option<(String, i64)>, ApiError> {
    Ok(db
        .first::<StreamHolderRow>(
            "SELECT login, session_generation FROM users WHERE id = ?1",
            &params![user_id.as_str()],
        )
        .await?
        .map(|row| (row.login, row.session_generation)))
}

/// Records the single use of a token under `key` until it would have expired anyway (the sweep
/// trims it then); `false` when it was used before.
pub async fn claim_single_use(db: &Db, key: &str, expires_at: i64) -> Result<bool, ApiError> {
    let claimed = db
        .run(
            "INSERT OR IGNORE INTO revoked_sessions (jti, expires_at) VALUES (?1, ?2)",
            &params![key, expires_at],
        )
        .await?;
    Ok(claimed > 0)
}

/// Revokes one session token until it would have expired anyway, and trims revocations of expired
/// tokens while at it.
pub async fn revoke_session(
    db: &Db,
    jti: &str,
    expires_at: i64,
    now_seconds: i64,
) -> Result<(), ApiError> {
    db.run(
        "INSERT OR IGNORE INTO revoked_sessions (jti, expires_at) VALUES (?1, ?2)",
        &params![jti, expires_at],
    )
    .await?;
    db.run(
        "DELETE FROM revoked_sessions WHERE expires_at < ?1",
        &params![now_seconds],
    )
    .await?;
    Ok(())
}

/// Signs the user out everywhere: every session token of an older generation stops working.
/// Signs `user_id` out everywhere: every session token stops working, and unless
/// `keep_api_tokens`, every API token is deleted too (one batch: both or neither).
pub async fn revoke_all_sessions(
    db: &Db,
    user_id: &UserId,
    keep_api_tokens: bool,
) -> Result<(), ApiError> {
    let mut statements = vec![db.statement(
        "UPDATE users SET session_generation = session_generation + 1 WHERE id = ?1",
        &params![user_id.as_str()],
    )?];
    if !keep_api_tokens {
        statements.push(db.statement(
            "DELETE FROM api_tokens WHERE user_id = ?1",
            &params![user_id.as_str()],
        )?);
    }
    db.batch(statements).await?;
    Ok(())
}

#[derive(Deserialize)]
struct TokenRow {
    id: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_info(self) -> Result<ApiTokenInfo, ApiError> {
        Ok(ApiTokenInfo {
            id: ApiTokenId::parse(&self.id).map_err(internal("stored token id"))?,
            name: self.name,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// Stores a new API token (only its hash), if the user holds fewer than their quota.
pub async fn insert_api_token(
    db: &Db,
    id: &ApiTokenId,
    user_id: &UserId,
    name: &str,
    token_hash: &str,
    now: i64,
    quotas: &Quotas,
) -> Result<(), ApiError> {
    let inserted = db
        .run(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = ?2) < ?6",
            &params![
                id.as_str(),
                user_id.as_str(),
                name,
                token_hash,
                now,
                i64::from(quotas.api_tokens_per_user)
            ],
        )
        .await?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(quota_exceeded(
            QuotaKind::ApiTokensPerUser,
            quotas.api_tokens_per_user,
        ))
    }
}

/// The user's API tokens, oldest first.
pub async fn api_tokens(db: &Db, user_id: &UserId) -> Result<Vec<ApiTokenInfo>, ApiError> {
    let rows: Vec<TokenRow> = db
        .all(
            "SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = ?1 ORDER BY created_at",
            &params![user_id.as_str()],
        )
        .await?;
    rows.into_iter().map(TokenRow::into_info).collect()
}

/// Deletes one of the user's API tokens; `false` when they have none by that id.
pub async fn delete_api_token(
    db: &Db,
    id: &ApiTokenId,
    user_id: &UserId,
) -> Result<bool, ApiError> {
    let deleted = db
        .run(
            "DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2",
            &params![id.as_str(), user_id.as_str()],
        )
        .await?;
    Ok(deleted > 0)
}

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
struct AccountMemberRow {
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
    role: String,
}

/// The members of an account, by login.
pub async fn account_members(
    db: &Db,
    account_id: &AccountId,
) -> Result<Vec<AccountMember>, ApiError> {
    let rows: Vec<AccountMemberRow> = db
        .all(
            "SELECT u.id, u.login, u.name, u.avatar_url, m.role FROM memberships m
             JOIN users u ON u.id = m.user_id WHERE m.account_id = ?1 ORDER BY u.login COLLATE NOCASE",
            &params![account_id.as_str()],
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(AccountMember {
                role: AccountRole::parse(&row.role).ok_or_else(ApiError::internal)?,
                user: user(&row.id, row.login, row.name, row.avatar_url)?,
            })
        })
        .collect()
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
    // A well-formed id or login that names nobody: 404 (the schema states the shape, not who exists).
    row.ok_or_else(|| {
        ApiError::new(
            domain::api::ErrorCode::NotFound,
            format!("`{field}` names no user; they must sign in once before they can be added."),
        )
        .with_details(serde_json::json!({ "field": field }))
    })
}

/// Stores a new organisation account with `creator` as its admin.
pub async fn insert_org_account(
    db: &Db,
    account_id: &AccountId,
    name: &str,
    creator: &UserId,
    now: i64,
) -> Result<(), ApiError> {
    db.batch(vec![
        db.statement(
            "INSERT INTO accounts (id, kind, name, created_at) VALUES (?1, 'org', ?2, ?3)",
            &params![account_id.as_str(), name, now],
        )?,
        db.statement(
            "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES (?1, ?2, 'admin', ?3)",
            &params![account_id.as_str(), creator.as_str(), now],
        )?,
    ])
    .await?;
    Ok(())
}

/// Adds a member to an account or changes their role; `false` when that would demote the account's
/// last admin (the statement refuses it, so two racing demotions cannot both pass).
pub async fn set_account_member(
    db: &Db,
    account_id: &AccountId,
    user_id: &str,
    role: AccountRole,
    now: i64,
    quotas: &Quotas,
) -> Result<(), ApiError> {
    // A new member needs a free slot (`QuotaKind::MembersPerAccount`); a role change does not.
    // Demoting the last admin would leave the account unmanageable: the statement refuses it.
    let changed = db
        .run(
            "INSERT INTO memberships (account_id, user_id, role, created_at)
             SELECT ?1, ?2, ?3, ?4
             WHERE EXISTS (SELECT 1 FROM memberships WHERE account_id = ?1 AND user_id = ?2)
                OR (SELECT COUNT(*) FROM memberships WHERE account_id = ?1) < ?5
             ON CONFLICT (account_id, user_id) DO UPDATE SET role = excluded.role
             WHERE excluded.role = 'admin'
                OR (SELECT COUNT(*) FROM memberships WHERE account_id = ?1 AND role = 'admin' AND user_id <> ?2) > 0",
            &params![
                account_id.as_str(),
                user_id,
                role.as_str(),
                now,
                i64::from(quotas.members_per_account)
            ],
        )
        .await?;
    if changed > 0 {
        return Ok(());
    }
    let member: Option<serde_json::Value> = db
        .first(
            "SELECT 1 AS member FROM memberships WHERE account_id = ?1 AND user_id = ?2",
            &params![account_id.as_str(), user_id],
        )
        .await?;
    if member.is_some() {
        Err(ApiError::rule_violated(
            "last_account_admin",
            "This is the account's last admin; make someone else an admin first.".to_owned(),
        ))
    } else {
        Err(quota_exceeded(
            QuotaKind::MembersPerAccount,
            quotas.members_per_account,
        ))
    }
}

/// Used by other modules to render users.
pub fn user(
    id: &str,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
) -> Result<User, ApiError> {
    Ok(User {
        id: UserId::parse(id).map_err(internal("stored user id"))?,
        login,
        name,
        avatar_url,
    })
}
