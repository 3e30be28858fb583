//! git, run the harness's way. The agent works in a checkout of its own and may have changed
//! anything in it, including its `.git` (config, `commondir`, hooks, alternates, attributes), which git
//! would obey: hooks, `core.fsmonitor`, filter drivers and `core.sshCommand` run programs, and
//! `url.*.insteadOf` redirects a push (and its credential) to another host. So the harness never runs
//! git in the agent's repository once the agent has started. It keeps a clone of its own
//! ([`TrustedClone`], made before the agent starts, in a folder the agent cannot reach), copies the
//! agent's files into a fresh work tree (regular files and symlinks only, never a `.git`), and commits
//! and pushes from there: exactly one commit on the base commit. Every invocation also ignores global
//! and system config and disables hooks on the command line.
//!
//! The forge token reaches git only through a credential helper set with `-c`; the helper answers
//! only for the forge's own protocol and host, and reads the token from the environment of that one
//! git process (owned by the harness's user, which job users cannot read), never from the agent's
//! environment, a file, or the clone URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::job::{BranchName, Secret, WorkBranch};

use crate::command::{self, ChildEnvironment, CommandOutput, CommandSpec};

/// The variable the credential helper reads; set only on git processes that talk to the forge.
const TOKEN_VARIABLE: &str = "CAT_GIT_TOKEN";

const NETWORK_TIMEOUT: Duration = Duration::from_secs(600);
const LOCAL_TIMEOUT: Duration = Duration::from_secs(120);

/// A git credential helper (git runs `!` helpers with `sh`, appending the operation as `$1` and
/// describing the request on stdin). It answers `get` only when the request is for exactly the
/// forge's protocol and host, and ignores `store` and `erase`. `protocol` and `host` come from
/// [`credential_target`], which admits no shell metacharacters.
fn credential_helper(protocol: &str, host: &str) -> String {
    format!(
        "!f() {{ test \"$1\" = get || exit 0; p=; h=; \
         while IFS= read -r line && test -n \"$line\"; do case \"$line\" in \
         \"protocol={protocol}\") p=1;; \"host={host}\") h=1;; esac; done; \
         test -n \"$p\" && test -n \"$h\" || exit 0; \
         echo username=x-access-token; echo \"password=${{{TOKEN_VARIABLE}}}\"; }}; f"
    )
}

/// The options every harness git invocation starts with.
fn hardening_options(helper: Option<&str>) -> Vec<String> {
    let mut options: Vec<String> = [
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        "core.sshCommand=false",
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
    if let Some(helper) = helper {
        options.push("-c".to_owned());
        options.push(format!("credential.helper={helper}"));
    }
    options
}

/// The scratch directories git (and the agent) may use as HOME and TMPDIR.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub home: PathBuf,
    pub tmp: PathBuf,
}

fn git_environment(scratch: &Scratch, token: Option<&Secret>) -> ChildEnvironment {
    let environment = ChildEnvironment::minimal(&scratch.home, &scratch.tmp)
        .with("GIT_CONFIG_NOSYSTEM", "1")
        .with("GIT_CONFIG_GLOBAL", "/dev/null")
        .with("GIT_AUTHOR_NAME", "cat-factory")
        .with("GIT_AUTHOR_EMAIL", "cat-factory@users.noreply.local")
        .with("GIT_COMMITTER_NAME", "cat-factory")
        .with("GIT_COMMITTER_EMAIL", "cat-factory@users.noreply.local");
    match token {
        Some(token) => environment.with(TOKEN_VARIABLE, token.expose()),
        None => environment,
    }
}

