//! Whole jobs through the real `cat-harness` binary: real git repositories in temp dirs, a scripted
//! model and a fake GitHub on loopback.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use domain::harness::LocalPullRequestList;
use domain::job::{FailureKind, JobPhase, JobState};
use serde_json::json;
use support::*;

#[tokio::test]
async fn coding_job_on_github_pushes_the_branch_and_opens_a_pr_through_the_rest_api() {
    let repo = TestRepo::create();
    let github = FakeGithub::start().await;
    let model = ScriptedModel::start(vec![
        tool("read_file", json!({ "path": "README.md" })),
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        finish("Added NOTES.md."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("gh-1", &repo, &model);
    job["forge"] = json!({ "kind": "github", "apiBaseUrl": github.base_url, "owner": "acme",
                           "repo": "demo", "token": FORGE_TOKEN });
    job["validation"] = json!({ "commands": ["test -f NOTES.md"] });

    let (status, accepted) = harness.post_job(&job).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["state"], "running");
    let view = harness.wait_for_end("gh-1").await;

    assert_eq!(view.state, JobState::Done, "{view:#?}\n{}", harness.log());
    let result = view.result.expect("a done job has a result");
    assert_eq!(result.branch.as_ref().unwrap().as_str(), "cat/blk-gh-1");
    assert_eq!(result.pull_request.as_ref().unwrap().number, 17);
    assert_eq!(
        result.pull_request.as_ref().unwrap().url,
        "https://github.example/acme/demo/pull/17"
    );
    assert_eq!(
        result.commit.as_deref(),
        Some(repo.commit_of("cat/blk-gh-1").as_str())
    );
    assert_eq!(repo.file_on("cat/blk-gh-1", "NOTES.md"), "hi");
    assert!(view.validation.unwrap().passed());

    let requests = github.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.path, "/repos/acme/demo/pulls");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {FORGE_TOKEN}").as_str())
    );
    assert_eq!(request.api_version.as_deref(), Some("2022-11-28"));
    assert_eq!(request.body["head"], "cat/blk-gh-1");
    assert_eq!(request.body["base"], "main");
    assert_eq!(request.body["title"], "Add NOTES.md");
    assert!(
        request.body["body"]
            .as_str()
            .unwrap()
            .starts_with("Adds a notes file.")
    );

    // The model was called with the job's model, token and tool set.
    let first = &model.requests()[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(
        first.authorization.as_deref(),
        Some(format!("Bearer {LLM_TOKEN}").as_str())
    );
    assert_eq!(first.body["model"], "scripted-model");
    let tools: Vec<&str> = first.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "list_directory",
            "read_file",
            "search_text",
            "run_command",
            "write_file",
            "edit_file",
            "finish"
        ]
    );
    assert!(model.requests()[1].tool_results()[0].contains("1: # Demo"));
}

#[tokio::test]
async fn coding_job_on_the_local_forge_repairs_red_validation_then_pushes_and_records_a_pr() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "draft\n" }),
        ),
        finish("First try."),
        tool(
            "edit_file",
            json!({ "path": "NOTES.md", "old_text": "draft", "new_text": "hi" }),
        ),
        finish("Fixed the notes."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("local-1", &repo, &model);
    job["validation"] = json!({ "commands": ["grep -q hi NOTES.md || { echo 'NOTES.md must say hi'; exit 1; }"],
                                "maxRepairRounds": 1 });

    let (status, _) = harness.post_job(&job).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let view = harness.wait_for_end("local-1").await;

    assert_eq!(view.state, JobState::Done, "{view:#?}\n{}", harness.log());
    let validation = view.validation.unwrap();
    assert_eq!(validation.rounds.len(), 2);
    assert!(!validation.rounds[0].passed() && validation.rounds[1].passed());
    // The red round's output went back to the agent.
    let feedback = model.requests()[2].body["messages"].to_string();
    assert!(feedback.contains("NOTES.md must say hi"), "{feedback}");
    assert_eq!(repo.file_on("cat/blk-local-1", "NOTES.md"), "hi");
    assert_eq!(
        repo.commit_of("main"),
        git(&repo.origin, &["rev-parse", "main"])
    );

    let (status, body) = harness
        .request(reqwest::Method::GET, "/forge/prs", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: LocalPullRequestList = serde_json::from_value(body).unwrap();
    assert_eq!(list.pull_requests.len(), 1);
    let pr = &list.pull_requests[0];
    assert_eq!(pr.number, 1);
    assert_eq!(pr.title, "Add NOTES.md");
    assert_eq!(pr.branch.as_str(), "cat/blk-local-1");
    assert_eq!(pr.base.as_str(), "main");
    assert_eq!(pr.diff_stat.files, ["NOTES.md"]);
    assert_eq!(pr.diff_stat.insertions, 1);
    assert!(pr.body.contains("Fixed the notes."));
    let result = view.result.unwrap();
    assert_eq!(result.pull_request.unwrap().number, 1);
    assert_eq!(result.commit.as_deref(), Some(pr.commit.as_str()));
}

#[tokio::test]
async fn a_clone_url_that_does_not_exist_fails_with_clone_failed() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("bad-clone", &repo, &model);
    job["repo"]["cloneUrl"] = json!(repo.dir.path().join("missing.git").to_str().unwrap());

    harness.post_job(&job).await;
    let view = harness.wait_for_end("bad-clone").await;

    assert_eq!(view.state, JobState::Failed);
    assert_eq!(view.phase, JobPhase::Cloning);
    let failure = view.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::CloneFailed);
    assert!(failure.detail.contains("missing.git"), "{}", failure.detail);
    assert!(model.requests().is_empty(), "the model is never called");
}

