//! The board of one workspace as the browser holds it: blocks and edges, live events applied in order,
//! and the summaries the far-out views draw.

use crate::model::fast_hash::{FastMap, FastSet};
use std::collections::HashMap;

use domain::api::board::BoardSnapshot;
use domain::api::runs::RunRecord;
use domain::api::workspaces::Workspace;
use domain::board::{Block, BlockStatus, BoardBlock, Edge, Level, Position, Size};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{BlockId, EdgeId};

use super::Rect;

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
    pub blocks: FastMap<BlockId, BoardBlock>,
    pub edges: FastMap<EdgeId, Edge>,
    /// The last event sequence number reflected here (resume the stream from it).
    pub seq: i64,
    /// Bumped on every change, so views can tell cheaply whether they are stale.
    pub version: u64,
    /// Bumped only when blocks or edges change: what is derived from the layout alone (rectangles,
    /// spatial indexes, summaries, routed edges) stays valid while runs, spend and GitHub state load.
    pub layout_version: u64,
    /// The latest run of each task (loaded after the snapshot, kept live by `run.*` events).
    pub runs: FastMap<BlockId, RunRecord>,
    /// What was spent this month, per block and in all (kept live by `spend.changed`).
    pub spend: super::spend::SpendTally,
    /// Each block's GitHub state (loaded after the snapshot, kept live by `block.github`).
    pub github: FastMap<BlockId, domain::api::github::BlockGithub>,
}

