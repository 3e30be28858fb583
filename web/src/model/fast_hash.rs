//! A fast hasher for the board's maps keyed by ids.
//!
//! A 20,000-block board's load builds several maps over every block (the blocks, their rectangles, the
//! spatial index, the summaries), and with the standard library's SipHash the hashing was the largest
//! single cost of building the board (a third of it, measured natively with
//! `examples/bench_board_model.rs`). The ids are random strings the server made (`blk_` and 16 hex
//! digits), so the board needs no protection against keys chosen to collide, only a cheap mix: this is
//! the multiply-and-rotate hash rustc uses for its own maps (FxHash), with the high bits of the last
//! product rotated down, since hashbrown picks buckets with the low bits.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map with [`FastHasher`]; build one with `FastMap::default()` (not `new`).
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A set with [`FastHasher`]; build one with `FastSet::default()` (not `new`).
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash: each word is folded in with a rotate, an xor and a multiply.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ids::BlockId;

    #[test]
    fn ids_that_differ_anywhere_spread_over_the_buckets() {
        // 4,096 ids that differ only in their last three hex digits, as the server's ids never would
        // but a seeded board does: the low bits that pick a bucket must still differ.
        let buckets: HashSet<u64> = (0..4096u64)
            .map(|n| {
                let id = BlockId::parse(&format!("blk_{n:016x}")).expect("an id");
                let mut hasher = FastHasher::default();
                std::hash::Hash::hash(&id, &mut hasher);
                hasher.finish() & 4095
            })
            .collect();
        assert!(
            buckets.len() > 2000,
            "{} of 4096 buckets used",
            buckets.len()
        );
    }

    #[test]
    fn a_fast_map_finds_what_it_holds() {
        let mut map: FastMap<BlockId, usize> = FastMap::default();
        for n in 0..1000usize {
            map.insert(BlockId::parse(&format!("blk_{n:016x}")).expect("an id"), n);
        }
        for n in 0..1000usize {
            let id = BlockId::parse(&format!("blk_{n:016x}")).expect("an id");
            assert_eq!(map.get(&id), Some(&n));
        }
    }
}
