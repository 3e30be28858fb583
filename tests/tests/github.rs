//! The GitHub App under `wrangler dev` against the fake GitHub on loopback (issue 15): connect an
//! account, list and link repositories, import issues twice, webhooks (forged, missing, replayed,
//! merged, red CI, removed repository), token scopes, and no token in any log line or response.

use std::time::Duration;

use cat_tests::api::{Client, RawBody, unique_login};
use cat_tests::events::EventStream;
use cat_tests::fake_github::{
    FakeGithub, FakeInstallation, FakeIssue, FakeRepository, Signing, WebhookSender,
};
use cat_tests::github_app::{Setup, WEBHOOK_SECRET, setup, setup_with};
use cat_tests::runner::{ForgeRoot, HarnessProcess, RUNNER_SECRET};
use cat_tests::scripted_model::{RecordedModelRequest, Reply, ScriptedModel};
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::{Value, json};

const INSTALLATION: u64 = 7001;
const SOMEONE_ELSES_INSTALLATION: u64 = 7002;
const BILLING: u64 = 501;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn count(server: &WorkerServer, sql: &str) -> i64 {
    let answer = server.execute_sql(sql);
    answer[0]["results"][0]["n"].as_i64().unwrap_or(-1)
}

fn pull_request(action: &str, task: &str, merged: bool, sha: &str) -> Value {
    json!({
        "action": action,
        "pull_request": {
            "number": 17, "title": "Fix invoices", "html_url": "https://github.com/acme/billing/pull/17",
            "state": if action == "closed" { "closed" } else { "open" }, "merged": merged,
            "head": {"ref": format!("cat/{task}"), "sha": sha},
            "base": {"ref": "main", "sha": "base0"}
        },
        "repository": {"id": BILLING, "full_name": "acme/billing", "private": true},
        "installation": {"id": INSTALLATION}
    })
}

