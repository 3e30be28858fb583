//! The limits a deployment puts on writes (issue 14, ADR 19), through the real worker under
//! `wrangler dev`: quotas refuse the write past them with 422 `quota_exceeded` and change nothing;
//! a service links only `https://` repositories on allowed hosts (never `file://`, `http://` or a
//! path); a body is capped also without `Content-Length`; and each person's
//! writes are rate-limited with 429 `rate_limited` and `Retry-After`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use cat_tests::api::{Answer, Client, unique_login};
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::json;

/// One server for this binary, with small quotas so a test can reach them.
fn server() -> &'static WorkerServer {
    static SERVER: OnceLock<WorkerServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut options = ServerOptions::default();
        options.vars.push((
            "QUOTAS".to_owned(),
            json!({ "blocksPerWorkspace": 4, "edgesPerWorkspace": 1, "workspacesPerAccount": 2,
                    "apiTokensPerUser": 2, "membersPerAccount": 2 })
            .to_string(),
        ));
        options.vars.push((
            "REPO_ALLOWED_HOSTS".to_owned(),
            "github.com,git.example.com:8443".to_owned(),
        ));
        WorkerServer::start_with(options)
    })
}

async fn owner(prefix: &str) -> (Client, String) {
    let client = Client::sign_in(server(), &unique_login(prefix)).await;
    let workspace = client.create_workspace(prefix).await;
    (client, workspace)
}

fn assert_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.code(), Some(code), "{}", answer.body);
}

#[tokio::test]
async fn blocks_and_edges_stop_at_their_quotas_and_a_refusal_changes_nothing() {
    let (client, ws) = owner("quota").await;
    let frame = client.create_block(&ws, "frame", None, "F").await;
    let a = client.create_block(&ws, "task", Some(&frame), "a").await;
    let b = client.create_block(&ws, "task", Some(&frame), "b").await;
    let c = client.create_block(&ws, "task", Some(&frame), "c").await;
    let before = client.board(&ws).await;

    let refused = client
        .post(
            &format!("/workspaces/{ws}/blocks"),
            json!({ "level": "task", "parentId": frame, "title": "one too many" }),
        )
        .await;
    assert_refused(&refused, 422, "quota_exceeded");
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "blocksPerWorkspace"
    );
    assert_eq!(refused.body["error"]["details"]["limit"], 4);

    client.create_edge(&ws, &a, &b).await;
    let refused = client
        .post(
            &format!("/workspaces/{ws}/edges"),
            json!({ "from": b, "to": c }),
        )
        .await;
    assert_refused(&refused, 422, "quota_exceeded");
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "edgesPerWorkspace"
    );

    let after = client.board(&ws).await;
    assert_eq!(after["blocks"], before["blocks"], "no block was added");
    assert_eq!(after["edges"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["seq"].as_i64().unwrap(),
        before["seq"].as_i64().unwrap() + 1,
        "only the edge that fit recorded an event"
    );
}

