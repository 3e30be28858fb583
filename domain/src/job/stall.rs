//! Spotting an agent that makes no progress, from the calls it makes.

use std::fmt;

/// Why the agent loop decided the agent is stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallReason {
    /// The same tool call failed this many times in a row.
    RepeatedFailingCall { call: String, times: u32 },
    /// The same tool call succeeded with the same output this many times in a row: the agent learns
    /// nothing new (listing the same folder over and over).
    RepeatedSuccessfulCall { call: String, times: u32 },
    /// This many replies in a row asked for no tool and did not finish.
    RepliesWithoutToolCalls { times: u32 },
}

impl fmt::Display for StallReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StallReason::RepeatedFailingCall { call, times } => {
                write!(
                    formatter,
                    "the agent repeated the same failing call {times} times: {call}"
                )
            }
            StallReason::RepeatedSuccessfulCall { call, times } => write!(
                formatter,
                "the agent made the same call {times} times in a row and got the same result each \
                 time (limits.maxRepeatedCalls): {call}"
            ),
            StallReason::RepliesWithoutToolCalls { times } => write!(
                formatter,
                "the agent answered {times} times in a row without calling a tool or finishing"
            ),
        }
    }
}

/// Spots an agent that makes no progress, from the calls it makes (time-based stalls are the shell's
/// job: it owns the clock). Feed it every tool outcome and every reply without tool calls.
#[derive(Debug, Clone)]
pub struct StallDetector {
    max_repeats: u32,
    /// The last call: its signature, a fingerprint of its output, and whether it failed.
    last_call: Option<(String, u64, bool)>,
    repeats: u32,
    replies_without_tools: u32,
}

/// A stable fingerprint of a tool's output (FNV-1a): two outputs compare equal when their texts do,
/// without keeping the text.
pub fn output_fingerprint(output: &str) -> u64 {
    output.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl StallDetector {
    pub fn new(max_repeats: u32) -> Self {
        StallDetector {
            max_repeats: max_repeats.max(1),
            last_call: None,
            repeats: 0,
            replies_without_tools: 0,
        }
    }

    /// `call` identifies the call (its tool name and arguments); identical calls compare equal.
    /// A failing call counts as a repeat whatever its output (error texts may carry timings); a
    /// successful one only when its output is identical too, since new output is progress.
    pub fn observe_tool_call(
        &mut self,
        call: &str,
        output: &str,
        failed: bool,
    ) -> Option<StallReason> {
        self.replies_without_tools = 0;
        let fingerprint = if failed {
            0
        } else {
            output_fingerprint(output)
        };
        let same = self
            .last_call
            .as_ref()
            .is_some_and(|(last, last_output, last_failed)| {
                last == call && *last_output == fingerprint && *last_failed == failed
            });
        if same {
            self.repeats += 1;
        } else {
            self.last_call = Some((call.to_owned(), fingerprint, failed));
            self.repeats = 1;
        }
        if self.repeats < self.max_repeats {
            return None;
        }
        let (call, times) = (call.to_owned(), self.repeats);
        Some(if failed {
            StallReason::RepeatedFailingCall { call, times }
        } else {
            StallReason::RepeatedSuccessfulCall { call, times }
        })
    }

    pub fn observe_reply_without_tool_calls(&mut self) -> Option<StallReason> {
        self.replies_without_tools += 1;
        (self.replies_without_tools >= self.max_repeats).then_some(
            StallReason::RepliesWithoutToolCalls {
                times: self.replies_without_tools,
            },
        )
    }

    /// Starts counting afresh, for a new round of work (a repair round after red validation): the
    /// feedback is new information, so a call that repeats the last round's is not yet a loop.
    pub fn start_new_round(&mut self) {
        self.last_call = None;
        self.repeats = 0;
        self.replies_without_tools = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_detector_flags_the_same_failing_call_repeated() {
        let mut detector = StallDetector::new(3);
        assert_eq!(
            detector.observe_tool_call("read_file {a}", "no such file (1)", true),
            None
        );
        assert_eq!(
            detector.observe_tool_call("read_file {a}", "no such file (2)", true),
            None
        );
        assert_eq!(
            detector.observe_tool_call("read_file {a}", "no such file (3)", true),
            Some(StallReason::RepeatedFailingCall {
                call: "read_file {a}".to_owned(),
                times: 3
            })
        );
    }

    #[test]
    fn the_same_successful_call_with_the_same_output_is_a_stall_too() {
        let mut detector = StallDetector::new(3);
        assert_eq!(detector.observe_tool_call("list .", "a\nb", false), None);
        assert_eq!(detector.observe_tool_call("list .", "a\nb", false), None);
        assert_eq!(
            detector.observe_tool_call("list .", "a\nb", false),
            Some(StallReason::RepeatedSuccessfulCall {
                call: "list .".to_owned(),
                times: 3
            })
        );
    }

    #[test]
    fn new_output_is_progress() {
        let mut detector = StallDetector::new(2);
        assert_eq!(
            detector.observe_tool_call("run make", "3 failures", false),
            None
        );
        assert_eq!(
            detector.observe_tool_call("run make", "2 failures", false),
            None
        );
        assert_eq!(
            detector.observe_tool_call("run make", "1 failure", false),
            None
        );
        assert!(
            detector
                .observe_tool_call("run make", "1 failure", false)
                .is_some()
        );
    }

    #[test]
    fn stall_detector_resets_on_a_different_call_or_outcome() {
        let mut detector = StallDetector::new(2);
        assert_eq!(detector.observe_tool_call("x", "", true), None);
        assert_eq!(detector.observe_tool_call("y", "", true), None);
        assert_eq!(detector.observe_tool_call("y", "ok", false), None);
        assert_eq!(detector.observe_tool_call("y", "", true), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
        assert!(detector.observe_reply_without_tool_calls().is_some());
        assert_eq!(detector.observe_tool_call("z", "", false), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
    }

    #[test]
    fn a_new_round_forgets_the_last_call() {
        let mut detector = StallDetector::new(2);
        assert_eq!(detector.observe_tool_call("list .", "a", false), None);
        detector.start_new_round();
        assert_eq!(detector.observe_tool_call("list .", "a", false), None);
        assert!(detector.observe_tool_call("list .", "a", false).is_some());
    }
}
