//! GitHub on the board, in headless Chromium against the worker under `wrangler dev` and the fake
//! GitHub on loopback (issue 15): an account admin connects GitHub from the board's GitHub dialog
//! (the fake's installation page sends the browser back through the setup callback), links a
//! frame to a repository picked from the installation's list, imports its issues, and then watches a task's card and
//! panel follow GitHub's webhooks live — the pull request, a red check named on the card, the merge
//! turning the task done — and find it all again after a reload (from the snapshot's GitHub state).

use cat_tests::api::{Client, unique_login};
use cat_tests::board_ui::{assert_page_healthy, body_point, open_board, wait_live};
use cat_tests::browser::Browser;
use cat_tests::fake_github::{FakeInstallation, FakeIssue, FakeRepository, Signing, WebhookSender};
use cat_tests::github_app::{Setup, WEBHOOK_SECRET, setup};
use serde_json::{Value, json};

const INSTALLATION: u64 = 7101;
const BILLING: u64 = 601;

fn panel_of(id: &str) -> String {
    format!("[data-testid='block-panel'][data-block-id='{id}']")
}

fn card_of(id: &str) -> String {
    format!("[data-block-id='{id}']")
}

async fn open_panel(browser: &Browser, id: &str) {
    let (x, y) = body_point(browser, &card_of(id)).await;
    browser.click_at(x, y, 1).await;
    browser.wait_for(&panel_of(id)).await;
}

async fn click(browser: &Browser, css: &str) {
    browser.wait_for(css).await.click().await.unwrap();
}

/// Waits until the first element matching `css` reads exactly `text`.
async fn wait_text(browser: &Browser, what: &str, css: &str, text: &str) {
    browser
        .wait_until(
            what,
            &format!(
                "return document.querySelector({css:?})?.textContent === {text:?}",
                css = css,
                text = text
            ),
        )
        .await;
}

fn pull_request(action: &str, task: &str, merged: bool) -> Value {
    json!({
        "action": action,
        "pull_request": {
            "number": 17, "title": "Fix invoices", "html_url": "https://github.com/acme/billing/pull/17",
            "state": if action == "closed" { "closed" } else { "open" }, "merged": merged,
            "head": {"ref": format!("cat/{task}"), "sha": "sha-browser"},
            "base": {"ref": "main", "sha": "base0"}
        },
        "repository": {"id": BILLING, "full_name": "acme/billing", "private": true},
        "installation": {"id": INSTALLATION}
    })
}

