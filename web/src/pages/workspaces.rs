//! The workspace list: open, create and rename workspaces.

use domain::api::workspaces::{CreateWorkspaceRequest, UpdateWorkspaceRequest, WorkspaceView};
use domain::ids::AccountId;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api;
use crate::app::{Action, AppContext, Session, navigate, toast_error};
use crate::router::Route;

#[function_component]
pub fn WorkspacesPage() -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let name = use_state(String::new);
    let account = use_state(|| None::<AccountId>);
    let Session::SignedIn(me) = &app.session else {
        return html! {};
    };
    let oninput = {
        let name = name.clone();
        Callback::from(move |event: InputEvent| {
            name.set(event.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let onaccount = {
        let account = account.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            account.set(AccountId::parse(&value).ok());
        })
    };
    let onsubmit = {
        let (app, name, account) = (app.clone(), name.clone(), account.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let request = CreateWorkspaceRequest {
                name: name.trim().to_owned(),
                account_id: (*account).clone(),
                access_mode: None,
            };
            let (app, name) = (app.clone(), name.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_workspace(&request).await {
                    Ok(view) => {
                        name.set(String::new());
                        let id = view.workspace.id.clone();
                        app.dispatch(Action::WorkspaceSaved(view));
                        navigate(&app, Route::Workspace(id));
                    }
                    Err(failure) => toast_error(&app, failure.message),
                }
            });
        })
    };
    let mut workspaces = app.workspaces.clone();
    workspaces.sort_by_key(|view| std::cmp::Reverse(view.workspace.updated_at));
    html! {
        <main class="workspaces">
            <div class="workspaces-head">
                <h1>{ "Workspaces" }</h1>
                <form class="inline-form" {onsubmit} data-testid="create-workspace">
                    <input placeholder="New workspace name" value={(*name).clone()} {oninput} required=true
                        aria-label="New workspace name" data-testid="workspace-name-input" />
                    if me.accounts.len() > 1 {
                        <select aria-label="Account" onchange={onaccount}>
                            { for me.accounts.iter().map(|account| html! {
                                <option value={account.id.to_string()}>{ account.name.clone() }</option>
                            }) }
                        </select>
                    }
                    <button class="button primary" type="submit" data-testid="create-workspace-submit">{ "Create" }</button>
                </form>
            </div>
            if workspaces.is_empty() {
                <p class="empty">{ "No workspaces yet. Create one to start a board." }</p>
            }
            <ul class="workspace-grid">
                { for workspaces.into_iter().map(|view| {
                    let key = view.workspace.id.to_string();
                    html! { <WorkspaceCard {key} {view} /> }
                }) }
            </ul>
        </main>
    }
}

#[derive(Properties, PartialEq)]
struct CardProps {
    view: WorkspaceView,
}

#[function_component]
fn WorkspaceCard(props: &CardProps) -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let renaming = use_state(|| false);
    let view = &props.view;
    let id = view.workspace.id.clone();
    let open = {
        let (app, id) = (app.clone(), id.clone());
        Callback::from(move |event: MouseEvent| {
            event.prevent_default();
            navigate(&app, Route::Workspace(id.clone()));
        })
    };
    let start_rename = {
        let renaming = renaming.clone();
        Callback::from(move |_: MouseEvent| renaming.set(true))
    };
    let onsubmit = {
        let (app, id, renaming) = (app.clone(), id.clone(), renaming.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let form: web_sys::HtmlFormElement = event.target_unchecked_into();
            let input = form
                .elements()
                .named_item("name")
                .map(|element| {
                    wasm_bindgen::JsCast::unchecked_into::<HtmlInputElement>(element).value()
                })
                .unwrap_or_default();
            let request = UpdateWorkspaceRequest {
                name: Some(input.trim().to_owned()),
                access_mode: None,
                default_model_id: None,
            };
            let (app, id, renaming) = (app.clone(), id.clone(), renaming.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::update_workspace(&id, &request).await {
                    Ok(view) => {
                        app.dispatch(Action::WorkspaceSaved(view));
                        renaming.set(false);
                    }
                    Err(failure) => toast_error(&app, failure.message),
                }
            });
        })
    };
    html! {
        <li class="workspace-card" data-testid="workspace-card" data-workspace-id={id.to_string()}>
            if *renaming {
                <form class="inline-form" {onsubmit}>
                    <input name="name" value={view.workspace.name.clone()} aria-label="Workspace name"
                        data-testid="workspace-rename-input" />
                    <button class="button" type="submit">{ "Save" }</button>
                </form>
            } else {
                <a href={Route::Workspace(id.clone()).path()} onclick={open} class="workspace-link">
                    <span class="workspace-name">{ view.workspace.name.clone() }</span>
                    <span class="muted">{ format!("{:?}", view.role).to_lowercase() }</span>
                </a>
                <button class="ghost" onclick={start_rename} data-testid="workspace-rename">{ "Rename" }</button>
            }
        </li>
    }
}
