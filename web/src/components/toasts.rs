//! Short notices in the corner: why an edit was rolled back, what failed. Each fades after a while.

use gloo_timers::callback::Timeout;
use yew::prelude::*;

use crate::app::{Action, AppContext, ToastKind};

#[function_component]
pub fn Toasts() -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let newest = app.toasts.last().map(|toast| toast.id);
    {
        let app = app.clone();
        use_effect_with(newest, move |newest| {
            let timer = newest
                .map(|id| Timeout::new(6_000, move || app.dispatch(Action::DismissToast(id))));
            move || drop(timer)
        });
    }
    html! {
        <div class="toasts" role="status" aria-live="polite">
            { for app.toasts.iter().map(|toast| {
                let id = toast.id;
                let dismiss = {
                    let app = app.clone();
                    Callback::from(move |_: MouseEvent| app.dispatch(Action::DismissToast(id)))
                };
                let kind = match toast.kind { ToastKind::Info => "info", ToastKind::Error => "error" };
                html! {
                    <div class={classes!("toast", kind)} data-testid="toast" key={id}>
                        <span>{ toast.text.clone() }</span>
                        <button class="ghost icon" aria-label="Dismiss" onclick={dismiss}>{ "×" }</button>
                    </div>
                }
            }) }
        </div>
    }
}
