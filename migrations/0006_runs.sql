-- Migration: 0006_runs
-- Pipelines and runs (issue 13, ADR 14). The RunCoordinator Durable Object owns each run's state (its
-- own SQLite storage, checkpointed before every effect); D1 holds what the API lists and reads: the
-- custom pipelines of a workspace, and a projection of every run (status and summary), written by the
-- coordinator after each transition.

-- A workspace's own pipelines. The built-in ones (`build`, `quick`) come from `domain::pipeline` and are
-- never stored, so every workspace always has them and they cannot drift from the code.
CREATE TABLE pipelines (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- `domain::pipeline::Pipeline` as JSON (validated before it is stored).
    definition TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id)
) STRICT;

-- The runs of a workspace: the API's projection of each coordinator's state.
CREATE TABLE runs (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id TEXT NOT NULL PRIMARY KEY,
    block_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'blocked', 'paused', 'done', 'failed', 'cancelled')),
    -- 1 while the run is neither done nor cancelled: a block has at most one live run.
    live INTEGER NOT NULL CHECK (live IN (0, 1)),
    -- The dependencies a queued run still waits on (a JSON array of block ids).
    queued_on TEXT NOT NULL DEFAULT '[]',
    -- `domain::run::RunSummary` as JSON: what GET …/runs/:id answers.
    summary TEXT NOT NULL,
    -- The coordinator's starting state (`domain::run::RunState` before `start`) and what it needs to
    -- act (`worker_core::runs::RunContext`), so the sweep can re-create a coordinator that lost it.
    setup TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX runs_one_live_per_block ON runs (workspace_id, block_id) WHERE live = 1;
CREATE INDEX runs_by_workspace ON runs (workspace_id, created_at);
CREATE INDEX runs_live ON runs (live, status) WHERE live = 1;

-- Every run event already recorded in the workspace outbox, by (run, the run's own event number): a
-- coordinator that performs a stored Emit effect again after a restart records nothing twice.
CREATE TABLE run_events (
    run_id TEXT NOT NULL,
    run_seq INTEGER NOT NULL,
    workspace_seq INTEGER,
    PRIMARY KEY (run_id, run_seq)
) STRICT;
