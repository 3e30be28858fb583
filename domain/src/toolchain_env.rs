//! The environment an agent's and a validation's commands get. It starts empty (nothing of the
//! harness's own environment leaks, so no credential can), then gets:
//!
//! 1. the harness's basics: `PATH`, a scratch `HOME` and `TMPDIR` in the job's folder, a UTF-8 locale;
//! 2. the **toolchain allowlist**: variables that *locate* a toolchain (rustup's `RUSTUP_HOME`, nvm's
//!    `NVM_DIR`, pyenv's `PYENV_ROOT`, Go's `GOROOT`, ...), copied from the harness's environment
//!    when set there. Version managers default them to `~/.rustup`, `~/.nvm`, ... — under the
//!    harness's real home, which the scratch `HOME` hides — so when one is unset and that folder
//!    exists, it is passed explicitly;
//! 3. **per-job caches**: `CARGO_HOME`, `GOPATH`, `GOCACHE`, npm's and pip's caches and
//!    `XDG_CACHE_HOME` point into the job's folder: writable, shared by every command of the job,
//!    gone with the job (an agent cannot poison a cache a later job trusts).
//!
//! The allowlist is configurable per runner (`--toolchain-env` / `HARNESS_TOOLCHAIN_ENV`), but a
//! name that looks like a credential, or one the harness sets itself, is refused, and a value that
//! carries a password in a URL is dropped.

/// Variables passed through when the runner does not configure its own list.
pub const DEFAULT_TOOLCHAIN_VARIABLES: &[&str] = &[
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOROOT",
    "GOTOOLCHAIN",
    "COREPACK_HOME",
    "NVM_DIR",
    "NVM_BIN",
    "NVM_INC",
    "VOLTA_HOME",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "JAVA_HOME",
    "SDKMAN_DIR",
    "ASDF_DIR",
    "ASDF_DATA_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TZ",
];

/// Toolchain homes whose version manager defaults them to a folder in the user's home.
const HOME_DEFAULTS: &[(&str, &str)] = &[
    ("RUSTUP_HOME", ".rustup"),
    ("NVM_DIR", ".nvm"),
    ("VOLTA_HOME", ".volta"),
    ("PYENV_ROOT", ".pyenv"),
    ("SDKMAN_DIR", ".sdkman"),
    ("ASDF_DATA_DIR", ".asdf"),
];

/// Cache variables and the folder (under the job's cache folder) each one gets.
pub const JOB_CACHE_VARIABLES: &[(&str, &str)] = &[
    ("CARGO_HOME", "cargo"),
    ("GOPATH", "go"),
    ("GOCACHE", "go-build"),
    ("npm_config_cache", "npm"),
    ("YARN_CACHE_FOLDER", "yarn"),
    ("PIP_CACHE_DIR", "pip"),
    ("XDG_CACHE_HOME", "xdg"),
];

/// Set by the harness itself; an allowlist must not override them.
const SET_BY_THE_HARNESS: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "GIT_TERMINAL_PROMPT"];

/// Parts of a name that mark a credential (compared upper-case).
const CREDENTIAL_MARKERS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE",
    "SESSION",
    "COOKIE",
    "ASKPASS",
];

/// Names that change how every program or shell starts: allowing one would let the runner's
/// environment inject code into every command.
const CODE_INJECTION: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "RUSTC_WRAPPER",
];

/// Why a variable name cannot be on the allowlist, or `Ok`.
pub fn check_allowlisted_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_')
        || name.starts_with(|character: char| character.is_ascii_digit())
    {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and '_', not starting with a digit)"
        ));
    }
    let upper = name.to_ascii_uppercase();
    if SET_BY_THE_HARNESS.contains(&upper.as_str()) {
        return Err(format!(
            "{name} is set by the harness for every command and cannot be passed through"
        ));
    }
    if CODE_INJECTION.contains(&upper.as_str()) {
        return Err(format!(
            "{name} changes how every program starts; it is never passed to agent commands"
        ));
    }
    if let Some(marker) = CREDENTIAL_MARKERS
        .iter()
        .find(|marker| upper.contains(*marker))
        .or_else(|| upper.ends_with("_KEY").then_some(&"_KEY"))
    {
        return Err(format!(
            "{name} looks like a credential (it contains {marker}); credentials never reach agent \
             commands"
        ));
    }
    Ok(())
}

/// Parses a runner's allowlist (`NAME,NAME` or whitespace-separated), checking every name.
pub fn parse_allowlist(text: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = text
        .split(|character: char| character == ',' || character.is_whitespace())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    let problems: Vec<String> = names
        .iter()
        .filter_map(|name| check_allowlisted_name(name).err())
        .collect();
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(problems.join("; "))
    }
}

/// True when a value carries a password in a URL (`https://user:secret@host`).
pub fn value_carries_a_password(value: &str) -> bool {
    value.split("://").skip(1).any(|after_scheme| {
        let authority = after_scheme
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(user_info, _)| user_info.contains(':'))
    })
}

/// What the allowlist resolved to: the variables to set, and the names left out (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolchainEnvironment {
    pub variables: Vec<(String, String)>,
    pub dropped: Vec<(String, String)>,
}

