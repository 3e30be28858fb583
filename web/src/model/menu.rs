//! The context menu: what a right-click offers, on a block or on empty canvas.

use domain::board::{Level, Position};
use domain::ids::BlockId;

use super::commands::Command;

/// One entry of the menu.
#[derive(Debug, Clone, PartialEq)]
pub struct MenuItem {
    pub label: &'static str,
    /// The shortcut that does the same, shown beside it (teaches the keyboard).
    pub keys: &'static str,
    /// A stable name for tests and styling.
    pub name: &'static str,
    pub command: Command,
    /// Shown apart, in red (deleting).
    pub danger: bool,
}

fn item(label: &'static str, keys: &'static str, name: &'static str, command: Command) -> MenuItem {
    MenuItem {
        label,
        keys,
        name,
        command,
        danger: false,
    }
}

/// The entries for a right-click on `block` (of level `level`; the block has just been selected) or
/// on empty canvas at world point `at`. A viewer gets only what does not change the board; "Paste"
/// appears once something was copied.
pub fn menu_items(
    block: Option<(&BlockId, Level)>,
    at: Position,
    read_only: bool,
    has_copy: bool,
) -> Vec<MenuItem> {
    let mut items = Vec::new();
    match block {
        Some((id, level)) => {
            items.push(item(
                "Zoom to",
                "Double-click",
                "zoom-to",
                Command::ZoomTo(id.clone()),
            ));
            if read_only {
                return items;
            }
            items.push(item("Rename", "F2", "rename", Command::RenameSelection));
            match level {
                Level::Frame => {
                    items.push(item(
                        "Add module",
                        "",
                        "add-module",
                        Command::AddToSelection(Level::Module),
                    ));
                    items.push(item(
                        "Add task",
                        "",
                        "add-task",
                        Command::AddToSelection(Level::Task),
                    ));
                }
                Level::Module => {
                    items.push(item(
                        "Add task",
                        "",
                        "add-task",
                        Command::AddToSelection(Level::Task),
                    ));
                }
                Level::Task => {}
            }
            items.push(item("Copy", "Ctrl+C", "copy", Command::Copy));
            if has_copy {
                items.push(item("Paste", "Ctrl+V", "paste", Command::Paste));
            }
            items.push(item("Duplicate", "Ctrl+D", "duplicate", Command::Duplicate));
            items.push(MenuItem {
                danger: true,
                ..item("Delete", "Delete", "delete", Command::DeleteSelection)
            });
        }
        None => {
            if !read_only {
                items.push(item(
                    "Add frame here",
                    "Double-click",
                    "add-frame-here",
                    Command::Create {
                        level: Level::Frame,
                        parent: None,
                        position: Some(at),
                    },
                ));
                if has_copy {
                    items.push(item("Paste", "Ctrl+V", "paste", Command::Paste));
                }
            }
            items.push(item("Find a block", "Ctrl+K", "find", Command::OpenFinder));
            items.push(item("Zoom to fit", "0", "fit", Command::Fit));
        }
    }
    items
}