#[tokio::test]
async fn an_admin_connects_github_links_a_frame_and_sees_pull_requests_and_ci_on_the_card() {
    let Setup {
        server,
        fake,
        _keys,
    } = setup().await;
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
                    id: 602,
                    full_name: "acme/web".to_owned(),
                },
            ],
        },
        true,
    );
    fake.set_setup(&server.url("/github/setup"), INSTALLATION);
    let login = unique_login("gh-ui");
    let admin = Client::sign_in(&server, &login).await;
    let workspace = admin.create_workspace("GitHub on the board").await;
    let frame = admin
        .create_block_at(&workspace, "frame", None, "Billing", (0.0, 0.0))
        .await;
    let task = admin
        .create_block_at(
            &workspace,
            "task",
            Some(&frame),
            "Fix invoices",
            (40.0, 60.0),
        )
        .await;

    let browser = Browser::start().await;
    open_board(&browser, &server, &login, &workspace).await;
    browser.console().await;

    // Connect GitHub from the board: the dialog asks the worker for the installation page and
    // goes there; the fake "installs" and sends the browser back through the setup callback.
    click(&browser, "[data-testid='open-github']").await;
    wait_text(
        &browser,
        "the dialog says GitHub is not connected",
        "[data-testid='github-summary']",
        "GitHub is not connected to this account yet.",
    )
    .await;
    click(&browser, "[data-testid='github-connect']").await;
    browser
        .wait_until(
            "the setup callback brought the browser back to the board",
            "return location.search.includes('github=installed')",
        )
        .await;
    let installations = admin
        .get(&format!(
            "/accounts/{}/github/installations",
            admin
                .get(&format!("/workspaces/{workspace}"))
                .await
                .expect(200)["accountId"]
                .as_str()
                .unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(installations[0]["installationId"], INSTALLATION);
    browser
        .client
        .goto(&server.url(&format!("/w/{workspace}")))
        .await
        .unwrap();
    browser.wait_for("[data-testid='board']").await;
    wait_live(&browser).await;
    click(&browser, "[data-testid='open-github']").await;
    wait_text(
        &browser,
        "the dialog lists the installation",
        "[data-testid='github-summary']",
        "Connected to acme (2 repositories).",
    )
    .await;
    click(&browser, "[data-testid='github-close']").await;

    // Link the frame to a repository from the installation's list.
    open_panel(&browser, &frame).await;
    click(
        &browser,
        &format!("{} [data-testid='github-choose-repo']", panel_of(&frame)),
    )
    .await;
    let select = format!("{} [data-testid='github-repo-select']", panel_of(&frame));
    browser
        .wait_until(
            "the repository list offers acme/web",
            &format!("return !!document.querySelector(\"{select} option[value='acme/web']\")"),
        )
        .await;
    browser
        .client
        .execute(
            &format!(
                "const s = document.querySelector(\"{select}\"); s.value = 'acme/billing'; \
                 s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value;"
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    click(
        &browser,
        &format!("{} [data-testid='github-subdir']", panel_of(&frame)),
    )
    .await;
    browser.type_text("services/billing").await;
    click(
        &browser,
        &format!("{} [data-testid='github-link']", panel_of(&frame)),
    )
    .await;
    wait_text(
        &browser,
        "the frame's card shows its repository",
        &format!(
            "{} [data-testid='card-github'] [data-github='repository']",
            card_of(&frame)
        ),
        "acme/billing/services/billing",
    )
    .await;
    let linked = admin
        .get(&format!("/workspaces/{workspace}/github/blocks"))
        .await
        .expect(200);
    assert!(
        linked
            .as_array()
            .unwrap()
            .iter()
            .any(|state| state["blockId"] == frame.as_str()
                && state["repoLink"]["repository"] == "acme/billing"
                && state["repoLink"]["subDirectory"] == "services/billing"),
        "{linked}"
    );
    browser.screenshot("github-frame-linked").await;

    // Import the repository's open issues from the frame's panel: the task appears under the frame
    // with its issue on the card.
    fake.add_issue(
        "acme/billing",
        FakeIssue {
            number: 5,
            title: "Export to CSV".to_owned(),
            state: "open".to_owned(),
            labels: Vec::new(),
            is_pull_request: false,
        },
    );
    click(
        &browser,
        &format!("{} [data-testid='github-import-issues']", panel_of(&frame)),
    )
    .await;
    wait_text(
        &browser,
        "the panel says what the import did",
        &format!("{} [data-testid='github-message']", panel_of(&frame)),
        "Imported 1 issue as tasks (0 imported before).",
    )
    .await;
    wait_text(
        &browser,
        "the imported task's card shows its issue",
        "[data-testid='block-task'][data-title='Export to CSV'] [data-github='issue']",
        "Issue #5",
    )
    .await;
    // It went to a free slot of the frame: the task already there stays visible.
    let imported = browser
        .rect("[data-testid='block-task'][data-title='Export to CSV']")
        .await
        .unwrap();
    let existing = browser.rect(&card_of(&task)).await.unwrap();
    let apart = imported.0 + imported.2 <= existing.0
        || existing.0 + existing.2 <= imported.0
        || imported.1 + imported.3 <= existing.1
        || existing.1 + existing.3 <= imported.1;
    assert!(
        apart,
        "the imported task covers the existing one: {imported:?} / {existing:?}"
    );

    // GitHub's webhooks: a pull request for the task, then a red check. The card shows both live.
    let sender = WebhookSender::new(server.url("/github/webhooks"), WEBHOOK_SECRET.as_bytes());
    let opened = sender
        .send(
            "pull_request",
            &WebhookSender::new_delivery_id(),
            &pull_request("opened", &task, false),
            Signing::Genuine,
        )
        .await;
    assert_eq!(opened.status(), 200);
    let card_line = |kind: &str| {
        format!(
            "{} [data-testid='card-github'] [data-github='{kind}']",
            card_of(&task)
        )
    };
    wait_text(
        &browser,
        "the task's card shows its pull request",
        &card_line("pull-request"),
        "PR #17",
    )
    .await;
    let red = sender
        .send(
            "check_run",
            &WebhookSender::new_delivery_id(),
            &json!({
                "action": "completed",
                "check_run": {"id": 4001, "name": "unit tests", "head_sha": "sha-browser",
                              "status": "completed", "conclusion": "failure"},
                "repository": {"id": BILLING, "full_name": "acme/billing"}
            }),
            Signing::Genuine,
        )
        .await;
    assert_eq!(red.status(), 200);
    wait_text(
        &browser,
        "the task's card names the failing check",
        &card_line("ci"),
        "CI failing: unit tests",
    )
    .await;
    let ci_class = browser
        .client
        .execute(
            &format!(
                "return document.querySelector({:?}).className",
                card_line("ci")
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(
        ci_class.as_str().unwrap_or_default().contains("ci-red"),
        "{ci_class}"
    );
    wait_text(
        &browser,
        "the task is still in review",
        &format!("{} [data-testid='status-chip']", card_of(&task)),
        "PR ready",
    )
    .await;
    open_panel(&browser, &task).await;
    wait_text(
        &browser,
        "the panel names the failing check too",
        &format!(
            "{} [data-testid='panel-github'] [data-github='ci']",
            panel_of(&task)
        ),
        "CI failing: unit tests",
    )
    .await;
    browser.screenshot("github-ci-failing").await;

    // Merged on GitHub: the task turns done, live.
    let merged = sender
        .send(
            "pull_request",
            &WebhookSender::new_delivery_id(),
            &pull_request("closed", &task, true),
            Signing::Genuine,
        )
        .await;
    assert_eq!(merged.status(), 200);
    wait_text(
        &browser,
        "the task turned done",
        &format!("{} [data-testid='status-chip']", card_of(&task)),
        "Done",
    )
    .await;
    wait_text(
        &browser,
        "the card says the pull request merged",
        &card_line("pull-request"),
        "PR #17 merged",
    )
    .await;
    browser.screenshot("github-merged").await;

    // A reload shows the same from the snapshot and the GitHub state the board loads with it.
    browser
        .client
        .goto(&server.url(&format!("/w/{workspace}")))
        .await
        .unwrap();
    browser.wait_for("[data-testid='board']").await;
    wait_live(&browser).await;
    wait_text(
        &browser,
        "after a reload the card still says merged",
        &card_line("pull-request"),
        "PR #17 merged",
    )
    .await;
    wait_text(
        &browser,
        "after a reload the frame still shows its repository",
        &format!(
            "{} [data-testid='card-github'] [data-github='repository']",
            card_of(&frame)
        ),
        "acme/billing/services/billing",
    )
    .await;
    assert_page_healthy(&browser, "following GitHub").await;
    browser.close().await;
}
