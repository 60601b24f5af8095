//! Recommenders that learn from every interaction: candidates and scores
//! for serving.
//!
//! - [`popularity::Popularity`]: items by exponentially decayed
//!   interaction count; the fallback for users nothing is known about.
//! - [`cooccurrence::CoOccurrence`]: "users who just engaged with X
//!   engage with Y next", with time decay.
//! - [`mf::StreamingMf`]: implicit matrix factorization trained by BPR
//!   (Rendle et al. 2009) one interaction at a time, on a collisionless
//!   embedding table ([`embeddings::EmbeddingTable`]) that admits ids by
//!   frequency and expires stale ones, so memory stays bounded (ByteDance
//!   Monolith's design).
//! - [`explore::Explorer`]: ε-greedy or Thompson sampling for cold items
//!   (off by default).
//! - [`rank::LearnedRanker`]: the second stage, an order over several
//!   recommenders' candidates learned from impressions and outcomes.
//! - [`eval::Prequential`]: test-then-train evaluation, HR@k and NDCG@k.

pub mod cooccurrence;
pub mod embeddings;
pub mod eval;
pub mod explore;
pub mod mf;
pub mod popularity;
pub mod rank;

#[cfg(test)]
mod movielens_tests;

/// A recommender that learns from a stream of interactions.
pub trait Recommender {
    /// `user` engaged with `item` at event time `ts` (ms).
    fn learn(&mut self, user: u64, item: u64, ts: i64);

    /// Up to `k` items for `user` as of `ts`, best first, with scores,
    /// leaving out items `exclude` says the user has seen. Empty if the
    /// model knows nothing to recommend to this user.
    fn recommend(
        &self,
        user: u64,
        ts: i64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)>;
}

/// log₂(2^a + 2^b) without overflow: how decayed weights kept in log
/// space (popularity, co-occurrence) are added.
pub(crate) fn log2_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (1.0 + (lo - hi).exp2()).log2()
}

/// SplitMix64: small, fast and deterministic, so a model trained twice on
/// the same stream is the same model (replays must be reproducible).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rng(pub u64);

/// SplitMix64's finalizer: a 64-bit value mixed so that every input bit
/// moves about half the output bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The next number of the stream (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
