//! Sharing: who can open this board. The workspace's own members come first (its admins add people by
//! their login, change roles and remove members; everyone else sees the list); for an admin of the
//! organisation that owns the workspace, the account's members follow, managed the same way (everyone
//! in the account can open the account's unrestricted boards).
//!
//! Both lists are one component, [`MemberSection`], generic over where the members live
//! ([`MemberSource`]): the workspace or the account.

use std::future::Future;

use domain::access::{AccountRole, WorkspaceRole};
use domain::api::auth::User;
use domain::api::workspaces::{Account, AddMemberRequest};
use domain::ids::{AccountId, UserId, WorkspaceId};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::model::errors::human_error;

/// A role a person can be given, as the dialog offers it.
pub trait RoleChoice: Copy + PartialEq + 'static {
    /// Every role with what it lets someone do, least powerful first.
    const CHOICES: &'static [(Self, &'static str)];
    /// What a new member gets unless the admin picks otherwise.
    const DEFAULT: Self;
    fn value(self) -> &'static str;

    fn from_value(value: &str) -> Self {
        Self::CHOICES
            .iter()
            .find(|(role, _)| role.value() == value)
            .map_or(Self::DEFAULT, |(role, _)| *role)
    }
}

impl RoleChoice for WorkspaceRole {
    const CHOICES: &'static [(Self, &'static str)] = &[
        (WorkspaceRole::Viewer, "Viewer · can look"),
        (WorkspaceRole::Member, "Member · edits"),
        (WorkspaceRole::Admin, "Admin · edits, shares"),
    ];
    const DEFAULT: Self = WorkspaceRole::Member;

    fn value(self) -> &'static str {
        self.as_str()
    }
}

impl RoleChoice for AccountRole {
    const CHOICES: &'static [(Self, &'static str)] = &[
        (AccountRole::Member, "Member · open boards"),
        (AccountRole::Admin, "Admin · everything"),
    ];
    const DEFAULT: Self = AccountRole::Member;

    fn value(self) -> &'static str {
        self.as_str()
    }
}

/// Where a list of members lives, and how to read and change it.
pub trait MemberSource: Clone + PartialEq + 'static {
    type Role: RoleChoice;
    /// Prefix of the section's test ids (`member`, `member-role`, `member-remove`, …).
    const TESTID: &'static str;
    const HEADING: &'static str;
    fn list(&self) -> impl Future<Output = Result<Vec<(User, Self::Role)>, ApiFailure>> + 'static;
    fn save(
        &self,
        request: AddMemberRequest<Self::Role>,
    ) -> impl Future<Output = Result<(), ApiFailure>> + 'static;
    fn remove(&self, user: UserId) -> impl Future<Output = Result<(), ApiFailure>> + 'static;
}

/// The workspace's explicit members.
#[derive(Clone, PartialEq)]
pub struct WorkspaceMembers(pub WorkspaceId);

impl MemberSource for WorkspaceMembers {
    type Role = WorkspaceRole;
    const TESTID: &'static str = "member";
    const HEADING: &'static str = "This workspace";

    fn list(
        &self,
    ) -> impl Future<Output = Result<Vec<(User, WorkspaceRole)>, ApiFailure>> + 'static {
        let workspace = self.0.clone();
        async move {
            let members = api::members(&workspace).await?;
            Ok(members.into_iter().map(|m| (m.user, m.role)).collect())
        }
    }

    fn save(
        &self,
        request: AddMemberRequest<WorkspaceRole>,
    ) -> impl Future<Output = Result<(), ApiFailure>> + 'static {
        let workspace = self.0.clone();
        async move { api::add_member(&workspace, &request).await.map(|_| ()) }
    }

    fn remove(&self, user: UserId) -> impl Future<Output = Result<(), ApiFailure>> + 'static {
        let workspace = self.0.clone();
        async move { api::remove_member(&workspace, &user).await }
    }
}

/// The members of the organisation that owns the workspace.
#[derive(Clone, PartialEq)]
pub struct AccountMembers(pub AccountId);

