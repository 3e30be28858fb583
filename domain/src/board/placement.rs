//! Where a block lands when nobody said where: the first free slot of its parent, in reading order,
//! below the parent's title. One rule for the board (a new block, a paste, a drop that would cover a
//! sibling) and the worker (a block created through the API, a webhook or an issue import without a
//! position), so a block never lands at (0, 0) on top of its parent's title or its siblings.

use super::{Level, Position, Size};

/// How many slots are tried before giving up and stacking below every sibling.
const MAX_SLOTS: usize = 500;

/// The gap between slots, and the room left at the top for the parent's title, for a block of a level
/// placed in a parent (or at the top level when `in_parent` is false).
fn spacing(level: Level, in_parent: bool) -> (f64, f64) {
    match (in_parent, level) {
        (true, Level::Task) => (14.0, 40.0),
        (true, _) => (20.0, 48.0),
        (false, _) => (80.0, 0.0),
    }
}

/// Two rectangles given as position and size overlap (touching edges do not).
fn overlaps(a: (Position, Size), b: (Position, Size)) -> bool {
    a.0.x < b.0.x + b.1.width
        && b.0.x < a.0.x + a.1.width
        && a.0.y < b.0.y + b.1.height
        && b.0.y < a.0.y + a.1.height
}

/// The first free slot for a block of `level` and `size` among `siblings` (their positions and sizes,
/// relative to the parent), in a parent of `parent_size` (`None`: at the top level of the board, four
/// columns). Slots run left to right, then top to bottom, a gap apart, starting below the parent's
/// title. When every slot in [`MAX_SLOTS`] is taken, the block goes below the lowest sibling.
pub fn free_slot(
    parent_size: Option<Size>,
    level: Level,
    size: Size,
    siblings: &[(Position, Size)],
) -> Position {
    let (gap, top) = spacing(level, parent_size.is_some());
    let columns = match parent_size {
        Some(parent) => ((parent.width - gap) / (size.width + gap)).floor().max(1.0) as usize,
        None => 4,
    };
    for slot in 0..MAX_SLOTS {
        let candidate = Position {
            x: gap + (slot % columns) as f64 * (size.width + gap),
            y: top + (slot / columns) as f64 * (size.height + gap),
        };
        if !siblings
            .iter()
            .any(|sibling| overlaps((candidate, size), *sibling))
        {
            return candidate;
        }
    }
    let lowest = siblings
        .iter()
        .map(|(position, size)| position.y + size.height)
        .fold(top, f64::max);
    Position {
        x: gap,
        y: lowest + gap,
    }
}

/// `count` free slots for new blocks of `level` and `size` among `siblings`, each taken before the
/// next is found, so the new blocks cover neither what is there nor each other (an issue import
/// places all its tasks at once).
pub fn free_slots(
    parent_size: Option<Size>,
    level: Level,
    size: Size,
    siblings: &[(Position, Size)],
    count: usize,
) -> Vec<Position> {
    let mut taken = siblings.to_vec();
    (0..count)
        .map(|_| {
            let slot = free_slot(parent_size, level, size, &taken);
            taken.push((slot, size));
            slot
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::default_size;

    fn at(x: f64, y: f64, width: f64, height: f64) -> (Position, Size) {
        (Position { x, y }, Size { width, height })
    }

    #[test]
    fn the_first_child_lands_below_the_parents_title_not_at_the_origin() {
        let frame = default_size(Level::Frame);
        let slot = free_slot(Some(frame), Level::Module, default_size(Level::Module), &[]);
        assert_eq!(slot, Position { x: 20.0, y: 48.0 });
        let module = default_size(Level::Module);
        let slot = free_slot(Some(module), Level::Task, default_size(Level::Task), &[]);
        assert_eq!(slot, Position { x: 14.0, y: 40.0 });
    }

    #[test]
    fn a_new_block_never_covers_a_sibling() {
        let frame = Size {
            width: 640.0,
            height: 420.0,
        };
        let module = default_size(Level::Module);
        let siblings = [at(20.0, 48.0, 280.0, 200.0), at(330.0, 60.0, 280.0, 200.0)];
        let slot = free_slot(Some(frame), Level::Module, module, &siblings);
        assert!(
            siblings
                .iter()
                .all(|sibling| !overlaps((slot, module), *sibling)),
            "{slot:?} covers a sibling"
        );
        assert_eq!(slot, Position { x: 20.0, y: 268.0 }, "the next row");
    }

    #[test]
    fn top_level_frames_fill_four_columns_then_the_next_row() {
        let frame = default_size(Level::Frame);
        let mut siblings = Vec::new();
        for _ in 0..5 {
            let slot = free_slot(None, Level::Frame, frame, &siblings);
            siblings.push((slot, frame));
        }
        assert_eq!(
            siblings[3].0,
            Position {
                x: 80.0 + 3.0 * 720.0,
                y: 0.0
            }
        );
        assert_eq!(siblings[4].0, Position { x: 80.0, y: 500.0 });
    }

    #[test]
    fn a_parent_narrower_than_its_child_still_gets_one_column() {
        let narrow = Size {
            width: 100.0,
            height: 100.0,
        };
        let task = default_size(Level::Task);
        let first = free_slot(Some(narrow), Level::Task, task, &[]);
        let second = free_slot(Some(narrow), Level::Task, task, &[(first, task)]);
        assert_eq!(second.x, first.x);
        assert!(second.y >= first.y + task.height);
    }

    #[test]
    fn a_full_parent_stacks_the_block_below_its_lowest_child() {
        let task = default_size(Level::Task);
        let module = Size {
            width: 230.0,
            height: 200.0,
        };
        // One column; every slot of the 500 taken by a tall child.
        let siblings = [at(0.0, 0.0, 230.0, 500.0 * (72.0 + 14.0) + 100.0)];
        let slot = free_slot(Some(module), Level::Task, task, &siblings);
        assert!(!overlaps((slot, task), siblings[0]));
    }

    #[test]
    fn new_tasks_fill_free_slots_around_what_the_parent_already_holds() {
        let frame = default_size(Level::Frame);
        let task = default_size(Level::Task);
        let existing = [(Position { x: 40.0, y: 60.0 }, task)];
        let slots = free_slots(Some(frame), Level::Task, task, &existing, 3);
        assert_eq!(slots.len(), 3);
        for (index, slot) in slots.iter().enumerate() {
            let clear = |other: &Position| {
                slot.x + task.width <= other.x
                    || other.x + task.width <= slot.x
                    || slot.y + task.height <= other.y
                    || other.y + task.height <= slot.y
            };
            assert!(
                clear(&existing[0].0),
                "slot {index} {slot:?} covers the task"
            );
            for other in &slots[..index] {
                assert!(clear(other), "slot {index} {slot:?} covers {other:?}");
            }
            assert!(
                slot.x >= 0.0 && slot.y >= 40.0,
                "below the header: {slot:?}"
            );
        }
        // An empty frame fills its first row left to right.
        let empty = free_slots(Some(frame), Level::Task, task, &[], 2);
        assert_eq!(empty[0], Position { x: 14.0, y: 40.0 });
        assert_eq!(empty[1].y, 40.0);
        assert!(empty[1].x > empty[0].x + task.width);
    }
}
