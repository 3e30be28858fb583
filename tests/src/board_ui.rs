//! Helpers for the board's browser tests: a seeded board (frames, modules, tasks, edges) and the
//! page's state as plain values (where to point at things, whether the page broke).

use serde_json::Value;

use crate::api::Client;
use crate::browser::Browser;
use crate::worker::WorkerServer;
use fantoccini::key::Key;

/// A board with two frames, three modules, seven tasks and three edges, laid out so everything is
/// visible at once.
pub struct SeededBoard {
    pub workspace: String,
    pub frames: Vec<String>,
    pub modules: Vec<String>,
    pub tasks: Vec<String>,
    pub edges: Vec<String>,
}

pub async fn seed_board(client: &Client, name: &str) -> SeededBoard {
    let workspace = client.create_workspace(name).await;
    let ws = workspace.as_str();
    let frame_a = client
        .create_block_at(ws, "frame", None, "Checkout service", (0.0, 0.0))
        .await;
    let frame_b = client
        .create_block_at(ws, "frame", None, "Payments service", (720.0, 0.0))
        .await;
    let module_a1 = client
        .create_block_at(ws, "module", Some(&frame_a), "Cart", (20.0, 60.0))
        .await;
    let module_a2 = client
        .create_block_at(ws, "module", Some(&frame_a), "Orders", (330.0, 60.0))
        .await;
    let module_b1 = client
        .create_block_at(ws, "module", Some(&frame_b), "Charges", (20.0, 60.0))
        .await;
    let mut tasks = Vec::new();
    for (parent, title, at) in [
        (&module_a1, "Add to cart", (40.0, 40.0)),
        (&module_a1, "Remove from cart", (40.0, 120.0)),
        (&module_a2, "Place order", (40.0, 40.0)),
        (&module_b1, "Charge a card", (40.0, 40.0)),
        (&module_b1, "Refund", (40.0, 120.0)),
        (&frame_a, "Checkout page", (40.0, 300.0)),
        (&frame_b, "Webhooks", (340.0, 300.0)),
    ] {
        tasks.push(
            client
                .create_block_at(ws, "task", Some(parent), title, at)
                .await,
        );
    }
    let mut edges = Vec::new();
    for (from, to) in [(0, 3), (1, 2), (4, 5)] {
        edges.push(client.create_edge(ws, &tasks[from], &tasks[to]).await);
    }
    SeededBoard {
        workspace,
        frames: vec![frame_a, frame_b],
        modules: vec![module_a1, module_a2, module_b1],
        tasks,
        edges,
    }
}

/// Signs `login` in and opens the board of `workspace`, waiting until it is live.
pub async fn open_board(browser: &Browser, server: &WorkerServer, login: &str, workspace: &str) {
    browser
        .dev_sign_in(&server.url(&format!("/w/{workspace}")), login)
        .await;
    browser.wait_for("[data-testid='board']").await;
    wait_live(browser).await;
}

pub async fn wait_live(browser: &Browser) {
    browser
        .wait_until(
            "the board is live",
            "return document.querySelector(\"[data-testid='live-status'][data-state='live']\")",
        )
        .await;
}

/// Fails the test if the page shows the crash banner or its console holds an error.
pub async fn assert_page_healthy(browser: &Browser, after: &str) {
    let banner = browser
        .client
        .execute(
            "return !!document.querySelector(\"[data-testid='crash-banner']\")",
            Vec::new(),
        )
        .await
        .unwrap_or(Value::Bool(true));
    let problems = browser.console_problems().await;
    if banner == Value::Bool(true) || !problems.is_empty() {
        let shot = browser.screenshot("page-broke").await;
        panic!(
            "the page broke after {after}: crash banner shown: {banner}; console: {problems:#?}; screenshot {}",
            shot.display()
        );
    }
}

/// A viewport point over `css` where the element itself (not a child drawn on top of it) is what the
/// pointer hits: a frame's or module's body, a task, a header.
pub async fn body_point(browser: &Browser, css: &str) -> (f64, f64) {
    let script = format!(
        "const e = document.querySelector({css:?}); if (!e) return null; \
         const r = e.getBoundingClientRect(); \
         for (let fy = 0.95; fy > 0.05; fy -= 0.05) for (let fx = 0.05; fx < 0.95; fx += 0.05) {{ \
           const x = r.x + r.width * fx, y = r.y + r.height * fy; \
           if (document.elementFromPoint(x, y) === e) return [x, y]; }} \
         return null;"
    );
    point(browser, &script, css).await
}

