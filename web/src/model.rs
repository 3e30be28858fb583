//! The board as the browser holds it, and the pure geometry the canvas runs on.
//!
//! Nothing here touches the DOM, so the rules of the canvas (applying live events, absolute positions,
//! the spatial index, level of detail, drop targets, the view transform) are tested with plain
//! `cargo test -p web`.
//!
//! Coordinates: a block's `position` is relative to its parent's top-left corner (a frame without a
//! parent is relative to the world origin). The canvas draws children inside their parent's element, so
//! moving a frame moves everything in it without touching its children's rows.

use std::collections::{HashMap, HashSet};

use domain::api::board::BoardSnapshot;
use domain::api::workspaces::Workspace;
use domain::board::{Block, BlockStatus, BoardBlock, Edge, Level, Position, Size};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{BlockId, EdgeId};

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

/// Counts under a frame or module. `mix` is indexed by [`status_order`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub modules: usize,
    pub tasks: usize,
    pub mix: [usize; 6],
}

/// What applying a live event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// Already reflected (an echo, a replay, or older than what the board holds).
    Ignored,
}

/// The board of one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub workspace: Workspace,
    pub blocks: HashMap<BlockId, BoardBlock>,
    pub edges: HashMap<EdgeId, Edge>,
    /// The last event sequence number reflected here (resume the stream from it).
    pub seq: i64,
    /// Bumped on every change, so views can tell cheaply whether they are stale.
    pub version: u64,
}

impl Board {
    pub fn from_snapshot(snapshot: BoardSnapshot) -> Board {
        Board {
            workspace: snapshot.workspace,
            blocks: snapshot
                .blocks
                .into_iter()
                .map(|block| (block.id.clone(), block))
                .collect(),
            edges: snapshot
                .edges
                .into_iter()
                .map(|row| {
                    let edge = Edge::from(row);
                    (edge.id.clone(), edge)
                })
                .collect(),
            seq: snapshot.seq,
            version: 0,
        }
    }

    /// Stores a block unless the board already holds a newer revision of it.
    pub fn upsert_block(&mut self, block: BoardBlock) -> Applied {
        if let Some(existing) = self.blocks.get(&block.id)
            && existing.rev > block.rev
        {
            return Applied::Ignored;
        }
        if self.blocks.get(&block.id) == Some(&block) {
            return Applied::Ignored;
        }
        self.blocks.insert(block.id.clone(), block);
        self.version += 1;
        Applied::Changed
    }

    /// Sets a block as it is known locally (an optimistic edit or a rollback), whatever its revision.
    pub fn force_block(&mut self, block: BoardBlock) {
        self.blocks.insert(block.id.clone(), block);
        self.version += 1;
    }

    /// Removes a block, its subtree and every edge touching them.
    pub fn remove_subtree(&mut self, root: &BlockId) -> Applied {
        let doomed: HashSet<BlockId> = self.subtree(root).into_iter().collect();
        if doomed.is_empty() {
            return Applied::Ignored;
        }
        for id in &doomed {
            self.blocks.remove(id);
        }
        self.edges
            .retain(|_, edge| !doomed.contains(&edge.from) && !doomed.contains(&edge.to));
        self.version += 1;
        Applied::Changed
    }

    pub fn insert_edge(&mut self, edge: Edge) -> Applied {
        if self.edges.contains_key(&edge.id) {
            return Applied::Ignored;
        }
        self.edges.insert(edge.id.clone(), edge);
        self.version += 1;
        Applied::Changed
    }

    pub fn remove_edge(&mut self, id: &EdgeId) -> Applied {
        if self.edges.remove(id).is_none() {
            return Applied::Ignored;
        }
        self.version += 1;
        Applied::Changed
    }

