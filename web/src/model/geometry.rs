//! Canvas geometry: rectangles, the spatial index, the view transform, level of detail, what to draw
//! and when to redraw, edge curves.

use crate::model::fast_hash::{FastMap, FastSet};
use std::collections::HashSet;

use domain::board::{Edge, Level, Size};
use domain::ids::{BlockId, EdgeId};

use super::Board;

/// An axis-aligned rectangle in world units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }

    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    /// Whether `other` lies wholly inside this rectangle.
    pub fn covers(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x && x <= self.right() && y >= self.y && y <= self.bottom()
    }

    /// The rectangle grown by `fraction` of its size on every side.
    pub fn grown(&self, fraction: f64) -> Rect {
        let dx = self.width * fraction;
        let dy = self.height * fraction;
        Rect {
            x: self.x - dx,
            y: self.y - dy,
            width: self.width + 2.0 * dx,
            height: self.height + 2.0 * dy,
        }
    }

    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Rect {
            x,
            y,
            width: self.right().max(other.right()) - x,
            height: self.bottom().max(other.bottom()) - y,
        }
    }
}

/// A grid of buckets over world space: which blocks overlap each cell. Answers "what is in view" in time
/// proportional to the cells in view, not to the size of the board.
#[derive(Debug, Default)]
pub struct SpatialIndex {
    cell: f64,
    buckets: FastMap<(i32, i32), Vec<BlockId>>,
}

impl SpatialIndex {
    pub const CELL: f64 = 1024.0;

    pub fn build(rects: &FastMap<BlockId, Rect>) -> SpatialIndex {
        Self::build_where(rects, |_| true)
    }

    /// An index of only the blocks `keep` accepts (e.g. the frames: far out, a query then walks the
    /// few hundred frames instead of every task of a large board).
    pub fn build_where(
        rects: &FastMap<BlockId, Rect>,
        keep: impl Fn(&BlockId) -> bool,
    ) -> SpatialIndex {
        let mut index = SpatialIndex::empty();
        for (id, rect) in rects.iter().filter(|(id, _)| keep(id)) {
            index.insert(id, rect);
        }
        index
    }

    /// An index holding nothing yet.
    pub fn empty() -> SpatialIndex {
        SpatialIndex {
            cell: Self::CELL,
            buckets: FastMap::default(),
        }
    }

    /// Adds a block at `rect` to every cell it overlaps.
    pub fn insert(&mut self, id: &BlockId, rect: &Rect) {
        let (x0, y0, x1, y1) = self.cells(rect);
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                self.buckets.entry((cx, cy)).or_default().push(id.clone());
            }
        }
    }

    /// The inclusive cell range a rectangle covers (clamped, so a huge rectangle stays cheap).
    pub fn cells(&self, rect: &Rect) -> (i32, i32, i32, i32) {
        let clamp = |value: f64| (value / self.cell).floor().clamp(-100_000.0, 100_000.0) as i32;
        (
            clamp(rect.x),
            clamp(rect.y),
            clamp(rect.right()),
            clamp(rect.bottom()),
        )
    }

    /// Every block whose rectangle overlaps `area`.
    pub fn query(&self, area: &Rect, rects: &FastMap<BlockId, Rect>) -> FastSet<BlockId> {
        let (x0, y0, x1, y1) = self.cells(area);
        let mut found = FastSet::default();
        if (x1 - x0 + 1) as i64 * (y1 - y0 + 1) as i64 > self.buckets.len() as i64 {
            // Zoomed far out: walking the buckets is cheaper than walking the empty cells.
            for ids in self.buckets.values() {
                found.extend(ids.iter().cloned());
            }
        } else {
            for cx in x0..=x1 {
                for cy in y0..=y1 {
                    if let Some(ids) = self.buckets.get(&(cx, cy)) {
                        found.extend(ids.iter().cloned());
                    }
                }
            }
        }
        found.retain(|id| rects.get(id).is_some_and(|rect| rect.intersects(area)));
        found
    }
}

/// Spatial indexes for the far-out levels of detail: only what [`Detail::Frames`] and
/// [`Detail::Modules`] draw, so the far-out views (which see the whole board) walk hundreds of blocks,
/// not tens of thousands.
#[derive(Debug, Default)]
pub struct DetailIndexes {
    pub frames: SpatialIndex,
    pub frames_and_modules: SpatialIndex,
}

