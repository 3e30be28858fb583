//! The fake GitHub itself: it scopes tokens the way GitHub does, pages like GitHub, and signs
//! webhooks so that the domain's check accepts them (and refuses the forged and unsigned ones).

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use cat_tests::fake_github::{
    FakeGithub, FakeInstallation, FakeIssue, FakeRepository, Signing, WebhookSender,
};
use domain::github::app::{
    RepositoryFullName, assemble_jwt, installation_token_request, jwt_signing_input,
};
use domain::github::webhook::{Delivery, verify_and_classify};
use serde_json::{Value, json};

fn app_jwt() -> String {
    assemble_jwt(&jwt_signing_input("321", 1_800_000_000), b"fake-signature")
}

async fn github_with_installation() -> FakeGithub {
    let github = FakeGithub::start().await;
    github.add_installation(
        FakeInstallation {
            id: 4242,
            account_login: "acme".to_owned(),
            repositories: (0..35)
                .map(|index| FakeRepository {
                    id: 700_000 + index,
                    full_name: format!("acme/repo-{index:02}"),
                })
                .collect(),
        },
        true,
    );
    github.add_installation(
        FakeInstallation {
            id: 5151,
            account_login: "someone-else".to_owned(),
            repositories: vec![],
        },
        false,
    );
    github
}

