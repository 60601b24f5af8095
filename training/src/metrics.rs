//! Progressive validation metrics: each prediction was made before the
//! model learned from its example, so these are honest out-of-sample
//! numbers over the whole stream.
//!
//! Memory is constant, so the metrics can run for as long as the stream
//! does: AUC comes from histograms of the positives' and negatives'
//! predictions in 65,536 equal bins, which differs from the exact value
//! only through pairs whose predictions fall in the same bin (counted as
//! ties), so by less than 1/65,536 of the pairs in the worst case.

use serde::Serialize;

use crate::ftrl::CLIP;

/// Running metrics of a binary classifier.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Progressive {
    /// Examples scored.
    pub count: u64,
    log_loss: f64,
    correct: u64,
    squared: f64,
    /// Per prediction bin: (negatives, positives).
    bins: Vec<(u64, u64)>,
}

/// Bins of the AUC histograms.
const BINS: usize = 1 << 16;

/// A summary of [`Progressive`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Examples scored.
    pub examples: u64,
    /// Mean log loss.
    pub logloss: f64,
    /// Share of examples on the right side of 0.5.
    pub accuracy: f64,
    /// Area under the ROC curve (from fixed histograms).
    pub auc: f64,
    /// Root mean squared error of the probability (the Brier score's root).
    pub rmse: f64,
    /// The logloss of predicting the examples' positive rate for every one
    /// of them (the label's entropy): a model above it is worse than no
    /// model.
    pub base_rate_logloss: f64,
}

impl Progressive {
    /// Records the prediction `p` for an example labeled `y` (0 or 1).
    pub fn add(&mut self, p: f64, y: f64) {
        let positive = y > 0.5;
        let q = p.clamp(CLIP, 1.0 - CLIP);
        self.log_loss -= if positive { q.ln() } else { (1.0 - q).ln() };
        if (p >= 0.5) == positive {
            self.correct += 1;
        }
        self.squared += (p - y) * (p - y);
        if self.bins.is_empty() {
            self.bins = vec![(0, 0); BINS];
        }
        let b = ((p.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        if positive {
            self.bins[b].1 += 1;
        } else {
            self.bins[b].0 += 1;
        }
        self.count += 1;
    }

    /// Area under the ROC curve: the probability that a random positive is
    /// scored above a random negative (ties, and pairs in one bin, count
    /// half).
    pub fn auc(&self) -> f64 {
        let positives: u64 = self.bins.iter().map(|b| b.1).sum();
        let negatives: u64 = self.bins.iter().map(|b| b.0).sum();
        if positives == 0 || negatives == 0 {
            return f64::NAN;
        }
        let mut below = 0u64;
        let mut wins = 0.0;
        for (neg, pos) in &self.bins {
            wins += *pos as f64 * (below as f64 + *neg as f64 / 2.0);
            below += neg;
        }
        wins / (positives as f64 * negatives as f64)
    }

    /// The metrics so far.
    pub fn report(&self) -> Report {
        let n = self.count.max(1) as f64;
        Report {
            examples: self.count,
            logloss: self.log_loss / n,
            accuracy: self.correct as f64 / n,
            auc: self.auc(),
            rmse: (self.squared / n).sqrt(),
            base_rate_logloss: self.base_rate_logloss(),
        }
    }

    /// The logloss of predicting the positive rate for every example.
    pub fn base_rate_logloss(&self) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let positives: u64 = self.bins.iter().map(|b| b.1).sum();
        let p = (positives as f64 / self.count as f64).clamp(CLIP, 1.0 - CLIP);
        -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
    }
}

/// Running metrics of a regressor (ratings).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Regression {
    /// Examples scored.
    pub count: u64,
    squared: f64,
    absolute: f64,
}

/// A summary of [`Regression`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegressionReport {
    /// Examples scored.
    pub examples: u64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
}

impl Regression {
    /// Scores one prediction against its target.
    pub fn add(&mut self, prediction: f64, y: f64) {
        let e = prediction - y;
        self.squared += e * e;
        self.absolute += e.abs();
        self.count += 1;
    }

    /// The metrics so far.
    pub fn report(&self) -> RegressionReport {
        let n = self.count.max(1) as f64;
        RegressionReport {
            examples: self.count,
            rmse: (self.squared / n).sqrt(),
            mae: self.absolute / n,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_base_rate_logloss_is_the_labels_entropy() {
        let mut m = Progressive::default();
        for i in 0..1000 {
            m.add(0.9, f64::from(u8::from(i % 4 == 0)));
        }
        let r = m.report();
        let p: f64 = 0.25;
        let entropy = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((r.base_rate_logloss - entropy).abs() < 1e-12);
        assert!(r.logloss > r.base_rate_logloss, "a bad model is above it");
    }

    use super::*;

    /// Exact AUC by comparing every pair: the reference.
    fn pairwise(scored: &[(f64, bool)]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (p, a) in scored.iter().filter(|x| x.1) {
            for (q, _) in scored.iter().filter(|x| !x.1) {
                pairs += 1.0;
                wins += if p > q {
                    1.0
                } else if p == q {
                    0.5
                } else {
                    0.0
                };
            }
            let _ = a;
        }
        wins / pairs
    }

    proptest::proptest! {
        #[test]
        fn histogram_auc_is_within_a_bin_of_the_exact_pairwise_auc(
            scored in proptest::collection::vec((0.0f64..1.0, proptest::bool::ANY), 2..300)
        ) {
            let mut m = Progressive::default();
            for (p, y) in &scored {
                m.add(*p, f64::from(*y));
            }
            let exact = pairwise(&scored);
            if exact.is_finite() {
                // Pairs sharing a bin are the only error; with these few
                // points and 65,536 bins they are rare.
                let same_bin = scored.iter().filter(|x| x.1).flat_map(|(p, _)| {
                    scored.iter().filter(|x| !x.1).filter(move |(q, _)| {
                        (p * BINS as f64) as usize == (q * BINS as f64) as usize
                    })
                }).count() as f64;
                let positives = scored.iter().filter(|x| x.1).count() as f64;
                let bound = 0.5 * same_bin / (positives * (scored.len() as f64 - positives));
                proptest::prop_assert!((m.auc() - exact).abs() <= bound + 1e-12);
            }
        }
    }

    #[test]
    fn auc_is_the_probability_a_positive_outranks_a_negative() {
        let mut m = Progressive::default();
        for (p, y) in [(0.9, 1.0), (0.8, 0.0), (0.7, 1.0), (0.1, 0.0)] {
            m.add(p, y);
        }
        // Pairs (pos, neg): (0.9,0.8) (0.9,0.1) (0.7,0.8)x (0.7,0.1): 3 of 4.
        assert!((m.auc() - 0.75).abs() < 1e-12);
        let mut tie = Progressive::default();
        tie.add(0.5, 1.0);
        tie.add(0.5, 0.0);
        assert!((tie.auc() - 0.5).abs() < 1e-12);
        let r = m.report();
        assert_eq!(r.accuracy, 0.75);
        assert!(
            (r.logloss - (-(0.9f64.ln() + 0.2f64.ln() + 0.7f64.ln() + 0.9f64.ln()) / 4.0)).abs()
                < 1e-12
        );
    }
}
