//! The behaviour every backend must share. Each backend's tests call
//! [`run_all`]; code above the topic API relies on exactly these properties.

use std::collections::BTreeMap;
use std::time::Duration;

use super::partitioner::partition_for_key;
use super::{
    Backend, Header, ProducerRecord, Record, StartOffset, TopicError, TopicSpec, read_to_end,
};

const WAIT: Duration = Duration::from_secs(15);

/// Runs every check with topic names starting with `prefix`.
pub(crate) fn run_all(backend: &dyn Backend, prefix: &str) {
    admin(backend, prefix);
    round_trip(backend, prefix);
    seek_and_latest(backend, prefix);
    group_offsets(backend, prefix);
    unknown_topic(backend, prefix);
    pause_and_resume(backend, prefix);
}

/// Reads until `n` records arrived (or fails after [`WAIT`]).
pub(crate) fn poll_n(consumer: &mut dyn super::Consumer, n: usize) -> Vec<Record> {
    let deadline = std::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} records arrived within {WAIT:?}",
            out.len()
        );
        out.extend(
            consumer
                .poll(n - out.len(), Duration::from_millis(200))
                .expect("poll"),
        );
    }
    out
}

fn admin(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-admin");
    backend
        .create_topic(&TopicSpec::new(&name).partitions(3))
        .expect("create");
    assert!(matches!(
        backend.create_topic(&TopicSpec::new(&name)),
        Err(TopicError::TopicExists(_))
    ));
    assert!(
        !backend
            .ensure_topic(&TopicSpec::new(&name))
            .expect("ensure existing")
    );
    assert!(backend.list_topics().expect("list").contains(&name));
    let d = backend.describe_topic(&name).expect("describe");
    assert_eq!(d.partitions.len(), 3);
    assert!(
        d.partitions.iter().all(|p| p.low == 0 && p.high == 0),
        "{d:?}"
    );
    assert!(matches!(
        backend.create_topic(&TopicSpec::new("bad/name")),
        Err(TopicError::InvalidTopicName(_))
    ));

    let table = format!("{prefix}-table");
    backend
        .create_topic(&TopicSpec::new(&table).compacted())
        .expect("create compacted");
    let d = backend.describe_topic(&table).expect("describe compacted");
    if let Some(policy) = d.cleanup {
        assert!(policy.compacts(), "{policy:?}");
    }
}

fn round_trip(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-events");
    backend
        .create_topic(&TopicSpec::new(&name).partitions(3))
        .expect("create");
    let mut producer = backend.producer().expect("producer");
    let mut sent = Vec::new();
    for i in 0..60i64 {
        let key = format!("user-{}", i % 7).into_bytes();
        let value = if i % 10 == 9 {
            None
        } else {
            Some(format!("{{\"i\":{i}}}").into_bytes())
        };
        let record = ProducerRecord {
            topic: name.clone(),
            partition: None,
            key: Some(key.clone()),
            value: value.clone(),
            timestamp_ms: Some(1_700_000_000_000 + i * 1000),
            headers: vec![
                Header::text("trace", format!("t{i}")),
                Header {
                    key: "empty".into(),
                    value: None,
                },
            ],
        };
        let partition = producer.send(record).expect("send");
        assert_eq!(
            partition,
            partition_for_key(&key, 3),
            "keyed records go where Kafka's Java partitioner puts them"
        );
        sent.push((partition, key, value, 1_700_000_000_000 + i * 1000, i));
    }
    producer.flush().expect("flush");

    let d = backend.describe_topic(&name).expect("describe");
    assert_eq!(
        d.partitions.iter().map(|p| p.high).sum::<i64>(),
        60,
        "{d:?}"
    );

    let mut consumer = backend.consumer(None).expect("consumer");
    consumer
        .assign_all(&name, StartOffset::Earliest)
        .expect("assign");
    let got = poll_n(consumer.as_mut(), 60);
    let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in &got {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (partition, records) in by_partition {
        let expected: Vec<_> = sent.iter().filter(|s| s.0 == partition).collect();
        assert_eq!(records.len(), expected.len());
        for (offset, (r, s)) in records.iter().zip(expected).enumerate() {
            assert_eq!(
                r.offset, offset as i64,
                "offsets are dense from 0 in partition {partition}"
            );
            assert_eq!(r.key.as_ref(), Some(&s.1));
            assert_eq!(r.value, s.2, "null values stay null");
            assert_eq!(r.timestamp_ms, s.3);
            assert_eq!(r.header("trace"), Some(format!("t{}", s.4).as_bytes()));
            assert!(
                r.headers
                    .iter()
                    .any(|h| h.key == "empty" && h.value.is_none()),
                "null header values survive"
            );
        }
    }
    assert_eq!(
        read_to_end(backend, &name, WAIT)
            .expect("read to end")
            .len(),
        60
    );
}

/// Regressions on tansu 0.6: a fetch from the middle of a record batch
/// skipped the rest of that batch, and "latest" pointed into the last batch.
/// The ten records below are flushed together, so they form one batch.
fn seek_and_latest(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-seek");
    backend
        .create_topic(&TopicSpec::new(&name))
        .expect("create");
    let mut producer = backend.producer().expect("producer");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(&name, None, Some(vec![i])))
            .expect("send");
    }
    producer.flush().expect("flush");

    let mut consumer = backend.consumer(None).expect("consumer");
    consumer
        .assign(&name, &[(0, StartOffset::At(4))])
        .expect("assign at 4");
    let got = poll_n(consumer.as_mut(), 6);
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    consumer.seek(&name, 0, 8).expect("seek");
    let got = poll_n(consumer.as_mut(), 2);
    assert_eq!(
        got.iter()
            .map(|r| r.value.clone().unwrap()[0])
            .collect::<Vec<_>>(),
        vec![8, 9]
    );

    let mut tail = backend.consumer(None).expect("consumer");
    tail.assign_all(&name, StartOffset::Latest)
        .expect("assign latest");
    assert!(
        tail.poll(10, Duration::from_millis(300))
            .expect("poll")
            .is_empty(),
        "latest skips history"
    );
    producer
        .send(ProducerRecord::new(&name, None, Some(vec![42])))
        .expect("send");
    producer.flush().expect("flush");
    let got = poll_n(tail.as_mut(), 1);
    assert_eq!((got[0].offset, got[0].value.clone()), (10, Some(vec![42])));
}

