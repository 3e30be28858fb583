//! Test-only endpoints, served only when `TEST_HOOKS=1` (never set in wrangler.toml): what the
//! integration tests cannot observe through the API.
//!
//! `GET /__test/noop`: an empty 204 with no I/O (the benchmarks' floor).
//! `GET /__test/hub/<workspace id>`: the hub's counters (`received`: events handed to it, duplicates
//! included) and how many of the workspace's outbox events are not yet marked delivered.
//!
//! `POST /__test/entropy?failNextDraws=N`: the isolate's next `N` random draws (ids, tokens, nonces,
//! guards; not request ids) fail as the runtime's crypto source can, so a test sees the request that
//! needed one answered 503 `entropy_unavailable` and the isolate still serving the next. The count
//! is per isolate (wrangler dev runs one), and `N = 0` disarms it.

use domain::api::ApiError;
use serde::Deserialize;
use worker::{Env, Request, Response};

use crate::http::{HandlerResult, internal};
use crate::params;
use crate::store::Db;

pub fn enabled(env: &Env) -> bool {
    crate::auth::env_value(env, "TEST_HOOKS").as_deref() == Some("1")
}

#[derive(Deserialize)]
struct CountRow {
    count: i64,
}

pub async fn serve(env: &Env, request: &Request, method: &str, path: &str) -> HandlerResult {
    if method == "POST" && path == "/__test/entropy" {
        return fail_next_draws(request);
    }
    if method != "GET" {
        return Err(ApiError::route_not_found(method, path));
    }
    if path == "/__test/noop" {
        // No I/O at all: what the platform and the worker's own request pipeline cost, the floor the
        // benchmarks print next to their figures.
        return Response::empty()
            .map(|response| response.with_status(204))
            .map_err(internal("response"));
    }
    let workspace_id = path
        .strip_prefix("/__test/hub/")
        .ok_or_else(|| ApiError::route_not_found("GET", path))?;
    let mut stats: serde_json::Value = crate::hub::stats(env, workspace_id)
        .await
        .map_err(internal("hub stats"))?;
    let db = Db::from_env(env)?;
    let undelivered: Option<CountRow> = db
        .first(
            "SELECT COUNT(*) AS count FROM events WHERE workspace_id = ?1 AND delivered_at IS NULL",
            &params![workspace_id],
        )
        .await?;
    stats["undelivered"] = undelivered.map_or(0, |row| row.count).into();
    Response::from_json(&stats).map_err(internal("stats JSON"))
}

/// Arms the random source's injected failures (see the module documentation).
fn fail_next_draws(request: &Request) -> HandlerResult {
    let url = request.url().map_err(internal("the hook's URL"))?;
    let draws = url
        .query_pairs()
        .find(|(name, _)| name == "failNextDraws")
        .and_then(|(_, value)| value.parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::new(
                domain::api::ErrorCode::ValidationFailed,
                "POST /__test/entropy needs `?failNextDraws=<count>` (a whole number; 0 disarms).",
            )
        })?;
    crate::ids::fail_next_draws(draws);
    Response::from_json(&serde_json::json!({ "failNextDraws": draws }))
        .map_err(internal("the hook's answer"))
}
