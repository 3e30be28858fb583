//! How a job ends, decided from what happened: the validation loop's next move, the repair round
//! that changed nothing, the guard rail that makes a task impossible. The harness only reports what
//! happened (a round's results, whether the checkout changed, which writes were refused) and does
//! what these functions say.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::failure::FailureKind;
use super::paths::{checked_relative_path, is_protected_path};
use super::view::{CommandOutcome, JobFailure, ValidationReport, ValidationRound};

/// A rule the harness enforces whatever the task says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardRailRule {
    /// Nothing under `.github/workflows/` is written, committed or pushed.
    WorkflowFiles,
}

impl GuardRailRule {
    /// The stable name, as in the job view.
    pub fn name(self) -> &'static str {
        match self {
            GuardRailRule::WorkflowFiles => "workflow_files",
        }
    }

    /// Why the rule exists, for the failure detail and the agent.
    pub fn explanation(self) -> &'static str {
        match self {
            GuardRailRule::WorkflowFiles => {
                "files under .github/workflows/ run with the repository's CI secrets, so the harness \
                 never changes them"
            }
        }
    }
}

/// One refusal: the rule and the path the agent tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardRailRefusal {
    pub rule: GuardRailRule,
    pub path: String,
    /// The agent step that tried it (0 for the harness's final diff check).
    pub step: u32,
}

impl GuardRailRefusal {
    pub fn describe(&self) -> String {
        format!(
            "guard rail {} refused {} ({})",
            self.rule.name(),
            self.path,
            self.rule.explanation()
        )
    }
}

/// The refusal behind a failed tool call, if a guard rail is what refused it: a write or an edit
/// of a protected path. (A read-only job refusing writes is not a guard rail: explore jobs are not
/// offered the write tools at all.)
pub fn guard_rail_refusal_for_call(
    tool: &str,
    arguments: &Value,
    failed: bool,
    step: u32,
) -> Option<GuardRailRefusal> {
    if !failed || !matches!(tool, "write_file" | "edit_file") {
        return None;
    }
    let requested = arguments.get("path")?.as_str()?;
    let normalized = checked_relative_path(requested).ok()?.join("/");
    let protected = is_protected_path(&normalized);
    protected.then_some(GuardRailRefusal {
        rule: GuardRailRule::WorkflowFiles,
        path: normalized,
        step,
    })
}

/// The refusals of the harness's final diff check: guarded paths among the changed ones (a
/// command the agent ran may have written one, which the write tools would have refused), which
/// include `.github` and `.github/workflows` themselves, so a symlink put in their place is refused
/// too ([`crate::harness::is_guarded_path`]).
pub fn guard_rail_refusals_in_diff(changed_paths: &[String]) -> Vec<GuardRailRefusal> {
    changed_paths
        .iter()
        .filter(|path| crate::harness::is_guarded_path(path))
        .map(|path| GuardRailRefusal {
            rule: GuardRailRule::WorkflowFiles,
            path: path.clone(),
            step: 0,
        })
        .collect()
}

/// Endings that a guard-rail refusal explains better than they explain themselves: an agent that
/// was refused what the task needs then gives up, loops, runs out of steps or time, or leaves the
/// checks red. Infrastructure endings (the model endpoint, a push, a cancel) stay what they are.
const ENDINGS_A_REFUSAL_EXPLAINS: [FailureKind; 6] = [
    FailureKind::NoChanges,
    FailureKind::ValidationFailed,
    FailureKind::Stalled,
    FailureKind::StepBudget,
    FailureKind::Timeout,
    FailureKind::Rejected,
];

/// The failure to report, given how the pipeline failed and what the guard rails refused. When a
/// refusal explains the ending, the job ends `rejected` naming the rule and the first refused path
/// (a retry would hit the same rule), with the original ending kept in the detail.
pub fn truthful_failure(failure: JobFailure, refusals: &[GuardRailRefusal]) -> JobFailure {
    let Some(first) = refusals.first() else {
        return failure;
    };
    if !ENDINGS_A_REFUSAL_EXPLAINS.contains(&failure.kind) || failure.kind == FailureKind::Rejected
    {
        return failure;
    }
    JobFailure {
        kind: FailureKind::Rejected,
        detail: format!(
            "the task needs a change that a guard rail forbids: {}. The agent then ended with {}: {}",
            first.describe(),
            failure.kind.name(),
            failure.detail
        ),
    }
}

/// What the validation loop does after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationNext {
    /// Green: go on to commit.
    Proceed,
    /// Red with repair rounds left: hand this feedback back to the agent.
    Repair { feedback: String },
    /// Red and out of repair rounds.
    Fail(JobFailure),
}