async fn mint(github: &FakeGithub, installation: u64, body: &Value) -> (StatusCode, Value) {
    let response = cat_tests::http::client()
        .post(format!(
            "{}/app/installations/{installation}/access_tokens",
            github.base_url
        ))
        .bearer_auth(app_jwt())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn installation_tokens_are_checked_and_recorded_with_their_scope() {
    let github = github_with_installation().await;
    let scoped = serde_json::to_value(installation_token_request(
        &RepositoryFullName::parse("acme/repo-03").unwrap(),
    ))
    .unwrap();
    let (status, answer) = mint(&github, 4242, &scoped).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let token = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(answer["repositories"].as_array().unwrap().len(), 1);
    let minted = github.minted_tokens();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].repositories, vec!["repo-03".to_owned()]);
    assert_eq!(
        minted[0].permissions.keys().collect::<Vec<_>>(),
        vec!["contents", "pull_requests"]
    );

    let refusals = [
        (
            4242,
            json!({"repositories": ["not-installed"], "permissions": {"contents": "write"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            4242,
            json!({"repositories": ["repo-03"], "permissions": {"administration": "write"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            4242,
            json!({"repositories": ["repo-03"], "permissions": {"issues": "write"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (9999, scoped.clone(), StatusCode::NOT_FOUND),
    ];
    for (installation, body, expected) in refusals {
        assert_eq!(
            mint(&github, installation, &body).await.0,
            expected,
            "{body}"
        );
    }
    let without_jwt = cat_tests::http::client()
        .post(format!(
            "{}/app/installations/4242/access_tokens",
            github.base_url
        ))
        .bearer_auth("not-a-jwt")
        .json(&scoped)
        .send()
        .await
        .unwrap();
    assert_eq!(without_jwt.status().as_u16(), 401);
    assert_eq!(
        github.minted_tokens().len(),
        1,
        "refused requests mint nothing"
    );

    // Repositories are listed with the installation token, in pages.
    let mut names = Vec::new();
    let mut url = format!("{}/installation/repositories?per_page=20", github.base_url);
    loop {
        let response = cat_tests::http::client()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let next = response
            .headers()
            .get("link")
            .and_then(|link| link.to_str().ok())
            .and_then(|link| {
                link.split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(path, _)| path.to_owned())
            });
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["total_count"], 35);
        names.extend(
            page["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["full_name"].as_str().unwrap().to_owned()),
        );
        match next {
            Some(path) => url = format!("{}{path}", github.base_url),
            None => break,
        }
    }
    assert_eq!(names.len(), 35);
    assert_eq!(names[34], "acme/repo-34");
    let unauthenticated = cat_tests::http::client()
        .get(format!("{}/installation/repositories", github.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
}

#[tokio::test]
async fn user_installations_issues_and_pull_requests_answer_like_github() {
    let github = github_with_installation().await;
    let client = cat_tests::http::client();
    let mine: Value = client
        .get(format!("{}/user/installations", github.base_url))
        .bearer_auth("ghu_user_token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["installations"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["installations"][0]["id"], 4242);

    for (number, labels, state, is_pull_request) in [
        (1, vec!["cat-factory"], "open", false),
        (2, vec!["bug"], "open", false),
        (3, vec!["cat-factory", "bug"], "open", false),
        (4, vec!["cat-factory"], "closed", false),
        (5, vec!["cat-factory"], "open", true),
    ] {
        github.add_issue(
            "acme/repo-00",
            FakeIssue {
                number,
                title: format!("Issue {number}"),
                state: state.to_owned(),
                labels: labels.into_iter().map(str::to_owned).collect(),
                is_pull_request,
            },
        );
    }
    let issues: Vec<Value> = client
        .get(format!(
            "{}/repos/acme/repo-00/issues?labels=cat-factory&state=open&per_page=2",
            github.base_url
        ))
        .bearer_auth("ghs_token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        issues
            .iter()
            .map(|i| i["number"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    let second: Vec<Value> = client
        .get(format!(
            "{}/repos/acme/repo-00/issues?labels=cat-factory&state=open&per_page=2&page=2",
            github.base_url
        ))
        .bearer_auth("ghs_token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert!(
        second[0].get("pull_request").is_some(),
        "the issues API lists pull requests too"
    );

    let create = |head: &str| {
        client
            .post(format!("{}/repos/acme/repo-00/pulls", github.base_url))
            .bearer_auth("ghs_token")
            .json(&json!({"title": "Add export", "head": head, "base": "main", "body": "…"}))
            .send()
    };
    let created = create("cat/blk_0123456789abcdef").await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["number"], 17);
    let again = create("cat/blk_0123456789abcdef").await.unwrap();
    assert_eq!(again.status().as_u16(), 422);
    assert!(again.text().await.unwrap().contains("already exists"));
    let listed: Vec<Value> = client
        .get(format!(
            "{}/repos/acme/repo-00/pulls?head=acme:cat/blk_0123456789abcdef&state=open",
            github.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let fetched = client
        .get(format!("{}/repos/acme/repo-00/pulls/17", github.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status().as_u16(), 200);

    let run = client
        .post(format!("{}/repos/acme/repo-00/check-runs", github.base_url))
        .json(&json!({"name": "test", "head_sha": "abc", "status": "completed", "conclusion": "failure"}))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status().as_u16(), 201);
    let runs: Value = client
        .get(format!(
            "{}/repos/acme/repo-00/commits/abc/check-runs",
            github.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["check_runs"][0]["conclusion"], "failure");
    assert!(
        github
            .requests()
            .iter()
            .any(|r| r.path == "/repos/acme/repo-00/pulls" && r.method == "POST")
    );
}

#[tokio::test]
async fn webhooks_are_signed_so_the_domain_check_accepts_only_genuine_ones() {
    const SECRET: &[u8] = b"webhook-secret";
    type Outcomes = Arc<Mutex<Vec<Result<Delivery, u16>>>>;
    let outcomes: Outcomes = Arc::default();
    let recorded = outcomes.clone();
    let app = axum::Router::new().route(
        "/github/webhooks",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let recorded = recorded.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let result = verify_and_classify(
                    SECRET,
                    header("x-hub-signature-256").as_deref(),
                    header("x-github-event").as_deref(),
                    header("x-github-delivery").as_deref(),
                    &body,
                );
                let status = match &result {
                    Ok(_) => 202,
                    Err(rejection) => rejection.to_api_error().status(),
                };
                recorded
                    .lock()
                    .unwrap()
                    .push(result.map(|verified| verified.delivery).map_err(|_| status));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sender = WebhookSender::new(format!("http://{address}/github/webhooks"), SECRET);
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 7});
    let id = WebhookSender::new_delivery_id();
    assert_eq!(
        sender
            .send("ping", &id, &ping, Signing::Genuine)
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        sender
            .send("ping", &id, &ping, Signing::Forged)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        sender
            .send("ping", &id, &ping, Signing::Missing)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_ne!(WebhookSender::new_delivery_id(), id);
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes,
        vec![Ok(Delivery::Ping { hook_id: Some(7) }), Err(401), Err(401)]
    );
    server.abort();
}
