//! `scripts/bench board`: the board snapshot of a 10,000-block, 20,000-edge workspace, and the write
//! path (block create and update) on a 1,000-block workspace.
//!
//! Signs in and creates the workspaces through the API, seeds the blocks and edges straight into the
//! local D1 database (creating 30,000 rows one HTTP request at a time would take many minutes and
//! measure nothing this benchmark is about), restarts the worker on that data, and times
//! `GET /workspaces/:id/board` end to end over HTTP: the median (the goal is ≤ 100 ms locally), the
//! spread, and the response size raw and gzipped. Then it times `POST /workspaces/:id/blocks` and
//! `PATCH /workspaces/:id/blocks/:blockId` one after another: median and p99 (the goal for a create is
//! a median ≤ 6 ms), with the medians of the `Server-Timing` parts (the session and access read, the
//! command). Hub delivery runs after the response (`ctx.waitUntil`), so it is in no request's time.
//! `BENCH_BOARD_PAUSE_MS=N` pauses N ms before each write, so the previous write's delivery (which
//! shares local workerd's one thread) is done before the next is timed.

use std::io::Write;
use std::time::{Duration, Instant};

use cat_tests::api::Client;
use cat_tests::worker::{ServerOptions, WorkerServer};
use domain::board::{BlockStatus, BoardBlock, BoardEdge, Edge, Level, Position, Size};
use domain::ids::{BlockId, EdgeId};

const FRAMES: usize = 100;
const MODULES_PER_FRAME: usize = 9;
const TASKS_PER_MODULE: usize = 10;
const EDGES: usize = 20_000;
const SAMPLES: usize = 30;
/// The write benchmark's board: 10 frames of 9 modules of 10 tasks = 1,000 blocks.
const WRITE_BOARD_FRAMES: usize = 10;
const WRITE_SAMPLES: usize = 300;

/// A deterministic pseudo-random sequence (xorshift), so every run measures the same board.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn block_id(n: usize) -> String {
    format!("blk_{n:016x}")
}

fn seed_sql(workspace: &str, frames: usize, edge_count: usize) -> (String, usize, usize) {
    let mut rows = Vec::new();
    let mut tasks = Vec::new();
    let mut next = 1;
    let now = 1_700_000_000_000i64;
    // Rows carry the snapshot JSON the worker stores with every write (migration 0003), made from the
    // same domain type, so the seeded board reads like one built through the API.
    let row = |id: usize, level: &str, parent: Option<usize>, title: String, x: f64, y: f64| {
        let board_block = BoardBlock {
            id: BlockId::parse(&block_id(id)).unwrap(),
            level: Level::parse(level).unwrap(),
            parent_id: parent.map(|parent| BlockId::parse(&block_id(parent)).unwrap()),
            title: title.clone(),
            status: BlockStatus::Planned,
            position: Position { x, y },
            size: Size {
                width: 200.0,
                height: 72.0,
            },
            repo_url: None,
            archived: false,
            rev: 1,
            updated_at: now,
        };
        let board_json = serde_json::to_string(&board_block).unwrap();
        let parent = parent.map_or("NULL".to_owned(), |parent| {
            format!("'{}'", block_id(parent))
        });
        format!(
            "('{workspace}','{}','{level}',{parent},'{title}','Description of {title}','','planned',{x},{y},200,72,NULL,0,1,{now},{now},'{board_json}')",
            block_id(id)
        )
    };
    for frame in 0..frames {
        let frame_id = next;
        next += 1;
        rows.push(row(
            frame_id,
            "frame",
            None,
            format!("Service {frame}"),
            (frame % 10) as f64 * 3000.0,
            (frame / 10) as f64 * 2500.0,
        ));
        for module in 0..MODULES_PER_FRAME {
            let module_id = next;
            next += 1;
            rows.push(row(
                module_id,
                "module",
                Some(frame_id),
                format!("Module {frame}.{module}"),
                40.0 + module as f64 * 300.0,
                60.0,
            ));
            for task in 0..TASKS_PER_MODULE {
                let task_id = next;
                next += 1;
                tasks.push(task_id);
                rows.push(row(
                    task_id,
                    "task",
                    Some(module_id),
                    format!("Task {frame}.{module}.{task}"),
                    10.0,
                    40.0 + task as f64 * 80.0,
                ));
            }
        }
    }
    let mut sql = String::new();
    for chunk in rows.chunks(120) {
        sql.push_str("INSERT INTO blocks (workspace_id, id, level, parent_id, title, description, requirements, status, x, y, width, height, repo_url, archived, rev, created_at, updated_at, board_json) VALUES ");
        sql.push_str(&chunk.join(","));
        sql.push_str(";\n");
    }
    // Edges only go from a later task to an earlier one, so the dependency graph has no cycle.
    let mut sequence = Sequence(0x2545_f491_4f6c_dd1d);
    let mut pairs = std::collections::HashSet::new();
    while pairs.len() < edge_count {
        let a = tasks[(sequence.next() % tasks.len() as u64) as usize];
        let b = tasks[(sequence.next() % tasks.len() as u64) as usize];
        if a != b {
            pairs.insert((a.max(b), a.min(b)));
        }
    }
    let edges: Vec<String> = pairs
        .iter()
        .enumerate()
        .map(|(n, (from, to))| {
            let edge = Edge {
                id: EdgeId::parse(&format!("edg_{n:016x}")).unwrap(),
                from: BlockId::parse(&block_id(*from)).unwrap(),
                to: BlockId::parse(&block_id(*to)).unwrap(),
                created_at: now,
            };
            let board_json = serde_json::to_string(&BoardEdge::from(&edge)).unwrap();
            format!(
                "('{workspace}','{}','{}','{}',{now},'{board_json}')",
                edge.id, edge.from, edge.to
            )
        })
        .collect();
    for chunk in edges.chunks(300) {
        sql.push_str(
            "INSERT INTO edges (workspace_id, id, from_id, to_id, created_at, board_json) VALUES ",
        );
        sql.push_str(&chunk.join(","));
        sql.push_str(";\n");
    }
    (sql, rows.len(), edges.len())
}