/// Runs git with the hardening options; `Err` carries git's own words (which never include the
/// token: git does not print credential helper output). `credential` is the token and the URL it is
/// for; the helper is installed only when that URL is an http(s) one.
pub async fn run_git(
    working_directory: &Path,
    scratch: &Scratch,
    credential: Option<(&Secret, &str)>,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, String> {
    let scoped = credential.and_then(|(token, url)| {
        credential_target(url).map(|(protocol, host)| (token, credential_helper(&protocol, &host)))
    });
    let spec = CommandSpec::new(
        "git",
        working_directory,
        git_environment(scratch, scoped.as_ref().map(|(token, _)| *token)),
    )
    .args(hardening_options(
        scoped.as_ref().map(|(_, helper)| helper.as_str()),
    ))
    .args(args.iter().copied())
    .timeout(timeout);
    let output = command::run(spec)
        .await
        .map_err(|error| format!("could not start git: {error}"))?;
    let subcommand = args
        .iter()
        .find(|arg| !arg.starts_with("--"))
        .copied()
        .unwrap_or_default();
    if output.succeeded() {
        Ok(output)
    } else if output.timed_out {
        Err(format!("git {subcommand} timed out"))
    } else {
        Err(format!("git {subcommand} failed: {}", output.stderr.trim()))
    }
}

/// The protocol and host (with port) git's credential protocol names for `url`, when it is an
/// http(s) URL git would ask a credential for.
pub fn credential_target(url: &str) -> Option<(String, String)> {
    let (protocol, rest) = url.split_once("://")?;
    if protocol != "https" && protocol != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || !authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return None;
    }
    Some((protocol.to_owned(), authority.to_ascii_lowercase()))
}

/// The harness's own clone: made before the agent starts, in a folder only the harness can reach, with
/// no work tree of its own. Commits are made here from a copy of the agent's files, and pushed from
/// here, so nothing the agent did to its git directory has any effect.
pub struct TrustedClone {
    git_dir: PathBuf,
    scratch: Scratch,
}

impl TrustedClone {
    /// Clones `base_branch` of `url` into `destination` (which must not exist) without a work tree,
    /// and fills the index from the base commit. Returns the clone and the base commit.
    pub async fn create(
        url: &str,
        base_branch: &BranchName,
        destination: &Path,
        scratch: &Scratch,
        credential: Option<&Secret>,
    ) -> Result<(Self, String), String> {
        let parent = destination.parent().unwrap_or(Path::new("/"));
        let destination_text = destination.display().to_string();
        run_git(
            parent,
            scratch,
            credential.map(|token| (token, url)),
            &[
                "clone",
                "--quiet",
                "--no-tags",
                "--single-branch",
                "--no-checkout",
                "--branch",
                base_branch.as_str(),
                "--",
                url,
                &destination_text,
            ],
            NETWORK_TIMEOUT,
        )
        .await?;
        let clone = TrustedClone {
            git_dir: destination.join(".git"),
            scratch: scratch.clone(),
        };
        clone.git(None, &["read-tree", "HEAD"]).await?;
        let base = clone
            .git(None, &["rev-parse", "--verify", "HEAD^{commit}"])
            .await?
            .stdout
            .trim()
            .to_owned();
        Ok((clone, base))
    }

    /// git with `--git-dir` pinned to this clone and, when given, `--work-tree`.
    async fn git(&self, work_tree: Option<&Path>, args: &[&str]) -> Result<CommandOutput, String> {
        let git_dir = format!("--git-dir={}", self.git_dir.display());
        let work_tree_option = work_tree.map(|tree| format!("--work-tree={}", tree.display()));
        let mut full: Vec<&str> = vec![&git_dir];
        if let Some(option) = &work_tree_option {
            full.push(option);
        }
        full.extend_from_slice(args);
        let directory = self.git_dir.parent().unwrap_or(Path::new("/"));
        run_git(directory, &self.scratch, None, &full, LOCAL_TIMEOUT).await
    }