/// A viewport point on an edge's line where the line is what the pointer hits (edges run under task
/// cards): the middle if it is visible there, else the nearest visible point to it.
pub async fn edge_point(browser: &Browser, edge_id: &str) -> (f64, f64) {
    let script = format!(
        "const p = document.querySelector(\"[data-edge-id='{edge_id}'] .edge-hit\"); if (!p) return null; \
         const m = p.getScreenCTM(); const length = p.getTotalLength(); \
         for (let step = 0; step <= 40; step++) {{ for (const sign of [1, -1]) {{ \
           const t = 0.5 + sign * step / 100; if (t < 0.05 || t > 0.95) continue; \
           const at = p.getPointAtLength(length * t); \
           const x = at.x * m.a + at.y * m.c + m.e, y = at.x * m.b + at.y * m.d + m.f; \
           const hit = document.elementFromPoint(x, y); \
           if (hit && hit.closest('[data-edge-id]')?.dataset.edgeId === '{edge_id}') return [x, y]; }} }} \
         return null;"
    );
    point(browser, &script, edge_id).await
}

/// A viewport point on the canvas where no block and no edge is.
pub async fn empty_canvas_point(browser: &Browser) -> (f64, f64) {
    let script = "const c = document.querySelector(\"[data-testid='canvas']\").getBoundingClientRect(); \
         for (let fy = 0.97; fy > 0.03; fy -= 0.04) for (let fx = 0.03; fx < 0.97; fx += 0.04) { \
           const x = c.x + c.width * fx, y = c.y + c.height * fy; \
           const hit = document.elementFromPoint(x, y); \
           if (hit && hit.closest(\"[data-testid='canvas']\") && !hit.closest('[data-block-id], [data-edge-id]')) return [x, y]; } \
         return null;";
    point(browser, script, "empty canvas").await
}

async fn point(browser: &Browser, script: &str, what: &str) -> (f64, f64) {
    let value = browser
        .wait_until(&format!("a point to press on {what}"), script)
        .await;
    let numbers: Vec<f64> = value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    assert_eq!(numbers.len(), 2, "a point for {what}: {value}");
    (numbers[0], numbers[1])
}

/// A small deterministic random number generator (SplitMix64), so a failing gesture sequence can be
/// replayed from its seed.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// A number in `[low, high)`.
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (high - low)
    }
}

/// Where a random gesture can land: the centres and bodies of what is drawn, handles, edge midpoints.
const TARGETS: &str = "\
    const c = document.querySelector(\"[data-testid='canvas']\").getBoundingClientRect(); \
    const inside = (x, y) => x > c.x + 2 && y > c.y + 2 && x < c.right - 2 && y < c.bottom - 2; \
    const out = []; \
    for (const e of document.querySelectorAll('[data-block-id], .block-head, [data-handle], [data-rename], [data-resize]')) { \
      const r = e.getBoundingClientRect(); \
      for (const [fx, fy] of [[0.5, 0.5], [0.3, 0.85], [0.9, 0.9]]) { \
        const x = r.x + r.width * fx, y = r.y + r.height * fy; if (inside(x, y)) out.push([x, y]); } } \
    for (const p of document.querySelectorAll('.edge-hit')) { \
      const at = p.getPointAtLength(p.getTotalLength() / 2); const m = p.getScreenCTM(); \
      const x = at.x * m.a + at.y * m.c + m.e, y = at.x * m.b + at.y * m.d + m.f; if (inside(x, y)) out.push([x, y]); } \
    return { canvas: [c.x, c.y, c.width, c.height], targets: out };";

/// Buttons a person presses between gestures (those that exist at that moment): the toolbar, the
/// dialogs, the context menu's entries and the finder's results.
const BUTTONS: [&str; 18] = [
    "add-frame",
    "add-module",
    "add-task",
    "undo",
    "redo",
    "zoom-fit",
    "show-shortcuts",
    "confirm-delete-yes",
    "panel-close",
    "menu-rename",
    "menu-copy",
    "menu-paste",
    "menu-duplicate",
    "menu-delete",
    "menu-add-frame-here",
    "menu-add-task",
    "finder-result",
    "toggle-minimap",
];

