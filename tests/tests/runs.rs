//! Runs end to end under `wrangler dev`: the worker, its RunCoordinator Durable Objects, a real
//! `cat-harness serve` (local-forge mode) behind a front door that can answer 503, and a forge root
//! of bare repositories linked from the board as `local:<name>`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cat_tests::api::{Client, RawBody, unique_login};
use cat_tests::runner::{ForgeRoot, HarnessProcess, RUNNER_SECRET, RunnerDoor};
use cat_tests::scripted_model::{RecordedModelRequest, Reply, ScriptedModel};
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::{Value, json};

/// The engine's delays, shortened so retries and polls happen within a test (production waits
/// seconds to minutes).
const FAST_ENGINE: &str = r#"{"pollIntervalMs":300,"inlineCallTimeoutMs":5000,"retryBaseDelayMs":200,
"retryMaxDelayMs":1000,"maxTransientRetries":2,"maxRunnerFailures":3,"maxVanishedRedispatches":1,
"maxHeartbeatSilenceMs":600000}"#;

/// The door is shared: the test that makes it fail runs alone (write), the others together (read).
static DOOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

struct Setup {
    /// The model behind the gateway: the coder writes a file and finishes, the reviewer passes
    /// (or, for a task titled "Ask …", first asks a person which colour to use).
    model: ScriptedModel,
    server: WorkerServer,
    door: RunnerDoor,
    /// Behind a lock: the crash test kills and restarts it (holding the door's write lock).
    harness: std::sync::Mutex<HarnessProcess>,
    forge: ForgeRoot,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // Everything starts on a thread of its own that never ends: the children are tied to the
        // thread that started them (they die with it), and the door needs a runtime that outlives
        // every test's.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let forge = ForgeRoot::create();
            forge.add_repository(DEMO_REPOSITORY, &[("src/lib.txt", "one\n")]);
            let harness = HarnessProcess::start();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let door = runtime.block_on(RunnerDoor::start(&harness.base_url));
            let model = runtime.block_on(ScriptedModel::start_with(scripted_agent));
            let port = cat_tests::free_port();
            let mut options = ServerOptions {
                port: Some(port),
                ..ServerOptions::default()
            };
            options.vars.retain(|(name, _)| name != "LOCAL_FORGE_ROOT");
            options.vars.extend(
                [
                    ("LOCAL_FORGE_ROOT", forge.path().to_str().unwrap()),
                    ("RUNNER_URL", door.base_url.as_str()),
                    ("RUNNER_SHARED_SECRET", RUNNER_SECRET),
                    ("PUBLIC_ORIGIN", &format!("http://127.0.0.1:{port}")),
                    ("RUN_ENGINE_SETTINGS", &FAST_ENGINE.replace('\n', "")),
                    ("GATEWAY_OPENAI_BASE_URL", &model.base_url),
                    ("GATEWAY_OPENAI_API_KEY", "sk-test-runs-provider-key"),
                ]
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
            );
            let server = WorkerServer::start_with(options);
            cat_tests::process::remove_at_exit(server.persist_dir.clone());
            sender
                .send(Setup {
                    model,
                    server,
                    door,
                    harness: std::sync::Mutex::new(harness),
                    forge,
                })
                .unwrap();
            runtime.block_on(std::future::pending::<()>());
        });
        receiver.recv().expect("the runs fixture starts")
    })
}

const DEMO_REPOSITORY: &str = "demo";

/// The decision the reviewer of an "Ask …" task asks, and the option a person picks.
const QUESTION: &str = "Which colour should the button be?";
const CHOSEN: &str = "blue-choice";

fn text_of(request: &RecordedModelRequest) -> String {
    request.body["messages"].to_string()
}

