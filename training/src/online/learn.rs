//! How a model learns a task's probed events: which are examples (the
//! filter), which already learned before a restart (skipped), labels in
//! the event or delayed through the joiner, every skipped example counted
//! by reason.

use super::*;

impl Online {
    pub(super) fn learn(&mut self, partition: i32, rows: &ProbedRows) {
        let until = self
            .state
            .learned_until
            .get(&partition)
            .copied()
            .unwrap_or(i64::MIN);
        let mine: Vec<usize> = (0..rows.len())
            .filter(|i| rows.sources[*i] == self.source || rows.sources[*i] == self.label_source)
            .collect();
        let fresh: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|i| rows.ts[*i] > until)
            .collect();
        self.state.replayed += (mine.len() - fresh.len()) as u64;
        if fresh.is_empty() {
            return;
        }
        // Which events are examples and which are labels: one source may
        // carry both (views and clicks), told apart by the filters.
        let of = |source: usize| -> Vec<usize> {
            fresh
                .iter()
                .copied()
                .filter(|i| rows.sources[*i] == source)
                .collect()
        };
        let examples = self.held(partition, rows, &of(self.source), false);
        if self.state.pending.is_some() {
            let labels = self.held(partition, rows, &of(self.label_source), true);
            self.learn_delayed(partition, rows, &fresh, &examples, &labels);
        } else {
            self.learn_labeled(partition, rows, &examples);
        }
        let last = fresh.iter().map(|i| rows.ts[*i]).max().unwrap_or(until);
        self.state.learned_until.insert(partition, last.max(until));
        let next = fresh
            .iter()
            .map(|i| rows.offsets[*i] + 1)
            .max()
            .unwrap_or(0);
        let offset = self.state.offsets.entry(partition).or_default();
        *offset = (*offset).max(next);
        self.dirty = true;
    }

    /// The rows among `candidates` that the model's filter (or, for
    /// `labels`, the delayed label's filter) holds. A filter that fails on
    /// an event is counted, and the event left out.
    fn held(
        &mut self,
        partition: i32,
        rows: &ProbedRows,
        candidates: &[usize],
        labels: bool,
    ) -> Vec<usize> {
        let condition = if labels {
            &mut self.labels
        } else {
            &mut self.examples
        };
        let Some(condition) = condition else {
            return candidates.to_vec();
        };
        condition.label(
            candidates
                .iter()
                .map(|i| (partition, rows.offsets[*i], rows.columns[*i].clone()))
                .collect(),
        );
        let mut out = Vec::with_capacity(candidates.len());
        for &i in candidates {
            match condition.take(partition, rows.offsets[i]) {
                Some((Scalar::Bool(true), _)) => out.push(i),
                Some(_) => {}
                None => {
                    let (reason, which) = if labels {
                        ("label_filter_error", "delayed label's filter")
                    } else {
                        ("filter_error", "filter")
                    };
                    self.state.skip(reason, || {
                        format!(
                            "partition {partition} offset {}: the {which} failed",
                            rows.offsets[i]
                        )
                    });
                }
            }
        }
        out
    }

    /// Examples whose label is in the event.
    fn learn_labeled(&mut self, partition: i32, rows: &ProbedRows, fresh: &[usize]) {
        let every = self.plan.params.evaluate_every();
        let labels: Vec<Option<Scalar>> = match &mut self.labeler {
            None => vec![Some(Scalar::Bool(true)); fresh.len()],
            Some(labeler) => {
                labeler.label(
                    fresh
                        .iter()
                        .map(|i| (partition, rows.offsets[*i], rows.columns[*i].clone()))
                        .collect(),
                );
                fresh
                    .iter()
                    .map(|i| labeler.take(partition, rows.offsets[*i]).map(|l| l.0))
                    .collect()
            }
        };
        let at = |i: usize| format!("partition {partition} offset {}", rows.offsets[i]);
        for (&i, label) in fresh.iter().zip(labels) {
            let label = match label {
                None => {
                    self.state.skip("label_error", || {
                        format!("{}: the label expression failed", at(i))
                    });
                    continue;
                }
                Some(Scalar::Null) => {
                    self.state
                        .skip("label_null", || format!("{}: the label is null", at(i)));
                    continue;
                }
                Some(l) => l,
            };
            match &mut self.state.body {
                Body::Linear(m) => {
                    let inputs = self.inputs.as_mut().expect("linear models hash inputs");
                    if let Err(why) = m.learn(inputs, rows, i, &label) {
                        let reason = match why {
                            crate::Rejected::NotFinite { .. } => "not_finite",
                            crate::Rejected::BadLabel(_) => "bad_label",
                        };
                        self.state.skip(reason, || format!("{}: {why}", at(i)));
                    }
                }
                Body::Recommender(m) => {
                    if !matches!(label, Scalar::Bool(true)) {
                        continue;
                    }
                    let item = self
                        .plan
                        .item
                        .as_ref()
                        .map_or(Scalar::Null, |(c, _)| rows.columns[i][*c].clone());
                    if !m.learn(&rows.keys[i], &item, rows.ts[i], every) {
                        self.state
                            .skip("null_id", || format!("{}: the user or item is null", at(i)));
                    }
                }
            }
        }
    }

    /// Examples labeled later by events of another source: each example is
    /// predicted and held; a label event within the window resolves it as
    /// a positive, the end of the window as a negative. Metrics score the
    /// prediction made when the example arrived, which is what was served.
    ///
    /// `fresh` is every new row of either source, in release order;
    /// `examples` and `labels` are the rows among them that are examples
    /// and labels. A row that is both is a label first: it resolves an
    /// earlier example, then waits for its own.
    fn learn_delayed(
        &mut self,
        partition: i32,
        rows: &ProbedRows,
        fresh: &[usize],
        examples: &[usize],
        labels: &[usize],
    ) {
        let Body::Linear(model) = &mut self.state.body else {
            return;
        };
        let delayed = self.plan.delayed.as_ref().expect("delayed");
        let pending = self
            .state
            .pending
            .as_mut()
            .expect("delayed")
            .entry(partition)
            .or_insert_with(|| LabelJoiner::new(delayed.within_ms, delayed.max_pending));
        let inputs = self.inputs.as_mut().expect("linear models hash inputs");
        let on = delayed.on;
        let mut resolved = Vec::new();
        let mut skips = Vec::new();
        let (mut e, mut l) = (0, 0);
        for &i in fresh {
            let mut label = None;
            if labels.get(l) == Some(&i) {
                l += 1;
                label = join_key(&rows.keys[i], on.map(|(_, c)| &rows.columns[i][c]));
            }
            let mut example = None;
            if examples.get(e) == Some(&i) {
                e += 1;
                let key = join_key(&rows.keys[i], on.map(|(c, _)| &rows.columns[i][c]));
                match (key, model.predict(inputs, rows, i)) {
                    (Some(k), Ok((x, p))) => example = Some((k, x, p)),
                    (None, _) => skips.push(("null_id", i, "the `on` column is null".to_string())),
                    (_, Err(why)) => {
                        let reason = match why {
                            crate::Rejected::NotFinite { .. } => "not_finite",
                            crate::Rejected::BadLabel(_) => "bad_label",
                        };
                        skips.push((reason, i, why.to_string()));
                    }
                }
            }
            delayed::feed(pending, rows.ts[i], label, example, &mut resolved);
            for r in resolved.drain(..) {
                model.learn_resolved(&r.features, r.label, r.prediction);
            }
        }
        for (reason, i, why) in skips {
            self.state.skip(reason, || {
                format!("partition {partition} offset {}: {why}", rows.offsets[i])
            });
        }
    }
}
