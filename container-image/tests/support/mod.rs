//! Test support: the real `cat-harness` binary, the scripted model server (from `cat-testkit`), a
//! fake GitHub REST API and real git repositories, all on loopback or in temp dirs. Every process a test starts is stopped when
//! its handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::job::{JobState, JobView};
use serde_json::{Value, json};

pub const LLM_TOKEN: &str = "llm-token-7f3a9c2e51";
pub const FORGE_TOKEN: &str = "ghs_forge_token_b81d0e44";
pub const SHARED_SECRET: &str = "harness-shared-secret-55aa";

/// Where the harness binary is: `CAT_HARNESS_BIN` when set (the bench passes the release build),
/// else the binary cargo built for these tests.
pub fn harness_binary() -> PathBuf {
    std::env::var_os("CAT_HARNESS_BIN")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_BIN_EXE_cat-harness").map(PathBuf::from))
        .expect("set CAT_HARNESS_BIN to the cat-harness binary")
}

/// A running `cat-harness serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Harness {
    child: Option<Child>,
    pub base_url: String,
    pub log_path: PathBuf,
    client: reqwest::Client,
}

impl Harness {
    /// Starts the harness on a free loopback port with the shared secret and `state_dir`; its log
    /// (stderr) is appended to `log_path`.
    pub fn start(state_dir: &Path, log_path: &Path) -> Self {
        Self::start_with(state_dir, log_path, &[])
    }

    /// Starts the harness with a pool of job users (`cat-job-*`), so each job's commands run as an
    /// unprivileged user of their own. Needs root (the harness switches users); the users are created
    /// if they are missing, as the runner image does.
    pub fn start_isolated(state_dir: &Path, log_path: &Path) -> Self {
        ensure_job_users();
        Self::start_with(
            state_dir,
            log_path,
            &[("HARNESS_JOB_USERS", JOB_USER_PREFIX)],
        )
    }

    /// Starts the harness with the test defaults (the shared secret, local repositories allowed,
    /// loopback allowed as a forge host) plus `env`, which may override them.
    pub fn start_with(state_dir: &Path, log_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut full: Vec<(&str, &str)> = vec![
            ("HARNESS_SHARED_SECRET", SHARED_SECRET),
            ("HARNESS_ALLOW_LOCAL_REPOS", "true"),
            ("HARNESS_ALLOWED_HOSTS", "127.0.0.1"),
        ];
        for (name, value) in env {
            full.retain(|(existing, _)| existing != name);
            full.push((name, value));
        }
        Self::start_with_exactly(state_dir, log_path, &full)
    }