    /// Applies a hub event. Events at or below the board's `seq` are already in it (a replay after a
    /// reconnect), so they are skipped; block writes older than the block's revision are skipped too.
    pub fn apply_event(&mut self, event: &WorkspaceEvent) -> Applied {
        if event.seq <= self.seq {
            return Applied::Ignored;
        }
        self.seq = event.seq;
        let applied = match &event.payload {
            EventPayload::BlockCreated { block }
            | EventPayload::BlockUpdated { block }
            | EventPayload::BlockReparented { block } => self.upsert_block(BoardBlock::from(block)),
            EventPayload::BlockDeleted {
                deleted_block_ids,
                deleted_edge_ids,
                ..
            } => {
                let mut changed = false;
                for id in deleted_block_ids {
                    changed |= self.blocks.remove(id).is_some();
                }
                for id in deleted_edge_ids {
                    changed |= self.edges.remove(id).is_some();
                }
                let gone: HashSet<&BlockId> = deleted_block_ids.iter().collect();
                let before = self.edges.len();
                self.edges
                    .retain(|_, edge| !gone.contains(&edge.from) && !gone.contains(&edge.to));
                changed |= before != self.edges.len();
                if changed {
                    self.version += 1;
                    Applied::Changed
                } else {
                    Applied::Ignored
                }
            }
            EventPayload::EdgeCreated { edge } => self.insert_edge(edge.clone()),
            EventPayload::EdgeDeleted { edge_id } => self.remove_edge(edge_id),
            EventPayload::WorkspaceUpdated { workspace } => {
                self.workspace = workspace.clone();
                self.version += 1;
                Applied::Changed
            }
            EventPayload::MemberChanged { .. } => Applied::Ignored,
        };
        if applied == Applied::Ignored {
            // The seq still moved: bump the version so the stream's resume point is saved.
            self.version += 1;
        }
        applied
    }

    /// The children of `parent` (`None`: the top level), sorted for a stable drawing order.
    pub fn children(&self, parent: Option<&BlockId>) -> Vec<&BoardBlock> {
        let mut children: Vec<&BoardBlock> = self
            .blocks
            .values()
            .filter(|block| block.parent_id.as_ref() == parent && !block.archived)
            .collect();
        children.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        children
    }

    /// `root` and everything under it.
    pub fn subtree(&self, root: &BlockId) -> Vec<BlockId> {
        if !self.blocks.contains_key(root) {
            return Vec::new();
        }
        let children = self.children_map();
        let mut out = vec![root.clone()];
        let mut next = 0;
        while next < out.len() {
            if let Some(kids) = children.get(&out[next]) {
                out.extend(kids.iter().cloned());
            }
            next += 1;
        }
        out
    }

    fn children_map(&self) -> HashMap<BlockId, Vec<BlockId>> {
        let mut map: HashMap<BlockId, Vec<BlockId>> = HashMap::new();
        for block in self.blocks.values() {
            if let Some(parent) = &block.parent_id {
                map.entry(parent.clone())
                    .or_default()
                    .push(block.id.clone());
            }
        }
        map
    }

    /// Whether `candidate` is `ancestor` or lies under it.
    pub fn is_within(&self, candidate: &BlockId, ancestor: &BlockId) -> bool {
        let mut current = Some(candidate.clone());
        let mut steps = 0;
        while let Some(id) = current {
            if &id == ancestor {
                return true;
            }
            steps += 1;
            if steps > 64 {
                return false;
            }
            current = self
                .blocks
                .get(&id)
                .and_then(|block| block.parent_id.clone());
        }
        false
    }

    /// The world position of a block's top-left corner (the sum of its ancestors' relative positions).
    pub fn absolute_position(&self, id: &BlockId) -> Option<Position> {
        let mut block = self.blocks.get(id)?;
        let mut x = block.position.x;
        let mut y = block.position.y;
        let mut steps = 0;
        while let Some(parent) = block.parent_id.as_ref().and_then(|p| self.blocks.get(p)) {
            x += parent.position.x;
            y += parent.position.y;
            block = parent;
            steps += 1;
            if steps > 64 {
                break;
            }
        }
        Some(Position { x, y })
    }

    pub fn absolute_rect(&self, id: &BlockId) -> Option<Rect> {
        let position = self.absolute_position(id)?;
        let size = self.blocks.get(id)?.size;
        Some(Rect {
            x: position.x,
            y: position.y,
            width: size.width,
            height: size.height,
        })
    }

