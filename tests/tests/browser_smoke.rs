//! The board in real headless Chromium against the real worker.

use cat_tests::browser::Browser;
use cat_tests::worker::WorkerServer;

#[tokio::test]
async fn the_shell_loads_and_shows_the_server_health() {
    let server = WorkerServer::shared();
    let browser = Browser::start().await;
    browser
        .client
        .goto(&server.url("/"))
        .await
        .expect("the page loads");
    let badge = browser.wait_for(".health[data-state='ok']").await;
    let text = badge.text().await.unwrap();
    assert!(text.contains("database ok"), "badge says {text:?}");
    assert!(text.contains(domain::VERSION), "badge says {text:?}");
    browser.screenshot("shell-health").await;
    browser.close().await;
}
