//! The board as the browser holds it, and every decision the board page makes, as plain data.
//!
//! Nothing here touches the DOM, so the rules of the board are tested with plain `cargo test -p web`:
//! - `board`: the blocks and edges, live events applied in order, summaries;
//! - `geometry`: rectangles, the spatial index, the view transform, level of detail, edge curves;
//! - `drop_target`: the one rule for where a dragged block lands (the canvas and the tests share it);
//! - `edit`: optimistic predictions of an edit, what undo puts back, what a refused write rolls back to,
//!   and the update request an edit sends;
//! - `undo`: the undo stack, which follows blocks re-created under new ids;
//! - `layout`: containers that grow to hold their children, and where a dropped block lands;
//! - `selection`: one block or several (shift-click, marquee);
//! - `clipboard`: what a copy holds (subtrees and the edges inside them) and where a paste lands;
//! - `commands` and `keys`: what the page can be asked to do, and which key asks for what;
//! - `fast_hash`: the cheap hasher of the maps keyed by ids (a large board's load is mostly map work);
//! - `finder`: which blocks match a title typed into Ctrl+K, best first;
//! - `menu`: what the context menu offers on a block or on empty canvas;
//! - `minimap`: the whole board drawn small, and the view a click on it asks for;
//! - `rollup`: dependencies rolled up to the blocks drawn when zoomed out, with counts;
//! - `errors`: API failures in words a person understands;
//! - `runs`: the latest run of each task, live run events applied to it, the actions each run state
//!   allows, refused starts explained, the badge a task's card shows;
//! - `presence`: who else is on the board, and what they have open;
//! - `spend`: what was spent per block and in the workspace, kept live by `spend.changed`;
//! - `config`: the board's `config.json` (which origin the API is on);
//! - `github`: a block's pull request, CI, review, issue and repository link as the card, the panel
//!   and the GitHub dialog show them.
//!
//! Coordinates: a block's `position` is relative to its parent's top-left corner (a frame without a
//! parent is relative to the world origin). The canvas draws children inside their parent's element, so
//! moving a frame moves everything in it without touching its children's rows.

mod board;
pub mod clipboard;
pub mod commands;
pub mod config;
pub mod drop_target;
pub mod edit;
pub mod errors;
pub mod fast_hash;
pub mod finder;
mod geometry;
pub mod github;
pub mod keys;
pub mod layout;
pub mod menu;
pub mod minimap;
pub mod presence;
pub mod rollup;
pub mod routing;
pub mod runs;
pub mod selection;
pub mod spend;
pub mod undo;

pub use board::*;
pub use fast_hash::{FastMap, FastSet};
pub use geometry::*;
pub use selection::blocks_in_marquee;

#[cfg(test)]
mod tests;
