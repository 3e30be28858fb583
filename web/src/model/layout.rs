//! Containers that fit: a frame or module grows to hold what is put in it, and a block dropped into a
//! new parent lands in free space there, never under a sibling.

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
