//! `ftrl` and `linear` models inside a job: probed events to hashed
//! examples, then predict-then-learn.
//!
//! An event's inputs are its features (read as of just before it) and the
//! raw columns the spec names. They are hashed the way `eddy learn` hashes
//! a file's columns (one namespace per input, named after it; strings,
//! booleans and `categorical` inputs are categories, other numbers are
//! numbers; a list adds each element as a category), so a model trained
//! live and one trained with `eddy learn` over a backfill's training set
//! see the same examples.

use serde::{Deserialize, Serialize};

use crate::plan::{InputFrom, ModelInput, ModelKind, ModelPlan, Numeric};
use eddy_features::engine::task::ProbedRows;
use eddy_features::engine::value::Scalar;

use crate::ftrl::{Ftrl, Loss};
use crate::hashing::{Builder, FeatureHasher, Slot, Standardizer};
use crate::metrics::{Progressive, Regression};
use crate::{Learner, Rejected};

/// The learner and its progressive metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinearModel {
    /// The weights.
    pub ftrl: Ftrl,
    hasher: FeatureHasher,
    /// Progressive logloss, accuracy and AUC (`ftrl`).
    pub classification: Progressive,
    /// Progressive RMSE and MAE (`linear`).
    pub regression: Regression,
}

/// How a plan's inputs are hashed (rebuilt from the plan, not saved).
pub struct Inputs {
    inputs: Vec<(ModelInput, Slot)>,
    kind: ModelKind,
    numeric: Numeric,
    x: Vec<(u32, f32)>,
    /// The raw numbers of the example last hashed, for the standardizer.
    numbers: Vec<(u32, f64)>,
}

impl Inputs {
    /// The inputs of `plan`, with their namespaces' hashes.
    pub fn new(plan: &ModelPlan) -> Inputs {
        Inputs {
            inputs: plan
                .inputs
                .iter()
                .map(|i| (i.clone(), FeatureHasher::slot(&i.name, &i.name)))
                .collect(),
            kind: plan.kind(),
            numeric: plan.params.numeric(),
            x: Vec::with_capacity(64),
            numbers: Vec::new(),
        }
    }

    /// Hashes event `i` of `rows` into `self.x`.
    fn hash(
        &mut self,
        hasher: &FeatureHasher,
        standardizer: Option<&Standardizer>,
        rows: &ProbedRows,
        i: usize,
    ) -> Result<(), Rejected> {
        self.hash_with(hasher, standardizer, |input| match input.from {
            InputFrom::Column(c) => rows.columns[i][c].clone(),
            InputFrom::Feature(f) | InputFrom::KeyedFeature(f) => rows.features[f].get(i),
        })
        .map(|_| ())
    }

    /// Hashes the inputs `value` gives (serving builds them from the
    /// current features, the request and a candidate item), numbers
    /// standardized by `standardizer` (the model's, if it standardizes:
    /// [`crate::ftrl::Ftrl::standardizer`]).
    pub fn hash_with(
        &mut self,
        hasher: &FeatureHasher,
        standardizer: Option<&Standardizer>,
        mut value: impl FnMut(&ModelInput) -> Scalar,
    ) -> Result<&[(u32, f32)], Rejected> {
        let mut b = hasher.builder_with(standardizer.map(|s| (s, &mut self.numbers)));
        for (input, slot) in &self.inputs {
            add(&mut b, *slot, input, self.numeric, &value(input))?;
        }
        b.finish(&mut self.x);
        Ok(&self.x)
    }

    /// The model's inputs.
    pub fn inputs(&self) -> impl Iterator<Item = &ModelInput> {
        self.inputs.iter().map(|(i, _)| i)
    }

    /// The target of a label value, or why it cannot be one.
    fn target(&self, label: &Scalar) -> Result<f64, Rejected> {
        let y = match label {
            Scalar::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().ok_or(Rejected::BadLabel(f64::NAN))?,
        };
        if !y.is_finite() {
            return Err(Rejected::BadLabel(y));
        }
        Ok(match self.kind {
            // As `eddy learn` reads a label column: positive is 1.
            ModelKind::Ftrl => f64::from(u8::from(y > 0.0)),
            _ => y,
        })
    }
}

