-- Migration: 0003_board_json
-- Each block and edge keeps the JSON the board snapshot sends for it, written by the worker with every
-- change (from `domain::board::BoardBlock` / `Edge`), so reading a 10,000-block board is string
-- concatenation instead of building 30,000 JSON objects per read. NULL means "not written yet" (rows from
-- before this migration); the snapshot builds those on the fly.
ALTER TABLE blocks ADD COLUMN board_json TEXT;
ALTER TABLE edges ADD COLUMN board_json TEXT;
