//! The sign-in page: a dev sign-in form when the server runs in dev mode, and GitHub sign-in.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::app::{AppContext, load_session};
use crate::components::health_badge::HealthBadge;

#[derive(Clone, Copy, PartialEq)]
enum DevMode {
    Probing,
    On,
    Off,
}

#[function_component]
pub fn SignInPage() -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let dev_mode = use_state(|| DevMode::Probing);
    let login = use_state(String::new);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    {
        // An empty login is refused with 400 in dev mode and 404 otherwise, so this probe tells the
        // two apart without signing anyone in.
        let dev_mode = dev_mode.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let mode = match api::dev_login("").await {
                    Err(failure) if failure.status == 404 => DevMode::Off,
                    _ => DevMode::On,
                };
                dev_mode.set(mode);
            });
        });
    }
    let oninput = {
        let login = login.clone();
        Callback::from(move |event: InputEvent| {
            login.set(event.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let onsubmit = {
        let (login, error, busy, dev_mode, app) = (
            login.clone(),
            error.clone(),
            busy.clone(),
            dev_mode.clone(),
            app.clone(),
        );
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let name = login.trim().to_owned();
            let (error, busy, dev_mode, app) =
                (error.clone(), busy.clone(), dev_mode.clone(), app.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::dev_login(&name).await {
                    Ok(session) => {
                        api::set_token(Some(session.token));
                        load_session(app);
                    }
                    Err(failure) if failure.status == 404 => {
                        dev_mode.set(DevMode::Off);
                        error.set(Some("Dev sign-in is off on this server.".into()));
                    }
                    Err(failure) => error.set(Some(failure.message)),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <main class="sign-in">
            <div class="sign-in-card">
                <div class="brand big"><span class="brand-mark">{ "◆" }</span>{ "cat-factory" }</div>
                <p class="lede">{ "Design the system on a board. Let the agents build it." }</p>
                <a class="button primary wide" href="/auth/github/login" data-testid="github-sign-in"
                    onclick={Callback::from(|event: MouseEvent| {
                        event.prevent_default();
                        api::start_github_sign_in();
                    })}>
                    { "Sign in with GitHub" }
                </a>
                if *dev_mode == DevMode::On {
                    <div class="divider"><span>{ "or, on this development server" }</span></div>
                    <form class="stack" onsubmit={onsubmit} data-testid="dev-sign-in">
                        <label class="field">
                            <span>{ "GitHub login" }</span>
                            <input name="login" autocomplete="username" placeholder="octocat" required=true
                                value={(*login).clone()} {oninput} data-testid="dev-login-input" />
                        </label>
                        <button class="button wide" type="submit" disabled={*busy} data-testid="dev-login-submit">
                            { if *busy { "Signing in…" } else { "Sign in (dev)" } }
                        </button>
                    </form>
                }
                if let Some(message) = &*error {
                    <p class="form-error" role="alert">{ message.clone() }</p>
                }
                <div class="sign-in-foot"><HealthBadge /></div>
            </div>
        </main>
    }
}
