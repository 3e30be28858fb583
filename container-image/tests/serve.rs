//! The job API's contract, through the real `cat-harness` binary: health, the shared secret, and
//! error envelopes for bad input.

mod support;

use axum::http::StatusCode;
use domain::api::{ErrorCode, ErrorEnvelope};
use domain::harness::HarnessHealth;
use serde_json::json;
use support::*;

fn harness_in(dir: &tempfile::TempDir) -> Harness {
    Harness::start(&dir.path().join("state"), &dir.path().join("harness.log"))
}

async fn envelope(response: reqwest::Response) -> (u16, ErrorEnvelope) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("errors are JSON envelopes");
    (status, body)
}

#[tokio::test]
async fn health_reports_version_and_capabilities_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness_in(&dir);
    let response = reqwest::get(format!("{}/health", harness.base_url))
        .await
        .expect("health answers");
    assert_eq!(response.status(), 200);
    let health: HarnessHealth = response.json().await.expect("health is the shared type");
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, domain::VERSION);
    for capability in [
        "mode:coding",
        "forge:local",
        "forge:github",
        "llm:anthropic",
    ] {
        assert!(
            health.capabilities.iter().any(|c| c == capability),
            "{capability}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_404_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness_in(&dir);
    let (status, body) = envelope(
        reqwest::get(format!("{}/nope", harness.base_url))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body.error.code, ErrorCode::NotFound);
    assert!(body.error.message.contains("POST /jobs"));
}

#[tokio::test]
async fn job_routes_refuse_a_missing_or_wrong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness_in(&dir);
    let client = reqwest::Client::new();
    for secret in [None, Some("wrong"), Some("harness-shared-secret-55a")] {
        for (method, path) in [
            ("GET", "/jobs/x"),
            ("POST", "/jobs"),
            ("DELETE", "/jobs/x"),
            ("GET", "/forge/prs"),
        ] {
            let mut request = client.request(
                method.parse().unwrap(),
                format!("{}{path}", harness.base_url),
            );
            if let Some(secret) = secret {
                request = request.header("x-harness-secret", secret);
            }
            let (status, body) = envelope(request.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {path} with {secret:?}");
            assert_eq!(body.error.code, ErrorCode::Unauthorized);
            assert!(body.error.message.contains("x-harness-secret"));
        }
    }
}

#[tokio::test]
async fn bad_job_bodies_are_400_envelopes_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![]).await;
    let harness = harness_in(&dir);
    let valid = coding_job("valid", &repo, &model);
    let mut missing_field = valid.clone();
    missing_field.as_object_mut().unwrap().remove("model");
    let mut command_transport = valid.clone();
    command_transport["repo"]["cloneUrl"] = json!("ext::sh -c touch% /tmp/pwned");
    let mut unknown_field = valid.clone();
    unknown_field["surprise"] = json!(true);
    let mut no_pull_request = valid.clone();
    no_pull_request
        .as_object_mut()
        .unwrap()
        .remove("pullRequest");
    let mut base_is_work_branch = valid.clone();
    base_is_work_branch["repo"]["baseBranch"] = json!("cat/blk-valid");

    let cases: Vec<(&str, String, ErrorCode, &str)> = vec![
        (
            "malformed JSON",
            "{\"id\": ".to_owned(),
            ErrorCode::InvalidJson,
            "not valid JSON",
        ),
        (
            "not an object",
            "[1,2]".to_owned(),
            ErrorCode::ValidationFailed,
            "Job schema",
        ),
        (
            "missing field",
            missing_field.to_string(),
            ErrorCode::ValidationFailed,
            "model",
        ),
        (
            "command transport",
            command_transport.to_string(),
            ErrorCode::ValidationFailed,
            "ext::",
        ),
        (
            "unknown field",
            unknown_field.to_string(),
            ErrorCode::ValidationFailed,
            "surprise",
        ),
        (
            "coding without PR",
            no_pull_request.to_string(),
            ErrorCode::ValidationFailed,
            "pullRequest",
        ),
        (
            "base is work branch",
            base_is_work_branch.to_string(),
            ErrorCode::ValidationFailed,
            "base branch",
        ),
    ];
    let client = reqwest::Client::new();
    for (name, body, code, mentions) in cases {
        let response = client
            .post(format!("{}/jobs", harness.base_url))
            .header("x-harness-secret", SHARED_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, envelope) = envelope(response).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(envelope.error.code, code, "{name}");
        assert!(
            envelope.error.message.contains(mentions),
            "{name}: {}",
            envelope.error.message
        );
    }
    // The harness is still up and the bad bodies started nothing.
    let (status, _) = harness
        .request(reqwest::Method::GET, "/jobs/valid", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn unknown_jobs_are_404_for_every_job_route() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness_in(&dir);
    for (method, path) in [
        (reqwest::Method::GET, "/jobs/nope"),
        (reqwest::Method::GET, "/jobs/nope/transcript"),
        (reqwest::Method::DELETE, "/jobs/nope"),
        (reqwest::Method::GET, "/jobs/..%2Fetc"),
    ] {
        let (status, body) = harness.request(method.clone(), path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn without_a_secret_the_harness_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(harness_binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("HARNESS_SHARED_SECRET")
        .output()
        .expect("cat-harness runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("HARNESS_SHARED_SECRET is not set"), "{log}");
}

#[tokio::test]
async fn two_harnesses_cannot_share_a_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let _first = harness_in(&dir);
    let output = std::process::Command::new(harness_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("HARNESS_SHARED_SECRET", SHARED_SECRET)
        .output()
        .expect("cat-harness runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("another cat-harness is using the state directory"),
        "{log}"
    );
}

#[tokio::test]
async fn the_probe_subcommand_says_whether_a_harness_answers_on_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness_in(&dir);
    let address = harness.base_url.trim_start_matches("http://").to_owned();
    let healthy = tokio::task::spawn_blocking({
        let address = address.clone();
        move || {
            std::process::Command::new(harness_binary())
                .args(["probe", "--listen", &address])
                .output()
                .expect("cat-harness runs")
        }
    })
    .await
    .unwrap();
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    drop(harness);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let nothing = std::process::Command::new(harness_binary())
        .args(["probe", "--listen", &free])
        .output()
        .expect("cat-harness runs");
    assert!(!nothing.status.success());
    let log = String::from_utf8_lossy(&nothing.stderr);
    assert!(log.contains("nothing answers on"), "{log}");
}