#[tokio::test]
async fn a_missing_base_branch_fails_with_clone_failed() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("no-branch", &repo, &model);
    job["repo"]["baseBranch"] = json!("develop");

    harness.post_job(&job).await;
    let failure = harness.wait_for_end("no-branch").await.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::CloneFailed);
    assert!(failure.detail.contains("develop"), "{}", failure.detail);
}

#[tokio::test]
async fn validation_that_never_goes_green_fails_with_its_report_and_pushes_nothing() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        finish("Done."),
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi again\n" }),
        ),
        finish("Done again."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("red", &repo, &model);
    job["validation"] = json!({ "commands": ["echo 'test suite: 3 failures'; exit 1"],
                                "maxRepairRounds": 1 });

    harness.post_job(&job).await;
    let view = harness.wait_for_end("red").await;

    assert_eq!(view.state, JobState::Failed);
    let failure = view.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::ValidationFailed);
    assert!(failure.detail.contains("3 failures"), "{}", failure.detail);
    let report = view.validation.unwrap();
    assert_eq!(report.rounds.len(), 2, "one try plus one repair round");
    assert_eq!(report.rounds[1].commands[0].exit_code, Some(1));
    assert!(report.rounds[1].commands[0].output.contains("3 failures"));
    assert_eq!(repo.branches(), ["main"], "nothing was pushed");
}

#[tokio::test]
async fn a_model_that_stops_answering_fails_the_job_as_stalled() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool("list_directory", json!({ "path": "." })),
        Reply::Hang,
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("stall", &repo, &model);
    job["limits"]["stallTimeoutSeconds"] = json!(1);

    harness.post_job(&job).await;
    let view = harness.wait_for_end("stall").await;

    assert_eq!(view.state, JobState::Failed);
    let failure = view.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Stalled);
    assert!(
        failure.detail.contains("stallTimeoutSeconds"),
        "{}",
        failure.detail
    );
    assert_eq!(view.progress.agent_steps, 2);
    assert_eq!(
        view.progress.last_action.as_deref(),
        Some("list_directory .")
    );
    assert_eq!(repo.branches(), ["main"]);
}

#[tokio::test]
async fn the_same_failing_call_three_times_fails_the_job_as_stalled() {
    let repo = TestRepo::create();
    let missing = || tool("read_file", json!({ "path": "nope.txt" }));
    let model = ScriptedModel::start(vec![missing(), missing(), missing(), finish("never")]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());

    harness.post_job(&coding_job("loop", &repo, &model)).await;
    let failure = harness.wait_for_end("loop").await.failure.unwrap();

    assert_eq!(failure.kind, FailureKind::Stalled, "{}", failure.detail);
    assert!(failure.detail.contains("3 times"), "{}", failure.detail);
}