impl DetailIndexes {
    /// One pass over the blocks (their level is at hand there), indexing only the frames and modules.
    pub fn build(board: &Board, rects: &FastMap<BlockId, Rect>) -> DetailIndexes {
        let mut indexes = DetailIndexes {
            frames: SpatialIndex::empty(),
            frames_and_modules: SpatialIndex::empty(),
        };
        for block in board.blocks.values() {
            if block.level == Level::Task {
                continue;
            }
            let Some(rect) = rects.get(&block.id) else {
                continue;
            };
            if block.level == Level::Frame {
                indexes.frames.insert(&block.id, rect);
            }
            indexes.frames_and_modules.insert(&block.id, rect);
        }
        indexes
    }

    /// The index holding exactly what `detail` can draw (`all` holds every block).
    pub fn for_detail<'a>(&'a self, detail: Detail, all: &'a SpatialIndex) -> &'a SpatialIndex {
        match detail {
            Detail::Frames => &self.frames,
            Detail::Modules => &self.frames_and_modules,
            Detail::Tasks => all,
        }
    }
}

/// The pan and zoom of the canvas: a world point (x, y) is drawn at screen (x·zoom + pan_x, y·zoom + pan_y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub pan_x: f64,
    pub pan_y: f64,
    pub zoom: f64,
}

impl Default for View {
    fn default() -> Self {
        View {
            pan_x: 40.0,
            pan_y: 40.0,
            zoom: 1.0,
        }
    }
}

pub const MIN_ZOOM: f64 = 0.02;
pub const MAX_ZOOM: f64 = 3.0;

impl View {
    pub fn to_world(&self, screen_x: f64, screen_y: f64) -> (f64, f64) {
        (
            (screen_x - self.pan_x) / self.zoom,
            (screen_y - self.pan_y) / self.zoom,
        )
    }

    /// Zooms by `factor` keeping the world point under the screen point (`x`, `y`) where it is.
    pub fn zoom_at(&mut self, x: f64, y: f64, factor: f64) {
        let zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let (world_x, world_y) = self.to_world(x, y);
        self.zoom = zoom;
        self.pan_x = x - world_x * zoom;
        self.pan_y = y - world_y * zoom;
    }

    /// The view that shows `rect` whole and centred in a viewport of `width`×`height` pixels.
    pub fn fit(rect: &Rect, width: f64, height: f64, max_zoom: f64) -> View {
        let margin = 48.0;
        let zoom = ((width - 2.0 * margin) / rect.width.max(1.0))
            .min((height - 2.0 * margin) / rect.height.max(1.0))
            .clamp(MIN_ZOOM, max_zoom);
        View {
            zoom,
            pan_x: width / 2.0 - (rect.x + rect.width / 2.0) * zoom,
            pan_y: height / 2.0 - (rect.y + rect.height / 2.0) * zoom,
        }
    }

    /// What Fit shows: the whole board, unless a block is selected (its panel open, someone working
    /// on it) and the whole board fits only at a zoom too far out to draw tasks. Then Fit shows the
    /// selected block's service whole if tasks stay drawn, else the selected block itself, centred,
    /// at the farthest zoom that still draws tasks (closer if the block is small). `focus` is the
    /// selected block's service (its root frame) and the block.
    pub fn fit_keeping_tasks(
        board: &Rect,
        focus: Option<(&Rect, &Rect)>,
        width: f64,
        height: f64,
    ) -> View {
        let whole = View::fit(board, width, height, 1.0);
        let Some((service, block)) = focus else {
            return whole;
        };
        if whole.zoom >= TASKS_FROM_ZOOM {
            return whole;
        }
        let service = View::fit(service, width, height, 1.0);
        if service.zoom >= TASKS_FROM_ZOOM {
            return service;
        }
        let block_view = View::fit(block, width, height, 1.0);
        if block_view.zoom >= TASKS_FROM_ZOOM {
            return block_view;
        }
        let zoom = TASKS_FROM_ZOOM;
        View {
            zoom,
            pan_x: width / 2.0 - (block.x + block.width / 2.0) * zoom,
            pan_y: height / 2.0 - (block.y + block.height / 2.0) * zoom,
        }
    }

