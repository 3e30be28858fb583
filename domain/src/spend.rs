//! Money, prices and the spend cap's arithmetic.
//!
//! The gateway enforces an account's monthly limit as a hard guarantee with *reserve, then settle*:
//! before a model call goes upstream it reserves the most the call could possibly cost, with one
//! conditional write that succeeds only if `spent + reserved + this ≤ limit`; after the answer it
//! releases the reservation and records the real cost. For that to hold, the reservation must be a
//! true upper bound of what the provider will bill, so this module estimates *pessimistically*:
//! input tokens never exceed the request's UTF-8 bytes (every byte-level BPE token covers at least
//! one byte) nor the model's context window, and output tokens never exceed `max_tokens`, which the
//! gateway sets to the model's maximum output when the caller leaves it out.
//!
//! Money is integer micro-dollars everywhere: no floats, so sums are exact and comparisons with the
//! limit are never off by a rounding error. Costs round *up* to the next micro-dollar.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An amount of money in millionths of a US dollar.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroDollars(pub u64);

impl MicroDollars {
    pub const ZERO: MicroDollars = MicroDollars(0);
    pub const PER_DOLLAR: u64 = 1_000_000;

    pub fn from_dollars(dollars: u64) -> Self {
        MicroDollars(dollars.saturating_mul(Self::PER_DOLLAR))
    }

    /// Parses a decimal dollar amount such as `"25"`, `"25.5"` or `"0.000001"` (at most six
    /// decimals, no sign, no exponent): what an admin types as a monthly limit.
    pub fn parse_dollars(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err(MoneyError::NotADecimal);
        }
        if fraction.len() > 6 {
            return Err(MoneyError::TooPrecise);
        }
        let whole: u64 = whole.parse().map_err(|_| MoneyError::TooLarge)?;
        let fraction_micros: u64 = format!("{fraction:0<6}")
            .parse()
            .map_err(|_| MoneyError::NotADecimal)?;
        whole
            .checked_mul(Self::PER_DOLLAR)
            .and_then(|micros| micros.checked_add(fraction_micros))
            .map(MicroDollars)
            .ok_or(MoneyError::TooLarge)
    }

    pub fn saturating_add(self, other: MicroDollars) -> MicroDollars {
        MicroDollars(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: MicroDollars) -> MicroDollars {
        MicroDollars(self.0.saturating_sub(other.0))
    }
}

/// `$12.345678`, trailing zeros of the fraction trimmed to cents (`$12.30`, `$0.000001`).
impl fmt::Display for MicroDollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::PER_DOLLAR;
        let fraction = format!("{:06}", self.0 % Self::PER_DOLLAR);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &fraction[..2]
        } else {
            trimmed
        };
        write!(f, "${whole}.{shown}")
    }
}

impl JsonSchema for MicroDollars {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MicroDollars".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "description": "An amount in millionths of a US dollar (1000000 = $1)"
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    NotADecimal,
    TooPrecise,
    TooLarge,
}

impl MoneyError {
    pub fn message(self) -> &'static str {
        match self {
            MoneyError::NotADecimal => {
                "Give the amount in US dollars as a plain decimal number, such as \"25\" or \"12.50\"."
            }
            MoneyError::TooPrecise => "Amounts have at most six decimals (one micro-dollar).",
            MoneyError::TooLarge => "The amount is too large.",
        }
    }
}

/// What a model costs, per million tokens each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub input_per_million: MicroDollars,
    pub output_per_million: MicroDollars,
}

impl Price {
    pub const FREE: Price = Price {
        input_per_million: MicroDollars::ZERO,
        output_per_million: MicroDollars::ZERO,
    };

    /// The cost of a call that used these tokens, rounded up to the next micro-dollar.
    pub fn cost(&self, usage: TokenUsage) -> MicroDollars {
        let input = per_million_cost(usage.input_tokens, self.input_per_million);
        let output = per_million_cost(usage.output_tokens, self.output_per_million);
        MicroDollars(input.saturating_add(output))
    }
}

fn per_million_cost(tokens: u64, per_million: MicroDollars) -> u64 {
    // u128 so a large token count times a large price cannot overflow before the division.
    let scaled = u128::from(tokens) * u128::from(per_million.0);
    let micros = scaled.div_ceil(1_000_000);
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// Tokens one call used (as the provider reports them) or may use (as the gateway bounds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Who serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Any OpenAI-compatible Chat Completions endpoint: OpenAI, OpenRouter, Ollama, vLLM.
    OpenaiCompatible,
    Anthropic,
    /// Cloudflare Workers AI through the `AI` binding (production only).
    WorkersAi,
}

impl Provider {
    pub const ALL: [Provider; 3] = [
        Provider::OpenaiCompatible,
        Provider::Anthropic,
        Provider::WorkersAi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Anthropic => "anthropic",
            Provider::WorkersAi => "workers_ai",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.as_str() == text)
    }
}

/// One model the gateway knows how to call and price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogModel {
    /// The id callers name in `model`, as the provider spells it.
    pub id: String,
    pub provider: Provider,
    pub display_name: String,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub price: Price,
    /// The day (`YYYY-MM-DD`) the price was taken from the provider's price list.
    pub priced_on: String,
}

struct CatalogEntry {
    id: &'static str,
    provider: Provider,
    display_name: &'static str,
    context_window: u64,
    max_output_tokens: u64,
    input_micros_per_million: u64,
    output_micros_per_million: u64,
    priced_on: &'static str,
}

