//! Headless Chromium driven over WebDriver: Debian's chromium + chromedriver, and fantoccini.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::process::{ManagedProcess, remove_at_exit};
use crate::{artifacts_dir, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One chromedriver and one browser session. Stopped on drop (call [`Browser::close`] first to end the
/// WebDriver session politely).
pub struct Browser {
    pub client: Client,
    _driver: ManagedProcess,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session at 1280×800.
    pub async fn start() -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "chromium and chromedriver are missing: run scripts/setup"
        );
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let log_path = artifacts_dir("chromedriver").join(format!("chromedriver-{port}.log"));
        let driver = ManagedProcess::spawn("chromedriver", command, &log_path);

        let profile = tempfile::Builder::new()
            .prefix("cat-factory-chromium-")
            .tempdir()
            .expect("temp dir")
            .keep();
        remove_at_exit(profile.clone());
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let webdriver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver_url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    panic!(
                        "no WebDriver session within 30 s: {error}\n{}",
                        driver.log_tail(20)
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Waits until an element matching `css` exists, and returns it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element matches {css} within 20 s: {error}"))
    }

    /// Saves a PNG screenshot under target/test-artifacts/screenshots and prints where it went.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .expect("Chromium takes a screenshot");
        let path = artifacts_dir("screenshots").join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot can be written");
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the WebDriver session (closing Chromium) before the driver is stopped.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