    /// Every block's world rectangle, computed in one pass (parents before children).
    pub fn absolute_rects(&self) -> HashMap<BlockId, Rect> {
        let children = self.children_map();
        let mut rects = HashMap::with_capacity(self.blocks.len());
        let mut stack: Vec<(BlockId, f64, f64)> = self
            .blocks
            .values()
            .filter(|block| {
                block
                    .parent_id
                    .as_ref()
                    .is_none_or(|parent| !self.blocks.contains_key(parent))
            })
            .map(|block| (block.id.clone(), 0.0, 0.0))
            .collect();
        while let Some((id, origin_x, origin_y)) = stack.pop() {
            let Some(block) = self.blocks.get(&id) else {
                continue;
            };
            let rect = Rect {
                x: origin_x + block.position.x,
                y: origin_y + block.position.y,
                width: block.size.width,
                height: block.size.height,
            };
            if let Some(kids) = children.get(&id) {
                for kid in kids {
                    stack.push((kid.clone(), rect.x, rect.y));
                }
            }
            rects.insert(id, rect);
        }
        rects
    }

    /// The bounds of everything on the board.
    pub fn bounds(&self, rects: &HashMap<BlockId, Rect>) -> Option<Rect> {
        rects.values().copied().reduce(|a, b| a.union(&b))
    }

    /// How many tasks lie under a block and how they split by status (for far-out frame summaries).
    pub fn status_mix(&self, root: &BlockId) -> (usize, usize, Vec<(BlockStatus, usize)>) {
        let mut modules = 0;
        let mut mix: HashMap<BlockStatus, usize> = HashMap::new();
        for id in self.subtree(root).iter().skip(1) {
            if let Some(block) = self.blocks.get(id) {
                match block.level {
                    Level::Module => modules += 1,
                    Level::Task => *mix.entry(block.status).or_default() += 1,
                    Level::Frame => {}
                }
            }
        }
        let tasks = mix.values().sum();
        let mut mix: Vec<(BlockStatus, usize)> = mix.into_iter().collect();
        mix.sort_by_key(|(status, _)| status_order(*status));
        (modules, tasks, mix)
    }

    /// For every frame and module: how many modules and tasks lie under it and their status mix, in one
    /// pass over the board (the far-out views draw these instead of the blocks themselves).
    pub fn summaries(&self) -> HashMap<BlockId, Summary> {
        let mut summaries: HashMap<BlockId, Summary> = HashMap::new();
        for block in self.blocks.values() {
            if block.archived || block.level == Level::Frame {
                continue;
            }
            let mut parent = block.parent_id.clone();
            let mut steps = 0;
            while let Some(id) = parent {
                let summary = summaries.entry(id.clone()).or_default();
                match block.level {
                    Level::Module => summary.modules += 1,
                    Level::Task => {
                        summary.tasks += 1;
                        summary.mix[status_order(block.status) as usize] += 1;
                    }
                    Level::Frame => {}
                }
                steps += 1;
                if steps > 64 {
                    break;
                }
                parent = self
                    .blocks
                    .get(&id)
                    .and_then(|block| block.parent_id.clone());
            }
        }
        summaries
    }

    /// The block a drop at world point (`x`, `y`) lands in: the deepest block under the point that is
    /// not the dragged block or inside it. The server decides whether that parent is allowed.
    pub fn drop_target(
        &self,
        rects: &HashMap<BlockId, Rect>,
        x: f64,
        y: f64,
        dragged: &BlockId,
    ) -> Option<BlockId> {
        self.blocks
            .values()
            .filter(|block| !block.archived && !self.is_within(&block.id, dragged))
            .filter(|block| rects.get(&block.id).is_some_and(|rect| rect.contains(x, y)))
            .max_by_key(|block| (depth_rank(block.level), std::cmp::Reverse(block.id.clone())))
            .map(|block| block.id.clone())
    }

    /// Where a new child of `parent` goes when the user did not point at a spot: the first free slot of
    /// a grid inside the parent (or to the right of everything, at the top level).
    pub fn free_slot(&self, parent: Option<&BlockId>, level: Level) -> Position {
        let size = domain::board::default_size(level);
        let siblings = self.children(parent);
        let (gap, top) = match (parent, level) {
            (Some(_), Level::Task) => (14.0, 40.0),
            (Some(_), _) => (20.0, 48.0),
            (None, _) => (80.0, 0.0),
        };
        let columns = match parent.and_then(|id| self.blocks.get(id)) {
            Some(parent) => ((parent.size.width - gap) / (size.width + gap))
                .floor()
                .max(1.0) as usize,
            None => 4,
        };
        for slot in 0..500 {
            let candidate = Rect {
                x: gap + (slot % columns) as f64 * (size.width + gap),
                y: top + (slot / columns) as f64 * (size.height + gap),
                width: size.width,
                height: size.height,
            };
            let taken = siblings.iter().any(|sibling| {
                Rect {
                    x: sibling.position.x,
                    y: sibling.position.y,
                    width: sibling.size.width,
                    height: sibling.size.height,
                }
                .intersects(&candidate)
            });
            if !taken {
                return Position {
                    x: candidate.x,
                    y: candidate.y,
                };
            }
        }
        Position { x: gap, y: top }
    }
}