    /// Makes the agent's checkout at `destination`: a full copy of this clone (no hard links, so the
    /// agent cannot reach this clone's objects), with `origin` pointing at `public_url`.
    pub async fn make_agent_checkout(
        &self,
        base_branch: &BranchName,
        destination: &Path,
        public_url: &str,
    ) -> Result<(), String> {
        let source = self.git_dir.display().to_string();
        let destination_text = destination.display().to_string();
        let parent = destination.parent().unwrap_or(Path::new("/"));
        run_git(
            parent,
            &self.scratch,
            None,
            &[
                "clone",
                "--quiet",
                "--no-hardlinks",
                "--no-tags",
                "--single-branch",
                "--branch",
                base_branch.as_str(),
                "--",
                &source,
                &destination_text,
            ],
            LOCAL_TIMEOUT,
        )
        .await?;
        // The agent's origin is the repository it came from, not this clone (which its user cannot
        // read anyway). Written directly when the URL needs no quoting: one git process less per job.
        let config_path = destination.join(".git/config");
        let config = tokio::fs::read_to_string(&config_path)
            .await
            .map_err(|error| format!("cannot read the checkout's config: {error}"))?;
        let cloned_from = format!("\turl = {source}\n");
        let plain = !public_url.is_empty()
            && !public_url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"\\;#".contains(c));
        if plain && config.matches(&cloned_from).count() == 1 {
            tokio::fs::write(
                &config_path,
                config.replace(&cloned_from, &format!("\turl = {public_url}\n")),
            )
            .await
            .map_err(|error| format!("cannot write the checkout's config: {error}"))
        } else {
            run_git(
                destination,
                &self.scratch,
                None,
                &["remote", "set-url", "origin", public_url],
                LOCAL_TIMEOUT,
            )
            .await
            .map(|_| ())
        }
    }

    /// The paths of `work_tree` that belong in a commit: what the base commit tracks (present or
    /// deleted) and every untracked file the repository's ignore rules do not exclude. git reads the
    /// agent's work tree here, but with this clone's git directory and configuration.
    pub async fn paths_to_commit(&self, work_tree: &Path) -> Result<Vec<String>, String> {
        let listing = self
            .git(
                Some(work_tree),
                &[
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                ],
            )
            .await?;
        let mut paths: Vec<String> = listing
            .stdout
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// `git status` of `work_tree` against the base commit, NUL-separated porcelain v1 (untracked
    /// files listed one by one, ignored ones left out), read with this clone's git directory and
    /// configuration and without writing its index (`--no-optional-locks`).
    pub async fn status_of(&self, work_tree: &Path) -> Result<String, String> {
        self.git(
            Some(work_tree),
            &[
                "--no-optional-locks",
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignored=no",
                "--no-renames",
            ],
        )
        .await
        .map(|output| output.stdout)
    }

    /// Stages `work_tree` (a copy the harness made) and commits it on the base commit; `None` when
    /// nothing differs from the base.
    pub async fn commit(&self, work_tree: &Path, message: &str) -> Result<Option<String>, String> {
        self.git(Some(work_tree), &["add", "--all"]).await?;
        let staged = self
            .git(
                Some(work_tree),
                &["diff", "--cached", "--name-only", "--no-renames", "-z"],
            )
            .await?;
        if staged.stdout.trim_matches('\0').is_empty() {
            return Ok(None);
        }
        self.git(
            Some(work_tree),
            &["commit", "--quiet", "--no-verify", "-m", message],
        )
        .await?;
        let commit = self
            .git(None, &["rev-parse", "--verify", "HEAD^{commit}"])
            .await?
            .stdout
            .trim()
            .to_owned();
        Ok(Some(commit))
    }

    /// The parent commits of `commit`.
    pub async fn parents(&self, commit: &str) -> Result<Vec<String>, String> {
        let listed = self
            .git(None, &["rev-list", "--parents", "-n", "1", commit])
            .await?;
        Ok(listed
            .stdout
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect())
    }

    /// Every path that differs between two commits (both sides of a rename, type changes included).
    pub async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>, String> {
        let listing = self
            .git(
                None,
                &["diff", "--name-only", "--no-renames", "-z", from, to],
            )
            .await?;
        Ok(listing
            .stdout
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// `git diff --numstat` between two commits.
    pub async fn numstat(&self, from: &str, to: &str) -> Result<String, String> {
        Ok(self
            .git(None, &["diff", "--numstat", "--no-renames", from, to])
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
        let git_dir = format!("--git-dir={}", self.git_dir.display());
        let output = run_git(
            self.git_dir.parent().unwrap_or(Path::new("/")),
            &self.scratch,
            credential.map(|token| (token, url)),
            &[&git_dir, "ls-remote", url, &full_ref],
            NETWORK_TIMEOUT,
        )
        .await?;
        Ok(output
            .stdout
            .lines()
            .find_map(|line| line.strip_suffix(&format!("\t{full_ref}")))
            .map(str::to_owned))
    }

    /// Pushes `commit` to `cat/<block>`, only if the remote branch is still at
    /// `expected_remote_commit` (or still absent): a concurrent writer makes the push fail rather than
    /// be overwritten. The destination is a [`WorkBranch`], so the base branch cannot be pushed.
    pub async fn push_work_branch(
        &self,
        url: &str,
        commit: &str,
        branch: &WorkBranch,
        expected_remote_commit: Option<&str>,
        credential: Option<&Secret>,
    ) -> Result<(), String> {
        let full_ref = branch.full_ref();
        let lease = format!(
            "--force-with-lease={full_ref}:{}",
            expected_remote_commit.unwrap_or("")
        );
        let refspec = format!("{commit}:{full_ref}");
        let git_dir = format!("--git-dir={}", self.git_dir.display());
        run_git(
            self.git_dir.parent().unwrap_or(Path::new("/")),
            &self.scratch,
            credential.map(|token| (token, url)),
            &[
                &git_dir,
                "push",
                "--quiet",
                "--no-verify",
                &lease,
                url,
                &refspec,
            ],
            NETWORK_TIMEOUT,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn credential_fill(url: &str, request: &str) -> CommandOutput {
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch {
            home: scratch_dir.path().to_owned(),
            tmp: scratch_dir.path().to_owned(),
        };
        let token = Secret::new("ghs_helper_test_token");
        let (protocol, host) = credential_target(url).unwrap();
        let spec = CommandSpec::new(
            "git",
            scratch_dir.path(),
            git_environment(&scratch, Some(&token)),
        )
        .args(hardening_options(Some(&credential_helper(
            &protocol, &host,
        ))))
        .args(["credential", "fill"])
        .stdin(request.as_bytes().to_vec())
        .timeout(Duration::from_secs(30));
        command::run(spec).await.unwrap()
    }

    #[tokio::test]
    async fn the_credential_helper_answers_the_forges_own_host_and_protocol() {
        let output = credential_fill(
            "https://github.example/acme/demo.git",
            "protocol=https\nhost=github.example\n\n",
        )
        .await;
        assert!(output.succeeded(), "{output:?}");
        assert!(output.stdout.contains("username=x-access-token"));
        assert!(output.stdout.contains("password=ghs_helper_test_token"));
    }

    #[tokio::test]
    async fn the_credential_helper_answers_no_other_host_port_or_protocol() {
        for request in [
            "protocol=https\nhost=attacker.example\n\n",
            "protocol=http\nhost=github.example\n\n",
            "protocol=https\nhost=github.example:8443\n\n",
            "protocol=https\nhost=127.0.0.1\n\n",
            "protocol=ssh\nhost=github.example\n\n",
        ] {
            let output = credential_fill("https://github.example/acme/demo.git", request).await;
            assert!(
                !output.stdout.contains("ghs_helper_test_token"),
                "{request:?}: {output:?}"
            );
        }
    }

    #[test]
    fn credential_targets_are_http_urls_with_a_plain_host() {
        assert_eq!(
            credential_target("https://GitHub.com/acme/demo.git"),
            Some(("https".to_owned(), "github.com".to_owned()))
        );
        assert_eq!(
            credential_target("http://127.0.0.1:8080/x.git"),
            Some(("http".to_owned(), "127.0.0.1:8080".to_owned()))
        );
        for url in [
            "/srv/git/demo.git",
            "file:///srv/git/demo.git",
            "ssh://git@github.com/acme/demo.git",
            "https://user@github.com/x.git",
            "https://github.com\";rm -rf;\"/x.git",
            "https:///x.git",
        ] {
            assert_eq!(credential_target(url), None, "{url}");
        }
    }
}