fn add(
    b: &mut Builder,
    slot: Slot,
    input: &ModelInput,
    numeric: Numeric,
    value: &Scalar,
) -> Result<(), Rejected> {
    let not_finite = |x: f64| Rejected::NotFinite {
        feature: input.name.clone(),
        value: x,
    };
    match value {
        Scalar::Null => Ok(()),
        Scalar::Bool(v) => {
            b.category(slot, if *v { b"true" } else { b"false" });
            Ok(())
        }
        Scalar::Str(s) => {
            b.category(slot, s.as_bytes());
            Ok(())
        }
        Scalar::Long(v) if input.categorical => {
            b.category(slot, v.to_string().as_bytes());
            Ok(())
        }
        Scalar::Double(v) if input.categorical => {
            b.category(slot, v.to_string().as_bytes());
            Ok(())
        }
        Scalar::Long(v) => b.number(slot, numeric.apply(*v as f64)).map_err(not_finite),
        Scalar::Double(v) => b.number(slot, numeric.apply(*v)).map_err(not_finite),
        Scalar::List(items) => {
            for item in items.iter() {
                match item {
                    Scalar::Null => {}
                    Scalar::Str(s) => b.category(slot, s.as_bytes()),
                    other => b.category(slot, other.key_text().as_bytes()),
                }
            }
            Ok(())
        }
    }
}

/// FTRL's settings of a linear model's plan. Only `ftrl` and `linear`
/// models are linear; the caller dispatches on the kind.
fn ftrl_config(plan: &ModelPlan) -> crate::ftrl::FtrlConfig {
    plan.params.ftrl().unwrap_or_default()
}

/// How a plan's examples are hashed.
pub fn hasher(plan: &ModelPlan) -> FeatureHasher {
    FeatureHasher::new(ftrl_config(plan).bits, plan.crosses.clone())
}

impl LinearModel {
    /// A model for `plan`, with every weight at zero.
    pub fn new(plan: &ModelPlan) -> LinearModel {
        let config = ftrl_config(plan);
        LinearModel {
            ftrl: Ftrl::new(config),
            hasher: FeatureHasher::new(config.bits, plan.crosses.clone()),
            classification: Progressive::default(),
            regression: Regression::default(),
        }
    }

    /// Predicts event `i` of `rows`, then learns its label; Err is why it
    /// was skipped (the model is untouched).
    pub fn learn(
        &mut self,
        inputs: &mut Inputs,
        rows: &ProbedRows,
        i: usize,
        label: &Scalar,
    ) -> Result<(), Rejected> {
        let y = inputs.target(label)?;
        inputs.hash(&self.hasher, self.ftrl.standardizer(), rows, i)?;
        let p = self.ftrl.learn(&inputs.x, y);
        self.ftrl.observe(&inputs.numbers);
        match self.ftrl.config.loss {
            Loss::Logistic => self.classification.add(p, y),
            Loss::Squared => self.regression.add(p, y),
        }
        Ok(())
    }

    /// Hashes event `i` of `rows` and predicts it, without learning: an
    /// example whose label comes later. Its numbers count for the
    /// standardizer now, in example order; it is learned later from
    /// exactly the features it was predicted with.
    pub fn predict(
        &mut self,
        inputs: &mut Inputs,
        rows: &ProbedRows,
        i: usize,
    ) -> Result<(Vec<(u32, f32)>, f64), Rejected> {
        inputs.hash(&self.hasher, self.ftrl.standardizer(), rows, i)?;
        let p = self.ftrl.predict(&inputs.x);
        self.ftrl.observe(&inputs.numbers);
        Ok((inputs.x.clone(), p))
    }

    /// Learns an example whose label arrived (or timed out); the metrics
    /// score `prediction`, made when the example arrived.
    pub fn learn_resolved(&mut self, x: &[(u32, f32)], y: f64, prediction: f64) {
        self.ftrl.learn(x, y);
        self.classification.add(prediction, y);
    }

    /// Examples learned.
    pub fn examples(&self) -> u64 {
        self.classification.count + self.regression.count
    }

    /// (metric, value) pairs for reports.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        match self.ftrl.config.loss {
            Loss::Logistic => {
                let r = self.classification.report();
                vec![
                    ("logloss", r.logloss),
                    ("auc", r.auc),
                    ("accuracy", r.accuracy),
                ]
            }
            Loss::Squared => {
                let r = self.regression.report();
                vec![("rmse", r.rmse), ("mae", r.mae)]
            }
        }
    }
}
