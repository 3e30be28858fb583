//! The spend cap's contract on SQLite (the same SQL D1 runs): reserve then settle, refusal that
//! writes nothing, many calls interleaved against a budget that fits only some, overrides, period
//! rollover and the sweep of abandoned reservations. Races are interleaved at the port, as in
//! `contract.rs`: every plan yields once before it executes, so all joined calls read (and decide)
//! before any of them writes.

mod common;

use common::{Seeded, TestRuntime, YieldOnce, seeded_store};
use domain::api::{ApiError, ErrorCode};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{AccountId, BlockId, UserId, WorkspaceId};
use domain::spend::{
    BillingPeriod, CallStatus, MicroDollars, RESERVATION_TTL_MS, SettledCall, SpendGrouping,
    TokenUsage,
};
use futures_executor::block_on;
use futures_util::future::join_all;
use worker_core::spend::{
    self, CallAttribution, CallOutcome, Reservation, ReserveRefused, SpendScope,
};
use worker_core::sqlite::{SqliteRows, SqliteStore};
use worker_core::{GuardedPlan, PlanOutcome, Statement, Store};

/// 2026-11-15T00:00:00Z.
const MID_NOVEMBER: i64 = 1_794_700_800_000;

struct Fixture {
    store: SqliteStore,
    runtime: TestRuntime,
    account: AccountId,
    workspace: WorkspaceId,
    admin: UserId,
}

fn fixture() -> Fixture {
    let Seeded {
        store,
        owner: admin,
        account,
        workspace,
    } = seeded_store("admin");
    Fixture {
        store,
        runtime: TestRuntime::fixed(MID_NOVEMBER),
        account,
        workspace,
        admin,
    }
}

impl Fixture {
    fn attribution(&self) -> CallAttribution {
        CallAttribution {
            account: self.account.clone(),
            workspace: self.workspace.clone(),
            block: Some(BlockId::from_random([0xdd; 8])),
            run: Some("run_1".to_owned()),
            step: Some(0),
            user: None,
            model: "gpt-4o-mini".to_owned(),
        }
    }

    fn set_limit(&self, dollars: u64) {
        block_on(spend::set_limit(
            &self.store,
            &self.runtime,
            &self.account,
            MicroDollars::from_dollars(dollars),
            Some(&self.admin),
        ))
        .unwrap();
    }

    fn reserve(&self, micros: u64) -> Result<Reservation, ReserveRefused> {
        block_on(spend::reserve(
            &self.store,
            &self.runtime,
            &self.attribution(),
            MicroDollars(micros),
        ))
    }

    fn settle(&self, reservation: &Reservation, cost: u64) -> worker_core::Committed<()> {
        block_on(spend::settle(
            &self.store,
            &self.runtime,
            reservation,
            &outcome(cost),
        ))
        .unwrap()
    }

    fn period(&self) -> BillingPeriod {
        BillingPeriod::containing(self.runtime.now.get())
    }

    fn budget(&self) -> domain::spend::Budget {
        block_on(spend::budget(&self.store, &self.account, self.period())).unwrap()
    }

    fn count(&self, table: &str) -> i64 {
        self.store
            .connection()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }
}

fn outcome(cost: u64) -> CallOutcome {
    CallOutcome {
        call: SettledCall {
            block_id: Some(BlockId::from_random([0xdd; 8])),
            run_id: Some("run_1".to_owned()),
            step: Some(0),
            model: "gpt-4o-mini".to_owned(),
            provider: "openai_compatible".to_owned(),
            usage: TokenUsage {
                input_tokens: 100,
                output_tokens: 20,
            },
            cost: MicroDollars(cost),
            status: CallStatus::Completed,
        },
        latency_ms: 12,
    }
}

fn exhausted(refused: ReserveRefused) -> ApiError {
    let error = ApiError::from(refused);
    assert_eq!(error.code, ErrorCode::BudgetExhausted);
    assert_eq!(error.status(), 402);
    error
}

