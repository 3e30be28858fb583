-- Sign-in hardening (issue #14).

-- Keys the deployment generates for itself. Only dev mode uses one today: its session-signing key,
-- random per deployment (no key is ever written in the source), kept here so sessions survive a
-- restart of `wrangler dev`. A real deployment signs with AUTH_SESSION_SECRET and stores nothing here.
CREATE TABLE deployment_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One rule for logins everywhere: GitHub compares them case-insensitively, and so do the lookups
-- (`COLLATE NOCASE`) and this index. A deployment holding two logins that differ only in case must
-- rename one before applying this migration.
CREATE UNIQUE INDEX users_login_nocase ON users (login COLLATE NOCASE);
