//! `scripts/bench ui`: the board canvas with 5,000 and with 20,000 blocks in headless Chromium.
//!
//! For each size, seeds a board straight into the local D1 database (as `bench_board` does), opens it
//! in the browser (timing the load until every block is counted and drawn; goal ≤ 300 ms at 20,000),
//! drives a scripted pan and zoom through real wheel events, and collects the `requestAnimationFrame`
//! timestamps in the page. Prints the frame-time p50/p95 (goal: p95 ≤ 16 ms), the share of frames
//! over 16.7 ms (goal ≤ 1 %), and the gzipped size of the web bundle (wasm + js + css; goal ≤ 1 MB).
//! It also prints where the load went, from the page's performance timeline (the snapshot request, its
//! parse, building the board, the first render: `web/src/perf.rs`); `BENCH_UI_TIMELINE=1` prints the
//! whole timeline (requests and marks, in ms of the page's life).
//! `BENCH_UI_SIZES=5000` (comma-separated, multiples of 100) runs other sizes. It also prints the slow
//! frames per phase of the script, the frames that missed a display frame (> 25 ms), and the canvas's
//! renders during the script; `BENCH_UI_CSS='.block { box-shadow: none }'` adds style rules before the
//! script, to try what a paint costs without rebuilding the board (ADR 22). It prints the browser's
//! own counters for the load (script, style, layout time: DevTools' `Performance.getMetrics`), and
//! `BENCH_UI_PROFILE=1` adds the load's CPU profile, summed by function (ADR 24), and
//! `BENCH_UI_PROFILE=script` the scripted pan and zoom's instead.
//! `BENCH_UI_RENDERS=1` prints every canvas render of the script, with the time to each of its marks.

use std::io::Write;
use std::time::Instant;

use cat_tests::api::Client;
use cat_tests::browser::Browser;
use cat_tests::worker::{ServerOptions, WorkerServer};

/// Blocks per frame: the frame, its modules and their tasks.
const BLOCKS_PER_FRAME: usize = 1 + MODULES_PER_FRAME * (1 + TASKS_PER_MODULE);
const MODULES_PER_FRAME: usize = 9;
const TASKS_PER_MODULE: usize = 10;
const STATUSES: [&str; 6] = [
    "planned",
    "ready",
    "in_progress",
    "blocked",
    "pr_ready",
    "done",
];

/// Starts sampling the page's CPU every 250 µs.
async fn start_profile(browser: &Browser) {
    browser.cdp("Profiler.enable", serde_json::json!({})).await;
    browser
        .cdp(
            "Profiler.setSamplingInterval",
            serde_json::json!({ "interval": 250 }),
        )
        .await;
    browser.cdp("Profiler.start", serde_json::json!({})).await;
}

fn block_id(n: usize) -> String {
    format!("blk_{n:016x}")
}

