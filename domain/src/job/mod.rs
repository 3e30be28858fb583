//! A harness job: what the worker sends to `POST /jobs`, and the view it reads back from
//! `GET /jobs/{id}`. Both ends use these types, so the payload cannot drift between them.
//!
//! Identifiers and URLs are newtypes that validate when they are deserialized: a job that reaches the
//! harness's logic already has a safe id (it names a file), a branch that git accepts and a clone URL
//! that cannot smuggle in credentials or a command.
//!
//! The module is split along its seams; everything is re-exported here, so callers write
//! `domain::job::Job` whatever file a type lives in.
//! - `identifiers`: job, block, branch and URL newtypes, and the `cat/<block>` work branch.
//! - `spec`: the job body (`Job` and its parts) and its cross-field rules.
//! - `paths`: paths confined to the checkout, and the protected ones.
//! - `failure`: the failure kinds and whether a retry could change them.
//! - `outcome`: how a job ends — the validation loop, repair rounds, guard-rail refusals.
//! - `view`: the job view, its progress, usage, result and validation report.
//! - `transcript`: the agent's transcript entries.
//! - `stall`: the stall detector.

mod failure;
mod identifiers;
mod outcome;
mod paths;
mod spec;
mod stall;
mod transcript;
mod view;

pub use failure::*;
pub use identifiers::*;
pub use outcome::*;
pub use paths::*;
pub use spec::*;
pub use stall::*;
pub use transcript::*;
pub use view::*;

#[cfg(test)]
mod test_fixtures {
    use serde_json::{Value, json};

    /// A complete, valid coding job body.
    pub fn job_json() -> Value {
        json!({
            "id": "run1-coder-0",
            "blockId": "blk_42",
            "mode": "coding",
            "repo": { "cloneUrl": "https://github.com/acme/app.git", "baseBranch": "main" },
            "systemPrompt": "You are a careful engineer.",
            "userPrompt": "Add a README.",
            "model": "gpt-test",
            "llm": { "baseUrl": "http://127.0.0.1:9/v1", "token": "llm-secret", "protocol": "openai" },
            "pullRequest": { "title": "Add a README", "body": "Adds one." },
            "forge": { "kind": "github", "apiBaseUrl": "https://api.github.com", "owner": "acme",
                       "repo": "app", "token": "ghs_secret" }
        })
    }
}
