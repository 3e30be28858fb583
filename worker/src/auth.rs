//! Who is calling: session tokens, personal API tokens, and the server's auth configuration.

use domain::api::auth::User;
use domain::api::{ApiError, ErrorCode};
use domain::auth::{self as tokens, API_TOKEN_PREFIX, Audience, Claims};
use domain::ids::{UserId, WorkspaceId};
use serde::Deserialize;
use worker::{Env, Request};

use crate::access::{WorkspaceAccess, WorkspaceRow, load_access};
use crate::params;
use crate::store::Db;

/// How long a session token lives.
pub const SESSION_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// Only used when `AUTH_MODE=dev` and no `AUTH_SESSION_SECRET` is set: tokens signed with it are
/// worthless anywhere auth is really configured, because such a server requires its own secret.
const DEV_ONLY_SECRET: &str =
    "cat-factory local development only; never used outside AUTH_MODE=dev";

/// The server's authentication settings, read from the environment on each request (cheap).
pub struct AuthConfig {
    pub dev_mode: bool,
    pub secret: Option<String>,
    pub github: Option<GithubConfig>,
}

pub struct GithubConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Where the browser is sent to authorize (`https://github.com`); configurable for tests.
    pub oauth_base_url: String,
    /// GitHub's REST API (`https://api.github.com`); configurable for tests.
    pub api_base_url: String,
}

