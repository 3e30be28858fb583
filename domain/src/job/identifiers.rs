//! Identifiers and names that travel in a job. Each is a newtype that validates when it is
//! deserialized, so the harness's logic only ever sees a safe id (it names a file), a branch that git
//! accepts and a clone URL that cannot smuggle in credentials or a command.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::paths::checked_relative_path;

/// Every work branch the harness pushes starts with this; it never pushes anything else.
pub const WORK_BRANCH_PREFIX: &str = "cat/";

/// Characters allowed in job and block ids: they end up in file names and branch names.
pub(super) fn is_id_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.')
}

fn validate_identifier(kind: &str, value: &str, max_len: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max_len {
        return Err(format!(
            "{kind} must be 1 to {max_len} characters long, got {} characters",
            value.len()
        ));
    }
    if let Some(bad) = value.chars().find(|character| !is_id_character(*character)) {
        return Err(format!(
            "{kind} {value:?} contains {bad:?}; use only ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    if value.starts_with(['.', '-']) || value.ends_with('.') || value.contains("..") {
        return Err(format!(
            "{kind} {value:?} must not start with '.' or '-', end with '.', or contain \"..\""
        ));
    }
    if value.ends_with(".lock") {
        return Err(format!("{kind} {value:?} must not end with \".lock\""));
    }
    Ok(())
}

macro_rules! validated_string_newtype {
    ($(#[$meta:meta])* $name:ident, $validate:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let validate: fn(&str) -> Result<(), String> = $validate;
                validate(&value)?;
                Ok($name(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;
            fn try_from(value: &str) -> Result<Self, String> {
                $name::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

validated_string_newtype!(
    /// A job's id. The worker makes it deterministic (`<run>-<step>-<attempt>`) so a replayed dispatch
    /// re-attaches; the harness uses it as a file name, hence the strict character set.
    JobId,
    |value| validate_identifier("job id", value, 128)
);

/// The parts of a deterministic job id `<run>-<step>-<attempt>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobAttempt {
    /// The run's id; it has no `-`, so the id splits back unambiguously.
    pub run: String,
    /// The pipeline step, e.g. `coder` or `tester-api` (a `-` is fine here).
    pub step: String,
    /// 0 for the first dispatch of the step, then 1, 2, ... for each retry.
    pub attempt: u32,
}

impl JobId {
    /// The deterministic id of one attempt of one run step, `<run>-<step>-<attempt>`. The run engine
    /// computes the same id when it replays a dispatch, so `POST /jobs` re-attaches to the job it
    /// already started instead of running the step twice.
    pub fn for_attempt(run: &str, step: &str, attempt: u32) -> Result<JobId, String> {
        if run.contains('-') {
            return Err(format!(
                "run id {run:?} must not contain '-': the job id <run>-<step>-<attempt> would not \
                 split back into its parts"
            ));
        }
        validate_identifier("run id", run, 60)?;
        validate_identifier("step", step, 40)?;
        JobId::try_from(format!("{run}-{step}-{attempt}"))
    }

    /// Splits a deterministic id back into run, step and attempt; `None` for an id of another shape
    /// (the harness accepts any safe id; only the run engine's are deterministic).
    pub fn attempt_parts(&self) -> Option<JobAttempt> {
        let (run, rest) = self.0.split_once('-')?;
        let (step, attempt) = rest.rsplit_once('-')?;
        if step.is_empty() || attempt.starts_with('+') {
            return None;
        }
        Some(JobAttempt {
            run: run.to_owned(),
            step: step.to_owned(),
            attempt: attempt.parse().ok()?,
        })
    }

    /// The id of the next attempt of the same step.
    pub fn next_attempt(&self) -> Option<JobId> {
        let parts = self.attempt_parts()?;
        JobId::for_attempt(&parts.run, &parts.step, parts.attempt.checked_add(1)?).ok()
    }
}

validated_string_newtype!(
    /// The board block a coding job works on, as the job protocol carries it (a string the harness
    /// checks; the board's own id type is `domain::ids::BlockId`); it names the work branch
    /// `cat/<block-id>`.
    JobBlockId,
    |value| validate_identifier("block id", value, 100)
);

validated_string_newtype!(
    /// A git branch name (without `refs/heads/`), checked against the rules of `git check-ref-format`
    /// that matter here, so it can never be read as an option or a revision expression.
    BranchName,
    validate_branch_name
);

validated_string_newtype!(
    /// Where the repository is cloned from: `https://`, `http://`, `file://` or an absolute local path.
    /// Credentials never go in the URL (git would store them in `.git/config`, which the agent can
    /// read); they travel in [`ForgeSpec`] and reach git only through a credential helper.
    CloneUrl,
    validate_clone_url
);

validated_string_newtype!(
    /// A path inside the repository, relative, with no `..`, used for the optional service sub-directory.
    RepoSubdirectory,
    |value| checked_relative_path(value).map(|_| ()).map_err(|problem| problem.to_string())
);

fn validate_branch_name(value: &str) -> Result<(), String> {
    let problem = if value.is_empty() || value.len() > 200 {
        Some("must be 1 to 200 characters long")
    } else if value.starts_with(['-', '/', '.']) || value.ends_with(['/', '.']) {
        Some("must not start with '-', '/' or '.', nor end with '/' or '.'")
    } else if value.contains("..") || value.contains("//") || value.contains("@{") {
        Some("must not contain \"..\", \"//\" or \"@{\"")
    } else if value.ends_with(".lock") || value.contains(".lock/") || value.contains("/.") {
        Some("must not have a component that starts with '.' or ends with \".lock\"")
    } else if value == "HEAD" || value == "@" {
        Some("must not be HEAD or @")
    } else if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        Some("must not contain whitespace, control characters or any of ~ ^ : ? * [ \\")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("branch name {value:?} {problem}")),
        None => Ok(()),
    }
}

fn validate_clone_url(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 2048 {
        return Err("clone URL must be 1 to 2048 characters long".to_owned());
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "clone URL {value:?} must not contain whitespace or control characters"
        ));
    }
    if value.starts_with('/') {
        return Ok(());
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(format!(
            "clone URL {value:?} must be an https://, http:// or file:// URL, or an absolute path"
        ));
    };
    if !matches!(scheme, "https" | "http" | "file") {
        return Err(format!(
            "clone URL scheme {scheme:?} is not allowed; use https, http or file (git transports such \
             as ext:: can run commands)"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "clone URL must not carry credentials (user:token@host): git would store them where the \
             agent can read them; put the token in forge.token instead"
                .to_owned(),
        );
    }
    Ok(())
}

/// A branch the harness may push: `cat/<block-id>`. There is no other way to make one, so a push to
/// the base branch (or anywhere else) cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkBranch(String);

impl WorkBranch {
    pub fn for_block(block: &JobBlockId) -> Self {
        WorkBranch(format!("{WORK_BRANCH_PREFIX}{block}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `refs/heads/cat/<block-id>`.
    pub fn full_ref(&self) -> String {
        format!("refs/heads/{}", self.0)
    }
}

impl TryFrom<String> for WorkBranch {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.strip_prefix(WORK_BRANCH_PREFIX) {
            Some(block) => {
                JobBlockId::try_from(block)?;
                Ok(WorkBranch(value))
            }
            None => Err(format!(
                "work branch {value:?} must start with {WORK_BRANCH_PREFIX}"
            )),
        }
    }
}

impl From<WorkBranch> for String {
    fn from(value: WorkBranch) -> String {
        value.0
    }
}

impl fmt::Display for WorkBranch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_branches_always_start_with_cat() {
        assert!(WorkBranch::try_from("main".to_owned()).is_err());
        assert!(WorkBranch::try_from("cat/../main".to_owned()).is_err());
        let branch = WorkBranch::try_from("cat/blk-1".to_owned()).unwrap();
        assert_eq!(
            branch,
            WorkBranch::for_block(&JobBlockId::try_from("blk-1").unwrap())
        );
    }

    #[test]
    fn deterministic_job_ids_are_built_and_split_back() {
        let id = JobId::for_attempt("run_0123abcd", "tester-api", 2).unwrap();
        assert_eq!(id.as_str(), "run_0123abcd-tester-api-2");
        assert_eq!(
            id.attempt_parts(),
            Some(JobAttempt {
                run: "run_0123abcd".to_owned(),
                step: "tester-api".to_owned(),
                attempt: 2
            })
        );
        assert_eq!(
            id.next_attempt().unwrap().as_str(),
            "run_0123abcd-tester-api-3"
        );
        assert_eq!(JobId::try_from("adhoc").unwrap().attempt_parts(), None);
        assert_eq!(JobId::try_from("a-b-c").unwrap().attempt_parts(), None);
    }

    #[test]
    fn deterministic_job_ids_refuse_parts_that_would_not_split_back() {
        assert!(
            JobId::for_attempt("run-1", "coder", 0)
                .unwrap_err()
                .contains("'-'")
        );
        assert!(JobId::for_attempt("run1", "", 0).is_err());
        assert!(JobId::for_attempt("run1", "a/b", 0).is_err());
        assert!(JobId::for_attempt("", "coder", 0).is_err());
    }
}
