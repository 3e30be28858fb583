//! git, run the harness's way. The agent works in the checkout and may have changed anything in it,
//! including `.git/config` and `.git/hooks`, which git would obey (hooks, `core.fsmonitor`, filter
//! drivers and `url.*.insteadOf` all run commands or redirect pushes). So before the harness commits
//! and pushes it restores the configuration it saw right after cloning and removes hooks, and every
//! invocation ignores global and system config and disables hooks on the command line.
//!
//! The forge token reaches git only through a credential helper set with `-c` whose value reads an
//! environment variable that exists in that one git process, never in the agent's environment, on
//! disk, or in the clone URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::job::{BranchName, Secret, WorkBranch};

use crate::command::{self, ChildEnvironment, CommandOutput, CommandSpec};

/// The variable the credential helper reads; set only on git processes that talk to the remote.
const TOKEN_VARIABLE: &str = "CAT_GIT_TOKEN";

/// A git credential helper (git runs `!` helpers with `sh`, appending the operation as `$1`). It
/// answers `get` with the token from the environment and ignores `store` and `erase`.
const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || exit 0; echo username=x-access-token; \
                                 echo \"password=${CAT_GIT_TOKEN}\"; }; f";

const NETWORK_TIMEOUT: Duration = Duration::from_secs(600);
const LOCAL_TIMEOUT: Duration = Duration::from_secs(120);

/// The options every harness git invocation starts with.
fn hardening_options(credential: Option<&Secret>) -> Vec<String> {
    let mut options: Vec<String> = [
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        "commit.gpgsign=false",
        "tag.gpgsign=false",
        "protocol.ext.allow=never",
        "core.askPass=",
        // An empty value clears every helper configured so far, so only ours can answer.
        "credential.helper=",
    ]
    .iter()
    .flat_map(|option| ["-c".to_owned(), (*option).to_owned()])
    .collect();
    if credential.is_some() {
        options.push("-c".to_owned());
        options.push(format!("credential.helper={CREDENTIAL_HELPER}"));
    }
    options
}

/// The scratch directories git (and the agent) may use as HOME and TMPDIR.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub home: PathBuf,
    pub tmp: PathBuf,
}

fn git_environment(scratch: &Scratch, credential: Option<&Secret>) -> ChildEnvironment {
    let environment = ChildEnvironment::minimal(&scratch.home, &scratch.tmp)
        .with("GIT_CONFIG_NOSYSTEM", "1")
        .with("GIT_CONFIG_GLOBAL", "/dev/null")
        .with("GIT_AUTHOR_NAME", "cat-factory")
        .with("GIT_AUTHOR_EMAIL", "cat-factory@users.noreply.local")
        .with("GIT_COMMITTER_NAME", "cat-factory")
        .with("GIT_COMMITTER_EMAIL", "cat-factory@users.noreply.local");
    match credential {
        Some(token) => environment.with(TOKEN_VARIABLE, token.expose()),
        None => environment,
    }
}

/// Runs git with the hardening options; `Err` carries git's own words (which never include the
/// token: git does not print credential helper output).
pub async fn run_git(
    working_directory: &Path,
    scratch: &Scratch,
    credential: Option<&Secret>,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, String> {
    let spec = CommandSpec::new(
        "git",
        working_directory,
        git_environment(scratch, credential),
    )
    .args(hardening_options(credential))
    .args(args.iter().copied())
    .timeout(timeout);
    let output = command::run(spec)
        .await
        .map_err(|error| format!("could not start git: {error}"))?;
    if output.succeeded() {
        Ok(output)
    } else if output.timed_out {
        Err(format!("git {} timed out", args.first().unwrap_or(&"")))
    } else {
        Err(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            output.stderr.trim()
        ))
    }
}

/// Clones `base_branch` of `url` into `destination` (which must not exist).
pub async fn clone(
    url: &str,
    base_branch: &BranchName,
    destination: &Path,
    scratch: &Scratch,
    credential: Option<&Secret>,
) -> Result<(), String> {
    let parent = destination.parent().unwrap_or(Path::new("/"));
    let destination = destination.display().to_string();
    run_git(
        parent,
        scratch,
        credential,
        &[
            "clone",
            "--quiet",
            "--no-tags",
            "--single-branch",
            "--branch",
            base_branch.as_str(),
            "--",
            url,
            &destination,
        ],
        NETWORK_TIMEOUT,
    )
    .await
    .map(|_| ())
}

/// A checkout the harness cloned, with the configuration it had before the agent touched it.
pub struct Checkout {
    pub path: PathBuf,
    scratch: Scratch,
    trusted_config: Vec<u8>,
}

impl Checkout {
    /// Takes over a fresh clone, remembering its `.git/config` as the trusted one.
    pub async fn adopt(path: PathBuf, scratch: Scratch) -> Result<Self, String> {
        let trusted_config = tokio::fs::read(path.join(".git/config"))
            .await
            .map_err(|error| format!("cannot read the clone's .git/config: {error}"))?;
        Ok(Checkout {
            path,
            scratch,
            trusted_config,
        })
    }

    async fn git(&self, args: &[&str]) -> Result<CommandOutput, String> {
        run_git(&self.path, &self.scratch, None, args, LOCAL_TIMEOUT).await
    }

