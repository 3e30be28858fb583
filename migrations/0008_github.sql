-- Migration: 0008_github
-- The GitHub App wired into the worker (issue 15, ADR 12). Projections of GitHub's state, kept true by
-- webhooks and on-demand refreshes; no token is ever stored here (installation tokens live in memory
-- until shortly before they expire).

-- An installation of the App. `account_id` is the cat-factory account it was connected to through the
-- setup callback (NULL while only a webhook has told us about it, or after a disconnect).
CREATE TABLE github_installations (
    installation_id INTEGER PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    account_login TEXT NOT NULL,
    suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX github_installations_by_account ON github_installations (account_id);

-- The repositories each installation can see (GitHub's numeric id survives renames).
CREATE TABLE github_repositories (
    repository_id INTEGER PRIMARY KEY NOT NULL,
    installation_id INTEGER NOT NULL REFERENCES github_installations (installation_id) ON DELETE CASCADE,
    full_name TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX github_repositories_by_installation ON github_repositories (installation_id, full_name);

-- A frame (service) linked to a repository, optionally a folder in it.
CREATE TABLE github_block_links (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    block_id TEXT NOT NULL,
    repository_id INTEGER NOT NULL,
    full_name TEXT NOT NULL,
    sub_directory TEXT,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, block_id)
) STRICT;
CREATE INDEX github_block_links_by_repository ON github_block_links (repository_id);

-- Tasks made from issues: (frame's workspace, repository, issue number) → task, so a second import
-- finds them and an `issues` delivery refreshes them. Unique per repository within a workspace.
CREATE TABLE github_imported_issues (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    repository_id INTEGER NOT NULL,
    issue_number INTEGER NOT NULL,
    block_id TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    url TEXT NOT NULL,
    PRIMARY KEY (workspace_id, repository_id, issue_number)
) STRICT;
CREATE INDEX github_imported_issues_by_repository ON github_imported_issues (repository_id, issue_number);

-- Pull requests (`domain::github::projection::PullRequestProjection` as JSON), keyed by repository and
-- number; `block_id` is the `cat/<block>` head branch's block, when it is one of ours.
CREATE TABLE github_pull_requests (
    repository_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    block_id TEXT,
    head_sha TEXT NOT NULL,
    projection TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, number)
) STRICT;
CREATE INDEX github_pull_requests_by_head ON github_pull_requests (repository_id, head_sha);

-- CI per commit (`CiRecord` as JSON): a check may arrive before the push that makes its commit a head.
CREATE TABLE github_ci_commits (
    repository_id INTEGER NOT NULL,
    head_sha TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, head_sha)
) STRICT;

-- A block's GitHub state as the board shows it (`domain::api::github::BlockGithub` as JSON): written
-- with every change to it, in the same plan as its `block.github` event.
CREATE TABLE github_block_state (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    block_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, block_id)
) STRICT;

-- Deliveries applied, by `X-GitHub-Delivery`: recorded in the same batch as their effects, so a
-- redelivery or a replay has no second effect.
CREATE TABLE github_webhook_deliveries (
    delivery_id TEXT PRIMARY KEY NOT NULL,
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
