pub mod board;
pub mod sign_in;
pub mod workspaces;
