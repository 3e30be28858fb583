-- Migration: 0001_init
-- The first migration only records the schema's version for operators; the board's tables follow in
-- their own migrations. wrangler keeps its own `d1_migrations` table of what has been applied.
CREATE TABLE IF NOT EXISTS schema_info (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

INSERT OR REPLACE INTO schema_info (key, value) VALUES ('created_by', 'cat-factory');
