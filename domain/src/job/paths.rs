//! Paths the agent names: confined to the checkout, and the protected ones the harness never writes.

use std::fmt;

/// Why a relative path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    Absolute,
    ParentComponent,
    GitDirectory,
    NulCharacter,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PathProblem::Empty => "the path is empty",
            PathProblem::Absolute => {
                "absolute paths are not allowed; use a path relative to the checkout"
            }
            PathProblem::ParentComponent => "\"..\" is not allowed; stay inside the checkout",
            PathProblem::GitDirectory => "the .git directory is off limits",
            PathProblem::NulCharacter => "the path contains a NUL character",
        })
    }
}

/// Splits a path relative to the checkout into its components, refusing anything that could leave
/// the checkout or touch git's own directory. `.` components are dropped; the empty result means the
/// checkout itself (from `"."`).
pub fn checked_relative_path(path: &str) -> Result<Vec<&str>, PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.contains('\0') {
        return Err(PathProblem::NulCharacter);
    }
    if path.starts_with('/') || path.starts_with('\\') || path.starts_with('~') {
        return Err(PathProblem::Absolute);
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(PathProblem::ParentComponent),
            ".git" => return Err(PathProblem::GitDirectory),
            other => components.push(other),
        }
    }
    Ok(components)
}

/// True for paths under `.github/workflows/`: a change there could run arbitrary code with the
/// repository's CI secrets, so the harness never writes or commits one. Compared case-insensitively
/// so a case-folding file system cannot sneak one past.
pub fn is_protected_path(relative_path: &str) -> bool {
    let normalized: Vec<String> = relative_path
        .split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .map(str::to_ascii_lowercase)
        .collect();
    normalized.len() >= 2 && normalized[0] == ".github" && normalized[1] == "workflows"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_that_leave_the_checkout_are_refused() {
        let cases: &[(&str, Result<Vec<&str>, PathProblem>)] = &[
            ("src/lib.rs", Ok(vec!["src", "lib.rs"])),
            ("./src//lib.rs", Ok(vec!["src", "lib.rs"])),
            (".", Ok(vec![])),
            ("", Err(PathProblem::Empty)),
            ("/etc/passwd", Err(PathProblem::Absolute)),
            ("~/.ssh", Err(PathProblem::Absolute)),
            ("src/../../x", Err(PathProblem::ParentComponent)),
            (".git/config", Err(PathProblem::GitDirectory)),
            ("sub/.git/hooks/pre-push", Err(PathProblem::GitDirectory)),
            ("a\0b", Err(PathProblem::NulCharacter)),
        ];
        for (path, expected) in cases {
            assert_eq!(&checked_relative_path(path), expected, "{path:?}");
        }
    }

    #[test]
    fn workflow_files_are_protected_in_any_spelling() {
        for path in [
            ".github/workflows/ci.yml",
            "./.github/workflows/x/y.yaml",
            ".GitHub/Workflows/ci.yml",
            ".github//workflows/ci.yml",
        ] {
            assert!(is_protected_path(path), "{path}");
        }
        for path in [
            ".github/CODEOWNERS",
            "github/workflows/ci.yml",
            "docs/.github/workflows",
        ] {
            assert!(!is_protected_path(path), "{path}");
        }
    }
}