/// Decides after a validation round, `report` holding every round so far (the last is the newest).
pub fn after_validation_round(report: &ValidationReport, max_repair_rounds: u32) -> ValidationNext {
    let Some(round) = report.rounds.last() else {
        return ValidationNext::Proceed;
    };
    if round.passed() {
        return ValidationNext::Proceed;
    }
    let repairs_used = report.rounds.len() as u32 - 1;
    if repairs_used >= max_repair_rounds {
        return ValidationNext::Fail(JobFailure {
            kind: FailureKind::ValidationFailed,
            detail: format!(
                "validation stayed red after {repairs_used} repair round(s) \
                 (validation.maxRepairRounds); nothing was pushed. {}",
                first_failure(round)
            ),
        });
    }
    ValidationNext::Repair {
        feedback: validation_feedback(round),
    }
}

/// How a repair round ended, as the agent loop saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairRoundEnd {
    /// The agent called `finish`.
    Finished,
    /// The agent answered in prose without a tool call ("Done", "I can't fix this").
    AnsweredInProse(String),
}

/// Decides after a repair round. A round that changed nothing in the checkout cannot turn the checks
/// green, whatever the agent said, so the job ends `validation_failed` (permanent) with the red
/// round's report instead of re-running the same checks or waiting for a stall. `None`: validate
/// again.
pub fn after_repair_round(
    report: &ValidationReport,
    end: &RepairRoundEnd,
    checkout_changed: bool,
) -> Option<JobFailure> {
    if checkout_changed {
        return None;
    }
    let how = match end {
        RepairRoundEnd::Finished => "called finish".to_owned(),
        RepairRoundEnd::AnsweredInProse(text) => {
            let mut quoted: String = text.trim().chars().take(200).collect();
            if text.trim().chars().count() > 200 {
                quoted.push('…');
            }
            format!("answered without a tool call ({quoted:?})")
        }
    };
    let red = report.rounds.last().map(first_failure).unwrap_or_default();
    Some(JobFailure {
        kind: FailureKind::ValidationFailed,
        detail: format!(
            "validation was red and the agent's repair round changed nothing (it {how}); nothing \
             was pushed. {red}"
        ),
    })
}

fn describe_outcome(outcome: &CommandOutcome) -> String {
    if outcome.timed_out {
        "timed out".to_owned()
    } else {
        match outcome.exit_code {
            Some(code) => format!("exited with {code}"),
            None => "was killed".to_owned(),
        }
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - max_chars).collect();
    format!("[…]{tail}")
}

/// The first red command of a round, with the end of its output.
pub fn first_failure(round: &ValidationRound) -> String {
    round
        .commands
        .iter()
        .find(|outcome| !outcome.passed())
        .map(|outcome| {
            format!(
                "`{}` {}: {}",
                outcome.command,
                describe_outcome(outcome),
                shorten(outcome.output.trim(), 1000)
            )
        })
        .unwrap_or_default()
}

/// What the agent is told after a red round.
pub fn validation_feedback(round: &ValidationRound) -> String {
    let mut feedback = "The validation checks failed, so nothing was committed. Fix the problem \
                        with the tools, then call finish again. If you change nothing, the job \
                        ends as failed.\n"
        .to_owned();
    for outcome in &round.commands {
        feedback.push_str(&format!(
            "\n$ {}\n({})\n{}\n",
            outcome.command,
            describe_outcome(outcome),
            outcome.output.trim_end()
        ));
    }
    feedback
}

