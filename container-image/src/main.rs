use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cat_harness::jobs::{JobRegistry, Shared};
use cat_harness::server::AppState;
use cat_harness::store::Store;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cat-harness", version, about = "cat-factory's runner harness")]
struct Cli {
    /// Log lines as text (colours only when stderr is a terminal) or as one JSON object per line.
    #[arg(long, env = "HARNESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the job API over HTTP.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, env = "HARNESS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where job records, checkouts and local-forge pull requests live. One harness per directory.
        /// Defaults to $XDG_STATE_HOME/cat-harness (or ~/.local/state/cat-harness).
        #[arg(long, env = "HARNESS_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The toolchain variables passed from this process's environment to agent and validation
        /// commands, comma-separated; replaces the default list (see docs/jobs.md). Names that look
        /// like credentials are refused.
        #[arg(long, env = "HARNESS_TOOLCHAIN_ENV")]
        toolchain_env: Option<String>,
    },
}

fn default_state_dir() -> PathBuf {
    if let Some(state_home) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(state_home).join("cat-harness");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/cat-harness"),
        None => std::env::temp_dir().join("cat-harness"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a person at a terminal: in a file or a log collector they are noise.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    match cli.command {
        Command::Serve {
            listen,
            state_dir,
            toolchain_env,
        } => match serve(listen, state_dir, toolchain_env).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(problem) => {
                tracing::error!("cat-harness serve failed: {problem}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Resolves the runner's toolchain allowlist against this process's environment.
fn toolchain_environment(configured: Option<String>) -> Result<Vec<(String, String)>, String> {
    use domain::toolchain_env::{
        DEFAULT_TOOLCHAIN_VARIABLES, parse_allowlist, resolve_toolchain_environment,
    };
    let allowlist = match configured {
        Some(text) => parse_allowlist(&text)
            .map_err(|problem| format!("--toolchain-env / HARNESS_TOOLCHAIN_ENV: {problem}"))?,
        None => DEFAULT_TOOLCHAIN_VARIABLES
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
    };
    let home = std::env::var("HOME").ok();
    let resolved = resolve_toolchain_environment(
        &allowlist,
        |name| std::env::var(name).ok(),
        home.as_deref(),
        |path| std::path::Path::new(path).is_dir(),
    );
    for (name, reason) in &resolved.dropped {
        tracing::warn!(variable = %name, %reason, "toolchain variable not passed to commands");
    }
    let names: Vec<&str> = resolved
        .variables
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    tracing::info!(variables = ?names, "toolchain variables passed to commands");
    Ok(resolved.variables)
}

async fn serve(
    listen: SocketAddr,
    state_dir: Option<PathBuf>,
    toolchain_env: Option<String>,
) -> Result<(), String> {
    let toolchain_environment = toolchain_environment(toolchain_env)?;
    // Agent commands run as this user. Without this, they could read the harness's memory and its
    // environment (the shared secret, every job's tokens) through /proc/<pid>/{mem,environ}.
    if let Err(error) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(%error, "cannot mark the harness non-dumpable");
    }

    let shared_secret = std::env::var("HARNESS_SHARED_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty());
    if shared_secret.is_none() {
        if !listen.ip().is_loopback() {
            return Err(format!(
                "HARNESS_SHARED_SECRET is not set; the harness refuses to serve jobs on {listen} \
                 without it (set it, or listen on a loopback address for local development)"
            ));
        }
        tracing::warn!(
            "HARNESS_SHARED_SECRET is not set: the job API is open to every local process"
        );
    }

    let state_dir = state_dir.unwrap_or_else(default_state_dir);
    let store = Store::open(&state_dir)
        .map_err(|error| format!("cannot use state dir {}: {error}", state_dir.display()))?;
    tracing::info!(state_dir = %state_dir.display(), "state directory ready");

    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cat-harness/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let registry = Arc::new(JobRegistry::open(Shared {
        store: Arc::new(store),
        http,
        harness_secret: shared_secret.clone(),
        toolchain_environment: Arc::new(toolchain_environment),
    }));
    let state = AppState {
        registry,
        shared_secret: shared_secret.map(Arc::new),
    };
    cat_harness::server::serve(listen, state, shutdown_signal())
        .await
        .map_err(|error| error.to_string())
}

/// Resolves on Ctrl-C or SIGTERM (what a container runtime sends before it kills the process).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
