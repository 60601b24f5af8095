//! The label joiner lives in `eddy_features::engine::delayed`, shared by
//! the online learner and the training sets of `eddy backfill --model`;
//! this module keeps its name here and the test that a model trained
//! through it learns delayed clicks.

pub use eddy_features::engine::delayed::{LabelJoiner, Resolved};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Learner;
    use crate::ftrl::{Ftrl, FtrlConfig, sigmoid};
    use crate::hashing::{FeatureHasher, Value};
    use crate::metrics::Progressive;
    use crate::recommend::Rng;

    /// Impressions whose clicks arrive later (some after the window): the
    /// joiner plus FTRL learns P(click within the window) about as well as
    /// the Bayes-optimal predictor.
    #[test]
    fn a_model_trained_through_the_joiner_learns_delayed_clicks() {
        let mut rng = Rng(3);
        let hasher = FeatureHasher::new(16, Vec::new());
        let (nu, ni) = (FeatureHasher::namespace("u"), FeatureHasher::namespace("i"));
        let users: Vec<f64> = (0..200).map(|_| rng.normal()).collect();
        let items: Vec<f64> = (0..50).map(|_| rng.normal()).collect();
        let window = 60_000;
        let mut model = Ftrl::new(FtrlConfig {
            bits: 16,
            ..FtrlConfig::default()
        });
        let mut joiner: LabelJoiner<u64, Vec<(u32, f32)>> = LabelJoiner::new(window, 100_000);
        let (mut learned, mut bayes) = (Progressive::default(), Progressive::default());
        // (click time, impression id), in time order as they would arrive.
        let mut clicks: std::collections::BTreeSet<(i64, u64)> = Default::default();
        let learn = |r: Resolved<Vec<(u32, f32)>>, m: &mut Ftrl, l: &mut Progressive| {
            l.add(r.prediction, r.label);
            m.learn(&r.features, r.label);
        };
        for id in 0..200_000u64 {
            let ts = id as i64 * 1_000;
            while let Some(&(ct, cid)) = clicks.first() {
                if ct > ts {
                    break;
                }
                clicks.pop_first();
                if let Some(r) = joiner.labeled(&cid, ct) {
                    learn(r, &mut model, &mut learned);
                }
            }
            for r in joiner.advance(ts) {
                learn(r, &mut model, &mut learned);
            }
            let (u, i) = (
                (rng.next_u64() % 200) as usize,
                (rng.next_u64() % 50) as usize,
            );
            let p_click = sigmoid(-1.0 + 0.7 * users[u] + 0.7 * items[i]);
            // Delay: exponential, mean 30 s; past 60 s the click is too late.
            let delay = (-30_000.0 * rng.uniform().max(1e-12).ln()) as i64;
            let p_within = p_click * (1.0 - (-(window as f64) / 30_000.0).exp());
            if rng.uniform() < p_click {
                clicks.insert((ts + delay, id));
            }
            let mut b = hasher.builder();
            b.add(nu, "user", Value::Category(&u.to_string())).unwrap();
            b.add(ni, "item", Value::Category(&i.to_string())).unwrap();
            let mut x = Vec::new();
            b.finish(&mut x);
            let p = model.predict(&x);
            for r in joiner.predicted(id, ts, x, p) {
                learn(r, &mut model, &mut learned);
            }
            let y = f64::from(
                clicks
                    .iter()
                    .any(|(ct, cid)| *cid == id && *ct <= ts + window),
            );
            bayes.add(p_within, y);
        }
        let (got, best) = (learned.report(), bayes.report());
        assert!(
            joiner.len() < 100,
            "only the last window is pending: {}",
            joiner.len()
        );
        assert!(
            got.logloss / best.logloss < 1.03,
            "joined {got:?} vs Bayes-optimal {best:?}"
        );
    }
}