/// The built-in catalog. Prices are list prices per million tokens from the providers' public price
/// pages on the date given; an admin can price any other model (a local one at 0) per account.
const BUILT_IN_CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        id: "gpt-4.1",
        provider: Provider::OpenaiCompatible,
        display_name: "GPT-4.1",
        context_window: 1_047_576,
        max_output_tokens: 32_768,
        input_micros_per_million: 2_000_000,
        output_micros_per_million: 8_000_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "gpt-4.1-mini",
        provider: Provider::OpenaiCompatible,
        display_name: "GPT-4.1 mini",
        context_window: 1_047_576,
        max_output_tokens: 32_768,
        input_micros_per_million: 400_000,
        output_micros_per_million: 1_600_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "gpt-4o",
        provider: Provider::OpenaiCompatible,
        display_name: "GPT-4o",
        context_window: 128_000,
        max_output_tokens: 16_384,
        input_micros_per_million: 2_500_000,
        output_micros_per_million: 10_000_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "gpt-4o-mini",
        provider: Provider::OpenaiCompatible,
        display_name: "GPT-4o mini",
        context_window: 128_000,
        max_output_tokens: 16_384,
        input_micros_per_million: 150_000,
        output_micros_per_million: 600_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "claude-sonnet-4-20250514",
        provider: Provider::Anthropic,
        display_name: "Claude Sonnet 4",
        context_window: 200_000,
        max_output_tokens: 64_000,
        input_micros_per_million: 3_000_000,
        output_micros_per_million: 15_000_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "claude-opus-4-20250514",
        provider: Provider::Anthropic,
        display_name: "Claude Opus 4",
        context_window: 200_000,
        max_output_tokens: 32_000,
        input_micros_per_million: 15_000_000,
        output_micros_per_million: 75_000_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "claude-3-5-haiku-20241022",
        provider: Provider::Anthropic,
        display_name: "Claude Haiku 3.5",
        context_window: 200_000,
        max_output_tokens: 8_192,
        input_micros_per_million: 800_000,
        output_micros_per_million: 4_000_000,
        priced_on: "2025-06-01",
    },
    CatalogEntry {
        id: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        provider: Provider::WorkersAi,
        display_name: "Llama 3.3 70B (Workers AI)",
        context_window: 24_000,
        max_output_tokens: 4_096,
        input_micros_per_million: 293_000,
        output_micros_per_million: 2_253_000,
        priced_on: "2025-06-01",
    },
];

/// Every model of the built-in catalog.
pub fn built_in_catalog() -> Vec<CatalogModel> {
    BUILT_IN_CATALOG
        .iter()
        .map(CatalogEntry::to_model)
        .collect()
}

/// The built-in entry for `id`, if the catalog knows it.
pub fn catalog_model(id: &str) -> Option<CatalogModel> {
    BUILT_IN_CATALOG
        .iter()
        .find(|entry| entry.id == id)
        .map(CatalogEntry::to_model)
}

impl CatalogEntry {
    fn to_model(&self) -> CatalogModel {
        CatalogModel {
            id: self.id.to_owned(),
            provider: self.provider,
            display_name: self.display_name.to_owned(),
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            price: Price {
                input_per_million: MicroDollars(self.input_micros_per_million),
                output_per_million: MicroDollars(self.output_micros_per_million),
            },
            priced_on: self.priced_on.to_owned(),
        }
    }
}

/// A calendar month in UTC: the period a monthly limit applies to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct BillingPeriod {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

impl BillingPeriod {
    /// The period that contains the instant `unix_ms` (milliseconds since the Unix epoch, UTC).
    pub fn containing(unix_ms: i64) -> BillingPeriod {
        let (year, month, _) = civil_from_days(unix_ms.div_euclid(MS_PER_DAY));
        BillingPeriod { year, month }
    }

    /// The first millisecond of the period.
    pub fn start_ms(self) -> i64 {
        days_from_civil(self.year, self.month, 1) * MS_PER_DAY
    }

