//! Authentication configuration: fail closed when unconfigured, and GitHub OAuth against a fake
//! GitHub on loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use cat_tests::api::Client;
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::{Value, json};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[tokio::test]
async fn without_auth_configured_every_protected_route_is_503_and_dev_login_does_not_exist() {
    let server = WorkerServer::start_with(ServerOptions {
        vars: vars(&[("AUTH_MODE", "off")]),
        persist_dir: None,
        port: None,
    });
    let anonymous = Client::anonymous(&server);
    for route in domain::api::routes::ROUTES.iter() {
        if route.access == domain::api::routes::RouteAccess::Public {
            continue;
        }
        let path = route
            .path
            .replace(":id", "ws_0000000000000001")
            .replace(":blockId", "blk_0000000000000001");
        let path = path
            .replace(":edgeId", "edg_0000000000000001")
            .replace(":userId", "usr_0000000000000001");
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let answer = anonymous
            .with_token("anything")
            .send(method, &path, None)
            .await;
        assert_eq!(answer.status, 503, "{} {path}", route.method.as_str());
        assert_eq!(answer.code(), Some("auth_not_configured"));
    }
    let dev = anonymous
        .post("/auth/dev-login", json!({ "login": "mallory" }))
        .await;
    assert_eq!(dev.status, 404);
    assert_eq!(
        anonymous.get("/auth/github/login").await.code(),
        Some("auth_not_configured")
    );
}

/// What the fake GitHub saw.
#[derive(Default)]
struct FakeGithubLog {
    exchanges: Vec<Value>,
    user_calls: Vec<String>,
}

async fn start_fake_github() -> (String, Arc<Mutex<FakeGithubLog>>) {
    let log = Arc::new(Mutex::new(FakeGithubLog::default()));
    async fn exchange(
        State(log): State<Arc<Mutex<FakeGithubLog>>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        log.lock().unwrap().exchanges.push(body.clone());
        if body["code"] == "good-code" && body["client_secret"] == "shh-client-secret" {
            Json(json!({ "access_token": "gho_fake_access_token", "token_type": "bearer" }))
        } else {
            Json(
                json!({ "error": "bad_verification_code", "error_description": "The code is incorrect." }),
            )
        }
    }
    async fn user(State(log): State<Arc<Mutex<FakeGithubLog>>>, headers: HeaderMap) -> Json<Value> {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        log.lock().unwrap().user_calls.push(authorization);
        Json(
            json!({ "id": 4242, "login": "octo-cat", "name": "Octo Cat", "avatar_url": "https://example.test/a.png" }),
        )
    }
    let app = Router::new()
        .route("/login/oauth/access_token", post(exchange))
        .route("/user", get(user))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

#[tokio::test]
async fn github_sign_in_round_trip_against_a_fake_github() {
    let (github_url, log) = start_fake_github().await;
    let server = WorkerServer::start_with(ServerOptions {
        vars: vars(&[
            ("AUTH_MODE", "github"),
            ("AUTH_SESSION_SECRET", "a-test-secret-that-is-long-enough"),
            ("GITHUB_CLIENT_ID", "test-client-id"),
            ("GITHUB_CLIENT_SECRET", "shh-client-secret"),
            ("GITHUB_OAUTH_BASE_URL", &github_url),
            ("GITHUB_API_BASE_URL", &github_url),
        ]),
        persist_dir: None,
        port: None,
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // 1. The login redirects to GitHub's authorize page with our client id and a signed state, and
    //    binds the state to this browser with a cookie.
    let start = http
        .get(server.url("/auth/github/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{github_url}/login/oauth/authorize"))
    );
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "test-client-id");
    assert_eq!(query["redirect_uri"], server.url("/auth/github/callback"));
    let state = query["state"].clone();
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // 2. The callback without the browser's cookie is refused (a forged or replayed redirect).
    let callback = |code: &str, cookie: Option<&str>| {
        let mut request = http
            .get(server.url("/auth/github/callback"))
            .query(&[("code", code), ("state", &state)]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    assert_eq!(callback("good-code", None).await.unwrap().status(), 401);
    // 3. A code GitHub rejects is refused.
    assert_eq!(
        callback("bad-code", Some(&cookie)).await.unwrap().status(),
        401
    );

    // 4. The real round trip signs the GitHub user in and hands the token over in the fragment.
    let done = callback("good-code", Some(&cookie)).await.unwrap();
    assert_eq!(done.status(), 302);
    let landing = done.headers()["location"].to_str().unwrap().to_owned();
    let token = landing
        .strip_prefix("/#token=")
        .unwrap_or_else(|| panic!("landing {landing}"));
    let me = Client::anonymous(&server)
        .with_token(token)
        .get("/auth/me")
        .await
        .expect(200);
    assert_eq!(me["user"]["login"], "octo-cat");
    assert_eq!(me["user"]["name"], "Octo Cat");

    {
        let log = log.lock().unwrap();
        let exchange = log.exchanges.last().unwrap();
        assert_eq!(exchange["client_id"], "test-client-id");
        assert_eq!(
            exchange["redirect_uri"],
            server.url("/auth/github/callback")
        );
        assert_eq!(
            log.user_calls.last().unwrap(),
            "Bearer gho_fake_access_token"
        );
    }

    // 5. Dev sign-in does not exist on a server that is not in dev mode.
    assert_eq!(
        Client::anonymous(&server)
            .post("/auth/dev-login", json!({ "login": "x" }))
            .await
            .status,
        404
    );
}
