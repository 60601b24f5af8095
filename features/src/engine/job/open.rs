//! Opening a job: validate the spec against the registry, create the
//! outputs and register their schemas, open the sinks, bootstrap every
//! table (read it to the end) and restore each task from its checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// A hash of what a checkpoint's state depends on: the views' inputs,
/// expressions and aggregated features, not where their outputs go
/// (moving a Parquet directory must not throw state away) nor derived
/// features (computed from the state when read: adding one keeps it).
fn fingerprint(plans: &[ViewPlan]) -> u32 {
    let state: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| {
            let aggregated: Vec<&crate::spec::validate::FeaturePlan> =
                p.features.iter().filter(|f| f.derived.is_none()).collect();
            serde_json::json!([
                p.name,
                p.source,
                p.key,
                p.source_columns,
                p.joins,
                p.derive,
                p.filter,
                aggregated
            ])
        })
        .collect();
    crc32fast::hash(serde_json::to_string(&state).unwrap_or_default().as_bytes())
}

/// A task from its checkpoint. A bounded run finished it; a live run goes on
/// from there.
fn restore(
    cfg: &Arc<TaskConfig>,
    snapshot: crate::engine::task::TaskSnapshot,
    options: &JobOptions,
) -> Task {
    let mut task = Task::restore(cfg.clone(), snapshot);
    if !options.until_end {
        task.reopen();
    }
    task
}

/// The topic re-keyed views' events travel on, between tasks: one per
/// version of the views (their fingerprint), so a changed spec, whose
/// checkpoints are refused, never reads events laid out for the old one.
pub fn repartition_topic(pipeline: &str, fingerprint: u32) -> String {
    format!("{pipeline}.repartition-{fingerprint:08x}")
}

/// How long the repartition topic keeps records: 7 days, Kafka's default.
const REPARTITION_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

