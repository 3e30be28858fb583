//! What the board page can be asked to do. The canvas, the toolbar, the panel and the keyboard never
//! change the board themselves: they hand a [`Command`] over by value, and the page runs it later, from
//! a queue, when no event handler holds any part of the board (see `command_queue`). That is what
//! makes re-entering a borrowed board impossible rather than merely avoided.

use domain::board::{Level, Position, Size};
use domain::ids::{BlockId, EdgeId};

use super::edit::Edit;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Select a block (`None`: clear the selection).
    Select(Option<BlockId>),
    SelectEdge(EdgeId),
    /// E / Shift+E: select the next (or previous) dependency of the selected block (or of the block
    /// whose dependencies the keyboard is already walking).
    CycleEdge {
        backwards: bool,
    },
    /// Shift-click: add a block to the selection, or take it out.
    ToggleSelect(BlockId),
    /// A marquee: select exactly these blocks.
    SelectMany(Vec<BlockId>),
    /// Move several blocks by the same amount (world units), each within its parent.
    MoveMany {
        ids: Vec<BlockId>,
        dx: f64,
        dy: f64,
    },
    /// A block was dropped: its new parent (maybe unchanged) and position relative to that parent.
    /// `screen` is where the pointer let go, relative to the canvas (a refusal is shown there).
    Move {
        id: BlockId,
        parent: Option<BlockId>,
        position: Position,
        screen: Option<(f64, f64)>,
    },
    /// A frame or module was resized by its corner (it never gets smaller than its children need).
    Resize {
        id: BlockId,
        size: Size,
    },
    /// Create a block; without a position it takes the parent's first free slot.
    Create {
        level: Level,
        parent: Option<BlockId>,
        position: Option<Position>,
    },
    /// A toolbar button: create a block of this level in the selected container.
    AddToSelection(Level),
    Connect {
        from: BlockId,
        to: BlockId,
    },
    ZoomTo(BlockId),
    ZoomBy(f64),
    Fit,
    PanBy(f64, f64),
    Edit {
        id: BlockId,
        edit: Edit,
    },
    /// Ask before deleting (the confirmation dialog).
    AskDelete(Vec<BlockId>),
    /// Delete what is selected: the edge, or (after asking) the block.
    DeleteSelection,
    Delete(Vec<BlockId>),
    RemoveEdge(EdgeId),
    Undo,
    /// Do again what the last undo took back.
    Redo,
    /// Start renaming a block in place on the canvas.
    Rename(BlockId),
    /// Start renaming the selected block in place (F2 or Enter).
    RenameSelection,
    /// The in-place rename ended: with the new title, or `None` when it was cancelled.
    FinishRename {
        id: BlockId,
        title: Option<String>,
    },
    /// Escape: close a dialog, else leave the text field, else clear the selection.
    Escape {
        in_text_field: bool,
    },
    ToggleShortcuts,
    /// Copy the selected blocks (with their subtrees and the edges inside them).
    Copy,
    /// Paste what was copied into the selected container, or next to the originals.
    Paste,
    /// Copy the selection and paste it next to itself.
    Duplicate,
    /// Open the context menu at canvas point `at` (screen pixels) for `block` (`None`: empty canvas,
    /// at world point `world`).
    OpenMenu {
        at: (f64, f64),
        block: Option<BlockId>,
        world: Position,
    },
    CloseMenu,
    /// Open "find a block" (Ctrl+K).
    OpenFinder,
    CloseFinder,
    /// Select a block and bring it into view (a finder result).
    Jump(BlockId),
    /// Fold the side panel to a narrow strip, or unfold it (room for the canvas on a small screen).
    TogglePanel,
    /// Show or hide the minimap.
    ToggleMinimap,
}

impl Command {
    /// A short name for logs and crash reports (never the user's text).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Select(_) => "select",
            Command::SelectEdge(_) => "select edge",
            Command::CycleEdge { .. } => "select the next edge",
            Command::ToggleSelect(_) => "toggle selection",
            Command::SelectMany(_) => "select many",
            Command::MoveMany { .. } => "move many",
            Command::Resize { .. } => "resize",
            Command::Move { .. } => "move",
            Command::Create { .. } => "create",
            Command::AddToSelection(_) => "add from toolbar",
            Command::Connect { .. } => "connect",
            Command::ZoomTo(_) => "zoom to block",
            Command::ZoomBy(_) => "zoom",
            Command::Fit => "fit",
            Command::PanBy(..) => "pan",
            Command::Edit { .. } => "edit",
            Command::AskDelete(_) => "ask delete",
            Command::DeleteSelection => "delete selection",
            Command::Delete(_) => "delete",
            Command::RemoveEdge(_) => "remove edge",
            Command::Undo => "undo",
            Command::Redo => "redo",
            Command::Rename(_) => "rename",
            Command::RenameSelection => "rename selection",
            Command::FinishRename { .. } => "finish rename",
            Command::Escape { .. } => "escape",
            Command::ToggleShortcuts => "shortcuts",
            Command::Copy => "copy",
            Command::Paste => "paste",
            Command::Duplicate => "duplicate",
            Command::OpenMenu { .. } => "open menu",
            Command::CloseMenu => "close menu",
            Command::OpenFinder => "open finder",
            Command::CloseFinder => "close finder",
            Command::Jump(_) => "jump to block",
            Command::TogglePanel => "toggle panel",
            Command::ToggleMinimap => "toggle minimap",
        }
    }

    /// Whether the command changes the board (a viewer's board refuses these before they are sent).
    pub fn edits(&self) -> bool {
        matches!(
            self,
            Command::Move { .. }
                | Command::MoveMany { .. }
                | Command::Resize { .. }
                | Command::Create { .. }
                | Command::AddToSelection(_)
                | Command::Connect { .. }
                | Command::Edit { .. }
                | Command::AskDelete(_)
                | Command::DeleteSelection
                | Command::Delete(_)
                | Command::RemoveEdge(_)
                | Command::Undo
                | Command::Redo
                | Command::Rename(_)
                | Command::RenameSelection
                | Command::FinishRename { .. }
                | Command::Paste
                | Command::Duplicate
        )
    }
}
