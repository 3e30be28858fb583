//! The runner port: where a run's jobs execute (ADR 14). Adapters — the HTTP runner (`cat-harness
//! serve`) and the Cloudflare Container — live in the worker; what their answers mean for the run
//! engine is decided here, once, for both.

use domain::job::{Job, JobId, JobView};
use domain::run::{JobOutcomeView, RunInput, RunJobId};

/// Why a runner call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerError {
    /// Not reachable, timed out, or a 5xx: the same call may work later.
    Unavailable(String),
    /// 404 for a job it had: the runner restarted and lost it.
    Vanished,
    /// Any other refusal (a 4xx: the job body, the shared secret, a runner busy with another
    /// repository). Retried like an unavailable runner; the step fails with `dispatch` naming it.
    Refused { status: u16, detail: String },
}

impl RunnerError {
    /// What an HTTP status other than 2xx means.
    pub fn from_status(status: u16, body: &str) -> RunnerError {
        let detail: String = body.chars().take(500).collect();
        match status {
            404 => RunnerError::Vanished,
            500..=599 => {
                RunnerError::Unavailable(format!("the runner answered {status}: {detail}"))
            }
            _ => RunnerError::Refused { status, detail },
        }
    }
}

/// Where jobs run. `?Send`: the worker is single-threaded.
#[allow(async_fn_in_trait)]
pub trait Runner {
    /// `POST /jobs` (idempotent per job id: a replay answers with the job already there).
    async fn dispatch(&self, job: &Job) -> Result<JobView, RunnerError>;
    /// `GET /jobs/{id}`.
    async fn poll(&self, job_id: &JobId) -> Result<JobView, RunnerError>;
    /// `DELETE /jobs/{id}`; the branch stays.
    async fn cancel(&self, job_id: &JobId) -> Result<(), RunnerError>;
}

/// The engine input a runner's answer about `job_id` becomes.
pub fn input_for(job_id: &RunJobId, answer: Result<JobView, RunnerError>, now_ms: u64) -> RunInput {
    match answer {
        Ok(view) => RunInput::JobPolled {
            now_ms,
            view: JobOutcomeView::from_harness(job_id.clone(), &view),
        },
        Err(RunnerError::Vanished) => RunInput::JobVanished {
            now_ms,
            job_id: job_id.clone(),
        },
        Err(RunnerError::Unavailable(detail)) => RunInput::RunnerUnreachable {
            now_ms,
            job_id: job_id.clone(),
            detail,
        },
        Err(RunnerError::Refused { status, detail }) => RunInput::RunnerUnreachable {
            now_ms,
            job_id: job_id.clone(),
            detail: format!("the runner refused the job ({status}): {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ids::RunId;

    #[test]
    fn statuses_map_to_what_the_engine_does_with_them() {
        assert_eq!(RunnerError::from_status(404, ""), RunnerError::Vanished);
        assert!(matches!(
            RunnerError::from_status(503, "busy"),
            RunnerError::Unavailable(detail) if detail.contains("503")
        ));
        assert!(matches!(
            RunnerError::from_status(422, "bad job"),
            RunnerError::Refused { status: 422, .. }
        ));
        let job = RunJobId::new(RunId::from_random([1; 8]), 0, 1);
        assert!(matches!(
            input_for(&job, Err(RunnerError::Vanished), 5),
            RunInput::JobVanished { now_ms: 5, .. }
        ));
        assert!(matches!(
            input_for(&job, Err(RunnerError::Unavailable("down".into())), 5),
            RunInput::RunnerUnreachable { .. }
        ));
        match input_for(
            &job,
            Err(RunnerError::Refused {
                status: 401,
                detail: "secret".into(),
            }),
            5,
        ) {
            RunInput::RunnerUnreachable { detail, .. } => assert!(detail.contains("401")),
            other => panic!("{other:?}"),
        }
    }
}
