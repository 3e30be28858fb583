-- Migration: 0002_accounts_and_board
-- People, accounts, workspaces, the board (blocks and dependency edges), and the event outbox.
-- Times are milliseconds since the Unix epoch. Ids are prefixed random hex (see domain::ids).

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    login TEXT NOT NULL UNIQUE,
    name TEXT,
    avatar_url TEXT,
    -- Bumped by "sign out everywhere": a session token carries the generation it was issued under.
    session_generation INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

-- How a user signs in: (provider, the provider's user id) → user. Logins can change; ids do not.
CREATE TABLE identities (
    provider TEXT NOT NULL CHECK (provider IN ('github', 'dev')),
    provider_user_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, provider_user_id)
) STRICT;
CREATE INDEX identities_by_user ON identities (user_id);

-- Session tokens revoked by logout, kept until they would have expired anyway.
CREATE TABLE revoked_sessions (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

-- Personal API tokens: only the SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('personal', 'org')),
    name TEXT NOT NULL,
    -- The user whose personal account this is (NULL for organisations).
    personal_user_id TEXT UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    CHECK ((kind = 'personal') = (personal_user_id IS NOT NULL))
) STRICT;

CREATE TABLE memberships (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_id)
) STRICT;
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    access_mode TEXT NOT NULL CHECK (access_mode IN ('account', 'restricted')),
    -- The sequence number of the workspace's last event; bumped in the same batch as every change.
    seq INTEGER NOT NULL DEFAULT 0,
    -- Bumped by every change to the edge set; an edge is validated (no cycle) against one version.
    edges_rev INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX workspaces_by_account ON workspaces (account_id);

CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) STRICT;
CREATE INDEX workspace_members_by_user ON workspace_members (user_id);

CREATE TABLE blocks (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('frame', 'module', 'task')),
    parent_id TEXT,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    requirements TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('planned', 'ready', 'in_progress', 'blocked', 'pr_ready', 'done')),
    x REAL NOT NULL,
    y REAL NOT NULL,
    width REAL NOT NULL,
    height REAL NOT NULL,
    repo_url TEXT,
    archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    rev INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id)
) STRICT;
CREATE INDEX blocks_by_parent ON blocks (workspace_id, parent_id);

CREATE TABLE edges (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    from_id TEXT NOT NULL,
    to_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, from_id, to_id)
) STRICT;
CREATE INDEX edges_by_to ON edges (workspace_id, to_id);

-- The outbox: one row per event, written in the same batch as the change it describes. `body` is the
-- event's JSON exactly as clients receive it. Delivery to the workspace's hub reads from here.
CREATE TABLE events (
    workspace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (workspace_id, seq)
) STRICT;
CREATE INDEX events_undelivered ON events (delivered_at) WHERE delivered_at IS NULL;

-- Preconditions of multi-statement writes (see worker/src/store.rs): the first statement of a batch
-- inserts a guard row only when the state the change was validated against still holds; every other
-- statement runs only if that row exists; the last deletes it. The batch is one transaction.
CREATE TABLE write_guards (
    id TEXT PRIMARY KEY NOT NULL
) STRICT;
