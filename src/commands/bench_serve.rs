//! `eddy bench serve`: recommendations/s per core, and event →
//! recommendation latency on the topic at a fixed arrival rate, on the
//! selected backend. On Kafka it first measures the broker's own produce →
//! consume latency at the same rate, so the two can be read side by side.
//!
//! The setup is the whole loop: interactions produced as Avro, the
//! pipeline run with its models (FTRL ranker, co-occurrence, MF,
//! popularity) so they publish to the models topic, then `Service` (the
//! code `eddy serve` runs) answering new events. Not a test: it measures
//! and prints; numbers go in BENCHMARKS.md.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use eddy_features::avro::AvroCodec;
use eddy_features::engine::job::{Job, JobOptions};
use eddy_features::engine::value::Scalar;
use eddy_features::registry::value_subject;
use eddy_features::topic::{Backend, ProducerRecord, TopicSpec};
use eddy_serving::engine::Request;
use eddy_serving::service::{ServeOptions, Service};
use eddy_training::recommend::Rng;

use crate::cli::{BenchServeArgs, Global};
use crate::context::Context;
use crate::progress;

use super::live_tail::{args_deadline, assign_at_end, live_tail, percentiles};

const EVENT: &str = r#"{"type":"record","name":"BenchRating","namespace":"eddy.bench","fields":[
  {"name":"user","type":"long"},{"name":"item","type":"long"},
  {"name":"rating","type":"double"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

fn bench_spec(stamp: u128, events: &str, k: usize, learned_order: bool) -> String {
    format!(
        "name: bench_serve_{stamp}
sources:
  ratings: {{ topic: {events}, key: user, event_time: ts, lateness: 1m, idle_timeout: 0s }}
features:
  user:
    source: ratings
    aggregations:
      - {{ name: n, op: count, windows: [lifetime, 1d] }}
      - {{ name: mean_rating, op: mean, column: rating, windows: [lifetime] }}
    output: {{ topic: {events}.features }}
checkpoint: {{ interval: 1h }}
models:
  like:
    kind: ftrl
    source: ratings
    label: \"rating >= 4\"
    columns: [item]
    categorical: [item]
    topic: {events}.models
    metrics_topic: {events}.metrics
  next:
    kind: cooccurrence
    source: ratings
    item: item
    label: \"rating >= 4\"
    topic: {events}.models
    metrics_topic: {events}.metrics
  taste:
    kind: mf
    source: ratings
    item: item
    label: \"rating >= 4\"
    topic: {events}.models
    metrics_topic: {events}.metrics
  popular:
    kind: popularity
    source: ratings
    item: item
    topic: {events}.models
    metrics_topic: {events}.metrics
serving:
  trigger: ratings
  candidates: [next, taste, popular]
  ranker: like
  learned_order: {learned_order}
  k: {k}
  topic: {events}.recommendations
"
    )
}

/// A rating: items by a skewed popularity, liked more often when user and
/// item share a taste group.
fn rating(rng: &mut Rng, users: u64, items: u64) -> (i64, i64, f64) {
    let user = (rng.next_u64() % users) as i64;
    let u = rng.uniform();
    let item = ((u * u) * items as f64) as i64;
    let liked = (user + item) % 5 == 0 || rng.uniform() < 0.3;
    (user, item, if liked { 4.5 } else { 2.0 })
}

pub fn serve_bench(global: &Global, args: &BenchServeArgs) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let backend = ctx.backend.clone();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let events = format!("bench-ratings-{stamp}");
    backend.create_topic(&TopicSpec::new(&events).partitions(args.partitions))?;
    let codec = AvroCodec::new(registry.clone());
    let enc = codec.encoder(&value_subject(&events), EVENT)?;
    let mut producer = backend.producer()?;
    let mut rng = Rng(42);
    let t0 = 1_700_000_000_000i64;
    let bar = progress::bar(args.history, "history");
    let encode = |user: i64, item: i64, r: f64, ts: i64| {
        enc.encode(&Value::Record(vec![
            ("user".into(), Value::Long(user)),
            ("item".into(), Value::Long(item)),
            ("rating".into(), Value::Double(r)),
            ("ts".into(), Value::TimestampMillis(ts)),
        ]))
    };
    for i in 0..args.history {
        let (user, item, r) = rating(&mut rng, args.users, args.items);
        let ts = t0 + i as i64 * 1000;
        producer.send(
            ProducerRecord::new(
                &events,
                Some(user.to_string().into_bytes()),
                Some(encode(user, item, r, ts)?),
            )
            .at(ts),
        )?;
        if i % 8192 == 0 {
            bar.set_position(i);
        }
    }
    producer.flush()?;
    bar.finish_and_clear();
    // The pipeline trains and publishes the models.
    let text = bench_spec(stamp, &events, args.k, args.learned_order);
    let loaded = super::common::parse("bench-serve.yaml", &text)?;
    let ckpt = std::env::temp_dir().join(format!("eddy-bench-serve-{stamp}"));
    let mut job = Job::open(
        &loaded,
        backend.clone(),
        registry.clone(),
        JobOptions {
            until_end: true,
            checkpoint_url: ckpt.display().to_string(),
            batch: 10_000,
            group: None,
            max_waiting: eddy_features::engine::job::MAX_WAITING_EXAMPLES,
        },
    )?;
    super::common::attach_models(&mut job, &loaded, backend.as_ref())?;
    let trained = Instant::now();
    job.run(&AtomicBool::new(false), &mut |_| {})?;
    eprintln!(
        "trained on {} ratings in {:.1} s",
        args.history,
        trained.elapsed().as_secs_f64()
    );
    drop(job);
    let _ = std::fs::remove_dir_all(&ckpt);

    let service = Service::open(
        &loaded,
        backend.clone(),
        registry.clone(),
        ServeOptions {
            from_earliest: false,
            until_end: false,
            batch: 1000,
        },
    )?;
    // 1. Recommendations per second, one core, straight through the engine.
    let per_core = {
        let mut state = service.state.lock().expect("poisoned");
        let n = args.requests;
        let mut rng = Rng(7);
        let started = Instant::now();
        let mut items = 0usize;
        for i in 0..n {
            let req = Request {
                id: format!("bench-{i}"),
                user: Scalar::Long((rng.next_u64() % args.users) as i64),
                k: args.k,
                ts: t0 + args.history as i64 * 1000,
                event: None,
            };
            let st = &mut *state;
            items += st
                .engine
                .recommend(&req, &st.models, &st.features)
                .items
                .len();
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(
            items > 0,
            "the engine recommended nothing: are the models loaded?"
        );
        (n as f64 / elapsed.as_secs_f64(), items as f64 / n as f64)
    };
    // 2. The log's (or broker's) own produce → consume latency at the
    // same rate: the floor under serving's.
    let broker = Some(echo_latency(
        backend.as_ref(),
        &format!("bench-echo-{stamp}"),
        args,
    )?);
    // 3. Event → recommendation on the topic, at a fixed arrival rate.
    let service_metrics = service.metrics.clone();
    let total = (args.rate * args.seconds) as usize;
    let mut rng = Rng(99);
    let (latencies, _) = live_tail(backend.clone(), service, &events, total, args.rate, |i| {
        let (user, item, r) = rating(&mut rng, args.users, args.items);
        let ts = t0 + (args.history as i64 + i as i64) * 1000;
        Ok(ProducerRecord::new(
            &events,
            Some(user.to_string().into_bytes()),
            Some(encode(user, item, r, ts)?),
        )
        .at(ts))
    })?;
    let (p50, p99, max) = percentiles(latencies.clone());
    println!(
        "serving ({} backend, {} items, {} users, {} history ratings, k {}):",
        backend.kind(),
        args.items,
        args.users,
        args.history,
        args.k
    );
    println!(
        "  engine: {:.0} recommendations/s on one core ({:.1} items each; candidates from co-occurrence, MF, popularity; FTRL ranker)",
        per_core.0, per_core.1
    );
    println!(
        "  event → recommendation on the topic at {} events/s for {} s: {} of {} answered, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        args.rate,
        args.seconds,
        latencies.len(),
        total,
        p50,
        p99,
        max
    );
    let (answers, mean) = service_metrics.latency_mean();
    println!(
        "  inside the service: {answers} answers, {:.0} µs each on average from reading the trigger to handing its recommendation to the producer",
        mean * 1e6
    );
    if let Some((b50, b99, bmax, n)) = broker {
        println!(
            "  the {} alone, produce → consume at the same rate: {n} records, p50 {b50:.0} µs, p99 {b99:.0} µs, max {bmax:.0} µs",
            if backend.kind() == "kafka" {
                "broker"
            } else {
                "log"
            }
        );
    }
    Ok(())
}

/// Produce → consume latency of plain records at `args.rate`.
fn echo_latency(
    backend: &dyn Backend,
    topic: &str,
    args: &BenchServeArgs,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    backend.create_topic(&TopicSpec::new(topic))?;
    let mut consumer = backend.consumer(None)?;
    assign_at_end(backend, consumer.as_mut(), topic)?;
    let total = (args.rate * args.seconds) as usize;
    let rate = args.rate;
    // Both threads measure from the same instant.
    let base = Instant::now();
    let reader = std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(args_deadline(total, rate));
        while out.len() < total && Instant::now() < deadline {
            for r in consumer.poll(1000, Duration::from_millis(20))? {
                let now = base.elapsed().as_nanos() as u64;
                if let Some(v) = r.value.as_deref().and_then(|v| v.try_into().ok()) {
                    let sent = u64::from_be_bytes(v);
                    out.push(now.saturating_sub(sent) as f64 / 1e3);
                }
            }
        }
        Ok(out)
    });
    let mut producer = backend.producer()?;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for i in 0..total {
        let due = base + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let stamp = base.elapsed().as_nanos() as u64;
        producer.send(ProducerRecord::new(
            topic,
            None,
            Some(stamp.to_be_bytes().to_vec()),
        ))?;
        if backend.kind() != "kafka" {
            producer.flush()?;
        }
    }
    producer.flush()?;
    let lat = reader.join().expect("reader")?;
    let (a, b, c) = percentiles(lat.clone());
    Ok((a, b, c, lat.len()))
}
