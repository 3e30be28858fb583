//! Editing on the board as people expect it: typing in the panel keeps every keystroke and the focus,
//! someone else's edit never overwrites what you type, a deletion under an open panel keeps your text,
//! undo survives delete-then-undo, rename in place, drop on a child, a viewer's read-only board and a
//! stranger's "no access" page, readable titles far out.

use cat_tests::api::{Client, unique_login};
use cat_tests::board_ui::{
    assert_page_healthy, body_point, empty_canvas_point, open_board, seed_board,
};
use cat_tests::browser::Browser;
use cat_tests::worker::WorkerServer;
use fantoccini::key::Key;
use serde_json::json;

fn panel_for(id: &str) -> String {
    format!("[data-testid='block-panel'][data-block-id='{id}']")
}

async fn open_panel(browser: &Browser, id: &str) {
    let (x, y) = body_point(browser, &format!("[data-block-id='{id}']")).await;
    browser.click_at(x, y, 1).await;
    browser
        .wait_for(&format!(
            "{} [data-testid='panel-description']",
            panel_for(id)
        ))
        .await;
}

async fn focus_field(browser: &Browser, id: &str, field: &str) {
    let (x, y) = body_point(
        browser,
        &format!("{} [data-testid='{field}']", panel_for(id)),
    )
    .await;
    browser.click_at(x, y, 1).await;
    browser
        .wait_until(
            &format!("{field} has the focus"),
            &format!("return document.activeElement?.dataset?.testid === '{field}'"),
        )
        .await;
}