/// What the agent is told when its structured answer does not fit the job's `outputSchema`.
pub fn invalid_answer_feedback(
    violations: &[crate::json_schema::Violation],
    tries_left: u32,
) -> String {
    let listed: Vec<String> = violations
        .iter()
        .map(|violation| format!("- {violation}"))
        .collect();
    format!(
        "The answer does not match the required schema, so it was not accepted:\n{}\nCall finish \
         again with `output` fixed ({tries_left} more attempt(s) before the job fails).",
        listed.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(exit_code: i32, output: &str) -> ValidationRound {
        ValidationRound {
            commands: vec![CommandOutcome {
                command: "make test".to_owned(),
                exit_code: Some(exit_code),
                timed_out: false,
                output: output.to_owned(),
            }],
        }
    }

    fn failure(kind: FailureKind) -> JobFailure {
        JobFailure {
            kind,
            detail: "what happened".to_owned(),
        }
    }

    fn refusal() -> GuardRailRefusal {
        GuardRailRefusal {
            rule: GuardRailRule::WorkflowFiles,
            path: ".github/workflows/ci.yml".to_owned(),
            step: 2,
        }
    }

    #[test]
    fn refused_writes_of_protected_paths_are_guard_rail_refusals() {
        let call = |tool, path: &str, failed| {
            guard_rail_refusal_for_call(tool, &serde_json::json!({ "path": path }), failed, 3)
        };
        let refusal = call("write_file", "./.github//workflows/ci.yml", true).unwrap();
        assert_eq!(refusal.path, ".github/workflows/ci.yml");
        assert_eq!(refusal.rule.name(), "workflow_files");
        assert!(call("edit_file", ".GitHub/Workflows/x.yml", true).is_some());
        assert!(call("write_file", ".github/workflows/ci.yml", false).is_none());
        assert!(call("write_file", "src/lib.rs", true).is_none());
        assert!(call("read_file", ".github/workflows/ci.yml", true).is_none());
        let in_diff = guard_rail_refusals_in_diff(&[
            "README.md".to_owned(),
            ".github/workflows/deploy.yml".to_owned(),
        ]);
        assert_eq!(in_diff.len(), 1);
        assert_eq!(in_diff[0].path, ".github/workflows/deploy.yml");
        // A symlink (or file) put in place of `.github` or `.github/workflows` is refused too.
        let replaced =
            guard_rail_refusals_in_diff(&[".github".to_owned(), ".GitHub/workflows".to_owned()]);
        assert_eq!(replaced.len(), 2);
        assert!(
            replaced
                .iter()
                .all(|refusal| refusal.rule == GuardRailRule::WorkflowFiles)
        );
    }

    #[test]
    fn a_refusal_explains_giving_up_looping_and_red_checks() {
        for kind in [
            FailureKind::NoChanges,
            FailureKind::ValidationFailed,
            FailureKind::Stalled,
            FailureKind::StepBudget,
            FailureKind::Timeout,
        ] {
            let ending = truthful_failure(failure(kind), &[refusal()]);
            assert_eq!(ending.kind, FailureKind::Rejected, "{kind:?}");
            assert!(
                ending.detail.contains("workflow_files"),
                "{}",
                ending.detail
            );
            assert!(ending.detail.contains(".github/workflows/ci.yml"));
            assert!(ending.detail.contains(kind.name()), "{}", ending.detail);
        }
    }

    #[test]
    fn infrastructure_endings_and_jobs_without_refusals_keep_their_kind() {
        for kind in [
            FailureKind::Agent,
            FailureKind::Cancelled,
            FailureKind::HarnessShutdown,
            FailureKind::PushFailed,
            FailureKind::CloneFailed,
            FailureKind::Internal,
            FailureKind::Rejected,
        ] {
            assert_eq!(truthful_failure(failure(kind), &[refusal()]), failure(kind));
        }
        assert_eq!(
            truthful_failure(failure(FailureKind::NoChanges), &[]),
            failure(FailureKind::NoChanges)
        );
    }

    #[test]
    fn red_rounds_go_back_to_the_agent_until_the_repair_rounds_are_used() {
        let mut report = ValidationReport {
            rounds: vec![round(1, "3 failures")],
        };
        match after_validation_round(&report, 1) {
            ValidationNext::Repair { feedback } => {
                assert!(feedback.contains("3 failures") && feedback.contains("$ make test"))
            }
            other => panic!("{other:?}"),
        }
        report.rounds.push(round(1, "2 failures"));
        match after_validation_round(&report, 1) {
            ValidationNext::Fail(failure) => {
                assert_eq!(failure.kind, FailureKind::ValidationFailed);
                assert!(failure.detail.contains("2 failures"), "{}", failure.detail);
                assert!(failure.detail.contains("1 repair round"));
            }
            other => panic!("{other:?}"),
        }
        report.rounds.push(round(0, ""));
        assert_eq!(after_validation_round(&report, 1), ValidationNext::Proceed);
    }

    #[test]
    fn a_repair_round_that_changed_nothing_is_validation_failed_not_stalled() {
        let report = ValidationReport {
            rounds: vec![round(1, "3 failures")],
        };
        let prose = RepairRoundEnd::AnsweredInProse("I can't fix this.".to_owned());
        let ending = after_repair_round(&report, &prose, false).unwrap();
        assert_eq!(ending.kind, FailureKind::ValidationFailed);
        assert!(!ending.kind.is_transient());
        assert!(
            ending.detail.contains("I can't fix this."),
            "{}",
            ending.detail
        );
        assert!(ending.detail.contains("3 failures"), "{}", ending.detail);
        let finished = after_repair_round(&report, &RepairRoundEnd::Finished, false).unwrap();
        assert!(finished.detail.contains("called finish"));
        assert_eq!(after_repair_round(&report, &prose, true), None);
    }
}
