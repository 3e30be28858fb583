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
        // Keep the page's console, so a test can assert that nothing went wrong in it.
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
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
                let console = match self.client.issue_cmd(ChromedriverPost::browser_log()).await {
                    Ok(entries) => entries.to_string(),
                    Err(error) => format!("(no console: {error})"),
                };
                panic!(
                    "within 20 s: {what} (last value {value}); screenshot {}; console {console}",
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

    /// Moves the mouse to viewport point (`x`, `y`) and clicks there (`clicks` times in a row: 2 is a
    /// double-click).
    pub async fn click_at(&self, x: f64, y: f64, clicks: usize) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let mut actions = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveTo {
            duration: None,
            x: x.round(),
            y: y.round(),
        });
        for _ in 0..clicks {
            actions = actions
                .then(PointerAction::Down {
                    button: MOUSE_BUTTON_LEFT,
                })
                .then(PointerAction::Up {
                    button: MOUSE_BUTTON_LEFT,
                });
        }
        self.perform(actions).await;
    }

    /// A right-click at viewport point (`x`, `y`) (the browser's `contextmenu`).
    pub async fn right_click_at(&self, x: f64, y: f64) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_RIGHT, MouseActions, PointerAction};
        let actions = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveTo {
                duration: None,
                x: x.round(),
                y: y.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_RIGHT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_RIGHT,
            });
        self.perform(actions).await;
    }

    /// Presses at viewport point `from`, moves through `steps` intermediate points to `to`, and lets
    /// go there.
    pub async fn drag_points(&self, from: (f64, f64), to: (f64, f64), steps: usize) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, PointerAction};
        let actions = press_and_move(from, to, steps).then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        self.perform(actions).await;
    }

    /// A click at viewport point (`x`, `y`) with Shift held.
    pub async fn shift_click_at(&self, x: f64, y: f64) {
        use fantoccini::actions::{
            InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
        };
        let shift = char::from(fantoccini::key::Key::Shift);
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: shift })
            .then(KeyAction::Pause {
                duration: Duration::ZERO,
            })
            .then(KeyAction::Pause {
                duration: Duration::ZERO,
            })
            .then(KeyAction::Up { value: shift });
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveTo {
                duration: None,
                x: x.round(),
                y: y.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        let actions = fantoccini::actions::Actions::from(keys).and(mouse);
        self.client
            .perform_actions(actions)
            .await
            .expect("the shift-click is performed");
        self.client
            .release_actions()
            .await
            .expect("actions released");
    }

    /// Presses at `from` and moves to `to`, keeping the button down (look at the page mid-drag, then
    /// call [`Browser::drag_release`]).
    pub async fn drag_hold(&self, from: (f64, f64), to: (f64, f64), steps: usize) {
        let actions = press_and_move(from, to, steps);
        self.client
            .perform_actions(fantoccini::actions::Actions::from(actions))
            .await
            .expect("the drag starts");
    }

    /// Lets go of a drag started with [`Browser::drag_hold`].
    pub async fn drag_release(&self) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let actions = MouseActions::new("mouse".to_owned()).then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
        self.perform(actions).await;
    }

    /// Presses a key (a character, or a [`fantoccini::key::Key`] as char) with modifier keys held,
    /// wherever the focus is.
    pub async fn press(&self, key: char, modifiers: &[fantoccini::key::Key]) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".to_owned());
        for modifier in modifiers {
            actions = actions.then(KeyAction::Down {
                value: char::from(*modifier),
            });
        }
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        for modifier in modifiers.iter().rev() {
            actions = actions.then(KeyAction::Up {
                value: char::from(*modifier),
            });
        }
        self.perform(actions).await;
    }

    /// Types `text` key by key into whatever has the focus (as a person would: if the focus moves
    /// away mid-way, the rest goes elsewhere).
    pub async fn type_text(&self, text: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".to_owned());
        for key in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.perform(actions).await;
    }

    async fn perform(&self, actions: impl Into<fantoccini::actions::ActionSequence>) {
        self.client
            .perform_actions(fantoccini::actions::Actions::from(actions))
            .await
            .expect("the input actions are performed");
        self.client
            .release_actions()
            .await
            .expect("actions released");
    }

    /// The viewport rectangle (x, y, width, height) of the first element matching `css`.
    pub async fn rect(&self, css: &str) -> Option<(f64, f64, f64, f64)> {
        let script = format!(
            "const e = document.querySelector({css:?}); if (!e) return null; \
             const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height];"
        );
        let value = self.client.execute(&script, Vec::new()).await.ok()?;
        let numbers: Vec<f64> = value
            .as_array()?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        (numbers.len() == 4).then(|| (numbers[0], numbers[1], numbers[2], numbers[3]))
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

    /// The page's console messages since the last call (chromedriver hands each out once).
    pub async fn console(&self) -> Vec<ConsoleEntry> {
        let value = self
            .client
            .issue_cmd(ChromedriverPost::browser_log())
            .await
            .expect("chromedriver hands out the browser's console log");
        serde_json::from_value(value).expect("console entries are {level, message}")
    }

    /// Console messages that mean the page broke: errors (a Rust panic's report, an uncaught
    /// exception), and anything naming a panic or a wasm trap.
    pub async fn console_problems(&self) -> Vec<ConsoleEntry> {
        self.console()
            .await
            .into_iter()
            .filter(ConsoleEntry::is_problem)
            .collect()
    }

    /// Sends one Chrome DevTools Protocol command to the page (chromedriver's `goog/cdp/execute`) and
    /// returns its result: the benchmarks read the browser's own counters (script, style, layout time)
    /// and CPU profiles this way.
    pub async fn cdp(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(ChromedriverPost {
                path: "goog/cdp/execute",
                body: json!({ "cmd": method, "params": params }).to_string(),
            })
            .await
            .unwrap_or_else(|error| {
                panic!("chromedriver runs the DevTools command {method}: {error}")
            })
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

/// One message of the page's console.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConsoleEntry {
    pub level: String,
    pub message: String,
}

impl ConsoleEntry {
    pub fn is_problem(&self) -> bool {
        let message = self.message.to_lowercase();
        // The browser logs a failed request (a refused write's 4xx) as an error too; those are the
        // board's expected answers, not breakage.
        let failed_request = message.contains("failed to load resource");
        (self.level == "SEVERE" && !failed_request)
            || message.contains("panicked")
            || message.contains("runtimeerror")
            || message.contains("unreachable")
    }
}

/// A chromedriver command outside the WebDriver standard: a `POST` to `session/{id}/<path>` with
/// `body` — the browser's console since the last call (`se/log`), or a DevTools Protocol command
/// (`goog/cdp/execute`).
#[derive(Debug)]
struct ChromedriverPost {
    path: &'static str,
    body: String,
}

impl ChromedriverPost {
    fn browser_log() -> Self {
        ChromedriverPost {
            path: "se/log",
            body: r#"{"type":"browser"}"#.to_owned(),
        }
    }
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromedriverPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.clone()))
    }
}

/// The mouse pressed at `from` and moved to `to` in `steps` frames of 16 ms, still held: what a
/// drag and a held drag share.
fn press_and_move(
    from: (f64, f64),
    to: (f64, f64),
    steps: usize,
) -> fantoccini::actions::MouseActions {
    use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
    let mut actions = MouseActions::new("mouse".to_owned())
        .then(PointerAction::MoveTo {
            duration: None,
            x: from.0.round(),
            y: from.1.round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    let steps = steps.max(1);
    for step in 1..=steps {
        let t = step as f64 / steps as f64;
        actions = actions.then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(16)),
            x: (from.0 + (to.0 - from.0) * t).round(),
            y: (from.1 + (to.1 - from.1) * t).round(),
        });
    }
    actions
}
