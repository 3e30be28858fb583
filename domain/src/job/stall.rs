//! Spotting an agent that makes no progress, from the calls it makes.

use std::fmt;

/// Why the agent loop decided the agent is stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallReason {
    /// The same tool call failed this many times in a row.
    RepeatedFailingCall { call: String, times: u32 },
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
    last_failing_call: Option<String>,
    failing_repeats: u32,
    replies_without_tools: u32,
}

impl StallDetector {
    pub fn new(max_repeats: u32) -> Self {
        StallDetector {
            max_repeats: max_repeats.max(1),
            last_failing_call: None,
            failing_repeats: 0,
            replies_without_tools: 0,
        }
    }

    /// `call` identifies the call (its tool name and arguments); identical calls compare equal.
    pub fn observe_tool_call(&mut self, call: &str, failed: bool) -> Option<StallReason> {
        self.replies_without_tools = 0;
        if !failed {
            self.last_failing_call = None;
            self.failing_repeats = 0;
            return None;
        }
        if self.last_failing_call.as_deref() == Some(call) {
            self.failing_repeats += 1;
        } else {
            self.last_failing_call = Some(call.to_owned());
            self.failing_repeats = 1;
        }
        (self.failing_repeats >= self.max_repeats).then(|| StallReason::RepeatedFailingCall {
            call: call.to_owned(),
            times: self.failing_repeats,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_detector_flags_the_same_failing_call_repeated() {
        let mut detector = StallDetector::new(3);
        assert_eq!(detector.observe_tool_call("read_file {a}", true), None);
        assert_eq!(detector.observe_tool_call("read_file {a}", true), None);
        assert_eq!(
            detector.observe_tool_call("read_file {a}", true),
            Some(StallReason::RepeatedFailingCall {
                call: "read_file {a}".to_owned(),
                times: 3
            })
        );
    }

    #[test]
    fn stall_detector_resets_on_success_or_a_different_call() {
        let mut detector = StallDetector::new(2);
        assert_eq!(detector.observe_tool_call("x", true), None);
        assert_eq!(detector.observe_tool_call("y", true), None);
        assert_eq!(detector.observe_tool_call("y", false), None);
        assert_eq!(detector.observe_tool_call("y", true), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
        assert!(detector.observe_reply_without_tool_calls().is_some());
        assert_eq!(detector.observe_tool_call("z", false), None);
        assert_eq!(detector.observe_reply_without_tool_calls(), None);
    }
}
