//! Every job ends with the outcome that says what really happened, through the real binary with the
//! scripted model: a model that gives up after red validation, a task that only a guard-rail breach
//! could do, a model that repeats itself, a structured answer that does not fit; real toolchains run
//! inside the scrubbed environment; a job is reported ended only once its work folder is gone.

mod support;

use std::path::Path;

use domain::job::{FailureKind, GuardRailRule, JobState};
use serde_json::{Value, json};
use support::*;

fn notes(content: &str) -> Reply {
    tool(
        "write_file",
        json!({ "path": "NOTES.md", "content": content }),
    )
}

fn refused_workflow_edit() -> Reply {
    tool(
        "edit_file",
        json!({ "path": ".github/workflows/ci.yml", "old_text": "on: push", "new_text": "on: [push, pull_request]" }),
    )
}

#[tokio::test]
async fn a_prose_answer_after_red_validation_ends_validation_failed_with_the_report() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        notes("draft\n"),
        finish("Wrote the notes."),
        Reply::Text("I can't fix this."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("prose", &repo, &model);
    job["validation"] = json!({ "commands": ["grep -q hi NOTES.md || { echo 'NOTES.md must say hi'; exit 1; }"],
                                "maxRepairRounds": 2 });

    harness.post_job(&job).await;
    let view = harness.wait_for_end("prose").await;

    assert_eq!(view.state, JobState::Failed);
    let failure = view.failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::ValidationFailed, "{failure:?}");
    assert!(!failure.kind.is_transient());
    assert!(
        failure.detail.contains("changed nothing"),
        "{}",
        failure.detail
    );
    assert!(
        failure.detail.contains("I can't fix this."),
        "{}",
        failure.detail
    );
    assert!(
        failure.detail.contains("NOTES.md must say hi"),
        "{}",
        failure.detail
    );
    let report = view.validation.unwrap();
    assert_eq!(report.rounds.len(), 1, "the same checks are not re-run");
    assert!(report.rounds[0].commands[0].output.contains("must say hi"));
    assert_eq!(
        model.requests().len(),
        3,
        "no nudges, no waiting for a stall"
    );
    assert_eq!(repo.branches(), ["main"]);
}

#[tokio::test]
async fn finishing_a_repair_round_without_a_change_is_validation_failed_too() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        notes("draft\n"),
        finish("Wrote the notes."),
        tool("read_file", json!({ "path": "NOTES.md" })),
        finish("Looks right to me."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("no-repair", &repo, &model);
    job["validation"] = json!({ "commands": ["grep -q hi NOTES.md"], "maxRepairRounds": 3 });

    harness.post_job(&job).await;
    let failure = harness.wait_for_end("no-repair").await.failure.unwrap();

    assert_eq!(failure.kind, FailureKind::ValidationFailed);
    assert!(
        failure.detail.contains("called finish"),
        "{}",
        failure.detail
    );
}

#[tokio::test]
async fn a_task_that_needs_a_workflow_change_ends_rejected_naming_the_rule_and_the_path() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        refused_workflow_edit(),
        finish("I cannot make this change: CI files are off limits."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("ci-only", &repo, &model);
    job["userPrompt"] = json!("Make CI also run on pull requests.");

    harness.post_job(&job).await;
    let view = harness.wait_for_end("ci-only").await;

    let failure = view.failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::Rejected, "{failure:?}");
    assert!(!failure.kind.is_transient());
    assert!(
        failure.detail.contains("workflow_files"),
        "{}",
        failure.detail
    );
    assert!(
        failure.detail.contains(".github/workflows/ci.yml"),
        "{}",
        failure.detail
    );
    assert!(failure.detail.contains("no_changes"), "{}", failure.detail);
    assert_eq!(view.guard_rail_refusals.len(), 1);
    assert_eq!(
        view.guard_rail_refusals[0].rule,
        GuardRailRule::WorkflowFiles
    );
    assert_eq!(view.guard_rail_refusals[0].path, ".github/workflows/ci.yml");
    assert_eq!(view.guard_rail_refusals[0].step, 1);
    let transcript = harness.transcript("ci-only").await;
    let notes: Vec<String> = entries(&transcript)
        .iter()
        .filter(|entry| entry["type"] == "harness_note")
        .map(|entry| entry["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        notes.iter().any(
            |note| note.contains("workflow_files") && note.contains(".github/workflows/ci.yml")
        ),
        "{notes:?}"
    );
    assert_eq!(repo.branches(), ["main"]);
}