#[tokio::main]
async fn main() {
    println!(
        "bench board: {} blocks, {EDGES} edges",
        FRAMES * (1 + MODULES_PER_FRAME * (1 + TASKS_PER_MODULE))
    );
    let server = WorkerServer::start();
    let client = Client::sign_in(&server, "bench-owner").await;
    let workspace = client.create_workspace("bench").await;
    let write_workspace = client.create_workspace("bench writes").await;
    let token = client.token.clone().expect("signed in");
    let state = server.stop_keeping_state();

    let seeding = Instant::now();
    let (sql, blocks, edges) = seed_sql(&workspace, FRAMES, EDGES);
    let (write_sql, write_blocks, _) = seed_sql(&write_workspace, WRITE_BOARD_FRAMES, 0);
    cat_tests::worker::execute_sql_file(&state, &format!("{sql}{write_sql}"));
    println!(
        "seeded {blocks} blocks and {edges} edges in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let server = WorkerServer::start_with(ServerOptions {
        persist_dir: Some(state.clone()),
        ..ServerOptions::default()
    });
    let client = Client::anonymous(&server).with_token(&token);
    let http = reqwest::Client::new();
    let url = server.url(&format!("/workspaces/{workspace}/board"));
    let fetch = || async {
        let started = Instant::now();
        let response = http
            .get(&url)
            .bearer_auth(client.token.as_deref().unwrap())
            .send()
            .await
            .expect("board answers");
        assert_eq!(response.status(), 200);
        let timing = response
            .headers()
            .get("server-timing")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.bytes().await.expect("body");
        (started.elapsed(), body, timing)
    };
    for _ in 0..3 {
        fetch().await;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
    let mut body = Vec::new();
    let mut server_timing = String::new();
    for _ in 0..SAMPLES {
        let (elapsed, bytes, timing) = fetch().await;
        times.push(elapsed);
        body = bytes.to_vec();
        server_timing = timing;
    }
    times.sort();
    let snapshot: serde_json::Value = serde_json::from_slice(&body).expect("the board is JSON");
    assert_eq!(
        snapshot["blocks"].as_array().map(Vec::len),
        Some(blocks),
        "every block is in the snapshot"
    );
    assert_eq!(
        snapshot["edges"].as_array().map(Vec::len),
        Some(edges),
        "every edge is in the snapshot"
    );
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&body).expect("gzip");
    let gzipped = gzip.finish().expect("gzip").len();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!("GET /workspaces/:id/board over {SAMPLES} requests (after 3 warm-up):");
    println!(
        "  median {:.1} ms   p90 {:.1} ms   min {:.1} ms   max {:.1} ms   (goal: median ≤ 100 ms)",
        ms(times[SAMPLES / 2]),
        ms(times[SAMPLES * 9 / 10]),
        ms(times[0]),
        ms(times[SAMPLES - 1])
    );
    println!(
        "  Server-Timing of the last request (D1 execution, the worker's whole read): {server_timing}"
    );
    println!(
        "  size {:.2} MB raw, {:.2} MB gzipped",
        body.len() as f64 / 1e6,
        gzipped as f64 / 1e6
    );
    write_path(&http, &server, &token, &write_workspace, write_blocks).await;
    drop(server);
    let _ = std::fs::remove_dir_all(state);
}

/// One write's figures: its round trip and its `Server-Timing` parts.
struct WriteSample {
    elapsed: Duration,
    parts: Vec<(String, f64)>,
}

fn server_timing_parts(header: &str) -> Vec<(String, f64)> {
    header
        .split(',')
        .filter_map(|part| {
            let (name, rest) = part.trim().split_once(';')?;
            let duration = rest.trim().strip_prefix("dur=")?.parse().ok()?;
            Some((name.to_owned(), duration))
        })
        .collect()
}

