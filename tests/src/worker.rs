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
}

/// Variables the tests run the worker with (`--var NAME:VALUE`).
const TEST_VARS: &[(&str, &str)] = &[("AUTH_MODE", "dev")];

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

    /// Starts a server of its own (for tests that restart or break it). Stopped on drop.
    pub fn start() -> WorkerServer {
        let root = repo_root();
        assert_built(&root);
        let persist_dir = tempfile::Builder::new()
            .prefix("cat-factory-d1-")
            .tempdir()
            .expect("a temp dir can be created")
            .keep();
        let log_path = artifacts_dir("wrangler").join(format!(
            "{}.log",
            persist_dir
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("wrangler")
        ));
        apply_migrations(&root, &persist_dir, &log_path);

        let port = free_port();
        let mut command = wrangler(&root);
        command.args([
            "dev",
            "--local",
            "--ip",
            "127.0.0.1",
            "--show-interactive-dev-session=false",
        ]);
        command.args([
            "--port",
            &port.to_string(),
            "--inspector-port",
            &free_port().to_string(),
        ]);
        command.arg("--persist-to").arg(&persist_dir);
        for (name, value) in TEST_VARS {
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
        }
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
        let _ = std::fs::remove_dir_all(&self.persist_dir);
    }
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
