//! What a deploy depends on but cannot be run here (no Docker, no Cloudflare account, no GitHub
//! Actions): the runner-image workflow, the Dockerfile's variants, the version that wrangler.toml,
//! the workspace and the workflow must agree on, and the configuration table in
//! docs/configuration.md, checked against the code that reads each name.

use std::collections::BTreeSet;
use std::path::Path;

use cat_tests::repo_root;
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn workflow() -> Value {
    serde_yaml::from_str(&read(".github/workflows/runner-image.yml"))
        .expect("the runner-image workflow is valid YAML")
}

fn workspace_version() -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("[workspace.package] has a version")
        .to_owned()
}

fn steps(workflow: &Value) -> Vec<&Value> {
    workflow["jobs"]
        .as_mapping()
        .expect("jobs")
        .values()
        .flat_map(|job| job["steps"].as_sequence().expect("steps").iter())
        .collect()
}

#[test]
fn the_runner_image_workflow_publishes_both_variants_on_version_tags_only() {
    let workflow = workflow();
    // `on` is YAML 1.1's boolean true to some parsers; serde_yaml keeps it a string.
    let on = &workflow["on"];
    assert_eq!(
        on["push"]["tags"],
        serde_yaml::from_str::<Value>(r#"["v*.*.*"]"#).unwrap(),
        "only version tags publish"
    );
    assert!(on.get("pull_request").is_none() && on["push"].get("branches").is_none());

    // The least it needs: packages to push, contents to write the release notes. Nothing else.
    let permissions = workflow["permissions"]
        .as_mapping()
        .expect("explicit permissions");
    let granted: BTreeSet<(String, String)> = permissions
        .iter()
        .map(|(scope, level)| {
            (
                scope.as_str().unwrap().to_owned(),
                level.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([
            ("contents".to_owned(), "write".to_owned()),
            ("packages".to_owned(), "write".to_owned()),
        ])
    );
    for (_, job) in workflow["jobs"].as_mapping().unwrap() {
        assert!(job.get("permissions").is_none(), "no job widens them");
    }
    assert_eq!(workflow["env"]["REGISTRY"], "ghcr.io");

    let steps = steps(&workflow);
    // Every action is pinned to a released version, never a moving branch.
    for step in &steps {
        if let Some(action) = step["uses"].as_str() {
            let (_, reference) = action.split_once('@').expect("a pinned reference");
            assert!(
                reference.starts_with('v')
                    && reference[1..].starts_with(|c: char| c.is_ascii_digit()),
                "{action} is pinned to a version"
            );
        }
    }
    let builds: Vec<&&Value> = steps
        .iter()
        .filter(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|action| action.starts_with("docker/build-push-action@"))
        })
        .collect();
    let variants: BTreeSet<&str> = builds
        .iter()
        .map(|step| step["with"]["build-args"].as_str().expect("a VARIANT"))
        .collect();
    assert_eq!(variants, BTreeSet::from(["VARIANT=full", "VARIANT=slim"]));
    for build in &builds {
        let with = &build["with"];
        assert_eq!(with["file"], "container-image/Dockerfile");
        assert_eq!(with["platforms"], "linux/amd64,linux/arm64");
        assert_eq!(with["push"], true);
        let tags = with["tags"].as_str().unwrap();
        assert!(
            tags.contains("steps.version.outputs.version") && !tags.contains("latest"),
            "an immutable version tag, never latest: {tags}"
        );
    }
    // A published version is never overwritten, and the notes carry the digests.
    let scripts: String = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert!(scripts.contains("already published"), "{scripts}");
    assert!(scripts.contains("FULL_DIGEST") && scripts.contains("SLIM_DIGEST"));
    assert!(scripts.contains("workspace version"));
}

#[test]
fn wrangler_deploys_the_published_runner_image_of_the_workspace_version() {
    let wrangler = read("wrangler.toml");
    let image = wrangler
        .lines()
        .find_map(|line| line.strip_prefix("# deploy-image = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("wrangler.toml names the published runner image on a deploy-image line");
    let (repository, tag) = image.rsplit_once(':').expect("a tagged image");
    assert!(
        repository.starts_with("ghcr.io/") && repository.ends_with("/cat-factory-runner"),
        "{image}"
    );
    assert_eq!(
        tag,
        workspace_version(),
        "deploys use the runner of this version (scripts/bump-runner-image moves both)"
    );
    assert_eq!(workflow()["env"]["IMAGE_NAME"], "cat-factory-runner");
}

#[test]
fn the_dockerfile_builds_a_full_and_a_slim_runner_with_job_users_and_a_health_check() {
    let dockerfile = read("container-image/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    assert!(instructions.contains(&"ARG VARIANT=full"));
    for stage in ["AS runtime-slim", "AS runtime-full"] {
        assert!(
            instructions
                .iter()
                .any(|line| line.starts_with("FROM ") && line.ends_with(stage)),
            "{stage}"
        );
    }
    assert!(instructions.contains(&"FROM runtime-${VARIANT} AS runner"));
    // Every base image is pinned to a version (an ARG or a literal tag), never `latest` or untagged.
    for from in instructions.iter().filter(|line| line.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).unwrap();
        if image.starts_with("runtime-") {
            continue;
        }
        let (_, tag) = image
            .split_once(':')
            .unwrap_or_else(|| panic!("{from} is untagged"));
        assert!(!tag.contains("latest"), "{from}");
    }
    for toolchain in [
        "python3-venv",
        "python3-pip",
        "build-essential",
        "FROM node:${NODE_VERSION}",
        "corepack prepare \"pnpm@${PNPM_VERSION}\" \"yarn@${YARN_VERSION}\"",
        "FROM golang:${GO_VERSION}",
        "COPY --from=rust /usr/local/rustup",
        "git ca-certificates",
    ] {
        assert!(dockerfile.contains(toolchain), "the image has {toolchain}");
    }
    assert!(dockerfile.contains("cat-job-${index}"), "job users (ADR 4)");
    assert!(dockerfile.contains("HARNESS_JOB_USERS=cat-job-"));
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("CMD [\"cat-harness\", \"probe\"]"));
}

/// Names read by `env_value(…, "NAME")` in the worker, and `env = "NAME"` / `env::var("NAME")` of
/// the harness's own `HARNESS_*` settings.
fn names_read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    collect(
        &repo_root().join("worker/src"),
        &mut names,
        &|line: &str| line.find("env_value(").map(|at| &line[at..]),
    );
    collect(
        &repo_root().join("container-image/src"),
        &mut names,
        &|line: &str| {
            ["env = \"HARNESS_", "env::var(\"HARNESS_"]
                .iter()
                .find_map(|marker| line.find(marker).map(|at| &line[at..]))
        },
    );
    names
}

fn collect(dir: &Path, names: &mut BTreeSet<String>, reading: &dyn Fn(&str) -> Option<&str>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, names, reading);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some(call) = reading(line) else { continue };
            // The first string literal after the marker that looks like a variable name.
            let name: Option<String> = call.split('"').nth(1).map(str::to_owned);
            if let Some(name) = name.filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }) {
                names.insert(name);
            }
        }
    }
}

/// The names in the first column of docs/configuration.md's tables.
fn names_in_the_table() -> BTreeSet<String> {
    read("docs/configuration.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[test]
fn every_variable_the_code_reads_is_in_the_configuration_table_and_nothing_else_is() {
    let read_by_code = names_read_by_the_code();
    assert!(
        read_by_code.len() > 20 && read_by_code.contains("AUTH_MODE"),
        "the scan finds the worker's variables: {read_by_code:?}"
    );
    let table = names_in_the_table();
    let undocumented: Vec<&String> = read_by_code.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "read by the code but not in docs/configuration.md: {undocumented:?}"
    );
    // The deploy script's own settings are read by scripts/deploy; wrangler reads its token.
    let deploy_script = read("scripts/deploy");
    let unread: Vec<&String> = table
        .iter()
        .filter(|name| !read_by_code.contains(*name))
        .filter(|name| !deploy_script.contains(name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in docs/configuration.md but read by nothing: {unread:?}"
    );
}