impl Job {
    /// Validates, creates outputs, bootstraps tables and restores tasks.
    pub fn open(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: JobOptions,
    ) -> Result<Job, JobError> {
        let spec = &loaded.spec;
        let inputs = Inputs::open(loaded, backend.as_ref(), &registry, None)?;
        let Inputs {
            plans,
            sources,
            tables,
            table_state,
            cfg,
            partitions,
            ends,
            lows,
            ..
        } = inputs;
        // Outputs.
        for plan in &plans {
            backend.ensure_topic(
                &TopicSpec::new(plan.output_topic.clone())
                    .partitions(partitions.max(1) as i32)
                    .compacted(),
            )?;
        }
        // Re-keyed views' events go to the task owning their key through
        // one repartition topic, partitioned like the sources (task p reads
        // partition p).
        let repartition = cfg
            .rekeys()
            .then(|| repartition_topic(&spec.name, fingerprint(&plans)));
        if let Some(topic) = &repartition {
            let mut t = TopicSpec::new(topic.clone()).partitions(partitions.max(1) as i32);
            // Read within moments live; a week covers a job stopped for
            // days (a checkpoint behind it stops the run, never skips).
            t.retention_ms = Some(REPARTITION_RETENTION_MS);
            backend.ensure_topic(&t)?;
        }
        let producer: Arc<Mutex<Box<dyn Producer>>> = Arc::new(Mutex::new(backend.producer()?));
        let reader = FeatureReader::new(&plans);
        let sinks = sinks::open(
            spec,
            &plans,
            &AvroCodec::new(registry.clone()),
            producer.clone(),
            reader.clone(),
        )?;
        // Tasks, restored from their checkpoints: all of them here, or those
        // the consumer group assigns.
        let checkpointer = Arc::new(Checkpointer::new(
            Store::open(&options.checkpoint_url)?.child(&spec.name),
            &spec.name,
            fingerprint(&plans),
        ));
        let bounds: HashMap<(usize, i32), (i64, i64)> = ends
            .iter()
            .map(|(k, end)| (*k, (lows.get(k).copied().unwrap_or(0), *end)))
            .collect();
        let source_topics: Vec<String> = sources.iter().map(|s| s.topic.clone()).collect();
        let n = partitions as i32;
        let mut tasks = BTreeMap::new();
        let mut seqs = BTreeMap::new();
        let mut restored = 0;
        let mut consumer = backend.consumer(options.group.as_deref())?;
        let mut group_changes = None;
        let mut exchange_consumer = None;
        if options.group.is_some() {
            let changes = Arc::new(Mutex::new(Vec::new()));
            let listener = group::TaskListener {
                checkpointer: checkpointer.clone(),
                cfg: cfg.clone(),
                topics: sources.iter().map(|s| s.topic.clone()).collect(),
                repartition: repartition.clone(),
                producer: producer.clone(),
                changes: changes.clone(),
            };
            let mut topics: Vec<String> = sources.iter().map(|s| s.topic.clone()).collect();
            topics.extend(repartition.clone());
            consumer.subscribe(&topics, Arc::new(listener))?;
            group_changes = Some(changes);
        } else {
            for p in 0..n {
                let (task, seq) = match checkpointer.latest(p)? {
                    Some(c) => {
                        restored += 1;
                        let task = restore(&cfg, c.task, &options);
                        check_positions(&task, &source_topics, &bounds, checkpointer.url())?;
                        if let Some(topic) = &repartition {
                            check_repartition(&task, topic, backend.as_ref(), checkpointer.url())?;
                        }
                        (task, c.seq + 1)
                    }
                    None => (Task::new(cfg.clone(), p), 0),
                };
                tasks.insert(p, task);
                seqs.insert(p, seq);
            }
            for (i, s) in sources.iter().enumerate() {
                let assignment: Vec<(i32, StartOffset)> = tasks
                    .values()
                    .map(|t| {
                        let start = t.inputs[i]
                            .next_offset
                            .map_or(StartOffset::Earliest, StartOffset::At);
                        (t.partition, start)
                    })
                    .collect();
                consumer.assign(&s.topic, &assignment)?;
            }
            if let Some(topic) = &repartition {
                let assignment: Vec<(i32, StartOffset)> = tasks
                    .values()
                    .map(|t| {
                        let start = t
                            .repartition_offset()
                            .map_or(StartOffset::Earliest, StartOffset::At);
                        (t.partition, start)
                    })
                    .collect();
                // A consumer of its own, read before the sources at every
                // poll: the exchange carries a few records per event (rows,
                // marks, models' lookups and answers), and read at the
                // sources' pace it fell behind them, so the events waiting
                // for it (a model's examples) piled up in memory.
                let mut own = backend.consumer(None)?;
                own.assign(topic, &assignment)?;
                exchange_consumer = Some(own);
            }
        }
        let metrics = Arc::new(JobMetrics::new());
        metrics
            .checkpoint_fallbacks
            .store(checkpointer.fallbacks().len() as u64, Ordering::Relaxed);
        let mut job = Job {
            name: spec.name.clone(),
            backend: backend.clone(),
            sources,
            tables,
            table_state,
            table_consumer: None,
            consumer,
            exchange_consumer,
            paused: Default::default(),
            producer,
            sinks,
            views: plans.clone(),
            dead_letters: DeadLetterTopics::default(),
            tasks,
            seqs,
            task_count: n,
            group_changes,
            checkpointer,
            interval: Duration::from_millis(spec.checkpoint.interval.0 as u64),
            options,
            ends,
            last_seen: HashMap::default(),
            repartition,
            unpublished: false,
            metrics,
            reader,
            restored,
            learning: None,
        };
        job.reopen_tasks_with_new_records();
        job.bootstrap_tables()?;
        let restored_tasks: Vec<i32> = job.tasks.keys().copied().collect();
        for p in restored_tasks {
            job.restored_rows(p);
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(derived: &str) -> Vec<ViewPlan> {
        let text = format!(
            "name: t
sources:
  events: {{ topic: events, key: user, event_time: ts }}
features:
  v:
    source: events
    aggregations:
      - {{ name: views, op: count, windows: [1d] }}
      - {{ name: clicks, op: sum, column: n, windows: [1d] }}
{derived}"
        );
        let loaded = crate::spec::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let schema = apache_avro::Schema::parse_str(
            r#"{"type": "record", "name": "E", "fields": [
              {"name": "user", "type": "long"}, {"name": "n", "type": "long"},
              {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#,
        )
        .unwrap();
        crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).unwrap()
    }

    /// Regression: derived features added a `derived: null` to every
    /// feature's plan, which changed the fingerprint of every existing
    /// spec: upgrading eddy would have refused every checkpoint. Adding a
    /// derived feature must not throw state away either.
    #[test]
    fn derived_features_leave_the_checkpoint_fingerprint_as_it_was() {
        let plain = plans("");
        let json = serde_json::to_string(&plain[0].features).unwrap();
        assert!(!json.contains("derived"), "{json}");
        let with = plans("    derived_features: { ctr_1d: \"clicks_1d / NULLIF(views_1d, 0)\" }\n");
        assert_eq!(with[0].features.len(), 3);
        assert_eq!(fingerprint(&plain), fingerprint(&with));
        // An aggregation does change it.
        let more = plans("      - { name: top, op: max, column: n, windows: [1d] }\n");
        assert_ne!(fingerprint(&plain), fingerprint(&more));
    }
}