    /// The world rectangle a viewport of `width`×`height` pixels shows.
    pub fn visible_world(&self, width: f64, height: f64) -> Rect {
        let (x, y) = self.to_world(0.0, 0.0);
        Rect {
            x,
            y,
            width: width / self.zoom,
            height: height / self.zoom,
        }
    }

    /// The view moved (same zoom) so `rect` is in the middle of a `width` × `height` viewport, if it is
    /// not wholly in view already: a block created off-screen is brought into view.
    pub fn revealing(&self, rect: &Rect, width: f64, height: f64) -> View {
        if self.visible_world(width, height).covers(rect) {
            return *self;
        }
        let (center_x, center_y) = (rect.x + rect.width / 2.0, rect.y + rect.height / 2.0);
        View {
            pan_x: width / 2.0 - center_x * self.zoom,
            pan_y: height / 2.0 - center_y * self.zoom,
            zoom: self.zoom,
        }
    }

    pub fn css_transform(&self) -> String {
        format!(
            "translate({:.2}px,{:.2}px) scale({:.5})",
            self.pan_x, self.pan_y, self.zoom
        )
    }
}

/// Semantic level of detail: which levels the canvas draws at a zoom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Detail {
    /// Far out: frames only, with counts and a status mix.
    Frames,
    /// Frames and modules, with task counts.
    Modules,
    /// Everything, tasks with status chips.
    Tasks,
}

/// The farthest zoom at which tasks are drawn ([`Detail::Tasks`]).
pub const TASKS_FROM_ZOOM: f64 = 0.5;

impl Detail {
    pub fn at(zoom: f64) -> Detail {
        if zoom < 0.22 {
            Detail::Frames
        } else if zoom < TASKS_FROM_ZOOM {
            Detail::Modules
        } else {
            Detail::Tasks
        }
    }

    pub fn shows(self, level: Level) -> bool {
        match level {
            Level::Frame => true,
            Level::Module => self >= Detail::Modules,
            Level::Task => self >= Detail::Tasks,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Frames => "frames",
            Detail::Modules => "modules",
            Detail::Tasks => "tasks",
        }
    }
}

/// What decides whether the canvas must re-render after a pan or zoom: the level of detail and the
/// grid cells of the (over-scanned) area in view. Panning inside the same cells changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderKey {
    pub detail: Detail,
    /// Half-octaves of zoom: labels are re-sized to stay readable when this changes.
    pub zoom_band: i32,
    pub cells: (i32, i32, i32, i32),
}

/// How far beyond the viewport blocks are drawn, as a fraction of its size, so a pan finds them ready.
pub const OVERSCAN: f64 = 0.5;

pub fn render_area(view: &View, width: f64, height: f64) -> Rect {
    view.visible_world(width, height).grown(OVERSCAN)
}

/// Snaps the render area to whole cells, so the same key always yields the same area.
pub fn render_key(view: &View, width: f64, height: f64) -> (RenderKey, Rect) {
    let area = render_area(view, width, height);
    let cell = SpatialIndex::CELL;
    let x0 = (area.x / cell).floor();
    let y0 = (area.y / cell).floor();
    let x1 = (area.right() / cell).floor();
    let y1 = (area.bottom() / cell).floor();
    let clamp = |value: f64| value.clamp(-100_000.0, 100_000.0) as i32;
    let snapped = Rect {
        x: x0 * cell,
        y: y0 * cell,
        width: (x1 - x0 + 1.0) * cell,
        height: (y1 - y0 + 1.0) * cell,
    };
    (
        RenderKey {
            detail: Detail::at(view.zoom),
            zoom_band: (view.zoom.log2() * 2.0).floor() as i32,
            cells: (clamp(x0), clamp(y0), clamp(x1), clamp(y1)),
        },
        snapped,
    )
}

/// What a frame that moved the view must do about the drawn blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redraw {
    /// What is drawn is what this view wants.
    Nothing,
    /// Render in this frame: nothing is drawn yet, the level of detail changed, or part of the
    /// viewport lies outside the drawn area (the user would see blocks missing).
    Now,
    /// The drawn blocks still cover the viewport at the right detail; only the over-scan cells or the
    /// label size are out of date. Render once the view has stopped moving, so that a moving view pays
    /// for a render only when it must.
    WhenSettled,
}

