//! Events at a fixed rate into a running `Service`, with the latency of
//! each one's recommendation: shared by `eddy bench serve` and the live
//! tail of `eddy quickstart`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_features::topic::{Backend, ProducerRecord, StartOffset};
use eddy_serving::service::Service;

/// p50, p99 and max of microsecond samples.
pub fn percentiles(mut us: Vec<f64>) -> (f64, f64, f64) {
    if us.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), us[us.len() - 1])
}

/// Runs `service` on a thread while `total` events made by `event` go to
/// `events` at `rate` per second; returns the microseconds from producing
/// each event to reading its recommendation on the service's topic, and
/// the recommendations read. Recommendations are matched to their events
/// by the lineage header (`<topic>/<partition>/<offset>`); offsets are
/// sequential per partition for this one producer.
pub fn live_tail(
    backend: Arc<dyn Backend>,
    mut service: Service,
    events: &str,
    total: usize,
    rate: u64,
    mut event: impl FnMut(usize) -> anyhow::Result<ProducerRecord>,
) -> anyhow::Result<(Vec<f64>, Vec<eddy_features::topic::Record>)> {
    let out = service.topic().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || service.run(&stop))
    };
    let sent: Arc<Mutex<HashMap<(i32, i64), Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut consumer = backend.consumer(None)?;
    assign_at_end(backend.as_ref(), consumer.as_mut(), &out)?;
    let reader = {
        let sent = sent.clone();
        std::thread::spawn(
            move || -> anyhow::Result<(Vec<f64>, Vec<eddy_features::topic::Record>)> {
                let mut latencies = Vec::with_capacity(total);
                let mut read = Vec::with_capacity(total);
                let deadline = Instant::now() + Duration::from_secs(args_deadline(total, rate));
                while latencies.len() < total && Instant::now() < deadline {
                    for r in consumer.poll(1000, Duration::from_millis(20))? {
                        let now = Instant::now();
                        let trigger = r
                            .headers
                            .iter()
                            .find(|h| h.key == "eddy.lineage.trigger")
                            .and_then(|h| h.value.as_deref())
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .map(str::to_string);
                        let Some(t) = trigger else { continue };
                        let mut parts = t.rsplitn(3, '/');
                        let (Some(o), Some(p)) = (parts.next(), parts.next()) else {
                            continue;
                        };
                        let key = (p.parse::<i32>()?, o.parse::<i64>()?);
                        if let Some(at) = sent.lock().expect("poisoned").get(&key) {
                            latencies.push(now.duration_since(*at).as_secs_f64() * 1e6);
                        }
                        read.push(r);
                    }
                }
                Ok((latencies, read))
            },
        )
    };
    let mut next: HashMap<i32, i64> = backend
        .describe_topic(events)?
        .partitions
        .iter()
        .map(|p| (p.id, p.high))
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let kafka = backend.kind() == "kafka";
    let mut producer = backend.producer()?;
    let started = Instant::now();
    for i in 0..total {
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let rec = event(i)?;
        let at = Instant::now();
        let p = producer.send(rec)?;
        let offset = next.entry(p).or_insert(0);
        sent.lock().expect("poisoned").insert((p, *offset), at);
        *offset += 1;
        // On the local log an event counts as produced once flushed (visible
        // and durable). librdkafka sends in the background (after
        // `linger.ms`); flushing there would wait for each ack and cap the
        // rate at one record per round trip.
        if !kafka {
            producer.flush()?;
        }
    }
    producer.flush()?;
    let result = reader.join().expect("reader")?;
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server")?;
    Ok(result)
}

/// Reads `topic` from its current end: explicit offsets, because a lazily
/// resolved "latest" can skip the first records produced after it.
pub fn assign_at_end(
    backend: &dyn Backend,
    consumer: &mut dyn eddy_features::topic::Consumer,
    topic: &str,
) -> anyhow::Result<()> {
    let at: Vec<(i32, StartOffset)> = backend
        .describe_topic(topic)?
        .partitions
        .iter()
        .map(|p| (p.id, StartOffset::At(p.high)))
        .collect();
    consumer.assign(topic, &at)?;
    Ok(())
}

/// How long a reader waits for the last record: the run, plus a minute.
pub fn args_deadline(total: usize, rate: u64) -> u64 {
    60 + total as u64 / rate.max(1)
}
