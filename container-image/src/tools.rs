//! The built-in agent's tools. Every path is relative to the checkout and is checked twice: lexically
//! (no absolute paths, no `..`, no `.git`) and after resolving symlinks (the real location must still
//! be inside the checkout). Writes under `.github/workflows/` are refused.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::harness::truncate_middle;
use domain::job::{checked_relative_path, is_protected_path};
use domain::llm::ToolSpec;
use serde_json::{Value, json};

use crate::command::{self, ChildEnvironment, CommandSpec};
use crate::isolation::Sandbox;

/// Tool output longer than this is shortened before the model sees it.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 16 * 1024;
const DEFAULT_READ_LINES: usize = 400;
const MAX_LISTED_ENTRIES: usize = 500;
const MAX_SEARCH_MATCHES: usize = 200;
const MAX_SEARCHED_FILE_BYTES: u64 = 1024 * 1024;
/// `read_file` and `edit_file` refuse larger files: the whole file is read into memory.
pub const MAX_READ_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Added to the command timeout for the whole tool call, which also bounds the file tools.
const TOOL_CALL_GRACE: Duration = Duration::from_secs(10);

pub const FINISH_TOOL: &str = "finish";

/// What a tool call produced, for the model and for the job view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub output: String,
    pub is_error: bool,
}

impl ToolOutcome {
    fn ok(output: impl Into<String>) -> Self {
        ToolOutcome {
            output: output.into(),
            is_error: false,
        }
    }

    fn error(output: impl Into<String>) -> Self {
        ToolOutcome {
            output: output.into(),
            is_error: true,
        }
    }
}

/// The tools the model is offered. Explore jobs get no write tools.
pub fn tool_specs(can_write: bool) -> Vec<ToolSpec> {
    let path_property =
        json!({ "type": "string", "description": "Path relative to the repository root" });
    let mut specs = vec![
        ToolSpec {
            name: "list_directory".to_owned(),
            description: "List the entries of a directory (directories end with '/').".to_owned(),
            parameters: json!({ "type": "object", "properties": { "path": path_property },
                                "required": ["path"] }),
        },
        ToolSpec {
            name: "read_file".to_owned(),
            description: "Read a text file with line numbers; optionally only lines start_line..=end_line (1-based).".to_owned(),
            parameters: json!({ "type": "object", "properties": {
                "path": path_property,
                "start_line": { "type": "integer", "minimum": 1 },
                "end_line": { "type": "integer", "minimum": 1 } }, "required": ["path"] }),
        },
        ToolSpec {
            name: "search_text".to_owned(),
            description: "Find lines containing a literal text, in a directory tree (default: the whole repository).".to_owned(),
            parameters: json!({ "type": "object", "properties": {
                "pattern": { "type": "string" }, "path": path_property }, "required": ["pattern"] }),
        },
        ToolSpec {
            name: "run_command".to_owned(),
            description: "Run a shell command in the repository (bash -c; sh -c where bash is missing). Output is truncated; the command is killed after its timeout.".to_owned(),
            parameters: json!({ "type": "object", "properties": {
                "command": { "type": "string" },
                "timeout_seconds": { "type": "integer", "minimum": 1 } }, "required": ["command"] }),
        },
    ];
    if can_write {
        specs.push(ToolSpec {
            name: "write_file".to_owned(),
            description: "Create or overwrite a file with the given content.".to_owned(),
            parameters: json!({ "type": "object", "properties": {
                "path": path_property, "content": { "type": "string" } }, "required": ["path", "content"] }),
        });
        specs.push(ToolSpec {
            name: "edit_file".to_owned(),
            description: "Replace old_text with new_text in a file; old_text must occur exactly once.".to_owned(),
            parameters: json!({ "type": "object", "properties": {
                "path": path_property, "old_text": { "type": "string" }, "new_text": { "type": "string" } },
                "required": ["path", "old_text", "new_text"] }),
        });
    }
    specs.push(ToolSpec {
        name: FINISH_TOOL.to_owned(),
        description:
            "Stop and report: a summary of what you changed (or your answer, for a read-only task)."
                .to_owned(),
        parameters: json!({ "type": "object", "properties": { "summary": { "type": "string" } },
                            "required": ["summary"] }),
    });
    specs
}