#[tokio::test]
async fn a_refused_workflow_change_explains_red_validation_that_follows() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        refused_workflow_edit(),
        notes("hi\n"),
        finish("Did what I could."),
        Reply::Text("The rest needs a CI change I am not allowed to make."),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("ci-red", &repo, &model);
    job["validation"] = json!({ "commands": ["echo 'ci check: workflow unchanged'; exit 1"] });

    harness.post_job(&job).await;
    let failure = harness.wait_for_end("ci-red").await.failure.unwrap();

    assert_eq!(failure.kind, FailureKind::Rejected, "{failure:?}");
    assert!(failure.detail.contains(".github/workflows/ci.yml"));
    assert!(
        failure.detail.contains("validation_failed"),
        "{}",
        failure.detail
    );
}

#[tokio::test]
async fn the_same_successful_call_repeated_ends_the_job_as_stalled_within_n_steps() {
    let repo = TestRepo::create();
    let listing = || tool("list_directory", json!({ "path": "." }));
    let model = ScriptedModel::start((0..10).map(|_| listing()).collect()).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job("circles", &repo, &model);
    job["limits"]["maxRepeatedCalls"] = json!(3);

    harness.post_job(&job).await;
    let view = harness.wait_for_end("circles").await;

    let failure = view.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Stalled, "{failure:?}");
    assert!(failure.detail.contains("same result"), "{}", failure.detail);
    assert!(
        failure.detail.contains("list_directory"),
        "{}",
        failure.detail
    );
    assert_eq!(view.progress.agent_steps, 3);
    assert_eq!(model.requests().len(), 3);
}

#[tokio::test]
async fn an_explore_job_returns_a_structured_answer_after_one_invalid_try() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![
        tool("read_file", json!({ "path": "README.md" })),
        tool(
            "finish",
            json!({ "summary": "Reviewed.", "output": { "rating": 9, "comments": [] } }),
        ),
        tool(
            "finish",
            json!({ "summary": "Reviewed.", "output": { "rating": 4, "comments": [
                { "severity": "info", "path": "README.md", "text": "Say what the service does." } ] } }),
        ),
    ])
    .await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job("review", &repo, &model);
    job["outputSchema"] = review_schema();

    harness.post_job(&job).await;
    let view = harness.wait_for_end("review").await;

    assert_eq!(view.state, JobState::Done, "{view:#?}");
    let output = view.result.unwrap().output.unwrap();
    assert_eq!(output["rating"], 4);
    assert_eq!(output["comments"][0]["path"], "README.md");
    // The invalid answer went back with the error, and the finish tool asked for the shape.
    let second = &model.requests()[2];
    let feedback = second.tool_results().join("\n");
    assert!(feedback.contains("/output/rating"), "{feedback}");
    assert!(feedback.contains("maximum 5"), "{feedback}");
    let finish_tool = second.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["function"]["name"] == "finish")
        .unwrap()
        .clone();
    assert_eq!(
        finish_tool["function"]["parameters"]["properties"]["output"],
        review_schema()
    );
}

#[tokio::test]
async fn an_answer_that_never_fits_the_schema_ends_invalid_answer() {
    let repo = TestRepo::create();
    let wrong = || {
        tool(
            "finish",
            json!({ "summary": "Fine.", "output": "looks good" }),
        )
    };
    let model = ScriptedModel::start(vec![wrong(), wrong(), wrong(), wrong()]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job("never-fits", &repo, &model);
    job["outputSchema"] = review_schema();
    job["limits"]["maxInvalidAnswers"] = json!(1);

    harness.post_job(&job).await;
    let failure = harness.wait_for_end("never-fits").await.failure.unwrap();

    assert_eq!(failure.kind, FailureKind::InvalidAnswer, "{failure:?}");
    assert!(
        failure.detail.contains("expected object"),
        "{}",
        failure.detail
    );
    assert_eq!(model.requests().len(), 2);
}

fn review_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "rating": { "type": "integer", "minimum": 1, "maximum": 5 },
            "comments": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "severity": { "enum": ["info", "warning", "blocker"] },
                    "path": { "type": "string" },
                    "text": { "type": "string" }
                },
                "required": ["severity", "text"]
            }}
        },
        "required": ["rating", "comments"]
    })
}

/// Runs a coding job whose validation is `commands` in a repository seeded with `files`, and
/// returns its view.
async fn validated_job(
    id: &str,
    files: &[(&str, &str)],
    commands: &[&str],
) -> domain::job::JobView {
    validated_job_on(Harness::start, id, files, commands).await
}