async fn block_github(admin: &Client, workspace: &str, block: &str) -> Value {
    let states = admin
        .get(&format!("/workspaces/{workspace}/github/blocks"))
        .await
        .expect(200);
    states
        .as_array()
        .unwrap()
        .iter()
        .find(|state| state["blockId"] == block)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn status_of(admin: &Client, workspace: &str, block: &str) -> String {
    admin
        .get(&format!("/workspaces/{workspace}/blocks/{block}"))
        .await
        .expect(200)["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_account_connects_github_links_a_frame_imports_issues_and_follows_pull_requests() {
    let Setup {
        server,
        fake,
        _keys,
    } = setup().await;
    let mut responses = Vec::new();
    fake.add_installation(
        FakeInstallation {
            id: INSTALLATION,
            account_login: "acme".to_owned(),
            repositories: vec![
                FakeRepository {
                    id: BILLING,
                    full_name: "acme/billing".to_owned(),
                },
                FakeRepository {
                    id: 502,
                    full_name: "acme/web".to_owned(),
                },
            ],
        },
        true,
    );
    fake.add_installation(
        FakeInstallation {
            id: SOMEONE_ELSES_INSTALLATION,
            account_login: "someone-else".to_owned(),
            repositories: vec![FakeRepository {
                id: 900,
                full_name: "someone-else/private".to_owned(),
            }],
        },
        false,
    );
    let admin = Client::sign_in(&server, &unique_login("gh")).await;
    let workspace = admin.create_workspace("GitHub").await;
    let account = admin
        .get(&format!("/workspaces/{workspace}"))
        .await
        .expect(200)["accountId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Install: the answer names GitHub's page with a signed state; the callback checks the user's
    // installations.
    let http = no_redirects();
    let install = admin
        .get(&format!("/accounts/{account}/github/install"))
        .await
        .expect(200);
    let location = install["url"].as_str().unwrap().to_owned();
    let prefix = format!(
        "{}/apps/cat-factory-test/installations/new?state=",
        fake.base_url
    );
    assert!(location.starts_with(&prefix), "{location}");
    let state = location[prefix.len()..].to_owned();
    let callback = |installation: u64, code: &str, state: &str| {
        server.url(&format!(
            "/github/setup?installation_id={installation}&setup_action=install&code={code}&state={state}"
        ))
    };
    let foreign = http
        .get(callback(SOMEONE_ELSES_INSTALLATION, "good-code", &state))
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        403,
        "someone else's installation is refused"
    );
    let forged = http
        .get(callback(INSTALLATION, "good-code", "forged.state"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let bad_code = http
        .get(callback(INSTALLATION, "bad-code", &state))
        .send()
        .await
        .unwrap();
    assert!(bad_code.status().is_client_error());
    let installations = admin
        .get(&format!("/accounts/{account}/github/installations"))
        .await
        .expect(200);
    assert_eq!(installations, json!([]));
    let installed = http
        .get(callback(INSTALLATION, "good-code", &state))
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 302);
    assert!(
        installed.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/?github=installed"),
    );
    let installations = admin
        .get(&format!("/accounts/{account}/github/installations"))
        .await
        .expect(200);
    assert_eq!(installations[0]["installationId"], INSTALLATION);
    assert_eq!(installations[0]["accountLogin"], "acme");
    assert_eq!(installations[0]["repositoryCount"], 2);
    responses.push(installations);

    // Repositories, paged.
    let first = admin
        .get(&format!("/workspaces/{workspace}/github/repos?perPage=1"))
        .await
        .expect(200);
    assert_eq!(first["total"], 2);
    assert_eq!(first["repositories"][0]["fullName"], "acme/billing");
    assert_eq!(first["nextPage"], 2);
    let second = admin
        .get(&format!(
            "/workspaces/{workspace}/github/repos?perPage=1&page=2&refresh=1"
        ))
        .await
        .expect(200);
    assert_eq!(second["repositories"][0]["fullName"], "acme/web");
    assert_eq!(second["nextPage"], Value::Null);
    responses.push(first);
    responses.push(second);

    // Link a frame; a repository the installation cannot see is refused.
    let frame = admin
        .create_block(&workspace, "frame", None, "Billing")
        .await;
    let refused = admin
        .put_json(
            &format!("/workspaces/{workspace}/blocks/{frame}/repo"),
            json!({ "repository": "someone-else/private" }),
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    let linked = admin
        .put_json(
            &format!("/workspaces/{workspace}/blocks/{frame}/repo"),
            json!({ "repository": "acme/billing", "subDirectory": "services/billing" }),
        )
        .await
        .expect(200);
    assert_eq!(linked["repoLink"]["repository"], "acme/billing");
    assert_eq!(
        linked["repoLink"]["url"],
        format!("{}/acme/billing/tree/HEAD/services/billing", fake.base_url)
    );

    // Import issues twice: no duplicates; pull requests and closed issues are skipped.
    for (number, title, state, is_pull_request) in [
        (1, "Fix invoices", "open", false),
        (2, "Add export", "open", false),
        (3, "A pull request", "open", true),
        (4, "Old", "closed", false),
    ] {
        fake.add_issue(
            "acme/billing",
            FakeIssue {
                number,
                title: title.to_owned(),
                state: state.to_owned(),
                labels: vec!["bug".to_owned()],
                is_pull_request,
            },
        );
    }
    let import_path = format!("/workspaces/{workspace}/blocks/{frame}/import-issues");
    let first_import = admin.post(&import_path, json!({})).await.expect(201);
    assert_eq!(first_import["created"].as_array().unwrap().len(), 2);
    let second_import = admin
        .post(&import_path, json!({ "labels": ["bug"] }))
        .await
        .expect(201);
    assert_eq!(second_import["created"], json!([]));
    assert_eq!(second_import["alreadyImported"], json!([1, 2]));
    let tasks = count(
        &server,
        &format!("SELECT count(*) AS n FROM blocks WHERE parent_id = '{frame}' AND level = 'task'"),
    );
    assert_eq!(tasks, 2);
    let task = first_import["created"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let issue_state = block_github(&admin, &workspace, &task).await;
    assert_eq!(issue_state["issue"]["number"], 1);
    responses.push(first_import);
    responses.push(second_import);

    // Webhooks: a forged or missing signature is 401 and records nothing.
    let sender = WebhookSender::new(server.url("/github/webhooks"), WEBHOOK_SECRET.as_bytes());
    let deliveries = || {
        count(
            &server,
            "SELECT count(*) AS n FROM github_webhook_deliveries",
        )
    };
    let before = deliveries();
    for signing in [Signing::Forged, Signing::Missing] {
        let answer = sender
            .send(
                "pull_request",
                &WebhookSender::new_delivery_id(),
                &pull_request("opened", &task, false, "sha1"),
                signing,
            )
            .await;
        assert_eq!(answer.status(), 401);
    }
    assert_eq!(deliveries(), before);
    assert_eq!(
        count(&server, "SELECT count(*) AS n FROM github_pull_requests"),
        0
    );
    let unknown = sender
        .send(
            "star",
            &WebhookSender::new_delivery_id(),
            &json!({"action": "created"}),
            Signing::Genuine,
        )
        .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(unknown.json::<Value>().await.unwrap()["outcome"], "ignored");

    // Opened → in review; a red check keeps it there and names the check.
    let mut stream = EventStream::open(&admin, &workspace, None, None).await;
    let live = stream.wait_live().await;
    let opened = sender
        .send(
            "pull_request",
            &WebhookSender::new_delivery_id(),
            &pull_request("opened", &task, false, "sha1"),
            Signing::Genuine,
        )
        .await;
    assert_eq!(opened.status(), 200);
    assert_eq!(status_of(&admin, &workspace, &task).await, "pr_ready");
    let red = sender
        .send(
            "check_run",
            &WebhookSender::new_delivery_id(),
            &json!({
                "action": "completed",
                "check_run": {"id": 3001, "name": "unit tests", "head_sha": "sha1",
                              "status": "completed", "conclusion": "failure"},
                "repository": {"id": BILLING, "full_name": "acme/billing"}
            }),
            Signing::Genuine,
        )
        .await;
    assert_eq!(red.status(), 200);
    assert_eq!(status_of(&admin, &workspace, &task).await, "pr_ready");
    let state = block_github(&admin, &workspace, &task).await;
    assert_eq!(state["pullRequest"]["ci"], "red");
    assert_eq!(state["pullRequest"]["failingChecks"], json!(["unit tests"]));

    // Merged → done, once, and the socket sees it.
    let merge_delivery = WebhookSender::new_delivery_id();
    let merged = pull_request("closed", &task, true, "sha1");
    let first = sender
        .send("pull_request", &merge_delivery, &merged, Signing::Genuine)
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["outcome"], "applied");
    assert_eq!(status_of(&admin, &workspace, &task).await, "done");
    let mut saw_done = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !saw_done && tokio::time::Instant::now() < deadline {
        let Some(frame) = stream.next_frame(Duration::from_secs(5)).await else {
            break;
        };
        saw_done = frame["type"] == "block.updated"
            && frame["seq"].as_i64().unwrap_or(0) > live
            && frame["data"]["id"] == task.as_str()
            && frame["data"]["changes"]["status"] == "done"
            && frame["actor"]["kind"] == "webhook";
    }
    assert!(
        saw_done,
        "the socket did not see the task become done: {:?}",
        stream.events
    );
    let seq_after_merge = admin.board(&workspace).await["seq"].as_i64().unwrap();
    let replay = sender
        .send("pull_request", &merge_delivery, &merged, Signing::Genuine)
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["outcome"], "replay");
    assert_eq!(
        admin.board(&workspace).await["seq"].as_i64().unwrap(),
        seq_after_merge,
        "a replayed delivery had a second effect"
    );

    // A removed repository unlinks the frame with a warning and deletes nothing.
    let removed = sender
        .send(
            "installation_repositories",
            &WebhookSender::new_delivery_id(),
            &json!({
                "action": "removed",
                "installation": {"id": INSTALLATION, "account": {"login": "acme", "id": 1}},
                "repositories_added": [],
                "repositories_removed": [{"id": BILLING, "full_name": "acme/billing"}]
            }),
            Signing::Genuine,
        )
        .await;
    assert_eq!(removed.status(), 200);
    let frame_state = block_github(&admin, &workspace, &frame).await;
    assert_eq!(frame_state["repoLink"], Value::Null);
    assert!(
        frame_state["note"]
            .as_str()
            .unwrap()
            .contains("acme/billing is no longer available")
    );
    assert_eq!(
        count(
            &server,
            &format!("SELECT count(*) AS n FROM blocks WHERE id IN ('{frame}', '{task}')")
        ),
        2
    );
    responses.push(frame_state);

    // Tokens: scoped as asked, and never in a response or a log line.
    let minted = fake.minted_tokens();
    assert!(!minted.is_empty());
    let issue_token = minted
        .iter()
        .find(|token| token.permissions.contains_key("issues"))
        .expect("the import minted an issues token");
    assert_eq!(issue_token.repositories, vec!["billing".to_owned()]);
    assert_eq!(issue_token.permissions.len(), 1);
    assert_eq!(issue_token.permissions["issues"], "read");
    let log = server.log_tail(usize::MAX);
    let responses = serde_json::to_string(&responses).unwrap() + &location;
    for token in minted
        .iter()
        .map(|minted| minted.token.clone())
        .chain(fake.user_tokens())
    {
        assert!(!log.contains(&token), "a token reached the worker's log");
        assert!(!responses.contains(&token), "a token reached a response");
    }
}

#[tokio::test]
async fn without_the_apps_settings_the_github_routes_answer_503_and_the_board_works() {
    let server = WorkerServer::shared();
    let admin = Client::sign_in(server, &unique_login("nogh")).await;
    let workspace = admin.create_workspace("No GitHub").await;
    let frame = admin.create_block(&workspace, "frame", None, "f").await;
    let answer = admin
        .get(&format!("/workspaces/{workspace}/github/repos"))
        .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.code(), Some("github_not_configured"));
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GITHUB_APP_ID")
    );
    let webhook = WebhookSender::new(server.url("/github/webhooks"), b"whatever")
        .send(
            "ping",
            &WebhookSender::new_delivery_id(),
            &json!({"zen": "hi"}),
            Signing::Genuine,
        )
        .await;
    assert_eq!(webhook.status(), 503);
    let link = admin
        .put_json(
            &format!("/workspaces/{workspace}/blocks/{frame}/repo"),
            json!({ "repository": "acme/billing" }),
        )
        .await;
    assert_eq!(link.code(), Some("github_not_configured"));
    admin
        .get(&format!("/workspaces/{workspace}/github/blocks"))
        .await
        .expect(200);
    admin.board(&workspace).await;
}

/// Connects `admin`'s account to the fake's installation through the install redirect and the setup
/// callback, as a browser would.
async fn connect(server: &WorkerServer, fake: &FakeGithub, admin: &Client, account: &str) {
    let http = no_redirects();
    let install = admin
        .get(&format!("/accounts/{account}/github/install"))
        .await
        .expect(200);
    let location = install["url"].as_str().unwrap().to_owned();
    let state = location.split("state=").nth(1).unwrap().to_owned();
    let installed = http
        .get(server.url(&format!(
            "/github/setup?installation_id={INSTALLATION}&setup_action=install&code=good-code&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), 302, "{}", fake.base_url);
}

/// The scripted agents of a quick run: the coder changes one file and finishes, the reviewer passes.
fn scripted_agent(request: &RecordedModelRequest) -> Reply {
    let finish = |arguments: Value| Reply::Owned {
        text: None,
        calls: vec![("finish".to_owned(), arguments)],
    };
    let codes = request.body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|tool| tool["function"]["name"] == "write_file")
    });
    let tool_results = request.body["messages"]
        .as_array()
        .map(|messages| messages.iter().filter(|m| m["role"] == "tool").count())
        .unwrap_or(0);
    if codes && tool_results == 0 {
        return Reply::Owned {
            text: None,
            calls: vec![(
                "write_file".to_owned(),
                json!({ "path": "services/billing/invoice.txt", "content": "exported\n" }),
            )],
        };
    }
    if codes {
        return finish(json!({ "summary": "invoice.txt is exported." }));
    }
    finish(json!({
        "summary": "Looks right.",
        "output": { "rating": 0.9, "comments": [{ "severity": "minor", "text": "fine" }] }
    }))
}

#[tokio::test]
async fn a_runs_coding_step_pushes_and_opens_its_pull_request_through_github_with_a_one_repository_token()
 {
    let forge = ForgeRoot::create();
    let bare = forge.add_repository("billing", &[("services/billing/lib.txt", "one\n")]);
    let harness = HarnessProcess::start();
    let model = ScriptedModel::start_with(scripted_agent).await;
    let port = cat_tests::free_port();
    let mut options = ServerOptions {
        port: Some(port),
        ..ServerOptions::default()
    };
    options.vars.extend(
        [
            ("RUNNER_URL", harness.base_url.as_str()),
            ("RUNNER_SHARED_SECRET", RUNNER_SECRET),
            ("PUBLIC_ORIGIN", &format!("http://127.0.0.1:{port}")),
            ("GATEWAY_OPENAI_BASE_URL", &model.base_url),
            ("GATEWAY_OPENAI_API_KEY", "sk-test-github-provider-key"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    let Setup {
        server,
        fake,
        _keys,
    } = setup_with(options).await;
    fake.add_installation(
        FakeInstallation {
            id: INSTALLATION,
            account_login: "acme".to_owned(),
            repositories: vec![
                FakeRepository {
                    id: BILLING,
                    full_name: "acme/billing".to_owned(),
                },
                FakeRepository {
                    id: 502,
                    full_name: "acme/web".to_owned(),
                },
            ],
        },
        true,
    );
    // The runner clones and pushes to a local bare repository (allowed in its local-forge test mode)
    // that the fake reports as the repository's clone URL; the pull request goes through the fake's
    // API with the job's token.
    fake.set_clone_url("acme/billing", bare.to_str().unwrap());
    let admin = Client::sign_in(&server, &unique_login("ghrun")).await;
    let account = admin.get("/auth/me").await.expect(200)["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .send(
            reqwest::Method::PUT,
            &format!("/accounts/{account}/models/scripted"),
            Some(RawBody::Json(json!({ "provider": "openai_compatible",
                "inputUsdPerMillion": "1", "outputUsdPerMillion": "1", "maxOutputTokens": 500 }))),
        )
        .await
        .expect(200);
    let workspace = admin
        .post(
            "/workspaces",
            json!({ "name": "gh runs", "accountId": account }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    connect(&server, &fake, &admin, &account).await;
    let frame = admin
        .create_block(&workspace, "frame", None, "Billing")
        .await;
    admin
        .put_json(
            &format!("/workspaces/{workspace}/blocks/{frame}/repo"),
            json!({ "repository": "acme/billing", "subDirectory": "services/billing" }),
        )
        .await
        .expect(200);
    let task = admin
        .create_block(&workspace, "task", Some(&frame), "Export invoices")
        .await;
    let created = admin
        .post(
            &format!("/workspaces/{workspace}/blocks/{task}/runs"),
            json!({ "pipelineId": "quick", "modelId": "scripted" }),
        )
        .await
        .expect(201);
    let run_id = created["id"].as_str().unwrap().to_owned();

    // The coding step pushes `cat/<task>` and opens the pull request through the fake.
    let head = format!("cat/{task}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !fake.pull_requests().iter().any(|pull| pull.head == head) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pull request was opened; run: {}\nharness log:\n{}\nworker log:\n{}",
            admin
                .get(&format!("/workspaces/{workspace}/runs/{run_id}"))
                .await
                .body,
            harness.log_tail(30),
            server.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        forge.branch_commit("billing", &head).is_some(),
        "the branch was pushed"
    );
    let opened = fake
        .requests()
        .into_iter()
        .find(|request| request.method == "POST" && request.path == "/repos/acme/billing/pulls")
        .unwrap();
    let used = opened
        .authorization
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let minted = fake
        .minted_tokens()
        .into_iter()
        .find(|minted| minted.token == used)
        .expect("the pull request was opened with a token the App minted");
    assert_eq!(minted.installation_id, INSTALLATION);
    assert_eq!(minted.repositories, vec!["billing".to_owned()]);
    assert_eq!(
        minted.permissions.into_iter().collect::<Vec<_>>(),
        vec![
            ("contents".to_owned(), "write".to_owned()),
            ("pull_requests".to_owned(), "write".to_owned())
        ]
    );

    // The token is nowhere else: not in the worker's log, the runner's log, or the run's answers.
    let run = admin
        .get(&format!("/workspaces/{workspace}/runs/{run_id}"))
        .await
        .expect(200);
    let job = reqwest::Client::new()
        .get(format!("{}/jobs/{run_id}-0-1", harness.base_url))
        .header("x-harness-secret", RUNNER_SECRET)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!run.to_string().contains(&used));
    assert!(
        !job.contains(&used),
        "the runner's job view holds the token"
    );
    assert!(!server.log_tail(usize::MAX).contains(&used));
    assert!(!harness.log_tail(usize::MAX).contains(&used));

    // The reviewer passes and the run waits for the merge; GitHub's `pull_request` closed+merged
    // webhook marks the task done and the run engine finishes the run, as the merge route would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let run = admin
            .get(&format!("/workspaces/{workspace}/runs/{run_id}"))
            .await
            .expect(200);
        if run["status"] == "blocked" && run["summary"]["park"]["type"] == "merge" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never waited for its merge: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sender = WebhookSender::new(server.url("/github/webhooks"), WEBHOOK_SECRET.as_bytes());
    let merged = sender
        .send(
            "pull_request",
            &WebhookSender::new_delivery_id(),
            &pull_request("closed", &task, true, "sha-merged"),
            Signing::Genuine,
        )
        .await;
    assert_eq!(merged.status(), 200);
    assert_eq!(status_of(&admin, &workspace, &task).await, "done");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = admin
            .get(&format!("/workspaces/{workspace}/runs/{run_id}"))
            .await
            .expect(200);
        if run["status"] == "done" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the merge webhook did not finish the run: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
