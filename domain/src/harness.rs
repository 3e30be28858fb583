//! Wire types of the runner harness (`cat-harness serve`), shared with the worker that calls it.

use serde::{Deserialize, Serialize};

/// Header that carries the shared secret on every harness request except `GET /health`.
pub const SHARED_SECRET_HEADER: &str = "x-harness-secret";

/// `GET /health` on the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarnessHealth {
    pub status: String,
    pub version: String,
    /// What this harness can do (job modes, forges); the worker checks it before dispatching.
    pub capabilities: Vec<String>,
}

/// What `GET /health` lists in `capabilities`, so the worker can check before it dispatches.
pub const CAPABILITIES: &[&str] = &[
    "mode:explore",
    "mode:coding",
    "llm:openai",
    "llm:anthropic",
    "forge:github",
    "forge:local",
    "transcript",
];

/// True for a path whose change the harness never commits or pushes: anything under
/// `.github/workflows/` ([`crate::job::is_protected_path`]), and `.github` and `.github/workflows`
/// themselves, because a symlink or a file put in their place could carry a workflow past a check that
/// only looks under the folder. Case-insensitive, like [`crate::job::is_protected_path`].
pub fn is_guarded_path(relative_path: &str) -> bool {
    if crate::job::is_protected_path(relative_path) {
        return true;
    }
    let normalized: Vec<String> = relative_path
        .split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .map(str::to_ascii_lowercase)
        .collect();
    matches!(
        normalized.iter().map(String::as_str).collect::<Vec<_>>()[..],
        [".github"] | [".github", "workflows"]
    )
}

/// Where this runner lets jobs clone from and push to, set when the runner starts: a board member
/// must not be able to point it at the runner host's own repositories or at internal addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePolicy {
    /// Local paths and `file://` clone URLs, and the local forge: only for a runner started in the
    /// local-forge mode.
    pub allow_local_repositories: bool,
    /// Host names (no port, lowercase) that http(s) clone URLs and GitHub API base URLs may name.
    pub allowed_hosts: Vec<String>,
}

/// The host of an `http://` or `https://` URL, lowercase and without port or user info; `None` for
/// anything else.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_and_port = authority.rsplit('@').next()?;
    let host = if let Some(bracketed) = host_and_port.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        host_and_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl SourcePolicy {
    fn host_allowed(&self, url: &str) -> bool {
        url_host(url).is_some_and(|host| self.allowed_hosts.contains(&host))
    }

    /// What in `job` this runner refuses to clone from or push to (empty: nothing).
    pub fn problems(&self, job: &crate::job::Job) -> Vec<crate::job::FieldProblem> {
        let problem = |field: &str, text: String| crate::job::FieldProblem {
            field: field.to_owned(),
            problem: text,
        };
        let hosts = self.allowed_hosts.join(", ");
        let mut problems = Vec::new();
        let clone_url = job.repo.clone_url.as_str();
        let is_remote = clone_url.starts_with("https://") || clone_url.starts_with("http://");
        if is_remote {
            if !self.host_allowed(clone_url) {
                problems.push(problem(
                    "repo.cloneUrl",
                    format!("names a host this runner does not serve (allowed: {hosts}; HARNESS_ALLOWED_HOSTS)"),
                ));
            }
        } else if !self.allow_local_repositories {
            problems.push(problem(
                "repo.cloneUrl",
                "is a local path or file:// URL, which only a runner started for the local forge \
                 accepts (HARNESS_ALLOW_LOCAL_REPOS)"
                    .to_owned(),
            ));
        }
        match &job.forge {
            crate::job::ForgeSpec::Github { api_base_url, .. } => {
                if !self.host_allowed(api_base_url) {
                    problems.push(problem(
                        "forge.apiBaseUrl",
                        format!("names a host this runner does not serve (allowed: {hosts}; HARNESS_ALLOWED_HOSTS)"),
                    ));
                }
            }
            crate::job::ForgeSpec::Local { .. } => {
                if !self.allow_local_repositories {
                    problems.push(problem(
                        "forge.bareRepoPath",
                        "the local forge needs a runner started for it (HARNESS_ALLOW_LOCAL_REPOS)"
                            .to_owned(),
                    ));
                }
            }
        }
        problems
    }
}

