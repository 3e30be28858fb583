//! The spend cap's contract on SQLite (the same SQL D1 and the budget object's storage run): an
//! account's book (ADR 27) adopted from D1, reserve on the book then settle on the book and into
//! D1's ledger, refusal that writes nothing, many calls interleaved against a budget that fits only
//! some, overrides, period rollover, the expiry of abandoned reservations and the re-sending of
//! settlements D1 did not confirm. Races are interleaved at the port, as in `contract.rs`: every plan
//! yields once before it executes, so all joined calls read (and decide) before any of them writes.

mod common;

use common::{Seeded, TestRuntime, YieldOnce, seeded_store};
use domain::api::{ApiError, ErrorCode};
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{AccountId, BlockId, UserId, WorkspaceId};
use domain::spend::{
    BillingPeriod, MicroDollars, RESERVATION_TTL_MS, SETTLED_IDS_KEPT_MS, SpendGrouping,
};
use futures_executor::block_on;
use futures_util::future::join_all;
use worker_core::budget;
use worker_core::spend::{
    self, CallAttribution, CallOutcome, Reservation, ReserveRefused, SettlementRecord, SpendScope,
};
use worker_core::sqlite::{SqliteRows, SqliteStore};
use worker_core::{GuardedPlan, PlanOutcome, Runtime, Statement, Store};

/// 2026-11-15T00:00:00Z.
const MID_NOVEMBER: i64 = 1_794_700_800_000;

struct Fixture {
    /// D1: the ledger, the reports, the mirror of limits.
    store: SqliteStore,
    /// The account's budget object's storage.
    book: SqliteStore,
    runtime: TestRuntime,
    account: AccountId,
    workspace: WorkspaceId,
    admin: UserId,
}

fn empty_book() -> SqliteStore {
    SqliteStore::with_schema(budget::SCHEMA).unwrap()
}

/// Adopts `account`'s book from `store` (D1) into `book`, as a new budget object does.
fn adopt(
    store: &SqliteStore,
    book: &SqliteStore,
    runtime: &TestRuntime,
    account: &AccountId,
) -> bool {
    let adoption = block_on(spend::adoption(store, account)).unwrap();
    block_on(budget::adopt(
        book,
        runtime.guard_id().unwrap(),
        &adoption,
        runtime.now_ms(),
    ))
    .unwrap()
}

