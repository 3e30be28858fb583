pub mod canvas;
pub mod health_badge;
pub mod panel;
pub mod toasts;
pub mod workspace_switcher;