    /// The first millisecond of the next period (the end, exclusive).
    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    pub fn next(self) -> BillingPeriod {
        if self.month == 12 {
            BillingPeriod {
                year: self.year + 1,
                month: 1,
            }
        } else {
            BillingPeriod {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// `2026-11`: the key the ledger's period column and the API use.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub fn parse_key(text: &str) -> Option<BillingPeriod> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u32 = month.parse().ok()?;
        (1..=12)
            .contains(&month)
            .then_some(BillingPeriod { year, month })
    }
}

/// The day (`YYYY-MM-DD`, UTC) of an instant: the ledger's daily breakdown key.
pub fn day_key(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(MS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

// Howard Hinnant's days ↔ civil date conversions for the proleptic Gregorian calendar.
fn civil_from_days(days_since_epoch: i64) -> (i32, u32, u32) {
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date; also reads GitHub's timestamps.
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Tokens the gateway charges, at most, for one image part of a request. Providers bill images by
/// their pixel size, which the gateway does not decode; this covers a high-detail image at the
/// largest size the providers accept (OpenAI: 1,105 tokens for 2048×768 tiles at high detail;
/// Anthropic: about 1,600 for a 1.15-megapixel image), with room to spare.
pub const IMAGE_TOKEN_ALLOWANCE: u64 = 2_500;

/// The most a call can cost, and the token bounds it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallBound {
    pub max_input_tokens: u64,
    pub max_output_tokens: u64,
    pub max_cost: MicroDollars,
}

/// Bounds a call before it goes upstream. `request_bytes` is the size of the request body as sent
/// upstream; `image_parts` how many image inputs it carries; `max_output_tokens` the `max_tokens`
/// the gateway will send (see [`effective_max_output_tokens`]).
///
/// Input tokens cannot exceed the body's bytes (a byte-level BPE token covers at least one byte, and
/// the JSON framing more than pays for the chat template's per-message tokens) plus the images'
/// allowance, nor the model's context window, which the provider enforces.
pub fn bound_call(
    model: &CatalogModel,
    request_bytes: u64,
    image_parts: u64,
    max_output_tokens: u64,
) -> CallBound {
    let byte_bound =
        request_bytes.saturating_add(image_parts.saturating_mul(IMAGE_TOKEN_ALLOWANCE));
    let max_input_tokens = byte_bound.min(model.context_window);
    let max_output_tokens = max_output_tokens.min(model.max_output_tokens);
    let max_cost = model.price.cost(TokenUsage {
        input_tokens: max_input_tokens,
        output_tokens: max_output_tokens,
    });
    CallBound {
        max_input_tokens,
        max_output_tokens,
        max_cost,
    }
}

/// The `max_tokens` the gateway sends: the caller's, capped at the model's maximum output, or the
/// model's maximum when the caller left it out (so the reservation has a bound to reserve).
pub fn effective_max_output_tokens(requested: Option<u64>, model: &CatalogModel) -> u64 {
    match requested {
        Some(tokens) => tokens.min(model.max_output_tokens),
        None => model.max_output_tokens,
    }
}

/// What the gateway reads from a request body before it forwards it: which model, whether the
/// caller asked for a stream, the caller's output limit, and how many images the messages carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestShape {
    pub model: String,
    pub stream: bool,
    pub requested_max_output_tokens: Option<u64>,
    pub image_parts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestShapeError {
    NotAnObject,
    MissingModel,
    BadMaxTokens,
    MissingMessages,
    /// `stream` is there but neither a boolean nor null (`"stream": "yes"`): refused rather than
    /// read as `false`, like any other wrongly typed field.
    BadStream,
}

impl RequestShapeError {
    pub fn field(&self) -> &'static str {
        match self {
            RequestShapeError::NotAnObject => "body",
            RequestShapeError::MissingModel => "model",
            RequestShapeError::BadMaxTokens => "max_tokens",
            RequestShapeError::MissingMessages => "messages",
            RequestShapeError::BadStream => "stream",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            RequestShapeError::NotAnObject => "The request body must be a JSON object.",
            RequestShapeError::MissingModel => "Name the model to call in `model` (a string).",
            RequestShapeError::BadMaxTokens => {
                "`max_tokens` (or `max_completion_tokens`) must be a positive integer."
            }
            RequestShapeError::MissingMessages => "`messages` must be a non-empty array.",
            RequestShapeError::BadStream => "`stream` must be true or false (or left out: false).",
        }
    }
}

/// Reads the gateway-relevant fields of an OpenAI Chat Completions or Anthropic Messages body.
/// Both dialects name the model `model` and the messages `messages`; OpenAI's output limit is
/// `max_completion_tokens` (newer) or `max_tokens`, Anthropic's `max_tokens`. Images are OpenAI's
/// `image_url` parts and Anthropic's `image` blocks.
pub fn read_request_shape(body: &Value) -> Result<RequestShape, RequestShapeError> {
    let object = body.as_object().ok_or(RequestShapeError::NotAnObject)?;
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .ok_or(RequestShapeError::MissingModel)?
        .to_owned();
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or(RequestShapeError::MissingMessages)?;
    let limit_field = object
        .get("max_completion_tokens")
        .or_else(|| object.get("max_tokens"));
    let requested_max_output_tokens = match limit_field {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|tokens| *tokens > 0)
                .ok_or(RequestShapeError::BadMaxTokens)?,
        ),
    };
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(value) => value.as_bool().ok_or(RequestShapeError::BadStream)?,
    };
    let image_parts = messages.iter().map(count_image_parts).sum();
    Ok(RequestShape {
        model,
        stream,
        requested_max_output_tokens,
        image_parts,
    })
}

fn count_image_parts(message: &Value) -> u64 {
    let Some(parts) = message.get("content").and_then(Value::as_array) else {
        return 0;
    };
    parts
        .iter()
        .filter(|part| {
            matches!(
                part.get("type").and_then(Value::as_str),
                Some("image_url" | "image" | "input_image")
            )
        })
        .count() as u64
}

/// An account's budget for the current period, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The monthly limit; `None` means no limit is set.
    pub limit: Option<MicroDollars>,
    /// Settled spend this period.
    pub spent: MicroDollars,
    /// Held by calls in flight.
    pub reserved: MicroDollars,
    /// An admin lifted the limit for the rest of this period.
    pub overridden: bool,
}

impl Budget {
    /// What is left before the limit, after settled spend and reservations (`None`: unlimited).
    pub fn headroom(&self) -> Option<MicroDollars> {
        if self.overridden {
            return None;
        }
        self.limit
            .map(|limit| limit.saturating_sub(self.spent.saturating_add(self.reserved)))
    }

    /// Whether a reservation of `amount` fits: `spent + reserved + amount ≤ limit`. The store makes
    /// the same comparison in its conditional write, so the decision holds under concurrency; this
    /// function is the rule, and names what to tell the caller when it does not fit.
    pub fn admit(&self, amount: MicroDollars) -> Result<(), BudgetExhausted> {
        match self.headroom() {
            Some(headroom) if amount > headroom => Err(BudgetExhausted {
                limit: self.limit.unwrap_or_default(),
                spent: self.spent,
                reserved: self.reserved,
                requested: amount,
            }),
            _ => Ok(()),
        }
    }

    /// Whether runs paused for the budget may go on: something is left, or there is no limit.
    pub fn has_headroom(&self) -> bool {
        self.headroom()
            .is_none_or(|headroom| headroom > MicroDollars::ZERO)
    }
}

/// Why a call was refused: the limit, what was spent and held, and what the call needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetExhausted {
    pub limit: MicroDollars,
    pub spent: MicroDollars,
    pub reserved: MicroDollars,
    pub requested: MicroDollars,
}