#[test]
fn a_reservation_is_settled_into_the_ledger_with_its_event() {
    let f = fixture();
    f.set_limit(10);
    let reservation = f.reserve(3_000_000).unwrap();
    assert_eq!(f.budget().reserved, MicroDollars(3_000_000));
    assert_eq!(f.count("spend_reservations"), 1);

    let committed = f.settle(&reservation, 1_250_000);
    let budget = f.budget();
    assert_eq!(
        (budget.spent, budget.reserved),
        (MicroDollars(1_250_000), MicroDollars::ZERO)
    );
    assert_eq!(f.count("spend_reservations"), 0);
    assert_eq!(f.count("spend_ledger"), 1);
    assert_eq!(committed.events.len(), 1);
    let event: WorkspaceEvent = serde_json::from_str(&committed.events[0].body).unwrap();
    match event.payload {
        EventPayload::SpendChanged { call } => assert_eq!(call.cost, MicroDollars(1_250_000)),
        other => panic!("expected spend.changed, got {other:?}"),
    }
    assert_eq!(event.workspace_id, f.workspace);

    // Settling twice changes nothing.
    let again = f.settle(&reservation, 1_250_000);
    assert!(again.events.is_empty());
    assert_eq!(f.budget().spent, MicroDollars(1_250_000));

    let by_block = block_on(spend::breakdown(
        &f.store,
        SpendScope::Workspace(&f.workspace),
        f.period(),
        SpendGrouping::Block,
    ))
    .unwrap();
    assert_eq!(by_block.len(), 1);
    assert_eq!(
        (
            by_block[0].calls,
            by_block[0].cost,
            by_block[0].input_tokens
        ),
        (1, MicroDollars(1_250_000), 100)
    );
    let overview = block_on(spend::account_spend(&f.store, &f.account, f.period())).unwrap();
    assert_eq!(overview.headroom, Some(MicroDollars(8_750_000)));
    assert_eq!(overview.by_model[0].key.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(overview.by_day[0].key.as_deref(), Some("2026-11-15"));
}

#[test]
fn a_reservation_that_does_not_fit_is_refused_and_writes_nothing() {
    let f = fixture();
    f.set_limit(1);
    let held = f.reserve(600_000).unwrap();
    let error = exhausted(f.reserve(400_001).unwrap_err());
    let details = error.details.unwrap();
    assert_eq!(details["limitMicros"], 1_000_000);
    assert_eq!(details["reservedMicros"], 600_000);
    assert_eq!(details["requestedMicros"], 400_001);
    assert_eq!(f.count("spend_reservations"), 1);
    assert_eq!(f.budget().reserved, MicroDollars(600_000));
    assert_eq!(f.count("write_guards"), 0);
    // Exactly the rest fits.
    let rest = f.reserve(400_000).unwrap();
    assert_eq!(f.budget().headroom(), Some(MicroDollars::ZERO));
    f.settle(&held, 100_000);
    f.settle(&rest, 0);
    assert_eq!(f.budget().headroom(), Some(MicroDollars(900_000)));
}

#[test]
fn without_a_limit_every_call_is_admitted_and_still_metered() {
    let f = fixture();
    let reservation = f.reserve(50_000_000_000).unwrap();
    f.settle(&reservation, 7);
    assert_eq!(f.budget().spent, MicroDollars(7));
    assert_eq!(f.budget().limit, None);
}

/// The store, but every plan waits one turn before it executes: all joined calls read first.
struct RacingStore<'a> {
    inner: &'a SqliteStore,
}

impl Store for RacingStore<'_> {
    type Rows = SqliteRows;

    async fn read(&self, statements: Vec<Statement>) -> Result<Vec<SqliteRows>, ApiError> {
        YieldOnce(false).await;
        self.inner.read(statements).await
    }

    async fn execute(&self, plan: GuardedPlan) -> Result<PlanOutcome, ApiError> {
        YieldOnce(false).await;
        let outcome = self.inner.execute(plan).await;
        // The invariant holds after every single write, not only at the end.
        let (spent, reserved, limit): (i64, i64, i64) = self
            .inner
            .connection()
            .query_row(
                "SELECT COALESCE(SUM(spent_micros), 0), COALESCE(SUM(reserved_micros), 0),
                        (SELECT limit_micros FROM spend_limits)
                 FROM spend_totals",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert!(spent + reserved <= limit, "{spent} + {reserved} > {limit}");
        outcome
    }

    async fn write(&self, statements: Vec<Statement>) -> Result<Vec<usize>, ApiError> {
        self.inner.write(statements).await
    }
}

#[test]
fn fifty_interleaved_calls_never_take_spend_past_the_limit() {
    let f = fixture();
    f.set_limit(1); // $1 = 1,000,000 µ$
    let racing = RacingStore { inner: &f.store };
    let attribution = f.attribution();
    // Each call may cost up to 70,000 µ$ and really costs between 10,000 and 70,000: with every
    // call in flight at once only 14 bounds fit, and a settled call frees room for later ones.
    let calls = (0..50_u64).map(|index| {
        let racing = &racing;
        let runtime = &f.runtime;
        let attribution = &attribution;
        async move {
            let bound = MicroDollars(70_000);
            match spend::reserve(racing, runtime, attribution, bound).await {
                Ok(reservation) => {
                    let cost = 10_000 + (index * 7_919) % 60_001;
                    spend::settle(racing, runtime, &reservation, &outcome(cost))
                        .await
                        .unwrap();
                    Ok(cost)
                }
                Err(refused) => Err(ApiError::from(refused)),
            }
        }
    });
    let results = block_on(join_all(calls));
    let admitted: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    let refused: Vec<&ApiError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!admitted.is_empty() && !refused.is_empty(), "{admitted:?}");
    assert_eq!(admitted.len() + refused.len(), 50);
    for error in &refused {
        assert_eq!(error.code, ErrorCode::BudgetExhausted);
    }
    let ledger = block_on(spend::ledger_total(&f.store, &f.account, f.period())).unwrap();
    assert_eq!(
        ledger.0,
        admitted.iter().sum::<u64>(),
        "the ledger is every admitted call"
    );
    assert!(ledger <= MicroDollars::from_dollars(1), "{ledger} > $1");
    let budget = f.budget();
    assert_eq!(
        (budget.spent, budget.reserved),
        (ledger, MicroDollars::ZERO)
    );
    assert_eq!(f.count("spend_ledger") as usize, admitted.len());
}

