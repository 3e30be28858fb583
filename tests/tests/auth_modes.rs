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
        ..ServerOptions::default()
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

/// The people the fake GitHub knows: (code prefix, GitHub id, login, organisations). `good` is
/// octo-cat; `renamed` is the same GitHub account after renaming itself; `newcomer` is a different
/// account that took the login octo-cat gave up.
const GITHUB_PEOPLE: [(&str, u64, &str, &[&str]); 5] = [
    ("good", 4242, "octo-cat", &[]),
    ("renamed", 4242, "Octo-Renamed", &[]),
    ("newcomer", 5151, "Octo-Cat", &[]),
    ("outsider", 6161, "mallory", &["elsewhere"]),
    ("member", 7171, "joiner", &["Cat-Club"]),
];

fn person_behind(
    authorization: &str,
) -> (&'static str, u64, &'static str, &'static [&'static str]) {
    let person = match authorization.strip_prefix("Bearer gho_") {
        Some("fake_access_token") | None => "good",
        Some(other) => other,
    };
    *GITHUB_PEOPLE
        .iter()
        .find(|(name, ..)| *name == person)
        .expect("a known person")
}

/// Signs in through the fake GitHub as `person` (a code prefix of [`GITHUB_PEOPLE`]); returns the
/// callback's answer.
async fn github_sign_in(server: &WorkerServer, person: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = http
        .get(server.url(&format!("/auth/github/login?tab={TAB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    http.get(server.url("/auth/github/callback"))
        .query(&[
            ("code", format!("{person}-code")),
            ("state", query["state"].clone()),
        ])
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The nonce a board tab sends when it starts a sign-in.
const TAB: &str = "0123456789abcdef0123456789abcdef";

/// The session token a successful callback hands over (with the tab's nonce, which the board checks).
fn landed_token(done: &reqwest::Response) -> String {
    assert_eq!(done.status(), 302);
    let landing = done.headers()["location"].to_str().unwrap();
    let fragment = landing
        .strip_prefix('/')
        .unwrap_or_else(|| panic!("landing {landing}"));
    domain::signin::accept_landing(fragment, Some(TAB))
        .unwrap_or_else(|| panic!("landing {landing} carries no token for this tab"))
}

fn github_server(github_url: &str, extra: &[(&str, &str)]) -> WorkerServer {
    let mut settings = vec![
        ("AUTH_SESSION_SECRET", "a-test-secret-that-is-long-enough"),
        ("GITHUB_CLIENT_ID", "test-client-id"),
        ("GITHUB_CLIENT_SECRET", "shh-client-secret"),
        ("GITHUB_WEB_URL", github_url),
        ("GITHUB_API_URL", github_url),
        ("PUBLIC_ORIGIN", "{origin}"),
    ];
    settings.extend_from_slice(extra);
    WorkerServer::start_with(ServerOptions {
        vars: vars(&settings),
        ..ServerOptions::default()
    })
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
        let person = body["code"]
            .as_str()
            .and_then(|code| code.strip_suffix("-code"))
            .filter(|person| GITHUB_PEOPLE.iter().any(|(name, ..)| name == person));
        if let (Some(person), true) = (person, body["client_secret"] == "shh-client-secret") {
            let token = if person == "good" {
                "gho_fake_access_token".to_owned()
            } else {
                format!("gho_{person}")
            };
            Json(json!({ "access_token": token, "token_type": "bearer" }))
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
        log.lock().unwrap().user_calls.push(authorization.clone());
        let (_, id, login, _) = person_behind(&authorization);
        Json(
            json!({ "id": id, "login": login, "name": "Octo Cat", "avatar_url": "https://example.test/a.png" }),
        )
    }
    async fn orgs(headers: HeaderMap) -> Json<Value> {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (.., orgs) = person_behind(authorization);
        Json(Value::Array(
            orgs.iter().map(|org| json!({ "login": org })).collect(),
        ))
    }
    let app = Router::new()
        .route("/login/oauth/access_token", post(exchange))
        .route("/user", get(user))
        .route("/user/orgs", get(orgs))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

#[tokio::test]
async fn github_sign_in_round_trip_against_a_fake_github() {
    let (github_url, log) = start_fake_github().await;
    let server = github_server(&github_url, &[("AUTH_MODE", "github")]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // 0. A sign-in must name the board tab that starts it.
    let untabbed = http
        .get(server.url("/auth/github/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(untabbed.status(), 400);
    // 1. The login redirects to GitHub's authorize page with our client id and a signed state, and
    //    binds the state to this browser with a cookie.
    let start = http
        .get(server.url(&format!("/auth/github/login?tab={TAB}")))
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
    let token = &landed_token(&done);
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

#[tokio::test]
async fn github_redirects_only_to_the_public_origin_and_a_renamed_login_moves_to_its_new_holder() {
    let (github_url, _log) = start_fake_github().await;
    let server = github_server(&github_url, &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A request that names another host still sends GitHub's redirect to the configured origin.
    let start = http
        .get(server.url(&format!("/auth/github/login?tab={TAB}")))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], server.url("/auth/github/callback"));

    // octo-cat signs up; renames itself on GitHub; someone else takes the old login.
    let first = landed_token(&github_sign_in(&server, "good").await);
    let octo = Client::anonymous(&server).with_token(&first);
    let octo_id = octo.get("/auth/me").await.expect(200)["user"]["id"].clone();
    let renamed = landed_token(&github_sign_in(&server, "renamed").await);
    let me = Client::anonymous(&server)
        .with_token(&renamed)
        .get("/auth/me")
        .await
        .expect(200);
    assert_eq!(me["user"]["id"], octo_id, "a rename is the same person");
    assert_eq!(me["user"]["login"], "Octo-Renamed");
    let newcomer = landed_token(&github_sign_in(&server, "newcomer").await);
    let newcomer = Client::anonymous(&server).with_token(&newcomer);
    let newcomer_me = newcomer.get("/auth/me").await.expect(200);
    assert_ne!(newcomer_me["user"]["id"], octo_id);
    assert_eq!(newcomer_me["user"]["login"], "Octo-Cat");

    // The old holder signs in with their old login once more (say GitHub had not propagated the
    // rename): the login moves back and the newcomer steps aside — one holder, whatever the case.
    let again = landed_token(&github_sign_in(&server, "good").await);
    let again_me = Client::anonymous(&server)
        .with_token(&again)
        .get("/auth/me")
        .await
        .expect(200);
    assert_eq!(again_me["user"]["login"], "octo-cat");
    let displaced = newcomer.get("/auth/me").await.expect(200);
    assert!(
        displaced["user"]["login"]
            .as_str()
            .unwrap()
            .starts_with(domain::signin::DISPLACED_LOGIN_PREFIX),
        "{displaced}"
    );
}

#[tokio::test]
async fn an_allowlist_admits_listed_logins_and_organisation_members_only() {
    let (github_url, _log) = start_fake_github().await;
    let server = github_server(
        &github_url,
        &[
            ("AUTH_ALLOWED_LOGINS", "Octo-Cat"),
            ("AUTH_ALLOWED_ORGS", "cat-club"),
        ],
    );
    // Listed by login (case-insensitively).
    landed_token(&github_sign_in(&server, "good").await);
    // A member of a listed organisation.
    landed_token(&github_sign_in(&server, "member").await);
    // Anyone else is refused, and no account is made for them.
    let refused = github_sign_in(&server, "outsider").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AUTH_ALLOWED_LOGINS"),
        "{body}"
    );
    let stored = server.execute_sql("SELECT COUNT(*) AS n FROM users WHERE login = 'mallory'");
    assert_eq!(stored[0]["results"][0]["n"], 0);
}

#[tokio::test]
async fn dev_mode_refuses_to_start_next_to_a_real_secret_and_github_refuses_a_short_one() {
    let dev_with_secret = WorkerServer::start_with(ServerOptions {
        vars: vars(&[
            ("AUTH_MODE", "dev"),
            (
                "AUTH_SESSION_SECRET",
                "a-real-secret-for-a-real-deployment-0123",
            ),
        ]),
        ..ServerOptions::default()
    });
    let answer = Client::anonymous(&dev_with_secret)
        .post("/auth/dev-login", json!({ "login": "mallory" }))
        .await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.code(), Some("auth_not_configured"));
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AUTH_SESSION_SECRET")
    );
    drop(dev_with_secret);

    let short = WorkerServer::start_with(ServerOptions {
        vars: vars(&[
            ("AUTH_SESSION_SECRET", "too-short"),
            ("GITHUB_CLIENT_ID", "test-client-id"),
            ("GITHUB_CLIENT_SECRET", "shh-client-secret"),
            ("PUBLIC_ORIGIN", "{origin}"),
        ]),
        ..ServerOptions::default()
    });
    let answer = Client::anonymous(&short).get("/auth/github/login").await;
    assert_eq!(answer.status, 503);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 32"),
        "{:?}",
        answer.body
    );
}
