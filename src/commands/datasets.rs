//! `eddy datasets generate clickstream`: a synthetic shop's events and
//! catalog on topics, with the true click probability of every view in a
//! Parquet file beside them (see `crate::clickstream`).

use std::time::Instant;

use anyhow::Context as _;
use apache_avro::types::Value;
use eddy_features::avro::AvroCodec;
use eddy_features::registry::value_subject;
use eddy_features::topic::{ProducerRecord, TopicSpec};
use polars::prelude::*;

use crate::cli::{ClickstreamArgs, Global};
use crate::clickstream::{CATEGORIES, Clickstream, Config, EVENT_TYPES};
use crate::context::Context;
use crate::progress;

const EVENT_SCHEMA: &str = r#"{"type": "record", "name": "ShopEvent", "namespace": "eddy.clickstream",
 "doc": "One event of the synthetic clickstream, keyed by user_id.",
 "fields": [
  {"name": "event_id", "type": "long", "doc": "Numbers the stream; joins the ground-truth file."},
  {"name": "user_id", "type": "long"},
  {"name": "item_id", "type": "long"},
  {"name": "event_type", "type": "string", "doc": "view, click, add_to_cart or purchase."},
  {"name": "price", "type": "double", "doc": "The item's price when the event happened."},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

const ITEM_SCHEMA: &str = r#"{"type": "record", "name": "ShopItem", "namespace": "eddy.clickstream",
 "doc": "One version of an item of the catalog (SCD type 2: read it as a versioned table with valid_from).",
 "fields": [
  {"name": "item_id", "type": "long"},
  {"name": "category", "type": "string"},
  {"name": "price", "type": "double"},
  {"name": "valid_from", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

pub fn generate_clickstream(global: &Global, args: &ClickstreamArgs) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let backend = ctx.backend.clone();
    let (events_topic, items_topic) = (
        format!("{}.events", args.prefix),
        format!("{}.items", args.prefix),
    );
    backend.create_topic(&TopicSpec::new(&events_topic).partitions(args.partitions))?;
    backend.create_topic(&TopicSpec::new(&items_topic).compacted())?;
    let codec = AvroCodec::new(registry);
    let event_enc = codec.encoder(&value_subject(&events_topic), EVENT_SCHEMA)?;
    let item_enc = codec.encoder(&value_subject(&items_topic), ITEM_SCHEMA)?;
    let started = Instant::now();
    let mut config = Config::new(args.users, args.items, args.events, args.seed);
    config.span_ms = args.days.max(1) * 86_400_000;
    let mut world = Clickstream::new(config);
    let mut producer = backend.producer()?;
    for v in world.catalog() {
        let value = Value::Record(vec![
            ("item_id".into(), Value::Long(v.item_id as i64)),
            (
                "category".into(),
                Value::String(format!("c{:02}", v.category)),
            ),
            ("price".into(), Value::Double(v.price)),
            ("valid_from".into(), Value::TimestampMillis(v.valid_from)),
        ]);
        producer.send(
            ProducerRecord::new(
                &items_topic,
                Some(v.item_id.to_string().into_bytes()),
                Some(item_enc.encode(&value)?),
            )
            .at(v.valid_from),
        )?;
    }
    let versions = world.catalog().len();
    let bar = progress::bar(args.events, "events");
    let (mut ids, mut users, mut items, mut ts, mut p) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut counts = [0u64; 4];
    let mut n = 0u64;
    for e in world.by_ref() {
        let value = Value::Record(vec![
            ("event_id".into(), Value::Long(e.event_id as i64)),
            ("user_id".into(), Value::Long(e.user_id as i64)),
            ("item_id".into(), Value::Long(e.item_id as i64)),
            (
                "event_type".into(),
                Value::String(EVENT_TYPES[e.kind as usize].to_string()),
            ),
            ("price".into(), Value::Double(e.price)),
            ("ts".into(), Value::TimestampMillis(e.ts)),
        ]);
        producer.send(
            ProducerRecord::new(
                &events_topic,
                Some(e.user_id.to_string().into_bytes()),
                Some(event_enc.encode(&value)?),
            )
            .at(e.ts),
        )?;
        counts[e.kind as usize] += 1;
        if let Some(pc) = e.p_click {
            ids.push(e.event_id as i64);
            users.push(e.user_id as i64);
            items.push(e.item_id as i64);
            ts.push(e.ts);
            p.push(pc);
        }
        n += 1;
        if n.is_multiple_of(16_384) {
            bar.set_position(n);
        }
    }
    producer.flush()?;
    bar.finish_and_clear();
    // The ground truth, and the best logloss any model could reach on the
    // views (each view's click drawn with its true probability).
    let bayes: f64 = p
        .iter()
        .map(|q| -(q * q.ln() + (1.0 - q) * (1.0 - q).ln()))
        .sum::<f64>()
        / p.len().max(1) as f64;
    let mut truth = DataFrame::new(vec![
        Column::new("event_id".into(), ids),
        Column::new("user_id".into(), users),
        Column::new("item_id".into(), items),
        Column::new("ts".into(), ts),
        Column::new("p_click".into(), p),
    ])?;
    let truth_path = match &args.truth {
        Some(p) => p.clone(),
        None => ctx
            .data_dir
            .clone()
            .unwrap_or_else(|| ".".into())
            .join(format!("{}-truth.parquet", args.prefix)),
    };
    if let Some(dir) = truth_path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let file = std::fs::File::create(&truth_path)
        .with_context(|| format!("creating {}", truth_path.display()))?;
    ParquetWriter::new(file).finish(&mut truth)?;
    let elapsed = started.elapsed();
    println!(
        "clickstream (seed {}): {} events in {:.1} s ({:.0}/s) to `{events_topic}` ({} partitions, keyed by user_id)",
        args.seed,
        n,
        elapsed.as_secs_f64(),
        progress::rate(n, elapsed),
        args.partitions
    );
    println!(
        "  {} views, {} clicks, {} add-to-carts, {} purchases; {} users, {} items over {} days",
        counts[0], counts[1], counts[2], counts[3], args.users, args.items, args.days
    );
    println!(
        "  catalog: {versions} versions of {} items in {CATEGORIES} categories to `{items_topic}` (SCD2: a versioned table with valid_from)",
        args.items
    );
    println!(
        "  ground truth: the click probability of every view in {} (Bayes-optimal logloss {bayes:.4})",
        truth_path.display()
    );
    println!(
        "  schemas: `eddy topics schema {events_topic}` and `eddy topics schema {items_topic}` (documented in datasets/README.md)"
    );
    if args.prefix == "clickstream" {
        println!(
            "  the tutorial spec for these topics: datasets/clickstream/pipeline.yaml (eddy validate, eddy run --until-end, eddy backfill --model click; notebooks/04_clickstream.ipynb walks through it)"
        );
    } else {
        println!(
            "  the tutorial spec datasets/clickstream/pipeline.yaml reads the topics of the default prefix `clickstream`; change its `topic:` keys to read `{events_topic}` and `{items_topic}`"
        );
    }
    Ok(())
}