fn group_offsets(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-groups");
    let group = format!("{prefix}-group");
    backend
        .create_topic(&TopicSpec::new(&name).partitions(2))
        .expect("create");
    let mut producer = backend.producer().expect("producer");
    for i in 0..20 {
        producer
            .send(ProducerRecord::new(&name, Some(vec![i]), Some(vec![i])))
            .expect("send");
    }
    producer.flush().expect("flush");

    let mut first = backend.consumer(Some(&group)).expect("consumer");
    assert_eq!(first.committed(&name, 0).expect("committed"), None);
    first
        .assign_all(
            &name,
            StartOffset::Committed {
                fallback_latest: false,
            },
        )
        .expect("assign");
    let got = poll_n(first.as_mut(), 20);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in got.iter().filter(|r| r.offset < 3) {
        next.insert(r.partition, r.offset + 1);
    }
    let commits: Vec<(String, i32, i64)> =
        next.iter().map(|(p, o)| (name.clone(), *p, *o)).collect();
    first.commit(&commits).expect("commit");
    drop(first);

    let mut second = backend.consumer(Some(&group)).expect("consumer");
    for (p, o) in &next {
        assert_eq!(second.committed(&name, *p).expect("committed"), Some(*o));
    }
    second
        .assign_all(
            &name,
            StartOffset::Committed {
                fallback_latest: false,
            },
        )
        .expect("assign");
    let resumed = poll_n(second.as_mut(), 20 - 6);
    assert!(
        resumed.iter().all(|r| r.offset >= 3),
        "resumes after the committed offsets"
    );
}

fn unknown_topic(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-missing");
    assert!(matches!(
        backend.describe_topic(&name),
        Err(TopicError::UnknownTopic(_))
    ));
    let mut producer = backend.producer().expect("producer");
    let sent = producer.send(ProducerRecord::new(&name, None, Some(vec![1])));
    assert!(matches!(sent, Err(TopicError::UnknownTopic(_))), "{sent:?}");
    let mut consumer = backend.consumer(None).expect("consumer");
    assert!(matches!(
        consumer.assign_all(&name, StartOffset::Earliest),
        Err(TopicError::UnknownTopic(_))
    ));
}

/// A paused partition returns nothing while the others go on; resumed, it
/// returns every record from where it stopped, once and in order.
fn pause_and_resume(backend: &dyn Backend, prefix: &str) {
    let name = format!("{prefix}-pause");
    backend
        .create_topic(&TopicSpec::new(&name).partitions(2))
        .expect("create");
    let mut producer = backend.producer().expect("producer");
    let send = |producer: &mut Box<dyn super::Producer>, partition: i32, value: u8| {
        let mut r = ProducerRecord::new(&name, None, Some(vec![value]));
        r.partition = Some(partition);
        producer.send(r).expect("send");
    };
    for i in 0..4 {
        send(&mut producer, 0, i);
        send(&mut producer, 1, 100 + i);
    }
    producer.flush().expect("flush");
    let mut consumer = backend.consumer(None).expect("consumer");
    consumer
        .assign_all(&name, StartOffset::Earliest)
        .expect("assign");
    // Two of partition 0 first, then pause it.
    let mut first = Vec::new();
    while first.iter().filter(|r: &&Record| r.partition == 0).count() < 2 {
        first.extend(poll_n(consumer.as_mut(), 1));
    }
    let last0 = first
        .iter()
        .filter(|r| r.partition == 0)
        .map(|r| r.offset)
        .max()
        .unwrap();
    consumer.pause(&name, 0, true).expect("pause");
    let mut seen: Vec<Record> = first;
    let deadline = std::time::Instant::now() + WAIT;
    while seen.iter().filter(|r| r.partition == 1).count() < 4 {
        assert!(std::time::Instant::now() < deadline, "partition 1 goes on");
        seen.extend(consumer.poll(10, Duration::from_millis(200)).expect("poll"));
    }
    assert!(
        seen.iter().all(|r| r.partition == 1 || r.offset <= last0),
        "nothing of the paused partition after the pause"
    );
    assert!(
        consumer
            .poll(10, Duration::from_millis(300))
            .expect("poll")
            .is_empty(),
        "paused: nothing more"
    );
    consumer.pause(&name, 0, false).expect("resume");
    let rest = poll_n(consumer.as_mut(), (3 - last0) as usize);
    assert_eq!(
        rest.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>(),
        ((last0 + 1)..4).map(|o| (0, o)).collect::<Vec<_>>(),
        "resumed where it stopped"
    );
    assert!(
        consumer.pause(&name, 7, true).is_err(),
        "a partition not assigned cannot be paused"
    );
}
