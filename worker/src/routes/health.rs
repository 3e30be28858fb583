//! `GET /health`: liveness plus a real round trip to D1.

use domain::api::health::HealthResponse;

use crate::http::{HandlerResult, RequestContext, json};

#[derive(serde::Deserialize)]
struct AppliedMigrations {
    applied: u32,
}

pub async fn get(context: &RequestContext) -> HandlerResult {
    let applied = probe_database(context).await;
    let health = HealthResponse::from_db_probe(domain::VERSION, applied);
    json(health.http_status(), &health)
}

/// Counts the applied migrations in wrangler's own bookkeeping table: this proves the binding works
/// and that the schema was migrated, not only that the process is up.
async fn probe_database(context: &RequestContext) -> Option<u32> {
    let outcome = async {
        let db = context.env.d1("DB")?;
        db.prepare("SELECT COUNT(*) AS applied FROM d1_migrations")
            .first::<AppliedMigrations>(None)
            .await
    }
    .await;
    match outcome {
        Ok(row) => Some(row.map_or(0, |row| row.applied)),
        Err(error) => {
            worker::console_error!(
                "{} health: database probe failed: {error}",
                context.request_id
            );
            None
        }
    }
}
