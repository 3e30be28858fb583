//! The real worker under `wrangler dev`, on a free port, with a throwaway D1 database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::{ManagedProcess, remove_at_exit};
use crate::{artifacts_dir, free_port, repo_root};

/// A running `wrangler dev` and the directory that holds its local D1 and Durable Object state.
pub struct WorkerServer {
    pub base_url: String,
    pub persist_dir: PathBuf,
    process: ManagedProcess,
    owns_state: bool,
    /// The configuration written for [`ServerOptions::extra_config`] (removed on drop).
    config_file: Option<PathBuf>,
}

/// How to start a server of one's own.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Variables (`--var NAME:VALUE`); the default is the dev sign-in. `{origin}` in a value becomes
    /// the server's own origin (`http://127.0.0.1:<port>`), for `PUBLIC_ORIGIN`.
    pub vars: Vec<(String, String)>,
    /// Reuse this state folder (its data survives a restart) instead of a fresh one. It is not
    /// deleted when the server stops.
    pub persist_dir: Option<PathBuf>,
    /// Listen on this port (a test that must tell others the worker's address before it starts,
    /// such as a runner's model endpoint); a free one otherwise.
    pub port: Option<u16>,
    /// More `wrangler.toml` (such as a binding the repository's configuration leaves commented out):
    /// the server runs on a copy of the configuration with this appended.
    pub extra_config: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            vars: vec![
                ("AUTH_MODE".to_owned(), "dev".to_owned()),
                // Lets a test simulate a lost event delivery (header x-test-skip-delivery).
                ("TEST_HOOKS".to_owned(), "1".to_owned()),
                // The sweep redelivers every unmarked event at once (no settle time), so a test sees
                // at once whether inline delivery marked what it delivered.
                ("SWEEP_SETTLE_MS".to_owned(), "0".to_owned()),
                // The local forge is on, so a task under a `local:<name>` service can start a run;
                // no runner is configured here, so its steps wait out retries (tests/tests/runs.rs
                // starts a real harness).
                (
                    "LOCAL_FORGE_ROOT".to_owned(),
                    "/nonexistent/cat-factory-forge".to_owned(),
                ),
            ],
            persist_dir: None,
            port: None,
            extra_config: None,
        }
    }
}