async fn field_value(browser: &Browser, id: &str, field: &str) -> String {
    browser
        .client
        .execute(
            &format!(
                "return document.querySelector(\"{} [data-testid='{field}']\")?.value ?? null",
                panel_for(id)
            ),
            Vec::new(),
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn block_json(client: &Client, workspace: &str, id: &str) -> serde_json::Value {
    client
        .get(&format!("/workspaces/{workspace}/blocks/{id}"))
        .await
        .expect(200)
}

async fn wait_server(client: &Client, workspace: &str, id: &str, field: &str, expected: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let block = block_json(client, workspace, id).await;
        if block[field] == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "within 20 s the server's {field} is {expected:?} (it is {:?})",
            block[field]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn typing_across_panel_fields_keeps_every_keystroke_and_fires_no_shortcut() {
    let server = WorkerServer::shared();
    let login = unique_login("typist");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Typing").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let task = board.tasks[0].clone();
    open_panel(&browser, &task).await;
    let zoom_before = browser
        .wait_for("[data-testid='zoom-label']")
        .await
        .text()
        .await
        .unwrap();

    // Title, Tab past the status, description, Tab, requirements: no pause between fields, and text
    // that holds board shortcuts ("-", "0", "?", Backspace).
    focus_field(&browser, &task, "panel-title").await;
    browser.press('a', &[Key::Control]).await;
    browser.type_text("Cart-0 API?").await;
    browser.press(Key::Tab.into(), &[]).await;
    browser.press(Key::Tab.into(), &[]).await;
    browser.type_text("Keeps the cart - 0 items? fine.X").await;
    browser.press(Key::Backspace.into(), &[]).await;
    browser.press(Key::Tab.into(), &[]).await;
    browser
        .type_text(&format!(
            "- it must add{}- it must remove",
            char::from(Key::Enter)
        ))
        .await;
    let (x, y) = empty_canvas_point(&browser).await;
    browser.click_at(x, y, 1).await;

    wait_server(&client, &board.workspace, &task, "title", "Cart-0 API?").await;
    wait_server(
        &client,
        &board.workspace,
        &task,
        "description",
        "Keeps the cart - 0 items? fine.",
    )
    .await;
    wait_server(
        &client,
        &board.workspace,
        &task,
        "requirements",
        "- it must add\n- it must remove",
    )
    .await;
    let zoom_after = browser
        .wait_for("[data-testid='zoom-label']")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        zoom_before, zoom_after,
        "typing '-' or '0' in a field zooms nothing"
    );
    let dialogs = browser
        .client
        .execute(
            "return document.querySelectorAll('.modal-backdrop').length",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        dialogs,
        json!(0),
        "Backspace in a field asks to delete nothing"
    );
    assert_page_healthy(&browser, "typing across the panel's fields").await;
    browser.screenshot("editing-typed-across-fields").await;
    browser.close().await;
}

#[tokio::test]
async fn someone_elses_edit_while_typing_keeps_my_text_and_says_so() {
    let server = WorkerServer::shared();
    let login = unique_login("writer");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Concurrent").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let task = board.tasks[1].clone();
    open_panel(&browser, &task).await;
    focus_field(&browser, &task, "panel-description").await;
    browser.type_text("my careful words").await;

    // Someone else saves a description meanwhile (another client: its event reaches this board).
    let rev = block_json(&client, &board.workspace, &task).await["rev"].clone();
    client
        .patch(
            &format!("/workspaces/{}/blocks/{task}", board.workspace),
            json!({ "rev": rev, "description": "their words" }),
        )
        .await
        .expect(200);
    browser
        .wait_until(
            "the field says the block changed underneath",
            "return document.querySelector(\"[data-testid='field-conflict-theirs']\")?.textContent === 'their words'",
        )
        .await;
    assert_eq!(
        field_value(&browser, &task, "panel-description").await,
        "my careful words"
    );
    browser.screenshot("editing-concurrent-edit").await;
    // Still typing goes on in the same field, and leaving it saves mine over theirs.
    browser.type_text(" and more").await;
    let (x, y) = empty_canvas_point(&browser).await;
    browser.click_at(x, y, 1).await;
    wait_server(
        &client,
        &board.workspace,
        &task,
        "description",
        "my careful words and more",
    )
    .await;

    // A block deleted by someone else while its panel is open: the panel says so, the typing stays.
    let doomed = board.tasks[6].clone();
    open_panel(&browser, &doomed).await;
    focus_field(&browser, &doomed, "panel-requirements").await;
    browser.type_text("unsaved thoughts").await;
    client
        .delete(&format!("/workspaces/{}/blocks/{doomed}", board.workspace))
        .await
        .expect(204);
    browser
        .wait_for(&format!(
            "{} [data-testid='panel-deleted']",
            panel_for(&doomed)
        ))
        .await;
    assert_eq!(
        field_value(&browser, &doomed, "panel-requirements").await,
        "unsaved thoughts"
    );
    browser.screenshot("editing-deleted-under-panel").await;
    assert_page_healthy(&browser, "concurrent edits and a deletion under the panel").await;
    browser.close().await;
}

#[tokio::test]
async fn undo_after_delete_then_undo_reaches_the_recreated_block() {
    let server = WorkerServer::shared();
    let login = unique_login("undoer");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Undo").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let task = board.tasks[3].clone();

    // Rename in place: double-click the title, type, Enter.
    let (x, y) = body_point(&browser, &format!("[data-block-id='{task}'] [data-rename]")).await;
    browser.click_at(x, y, 2).await;
    browser
        .wait_until(
            "the rename field has the focus",
            "return document.activeElement?.dataset?.testid === 'rename-input'",
        )
        .await;
    browser.press('a', &[Key::Control]).await;
    browser.type_text("Charge a card twice").await;
    browser.press(Key::Enter.into(), &[]).await;
    let titled = |title: &str| {
        format!(
            "return !!document.querySelector(\"[data-testid='block-task'][data-title='{title}']\")"
        )
    };
    browser
        .wait_until("the rename shows", &titled("Charge a card twice"))
        .await;
    wait_server(
        &client,
        &board.workspace,
        &task,
        "title",
        "Charge a card twice",
    )
    .await;

    // F2 on the selected block renames too; Escape cancels.
    browser.press(Key::F2.into(), &[]).await;
    browser
        .wait_until(
            "F2 opens the rename field",
            "return document.activeElement?.dataset?.testid === 'rename-input'",
        )
        .await;
    browser.type_text("nonsense").await;
    browser.press(Key::Escape.into(), &[]).await;
    browser
        .wait_until(
            "Escape closes the rename field",
            "return !document.querySelector(\"[data-testid='rename-input']\")",
        )
        .await;
    browser
        .wait_until("the title is unchanged", &titled("Charge a card twice"))
        .await;

    // Delete it, undo the deletion (it comes back under a new id), undo the rename on that new block.
    browser.press(Key::Delete.into(), &[]).await;
    browser
        .wait_for("[data-testid='confirm-delete-yes']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the task is gone",
            &format!("return !document.querySelector(\"[data-block-id='{task}']\")"),
        )
        .await;
    browser.press('z', &[Key::Control]).await;
    browser
        .wait_until("undo brings the task back", &titled("Charge a card twice"))
        .await;
    browser.press('z', &[Key::Control]).await;
    browser
        .wait_until(
            "the next undo reverts the rename on the re-created block",
            &titled("Charge a card"),
        )
        .await;
    let errors = browser
        .client
        .execute(
            "return [...document.querySelectorAll('.toast.error')].map(t => t.textContent)",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(errors, json!([]), "no undo step failed");
    assert_page_healthy(&browser, "delete, undo, undo").await;
    browser.close().await;
}

#[tokio::test]
async fn a_drop_on_a_child_lands_in_its_container_which_is_highlighted_while_dragging() {
    let server = WorkerServer::shared();
    let login = unique_login("dropper");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Drops").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    // "Checkout page" (in the frame) onto "Place order" (a task in the Orders module).
    let (dragged, onto, module) = (&board.tasks[5], &board.tasks[2], &board.modules[1]);
    let from = body_point(&browser, &format!("[data-block-id='{dragged}']")).await;
    let to = body_point(&browser, &format!("[data-block-id='{onto}']")).await;
    browser.drag_hold(from, to, 6).await;
    let highlighted = browser
        .wait_until(
            "the target container is highlighted",
            "return [...document.querySelectorAll('.drop-target')].map(e => e.dataset.blockId).join(',')",
        )
        .await;
    assert_eq!(
        highlighted,
        json!(module),
        "the module, not the task under the pointer"
    );
    browser.screenshot("editing-drop-target").await;
    browser.drag_release().await;
    browser
        .wait_until(
            "the task lands in the module",
            &format!("return !!document.querySelector(\"[data-block-id='{module}'] [data-block-id='{dragged}']\")"),
        )
        .await;
    wait_server(&client, &board.workspace, dragged, "parentId", module).await;
    // It landed clear of the task it was dropped on, and the module grew to hold it.
    let landed = block_json(&client, &board.workspace, dragged).await;
    let sibling = block_json(&client, &board.workspace, onto).await;
    let overlap = |a: &serde_json::Value, b: &serde_json::Value| {
        let (ax, ay) = (
            a["position"]["x"].as_f64().unwrap(),
            a["position"]["y"].as_f64().unwrap(),
        );
        let (bx, by) = (
            b["position"]["x"].as_f64().unwrap(),
            b["position"]["y"].as_f64().unwrap(),
        );
        let (aw, ah) = (
            a["size"]["width"].as_f64().unwrap(),
            a["size"]["height"].as_f64().unwrap(),
        );
        let (bw, bh) = (
            b["size"]["width"].as_f64().unwrap(),
            b["size"]["height"].as_f64().unwrap(),
        );
        ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah
    };
    assert!(
        !overlap(&landed, &sibling),
        "the drop landed in free space: {landed} / {sibling}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let container = block_json(&client, &board.workspace, module).await;
        let bottom =
            landed["position"]["y"].as_f64().unwrap() + landed["size"]["height"].as_f64().unwrap();
        if container["size"]["height"].as_f64().unwrap() >= bottom {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the module grows to hold the task: {container}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Its corner resizes it.
    let before = block_json(&client, &board.workspace, module).await["size"]["width"]
        .as_f64()
        .unwrap();
    let (x, y) = body_point(
        &browser,
        &format!("[data-block-id='{module}'] > [data-testid='resize-grip']"),
    )
    .await;
    browser.drag_points((x, y), (x + 60.0, y + 30.0), 4).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while block_json(&client, &board.workspace, module).await["size"]["width"]
        .as_f64()
        .unwrap()
        <= before
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the module is wider after a resize"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_page_healthy(&browser, "a drop on a child").await;
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_gets_a_read_only_board_and_a_stranger_a_way_back() {
    let server = WorkerServer::shared();
    let owner = Client::sign_in(server, &unique_login("owner")).await;
    let board = seed_board(&owner, "Shared").await;
    let viewer_login = unique_login("viewer");
    let _viewer = Client::sign_in(server, &viewer_login).await;
    owner
        .post(
            &format!("/workspaces/{}/members", board.workspace),
            json!({ "login": viewer_login, "role": "viewer" }),
        )
        .await
        .expect(200);

    let browser = Browser::start().await;
    open_board(&browser, server, &viewer_login, &board.workspace).await;
    browser
        .wait_until(
            "the board is read-only",
            "return document.querySelector(\"[data-testid='board']\")?.dataset.readOnly === 'true'",
        )
        .await;
    let controls = browser
        .client
        .execute(
            "return ['add-frame', 'add-module', 'add-task', 'undo', 'edge-handle'].filter(id => { \
               const e = document.querySelector(`[data-testid='${id}']`); return e && e.offsetParent; })",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(controls, json!([]), "a viewer sees no editing controls");
    // A double-click on empty canvas creates nothing; the panel shows the block but locks it.
    // Blocks on the canvas only: the side panel carries its block's id too.
    let blocks =
        "return document.querySelectorAll(\"[data-testid='world'] [data-block-id]\").length";
    let before = browser.client.execute(blocks, Vec::new()).await.unwrap();
    let (x, y) = empty_canvas_point(&browser).await;
    browser.click_at(x, y, 2).await;
    let task = board.tasks[0].clone();
    open_panel(&browser, &task).await;
    let locked = browser
        .client
        .execute(
            &format!(
                "return document.querySelector(\"{} [data-testid='panel-title']\").readOnly",
                panel_for(&task)
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(locked, json!(true));
    assert_eq!(
        browser.client.execute(blocks, Vec::new()).await.unwrap(),
        before
    );
    browser.screenshot("viewer-read-only").await;
    assert_page_healthy(&browser, "a viewer's board").await;
    browser.close().await;

    // Someone who is not a member opens the link: a page that says so, with a way back.
    let stranger = Browser::start().await;
    stranger
        .dev_sign_in(
            &server.url(&format!("/w/{}", board.workspace)),
            &unique_login("stranger"),
        )
        .await;
    stranger.wait_for("[data-testid='board-no-access']").await;
    stranger.screenshot("board-no-access").await;
    stranger
        .wait_for("[data-testid='back-to-workspaces']")
        .await
        .click()
        .await
        .unwrap();
    stranger
        .wait_for("[data-testid='workspace-name-input']")
        .await;
    stranger.close().await;
}

#[tokio::test]
async fn titles_stay_readable_at_twenty_percent() {
    let server = WorkerServer::shared();
    let login = unique_login("zoomer");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Far out").await;
    // One service with a name too long for its box at any zoom: it must end with an ellipsis and
    // show whole on hover, never run over its neighbour.
    let long_name = "Payments, refunds and chargebacks in every region and currency we sell in";
    let rev = block_json(&client, &board.workspace, &board.frames[1]).await["rev"].clone();
    client
        .patch(
            &format!("/workspaces/{}/blocks/{}", board.workspace, board.frames[1]),
            json!({ "rev": rev, "title": long_name }),
        )
        .await
        .expect(200);
    // A third service to the left of checkout, whose task depends on one in payments: far out, that
    // line has checkout in its way and must go around it, not through it.
    let search = client
        .create_block_at(
            &board.workspace,
            "frame",
            None,
            "Search service",
            (-760.0, 0.0),
        )
        .await;
    let indexer = client
        .create_block_at(
            &board.workspace,
            "task",
            Some(&search),
            "Indexer",
            (40.0, 40.0),
        )
        .await;
    client
        .create_edge(&board.workspace, &indexer, &board.tasks[6])
        .await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let canvas = browser.wait_for("[data-testid='canvas']").await;
    canvas.click().await.unwrap();
    // Zoom out with the keyboard until the label reads 20 % or less.
    for _ in 0..20 {
        let label = browser
            .wait_for("[data-testid='zoom-label']")
            .await
            .text()
            .await
            .unwrap();
        let percent: f64 = label.trim_end_matches('%').parse().unwrap_or(100.0);
        if percent <= 20.0 {
            break;
        }
        browser.press('-', &[]).await;
        browser
            .wait_until(
                "the zoom label follows",
                &format!("return document.querySelector(\"[data-testid='zoom-label']\").textContent !== '{label}'"),
            )
            .await;
    }
    // Wait for the settled redraw, then measure the service names on screen.
    let sizes = browser
        .wait_until(
            "frame titles are drawn at a readable size",
            "const t = [...document.querySelectorAll('.frame > .block-head .block-title')]; \
             if (t.length < 2) return null; \
             const px = t.map(e => e.getBoundingClientRect().height); \
             const wide = t.map(e => e.getBoundingClientRect().width); \
             return Math.min(...px) >= 10 && Math.min(...wide) >= 40 ? px : null;",
        )
        .await;
    println!("frame title heights on screen at 20 %: {sizes}");
    // No title is clipped without an ellipsis and its full text on hover, none runs out of its
    // service's box, and no two overprint each other.
    let problems = browser
        .client
        .execute(
            "const out = []; \
             const heads = [...document.querySelectorAll('.frame > .block-head .block-title')]; \
             const boxes = heads.map(t => t.getBoundingClientRect()); \
             heads.forEach((t, i) => { \
               const frame = t.closest('.frame').getBoundingClientRect(); const r = boxes[i]; \
               if (r.left < frame.left - 1 || r.right > frame.right + 1) out.push('outside its box: ' + t.textContent); \
               if (t.scrollWidth > t.clientWidth + 1) { \
                 if (getComputedStyle(t).textOverflow !== 'ellipsis') out.push('clipped without an ellipsis: ' + t.textContent); \
                 if (t.title !== t.textContent) out.push('no full title on hover: ' + t.textContent); \
               } \
               boxes.forEach((o, j) => { if (j > i && r.left < o.right && o.left < r.right && r.top < o.bottom && o.top < r.bottom) \
                 out.push('overprints: ' + t.textContent + ' / ' + heads[j].textContent); }); \
             }); \
             const long = heads.find(t => t.textContent.startsWith('Payments, refunds')); \
             if (!long) out.push('the long service name is not drawn'); \
             else if (long.scrollWidth <= long.clientWidth) out.push('the long service name is not shortened'); \
             return out;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        problems,
        json!([]),
        "service names at 20 % are readable, whole on hover, and apart"
    );
    // Tasks are not drawn this far out: their dependencies roll up into service-to-service lines with
    // a count (checkout → payments for "Add to cart → Charge a card", payments → checkout for
    // "Refund → Checkout page"; "Remove from cart → Place order" stays inside checkout).
    let rolled = browser
        .wait_until(
            "dependencies roll up between the services",
            "const r = [...document.querySelectorAll(\"[data-testid='edge-rollup']\")]; \
             return r.length === 3 ? r.map(e => [e.dataset.from, e.dataset.to, e.dataset.count]) : null;",
        )
        .await;
    let mut pairs: Vec<(String, String, String)> = rolled
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
                pair[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    let (checkout, payments) = (board.frames[0].clone(), board.frames[1].clone());
    let mut expected = vec![
        (checkout.clone(), payments.clone(), "1".to_owned()),
        (payments.clone(), checkout.clone(), "1".to_owned()),
        (search.clone(), payments.clone(), "1".to_owned()),
    ];
    expected.sort();
    assert_eq!(pairs, expected);
    // The search → payments line goes around checkout (sampled along its path on screen, against
    // checkout's box a little inset), and its count sits on the line. The routes are computed a
    // budget per render, so wait for the settled one.
    let crossing = browser
        .wait_until(
            "the search → payments line is routed around checkout",
            &format!(
                "const line = document.querySelector(\"[data-testid='edge-rollup'][data-from='{search}'] .edge-line\"); \
                 const box = document.querySelector(\"[data-block-id='{checkout}']\").getBoundingClientRect(); \
                 if (!line) return null; \
                 const ctm = line.getScreenCTM(); const total = line.getTotalLength(); \
                 for (let i = 0; i <= 200; i++) {{ \
                   const p = new DOMPoint(line.getPointAtLength(total * i / 200).x, line.getPointAtLength(total * i / 200).y).matrixTransform(ctm); \
                   if (p.x > box.left + 2 && p.x < box.right - 2 && p.y > box.top + 2 && p.y < box.bottom - 2) return null; \
                 }} \
                 return total;"
            ),
        )
        .await;
    println!("the search → payments line, routed around checkout: {crossing} world px long");
    let path = browser.screenshot("board-zoom-20").await;
    assert!(path.exists());
    assert_page_healthy(&browser, "zooming out to 20 %").await;
    browser.close().await;
}

#[tokio::test]
async fn a_member_added_in_the_members_dialog_sees_the_board_live() {
    let server = WorkerServer::shared();
    let owner_login = unique_login("sharer");
    let owner = Client::sign_in(server, &owner_login).await;
    let board = seed_board(&owner, "Team board").await;
    let guest_login = unique_login("guest");
    let _guest = Client::sign_in(server, &guest_login).await;

    let alice = Browser::start().await;
    open_board(&alice, server, &owner_login, &board.workspace).await;
    alice
        .wait_for("[data-testid='open-members']")
        .await
        .click()
        .await
        .unwrap();
    alice.wait_for("[data-testid='members-dialog']").await;
    // Someone who never signed in is explained, not "not found".
    let login = alice.wait_for("[data-testid='member-login']").await;
    login.send_keys("nobody-here-yet").await.unwrap();
    alice
        .wait_for("[data-testid='member-add']")
        .await
        .click()
        .await
        .unwrap();
    let message = alice
        .wait_until(
            "adding an unknown login is explained",
            "return document.querySelector(\"[data-testid='members-error']\")?.textContent",
        )
        .await;
    assert!(
        message.as_str().unwrap_or_default().contains("sign in"),
        "{message}"
    );
    login.send_keys(&guest_login).await.unwrap();
    alice
        .wait_for("[data-testid='member-add']")
        .await
        .click()
        .await
        .unwrap();
    alice
        .wait_until(
            "the guest is listed",
            &format!("return !!document.querySelector(\"[data-testid='member'][data-login='{guest_login}']\")"),
        )
        .await;
    // The board is in the owner's personal account: it has no members to manage beyond its owner.
    assert_eq!(
        alice
            .client
            .execute(
                "return !!document.querySelector(\"[data-testid='account-member-section']\")",
                Vec::new(),
            )
            .await
            .unwrap(),
        json!(false),
        "a personal account's members are not offered"
    );
    alice.screenshot("members-dialog").await;
    alice
        .wait_for("[data-testid='members-close']")
        .await
        .click()
        .await
        .unwrap();

    let bob = Browser::start().await;
    open_board(&bob, server, &guest_login, &board.workspace).await;
    bob.wait_until(
        "the guest can edit",
        "return document.querySelector(\"[data-testid='board']\")?.dataset.readOnly === 'false'",
    )
    .await;
    let frames = "return document.querySelectorAll(\"[data-testid='block-frame']\").length";
    alice
        .wait_for("[data-testid='add-frame']")
        .await
        .click()
        .await
        .unwrap();
    bob.wait_until(
        "the owner's new frame arrives live",
        &format!("{frames} === 3"),
    )
    .await;
    assert_page_healthy(&alice, "sharing the board").await;
    assert_page_healthy(&bob, "opening a shared board").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn an_organisations_admin_adds_and_removes_account_members_from_the_sharing_dialog() {
    let server = WorkerServer::shared();
    let admin_login = unique_login("orgowner");
    let admin = Client::sign_in(server, &admin_login).await;
    let colleague = Client::sign_in(server, &unique_login("teammate")).await;
    let org = admin
        .post("/accounts", json!({ "name": "Acme" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workspace = admin
        .post(
            "/workspaces",
            json!({ "name": "Acme board", "accountId": org }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    colleague
        .get(&format!("/workspaces/{workspace}"))
        .await
        .expect(404);

    let browser = Browser::start().await;
    open_board(&browser, server, &admin_login, &workspace).await;
    browser
        .wait_for("[data-testid='open-members']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the account's members are listed, the admin among them",
            &format!(
                "return !!document.querySelector(\"[data-testid='account-member-section'] \
                   [data-testid='account-member'][data-login='{admin_login}']\")"
            ),
        )
        .await;
    let login = browser
        .wait_for("[data-testid='account-member-login']")
        .await;
    login.send_keys(&colleague.login).await.unwrap();
    browser
        .wait_for("[data-testid='account-member-add']")
        .await
        .click()
        .await
        .unwrap();
    let row = format!(
        "[data-testid='account-member'][data-login='{}']",
        colleague.login
    );
    browser
        .wait_until(
            "the colleague is listed as a member of the account",
            &format!(
                "return document.querySelector(\"{row} [data-testid='account-member-role']\")?.value === 'member'"
            ),
        )
        .await;
    browser.screenshot("members-dialog-account").await;
    // In the account, the colleague opens its (unrestricted) board.
    assert_eq!(
        colleague
            .get(&format!("/workspaces/{workspace}"))
            .await
            .expect(200)["role"],
        "member"
    );
    browser
        .wait_for(&format!("{row} [data-testid='account-member-remove']"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the colleague is gone from the list",
            &format!("return !document.querySelector(\"{row}\")"),
        )
        .await;
    colleague
        .get(&format!("/workspaces/{workspace}"))
        .await
        .expect(404);
    // The last admin cannot remove themselves: the refusal is explained, the list unchanged.
    browser
        .wait_for(&format!(
            "[data-testid='account-member'][data-login='{admin_login}'] [data-testid='account-member-remove']"
        ))
        .await
        .click()
        .await
        .unwrap();
    let message = browser
        .wait_until(
            "removing the last admin is refused in words",
            "return document.querySelector(\"[data-testid='account-members-error']\")?.textContent",
        )
        .await;
    let message = message.as_str().unwrap_or_default();
    assert!(
        message.contains("last admin") && !message.contains("last_account_admin"),
        "the refusal in words, no raw API code: {message}"
    );
    assert_page_healthy(&browser, "managing the account's members").await;
    browser.close().await;
}

#[tokio::test]
async fn shift_click_selects_several_blocks_that_move_and_delete_together() {
    let server = WorkerServer::shared();
    let login = unique_login("selector");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Multi").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let (first, second) = (board.tasks[0].clone(), board.tasks[1].clone());
    for task in [&first, &second] {
        let (x, y) = body_point(&browser, &format!("[data-block-id='{task}']")).await;
        browser.shift_click_at(x, y).await;
    }
    browser
        .wait_until(
            "two blocks are selected",
            "return document.querySelector(\"[data-testid='selection-count']\")?.textContent === '2 selected'",
        )
        .await;
    let before = block_json(&client, &board.workspace, &first).await;
    let from = body_point(&browser, &format!("[data-block-id='{first}']")).await;
    browser.drag_points(from, (from.0 + 40.0, from.1), 5).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (moved_first, moved_second) = loop {
        let one = block_json(&client, &board.workspace, &first).await;
        let two = block_json(&client, &board.workspace, &second).await;
        if one["position"] != before["position"] && two["position"]["x"] == one["position"]["x"] {
            break (one, two);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both selected tasks moved together within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(moved_first["position"]["x"].as_f64() > before["position"]["x"].as_f64());
    assert_eq!(
        moved_second["parentId"], before["parentId"],
        "a group move keeps the parents"
    );
    browser.screenshot("multi-select-moved").await;

    browser.press(Key::Delete.into(), &[]).await;
    let text = browser
        .wait_until(
            "the confirmation names both",
            "return document.querySelector(\"[data-testid='confirm-delete']\")?.textContent",
        )
        .await;
    assert!(
        text.as_str().unwrap_or_default().contains("these 2 blocks"),
        "{text}"
    );
    browser
        .wait_for("[data-testid='confirm-delete-yes']")
        .await
        .click()
        .await
        .unwrap();
    for task in [&first, &second] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while client
            .get(&format!("/workspaces/{}/blocks/{task}", board.workspace))
            .await
            .status
            != 404
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{task} is deleted within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert_page_healthy(&browser, "moving and deleting a multi-selection").await;
    browser.close().await;
}

async fn server_title(client: &Client, workspace: &str, id: &str) -> String {
    block_json(client, workspace, id).await["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn redo_puts_back_what_undo_took_back() {
    let server = WorkerServer::shared();
    let login = unique_login("redoer");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Redo").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    let task = board.tasks[4].clone();
    open_panel(&browser, &task).await;
    // Rename it in place (F2 on the selected block).
    browser.press(Key::F2.into(), &[]).await;
    browser
        .wait_until(
            "F2 opens the rename field",
            "return document.activeElement?.dataset?.testid === 'rename-input'",
        )
        .await;
    browser.press('a', &[Key::Control]).await;
    browser.type_text("Refund twice").await;
    browser.press(Key::Enter.into(), &[]).await;
    wait_server(&client, &board.workspace, &task, "title", "Refund twice").await;
    let redo_enabled =
        "return document.querySelector(\"[data-testid='redo']\")?.disabled === false";
    let redo_disabled =
        "return document.querySelector(\"[data-testid='redo']\")?.disabled === true";
    browser
        .wait_until("nothing to redo yet", redo_disabled)
        .await;

    // Undo, then redo with Ctrl+Shift+Z; undo again, redo with Ctrl+Y; then the toolbar buttons.
    browser.press('z', &[Key::Control]).await;
    wait_server(&client, &board.workspace, &task, "title", "Refund").await;
    browser.wait_until("redo is offered", redo_enabled).await;
    browser.press('Z', &[Key::Control, Key::Shift]).await;
    wait_server(&client, &board.workspace, &task, "title", "Refund twice").await;
    browser.press('z', &[Key::Control]).await;
    wait_server(&client, &board.workspace, &task, "title", "Refund").await;
    browser.press('y', &[Key::Control]).await;
    wait_server(&client, &board.workspace, &task, "title", "Refund twice").await;
    browser
        .wait_for("[data-testid='undo']")
        .await
        .click()
        .await
        .unwrap();
    wait_server(&client, &board.workspace, &task, "title", "Refund").await;
    browser
        .wait_until("the redo button is enabled", redo_enabled)
        .await;
    browser
        .wait_for("[data-testid='redo']")
        .await
        .click()
        .await
        .unwrap();
    wait_server(&client, &board.workspace, &task, "title", "Refund twice").await;
    assert_eq!(
        server_title(&client, &board.workspace, &task).await,
        "Refund twice"
    );
    browser
        .wait_until("everything redone, nothing left to redo", redo_disabled)
        .await;
    assert_page_healthy(&browser, "undo and redo").await;
    browser.close().await;
}

/// Waits until the server's board has `blocks` blocks and `edges` edges, and returns it.
async fn wait_board_counts(
    client: &Client,
    workspace: &str,
    blocks: usize,
    edges: usize,
) -> domain::api::board::BoardSnapshot {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let snapshot = client.snapshot(workspace).await;
        if snapshot.blocks.len() == blocks && snapshot.edges.len() == edges {
            return snapshot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "within 20 s the board has {blocks} blocks and {edges} edges (it has {} and {})",
            snapshot.blocks.len(),
            snapshot.edges.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn copy_paste_and_duplicate_bring_subtrees_and_the_edges_inside_them() {
    let server = WorkerServer::shared();
    let login = unique_login("copier");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Copies").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;

    // Copy a task, select a module elsewhere, paste: the copy lands in that module.
    let refund = board.tasks[4].clone();
    open_panel(&browser, &refund).await;
    browser.press('c', &[Key::Control]).await;
    let cart = board.modules[0].clone();
    open_panel(&browser, &cart).await;
    browser.press('v', &[Key::Control]).await;
    let snapshot = wait_board_counts(&client, &board.workspace, 13, 3).await;
    let pasted = snapshot
        .blocks
        .iter()
        .find(|block| block.title == "Refund" && block.id.to_string() != refund)
        .expect("a pasted Refund");
    assert_eq!(
        pasted.parent_id.as_ref().map(ToString::to_string),
        Some(cart.clone())
    );
    // Undo takes the paste back.
    browser.press('z', &[Key::Control]).await;
    wait_board_counts(&client, &board.workspace, 12, 3).await;
    // Duplicate the checkout frame: its 2 modules and 4 tasks come too, and the one edge between two
    // of its tasks; the edges to the payments frame stay behind.
    let frame = board.frames[0].clone();
    open_panel(&browser, &frame).await;
    browser.press('d', &[Key::Control]).await;
    let snapshot = wait_board_counts(&client, &board.workspace, 12 + 7, 3 + 1).await;
    let copies: Vec<_> = snapshot
        .blocks
        .iter()
        .filter(|block| block.title == "Checkout service")
        .collect();
    assert_eq!(copies.len(), 2);
    let copy = copies
        .iter()
        .find(|block| block.id.to_string() != frame)
        .unwrap();
    let original = copies
        .iter()
        .find(|block| block.id.to_string() == frame)
        .unwrap();
    assert!(
        copy.position.x > original.position.x,
        "the duplicate sits beside the original"
    );
    browser
        .wait_until(
            "the duplicate is selected",
            &format!(
                "return document.querySelector(\"[data-testid='block-panel'][data-block-id='{}']\")",
                copy.id
            ),
        )
        .await;
    browser.screenshot("editing-duplicated-frame").await;

    assert_page_healthy(&browser, "copy, paste, duplicate").await;
    browser.close().await;
}

#[tokio::test]
async fn the_context_menu_and_ctrl_k_find_and_act_on_blocks() {
    let server = WorkerServer::shared();
    let login = unique_login("menus");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Menus").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;

    // Right-click a task: it is selected and the menu offers to rename it.
    let task = board.tasks[2].clone();
    let (x, y) = body_point(&browser, &format!("[data-block-id='{task}']")).await;
    browser.right_click_at(x, y).await;
    browser.wait_for("[data-testid='context-menu']").await;
    browser
        .wait_for(&format!(
            "[data-testid='block-panel'][data-block-id='{task}']"
        ))
        .await;
    browser.screenshot("context-menu-task").await;
    browser
        .wait_for("[data-testid='menu-rename']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the menu's Rename opens the rename field",
            "return document.activeElement?.dataset?.testid === 'rename-input' \
             && !document.querySelector(\"[data-testid='context-menu']\")",
        )
        .await;
    browser.press(Key::Escape.into(), &[]).await;

    // Right-click empty canvas: "Add frame here" adds a frame.
    let (x, y) = empty_canvas_point(&browser).await;
    browser.right_click_at(x, y).await;
    browser
        .wait_for("[data-testid='menu-add-frame-here']")
        .await
        .click()
        .await
        .unwrap();
    wait_board_counts(&client, &board.workspace, 13, 3).await;
    // Escape closes an open menu without doing anything.
    let (x, y) = empty_canvas_point(&browser).await;
    browser.right_click_at(x, y).await;
    browser.wait_for("[data-testid='context-menu']").await;
    browser.press(Key::Escape.into(), &[]).await;
    browser
        .wait_until(
            "Escape closes the menu",
            "return !document.querySelector(\"[data-testid='context-menu']\")",
        )
        .await;

    // Ctrl+K: type part of a title, Enter jumps to the best match (selected, zoomed to).
    let zoom_before = browser
        .wait_for("[data-testid='zoom-label']")
        .await
        .text()
        .await
        .unwrap();
    browser.press('k', &[Key::Control]).await;
    browser
        .wait_until(
            "the finder has the focus",
            "return document.activeElement?.dataset?.testid === 'finder-input'",
        )
        .await;
    browser.type_text("webh").await;
    browser
        .wait_until(
            "the finder lists Webhooks first",
            &format!(
                "return document.querySelector(\"[data-testid='finder-result']\")?.dataset.blockId === '{}'",
                board.tasks[6]
            ),
        )
        .await;
    browser.screenshot("finder").await;
    browser.press(Key::Enter.into(), &[]).await;
    browser
        .wait_for(&format!(
            "[data-testid='block-panel'][data-block-id='{}']",
            board.tasks[6]
        ))
        .await;
    browser
        .wait_until(
            "the finder closed and the view zoomed to the block",
            &format!(
                "return !document.querySelector(\"[data-testid='finder']\") && \
                 document.querySelector(\"[data-testid='zoom-label']\").textContent !== '{zoom_before}'"
            ),
        )
        .await;
    assert_page_healthy(&browser, "the context menu and the finder").await;
    browser.close().await;
}

#[tokio::test]
async fn the_board_works_at_1024_pixels_with_a_panel_that_folds() {
    let server = WorkerServer::shared();
    let login = unique_login("small");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "A small screen").await;
    let browser = Browser::start().await;
    browser.client.set_window_size(1024, 768).await.unwrap();
    open_board(&browser, server, &login, &board.workspace).await;
    let task = board.tasks[0].clone();
    open_panel(&browser, &task).await;
    let measures = "const t = document.querySelector(\"[data-testid='toolbar']\") ?? document.querySelector('.toolbar'); \
        const c = document.querySelector(\"[data-testid='canvas']\").getBoundingClientRect(); \
        const p = document.querySelector(\"[data-testid='block-panel']\").getBoundingClientRect(); \
        return [document.documentElement.clientWidth, t.scrollWidth - t.clientWidth, c.width, p.width, \
                document.documentElement.scrollWidth - document.documentElement.clientWidth];";
    let open = browser.client.execute(measures, Vec::new()).await.unwrap();
    println!(
        "at 1024 px with the panel open: [page, toolbar overflow, canvas, panel, page overflow] = {open}"
    );
    assert!(open[0].as_f64().unwrap() <= 1024.0);
    assert_eq!(
        open[1].as_f64().unwrap(),
        0.0,
        "the toolbar does not spill over"
    );
    assert_eq!(
        open[4].as_f64().unwrap(),
        0.0,
        "the page does not scroll sideways"
    );
    assert!(
        open[2].as_f64().unwrap() >= 650.0,
        "the canvas keeps most of the width"
    );
    for id in [
        "add-frame",
        "undo",
        "redo",
        "zoom-fit",
        "open-members",
        "live-status",
    ] {
        let visible = browser
            .client
            .execute(
                &format!(
                    "const e = document.querySelector(\"[data-testid='{id}']\"); const r = e.getBoundingClientRect(); \
                     return r.width > 0 && r.right <= document.documentElement.clientWidth;"
                ),
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(visible, json!(true), "{id} is on screen at 1024 px");
    }
    browser.screenshot("board-1024-panel-open").await;

    // Fold the panel: the canvas takes the room; unfold: the fields are back with the same block.
    browser
        .wait_for("[data-testid='panel-collapse']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the folded panel leaves the canvas nearly the whole width",
            "return document.querySelector(\"[data-testid='canvas']\").getBoundingClientRect().width > 950",
        )
        .await;
    browser.screenshot("board-1024-panel-folded").await;
    browser
        .wait_for("[data-testid='panel-expand']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the panel unfolds with its fields",
            &format!(
                "const f = document.querySelector(\"{} [data-testid='panel-title']\"); return f && f.offsetParent !== null",
                panel_for(&task)
            ),
        )
        .await;
    assert_page_healthy(&browser, "the board at 1024 px").await;
    browser.close().await;
}

#[tokio::test]
async fn the_minimap_shows_the_whole_board_and_takes_the_view_where_it_is_clicked() {
    let server = WorkerServer::shared();
    let login = unique_login("mapper");
    let client = Client::sign_in(server, &login).await;
    let board = seed_board(&client, "Map").await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &board.workspace).await;
    // A small board starts without it; the toolbar's Map shows it, with both services on it.
    let frames_on_map =
        "return document.querySelectorAll(\"[data-testid='minimap'] .minimap-frame\").length";
    assert_eq!(
        browser
            .client
            .execute(frames_on_map, Vec::new())
            .await
            .unwrap(),
        json!(0)
    );
    browser
        .wait_for("[data-testid='toggle-minimap']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the map shows both services",
            &format!("{frames_on_map} === 2"),
        )
        .await;
    let world = "return document.querySelector(\"[data-testid='world']\").style.transform";
    let outline = "return document.querySelector(\"[data-testid='minimap-view']\").style.transform";
    let (world_before, outline_before) = (
        browser.client.execute(world, Vec::new()).await.unwrap(),
        browser.client.execute(outline, Vec::new()).await.unwrap(),
    );
    // Click the map's bottom-right corner: the view goes there, and the outline follows.
    let (mx, my, mw, mh) = browser.rect("[data-testid='minimap']").await.unwrap();
    browser.click_at(mx + mw - 6.0, my + mh - 6.0, 1).await;
    browser
        .wait_until(
            "the view moved to the clicked spot",
            &format!(
                "const w = document.querySelector(\"[data-testid='world']\").style.transform; \
                 const o = document.querySelector(\"[data-testid='minimap-view']\").style.transform; \
                 return w !== {world_before} && o !== {outline_before};"
            ),
        )
        .await;
    browser.screenshot("minimap").await;
    // Hidden again with the same button.
    browser
        .wait_for("[data-testid='toggle-minimap']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            "the map is hidden",
            "return !document.querySelector(\"[data-testid='minimap']\")",
        )
        .await;
    assert_page_healthy(&browser, "the minimap").await;
    browser.close().await;
}

#[tokio::test]
async fn presence_shows_who_else_is_on_the_board_and_which_block_they_have_open() {
    let server = WorkerServer::shared();
    let owner_login = unique_login("host");
    let owner = Client::sign_in(server, &owner_login).await;
    let board = seed_board(&owner, "Together").await;
    let guest_login = unique_login("guest");
    let _guest = Client::sign_in(server, &guest_login).await;
    owner
        .post(
            &format!("/workspaces/{}/members", board.workspace),
            json!({ "login": guest_login, "role": "member" }),
        )
        .await
        .expect(200);
    let host = Browser::start().await;
    open_board(&host, server, &owner_login, &board.workspace).await;
    let guest = Browser::start().await;
    open_board(&guest, server, &guest_login, &board.workspace).await;
    let avatar = format!("[data-testid='present-person'][data-login='{guest_login}']");
    host.wait_until(
        "the host sees the guest on the board",
        &format!("return document.querySelector(\"{avatar}\")"),
    )
    .await;
    // Nobody lists themselves.
    let own = host
        .client
        .execute(
            &format!(
                "return !!document.querySelector(\"[data-testid='present-person'][data-login='{owner_login}']\")"
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(own, json!(false));

    // The guest opens a task: the host's avatar of the guest names it.
    let task = &board.tasks[0];
    open_panel(&guest, task).await;
    host.wait_until(
        "the host sees which block the guest has open",
        &format!("return document.querySelector(\"{avatar}\")?.dataset.blocks === '{task}'"),
    )
    .await;
    let title = host
        .client
        .execute(
            &format!("return document.querySelector(\"{avatar}\").title"),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        title.as_str(),
        Some(format!("{guest_login} has “Add to cart” open").as_str())
    );
    // ... and the task's card on the host's board carries the guest's marker; no other card does.
    host.wait_until(
        "the host sees the guest's marker on the card the guest has open",
        &format!(
            "return document.querySelector(\"[data-block-id='{task}'] > [data-testid='open-marker']\")?.dataset.logins === '{guest_login}' \
             && document.querySelectorAll(\"[data-testid='open-marker']\").length === 1"
        ),
    )
    .await;
    host.screenshot("presence").await;

    // The guest leaves: the avatar goes, and so does the marker.
    guest.close().await;
    host.wait_until(
        "the guest's avatar and card marker go when they leave",
        &format!(
            "return !document.querySelector(\"{avatar}\") && !document.querySelector(\"[data-testid='open-marker']\")"
        ),
    )
    .await;
    assert_page_healthy(&host, "presence coming and going").await;
    host.close().await;
}

#[tokio::test]
async fn tab_walks_the_blocks_in_the_order_they_are_laid_out() {
    let server = WorkerServer::shared();
    let login = unique_login("tabber");
    let client = Client::sign_in(server, &login).await;
    let workspace = client.create_workspace("Tab order").await;
    let ws = workspace.as_str();
    // Created in an order that differs from the layout (and ids are random): Tab must follow the
    // layout — rows top to bottom, left to right, each container's blocks before the next container.
    let frame = client
        .create_block_at(ws, "frame", None, "Service", (0.0, 0.0))
        .await;
    let right = client
        .create_block_at(ws, "module", Some(&frame), "Right module", (330.0, 60.0))
        .await;
    let left = client
        .create_block_at(ws, "module", Some(&frame), "Left module", (20.0, 60.0))
        .await;
    client
        .create_block_at(ws, "task", Some(&left), "Lower task", (20.0, 120.0))
        .await;
    client
        .create_block_at(ws, "task", Some(&left), "Upper task", (20.0, 40.0))
        .await;
    let only = client
        .create_block_at(ws, "task", Some(&right), "Only task", (20.0, 40.0))
        .await;
    let browser = Browser::start().await;
    open_board(&browser, server, &login, &workspace).await;
    browser.wait_for("[data-testid='block-task']").await;
    browser
        .client
        .execute(
            "document.querySelector(\"[data-testid='canvas']\").focus()",
            Vec::new(),
        )
        .await
        .unwrap();
    let mut visited = Vec::new();
    for _ in 0..6 {
        browser.press(Key::Tab.into(), &[]).await;
        let title = browser
            .client
            .execute(
                "return document.activeElement?.dataset?.title ?? null",
                Vec::new(),
            )
            .await
            .unwrap();
        visited.push(title.as_str().unwrap_or("(not a block)").to_owned());
    }
    assert_eq!(
        visited,
        [
            "Service",
            "Left module",
            "Upper task",
            "Lower task",
            "Right module",
            "Only task"
        ]
    );
    // Enter on the focused block selects it (the panel opens on it).
    browser.press(Key::Enter.into(), &[]).await;
    browser.wait_for(&panel_for(&only)).await;
    assert_page_healthy(&browser, "tabbing through the board").await;
    browser.close().await;
}