/// A short description of a call for the job view's `lastAction`, e.g. `edit_file src/lib.rs`.
pub fn describe_call(name: &str, arguments: &Value) -> String {
    let detail = ["path", "command", "pattern"]
        .iter()
        .find_map(|key| arguments.get(key).and_then(Value::as_str))
        .unwrap_or_default();
    let description = format!("{name} {detail}");
    let mut end = description.trim_end().len().min(200);
    while !description.is_char_boundary(end) {
        end -= 1;
    }
    description[..end].to_owned()
}

/// The checkout the tools act on.
pub struct Workspace {
    /// Canonical path of the checkout's root.
    root: PathBuf,
    /// Where commands start: the root, or the job's sub-directory.
    command_directory: PathBuf,
    can_write: bool,
    environment: ChildEnvironment,
    command_timeout: Duration,
    /// The job's sandbox: commands run inside it, and files the tools create go to its user.
    sandbox: Option<Arc<Sandbox>>,
}

/// Opens a file the tools may read: a regular file (never a FIFO, socket or device, which could
/// block or never end), not hard-linked (a link to a file the job could not read itself), owned by
/// the job's user when there is one (the tools run as the harness), and at most `max_bytes` long.
fn open_job_file(
    path: &Path,
    owner_uid: Option<u32>,
    max_bytes: u64,
) -> Result<(std::fs::File, u64), String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|error| error.to_string())?;
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err(
            "not a regular file; the file tools read and edit regular files only".to_owned(),
        );
    }
    if metadata.nlink() > 1 {
        return Err("a hard link; the file tools refuse hard-linked files".to_owned());
    }
    if owner_uid.is_some_and(|uid| metadata.uid() != uid) {
        return Err("not a file of this job".to_owned());
    }
    if metadata.len() > max_bytes {
        return Err(format!(
            "too large ({} bytes; the limit is {max_bytes}); look at it with run_command \
             (head, tail, grep) instead",
            metadata.len()
        ));
    }
    Ok((file, metadata.len()))
}

/// Reads a file opened by [`open_job_file`], never more than `limit` bytes.
fn read_limited(file: std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn string_argument<'a>(arguments: &'a Value, key: &str) -> Result<&'a str, ToolOutcome> {
    arguments
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolOutcome::error(format!("missing string argument \"{key}\"")))
}

fn optional_number(arguments: &Value, key: &str) -> Option<u64> {
    arguments.get(key).and_then(Value::as_u64)
}