#[tokio::test]
async fn an_agent_that_never_finishes_runs_out_of_steps() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool("list_directory", json!({ "path": "." })),
        tool("read_file", json!({ "path": "README.md" })),
        tool("list_directory", json!({ "path": "src" })),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("steps", &repo, &model);
    job["limits"]["maxAgentSteps"] = json!(3);

    harness.post_job(&job).await;
    let failure = harness.wait_for_end("steps").await.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::StepBudget);
}

#[tokio::test]
async fn delete_mid_run_aborts_the_job_kills_its_command_and_pushes_nothing() {
    let repo = TestRepo::create();
    let pid_file = repo.dir.path().join("command.pid");
    let model = ScriptedModel::start(vec![
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        tool(
            "run_command",
            json!({ "command": format!("echo $$ > {}; sleep 600", pid_file.display()) }),
        ),
        finish("unreachable"),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    harness.post_job(&coding_job("abort", &repo, &model)).await;
    harness
        .wait_for("abort", |view| {
            view.progress
                .last_action
                .as_deref()
                .is_some_and(|a| a.starts_with("run_command"))
        })
        .await;
    let command_pid = wait_for_file(&pid_file).await;

    let (status, body) = harness
        .request(reqwest::Method::DELETE, "/jobs/abort", None)
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "failed");
    assert_eq!(body["failure"]["kind"], "cancelled");
    assert_eq!(
        harness.job("abort").await.failure.unwrap().kind,
        FailureKind::Cancelled
    );
    assert!(
        process_is_dead(command_pid.trim()),
        "the agent's command is killed before DELETE answers"
    );
    assert_eq!(repo.branches(), ["main"], "nothing was pushed");
    assert_eq!(model.requests().len(), 2, "the model is not called again");
}

/// Gone, or a zombie waiting to be reaped: either way it runs no more.
fn process_is_dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, fields)| fields.starts_with('Z') || fields.starts_with('X')),
    }
}