/// Positions are relative to the parent, as the board stores them.
fn seed_sql(workspace: &str, frames: usize) -> (String, usize) {
    let mut rows = Vec::new();
    let mut tasks = Vec::new();
    let mut next = 1;
    let now = 1_700_000_000_000i64;
    let row = |id: usize,
               level: &str,
               parent: Option<usize>,
               title: String,
               geometry: (f64, f64, f64, f64),
               status: &str| {
        let parent_json = parent.map_or("null".to_owned(), |parent| {
            format!("\"{}\"", block_id(parent))
        });
        let parent = parent.map_or("NULL".to_owned(), |parent| {
            format!("'{}'", block_id(parent))
        });
        let (x, y, width, height) = geometry;
        // The snapshot's row, stored with the block as every write stores it (`board_json`), so the
        // server answers as it does for a board people made.
        let board_json = format!(
            "[\"{}\",\"{level}\",{parent_json},\"{title}\",\"{status}\",{x:?},{y:?},{width:?},{height:?},null,false,1,{now}]",
            block_id(id)
        );
        format!(
            "('{workspace}','{}','{level}',{parent},'{title}','','','{status}',{x},{y},{width},{height},NULL,0,1,{now},{now},'{board_json}')",
            block_id(id)
        )
    };
    for frame in 0..frames {
        let frame_id = next;
        next += 1;
        let geometry = (
            (frame % 8) as f64 * 2200.0,
            (frame / 8) as f64 * 2200.0,
            2000.0,
            1900.0,
        );
        rows.push(row(
            frame_id,
            "frame",
            None,
            format!("Service {frame}"),
            geometry,
            "planned",
        ));
        for module in 0..MODULES_PER_FRAME {
            let module_id = next;
            next += 1;
            let geometry = (
                20.0 + (module % 3) as f64 * 650.0,
                48.0 + (module / 3) as f64 * 610.0,
                630.0,
                590.0,
            );
            rows.push(row(
                module_id,
                "module",
                Some(frame_id),
                format!("Module {frame}.{module}"),
                geometry,
                "planned",
            ));
            for task in 0..TASKS_PER_MODULE {
                let task_id = next;
                next += 1;
                tasks.push(task_id);
                let geometry = (
                    14.0 + (task % 2) as f64 * 310.0,
                    40.0 + (task / 2) as f64 * 108.0,
                    290.0,
                    92.0,
                );
                let status = STATUSES[(frame + module + task) % STATUSES.len()];
                rows.push(row(
                    task_id,
                    "task",
                    Some(module_id),
                    format!("Task {frame}.{module}.{task}"),
                    geometry,
                    status,
                ));
            }
        }
    }
    let mut sql = String::new();
    for chunk in rows.chunks(200) {
        sql.push_str("INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status, x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json) VALUES ");
        sql.push_str(&chunk.join(","));
        sql.push_str(";\n");
    }
    // A dependency from every task to its neighbour, so edges are drawn while panning.
    let edges: Vec<String> = tasks
        .windows(2)
        .enumerate()
        .filter(|(n, _)| n % 3 == 0)
        .map(|(n, pair)| {
            let (from, to) = (block_id(pair[1]), block_id(pair[0]));
            format!(
                "('{workspace}','edg_{n:016x}','{from}','{to}',{now},'[\"edg_{n:016x}\",\"{from}\",\"{to}\",{now}]')"
            )
        })
        .collect();
    for chunk in edges.chunks(500) {
        sql.push_str(
            "INSERT INTO edges (workspace_id, id, from_id, to_id, created_at, board_json) VALUES ",
        );
        sql.push_str(&chunk.join(","));
        sql.push_str(";\n");
    }
    (sql, rows.len())
}

