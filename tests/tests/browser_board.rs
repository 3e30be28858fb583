//! The board canvas in real headless Chromium against the real worker: a person designs a small system by
//! hand, and a second session sees every change live, also after its socket is cut.

use cat_tests::api::unique_login;
use cat_tests::browser::Browser;
use cat_tests::worker::WorkerServer;
use fantoccini::Locator;
use fantoccini::key::Key;

fn count(css: &str) -> String {
    format!("return document.querySelectorAll({css:?}).length")
}

async fn click(browser: &Browser, css: &str) {
    browser
        .wait_for(css)
        .await
        .click()
        .await
        .unwrap_or_else(|error| panic!("{css} can be clicked: {error}"));
}

async fn block_id(browser: &Browser, css: &str) -> String {
    browser
        .wait_for(css)
        .await
        .attr("data-block-id")
        .await
        .expect("attribute")
        .expect("a block id")
}

#[tokio::test]
async fn a_board_designed_by_hand_reaches_a_second_session_live() {
    let server = WorkerServer::shared();
    let login = unique_login("designer");
    let alice = Browser::start().await;
    alice.dev_sign_in(&server.url("/"), &login).await;

    // A workspace, created from the workspace list, opens on an empty board that is live.
    let name = alice.wait_for("[data-testid='workspace-name-input']").await;
    name.send_keys("Checkout").await.unwrap();
    click(&alice, "[data-testid='create-workspace-submit']").await;
    alice.wait_for("[data-testid='board']").await;
    alice
        .wait_until(
            "the first session is live",
            "return document.querySelector(\"[data-testid='live-status'][data-state='live']\")",
        )
        .await;
    let board_url = alice.client.current_url().await.unwrap().to_string();
    assert!(
        board_url.contains("/w/ws_"),
        "the board has its own URL: {board_url}"
    );

    let bob = Browser::start().await;
    bob.dev_sign_in(&board_url, &login).await;
    bob.wait_for("[data-testid='board']").await;
    bob.wait_until(
        "the second session is live",
        "return document.querySelector(\"[data-testid='live-status'][data-state='live']\")",
    )
    .await;

    // A frame, two modules in it, two tasks in the first module.
    click(&alice, "[data-testid='add-frame']").await;
    let frame = block_id(&alice, "[data-testid='block-frame']").await;
    click(&alice, "[data-testid='add-module']").await;
    alice
        .wait_until("a module", &count("[data-testid='block-module']"))
        .await;
    let module_a = block_id(&alice, "[data-testid='block-module']").await;
    click(&alice, "[data-testid='add-task']").await;
    alice
        .wait_until("a task", &count("[data-testid='block-task']"))
        .await;
    click(&alice, "[data-testid='add-task']").await;
    alice
        .wait_until(
            "two tasks",
            &format!("{} === 2", count("[data-testid='block-task']")),
        )
        .await;
    // The frame is selected by its header; the second module goes next to the first.
    let frame_head = alice
        .client
        .find(Locator::Css(&format!(
            "[data-block-id='{frame}'] > .block-head"
        )))
        .await
        .unwrap();
    frame_head.click().await.unwrap();
    alice
        .wait_until("the frame's panel", &format!("return document.querySelector(\"[data-testid='block-panel'][data-block-id='{frame}']\")"))
        .await;
    click(&alice, "[data-testid='add-module']").await;
    alice
        .wait_until(
            "two modules",
            &format!("{} === 2", count("[data-testid='block-module']")),
        )
        .await;
    let module_b: String = alice
        .client
        .execute(
            &format!("return [...document.querySelectorAll(\"[data-testid='block-module']\")].map(e => e.dataset.blockId).find(id => id !== '{module_a}')"),
            Vec::new(),
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    alice.screenshot("board-built").await;

    // Reparent: drag the second task into the second module.
    let tasks: Vec<String> = alice
        .client
        .execute("return [...document.querySelectorAll(\"[data-testid='block-task']\")].map(e => e.dataset.blockId)", Vec::new())
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let (task_one, task_two) = (tasks[0].clone(), tasks[1].clone());
    let task_two_element = alice
        .wait_for(&format!("[data-block-id='{task_two}']"))
        .await;
    let module_b_element = alice
        .wait_for(&format!("[data-block-id='{module_b}']"))
        .await;
    alice
        .drag(&task_two_element, (0, 0), &module_b_element, (0, 20))
        .await;
    let nested = format!(
        "return document.querySelector(\"[data-block-id='{module_b}'] [data-block-id='{task_two}']\")"
    );
    alice
        .wait_until("the dragged task sits in the second module", &nested)
        .await;

    // A refused drop: a module cannot leave its frame for the top level. It springs back.
    let module_b_head = alice
        .client
        .find(Locator::Css(&format!(
            "[data-block-id='{module_b}'] > .block-head"
        )))
        .await
        .unwrap();
    let canvas = alice.wait_for("[data-testid='canvas']").await;
    alice
        .drag(&module_b_head, (0, 0), &canvas, (-400, 200))
        .await;
    // Read the text from the DOM: while the bubble fades in, WebDriver's visible-text rule may still
    // see it as empty.
    let message = alice
        .wait_until(
            "the drop refusal is shown",
            "const bubble = document.querySelector(\"[data-testid='drop-refusal']\"); \
             return bubble ? bubble.textContent : null;",
        )
        .await;
    let message = message.as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("module"),
        "the refusal says why: {message:?}"
    );
    alice.screenshot("board-refused-drop").await;
    alice
        .wait_until(
            "the refused module is back in its frame",
            &format!("return document.querySelector(\"[data-block-id='{frame}'] [data-block-id='{module_b}']\") && !document.querySelector(\"[data-block-id='{module_b}']\").style.transform"),
        )
        .await;

    // An edge: drag from the first task's handle onto the second task.
    let handle = alice
        .client
        .find(Locator::Css(&format!(
            "[data-block-id='{task_one}'] > [data-testid='edge-handle']"
        )))
        .await
        .unwrap();
    let target = alice
        .wait_for(&format!("[data-block-id='{task_two}']"))
        .await;
    alice.drag(&handle, (0, 0), &target, (0, 0)).await;
    let edge = format!(
        "return document.querySelector(\"[data-testid='edge'][data-from='{task_one}'][data-to='{task_two}']\")"
    );
    alice
        .wait_until("the dependency edge is drawn", &edge)
        .await;

    // Rename the first task in the side panel.
    let task_one_element = alice
        .wait_for(&format!("[data-block-id='{task_one}']"))
        .await;
    task_one_element.click().await.unwrap();
    let title = alice
        .wait_for(&format!(
            "[data-testid='block-panel'][data-block-id='{task_one}'] [data-testid='panel-title']"
        ))
        .await;
    // The panel re-renders once the full block has loaded; edit after that, replacing the whole title.
    alice.wait_for("[data-testid='panel-description']").await;
    title.send_keys(&(Key::Control + "a")).await.unwrap();
    title
        .send_keys(&("Write the payments API".to_owned() + &Key::Enter))
        .await
        .unwrap();
    let renamed = format!(
        "return document.querySelector(\"[data-block-id='{task_one}']\")?.dataset.title === 'Write the payments API'"
    );
    alice
        .wait_until("the rename shows on the canvas", &renamed)
        .await;
    alice.screenshot("board-edited").await;

    // The second session saw all of it, live.
    bob.wait_until(
        "the frame arrives",
        &format!("return document.querySelector(\"[data-block-id='{frame}']\")"),
    )
    .await;
    bob.wait_until("the reparented task arrives", &nested).await;
    bob.wait_until("the edge arrives", &edge).await;
    bob.wait_until("the rename arrives", &renamed).await;
    bob.screenshot("board-second-session").await;

    // Cut the second session's socket; a change made meanwhile arrives after it resumes.
    bob.client
        .execute("window.__catFactory.dropLiveSocket()", Vec::new())
        .await
        .unwrap();
    // The title field is re-created when the block's revision changes, so it is found again.
    let title = alice
        .wait_for(&format!(
            "[data-testid='block-panel'][data-block-id='{task_one}'] [data-testid='panel-title']"
        ))
        .await;
    // The panel re-renders once the full block has loaded; edit after that, replacing the whole title.
    alice.wait_for("[data-testid='panel-description']").await;
    title.send_keys(&(Key::Control + "a")).await.unwrap();
    title
        .send_keys(&("Build the payments API".to_owned() + &Key::Enter))
        .await
        .unwrap();
    let renamed_again = format!(
        "return document.querySelector(\"[data-block-id='{task_one}']\")?.dataset.title === 'Build the payments API'"
    );
    alice
        .wait_until("the second rename shows", &renamed_again)
        .await;
    bob.wait_until(
        "the change made while cut off arrives after the reconnect",
        &renamed_again,
    )
    .await;
    bob.wait_until(
        "the second session is live again",
        "return document.querySelector(\"[data-testid='live-status'][data-state='live']\")",
    )
    .await;

    // Ctrl+Z takes back the last rename, and the other session follows.
    let canvas = alice.wait_for("[data-testid='canvas']").await;
    canvas.send_keys(&(Key::Control + "z")).await.unwrap();
    alice.wait_until("undo restores the title", &renamed).await;
    bob.wait_until("the undo arrives", &renamed).await;

    // Delete asks first, then removes the task everywhere.
    let task_one_element = alice
        .wait_for(&format!("[data-block-id='{task_one}']"))
        .await;
    task_one_element.click().await.unwrap();
    let canvas = alice.wait_for("[data-testid='canvas']").await;
    canvas.send_keys(&Key::Delete.to_string()).await.unwrap();
    alice.wait_for("[data-testid='confirm-delete']").await;
    alice.screenshot("board-confirm-delete").await;
    click(&alice, "[data-testid='confirm-delete-yes']").await;
    let gone = format!("return !document.querySelector(\"[data-block-id='{task_one}']\")");
    alice.wait_until("the task is deleted", &gone).await;
    bob.wait_until("the deletion arrives", &gone).await;
    bob.wait_until(
        "its edge went with it",
        &format!("{} === 0", count("[data-testid='edge']")),
    )
    .await;

    alice.close().await;
    bob.close().await;
}
