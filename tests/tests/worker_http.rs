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

/// Arms the worker's test hook: its next `draws` random draws (ids, tokens, nonces, guards — not
/// request ids) fail as the runtime's crypto source can.
async fn fail_next_random_draws(draws: u32) {
    let armed = client()
        .post(server().url(&format!("/__test/entropy?failNextDraws={draws}")))
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 200, "the entropy hook is served");
}

#[track_caller]
fn assert_entropy_unavailable(answer: &cat_tests::api::Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.body);
    assert_eq!(answer.code(), Some("entropy_unavailable"), "{what}");
    assert_eq!(answer.body["error"]["details"]["retryable"], true, "{what}");
    assert_eq!(answer.header("retry-after").as_deref(), Some("1"), "{what}");
}

// Every other test in this binary draws nothing once the deployment's dev key is loaded (this
// test signs in before it arms the hook), so the armed failures are this test's alone.
#[tokio::test]
async fn a_failed_random_source_is_a_retryable_503_that_changes_nothing_and_the_worker_survives() {
    use cat_tests::api::{Client, unique_login};
    use serde_json::json;

    let owner = Client::sign_in(server(), &unique_login("entropy")).await;
    let workspace = owner.create_workspace("Entropy").await;
    let frame = owner.create_block(&workspace, "frame", None, "F").await;
    let board_before = owner.board(&workspace).await;
    let tokens_before = owner.get("/auth/tokens").await.expect(200);

    // A board write (the core's command draws the block's id first).
    fail_next_random_draws(1).await;
    let refused = owner
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "module", "parentId": frame, "title": "M" }),
        )
        .await;
    assert_entropy_unavailable(&refused, "create block");
    assert_eq!(
        owner.board(&workspace).await,
        board_before,
        "the refused write changed nothing (no block, no seq)"
    );
    // The isolate survived: the same write, repeated, commits.
    let module = owner
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "module", "parentId": frame, "title": "M" }),
        )
        .await
        .expect(201);
    assert_eq!(
        owner.board(&workspace).await["seq"],
        board_before["seq"].as_i64().unwrap() + 1,
        "the retry took the very next seq"
    );
    assert_eq!(module["parentId"], json!(frame));

    // A worker-side secret (an API token's id and value).
    fail_next_random_draws(1).await;
    let refused = owner.post("/auth/tokens", json!({ "name": "ci" })).await;
    assert_entropy_unavailable(&refused, "mint an API token");
    assert_eq!(
        owner.get("/auth/tokens").await.expect(200),
        tokens_before,
        "no token was stored"
    );
    owner
        .post("/auth/tokens", json!({ "name": "ci" }))
        .await
        .expect(201);

    // A live-stream ticket, and a first sign-in (the session's id is drawn before the user row).
    fail_next_random_draws(1).await;
    let refused = owner
        .post(
            &format!("/workspaces/{workspace}/events/ticket"),
            json!(null),
        )
        .await;
    assert_entropy_unavailable(&refused, "event ticket");
    fail_next_random_draws(1).await;
    let newcomer = unique_login("entropy-new");
    let refused = Client::anonymous(server())
        .post("/auth/dev-login", json!({ "login": newcomer }))
        .await;
    assert_entropy_unavailable(&refused, "first sign-in");
    let signed_in = Client::sign_in(server(), &newcomer).await;
    assert!(
        signed_in.get("/auth/me").await.expect(200)["accounts"]
            .as_array()
            .is_some_and(|accounts| accounts.len() == 1),
        "the retried sign-in made the user once, with one personal account"
    );

    fail_next_random_draws(0).await;
    let health = client().get(server().url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the worker still serves everyone");
}
