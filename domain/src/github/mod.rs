//! GitHub App: the pure decisions behind webhooks, pull requests, CI and repository links.
//!
//! - [`webhook`]: the `X-Hub-Signature-256` check (constant time, before anything is parsed) and a typed
//!   classification of deliveries.
//! - [`projection`]: `(current projection, delivery) -> (new projection, effects)` for pull requests,
//!   CI per head commit, installations and their repositories, and imported issues; delivery
//!   idempotency; the `cat/<block>` branch ↔ block mapping.
//! - [`app`]: the App JWT's signing input (the shell signs it with WebCrypto), the scoped
//!   installation-token request, the token cache rule, repository link validation, and the
//!   install-callback check.
//!
//! Nothing here performs I/O, reads a clock or holds a secret longer than a call.

pub mod app;
pub mod config;
pub mod projection;
pub mod webhook;
