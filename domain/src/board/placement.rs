//! Where a block lands when nobody said where: the first free slot of its parent, in reading order,
//! below the parent's title. One rule for the board (a new block, a paste, a drop that would cover a
//! sibling) and the worker (a block created through the API, a webhook or an issue import without a
//! position), so a block never lands at (0, 0) on top of its parent's title or its siblings.

use super::{Level, Position, Size};

/// How many slots are tried before giving up and stacking below every sibling.
const MAX_SLOTS: usize = 500;

/// How many columns of blocks the top level of the board fills before starting the next row.
const TOP_LEVEL_COLUMNS: usize = 4;

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
        None => TOP_LEVEL_COLUMNS,
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

/// How [`append_slot`] places a block of a level and size: the numbers the store's SQL needs to
/// apply the same rule inside a write (see `worker_core::board`), where reading every sibling first
/// would cost a round trip on the response's path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppendRule {
    /// The gap between blocks, and left of the first column.
    pub gap: f64,
    /// The first row's y: below the parent's title.
    pub top: f64,
    /// How far right a block and the gap after it may reach at the top level of the board (as many
    /// columns as [`free_slot`] fills there). In a parent, the parent's width.
    pub top_level_right_edge: f64,
}

/// The rule [`append_slot`] follows for a block of `level` and `size`, in a parent or not.
pub fn append_rule(level: Level, size: Size, in_parent: bool) -> AppendRule {
    let (gap, top) = spacing(level, in_parent);
    AppendRule {
        gap,
        top,
        top_level_right_edge: gap + TOP_LEVEL_COLUMNS as f64 * (size.width + gap),
    }
}

/// Where a block goes when nobody said where and the writer must not read every sibling first (a
/// block created through the API or by a webhook): after the last sibling in reading order. Beside
/// it in the same row when that fits in the parent (`parent_width`; `None`: the top level, as many
/// columns as [`free_slot`] fills) and covers no sibling (`beside_last_is_free`, which the caller
/// checks against every sibling); otherwise at the left of a new row below every sibling
/// (`lowest_bottom`, the largest `y + height`). The first child lands where [`free_slot`] puts it.
/// Unlike [`free_slot`] it does not fill holes further up; like it, it never covers a sibling, and
/// it needs only the last sibling, the lowest bottom and one overlap test: three indexed lookups a
/// store can run inside the write itself.
pub fn append_slot(
    parent_width: Option<f64>,
    level: Level,
    size: Size,
    last: Option<(Position, Size)>,
    lowest_bottom: f64,
    beside_last_is_free: bool,
) -> Position {
    let rule = append_rule(level, size, parent_width.is_some());
    let Some((last_position, last_size)) = last else {
        return Position {
            x: rule.gap,
            y: rule.top,
        };
    };
    let right_edge = parent_width.unwrap_or(rule.top_level_right_edge);
    let beside = Position {
        x: last_position.x + last_size.width + rule.gap,
        y: last_position.y,
    };
    if beside_last_is_free && beside.x + size.width + rule.gap <= right_edge {
        return beside;
    }
    Position {
        x: rule.gap,
        y: (lowest_bottom + rule.gap).max(rule.top),
    }
}

/// The sibling [`append_slot`] places after: the last in reading order (the lowest row, then the
/// rightmost in it, by their top-left corners).
pub fn last_in_reading_order(siblings: &[(Position, Size)]) -> Option<(Position, Size)> {
    siblings.iter().copied().max_by(|a, b| {
        a.0.y
            .total_cmp(&b.0.y)
            .then_with(|| a.0.x.total_cmp(&b.0.x))
    })
}

/// [`append_slot`] given every sibling (for tests, and for callers that hold them anyway).
pub fn append_slot_among(
    parent_width: Option<f64>,
    level: Level,
    size: Size,
    siblings: &[(Position, Size)],
) -> Position {
    let last = last_in_reading_order(siblings);
    let lowest_bottom = siblings
        .iter()
        .map(|(position, size)| position.y + size.height)
        .fold(f64::MIN, f64::max);
    let rule = append_rule(level, size, parent_width.is_some());
    let beside_last_is_free = last.is_some_and(|(position, last_size)| {
        let beside = Position {
            x: position.x + last_size.width + rule.gap,
            y: position.y,
        };
        !siblings
            .iter()
            .any(|sibling| overlaps((beside, size), *sibling))
    });
    append_slot(
        parent_width,
        level,
        size,
        last,
        lowest_bottom,
        beside_last_is_free,
    )
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
    fn appended_blocks_fill_rows_like_free_slots_on_an_orderly_board() {
        // Blocks placed one after another (the API creating tasks, a webhook adding modules) land
        // where the first free slot would have put them.
        for (parent, level) in [
            (Some(default_size(Level::Frame)), Level::Module),
            (Some(default_size(Level::Frame)), Level::Task),
            (Some(default_size(Level::Module)), Level::Task),
            (None, Level::Frame),
        ] {
            let size = default_size(level);
            let mut appended = Vec::new();
            let mut filled = Vec::new();
            for _ in 0..12 {
                let slot = append_slot_among(parent.map(|p| p.width), level, size, &appended);
                appended.push((slot, size));
                let slot = free_slot(parent, level, size, &filled);
                filled.push((slot, size));
            }
            assert_eq!(appended, filled, "{level:?} in {parent:?}");
        }
    }

    #[test]
    fn an_appended_block_never_covers_a_sibling() {
        let frame = default_size(Level::Frame);
        let task = default_size(Level::Task);
        // The last sibling in reading order has a tall neighbour right of it, hanging into the row.
        let siblings = [
            at(14.0, 40.0, 200.0, 72.0),
            at(228.0, 20.0, 200.0, 300.0),
            at(14.0, 126.0, 200.0, 72.0),
        ];
        let slot = append_slot_among(Some(frame.width), Level::Task, task, &siblings);
        assert!(
            siblings
                .iter()
                .all(|sibling| !overlaps((slot, task), *sibling)),
            "{slot:?} covers a sibling"
        );
        assert_eq!(slot, Position { x: 14.0, y: 334.0 }, "a new row below all");
    }

    #[test]
    fn an_appended_block_that_does_not_fit_beside_the_last_starts_a_new_row() {
        let module = default_size(Level::Module);
        let task = default_size(Level::Task);
        let siblings = [at(14.0, 40.0, 200.0, 72.0)];
        let slot = append_slot_among(Some(module.width), Level::Task, task, &siblings);
        assert_eq!(slot, Position { x: 14.0, y: 126.0 });
        // The first child sits below the parent's title, the lowest bottom notwithstanding.
        assert_eq!(
            append_slot(Some(module.width), Level::Task, task, None, f64::MIN, false),
            Position { x: 14.0, y: 40.0 }
        );
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
