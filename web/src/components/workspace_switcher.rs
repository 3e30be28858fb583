//! The workspace switcher in the top bar: every workspace the user can see, grouped by account.

use domain::ids::WorkspaceId;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::app::{AppContext, Session, navigate};
use crate::router::Route;

#[function_component]
pub fn WorkspaceSwitcher() -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let Session::SignedIn(me) = &app.session else {
        return html! {};
    };
    let current = match &app.route {
        Route::Workspace(id) => id.to_string(),
        _ => String::new(),
    };
    let onchange = {
        let app = app.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            let route = WorkspaceId::parse(&value).map_or(Route::Home, Route::Workspace);
            navigate(&app, route);
        })
    };
    let groups = me.accounts.iter().map(|account| {
        let mut workspaces: Vec<_> = app
            .workspaces
            .iter()
            .filter(|view| view.workspace.account_id == account.id)
            .collect();
        workspaces.sort_by(|a, b| a.workspace.name.cmp(&b.workspace.name));
        html! {
            <optgroup label={account.name.clone()} key={account.id.to_string()}>
                { for workspaces.iter().map(|view| {
                    let id = view.workspace.id.to_string();
                    html! { <option value={id.clone()} selected={id == current}>{ view.workspace.name.clone() }</option> }
                }) }
            </optgroup>
        }
    });
    // Workspaces shared with the user through an account they are not a member of.
    let others: Vec<_> = app
        .workspaces
        .iter()
        .filter(|view| {
            !me.accounts
                .iter()
                .any(|account| account.id == view.workspace.account_id)
        })
        .collect();
    html! {
        <label class="switcher">
            <span class="visually-hidden">{ "Workspace" }</span>
            <select data-testid="workspace-switcher" {onchange}>
                <option value="" selected={current.is_empty()}>{ "All workspaces" }</option>
                { for groups }
                if !others.is_empty() {
                    <optgroup label="Shared with you">
                        { for others.iter().map(|view| {
                            let id = view.workspace.id.to_string();
                            html! { <option value={id.clone()} selected={id == current}>{ view.workspace.name.clone() }</option> }
                        }) }
                    </optgroup>
                }
            </select>
        </label>
    }
}
