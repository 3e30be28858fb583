//! Copy, paste and duplicate: what a copy holds, and where pasted blocks land.
//!
//! A copy holds whole subtrees (a copied frame brings its modules and tasks) and the dependencies
//! between the copied blocks; a dependency to a block outside the copy is left behind. Pasted blocks
//! are created parents first under new ids, the same way an undone deletion comes back.

use crate::model::fast_hash::FastSet;
use std::collections::{HashMap, HashSet};

use domain::board::{BoardBlock, Edge, Position, check_parent_level};
use domain::ids::BlockId;

use super::Board;

/// What was copied: blocks parents first (a root is a block whose parent is not in the copy), and the
/// edges whose both ends are in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clip {
    pub blocks: Vec<BoardBlock>,
    pub edges: Vec<Edge>,
}

impl Clip {
    /// The blocks whose parent is not in the copy.
    pub fn roots(&self) -> Vec<&BoardBlock> {
        let ids: FastSet<&BlockId> = self.blocks.iter().map(|block| &block.id).collect();
        self.blocks
            .iter()
            .filter(|block| {
                block
                    .parent_id
                    .as_ref()
                    .is_none_or(|parent| !ids.contains(parent))
            })
            .collect()
    }
}

/// Copies the selected blocks with their subtrees (`None` when nothing that exists is selected). A
/// selected block inside another selected block is copied once, with its ancestor.
pub fn copy(board: &Board, selected: &[BlockId]) -> Option<Clip> {
    let present: Vec<&BlockId> = selected
        .iter()
        .filter(|id| board.blocks.contains_key(*id))
        .collect();
    let roots: Vec<&BlockId> = present
        .iter()
        .copied()
        .filter(|id| {
            !present
                .iter()
                .any(|other| other != id && board.is_within(id, other))
        })
        .collect();
    let mut seen = HashSet::new();
    let mut blocks = Vec::new();
    for root in roots {
        // `subtree` lists a block before its children.
        for id in board.subtree(root) {
            if seen.insert(id.clone())
                && let Some(block) = board.blocks.get(&id)
            {
                blocks.push(block.clone());
            }
        }
    }
    if blocks.is_empty() {
        return None;
    }
    let mut edges: Vec<Edge> = board
        .edges
        .values()
        .filter(|edge| seen.contains(&edge.from) && seen.contains(&edge.to))
        .cloned()
        .collect();
    edges.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Some(Clip { blocks, edges })
}

/// The blocks to create for a paste, parents first, roots re-parented and placed; their ids are still
/// the originals' (the creation maps them to the new ones).
///
/// `into` is the selected block: a frame or module takes the pasted blocks if the level rules allow, a
/// task stands for its container. Otherwise (and for a duplicate, `into: None`) a copy goes into its
/// original's container. Either way it lands in that container's first free slot (never on top of a
/// sibling, nor of its original), several roots keeping their arrangement. A root whose original
/// container is gone goes to the top level if its level may stand there; if not, the paste is refused
/// with a message saying what to do.
pub fn paste_plan(
    board: &Board,
    clip: &Clip,
    into: Option<&BlockId>,
) -> Result<Vec<BoardBlock>, String> {
    let container = into.and_then(|id| board.blocks.get(id)).and_then(|block| {
        if block.level == domain::board::Level::Task {
            block
                .parent_id
                .as_ref()
                .and_then(|parent| board.blocks.get(parent))
        } else {
            Some(block)
        }
    });
    let root_ids: FastSet<BlockId> = clip.roots().iter().map(|root| root.id.clone()).collect();
    // Per target container: where the first root landed, and where that root was.
    let mut landings: HashMap<Option<BlockId>, (Position, Position)> = HashMap::new();
    let mut planned = Vec::with_capacity(clip.blocks.len());
    for block in &clip.blocks {
        if !root_ids.contains(&block.id) {
            planned.push(block.clone());
            continue;
        }
        let target = container.filter(|container| {
            check_parent_level(block.level, Some(container.level)).is_ok()
                && !clip.blocks.iter().any(|copied| copied.id == container.id)
        });
        let parent = match target {
            Some(container) => Some(container.id.clone()),
            None => {
                let parent_exists = block
                    .parent_id
                    .as_ref()
                    .is_none_or(|parent| board.blocks.contains_key(parent));
                if parent_exists {
                    block.parent_id.clone()
                } else if check_parent_level(block.level, None).is_ok() {
                    None
                } else {
                    return Err(format!(
                        "The {} you copied was in a container that is gone: select a frame to paste it into.",
                        block.level.as_str()
                    ));
                }
            }
        };
        let (landed, first) = *landings.entry(parent.clone()).or_insert_with(|| {
            (
                board.free_slot(parent.as_ref(), block.level),
                block.position,
            )
        });
        let mut placed = block.clone();
        placed.parent_id = parent;
        placed.position = Position {
            x: landed.x + block.position.x - first.x,
            y: landed.y + block.position.y - first.y,
        };
        planned.push(placed);
    }
    Ok(planned)
}