/// Deeper levels win a drop: a module inside a frame is the more specific target.
fn depth_rank(level: Level) -> u8 {
    match level {
        Level::Frame => 0,
        Level::Module => 1,
        Level::Task => 2,
    }
}

/// The statuses in the order a status mix shows them (by [`status_order`]).
pub const MIX_ORDER: [BlockStatus; 6] = [
    BlockStatus::Done,
    BlockStatus::PrReady,
    BlockStatus::InProgress,
    BlockStatus::Ready,
    BlockStatus::Blocked,
    BlockStatus::Planned,
];

pub fn status_order(status: BlockStatus) -> u8 {
    match status {
        BlockStatus::Done => 0,
        BlockStatus::PrReady => 1,
        BlockStatus::InProgress => 2,
        BlockStatus::Ready => 3,
        BlockStatus::Blocked => 4,
        BlockStatus::Planned => 5,
    }
}

pub const ALL_STATUSES: [BlockStatus; 6] = [
    BlockStatus::Planned,
    BlockStatus::Ready,
    BlockStatus::InProgress,
    BlockStatus::Blocked,
    BlockStatus::PrReady,
    BlockStatus::Done,
];

pub fn status_label(status: BlockStatus) -> &'static str {
    match status {
        BlockStatus::Planned => "Planned",
        BlockStatus::Ready => "Ready",
        BlockStatus::InProgress => "In progress",
        BlockStatus::Blocked => "Blocked",
        BlockStatus::PrReady => "PR ready",
        BlockStatus::Done => "Done",
    }
}

/// Reduces a full block to the board's short form.
pub fn short(block: &Block) -> BoardBlock {
    BoardBlock::from(block)
}

/// A grid of buckets over world space: which blocks overlap each cell. Answers "what is in view" in time
/// proportional to the cells in view, not to the size of the board.
#[derive(Debug, Default)]
pub struct SpatialIndex {
    cell: f64,
    buckets: HashMap<(i32, i32), Vec<BlockId>>,
}

impl SpatialIndex {
    pub const CELL: f64 = 1024.0;