fn fixture() -> Fixture {
    let Seeded {
        store,
        owner: admin,
        account,
        workspace,
    } = seeded_store("admin");
    let runtime = TestRuntime::fixed(MID_NOVEMBER);
    let book = empty_book();
    assert!(adopt(&store, &book, &runtime, &account));
    Fixture {
        store,
        book,
        runtime,
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

    /// As the limit route does: D1's mirror (who set it), then the book.
    fn set_limit(&self, dollars: u64) {
        let limit = MicroDollars::from_dollars(dollars);
        block_on(spend::set_limit(
            &self.store,
            &self.runtime,
            &self.account,
            limit,
            Some(&self.admin),
        ))
        .unwrap();
        block_on(budget::set_limit(&self.book, limit)).unwrap();
    }

    fn reserve(&self, micros: u64) -> Result<Reservation, ReserveRefused> {
        block_on(spend::reserve(
            &self.book,
            &self.runtime,
            &self.attribution(),
            MicroDollars(micros),
        ))
    }

    /// As the budget object does: the book, then D1's ledger, then the book forgets the record.
    fn settle(&self, reservation: &Reservation, cost: u64) -> worker_core::Committed<()> {
        settle_both(&self.book, &self.store, &self.runtime, reservation, cost)
    }

    fn period(&self) -> BillingPeriod {
        BillingPeriod::containing(self.runtime.now.get())
    }

    fn budget(&self) -> domain::spend::Budget {
        block_on(budget::budget(&self.book, self.period())).unwrap()
    }

    fn count(&self, table: &str) -> i64 {
        count(&self.store, table)
    }
}

fn count(store: &SqliteStore, table: &str) -> i64 {
    store
        .connection()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

fn settle_both(
    book: &SqliteStore,
    store: &SqliteStore,
    runtime: &TestRuntime,
    reservation: &Reservation,
    cost: u64,
) -> worker_core::Committed<()> {
    let Some(record) = block_on(spend::settle_on_book(
        book,
        runtime,
        reservation,
        &outcome(cost),
    ))
    .unwrap() else {
        return worker_core::Committed {
            value: (),
            events: Vec::new(),
        };
    };
    let committed = block_on(spend::record_settlement(store, runtime, &record)).unwrap();
    block_on(budget::mirrored(
        book,
        std::slice::from_ref(&reservation.id),
    ))
    .unwrap();
    committed
}

fn outcome(cost: u64) -> CallOutcome {
    common::completed_call(
        Some(BlockId::from_random([0xdd; 8])),
        Some("run_1".to_owned()),
        cost,
    )
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
    assert_eq!(count(&f.book, "budget_open"), 1);
    assert_eq!(f.count("spend_reservations"), 0, "D1 holds no reservation");

    let committed = f.settle(&reservation, 1_250_000);
    let budget = f.budget();
    assert_eq!(
        (budget.spent, budget.reserved),
        (MicroDollars(1_250_000), MicroDollars::ZERO)
    );
    assert_eq!(count(&f.book, "budget_open"), 0);
    assert_eq!(count(&f.book, "budget_unmirrored"), 0);
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
    let overview = block_on(spend::account_spend(
        &f.store,
        &f.account,
        f.period(),
        f.budget(),
    ))
    .unwrap();
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
    assert_eq!(count(&f.book, "budget_open"), 1);
    assert_eq!(f.budget().reserved, MicroDollars(600_000));
    assert_eq!(count(&f.book, "write_guards"), 0);
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

#[test]
fn a_book_that_was_never_adopted_admits_nothing() {
    let f = fixture();
    let empty = empty_book();
    let refused = block_on(spend::reserve(
        &empty,
        &f.runtime,
        &f.attribution(),
        MicroDollars(1),
    ))
    .unwrap_err();
    assert!(matches!(refused, ReserveRefused::Failed(_)), "{refused:?}");
    assert_eq!(count(&empty, "budget_open"), 0);
}

/// The book, but every plan waits one turn before it executes: all joined calls read first.
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
                        (SELECT limit_micros FROM budget_account)
                 FROM budget_totals",
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
    let racing = RacingStore { inner: &f.book };
    let attribution = f.attribution();
    // Each call may cost up to 70,000 µ$ and really costs between 10,000 and 70,000: with every
    // call in flight at once only 14 bounds fit, and a settled call frees room for later ones.
    let calls = (0..50_u64).map(|index| {
        let racing = &racing;
        let runtime = &f.runtime;
        let attribution = &attribution;
        let store = &f.store;
        async move {
            let bound = MicroDollars(70_000);
            match spend::reserve(racing, runtime, attribution, bound).await {
                Ok(reservation) => {
                    let cost = 10_000 + (index * 7_919) % 60_001;
                    let record =
                        spend::settle_on_book(racing, runtime, &reservation, &outcome(cost))
                            .await
                            .unwrap()
                            .expect("settled once");
                    spend::record_settlement(store, runtime, &record)
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
    block_on(budget::grant_override(&f.book, f.period())).unwrap();
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
fn the_alarm_releases_only_expired_reservations_and_forgets_old_settled_ids() {
    let f = fixture();
    f.set_limit(1);
    let crashed = f.reserve(700_000).unwrap();
    f.runtime.now.set(MID_NOVEMBER + 60_000);
    let live = f.reserve(300_000).unwrap();
    exhausted(f.reserve(1).unwrap_err());
    let pending = block_on(budget::pending(&f.book)).unwrap();
    assert_eq!(
        pending.earliest_expiry_ms,
        Some(MID_NOVEMBER + RESERVATION_TTL_MS)
    );

    let expire =
        |now: i64| block_on(budget::expire(&f.book, now, now - SETTLED_IDS_KEPT_MS)).unwrap();
    assert_eq!(expire(MID_NOVEMBER + RESERVATION_TTL_MS - 1), 0);
    assert_eq!(expire(MID_NOVEMBER + RESERVATION_TTL_MS), 1);
    assert_eq!(f.budget().reserved, MicroDollars(300_000));
    assert_eq!(count(&f.book, "budget_open"), 1);

    // The crashed call settling late is still charged (the provider billed it), and releases
    // nothing twice.
    f.settle(&crashed, 200_000);
    f.settle(&live, 100_000);
    let budget = f.budget();
    assert_eq!(
        (budget.spent, budget.reserved),
        (MicroDollars(300_000), MicroDollars::ZERO)
    );
    // Settled ids are remembered (a repeat charges nothing) until they are old enough to forget.
    f.settle(&live, 100_000);
    assert_eq!(f.budget().spent, MicroDollars(300_000));
    assert_eq!(count(&f.book, "budget_settled"), 2);
    expire(MID_NOVEMBER + SETTLED_IDS_KEPT_MS + 60_000 + 1);
    assert_eq!(count(&f.book, "budget_settled"), 0);
}

#[test]
fn a_settlement_d1_did_not_take_is_kept_and_sent_again_once() {
    let f = fixture();
    let reservation = f.reserve(5_000).unwrap();
    // The book settles; the write to D1 never happens (the worker died, D1 refused).
    let record = block_on(spend::settle_on_book(
        &f.book,
        &f.runtime,
        &reservation,
        &outcome(4_000),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        f.budget().spent,
        MicroDollars(4_000),
        "the cap counts it at once"
    );
    assert_eq!(f.count("spend_ledger"), 0);
    let waiting = block_on(budget::unmirrored(&f.book, 10)).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].id, reservation.id);
    let kept: SettlementRecord = serde_json::from_str(&waiting[0].record).unwrap();
    assert_eq!(kept, record);
    assert!(block_on(budget::pending(&f.book)).unwrap().unmirrored > 0);

    // The alarm sends it; a second send (its confirmation was lost) writes nothing more.
    let first = block_on(spend::record_settlement(&f.store, &f.runtime, &kept)).unwrap();
    let second = block_on(spend::record_settlement(&f.store, &f.runtime, &kept)).unwrap();
    assert_eq!((first.events.len(), second.events.len()), (1, 0));
    block_on(budget::mirrored(
        &f.book,
        std::slice::from_ref(&reservation.id),
    ))
    .unwrap();
    assert_eq!(f.count("spend_ledger"), 1);
    assert_eq!(
        block_on(spend::ledger_total(&f.store, &f.account, f.period())).unwrap(),
        MicroDollars(4_000)
    );
    assert!(
        block_on(budget::unmirrored(&f.book, 10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_new_book_adopts_what_d1_held_once() {
    let f = fixture();
    let period = f.period().key();
    // D1 as it was before budget objects: a limit, an override, settled spend and a reservation.
    f.store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO spend_limits (account_id, limit_micros, updated_at) VALUES ('{a}', 5000000, 1);
             INSERT INTO spend_overrides (account_id, period, granted_at) VALUES ('{a}', '2026-10', 1);
             INSERT INTO spend_totals (account_id, period, spent_micros, reserved_micros) VALUES ('{a}', '{period}', 1000000, 250000);
             INSERT INTO spend_reservations (id, account_id, period, amount_micros, created_at, expires_at, workspace_id, model)
                 VALUES ('rsv_old', '{a}', '{period}', 250000, {now}, {expires}, '{w}', 'gpt-4o-mini');",
            a = f.account.as_str(),
            w = f.workspace.as_str(),
            now = MID_NOVEMBER,
            expires = MID_NOVEMBER + RESERVATION_TTL_MS,
        ))
        .unwrap();
    let book = empty_book();
    assert!(!block_on(budget::adopted(&book)).unwrap());
    assert!(adopt(&f.store, &book, &f.runtime, &f.account));
    let adopted = block_on(budget::budget(&book, f.period())).unwrap();
    assert_eq!(adopted.limit, Some(MicroDollars(5_000_000)));
    assert_eq!(adopted.spent, MicroDollars(1_000_000));
    assert_eq!(adopted.reserved, MicroDollars(250_000));
    assert!(!adopted.overridden);
    let october = BillingPeriod {
        year: 2026,
        month: 10,
    };
    assert!(block_on(budget::budget(&book, october)).unwrap().overridden);

    // A second adoption (two first requests raced) changes nothing.
    block_on(budget::set_limit(&book, MicroDollars(9))).unwrap();
    assert!(!adopt(&f.store, &book, &f.runtime, &f.account));
    assert_eq!(
        block_on(budget::budget(&book, f.period())).unwrap().limit,
        Some(MicroDollars(9))
    );
    // D1 forgets the reservations the book took over.
    block_on(spend::forget_adopted_reservations(&f.store, &f.account)).unwrap();
    assert_eq!(f.count("spend_reservations"), 0);
    // The adopted reservation settles on the book like any other.
    let old = Reservation {
        id: "rsv_old".to_owned(),
        period: f.period(),
        amount: MicroDollars(250_000),
        reserved_at_ms: MID_NOVEMBER,
        attribution: f.attribution(),
    };
    settle_both(&book, &f.store, &f.runtime, &old, 100_000);
    let settled = block_on(budget::budget(&book, f.period())).unwrap();
    assert_eq!(
        (settled.spent, settled.reserved),
        (MicroDollars(1_100_000), MicroDollars::ZERO)
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
