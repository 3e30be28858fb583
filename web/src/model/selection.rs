//! Selecting several blocks: shift-click toggles one, a marquee takes what it covers.

use crate::model::fast_hash::FastMap;

use domain::board::Level;
use domain::ids::{BlockId, EdgeId};

use super::{Board, Rect, SpatialIndex};

/// The selection as the board keeps it: one block (the panel shows it) or several (`multi`, with no
/// single block selected).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub single: Option<BlockId>,
    pub multi: Vec<BlockId>,
}

impl Selection {
    /// A selection of exactly these blocks.
    pub fn of(mut ids: Vec<BlockId>) -> Selection {
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => Selection::default(),
            1 => Selection {
                single: ids.pop(),
                multi: Vec::new(),
            },
            _ => Selection {
                single: None,
                multi: ids,
            },
        }
    }

    /// Every selected block.
    pub fn all(&self) -> Vec<BlockId> {
        let mut all = self.multi.clone();
        all.extend(self.single.iter().cloned());
        all
    }

    /// Shift-click: adds `id`, or takes it out if it was selected.
    pub fn toggled(&self, id: &BlockId) -> Selection {
        let mut all = self.all();
        match all.iter().position(|selected| selected == id) {
            Some(index) => {
                all.remove(index);
            }
            None => all.push(id.clone()),
        }
        Selection::of(all)
    }
}

/// The blocks a marquee over world `area` selects: those drawn at this zoom (`shown`) that lie wholly
/// inside it, without the ones whose container is selected too (moving the container moves them).
pub fn blocks_in_marquee(
    board: &Board,
    index: &SpatialIndex,
    rects: &FastMap<BlockId, Rect>,
    area: &Rect,
    shown: impl Fn(Level) -> bool,
) -> Vec<BlockId> {
    let covered: Vec<BlockId> = index
        .query(area, rects)
        .into_iter()
        .filter(|id| {
            board
                .blocks
                .get(id)
                .is_some_and(|block| !block.archived && shown(block.level))
                && rects.get(id).is_some_and(|rect| area.covers(rect))
        })
        .collect();
    let mut outermost: Vec<BlockId> = covered
        .iter()
        .filter(|id| {
            !covered
                .iter()
                .any(|other| other != *id && board.is_within(id, other))
        })
        .cloned()
        .collect();
    outermost.sort();
    outermost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlockId {
        BlockId::from_random([n; 8])
    }

    #[test]
    fn shift_click_grows_and_shrinks_the_selection() {
        let one = Selection::of(vec![id(1)]);
        assert_eq!(one.single, Some(id(1)));
        let two = one.toggled(&id(2));
        assert_eq!((two.single.clone(), two.multi.len()), (None, 2));
        let back = two.toggled(&id(1));
        assert_eq!(back, Selection::of(vec![id(2)]));
        assert_eq!(back.toggled(&id(2)), Selection::default());
    }
}

/// The dependency the keyboard selects next (E) or before (Shift+E): the edges touching `anchor` (the
/// block whose edges are being walked), in a stable order, after (or before) `current`, wrapping
/// around. `None` when the block has no edge.
pub fn next_edge(
    board: &Board,
    anchor: &BlockId,
    current: Option<&EdgeId>,
    backwards: bool,
) -> Option<EdgeId> {
    let mut edges: Vec<&EdgeId> = board
        .edges
        .values()
        .filter(|edge| &edge.from == anchor || &edge.to == anchor)
        .map(|edge| &edge.id)
        .collect();
    if edges.is_empty() {
        return None;
    }
    edges.sort();
    let count = edges.len();
    let next = match current.and_then(|current| edges.iter().position(|id| *id == current)) {
        Some(at) if backwards => (at + count - 1) % count,
        Some(at) => (at + 1) % count,
        None if backwards => count - 1,
        None => 0,
    };
    Some(edges[next].clone())
}

#[cfg(test)]
mod edge_tests {
    use super::*;
    use domain::api::board::BoardSnapshot;

    #[test]
    fn e_walks_the_selected_blocks_dependencies_both_ways_and_wraps() {
        let block = |n: u8| BlockId::from_random([n; 8]);
        let edge = |n: u8| EdgeId::from_random([n; 8]);
        let snapshot: BoardSnapshot = serde_json::from_value(serde_json::json!({
            "workspace": { "id": "ws_0101010101010101", "accountId": "acc_0101010101010101",
                "name": "w", "accessMode": "account", "createdAt": 1, "updatedAt": 1 },
            "blocks": [], "seq": 0,
            "edges": [
                [edge(3), block(1), block(2), 1],
                [edge(1), block(4), block(1), 1],
                [edge(2), block(5), block(6), 1]
            ]
        }))
        .expect("a snapshot");
        let board = Board::from_snapshot(snapshot);
        let anchor = block(1);
        let first = next_edge(&board, &anchor, None, false);
        assert_eq!(
            first,
            Some(edge(1)),
            "the block's edges in id order, both directions"
        );
        assert_eq!(
            next_edge(&board, &anchor, first.as_ref(), false),
            Some(edge(3))
        );
        assert_eq!(
            next_edge(&board, &anchor, Some(&edge(3)), false),
            Some(edge(1))
        );
        assert_eq!(next_edge(&board, &anchor, None, true), Some(edge(3)));
        assert_eq!(
            next_edge(&board, &anchor, Some(&edge(1)), true),
            Some(edge(3))
        );
        assert_eq!(next_edge(&board, &block(9), None, false), None);
    }
}
