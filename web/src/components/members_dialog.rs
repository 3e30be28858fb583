//! The workspace's members: who can see and edit this board. Admins add people by their login, change
//! roles and remove members; everyone else sees the list.

use domain::access::WorkspaceRole;
use domain::api::workspaces::{AddWorkspaceMemberRequest, WorkspaceMember};
use domain::ids::{UserId, WorkspaceId};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::model::errors::human_error;

const ROLES: [(WorkspaceRole, &str); 3] = [
    (WorkspaceRole::Viewer, "Viewer — can look"),
    (WorkspaceRole::Member, "Member — can edit the board"),
    (WorkspaceRole::Admin, "Admin — can also manage members"),
];

fn role_from(value: &str) -> WorkspaceRole {
    match value {
        "admin" => WorkspaceRole::Admin,
        "viewer" => WorkspaceRole::Viewer,
        _ => WorkspaceRole::Member,
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
pub struct MembersDialogProps {
    pub workspace_id: WorkspaceId,
    /// Admins manage members; others only see them.
    pub can_manage: bool,
    pub on_close: Callback<()>,
}

#[function_component]
pub fn MembersDialog(props: &MembersDialogProps) -> Html {
    let members = use_state(|| None::<Vec<WorkspaceMember>>);
    let error = use_state(|| None::<String>);
    let reload = use_state(|| 0u32);
    let login_ref = use_node_ref();
    let role_ref = use_node_ref();
    {
        let (members, error, workspace) =
            (members.clone(), error.clone(), props.workspace_id.clone());
        use_effect_with(*reload, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                match api::members(&workspace).await {
                    Ok(list) => members.set(Some(list)),
                    Err(failure) => error.set(Some(explain(&failure, None))),
                }
            });
        });
    }
    let save = {
        let (workspace, error, reload) =
            (props.workspace_id.clone(), error.clone(), reload.clone());
        move |request: AddWorkspaceMemberRequest| {
            let (workspace, error, reload) = (workspace.clone(), error.clone(), reload.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let login = request.login.clone();
                match api::add_member(&workspace, &request).await {
                    Ok(_) => {
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
                .map_or(WorkspaceRole::Member, |select| role_from(&select.value()));
            input.set_value("");
            save(AddWorkspaceMemberRequest {
                user_id: None,
                login: Some(login),
                role,
            });
        })
    };
    let remove = |user: UserId| {
        let (workspace, error, reload) =
            (props.workspace_id.clone(), error.clone(), reload.clone());
        Callback::from(move |_: MouseEvent| {
            let (workspace, error, reload, user) = (
                workspace.clone(),
                error.clone(),
                reload.clone(),
                user.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match api::remove_member(&workspace, &user).await {
                    Ok(()) => reload.set(*reload + 1),
                    Err(failure) => error.set(Some(explain(&failure, None))),
                }
            });
        })
    };
    let change_role = |user: UserId| {
        let save = save.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            save(AddWorkspaceMemberRequest {
                user_id: Some(user.clone()),
                login: None,
                role: role_from(&value),
            });
        })
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    let role_options = |current: WorkspaceRole| {
        ROLES
            .iter()
            .map(|(role, label)| {
                html! { <option value={role.as_str()} selected={*role == current}>{ *label }</option> }
            })
            .collect::<Html>()
    };
    let rows = members.as_ref().map(|list| {
        list.iter()
            .map(|member| {
                let name = member.user.name.clone().unwrap_or_else(|| member.user.login.clone());
                html! {
                    <li key={member.user.id.to_string()} data-testid="member" data-login={member.user.login.clone()}>
                        <span class="member-name">{ name }<span class="muted small">{ format!(" @{}", member.user.login) }</span></span>
                        if props.can_manage {
                            <select onchange={change_role(member.user.id.clone())} data-testid="member-role" aria-label="Role">
                                { role_options(member.role) }
                            </select>
                            <button class="ghost icon" aria-label="Remove member" data-testid="member-remove"
                                onclick={remove(member.user.id.clone())}>{ "×" }</button>
                        } else {
                            <span class="muted small">{ member.role.as_str() }</span>
                        }
                    </li>
                }
            })
            .collect::<Html>()
    });
    html! {
        <div class="modal-backdrop">
            <div class="modal members" role="dialog" aria-modal="true" aria-label="Members" data-testid="members-dialog">
                <div class="panel-head">
                    <h2>{ "Members" }</h2>
                    <span class="spacer"></span>
                    <button class="ghost icon" aria-label="Close" onclick={close} data-testid="members-close">{ "×" }</button>
                </div>
                <p class="muted small">{ "People listed here can open this board. Everyone in the workspace's account can too, unless the workspace is restricted." }</p>
                if let Some(rows) = rows {
                    <ul class="member-list">{ rows }</ul>
                } else {
                    <p class="muted">{ "Loading members…" }</p>
                }
                if let Some(message) = &*error {
                    <p class="form-error" role="alert" data-testid="members-error">{ message.clone() }</p>
                }
                if props.can_manage {
                    <form class="member-add" onsubmit={add}>
                        <input ref={login_ref} placeholder="Their login" aria-label="Login" data-testid="member-login" />
                        <select ref={role_ref} aria-label="Role" data-testid="member-new-role">{ role_options(WorkspaceRole::Member) }</select>
                        <button class="button primary" type="submit" data-testid="member-add">{ "Add" }</button>
                    </form>
                } else {
                    <p class="muted small">{ "Only an admin of this workspace can add or remove members." }</p>
                }
            </div>
        </div>
    }
}
