//! Who may do what in a workspace.
//!
//! A caller's effective role in a workspace is the highest of what their account membership grants
//! and what an explicit workspace membership grants. A caller with no role gets 404 for the workspace
//! and everything in it: the API never hints that a workspace it will not show exists.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A role in an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Admin,
    Member,
}

/// A role in a workspace, ordered from least to most powerful.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    Viewer,
    Member,
    Admin,
}

/// Who can see a workspace: everyone in its account, or only its listed members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    Account,
    Restricted,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See the workspace, its board and its members; subscribe to its events.
    Read,
    /// Create, change and delete blocks and edges.
    WriteBoard,
    /// Rename the workspace, change its access mode.
    ManageSettings,
    /// Add, change and remove workspace members; delete the workspace.
    ManageMembers,
}

impl WorkspaceRole {
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::WriteBoard => self >= WorkspaceRole::Member,
            Permission::ManageSettings | Permission::ManageMembers => self == WorkspaceRole::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Viewer => "viewer",
            WorkspaceRole::Member => "member",
            WorkspaceRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(WorkspaceRole::Viewer),
            "member" => Some(WorkspaceRole::Member),
            "admin" => Some(WorkspaceRole::Admin),
            _ => None,
        }
    }
}

impl AccountRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(AccountRole::Admin),
            "member" => Some(AccountRole::Member),
            _ => None,
        }
    }
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Account => "account",
            AccessMode::Restricted => "restricted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "account" => Some(AccessMode::Account),
            "restricted" => Some(AccessMode::Restricted),
            _ => None,
        }
    }
}

/// The caller's effective role in a workspace, or `None` when they may not see it at all.
pub fn effective_role(
    account_role: Option<AccountRole>,
    access_mode: AccessMode,
    workspace_role: Option<WorkspaceRole>,
) -> Option<WorkspaceRole> {
    let from_account = match (account_role, access_mode) {
        (Some(AccountRole::Admin), _) => Some(WorkspaceRole::Admin),
        (Some(AccountRole::Member), AccessMode::Account) => Some(WorkspaceRole::Member),
        (Some(AccountRole::Member), AccessMode::Restricted) | (None, _) => None,
    };
    from_account.max(workspace_role)
}

/// Whether someone may add, re-role and remove an account's members: its admins, and only in an
/// organisation (a personal account has exactly one member, its owner). The board offers the account's
/// members in its sharing dialog exactly when this holds.
pub fn manages_account_members(
    kind: crate::api::workspaces::AccountKind,
    role: AccountRole,
) -> bool {
    check_account_member_change(kind, role, MemberChange::Add).is_ok()
}

/// A change to an account's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Adding someone, or changing their role.
    Add,
    Remove,
}

/// Whether a caller who is a member of an account (kind `kind`, their role `role`) may make `change`
/// to its members, and the answer when not: 403 for anyone but an admin (checked first: a member
/// learns nothing about the account's rules), then 422 `personal_account_has_one_member` for a
/// personal account, whose one member is its owner.
pub fn check_account_member_change(
    kind: crate::api::workspaces::AccountKind,
    role: AccountRole,
    change: MemberChange,
) -> Result<(), crate::api::ApiError> {
    use crate::api::ApiError;
    if role != AccountRole::Admin {
        return Err(ApiError::forbidden(
            "Only an admin of this account can manage its members.",
        ));
    }
    if kind == crate::api::workspaces::AccountKind::Personal {
        let message = match change {
            MemberChange::Add => {
                "A personal account has exactly one member; create an organisation with POST /accounts to share."
            }
            MemberChange::Remove => {
                "A personal account always keeps its one member; remove people from an organisation account."
            }
        };
        return Err(ApiError::rule_violated(
            "personal_account_has_one_member",
            message.to_owned(),
        ));
    }
    Ok(())
}