impl BudgetExhausted {
    pub fn message(&self) -> String {
        format!(
            "The account's monthly spend limit of {} is reached ({} spent, {} held by calls in \
             flight; this call needs up to {}). An account admin can raise the limit or override it \
             for the rest of the month.",
            self.limit, self.spent, self.reserved, self.requested
        )
    }
}

impl BudgetExhausted {
    /// The `402 budget_exhausted` error, with the figures in `details` (micro-dollars) so a run
    /// engine or a script can tell how far off the call was.
    pub fn to_api_error(&self) -> crate::api::ApiError {
        crate::api::ApiError::new(crate::api::ErrorCode::BudgetExhausted, self.message())
            .with_details(serde_json::json!({
                "limitMicros": self.limit.0,
                "spentMicros": self.spent.0,
                "reservedMicros": self.reserved.0,
                "requestedMicros": self.requested.0,
                "limit": self.limit.to_string(),
                "spent": self.spent.to_string(),
            }))
    }
}

/// How a reservation ends: the real cost is recorded and the held amount released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub release: MicroDollars,
    pub charge: MicroDollars,
}

/// Settles a call that reserved `reserved` and really cost `actual`. The charge is the real cost
/// even when it exceeds the reservation (the provider billed it), and the caller is told through
/// [`Settlement::overran`] so the overrun is logged: a bound that failed is a bug to fix, not
/// spend to hide.
pub fn settle(reserved: MicroDollars, actual: MicroDollars) -> Settlement {
    Settlement {
        release: reserved,
        charge: actual,
    }
}

impl Settlement {
    pub fn overran(&self) -> bool {
        self.charge > self.release
    }
}

/// How long a reservation may stay unsettled before its account's budget object's alarm releases
/// it: longer than any call the gateway forwards can take (its upstream timeout is 10 minutes), so
/// only a crashed call's reservation is ever released this way.
pub const RESERVATION_TTL_MS: i64 = 15 * 60 * 1000;

/// How long an account's budget object remembers a settled call's id: a repeat of the settlement
/// inside this time charges nothing. Twice a reservation's life, so a settlement that arrives after
/// its reservation expired is still recognised when repeated.
pub const SETTLED_IDS_KEPT_MS: i64 = 2 * RESERVATION_TTL_MS;

/// How soon the budget object sends D1 again a settlement D1 did not take.
pub const MIRROR_RETRY_MS: i64 = 30_000;

/// When the budget object's alarm must next run, from what it holds: the earliest open
/// reservation's expiry (to release it if its call never settles), a retry for settlements D1 has
/// not confirmed, and the time the oldest remembered settled id may be forgotten. `None`: nothing to
/// come back for. Never earlier than `now_ms`.
pub fn budget_wake_at(
    earliest_expiry_ms: Option<i64>,
    unmirrored: bool,
    oldest_settled_ms: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    [
        earliest_expiry_ms,
        unmirrored.then(|| now_ms.saturating_add(MIRROR_RETRY_MS)),
        oldest_settled_ms.map(|at| at.saturating_add(SETTLED_IDS_KEPT_MS)),
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|at| at.max(now_ms))
}

/// Whether a reservation made at `reserved_at_ms` is abandoned at `now_ms`.
pub fn reservation_abandoned(reserved_at_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(reserved_at_ms) >= RESERVATION_TTL_MS
}

/// The typical tokens of one step of a kind, used by the forecast when the account has no history
/// for that kind yet. Rough medians of the agent loops we run: an inline estimate reads the task
/// and answers briefly; exploring and coding steps read much of a repository over many turns.
pub fn default_step_usage(step_kind: &str) -> TokenUsage {
    let (input_tokens, output_tokens) = match step_kind {
        "estimator" => (3_000, 400),
        "architect" => (60_000, 4_000),
        "coder" => (250_000, 20_000),
        "reviewer" => (80_000, 3_000),
        "tester" => (80_000, 3_000),
        _ => (60_000, 4_000),
    };
    TokenUsage {
        input_tokens,
        output_tokens,
    }
}

/// The median of the usage a step kind had in the past, input and output taken separately.
pub fn median_usage(history: &[TokenUsage]) -> Option<TokenUsage> {
    if history.is_empty() {
        return None;
    }
    let median = |mut values: Vec<u64>| {
        values.sort_unstable();
        let middle = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]).div_ceil(2)
        } else {
            values[middle]
        }
    };
    Some(TokenUsage {
        input_tokens: median(history.iter().map(|usage| usage.input_tokens).collect()),
        output_tokens: median(history.iter().map(|usage| usage.output_tokens).collect()),
    })
}

/// One step of a forecast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStep {
    pub step_kind: String,
    pub usage: TokenUsage,
    /// Whether `usage` is this account's median for the kind (true) or the documented default.
    pub from_history: bool,
    pub cost: MicroDollars,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    pub model: String,
    pub steps: Vec<ForecastStep>,
    pub total: MicroDollars,
}

/// What a pipeline will likely cost with `model`: each step's kind × the account's median usage for
/// that kind (`history_for` returns past usage per kind) or the default, × the model's price.
pub fn forecast<'a>(
    model: &CatalogModel,
    step_kinds: impl IntoIterator<Item = &'a str>,
    history_for: impl Fn(&str) -> Vec<TokenUsage>,
) -> Forecast {
    let steps: Vec<ForecastStep> = step_kinds
        .into_iter()
        .map(|kind| {
            let (usage, from_history) = match median_usage(&history_for(kind)) {
                Some(median) => (median, true),
                None => (default_step_usage(kind), false),
            };
            ForecastStep {
                step_kind: kind.to_owned(),
                usage,
                from_history,
                cost: model.price.cost(usage),
            }
        })
        .collect();
    let total = steps.iter().fold(MicroDollars::ZERO, |sum, step| {
        sum.saturating_add(step.cost)
    });
    Forecast {
        model: model.id.clone(),
        steps,
        total,
    }
}