async fn write_path(
    http: &reqwest::Client,
    server: &WorkerServer,
    token: &str,
    workspace: &str,
    blocks: usize,
) {
    println!("write path on a {blocks}-block board, {WRITE_SAMPLES} requests each, one at a time:");
    // Seeded ids count up frame by frame: the frame, then each module followed by its tasks; block 2
    // is the first frame's first module.
    let per_frame = 1 + MODULES_PER_FRAME * (1 + TASKS_PER_MODULE);
    let module = block_id(2);
    let tasks: Vec<String> = (0..blocks)
        .map(|n| n + 1)
        .filter(|n| {
            let within_frame = (n - 1) % per_frame;
            within_frame > 0 && !(within_frame - 1).is_multiple_of(1 + TASKS_PER_MODULE)
        })
        .map(block_id)
        .collect();
    // `BENCH_BOARD_PAUSE_MS`: a pause before each write, so the previous write's work after its
    // response (its events' delivery to the hub) is done before the next one is timed. Locally every
    // request shares workerd's one thread; the difference shows what that sharing costs.
    let pause = cat_tests::pause_from_env("BENCH_BOARD_PAUSE_MS");
    if let Some(pause) = pause {
        println!(
            "  (with a pause of {} ms before each write)",
            pause.as_millis()
        );
    }
    let send = |request: reqwest::RequestBuilder, status: u16| async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let started = Instant::now();
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .expect("the worker answers");
        let elapsed = started.elapsed();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{:?}",
            response.text().await
        );
        let parts = server_timing_parts(
            response
                .headers()
                .get("server-timing")
                .and_then(|value| value.to_str().ok())
                .unwrap_or(""),
        );
        let _ = response.bytes().await;
        WriteSample { elapsed, parts }
    };
    let create = |n: usize| {
        send(
            http.post(server.url(&format!("/workspaces/{workspace}/blocks")))
                .json(&serde_json::json!({"level": "task", "parentId": module, "title": format!("bench {n}")})),
            201,
        )
    };
    for n in 0..10 {
        create(n).await;
    }
    let mut creates = Vec::with_capacity(WRITE_SAMPLES);
    for n in 0..WRITE_SAMPLES {
        creates.push(create(n).await);
    }
    report(
        "POST /workspaces/:id/blocks (create)",
        creates,
        "goal: median ≤ 6 ms",
    );
    // Each update edits another seeded task at its first revision, so none waits on another.
    let mut updates = Vec::with_capacity(WRITE_SAMPLES);
    for task in tasks.iter().take(WRITE_SAMPLES) {
        updates.push(
            send(
                http.patch(server.url(&format!("/workspaces/{workspace}/blocks/{task}")))
                    .json(&serde_json::json!({"rev": 1, "title": "renamed"})),
                200,
            )
            .await,
        );
    }
    report(
        "PATCH /workspaces/:id/blocks/:blockId (update)",
        updates,
        "a read of the block, then the batch",
    );
    // What any request costs under `wrangler dev` on this machine, for reading the figures above:
    // the worker's own pipeline with no I/O (a test hook), a static file the worker hands to the
    // assets binding (no D1), and /health (one D1 read).
    println!("  the local platform's floor, same client, one at a time:");
    for (path, status, note) in [
        (
            "/__test/noop",
            204,
            "wrangler's proxy, workerd and the worker's pipeline; no I/O",
        ),
        (
            "/config.json",
            200,
            "the worker, then the assets binding; no D1",
        ),
        ("/health", 200, "one D1 read, no session"),
    ] {
        let mut floor = Vec::with_capacity(WRITE_SAMPLES);
        for _ in 0..WRITE_SAMPLES {
            floor.push(send(http.get(server.url(path)), status).await);
        }
        report(&format!("GET {path}"), floor, note);
    }
}

fn report(what: &str, mut samples: Vec<WriteSample>, note: &str) {
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let count = samples.len();
    samples.sort_by_key(|sample| sample.elapsed);
    println!(
        "  {what}: median {:.1} ms   p99 {:.1} ms   min {:.1} ms   max {:.1} ms   ({note})",
        ms(samples[count / 2].elapsed),
        ms(samples[count * 99 / 100].elapsed),
        ms(samples[0].elapsed),
        ms(samples[count - 1].elapsed)
    );
    let mut names: Vec<String> = Vec::new();
    for sample in &samples {
        for (name, _) in &sample.parts {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let medians: Vec<String> = names
        .iter()
        .map(|name| {
            let mut values: Vec<f64> = samples
                .iter()
                .filter_map(|sample| {
                    sample
                        .parts
                        .iter()
                        .find(|(part, _)| part == name)
                        .map(|(_, ms)| *ms)
                })
                .collect();
            values.sort_by(f64::total_cmp);
            format!(
                "{name} {:.1} ms",
                values.get(values.len() / 2).copied().unwrap_or(0.0)
            )
        })
        .collect();
    if !medians.is_empty() {
        println!("    Server-Timing medians: {}", medians.join(", "));
    }
}
