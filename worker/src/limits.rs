//! The deployment's write limits, read from its configuration, and the write rate limit, enforced
//! with Cloudflare's rate-limiting binding. The rules are `domain::limits`; this only does I/O.

use domain::api::{ApiError, ErrorCode};
use domain::ids::UserId;
use domain::limits::{Quotas, RepositoryLinkPolicy, WriteLimits};
use worker::Env;

use crate::auth::env_value;

/// The binding in `wrangler.toml` that counts each person's writes.
const WRITE_RATE_LIMITER: &str = "WRITE_RATE_LIMITER";

/// The quotas (`QUOTAS`) and the repository-link rule (`REPO_ALLOWED_HOSTS`, `LOCAL_FORGE_ROOT`).
/// A malformed setting makes every request answer 503 naming it, like any misconfiguration: a
/// deployment that silently fell back to other limits would be worse.
pub fn load(env: &Env) -> Result<WriteLimits, ApiError> {
    let misconfigured = |problem: String| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("This server is misconfigured: {problem}"),
        )
    };
    let quotas = match env_value(env, "QUOTAS") {
        Some(text) => Quotas::from_json(&text).map_err(misconfigured)?,
        None => Quotas::default(),
    };
    let repository_links = RepositoryLinkPolicy::from_setting(
        env_value(env, "REPO_ALLOWED_HOSTS").as_deref(),
        env_value(env, "LOCAL_FORGE_ROOT").is_some(),
    )
    .map_err(misconfigured)?;
    Ok(WriteLimits {
        quotas,
        repository_links,
    })
}

/// Counts one write by `user` and refuses it (429) past `domain::limits::WRITE_RATE_LIMIT`.
///
/// Fails open: without the binding (a deployment whose `wrangler.toml` predates it) or when the
/// limiter errors, the write goes ahead and the problem is logged. The limit protects the service
/// from a runaway script; an outage of the limiter must not become an outage of the board.
pub async fn count_write(env: &Env, user: &UserId) -> Result<(), ApiError> {
    let limiter = match env.rate_limiter(WRITE_RATE_LIMITER) {
        Ok(limiter) => limiter,
        Err(_) => return Ok(()),
    };
    match limiter.limit(user.as_str().to_owned()).await {
        Ok(outcome) if !outcome.success => Err(domain::limits::rate_limited()),
        Ok(_) => Ok(()),
        Err(error) => {
            worker::console_error!("rate limiter failed, letting the write through: {error}");
            Ok(())
        }
    }
}
