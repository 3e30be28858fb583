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
    let mut current = board.blocks.get(id)?;
    for _ in 0..64 {
        if detail.shows(current.level) {
            return Some(current.id.clone());
        }
        current = board.blocks.get(current.parent_id.as_ref()?)?;
    }
    None
}

/// The edges with at least one end hidden at `detail`, each moved to the nearest drawn ancestors of its
/// ends; edges that end up inside one block disappear, parallel ones (same direction) merge into one
/// with a count. Edges whose both ends are drawn are not here: they are drawn as themselves. Sorted,
/// so the drawing is stable.
pub fn rolled_up_edges(board: &Board, detail: Detail) -> Vec<RolledEdge> {
    if detail == Detail::Tasks {
        return Vec::new();
    }
    let mut counts: BTreeMap<(BlockId, BlockId), usize> = BTreeMap::new();
    for edge in board.edges.values() {
        let both_shown = [&edge.from, &edge.to].iter().all(|id| {
            board
                .blocks
                .get(*id)
                .is_some_and(|block| detail.shows(block.level))
        });
        if both_shown {
            continue;
        }
        let (Some(from), Some(to)) = (
            shown_ancestor(board, &edge.from, detail),
            shown_ancestor(board, &edge.to, detail),
        ) else {
            continue;
        };
        if from == to || board.is_within(&from, &to) || board.is_within(&to, &from) {
            continue;
        }
        *counts.entry((from, to)).or_default() += 1;
    }
    let lane = |from: &BlockId, to: &BlockId| {
        if !counts.contains_key(&(to.clone(), from.clone())) {
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
            from: from.clone(),
            to: to.clone(),
            count: *count,
        })
        .collect()
}
