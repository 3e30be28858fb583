//! The runner port's adapters (`worker_core::runner::Runner`, ADR 14).
//!
//! - **HTTP runner**: a `cat-harness serve` at `RUNNER_URL`, authenticated with the
//!   `RUNNER_SHARED_SECRET` secret in `x-harness-secret` (what `scripts/dev` starts locally).
//! - **Cloudflare Container**: the `RunnerContainer` Durable Object class (Container-enabled in
//!   wrangler.toml, image from `container-image/Dockerfile`), one container per run: the adapter
//!   sends the same requests to the object named by the run id, which forwards them to the
//!   container's port. It cannot start without Docker; `RUNNER_KIND=container` selects it.
//!
//! Both speak the harness's job API; what an answer means for the run is
//! `worker_core::runner::input_for`.

use domain::api::{ApiError, ErrorCode};
use domain::harness::{LocalMergeAnswer, LocalMergeRequest, SHARED_SECRET_HEADER};
use domain::job::{Job, JobId, JobView, WorkBranch};
use domain::run::RunRepository;
use worker::{
    DurableObject, Env, Fetch, Headers, Method, Request, RequestInit, Response, Result, State,
    durable_object,
};
use worker_core::runner::{Runner, RunnerError};

use crate::auth::env_value;

/// The binding of the Container-enabled Durable Object class.
pub const CONTAINER_BINDING: &str = "RUNNER_CONTAINER";
/// The port `cat-harness serve` listens on inside the runner image.
pub const CONTAINER_PORT: u16 = 8080;

enum Transport {
    Http { base_url: String },
    Container { stub: worker::Stub },
}

/// A runner for one run.
pub struct HarnessRunner {
    transport: Transport,
    secret: String,
}

/// The runner this deployment is configured with, for the run `run_id`; `None` with the reason when
/// it has none.
pub fn for_run(env: &Env, run_id: &str) -> std::result::Result<HarnessRunner, String> {
    let secret = env_value(env, "RUNNER_SHARED_SECRET")
        .ok_or("the RUNNER_SHARED_SECRET secret is not set")?;
    let kind = env_value(env, "RUNNER_KIND").unwrap_or_else(|| "http".to_owned());
    let transport = match kind.as_str() {
        "container" => {
            let stub = env
                .durable_object(CONTAINER_BINDING)
                .and_then(|namespace| namespace.get_by_name(run_id))
                .map_err(|error| format!("the {CONTAINER_BINDING} binding: {error}"))?;
            Transport::Container { stub }
        }
        _ => {
            let base_url =
                env_value(env, "RUNNER_URL").ok_or("the RUNNER_URL variable is not set")?;
            Transport::Http {
                base_url: base_url.trim_end_matches('/').to_owned(),
            }
        }
    };
    Ok(HarnessRunner { transport, secret })
}

impl HarnessRunner {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> std::result::Result<(u16, String), RunnerError> {
        let unavailable = |error: worker::Error| RunnerError::Unavailable(error.to_string());
        let headers = Headers::new();
        headers
            .set(SHARED_SECRET_HEADER, &self.secret)
            .map_err(unavailable)?;
        headers
            .set("content-type", "application/json")
            .map_err(unavailable)?;
        let mut init = RequestInit::new();
        init.with_method(method)
            .with_headers(headers)
            .with_body(body.map(Into::into));
        let url = match &self.transport {
            Transport::Http { base_url } => format!("{base_url}{path}"),
            Transport::Container { .. } => format!("http://runner.internal{path}"),
        };
        let request = Request::new_with_init(&url, &init).map_err(unavailable)?;
        let mut response = match &self.transport {
            Transport::Http { .. } => Fetch::Request(request).send().await,
            Transport::Container { stub } => stub.fetch_with_request(request).await,
        }
        .map_err(unavailable)?;
        let status = response.status_code();
        let text = response.text().await.map_err(unavailable)?;
        Ok((status, text))
    }