/// The text that replaces a secret wherever the harness reports or stores output.
pub const REDACTED: &str = "[REDACTED]";

/// Compares two byte strings in time that depends only on their lengths, so a caller guessing the
/// shared secret learns nothing from how fast a wrong guess is refused.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |accumulated, (a, b)| accumulated | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// Replaces every known secret in a text with [`REDACTED`]. Built once per job from the job's
/// credentials (and the harness's shared secret) and applied to everything that leaves the harness:
/// transcripts, job views, logs, command output.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than this are ignored: replacing every "a" in a transcript protects nothing
    /// and destroys the text.
    pub const MIN_SECRET_LEN: usize = 6;

    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|secret| secret.len() >= Self::MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut redacted = text.to_owned();
        for secret in &self.secrets {
            if redacted.contains(secret.as_str()) {
                redacted = redacted.replace(secret.as_str(), REDACTED);
            }
        }
        redacted
    }

    /// Redacts every string inside a JSON value (tool-call arguments, for example).
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(self.redact(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, v)| (self.redact(key), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Shortens long command output to its head and tail (the start shows what ran, the end shows why it
/// failed), cutting on character boundaries and saying how much was left out.
pub fn truncate_middle(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let head_budget = max_bytes / 4;
    let tail_budget = max_bytes - head_budget;
    let mut head_end = head_budget;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - tail_budget;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n[... {} bytes omitted ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// How big a change is, as `git diff --numstat` counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffStat {
    pub files_changed: u32,
    pub insertions: u32,
    pub deletions: u32,
    pub files: Vec<String>,
}

impl DiffStat {
    /// Parses `git diff --numstat` output (`<added>\t<deleted>\t<path>`; `-` for binary files).
    pub fn from_numstat(numstat: &str) -> Self {
        let mut stat = DiffStat::default();
        for line in numstat.lines() {
            let mut fields = line.splitn(3, '\t');
            let (Some(added), Some(deleted), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            stat.files_changed += 1;
            stat.insertions += added.parse::<u32>().unwrap_or(0);
            stat.deletions += deleted.parse::<u32>().unwrap_or(0);
            stat.files.push(path.to_owned());
        }
        stat
    }
}

/// A pull request on the local forge: a pushed `cat/*` branch in a local bare repository plus this
/// record, so the whole pipeline runs without GitHub. `GET /forge/prs` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalPullRequest {
    pub number: u64,
    /// The bare repository the branch was pushed to.
    pub repository: String,
    pub title: String,
    pub body: String,
    pub branch: crate::job::WorkBranch,
    pub base: crate::job::BranchName,
    pub commit: String,
    pub diff_stat: DiffStat,
    pub job_id: crate::job::JobId,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl LocalPullRequest {
    /// The URL the job view reports for a local pull request.
    pub fn url(&self) -> String {
        format!("local-forge://{}#{}", self.repository, self.number)
    }
}

/// `GET /forge/prs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalPullRequestList {
    pub pull_requests: Vec<LocalPullRequest>,
}

/// `POST /forge/merge`: merge a local pull request's branch into its base branch, in the bare
/// repository (the local forge's "merge" button). Only a branch the forge opened a pull request for
/// can be merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalMergeRequest {
    /// The bare repository, as the pull request record names it.
    pub repository: String,
    pub branch: crate::job::WorkBranch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalMergeAnswer {
    pub base: crate::job::BranchName,
    /// The base branch's commit after the merge.
    pub commit: String,
    /// The base had not moved: the branch's commit became the base (no merge commit).
    pub fast_forward: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_drop_scheme_user_port_and_case() {
        assert_eq!(
            url_host("https://GitHub.com/a/b.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            url_host("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            url_host("https://u@evil.example:1/x").as_deref(),
            Some("evil.example")
        );
        assert_eq!(url_host("http://[::1]:9/x").as_deref(), Some("::1"));
        assert_eq!(url_host("file:///srv/x.git"), None);
        assert_eq!(url_host("/srv/x.git"), None);
    }

    #[test]
    fn the_source_policy_refuses_local_sources_and_unlisted_hosts() {
        let job: crate::job::Job = serde_json::from_value(serde_json::json!({
            "id": "j1", "blockId": "b1", "mode": "coding",
            "repo": { "cloneUrl": "/srv/git/demo.git", "baseBranch": "main" },
            "systemPrompt": "s", "userPrompt": "u", "model": "m",
            "llm": { "baseUrl": "https://llm.example/v1", "token": "tok-123456", "protocol": "openai" },
            "pullRequest": { "title": "t", "body": "b" },
            "forge": { "kind": "local", "bareRepoPath": "/srv/git/demo.git" }
        }))
        .unwrap();
        let strict = SourcePolicy {
            allow_local_repositories: false,
            allowed_hosts: vec!["github.com".to_owned(), "api.github.com".to_owned()],
        };
        let fields: Vec<String> = strict.problems(&job).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["repo.cloneUrl", "forge.bareRepoPath"]);
        let local = SourcePolicy {
            allow_local_repositories: true,
            ..strict.clone()
        };
        assert!(local.problems(&job).is_empty());

        let mut remote = job.clone();
        remote.repo.clone_url = "https://github.com/acme/demo.git".try_into().unwrap();
        remote.forge = crate::job::ForgeSpec::Github {
            api_base_url: "http://169.254.169.254".to_owned(),
            owner: "acme".to_owned(),
            repo: "demo".to_owned(),
            token: crate::job::Secret::new("ghs_123456"),
        };
        let fields: Vec<String> = strict
            .problems(&remote)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["forge.apiBaseUrl"]);
        remote.repo.clone_url = "https://github.com.evil.example/acme/demo.git"
            .try_into()
            .unwrap();
        assert!(
            strict
                .problems(&remote)
                .iter()
                .any(|p| p.field == "repo.cloneUrl")
        );
    }

    #[test]
    fn guarded_paths_are_workflows_and_the_folders_that_hold_them() {
        for guarded in [
            ".github",
            ".github/",
            ".GitHub",
            ".github/workflows",
            ".github/workflows/ci.yml",
            "./.GITHUB/Workflows/x.yml",
        ] {
            assert!(is_guarded_path(guarded), "{guarded}");
        }
        for free in [
            ".github/CODEOWNERS",
            ".github/dependabot.yml",
            "docs/.github",
            "workflows/ci.yml",
            "github",
        ] {
            assert!(!is_guarded_path(free), "{free}");
        }
    }

    #[test]
    fn constant_time_eq_matches_only_identical_bytes() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn redactor_replaces_every_secret_and_prefers_the_longest() {
        let redactor = Redactor::new(["tok_abcdef", "tok_abcdef_long", "short"]);
        assert_eq!(
            redactor.redact("a tok_abcdef_long b tok_abcdef c short"),
            "a [REDACTED] b [REDACTED] c short"
        );
    }

    #[test]
    fn redactor_reaches_into_json() {
        let redactor = Redactor::new(["sk-123456"]);
        let value = serde_json::json!({"cmd": ["echo", "sk-123456"], "sk-123456": 1, "n": 2});
        let redacted = redactor.redact_json(&value).to_string();
        assert!(!redacted.contains("sk-123456"), "{redacted}");
        assert!(redacted.contains("\"n\":2"));
    }

    #[test]
    fn truncate_middle_keeps_head_and_tail_on_char_boundaries() {
        assert_eq!(truncate_middle("short", 100), "short");
        let text = format!("{}{}", "é".repeat(100), "END");
        let truncated = truncate_middle(&text, 40);
        assert!(truncated.ends_with("END"));
        assert!(truncated.starts_with('é'));
        assert!(truncated.contains("bytes omitted"));
    }

    #[test]
    fn diff_stat_parses_numstat_including_binary_files() {
        let stat = DiffStat::from_numstat("3\t1\tsrc/lib.rs\n-\t-\tlogo.png\n10\t0\tREADME.md\n");
        assert_eq!(stat.files_changed, 3);
        assert_eq!(stat.insertions, 13);
        assert_eq!(stat.deletions, 1);
        assert_eq!(stat.files, ["src/lib.rs", "logo.png", "README.md"]);
    }
}