#[tokio::test]
async fn workspaces_and_api_tokens_stop_at_their_quotas() {
    let client = Client::sign_in(server(), &unique_login("quota-owner")).await;
    let account = client
        .post("/accounts", json!({ "name": "quota account" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["one", "two"] {
        client
            .post("/workspaces", json!({ "name": name, "accountId": account }))
            .await
            .expect(201);
    }
    let refused = client
        .post(
            "/workspaces",
            json!({ "name": "three", "accountId": account }),
        )
        .await;
    assert_refused(&refused, 422, "quota_exceeded");
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "workspacesPerAccount"
    );

    for name in ["ci", "laptop"] {
        client
            .post("/auth/tokens", json!({ "name": name }))
            .await
            .expect(201);
    }
    let refused = client
        .post("/auth/tokens", json!({ "name": "third" }))
        .await;
    assert_refused(&refused, 422, "quota_exceeded");
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "apiTokensPerUser"
    );
    let tokens = client.get("/auth/tokens").await.expect(200);
    assert_eq!(tokens.as_array().map(Vec::len), Some(2));

    // The account has its creator; one more member fits, a third does not, a role change does.
    let second = Client::sign_in(server(), &unique_login("quota-second")).await;
    let third = Client::sign_in(server(), &unique_login("quota-third")).await;
    let members = format!("/accounts/{account}/members");
    client
        .post(&members, json!({ "login": second.login, "role": "member" }))
        .await
        .expect(200);
    let refused = client
        .post(&members, json!({ "login": third.login, "role": "member" }))
        .await;
    assert_refused(&refused, 422, "quota_exceeded");
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "membersPerAccount"
    );
    client
        .post(&members, json!({ "login": second.login, "role": "admin" }))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_service_links_only_https_repositories_on_allowed_hosts() {
    let (client, ws) = owner("links").await;
    for allowed in [
        "https://github.com/acme/shop",
        "https://git.example.com:8443/acme/shop",
        "local:shop",
    ] {
        client
            .post(
                &format!("/workspaces/{ws}/blocks"),
                json!({ "level": "frame", "title": "ok", "repoUrl": allowed }),
            )
            .await
            .expect(201);
    }
    let frame = client.create_block(&ws, "frame", None, "svc").await;
    let before = client.board(&ws).await;
    // Not a link's shape at all (the published pattern refuses it): 400 naming the field.
    for refused in [
        "file:///etc/passwd",
        "http://github.com/acme/shop",
        "/srv/forge/shop.git",
    ] {
        let created = client
            .post(
                &format!("/workspaces/{ws}/blocks"),
                json!({ "level": "frame", "title": "no", "repoUrl": refused }),
            )
            .await;
        assert_refused(&created, 400, "validation_failed");
        assert_eq!(
            created.body["error"]["details"]["problems"][0]["field"], "repoUrl",
            "{refused}"
        );
        let linked = client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": 1, "repoUrl": refused }),
            )
            .await;
        assert_refused(&linked, 400, "validation_failed");
    }
    // The right shape, but this deployment's rule refuses it (a host it does not allow, or
    // credentials in the URL): 422 rule_violated naming the rule and the field.
    for refused in [
        "https://169.254.169.254/latest/meta-data",
        "https://internal.corp/acme/shop",
        "https://token@github.com/acme/shop",
    ] {
        let created = client
            .post(
                &format!("/workspaces/{ws}/blocks"),
                json!({ "level": "frame", "title": "no", "repoUrl": refused }),
            )
            .await;
        assert_refused(&created, 422, "rule_violated");
        assert_eq!(
            created.body["error"]["details"]["rule"], "repository_not_allowed",
            "{refused}"
        );
        assert_eq!(created.body["error"]["details"]["field"], "repoUrl");
        let linked = client
            .patch(
                &format!("/workspaces/{ws}/blocks/{frame}"),
                json!({ "rev": 1, "repoUrl": refused }),
            )
            .await;
        assert_refused(&linked, 422, "rule_violated");
    }
    assert_eq!(
        client.board(&ws).await,
        before,
        "no refused link changed anything"
    );
}

/// Sends `total` bytes as a chunked body (no `Content-Length`) and returns the worker's whole answer.
fn answer_to_a_chunked_body(
    server: &WorkerServer,
    path: &str,
    token: &str,
    total: usize,
) -> String {
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    let mut sent = 0;
    while sent < total {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break; // The worker answered and closed early; read what it said.
        }
        sent += 16 * 1024;
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_without_content_length_is_capped_too() {
    let (client, ws) = owner("body").await;
    let token = client.token.clone().unwrap();
    let path = format!("/workspaces/{ws}/blocks");
    // 2 MiB, eight times the cap, announced by no Content-Length.
    let answer = tokio::task::spawn_blocking(move || {
        answer_to_a_chunked_body(server(), &path, &token, 2 * 1024 * 1024)
    })
    .await
    .unwrap();
    assert!(
        answer.lines().next().unwrap_or_default().contains(" 413"),
        "the answer was {answer:?}"
    );
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert_eq!(
        client.board(&ws).await["blocks"].as_array().map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn a_person_over_the_write_rate_gets_429_with_retry_after_and_others_do_not() {
    let (client, ws) = owner("rate").await;
    let limit = domain::limits::WRITE_RATE_LIMIT as usize;
    // The limiter counts in fixed windows: a window may end during the burst, so allow up to two
    // windows' worth before giving up.
    let mut created = 0usize;
    let mut refused: Option<Answer> = None;
    'burst: for _ in 0..(2 * limit + 10).div_ceil(16) {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let client = client.clone();
            let path = format!("/workspaces/{ws}");
            burst.spawn(async move { client.patch(&path, json!({ "name": "renamed" })).await });
        }
        for answer in burst.join_all().await {
            match answer.status {
                200 => created += 1,
                429 => refused = refused.or(Some(answer)),
                other => panic!("unexpected {other}: {}", answer.body),
            }
        }
        if refused.is_some() {
            break 'burst;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("{created} writes and no 429"));
    assert_refused(&refused, 429, "rate_limited");
    // The workspace's creation was this person's first write of the window.
    assert!(
        created + 1 >= limit,
        "{created} renames went through before the 429"
    );
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 60, "{retry_after}");
    // Reads still work for the limited person, and another person's writes are not limited.
    client.board(&ws).await;
    let (other, other_ws) = owner("rate-other").await;
    other
        .post(
            &format!("/workspaces/{other_ws}/blocks"),
            json!({ "level": "frame", "title": "mine" }),
        )
        .await
        .expect(201);
}
