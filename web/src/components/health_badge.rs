//! A small indicator of the server's health, fetched from `GET /health` when the app starts.

use domain::api::health::{DependencyState, HealthResponse, HealthState};
use yew::prelude::*;

use crate::api::{self, ApiFailure};

#[derive(Clone, PartialEq)]
enum Probe {
    Loading,
    Answered(HealthResponse),
    Failed(ApiFailure),
}

#[function_component]
pub fn HealthBadge() -> Html {
    let probe = use_state(|| Probe::Loading);
    {
        let probe = probe.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                probe.set(match api::health().await {
                    Ok(health) => Probe::Answered(health),
                    Err(failure) => Probe::Failed(failure),
                });
            });
        });
    }
    match &*probe {
        Probe::Loading => {
            html! { <span class="health" data-state="loading">{ "checking server…" }</span> }
        }
        Probe::Answered(health) => {
            let (state, label) = match (health.status, health.db) {
                (HealthState::Ok, DependencyState::Ok) => ("ok", "server ok · database ok"),
                (_, DependencyState::Unreachable) => {
                    ("degraded", "server up · database unreachable")
                }
                (HealthState::Degraded, DependencyState::Ok) => ("degraded", "server degraded"),
            };
            html! {
                <span class="health" data-state={state} title={format!("version {}", health.version)}>
                    <span class="dot"></span>{ label }<span class="version">{ format!("v{}", health.version) }</span>
                </span>
            }
        }
        Probe::Failed(failure) => html! {
            <span class="health" data-state="error" title={failure.message.clone()}>
                <span class="dot"></span>{ "server unreachable" }
            </span>
        },
    }
}