/// A value from a secret binding or, failing that, a plain variable.
pub fn env_value(env: &Env, name: &str) -> Option<String> {
    let value = env
        .secret(name)
        .map(|secret| secret.to_string())
        .or_else(|_| env.var(name).map(|var| var.to_string()))
        .ok()?;
    let value = value.trim().to_owned();
    (!value.is_empty()).then_some(value)
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> AuthConfig {
        let dev_mode = env_value(env, "AUTH_MODE").as_deref() == Some("dev");
        let github = match (
            env_value(env, "GITHUB_CLIENT_ID"),
            env_value(env, "GITHUB_CLIENT_SECRET"),
        ) {
            (Some(client_id), Some(client_secret)) => Some(GithubConfig {
                client_id,
                client_secret,
                oauth_base_url: env_value(env, "GITHUB_OAUTH_BASE_URL")
                    .unwrap_or_else(|| "https://github.com".to_owned()),
                api_base_url: env_value(env, "GITHUB_API_BASE_URL")
                    .unwrap_or_else(|| "https://api.github.com".to_owned()),
            }),
            _ => None,
        };
        AuthConfig {
            dev_mode,
            secret: env_value(env, "AUTH_SESSION_SECRET"),
            github,
        }
    }

    /// The key that signs tokens, or 503 when authentication is not configured: the server fails
    /// closed rather than accepting anyone.
    pub fn signing_key(&self) -> Result<&[u8], ApiError> {
        match (&self.secret, self.dev_mode) {
            (Some(secret), _) if self.dev_mode || self.github.is_some() => Ok(secret.as_bytes()),
            (None, true) => Ok(DEV_ONLY_SECRET.as_bytes()),
            _ => Err(ApiError::new(
                ErrorCode::AuthNotConfigured,
                "Authentication is not configured on this server. Set AUTH_SESSION_SECRET with GITHUB_CLIENT_ID \
                 and GITHUB_CLIENT_SECRET (or AUTH_MODE=dev for local development).",
            )),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Session { jti: String, expires_at: i64 },
    ApiToken,
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

#[derive(Deserialize)]
struct SessionUserRow {
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
    session_generation: i64,
    revoked: i64,
}

#[derive(Deserialize)]
struct TokenUserRow {
    token_id: String,
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

pub fn now_seconds() -> i64 {
    now_ms() / 1000
}

fn user_from(
    id: &str,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
) -> Result<User, ApiError> {
    let id = UserId::parse(id).map_err(crate::http::internal("stored user id"))?;
    Ok(User {
        id,
        login,
        name,
        avatar_url,
    })
}

/// A session's user and, when it exists, the workspace the route names with the user's roles in it.
#[derive(Deserialize)]
struct SessionWorkspaceRow {
    id: String,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
    session_generation: i64,
    revoked: i64,
    workspace_id: Option<String>,
    account_id: Option<String>,
    workspace_name: Option<String>,
    access_mode: Option<String>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    account_role: Option<String>,
    workspace_role: Option<String>,
}

impl SessionWorkspaceRow {
    fn split(self) -> (SessionUserRow, Option<WorkspaceRow>) {
        let workspace = match (
            self.workspace_id,
            self.account_id,
            self.workspace_name,
            self.access_mode,
        ) {
            (Some(id), Some(account_id), Some(name), Some(access_mode)) => Some(WorkspaceRow {
                id,
                account_id,
                name,
                access_mode,
                created_at: self.created_at.unwrap_or_default(),
                updated_at: self.updated_at.unwrap_or_default(),
                account_role: self.account_role,
                workspace_role: self.workspace_role,
            }),
            _ => None,
        };
        let user = SessionUserRow {
            id: self.id,
            login: self.login,
            name: self.name,
            avatar_url: self.avatar_url,
            session_generation: self.session_generation,
            revoked: self.revoked,
        };
        (user, workspace)
    }
}

/// Authenticates the request's bearer token and, for a workspace route, loads the workspace with the
/// caller's role in it. For a session token (the board's) that is one read: the user, whether the
/// session was revoked, the workspace and both roles in one query — the write path's only read before
/// its command.
pub async fn authenticate_for_workspace(
    request: &Request,
    config: &AuthConfig,
    db: &Db,
    workspace_id: Option<&WorkspaceId>,
) -> Result<(Caller, Option<WorkspaceAccess>), ApiError> {
    let key = config.signing_key()?;
    let header = request
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("Sign in first: send `Authorization: Bearer <token>`.")
        })?;
    if token.starts_with(API_TOKEN_PREFIX) {
        let caller = authenticate_api_token(token, db).await?;
        let access = match workspace_id {
            Some(workspace_id) => load_access(db, workspace_id, &caller.user.id).await?,
            None => None,
        };
        return Ok((caller, access));
    }
    let claims = tokens::verify(key, token, Audience::Session, now_seconds())
        .map_err(|error| ApiError::unauthorized(error.message()))?;
    let (row, access) = match workspace_id {
        None => {
            let row: Option<SessionUserRow> = db
                .first(
                    "SELECT id, login, name, avatar_url, session_generation,
                            EXISTS (SELECT 1 FROM revoked_sessions WHERE jti = ?2) AS revoked
                     FROM users WHERE id = ?1",
                    &params![claims.sub.as_str(), claims.jti.as_str()],
                )
                .await?;
            (row, None)
        }
        Some(workspace_id) => {
            const SESSION_AND_WORKSPACE: &str =
                "SELECT u.id AS id, u.login AS login, u.name AS name, u.avatar_url AS avatar_url,
                        u.session_generation AS session_generation,
                        EXISTS (SELECT 1 FROM revoked_sessions WHERE jti = ?2) AS revoked,
                        w.id AS workspace_id, w.account_id AS account_id, w.name AS workspace_name,
                        w.access_mode AS access_mode, w.created_at AS created_at, w.updated_at AS updated_at,
                        (SELECT role FROM memberships WHERE account_id = w.account_id AND user_id = u.id) AS account_role,
                        (SELECT role FROM workspace_members WHERE workspace_id = w.id AND user_id = u.id) AS workspace_role
                 FROM users u LEFT JOIN workspaces w ON w.id = ?3 WHERE u.id = ?1";
            let row: Option<SessionWorkspaceRow> = db
                .first(
                    SESSION_AND_WORKSPACE,
                    &params![
                        claims.sub.as_str(),
                        claims.jti.as_str(),
                        workspace_id.as_str()
                    ],
                )
                .await?;
            match row {
                None => (None, None),
                Some(row) => {
                    let (user, workspace) = row.split();
                    let access = workspace.map(WorkspaceRow::into_access).transpose()?;
                    (Some(user), access)
                }
            }
        }
    };
    let row = row
        .ok_or_else(|| ApiError::unauthorized("The account behind this token no longer exists."))?;
    if row.revoked != 0 || row.session_generation != claims.generation {
        return Err(ApiError::unauthorized(
            "This session was signed out; sign in again.",
        ));
    }
    let caller = Caller {
        user: user_from(&row.id, row.login, row.name, row.avatar_url)?,
        credential: Credential::Session {
            jti: claims.jti,
            expires_at: claims.exp,
        },
    };
    Ok((caller, access))
}

async fn authenticate_api_token(token: &str, db: &Db) -> Result<Caller, ApiError> {
    let hash = tokens::hash_api_token(token);
    let row: Option<TokenUserRow> = db
        .first(
            "SELECT t.id AS token_id, u.id, u.login, u.name, u.avatar_url
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?1",
            &params![hash],
        )
        .await?;
    let row = row.ok_or_else(|| {
        ApiError::unauthorized("This API token is not valid (revoked or mistyped).")
    })?;
    let now = now_ms();
    // Recorded at most once a minute, so a busy script does not turn every read into a write.
    db.run(
        "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1 - 60000)",
        &params![now, row.token_id.as_str()],
    )
    .await?;
    Ok(Caller {
        user: user_from(&row.id, row.login, row.name, row.avatar_url)?,
        credential: Credential::ApiToken,
    })
}

/// Mints a session token for `user_id` at its current generation.
pub fn issue_session(key: &[u8], user_id: &UserId, generation: i64) -> (String, i64) {
    let now = now_seconds();
    let claims = Claims {
        sub: user_id.to_string(),
        aud: Audience::Session,
        iat: now,
        exp: now + SESSION_TTL_SECONDS,
        generation,
        jti: crate::ids::random_hex::<16>(),
        ws: None,
    };
    (tokens::sign(key, &claims), claims.exp)
}
