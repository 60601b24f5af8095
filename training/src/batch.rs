//! The batch baseline: logistic regression fit once by linfa (L-BFGS).
//!
//! It exists to be beaten: "retrain nightly, serve stale until tomorrow"
//! is the status quo the online learners replace, and `eddy train batch`
//! puts the two side by side on the same rows. The types are concrete so
//! linfa's generic code is compiled here, optimized even in test builds.

use linfa::prelude::*;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use ndarray::{Array1, Array2};

use crate::TrainingError;

/// A fitted logistic regression.
pub struct BatchLogistic {
    fitted: FittedLogisticRegression<f64, bool>,
}

impl BatchLogistic {
    /// Fits rows of `x` (already scaled) to labels `y`, with at most
    /// `max_iterations` solver steps.
    pub fn fit(
        x: Array2<f64>,
        y: &[bool],
        max_iterations: u64,
    ) -> Result<BatchLogistic, TrainingError> {
        let y: Array1<bool> = y.iter().copied().collect();
        let fitted = LogisticRegression::default()
            .max_iterations(max_iterations)
            .fit(&Dataset::new(x, y))
            .map_err(|e| {
                TrainingError::Fit(format!(
                    "{e} (both label values must occur in the training rows)"
                ))
            })?;
        Ok(BatchLogistic { fitted })
    }

    /// P(label = true) for each row of `x`.
    pub fn predict(&self, x: &Array2<f64>) -> Vec<f64> {
        // linfa reports the probability of its "positive" class, which is
        // the more frequent label, not necessarily `true`.
        let p = self.fitted.predict_probabilities(x);
        let flip = !self.fitted.labels().pos.class;
        p.iter().map(|p| if flip { 1.0 - p } else { *p }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probability_is_of_true_whichever_label_is_more_frequent() {
        // x > 0 means true; true is the rarer label.
        let xs: Vec<f64> = (0..200).map(|i| (i as f64 - 150.0) / 50.0).collect();
        let y: Vec<bool> = xs.iter().map(|x| *x > 0.0).collect();
        let x = Array2::from_shape_vec((200, 1), xs).unwrap();
        let m = BatchLogistic::fit(x, &y, 100).unwrap();
        let p = m.predict(&Array2::from_shape_vec((2, 1), vec![-2.0, 2.0]).unwrap());
        assert!(p[0] < 0.1 && p[1] > 0.9, "{p:?}");
        assert!(BatchLogistic::fit(Array2::zeros((3, 1)), &[true; 3], 10).is_err());
    }
}
