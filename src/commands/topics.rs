//! `eddy topics ...`

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eddy_features::avro::{AvroCodec, AvroError, avro_to_json, looks_framed, parse_schema};
use eddy_features::registry::value_subject;
use eddy_features::topic::dead_letter::DeadLetters;
use eddy_features::topic::{CleanupPolicy, Header, ProducerRecord, Record, StartOffset, TopicSpec};
use serde_json::{Value as Json, json};

use crate::cli::{ConsumeArgs, CreateArgs, Global, ProduceArgs, TopicsCommand, ValueFormat};
use crate::context::{Context, parse_pairs};
use crate::exit::{CliError, ExitCode};

pub fn run(global: &Global, cmd: TopicsCommand) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    match cmd {
        TopicsCommand::List => {
            for name in ctx.backend.list_topics()? {
                println!("{name}");
            }
            Ok(())
        }
        TopicsCommand::Create(args) => create(&ctx, &args),
        TopicsCommand::Describe { topic } => describe(&ctx, &topic),
        TopicsCommand::Produce(args) => produce(&mut ctx, &args),
        TopicsCommand::Consume(args) => {
            consume(&mut ctx, &args, Duration::from_secs(global.timeout.max(1)))
        }
        TopicsCommand::Schema { topic } => schema(&mut ctx, &topic),
    }
}

/// `eddy topics schema T`: the registered value schema, pretty-printed.
fn schema(ctx: &mut Context, topic: &str) -> anyhow::Result<()> {
    ctx.backend.describe_topic(topic)?;
    let registry = ctx.registry()?;
    let subject = value_subject(topic);
    let latest = registry.latest(&subject).map_err(|e| match e {
        eddy_features::registry::RegistryError::SubjectNotFound(_) => CliError::fail(
            ExitCode::Usage,
            format!(
                "topic `{topic}` has no registered value schema (`{subject}`): its records are not Avro through the registry"
            ),
        ),
        other => anyhow::Error::new(other),
    })?;
    let pretty = serde_json::from_str::<Json>(&latest.schema)
        .and_then(|j| serde_json::to_string_pretty(&j))
        .unwrap_or(latest.schema.clone());
    eprintln!(
        "{subject} version {} (schema id {})",
        latest.version, latest.id
    );
    println!("{pretty}");
    Ok(())
}

fn create(ctx: &Context, args: &CreateArgs) -> anyhow::Result<()> {
    let mut spec = TopicSpec::new(&args.topic).partitions(args.partitions);
    spec.replication_factor = args.replication_factor;
    spec.retention_ms = args.retention_ms;
    spec.retention_bytes = args.retention_bytes;
    spec.config = parse_pairs(&args.configs, "topic config")?;
    if let Some(policy) = spec.config.remove("cleanup.policy") {
        spec.cleanup = CleanupPolicy::parse(&policy).ok_or_else(|| {
            CliError::fail(
                ExitCode::Usage,
                format!("cleanup.policy `{policy}` is not delete, compact or compact,delete"),
            )
        })?;
    }
    if args.compact {
        spec.cleanup = CleanupPolicy::Compact;
    }
    ctx.backend.create_topic(&spec)?;
    eprintln!(
        "created topic {} ({} partitions, cleanup.policy={})",
        spec.name, spec.partitions, spec.cleanup
    );
    Ok(())
}

fn describe(ctx: &Context, topic: &str) -> anyhow::Result<()> {
    let d = ctx.backend.describe_topic(topic)?;
    let policy = d.cleanup.map_or("unknown".to_string(), |c| c.to_string());
    println!(
        "topic {} on {} backend, cleanup.policy={policy}",
        d.name,
        ctx.backend.kind()
    );
    println!("{:>9} {:>12} {:>12}", "partition", "low", "high");
    for p in &d.partitions {
        println!("{:>9} {:>12} {:>12}", p.id, p.low, p.high);
    }
    println!(
        "{} records (at most, on a compacted topic)",
        d.approximate_records()
    );
    Ok(())
}

fn read_schema_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::fail(
            ExitCode::Usage,
            format!("cannot read schema {}: {e}", path.display()),
        )
    })
}

fn invalid_line(line_no: usize, written: u64, reason: impl std::fmt::Display) -> anyhow::Error {
    CliError::fail(
        ExitCode::InvalidInput,
        format!(
            "stdin line {line_no}: {reason}; the {written} record(s) before it were written and flushed, nothing after it"
        ),
    )
}

