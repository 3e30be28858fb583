//! When to retry a model request, and how long to wait first. Pure: the harness passes the clock
//! (for an HTTP-date `Retry-After`) and a random number (for the jitter) in.

/// The backoff schedule's knobs. The number of retries is the job's (`limits.maxModelRetries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits about this long; each further one doubles it.
    pub base_delay_ms: u64,
    /// No computed backoff waits longer than this.
    pub max_delay_ms: u64,
    /// A `Retry-After` longer than this is not waited out: the job fails now (transient) rather than
    /// sit idle past what a person would expect, and the run engine retries it later.
    pub max_retry_after_ms: u64,
    /// Added to a `Retry-After` wait, scaled by the random value, so many clients told the same
    /// instant do not all return at once. Never subtracted: the wait is at least what was asked.
    pub retry_after_jitter_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_retry_after_ms: 120_000,
            retry_after_jitter_ms: 250,
        }
    }
}

/// Why one attempt at a model request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// 408, 409, 425, 429 or a 5xx (including Anthropic's 529 "overloaded"), with the server's
    /// `Retry-After` if it sent one.
    Retryable {
        status: u16,
        retry_after_ms: Option<u64>,
    },
    /// The connection failed or broke off before the answer was complete.
    Connection,
    /// The request ran past `limits.requestTimeoutSeconds`.
    RequestTimeout,
    /// Any other status (400, 401, 403, 404, ...): the same request gets the same answer.
    Rejected { status: u16 },
    /// The answer arrived but is not a valid response of the protocol.
    Unreadable,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfterMs(u64),
    GiveUp(String),
}

/// Whether a status is worth retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429) || (500..=599).contains(&status)
}

/// Whether a status says the caller is out of money: 402 Payment Required, which is how the
/// cat-factory gateway answers `budget_exhausted` (and how credit-based providers say the same).
/// No retry can help; the job ends `budget_exhausted` and the run engine pauses the run until the
/// limit is raised.
pub fn is_budget_refusal(status: u16) -> bool {
    status == 402
}

/// Decides whether to retry. `retries_used` is the job's count so far (the budget spans the job);
/// `consecutive` is how many attempts of this one request already failed (it drives the backoff);
/// `random_unit` is a random number in `[0, 1)`.
pub fn decide_retry(
    policy: &RetryPolicy,
    failure: &AttemptFailure,
    retries_used: u32,
    max_retries: u32,
    consecutive: u32,
    random_unit: f64,
) -> RetryDecision {
    let random_unit = random_unit.clamp(0.0, 1.0);
    let retry_after_ms = match failure {
        AttemptFailure::Rejected { status } => {
            return RetryDecision::GiveUp(format!(
                "the model endpoint refused the request with {status}; a retry would get the same \
                 answer"
            ));
        }
        AttemptFailure::Unreadable => {
            return RetryDecision::GiveUp(
                "the model's answer is not a valid response of its protocol".to_owned(),
            );
        }
        AttemptFailure::Retryable { retry_after_ms, .. } => *retry_after_ms,
        AttemptFailure::Connection | AttemptFailure::RequestTimeout => None,
    };
    if retries_used >= max_retries {
        return RetryDecision::GiveUp(format!(
            "the job's retry budget is used up ({max_retries} retries, limits.maxModelRetries)"
        ));
    }
    if let Some(asked) = retry_after_ms {
        if asked > policy.max_retry_after_ms {
            return RetryDecision::GiveUp(format!(
                "the model endpoint asked to wait {} s (Retry-After), longer than the harness waits \
                 ({} s)",
                asked / 1000,
                policy.max_retry_after_ms / 1000
            ));
        }
        let jitter = (policy.retry_after_jitter_ms as f64 * random_unit) as u64;
        return RetryDecision::RetryAfterMs(asked + jitter);
    }
    // "Equal jitter": half the exponential delay for sure, the other half random, so a crowd of
    // retries spreads out but none comes back immediately.
    let exponential = policy
        .base_delay_ms
        .saturating_mul(1u64 << consecutive.min(20))
        .min(policy.max_delay_ms);
    let half = exponential / 2;
    RetryDecision::RetryAfterMs(half + ((exponential - half) as f64 * random_unit) as u64)
}

