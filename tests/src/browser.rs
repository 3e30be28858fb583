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
    /// The profile folder only this browser uses: how its processes are found if it outlives its driver.
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    /// Chromium is started by chromedriver but leaves its process group, so stopping the driver does not
    /// stop it. A test that ends normally closes the session (and Chromium with it); one that panics
    /// before that gets here, and its browser is killed by its unique profile folder.
    fn drop(&mut self) {
        crate::process::kill_processes_mentioning(&self.profile.to_string_lossy());
    }
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
                    // No crash reporter: its handler daemonizes out of every process group.
                    "--disable-breakpad", "--disable-crash-reporter",
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
            profile,
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

    /// Waits until the JavaScript `condition` (the body of a function) returns a truthy value, and
    /// returns that value. `what` says in the failure what was expected.
    pub async fn wait_until(&self, what: &str, condition: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self
                .client
                .execute(condition, Vec::new())
                .await
                .unwrap_or(serde_json::Value::Null);
            let truthy = match &value {
                serde_json::Value::Null => false,
                serde_json::Value::Bool(flag) => *flag,
                serde_json::Value::Number(number) => number.as_f64() != Some(0.0),
                serde_json::Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let path = self.screenshot(&format!("timeout-{}", slug(what))).await;
                panic!(
                    "within 20 s: {what} (last value {value}); screenshot {}",
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Drags with the mouse from `from` (offset from its centre) to `to` (offset from its centre),
    /// through intermediate moves so the page sees a real drag.
    pub async fn drag(
        &self,
        from: &fantoccini::elements::Element,
        from_offset: (i64, i64),
        to: &fantoccini::elements::Element,
        to_offset: (i64, i64),
    ) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let step = Duration::from_millis(60);
        let actions = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveToElement {
                element: from.clone(),
                duration: None,
                x: from_offset.0 as f64,
                y: from_offset.1 as f64,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::MoveBy {
                duration: Some(step),
                x: 12.0,
                y: 12.0,
            })
            .then(PointerAction::MoveToElement {
                element: to.clone(),
                duration: Some(step),
                x: to_offset.0 as f64,
                y: to_offset.1 as f64,
            })
            .then(PointerAction::MoveToElement {
                element: to.clone(),
                duration: Some(step),
                x: to_offset.0 as f64 + 1.0,
                y: to_offset.1 as f64,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(actions)
            .await
            .expect("the drag is performed");
        self.client
            .release_actions()
            .await
            .expect("actions released");
    }

    /// Signs in through the dev sign-in form on `url` as `login`.
    pub async fn dev_sign_in(&self, url: &str, login: &str) {
        self.client.goto(url).await.expect("the page loads");
        let input = self.wait_for("[data-testid='dev-login-input']").await;
        input.send_keys(login).await.expect("typing works");
        self.wait_for("[data-testid='dev-login-submit']")
            .await
            .click()
            .await
            .expect("submit");
        self.wait_for("[data-testid='signed-in-as']").await;
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
        let _ = self.client.clone().close().await;
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}