impl Workspace {
    pub fn new(
        root: &Path,
        sub_directory: Option<&str>,
        can_write: bool,
        environment: ChildEnvironment,
        command_timeout: Duration,
    ) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let command_directory = match sub_directory {
            Some(sub) => root.join(sub),
            None => root.clone(),
        };
        Ok(Workspace {
            root,
            command_directory,
            can_write,
            environment,
            command_timeout,
            sandbox: None,
        })
    }

    /// Runs commands in the job's sandbox and gives the files the tools create to its user.
    pub fn with_sandbox(mut self, sandbox: Arc<Sandbox>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    fn owner_uid(&self) -> Option<u32> {
        self.sandbox
            .as_ref()
            .and_then(|sandbox| sandbox.user())
            .map(|user| user.uid)
    }

    /// Gives `path` and the folders above it up to the root to the job's user, when there is one
    /// (the tools run as the harness, so what they create would otherwise be the harness's).
    fn give_to_job_user(&self, path: &Path) {
        let Some(user) = self.sandbox.as_ref().and_then(|sandbox| sandbox.user()) else {
            return;
        };
        let mut current = Some(path);
        while let Some(path) = current {
            if !path.starts_with(&self.root) || path == self.root {
                break;
            }
            let _ = std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid));
            current = path.parent();
        }
    }

    /// Runs one tool call. `finish` is handled by the agent loop, not here.
    pub async fn call(&self, name: &str, arguments: &Value) -> ToolOutcome {
        if !arguments.is_object() {
            return ToolOutcome::error(
                "the arguments must be a JSON object matching the tool's schema",
            );
        }
        let dispatch = async {
            match name {
                "list_directory" => self.list_directory(arguments).await,
                "read_file" => self.read_file(arguments).await,
                "search_text" => self.search_text(arguments).await,
                "run_command" => self.run_command(arguments).await,
                "write_file" | "edit_file" if !self.can_write => Err(ToolOutcome::error(
                    "this is a read-only job: files cannot be changed",
                )),
                "write_file" => self.write_file(arguments).await,
                "edit_file" => self.edit_file(arguments).await,
                other => Err(ToolOutcome::error(format!(
                    "there is no tool named {other:?}"
                ))),
            }
        };
        // Every call is bounded, not only commands: a file tool stuck on the file system must not
        // hold the job.
        let limit = self.command_timeout + TOOL_CALL_GRACE;
        let outcome = match tokio::time::timeout(limit, dispatch).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ToolOutcome::error(format!(
                "{name} did not finish within {} s and was abandoned",
                limit.as_secs()
            ))),
        };
        let mut outcome = outcome.unwrap_or_else(|error| error);
        outcome.output = truncate_middle(&outcome.output, MAX_TOOL_OUTPUT_BYTES);
        outcome
    }

    /// The path relative to the root, if `real` is inside the checkout and not in `.git`.
    fn inside(&self, real: &Path) -> Option<String> {
        let relative = real.strip_prefix(&self.root).ok()?;
        if relative
            .components()
            .any(|component| component == Component::Normal(".git".as_ref()))
        {
            return None;
        }
        Some(relative.to_string_lossy().into_owned())
    }

    /// Resolves an existing path for reading.
    fn resolve_existing(&self, requested: &str) -> Result<PathBuf, ToolOutcome> {
        let components = checked_relative_path(requested)
            .map_err(|problem| ToolOutcome::error(format!("{requested}: {problem}")))?;
        let joined = components
            .iter()
            .fold(self.root.clone(), |path, component| path.join(component));
        let real = joined
            .canonicalize()
            .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
        self.inside(&real).ok_or_else(|| {
            ToolOutcome::error(format!(
                "{requested}: resolves outside the checkout (through a symlink); refused"
            ))
        })?;
        Ok(real)
    }

    /// Resolves a path for writing: the nearest existing ancestor must really be inside the
    /// checkout, and neither the requested nor the real path may be a protected one.
    fn resolve_for_write(&self, requested: &str) -> Result<PathBuf, ToolOutcome> {
        let components = checked_relative_path(requested)
            .map_err(|problem| ToolOutcome::error(format!("{requested}: {problem}")))?;
        if components.is_empty() {
            return Err(ToolOutcome::error(format!("{requested}: not a file path")));
        }
        let refused = || {
            ToolOutcome::error(format!(
                "{requested}: changes under .github/workflows/ are not allowed (CI definitions run \
                 with the repository's secrets); leave workflow files as they are"
            ))
        };
        if is_protected_path(&components.join("/")) {
            return Err(refused());
        }
        let joined = components
            .iter()
            .fold(self.root.clone(), |path, component| path.join(component));
        let mut existing = joined.as_path();
        let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
        while std::fs::symlink_metadata(existing).is_err() {
            missing.push(existing.file_name().unwrap_or_default());
            existing = existing.parent().unwrap_or(&self.root);
        }
        let real_existing = existing
            .canonicalize()
            .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
        let real = missing
            .iter()
            .rev()
            .fold(real_existing, |path, component| path.join(component));
        let relative = self.inside(&real).ok_or_else(|| {
            ToolOutcome::error(format!(
                "{requested}: resolves outside the checkout (through a symlink); refused"
            ))
        })?;
        if relative.is_empty() || real == self.root {
            return Err(ToolOutcome::error(format!("{requested}: not a file path")));
        }
        if is_protected_path(&relative) {
            return Err(refused());
        }
        Ok(real)
    }

    async fn list_directory(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let requested = arguments.get("path").and_then(Value::as_str).unwrap_or(".");
        let directory = self.resolve_existing(requested)?;
        let mut reader = tokio::fs::read_dir(&directory)
            .await
            .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
        let mut entries = Vec::new();
        while let Ok(Some(entry)) = reader.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let is_directory = entry.file_type().await.is_ok_and(|kind| kind.is_dir());
            entries.push(if is_directory {
                format!("{name}/")
            } else {
                name
            });
        }
        entries.sort();
        let total = entries.len();
        entries.truncate(MAX_LISTED_ENTRIES);
        let mut listing = entries.join("\n");
        if total > MAX_LISTED_ENTRIES {
            listing.push_str(&format!(
                "\n[... {} more entries]",
                total - MAX_LISTED_ENTRIES
            ));
        }
        if listing.is_empty() {
            listing = "(empty directory)".to_owned();
        }
        Ok(ToolOutcome::ok(listing))
    }

    async fn read_file(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let requested = string_argument(arguments, "path")?;
        let path = self.resolve_existing(requested)?;
        let owner = self.owner_uid();
        let bytes = tokio::task::spawn_blocking(move || {
            let (file, _) = open_job_file(&path, owner, MAX_READ_FILE_BYTES)?;
            read_limited(file, MAX_READ_FILE_BYTES).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?
        .map_err(|problem| ToolOutcome::error(format!("{requested}: {problem}")))?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let start = optional_number(arguments, "start_line").unwrap_or(1).max(1) as usize;
        let end = optional_number(arguments, "end_line")
            .map(|end| end as usize)
            .unwrap_or(start + DEFAULT_READ_LINES - 1)
            .min(lines.len());
        if lines.is_empty() {
            return Ok(ToolOutcome::ok("(empty file)"));
        }
        if start > lines.len() {
            return Err(ToolOutcome::error(format!(
                "{requested} has {} lines; start_line {start} is past the end",
                lines.len()
            )));
        }
        let mut numbered: String = lines[start - 1..end.max(start - 1)]
            .iter()
            .enumerate()
            .map(|(offset, line)| format!("{}: {line}\n", start + offset))
            .collect();
        if end < lines.len() {
            numbered.push_str(&format!(
                "[... {} more lines; read on with start_line={}]",
                lines.len() - end,
                end + 1
            ));
        }
        Ok(ToolOutcome::ok(numbered))
    }

    async fn search_text(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let pattern = string_argument(arguments, "pattern")?.to_owned();
        if pattern.is_empty() {
            return Err(ToolOutcome::error("pattern must not be empty"));
        }
        let requested = arguments.get("path").and_then(Value::as_str).unwrap_or(".");
        let start = self.resolve_existing(requested)?;
        let root = self.root.clone();
        let owner = self.owner_uid();
        let matches =
            tokio::task::spawn_blocking(move || search_tree(&root, &start, &pattern, owner))
                .await
                .map_err(|error| ToolOutcome::error(format!("search failed: {error}")))?;
        if matches.is_empty() {
            return Ok(ToolOutcome::ok("no matches"));
        }
        Ok(ToolOutcome::ok(matches.join("\n")))
    }

    async fn write_file(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let requested = string_argument(arguments, "path")?;
        let content = string_argument(arguments, "content")?;
        let path = self.resolve_for_write(requested)?;
        if let Ok(existing) = std::fs::symlink_metadata(&path)
            && !existing.is_file()
        {
            return Err(ToolOutcome::error(format!(
                "{requested}: not a regular file; write_file replaces regular files only"
            )));
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
        }
        tokio::fs::write(&path, content)
            .await
            .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
        self.give_to_job_user(&path);
        Ok(ToolOutcome::ok(format!(
            "wrote {requested} ({} bytes)",
            content.len()
        )))
    }

    async fn edit_file(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let requested = string_argument(arguments, "path")?;
        let old_text = string_argument(arguments, "old_text")?;
        let new_text = string_argument(arguments, "new_text")?;
        let path = self.resolve_for_write(requested)?;
        if old_text.is_empty() {
            return Err(ToolOutcome::error(
                "old_text must not be empty; use write_file to create a file",
            ));
        }
        let owner = self.owner_uid();
        let opened_path = path.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let (file, _) = open_job_file(&opened_path, owner, MAX_READ_FILE_BYTES)?;
            read_limited(file, MAX_READ_FILE_BYTES).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?
        .map_err(|problem| ToolOutcome::error(format!("{requested}: {problem}")))?;
        let content = String::from_utf8(bytes).map_err(|_| {
            ToolOutcome::error(format!("{requested}: not UTF-8 text; edit_file edits text"))
        })?;
        match content.matches(old_text).count() {
            0 => Err(ToolOutcome::error(format!(
                "old_text does not occur in {requested}; read the file and copy the text exactly"
            ))),
            1 => {
                tokio::fs::write(&path, content.replacen(old_text, new_text, 1))
                    .await
                    .map_err(|error| ToolOutcome::error(format!("{requested}: {error}")))?;
                Ok(ToolOutcome::ok(format!("edited {requested}")))
            }
            many => Err(ToolOutcome::error(format!(
                "old_text occurs {many} times in {requested}; include more surrounding text so it \
                 matches exactly once"
            ))),
        }
    }

    async fn run_command(&self, arguments: &Value) -> Result<ToolOutcome, ToolOutcome> {
        let command_line = string_argument(arguments, "command")?;
        let timeout = optional_number(arguments, "timeout_seconds")
            .map(Duration::from_secs)
            .unwrap_or(self.command_timeout)
            .min(self.command_timeout);
        Ok(run_shell(
            command_line,
            &self.command_directory,
            self.environment.clone(),
            timeout,
            self.sandbox.clone(),
        )
        .await)
    }
}

/// Runs a shell command the way both the agent's `run_command` and the validation step do, and
/// reports it as text: the exit code and the (truncated) output.
pub async fn run_shell(
    command_line: &str,
    directory: &Path,
    environment: ChildEnvironment,
    timeout: Duration,
    sandbox: Option<Arc<Sandbox>>,
) -> ToolOutcome {
    let spec = CommandSpec::shell(command_line, directory, environment)
        .timeout(timeout)
        .sandbox(sandbox);
    match command::run(spec).await {
        Err(error) => ToolOutcome::error(format!("could not start the command: {error}")),
        Ok(output) => {
            let status = if output.timed_out {
                format!("killed after {} s (timeout)", timeout.as_secs())
            } else {
                match output.exit_code {
                    Some(code) => format!("exit code {code}"),
                    None => "killed by a signal".to_owned(),
                }
            };
            ToolOutcome {
                is_error: !output.succeeded(),
                output: format!(
                    "{status}\n{}",
                    truncate_middle(&output.stdout, MAX_TOOL_OUTPUT_BYTES)
                ),
            }
        }
    }
}

fn search_tree(root: &Path, start: &Path, pattern: &str, owner_uid: Option<u32>) -> Vec<String> {
    let mut matches = Vec::new();
    let mut pending = vec![start.to_owned()];
    while let Some(path) = pending.pop() {
        // symlink_metadata: the walk never follows a link out of the checkout.
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if path.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&path) {
                let mut children: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                children.sort();
                pending.extend(children.into_iter().rev());
            }
            continue;
        }
        if !metadata.is_file() || metadata.len() > MAX_SEARCHED_FILE_BYTES {
            continue;
        }
        let Ok(bytes) =
            open_job_file(&path, owner_uid, MAX_SEARCHED_FILE_BYTES).and_then(|(file, _)| {
                read_limited(file, MAX_SEARCHED_FILE_BYTES).map_err(|error| error.to_string())
            })
        else {
            continue;
        };
        if bytes.iter().take(8192).any(|byte| *byte == 0) {
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (index, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
            if line.contains(pattern) {
                let mut shown = line.trim().to_owned();
                if shown.len() > 300 {
                    let mut cut = 300;
                    while !shown.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    shown.truncate(cut);
                }
                matches.push(format!("{relative}:{}: {shown}", index + 1));
                if matches.len() >= MAX_SEARCH_MATCHES {
                    matches.push(format!("[stopped after {MAX_SEARCH_MATCHES} matches]"));
                    return matches;
                }
            }
        }
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(root: &Path) -> Workspace {
        let scratch = root.join("../scratch");
        Workspace::new(
            root,
            None,
            true,
            ChildEnvironment::minimal(&scratch, &scratch),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("checkout");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join(".github/workflows")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(
            root.join("src/lib.rs"),
            "fn a() {}\nfn b() {}\nfn a2() {}\n",
        )
        .unwrap();
        std::fs::write(root.join(".github/workflows/ci.yml"), "on: push\n").unwrap();
        std::fs::write(temp.path().join("outside.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(temp.path().join("outside.txt"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(temp.path(), root.join("escape_dir")).unwrap();
        std::os::unix::fs::symlink(root.join(".github"), root.join("gh")).unwrap();
        (temp, root)
    }

    #[tokio::test]
    async fn paths_outside_the_checkout_are_refused_for_every_tool() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        let cases = [
            ("read_file", json!({"path": "../outside.txt"})),
            ("read_file", json!({"path": "/etc/passwd"})),
            ("read_file", json!({"path": "link"})),
            ("read_file", json!({"path": ".git/config"})),
            ("list_directory", json!({"path": "escape_dir"})),
            (
                "write_file",
                json!({"path": "escape_dir/new.txt", "content": "x"}),
            ),
            ("write_file", json!({"path": "link", "content": "x"})),
            (
                "edit_file",
                json!({"path": "../outside.txt", "old_text": "secret", "new_text": "x"}),
            ),
            (
                "search_text",
                json!({"pattern": "secret", "path": "escape_dir"}),
            ),
        ];
        for (tool, arguments) in cases {
            let outcome = workspace.call(tool, &arguments).await;
            assert!(outcome.is_error, "{tool} {arguments}: {outcome:?}");
        }
        assert_eq!(
            std::fs::read_to_string(root.join("../outside.txt")).unwrap(),
            "secret\n"
        );
    }

    #[tokio::test]
    async fn workflow_files_cannot_be_written_directly_or_through_a_symlink() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        for (tool, arguments) in [
            (
                "write_file",
                json!({"path": ".github/workflows/evil.yml", "content": "x"}),
            ),
            (
                "edit_file",
                json!({"path": ".github/workflows/ci.yml", "old_text": "push", "new_text": "x"}),
            ),
            (
                "write_file",
                json!({"path": "gh/workflows/ci.yml", "content": "x"}),
            ),
        ] {
            let outcome = workspace.call(tool, &arguments).await;
            assert!(outcome.is_error, "{tool}: {outcome:?}");
            assert!(
                outcome.output.contains(".github/workflows"),
                "{}",
                outcome.output
            );
        }
        assert_eq!(
            std::fs::read_to_string(root.join(".github/workflows/ci.yml")).unwrap(),
            "on: push\n"
        );
    }

    #[tokio::test]
    async fn edit_file_requires_exactly_one_match() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        let twice = workspace
            .call(
                "edit_file",
                &json!({"path": "src/lib.rs", "old_text": "fn a", "new_text": "fn z"}),
            )
            .await;
        assert!(
            twice.is_error && twice.output.contains("2 times"),
            "{twice:?}"
        );
        let missing = workspace
            .call(
                "edit_file",
                &json!({"path": "src/lib.rs", "old_text": "fn q", "new_text": "x"}),
            )
            .await;
        assert!(missing.is_error, "{missing:?}");
        let once = workspace
            .call(
                "edit_file",
                &json!({"path": "src/lib.rs", "old_text": "fn b()", "new_text": "fn c()"}),
            )
            .await;
        assert!(!once.is_error, "{once:?}");
        assert!(
            std::fs::read_to_string(root.join("src/lib.rs"))
                .unwrap()
                .contains("fn c()")
        );
    }

    #[tokio::test]
    async fn read_file_numbers_lines_and_honours_ranges() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        let outcome = workspace
            .call(
                "read_file",
                &json!({"path": "src/lib.rs", "start_line": 2, "end_line": 2}),
            )
            .await;
        assert_eq!(
            outcome.output,
            "2: fn b() {}\n[... 1 more lines; read on with start_line=3]"
        );
    }

    #[tokio::test]
    async fn write_creates_directories_and_list_and_search_find_it() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        let wrote = workspace
            .call(
                "write_file",
                &json!({"path": "docs/new/notes.md", "content": "needle here\n"}),
            )
            .await;
        assert!(!wrote.is_error, "{wrote:?}");
        let listing = workspace
            .call("list_directory", &json!({"path": "."}))
            .await;
        assert!(
            listing.output.contains("docs/") && !listing.output.contains(".git/"),
            "{}",
            listing.output
        );
        let found = workspace
            .call("search_text", &json!({"pattern": "needle"}))
            .await;
        assert_eq!(found.output, "docs/new/notes.md:1: needle here");
    }

    #[tokio::test]
    async fn run_command_reports_exit_code_and_is_killed_on_timeout() {
        let (_temp, root) = fixture();
        let workspace = workspace(&root);
        let failed = workspace
            .call(
                "run_command",
                &json!({"command": "echo out; echo err >&2; exit 3"}),
            )
            .await;
        assert!(failed.is_error);
        assert!(
            failed.output.starts_with("exit code 3\nout\nerr"),
            "{}",
            failed.output
        );
        let slow = workspace
            .call(
                "run_command",
                &json!({"command": "sleep 30", "timeout_seconds": 1}),
            )
            .await;
        assert!(slow.is_error && slow.output.contains("timeout"), "{slow:?}");
    }

    #[test]
    fn describe_call_names_the_target_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(
            describe_call("edit_file", &json!({"path": "src/lib.rs"})),
            "edit_file src/lib.rs"
        );
        assert_eq!(
            describe_call("list_directory", &json!({})),
            "list_directory"
        );
        let long = describe_call("run_command", &json!({"command": "é".repeat(300)}));
        assert!(long.len() <= 200 && long.starts_with("run_command é"));
    }

    #[tokio::test]
    async fn read_only_workspaces_refuse_writes() {
        let (_temp, root) = fixture();
        let scratch = root.join("../scratch");
        let workspace = Workspace::new(
            &root,
            None,
            false,
            ChildEnvironment::minimal(&scratch, &scratch),
            Duration::from_secs(5),
        )
        .unwrap();
        let outcome = workspace
            .call("write_file", &json!({"path": "a.txt", "content": "x"}))
            .await;
        assert!(outcome.is_error && outcome.output.contains("read-only"));
    }
}
