//! `eddy bench pipeline`: events/s of the feature engine on the selected
//! backend, for Avro events with one join and 3 windows × 4 operators.
//!
//! Not a test: it measures and prints. Numbers and the exact command go in
//! BENCHMARKS.md. Run it with a short and a long sliding window
//! (`--window 1h`, `--window 30d`) to see whether cost grows with window
//! length.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use apache_avro::types::Value;
use eddy_features::avro::AvroCodec;
use eddy_features::engine::job::{Job, JobOptions};
use eddy_features::registry::value_subject;
use eddy_features::topic::{ProducerRecord, TopicSpec};

use crate::cli::{BenchPipelineArgs, Global};
use crate::context::Context;
use crate::progress;

const CLICK: &str = r#"{"type":"record","name":"BenchClick","namespace":"eddy.bench","fields":[
  {"name":"user","type":"long"},{"name":"item","type":"long"},
  {"name":"amount","type":"double"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
const ITEM: &str = r#"{"type":"record","name":"BenchItem","namespace":"eddy.bench","fields":[
  {"name":"item","type":"long"},{"name":"category","type":"string"},{"name":"price","type":"double"}]}"#;

/// The benchmark's topics, filled.
pub struct BenchTopics {
    pub stamp: u128,
    pub clicks: String,
    pub items: String,
}

/// Creates and fills a clicks topic (`events` Avro events over `users`
/// users and `items` items) and a compacted items table.
pub fn produce_clicks(
    ctx: &mut Context,
    events: u64,
    users: u64,
    items: u64,
    partitions: i32,
) -> anyhow::Result<BenchTopics> {
    let registry = ctx.registry()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let topics = BenchTopics {
        stamp,
        clicks: format!("bench-clicks-{stamp}"),
        items: format!("bench-items-{stamp}"),
    };
    let (clicks, item_topic) = (&topics.clicks, &topics.items);
    ctx.backend
        .create_topic(&TopicSpec::new(clicks).partitions(partitions))?;
    ctx.backend
        .create_topic(&TopicSpec::new(item_topic).compacted())?;
    let codec = AvroCodec::new(registry.clone());
    let click_enc = codec.encoder(&value_subject(clicks), CLICK)?;
    let item_enc = codec.encoder(&value_subject(item_topic), ITEM)?;
    let mut producer = ctx.backend.producer()?;
    for item in 0..items as i64 {
        let v = Value::Record(vec![
            ("item".into(), Value::Long(item)),
            ("category".into(), Value::String(format!("c{}", item % 20))),
            ("price".into(), Value::Double((item % 100) as f64)),
        ]);
        producer.send(
            ProducerRecord::new(
                item_topic,
                Some(item.to_string().into_bytes()),
                Some(item_enc.encode(&v)?),
            )
            .at(0),
        )?;
    }
    // One event every 10 ms of event time, spread over users and items by
    // a multiplicative hash, slightly out of order (within the lateness).
    let bar = progress::bar(events, "produce");
    let base = 1_700_000_000_000i64;
    for i in 0..events as i64 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let user = (h % users) as i64;
        let ts = base + i * 10 - (h >> 50) as i64 % 1000;
        let v = Value::Record(vec![
            ("user".into(), Value::Long(user)),
            ("item".into(), Value::Long(((h >> 20) % items) as i64)),
            (
                "amount".into(),
                Value::Double(((h >> 40) % 200) as f64 * 0.5),
            ),
            ("ts".into(), Value::TimestampMillis(ts)),
        ]);
        producer.send(
            ProducerRecord::new(
                clicks,
                Some(user.to_string().into_bytes()),
                Some(click_enc.encode(&v)?),
            )
            .at(ts),
        )?;
        if i % 8192 == 0 {
            bar.set_position(i as u64);
        }
    }
    producer.flush()?;
    bar.finish_and_clear();
    Ok(topics)
}

/// The spec `eddy bench pipeline` runs: one join, a sliding window `w`,
/// `tumbling 1d` and `lifetime`, 4 operators each.
pub fn pipeline_spec(t: &BenchTopics, w: &str) -> String {
    let BenchTopics {
        stamp,
        clicks,
        items,
    } = t;
    format!(
        "name: bench_{stamp}
sources:
  clicks: {{ topic: {clicks}, key: user, event_time: ts, lateness: 1s }}
tables:
  items: {{ topic: {items}, key: item }}
features:
  shopper:
    source: clicks
    join: [{{ table: items, on: item, select: [category, price] }}]
    aggregations:
      - {{ name: n, op: count, windows: [{w}, \"tumbling 1d\", lifetime] }}
      - {{ name: spend, op: sum, column: amount, windows: [{w}, \"tumbling 1d\", lifetime] }}
      - {{ name: avg, op: mean, column: amount, windows: [{w}, \"tumbling 1d\", lifetime] }}
      - {{ name: top, op: max, column: price, windows: [{w}, \"tumbling 1d\", lifetime] }}
    output: {{ topic: {clicks}.features }}
checkpoint: {{ interval: 1h }}
"
    )
}

pub fn pipeline(global: &Global, args: &BenchPipelineArgs) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let topics = produce_clicks(
        &mut ctx,
        args.events,
        args.users,
        args.items,
        args.partitions,
    )?;
    let stamp = topics.stamp;
    let w = &args.window;
    let text = pipeline_spec(&topics, w);
    let loaded = super::common::parse("bench.yaml", &text)?;
    let ckpt = std::env::temp_dir().join(format!("eddy-bench-{stamp}"));
    let options = JobOptions {
        until_end: true,
        checkpoint_url: ckpt.display().to_string(),
        batch: args.batch,
        group: None,
        max_waiting: eddy_features::engine::job::MAX_WAITING_EXAMPLES,
    };
    let mut job = Job::open(&loaded, ctx.backend.clone(), registry, options)?;
    let bar = progress::bar(args.events, "process");
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let summary = job.run(&stop, &mut |n| bar.set_position(n))?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let state = job.metrics.state_bytes.load(Ordering::Relaxed);
    let keys = job.metrics.keys.load(Ordering::Relaxed).max(1);
    let _ = std::fs::remove_dir_all(&ckpt);
    println!(
        "pipeline ({} backend, {} partitions, sliding window {w}): {} events in {:.2} s = {:.0} events/s; {} feature rows; state {} bytes/key over {} keys",
        ctx.backend.kind(),
        args.partitions,
        summary.events,
        elapsed.as_secs_f64(),
        progress::rate(summary.events, elapsed),
        summary.rows,
        state / keys,
        keys
    );
    Ok(())
}
