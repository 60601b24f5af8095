//! A collisionless embedding table with frequency admission and expiry
//! (ByteDance Monolith, 2022).
//!
//! Hashing ids into a fixed table (as FTRL does with features) makes
//! popular and rare ids share rows; for embeddings that blurs exactly the
//! items a recommender must tell apart. So every admitted id gets its own
//! row, and memory is bounded another way:
//!
//! - **Admission.** An id gets a row only once it has been seen
//!   `min_count` times; until then only a small counter is kept. Most ids
//!   in a long tail are seen once and never cost a row.
//! - **Expiry.** A row not touched for `ttl` of event time is dropped, and
//!   so are stale counters. [`EmbeddingTable::expire`] runs as time passes.
//!
//! Rows start from a small random vector seeded by the id, so a replay
//! builds the same table.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Rng;

/// One admitted id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The embedding.
    pub vector: Vec<f32>,
    /// The id's bias.
    pub bias: f32,
    /// Event time of the id's last interaction (ms).
    pub last_seen: i64,
}

/// Rows by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingTable {
    /// Embedding size.
    pub dim: usize,
    min_count: u32,
    ttl_ms: i64,
    rows: HashMap<u64, Row>,
    /// Ids seen fewer than `min_count` times: (count, last seen).
    pending: HashMap<u64, (u32, i64)>,
    /// Rows dropped by expiry so far.
    pub expired: u64,
}

impl EmbeddingTable {
    /// An empty table: ids get a row after `min_count` sightings and lose it after `ttl_ms` unseen.
    pub fn new(dim: usize, min_count: u32, ttl_ms: i64) -> EmbeddingTable {
        EmbeddingTable {
            dim,
            min_count: min_count.max(1),
            ttl_ms,
            rows: HashMap::new(),
            pending: HashMap::new(),
            expired: 0,
        }
    }

    /// Counts a sighting of `id` at `ts`; true once it has a row.
    pub fn touch(&mut self, id: u64, ts: i64) -> bool {
        if let Some(row) = self.rows.get_mut(&id) {
            row.last_seen = row.last_seen.max(ts);
            return true;
        }
        let count = {
            let e = self.pending.entry(id).or_insert((0, ts));
            e.0 += 1;
            e.1 = e.1.max(ts);
            e.0
        };
        if count < self.min_count {
            return false;
        }
        self.pending.remove(&id);
        let mut rng = Rng(id ^ 0x005E_ED0F_EDD1);
        let scale = 0.1 / (self.dim as f64).sqrt();
        let vector = (0..self.dim)
            .map(|_| (rng.normal() * scale) as f32)
            .collect();
        self.rows.insert(
            id,
            Row {
                vector,
                bias: 0.0,
                last_seen: ts,
            },
        );
        true
    }

    /// The row of an admitted id.
    pub fn get(&self, id: u64) -> Option<&Row> {
        self.rows.get(&id)
    }

    /// The row of an admitted id, to update.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Row> {
        self.rows.get_mut(&id)
    }

    /// Two distinct rows at once, mutably.
    pub fn pair_mut(&mut self, a: u64, b: u64) -> Option<(&mut Row, &mut Row)> {
        match self.rows.get_disjoint_mut([&a, &b]) {
            [Some(x), Some(y)] => Some((x, y)),
            _ => None,
        }
    }

    /// Drops rows and counters not touched since `now − ttl`.
    pub fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.ttl_ms);
        let before = self.rows.len();
        self.rows.retain(|_, r| r.last_seen >= cutoff);
        self.expired += (before - self.rows.len()) as u64;
        self.pending.retain(|_, (_, last)| *last >= cutoff);
    }

    /// Admitted ids.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no id is admitted.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every admitted id and its row.
    pub fn ids(&self) -> impl Iterator<Item = (&u64, &Row)> {
        self.rows.iter()
    }

    /// Approximate bytes held: rows and counters.
    pub fn size_bytes(&self) -> usize {
        self.rows.len() * (self.dim * 4 + 24 + 8 + 16) + self.pending.len() * (8 + 16 + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_admitted_after_min_count_sightings_and_expire_when_stale() {
        let mut t = EmbeddingTable::new(8, 2, 1_000);
        assert!(!t.touch(7, 0), "seen once: only counted");
        assert!(t.touch(7, 10), "seen twice: admitted");
        assert!(!t.touch(9, 10));
        assert_eq!(t.len(), 1);
        t.touch(7, 1_500);
        t.expire(2_000);
        assert_eq!(t.len(), 1, "touched within the ttl");
        assert!(
            !t.touch(9, 2_000),
            "its stale counter was dropped: one sighting again"
        );
        t.expire(3_000);
        assert_eq!(t.len(), 0);
        assert_eq!(t.expired, 1);
        let (a, b) = (EmbeddingTable::new(8, 1, 10), EmbeddingTable::new(8, 1, 10));
        let (mut a, mut b) = (a, b);
        a.touch(42, 0);
        b.touch(42, 5);
        assert_eq!(
            a.get(42).unwrap().vector,
            b.get(42).unwrap().vector,
            "seeded by id"
        );
    }
}
