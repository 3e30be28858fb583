pub mod canvas;
pub mod health_badge;
pub mod members_dialog;
pub mod panel;
pub mod text_field;
pub mod toasts;
pub mod workspace_switcher;
