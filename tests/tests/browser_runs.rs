//! Runs from the board, in headless Chromium against the worker under `wrangler dev`, a real
//! `cat-harness serve` (local-forge mode) and the scripted model behind the gateway: a person picks a
//! pipeline and a model on a task, sees the forecast against what is left of the budget, starts the
//! run, watches its steps, sees the pull request on the panel and the card, merges it and sees the
//! task turn done. A task whose dependency is not done offers to queue its run; the queued run starts
//! by itself after the merge and asks a question that is answered in the panel. Spend shows per task
//! and for the workspace. The random-gesture player then plays over a board with a run panel open.

use std::sync::OnceLock;

use cat_tests::api::{Client, RawBody, unique_login};
use cat_tests::board_ui::{
    SplitMix, assert_page_healthy, body_point, open_board, play_random_gestures,
};
use cat_tests::browser::Browser;
use cat_tests::runner::{ForgeRoot, HarnessProcess, RUNNER_SECRET};
use cat_tests::scripted_model::{RecordedModelRequest, Reply, ScriptedModel};
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::{Value, json};

/// The engine's delays, shortened so polls happen within a test (production waits seconds).
const FAST_ENGINE: &str = r#"{"pollIntervalMs":300,"inlineCallTimeoutMs":5000,"retryBaseDelayMs":200,"retryMaxDelayMs":1000,"maxTransientRetries":2,"maxRunnerFailures":3,"maxVanishedRedispatches":1,"maxHeartbeatSilenceMs":600000}"#;

/// The question the reviewer of an "Ask …" task asks, and the option the person clicks.
const QUESTION: &str = "Which colour should the button be?";
const CHOSEN: &str = "blue-choice";

struct Setup {
    _model: ScriptedModel,
    server: WorkerServer,
    harness: HarnessProcess,
    _forge: ForgeRoot,
}

/// The worker, the harness and the scripted model, started once for this binary on a thread that
/// never ends (the children die with the thread that started them; the model needs its runtime).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let forge = ForgeRoot::create();
            forge.add_repository("demo", &[("src/lib.txt", "one\n")]);
            let harness = HarnessProcess::start();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
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
                    ("RUNNER_URL", harness.base_url.as_str()),
                    ("RUNNER_SHARED_SECRET", RUNNER_SECRET),
                    ("PUBLIC_ORIGIN", &format!("http://127.0.0.1:{port}")),
                    ("RUN_ENGINE_SETTINGS", FAST_ENGINE),
                    ("GATEWAY_OPENAI_BASE_URL", &model.base_url),
                    ("GATEWAY_OPENAI_API_KEY", "sk-test-browser-runs-key"),
                ]
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
            );
            let server = WorkerServer::start_with(options);
            cat_tests::process::remove_at_exit(server.persist_dir.clone());
            sender
                .send(Setup {
                    _model: model,
                    server,
                    harness,
                    _forge: forge,
                })
                .unwrap();
            runtime.block_on(std::future::pending::<()>());
        });
        receiver.recv().expect("the runs fixture starts")
    })
}

/// The scripted agents: a coder that changes one file and finishes, a reviewer that rates the
/// change 0.9 — after asking a person first, on a task whose title starts with "Ask".
fn scripted_agent(request: &RecordedModelRequest) -> Reply {
    let finish = |arguments: Value| Reply::Owned {
        text: None,
        calls: vec![("finish".to_owned(), arguments)],
    };
    let tool_results = request.body["messages"]
        .as_array()
        .map(|messages| messages.iter().filter(|m| m["role"] == "tool").count())
        .unwrap_or(0);
    let conversation = request.body["messages"].to_string();
    let writes_files = request.body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|tool| tool["function"]["name"] == "write_file")
    });
    if writes_files {
        if tool_results == 0 {
            return Reply::Owned {
                text: None,
                calls: vec![(
                    "write_file".to_owned(),
                    // Each task writes its own text: a second run that changed nothing would fail.
                    json!({ "path": "src/lib.txt", "content": if conversation.contains("Ask about") { "three\n" } else { "two\n" } }),
                )],
            };
        }
        return finish(json!({ "summary": "lib.txt now says two." }));
    }
    if conversation.contains("Ask about") && !conversation.contains(CHOSEN) {
        return finish(json!({
            "summary": "I need a person to pick.",
            "output": { "decision": { "question": QUESTION, "options": [CHOSEN, "red-choice"] } }
        }));
    }
    finish(json!({
        "summary": "Looks right.",
        "output": { "rating": 0.9, "comments": [{ "severity": "minor", "text": "fine" }] }
    }))
}

