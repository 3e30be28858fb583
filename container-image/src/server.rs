//! The harness's HTTP API.

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use domain::harness::HarnessHealth;

/// The router with every route of the harness API.
pub fn router() -> Router {
    Router::new().route("/health", get(health))
}

/// Binds `listen`, prints the bound address on stdout (so a parent that passed port 0 learns it), and
/// serves until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    println!("cat-harness listening on http://{bound}");
    tracing::info!(%bound, "cat-harness serving");
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn health() -> Json<HarnessHealth> {
    Json(HarnessHealth {
        status: "ok".to_owned(),
        version: domain::VERSION.to_owned(),
        capabilities: Vec::new(),
    })
}