/// Reads a `Retry-After` header: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), as milliseconds from `now_ms`. A date in the past means 0.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some((seconds * 1000.0) as u64);
    }
    let at_ms = parse_http_date_ms(value)?;
    Some(at_ms.saturating_sub(now_ms))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers are allowed to send.
fn parse_http_date_ms(value: &str) -> Option<u64> {
    let (_, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|name| name == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let clock: Vec<u64> = time
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    let [hours, minutes, seconds] = clock.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *hours > 23 || *minutes > 59 || *seconds > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let total = days.checked_mul(86_400)? + (*hours * 3600 + *minutes * 60 + *seconds) as i64;
    u64::try_from(total).ok().map(|seconds| seconds * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base_delay_ms: 500,
        max_delay_ms: 30_000,
        max_retry_after_ms: 120_000,
        retry_after_jitter_ms: 250,
    };

    fn rate_limited(retry_after_ms: Option<u64>) -> AttemptFailure {
        AttemptFailure::Retryable {
            status: 429,
            retry_after_ms,
        }
    }

    #[test]
    fn retry_after_is_honoured_and_only_ever_lengthened_by_the_jitter() {
        let failure = rate_limited(Some(2_000));
        assert_eq!(
            decide_retry(&POLICY, &failure, 0, 6, 0, 0.0),
            RetryDecision::RetryAfterMs(2_000)
        );
        assert_eq!(
            decide_retry(&POLICY, &failure, 0, 6, 0, 0.999),
            RetryDecision::RetryAfterMs(2_249)
        );
    }

    #[test]
    fn without_retry_after_the_backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let cases = [
            (0, 0.0, 250),
            (0, 0.5, 375),
            (1, 0.0, 500),
            (2, 0.0, 1_000),
            (3, 1.0, 4_000),
            (12, 0.0, 15_000),
            (40, 1.0, 30_000),
        ];
        for (consecutive, random, expected) in cases {
            assert_eq!(
                decide_retry(
                    &POLICY,
                    &AttemptFailure::Connection,
                    0,
                    6,
                    consecutive,
                    random
                ),
                RetryDecision::RetryAfterMs(expected),
                "attempt {consecutive}, random {random}"
            );
        }
    }

    #[test]
    fn the_budget_and_permanent_failures_end_the_retries() {
        let give_up = |decision| matches!(decision, RetryDecision::GiveUp(_));
        assert!(give_up(decide_retry(
            &POLICY,
            &AttemptFailure::RequestTimeout,
            3,
            3,
            0,
            0.0
        )));
        assert!(!give_up(decide_retry(
            &POLICY,
            &AttemptFailure::RequestTimeout,
            2,
            3,
            0,
            0.0
        )));
        assert!(give_up(decide_retry(
            &POLICY,
            &AttemptFailure::Rejected { status: 401 },
            0,
            6,
            0,
            0.0
        )));
        assert!(give_up(decide_retry(
            &POLICY,
            &AttemptFailure::Unreadable,
            0,
            6,
            0,
            0.0
        )));
        assert!(give_up(decide_retry(
            &POLICY,
            &rate_limited(Some(600_000)),
            0,
            6,
            0,
            0.0
        )));
    }

    #[test]
    fn statuses_worth_retrying() {
        for status in [408, 409, 425, 429, 500, 502, 503, 529] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2", 0), Some(2_000));
        assert_eq!(parse_retry_after(" 0.5 ", 0), Some(500));
        // 1994-11-06T08:49:37Z is 784111777 s after the epoch.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(date, 784_111_777_000 - 3_000),
            Some(3_000)
        );
        assert_eq!(parse_retry_after(date, 784_111_777_000 + 9_000), Some(0));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 0),
            Some(10_000)
        );
        for bad in [
            "soon",
            "-1",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
    }
}