impl Board {
    /// Records a change to the blocks or edges.
    fn layout_changed(&mut self) {
        self.version += 1;
        self.layout_version += 1;
    }

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
            layout_version: 0,
            runs: FastMap::default(),
            spend: super::spend::SpendTally::default(),
            github: FastMap::default(),
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
        self.layout_changed();
        Applied::Changed
    }

    /// Applies another write's `block.updated` (only the fields it changed) to the block's copy,
    /// unless the copy is already at or past that revision.
    pub fn apply_block_change(&mut self, change: &domain::board::BlockChange) -> Applied {
        let applied = self
            .blocks
            .get_mut(&change.id)
            .is_some_and(|block| change.apply_to_board_block(block));
        if !applied {
            return Applied::Ignored;
        }
        self.layout_changed();
        Applied::Changed
    }

    /// Sets a block as it is known locally (an optimistic edit or a rollback), whatever its revision.
    pub fn force_block(&mut self, block: BoardBlock) {
        self.blocks.insert(block.id.clone(), block);
        self.layout_changed();
    }

    /// Removes a block, its subtree and every edge touching them.
    pub fn remove_subtree(&mut self, root: &BlockId) -> Applied {
        let doomed: FastSet<BlockId> = self.subtree(root).into_iter().collect();
        if doomed.is_empty() {
            return Applied::Ignored;
        }
        for id in &doomed {
            self.blocks.remove(id);
        }
        self.edges
            .retain(|_, edge| !doomed.contains(&edge.from) && !doomed.contains(&edge.to));
        self.layout_changed();
        Applied::Changed
    }

    pub fn insert_edge(&mut self, edge: Edge) -> Applied {
        if self.edges.contains_key(&edge.id) {
            return Applied::Ignored;
        }
        self.edges.insert(edge.id.clone(), edge);
        self.layout_changed();
        Applied::Changed
    }

    pub fn remove_edge(&mut self, id: &EdgeId) -> Applied {
        if self.edges.remove(id).is_none() {
            return Applied::Ignored;
        }
        self.layout_changed();
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
            EventPayload::BlockCreated { block } | EventPayload::BlockReparented { block } => {
                self.upsert_block(BoardBlock::from(block))
            }
            EventPayload::BlockUpdated(change) => self.apply_block_change(change),
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
                let gone: FastSet<&BlockId> = deleted_block_ids.iter().collect();
                let before = self.edges.len();
                self.edges
                    .retain(|_, edge| !gone.contains(&edge.from) && !gone.contains(&edge.to));
                changed |= before != self.edges.len();
                if changed {
                    self.layout_changed();
                    Applied::Changed
                } else {
                    Applied::Ignored
                }
            }
            EventPayload::EdgeCreated { edge } => self.insert_edge(edge.clone()),
            EventPayload::EdgeDeleted { edge_id } => self.remove_edge(edge_id),
            EventPayload::WorkspaceUpdated { workspace } => {
                self.set_workspace(workspace.clone());
                Applied::Changed
            }
            EventPayload::SpendChanged { call } => {
                self.spend.apply(call);
                self.version += 1;
                Applied::Changed
            }
            EventPayload::Run(record) => {
                match super::runs::apply_run_event(&mut self.runs, record, event.at) {
                    super::runs::RunApplied::Changed => {
                        self.version += 1;
                        Applied::Changed
                    }
                    super::runs::RunApplied::Unknown => Applied::Ignored,
                }
            }
            EventPayload::BlockGithub { github } => {
                if super::github::store_state(&mut self.github, github.clone()) {
                    self.version += 1;
                    Applied::Changed
                } else {
                    Applied::Ignored
                }
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

    fn children_map(&self) -> FastMap<BlockId, Vec<BlockId>> {
        let mut map: FastMap<BlockId, Vec<BlockId>> = FastMap::default();
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

    /// Every block's world rectangle as drawn. A container a child sticks out of is drawn grown to hold
    /// it ([`super::layout::drawn_sizes`]).
    ///
    /// Each block's origin is the sum of its ancestors' positions, found by walking up from the block
    /// (levels nest three deep, so two or three lookups), with no map of children and no copied ids but
    /// the key each rectangle is stored under: a 20,000-block board's load runs this over every block.
    /// A block whose parent is missing is placed as if it were at the top level.
    pub fn absolute_rects(&self) -> FastMap<BlockId, Rect> {
        let grown = super::layout::drawn_sizes(self);
        let mut rects = FastMap::with_capacity_and_hasher(
            self.blocks.len(),
            std::hash::BuildHasherDefault::default(),
        );
        for block in self.blocks.values() {
            let (mut x, mut y) = (block.position.x, block.position.y);
            let mut parent = block.parent_id.as_ref().and_then(|id| self.blocks.get(id));
            let mut steps = 0;
            while let Some(ancestor) = parent {
                x += ancestor.position.x;
                y += ancestor.position.y;
                steps += 1;
                if steps > 64 {
                    break;
                }
                parent = ancestor
                    .parent_id
                    .as_ref()
                    .and_then(|id| self.blocks.get(id));
            }
            let size = if grown.is_empty() {
                block.size
            } else {
                grown.get(&block.id).copied().unwrap_or(block.size)
            };
            rects.insert(
                block.id.clone(),
                Rect {
                    x,
                    y,
                    width: size.width,
                    height: size.height,
                },
            );
        }
        rects
    }

    /// The bounds of everything on the board.
    /// The workspace's settings as they are now: from its event, or from this tab's own write (whose
    /// event the hub does not echo back to it).
    pub fn set_workspace(&mut self, workspace: Workspace) {
        self.workspace = workspace;
        self.version += 1;
    }

    /// The service (root frame) a block is in: itself when it is one. `None` for a block not on the
    /// board.
    pub fn service_of(&self, id: &BlockId) -> Option<BlockId> {
        let mut current = self.blocks.get(id)?;
        // Bounded by the block count, so a parent cycle (never written by the server) cannot hang.
        for _ in 0..self.blocks.len() {
            match current
                .parent_id
                .as_ref()
                .and_then(|parent| self.blocks.get(parent))
            {
                Some(parent) => current = parent,
                None => break,
            }
        }
        Some(current.id.clone())
    }

    pub fn bounds(&self, rects: &FastMap<BlockId, Rect>) -> Option<Rect> {
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
    pub fn summaries(&self) -> FastMap<BlockId, Summary> {
        let mut summaries: FastMap<BlockId, Summary> = FastMap::default();
        for block in self.blocks.values() {
            if block.archived || block.level == Level::Frame {
                continue;
            }
            // Walks by reference, cloning an id only the first time a container is met (a large
            // board's load pays for this walk over every block).
            let mut parent = block.parent_id.as_ref();
            let mut steps = 0;
            while let Some(id) = parent {
                if !summaries.contains_key(id) {
                    summaries.insert(id.clone(), Summary::default());
                }
                let Some(summary) = summaries.get_mut(id) else {
                    break;
                };
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
                    .get(id)
                    .and_then(|block| block.parent_id.as_ref());
            }
        }
        summaries
    }

    /// The container a block dropped at world point (`x`, `y`) lands in, by the canvas's own rule
    /// ([`super::drop_target::drop_target`]) over every block at every level of detail.
    pub fn drop_target(
        &self,
        rects: &FastMap<BlockId, Rect>,
        x: f64,
        y: f64,
        dragged: &BlockId,
    ) -> Option<BlockId> {
        super::drop_target::drop_target(
            self,
            self.blocks.keys().cloned(),
            rects,
            (x, y),
            dragged,
            |_| true,
        )
    }

    /// Where a new child of `parent` goes when the user did not point at a spot: the first free slot of
    /// a grid inside the parent (or to the right of everything, at the top level).
    pub fn free_slot(&self, parent: Option<&BlockId>, level: Level) -> Position {
        self.free_slot_excluding(parent, level, None)
    }

    /// [`Board::free_slot`], ignoring `excluded` among the siblings (the block being moved).
    pub fn free_slot_excluding(
        &self,
        parent: Option<&BlockId>,
        level: Level,
        excluded: Option<&BlockId>,
    ) -> Position {
        let siblings: Vec<(Position, Size)> = self
            .children(parent)
            .into_iter()
            .filter(|sibling| Some(&sibling.id) != excluded)
            .map(|sibling| (sibling.position, sibling.size))
            .collect();
        domain::board::placement::free_slot(
            parent
                .and_then(|id| self.blocks.get(id))
                .map(|parent| parent.size),
            level,
            domain::board::default_size(level),
            &siblings,
        )
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

/// A container's status mix as one CSS background: a left-to-right bar with a stop per status present
/// (in [`MIX_ORDER`], as wide as its share of the tasks). One element per container instead of one
/// per status keeps a far-out view of hundreds of frames cheap to build and to paint. `None` when the
/// container holds no task.
pub fn mix_gradient(mix: &[usize; 6]) -> Option<String> {
    let total: usize = mix.iter().sum();
    if total == 0 {
        return None;
    }
    let mut stops = Vec::new();
    let mut before = 0;
    for (n, status) in MIX_ORDER.iter().enumerate() {
        if mix[n] == 0 {
            continue;
        }
        let from = before as f64 * 100.0 / total as f64;
        before += mix[n];
        let to = before as f64 * 100.0 / total as f64;
        stops.push(format!("var(--s-{}) {from:.1}% {to:.1}%", status.as_str()));
    }
    Some(format!("linear-gradient(to right,{})", stops.join(",")))
}

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
