//! The deterministic id of one attempt of one step: `<run>-<step>-<attempt>`.
//!
//! To be unified with `domain::job`'s job id once that module grows its own deterministic type; the
//! format is the same, so nothing stored changes. Because the id is a function of the run's state, a
//! coordinator that replays a dispatch after a restart sends the same id, and the harness's
//! idempotent `POST /jobs` re-attaches instead of starting a second job.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::RunId;
use crate::job::JobId;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunJobId {
    run_id: RunId,
    step_index: usize,
    attempt: u32,
}

impl RunJobId {
    pub fn new(run_id: RunId, step_index: usize, attempt: u32) -> Self {
        RunJobId {
            run_id,
            step_index,
            attempt,
        }
    }

    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Zero-based, as in the pipeline.
    pub fn step_index(&self) -> usize {
        self.step_index
    }

    /// One-based: the first dispatch of a step is attempt 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Parses `<run>-<step>-<attempt>`, checking the run id's shape.
    pub fn parse(text: &str) -> Result<Self, String> {
        let malformed = || format!("job id {text:?} is not of the form <run id>-<step>-<attempt>");
        let mut parts = text.rsplitn(3, '-');
        let attempt = parts.next().ok_or_else(malformed)?;
        let step_index = parts.next().ok_or_else(malformed)?;
        let run_id = parts.next().ok_or_else(malformed)?;
        let is_number = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|byte| byte.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'))
        };
        if !is_number(attempt) || !is_number(step_index) {
            return Err(malformed());
        }
        Ok(RunJobId {
            run_id: RunId::parse(run_id).map_err(|error| format!("{}: {error}", malformed()))?,
            step_index: step_index.parse().map_err(|_| malformed())?,
            attempt: attempt.parse().map_err(|_| malformed())?,
        })
    }

    /// The harness's job id for this attempt.
    pub fn to_job_id(&self) -> JobId {
        // A run id is `run_` + 16 hex characters and the rest are digits and dashes: always a valid
        // job id, which a unit test checks.
        JobId::try_from(self.to_string()).expect("a run job id is always a valid harness job id")
    }
}

impl fmt::Display for RunJobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}-{}-{}",
            self.run_id, self.step_index, self.attempt
        )
    }
}

impl TryFrom<String> for RunJobId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        RunJobId::parse(&value)
    }
}

impl From<RunJobId> for String {
    fn from(value: RunJobId) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_run_step_attempt_and_round_trip() {
        let run_id = RunId::from_random([0xab; 8]);
        let id = RunJobId::new(run_id.clone(), 3, 12);
        assert_eq!(id.to_string(), "run_abababababababab-3-12");
        assert_eq!(RunJobId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(id.to_job_id().as_str(), "run_abababababababab-3-12");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"run_abababababababab-3-12\"");
        assert_eq!(serde_json::from_str::<RunJobId>(&json).unwrap(), id);
        let largest = RunJobId::new(run_id, usize::MAX, u32::MAX);
        assert_eq!(largest.to_job_id().as_str(), largest.to_string());
    }

    #[test]
    fn malformed_job_ids_are_refused() {
        for text in [
            "",
            "run_abababababababab",
            "run_abababababababab-3",
            "run_abababababababab-x-1",
            "run_abababababababab-3-",
            "run_abababababababab-03-1",
            "blk_abababababababab-3-1",
            "run_ab-3-1",
        ] {
            assert!(RunJobId::parse(text).is_err(), "{text}");
        }
    }
}