    pub fn build(rects: &HashMap<BlockId, Rect>) -> SpatialIndex {
        let mut index = SpatialIndex {
            cell: Self::CELL,
            buckets: HashMap::new(),
        };
        for (id, rect) in rects {
            let (x0, y0, x1, y1) = index.cells(rect);
            for cx in x0..=x1 {
                for cy in y0..=y1 {
                    index.buckets.entry((cx, cy)).or_default().push(id.clone());
                }
            }
        }
        index
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
    pub fn query(&self, area: &Rect, rects: &HashMap<BlockId, Rect>) -> HashSet<BlockId> {
        let (x0, y0, x1, y1) = self.cells(area);
        let mut found = HashSet::new();
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

impl Detail {
    pub fn at(zoom: f64) -> Detail {
        if zoom < 0.22 {
            Detail::Frames
        } else if zoom < 0.5 {
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
/// rectangle the viewport shows.
pub fn redraw_for(
    drawn: Option<&RenderKey>,
    drawn_area: &Rect,
    wanted: &RenderKey,
    visible: &Rect,
) -> Redraw {
    match drawn {
        Some(drawn) if drawn == wanted => Redraw::Nothing,
        Some(drawn) if drawn.detail == wanted.detail && drawn_area.covers(visible) => {
            Redraw::WhenSettled
        }
        _ => Redraw::Now,
    }
}

/// The blocks to draw: those in `area` whose level the detail shows, plus their ancestors (a child is
/// drawn inside its parent's element).
pub fn blocks_to_draw(
    board: &Board,
    index: &SpatialIndex,
    rects: &HashMap<BlockId, Rect>,
    area: &Rect,
    detail: Detail,
) -> HashSet<BlockId> {
    let mut draw = HashSet::new();
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
pub fn edges_to_draw<'a>(board: &'a Board, drawn: &HashSet<BlockId>) -> Vec<&'a Edge> {
    let mut edges: Vec<&Edge> = board
        .edges
        .values()
        .filter(|edge| drawn.contains(&edge.from) || drawn.contains(&edge.to))
        .collect();
    edges.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    edges
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

#[cfg(test)]
mod tests {
    use super::*;
    use domain::access::AccessMode;
    use domain::board::BoardEdge;
    use domain::ids::{AccountId, WorkspaceId};

    fn id(n: u8) -> BlockId {
        BlockId::from_random([n; 8])
    }

    fn block(n: u8, level: Level, parent: Option<u8>, x: f64, y: f64, rev: i64) -> BoardBlock {
        BoardBlock {
            id: id(n),
            level,
            parent_id: parent.map(id),
            title: format!("b{n}"),
            status: BlockStatus::Planned,
            position: Position { x, y },
            size: domain::board::default_size(level),
            repo_url: None,
            archived: false,
            rev,
            updated_at: 0,
        }
    }

    fn board(blocks: Vec<BoardBlock>, edges: Vec<(u8, u8, u8)>) -> Board {
        Board::from_snapshot(BoardSnapshot {
            workspace: Workspace {
                id: WorkspaceId::from_random([9; 8]),
                account_id: AccountId::from_random([8; 8]),
                name: "w".into(),
                access_mode: AccessMode::Account,
                created_at: 0,
                updated_at: 0,
            },
            blocks,
            edges: edges
                .into_iter()
                .map(|(e, from, to)| BoardEdge(EdgeId::from_random([e; 8]), id(from), id(to), 0))
                .collect(),
            seq: 5,
        })
    }

    fn sample() -> Board {
        board(
            vec![
                block(1, Level::Frame, None, 100.0, 100.0, 1),
                block(2, Level::Module, Some(1), 20.0, 50.0, 1),
                block(3, Level::Task, Some(2), 10.0, 40.0, 1),
                block(4, Level::Frame, None, 5000.0, 0.0, 1),
                block(5, Level::Task, Some(4), 10.0, 10.0, 1),
            ],
            vec![(1, 3, 5)],
        )
    }

    fn full(short: &BoardBlock) -> Block {
        Block {
            id: short.id.clone(),
            level: short.level,
            parent_id: short.parent_id.clone(),
            title: short.title.clone(),
            description: String::new(),
            requirements: String::new(),
            status: short.status,
            position: short.position,
            size: short.size,
            repo_url: None,
            archived: false,
            rev: short.rev,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn event(seq: i64, payload: EventPayload) -> WorkspaceEvent {
        WorkspaceEvent {
            workspace_id: WorkspaceId::from_random([9; 8]),
            seq,
            at: 0,
            actor: None,
            origin: None,
            payload,
        }
    }

    #[test]
    fn a_childs_position_is_relative_to_its_parent() {
        let board = sample();
        assert_eq!(
            board.absolute_position(&id(3)),
            Some(Position { x: 130.0, y: 190.0 })
        );
        let rects = board.absolute_rects();
        assert_eq!(rects[&id(3)].x, 130.0);
        assert_eq!(rects[&id(5)].x, 5010.0);
    }

    #[test]
    fn events_apply_in_order_and_replays_are_skipped() {
        let mut board = sample();
        let mut moved = block(3, Level::Task, Some(2), 60.0, 40.0, 2);
        let updated = event(
            6,
            EventPayload::BlockUpdated {
                block: full(&moved),
            },
        );
        assert_eq!(board.apply_event(&updated), Applied::Changed);
        assert_eq!(board.blocks[&id(3)].position.x, 60.0);
        assert_eq!(board.seq, 6);
        assert_eq!(board.apply_event(&updated), Applied::Ignored, "a replay");
        moved.rev = 1;
        moved.position.x = 0.0;
        let older = event(
            7,
            EventPayload::BlockUpdated {
                block: full(&moved),
            },
        );
        assert_eq!(
            board.apply_event(&older),
            Applied::Ignored,
            "an older revision"
        );
        assert_eq!(board.blocks[&id(3)].position.x, 60.0);
        assert_eq!(board.seq, 7);
    }

    #[test]
    fn a_deleted_block_takes_its_subtree_and_edges() {
        let mut board = sample();
        let deleted = event(
            6,
            EventPayload::BlockDeleted {
                block_id: id(1),
                deleted_block_ids: vec![id(1), id(2), id(3)],
                deleted_edge_ids: vec![EdgeId::from_random([1; 8])],
            },
        );
        assert_eq!(board.apply_event(&deleted), Applied::Changed);
        assert_eq!(board.blocks.len(), 2);
        assert!(board.edges.is_empty());
        let mut local = sample();
        local.remove_subtree(&id(2));
        assert_eq!(local.blocks.len(), 3);
        assert!(local.edges.is_empty(), "the edge touched a removed task");
    }

    #[test]
    fn edges_created_and_deleted_are_idempotent() {
        let mut board = sample();
        let edge = Edge {
            id: EdgeId::from_random([2; 8]),
            from: id(5),
            to: id(2),
            created_at: 0,
        };
        assert_eq!(
            board.apply_event(&event(6, EventPayload::EdgeCreated { edge: edge.clone() })),
            Applied::Changed
        );
        assert_eq!(board.insert_edge(edge.clone()), Applied::Ignored);
        assert_eq!(
            board.apply_event(&event(7, EventPayload::EdgeDeleted { edge_id: edge.id })),
            Applied::Changed
        );
        assert_eq!(board.edges.len(), 1);
    }

    #[test]
    fn the_spatial_index_finds_only_what_is_in_view() {
        let board = sample();
        let rects = board.absolute_rects();
        let index = SpatialIndex::build(&rects);
        let near = Rect {
            x: 0.0,
            y: 0.0,
            width: 800.0,
            height: 600.0,
        };
        let found = index.query(&near, &rects);
        assert_eq!(found, [id(1), id(2), id(3)].into_iter().collect());
        let far = Rect {
            x: -1e6,
            y: -1e6,
            width: 2e6,
            height: 2e6,
        };
        assert_eq!(index.query(&far, &rects).len(), 5);
    }

    #[test]
    fn detail_drops_tasks_then_modules_as_the_view_zooms_out() {
        let board = sample();
        let rects = board.absolute_rects();
        let index = SpatialIndex::build(&rects);
        let all = Rect {
            x: -1e4,
            y: -1e4,
            width: 1e5,
            height: 1e5,
        };
        let cases = [
            (1.0, 5),
            (0.3, 3), // frames and the module
            (0.1, 2), // frames only
        ];
        for (zoom, count) in cases {
            let drawn = blocks_to_draw(&board, &index, &rects, &all, Detail::at(zoom));
            assert_eq!(drawn.len(), count, "zoom {zoom}");
        }
        let only_task = Rect {
            x: 132.0,
            y: 192.0,
            width: 5.0,
            height: 5.0,
        };
        let drawn = blocks_to_draw(&board, &index, &rects, &only_task, Detail::Tasks);
        assert_eq!(drawn.len(), 3, "a visible task brings its ancestors");
        assert_eq!(edges_to_draw(&board, &drawn).len(), 1, "one end in view");
        let nowhere = Rect {
            x: -9000.0,
            y: -9000.0,
            width: 10.0,
            height: 10.0,
        };
        let drawn = blocks_to_draw(&board, &index, &rects, &nowhere, Detail::Tasks);
        assert!(edges_to_draw(&board, &drawn).is_empty());
    }

    #[test]
    fn a_drop_lands_in_the_deepest_block_outside_the_dragged_subtree() {
        let board = sample();
        let rects = board.absolute_rects();
        // Inside the module (frame 1 at 100,100; module at +20,+50).
        assert_eq!(board.drop_target(&rects, 150.0, 170.0, &id(5)), Some(id(2)));
        assert_eq!(board.drop_target(&rects, 700.0, 480.0, &id(5)), Some(id(1)));
        assert_eq!(board.drop_target(&rects, 150.0, 170.0, &id(2)), Some(id(1)));
        assert_eq!(board.drop_target(&rects, -50.0, -50.0, &id(3)), None);
    }

    #[test]
    fn zooming_keeps_the_point_under_the_cursor() {
        let mut view = View::default();
        let before = view.to_world(300.0, 200.0);
        view.zoom_at(300.0, 200.0, 1.7);
        let after = view.to_world(300.0, 200.0);
        assert!((before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9);
        let fit = View::fit(
            &Rect {
                x: 0.0,
                y: 0.0,
                width: 1000.0,
                height: 500.0,
            },
            1200.0,
            700.0,
            1.0,
        );
        let (x, y) = fit.to_world(600.0, 350.0);
        assert!(
            (x - 500.0).abs() < 1e-9 && (y - 250.0).abs() < 1e-9,
            "centred"
        );
    }

    #[test]
    fn panning_within_a_cell_keeps_the_render_key() {
        let view = View {
            pan_x: 0.0,
            pan_y: 0.0,
            zoom: 1.0,
        };
        let nudged = View {
            pan_x: -3.0,
            ..view
        };
        assert_eq!(
            render_key(&view, 1280.0, 800.0).0,
            render_key(&nudged, 1280.0, 800.0).0
        );
        let far = View {
            pan_x: -3000.0,
            ..view
        };
        assert_ne!(
            render_key(&view, 1280.0, 800.0).0,
            render_key(&far, 1280.0, 800.0).0
        );
    }

    #[test]
    fn summaries_count_what_lies_under_each_frame() {
        let board = sample();
        let summaries = board.summaries();
        assert_eq!(summaries[&id(1)].modules, 1);
        assert_eq!(summaries[&id(1)].tasks, 1);
        assert_eq!(summaries[&id(2)].tasks, 1);
        assert_eq!(summaries[&id(4)].tasks, 1);
        assert_eq!(
            summaries[&id(4)].mix[status_order(BlockStatus::Planned) as usize],
            1
        );
    }

    #[test]
    fn new_children_take_a_free_slot() {
        let board = sample();
        let first = board.free_slot(Some(&id(1)), Level::Module);
        assert_ne!(first, Position { x: 20.0, y: 50.0 });
        let slot = board.free_slot(Some(&id(4)), Level::Module);
        assert_eq!(
            slot,
            Position { x: 320.0, y: 48.0 },
            "the task takes the first slot"
        );
    }

    #[test]
    fn a_moving_view_renders_only_when_the_drawn_blocks_fall_short() {
        let view = View {
            pan_x: 0.0,
            pan_y: 0.0,
            zoom: 1.0,
        };
        let (drawn, area) = render_key(&view, 1280.0, 800.0);
        let visible = |view: &View| view.visible_world(1280.0, 800.0);
        let wanted = |view: &View| render_key(view, 1280.0, 800.0).0;
        assert_eq!(
            redraw_for(None, &area, &drawn, &visible(&view)),
            Redraw::Now,
            "nothing is drawn yet"
        );
        assert_eq!(
            redraw_for(Some(&drawn), &area, &drawn, &visible(&view)),
            Redraw::Nothing
        );
        // Zooming out a little changes the zoom band and the cells, but the drawn area still covers
        // the viewport: the render waits until the view settles.
        let mut out = view;
        out.zoom_at(640.0, 400.0, 0.7);
        assert_ne!(wanted(&out), drawn);
        assert_eq!(
            redraw_for(Some(&drawn), &area, &wanted(&out), &visible(&out)),
            Redraw::WhenSettled
        );
        // Panning past the over-scan would show missing blocks: render now.
        let mut far = view;
        far.pan_x -= 3000.0;
        assert_eq!(
            redraw_for(Some(&drawn), &area, &wanted(&far), &visible(&far)),
            Redraw::Now
        );
        // A new level of detail renders now, even though the area still covers the viewport.
        let near = View {
            pan_x: 0.0,
            pan_y: 0.0,
            zoom: 0.52,
        };
        let (near_key, near_area) = render_key(&near, 1280.0, 800.0);
        let mut out = near;
        out.zoom_at(640.0, 400.0, 0.48 / 0.52);
        assert_ne!(wanted(&out).detail, near_key.detail);
        assert!(near_area.covers(&visible(&out)));
        assert_eq!(
            redraw_for(Some(&near_key), &near_area, &wanted(&out), &visible(&out)),
            Redraw::Now
        );
    }
}