impl MemberSource for AccountMembers {
    type Role = AccountRole;
    const TESTID: &'static str = "account-member";
    const HEADING: &'static str = "The account";

    fn list(&self) -> impl Future<Output = Result<Vec<(User, AccountRole)>, ApiFailure>> + 'static {
        let account = self.0.clone();
        async move {
            let members = api::account_members(&account).await?;
            Ok(members.into_iter().map(|m| (m.user, m.role)).collect())
        }
    }

    fn save(
        &self,
        request: AddMemberRequest<AccountRole>,
    ) -> impl Future<Output = Result<(), ApiFailure>> + 'static {
        let account = self.0.clone();
        async move {
            api::add_account_member(&account, &request)
                .await
                .map(|_| ())
        }
    }

    fn remove(&self, user: UserId) -> impl Future<Output = Result<(), ApiFailure>> + 'static {
        let account = self.0.clone();
        async move { api::remove_account_member(&account, &user).await }
    }
}

/// Adding by login names a person who has never signed in: say that, not "not found".
fn explain(failure: &ApiFailure, login: Option<&str>) -> String {
    match (failure.status, login) {
        (404, Some(login)) => format!(
            "Nobody with the login “{login}” has signed in to cat-factory yet. Ask them to sign in once, then add them."
        ),
        _ => human_error(failure.status, failure.code, &failure.message),
    }
}

#[derive(Properties, PartialEq)]
pub struct MemberSectionProps<S: MemberSource> {
    pub source: S,
    /// Admins manage members; others only see them.
    pub can_manage: bool,
    pub note: AttrValue,
}