#[test]
fn an_override_lifts_the_limit_for_the_rest_of_the_period_only() {
    let f = fixture();
    f.set_limit(1);
    let full = f.reserve(1_000_000).unwrap();
    f.settle(&full, 1_000_000);
    exhausted(f.reserve(1).unwrap_err());
    block_on(spend::grant_override(
        &f.store,
        &f.runtime,
        &f.account,
        f.period(),
        Some(&f.admin),
    ))
    .unwrap();
    let beyond = f.reserve(5_000_000).unwrap();
    f.settle(&beyond, 5_000_000);
    assert_eq!(f.budget().spent, MicroDollars(6_000_000));
    assert!(f.budget().overridden);

    // December: the override was for November; the limit applies again, from zero spend.
    f.runtime.now.set(f.period().next().start_ms());
    assert!(!f.budget().overridden);
    assert_eq!(f.budget().spent, MicroDollars::ZERO);
    exhausted(f.reserve(1_000_001).unwrap_err());
    f.reserve(1_000_000).unwrap();
}

#[test]
fn the_month_rolling_over_gives_a_fresh_budget() {
    let f = fixture();
    f.set_limit(2);
    let november = f.reserve(2_000_000).unwrap();
    exhausted(f.reserve(1).unwrap_err());
    // The last millisecond of November is still November.
    f.runtime.now.set(f.period().end_ms() - 1);
    exhausted(f.reserve(1).unwrap_err());
    f.runtime.now.set(f.period().end_ms());
    let december = f.reserve(2_000_000).unwrap();
    assert_eq!(december.period, november.period.next());
    // A call reserved in November and settled in December is charged to November.
    f.settle(&november, 1_500_000);
    let november_total =
        block_on(spend::ledger_total(&f.store, &f.account, november.period)).unwrap();
    assert_eq!(november_total, MicroDollars(1_500_000));
    assert_eq!(f.budget().spent, MicroDollars::ZERO);
    assert_eq!(f.budget().reserved, MicroDollars(2_000_000));
}

#[test]
fn the_sweep_releases_only_expired_reservations() {
    let f = fixture();
    f.set_limit(1);
    let crashed = f.reserve(700_000).unwrap();
    f.runtime.now.set(MID_NOVEMBER + 60_000);
    let live = f.reserve(300_000).unwrap();
    exhausted(f.reserve(1).unwrap_err());

    let swept = block_on(spend::sweep_expired_reservations(
        &f.store,
        MID_NOVEMBER + RESERVATION_TTL_MS - 1,
    ))
    .unwrap();
    assert_eq!(swept, 0);
    let swept = block_on(spend::sweep_expired_reservations(
        &f.store,
        MID_NOVEMBER + RESERVATION_TTL_MS,
    ))
    .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(f.budget().reserved, MicroDollars(300_000));
    assert_eq!(f.count("spend_reservations"), 1);

    // The crashed call settling late is still charged (the provider billed it), and releases
    // nothing twice.
    f.settle(&crashed, 200_000);
    f.settle(&live, 100_000);
    let budget = f.budget();
    assert_eq!(
        (budget.spent, budget.reserved),
        (MicroDollars(300_000), MicroDollars::ZERO)
    );
}

#[test]
fn account_prices_and_provider_keys_round_trip() {
    let f = fixture();
    let model = domain::spend::PriceModelRequest {
        provider: domain::spend::Provider::OpenaiCompatible,
        input_usd_per_million: "0".into(),
        output_usd_per_million: "0".into(),
        context_window: Some(8_192),
        max_output_tokens: Some(2_048),
    }
    .to_model("llama3.2:1b", "2026-11-15")
    .unwrap();
    block_on(spend::price_model(&f.store, &f.runtime, &f.account, &model)).unwrap();
    let mine = block_on(spend::custom_models(&f.store, &f.account)).unwrap();
    assert_eq!(mine, vec![model]);

    block_on(spend::save_provider(
        &f.store,
        &f.runtime,
        &f.account,
        domain::spend::Provider::Anthropic,
        None,
        "sealed-bytes",
        "abcd",
    ))
    .unwrap();
    let stored = block_on(spend::providers(&f.store, &f.account)).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].provider.as_str(), stored[0].key_last4.as_str()),
        ("anthropic", "abcd")
    );
}
