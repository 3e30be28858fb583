//! The foundation's HTTP contract, against the real worker under `wrangler dev`.

use cat_tests::http::client;
use cat_tests::worker::WorkerServer;
use domain::api::health::{DependencyState, HealthResponse, HealthState};
use domain::api::{ErrorCode, ErrorEnvelope, REQUEST_ID_HEADER};
use serde_json::Value;

fn server() -> &'static WorkerServer {
    WorkerServer::shared()
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{} {} has no request id", response.url(), response.status()))
}

#[tokio::test]
async fn health_queries_the_database_and_reports_ok() {
    let response = client().get(server().url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(request_id(&response).starts_with("req_"));
    let health: HealthResponse = response.json().await.unwrap();
    assert_eq!(health.status, HealthState::Ok);
    assert_eq!(health.db, DependencyState::Ok);
    assert_eq!(health.version, domain::VERSION);
    let migrations = std::fs::read_dir(cat_tests::repo_root().join("migrations"))
        .unwrap()
        .count() as u32;
    assert_eq!(
        health.migrations_applied,
        Some(migrations),
        "every migration is applied"
    );
}

#[tokio::test]
async fn every_response_has_a_distinct_request_id() {
    let first = client().get(server().url("/health")).send().await.unwrap();
    let second = client()
        .get(server().url("/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_ne!(request_id(&first), request_id(&second));
}

#[tokio::test]
async fn unknown_routes_get_the_json_error_envelope() {
    for (method, path) in [
        ("GET", "/no-such-route"),
        ("POST", "/health/extra"),
        ("DELETE", "/"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client()
            .request(method.clone(), server().url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        request_id(&response);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let envelope: ErrorEnvelope = response.json().await.unwrap();
        assert_eq!(envelope.error.code, ErrorCode::NotFound);
        assert!(
            envelope.error.message.contains(path),
            "{}",
            envelope.error.message
        );
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_405_with_the_allowed_methods() {
    let response = client()
        .post(server().url("/health"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|value| value.to_str().ok()),
        Some("GET"),
        "a 405 carries Allow"
    );
    let envelope: ErrorEnvelope = response.json().await.unwrap();
    assert_eq!(envelope.error.code, ErrorCode::MethodNotAllowed);
    assert_eq!(
        envelope.error.details.unwrap()["allowed"],
        serde_json::json!(["GET"])
    );
}

#[tokio::test]
async fn openapi_describes_every_route_in_the_table() {
    let response = client()
        .get(server().url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for route in domain::api::routes::ROUTES.iter() {
        let path = domain::api::openapi::openapi_path(route.path);
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(
            document["paths"][&path][&method].is_object(),
            "{method} {path} missing from /openapi.json"
        );
    }
}

#[tokio::test]
async fn the_board_is_served_at_the_root_and_for_client_side_routes() {
    for path in ["/", "/w/some-workspace"] {
        let response = client()
            .get(server().url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("/web.js"),
            "{path} did not serve the app shell: {html}"
        );
    }
    let wasm = client()
        .get(server().url("/web_bg.wasm"))
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
}
