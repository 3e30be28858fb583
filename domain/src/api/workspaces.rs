//! Bodies of the account, workspace and membership routes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::{User, validate_login};
use super::body::Problems;
use super::error::{ApiError, FieldProblem};
use crate::access::{AccessMode, AccountRole, WorkspaceRole};
use crate::ids::{AccountId, UserId, WorkspaceId};

pub const NAME_MAX_CHARS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Every user has one, made at first sign-in.
    Personal,
    /// Made with `POST /accounts`.
    Org,
}

/// An account as its member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    /// The caller's role in it.
    pub role: AccountRole,
}

/// `POST /accounts`: a new organisation account; the caller becomes its admin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    #[schemars(length(min = 1, max = NAME_MAX_CHARS), pattern(r"\S"))]
    pub name: String,
}

impl CreateAccountRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text("name", self.name.trim(), 1, NAME_MAX_CHARS);
        problems.finish()
    }
}

/// Names an existing user by id or by login (they must have signed in once).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

impl UserRef {
    fn check(&self, problems: &mut Problems) {
        match (&self.user_id, &self.login) {
            (Some(_), None) => {}
            (None, Some(login)) => validate_login(problems, "login", login),
            _ => problems.add(
                "userId",
                "name the user with exactly one of `userId` or `login`",
            ),
        }
    }
}

/// `POST /accounts/:id/members` and `POST /workspaces/:id/members`: adds a user (named by id or login)
/// with a role, or changes their role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::body::schema_rules::user_id_or_login)]
pub struct AddMemberRequest<Role> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 39), pattern(super::body::LOGIN_PATTERN))]
    pub login: Option<String>,
    pub role: Role,
}

impl<Role> AddMemberRequest<Role> {
    pub fn user(&self) -> UserRef {
        UserRef {
            user_id: self.user_id.clone(),
            login: self.login.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        self.user().check(&mut problems);
        problems.finish()
    }
}

pub type AddAccountMemberRequest = AddMemberRequest<AccountRole>;
pub type AddWorkspaceMemberRequest = AddMemberRequest<WorkspaceRole>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountMember {
    pub user: User,
    pub role: AccountRole,
}

/// A workspace: one board, owned by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: WorkspaceId,
    pub account_id: AccountId,
    pub name: String,
    pub access_mode: AccessMode,
    /// The model runs use when neither the run nor its block names one; `null`: the deployment's
    /// default (`RUN_DEFAULT_MODEL`).
    #[serde(default)]
    pub default_model_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A workspace together with the caller's effective role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    #[serde(flatten)]
    pub workspace: Workspace,
    pub role: WorkspaceRole,
}

/// `POST /workspaces`. Without `accountId` the workspace goes to the caller's personal account.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    #[schemars(length(min = 1, max = NAME_MAX_CHARS), pattern(r"\S"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
}

impl CreateWorkspaceRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        problems.text("name", self.name.trim(), 1, NAME_MAX_CHARS);
        problems.finish()
    }
}

/// `PATCH /workspaces/:id`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = super::body::schema_rules::name_or_access_mode)]
pub struct UpdateWorkspaceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = NAME_MAX_CHARS), pattern(r"\S"))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
    /// The model runs use when neither the run nor its block names one (an id from `GET /models`);
    /// `null` goes back to the deployment's default; absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "crate::api::board::present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", length(min = 1, max = crate::api::runs::MAX_MODEL_ID_CHARS), pattern(r"\S"))]
    pub default_model_id: Option<Option<String>>,
}

impl UpdateWorkspaceRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Problems::default();
        if let Some(name) = &self.name {
            problems.text("name", name.trim(), 1, NAME_MAX_CHARS);
        }
        if let Some(Some(model)) = &self.default_model_id {
            problems.text(
                "defaultModelId",
                model.trim(),
                1,
                crate::api::runs::MAX_MODEL_ID_CHARS,
            );
        }
        if self.name.is_none() && self.access_mode.is_none() && self.default_model_id.is_none() {
            return Err(ApiError::invalid_fields(vec![FieldProblem::new(
                "body",
                "name at least one of `name`, `accessMode` or `defaultModelId` to change",
            )]));
        }
        problems.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceMember {
    pub user: User,
    pub role: WorkspaceRole,
}