/// Runs in the page: zooms in from the fitted view, pans across the board, zooms out again — one wheel
/// event per animation frame — and returns the frame intervals in milliseconds.
const SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const canvas = document.querySelector("[data-testid='canvas']");
const rect = canvas.getBoundingClientRect();
const cx = rect.left + rect.width / 2, cy = rect.top + rect.height / 2;
const steps = [];
for (let i = 0; i < 60; i++) steps.push({ ctrlKey: true, deltaY: -12, deltaX: 0 });
for (let i = 0; i < 180; i++) steps.push({ ctrlKey: false, deltaX: 24, deltaY: (i % 60) < 30 ? 8 : -8 });
for (let i = 0; i < 60; i++) steps.push({ ctrlKey: true, deltaY: 14, deltaX: 0 });
// Far out, a step moves the board by its screen distance: small steps keep it in view (larger ones
// would pan to an empty canvas, whose frames cost nothing and would flatter the figure).
for (let i = 0; i < 120; i++) steps.push({ ctrlKey: false, deltaX: -4, deltaY: 2 });
const times = [];
let n = 0;
function frame(now) {
  times.push(now);
  if (n < steps.length) {
    const s = steps[n++];
    canvas.dispatchEvent(new WheelEvent("wheel", { clientX: cx, clientY: cy, deltaMode: 0, bubbles: true, cancelable: true, ...s }));
    requestAnimationFrame(frame);
  } else {
    const gaps = [];
    for (let i = 2; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
    // The canvas's renders during the script: each from its start to its DOM changes being in place.
    // The slowest one's steps too: the time from the render's start to each of its marks.
    const renders = [], all = [];
    let started = null, steps_of = [], slowest = [];
    for (const mark of performance.getEntriesByType('mark')) {
      if (mark.startTime < times[0]) continue;
      if (mark.name === 'canvas:render') { started = mark.startTime; steps_of = []; }
      if (started === null) continue;
      steps_of.push([mark.name.replace('canvas:', ''), mark.startTime - started]);
      if (mark.name === 'canvas:committed') {
        const took = mark.startTime - started;
        if (renders.every(r => r < took)) slowest = steps_of;
        renders.push(took);
        all.push(steps_of);
        started = null;
      }
    }
    done({ gaps, renders, slowest, all });
  }
}
requestAnimationFrame(frame);
"#;

fn gzipped(bytes: &[u8]) -> usize {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(bytes).expect("gzip");
    gzip.finish().expect("gzip").len()
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_UI_SIZES")
        .unwrap_or_else(|_| "5000,20000".to_owned())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    for size in sizes {
        bench_board_of(size.div_ceil(BLOCKS_PER_FRAME).max(1)).await;
    }

    let dist = cat_tests::repo_root().join("web/dist");
    let mut total_raw = 0;
    let mut total_gz = 0;
    for name in ["web_bg.wasm", "web.js", "app.css", "index.html"] {
        let bytes = std::fs::read(dist.join(name))
            .unwrap_or_else(|_| panic!("web/dist/{name} exists: run scripts/build web"));
        let gz = gzipped(&bytes);
        println!("  {name:<12} {:>8} B raw  {:>8} B gzipped", bytes.len(), gz);
        total_raw += bytes.len();
        total_gz += gz;
    }
    println!(
        "web bundle: {:.1} KB raw, {:.1} KB gzipped   (goal: ≤ 1 MB gzipped)",
        total_raw as f64 / 1024.0,
        total_gz as f64 / 1024.0
    );
}

async fn bench_board_of(frames: usize) {
    let blocks_total = frames * BLOCKS_PER_FRAME;
    println!("bench ui: {blocks_total} blocks");
    let server = WorkerServer::start();
    let client = Client::sign_in(&server, "bench-ui").await;
    let workspace = client.create_workspace("bench ui").await;
    let state = server.stop_keeping_state();

    let (sql, blocks) = seed_sql(&workspace, frames);
    cat_tests::worker::execute_sql_file(&state, &sql);

    let server = WorkerServer::start_with(ServerOptions {
        persist_dir: Some(state.clone()),
        ..ServerOptions::default()
    });
    let browser = Browser::start().await;
    // Sign in on the start page (a token in the URL is accepted only from a sign-in this tab began),
    // then time opening the board: the session stays in localStorage.
    browser.dev_sign_in(&server.url("/"), "bench-ui").await;
    // The browser's own counters (script, style and layout time) around the load, and with
    // `BENCH_UI_PROFILE=1` a CPU profile of it (what the page's script spent its time in).
    browser
        .cdp("Performance.enable", serde_json::json!({}))
        .await;
    let metrics_before = browser_metrics(&browser).await;
    let profile_what = std::env::var("BENCH_UI_PROFILE").ok();
    let profiling = profile_what.as_deref().is_some_and(|what| what != "script");
    let profiling_script = profile_what.as_deref() == Some("script");
    if profiling {
        start_profile(&browser).await;
    }
    let loading = Instant::now();
    browser
        .client
        .goto(&server.url(&format!("/w/{workspace}")))
        .await
        .expect("the board loads");
    browser
        .wait_until(
            "the board is drawn",
            &format!("return document.querySelector(\"[data-testid='block-count']\")?.textContent === '{blocks} blocks'"),
        )
        .await;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    let profile = if profiling {
        Some(browser.cdp("Profiler.stop", serde_json::json!({})).await)
    } else {
        None
    };
    let metrics_after = browser_metrics(&browser).await;
    // The page's own figure: from navigation start to the first frame after the board was drawn
    // (without the WebDriver round trips the wall clock above includes).
    let page_ms = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             requestAnimationFrame(() => done(performance.now()));",
            Vec::new(),
        )
        .await
        .ok()
        .and_then(|value| value.as_f64());
    println!(
        "board of {blocks} blocks loaded and drawn in {load_ms:.0} ms by the wall clock{}   (goal at 20,000: ≤ 300 ms)",
        page_ms.map_or(String::new(), |ms| format!(
            ", first frame after it at {ms:.0} ms of the page's life"
        ))
    );
    // Where the load went, from the page's performance timeline: the wasm's download, the snapshot's
    // request, and the board's own marks (`web/src/perf.rs`).
    let breakdown = browser
        .client
        .execute(
            r#"const at = {};
               for (const mark of performance.getEntriesByType('mark')) at[mark.name] = mark.startTime;
               const resources = performance.getEntriesByType('resource');
               const wasm = resources.find(r => r.name.endsWith('.wasm'));
               const board = resources.filter(r => /\/workspaces\/[^/]+\/board$/.test(r.name)).pop();
               const nav = performance.getEntriesByType('navigation')[0];
               return {
                 html: nav ? nav.responseEnd : null,
                 wasmStart: wasm ? wasm.startTime : null, wasmEnd: wasm ? wasm.responseEnd : null,
                 boardStart: board ? board.startTime : null, boardEnd: board ? board.responseEnd : null,
                 boardBytes: board ? board.encodedBodySize : null,
                 boardServer: board && board.serverTiming
                   ? board.serverTiming.map(t => `${t.name} ${t.duration.toFixed(0)} ms`).join(', ') : null,
                 fetched: at['board:fetched'] ?? null, parsed: at['board:parsed'] ?? null,
                 built: at['board:built'] ?? null, rendered: at['board:first-render'] ?? null,
               };"#,
            Vec::new(),
        )
        .await
        .expect("the performance timeline reads");
    let ms = |name: &str| breakdown[name].as_f64();
    let span = |from: &str, to: &str| match (ms(from), ms(to)) {
        (Some(from), Some(to)) => format!("{:.0} ms", to - from),
        _ => "?".to_owned(),
    };
    println!(
        "  where it went (page clock): html by {}   wasm fetched {}   snapshot request {} ({} KB; server: {})   parse {}   build the board {}   first render {}   then first frame at {}",
        ms("html").map_or("?".to_owned(), |at| format!("{at:.0} ms")),
        span("wasmStart", "wasmEnd"),
        span("boardStart", "boardEnd"),
        breakdown["boardBytes"]
            .as_f64()
            .map_or("?".to_owned(), |bytes| format!("{:.0}", bytes / 1024.0)),
        breakdown["boardServer"].as_str().unwrap_or("?"),
        span("fetched", "parsed"),
        span("parsed", "built"),
        span("built", "rendered"),
        page_ms.map_or("?".to_owned(), |at| format!("{at:.0} ms")),
    );
    // The counters restart with the new document, or carry on from the sign-in page's: either way the
    // difference (or, after a restart, the value) is the board page's.
    let spent = |name: &str| {
        let after = metrics_after.get(name).copied().unwrap_or_default();
        let before = metrics_before.get(name).copied().unwrap_or_default();
        (if after >= before {
            after - before
        } else {
            after
        }) * 1000.0
    };
    println!(
        "  the browser's main thread during the load: tasks {:.0} ms   script {:.0} ms   style {:.0} ms   layout {:.0} ms   ({} DOM nodes at the end)",
        spent("TaskDuration"),
        spent("ScriptDuration"),
        spent("RecalcStyleDuration"),
        spent("LayoutDuration"),
        metrics_after.get("Nodes").copied().unwrap_or_default()
    );
    if let Some(profile) = profile {
        print_profile(&profile["profile"]);
    }
    let timeline = browser
        .client
        .execute(
            r#"const entries = performance.getEntriesByType('resource')
                 .map(r => [r.startTime, r.responseEnd, r.name.replace(location.origin, '')])
                 .concat(performance.getEntriesByType('mark').map(m => [m.startTime, null, m.name]));
               entries.sort((a, b) => a[0] - b[0]);
               return entries.map(([start, end, name]) =>
                 end === null ? `${start.toFixed(0)} ${name}` : `${start.toFixed(0)}–${end.toFixed(0)} ${name}`).join('\n');"#,
            Vec::new(),
        )
        .await
        .expect("the performance timeline reads");
    if std::env::var_os("BENCH_UI_TIMELINE").is_some() {
        println!("  timeline (ms of the page's life):");
        for line in timeline.as_str().unwrap_or_default().lines() {
            println!("    {line}");
        }
    }
    browser
        .screenshot(&format!("bench-ui-{blocks}-start"))
        .await;

    // `BENCH_UI_CSS`: extra style rules for the scripted pan and zoom, to try what a paint costs (e.g.
    // `.block { box-shadow: none }`) without rebuilding the board.
    if let Ok(css) = std::env::var("BENCH_UI_CSS") {
        println!("  with extra CSS: {css}");
        browser
            .client
            .execute(
                "const style = document.createElement('style'); style.textContent = arguments[0]; \
                 document.head.appendChild(style);",
                vec![serde_json::Value::String(css)],
            )
            .await
            .expect("the extra CSS is added");
    }
    if profiling_script {
        start_profile(&browser).await;
    }
    let value = browser
        .client
        .execute_async(SCRIPT, Vec::new())
        .await
        .expect("the scripted pan and zoom runs");
    if profiling_script {
        println!("  CPU profile of the scripted pan and zoom:");
        let profile = browser.cdp("Profiler.stop", serde_json::json!({})).await;
        print_profile(&profile["profile"]);
    }
    let renders: Vec<f64> = value["renders"]
        .as_array()
        .expect("render durations")
        .iter()
        .filter_map(|ms| ms.as_f64())
        .collect();
    let mut gaps: Vec<f64> = value["gaps"]
        .as_array()
        .expect("frame intervals")
        .iter()
        .filter_map(|gap| gap.as_f64())
        .collect();
    // Which part of the script the slow frames fall in (the script's steps, in order; the interval
    // `n` ends the frame that dispatched step `n + 1`).
    let phases = [
        ("zoom in", 60),
        ("pan close", 180),
        ("zoom out", 60),
        ("pan far", 120),
    ];
    let mut first = 0;
    let split: Vec<String> = phases
        .iter()
        .map(|(name, steps)| {
            let last = (first + steps).min(gaps.len());
            let phase = &gaps[first.min(last)..last];
            first = last;
            let slow = phase.iter().filter(|gap| **gap > 16.7).count();
            let worst = phase.iter().copied().fold(0.0, f64::max);
            format!("{name} {slow}/{} (max {worst:.0} ms)", phase.len())
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| gaps[((gaps.len() as f64 - 1.0) * q).round() as usize];
    let slow = gaps.iter().filter(|gap| **gap > 16.7).count();
    println!(
        "frame time over {} frames of scripted pan and zoom: p50 {:.1} ms   p95 {:.1} ms   max {:.1} ms   (goal: p95 ≤ 16 ms)",
        gaps.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    );
    println!(
        "frames over 16.7 ms: {slow} of {} ({:.1} %)   (goal at 20,000: ≤ 1 %)",
        gaps.len(),
        slow as f64 * 100.0 / gaps.len().max(1) as f64
    );
    println!("  slow frames by phase: {}", split.join("   "));
    // A frame interval is a whole number of display frames give or take the timer's jitter: 16.8 ms is
    // a frame on time, 33 ms one that missed a frame. This counts the misses.
    let missed = gaps.iter().filter(|gap| **gap > 16.7 * 1.5).count();
    println!(
        "  frames that missed the display's next frame (interval > 25 ms): {missed} of {} ({:.1} %)",
        gaps.len(),
        missed as f64 * 100.0 / gaps.len().max(1) as f64
    );
    println!(
        "  canvas renders during the script: {}   total {:.0} ms   longest {:.0} ms (render start to DOM committed)",
        renders.len(),
        renders.iter().sum::<f64>(),
        renders.iter().copied().fold(0.0, f64::max)
    );
    // Where the longest went: each of its marks (web/src/components/canvas.rs), ms from its start.
    let steps: Vec<String> = value["slowest"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| Some(format!("{} {:.0}", step[0].as_str()?, step[1].as_f64()?)))
        .collect();
    println!(
        "    the longest, ms from its start to each step: {}",
        steps.join("   ")
    );
    // `BENCH_UI_RENDERS=1`: every render's steps, in order.
    if std::env::var_os("BENCH_UI_RENDERS").is_some() {
        for render in value["all"].as_array().into_iter().flatten() {
            let steps: Vec<String> = render
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|step| Some(format!("{} {:.0}", step[0].as_str()?, step[1].as_f64()?)))
                .collect();
            println!("    render: {}", steps.join("   "));
        }
    }
    browser.screenshot(&format!("bench-ui-{blocks}")).await;
    browser.close().await;
    drop(server);
    let _ = std::fs::remove_dir_all(state);
}

/// The page's `Performance.getMetrics` counters by name (durations in seconds).
async fn browser_metrics(browser: &Browser) -> std::collections::HashMap<String, f64> {
    let value = browser
        .cdp("Performance.getMetrics", serde_json::json!({}))
        .await;
    value["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|metric| {
            Some((
                metric["name"].as_str()?.to_owned(),
                metric["value"].as_f64()?,
            ))
        })
        .collect()
}

