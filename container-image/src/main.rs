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
    #[command(subcommand)]
    command: Command,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            state_dir,
            job_users,
            allow_local_repos,
            allowed_hosts,
        } => match serve(
            listen,
            state_dir,
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

/// Job users reach their folder under the state dir, so every folder above it must let others pass
/// (the `x` bit); the default under root's home does not.
fn check_passable_for_job_users(state_dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let absolute = std::path::absolute(state_dir).map_err(|error| {
        format!(
            "cannot resolve the state dir {}: {error}",
            state_dir.display()
        )
    })?;
    for ancestor in absolute.ancestors().skip(1) {
        let Ok(metadata) = std::fs::metadata(ancestor) else {
            continue;
        };
        if metadata.permissions().mode() & 0o001 == 0 {
            return Err(format!(
                "job users cannot reach the state dir {}: {} is not passable by others (mode \
                 {:o}); pass --state-dir somewhere like /var/lib/cat-harness/state",
                state_dir.display(),
                ancestor.display(),
                metadata.permissions().mode() & 0o777
            ));
        }
    }
    Ok(())
}

async fn serve(
    listen: SocketAddr,
    state_dir: Option<PathBuf>,
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
