//! The training set of a backfill: which events are rows and what their
//! label is (`--labels SOURCE` with SQL, or `--model M` from the spec), the
//! columns written beside their features (the event's own, and table
//! columns joined as of its time), and, for a model with a delayed label,
//! the joiner that resolves it.

use std::sync::Arc;

use crate::engine::job::JobError;
use crate::engine::job::decode::RecordDecoder;
use crate::engine::job::inputs::Inputs;
use crate::registry::SchemaRegistry;
use crate::spec::LoadedSpec;
use crate::store::Store;

use super::delayed_set::DelayedSet;
use super::training::{Labeler, TrainingWriter};
use crate::engine::delayed::DelayedPlan;

/// The label events of a training set.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// A source of the spec.
    pub source: String,
    /// A SQL expression over the source's columns. Default `label`.
    pub expr: String,
    /// A SQL condition over the source's columns: only label events for
    /// which it is true become rows (say, views and not purchases).
    /// Default: every label event.
    pub filter: Option<String>,
    /// The label event's own columns to write beside its features (what a
    /// click model reads: the item, the price), and `TABLE.COLUMN` for a
    /// table the source's views join, as of the event's time. Default
    /// none: a column of the label's own event can leak the label, so each
    /// is named.
    pub columns: Vec<String>,
    /// The training set of this model of the spec (`--model`): its
    /// source, label (in the event, or delayed and resolved as the live
    /// learner resolves it), filter and event columns replace `source`,
    /// `expr` and `filter`; `columns` adds to the model's. Default: none.
    pub model: Option<String>,
    /// That model's delayed label, as its learner planned it (the learners
    /// plan models, not this crate). Default: none (the label is in the
    /// event).
    pub delayed: Option<DelayedPlan>,
}

impl LabelOptions {
    /// The training set of model `name`, with `columns` beside its own;
    /// `delayed` is its delayed label, planned.
    pub fn of_model(
        name: &str,
        columns: Vec<String>,
        delayed: Option<DelayedPlan>,
    ) -> LabelOptions {
        LabelOptions {
            source: String::new(),
            expr: String::new(),
            filter: None,
            columns,
            model: Some(name.to_string()),
            delayed,
        }
    }