    async fn view(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> std::result::Result<JobView, RunnerError> {
        let (status, text) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(RunnerError::from_status(status, &text));
        }
        serde_json::from_str(&text).map_err(|error| {
            RunnerError::Unavailable(format!(
                "the runner answered a job view that does not parse: {error}"
            ))
        })
    }
}

impl Runner for HarnessRunner {
    async fn dispatch(&self, job: &Job) -> std::result::Result<JobView, RunnerError> {
        let body = serde_json::to_string(job)
            .map_err(|error| RunnerError::Unavailable(format!("job body: {error}")))?;
        self.view(Method::Post, "/jobs", Some(body)).await
    }

    async fn poll(&self, job_id: &JobId) -> std::result::Result<JobView, RunnerError> {
        self.view(Method::Get, &format!("/jobs/{}", job_id.as_str()), None)
            .await
    }

    async fn cancel(&self, job_id: &JobId) -> std::result::Result<(), RunnerError> {
        let (status, text) = self
            .send(Method::Delete, &format!("/jobs/{}", job_id.as_str()), None)
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(RunnerError::from_status(status, &text))
        }
    }
}

/// The Container-enabled Durable Object: one per run (named by the run id). It starts the runner
/// image's `cat-harness serve` on first use and forwards every request to it.
#[durable_object]
pub struct RunnerContainer {
    state: State,
    env: Env,
}

impl DurableObject for RunnerContainer {
    fn new(state: State, env: Env) -> Self {
        RunnerContainer { state, env }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let Some(container) = self.state.container() else {
            return Response::error(
                "this Durable Object has no container (is RUNNER_CONTAINER Container-enabled?)",
                503,
            );
        };
        if !container.running() {
            let mut options = worker::ContainerStartupOptions::new();
            if let Some(secret) = env_value(&self.env, "RUNNER_SHARED_SECRET") {
                options.add_env("HARNESS_SHARED_SECRET", &secret);
            }
            options.enable_internet(true);
            container.start(Some(options))?;
        }
        container
            .get_tcp_port(CONTAINER_PORT)?
            .fetch_request(request)
            .await
    }
}

/// Merges a local pull request on the runner that hosts the local forge (`POST /forge/merge`): the
/// worker cannot run git, the runner's forge root holds the bare repositories.
pub async fn merge_local(
    env: &Env,
    run_id: &str,
    repository: &RunRepository,
    branch: &str,
) -> std::result::Result<LocalMergeAnswer, ApiError> {
    let RunRepository::Local { bare_repo_path, .. } = repository else {
        // A GitHub pull request is merged on GitHub; its `pull_request` webhook marks the task done.
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "This task's pull request is on GitHub: merge it there; the board follows its webhook.",
        )
        .with_details(serde_json::json!({ "reason": "merge_on_github" })));
    };
    let branch = WorkBranch::try_from(branch.to_owned()).map_err(|_| ApiError::internal())?;
    let body = serde_json::to_string(&LocalMergeRequest {
        repository: bare_repo_path.clone(),
        branch,
    })
    .map_err(|_| ApiError::internal())?;
    let unavailable = |detail: String| {
        worker::console_error!("local forge merge: {detail}");
        ApiError::new(
            ErrorCode::Unavailable,
            "The runner that hosts the local forge did not answer; try again in a moment.",
        )
    };
    let runner = for_run(env, run_id).map_err(unavailable)?;
    let (status, text) = runner
        .send(Method::Post, "/forge/merge", Some(body))
        .await
        .map_err(|error| unavailable(format!("{error:?}")))?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|_| ApiError::internal());
    }
    match serde_json::from_str::<domain::api::ErrorEnvelope>(&text) {
        Ok(envelope) if envelope.error.code == ErrorCode::Conflict => Err(envelope.error),
        _ => Err(unavailable(format!("{status}: {text}"))),
    }
}
