//! A real runner for the run tests: `cat-harness serve` in the local-forge mode with a forge root of
//! bare repositories, and a fault-injecting front door (`RunnerDoor`) that answers 503 while told
//! to, so a test can make the runner "unreachable" and bring it back without killing it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::process::ManagedProcess;
use crate::{artifacts_dir, free_port, repo_root};

pub const RUNNER_SECRET: &str = "runs-test-runner-secret-9b1f";

/// The harness binary: `CAT_HARNESS_BIN`, else the workspace's debug build (built on first use).
pub fn harness_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAT_HARNESS_BIN") {
        return PathBuf::from(path);
    }
    let path = repo_root().join("target/debug/cat-harness");
    if !path.exists() {
        let status = Command::new("cargo")
            .args(["build", "-p", "cat-harness", "--bin", "cat-harness"])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p cat-harness failed");
    }
    path
}

fn git(directory: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(directory)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A forge root: a folder of bare repositories, each linked from the board as `local:<name>`.
pub struct ForgeRoot {
    pub dir: tempfile::TempDir,
}

impl ForgeRoot {
    pub fn create() -> ForgeRoot {
        ForgeRoot {
            dir: tempfile::Builder::new()
                .prefix("cat-factory-forge-")
                .tempdir()
                .expect("a temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates `<name>.git` with one commit on `main` holding `files`.
    pub fn add_repository(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let bare = self.path().join(format!("{name}.git"));
        git(
            self.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                &format!("{name}.git"),
            ],
        );
        let seed = self.path().join(format!("{name}-seed"));
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(seed.join("README.md"), format!("# {name}\n")).unwrap();
        for (path, content) in files {
            let path = seed.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&seed, &["init", "--quiet", "-b", "main"]);
        git(&seed, &["add", "--all"]);
        git(&seed, &["commit", "--quiet", "-m", "Initial commit"]);
        git(&seed, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
        std::fs::remove_dir_all(&seed).unwrap();
        bare
    }

    /// The commit a branch of a bare repository points at, if the branch exists.
    pub fn branch_commit(&self, name: &str, branch: &str) -> Option<String> {
        let output = Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(self.path().join(format!("{name}.git")))
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl ForgeRoot {
    /// Whether `commit` is on `branch` of a bare repository (the branch's tip or an ancestor).
    pub fn branch_contains(&self, name: &str, branch: &str, commit: &str) -> bool {
        Command::new("git")
            .args([
                "merge-base",
                "--is-ancestor",
                commit,
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(self.path().join(format!("{name}.git")))
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// A running `cat-harness serve` (local-forge mode, loopback allowed), stopped on drop.
pub struct HarnessProcess {
    pub base_url: String,
    pub state_dir: tempfile::TempDir,
    process: ManagedProcess,
}

impl HarnessProcess {
    pub fn start() -> HarnessProcess {
        let state_dir = tempfile::Builder::new()
            .prefix("cat-factory-harness-")
            .tempdir()
            .expect("a temp dir");
        let port = free_port();
        let process = launch(port, state_dir.path());
        HarnessProcess {
            base_url: format!("http://127.0.0.1:{port}"),
            state_dir,
            process,
        }
    }

    /// Kills the harness at once (SIGKILL: it gets no chance to wind its jobs down) and starts it
    /// again on the same port and state directory, as a runner that crashed and was restarted by
    /// its supervisor.
    pub fn kill_and_restart(&mut self) {
        self.process.kill();
        let port: u16 = self
            .base_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the harness URL ends with its port");
        let state_dir = self.state_dir.path().to_owned();
        // A child dies with the thread that started it (PR_SET_PDEATHSIG), and a test's thread
        // ends with the test: the new harness is started from a thread that never ends.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            sender
                .send(launch(port, &state_dir))
                .expect("the restart is awaited");
            loop {
                std::thread::park();
            }
        });
        self.process = receiver.recv().expect("the harness restarts");
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// Starts `cat-harness serve` on `port` with `state_dir` and waits until it answers `/health`.
fn launch(port: u16, state_dir: &Path) -> ManagedProcess {
    let mut command = Command::new(harness_binary());
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state_dir)
        .env("HARNESS_SHARED_SECRET", RUNNER_SECRET)
        .env("HARNESS_ALLOW_LOCAL_REPOS", "true")
        .env("HARNESS_ALLOWED_HOSTS", "127.0.0.1")
        .env_remove("HARNESS_JOB_USERS")
        .env("RUST_LOG", "info,cat_harness=debug");
    let log = artifacts_dir("harness").join(format!("harness-{port}.log"));
    let mut process = ManagedProcess::spawn("cat-harness serve", command, &log);
    let host_port = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::http::probe_status(&host_port, "/health") != Some(200) {
        assert!(
            process.is_running(),
            "cat-harness exited:\n{}",
            process.log_tail(30)
        );
        assert!(Instant::now() < deadline, "cat-harness did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    process
}

#[derive(Clone)]
struct DoorState {
    upstream: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    passed: Arc<AtomicUsize>,
    /// The job id of every `POST /jobs` the harness accepted (2xx), in order, repeats included.
    created: Arc<std::sync::Mutex<Vec<String>>>,
    /// When the first `POST /jobs` of each job id reached the door.
    first_seen: FirstSeen,
    client: reqwest::Client,
}

type FirstSeen = Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// A front door for the runner: forwards every request to the harness, or answers 503 while
/// `fail(true)`; counts both.
pub struct RunnerDoor {
    pub base_url: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    passed: Arc<AtomicUsize>,
    created: Arc<std::sync::Mutex<Vec<String>>>,
    first_seen: FirstSeen,
    _server: tokio::task::JoinHandle<()>,
}

impl RunnerDoor {
    pub async fn start(upstream: &str) -> RunnerDoor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = DoorState {
            upstream: upstream.to_owned(),
            failing: Arc::default(),
            refused: Arc::default(),
            passed: Arc::default(),
            created: Arc::default(),
            first_seen: Arc::default(),
            client: reqwest::Client::new(),
        };
        let (failing, refused, passed, created, first_seen) = (
            state.failing.clone(),
            state.refused.clone(),
            state.passed.clone(),
            state.created.clone(),
            state.first_seen.clone(),
        );
        let app = axum::Router::new().fallback(forward).with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RunnerDoor {
            base_url: format!("http://{address}"),
            failing,
            refused,
            passed,
            created,
            first_seen,
            _server: server,
        }
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Requests answered 503.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The job id of every dispatch the harness accepted, in order. An id can repeat: a replayed
    /// `POST /jobs` re-attaches to the job the harness already has (it is idempotent by id).
    pub fn dispatched_jobs(&self) -> Vec<String> {
        self.created
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// When the first dispatch (`POST /jobs`) of `job_id` reached the runner's door, answered or not.
    pub fn first_dispatch_at(&self, job_id: &str) -> Option<Instant> {
        self.first_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(job_id)
            .copied()
    }

    /// Requests forwarded to the harness.
    pub fn passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(state): State<DoorState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::POST
        && uri.path() == "/jobs"
        && let Ok(job) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(id) = job["id"].as_str()
    {
        state
            .first_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(id.to_owned())
            .or_insert_with(Instant::now);
    }
    if state.failing.load(Ordering::SeqCst) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "runner overloaded (test)").into_response();
    }
    state.passed.fetch_add(1, Ordering::SeqCst);
    let url = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let is_dispatch = method == Method::POST && uri.path() == "/jobs";
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = state.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let bytes = answer.bytes().await.unwrap_or_default();
            if is_dispatch
                && status.is_success()
                && let Ok(view) = serde_json::from_slice::<serde_json::Value>(&bytes)
                && let Some(id) = view["id"].as_str()
            {
                state
                    .created
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .push(id.to_owned());
            }
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