fn key_for(roll: u64) -> (char, Vec<Key>, &'static str) {
    match roll % 23 {
        16 => ('Z', vec![Key::Control, Key::Shift], "Ctrl+Shift+Z"),
        17 => ('y', vec![Key::Control], "Ctrl+Y"),
        18 => ('c', vec![Key::Control], "Ctrl+C"),
        19 => ('v', vec![Key::Control], "Ctrl+V"),
        20 => ('d', vec![Key::Control], "Ctrl+D"),
        21 => ('k', vec![Key::Control], "Ctrl+K"),
        22 => (Key::Down.into(), vec![], "ArrowDown"),
        0 => ('+', vec![], "+"),
        1 => ('-', vec![], "-"),
        2 => ('0', vec![], "0"),
        3 => (Key::Delete.into(), vec![], "Delete"),
        4 => (Key::Backspace.into(), vec![], "Backspace"),
        5 => (Key::Escape.into(), vec![], "Escape"),
        6 => (Key::Left.into(), vec![], "ArrowLeft"),
        7 => (Key::Down.into(), vec![Key::Shift], "Shift+ArrowDown"),
        8 => ('z', vec![Key::Control], "Ctrl+Z"),
        9 => (Key::Enter.into(), vec![], "Enter"),
        10 => (Key::F2.into(), vec![], "F2"),
        11 => ('?', vec![], "?"),
        12 => ('a', vec![], "a"),
        // Not Tab: it walks the focus out to the top bar, where Enter would sign out or leave.
        13 => ('b', vec![], "b"),
        14 => ('x', vec![], "x"),
        _ => (Key::Right.into(), vec![], "ArrowRight"),
    }
}

/// Plays `gestures` random gestures (clicks, double-clicks, drags, right-clicks, keys, and presses of
/// the toolbar's, dialogs' and menus' buttons plus `extra_buttons`) over the board, drawn from `rng`
/// so a failing sequence replays from its seed; checks every 20 gestures and at the end that the page
/// did not break (`label` says which run of gestures it was).
pub async fn play_random_gestures(
    browser: &Browser,
    rng: &mut SplitMix,
    gestures: usize,
    label: &str,
    extra_buttons: &[&str],
) {
    let mut log: Vec<String> = Vec::new();
    for n in 0..gestures {
        let scene = browser
            .client
            .execute(TARGETS, Vec::new())
            .await
            .expect("the page answers");
        let canvas: Vec<f64> = scene["canvas"]
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let targets: Vec<(f64, f64)> = scene["targets"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|pair| Some((pair[0].as_f64()?, pair[1].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let (cx, cy, cw, ch) = (canvas[0], canvas[1], canvas[2], canvas[3]);
        let pick = |rng: &mut SplitMix| {
            if !targets.is_empty() && rng.below(10) < 7 {
                targets[rng.below(targets.len() as u64) as usize]
            } else {
                (
                    rng.between(cx + 4.0, cx + cw - 4.0),
                    rng.between(cy + 4.0, cy + ch - 4.0),
                )
            }
        };
        let roll = rng.below(100);
        let gesture = match roll {
            0..=31 => {
                let (x, y) = pick(rng);
                browser.click_at(x, y, 1).await;
                format!("click {x:.0},{y:.0}")
            }
            32..=42 => {
                let (x, y) = pick(rng);
                browser.click_at(x, y, 2).await;
                format!("double-click {x:.0},{y:.0}")
            }
            43..=65 => {
                let from = pick(rng);
                let to = if rng.below(2) == 0 {
                    pick(rng)
                } else {
                    (
                        (from.0 + rng.between(-150.0, 150.0)).clamp(cx + 4.0, cx + cw - 4.0),
                        (from.1 + rng.between(-150.0, 150.0)).clamp(cy + 4.0, cy + ch - 4.0),
                    )
                };
                browser.drag_points(from, to, 4).await;
                format!(
                    "drag {:.0},{:.0} -> {:.0},{:.0}",
                    from.0, from.1, to.0, to.1
                )
            }
            66..=71 => {
                let (x, y) = pick(rng);
                browser.right_click_at(x, y).await;
                format!("right-click {x:.0},{y:.0}")
            }
            72..=89 => {
                let (key, modifiers, name) = key_for(rng.next_u64());
                browser.press(key, &modifiers).await;
                format!("key {name}")
            }
            _ => {
                let choices = BUTTONS.len() + extra_buttons.len();
                let pick = rng.below(choices as u64) as usize;
                let name = BUTTONS
                    .get(pick)
                    .copied()
                    .unwrap_or_else(|| extra_buttons[pick - BUTTONS.len()]);
                let clicked = browser
                    .client
                    .execute(
                        &format!("const b = document.querySelector(\"[data-testid='{name}']\"); if (!b || b.disabled) return false; b.click(); return true;"),
                        Vec::new(),
                    )
                    .await
                    .unwrap_or(Value::Bool(false));
                format!("button {name} (pressed: {clicked})")
            }
        };
        log.push(format!("#{n}: {gesture}"));
        if n % 20 == 19 {
            let recent = log[log.len().saturating_sub(20)..].join("\n");
            assert_page_healthy(
                browser,
                &format!("gestures up to #{n} ({label}):\n{recent}"),
            )
            .await;
        }
    }
    let recent = log[log.len().saturating_sub(20)..].join("\n");
    assert_page_healthy(
        browser,
        &format!("all {gestures} gestures ({label}):\n{recent}"),
    )
    .await;
}
