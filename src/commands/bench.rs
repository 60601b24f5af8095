//! `eddy bench topics`: produce and consume throughput of a backend.
//!
//! Not a test: it measures and prints. Numbers and the exact command go in
//! BENCHMARKS.md.

use std::time::Instant;

use apache_avro::types::Value;
use eddy_features::avro::AvroCodec;
use eddy_features::registry::value_subject;
use eddy_features::topic::{ProducerRecord, StartOffset, TopicSpec};

use crate::cli::{BenchTopicsArgs, Global};
use crate::context::Context;
use crate::progress;

const BENCH_SCHEMA: &str = r#"{"type":"record","name":"BenchEvent","namespace":"eddy.bench","fields":[
  {"name":"id","type":"long"},{"name":"score","type":"double"},{"name":"payload","type":"string"}]}"#;

pub fn topics(global: &Global, args: &BenchTopicsArgs) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let topic = format!("bench-{stamp}");
    ctx.backend
        .create_topic(&TopicSpec::new(&topic).partitions(args.partitions))?;
    let encoder = if args.avro {
        Some(AvroCodec::new(ctx.registry()?).encoder(&value_subject(&topic), BENCH_SCHEMA)?)
    } else {
        None
    };
    let raw = vec![b'x'; args.value_bytes];
    let padding = "x".repeat(args.value_bytes.saturating_sub(20));

    let bar = progress::bar(args.records, "produce");
    let mut producer = ctx.backend.producer()?;
    let started = Instant::now();
    for i in 0..args.records {
        let value = match &encoder {
            Some(enc) => enc.encode(&Value::Record(vec![
                ("id".into(), Value::Long(i as i64)),
                ("score".into(), Value::Double(i as f64 * 0.5)),
                ("payload".into(), Value::String(padding.clone())),
            ]))?,
            None => raw.clone(),
        };
        producer.send(ProducerRecord::new(
            &topic,
            Some((i % 100_000).to_string().into_bytes()),
            Some(value),
        ))?;
        if i % 8192 == 0 {
            bar.set_position(i);
        }
    }
    producer.flush()?;
    let produce = started.elapsed();
    bar.finish_and_clear();

    let codec = encoder
        .as_ref()
        .map(|_| AvroCodec::new(ctx.registry().expect("opened above")));
    let bar = progress::bar(args.records, "consume");
    let mut consumer = ctx.backend.consumer(None)?;
    consumer.assign_all(&topic, StartOffset::Earliest)?;
    let started = Instant::now();
    let (mut read, mut bytes) = (0u64, 0u64);
    while read < args.records {
        for r in consumer.poll(10_000, std::time::Duration::from_secs(10))? {
            let v = r.value.unwrap_or_default();
            bytes += v.len() as u64;
            if let Some(codec) = &codec {
                codec.decode(&v)?;
            }
            read += 1;
        }
        bar.set_position(read);
    }
    let consume = started.elapsed();
    bar.finish_and_clear();

    let mb = bytes as f64 / 1e6;
    println!(
        "backend={} records={} value_bytes={} partitions={} avro={}",
        ctx.backend.kind(),
        args.records,
        args.value_bytes,
        args.partitions,
        args.avro
    );
    println!(
        "produce: {:>12.0} records/s {:>8.1} MB/s ({:.2}s, including flush)",
        progress::rate(args.records, produce),
        mb / produce.as_secs_f64(),
        produce.as_secs_f64()
    );
    println!(
        "consume: {:>12.0} records/s {:>8.1} MB/s ({:.2}s)",
        progress::rate(read, consume),
        mb / consume.as_secs_f64(),
        consume.as_secs_f64()
    );
    Ok(())
}
