use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cat_harness::isolation::{
    UserPool, become_subreaper, job_users_from_passwd, reap_adopted_orphans,
};
use cat_harness::jobs::{JobRegistry, Shared};
use cat_harness::server::AppState;
use cat_harness::store::Store;
use clap::{Parser, Subcommand};
use domain::harness::SourcePolicy;

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
        /// Run each job as a user of its own, taken from the users whose name starts with this
        /// prefix (the runner image makes cat-job-1..16). Needs root. Without it every job runs as
        /// the harness's user, with weaker isolation (ADR 4).
        #[arg(long, env = "HARNESS_JOB_USERS")]
        job_users: Option<String>,
        /// Accept local paths and file:// clone URLs and the local forge (a local-forge runner).
        #[arg(long, env = "HARNESS_ALLOW_LOCAL_REPOS")]
        allow_local_repos: bool,
        /// Hosts that http(s) clone URLs and GitHub API base URLs may name, comma-separated.
        #[arg(
            long,
            env = "HARNESS_ALLOWED_HOSTS",
            value_delimiter = ',',
            default_value = "github.com,api.github.com"
        )]
        allowed_hosts: Vec<String>,
    },
    /// Ask a running harness for `GET /health` and exit 0 only if it answers 200 (the runner
    /// image's health check; it needs no curl in the image).
    Probe {
        /// The address the harness listens on; an unspecified address (0.0.0.0) is probed on
        /// loopback.
        #[arg(long, env = "HARNESS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

/// How to make a shared secret, for the error that asks for one.
const SECRET_HOW_TO: &str = "set HARNESS_SHARED_SECRET to a long random value (for example \
                             `export HARNESS_SHARED_SECRET=$(openssl rand -hex 32)`) and give the \
                             worker the same value; scripts/dev makes one for local development";

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
        Command::Probe { listen } => match probe_health(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(problem) => {
                eprintln!("cat-harness probe: {problem}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            listen,
            state_dir,
            toolchain_env,
            job_users,
            allow_local_repos,
            allowed_hosts,
        } => match serve(
            listen,
            state_dir,
            toolchain_env,
            job_users,
            SourcePolicy {
                allow_local_repositories: allow_local_repos,
                allowed_hosts: allowed_hosts
                    .into_iter()
                    .map(|host| host.trim().to_ascii_lowercase())
                    .filter(|host| !host.is_empty())
                    .collect(),
            },
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(problem) => {
                tracing::error!("cat-harness serve failed: {problem}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `GET /health` over plain HTTP/1.0 with a short timeout: 200 or an error saying what happened.
fn probe_health(mut listen: SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    if listen.ip().is_unspecified() {
        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&listen, timeout)
        .map_err(|error| format!("nothing answers on {listen}: {error}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|error| format!("cannot set timeouts: {error}"))?;
    stream
        .write_all(format!("GET /health HTTP/1.0\r\nHost: {listen}\r\n\r\n").as_bytes())
        .map_err(|error| format!("cannot send the request to {listen}: {error}"))?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .map_err(|error| format!("no answer from {listen}: {error}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("{listen} answered /health with status {status}"))
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

/// The job-user pool for `prefix`, or why there cannot be one.
fn job_user_pool(prefix: &str) -> Result<Arc<UserPool>, String> {
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "HARNESS_JOB_USERS={prefix} needs the harness to run as root (it switches each job to \
             its user); run it as root or leave HARNESS_JOB_USERS unset for the weaker shared-user \
             mode"
        ));
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|error| format!("cannot read /etc/passwd: {error}"))?;
    let users = job_users_from_passwd(&passwd, prefix);
    if users.is_empty() {
        return Err(format!(
            "HARNESS_JOB_USERS={prefix}: no user's name starts with {prefix:?}; create them \
             (e.g. `useradd --system --user-group --no-create-home {prefix}1`) or unset it"
        ));
    }
    tracing::info!(
        count = users.len(),
        prefix,
        "jobs run as users of their own"
    );
    Ok(UserPool::new(users))
}

/// The first folder above `path` that others (job users) cannot pass (no `x` bit for others), with
/// its mode.
fn first_folder_others_cannot_pass(path: &std::path::Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let absolute = std::path::absolute(path).ok()?;
    absolute.ancestors().skip(1).find_map(|ancestor| {
        let mode = std::fs::metadata(ancestor).ok()?.permissions().mode();
        (mode & 0o001 == 0).then(|| (ancestor.to_owned(), mode & 0o777))
    })
}

/// Job users reach their folder under the state dir, so every folder above it must let others pass
/// (the `x` bit); the default under root's home does not.
fn check_passable_for_job_users(state_dir: &std::path::Path) -> Result<(), String> {
    match first_folder_others_cannot_pass(state_dir) {
        None => Ok(()),
        Some((ancestor, mode)) => Err(format!(
            "job users cannot reach the state dir {}: {} is not passable by others (mode \
             {mode:o}); pass --state-dir somewhere like /var/lib/cat-harness/state",
            state_dir.display(),
            ancestor.display(),
        )),
    }
}

/// Job users run the toolchains the allowlist points at (ADR 10), so those folders must be reachable
/// by others; one under the harness's own home (e.g. `/root/.rustup`) is not. Only a warning: the
/// runner may not need that toolchain, and the commands that do will say what is missing.
fn warn_about_toolchains_job_users_cannot_reach(toolchain_environment: &[(String, String)]) {
    for (name, value) in toolchain_environment {
        let path = std::path::Path::new(value);
        if path.is_absolute()
            && path.exists()
            && let Some((ancestor, mode)) = first_folder_others_cannot_pass(path)
        {
            tracing::warn!(
                variable = %name,
                path = %path.display(),
                blocked_by = %ancestor.display(),
                mode = format!("{mode:o}"),
                "job users cannot use this toolchain folder: install it where others can read it"
            );
        }
    }
}

async fn serve(
    listen: SocketAddr,
    state_dir: Option<PathBuf>,
    toolchain_env: Option<String>,
    job_users: Option<String>,
    sources: SourcePolicy,
) -> Result<(), String> {
    let shared_secret = std::env::var("HARNESS_SHARED_SECRET")
        .ok()
        .filter(|secret| !secret.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "HARNESS_SHARED_SECRET is not set: the harness runs code on this machine for \
                 whoever can call its API, so it never serves without a secret; {SECRET_HOW_TO}"
            )
        })?;

    let toolchain_environment = toolchain_environment(toolchain_env)?;

    // Agent commands may run as this user (the shared-user mode). Without this, they could read the
    // harness's memory and its environment (the shared secret, every job's tokens) through
    // /proc/<pid>/{mem,environ}.
    if let Err(error) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(%error, "cannot mark the harness non-dumpable");
    }
    // Daemons a command leaves behind are re-parented to the harness, which kills them.
    if let Err(error) = become_subreaper() {
        tracing::warn!(%error, "cannot become a child subreaper; escaped processes go to init");
    }
    let job_users = job_users
        .filter(|prefix| !prefix.trim().is_empty())
        .map(|prefix| job_user_pool(prefix.trim()))
        .transpose()?;
    if job_users.is_none() {
        tracing::warn!(
            "no job users (HARNESS_JOB_USERS): jobs run as the harness's own user and jobs of \
             different repositories are not run at once (ADR 4)"
        );
    }

    let state_dir = state_dir.unwrap_or_else(default_state_dir);
    if job_users.is_some() {
        check_passable_for_job_users(&state_dir)?;
        warn_about_toolchains_job_users_cannot_reach(&toolchain_environment);
    }
    let store = Store::open(&state_dir, job_users.is_some())
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
        harness_secret: Some(shared_secret.clone()),
        toolchain_environment: Arc::new(toolchain_environment),
        job_users,
    }));
    // Orphans that exit on their own still need a wait() from their new parent.
    tokio::spawn(async {
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        loop {
            ticker.tick().await;
            reap_adopted_orphans();
        }
    });
    let state = AppState {
        registry,
        shared_secret: Arc::new(shared_secret),
        sources: Arc::new(sources),
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