/// [`validated_job`] on a harness started by `start` (e.g. with job users).
async fn validated_job_on(
    start: fn(&std::path::Path, &std::path::Path) -> Harness,
    id: &str,
    files: &[(&str, &str)],
    commands: &[&str],
) -> domain::job::JobView {
    let repo = TestRepo::create_with(files);
    let model = ScriptedModel::start(vec![notes("hi\n"), finish("Added notes.")]).await;
    let harness = start(&repo.state_dir(), &repo.log_path());
    let mut job = coding_job(id, &repo, &model);
    job["validation"] = json!({ "commands": commands, "maxRepairRounds": 0 });
    job["limits"]["commandTimeoutSeconds"] = json!(300);
    job["limits"]["maxWallSeconds"] = json!(600);
    harness.post_job(&job).await;
    let view = harness.wait_for_end(id).await;
    assert_eq!(
        view.state,
        JobState::Done,
        "{:#?}\n{}",
        view.validation,
        harness.log()
    );
    view
}

#[tokio::test]
async fn cargo_through_the_rustup_shim_validates_in_the_scrubbed_environment() {
    validated_job(
        "rust",
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
            ),
            (
                "src/lib.rs",
                "pub fn add(a: u32, b: u32) -> u32 { a + b }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() { assert_eq!(super::add(2, 2), 4); }\n}\n",
            ),
            (".gitignore", "target/\n"),
        ],
        // CARGO_TARGET_DIR stays in the checkout (ignored): nothing outside the job is written.
        &["cargo --version && cargo test --offline --quiet"],
    )
    .await;
}

#[tokio::test]
async fn node_test_and_python_unittest_validate_in_the_scrubbed_environment() {
    validated_job(
        "node-python",
        &[
            (
                "test/add.test.js",
                "const test = require('node:test');\nconst assert = require('node:assert');\ntest('adds', () => assert.strictEqual(1 + 1, 2));\n",
            ),
            (
                "tests/test_add.py",
                "import unittest\n\nclass AddTest(unittest.TestCase):\n    def test_adds(self):\n        self.assertEqual(1 + 1, 2)\n",
            ),
        ],
        &["node --test", "python3 -m unittest discover -s tests -v"],
    )
    .await;
}

#[tokio::test]
async fn go_test_validates_in_the_scrubbed_environment_when_go_is_installed() {
    let go_installed = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !go_installed {
        eprintln!("go is not installed on this machine; the go test case is skipped");
        return;
    }
    validated_job(
        "go",
        &[
            ("go.mod", "module example.com/demo\n\ngo 1.19\n"),
            ("add.go", "package demo\n\nfunc Add(a, b int) int { return a + b }\n"),
            (
                "add_test.go",
                "package demo\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 2) != 4 {\n\t\tt.Fatal(\"bad\")\n\t}\n}\n",
            ),
        ],
        &["go test ./..."],
    )
    .await;
}

#[tokio::test]
async fn commands_run_under_bash_with_a_writable_home_and_job_caches() {
    let view = validated_job(
        "bash",
        &[],
        &[
            // [[ ]] and pipefail are bash: they fail under a plain POSIX sh.
            "set -o pipefail; [[ -n \"$BASH_VERSION\" ]] && echo \"bash $BASH_VERSION\"",
            "touch \"$HOME/.probe\" && mkdir -p \"$XDG_CACHE_HOME\" \"$CARGO_HOME\" && \
             touch \"$XDG_CACHE_HOME/probe\" && echo \"home=$HOME cargo=$CARGO_HOME\"",
            "test -f \"$XDG_CACHE_HOME/probe\" && test -f \"$HOME/.probe\"",
        ],
    )
    .await;
    let round = &view.validation.unwrap().rounds[0];
    let caches = &round.commands[1].output;
    assert!(caches.contains("/work/bash/agent/home"), "{caches}");
    assert!(caches.contains("/work/bash/agent/cache/cargo"), "{caches}");
}