fn tool_names(request: &RecordedModelRequest) -> Vec<String> {
    request.body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool["function"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What the reviewer of a task titled "Rework …" says the first time: below the threshold, so the
/// coder must run again with it.
const REVIEW_BLOCKER: &str = "REVIEW-BLOCKER: the greeting must also be logged";
/// What a coder that was given feedback (a review's or an approver's) says it did; the reviewer
/// passes a change whose summary says so.
const ADDRESSED: &str = "ADDRESSED-FEEDBACK";
/// The architect's design, stored as the step's output.
const DESIGN: &str = "DESIGN: change lib.txt in one place.";

/// While set, the coder of a task titled "Crash …" never gets an answer from the model, so its job
/// is mid-flight whenever the runner is killed.
static CODER_HANGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The task's title (from `# Task: <title>` in the prompt) as a file name: every task's coder
/// writes a file of its own, so runs of different tasks never conflict on merge.
fn task_slug(conversation: &str) -> String {
    let title = conversation
        .split("# Task: ")
        .nth(1)
        .unwrap_or("untitled")
        .split(['\\', '"'])
        .next()
        .unwrap_or("untitled");
    title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The agent kind a request is for, from the system prompt every step carries (`You are the …`).
fn agent_kind(conversation: &str) -> &'static str {
    ["estimator", "architect", "coder", "reviewer", "tester"]
        .into_iter()
        .find(|kind| conversation.contains(&format!("You are the {kind}.")))
        .unwrap_or("unknown")
}

/// The scripted agents, one per kind:
/// - the estimator (inline, one model call) rates the task;
/// - the architect answers with [`DESIGN`];
/// - the coder changes `src/lib.txt` (differently when it was given feedback, so every round
///   commits something) and finishes, saying [`ADDRESSED`] when its prompt carried feedback;
/// - the reviewer rates the change 0.9 — after asking a person first on a task titled "Ask …", and
///   0.4 with [`REVIEW_BLOCKER`] on a task titled "Rework …" until the coder addressed it;
/// - the tester reports every test green.
fn scripted_agent(request: &RecordedModelRequest) -> Reply {
    let finish = |arguments: Value| Reply::Owned {
        text: None,
        calls: vec![("finish".to_owned(), arguments)],
    };
    let tool_results = request.body["messages"]
        .as_array()
        .map(|messages| messages.iter().filter(|m| m["role"] == "tool").count())
        .unwrap_or(0);
    let conversation = text_of(request);
    match agent_kind(&conversation) {
        "estimator" => {
            return Reply::Owned {
                text: Some(
                    json!({
                        "complexity": { "score": 2, "reason": "one file" },
                        "risk": { "score": 1, "reason": "a text file" },
                        "impact": { "score": 3, "reason": "everyone reads it" },
                    })
                    .to_string(),
                ),
                calls: Vec::new(),
            };
        }
        "architect" => return finish(json!({ "summary": DESIGN })),
        "tester" => {
            return finish(json!({
                "summary": "All green.",
                "output": { "passed": true, "commands": ["cat src/lib.txt"], "testsRun": 1,
                    "testsFailed": 0, "failures": [], "summary": "1 test, all green" }
            }));
        }
        _ => {}
    }
    if conversation.contains("# Task: Crash")
        && CODER_HANGS.load(std::sync::atomic::Ordering::SeqCst)
        && tool_names(request).iter().any(|name| name == "write_file")
    {
        // The job stays in the agent phase, waiting on the model, until the test kills the runner.
        return Reply::Hang;
    }
    let given_feedback = conversation.contains("Review to address")
        || conversation.contains("Feedback from the approver");
    if tool_names(request).iter().any(|name| name == "write_file") {
        if tool_results == 0 {
            // Each round writes something new: a rework that changed nothing would fail with
            // `no_changes`.
            let content = if conversation.contains("Feedback from the approver") {
                "four\n"
            } else if given_feedback {
                "three\n"
            } else {
                "two\n"
            };
            return Reply::Owned {
                text: None,
                calls: vec![(
                    "write_file".to_owned(),
                    json!({ "path": format!("src/{}.txt", task_slug(&conversation)), "content": content }),
                )],
            };
        }
        let summary = if given_feedback {
            format!("{ADDRESSED}: lib.txt changed again.")
        } else {
            "lib.txt now says two.".to_owned()
        };
        return finish(json!({ "summary": summary }));
    }
    if conversation.contains("Ask about") && !conversation.contains(CHOSEN) {
        return finish(json!({
            "summary": "I need a person to pick.",
            "output": { "decision": { "question": QUESTION, "options": [CHOSEN, "red-choice"] } }
        }));
    }
    if conversation.contains("# Task: Rework") && !conversation.contains(ADDRESSED) {
        return finish(json!({
            "summary": "Not yet.",
            "output": { "rating": 0.4, "comments": [
                { "severity": "blocker", "path": "src/lib.txt", "text": REVIEW_BLOCKER }] }
        }));
    }
    finish(json!({
        "summary": "Looks right.",
        "output": { "rating": 0.9, "comments": [{ "severity": "minor", "text": "fine" }] }
    }))
}

/// A member's workspace with a service linking `local:demo`, a module and `tasks` tasks in it.
struct Board {
    client: Client,
    workspace: String,
    tasks: Vec<String>,
    /// The bare repository under the forge root the board's service links (`local:<repository>`).
    /// One for every test: a runner without job users runs one repository's jobs at a time, and
    /// each task's coder writes a file of its own, so the tests' branches merge cleanly.
    repository: String,
}

async fn board(tasks: usize) -> Board {
    // Titles are unique across the binary: each names the file its coder writes.
    static BOARDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let board = BOARDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    board_titled(
        &(0..tasks)
            .map(|index| format!("Task {index} of board {board}"))
            .collect::<Vec<_>>(),
    )
    .await
}

async fn board_titled(titles: &[String]) -> Board {
    let setup = setup();
    let client = Client::sign_in(&setup.server, &unique_login("runner")).await;
    // The scripted model, priced for the member's own account (the gateway meters every call).
    let me = client.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    client
        .send(
            reqwest::Method::PUT,
            &format!("/accounts/{account}/models/scripted"),
            Some(RawBody::Json(json!({ "provider": "openai_compatible",
                "inputUsdPerMillion": "1", "outputUsdPerMillion": "1", "maxOutputTokens": 500 }))),
        )
        .await
        .expect(200);
    let workspace = client
        .post("/workspaces", json!({ "name": "runs" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let frame = client
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "frame", "title": "Demo service", "repoUrl": format!("local:{DEMO_REPOSITORY}") }),
        )
        .await
        .id();
    let module = client
        .create_block(&workspace, "module", Some(&frame), "Core")
        .await;
    let mut ids = Vec::new();
    for title in titles {
        ids.push(
            client
                .create_block(&workspace, "task", Some(&module), title)
                .await,
        );
    }
    Board {
        client,
        workspace,
        tasks: ids,
        repository: DEMO_REPOSITORY.to_owned(),
    }
}

impl Board {
    fn path(&self, rest: &str) -> String {
        format!("/workspaces/{}{rest}", self.workspace)
    }

    /// Makes `from` depend on `to` (an edge of the board).
    async fn depends_on(&self, from: &str, to: &str) {
        self.client
            .post(&self.path("/edges"), json!({ "from": from, "to": to }))
            .await
            .expect(201);
    }

    async fn run(&self, run_id: &str) -> Value {
        self.client
            .get(&self.path(&format!("/runs/{run_id}")))
            .await
            .expect(200)
    }

    /// Polls the run until `condition` holds (60 s at most), and returns it.
    async fn wait_for_run(
        &self,
        run_id: &str,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.run(run_id).await;
            if condition(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} never got to: {what}; it is {run:#}\nharness log:\n{}",
                harness_log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (60 s at most) until the block shows `status`. The run's own record moves first: the
    /// coordinator checkpoints the run, then performs the block write among its effects.
    async fn wait_for_block_status(&self, block: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.block_status(block).await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "block {block} never became {status}; it is {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn block_status(&self, block: &str) -> String {
        self.client
            .get(&self.path(&format!("/blocks/{block}")))
            .await
            .expect(200)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn harness_log_tail() -> String {
    setup()
        .harness
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .log_tail(20)
}

fn harness_url() -> String {
    setup()
        .harness
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .base_url
        .clone()
}

fn step(run: &Value, index: usize) -> &Value {
    &run["summary"]["steps"][index]
}

/// A job as the harness knows it (through its own API, not the door).
async fn harness_job(job_id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/jobs/{job_id}", harness_url()))
        .header("x-harness-secret", RUNNER_SECRET)
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    Some(response.json().await.unwrap())
}

/// Waits (60 s at most) until the runner has the job: a dispatch the runner turned away (it runs one
/// repository's jobs at a time without job users) is re-sent by the coordinator's alarm.
async fn job_on_runner(job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(job) = harness_job(job_id).await {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "the runner never got job {job_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_dispatches_its_first_step_to_the_runner_with_its_deterministic_job_id() {
    let _door = DOOR.read().await;
    let board = board(1).await;
    let task = &board.tasks[0];
    let created = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201);
    let run_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["pipelineId"], "quick");
    assert_eq!(created["modelId"], "scripted");
    // The first dispatch is sent before the 201 (re-sent by the alarm if the runner turned it away).
    let job_id = format!("{run_id}-0-1");
    let job = job_on_runner(&job_id).await;
    assert_eq!(job["id"], job_id.as_str());
    assert_eq!(board.block_status(task).await, "in_progress");

    let again = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick" }),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["error"]["details"]["runId"], run_id.as_str());

    let listed = board
        .client
        .get(&board.path(&format!("/runs?block={task}")))
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Cancel stops the job and gives the block its status back; the task can run again.
    let cancelled = board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(board.block_status(task).await, "planned");
    let twice = board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.body["error"]["details"]["reason"], "run_finished");
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness_job(&job_id).await.unwrap()["state"] == "running" {
        assert!(
            Instant::now() < deadline,
            "the runner never stopped the cancelled job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unreachable_runner_is_retried_then_fails_the_step_with_dispatch_and_retry_resumes_there()
 {
    // The door fails every request while this runs: no other run test may use it meanwhile.
    let _door = DOOR.write().await;
    let setup = setup();
    let board = board(1).await;
    let task = &board.tasks[0];
    setup.door.fail(true);
    let refused_before = setup.door.refused();
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = board
        .wait_for_run(&run_id, "failed with dispatch", |run| {
            run["status"] == "failed"
        })
        .await;
    setup.door.fail(false);
    assert_eq!(step(&failed, 0)["status"], "failed");
    assert_eq!(step(&failed, 0)["failure"]["kind"], "dispatch");
    assert!(
        setup.door.refused() - refused_before >= 3,
        "the runner was asked again before the step failed"
    );
    assert_eq!(harness_job(&format!("{run_id}-0-1")).await, None);

    let retried = board
        .client
        .post(&board.path(&format!("/runs/{run_id}/retry")), json!(null))
        .await
        .expect(200);
    assert_eq!(retried["status"], "running");
    let resumed = board
        .wait_for_run(&run_id, "the coder dispatched again", |run| {
            step(run, 0)["jobId"].as_str().is_some()
        })
        .await;
    let job_id = step(&resumed, 0)["jobId"].as_str().unwrap().to_owned();
    assert!(job_id.starts_with(&format!("{run_id}-0-")), "{job_id}");
    assert!(
        harness_job(&job_id).await.is_some(),
        "the retried step reached the runner"
    );
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_task_waits_for_its_dependencies_and_a_queued_run_starts_when_the_last_is_done() {
    let _door = DOOR.read().await;
    let board = board(3).await;
    let (task, first, second) = (&board.tasks[0], &board.tasks[1], &board.tasks[2]);
    for dependency in [first, second] {
        board.depends_on(task, dependency).await;
    }
    let refused = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick" }),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "dependencies_not_done");
    let mut not_done: Vec<&str> = refused.body["error"]["details"]["notDone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    not_done.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(not_done, expected);

    let queued = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "queue": true }),
        )
        .await
        .expect(201);
    let run_id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(queued["status"], "blocked");
    assert_eq!(queued["queuedOn"].as_array().unwrap().len(), 2);

    let mark_done = |block: String| {
        let board = &board;
        async move {
            let rev = board
                .client
                .get(&board.path(&format!("/blocks/{block}")))
                .await
                .expect(200)["rev"]
                .clone();
            board
                .client
                .patch(
                    &board.path(&format!("/blocks/{block}")),
                    json!({ "rev": rev, "status": "done" }),
                )
                .await
                .expect(200);
        }
    };
    mark_done(first.clone()).await;
    let still = board
        .wait_for_run(&run_id, "waiting on the second dependency only", |run| {
            run["queuedOn"] == json!([second])
        })
        .await;
    assert_eq!(still["status"], "blocked");
    assert_eq!(harness_job(&format!("{run_id}-0-1")).await, None);

    mark_done(second.clone()).await;
    board
        .wait_for_run(&run_id, "started once both were done", |run| {
            run["status"] == "running" && step(run, 0)["jobId"].as_str().is_some()
        })
        .await;
    job_on_runner(&format!("{run_id}-0-1")).await;
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

#[tokio::test]
async fn custom_pipelines_are_validated_naming_the_step_and_built_in_ones_are_fixed() {
    let board = board(0).await;
    let listed = board
        .client
        .get(&board.path("/pipelines"))
        .await
        .expect(200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|pipeline| pipeline["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["build", "quick"]);
    let bad = board
        .client
        .post(
            &board.path("/pipelines"),
            json!({ "name": "odd", "steps": [{ "kind": "reviewer", "companion": { "passThreshold": 0.5, "reworkBudget": 1 } }] }),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        bad.body["error"]["details"]["problems"][0]["field"],
        "steps[0].companion"
    );
    let empty = board
        .client
        .post(
            &board.path("/pipelines"),
            json!({ "name": "none", "steps": [] }),
        )
        .await;
    assert_eq!(empty.status, 422);
    let created = board
        .client
        .post(
            &board.path("/pipelines"),
            json!({ "name": "Design", "steps": [{ "kind": "architect", "approvalAfter": true }] }),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    let renamed = board
        .client
        .patch(
            &board.path(&format!("/pipelines/{id}")),
            json!({ "name": "Design v2", "steps": [{ "kind": "architect" }] }),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Design v2");
    let fixed = board.client.delete(&board.path("/pipelines/build")).await;
    assert_eq!(fixed.status, 422);
    board
        .client
        .delete(&board.path(&format!("/pipelines/{id}")))
        .await
        .expect(204);
    let _ = setup()
        .forge
        .branch_commit(&board.repository, "main")
        .expect("main exists");
}

#[tokio::test]
async fn a_quick_run_opens_a_pull_request_merge_finishes_it_and_starts_the_queued_dependent() {
    let _door = DOOR.read().await;
    let setup = setup();
    let board = board(2).await;
    let (task, dependent) = (&board.tasks[0], &board.tasks[1]);
    board.depends_on(dependent, task).await;
    let queued = board
        .client
        .post(
            &board.path(&format!("/blocks/{dependent}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted", "queue": true }),
        )
        .await
        .expect(201);
    let queued_id = queued["id"].as_str().unwrap().to_owned();
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // coder → pull request → reviewer passes → the PR waits for its merge.
    let ready = board
        .wait_for_run(&run_id, "a pull request ready to merge", |run| {
            run["status"] == "blocked" && run["summary"]["park"]["type"] == "merge"
        })
        .await;
    let pull_request = &ready["summary"]["pullRequest"];
    let branch = format!("cat/{task}");
    assert_eq!(pull_request["branch"], branch.as_str());
    assert_eq!(step(&ready, 0)["status"], "done");
    assert_eq!(step(&ready, 1)["status"], "done");
    assert_eq!(step(&ready, 1)["output"]["rating"], 0.9, "{ready:#}");
    board.wait_for_block_status(task, "pr_ready").await;
    assert!(
        setup
            .forge
            .branch_commit(&board.repository, &branch)
            .is_some()
    );
    let main_before = setup
        .forge
        .branch_commit(&board.repository, "main")
        .unwrap();

    // Every model call went through the gateway: the runner never saw the provider's key.
    assert!(
        setup
            .model
            .requests()
            .iter()
            .all(|request| request.authorization.as_deref()
                == Some("Bearer sk-test-runs-provider-key")),
        "the gateway calls the model with the deployment's key"
    );

    // The merge lands the branch on main, finishes the run and starts the queued dependent.
    let merged = board
        .client
        .post(&board.path(&format!("/blocks/{task}/merge")), json!(null))
        .await
        .expect(200);
    assert_eq!(merged["status"], "done", "{merged:#}");
    assert_eq!(board.block_status(task).await, "done");
    let main_after = setup
        .forge
        .branch_commit(&board.repository, "main")
        .unwrap();
    assert_ne!(main_before, main_after);
    let branch_commit = setup
        .forge
        .branch_commit(&board.repository, &branch)
        .unwrap();
    assert!(
        setup
            .forge
            .branch_contains(&board.repository, "main", &branch_commit),
        "main has the pull request's commit"
    );
    let started = board
        .wait_for_run(&queued_id, "the dependent's run started", |run| {
            run["status"] != "blocked" || step(run, 0)["jobId"].as_str().is_some()
        })
        .await;
    assert_ne!(started["status"], "blocked");
    let again = board
        .client
        .post(&board.path(&format!("/blocks/{task}/merge")), json!(null))
        .await;
    assert_eq!(again.status, 409, "nothing left to merge: {}", again.body);
    board
        .client
        .post(
            &board.path(&format!("/runs/{queued_id}/cancel")),
            json!(null),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn a_decision_parks_the_run_until_a_person_answers_and_the_answer_reaches_the_agent() {
    let _door = DOOR.read().await;
    let setup = setup();
    let board = board_titled(&["Ask about the colour".to_owned()]).await;
    let task = &board.tasks[0];
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let parked = board
        .wait_for_run(&run_id, "parked on the reviewer's question", |run| {
            run["summary"]["park"]["type"] == "decision"
        })
        .await;
    assert_eq!(parked["status"], "blocked");
    board.wait_for_block_status(task, "blocked").await;
    let decision = &parked["summary"]["park"];
    assert_eq!(decision["question"], QUESTION);
    let decision_id = decision["id"].as_str().unwrap().to_owned();

    let wrong = board
        .client
        .post(
            &board.path(&format!("/runs/{run_id}/decisions/{decision_id}")),
            json!({ "choice": "green" }),
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let stale = board
        .client
        .post(
            &board.path(&format!("/runs/{run_id}/decisions/dec-9-9")),
            json!({ "choice": CHOSEN }),
        )
        .await;
    assert_eq!(stale.status, 409);

    board
        .client
        .post(
            &board.path(&format!("/runs/{run_id}/decisions/{decision_id}")),
            json!({ "choice": CHOSEN }),
        )
        .await
        .expect(200);
    board
        .wait_for_run(&run_id, "the reviewer passed after the answer", |run| {
            run["summary"]["park"]["type"] == "merge"
        })
        .await;
    assert!(
        setup
            .model
            .requests()
            .iter()
            .any(|request| text_of(request).contains(CHOSEN)),
        "the person's answer reached the agent's prompt"
    );
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

/// Model requests made for `kind` whose conversation contains `text`.
fn requests_of(kind: &str, text: &str) -> usize {
    setup()
        .model
        .requests()
        .iter()
        .map(text_of)
        .filter(|conversation| agent_kind(conversation) == kind && conversation.contains(text))
        .count()
}

async fn answer_approval(board: &Board, run_id: &str, approval_id: &str, body: Value) -> Value {
    board
        .client
        .post(
            &board.path(&format!("/runs/{run_id}/approvals/{approval_id}")),
            body,
        )
        .await
        .expect(200)
}

#[tokio::test]
async fn a_build_run_goes_through_every_step_with_a_rework_round_and_an_approval_to_a_merge() {
    let _door = DOOR.read().await;
    let setup = setup();
    let board = board_titled(&[
        "Rework the greeting".to_owned(),
        "Announce the greeting".to_owned(),
    ])
    .await;
    let (task, dependent) = (&board.tasks[0], &board.tasks[1]);
    board.depends_on(dependent, task).await;
    let queued_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{dependent}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted", "queue": true }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "build", "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // estimator → architect → coder → PR → reviewer 0.4 → coder again → reviewer 0.9 → approval.
    let gated = board
        .wait_for_run(&run_id, "the approval after the review", |run| {
            run["summary"]["park"]["type"] == "approval"
        })
        .await;
    assert_eq!(gated["status"], "blocked");
    board.wait_for_block_status(task, "blocked").await;
    let estimate = &step(&gated, 0)["output"];
    assert_eq!(estimate["type"], "estimate", "{gated:#}");
    assert_eq!(estimate["complexity"]["score"], 2);
    assert_eq!(step(&gated, 0)["surface"], "inline");
    assert_eq!(step(&gated, 1)["output"]["text"], DESIGN);
    assert_eq!(step(&gated, 2)["status"], "done");
    assert_eq!(step(&gated, 2)["attempts"], 2, "the coder ran again");
    assert!(
        step(&gated, 2)["output"]["text"]
            .as_str()
            .unwrap()
            .starts_with(ADDRESSED)
    );
    assert_eq!(step(&gated, 3)["attempts"], 2, "the reviewer graded twice");
    assert_eq!(step(&gated, 3)["output"]["rating"], 0.9);
    assert_eq!(step(&gated, 4)["status"], "pending");
    // The second coder's prompt carried the review's comment and the architect's design.
    assert!(
        requests_of("coder", REVIEW_BLOCKER) > 0,
        "the review's feedback reached the coder's prompt"
    );
    assert!(
        requests_of("coder", DESIGN) > 0,
        "the design reached the coder"
    );
    let branch = format!("cat/{task}");
    assert_eq!(
        setup
            .forge
            .branch_commit(&board.repository, &branch)
            .map(|_| "pushed"),
        Some("pushed")
    );

    let approval = &gated["summary"]["park"];
    assert_eq!(approval["stepIndex"], 3);
    assert_eq!(approval["reason"], "gate");
    let approval_id = approval["id"].as_str().unwrap().to_owned();
    answer_approval(
        &board,
        &run_id,
        &approval_id,
        json!({ "verdict": "approve" }),
    )
    .await;

    // approval → tester → the PR waits for its merge.
    let ready = board
        .wait_for_run(&run_id, "a pull request ready to merge", |run| {
            run["summary"]["park"]["type"] == "merge"
        })
        .await;
    let report = &step(&ready, 4)["output"];
    assert_eq!(report["type"], "test_report", "{ready:#}");
    assert_eq!(report["passed"], true);
    board.wait_for_block_status(task, "pr_ready").await;
    assert_eq!(ready["summary"]["pullRequest"]["branch"], branch.as_str());

    let merged = board
        .client
        .post(&board.path(&format!("/blocks/{task}/merge")), json!(null))
        .await
        .expect(200);
    assert_eq!(merged["status"], "done", "{merged:#}");
    assert_eq!(board.block_status(task).await, "done");
    let branch_commit = setup
        .forge
        .branch_commit(&board.repository, &branch)
        .unwrap();
    assert!(
        setup
            .forge
            .branch_contains(&board.repository, "main", &branch_commit),
        "main has the pull request's commit"
    );
    let started = board
        .wait_for_run(&queued_id, "the dependent's run started", |run| {
            run["status"] != "blocked" || step(run, 0)["jobId"].as_str().is_some()
        })
        .await;
    assert_ne!(started["status"], "blocked");
    board
        .client
        .post(
            &board.path(&format!("/runs/{queued_id}/cancel")),
            json!(null),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn requesting_changes_at_an_approval_sends_the_coder_back_with_the_feedback() {
    let _door = DOOR.read().await;
    const FEEDBACK: &str = "APPROVER-FEEDBACK: also say hello in the readme";
    let board = board_titled(&["Polish the greeting".to_owned()]).await;
    let task = &board.tasks[0];
    let pipeline = board
        .client
        .post(
            &board.path("/pipelines"),
            json!({ "name": "Gated quick", "steps": [
                { "kind": "coder" },
                { "kind": "reviewer", "approvalAfter": true,
                  "companion": { "passThreshold": 0.7, "reworkBudget": 1 } }] }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": pipeline, "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = board
        .wait_for_run(&run_id, "the first approval", |run| {
            run["summary"]["park"]["type"] == "approval"
        })
        .await;
    let first_id = first["summary"]["park"]["id"].as_str().unwrap().to_owned();
    assert_eq!(step(&first, 0)["attempts"], 1);
    assert_eq!(requests_of("coder", FEEDBACK), 0);

    // Changes without feedback say nothing to the coder: refused, and the run stays parked.
    let empty = board
        .client
        .post(
            &board.path(&format!("/runs/{run_id}/approvals/{first_id}")),
            json!({ "verdict": "request_changes", "feedback": "  " }),
        )
        .await;
    assert_eq!(empty.status, 422, "{}", empty.body);
    assert_eq!(
        board.run(&run_id).await["summary"]["park"]["id"],
        first_id.as_str()
    );

    let sent_back = answer_approval(
        &board,
        &run_id,
        &first_id,
        json!({ "verdict": "request_changes", "feedback": FEEDBACK }),
    )
    .await;
    assert_eq!(sent_back["status"], "running");
    let second = board
        .wait_for_run(&run_id, "the approval after the rework", |run| {
            run["summary"]["park"]["type"] == "approval"
                && run["summary"]["park"]["id"] != first_id.as_str()
        })
        .await;
    assert_eq!(step(&second, 0)["attempts"], 2, "the coder ran again");
    assert!(
        step(&second, 0)["output"]["text"]
            .as_str()
            .unwrap()
            .starts_with(ADDRESSED),
        "{second:#}"
    );
    assert_eq!(
        step(&second, 1)["attempts"],
        2,
        "the reviewer graded the rework"
    );
    assert!(
        requests_of("coder", FEEDBACK) > 0,
        "the approver's feedback reached the coder's prompt"
    );
    let second_id = second["summary"]["park"]["id"].as_str().unwrap().to_owned();
    answer_approval(&board, &run_id, &second_id, json!({ "verdict": "approve" })).await;
    board
        .wait_for_run(&run_id, "a pull request ready to merge", |run| {
            run["summary"]["park"]["type"] == "merge"
        })
        .await;
    board.wait_for_block_status(task, "pr_ready").await;
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_budget_refusal_pauses_the_run_and_raising_the_limit_resumes_it() {
    let _door = DOOR.read().await;
    let board = board_titled(&["Spend on the greeting".to_owned()]).await;
    let task = &board.tasks[0];
    let me = board.client.get("/auth/me").await.expect(200);
    let account = me["accounts"][0]["id"].as_str().unwrap().to_owned();
    let set_limit = |limit: &'static str| {
        let board = &board;
        let account = account.clone();
        async move {
            board
                .client
                .send(
                    reqwest::Method::PUT,
                    &format!("/accounts/{account}/spend/limit"),
                    Some(RawBody::Json(json!({ "limitUsd": limit }))),
                )
                .await
                .expect(200);
        }
    };
    // Nothing may be spent: the coder's first model call is refused by the gateway with 402.
    set_limit("0").await;
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paused = board
        .wait_for_run(&run_id, "paused on its budget", |run| {
            run["status"] == "paused"
        })
        .await;
    assert_eq!(step(&paused, 0)["status"], "pending", "{paused:#}");
    assert_eq!(step(&paused, 0)["attempts"], 1);
    assert!(
        step(&paused, 0).get("failure").is_none(),
        "a budget refusal is not the step's failure: {paused:#}"
    );
    assert!(
        paused["summary"]["pausedReason"]
            .as_str()
            .is_some_and(|reason| reason.contains("402")),
        "{paused:#}"
    );
    board.wait_for_block_status(task, "blocked").await;
    // The harness ended the job with the failure kind that says so.
    let job = harness_job(&format!("{run_id}-0-1")).await.unwrap();
    assert_eq!(job["failure"]["kind"], "budget_exhausted", "{job:#}");

    // Raising the limit resumes the run from the same step, with a fresh attempt.
    set_limit("100").await;
    let ready = board
        .wait_for_run(&run_id, "resumed and ready to merge", |run| {
            run["summary"]["park"]["type"] == "merge"
        })
        .await;
    assert_eq!(step(&ready, 0)["attempts"], 2);
    assert_eq!(step(&ready, 1)["status"], "done");
    board.wait_for_block_status(task, "pr_ready").await;
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_runner_killed_mid_job_is_retried_then_fails_the_step_with_harness_shutdown_and_retry_resumes_there()
 {
    // Killing the runner disturbs every job on it: no other run test may use it meanwhile.
    let _door = DOOR.write().await;
    let setup = setup();
    let board = board_titled(&["Crash the runner".to_owned()]).await;
    let task = &board.tasks[0];
    CODER_HANGS.store(true, std::sync::atomic::Ordering::SeqCst);
    let run_id = board
        .client
        .post(
            &board.path(&format!("/blocks/{task}/runs")),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Every attempt dies with the runner: the first and its two retries (FAST_ENGINE allows 2).
    for attempt in 1..=3 {
        let job_id = format!("{run_id}-0-{attempt}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = job_on_runner(&job_id).await;
            if job["state"] == "running" && job["phase"] == "agent" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} never reached the agent: {job:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        setup
            .harness
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .kill_and_restart();
        // The restarted runner remembers the job, and that it died with the runner.
        let lost = harness_job(&job_id)
            .await
            .expect("the runner kept the record");
        assert_eq!(lost["failure"]["kind"], "harness_shutdown", "{lost:#}");
    }
    let failed = board
        .wait_for_run(&run_id, "failed after the retries", |run| {
            run["status"] == "failed"
        })
        .await;
    assert_eq!(step(&failed, 0)["status"], "failed");
    assert_eq!(
        step(&failed, 0)["failure"]["kind"],
        "harness_shutdown",
        "{failed:#}"
    );
    assert_eq!(step(&failed, 0)["attempts"], 3);
    board.wait_for_block_status(task, "blocked").await;

    // The runner is healthy again: retry resumes at the coder and the run gets to its merge.
    CODER_HANGS.store(false, std::sync::atomic::Ordering::SeqCst);
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/retry")), json!(null))
        .await
        .expect(200);
    let ready = board
        .wait_for_run(&run_id, "a pull request ready to merge", |run| {
            run["summary"]["park"]["type"] == "merge"
        })
        .await;
    assert_eq!(step(&ready, 0)["attempts"], 4);
    board.wait_for_block_status(task, "pr_ready").await;
    board
        .client
        .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_run_uses_its_tasks_model_else_the_workspaces_default() {
    let _door = DOOR.read().await;
    let board = board(2).await;
    let (task, dependency) = (&board.tasks[0], &board.tasks[1]);
    // A dependency that is not done keeps the runs queued: nothing is dispatched.
    board.depends_on(task, dependency).await;
    let rev = board
        .client
        .get(&board.path(&format!("/blocks/{task}")))
        .await
        .expect(200)["rev"]
        .as_i64()
        .unwrap();
    let chosen = board
        .client
        .patch(
            &board.path(&format!("/blocks/{task}")),
            json!({ "rev": rev, "modelId": "claude-sonnet-4" }),
        )
        .await
        .expect(200);
    assert_eq!(chosen["modelId"], "claude-sonnet-4");
    let queue_a_run = || async {
        let run = board
            .client
            .post(
                &board.path(&format!("/blocks/{task}/runs")),
                json!({ "pipelineId": "quick", "queue": true }),
            )
            .await
            .expect(201);
        let run_id = run["id"].as_str().unwrap().to_owned();
        board
            .client
            .post(&board.path(&format!("/runs/{run_id}/cancel")), json!(null))
            .await
            .expect(200);
        run["modelId"].as_str().unwrap().to_owned()
    };
    assert_eq!(queue_a_run().await, "claude-sonnet-4");

    let workspace = board
        .client
        .patch(
            &format!("/workspaces/{}", board.workspace),
            json!({ "defaultModelId": "gpt-4o" }),
        )
        .await
        .expect(200);
    assert_eq!(workspace["defaultModelId"], "gpt-4o");
    assert_eq!(workspace["name"], "runs", "only the fields sent change");
    board
        .client
        .patch(
            &board.path(&format!("/blocks/{task}")),
            json!({ "rev": chosen["rev"], "modelId": null }),
        )
        .await
        .expect(200);
    assert_eq!(queue_a_run().await, "gpt-4o");
}
