//! The model client against the scripted model server, through the real binary: retries that honour
//! `Retry-After`, a request timeout separate from the stall timeout, streamed and non-streamed
//! answers that give the same transcript, and the token usage of every call in the job view.

mod support;

use domain::job::{FailureKind, JobState, JobView};
use serde_json::{Value, json};
use support::*;

fn script() -> Vec<Reply> {
    vec![
        Reply::Said(
            "Let me look around first.",
            vec![
                ("list_directory", json!({ "path": "." })),
                ("read_file", json!({ "path": "README.md", "start_line": 1 })),
            ],
        ),
        tool("search_text", json!({ "pattern": "demo", "path": "." })),
        finish("It is a demo service — \"A demo service.\" says the README."),
    ]
}

async fn run_explore(protocol: &str, stream: bool, id: &str) -> (JobView, Value, ScriptedModel) {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(script()).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job(id, &repo, &model);
    job["llm"]["protocol"] = json!(protocol);
    job["llm"]["stream"] = json!(stream);
    harness.post_job(&job).await;
    let view = harness.wait_for_end(id).await;
    assert_eq!(view.state, JobState::Done, "{view:#?}\n{}", harness.log());
    let transcript = harness.transcript(id).await;
    (view, transcript, model)
}

#[tokio::test]
async fn streamed_and_non_streamed_answers_give_the_same_transcript_in_both_dialects() {
    for protocol in ["openai", "anthropic"] {
        let (plain_view, plain, plain_model) = run_explore(protocol, false, "plain").await;
        let (streamed_view, streamed, streamed_model) =
            run_explore(protocol, true, "streamed").await;

        assert_eq!(entries(&plain), entries(&streamed), "{protocol}");
        assert_eq!(entries(&plain).len(), 7, "{protocol}: {plain:#}");
        assert_eq!(plain_view.result, streamed_view.result, "{protocol}");
        assert_eq!(plain_model.requests()[0].body.get("stream"), None);
        assert_eq!(streamed_model.requests()[0].body["stream"], true);

        // Every call's usage is in the view, whichever way it travelled.
        for (view, model, streamed) in [
            (&plain_view, &plain_model, false),
            (&streamed_view, &streamed_model, true),
        ] {
            let requests = model.requests();
            assert_eq!(view.usage.calls.len(), 3, "{protocol}");
            for (call, request) in view.usage.calls.iter().zip(&requests) {
                assert_eq!(call.model, "scripted-model-1");
                assert_eq!(
                    call.input_tokens,
                    Some(scripted_input_tokens(&request.body))
                );
                assert_eq!(call.output_tokens, Some(SCRIPTED_OUTPUT_TOKENS));
                assert_eq!(call.streamed, streamed);
                assert_eq!(call.retries, 0);
            }
            assert_eq!(view.usage.output_tokens, 3 * SCRIPTED_OUTPUT_TOKENS);
            assert_eq!(
                view.usage.input_tokens,
                requests
                    .iter()
                    .map(|r| scripted_input_tokens(&r.body))
                    .sum::<u64>()
            );
        }
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_retried() {
    let repo = TestRepo::create();
    let model =
        ScriptedModel::start(vec![Reply::Status(429, Some("1")), finish("All good.")]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    harness
        .post_job(&explore_job("rate-limited", &repo, &model))
        .await;
    let view = harness.wait_for_end("rate-limited").await;

    assert_eq!(view.state, JobState::Done, "{view:#?}");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= std::time::Duration::from_secs(1),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(view.progress.model_retries, 1);
    let last_error = view.progress.last_upstream_error.unwrap();
    assert!(last_error.contains("429"), "{last_error}");
    assert_eq!(view.usage.calls[0].retries, 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_the_budget_runs_out() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        Reply::Status(503, None),
        Reply::Status(502, None),
        Reply::Status(500, None),
        finish("never reached"),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job("flaky", &repo, &model);
    job["limits"]["maxModelRetries"] = json!(2);
    harness.post_job(&job).await;
    let view = harness.wait_for_end("flaky").await;

    let failure = view.failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::Agent, "{failure:?}");
    assert!(failure.kind.is_transient());
    assert!(failure.detail.contains("500"), "{}", failure.detail);
    assert!(
        failure.detail.contains("maxModelRetries"),
        "{}",
        failure.detail
    );
    assert_eq!(model.requests().len(), 3);
    assert_eq!(view.progress.model_retries, 2);
}

#[tokio::test]
async fn a_refused_request_is_not_retried() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![Reply::Status(401, None), finish("x")]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    harness
        .post_job(&explore_job("refused", &repo, &model))
        .await;
    let failure = harness.wait_for_end("refused").await.failure.unwrap();

    assert_eq!(failure.kind, FailureKind::Agent);
    assert!(failure.detail.contains("401"), "{}", failure.detail);
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn a_hung_request_times_out_at_the_request_timeout_not_the_stall_timeout() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![Reply::Hang, Reply::Hang, finish("never")]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job("hung", &repo, &model);
    job["limits"]["requestTimeoutSeconds"] = json!(1);
    job["limits"]["stallTimeoutSeconds"] = json!(120);
    job["limits"]["maxModelRetries"] = json!(1);
    harness.post_job(&job).await;
    let view = harness.wait_for_end("hung").await;

    let failure = view.failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::Agent, "{failure:?}");
    assert!(
        failure.detail.contains("limits.requestTimeoutSeconds"),
        "{}",
        failure.detail
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "one retry within the budget");
    assert!(requests[1].at.duration_since(requests[0].at) >= std::time::Duration::from_secs(1));
    assert_eq!(view.progress.model_retries, 1);
}
