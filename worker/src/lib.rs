//! cat-factory's Cloudflare Worker.
//!
//! A thin shell around `domain`: it parses requests, asks the domain what to do, talks to D1 and the
//! Durable Objects, and renders the answer. Everything here is wasm32-only; natively the crate is empty
//! so that workspace-wide native builds stay fast.

#![cfg(target_arch = "wasm32")]

mod access;
mod auth;
mod budget;
mod coordinator;
mod delivery;
pub mod gateway;
mod github;
mod http;
mod hub;
mod ids;
mod limits;
mod object_call;
mod object_sql;
mod people;
mod providers;
mod routes;
mod runner;
mod store;
mod sweep;
mod test_hooks;

pub use budget::BudgetObject;
pub use coordinator::RunCoordinator;
pub use hub::WorkspaceHub;
pub use runner::RunnerContainer;
use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent, event};

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> Result<Response> {
    Ok(http::serve(request, env, ctx).await)
}

/// The cron trigger (every minute): repairs lost deliveries and prunes the outbox.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    sweep::run(&env).await;
}