/// Decides whether a moved view must re-render now, later, or not at all. `drawn` and `drawn_area` are
/// the key and area of the last render; `wanted` is the key of the current view and `visible` the world
/// rectangle the viewport shows; `content` is the rectangle every block lies in (`None`: an empty board).
///
/// Blocks can only be missing where the board has blocks: a view that shows space beyond the board's
/// edge (zoomed far out, or panned past it) needs the drawn area to cover only the part of the view
/// that overlaps the board. And when the drawn area already holds the whole board at this detail and
/// this label size, a moved view draws nothing new at all: far out, where a view sees most of a large
/// board, a pan then costs no render (each such render rebuilds hundreds of frames and their lines).
pub fn redraw_for(
    drawn: Option<&RenderKey>,
    drawn_area: &Rect,
    wanted: &RenderKey,
    visible: &Rect,
    content: Option<&Rect>,
) -> Redraw {
    let Some(drawn) = drawn else {
        return Redraw::Now;
    };
    if drawn == wanted {
        return Redraw::Nothing;
    }
    if drawn.detail != wanted.detail {
        return Redraw::Now;
    }
    let Some(content) = content else {
        // Nothing on the board: nothing can be missing.
        return Redraw::WhenSettled;
    };
    if drawn_area.covers(content) {
        return if drawn.zoom_band == wanted.zoom_band {
            Redraw::Nothing
        } else {
            Redraw::WhenSettled
        };
    }
    match overlap(visible, content) {
        Some(needed) if !drawn_area.covers(&needed) => Redraw::Now,
        _ => Redraw::WhenSettled,
    }
}

/// The part two rectangles share (`None` when they do not overlap).
pub fn overlap(a: &Rect, b: &Rect) -> Option<Rect> {
    let (x, y) = (a.x.max(b.x), a.y.max(b.y));
    let (right, bottom) = (a.right().min(b.right()), a.bottom().min(b.bottom()));
    (right > x && bottom > y).then_some(Rect {
        x,
        y,
        width: right - x,
        height: bottom - y,
    })
}

/// The blocks to draw: those in `area` whose level the detail shows, plus their ancestors (a child is
/// drawn inside its parent's element).
pub fn blocks_to_draw(
    board: &Board,
    index: &SpatialIndex,
    rects: &FastMap<BlockId, Rect>,
    area: &Rect,
    detail: Detail,
) -> FastSet<BlockId> {
    let mut draw = FastSet::default();
    for id in index.query(area, rects) {
        let Some(block) = board.blocks.get(&id) else {
            continue;
        };
        if block.archived || !detail.shows(block.level) {
            continue;
        }
        let mut current = Some(id);
        while let Some(id) = current {
            if !draw.insert(id.clone()) {
                break;
            }
            current = board
                .blocks
                .get(&id)
                .and_then(|block| block.parent_id.clone());
        }
    }
    draw
}

/// The edges to draw: both ends drawn at this detail, and at least one end in view (an edge between two
/// off-screen blocks is skipped).
pub fn edges_to_draw<'a>(board: &'a Board, drawn: &FastSet<BlockId>) -> Vec<&'a Edge> {
    let mut edges: Vec<&Edge> = board
        .edges
        .values()
        .filter(|edge| drawn.contains(&edge.from) || drawn.contains(&edge.to))
        .collect();
    edges.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    edges
}

/// Side-by-side lanes for edges that would otherwise be drawn on top of each other: dependencies both
/// ways between the same two blocks get lanes 1 and -1 (drawn apart, across the line's direction);
/// every other edge keeps lane 0.
pub fn coincident_lanes(edges: &[&Edge]) -> FastMap<EdgeId, i8> {
    let pairs: HashSet<(&BlockId, &BlockId)> =
        edges.iter().map(|edge| (&edge.from, &edge.to)).collect();
    edges
        .iter()
        .filter(|edge| pairs.contains(&(&edge.to, &edge.from)))
        .map(|edge| (edge.id.clone(), if edge.from < edge.to { 1 } else { -1 }))
        .collect()
}