/// When a reservation made at `reserved_at_ms` is released by the sweep if its call never settled.
pub fn reservation_expires_at(reserved_at_ms: i64) -> i64 {
    reserved_at_ms.saturating_add(RESERVATION_TTL_MS)
}

/// How a metered call ended, as its ledger row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The provider answered in full.
    Completed,
    /// The provider refused or failed before answering (nothing billed beyond what it reported).
    UpstreamError,
    /// A stream ended before its final event: settled from what was seen.
    StreamDied,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Completed => "completed",
            CallStatus::UpstreamError => "upstream_error",
            CallStatus::StreamDied => "stream_died",
        }
    }
}

/// A settled call, as the `spend.changed` event tells the workspace's clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettledCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<crate::ids::BlockId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    pub model: String,
    pub provider: String,
    pub usage: TokenUsage,
    pub cost: MicroDollars,
    pub status: CallStatus,
}

/// The charge of a settled call: the real usage at the model's price, and whether it overran the
/// reservation (logged: a bound that failed is a bug).
pub fn charge_for(model: &CatalogModel, usage: TokenUsage, reserved: MicroDollars) -> Settlement {
    settle(reserved, model.price.cost(usage))
}

/// An account's spend this period, as `GET /accounts/:id/spend` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpend {
    /// `YYYY-MM`, UTC.
    pub period: String,
    pub budget: Budget,
    /// What is left before the limit (`None`: no limit, or overridden for this period).
    pub headroom: Option<MicroDollars>,
    pub by_workspace: Vec<SpendLine>,
    pub by_model: Vec<SpendLine>,
    pub by_day: Vec<SpendLine>,
}

/// One line of a spend breakdown: a key (a workspace, block, run, model or day) and its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpendLine {
    /// The workspace id, block id, run id, model id or day; `null` for calls not tied to a block
    /// or run.
    pub key: Option<String>,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroDollars,
}

/// What a spend breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpendGrouping {
    Workspace,
    Block,
    Run,
    Model,
    Day,
}

impl SpendGrouping {
    /// Reads `?by=`; the message names the allowed values.
    pub fn parse(text: &str) -> Result<SpendGrouping, String> {
        Ok(match text {
            "workspace" => SpendGrouping::Workspace,
            "block" => SpendGrouping::Block,
            "run" => SpendGrouping::Run,
            "model" => SpendGrouping::Model,
            "day" => SpendGrouping::Day,
            _ => {
                return Err(
                    "`by` must be one of `workspace`, `block`, `run`, `model`, `day`.".to_owned(),
                );
            }
        })
    }

    /// The ledger column the breakdown groups on.
    pub fn column(self) -> &'static str {
        match self {
            SpendGrouping::Workspace => "workspace_id",
            SpendGrouping::Block => "block_id",
            SpendGrouping::Run => "run_id",
            SpendGrouping::Model => "model",
            SpendGrouping::Day => "day",
        }
    }
}

/// `PUT /accounts/:id/spend/limit`: the monthly limit in US dollars, as a decimal string (`"25"`,
/// `"12.50"`) so no float ever rounds it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetLimitRequest {
    #[schemars(pattern(crate::api::body::DOLLARS_PATTERN))]
    pub limit_usd: String,
}

impl SetLimitRequest {
    pub fn limit(&self) -> Result<MicroDollars, crate::api::ApiError> {
        MicroDollars::parse_dollars(&self.limit_usd).map_err(|error| {
            crate::api::ApiError::invalid_fields(vec![crate::problem::FieldProblem::new(
                "limitUsd",
                error.message(),
            )])
        })
    }
}

/// The longest model id an account may price (`PUT /accounts/:id/models/:model`).
pub const MAX_CUSTOM_MODEL_ID_CHARS: usize = 200;

/// `PUT /accounts/:id/models/:model`: the price of a model the built-in catalog does not know.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceModelRequest {
    pub provider: Provider,
    /// US dollars per million input tokens, as a decimal string (`"0"` for a local model).
    #[schemars(pattern(crate::api::body::DOLLARS_PATTERN))]
    pub input_usd_per_million: String,
    #[schemars(pattern(crate::api::body::DOLLARS_PATTERN))]
    pub output_usd_per_million: String,
    #[serde(default)]
    pub context_window: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// What a model the catalog does not know gets when the admin does not say.
pub const DEFAULT_CUSTOM_CONTEXT_WINDOW: u64 = 32_768;
pub const DEFAULT_CUSTOM_MAX_OUTPUT_TOKENS: u64 = 4_096;

impl PriceModelRequest {
    /// The catalog entry this request describes for `model`, priced on `today` (`YYYY-MM-DD`).
    pub fn to_model(&self, model: &str, today: &str) -> Result<CatalogModel, crate::api::ApiError> {
        let mut problems = Vec::new();
        let mut price = |field: &str, text: &str| match MicroDollars::parse_dollars(text) {
            Ok(amount) => amount,
            Err(error) => {
                problems.push(crate::problem::FieldProblem::new(field, error.message()));
                MicroDollars::ZERO
            }
        };
        let input = price("inputUsdPerMillion", &self.input_usd_per_million);
        let output = price("outputUsdPerMillion", &self.output_usd_per_million);
        let context_window = self.context_window.unwrap_or(DEFAULT_CUSTOM_CONTEXT_WINDOW);
        let max_output_tokens = self
            .max_output_tokens
            .unwrap_or(DEFAULT_CUSTOM_MAX_OUTPUT_TOKENS);
        if context_window == 0 || max_output_tokens == 0 {
            problems.push(crate::problem::FieldProblem::new(
                "contextWindow",
                "the context window and the maximum output must be positive token counts",
            ));
        }
        // Characters, as the path parameter's published `maxLength` counts them.
        if model.is_empty() || model.chars().count() > MAX_CUSTOM_MODEL_ID_CHARS {
            problems.push(crate::problem::FieldProblem::new(
                "model",
                "a model id is 1 to 200 characters",
            ));
        }
        if !problems.is_empty() {
            return Err(crate::api::ApiError::invalid_fields(problems));
        }
        Ok(CatalogModel {
            id: model.to_owned(),
            provider: self.provider,
            display_name: model.to_owned(),
            context_window,
            max_output_tokens,
            price: Price {
                input_per_million: input,
                output_per_million: output,
            },
            priced_on: today.to_owned(),
        })
    }
}

