//! Where a pointer lands on the board: the one rule the canvas uses while dragging, dropping,
//! connecting and double-clicking, and that the tests check. (There used to be two, which broke ties
//! differently.)

use crate::model::fast_hash::FastMap;

use domain::board::{Level, check_parent_level};
use domain::ids::BlockId;

use super::{Board, Rect};

/// The block a pointer at world point (`x`, `y`) is over: among `candidates` (the spatial index's
/// answer, or every block) those whose rectangle holds the point, that `shown` draws at this zoom, that
/// are not archived and not inside `exclude`; the deepest in the tree wins (a child is drawn on top of
/// its parent), then the smaller one, then the lower id, so the answer never depends on hash order.
pub fn block_under_point(
    board: &Board,
    candidates: impl IntoIterator<Item = BlockId>,
    rects: &FastMap<BlockId, Rect>,
    (x, y): (f64, f64),
    exclude: Option<&BlockId>,
    shown: impl Fn(Level) -> bool,
) -> Option<BlockId> {
    candidates
        .into_iter()
        .filter_map(|id| {
            let block = board.blocks.get(&id)?;
            let rect = rects.get(&id)?;
            let eligible = !block.archived
                && shown(block.level)
                && rect.contains(x, y)
                && exclude.is_none_or(|excluded| !board.is_within(&id, excluded));
            eligible.then(|| {
                let area = rect.width * rect.height;
                (
                    depth(board, &id),
                    std::cmp::Reverse(OrderedArea(area)),
                    std::cmp::Reverse(id),
                )
            })
        })
        .max()
        .map(|(_, _, std::cmp::Reverse(id))| id)
}

/// The container a dragged block lands in when dropped at world point (`x`, `y`): the block under the
/// point (see [`block_under_point`]) if it may hold a block of the dragged one's level, else its nearest
/// ancestor that may (a drop on a task means "into that task's module"; a module dropped on a module's
/// task lands in the module). `None` is the top level; the server has the last word either way.
pub fn drop_target(
    board: &Board,
    candidates: impl IntoIterator<Item = BlockId>,
    rects: &FastMap<BlockId, Rect>,
    point: (f64, f64),
    dragged: &BlockId,
    shown: impl Fn(Level) -> bool,
) -> Option<BlockId> {
    let level = board.blocks.get(dragged)?.level;
    let mut current = block_under_point(board, candidates, rects, point, Some(dragged), shown);
    let mut steps = 0;
    while let Some(id) = current {
        let block = board.blocks.get(&id)?;
        if check_parent_level(level, Some(block.level)).is_ok() {
            return Some(id);
        }
        steps += 1;
        if steps > 64 {
            return None;
        }
        current = block.parent_id.clone();
    }
    None
}

/// How many ancestors a block has on this board.
fn depth(board: &Board, id: &BlockId) -> usize {
    let mut depth = 0;
    let mut current = board
        .blocks
        .get(id)
        .and_then(|block| block.parent_id.as_ref());
    while let Some(parent) = current {
        depth += 1;
        if depth > 64 {
            break;
        }
        current = board
            .blocks
            .get(parent)
            .and_then(|block| block.parent_id.as_ref());
    }
    depth
}

/// An area that orders totally (areas are finite and non-negative).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedArea(f64);

impl Eq for OrderedArea {}

impl PartialOrd for OrderedArea {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedArea {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
