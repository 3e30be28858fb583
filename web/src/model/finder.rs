//! Find a block by its title (Ctrl+K): which blocks match what was typed, best first.

use domain::board::Level;
use domain::ids::BlockId;

use super::Board;

/// How many matches the finder lists.
pub const FINDER_LIMIT: usize = 12;

/// A block that matches, with what the finder shows for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: BlockId,
    pub title: String,
    pub level: Level,
    /// The title of its container (`None` at the top level).
    pub within: Option<String>,
}

/// The blocks whose title contains every word typed (case-insensitive), best first: a title that
/// starts with the query, then one with a word that does, then any other; shorter titles first within
/// each, then by title. An empty query finds nothing.
pub fn find(board: &Board, query: &str, limit: usize) -> Vec<Found> {
    let query = query.trim().to_lowercase();
    let words: Vec<&str> = query.split_whitespace().collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut ranked: Vec<(u8, usize, String, &domain::board::BoardBlock)> = board
        .blocks
        .values()
        .filter(|block| !block.archived)
        .filter_map(|block| {
            let title = block.title.to_lowercase();
            if !words.iter().all(|word| title.contains(word)) {
                return None;
            }
            let rank = if title.starts_with(&query) {
                0
            } else if title
                .split(|c: char| !c.is_alphanumeric())
                .any(|word| word.starts_with(words[0]))
            {
                1
            } else {
                2
            };
            Some((rank, title.len(), title, block))
        })
        .collect();
    ranked
        .sort_by(|a, b| (a.0, a.1, &a.2, a.3.id.as_str()).cmp(&(b.0, b.1, &b.2, b.3.id.as_str())));
    ranked
        .into_iter()
        .take(limit)
        .map(|(_, _, _, block)| Found {
            id: block.id.clone(),
            title: block.title.clone(),
            level: block.level,
            within: block
                .parent_id
                .as_ref()
                .and_then(|parent| board.blocks.get(parent))
                .map(|parent| parent.title.clone()),
        })
        .collect()
}

/// The highlighted row after an arrow key: wraps around; stays at 0 when there are no rows.
pub fn move_highlight(current: usize, rows: usize, down: bool) -> usize {
    if rows == 0 {
        return 0;
    }
    if down {
        (current + 1) % rows
    } else {
        (current + rows - 1) % rows
    }
}