    pub async fn head_commit(&self) -> Result<String, String> {
        Ok(self
            .git(&["rev-parse", "HEAD"])
            .await?
            .stdout
            .trim()
            .to_owned())
    }

    /// Undoes whatever the agent did to git's own files: `.git` must still be a real directory, its
    /// config goes back to the one from the clone, and hooks and attribute overrides are removed.
    pub async fn restore_trusted_git_state(&self) -> Result<(), String> {
        let git_dir = self.path.join(".git");
        let metadata = tokio::fs::symlink_metadata(&git_dir)
            .await
            .map_err(|error| format!(".git is gone: {error}"))?;
        if !metadata.is_dir() {
            return Err(".git was replaced by something that is not a directory".to_owned());
        }
        tokio::fs::write(git_dir.join("config"), &self.trusted_config)
            .await
            .map_err(|error| format!("cannot restore .git/config: {error}"))?;
        for removable in ["hooks", "info/attributes"] {
            let path = git_dir.join(removable);
            let removal = match tokio::fs::symlink_metadata(&path).await {
                Ok(found) if found.is_dir() => tokio::fs::remove_dir_all(&path).await,
                Ok(_) => tokio::fs::remove_file(&path).await,
                Err(_) => Ok(()),
            };
            removal.map_err(|error| format!("cannot remove .git/{removable}: {error}"))?;
        }
        Ok(())
    }

    /// Stages every change and returns the paths that differ from `HEAD`.
    pub async fn stage_all(&self) -> Result<Vec<String>, String> {
        self.git(&["add", "--all"]).await?;
        let listing = self
            .git(&["diff", "--cached", "--name-only", "--no-renames", "-z"])
            .await?;
        Ok(listing
            .stdout
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect())
    }

    pub async fn commit(&self, message: &str) -> Result<String, String> {
        self.git(&["commit", "--quiet", "--no-verify", "-m", message])
            .await?;
        self.head_commit().await
    }

    /// `git diff --numstat` between two commits.
    pub async fn numstat(&self, from: &str, to: &str) -> Result<String, String> {
        Ok(self
            .git(&["diff", "--numstat", "--no-renames", from, to])
            .await?
            .stdout)
    }

    /// The commit the remote's branch points at, if the branch exists.
    pub async fn remote_branch_commit(
        &self,
        url: &str,
        branch: &WorkBranch,
        credential: Option<&Secret>,
    ) -> Result<Option<String>, String> {
        let full_ref = branch.full_ref();
        let output = run_git(
            &self.path,
            &self.scratch,
            credential,
            &["ls-remote", url, &full_ref],
            NETWORK_TIMEOUT,
        )
        .await?;
        Ok(output
            .stdout
            .lines()
            .find_map(|line| line.strip_suffix(&format!("\t{full_ref}")))
            .map(str::to_owned))
    }

    /// Pushes `HEAD` to `cat/<block>` on `url`, only if the remote branch is still at
    /// `expected_remote_commit` (or still absent): a concurrent writer makes the push fail rather than
    /// be overwritten. The destination is a [`WorkBranch`], so the base branch cannot be pushed.
    pub async fn push_work_branch(
        &self,
        url: &str,
        branch: &WorkBranch,
        expected_remote_commit: Option<&str>,
        credential: Option<&Secret>,
    ) -> Result<(), String> {
        let full_ref = branch.full_ref();
        let lease = format!(
            "--force-with-lease={full_ref}:{}",
            expected_remote_commit.unwrap_or("")
        );
        let refspec = format!("HEAD:{full_ref}");
        run_git(
            &self.path,
            &self.scratch,
            credential,
            &["push", "--quiet", "--no-verify", &lease, url, &refspec],
            NETWORK_TIMEOUT,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credential_helper_answers_git_with_the_token_from_its_own_environment() {
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch {
            home: scratch_dir.path().to_owned(),
            tmp: scratch_dir.path().to_owned(),
        };
        let token = Secret::new("ghs_helper_test_token");
        let spec = CommandSpec::new(
            "git",
            scratch_dir.path(),
            git_environment(&scratch, Some(&token)),
        )
        .args(hardening_options(Some(&token)))
        .args(["credential", "fill"])
        .stdin(b"protocol=https\nhost=github.example\n\n".to_vec())
        .timeout(Duration::from_secs(30));
        let output = command::run(spec).await.unwrap();
        assert!(output.succeeded(), "{output:?}");
        assert!(output.stdout.contains("username=x-access-token"));
        assert!(output.stdout.contains("password=ghs_helper_test_token"));
    }

    #[tokio::test]
    async fn without_a_credential_no_helper_answers() {
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch {
            home: scratch_dir.path().to_owned(),
            tmp: scratch_dir.path().to_owned(),
        };
        let spec = CommandSpec::new("git", scratch_dir.path(), git_environment(&scratch, None))
            .args(hardening_options(None))
            .args(["credential", "fill"])
            .stdin(b"protocol=https\nhost=github.example\n\n".to_vec())
            .timeout(Duration::from_secs(30));
        let output = command::run(spec).await.unwrap();
        // With no helper and prompts off, git refuses instead of asking a terminal.
        assert!(!output.stdout.contains("password="), "{output:?}");
    }
}