/// The shift (world units) that puts an edge in its lane: across the line's main direction.
pub fn lane_offset(from: &Rect, to: &Rect, lane: i8, spacing: f64) -> (f64, f64) {
    let shift = f64::from(lane) * spacing;
    let (dx, dy) = ((to.x - from.x).abs(), (to.y - from.y).abs());
    if dx >= dy { (0.0, shift) } else { (shift, 0.0) }
}

/// The middle of the curve [`edge_path`] draws (where a rolled-up line shows its count). The curve is
/// symmetric, so its middle is halfway between its two ends.
pub fn edge_midpoint(from: &Rect, to: &Rect) -> (f64, f64) {
    let (fx, fy) = (from.x + from.width / 2.0, from.y + from.height / 2.0);
    let (tx, ty) = (to.x + to.width / 2.0, to.y + to.height / 2.0);
    let horizontal =
        (tx - fx).abs() * from.height.max(1.0) >= (ty - fy).abs() * from.width.max(1.0);
    if horizontal {
        let (sx, ex) = if tx >= fx {
            (from.right(), to.x)
        } else {
            (from.x, to.right())
        };
        ((sx + ex) / 2.0, (fy + ty) / 2.0)
    } else {
        let (sy, ey) = if ty >= fy {
            (from.bottom(), to.y)
        } else {
            (from.y, to.bottom())
        };
        ((fx + tx) / 2.0, (sy + ey) / 2.0)
    }
}

/// The SVG path of a dependency edge: a horizontal-ish cubic curve from the right side of `from` to the
/// left side of `to` (or between top and bottom when they are stacked).
pub fn edge_path(from: &Rect, to: &Rect) -> String {
    let (fx, fy) = (from.x + from.width / 2.0, from.y + from.height / 2.0);
    let (tx, ty) = (to.x + to.width / 2.0, to.y + to.height / 2.0);
    let horizontal =
        (tx - fx).abs() * from.height.max(1.0) >= (ty - fy).abs() * from.width.max(1.0);
    let (sx, sy, ex, ey, c1x, c1y, c2x, c2y);
    if horizontal {
        let dir = if tx >= fx { 1.0 } else { -1.0 };
        sx = if dir > 0.0 { from.right() } else { from.x };
        sy = fy;
        ex = if dir > 0.0 { to.x } else { to.right() };
        ey = ty;
        let bend = ((ex - sx).abs() / 2.0).max(40.0);
        c1x = sx + dir * bend;
        c1y = sy;
        c2x = ex - dir * bend;
        c2y = ey;
    } else {
        let dir = if ty >= fy { 1.0 } else { -1.0 };
        sx = fx;
        sy = if dir > 0.0 { from.bottom() } else { from.y };
        ex = tx;
        ey = if dir > 0.0 { to.y } else { to.bottom() };
        let bend = ((ey - sy).abs() / 2.0).max(40.0);
        c1x = sx;
        c1y = sy + dir * bend;
        c2x = ex;
        c2y = ey - dir * bend;
    }
    format!("M{sx:.1} {sy:.1} C{c1x:.1} {c1y:.1} {c2x:.1} {c2y:.1} {ex:.1} {ey:.1}")
}

/// How tall a band of "one row" is when ordering blocks for reading: blocks whose tops lie in the same
/// band count as side by side (a hand-placed row is rarely exactly level).
pub const READING_ROW: f64 = 40.0;

/// Sorts sibling blocks the way a person reads them: rows from top to bottom, left to right within a
/// row. The canvas puts its elements in this order, so Tab walks the board as it is laid out.
pub fn sort_in_reading_order(blocks: &mut [&domain::board::BoardBlock]) {
    blocks.sort_by(|a, b| {
        let row = |block: &domain::board::BoardBlock| (block.position.y / READING_ROW).floor();
        row(a)
            .total_cmp(&row(b))
            .then(a.position.x.total_cmp(&b.position.x))
            .then(a.position.y.total_cmp(&b.position.y))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The size a new block of `level` gets.
pub fn new_block_size(level: Level) -> Size {
    domain::board::default_size(level)
}

/// The level a double-click inside a block of `level` creates (nothing inside a task).
pub fn child_level(parent: Option<Level>) -> Option<Level> {
    match parent {
        None => Some(Level::Frame),
        Some(Level::Frame) => Some(Level::Module),
        Some(Level::Module) => Some(Level::Task),
        Some(Level::Task) => None,
    }
}
