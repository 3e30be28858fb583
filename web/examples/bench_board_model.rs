//! The board model's share of a large board's load, natively: the same 20,000-block board as
//! `scripts/bench ui` (frames of 9 modules of 10 tasks, a dependency between every third pair of
//! neighbouring tasks), timed through each step the page takes before its first far-out render —
//! decoding the snapshot, building the board, its derived rectangles, indexes and summaries, the
//! rolled-up lines and the blocks to draw. Native timings are a floor for the wasm ones (the browser
//! runs the same code several times slower), but an O(n²) pass or a needless copy shows here too.
//!
//! `cargo run --release -p web --example bench_board_model [blocks]`

use std::time::Instant;

use web::model::{self, Board, Detail, DetailIndexes, View};

const MODULES_PER_FRAME: usize = 9;
const TASKS_PER_MODULE: usize = 10;
const BLOCKS_PER_FRAME: usize = 1 + MODULES_PER_FRAME * (1 + TASKS_PER_MODULE);
const STATUSES: [&str; 6] = [
    "planned",
    "ready",
    "in_progress",
    "blocked",
    "pr_ready",
    "done",
];

fn block_id(n: usize) -> String {
    format!("blk_{n:016x}")
}

/// The snapshot's JSON as the worker sends it (compact rows), for a board of `frames` frames.
fn snapshot_json(frames: usize) -> String {
    let mut rows = Vec::new();
    let mut tasks = Vec::new();
    let mut next = 1;
    let mut row = |id: usize,
                   level: &str,
                   parent: Option<usize>,
                   title: String,
                   (x, y, width, height): (f64, f64, f64, f64),
                   status: &str| {
        let parent = parent.map_or("null".to_owned(), |parent| {
            format!("\"{}\"", block_id(parent))
        });
        rows.push(format!(
            "[\"{}\",\"{level}\",{parent},\"{title}\",\"{status}\",{x},{y},{width},{height},null,false,1,1700000000000]",
            block_id(id)
        ));
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
        row(
            frame_id,
            "frame",
            None,
            format!("Service {frame}"),
            geometry,
            "planned",
        );
        for module in 0..MODULES_PER_FRAME {
            let module_id = next;
            next += 1;
            let geometry = (
                20.0 + (module % 3) as f64 * 650.0,
                48.0 + (module / 3) as f64 * 610.0,
                630.0,
                590.0,
            );
            row(
                module_id,
                "module",
                Some(frame_id),
                format!("Module {frame}.{module}"),
                geometry,
                "planned",
            );
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
                row(
                    task_id,
                    "task",
                    Some(module_id),
                    format!("Task {frame}.{module}.{task}"),
                    geometry,
                    status,
                );
            }
        }
    }
    let edges: Vec<String> = tasks
        .windows(2)
        .enumerate()
        .filter(|(n, _)| n % 3 == 0)
        .map(|(n, pair)| {
            format!(
                "[\"edg_{n:016x}\",\"{}\",\"{}\",1700000000000]",
                block_id(pair[1]),
                block_id(pair[0])
            )
        })
        .collect();
    format!(
        "{{\"workspace\":{{\"id\":\"ws_0123456789abcdef\",\"accountId\":\"acc_0123456789abcdef\",\"name\":\"bench\",\"accessMode\":\"account\",\"createdAt\":1,\"updatedAt\":1}},\"blocks\":[{}],\"edges\":[{}],\"seq\":7}}",
        rows.join(","),
        edges.join(",")
    )
}

fn main() {
    let blocks: usize = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(20_000);
    let frames = blocks.div_ceil(BLOCKS_PER_FRAME).max(1);
    let json = snapshot_json(frames);
    println!(
        "board model: {} blocks, snapshot {:.0} KB",
        frames * BLOCKS_PER_FRAME,
        json.len() as f64 / 1024.0
    );
    let mut step = Instant::now();
    let mut lap = |name: &str| {
        println!(
            "  {name:<28} {:>8.1} ms",
            step.elapsed().as_secs_f64() * 1000.0
        );
        step = Instant::now();
    };
    let started = Instant::now();
    let snapshot: domain::api::board::BoardSnapshot =
        serde_json::from_slice(json.as_bytes()).expect("the snapshot decodes");
    lap("decode the snapshot");
    let board = Board::from_snapshot(snapshot);
    lap("Board::from_snapshot");
    let rects = board.absolute_rects();
    lap("absolute_rects");
    let indexes = DetailIndexes::build(&board, &rects);
    lap("DetailIndexes::build");
    let summaries = board.summaries();
    lap("summaries");
    let bounds = board.bounds(&rects).expect("a board with blocks");
    lap("bounds");
    let rolled = model::rollup::rolled_up_edges(&board, Detail::Frames);
    lap("rolled_up_edges (frames)");
    let view = View::fit(&bounds, 1280.0, 800.0, 1.0);
    let (key, area) = model::render_key(&view, 1280.0, 800.0);
    let all = model::SpatialIndex::default();
    let drawn = model::blocks_to_draw(
        &board,
        indexes.for_detail(key.detail, &all),
        &rects,
        &area,
        key.detail,
    );
    lap("blocks_to_draw (fitted)");
    println!(
        "  total {:.1} ms   ({} summaries, {} rolled-up lines, {} blocks drawn at {:?})",
        started.elapsed().as_secs_f64() * 1000.0,
        summaries.len(),
        rolled.len(),
        drawn.len(),
        key.detail
    );
}