fn field_bytes(value: &Json) -> Vec<u8> {
    match value {
        Json::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn produce(ctx: &mut Context, args: &ProduceArgs) -> anyhow::Result<()> {
    // Fail on a missing topic before registering anything.
    ctx.backend.describe_topic(&args.topic)?;
    let encoder = match &args.schema {
        Some(path) => {
            let text = read_schema_file(path)?;
            let codec = AvroCodec::new(ctx.registry()?);
            let subject = value_subject(&args.topic);
            let encoder = codec.encoder(&subject, &text).with_context(|| {
                format!("registering {} under subject {subject}", path.display())
            })?;
            eprintln!(
                "schema {} registered under {subject} with id {}",
                path.display(),
                encoder.schema_id()
            );
            Some(encoder)
        }
        None => None,
    };
    let mut producer = ctx.backend.producer()?;
    let mut written = 0u64;
    let mut unflushed = false;
    for item in stdin_lines(LINGER) {
        let (line_no, line) = match item {
            StdinItem::Line(n, line) => (n, line),
            StdinItem::Idle => {
                // A slow stream (`tail -f | eddy topics produce`): make what
                // arrived so far durable and visible instead of buffering it.
                if unflushed {
                    producer.flush()?;
                    unflushed = false;
                }
                continue;
            }
            StdinItem::Failed(e) => {
                producer.flush()?;
                return Err(anyhow::Error::new(e)
                    .context(format!("reading stdin after {written} record(s)")));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let record = match build_record(args, encoder.as_ref(), &line) {
            Ok(r) => r,
            Err(reason) => {
                producer.flush()?;
                return Err(invalid_line(line_no, written, reason));
            }
        };
        if let Err(e) = producer.send(record) {
            producer.flush()?;
            return Err(anyhow::Error::new(e).context(format!(
                "stdin line {line_no}: {written} record(s) before it were written"
            )));
        }
        written += 1;
        unflushed = true;
    }
    producer.flush()?;
    eprintln!("produced {written} record(s) to {}", args.topic);
    Ok(())
}

/// How long stdin may be quiet before what was read is flushed.
const LINGER: Duration = Duration::from_millis(100);

enum StdinItem {
    /// A line and its 1-based number.
    Line(usize, String),
    /// Nothing arrived for the linger time.
    Idle,
    /// Reading failed.
    Failed(std::io::Error),
}

/// Lines of stdin, read on a thread so that a quiet stream yields `Idle`.
fn stdin_lines(linger: Duration) -> impl Iterator<Item = StdinItem> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<String, std::io::Error>>(4096);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                break;
            }
        }
    });
    let mut line_no = 0;
    std::iter::from_fn(move || match rx.recv_timeout(linger) {
        Ok(Ok(line)) => {
            line_no += 1;
            Some(StdinItem::Line(line_no, line))
        }
        Ok(Err(e)) => Some(StdinItem::Failed(e)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Some(StdinItem::Idle),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
    })
}

fn build_record(
    args: &ProduceArgs,
    encoder: Option<&eddy_features::avro::Encoder>,
    line: &str,
) -> Result<ProducerRecord, String> {
    let needs_json =
        encoder.is_some() || args.key_field.is_some() || args.timestamp_field.is_some();
    let json: Option<Json> = if needs_json {
        Some(serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?)
    } else {
        None
    };
    let field = |name: &str| -> Result<&Json, String> {
        json.as_ref()
            .and_then(|j| j.get(name))
            .ok_or_else(|| format!("no field `{name}`"))
    };
    let key = match &args.key_field {
        Some(f) => Some(field_bytes(field(f)?)),
        None => None,
    };
    let timestamp_ms = match &args.timestamp_field {
        Some(f) => Some(
            field(f)?
                .as_i64()
                .ok_or_else(|| format!("field `{f}` is not an integer timestamp (epoch ms)"))?,
        ),
        None => None,
    };
    let value = match (encoder, &json) {
        (Some(enc), Some(j)) => enc.encode_json(j).map_err(|e| e.to_string())?,
        _ => line.as_bytes().to_vec(),
    };
    Ok(ProducerRecord {
        topic: args.topic.clone(),
        partition: None,
        key,
        value: Some(value),
        timestamp_ms,
        headers: Vec::new(),
    })
}

/// How values of this topic are decoded.
struct ValueReader {
    codec: Option<AvroCodec>,
    expect_avro: bool,
}

impl ValueReader {
    fn render(&self, bytes: Option<&[u8]>) -> Result<Json, AvroError> {
        let Some(bytes) = bytes else {
            return Ok(Json::Null);
        };
        match &self.codec {
            Some(codec) if self.expect_avro || looks_framed(bytes) => {
                Ok(avro_to_json(&codec.decode(bytes)?.value))
            }
            _ => Ok(raw_json(bytes)),
        }
    }
}

fn raw_json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn envelope(r: &Record, value: Json) -> Json {
    let headers: serde_json::Map<String, Json> = r
        .headers
        .iter()
        .map(|h: &Header| {
            (
                h.key.clone(),
                h.value.as_deref().map_or(Json::Null, |v| {
                    Json::String(String::from_utf8_lossy(v).into_owned())
                }),
            )
        })
        .collect();
    json!({
        "topic": r.topic, "partition": r.partition, "offset": r.offset, "timestamp": r.timestamp_ms,
        "key": r.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers, "value": value,
    })
}

