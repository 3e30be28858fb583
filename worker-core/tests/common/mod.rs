//! What the worker core's contract suites share: a runtime whose clock and random source the test
//! owns, a store seeded with one account, owner and workspace, and the one-turn yield that lets joined
//! commands interleave at the port.

#![allow(dead_code)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use domain::ids::{AccountId, BlockId, UserId, WorkspaceId};
use domain::spend::{CallStatus, MicroDollars, SettledCall, TokenUsage};
use worker_core::spend::CallOutcome;
use worker_core::sqlite::SqliteStore;
use worker_core::{EntropyUnavailable, Runtime};

/// A clock the test owns and a counter as the random source. A ticking clock moves one millisecond
/// per reading (so every write gets a distinct time); a fixed one moves only when the test sets it.
pub struct TestRuntime {
    pub now: Cell<i64>,
    pub counter: Cell<u64>,
    ticking: bool,
    /// While set, every draw fails as a runtime's crypto source can (`EntropyUnavailable`).
    pub entropy_fails: Cell<bool>,
}

impl TestRuntime {
    pub fn ticking(start_ms: i64) -> TestRuntime {
        TestRuntime {
            now: Cell::new(start_ms),
            counter: Cell::new(1),
            ticking: true,
            entropy_fails: Cell::new(false),
        }
    }

    pub fn fixed(at_ms: i64) -> TestRuntime {
        TestRuntime {
            now: Cell::new(at_ms),
            counter: Cell::new(1),
            ticking: false,
            entropy_fails: Cell::new(false),
        }
    }
}

impl Runtime for TestRuntime {
    fn now_ms(&self) -> i64 {
        if self.ticking {
            self.now.set(self.now.get() + 1);
        }
        self.now.get()
    }

    fn random_bytes(&self) -> Result<[u8; 8], EntropyUnavailable> {
        if self.entropy_fails.get() {
            return Err(EntropyUnavailable);
        }
        self.counter.set(self.counter.get() + 1);
        Ok(self.counter.get().to_be_bytes())
    }
}

/// The rows [`seeded_store`] made.
pub struct Seeded {
    pub store: SqliteStore,
    pub owner: UserId,
    pub account: AccountId,
    pub workspace: WorkspaceId,
}

/// An in-memory store with `migrations/` applied, one user (`owner_login`) who administers their
/// personal account, and one workspace in it open to the account.
pub fn seeded_store(owner_login: &str) -> Seeded {
    let store = SqliteStore::in_memory().expect("migrations apply to SQLite");
    let owner = UserId::from_random([0xaa; 8]);
    let account = AccountId::from_random([0xbb; 8]);
    let workspace = WorkspaceId::from_random([0xcc; 8]);
    store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO users (id, login, created_at) VALUES ('{owner}', '{owner_login}', 1);
             INSERT INTO accounts (id, kind, name, personal_user_id, created_at) VALUES ('{account}', 'personal', '{owner_login}', '{owner}', 1);
             INSERT INTO memberships (account_id, user_id, role, created_at) VALUES ('{account}', '{owner}', 'admin', 1);
             INSERT INTO workspaces (id, account_id, name, access_mode, created_by, created_at, updated_at)
                 VALUES ('{workspace}', '{account}', 'Board', 'account', '{owner}', 1, 1);"
        ))
        .unwrap();
    Seeded {
        store,
        owner,
        account,
        workspace,
    }
}

/// A future that is pending once, so a joined command gets to run in between: the shape of two
/// requests that both read before either writes.
pub struct YieldOnce(pub bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            context.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A completed gateway call on `gpt-4o-mini` (100 tokens in, 20 out) that cost `cost` µ$, for block
/// `block` of run `run`'s first step: what a settlement records.
pub fn completed_call(block: Option<BlockId>, run: Option<String>, cost: u64) -> CallOutcome {
    CallOutcome {
        call: SettledCall {
            block_id: block,
            run_id: run,
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
