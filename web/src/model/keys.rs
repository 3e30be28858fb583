//! Which key asks for which [`Command`]. Board shortcuts never fire while focus is in a text field:
//! there a key is typing, and only Escape (leave the field) means something to the board.

use domain::ids::BlockId;

use super::commands::Command;

/// A key press as the board sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPress {
    /// `KeyboardEvent.key`.
    pub key: String,
    pub ctrl: bool,
    pub meta: bool,
    pub alt: bool,
    pub shift: bool,
    /// The event's target or the focused element is a text field (input, textarea, select,
    /// contenteditable).
    pub in_text_field: bool,
    /// The block element that has the keyboard focus (Tab walks the blocks), unless it is the one
    /// already selected.
    pub focused_unselected_block: Option<BlockId>,
}

/// How far an arrow key pans, in screen pixels (Shift: a bigger step).
pub const PAN_STEP: f64 = 80.0;
pub const PAN_STEP_BIG: f64 = 400.0;

/// The command a key press asks for, or `None` (the key goes to the browser as usual).
pub fn command_for_key(press: &KeyPress, has_selection: bool) -> Option<Command> {
    if press.key == "Escape" {
        return Some(Command::Escape {
            in_text_field: press.in_text_field,
        });
    }
    if press.in_text_field || press.alt {
        return None;
    }
    let command_key = press.ctrl || press.meta;
    // Enter or Space on a block reached with Tab selects it.
    if let Some(block) = &press.focused_unselected_block
        && !command_key
        && (press.key == "Enter" || press.key == " ")
    {
        return Some(Command::Select(Some(block.clone())));
    }
    let step = if press.shift { PAN_STEP_BIG } else { PAN_STEP };
    Some(match press.key.as_str() {
        "z" | "Z" if command_key && !press.shift => Command::Undo,
        "z" | "Z" if command_key => Command::Redo,
        "y" | "Y" if command_key && !press.shift => Command::Redo,
        "c" | "C" if command_key && has_selection => Command::Copy,
        "v" | "V" if command_key => Command::Paste,
        "d" | "D" if command_key && has_selection => Command::Duplicate,
        "k" | "K" if command_key => Command::OpenFinder,
        _ if command_key => return None,
        "Delete" | "Backspace" if has_selection => Command::DeleteSelection,
        "F2" | "Enter" if has_selection => Command::RenameSelection,
        "e" | "E" if has_selection => Command::CycleEdge {
            backwards: press.shift,
        },
        "+" | "=" => Command::ZoomBy(1.25),
        "-" | "_" => Command::ZoomBy(0.8),
        "0" => Command::Fit,
        "?" => Command::ToggleShortcuts,
        "ArrowLeft" => Command::PanBy(step, 0.0),
        "ArrowRight" => Command::PanBy(-step, 0.0),
        "ArrowUp" => Command::PanBy(0.0, step),
        "ArrowDown" => Command::PanBy(0.0, -step),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(key: &str) -> KeyPress {
        KeyPress {
            key: key.to_owned(),
            ..KeyPress::default()
        }
    }

    #[test]
    fn keys_map_to_board_commands() {
        let cases = [
            ("+", Some(Command::ZoomBy(1.25))),
            ("-", Some(Command::ZoomBy(0.8))),
            ("0", Some(Command::Fit)),
            ("?", Some(Command::ToggleShortcuts)),
            ("ArrowLeft", Some(Command::PanBy(PAN_STEP, 0.0))),
            ("Delete", Some(Command::DeleteSelection)),
            ("Backspace", Some(Command::DeleteSelection)),
            ("a", None),
            ("F2", Some(Command::RenameSelection)),
            ("Enter", Some(Command::RenameSelection)),
            ("Tab", None),
        ];
        for (key, expected) in cases {
            assert_eq!(command_for_key(&press(key), true), expected, "key {key}");
        }
        assert_eq!(
            command_for_key(&press("e"), true),
            Some(Command::CycleEdge { backwards: false })
        );
        let shift_e = KeyPress {
            shift: true,
            ..press("E")
        };
        assert_eq!(
            command_for_key(&shift_e, true),
            Some(Command::CycleEdge { backwards: true })
        );
        assert_eq!(command_for_key(&press("e"), false), None);
        assert_eq!(command_for_key(&press("Delete"), false), None);
        assert_eq!(command_for_key(&press("Enter"), false), None);
        let undo = KeyPress {
            ctrl: true,
            ..press("z")
        };
        assert_eq!(command_for_key(&undo, false), Some(Command::Undo));
        let redo = KeyPress {
            ctrl: true,
            shift: true,
            ..press("Z")
        };
        assert_eq!(command_for_key(&redo, false), Some(Command::Redo));
        let redo_y = KeyPress {
            meta: true,
            ..press("y")
        };
        assert_eq!(command_for_key(&redo_y, false), Some(Command::Redo));
        let ctrl = |key: &str| KeyPress {
            ctrl: true,
            ..press(key)
        };
        assert_eq!(
            command_for_key(&ctrl("l"), true),
            None,
            "browser shortcuts pass through"
        );
        assert_eq!(command_for_key(&ctrl("c"), true), Some(Command::Copy));
        assert_eq!(
            command_for_key(&ctrl("c"), false),
            None,
            "nothing selected: the browser copies as usual"
        );
        assert_eq!(command_for_key(&ctrl("v"), false), Some(Command::Paste));
        assert_eq!(command_for_key(&ctrl("d"), true), Some(Command::Duplicate));
        assert_eq!(
            command_for_key(&ctrl("k"), false),
            Some(Command::OpenFinder)
        );
        let shifted = KeyPress {
            shift: true,
            ..press("ArrowDown")
        };
        assert_eq!(
            command_for_key(&shifted, false),
            Some(Command::PanBy(0.0, -PAN_STEP_BIG))
        );
    }

    #[test]
    fn enter_on_a_focused_block_selects_it_then_renames_it() {
        let block = BlockId::from_random([3; 8]);
        let focused = KeyPress {
            focused_unselected_block: Some(block.clone()),
            ..press("Enter")
        };
        assert_eq!(
            command_for_key(&focused, false),
            Some(Command::Select(Some(block.clone())))
        );
        let space = KeyPress {
            focused_unselected_block: Some(block.clone()),
            ..press(" ")
        };
        assert_eq!(
            command_for_key(&space, true),
            Some(Command::Select(Some(block)))
        );
        assert_eq!(
            command_for_key(&press("Enter"), true),
            Some(Command::RenameSelection)
        );
    }

    #[test]
    fn no_board_shortcut_fires_while_typing() {
        for key in [
            "-",
            "+",
            "0",
            "Delete",
            "Backspace",
            "ArrowLeft",
            "?",
            "z",
            "Enter",
            "F2",
            "c",
            "v",
            "d",
            "k",
            "y",
        ] {
            for ctrl in [false, true] {
                let typing = KeyPress {
                    key: key.to_owned(),
                    ctrl,
                    in_text_field: true,
                    ..KeyPress::default()
                };
                assert_eq!(
                    command_for_key(&typing, true),
                    None,
                    "{key} (ctrl {ctrl}) while typing"
                );
            }
        }
        let escape = KeyPress {
            in_text_field: true,
            ..press("Escape")
        };
        assert_eq!(
            command_for_key(&escape, true),
            Some(Command::Escape {
                in_text_field: true
            })
        );
    }
}
