//! Test-only endpoints, served only when `TEST_HOOKS=1` (never set in wrangler.toml): what the
//! integration tests cannot observe through the API.
//!
//! `GET /__test/noop`: an empty 204 with no I/O (the benchmarks' floor).
//! `GET /__test/hub/<workspace id>`: the hub's counters (`received`: events handed to it, duplicates
//! included) and how many of the workspace's outbox events are not yet marked delivered.

use domain::api::ApiError;
use serde::Deserialize;
use worker::{Env, Response};

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

pub async fn serve(env: &Env, path: &str) -> HandlerResult {
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
