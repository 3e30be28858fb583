//! The board hosted on an origin of its own (as on Cloudflare Pages) against the real worker on
//! another: a person signs in, designs on the board and sees another session's edits live, every call
//! and the live stream crossing origins; a page of an origin the worker does not list gets no grant.

use cat_tests::api::{Client, unique_login};
use cat_tests::board_ui::{assert_page_healthy, wait_live};
use cat_tests::browser::Browser;
use cat_tests::repo_root;
use cat_tests::static_site::StaticSite;
use cat_tests::worker::{ServerOptions, WorkerServer};
use serde_json::json;

/// A worker that lists `board_origin` in BOARD_ORIGINS, the board served from that origin, and a
/// second copy of the board on an origin the worker does not list.
struct CrossOriginSetup {
    server: WorkerServer,
    board: StaticSite,
    foreign: StaticSite,
}

async fn start() -> CrossOriginSetup {
    let (board_listener, board_origin) = StaticSite::reserve().await;
    let (foreign_listener, _) = StaticSite::reserve().await;
    let mut options = ServerOptions::default();
    options
        .vars
        .push(("BOARD_ORIGINS".to_owned(), board_origin.clone()));
    let server = WorkerServer::start_with(options);
    let dist = repo_root().join("web").join("dist");
    let board = StaticSite::serve(board_listener, &dist, Some(&server.base_url));
    let foreign = StaticSite::serve(foreign_listener, &dist, Some(&server.base_url));
    CrossOriginSetup {
        server,
        board,
        foreign,
    }
}

fn count(css: &str) -> String {
    format!("return document.querySelectorAll({css:?}).length")
}

#[tokio::test]
async fn a_board_on_another_origin_signs_in_edits_and_streams_live() {
    let setup = start().await;
    assert_ne!(setup.board.origin, setup.server.base_url);
    let login = unique_login("pages");
    let other_session = Client::sign_in(&setup.server, &login).await;
    let workspace = other_session.create_workspace("Hosted elsewhere").await;

    let browser = Browser::start().await;
    browser
        .dev_sign_in(&setup.board.url(&format!("/w/{workspace}")), &login)
        .await;
    browser.wait_for("[data-testid='board']").await;
    wait_live(&browser).await;
    // The health badge asks the worker too, not the static host.
    browser.wait_for(".health[data-state='ok']").await;
    let page = browser.client.current_url().await.unwrap().to_string();
    assert!(
        page.starts_with(&setup.board.origin),
        "the board stays on its own origin: {page}"
    );

    // A write from the board: a preflighted, cross-origin POST.
    browser
        .wait_for("[data-testid='add-frame']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the new frame", &count("[data-testid='block-frame']"))
        .await;
    let snapshot = other_session.snapshot(&workspace).await;
    assert_eq!(
        snapshot.blocks.len(),
        1,
        "the board's write reached the worker"
    );

    // A write from elsewhere reaches the board over the cross-origin live stream.
    let frame = snapshot.blocks[0].id.to_string();
    other_session
        .create_block(&workspace, "module", Some(&frame), "Arrived live")
        .await;
    browser
        .wait_until(
            "the other session's module, live",
            "return [...document.querySelectorAll(\"[data-testid='block-module']\")].some(e => e.textContent.includes('Arrived live'))",
        )
        .await;
    browser.screenshot("cross-origin-board").await;
    assert_page_healthy(&browser, "working on a board on another origin").await;
    browser.close().await;
}

#[tokio::test]
async fn a_page_on_an_origin_the_worker_does_not_list_gets_no_grant() {
    let setup = start().await;
    let browser = Browser::start().await;
    let probe = format!(
        "const done = arguments[arguments.length - 1];
         fetch({:?}).then(r => done('read ' + r.status), e => done('blocked: ' + e));",
        setup.server.url("/health")
    );

    // From the listed origin the page reads the answer; from another it cannot.
    browser.client.goto(&setup.board.url("/")).await.unwrap();
    let listed = browser
        .client
        .execute_async(&probe, Vec::new())
        .await
        .unwrap();
    assert_eq!(listed, json!("read 200"));
    browser.client.goto(&setup.foreign.url("/")).await.unwrap();
    let foreign = browser
        .client
        .execute_async(&probe, Vec::new())
        .await
        .unwrap();
    assert!(
        foreign
            .as_str()
            .is_some_and(|text| text.starts_with("blocked")),
        "a page of an unlisted origin read the answer: {foreign}"
    );
    browser.close().await;
}

#[tokio::test]
async fn preflights_grants_and_sockets_follow_the_board_origins() {
    let setup = start().await;
    let http = reqwest::Client::new();
    let board = setup.board.origin.as_str();
    let foreign = setup.foreign.origin.as_str();

    // A preflight from the board names the path's methods and the board's headers.
    let preflight = http
        .request(reqwest::Method::OPTIONS, setup.server.url("/workspaces"))
        .header("origin", board)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some(board)
    );
    let methods = header(&preflight, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = header(&preflight, "access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert_eq!(header(&preflight, "access-control-allow-credentials"), None);

    // From an unlisted origin: refused with a code, and no grant.
    let refused = http
        .request(reqwest::Method::OPTIONS, setup.server.url("/workspaces"))
        .header("origin", foreign)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("BOARD_ORIGINS")
    );

    // Ordinary answers: granted to the board, not to others, and always `Vary: Origin`.
    for (origin, granted) in [(board, true), (foreign, false)] {
        let answer = http
            .get(setup.server.url("/health"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            header(&answer, "access-control-allow-origin").is_some(),
            granted,
            "{origin}"
        );
        assert_eq!(header(&answer, "vary").as_deref(), Some("Origin"));
        if granted {
            let exposed = header(&answer, "access-control-expose-headers").unwrap();
            assert!(exposed.contains("x-request-id"), "{exposed}");
        }
    }

    // A live stream opened from an unlisted origin's page is refused before the ticket is looked at;
    // from the board's origin it opens.
    let client = Client::sign_in(&setup.server, &unique_login("sockets")).await;
    let workspace = client.create_workspace("Sockets").await;
    for (origin, opens) in [(board, true), (foreign, false)] {
        let ticket = client
            .post(&format!("/workspaces/{workspace}/events/ticket"), json!({}))
            .await
            .expect(200);
        let url = setup
            .server
            .url(&format!(
                "/workspaces/{workspace}/events?ticket={}&since=0",
                ticket["ticket"].as_str().unwrap()
            ))
            .replace("http://", "ws://");
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        let outcome = tokio_tungstenite::connect_async(request).await;
        match (opens, outcome) {
            (true, Ok(_)) => {}
            (false, Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                assert_eq!(response.status(), 403, "{origin}");
            }
            (expected, outcome) => panic!(
                "a socket from {origin}: expected it to open: {expected}, got {:?}",
                outcome.map(|_| "opened")
            ),
        }
    }
}
