-- Migration: 0004_board_json_rows
-- The snapshot now sends blocks and edges as compact JSON arrays (domain::board::{BoardBlockRow,
-- BoardEdge}); forget JSON stored in the earlier object form. The snapshot builds rows for NULLs on the
-- fly, and the next write of each block or edge stores the new form.
UPDATE blocks SET board_json = NULL;
UPDATE edges SET board_json = NULL;