/// A model as `GET /models` lists it: the catalog entry and whether its provider is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogListing {
    #[serde(flatten)]
    pub model: CatalogModel,
    pub usable_now: bool,
}

/// The catalog for an account: the built-in models, then the account's own prices (which win for
/// the same id, so an admin can correct a stale price).
pub fn account_catalog(custom: Vec<CatalogModel>) -> Vec<CatalogModel> {
    let mut models: Vec<CatalogModel> = built_in_catalog()
        .into_iter()
        .filter(|model| !custom.iter().any(|mine| mine.id == model.id))
        .collect();
    models.extend(custom);
    models
}

/// The model a call is priced with: the account's own entry, else the built-in one. `None`: the
/// model is unknown and must be priced before it can be called (an unpriced call has no bound).
pub fn resolve_model(id: &str, custom: &[CatalogModel]) -> Option<CatalogModel> {
    custom
        .iter()
        .find(|model| model.id == id)
        .cloned()
        .or_else(|| catalog_model(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model(input: u64, output: u64) -> CatalogModel {
        CatalogModel {
            id: "test-model".into(),
            provider: Provider::OpenaiCompatible,
            display_name: "Test".into(),
            context_window: 100_000,
            max_output_tokens: 4_000,
            price: Price {
                input_per_million: MicroDollars(input),
                output_per_million: MicroDollars(output),
            },
            priced_on: "2026-01-01".into(),
        }
    }

    #[test]
    fn dollar_amounts_parse_exactly_or_say_why_not() {
        let cases: &[(&str, Result<u64, MoneyError>)] = &[
            ("25", Ok(25_000_000)),
            ("25.5", Ok(25_500_000)),
            ("0.000001", Ok(1)),
            (" 12.30 ", Ok(12_300_000)),
            ("0", Ok(0)),
            ("1.0000001", Err(MoneyError::TooPrecise)),
            ("-1", Err(MoneyError::NotADecimal)),
            ("1e3", Err(MoneyError::NotADecimal)),
            (".5", Err(MoneyError::NotADecimal)),
            ("", Err(MoneyError::NotADecimal)),
            ("99999999999999999999", Err(MoneyError::TooLarge)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                MicroDollars::parse_dollars(text).map(|money| money.0),
                *expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn amounts_display_as_dollars() {
        for (micros, shown) in [
            (0, "$0.00"),
            (1, "$0.000001"),
            (12_300_000, "$12.30"),
            (12_345_678, "$12.345678"),
            (5_000_000, "$5.00"),
        ] {
            assert_eq!(MicroDollars(micros).to_string(), shown);
        }
    }

    #[test]
    fn costs_round_up_to_the_next_micro_dollar() {
        let price = model(3_000_000, 15_000_000).price;
        // 1 input token at $3/M is 3 micro-dollars; 1 output token at $15/M is 15.
        assert_eq!(
            price.cost(TokenUsage {
                input_tokens: 1,
                output_tokens: 1
            }),
            MicroDollars(18)
        );
        // 1 token at $0.15/M is 0.15 micro-dollars: charged as 1, never as 0.
        let cheap = model(150_000, 0).price;
        assert_eq!(
            cheap.cost(TokenUsage {
                input_tokens: 1,
                output_tokens: 0
            }),
            MicroDollars(1)
        );
        assert_eq!(Price::FREE.cost(TokenUsage::default()), MicroDollars::ZERO);
        let huge = Price {
            input_per_million: MicroDollars(u64::MAX),
            output_per_million: MicroDollars(u64::MAX),
        };
        assert_eq!(
            huge.cost(TokenUsage {
                input_tokens: u64::MAX,
                output_tokens: 1
            }),
            MicroDollars(u64::MAX)
        );
    }

    #[test]
    fn a_call_bound_never_undercounts_and_respects_the_model_limits() {
        let model = model(1_000_000, 2_000_000);
        let bound = bound_call(&model, 5_000, 2, 1_000);
        assert_eq!(bound.max_input_tokens, 5_000 + 2 * IMAGE_TOKEN_ALLOWANCE);
        assert_eq!(bound.max_output_tokens, 1_000);
        assert_eq!(bound.max_cost, MicroDollars(10_000 + 2_000));
        // A body larger than the context window is bounded by the window, which the provider enforces.
        let capped = bound_call(&model, 10_000_000, 0, 99_999);
        assert_eq!(capped.max_input_tokens, model.context_window);
        assert_eq!(capped.max_output_tokens, model.max_output_tokens);
    }

    #[test]
    fn the_gateway_fills_in_max_tokens() {
        let model = model(0, 0);
        assert_eq!(effective_max_output_tokens(None, &model), 4_000);
        assert_eq!(effective_max_output_tokens(Some(100), &model), 100);
        assert_eq!(effective_max_output_tokens(Some(1_000_000), &model), 4_000);
    }

    #[test]
    fn request_shapes_are_read_from_both_dialects() {
        let openai = json!({
            "model": "gpt-4o", "stream": true, "max_completion_tokens": 50,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:..."}}
            ]}]
        });
        assert_eq!(
            read_request_shape(&openai),
            Ok(RequestShape {
                model: "gpt-4o".into(),
                stream: true,
                requested_max_output_tokens: Some(50),
                image_parts: 1
            })
        );
        let anthropic = json!({
            "model": "claude-sonnet-4-20250514", "max_tokens": 1024,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {}}, {"type": "image", "source": {}}]}]
        });
        let shape = read_request_shape(&anthropic).unwrap();
        assert_eq!(shape.image_parts, 2);
        assert!(!shape.stream);
        assert_eq!(shape.requested_max_output_tokens, Some(1024));
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let cases = [
            (json!([]), RequestShapeError::NotAnObject),
            (json!({"messages": [{}]}), RequestShapeError::MissingModel),
            (
                json!({"model": "", "messages": [{}]}),
                RequestShapeError::MissingModel,
            ),
            (json!({"model": "m"}), RequestShapeError::MissingMessages),
            (
                json!({"model": "m", "messages": []}),
                RequestShapeError::MissingMessages,
            ),
            (
                json!({"model": "m", "messages": [{}], "max_tokens": 0}),
                RequestShapeError::BadMaxTokens,
            ),
            (
                json!({"model": "m", "messages": [{}], "max_tokens": "lots"}),
                RequestShapeError::BadMaxTokens,
            ),
            (
                json!({"model": "m", "messages": [{}], "stream": "yes"}),
                RequestShapeError::BadStream,
            ),
            (
                json!({"model": "m", "messages": [{}], "stream": 1}),
                RequestShapeError::BadStream,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(read_request_shape(&body), Err(expected), "{body}");
        }
    }

    #[test]
    fn a_reservation_fits_only_within_the_headroom() {
        let budget = Budget {
            limit: Some(MicroDollars(1_000)),
            spent: MicroDollars(600),
            reserved: MicroDollars(300),
            overridden: false,
        };
        assert_eq!(budget.headroom(), Some(MicroDollars(100)));
        assert_eq!(budget.admit(MicroDollars(100)), Ok(()));
        let refused = budget.admit(MicroDollars(101)).unwrap_err();
        assert_eq!(refused.requested, MicroDollars(101));
        assert!(
            refused.message().contains("$0.001"),
            "{}",
            refused.message()
        );
        // No limit, or an override for the period: everything fits.
        let unlimited = Budget {
            limit: None,
            ..budget
        };
        assert_eq!(unlimited.admit(MicroDollars(u64::MAX)), Ok(()));
        let overridden = Budget {
            overridden: true,
            ..budget
        };
        assert_eq!(overridden.admit(MicroDollars(u64::MAX)), Ok(()));
        // Spend already past the limit (a limit lowered mid-month) leaves no headroom, no underflow.
        let lowered = Budget {
            limit: Some(MicroDollars(100)),
            ..budget
        };
        assert_eq!(lowered.headroom(), Some(MicroDollars::ZERO));
        assert!(!lowered.has_headroom());
        assert!(unlimited.has_headroom());
    }

    #[test]
    fn sequential_admissions_never_pass_the_limit() {
        // The rule the store's conditional write implements: admitting reservations one at a time,
        // in any order, never lets spent + reserved exceed the limit.
        let mut budget = Budget {
            limit: Some(MicroDollars(10_000)),
            spent: MicroDollars::ZERO,
            reserved: MicroDollars::ZERO,
            overridden: false,
        };
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..1_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let amount = MicroDollars(seed % 700);
            if budget.admit(amount).is_ok() {
                budget.reserved = budget.reserved.saturating_add(amount);
            }
            // Settle some reservations at a lower real cost.
            if seed.is_multiple_of(3) && budget.reserved.0 > 0 {
                let held = MicroDollars(budget.reserved.0.min(seed % 500));
                let settlement = settle(held, MicroDollars(held.0 / 2));
                budget.reserved = budget.reserved.saturating_sub(settlement.release);
                budget.spent = budget.spent.saturating_add(settlement.charge);
            }
            assert!(budget.spent.saturating_add(budget.reserved) <= budget.limit.unwrap());
        }
    }

    #[test]
    fn settlement_charges_the_real_cost_and_flags_an_overrun() {
        let normal = settle(MicroDollars(500), MicroDollars(120));
        assert_eq!(normal.release, MicroDollars(500));
        assert_eq!(normal.charge, MicroDollars(120));
        assert!(!normal.overran());
        assert!(settle(MicroDollars(100), MicroDollars(101)).overran());
    }

    #[test]
    fn the_budget_object_wakes_for_the_earliest_thing_it_holds() {
        let now = 1_000_000;
        assert_eq!(budget_wake_at(None, false, None, now), None);
        assert_eq!(
            budget_wake_at(Some(now + 5), true, Some(now), now),
            Some(now + 5),
            "an expiry before the retry"
        );
        assert_eq!(
            budget_wake_at(Some(now + MIRROR_RETRY_MS + 1), true, None, now),
            Some(now + MIRROR_RETRY_MS),
            "D1's retry before the expiry"
        );
        assert_eq!(
            budget_wake_at(None, false, Some(now - SETTLED_IDS_KEPT_MS - 10), now),
            Some(now),
            "overdue work is done now, never in the past"
        );
        assert_eq!(
            budget_wake_at(None, false, Some(now), now),
            Some(now + SETTLED_IDS_KEPT_MS)
        );
    }

    #[test]
    fn abandoned_reservations_are_those_older_than_any_call() {
        assert!(!reservation_abandoned(0, RESERVATION_TTL_MS - 1));
        assert!(reservation_abandoned(0, RESERVATION_TTL_MS));
    }

    #[test]
    fn billing_periods_are_utc_calendar_months() {
        // 2026-11-29T23:21:58Z
        let instant = 1_795_994_518_000;
        let period = BillingPeriod::containing(instant);
        assert_eq!(
            period,
            BillingPeriod {
                year: 2026,
                month: 11
            }
        );
        assert_eq!(period.key(), "2026-11");
        assert_eq!(day_key(instant), "2026-11-29");
        assert!(period.start_ms() <= instant && instant < period.end_ms());
        assert_eq!(
            period.next(),
            BillingPeriod {
                year: 2026,
                month: 12
            }
        );
        assert_eq!(
            BillingPeriod {
                year: 2026,
                month: 12
            }
            .next(),
            BillingPeriod {
                year: 2027,
                month: 1
            }
        );
        // The last millisecond of a month belongs to it; the next one to the next month.
        let december = BillingPeriod {
            year: 2026,
            month: 12,
        };
        assert_eq!(BillingPeriod::containing(december.start_ms() - 1), period);
        assert_eq!(BillingPeriod::containing(december.start_ms()), december);
        // Leap years and the epoch.
        assert_eq!(day_key(0), "1970-01-01");
        assert_eq!(
            day_key(
                BillingPeriod {
                    year: 2024,
                    month: 3
                }
                .start_ms()
                    - 1
            ),
            "2024-02-29"
        );
        assert_eq!(BillingPeriod::parse_key("2026-11"), Some(period));
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
            assert_eq!(BillingPeriod::parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_day_round_trips_through_the_calendar() {
        for days in -800_000..800_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn forecasts_use_history_medians_or_documented_defaults() {
        let model = model(1_000_000, 10_000_000);
        let history = |kind: &str| match kind {
            "coder" => vec![
                TokenUsage {
                    input_tokens: 100,
                    output_tokens: 10,
                },
                TokenUsage {
                    input_tokens: 300,
                    output_tokens: 30,
                },
                TokenUsage {
                    input_tokens: 200,
                    output_tokens: 20,
                },
            ],
            _ => vec![],
        };
        let forecast = forecast(&model, ["estimator", "coder"], history);
        assert_eq!(forecast.steps.len(), 2);
        assert!(!forecast.steps[0].from_history);
        assert_eq!(forecast.steps[0].usage, default_step_usage("estimator"));
        assert!(forecast.steps[1].from_history);
        assert_eq!(
            forecast.steps[1].usage,
            TokenUsage {
                input_tokens: 200,
                output_tokens: 20
            }
        );
        assert_eq!(forecast.steps[1].cost, MicroDollars(200 + 200));
        assert_eq!(
            forecast.total,
            forecast.steps[0].cost.saturating_add(MicroDollars(400))
        );
    }

    #[test]
    fn the_catalog_is_consistent() {
        let catalog = built_in_catalog();
        assert!(!catalog.is_empty());
        for (index, model) in catalog.iter().enumerate() {
            assert!(
                model.max_output_tokens <= model.context_window,
                "{}",
                model.id
            );
            assert!(
                model.price.input_per_million > MicroDollars::ZERO,
                "{}",
                model.id
            );
            assert_eq!(model.priced_on.len(), 10, "{}", model.id);
            assert!(
                catalog[index + 1..]
                    .iter()
                    .all(|other| other.id != model.id),
                "{} is listed twice",
                model.id
            );
            assert_eq!(catalog_model(&model.id).as_ref(), Some(model));
        }
        assert_eq!(catalog_model("no-such-model"), None);
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
    }

    #[test]
    fn an_account_price_wins_over_the_catalog_and_unknown_models_need_one() {
        let request = PriceModelRequest {
            provider: Provider::OpenaiCompatible,
            input_usd_per_million: "0".into(),
            output_usd_per_million: "0.5".into(),
            context_window: None,
            max_output_tokens: Some(1_000),
        };
        let local = request.to_model("llama3.2:1b", "2026-11-30").unwrap();
        assert_eq!(local.price.output_per_million, MicroDollars(500_000));
        assert_eq!(local.context_window, DEFAULT_CUSTOM_CONTEXT_WINDOW);
        assert_eq!(resolve_model("llama3.2:1b", &[]), None);
        assert_eq!(
            resolve_model("llama3.2:1b", std::slice::from_ref(&local)),
            Some(local.clone())
        );
        let mut cheaper = catalog_model("gpt-4o").unwrap();
        cheaper.price = Price::FREE;
        let catalog = account_catalog(vec![cheaper.clone(), local]);
        assert_eq!(catalog.len(), built_in_catalog().len() + 1);
        assert_eq!(resolve_model("gpt-4o", &[cheaper.clone()]), Some(cheaper));
        let bad = PriceModelRequest {
            input_usd_per_million: "-1".into(),
            ..request
        };
        let error = bad.to_model("m", "2026-11-30").unwrap_err();
        assert_eq!(error.code, crate::api::ErrorCode::ValidationFailed);
    }

    #[test]
    fn limits_parse_from_dollar_strings_and_groupings_name_their_column() {
        let request = SetLimitRequest {
            limit_usd: "12.50".into(),
        };
        assert_eq!(request.limit().unwrap(), MicroDollars(12_500_000));
        assert!(
            SetLimitRequest {
                limit_usd: "ten".into()
            }
            .limit()
            .is_err()
        );
        assert_eq!(SpendGrouping::parse("block").unwrap().column(), "block_id");
        assert!(SpendGrouping::parse("user").unwrap_err().contains("`day`"));
        assert_eq!(reservation_expires_at(1_000), 1_000 + RESERVATION_TTL_MS);
    }
}
