//! Dependencies at a distance: when the view is zoomed out so far that tasks (or modules) are not
//! drawn, their dependencies roll up into lines between the blocks that are, with a count — the
//! service-to-service overview.

use std::collections::BTreeMap;

use domain::ids::BlockId;

use super::{Board, Detail};

/// Dependencies between two drawn blocks, standing for `count` edges between blocks inside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledEdge {
    pub from: BlockId,
    pub to: BlockId,
    pub count: usize,
    /// Which side of the straight path the line is drawn on: 0 alone; when dependencies also run the
    /// other way between the same two blocks, +1 and −1, so the two lines (and their counts) do not
    /// cover each other.
    pub lane: i8,
}

/// The nearest block at or above `id` that `detail` draws (frames are always drawn).
pub fn shown_ancestor(board: &Board, id: &BlockId, detail: Detail) -> Option<BlockId> {
    shown_ancestor_ref(board, id, detail).cloned()
}

/// [`shown_ancestor`] by reference: the far-out render rolls up every edge of the board, and copying
/// ids on the way up was most of its cost.
fn shown_ancestor_ref<'a>(board: &'a Board, id: &BlockId, detail: Detail) -> Option<&'a BlockId> {
    let mut current = board.blocks.get(id)?;
    for _ in 0..64 {
        if detail.shows(current.level) {
            return Some(&current.id);
        }
        current = board.blocks.get(current.parent_id.as_ref()?)?;
    }
    None
}

/// Whether `candidate` is `ancestor` or lies under it ([`Board::is_within`], without copying ids).
fn is_within(board: &Board, candidate: &BlockId, ancestor: &BlockId) -> bool {
    let mut current = Some(candidate);
    for _ in 0..64 {
        let Some(id) = current else {
            return false;
        };
        if id == ancestor {
            return true;
        }
        current = board
            .blocks
            .get(id)
            .and_then(|block| block.parent_id.as_ref());
    }
    false
}

/// The edges with at least one end hidden at `detail`, each moved to the nearest drawn ancestors of its
/// ends; edges that end up inside one block disappear, parallel ones (same direction) merge into one
/// with a count. Edges whose both ends are drawn are not here: they are drawn as themselves. Sorted,
/// so the drawing is stable.
pub fn rolled_up_edges(board: &Board, detail: Detail) -> Vec<RolledEdge> {
    if detail == Detail::Tasks {
        return Vec::new();
    }
    let mut counts: BTreeMap<(&BlockId, &BlockId), usize> = BTreeMap::new();
    for edge in board.edges.values() {
        let (Some(from_block), Some(to_block)) =
            (board.blocks.get(&edge.from), board.blocks.get(&edge.to))
        else {
            continue;
        };
        if detail.shows(from_block.level) && detail.shows(to_block.level) {
            continue;
        }
        let (Some(from), Some(to)) = (
            shown_ancestor_ref(board, &edge.from, detail),
            shown_ancestor_ref(board, &edge.to, detail),
        ) else {
            continue;
        };
        if from == to || is_within(board, from, to) || is_within(board, to, from) {
            continue;
        }
        *counts.entry((from, to)).or_default() += 1;
    }
    let lane = |from: &BlockId, to: &BlockId| {
        if !counts.contains_key(&(to, from)) {
            0
        } else if from < to {
            1
        } else {
            -1
        }
    };
    counts
        .iter()
        .map(|((from, to), count)| RolledEdge {
            lane: lane(from, to),
            from: (*from).clone(),
            to: (*to).clone(),
            count: *count,
        })
        .collect()
}