/// How a refused request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The caller may not see the workspace: answer 404, as if it did not exist.
    Hidden,
    /// The caller sees the workspace but lacks the permission: answer 403.
    Forbidden,
}

/// Checks `permission` for a caller whose effective role is `role`.
pub fn authorize(
    role: Option<WorkspaceRole>,
    permission: Permission,
) -> Result<WorkspaceRole, Denial> {
    match role {
        None => Err(Denial::Hidden),
        Some(role) if role.allows(permission) => Ok(role),
        Some(_) => Err(Denial::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessMode::*;
    use WorkspaceRole::*;

    #[test]
    fn only_an_organisations_admins_manage_its_members() {
        use crate::api::workspaces::AccountKind;
        assert!(manages_account_members(
            AccountKind::Org,
            AccountRole::Admin
        ));
        assert!(!manages_account_members(
            AccountKind::Org,
            AccountRole::Member
        ));
        assert!(!manages_account_members(
            AccountKind::Personal,
            AccountRole::Admin
        ));
        // The refusals: a member of a personal account is told 403 (not the account's rule).
        let code = |kind, role, change| {
            check_account_member_change(kind, role, change)
                .unwrap_err()
                .code
                .as_str()
        };
        for change in [MemberChange::Add, MemberChange::Remove] {
            assert_eq!(
                code(AccountKind::Personal, AccountRole::Member, change),
                "forbidden"
            );
            assert_eq!(
                code(AccountKind::Org, AccountRole::Member, change),
                "forbidden"
            );
            assert_eq!(
                code(AccountKind::Personal, AccountRole::Admin, change),
                "rule_violated"
            );
            assert!(
                check_account_member_change(AccountKind::Org, AccountRole::Admin, change).is_ok()
            );
        }
    }

    #[test]
    fn effective_role_table() {
        // (account role, access mode, explicit workspace role) → effective role
        type Case = (
            Option<AccountRole>,
            AccessMode,
            Option<WorkspaceRole>,
            Option<WorkspaceRole>,
        );
        let cases: &[Case] = &[
            (None, Account, None, None),
            (None, Restricted, None, None),
            (None, Restricted, Some(Viewer), Some(Viewer)),
            (Some(AccountRole::Member), Account, None, Some(Member)),
            (
                Some(AccountRole::Member),
                Account,
                Some(Viewer),
                Some(Member),
            ),
            (Some(AccountRole::Member), Account, Some(Admin), Some(Admin)),
            (Some(AccountRole::Member), Restricted, None, None),
            (
                Some(AccountRole::Member),
                Restricted,
                Some(Viewer),
                Some(Viewer),
            ),
            (Some(AccountRole::Admin), Restricted, None, Some(Admin)),
            (Some(AccountRole::Admin), Account, Some(Viewer), Some(Admin)),
        ];
        for &(account, mode, workspace, expected) in cases {
            assert_eq!(
                effective_role(account, mode, workspace),
                expected,
                "{account:?} {mode:?} {workspace:?}"
            );
        }
    }

    #[test]
    fn permissions_by_role() {
        let cases = [
            (Viewer, [true, false, false, false]),
            (Member, [true, true, false, false]),
            (Admin, [true, true, true, true]),
        ];
        let permissions = [
            Permission::Read,
            Permission::WriteBoard,
            Permission::ManageSettings,
            Permission::ManageMembers,
        ];
        for (role, expected) in cases {
            for (permission, allowed) in permissions.iter().zip(expected) {
                assert_eq!(role.allows(*permission), allowed, "{role:?} {permission:?}");
            }
        }
    }

    #[test]
    fn non_members_are_hidden_and_weak_roles_forbidden() {
        assert_eq!(authorize(None, Permission::Read), Err(Denial::Hidden));
        assert_eq!(
            authorize(Some(Viewer), Permission::WriteBoard),
            Err(Denial::Forbidden)
        );
        assert_eq!(authorize(Some(Member), Permission::WriteBoard), Ok(Member));
    }
}
