//! Progressive validation metrics: each prediction was made before the
//! model learned from its example, so these are honest out-of-sample
//! numbers over the whole stream.

use serde::Serialize;

use crate::ftrl::CLIP;

/// Running metrics of a binary classifier.
#[derive(Debug, Clone, Default)]
pub struct Progressive {
    /// Examples scored.
    pub count: u64,
    log_loss: f64,
    correct: u64,
    squared: f64,
    /// (prediction, positive) for AUC. Kept whole: AUC needs a ranking.
    scored: Vec<(f32, bool)>,
}

/// A summary of [`Progressive`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub examples: u64,
    pub logloss: f64,
    pub accuracy: f64,
    pub auc: f64,
    /// Root mean squared error of the probability (the Brier score's root).
    pub rmse: f64,
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
        self.scored.push((p as f32, positive));
        self.count += 1;
    }

    /// Area under the ROC curve: the probability that a random positive is
    /// scored above a random negative (ties count half).
    pub fn auc(&self) -> f64 {
        let mut s = self.scored.clone();
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        let positives = s.iter().filter(|x| x.1).count() as f64;
        let negatives = s.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return f64::NAN;
        }
        // Sum of the positives' ranks (1-based, ties averaged).
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < s.len() {
            let mut j = i;
            while j < s.len() && s[j].0 == s[i].0 {
                j += 1;
            }
            let avg_rank = (i + 1 + j) as f64 / 2.0;
            rank_sum += avg_rank * s[i..j].iter().filter(|x| x.1).count() as f64;
            i = j;
        }
        (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
    }

    pub fn report(&self) -> Report {
        let n = self.count.max(1) as f64;
        Report {
            examples: self.count,
            logloss: self.log_loss / n,
            accuracy: self.correct as f64 / n,
            auc: self.auc(),
            rmse: (self.squared / n).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
