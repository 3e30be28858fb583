//! Fixtures for cat-factory's integration and browser tests.
//!
//! - [`worker::WorkerServer`]: the real worker under `wrangler dev` on a free port, with a throwaway
//!   persist directory whose D1 database has every migration applied. One per test binary, shared by
//!   its tests.
//! - [`browser::Browser`]: headless Chromium driven over WebDriver (chromedriver + fantoccini).
//! - [`process`]: every process a fixture starts runs in its own process group and is killed, with
//!   all its children, when the fixture is dropped or the test binary exits.

pub mod api;
pub mod board_ui;
pub mod browser;
pub mod contract;
pub mod events;
pub mod fake_github;
pub mod github_app;
pub mod http;
pub mod process;
pub mod runner;
pub mod static_site;
/// The scripted model server on loopback (OpenAI and Anthropic dialects), shared with the harness's tests.
pub use cat_testkit::scripted_model;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

/// A benchmark's pause between requests, from the environment variable `name` in milliseconds
/// (`BENCH_BOARD_PAUSE_MS`, `BENCH_EVENTS_PAUSE_MS`); `None` when it is unset or not a number.
pub fn pause_from_env(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// A folder for what tests leave behind for a person to look at (screenshots, server logs).
pub fn artifacts_dir(kind: &str) -> PathBuf {
    let dir = repo_root().join("target").join("test-artifacts").join(kind);
    std::fs::create_dir_all(&dir).expect("the artifacts folder can be created");
    dir
}

/// A TCP port on the loopback interface that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the loopback interface has a free port")
}
