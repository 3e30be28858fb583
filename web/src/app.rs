//! The application shell: app state in a reducer shared through a context, the router, the top bar.

use std::rc::Rc;

use domain::api::auth::Me;
use domain::api::workspaces::WorkspaceView;
use gloo_events::EventListener;
use yew::prelude::*;

use crate::api;
use crate::components::health_badge::HealthBadge;
use crate::components::toasts::Toasts;
use crate::components::workspace_switcher::WorkspaceSwitcher;
use crate::pages::board::BoardPage;
use crate::pages::sign_in::SignInPage;
use crate::pages::workspaces::WorkspacesPage;
use crate::router::Route;

#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// The stored token is being checked.
    Checking,
    SignedOut,
    SignedIn(Rc<Me>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub id: u32,
    pub kind: ToastKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub route: Route,
    pub session: Session,
    pub workspaces: Vec<WorkspaceView>,
    /// Whether `/workspaces` has answered since sign-in (the list may still be empty, or have failed
    /// to load). The board page waits for it: the person's role there comes from this list, and a
    /// board drawn before it would show a viewer editing controls for a moment.
    pub workspaces_loaded: bool,
    pub toasts: Vec<Toast>,
    next_toast: u32,
}

pub enum Action {
    /// The route changed (the URL was already updated).
    Routed(Route),
    SignedIn(Rc<Me>),
    SignedOut,
    Workspaces(Vec<WorkspaceView>),
    /// `/workspaces` failed: nothing to list, but nothing to wait for either.
    WorkspacesUnavailable,
    /// A workspace was created or renamed (here or live).
    WorkspaceSaved(WorkspaceView),
    Toast(ToastKind, String),
    DismissToast(u32),
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Routed(route) => next.route = route,
            Action::SignedIn(me) => next.session = Session::SignedIn(me),
            Action::SignedOut => {
                next.session = Session::SignedOut;
                next.workspaces.clear();
                next.workspaces_loaded = false;
            }
            Action::Workspaces(list) => {
                next.workspaces = list;
                next.workspaces_loaded = true;
            }
            Action::WorkspacesUnavailable => next.workspaces_loaded = true,
            Action::WorkspaceSaved(view) => {
                match next
                    .workspaces
                    .iter_mut()
                    .find(|existing| existing.workspace.id == view.workspace.id)
                {
                    Some(existing) => *existing = view,
                    None => next.workspaces.push(view),
                }
            }
            Action::Toast(kind, text) => {
                next.next_toast += 1;
                next.toasts.push(Toast {
                    id: next.next_toast,
                    kind,
                    text,
                });
                if next.toasts.len() > 4 {
                    next.toasts.remove(0);
                }
            }
            Action::DismissToast(id) => next.toasts.retain(|toast| toast.id != id),
        }
        Rc::new(next)
    }
}

pub type AppContext = UseReducerHandle<AppState>;

/// Goes to `route`, adding a history entry.
pub fn navigate(app: &AppContext, route: Route) {
    route.push();
    app.dispatch(Action::Routed(route));
}

pub fn toast_error(app: &AppContext, text: impl Into<String>) {
    app.dispatch(Action::Toast(ToastKind::Error, text.into()));
}

pub fn toast_info(app: &AppContext, text: impl Into<String>) {
    app.dispatch(Action::Toast(ToastKind::Info, text.into()));
}

/// Loads the caller and their workspaces after a sign-in (or with a stored token). Both requests go
/// out together (one round trip, not two, before a board knows the person's role); the workspaces
/// are used only once the session is known to be good.
pub fn load_session(app: AppContext) {
    wasm_bindgen_futures::spawn_local(async move {
        let (me, workspaces) = futures::join!(api::me(), api::workspaces());
        match me {
            Ok(me) => {
                app.dispatch(Action::SignedIn(Rc::new(me)));
                match workspaces {
                    Ok(list) => app.dispatch(Action::Workspaces(list)),
                    Err(failure) => {
                        toast_error(&app, failure.message);
                        app.dispatch(Action::WorkspacesUnavailable);
                    }
                }
            }
            Err(failure) => {
                if failure.status == 401 {
                    api::set_token(None);
                } else {
                    toast_error(&app, failure.message);
                }
                app.dispatch(Action::SignedOut);
            }
        }
    });
}

/// After the GitHub callback the browser lands on `/#token=…&tab=…`: keep the token if this tab started
/// the sign-in, and drop the fragment either way so it does not linger in the address bar or history.
fn take_token_from_fragment() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let hash = window.location().hash().unwrap_or_default();
    if hash.starts_with("#token=") {
        // Only the token of a sign-in this tab started: a crafted link cannot swap the person into
        // someone else's account.
        if let Some(token) = api::take_landing_token(&hash) {
            api::set_token(Some(token));
        }
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
    }
}

#[function_component]
pub fn App() -> Html {
    let app = use_reducer(|| {
        take_token_from_fragment();
        AppState {
            route: Route::current(),
            session: if api::token().is_some() {
                Session::Checking
            } else {
                Session::SignedOut
            },
            workspaces: Vec::new(),
            workspaces_loaded: false,
            toasts: Vec::new(),
            next_toast: 0,
        }
    });
    {
        let app = app.clone();
        use_effect_with((), move |_| {
            if api::token().is_some() {
                load_session(app.clone());
            }
            // Back and forward buttons change the URL; the app follows it.
            let listener = web_sys::window().map(|window| {
                EventListener::new(&window, "popstate", move |_| {
                    app.dispatch(Action::Routed(Route::current()));
                })
            });
            move || drop(listener)
        });
    }
    let body = match &app.session {
        Session::Checking => html! { <div class="splash">{ "Signing in…" }</div> },
        Session::SignedOut => html! { <SignInPage /> },
        Session::SignedIn(me) => {
            let page = match &app.route {
                Route::Workspace(id) => {
                    html! { <BoardPage key={id.to_string()} workspace_id={id.clone()} /> }
                }
                Route::Home | Route::SignIn | Route::NotFound => html! { <WorkspacesPage /> },
            };
            let sign_out = {
                let app = app.clone();
                Callback::from(move |_: MouseEvent| {
                    api::set_token(None);
                    navigate(&app, Route::Home);
                    app.dispatch(Action::SignedOut);
                })
            };
            let home = {
                let app = app.clone();
                Callback::from(move |event: MouseEvent| {
                    event.prevent_default();
                    navigate(&app, Route::Home);
                })
            };
            html! {
                <>
                    <header class="topbar">
                        <a class="brand" href="/" onclick={home}>
                            <span class="brand-mark">{ "◆" }</span>{ "cat-factory" }
                        </a>
                        <WorkspaceSwitcher />
                        <span class="spacer"></span>
                        <HealthBadge />
                        <span class="user" data-testid="signed-in-as">{ me.user.login.clone() }</span>
                        <button class="ghost" data-testid="sign-out" onclick={sign_out}>{ "Sign out" }</button>
                    </header>
                    { page }
                </>
            }
        }
    };
    html! {
        <ContextProvider<AppContext> context={app.clone()}>
            <div class="app">
                { body }
                <Toasts />
            </div>
        </ContextProvider<AppContext>>
    }
}