    /// Starts the harness with exactly `env` on top of the test process's environment (minus every
    /// `HARNESS_*` variable).
    pub fn start_with_exactly(state_dir: &Path, log_path: &Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("log file opens");
        let mut command = Command::new(harness_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir)
            .env_remove("HARNESS_SHARED_SECRET")
            .env_remove("HARNESS_JOB_USERS")
            .env_remove("HARNESS_ALLOW_LOCAL_REPOS")
            .env_remove("HARNESS_ALLOWED_HOSTS")
            .env("RUST_LOG", "info,cat_harness=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("cat-harness starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("cat-harness prints its address");
        let base_url = first_line
            .trim()
            .strip_prefix("cat-harness listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {first_line:?}; log:\n{}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                )
            })
            .to_owned();
        Harness {
            child: Some(child),
            base_url,
            log_path: log_path.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("harness is running").id()
    }

    /// Kills the harness at once, as a crash or an evicted container would.
    pub fn kill_abruptly(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .header("x-harness-secret", SHARED_SECRET);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("harness answers");
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post_job(&self, job: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, "/jobs", Some(job))
            .await
    }

    pub async fn job(&self, id: &str) -> JobView {
        let (status, body) = self
            .request(reqwest::Method::GET, &format!("/jobs/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).expect("the job view is the shared type")
    }

    pub async fn transcript(&self, id: &str) -> Value {
        let (status, body) = self
            .request(
                reqwest::Method::GET,
                &format!("/jobs/{id}/transcript"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the job until `condition` holds, failing the test at the deadline.
    pub async fn wait_for(&self, id: &str, condition: impl Fn(&JobView) -> bool) -> JobView {
        let started = Instant::now();
        loop {
            let view = self.job(id).await;
            if condition(&view) {
                return view;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "job {id} did not reach the expected state; last view: {view:#?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for_end(&self, id: &str) -> JobView {
        self.wait_for(id, |view| view.state != JobState::Running)
            .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first: the harness stops its jobs (and their process groups) on the way out.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub use cat_testkit::scripted_model::*;

/// What the fake GitHub received.
#[derive(Debug, Clone)]
pub struct RecordedGithubRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub api_version: Option<String>,
    pub body: Value,
}

/// GitHub's REST API for pull requests, on loopback. `POST /repos/{owner}/{repo}/pulls` answers 201
/// with PR number 17.
pub struct FakeGithub {
    pub base_url: String,
    requests: Arc<Mutex<Vec<RecordedGithubRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGithub {
    pub async fn start() -> Self {
        let requests: Arc<Mutex<Vec<RecordedGithubRequest>>> = Arc::default();
        let recorded = requests.clone();
        let app = Router::new().route(
            "/repos/{owner}/{repo}/pulls",
            post(
                move |UrlPath((owner, repo)): UrlPath<(String, String)>,
                      headers: HeaderMap,
                      body: axum::body::Bytes| {
                    let recorded = recorded.clone();
                    async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        recorded.lock().unwrap().push(RecordedGithubRequest {
                            method: "POST".to_owned(),
                            path: format!("/repos/{owner}/{repo}/pulls"),
                            authorization: header("authorization"),
                            api_version: header("x-github-api-version"),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        });
                        (
                            StatusCode::CREATED,
                            axum::Json(json!({
                                "number": 17,
                                "html_url": format!("https://github.example/{owner}/{repo}/pull/17"),
                            })),
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGithub {
            base_url: format!("http://{address}"),
            requests,
            server,
        }
    }

    pub fn requests(&self) -> Vec<RecordedGithubRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Runs git for test setup, isolated from the machine's git config.
pub fn git(directory: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(directory)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A temp dir holding a bare "origin" repository with a `main` branch, plus room for the harness's
/// state dir and log.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub origin: PathBuf,
}

impl TestRepo {
    pub fn create() -> Self {
        Self::create_with(&[])
    }

    /// A test repository whose first commit also holds `files` (`(path, content)`).
    pub fn create_with(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Traversable (not listable) by others: job users must reach their checkout under the state
        // dir inside it. The harness keeps what is private in 0700 folders of its own.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod the temp dir");
        let origin = dir.path().join("origin.git");
        git(
            dir.path(),
            &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
        );
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(seed.join("src")).unwrap();
        std::fs::create_dir_all(seed.join(".github/workflows")).unwrap();
        std::fs::write(seed.join("README.md"), "# Demo\n\nA demo service.\n").unwrap();
        std::fs::write(seed.join("src/greeting.txt"), "hello\n").unwrap();
        std::fs::write(
            seed.join(".github/workflows/ci.yml"),
            "on: push\njobs: {}\n",
        )
        .unwrap();
        for (path, content) in files {
            let path = seed.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&seed, &["init", "--quiet", "-b", "main"]);
        git(&seed, &["add", "--all"]);
        git(&seed, &["commit", "--quiet", "-m", "Initial commit"]);
        git(
            &seed,
            &["push", "--quiet", origin.to_str().unwrap(), "main"],
        );
        TestRepo { dir, origin }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("harness.log")
    }

    /// The branches of the origin repository.
    pub fn branches(&self) -> Vec<String> {
        git(
            &self.origin,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }

    pub fn commit_of(&self, branch: &str) -> String {
        git(
            &self.origin,
            &["rev-parse", &format!("refs/heads/{branch}")],
        )
    }

    pub fn file_on(&self, branch: &str, path: &str) -> String {
        git(&self.origin, &["show", &format!("{branch}:{path}")])
    }
}

/// A coding job against `repo` on the local forge, talking to `model`; tests adjust the fields they
/// care about.
pub fn coding_job(id: &str, repo: &TestRepo, model: &ScriptedModel) -> Value {
    json!({
        "id": id,
        "blockId": format!("blk-{id}"),
        "mode": "coding",
        "repo": { "cloneUrl": repo.origin.to_str().unwrap(), "baseBranch": "main" },
        "systemPrompt": "You are a careful software engineer.",
        "userPrompt": "Add a NOTES.md file that says hi.",
        "model": "scripted-model",
        "llm": { "baseUrl": model.base_url, "token": LLM_TOKEN, "protocol": "openai" },
        "limits": { "maxAgentSteps": 20, "maxWallSeconds": 120, "stallTimeoutSeconds": 30,
                    "commandTimeoutSeconds": 60 },
        "pullRequest": { "title": "Add NOTES.md", "body": "Adds a notes file." },
        "forge": { "kind": "local", "bareRepoPath": repo.origin.to_str().unwrap() }
    })
}

/// An explore job (read-only, no pull request) against `repo`, talking to `model`.
pub fn explore_job(id: &str, repo: &TestRepo, model: &ScriptedModel) -> Value {
    let mut job = coding_job(id, repo, model);
    job["mode"] = json!("explore");
    job.as_object_mut().unwrap().remove("pullRequest");
    job
}

/// The transcript's entries.
pub fn entries(transcript: &Value) -> Vec<Value> {
    transcript["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The name prefix of the job users the isolated harness runs jobs as.
pub const JOB_USER_PREFIX: &str = "cat-job-";
/// How many job users the tests make sure exist.
pub const JOB_USER_COUNT: usize = 4;

pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Creates `cat-job-1..=4` (system users, no home, no login shell) if they are missing, as the
/// runner image's Dockerfile does. Only root can; the isolated tests need root anyway.
pub fn ensure_job_users() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        assert!(
            running_as_root(),
            "the isolation tests need root: the harness switches each job to a user of its own"
        );
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for index in 1..=JOB_USER_COUNT {
            let name = format!("{JOB_USER_PREFIX}{index}");
            if passwd
                .lines()
                .any(|line| line.starts_with(&format!("{name}:")))
            {
                continue;
            }
            let status = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    &name,
                ])
                .status()
                .expect("useradd runs");
            // 9: the user exists (another test process made it first).
            assert!(
                status.success() || status.code() == Some(9),
                "useradd {name} failed: {status}"
            );
        }
    });
}

/// What the credential trap received, one entry per request: the request line, every header, the
/// decoded `Authorization: Basic` value if there was one, and the body.
#[derive(Debug, Clone)]
pub struct TrappedRequest {
    pub text: String,
}

/// A loopback HTTP server standing in for an attacker's host: it answers every request without
/// credentials with `401 WWW-Authenticate: Basic` (which makes git ask its credential helper and
/// try again) and records everything it is sent.
pub struct CredentialTrap {
    pub base_url: String,
    received: Arc<Mutex<Vec<TrappedRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for CredentialTrap {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl CredentialTrap {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<TrappedRequest>>> = Arc::default();
        let recorded = received.clone();
        let app = Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let mut text = format!("{method} {uri}\n");
                    for (name, value) in &headers {
                        text.push_str(&format!(
                            "{name}: {}\n",
                            String::from_utf8_lossy(value.as_bytes())
                        ));
                    }
                    let authorization = headers
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    if let Some(basic) = authorization
                        .as_deref()
                        .and_then(|value| value.strip_prefix("Basic "))
                    {
                        text.push_str(&format!("decoded: {}\n", decode_base64(basic)));
                    }
                    text.push_str(&String::from_utf8_lossy(&body));
                    recorded.lock().unwrap().push(TrappedRequest { text });
                    if authorization.is_none() {
                        (
                            StatusCode::UNAUTHORIZED,
                            [("www-authenticate", "Basic realm=\"trap\"")],
                            "credentials please",
                        )
                    } else {
                        (StatusCode::NOT_FOUND, [("x-trap", "got it")], "thanks")
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CredentialTrap {
            base_url: format!("http://{address}"),
            received,
            server,
        }
    }

    pub fn requests(&self) -> Vec<TrappedRequest> {
        self.received.lock().unwrap().clone()
    }

    /// Whether any request carried `secret`, in a header, a decoded Basic credential or the body.
    pub fn received(&self, secret: &str) -> bool {
        self.requests()
            .iter()
            .any(|request| request.text.contains(secret))
    }
}

fn decode_base64(encoded: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in encoded.trim().bytes() {
        let Some(value) = ALPHABET.iter().position(|c| *c == byte) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every regular file under `root` (not following symlinks, skipping files over 64 MB such as a
/// sparse attack file) whose bytes contain `needle`.
pub fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|entry| entry.path()));
            }
        } else if metadata.is_file()
            && metadata.len() <= 64 * 1024 * 1024
            && let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            found.push(path);
        }
    }
    found
}

/// Gone, or a zombie waiting to be reaped: either way it runs no more.
pub fn process_is_dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, fields)| fields.starts_with('Z') || fields.starts_with('X')),
    }
}

/// Every live process (not a zombie) whose real or effective user is `uid`.
pub fn live_processes_of_user(uid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let zombie = status.lines().any(|line| {
                line.starts_with("State:") && (line.contains('Z') || line.contains('X'))
            });
            let owned = status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .is_some_and(|uids| {
                    uids.split_whitespace()
                        .take(2)
                        .any(|value| value.parse() == Ok(uid))
                });
            owned && !zombie
        })
        .collect()
}

/// The uids of the job users, from /etc/passwd.
pub fn job_user_ids() -> Vec<u32> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(JOB_USER_PREFIX))
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
        .collect()
}