/// One list of members, loaded from its source, with role changes, removal and add-by-login for
/// those who manage it.
#[function_component]
pub fn MemberSection<S: MemberSource>(props: &MemberSectionProps<S>) -> Html {
    let members = use_state(|| None::<Vec<(User, S::Role)>>);
    let error = use_state(|| None::<String>);
    let reload = use_state(|| 0u32);
    let login_ref = use_node_ref();
    let role_ref = use_node_ref();
    {
        let (members, error, source) = (members.clone(), error.clone(), props.source.clone());
        use_effect_with(*reload, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                match source.list().await {
                    Ok(list) => members.set(Some(list)),
                    Err(failure) => error.set(Some(explain(&failure, None))),
                }
            });
        });
    }
    let save = {
        let (source, error, reload) = (props.source.clone(), error.clone(), reload.clone());
        move |request: AddMemberRequest<S::Role>| {
            let (source, error, reload) = (source.clone(), error.clone(), reload.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let login = request.login.clone();
                match source.save(request).await {
                    Ok(()) => {
                        error.set(None);
                        reload.set(*reload + 1);
                    }
                    Err(failure) => error.set(Some(explain(&failure, login.as_deref()))),
                }
            });
        }
    };
    let add = {
        let (save, login_ref, role_ref) = (save.clone(), login_ref.clone(), role_ref.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let Some(input) = login_ref.cast::<HtmlInputElement>() else {
                return;
            };
            let login = input.value().trim().to_owned();
            if login.is_empty() {
                return;
            }
            let role = role_ref
                .cast::<HtmlSelectElement>()
                .map_or(S::Role::DEFAULT, |select| {
                    S::Role::from_value(&select.value())
                });
            input.set_value("");
            save(AddMemberRequest {
                user_id: None,
                login: Some(login),
                role,
            });
        })
    };
    let remove = |user: UserId| {
        let (source, error, reload) = (props.source.clone(), error.clone(), reload.clone());
        Callback::from(move |_: MouseEvent| {
            let (source, error, reload, user) =
                (source.clone(), error.clone(), reload.clone(), user.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match source.remove(user).await {
                    Ok(()) => {
                        error.set(None);
                        reload.set(*reload + 1);
                    }
                    Err(failure) => error.set(Some(explain(&failure, None))),
                }
            });
        })
    };
    let change_role = |user: UserId| {
        let save = save.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            save(AddMemberRequest {
                user_id: Some(user.clone()),
                login: None,
                role: S::Role::from_value(&value),
            });
        })
    };
    let role_options = |current: S::Role| {
        S::Role::CHOICES
            .iter()
            .map(|(role, label)| {
                html! { <option value={role.value()} selected={*role == current}>{ *label }</option> }
            })
            .collect::<Html>()
    };
    let id = |suffix: &str| {
        if suffix.is_empty() {
            S::TESTID.to_owned()
        } else {
            format!("{}-{suffix}", S::TESTID)
        }
    };
    let rows = members.as_ref().map(|list| {
        list.iter()
            .map(|(user, role)| {
                let name = user.name.clone().unwrap_or_else(|| user.login.clone());
                html! {
                    <li key={user.id.to_string()} data-testid={id("")} data-login={user.login.clone()}>
                        <span class="member-name">{ name }<span class="muted small">{ format!(" @{}", user.login) }</span></span>
                        if props.can_manage {
                            <select onchange={change_role(user.id.clone())} data-testid={id("role")} aria-label="Role">
                                { role_options(*role) }
                            </select>
                            <button class="ghost icon" aria-label="Remove member" data-testid={id("remove")}
                                onclick={remove(user.id.clone())}>{ "×" }</button>
                        } else {
                            <span class="muted small">{ role.value() }</span>
                        }
                    </li>
                }
            })
            .collect::<Html>()
    });
    html! {
        <section class="member-section" data-testid={id("section")}>
            <h3>{ S::HEADING }</h3>
            <p class="muted small">{ props.note.clone() }</p>
            if let Some(rows) = rows {
                <ul class="member-list">{ rows }</ul>
            } else {
                <p class="muted">{ "Loading members…" }</p>
            }
            if let Some(message) = &*error {
                <p class="form-error" role="alert" data-testid={format!("{}s-error", S::TESTID)}>{ message.clone() }</p>
            }
            if props.can_manage {
                <form class="member-add" onsubmit={add}>
                    <input ref={login_ref} placeholder="Their login" aria-label="Login" data-testid={id("login")} />
                    <select ref={role_ref} aria-label="Role" data-testid={id("new-role")}>{ role_options(S::Role::DEFAULT) }</select>
                    <button class="button primary" type="submit" data-testid={id("add")}>{ "Add" }</button>
                </form>
            }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct MembersDialogProps {
    pub workspace_id: WorkspaceId,
    /// Workspace admins manage its members; others only see them.
    pub can_manage: bool,
    /// The organisation that owns the workspace, when the caller manages its members
    /// ([`domain::access::manages_account_members`]); its members are listed too.
    pub account: Option<Account>,
    pub on_close: Callback<()>,
}

#[function_component]
pub fn MembersDialog(props: &MembersDialogProps) -> Html {
    let close = props.on_close.reform(|_: MouseEvent| ());
    let workspace_note = if props.can_manage {
        "People listed here can open this board, whatever their account."
    } else {
        "People listed here can open this board. Only an admin of this workspace can add or remove members."
    };
    html! {
        <div class="modal-backdrop">
            <div class="modal members" role="dialog" aria-modal="true" aria-label="Members" data-testid="members-dialog">
                <div class="panel-head">
                    <h2>{ "Members" }</h2>
                    <span class="spacer"></span>
                    <button class="ghost icon" aria-label="Close" onclick={close} data-testid="members-close">{ "×" }</button>
                </div>
                <MemberSection<WorkspaceMembers> source={WorkspaceMembers(props.workspace_id.clone())}
                    can_manage={props.can_manage} note={workspace_note} />
                if let Some(account) = &props.account {
                    <MemberSection<AccountMembers> source={AccountMembers(account.id.clone())} can_manage=true
                        note={format!("Everyone in {} can open its boards, except restricted ones; its admins can open every board.", account.name)} />
                }
            </div>
        </div>
    }
}
