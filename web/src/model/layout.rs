//! Containers that fit: a frame or module grows to hold what is put in it, and a block dropped into a
//! new parent lands in free space there, never under a sibling.

use crate::model::fast_hash::FastMap;

use domain::board::{Position, Size};
use domain::ids::BlockId;

use super::{Board, Rect};

/// Room kept between a container's right and bottom edges and its children.
pub const CONTAINER_PADDING: f64 = 20.0;

/// The size `container` needs so every child fits inside it with [`CONTAINER_PADDING`] to spare, if
/// that is larger than it is now (`None`: it already fits). Containers only grow here: shrinking
/// would surprise a person who made room on purpose.
pub fn grown_to_fit(board: &Board, container: &BlockId) -> Option<Size> {
    let block = board.blocks.get(container)?;
    let (mut width, mut height) = (block.size.width, block.size.height);
    for child in board.children(Some(container)) {
        width = width.max(child.position.x + child.size.width + CONTAINER_PADDING);
        height = height.max(child.position.y + child.size.height + CONTAINER_PADDING);
    }
    let size = Size {
        width: width.ceil(),
        height: height.ceil(),
    };
    (size.width > block.size.width || size.height > block.size.height).then_some(size)
}

/// The containers that must be drawn larger than their stored size because a child sticks out of them
/// (placed by the server below the last row, by an API client or a webhook, with no board there to
/// grow the parent), with the size they are drawn at: the child's edge plus [`CONTAINER_PADDING`]. A
/// child that fits changes nothing, so a board laid out by hand is drawn exactly as stored. A grown
/// module can push out of its frame in turn: each pass carries growth one level up (levels nest three
/// deep). Drawing only: the stored size changes when someone resizes or drops into the container.
pub fn drawn_sizes(board: &Board) -> FastMap<BlockId, Size> {
    let mut grown: FastMap<BlockId, Size> = FastMap::default();
    for _ in 0..4 {
        let mut changed = false;
        for block in board.blocks.values().filter(|block| !block.archived) {
            let Some((parent_id, parent)) = block
                .parent_id
                .as_ref()
                .and_then(|id| Some((id, board.blocks.get(id)?)))
            else {
                continue;
            };
            // Nearly always nothing has grown: skip the lookups (this pass runs over every block of
            // the board on each change).
            let grown_size = |id: &BlockId, stored: Size| {
                if grown.is_empty() {
                    stored
                } else {
                    grown.get(id).copied().unwrap_or(stored)
                }
            };
            let size = grown_size(&block.id, block.size);
            let current = grown_size(parent_id, parent.size);
            let (right, bottom) = (
                block.position.x + size.width,
                block.position.y + size.height,
            );
            if right > current.width || bottom > current.height {
                let wider = |edge: f64, now: f64| {
                    if edge > now {
                        (edge + CONTAINER_PADDING).ceil()
                    } else {
                        now
                    }
                };
                grown.insert(
                    parent_id.clone(),
                    Size {
                        width: wider(right, current.width),
                        height: wider(bottom, current.height),
                    },
                );
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    grown
}

/// The size a container gets when resized to `wanted`: never so small that a child sticks out.
pub fn resized(board: &Board, container: &BlockId, wanted: Size) -> Size {
    let mut size = wanted;
    for child in board.children(Some(container)) {
        size.width = size
            .width
            .max(child.position.x + child.size.width + CONTAINER_PADDING);
        size.height = size
            .height
            .max(child.position.y + child.size.height + CONTAINER_PADDING);
    }
    size
}

/// Where `moving` lands in `parent` when dropped at `desired` (relative to the parent): there, if it
/// overlaps no sibling and does not stick out above or left of the parent; else the parent's first free
/// slot for a block of its level.
pub fn landing_position(
    board: &Board,
    parent: Option<&BlockId>,
    moving: &BlockId,
    desired: Position,
) -> Position {
    let Some(block) = board.blocks.get(moving) else {
        return desired;
    };
    let rect = Rect {
        x: desired.x,
        y: desired.y,
        width: block.size.width,
        height: block.size.height,
    };
    let inside = parent.is_none() || (desired.x >= 0.0 && desired.y >= 0.0);
    let overlaps = board
        .children(parent)
        .into_iter()
        .filter(|sibling| &sibling.id != moving)
        .any(|sibling| {
            Rect {
                x: sibling.position.x,
                y: sibling.position.y,
                width: sibling.size.width,
                height: sibling.size.height,
            }
            .intersects(&rect)
        });
    if inside && !overlaps {
        desired
    } else {
        board.free_slot_excluding(parent, block.level, Some(moving))
    }
}
