//! Running child processes: always with an environment the harness chose (never its own), in a
//! process group of their own that is killed when the command ends, times out or is abandoned, so
//! nothing an agent starts outlives its tool call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::isolation::{self, Sandbox};

/// Output beyond this is dropped while reading (the tail is what the caller usually needs, and
/// [`domain::harness::truncate_middle`] shortens it further for the model).
const MAX_CAPTURED_BYTES: usize = 4 * 1024 * 1024;

/// How long to wait for a killed command's pipes to close before giving up on the rest of its output.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The environment a child process gets: exactly these variables and nothing inherited.
#[derive(Debug, Clone, Default)]
pub struct ChildEnvironment {
    variables: Vec<(String, String)>,
}

impl ChildEnvironment {
    /// The minimum every tool needs: `PATH` (the harness's own, so the repository's toolchains are
    /// found), a scratch `HOME` and `TMPDIR`, and a UTF-8 locale. No credential is ever in it.
    pub fn minimal(scratch_home: &Path, scratch_tmp: &Path) -> Self {
        let path =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned());
        ChildEnvironment::default()
            .with("PATH", path)
            .with("HOME", scratch_home.display().to_string())
            .with("TMPDIR", scratch_tmp.display().to_string())
            .with("LANG", "C.UTF-8")
            .with("GIT_TERMINAL_PROMPT", "0")
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables.retain(|(existing, _)| existing != name);
        self.variables.push((name.to_owned(), value.into()));
        self
    }

    /// Adds every variable of `variables` (later ones win), e.g. the runner's toolchain allowlist
    /// (`domain::toolchain_env`) and the job's cache folders.
    pub fn with_all<'a>(self, variables: impl IntoIterator<Item = &'a (String, String)>) -> Self {
        variables
            .into_iter()
            .fold(self, |environment, (name, value)| {
                environment.with(name, value.clone())
            })
    }

    /// The value of one variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The shell that runs validation and agent commands: `bash` when the machine has it (repositories'
/// scripts and the commands models write assume bash: `set -o pipefail`, `[[ ]]`, arrays), `sh`
/// otherwise. Looked up once, in the harness's `PATH` and the usual places.
pub fn shell_program() -> &'static str {
    static SHELL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_default();
        path.split(':')
            .filter(|directory| !directory.is_empty())
            .chain(["/bin", "/usr/bin", "/usr/local/bin"])
            .map(|directory| Path::new(directory).join("bash"))
            .find(|candidate| {
                use std::os::unix::fs::PermissionsExt;
                candidate.metadata().is_ok_and(|metadata| {
                    metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
                })
            })
            .map(|bash| bash.display().to_string())
            .unwrap_or_else(|| "sh".to_owned())
    })
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    pub working_directory: PathBuf,
    pub environment: ChildEnvironment,
    pub timeout: Duration,
    pub stdin: Option<Vec<u8>>,
    /// Send stderr into the stdout stream (for agent commands, where the order matters to a reader).
    pub merge_stderr_into_stdout: bool,
    /// For agent and validation commands: the job's sandbox, whose user the command runs as and
    /// whose every process is killed when the command ends. `None` for the harness's own git.
    pub sandbox: Option<Arc<Sandbox>>,
}

impl CommandSpec {
    pub fn new(program: &str, working_directory: &Path, environment: ChildEnvironment) -> Self {
        CommandSpec {
            program: program.to_owned(),
            args: Vec::new(),
            working_directory: working_directory.to_owned(),
            environment,
            timeout: Duration::from_secs(300),
            stdin: None,
            merge_stderr_into_stdout: false,
            sandbox: None,
        }
    }

    /// Runs the command inside the job's sandbox (as its user, and nothing it starts outlives it).
    pub fn sandbox(mut self, sandbox: Option<Arc<Sandbox>>) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// A shell command line, run with `bash -c` (or `sh -c` where there is no bash, see
    /// [`shell_program`]), stderr merged into stdout.
    pub fn shell(
        command_line: &str,
        working_directory: &Path,
        environment: ChildEnvironment,
    ) -> Self {
        let mut spec = CommandSpec::new(shell_program(), working_directory, environment);
        // `exec 2>&1` first so the whole script writes one interleaved stream, as in a terminal.
        spec.args = vec!["-c".to_owned(), format!("exec 2>&1\n{command_line}")];
        spec.merge_stderr_into_stdout = true;
        spec
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// `None` when the process was killed (timeout) or died from a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// stdout then stderr, for reporting.
    pub fn combined(&self) -> String {
        match (self.stdout.is_empty(), self.stderr.is_empty()) {
            (_, true) => self.stdout.clone(),
            (true, false) => self.stderr.clone(),
            (false, false) => format!("{}\n{}", self.stdout, self.stderr),
        }
    }
}

/// Kills a process group when dropped: covers the normal end, a timeout, and the job's future being
/// dropped on `DELETE /jobs/{id}`.
struct ProcessGroupGuard {
    group: Option<Pid>,
    /// The child's pid while the harness still owns it (see [`isolation::spawn_tracked`]).
    tracked: Option<u32>,
}

impl ProcessGroupGuard {
    fn kill(&mut self) {
        if let Some(group) = self.group.take() {
            // ESRCH (the group is already gone) is the common case and needs no handling.
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        self.kill();
        if let Some(pid) = self.tracked.take() {
            isolation::untrack(pid);
        }
    }
}

async fn read_capped(mut stream: impl AsyncReadExt + Unpin) -> Vec<u8> {
    let mut captured = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let room = MAX_CAPTURED_BYTES.saturating_sub(captured.len());
                captured.extend_from_slice(&buffer[..read.min(room)]);
            }
        }
    }
    captured
}

/// Runs a command to completion or timeout. An error means it could not be started at all.
pub async fn run(spec: CommandSpec) -> std::io::Result<CommandOutput> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.working_directory)
        .env_clear()
        .envs(spec.environment.variables.iter().cloned())
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(if spec.merge_stderr_into_stdout {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .process_group(0)
        .kill_on_drop(true);
    if let Some(user) = spec.sandbox.as_ref().and_then(|sandbox| sandbox.user()) {
        // std drops the supplementary groups too when root changes the user.
        command.uid(user.uid).gid(user.gid);
    }
    let mut child = isolation::spawn_tracked(|| {
        let child = command.spawn()?;
        let pid = child.id();
        Ok((child, pid))
    })?;
    let mut group = ProcessGroupGuard {
        group: child.id().and_then(|id| Pid::from_raw(id as i32)),
        tracked: child.id(),
    };
    if let (Some(input), Some(mut child_stdin)) = (spec.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = child_stdin.write_all(&input).await;
        });
    }
    let stdout_reader = child
        .stdout
        .take()
        .map(|out| tokio::spawn(read_capped(out)));
    let stderr_reader = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_capped(err)));

    let (exit_code, timed_out) = tokio::select! {
        status = child.wait() => (status?.code(), false),
        () = tokio::time::sleep(spec.timeout) => (None, true),
    };
    // Background processes the command left behind would keep its pipes open and run on unseen.
    group.kill();
    let _ = child.wait().await;
    drop(group);
    // And the ones that left the process group (setsid, double fork) or changed their session.
    if let Some(sandbox) = &spec.sandbox {
        sandbox.kill_everything().await;
    }

    let collect = |reader: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match reader {
            Some(handle) => tokio::time::timeout(PIPE_DRAIN_GRACE, handle)
                .await
                .ok()
                .and_then(Result::ok)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    Ok(CommandOutput {
        exit_code,
        timed_out,
        stdout: collect(stdout_reader).await,
        stderr: collect(stderr_reader).await,
    })
}
