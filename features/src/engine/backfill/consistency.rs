//! `eddy consistency`: proves online equals offline.
//!
//! Samples rows of a view's live feature topic, then replays history and
//! reads the view for each sampled key at the sampled row's `as_of` (the
//! watermark the live job emitted it at: every event at or before it had
//! counted, none after). Each feature is compared exactly; the report gives
//! per feature the mismatch rate and the largest numeric difference.
//!
//! Exact equality is expected because the replay applies the same events
//! in the same (event time, source, offset) order with the same code. It
//! can break only where the live job depended on wall-clock time, which a
//! replay cannot reproduce (README.md, "Backfills", lists these): an input
//! declared idle after `idle_timeout` let the watermark pass events that
//! then arrived late; lateness in a task with several sources depends on
//! how reads of the sources interleaved; and a table without `versioned:
//! true` is joined at its latest value, not as of event time.

use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;

use super::{Backfill, BackfillOptions};
use crate::avro::AvroCodec;
use crate::engine::job::JobError;
use crate::engine::task::Query;
use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::LoadedSpec;
use crate::topic::Backend;

/// How one feature compared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureCheck {
    /// The feature column.
    pub feature: String,
    /// Sampled rows where live and replay differ.
    pub mismatches: u64,
    /// `mismatches` over the rows sampled.
    pub mismatch_rate: f64,
    /// Largest |live - replay| over numeric values (0 when all equal).
    pub max_abs_diff: f64,
    /// One mismatch: key, as_of, live value, replayed value.
    pub example: Option<(String, i64, String, String)>,
}

/// The report of `eddy consistency`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyReport {
    /// The view checked.
    pub view: String,
    /// Its live feature topic.
    pub topic: String,
    /// Rows on the feature topic, and how many were checked.
    pub topic_rows: usize,
    /// Rows sampled.
    pub sampled: usize,
    /// Per feature, what differed.
    pub features: Vec<FeatureCheck>,
}

impl ConsistencyReport {
    /// Mismatches over every feature.
    pub fn mismatches(&self) -> u64 {
        self.features.iter().map(|f| f.mismatches).sum()
    }
}

fn scalar(v: &Value) -> Scalar {
    match v {
        Value::Null => Scalar::Null,
        Value::Boolean(b) => Scalar::Bool(*b),
        Value::Int(i) => Scalar::Long(i64::from(*i)),
        Value::Long(i) | Value::TimestampMillis(i) => Scalar::Long(*i),
        Value::Float(f) => Scalar::Double(f64::from(*f)),
        Value::Double(f) => Scalar::Double(*f),
        Value::String(s) => Scalar::Str(Arc::from(s.as_str())),
        Value::Union(_, inner) => scalar(inner),
        Value::Array(items) => Scalar::List(items.iter().map(scalar).collect()),
        other => Scalar::Str(Arc::from(format!("{other:?}").as_str())),
    }
}

/// Live and replayed values agree. Numbers compare by value, so a count
/// the topic stores as an Avro `double` equals the engine's integer.
fn same(live: &Scalar, replayed: &Scalar) -> bool {
    match (live, replayed) {
        (a, b) if a == b => true,
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
            _ => false,
        },
    }
}

/// Samples `sample` rows of `view`'s feature topic and recomputes them.
pub fn check(
    loaded: &LoadedSpec,
    backend: Arc<dyn Backend>,
    registry: Arc<dyn SchemaRegistry>,
    view: &str,
    sample: usize,
) -> Result<ConsistencyReport, JobError> {
    let plans = {
        let lookup = crate::engine::job::schema_lookup(&registry);
        crate::spec::validate(loaded, &lookup)
            .map_err(|p| JobError::Spec(crate::spec::SpecError::Invalid(p)))?
    };
    let Some(v) = plans.iter().position(|p| p.name == view) else {
        return Err(JobError::Output(format!(
            "no view `{view}` in {}; its views are {:?}",
            loaded.file.display(),
            plans.iter().map(|p| &p.name).collect::<Vec<_>>()
        )));
    };
    let plan = plans[v].clone();
    let topic = plan.output_topic.clone();
    let mut records = crate::topic::read_to_end(backend.as_ref(), &topic, Duration::from_secs(30))?;
    records.sort_by_key(|r| (r.partition, r.offset));
    let topic_rows = records.len();
    let n = sample.min(topic_rows).max(usize::from(topic_rows > 0));
    let picked: Vec<_> = (0..n)
        .map(|i| &records[i * topic_rows / n.max(1)])
        .collect();
    // Decode the sampled rows: key, as_of and the features by name.
    let codec = AvroCodec::new(registry.clone());
    let mut live = Vec::new();
    for rec in picked {
        let Some(bytes) = &rec.value else { continue };
        let decoded = codec.decode(bytes)?;
        let Value::Record(fields) = decoded.value else {
            return Err(JobError::Output(format!(
                "`{topic}` offset {} is not a feature record",
                rec.offset
            )));
        };
        live.push(fields);
    }
    let mut backfill_for_plans = None;
    let mut queries = Vec::new();
    let mut rows = Vec::new();
    for fields in live {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| scalar(v))
        };
        let (Some(key), Some(Scalar::Long(as_of))) = (get(&plan.key), get("as_of")) else {
            continue;
        };
        let values: Vec<Scalar> = plan
            .features
            .iter()
            .map(|f| get(&f.column).unwrap_or(Scalar::Null))
            .collect();
        queries.push(Query {
            id: queries.len(),
            t: as_of,
            view: v,
            key: key.clone(),
        });
        rows.push((key, as_of, values));
    }
    let until = queries.iter().map(|q| q.t).max();
    if until.is_some() {
        let backfill = Backfill::open(
            loaded,
            backend,
            registry,
            BackfillOptions {
                from: None,
                until,
                labels: None,
                out: "memory://eddy-consistency".into(),
                batch: 100_000,
                queries,
            },
        )?;
        backfill_for_plans = Some(backfill.run(&mut |_| {})?);
    }
    let answers = backfill_for_plans.map(|s| s.answers).unwrap_or_default();
    let mut features: Vec<FeatureCheck> = plan
        .features
        .iter()
        .map(|f| FeatureCheck {
            feature: f.column.clone(),
            mismatches: 0,
            mismatch_rate: 0.0,
            max_abs_diff: 0.0,
            example: None,
        })
        .collect();
    for ((key, as_of, values), replayed) in rows.iter().zip(&answers) {
        for (f, check) in features.iter_mut().enumerate() {
            let (a, b) = (&values[f], &replayed[f]);
            if same(a, b) {
                continue;
            }
            check.mismatches += 1;
            if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                check.max_abs_diff = check.max_abs_diff.max((x - y).abs());
            }
            check.example.get_or_insert_with(|| {
                (
                    key.key_text(),
                    *as_of,
                    a.to_json().to_string(),
                    b.to_json().to_string(),
                )
            });
        }
    }
    for check in &mut features {
        check.mismatch_rate = check.mismatches as f64 / rows.len().max(1) as f64;
    }
    Ok(ConsistencyReport {
        view: view.to_string(),
        topic,
        topic_rows,
        sampled: rows.len(),
        features,
    })
}