impl WorkerServer {
    /// The server shared by every test in this test binary; started on first use and stopped when the
    /// binary exits.
    pub fn shared() -> &'static WorkerServer {
        static SHARED: OnceLock<WorkerServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = WorkerServer::start();
            remove_at_exit(server.persist_dir.clone());
            server
        })
    }

    /// Starts a server of its own with the default options. Stopped on drop.
    pub fn start() -> WorkerServer {
        WorkerServer::start_with(ServerOptions::default())
    }

    /// Starts a server of its own (for tests that restart it or need other settings). Stopped on drop.
    pub fn start_with(options: ServerOptions) -> WorkerServer {
        let root = repo_root();
        assert_built(&root);
        let owns_state = options.persist_dir.is_none();
        let persist_dir = options.persist_dir.clone().unwrap_or_else(|| {
            tempfile::Builder::new()
                .prefix("cat-factory-d1-")
                .tempdir()
                .expect("a temp dir can be created")
                .keep()
        });
        let log_path = artifacts_dir("wrangler").join(format!(
            "{}.log",
            persist_dir
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("wrangler")
        ));
        apply_migrations(&root, &persist_dir, &log_path);

        let port = options.port.unwrap_or_else(free_port);
        let mut command = wrangler(&root);
        command.args([
            "dev",
            "--local",
            "--ip",
            "127.0.0.1",
            "--show-interactive-dev-session=false",
            // Exposes /__scheduled, so tests can run the cron sweep on demand.
            "--test-scheduled",
        ]);
        command.args([
            "--port",
            &port.to_string(),
            "--inspector-port",
            &free_port().to_string(),
        ]);
        command.arg("--persist-to").arg(&persist_dir);
        // Beside the original, so its relative paths (the worker, the assets, the migrations) hold.
        let config_file = options.extra_config.as_ref().map(|extra| {
            let original = std::fs::read_to_string(root.join("wrangler.toml"))
                .expect("wrangler.toml is readable");
            let path = root.join(format!("wrangler.test-{port}.toml"));
            std::fs::write(&path, format!("{original}\n{extra}\n"))
                .expect("the test's configuration can be written");
            path
        });
        if let Some(path) = &config_file {
            command.arg("--config").arg(path);
        }
        let origin = format!("http://127.0.0.1:{port}");
        for (name, value) in &options.vars {
            let value = value.replace("{origin}", &origin);
            command.args(["--var", &format!("{name}:{value}")]);
        }
        let mut process = ManagedProcess::spawn("wrangler dev", command, &log_path);

        let host_port = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if crate::http::probe_status(&host_port, "/health") == Some(200) {
                break;
            }
            if !process.is_running() {
                panic!(
                    "wrangler dev exited before it served /health:\n{}",
                    process.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "wrangler dev did not serve /health within 90 s:\n{}",
                    process.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        WorkerServer {
            base_url: format!("http://{host_port}"),
            persist_dir,
            process,
            owns_state,
            config_file,
        }
    }

    /// Runs SQL against this server's local D1 database through wrangler (for seeding benchmarks and
    /// for checking what is stored). Returns wrangler's JSON output.
    pub fn execute_sql(&self, sql: &str) -> serde_json::Value {
        // wrangler opens the same SQLite file the running worker writes: a read can meet a write in
        // progress (SQLITE_BUSY), which says nothing about the test, so it is tried again.
        let mut attempts = 0;
        let output = loop {
            attempts += 1;
            let output = wrangler(&repo_root())
                .args([
                    "d1",
                    "execute",
                    "DB",
                    "--local",
                    "--json",
                    "--command",
                    sql,
                    "--persist-to",
                ])
                .arg(&self.persist_dir)
                .output()
                .expect("wrangler runs");
            let busy = String::from_utf8_lossy(&output.stderr).contains("SQLITE_BUSY")
                || String::from_utf8_lossy(&output.stdout).contains("SQLITE_BUSY");
            if output.status.success() || !busy || attempts >= 10 {
                break output;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            output.status.success(),
            "wrangler d1 execute failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("wrangler prints JSON")
    }

    /// The signing key a dev-mode server generated for itself (it exists once anyone signed in):
    /// read like an attacker who stole it would, so a test can sign tokens whose only fault is their
    /// time or their claims.
    pub fn dev_signing_key(&self) -> Vec<u8> {
        let stored =
            self.execute_sql("SELECT value FROM deployment_keys WHERE name = 'dev_session_key'");
        stored[0]["results"][0]["value"]
            .as_str()
            .expect("the dev key is stored once anyone signed in")
            .as_bytes()
            .to_vec()
    }

    /// The resident memory (KiB) of the workerd processes serving this worker (the runtime with every
    /// isolate and Durable Object in it), read from /proc.
    pub fn workerd_rss_kib(&self) -> u64 {
        let group = self.process.pid() as i64;
        let mut total = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command (which is in parentheses): state, ppid, pgrp, ...
            let Some((command, rest)) = stat.split_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if !command.ends_with("(workerd")
                || fields.get(2).and_then(|pgrp| pgrp.parse::<i64>().ok()) != Some(group)
            {
                continue;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0);
        }
        total
    }

    /// Stops the server but keeps its state folder, and returns it (to restart on the same data).
    pub fn stop_keeping_state(mut self) -> PathBuf {
        self.process.stop();
        self.owns_state = false;
        self.persist_dir.clone()
    }

    /// Kills the server at once — SIGKILL to wrangler, workerd and everything else in its process
    /// group, as a crash or an eviction would, with no chance to flush or finish anything — and
    /// returns its state folder (to restart on the same data and port).
    pub fn kill_keeping_state(mut self) -> PathBuf {
        self.process.kill();
        self.owns_state = false;
        self.persist_dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The last lines wrangler and workerd logged, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

impl Drop for WorkerServer {
    fn drop(&mut self) {
        self.process.stop();
        if self.owns_state {
            let _ = std::fs::remove_dir_all(&self.persist_dir);
        }
        if let Some(path) = &self.config_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs a file's worth of SQL against the local D1 database in `persist_dir` while no server uses it
/// (for seeding benchmarks: one `wrangler d1 execute --file`, far faster than thousands of requests).
pub fn execute_sql_file(persist_dir: &Path, sql: &str) {
    let file = tempfile::NamedTempFile::new().expect("a temp file can be created");
    std::fs::write(file.path(), sql).expect("the SQL can be written");
    let output = wrangler(&repo_root())
        .args(["d1", "execute", "DB", "--local", "--yes", "--persist-to"])
        .arg(persist_dir)
        .arg("--file")
        .arg(file.path())
        .output()
        .expect("wrangler runs");
    assert!(
        output.status.success(),
        "seeding failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wrangler(root: &Path) -> Command {
    let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
    command
        .current_dir(root)
        .env("CI", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
    command
}

fn apply_migrations(root: &Path, persist_dir: &Path, log_path: &Path) {
    let output = wrangler(root)
        .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
        .arg(persist_dir)
        .output()
        .expect("wrangler runs (scripts/setup installs it)");
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::write(log_path, &log);
    assert!(
        output.status.success(),
        "applying the D1 migrations failed:\n{log}"
    );
}

fn assert_built(root: &Path) {
    for artefact in ["worker/build/index.js", "web/dist/index.html"] {
        assert!(
            root.join(artefact).exists(),
            "{artefact} is missing: run scripts/build (scripts/test does) before the integration tests"
        );
    }
    assert!(
        root.join("node_modules/.bin/wrangler").exists(),
        "wrangler is not installed: run scripts/setup"
    );
}
