//! A small enum router over `window.location` and the History API.

use domain::ids::WorkspaceId;

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// The workspace list (or the sign-in page for a visitor).
    Home,
    SignIn,
    Workspace(WorkspaceId),
    NotFound,
}

impl Route {
    pub fn parse(path: &str) -> Route {
        let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        match parts.as_slice() {
            [] => Route::Home,
            ["signin"] => Route::SignIn,
            ["w", id] => WorkspaceId::parse(id).map_or(Route::NotFound, Route::Workspace),
            _ => Route::NotFound,
        }
    }

    pub fn path(&self) -> String {
        match self {
            Route::Home | Route::NotFound => "/".to_owned(),
            Route::SignIn => "/signin".to_owned(),
            Route::Workspace(id) => format!("/w/{id}"),
        }
    }

    pub fn current() -> Route {
        let path = web_sys::window()
            .and_then(|window| window.location().pathname().ok())
            .unwrap_or_default();
        Route::parse(&path)
    }

    /// Pushes this route onto the history (the app re-renders from its state, not from the URL).
    pub fn push(&self) {
        if let Some(history) = web_sys::window().and_then(|window| window.history().ok()) {
            let _ =
                history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&self.path()));
        }
    }

    pub fn replace(&self) {
        if let Some(history) = web_sys::window().and_then(|window| window.history().ok()) {
            let _ = history.replace_state_with_url(
                &wasm_bindgen::JsValue::NULL,
                "",
                Some(&self.path()),
            );
        }
    }
}