/// Resolves the allowlist against the harness's environment. `lookup` reads one of the harness's
/// variables; `harness_home` is the harness's own `HOME`; `is_directory` says whether a path is a
/// folder (the shell checks the disk).
pub fn resolve_toolchain_environment(
    allowlist: &[String],
    lookup: impl Fn(&str) -> Option<String>,
    harness_home: Option<&str>,
    is_directory: impl Fn(&str) -> bool,
) -> ToolchainEnvironment {
    let mut resolved = ToolchainEnvironment::default();
    for name in allowlist {
        if let Err(problem) = check_allowlisted_name(name) {
            resolved.dropped.push((name.clone(), problem));
            continue;
        }
        let value = lookup(name).filter(|value| !value.is_empty()).or_else(|| {
            let (_, folder) = HOME_DEFAULTS.iter().find(|(known, _)| known == name)?;
            let home = harness_home.filter(|home| !home.is_empty())?;
            let candidate = format!("{}/{folder}", home.trim_end_matches('/'));
            is_directory(&candidate).then_some(candidate)
        });
        match value {
            Some(value) if value_carries_a_password(&value) => resolved.dropped.push((
                name.clone(),
                "its value carries a password in a URL".to_owned(),
            )),
            Some(value) => resolved.variables.push((name.clone(), value)),
            None => {}
        }
    }
    resolved
}

/// The per-job cache variables for a job whose cache folder is `cache_root`.
pub fn job_cache_environment(cache_root: &str) -> Vec<(String, String)> {
    let root = cache_root.trim_end_matches('/');
    JOB_CACHE_VARIABLES
        .iter()
        .map(|(name, folder)| ((*name).to_owned(), format!("{root}/{folder}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allowlist_passes_its_own_checks() {
        for name in DEFAULT_TOOLCHAIN_VARIABLES {
            assert_eq!(check_allowlisted_name(name), Ok(()), "{name}");
        }
        for (name, _) in JOB_CACHE_VARIABLES {
            assert_eq!(check_allowlisted_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn credentials_harness_variables_and_injection_points_are_refused() {
        for name in [
            "GITHUB_TOKEN",
            "HARNESS_SHARED_SECRET",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "NPM_AUTH",
            "OPENAI_API_KEY",
            "anthropic_api_key",
            "SIGNING_KEY",
            "DB_PASSWORD",
            "GIT_ASKPASS",
            "SSH_AUTH_SOCK",
            "PATH",
            "HOME",
            "LD_PRELOAD",
            "BASH_ENV",
            "NODE_OPTIONS",
            "",
            "A-B",
            "1X",
        ] {
            assert!(check_allowlisted_name(name).is_err(), "{name}");
        }
        let error = parse_allowlist("RUSTUP_HOME, GITHUB_TOKEN").unwrap_err();
        assert!(
            error.contains("GITHUB_TOKEN") && error.contains("credential"),
            "{error}"
        );
        assert_eq!(
            parse_allowlist("RUSTUP_HOME,GOROOT  JAVA_HOME").unwrap(),
            ["RUSTUP_HOME", "GOROOT", "JAVA_HOME"]
        );
    }

    #[test]
    fn version_manager_homes_default_to_the_harness_home_when_the_folder_exists() {
        let allowlist: Vec<String> = ["RUSTUP_HOME", "NVM_DIR", "GOROOT", "PYENV_ROOT", "TZ"]
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        let environment = resolve_toolchain_environment(
            &allowlist,
            |name| match name {
                "GOROOT" => Some("/usr/lib/go".to_owned()),
                "PYENV_ROOT" => Some("/opt/pyenv".to_owned()),
                _ => None,
            },
            Some("/root/"),
            |path| path == "/root/.rustup",
        );
        assert_eq!(
            environment.variables,
            [
                ("RUSTUP_HOME".to_owned(), "/root/.rustup".to_owned()),
                ("GOROOT".to_owned(), "/usr/lib/go".to_owned()),
                ("PYENV_ROOT".to_owned(), "/opt/pyenv".to_owned()),
            ]
        );
        assert!(environment.dropped.is_empty());
    }

    #[test]
    fn values_with_a_password_in_a_url_are_dropped() {
        assert!(value_carries_a_password(
            "https://user:hunter2@proxy.example/go"
        ));
        assert!(!value_carries_a_password("https://proxy.example/go,direct"));
        assert!(!value_carries_a_password("https://user@host/x"));
        assert!(!value_carries_a_password("/usr/lib/go"));
        let environment = resolve_toolchain_environment(
            &["GOROOT".to_owned(), "GITHUB_TOKEN".to_owned()],
            |_| Some("https://me:secret@host".to_owned()),
            None,
            |_| false,
        );
        assert!(environment.variables.is_empty());
        assert_eq!(environment.dropped.len(), 2);
    }

    #[test]
    fn job_caches_live_under_the_job_folder() {
        let caches = job_cache_environment("/state/work/job-1/cache/");
        assert!(caches.contains(&(
            "CARGO_HOME".to_owned(),
            "/state/work/job-1/cache/cargo".to_owned()
        )));
        assert_eq!(caches.len(), JOB_CACHE_VARIABLES.len());
    }
}