#[tokio::test]
async fn as_a_job_user_commands_get_a_home_and_caches_of_their_own() {
    // Job users need root (ADR 4); the attacker suite covers the rest of that mode.
    if !running_as_root() {
        eprintln!("skipped: job users need root");
        return;
    }
    let view = validated_job_on(
        Harness::start_isolated,
        "job-user-caches",
        &[],
        &[
            "test \"$(id -u)\" != 0 && touch \"$HOME/.probe\" && mkdir -p \"$CARGO_HOME\" \
             \"$XDG_CACHE_HOME\" \"$GOCACHE\" && touch \"$CARGO_HOME/probe\" \"$XDG_CACHE_HOME/probe\" \
             && echo \"uid=$(id -u) home=$HOME cargo=$CARGO_HOME\" && stat -c '%u %a' \"$CARGO_HOME/..\"",
        ],
    )
    .await;
    let round = &view.validation.unwrap().rounds[0];
    let output = &round.commands[0].output;
    assert!(
        output.contains("/work/job-user-caches/agent/home"),
        "{output}"
    );
    assert!(
        output.contains("/work/job-user-caches/agent/cache/cargo"),
        "{output}"
    );
    // The cache folder belongs to the job's user (the uid the command ran as) and nobody else.
    let uid = output
        .split("uid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert!(output.contains(&format!("\n{uid} 700")), "{output}");
}

fn work_dir(state_dir: &Path, id: &str) -> std::path::PathBuf {
    state_dir.join("work").join(id)
}

#[tokio::test]
async fn a_job_is_reported_ended_only_after_its_work_folder_is_gone() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![notes("hi\n"), finish("Added notes.")]).await;
    let mut harness = Harness::start(&repo.state_dir(), &repo.log_path());

    harness.post_job(&coding_job("tidy", &repo, &model)).await;
    let view = harness.wait_for_end("tidy").await;
    // Stop the harness the moment it reports the end: nothing may be left behind.
    harness.kill_abruptly();

    assert_eq!(view.state, JobState::Done, "{view:#?}");
    assert!(!view.cleanup_pending);
    assert!(!work_dir(&repo.state_dir(), "tidy").exists());
}

#[tokio::test]
async fn logs_have_no_colour_codes_off_a_terminal_and_can_be_json() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![notes("hi\n"), finish("Added notes.")]).await;
    let harness = Harness::start_with(
        &repo.state_dir(),
        &repo.log_path(),
        &[
            ("HARNESS_SHARED_SECRET", SHARED_SECRET),
            ("HARNESS_LOG_FORMAT", "json"),
        ],
    );
    harness
        .post_job(&coding_job("json-logs", &repo, &model))
        .await;
    harness.wait_for_end("json-logs").await;

    let log = harness.log();
    assert!(!log.contains('\u{1b}'), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "job ended" && line["job"] == "json-logs"),
        "{log}"
    );

    let text_repo = TestRepo::create();
    let text_harness = Harness::start(&text_repo.state_dir(), &text_repo.log_path());
    drop(text_harness);
    let text_log = std::fs::read_to_string(text_repo.log_path()).unwrap();
    assert!(text_log.contains("state directory ready"), "{text_log}");
    assert!(!text_log.contains('\u{1b}'), "{text_log}");
}

#[tokio::test]
async fn a_credential_looking_toolchain_variable_keeps_the_harness_from_starting() {
    let repo = TestRepo::create();
    std::fs::create_dir_all(repo.state_dir()).unwrap();
    let output = std::process::Command::new(harness_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(repo.state_dir())
        .args(["--toolchain-env", "RUSTUP_HOME,GITHUB_TOKEN"])
        // With the secret set, so the toolchain allowlist is what keeps it from starting.
        .env("HARNESS_SHARED_SECRET", SHARED_SECRET)
        .env_remove("HARNESS_JOB_USERS")
        .env_remove("HARNESS_TOOLCHAIN_ENV")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("GITHUB_TOKEN") && stderr.contains("credential"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_output_schema_outside_the_subset_is_refused_at_post_naming_the_field() {
    let repo = TestRepo::create();
    let model = ScriptedModel::start(vec![]).await;
    let harness = Harness::start(&repo.state_dir(), &repo.log_path());
    let mut job = explore_job("bad-schema", &repo, &model);
    job["outputSchema"] = json!({ "type": "object",
        "properties": { "rating": { "type": "integer", "pattern": "^[1-5]$" } } });

    let (status, body) = harness.post_job(&job).await;

    assert_eq!(status.as_u16(), 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    // The platform's one shape for field problems: details.problems[{field, problem}].
    let fields = body["error"]["details"]["problems"].as_array().unwrap();
    assert_eq!(fields[0]["field"], "outputSchema.properties.rating.pattern");
    assert!(
        fields[0]["problem"]
            .as_str()
            .unwrap()
            .contains("not supported"),
        "{body}"
    );
    assert!(model.requests().is_empty());
}