/// The functions the load's CPU profile found the page in most often (self time), top 25.
fn print_profile(profile: &serde_json::Value) {
    let (Some(nodes), Some(start), Some(end)) = (
        profile["nodes"].as_array(),
        profile["startTime"].as_f64(),
        profile["endTime"].as_f64(),
    ) else {
        println!("  (no CPU profile)");
        return;
    };
    let samples: f64 = nodes
        .iter()
        .filter_map(|node| node["hitCount"].as_f64())
        .sum();
    let per_sample_ms = (end - start) / 1000.0 / samples.max(1.0);
    let mut by_function: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for node in nodes {
        let frame = &node["callFrame"];
        let name = frame["functionName"].as_str().unwrap_or_default();
        let url = frame["url"].as_str().unwrap_or_default();
        let file = url.rsplit('/').next().unwrap_or_default();
        let key = if name.is_empty() {
            format!("(anonymous) {file}")
        } else if file.is_empty() {
            name.to_owned()
        } else {
            format!("{name} {file}")
        };
        *by_function.entry(key).or_default() += node["hitCount"].as_f64().unwrap_or_default();
    }
    // The page's own code (script and wasm, and the DOM calls they make), apart from the browser's
    // own work ("(program)": style, layout, paint), its garbage collector, and idle time.
    let browser_own = ["(idle)", "(program)", "(garbage collector)"];
    let script: f64 = by_function
        .iter()
        .filter(|(name, _)| !browser_own.contains(&name.as_str()))
        .map(|(_, hits)| hits)
        .sum();
    let mut top: Vec<(String, f64)> = by_function.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "  CPU profile ({:.0} ms, {samples:.0} samples; the page's script and its DOM calls {:.0} ms), self time by function:",
        (end - start) / 1000.0,
        script * per_sample_ms
    );
    for (name, hits) in top.into_iter().take(25) {
        println!("    {:>7.1} ms  {name}", hits * per_sample_ms);
    }
}
