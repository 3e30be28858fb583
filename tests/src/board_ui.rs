//! Helpers for the board's browser tests: a seeded board (frames, modules, tasks, edges) and the
//! page's state as plain values (where to point at things, whether the page broke).

use serde_json::Value;

use crate::api::Client;
use crate::browser::Browser;
use crate::worker::WorkerServer;

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