async fn wait_for_file(path: &std::path::Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(content) = std::fs::read_to_string(path)
            && !content.trim().is_empty()
        {
            return content;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_workflow_edit_is_refused_by_the_tools_and_by_the_final_diff_check() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool(
            "edit_file",
            json!({ "path": ".github/workflows/ci.yml", "old_text": "on: push", "new_text": "on: pull_request" }),
        ),
        tool("write_file", json!({ "path": "NOTES.md", "content": "hi\n" })),
        // A shell command is not a file tool, so only the final diff check can catch this one.
        tool("run_command", json!({ "command": "echo '# sneaky' >> .github/workflows/ci.yml" })),
        finish("Changed CI."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());

    harness
        .post_job(&coding_job("workflow", &repo, &model))
        .await;
    let view = harness.wait_for_end("workflow").await;

    let refused = &model.requests()[1].tool_results()[0];
    assert!(
        refused.contains(".github/workflows/ are not allowed"),
        "{refused}"
    );
    assert_eq!(view.state, JobState::Failed);
    assert_eq!(view.phase, JobPhase::Committing);
    let failure = view.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(
        failure.detail.contains(".github/workflows/ci.yml"),
        "{}",
        failure.detail
    );
    assert_eq!(repo.branches(), ["main"], "nothing was pushed");
}

#[tokio::test]
async fn tokens_never_reach_the_agent_environment_the_transcript_or_the_logs() {
    let repo = TestRepo::create();
    let github = FakeGithub::start().await;
    let model = ScriptedModel::start(vec![
        tool(
            "run_command",
            json!({ "command": "env; cat .git/config; git config --list --show-origin" }),
        ),
        tool(
            "run_command",
            json!({ "command": "ls -la ~ ${TMPDIR}; cat ../../../jobs/*.json" }),
        ),
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        finish("Done."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("secrets", &repo, &model);
    job["forge"] = json!({ "kind": "github", "apiBaseUrl": github.base_url, "owner": "acme",
                           "repo": "demo", "token": FORGE_TOKEN });

    harness.post_job(&job).await;
    let view = harness.wait_for_end("secrets").await;
    assert_eq!(view.state, JobState::Done, "{view:#?}");

    let requests = model.requests();
    let environment = &requests[1].tool_results()[0];
    assert!(
        environment.contains("PATH="),
        "the command really ran env: {environment}"
    );
    assert!(environment.contains("HOME="), "{environment}");
    let transcript = harness.transcript("secrets").await.to_string();
    let state_files: String = std::fs::read_dir(repo.state_dir().join("jobs"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let everything_the_agent_saw: String = requests
        .iter()
        .flat_map(|request| request.tool_results())
        .collect();
    for secret in [LLM_TOKEN, FORGE_TOKEN, SHARED_SECRET] {
        assert!(
            !everything_the_agent_saw.contains(secret),
            "{secret} reached the agent"
        );
        assert!(
            !transcript.contains(secret),
            "{secret} is in the transcript"
        );
        assert!(!harness.log().contains(secret), "{secret} is in the log");
        assert!(
            !state_files.contains(secret),
            "{secret} is in the state dir"
        );
        assert!(!view_contains(&harness, "secrets", secret).await);
    }
    assert!(!environment.contains("HARNESS_"), "{environment}");
}

async fn view_contains(harness: &Harness, id: &str, text: &str) -> bool {
    let (_, body) = harness
        .request(reqwest::Method::GET, &format!("/jobs/{id}"), None)
        .await;
    body.to_string().contains(text)
}

#[tokio::test]
async fn a_restarted_harness_reports_the_job_it_lost_as_harness_shutdown() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![Reply::Hang]).await;
    let mut harness = Harness::start(&repo.state_dir(), &repo.log_path());
    harness.post_job(&coding_job("lost", &repo, &model)).await;
    model.wait_for_requests(1).await;
    let before = harness
        .wait_for("lost", |view| view.phase == JobPhase::Agent)
        .await;

    harness.kill_abruptly();
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let view = harness.job("lost").await;

    assert_eq!(view.state, JobState::Failed);
    assert_eq!(view.failure.unwrap().kind, FailureKind::HarnessShutdown);
    assert_eq!(view.started_at_ms, before.started_at_ms);
    // A replayed dispatch attaches to the record instead of starting over.
    let (status, again) = harness.post_job(&coding_job("lost", &repo, &model)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["failure"]["kind"], "harness_shutdown");
}

#[tokio::test]
async fn a_repeated_post_attaches_to_the_running_job_and_jobs_run_side_by_side() {
    let repo = TestRepo::create();
    let hanging = ScriptedModel::start(vec![Reply::Hang]).await;
    let working = ScriptedModel::start(vec![
        tool(
            "write_file",
            json!({ "path": "NOTES.md", "content": "hi\n" }),
        ),
        finish("Done."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());

    let (_, first) = harness.post_job(&coding_job("slow", &repo, &hanging)).await;
    let (status, second) = harness.post_job(&coding_job("slow", &repo, &hanging)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first["startedAtMs"], second["startedAtMs"]);
    harness.post_job(&coding_job("fast", &repo, &working)).await;

    assert_eq!(harness.wait_for_end("fast").await.state, JobState::Done);
    assert_eq!(
        hanging.wait_for_requests(1).await.len(),
        1,
        "the repeat did not start a second run"
    );
    assert_eq!(harness.job("slow").await.state, JobState::Running);
}

#[tokio::test]
async fn an_explore_job_over_the_anthropic_protocol_answers_without_pushing() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool("search_text", json!({ "pattern": "hello" })),
        Reply::Text("Let me think."),
        finish("The greeting lives in src/greeting.txt."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("explore", &repo, &model);
    job["mode"] = json!("explore");
    job["llm"]["protocol"] = json!("anthropic");
    job.as_object_mut().unwrap().remove("pullRequest");

    harness.post_job(&job).await;
    let view = harness.wait_for_end("explore").await;

    assert_eq!(view.state, JobState::Done, "{view:#?}");
    let result = view.result.unwrap();
    assert_eq!(
        result.summary.as_deref(),
        Some("The greeting lives in src/greeting.txt.")
    );
    assert!(result.branch.is_none() && result.pull_request.is_none());
    assert_eq!(repo.branches(), ["main"]);
    let requests = model.requests();
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].api_key.as_deref(), Some(LLM_TOKEN));
    let tools: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert!(
        !tools.contains(&"write_file") && !tools.contains(&"edit_file"),
        "{tools:?}"
    );
    assert!(requests[1].tool_results()[0].contains("src/greeting.txt:1: hello"));
    let transcript = harness.transcript("explore").await;
    let kinds: Vec<&str> = transcript["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "model_reply",
            "tool_result",
            "model_reply",
            "harness_note",
            "model_reply",
            "tool_result"
        ]
    );
}
