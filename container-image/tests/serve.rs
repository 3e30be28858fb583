//! Drives the real `cat-harness` binary over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use domain::harness::HarnessHealth;

/// The harness process, killed when dropped.
struct RunningHarness {
    child: Child,
    base_url: String,
}

impl RunningHarness {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cat-harness"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cat-harness starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("cat-harness prints its address");
        let base_url = first_line
            .trim()
            .strip_prefix("cat-harness listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
            .to_owned();
        RunningHarness { child, base_url }
    }
}

impl Drop for RunningHarness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn health_reports_version_and_capabilities() {
    let harness = RunningHarness::start();
    let response = reqwest::get(format!("{}/health", harness.base_url))
        .await
        .expect("health answers");
    assert_eq!(response.status(), 200);
    let health: HarnessHealth = response.json().await.expect("health is the shared type");
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, domain::VERSION);
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let harness = RunningHarness::start();
    let response = reqwest::get(format!("{}/nope", harness.base_url))
        .await
        .expect("server answers");
    assert_eq!(response.status(), 404);
}
