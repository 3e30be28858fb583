//! Bodies of the `/auth` routes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::body::Problems;
use super::error::ApiError;
use super::workspaces::Account;
use crate::ids::{ApiTokenId, UserId};

/// A person, as other people see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// `POST /auth/dev-login`: sign in as `login` without a password (only when `AUTH_MODE=dev`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevLoginRequest {
    #[schemars(length(min = 1, max = 39), pattern(super::body::LOGIN_PATTERN))]
    pub login: String,
}

impl DevLoginRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        validate_login(&mut problems, "login", &self.login);
        problems.finish()
    }
}

/// A login is what GitHub allows: 1 to 39 letters, digits and single inner hyphens.
pub fn validate_login(problems: &mut Problems, field: &str, login: &str) {
    let well_formed = !login.is_empty()
        && login.len() <= 39
        && login
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--");
    if !well_formed {
        problems.add(
            field,
            "must be 1 to 39 letters, digits or inner single hyphens (a GitHub login)",
        );
    }
}

/// A freshly issued session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// `GET /auth/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub user: User,
    pub accounts: Vec<Account>,
    /// How the caller authenticated: `session` or `api_token`.
    pub via: String,
}

/// `POST /auth/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    #[schemars(length(min = 1, max = API_TOKEN_NAME_MAX_CHARS), pattern(r"\S"))]
    pub name: String,
}

/// The longest API token name.
pub const API_TOKEN_NAME_MAX_CHARS: usize = 100;

impl CreateApiTokenRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text("name", self.name.trim(), 1, API_TOKEN_NAME_MAX_CHARS);
        problems.finish()
    }
}

/// A personal API token as listed (the secret itself is shown only once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenInfo {
    pub id: ApiTokenId,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The answer to `POST /auth/tokens`: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreated {
    #[serde(flatten)]
    pub info: ApiTokenInfo,
    pub token: String,
}
