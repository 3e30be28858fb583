pub mod canvas;
pub mod finder;
pub mod github;
pub mod health_badge;
pub mod members_dialog;
pub mod panel;
pub mod run_panel;
pub mod text_field;
pub mod toasts;
pub mod workspace_switcher;

use yew::Html;

/// An optional part of a page as exactly one child (an empty list when absent).
///
/// Yew compares unkeyed children from the end of the list. `{ for option }` adds zero or one children,
/// so when the option appears every sibling before it is compared with its neighbour's old node, and
/// those of another kind are rebuilt from scratch: opening the side panel used to rebuild the canvas,
/// which lost its event listeners (a pointerup went unseen, so the next mouse move panned the board),
/// its pointer capture, its focus, and the first click of a double-click.
pub fn slot(part: Option<Html>) -> Html {
    part.unwrap_or_default()
}
