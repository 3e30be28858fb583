-- Migration: 0005_spend
-- The model gateway's spend cap (reserve, then settle; ADR 13), its ledger, per-account prices and
-- provider keys. Money is integer micro-dollars (domain::spend::MicroDollars); periods are UTC months
-- keyed `YYYY-MM` (domain::spend::BillingPeriod::key); times are milliseconds since the Unix epoch.

-- An account's monthly limit. No row: no limit.
CREATE TABLE spend_limits (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    limit_micros INTEGER NOT NULL CHECK (limit_micros >= 0),
    updated_by TEXT,
    updated_at INTEGER NOT NULL
) STRICT;

-- An admin lifted the limit for the rest of one period.
CREATE TABLE spend_overrides (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    period TEXT NOT NULL,
    granted_by TEXT,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, period)
) STRICT;

-- Running totals per (account, period), maintained in the same batch as every reservation and
-- settlement, so the reservation's conditional write compares against one row instead of summing
-- the ledger. `spent_micros` always equals the sum of the period's ledger rows.
CREATE TABLE spend_totals (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    period TEXT NOT NULL,
    spent_micros INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    PRIMARY KEY (account_id, period)
) STRICT;

-- Calls in flight: what each holds against its account's period.
CREATE TABLE spend_reservations (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    period TEXT NOT NULL,
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    workspace_id TEXT NOT NULL,
    block_id TEXT,
    run_id TEXT,
    step INTEGER,
    user_id TEXT,
    model TEXT NOT NULL
) STRICT;
CREATE INDEX spend_reservations_by_expiry ON spend_reservations (expires_at);

-- One row per settled call.
CREATE TABLE spend_ledger (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    period TEXT NOT NULL,
    day TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    block_id TEXT,
    run_id TEXT,
    step INTEGER,
    user_id TEXT,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL CHECK (cost_micros >= 0),
    latency_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;
CREATE INDEX spend_ledger_by_account ON spend_ledger (account_id, period);
CREATE INDEX spend_ledger_by_workspace ON spend_ledger (workspace_id, period);

-- Prices an admin set for models the built-in catalog does not know (a local model at 0).
CREATE TABLE account_model_prices (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    input_micros_per_million INTEGER NOT NULL CHECK (input_micros_per_million >= 0),
    output_micros_per_million INTEGER NOT NULL CHECK (output_micros_per_million >= 0),
    context_window INTEGER NOT NULL,
    max_output_tokens INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, model)
) STRICT;

-- Provider keys an admin configured for an account: AES-GCM ciphertext under a deployment secret,
-- never the key itself; only its last four characters are ever shown.
CREATE TABLE account_providers (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    base_url TEXT,
    key_ciphertext TEXT NOT NULL,
    key_last4 TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, provider)
) STRICT;

-- The model a workspace's runs use when a block does not name one.
ALTER TABLE workspaces ADD COLUMN default_model TEXT;