    /// Fills source, label and filter from the model the options name.
    pub(super) fn resolve_model(&mut self, loaded: &LoadedSpec) -> Result<(), JobError> {
        let Some(name) = &self.model else {
            return Ok(());
        };
        let spec = &loaded.spec;
        let m = spec.models.get(name).ok_or_else(|| {
            JobError::Options(format!(
                "--model `{name}` is not a model of {}; its models are {:?}",
                loaded.file.display(),
                spec.models.keys().collect::<Vec<_>>()
            ))
        })?;
        if m.delayed_label.is_some() != self.delayed.is_some() {
            // Every example would be written as a positive: the learners
            // plan a delayed label, and the caller must pass it on.
            return Err(JobError::Options(format!(
                "--model `{name}`: its delayed label was not planned (a bug in the caller of the backfill)"
            )));
        }
        self.source = m.source.clone();
        // A delayed label is resolved by the joiner: every example is a
        // candidate row.
        self.expr = m.label.clone().unwrap_or_else(|| "TRUE".to_string());
        self.filter = m.filter.clone();
        let mut columns = m.columns.clone();
        columns.extend(m.item.clone());
        for c in std::mem::take(&mut self.columns) {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        self.columns = columns;
        Ok(())
    }
}

/// A table column written beside label events: (table index, the label
/// source's join column, the column's index in the table row, its type).
type JoinedColumn = (usize, usize, usize, crate::spec::ColumnType);

/// Resolves `--columns TABLE.COLUMN`: the table, the label source's column
/// its views join it on, and the column.
fn joined_column(
    spec: &crate::spec::PipelineSpec,
    inputs: &Inputs,
    source: &str,
    columns: &crate::spec::validate::Columns,
    table: &str,
    column: &str,
) -> Result<JoinedColumn, JobError> {
    let bad = |why: String| JobError::Options(format!("--columns `{table}.{column}`: {why}"));
    let t = spec
        .tables
        .keys()
        .position(|n| n == table)
        .ok_or_else(|| bad(format!("the spec has no table `{table}`")))?;
    let join = inputs
        .plans
        .iter()
        .filter(|p| p.source == source)
        .flat_map(|p| &p.joins)
        .find(|j| j.table == table)
        .ok_or_else(|| {
            bad(format!(
                "no view of `{source}` joins `{table}`, so there is no join key to look it up by"
            ))
        })?;
    let on = columns.get_index_of(&join.on).ok_or_else(|| {
        bad(format!(
            "the join column `{}` is not in `{source}`",
            join.on
        ))
    })?;
    let table_columns = &inputs.tables[t].decoder.columns;
    let c = table_columns.get_index_of(column).ok_or_else(|| {
        bad(format!(
            "`{table}` has no column `{column}`; its columns are {:?}",
            table_columns.keys().collect::<Vec<_>>()
        ))
    })?;
    Ok((t, on, c, table_columns[c].clone()))
}

/// What a training set is built with.
pub(super) struct LabelState {
    /// The label source (the examples'), its decoder and labeler.
    pub(super) source: usize,
    pub(super) decoder: RecordDecoder,
    pub(super) labeler: Labeler,
    pub(super) writer: TrainingWriter,
    /// Table columns joined onto each label event.
    pub(super) joined: Vec<JoinedColumn>,
    /// A re-keyed view is written: each label event asks the task owning
    /// its key for it.
    pub(super) lookups: bool,
    /// A model's delayed label, its source's decoder (None: the examples'
    /// own source), and what it holds.
    pub(super) delayed: Option<(DelayedSet, Option<RecordDecoder>)>,
}

impl LabelState {
    /// Resolves the options against the spec and its schemas, and starts
    /// the training-set writer under `out`.
    pub(super) fn open(
        l: &LabelOptions,
        loaded: &LoadedSpec,
        inputs: &Inputs,
        registry: &Arc<dyn SchemaRegistry>,
        out: &Store,
    ) -> Result<LabelState, JobError> {
        let spec = &loaded.spec;
        let s = inputs
            .sources
            .iter()
            .position(|s| s.name == l.source)
            .expect("opened with the label source");
        let source_spec = &spec.sources[&l.source];
        // Labels read every column of the record, not only those
        // the views use.
        let full_decoder = |name: &str| -> Result<RecordDecoder, JobError> {
            let source = &spec.sources[name];
            let schema = crate::engine::job::schema_lookup(registry)(&source.topic)
                .map_err(JobError::Output)?
                .ok_or_else(|| JobError::Output(format!("`{name}` has no schema")))?;
            let columns =
                crate::spec::validate::source_columns(&schema, source.format).unwrap_or_default();
            Ok(RecordDecoder::source(
                registry.clone(),
                schema,
                &columns,
                &source.key,
                Some((&source.event_time, source.event_time_unit)),
                source.format,
            ))
        };
        let decoder = full_decoder(&l.source)?;
        let columns = decoder.columns.clone();
        let key_type = columns
            .get(&source_spec.key)
            .cloned()
            .unwrap_or(crate::spec::ColumnType::String);
        let labeler = Labeler::new(&l.expr, l.filter.as_deref(), columns.clone())
            .map_err(JobError::Options)?;
        let mut event_columns = Vec::new();
        let mut joined = Vec::new();
        for name in &l.columns {
            // `TABLE.COLUMN`: a column of a table row, as of the
            // event's time, joined as the source's views join it.
            if let Some((table, column)) = name.split_once('.') {
                let j = joined_column(spec, inputs, &l.source, &columns, table, column)?;
                let at = columns.len() + joined.len();
                event_columns.push((at, name.replace('.', "_"), j.3.clone()));
                joined.push(j);
                continue;
            }
            let Some(i) = columns.get_index_of(name) else {
                return Err(JobError::Options(format!(
                    "--columns: `{name}` is not a column of `{}` (its columns are {:?}), nor `TABLE.COLUMN` of a table its views join",
                    l.source,
                    columns.keys().collect::<Vec<_>>()
                )));
            };
            event_columns.push((i, name.clone(), columns[i].clone()));
        }
        // A model's training set holds the views it reads (by default
        // those keyed like its events, as the model's own default); a
        // `--labels` set every view.
        let model = l.model.as_ref().and_then(|m| spec.models.get(m));
        let views: Vec<bool> = inputs
            .plans
            .iter()
            .map(|p| match model.map(|m| &m.features) {
                Some(Some(names)) => names.contains(&p.name),
                Some(None) => !p.rekeyed,
                None => true,
            })
            .collect();
        let lookups = inputs
            .plans
            .iter()
            .zip(&views)
            .any(|(p, v)| p.rekeyed && *v);
        let writer = TrainingWriter::new(
            out.child("training"),
            (source_spec.key.clone(), key_type),
            labeler.label_type.clone(),
            event_columns,
            &inputs.plans,
            &views,
        );
        let delayed = match &l.delayed {
            Some(d) => {
                let ds = inputs
                    .sources
                    .iter()
                    .position(|x| x.name == d.source)
                    .expect("models' sources are opened");
                let decoder = match ds != s {
                    true => Some(full_decoder(&d.source)?),
                    false => None,
                };
                let set = DelayedSet::new(d.clone(), ds).map_err(JobError::Options)?;
                Some((set, decoder))
            }
            None => None,
        };
        Ok(LabelState {
            source: s,
            decoder,
            labeler,
            writer,
            joined,
            lookups,
            delayed,
        })
    }
}
