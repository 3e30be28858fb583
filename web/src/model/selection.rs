//! Selecting several blocks: shift-click toggles one, a marquee takes what it covers.

use std::collections::HashMap;

use domain::board::Level;
use domain::ids::BlockId;

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
    rects: &HashMap<BlockId, Rect>,
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
