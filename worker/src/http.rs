//! The request pipeline: request id → route match → handler → response, with one error envelope.

use domain::api::routes::{RouteMiss, match_route};
use domain::api::{ApiError, Operation, REQUEST_ID_HEADER, RouteMatch};
use serde::Serialize;
use worker::{Env, Headers, Request, Response};

use crate::{ids, routes};

/// Everything a handler needs about the request it serves.
pub struct RequestContext {
    pub env: Env,
    pub request_id: String,
    pub route: RouteMatch,
}

/// What a handler returns: a response, or an API error that becomes the envelope.
pub type HandlerResult = Result<Response, ApiError>;

/// Serves one request. Never fails: every error becomes a JSON envelope, and every response carries
/// the request id.
pub async fn serve(request: Request, env: Env) -> Response {
    let request_id = ids::request_id();
    let method = request.method().to_string();
    let path = request.path();
    let outcome = match match_route(&method, &path) {
        Ok(route) => {
            let context = RequestContext {
                env,
                request_id: request_id.clone(),
                route,
            };
            dispatch(request, context).await
        }
        Err(RouteMiss::NotFound) if method == "GET" || method == "HEAD" => {
            serve_static(request, &env, &method, &path).await
        }
        Err(RouteMiss::NotFound) => Err(ApiError::route_not_found(&method, &path)),
        Err(RouteMiss::MethodNotAllowed { allowed }) => {
            Err(ApiError::method_not_allowed(&method, &path, &allowed))
        }
    };
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if error.status() >= 500 {
                worker::console_error!("{request_id} {method} {path}: {error}");
            }
            error_response(&error)
        }
    };
    with_request_id(response, &request_id)
}

async fn dispatch(request: Request, context: RequestContext) -> HandlerResult {
    match context.route.route.operation {
        Operation::Health => routes::health::get(&context).await,
        Operation::OpenApi => routes::openapi::get(&request),
    }
}

/// Serves the board's static files. The worker runs first for every request (`run_worker_first`), so
/// that every error, even for a method the assets layer would refuse, is the JSON envelope. A browser
/// navigating to a client-side route of the board (say `/w/123`) gets the app's `index.html`; any other
/// miss is the JSON 404.
async fn serve_static(request: Request, env: &Env, method: &str, path: &str) -> HandlerResult {
    let accepts_html = request
        .headers()
        .get("accept")
        .ok()
        .flatten()
        .is_some_and(|accept| accept.contains("text/html"));
    let assets = env.assets("ASSETS").map_err(internal("assets binding"))?;
    let response = assets
        .fetch_request(request)
        .await
        .map_err(internal("assets fetch"))?;
    if response.status_code() != 404 {
        return Ok(response);
    }
    if accepts_html {
        return assets
            .fetch("http://assets.local/index.html", None)
            .await
            .map_err(internal("assets fetch"));
    }
    Err(ApiError::route_not_found(method, path))
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> HandlerResult {
    Response::from_json(body)
        .map(|response| response.with_status(status))
        .map_err(internal("serialize"))
}

/// Logs a runtime error with what was being done, and hides it behind the generic internal error.
pub fn internal<E: std::fmt::Display>(doing: &'static str) -> impl Fn(E) -> ApiError {
    move |error| {
        worker::console_error!("internal error during {doing}: {error}");
        ApiError::internal()
    }
}

fn error_response(error: &ApiError) -> Response {
    let body = serde_json::to_string(&error.clone().into_envelope()).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"error serialization failed"}}"#.to_owned()
    });
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::ok(body)
        .map(|response| response.with_status(error.status()).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built"))
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    // Responses fetched from the assets binding have immutable headers; copy them into a fresh
    // header map so the id can be added.
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        let _ = headers.append(&name, &value);
    }
    let _ = headers.set(REQUEST_ID_HEADER, request_id);
    response = response.with_headers(headers);
    response
}