fn consume(ctx: &mut Context, args: &ConsumeArgs, idle_timeout: Duration) -> anyhow::Result<()> {
    let description = ctx.backend.describe_topic(&args.topic)?;
    let registry = match args.format {
        ValueFormat::Raw => None,
        ValueFormat::Avro => Some(ctx.registry()?),
        ValueFormat::Auto => ctx.existing_registry()?,
    };
    let expect_avro = match (&args.format, &registry) {
        (ValueFormat::Avro, _) => true,
        (ValueFormat::Auto, Some(r)) => r.subjects()?.contains(&value_subject(&args.topic)),
        _ => false,
    };
    let reader_schema = match &args.reader_schema {
        Some(path) => {
            let text = read_schema_file(path)?;
            Some(parse_schema(&text).with_context(|| format!("reader schema {}", path.display()))?)
        }
        None => None,
    };
    let reader = ValueReader {
        codec: registry.map(|r| match reader_schema {
            Some(schema) => AvroCodec::with_reader_schema(r, schema),
            None => AvroCodec::new(r),
        }),
        expect_avro,
    };

    let mut dead_letters = match &args.dead_letter_topic {
        Some(topic) => Some(DeadLetters::open(ctx.backend.as_ref(), topic)?),
        None => None,
    };
    let mut consumer = ctx.backend.consumer(args.group.as_deref())?;
    let start = args.from.unwrap_or(if args.group.is_some() {
        StartOffset::Committed {
            fallback_latest: false,
        }
    } else {
        StartOffset::Earliest
    });
    // Where each partition starts, to know when it is read to its end.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &description.partitions {
        let from = match start {
            StartOffset::Earliest => p.low,
            StartOffset::Latest => p.high,
            StartOffset::At(o) => o,
            StartOffset::Committed { fallback_latest } => {
                match consumer.committed(&args.topic, p.id)? {
                    Some(o) => o,
                    None if fallback_latest => p.high,
                    None => p.low,
                }
            }
        };
        if from < p.high {
            ends.insert(p.id, p.high);
        }
    }
    consumer.assign_all(&args.topic, start)?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut printed, mut bad) = (0u64, 0u64);
    let mut last_record = Instant::now();
    let max = args.max.unwrap_or(u64::MAX);
    while printed + bad < max && (args.follow || !ends.is_empty()) {
        let batch = consumer.poll(1000, Duration::from_millis(200))?;
        if batch.is_empty() {
            if !args.follow && last_record.elapsed() > idle_timeout {
                tracing::info!(
                    ?ends,
                    "no records for {idle_timeout:?}; stopping (compacted-away tail?)"
                );
                break;
            }
            continue;
        }
        last_record = Instant::now();
        let mut commits: BTreeMap<i32, i64> = BTreeMap::new();
        for r in batch {
            if !args.follow {
                match ends.get(&r.partition) {
                    Some(&end) if r.offset < end => {
                        if r.offset + 1 >= end {
                            ends.remove(&r.partition);
                        }
                    }
                    _ => continue,
                }
            }
            commits.insert(r.partition, r.offset + 1);
            match reader.render(r.value.as_deref()) {
                Ok(value) => {
                    let line = if args.envelope {
                        envelope(&r, value)
                    } else {
                        value
                    };
                    if let Err(e) = writeln!(out, "{line}") {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(());
                        }
                        return Err(e.into());
                    }
                    printed += 1;
                }
                Err(e) => {
                    eprintln!(
                        "error: {}/{} offset {}: {e}",
                        r.topic, r.partition, r.offset
                    );
                    if let Some(dlq) = dead_letters.as_mut() {
                        dlq.send(&r, &e.to_string())?;
                    }
                    bad += 1;
                }
            }
            if printed + bad >= max {
                break;
            }
        }
        out.flush().ok();
        if args.group.is_some() && !commits.is_empty() {
            let offsets: Vec<(String, i32, i64)> = commits
                .into_iter()
                .map(|(p, o)| (args.topic.clone(), p, o))
                .collect();
            consumer.commit(&offsets)?;
        }
    }
    if let Err(e) = out.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    let parked = match dead_letters.as_mut() {
        Some(dlq) => {
            dlq.flush()?;
            format!(
                "; {} copied to {} with the reason",
                dlq.count(),
                dlq.topic()
            )
        }
        None => String::new(),
    };
    if bad > 0 {
        return Err(CliError::fail(
            ExitCode::UndecodableRecord,
            format!(
                "{bad} of {} record(s) of {} could not be decoded (see above){parked}; the others were printed",
                bad + printed,
                args.topic
            ),
        ));
    }
    Ok(())
}