/// A member's workspace with a service linked to `local:demo`, a module, and two tasks: "Fix the
/// greeting", and "Ask about the colour", which depends on it. The account prices the scripted
/// model and has a $5 monthly limit.
struct RunBoard {
    /// A custom pipeline of the workspace (one architect step).
    design: String,
    client: Client,
    login: String,
    workspace: String,
    fix: String,
    ask: String,
}

async fn run_board() -> RunBoard {
    let setup = setup();
    let login = unique_login("runner-ui");
    let client = Client::sign_in(&setup.server, &login).await;
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
    client
        .send(
            reqwest::Method::PUT,
            &format!("/accounts/{account}/spend/limit"),
            Some(RawBody::Json(json!({ "limitUsd": "5" }))),
        )
        .await
        .expect(200);
    let workspace = client.create_workspace("Runs from the board").await;
    let frame = client
        .post(
            &format!("/workspaces/{workspace}/blocks"),
            json!({ "level": "frame", "title": "Demo service", "repoUrl": "local:demo",
                    "position": { "x": 0.0, "y": 0.0 } }),
        )
        .await
        .id();
    let module = client
        .create_block_at(&workspace, "module", Some(&frame), "Core", (20.0, 60.0))
        .await;
    let fix = client
        .create_block_at(
            &workspace,
            "task",
            Some(&module),
            "Fix the greeting",
            (40.0, 40.0),
        )
        .await;
    let ask = client
        .create_block_at(
            &workspace,
            "task",
            Some(&module),
            "Ask about the colour",
            (40.0, 130.0),
        )
        .await;
    client.create_edge(&workspace, &ask, &fix).await;
    let design = client
        .post(
            &format!("/workspaces/{workspace}/pipelines"),
            json!({ "name": "Design", "steps": [{ "kind": "architect", "approvalAfter": true }] }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    RunBoard {
        design,
        client,
        login,
        workspace,
        fix,
        ask,
    }
}

fn panel_of(id: &str) -> String {
    format!("[data-testid='block-panel'][data-block-id='{id}']")
}

async fn open_panel(browser: &Browser, id: &str) {
    let (x, y) = body_point(browser, &format!("[data-block-id='{id}']")).await;
    browser.click_at(x, y, 1).await;
    browser
        .wait_for(&format!("{} [data-testid='run-panel']", panel_of(id)))
        .await;
}

/// Picks `value` in the panel's `<select>` named by `testid`, as a person's choice does.
async fn choose(browser: &Browser, id: &str, testid: &str, value: &str) {
    let select = format!("{} [data-testid='{testid}']", panel_of(id));
    browser
        .wait_until(
            &format!("{testid} offers {value}"),
            &format!("return !!document.querySelector(\"{select} option[value='{value}']\")"),
        )
        .await;
    browser
        .client
        .execute(
            &format!(
                "const s = document.querySelector(\"{select}\"); s.value = '{value}'; \
                 s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value;"
            ),
            Vec::new(),
        )
        .await
        .unwrap();
}

/// The forecast's total in micro-dollars.
async fn total_of(browser: &Browser, css: &str) -> u64 {
    browser
        .wait_until(
            "a forecast total",
            &format!("return Number(document.querySelector(\"{css}\")?.dataset.total)"),
        )
        .await
        .as_u64()
        .expect("a whole number of micro-dollars")
}

async fn click(browser: &Browser, css: &str) {
    browser.wait_for(css).await.click().await.unwrap();
}

/// The text of the first element matching `css` (once there is one).
async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .wait_until(
            &format!("{css} has text"),
            &format!("return document.querySelector(\"{css}\")?.textContent ?? ''"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_person_runs_a_task_to_a_merged_pull_request_and_answers_a_question_from_the_panel() {
    let setup = setup();
    let board = run_board().await;
    let browser = Browser::start().await;
    open_board(&browser, &setup.server, &board.login, &board.workspace).await;
    browser.console().await;

    // The toolbar shows the month's spend and what is left of the account's $5 limit (once the
    // account's budget has loaded).
    browser
        .wait_until(
            "the toolbar shows the spend and the limit left",
            "return document.querySelector(\"[data-testid='workspace-spend']\")?.textContent === '$0.00 spent · $5.00 left'",
        )
        .await;

    // Pick `quick` with the scripted model: the forecast weighs the run against the $5 left.
    let fix = board.fix.as_str();
    open_panel(&browser, fix).await;
    choose(&browser, fix, "run-pipeline", "quick").await;
    choose(&browser, fix, "run-model", "scripted").await;
    // The owner makes it the workspace's default, for every task without a model of its own.
    click(
        &browser,
        &format!("{} [data-testid='run-model-make-default']", panel_of(fix)),
    )
    .await;
    browser
        .wait_for(&format!(
            "{} [data-testid='run-model-is-default']",
            panel_of(fix)
        ))
        .await;
    assert_eq!(
        board
            .client
            .get(&format!("/workspaces/{}", board.workspace))
            .await
            .expect(200)["defaultModelId"],
        "scripted"
    );
    let forecast = format!(
        "{} [data-testid='run-forecast'][data-state='ready']",
        panel_of(fix)
    );
    let forecast_text = text_of(&browser, &forecast).await;
    assert!(
        forecast_text.starts_with("Expected cost about $")
            && forecast_text.contains("left of this month's limit"),
        "{forecast_text}"
    );
    browser.screenshot("runs-1-forecast").await;
    // A custom pipeline is forecast too (one architect step costs less than coder + reviewer).
    let quick_total = total_of(&browser, &forecast).await;
    choose(&browser, fix, "run-pipeline", &board.design).await;
    browser
        .wait_until(
            "the custom pipeline's forecast",
            &format!("const f = document.querySelector(\"{forecast}\"); return f && Number(f.dataset.total) !== {quick_total};"),
        )
        .await;
    choose(&browser, fix, "run-pipeline", "quick").await;
    browser
        .wait_until(
            "the quick pipeline's forecast again",
            &format!("return Number(document.querySelector(\"{forecast}\")?.dataset.total) === {quick_total};"),
        )
        .await;

    // Start: the steps appear and move; the coder opens a pull request; the reviewer passes.
    click(
        &browser,
        &format!("{} [data-testid='run-start']", panel_of(fix)),
    )
    .await;
    let run_view = format!("{} [data-testid='run-view']", panel_of(fix));
    browser.wait_for(&run_view).await;
    let steps = browser
        .wait_until(
            "the run shows its two steps",
            &format!(
                "const s = [...document.querySelectorAll(\"{run_view} [data-testid='run-step']\")]; \
                 return s.length === 2 ? s.map(e => e.dataset.kind) : null;"
            ),
        )
        .await;
    assert_eq!(steps, json!(["coder", "reviewer"]));
    browser
        .wait_until(
            "the card shows the run",
            &format!("return document.querySelector(\"[data-block-id='{fix}'] [data-testid='run-line']\")"),
        )
        .await;
    browser.screenshot("runs-2-running").await;
    browser
        .wait_until(
            "the pull request is ready to merge",
            &format!(
                "return document.querySelector(\"{run_view}[data-status='blocked'] [data-testid='run-merge']\") \
                 && [...document.querySelectorAll(\"{run_view} [data-testid='run-step']\")].every(s => s.dataset.status === 'done')"
            ),
        )
        .await;
    let link = browser
        .wait_until(
            "the panel links the pull request",
            &format!("return document.querySelector(\"{run_view} [data-testid='run-pr']\")?.getAttribute('href')"),
        )
        .await;
    assert!(link.as_str().is_some_and(|url| !url.is_empty()), "{link}");
    let card_link = browser
        .wait_until(
            "the card links the pull request",
            &format!("return document.querySelector(\"[data-block-id='{fix}'] [data-testid='card-pr']\")?.getAttribute('href')"),
        )
        .await;
    assert_eq!(card_link, link);
    browser
        .wait_until(
            "the card says the PR is ready",
            &format!("return document.querySelector(\"[data-block-id='{fix}'] [data-testid='run-line'][data-state='ready']\") \
                      && document.querySelector(\"[data-block-id='{fix}'] [data-testid='status-chip'].pr_ready\")"),
        )
        .await;
    // Spend: the coder's and the reviewer's model calls went through the gateway.
    browser
        .wait_until(
            "the panel shows what the task cost",
            &format!("return Number(document.querySelector(\"{} [data-testid='block-spend']\")?.dataset.cost) > 0", panel_of(fix)),
        )
        .await;
    browser
        .wait_until(
            "the toolbar shows what the workspace spent",
            "return Number(document.querySelector(\"[data-testid='workspace-spend']\")?.dataset.cost) > 0",
        )
        .await;
    browser.screenshot("runs-3-pr-ready").await;

    // The dependent task cannot start yet: the panel says why and offers to queue it.
    let ask = board.ask.as_str();
    open_panel(&browser, ask).await;
    choose(&browser, ask, "run-pipeline", "quick").await;
    choose(&browser, ask, "run-model", "scripted").await;
    click(
        &browser,
        &format!("{} [data-testid='run-start']", panel_of(ask)),
    )
    .await;
    let refusal = text_of(
        &browser,
        &format!("{} [data-testid='run-refusal']", panel_of(ask)),
    )
    .await;
    assert!(
        refusal.contains("“Fix the greeting”") && refusal.contains("not done yet"),
        "{refusal}"
    );
    click(
        &browser,
        &format!("{} [data-testid='run-queue']", panel_of(ask)),
    )
    .await;
    browser
        .wait_until(
            "the run is queued",
            &format!("return document.querySelector(\"[data-block-id='{ask}'] [data-testid='run-badge'][data-state='queued']\")"),
        )
        .await;
    browser.screenshot("runs-4-queued").await;

    // Merge from the first task's panel: it turns done, and the queued run starts by itself.
    open_panel(&browser, fix).await;
    click(&browser, &format!("{run_view} [data-testid='run-merge']")).await;
    browser
        .wait_until(
            "the merged task turns done on the canvas",
            &format!("return document.querySelector(\"[data-block-id='{fix}'] [data-testid='status-chip'].done\")"),
        )
        .await;
    browser
        .wait_until(
            "the panel says the run is done",
            &format!("return document.querySelector(\"{run_view}[data-status='done']\")"),
        )
        .await;
    let status = board
        .client
        .get(&format!("/workspaces/{}/blocks/{fix}", board.workspace))
        .await
        .expect(200)["status"]
        .clone();
    assert_eq!(status, "done");
    browser.screenshot("runs-5-merged").await;

    // The queued run's reviewer asks a question: it is answered in the panel, and the run goes on to
    // its pull request.
    open_panel(&browser, ask).await;
    let asked = format!("{} [data-testid='run-decision']", panel_of(ask));
    let question = text_of(&browser, &asked).await;
    assert!(question.contains(QUESTION), "{question}");
    browser.screenshot("runs-6-decision").await;
    click(&browser, &format!("{asked} [data-choice='{CHOSEN}']")).await;
    browser
        .wait_until(
            "the answered run reaches its pull request",
            &format!(
                "return document.querySelector(\"{} [data-testid='run-view'][data-status='blocked'] [data-testid='run-merge']\")",
                panel_of(ask)
            ),
        )
        .await;
    let runs = board
        .client
        .get(&format!("/workspaces/{}/runs?block={ask}", board.workspace))
        .await
        .expect(200);
    let park = &runs[0]["summary"]["park"]["type"];
    assert_eq!(park, "merge", "{runs:#}\n{}", setup.harness.log_tail(20));
    assert_page_healthy(
        &browser,
        "a run started, merged, queued and answered from the panel",
    )
    .await;
    browser.screenshot("runs-7-answered").await;

    // A viewer's-eye check of the decision's state is not needed: cancel to leave the runner idle.
    click(
        &browser,
        &format!("{} [data-testid='run-cancel']", panel_of(ask)),
    )
    .await;
    browser
        .wait_until(
            "the run is cancelled",
            &format!("return document.querySelector(\"{} [data-testid='run-view'][data-status='cancelled']\")", panel_of(ask)),
        )
        .await;
    assert_page_healthy(&browser, "cancelling a run from the panel").await;
    browser.close().await;
}

#[tokio::test]
async fn random_gestures_over_a_board_with_a_run_panel_open_never_break_it() {
    let setup = setup();
    let board = run_board().await;
    let browser = Browser::start().await;
    open_board(&browser, &setup.server, &board.login, &board.workspace).await;
    browser.console().await;
    let seed: u64 = std::env::var("GESTURE_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(20_261_130);
    let gestures = 120;
    println!("random gestures with a run panel: seed {seed}, {gestures} gestures");
    let mut rng = SplitMix::new(seed);
    // Every 20 gestures the task's run panel is opened again, so the gestures land on it too.
    let fix = board.fix.clone();
    for round in 0..(gestures / 20) {
        reopen_a_run_panel(&browser, &board.client, &board.workspace, &fix).await;
        play_random_gestures(
            &browser,
            &mut rng,
            20,
            &format!("round {round}, seed {seed}"),
            &RUN_PANEL_BUTTONS,
        )
        .await;
    }
    assert_page_healthy(
        &browser,
        &format!("{gestures} gestures with a run panel (seed {seed})"),
    )
    .await;
    browser.screenshot("runs-random-gestures-end").await;
    browser.close().await;
}

/// Closes what the gestures opened and opens a task's run panel the way a person finds a task the
/// gestures moved, hid under another block or left too small to see: "Find a block" (Ctrl+K), its
/// title, and a pick. `task`'s panel, or another task's when the gestures deleted it (none, when
/// they deleted every task). (Fit then Enter on the card is not enough: when the gestures spread the
/// blocks out, Fit zooms out past the level where tasks are drawn at all.)
async fn reopen_a_run_panel(browser: &Browser, client: &Client, workspace: &str, task: &str) {
    for _ in 0..3 {
        browser
            .press(fantoccini::key::Key::Escape.into(), &[])
            .await;
    }
    browser
        .wait_until(
            "no dialog is open",
            "return !document.querySelector('.modal-backdrop')",
        )
        .await;
    let snapshot = client.snapshot(workspace).await;
    let tasks: Vec<_> = snapshot
        .blocks
        .iter()
        .filter(|block| block.level.as_str() == "task" && !block.archived)
        .collect();
    let Some(target) = tasks
        .iter()
        .find(|block| block.id.to_string() == task)
        .or(tasks.first())
    else {
        return;
    };
    // Ctrl+K answers only while the focus is on the board, not in a field: put it on the canvas
    // first (a person would click there), and press again if the first press went nowhere.
    let mut open = false;
    for _ in 0..20 {
        browser
            .client
            .execute(
                "if (!document.querySelector(\"[data-testid='finder-input']\")) \
                   document.querySelector(\"[aria-label='Board canvas']\")?.focus();",
                Vec::new(),
            )
            .await
            .unwrap();
        browser.press('k', &[fantoccini::key::Key::Control]).await;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let focused = browser
            .client
            .execute(
                "return document.activeElement?.dataset?.testid === 'finder-input'",
                Vec::new(),
            )
            .await
            .unwrap();
        if focused == Value::Bool(true) {
            open = true;
            break;
        }
    }
    assert!(
        open,
        "Ctrl+K on the board opens the finder with the focus in it"
    );
    browser.type_text(&target.title).await;
    // The task itself when its title is among the results, else the first task listed (tasks the
    // gestures made share the title "New task").
    let picked = browser
        .wait_until(
            "the finder lists the task",
            &format!(
                "const rows = [...document.querySelectorAll(\"[data-testid='finder-result']\")]; \
                 const row = rows.find(r => r.dataset.blockId === '{}') \
                   ?? rows.find(r => r.querySelector('.level-tag.task')); \
                 if (!row) return null; row.click(); return row.dataset.blockId;",
                target.id
            ),
        )
        .await;
    let id = picked.as_str().expect("a picked task's id").to_owned();
    browser
        .wait_until(
            "the task's run panel is open",
            &format!(
                "return !!document.querySelector(\"{} [data-testid='run-panel']\")",
                panel_of(&id)
            ),
        )
        .await;
}

/// The run panel's own buttons, pressed between gestures when they are there (never Start: a run
/// would hold the shared runner for the other test).
const RUN_PANEL_BUTTONS: [&str; 4] = ["panel-close", "run-cancel", "zoom-fit", "add-task"];
