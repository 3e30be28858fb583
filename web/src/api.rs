//! HTTP calls to the worker, decoding the same `domain` types the worker encodes.

use domain::api::ErrorEnvelope;
use domain::api::health::HealthResponse;
use gloo_net::http::Request;

/// What a failed call tells the user.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    pub message: String,
}

impl ApiFailure {
    fn from_transport(error: gloo_net::Error) -> Self {
        ApiFailure {
            message: format!("The server did not answer: {error}"),
        }
    }
}

/// `GET /health`. A degraded server answers 503 with a health body, which is still a health report.
pub async fn health() -> Result<HealthResponse, ApiFailure> {
    let response = Request::get("/health")
        .send()
        .await
        .map_err(ApiFailure::from_transport)?;
    let text = response.text().await.map_err(ApiFailure::from_transport)?;
    if let Ok(health) = serde_json::from_str::<HealthResponse>(&text) {
        return Ok(health);
    }
    match serde_json::from_str::<ErrorEnvelope>(&text) {
        Ok(envelope) => Err(ApiFailure {
            message: envelope.error.message,
        }),
        Err(_) => Err(ApiFailure {
            message: format!(
                "Unexpected answer from /health (HTTP {})",
                response.status()
            ),
        }),
    }
}
