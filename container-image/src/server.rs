//! The harness's HTTP API. `GET /health` is open; every other route needs the shared secret in
//! `x-harness-secret` (the harness does not start without one). Every error is the JSON envelope
//! `{"error":{"code","message","details"}}`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::api::{ApiError, ErrorCode};
use domain::harness::{
    CAPABILITIES, HarnessHealth, LocalMergeAnswer, LocalMergeRequest, LocalPullRequestList,
    SHARED_SECRET_HEADER, SourcePolicy, constant_time_eq,
};
use domain::job::{Job, JobId, JobView, Transcript};
use serde_json::json;

use crate::jobs::JobRegistry;

/// The largest job body accepted; prompts are big but not this big.
const MAX_JOB_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<JobRegistry>,
    /// Every route but `/health` needs it; never empty.
    pub shared_secret: Arc<String>,
    /// Where this runner lets jobs clone from and push to.
    pub sources: Arc<SourcePolicy>,
}

/// An [`ApiError`] as an axum response.
pub struct ErrorResponse(pub ApiError);

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0.into_envelope())).into_response()
    }
}

impl From<ApiError> for ErrorResponse {
    fn from(error: ApiError) -> Self {
        ErrorResponse(error)
    }
}

/// The router with every route of the harness API.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/jobs", axum::routing::post(submit_job))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/jobs/{id}/transcript", get(get_transcript))
        .route("/forge/prs", get(list_local_pull_requests))
        .route(
            "/forge/merge",
            axum::routing::post(merge_local_pull_request),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_shared_secret,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JOB_BODY_BYTES))
        .with_state(state)
}

/// Binds `listen`, prints the bound address on stdout (so a parent that passed port 0 learns it), and
/// serves until `shutdown` resolves; then stops the running jobs as `harness_shutdown`.
pub async fn serve(
    listen: SocketAddr,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    println!("cat-harness listening on http://{bound}");
    tracing::info!(%bound, "cat-harness serving");
    let registry = state.registry.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    registry.shutdown().await;
    Ok(())
}

async fn require_shared_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(SHARED_SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if state.shared_secret.is_empty()
        || !constant_time_eq(presented, state.shared_secret.as_bytes())
    {
        return ErrorResponse(ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "This route needs the harness's shared secret in the {SHARED_SECRET_HEADER} \
                 header (the value of HARNESS_SHARED_SECRET)."
            ),
        ))
        .into_response();
    }
    next.run(request).await
}

async fn health() -> Json<HarnessHealth> {
    Json(HarnessHealth {
        status: "ok".to_owned(),
        version: domain::VERSION.to_owned(),
        capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
    })
}

async fn route_not_found(method: axum::http::Method, uri: axum::http::Uri) -> ErrorResponse {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "No route matches {method} {}. The harness serves GET /health, POST /jobs, \
             GET|DELETE /jobs/{{id}}, GET /jobs/{{id}}/transcript and GET /forge/prs.",
            uri.path()
        ),
    )
    .with_details(json!({ "method": method.as_str(), "path": uri.path() }))
    .into()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ErrorResponse {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}.", uri.path()),
    )
    .with_details(json!({ "method": method.as_str(), "path": uri.path() }))
    .into()
}

fn parse_job(body: &[u8]) -> Result<Job, ApiError> {
    let job: Job = serde_json::from_slice(body).map_err(|error| {
        if error.is_data() {
            ApiError::new(
                ErrorCode::ValidationFailed,
                format!("The job body does not match the Job schema: {error}."),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("The job body is not valid JSON: {error}."),
            )
        }
    })?;
    let problems = job.problems();
    if !problems.is_empty() {
        // The platform's one `validation_failed` shape: `details.fields[{field, message}]`.
        return Err(ApiError::invalid_fields(problems));
    }
    Ok(job)
}

async fn submit_job(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<JobView>), ErrorResponse> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The job body could not be read ({rejection}); the limit is {MAX_JOB_BODY_BYTES} bytes."),
        )
    })?;
    let job = parse_job(&body)?;
    let refused = state.sources.problems(&job);
    if let Some(first) = refused.first() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "This runner does not take this job: {} {} (details.problems lists every problem).",
                first.field, first.problem
            ),
        )
        .with_details(json!({ "problems": refused }))
        .into());
    }
    let (view, started) = state.registry.submit(job).map_err(|problem| {
        ErrorResponse(ApiError::new(
            ErrorCode::Conflict,
            format!("This runner cannot start the job now: {problem}."),
        ))
    })?;
    if !started {
        tracing::info!(job = %view.id, "repeated POST attached to the existing job");
    }
    Ok((StatusCode::ACCEPTED, Json(view)))
}

fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::try_from(raw).map_err(|_| unknown_job(raw))
}

fn unknown_job(raw: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("This harness has no job {raw:?}. POST /jobs starts one."),
    )
    .with_details(json!({ "jobId": raw }))
}

async fn get_job(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<JobView>, ErrorResponse> {
    let id = parse_job_id(&raw)?;
    let handle = state.registry.get(&id).ok_or_else(|| unknown_job(&raw))?;
    Ok(Json(handle.view()))
}

async fn get_transcript(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Transcript>, ErrorResponse> {
    let id = parse_job_id(&raw)?;
    let handle = state.registry.get(&id).ok_or_else(|| unknown_job(&raw))?;
    Ok(Json(handle.transcript()))
}

async fn cancel_job(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<JobView>, ErrorResponse> {
    let id = parse_job_id(&raw)?;
    let view = state
        .registry
        .cancel(&id)
        .await
        .ok_or_else(|| unknown_job(&raw))?;
    Ok(Json(view))
}

async fn list_local_pull_requests(
    State(state): State<AppState>,
) -> Result<Json<LocalPullRequestList>, ErrorResponse> {
    state
        .registry
        .store()
        .list_local_pull_requests()
        .await
        .map(Json)
        .map_err(|error| {
            tracing::error!(%error, "cannot read the local forge's pull requests");
            ErrorResponse(ApiError::new(
                ErrorCode::Internal,
                "The harness cannot read its local forge records; its log says why.",
            ))
        })
}

/// `POST /forge/merge`: the local forge's merge (local-forge mode only).
async fn merge_local_pull_request(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LocalMergeAnswer>, ErrorResponse> {
    if !state.sources.allow_local_repositories {
        return Err(ErrorResponse(ApiError::new(
            ErrorCode::Forbidden,
            "This runner is not in the local-forge mode (--allow-local-repos); it merges nothing.",
        )));
    }
    let body = body.map_err(|_| {
        ErrorResponse(ApiError::new(
            ErrorCode::InvalidJson,
            "The request body could not be read.",
        ))
    })?;
    let request: LocalMergeRequest = domain::api::body::parse_json(&body).map_err(ErrorResponse)?;
    crate::forge::merge_local(state.registry.store(), &request)
        .await
        .map(Json)
        .map_err(ErrorResponse)
}
