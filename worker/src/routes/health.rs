//! `GET /health`: liveness plus a real round trip to D1.

use domain::api::health::HealthResponse;

use crate::http::{HandlerResult, RequestContext, json};

pub async fn get(context: &RequestContext) -> HandlerResult {
    let applied = probe_database(context).await;
    let health = HealthResponse::from_db_probe(domain::VERSION, applied);
    json(health.http_status(), &health)
}

/// Counts the applied migrations in wrangler's own bookkeeping table: this proves the binding works
/// and that the schema was migrated, not only that the process is up.
async fn probe_database(context: &RequestContext) -> Option<u32> {
    match crate::store::applied_migrations(&context.env).await {
        Ok(applied) => Some(applied),
        Err(error) => {
            worker::console_error!(
                "{} health: database probe failed: {error}",
                context.request_id
            );
            None
        }
    }
}
