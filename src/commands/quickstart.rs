//! `eddy quickstart`: MovieLens into the embedded log, and back.
//!
//! What it does now (later features extend it into the whole pipeline):
//! 1. resets the quickstart's data directory (only if a previous quickstart
//!    made it) or starts a fresh one;
//! 2. creates `ratings` (an event stream keyed by user, 4 partitions) and
//!    `movies` (a compacted reference table keyed by movie);
//! 3. registers their Avro schemas (`datasets/movielens/*.avsc`) and writes
//!    every movie, then every rating in event-time order, as Confluent Avro;
//! 4. reads both topics back through the registry, checks the counts, and
//!    prints a summary.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apache_avro::types::Value;
use eddy_features::avro::{AvroCodec, Encoder};
use eddy_features::engine::archive::utc_date;
use eddy_features::registry::{SchemaRegistry, value_subject};
use eddy_features::topic::{Backend, ProducerRecord, TopicSpec, read_to_end};

use crate::cli::{Global, QuickstartArgs};
use crate::context::Context;
use crate::exit::{CliError, ExitCode};
use crate::progress;

const RATING_SCHEMA: &str = include_str!("../../datasets/movielens/rating.avsc");
const MOVIE_SCHEMA: &str = include_str!("../../datasets/movielens/movie.avsc");
const MARKER: &str = ".eddy-quickstart";

struct Rating {
    user_id: i64,
    movie_id: i64,
    rating: f64,
    timestamp_ms: i64,
}

struct Movie {
    movie_id: i64,
    title: String,
    year: Option<i32>,
    genres: Vec<String>,
}

pub fn run(global: &Global, args: &QuickstartArgs) -> anyhow::Result<()> {
    let dataset = locate_dataset(&args.dataset)?;
    let reset_note = if global.brokers.is_none() {
        prepare_data_dir(&global.data_dir)?
    } else {
        String::new()
    };
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let codec = AvroCodec::new(registry.clone());

    let movies = read_movies(&dataset.join("movies.csv"))?;
    let mut ratings = read_ratings(&dataset.join("ratings.csv"))?;
    // An event stream is in event-time order; the CSV is sorted by user.
    ratings.sort_by_key(|r| (r.timestamp_ms, r.user_id, r.movie_id));
    if let Some(limit) = args.limit {
        ratings.truncate(limit);
    }
    let catalog_time = ratings.first().map_or(0, |r| r.timestamp_ms);

    let backend = ctx.backend.clone();
    for spec in [
        TopicSpec::new("ratings").partitions(4),
        TopicSpec::new("movies").compacted(),
    ] {
        if !backend.ensure_topic(&spec)?
            && backend.describe_topic(&spec.name)?.approximate_records() > 0
        {
            return Err(CliError::fail(
                ExitCode::Usage,
                format!(
                    "topic `{}` already has records on this cluster; quickstart loads into empty topics",
                    spec.name
                ),
            ));
        }
    }
    let movie_enc = codec.encoder(&value_subject("movies"), MOVIE_SCHEMA)?;
    let rating_enc = codec.encoder(&value_subject("ratings"), RATING_SCHEMA)?;

    let started = Instant::now();
    write_movies(backend.as_ref(), &movie_enc, &movies, catalog_time)?;
    write_ratings(backend.as_ref(), &rating_enc, &ratings)?;
    let produce_time = started.elapsed();
    let produced = (movies.len() + ratings.len()) as u64;

    let started = Instant::now();
    let catalog: HashSet<i64> = movies.iter().map(|m| m.movie_id).collect();
    let check = read_back(backend.as_ref(), &codec, &catalog)?;
    let read_time = started.elapsed();
    if check.movies != movies.len() as u64 || check.ratings != ratings.len() as u64 {
        return Err(CliError::fail(
            ExitCode::Internal,
            format!(
                "read back {} movies and {} ratings, but wrote {} and {}",
                check.movies,
                check.ratings,
                movies.len(),
                ratings.len()
            ),
        ));
    }
    // The user of the latest rating: their recent windows are not empty.
    let sample_user = ratings.last().map_or(1, |r| r.user_id).to_string();
    let features = super::quickstart_features::run(&ctx, registry.clone(), &sample_user)?;
    print_summary(
        &ctx,
        registry.as_ref(),
        &reset_note,
        produced,
        produce_time,
        read_time,
        &check,
    )?;
    println!();
    super::quickstart_features::print(&features, &sample_user);
    if args.tail > 0 {
        let titles: HashMap<i64, String> = movies
            .iter()
            .map(|m| (m.movie_id, m.title.clone()))
            .collect();
        let history: Vec<(i64, i64, f64, i64)> = ratings
            .iter()
            .map(|r| (r.user_id, r.movie_id, r.rating, r.timestamp_ms))
            .collect();
        let serving = super::quickstart_serving::run(
            &ctx,
            registry.clone(),
            &features,
            &history,
            &titles,
            &rating_enc,
            args.tail,
        )?;
        super::quickstart_serving::print(&serving);
    }
    println!();
    let spec = super::quickstart_features::PIPELINE_PATH;
    println!("Next:");
    for (command, why) in [
        (
            "eddy topics consume --topic ratings --max 5".to_string(),
            "the events, as JSON",
        ),
        (
            "eddy topics consume --topic features.user_activity --max 3".to_string(),
            "the feature table",
        ),
        (
            format!("eddy validate {spec}"),
            "the spec, checked against the schemas",
        ),
        (
            format!("eddy run {spec}"),
            "live: features as new ratings arrive",
        ),
        (
            format!(
                "eddy backfill {spec} --labels ratings --label-expr 'rating >= 4' --out eddy-data/backfill"
            ),
            "a point-in-time training set",
        ),
        (
            format!("eddy serve {spec}"),
            "live recommendations; add ratings and watch `recommendations`",
        ),
        (
            format!("eddy run {spec} --serve"),
            "both in one process: features, models and recommendations",
        ),
        (
            "eddy topics consume --topic recommendations --max 3".to_string(),
            "what serving emitted, with lineage",
        ),
        (
            format!("eddy evaluate {spec}"),
            "the freshness lift, in full",
        ),
        (
            "eddy registry serve".to_string(),
            "Confluent REST API on 127.0.0.1:8081",
        ),
    ] {
        println!("  {command:<58} # {why}");
    }
    Ok(())
}

/// Finds the dataset: as given, or next to the eddy sources (so the
/// binary works from any directory of a checkout).
fn locate_dataset(given: &Path) -> anyhow::Result<PathBuf> {
    let candidates = [
        given.to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(given),
    ];
    candidates.into_iter().find(|p| p.join("ratings.csv").exists()).ok_or_else(|| {
        CliError::fail(
            ExitCode::Usage,
            format!("no MovieLens data at {} (expected ratings.csv and movies.csv); pass --dataset DIR", given.display()),
        )
    })
}

/// Resets a data directory that a previous quickstart made; refuses to touch
/// one that holds anything else.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<String> {
    let empty = !dir.exists() || std::fs::read_dir(dir)?.next().is_none();
    let note = if empty {
        format!("fresh data directory {}", dir.display())
    } else if dir.join(MARKER).exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("resetting {}", dir.display()))?;
        format!(
            "reset {} (it held the previous quickstart's data)",
            dir.display()
        )
    } else {
        return Err(CliError::fail(
            ExitCode::Usage,
            format!(
                "{} holds data that quickstart did not write; pass --data-dir to use another directory",
                dir.display()
            ),
        ));
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "written by `eddy quickstart`; it resets this directory on its next run\n",
    )?;
    Ok(note)
}

fn csv_error(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    CliError::fail(ExitCode::InvalidInput, format!("{}: {e}", path.display()))
}

/// Column `i` (named `name`) of a CSV row, parsed; errors name file, line
/// and column.
fn column<T: std::str::FromStr>(
    path: &Path,
    row: &csv::StringRecord,
    i: usize,
    name: &str,
) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let line = row.position().map_or(0, |p| p.line());
    let text = row
        .get(i)
        .ok_or_else(|| csv_error(path, format!("line {line}: no column {name}")))?;
    text.parse()
        .map_err(|e| csv_error(path, format!("line {line}: {name} `{text}`: {e}")))
}

fn read_movies(path: &Path) -> anyhow::Result<Vec<Movie>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| csv_error(path, e))?;
        let (title, year) = split_year(&column::<String>(path, &row, 1, "title")?);
        let genres = match column::<String>(path, &row, 2, "genres")?.as_str() {
            "(no genres listed)" => Vec::new(),
            g => g.split('|').map(str::to_string).collect(),
        };
        out.push(Movie {
            movie_id: column(path, &row, 0, "movieId")?,
            title,
            year,
            genres,
        });
    }
    Ok(out)
}

/// "Toy Story (1995)" -> ("Toy Story", Some(1995)).
fn split_year(title: &str) -> (String, Option<i32>) {
    let t = title.trim();
    if let Some(open) = t.rfind('(')
        && t.ends_with(')')
        && let Ok(year) = t[open + 1..t.len() - 1].trim().parse::<i32>()
    {
        return (t[..open].trim().to_string(), Some(year));
    }
    (t.to_string(), None)
}

fn read_ratings(path: &Path) -> anyhow::Result<Vec<Rating>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let mut out = Vec::with_capacity(101_000);
    for row in reader.records() {
        let row = row.map_err(|e| csv_error(path, e))?;
        let seconds: i64 = column(path, &row, 3, "timestamp")?;
        out.push(Rating {
            user_id: column(path, &row, 0, "userId")?,
            movie_id: column(path, &row, 1, "movieId")?,
            rating: column(path, &row, 2, "rating")?,
            timestamp_ms: seconds.saturating_mul(1000),
        });
    }
    Ok(out)
}

fn write_movies(
    backend: &dyn Backend,
    enc: &Encoder,
    movies: &[Movie],
    at_ms: i64,
) -> anyhow::Result<()> {
    let bar = progress::bar(movies.len() as u64, "movies");
    let mut producer = backend.producer()?;
    for m in movies {
        let value = Value::Record(vec![
            ("movie_id".into(), Value::Long(m.movie_id)),
            ("title".into(), Value::String(m.title.clone())),
            (
                "year".into(),
                m.year.map_or(Value::Union(0, Box::new(Value::Null)), |y| {
                    Value::Union(1, Box::new(Value::Int(y)))
                }),
            ),
            (
                "genres".into(),
                Value::Array(m.genres.iter().cloned().map(Value::String).collect()),
            ),
        ]);
        // The catalog is valid from the start of the rating history, so
        // as-of joins find every movie.
        let record = ProducerRecord::new(
            "movies",
            Some(m.movie_id.to_string().into_bytes()),
            Some(enc.encode(&value)?),
        )
        .at(at_ms);
        producer.send(record)?;
        bar.inc(1);
    }
    producer.flush()?;
    bar.finish_and_clear();
    Ok(())
}

fn write_ratings(backend: &dyn Backend, enc: &Encoder, ratings: &[Rating]) -> anyhow::Result<()> {
    let bar = progress::bar(ratings.len() as u64, "ratings");
    let mut producer = backend.producer()?;
    for (i, r) in ratings.iter().enumerate() {
        let value = Value::Record(vec![
            ("user_id".into(), Value::Long(r.user_id)),
            ("movie_id".into(), Value::Long(r.movie_id)),
            ("rating".into(), Value::Double(r.rating)),
            ("timestamp".into(), Value::TimestampMillis(r.timestamp_ms)),
        ]);
        let record = ProducerRecord::new(
            "ratings",
            Some(r.user_id.to_string().into_bytes()),
            Some(enc.encode(&value)?),
        )
        .at(r.timestamp_ms);
        producer.send(record)?;
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    producer.flush()?;
    bar.finish_and_clear();
    Ok(())
}

/// What reading the topics back found.
struct ReadBack {
    movies: u64,
    ratings: u64,
    users: usize,
    rated_movies: usize,
    /// Ratings of a movie that is not in the catalog.
    unknown_movie_ratings: u64,
    mean_rating: f64,
    first_ms: i64,
    last_ms: i64,
}

fn read_back(
    backend: &dyn Backend,
    codec: &AvroCodec,
    catalog: &HashSet<i64>,
) -> anyhow::Result<ReadBack> {
    let timeout = Duration::from_secs(120);
    let movies = read_to_end(backend, "movies", timeout)?;
    let mut titles = 0u64;
    for r in &movies {
        if let Some(v) = &r.value {
            codec
                .decode(v)
                .with_context(|| format!("movies offset {}", r.offset))?;
            titles += 1;
        }
    }
    let ratings = read_to_end(backend, "ratings", timeout)?;
    let bar = progress::bar(ratings.len() as u64, "read back");
    let (mut users, mut rated) = (HashSet::new(), HashSet::new());
    let (mut sum, mut first_ms, mut last_ms) = (0.0, i64::MAX, i64::MIN);
    let mut unknown_movie_ratings = 0;
    for (i, r) in ratings.iter().enumerate() {
        let bytes = r
            .value
            .as_deref()
            .ok_or_else(|| CliError::fail(ExitCode::Internal, "a rating without a value"))?;
        let decoded = codec
            .decode(bytes)
            .with_context(|| format!("ratings/{} offset {}", r.partition, r.offset))?;
        if let Value::Record(fields) = decoded.value {
            for (name, v) in fields {
                match (name.as_str(), v) {
                    ("user_id", Value::Long(u)) => {
                        users.insert(u);
                    }
                    ("movie_id", Value::Long(m)) => {
                        unknown_movie_ratings += u64::from(!catalog.contains(&m));
                        rated.insert(m);
                    }
                    ("rating", Value::Double(x)) => sum += x,
                    ("timestamp", Value::TimestampMillis(t)) => {
                        first_ms = first_ms.min(t);
                        last_ms = last_ms.max(t);
                    }
                    _ => {}
                }
            }
        }
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    Ok(ReadBack {
        movies: titles,
        ratings: ratings.len() as u64,
        users: users.len(),
        rated_movies: rated.len(),
        unknown_movie_ratings,
        mean_rating: sum / (ratings.len().max(1) as f64),
        first_ms,
        last_ms,
    })
}

fn print_summary(
    ctx: &Context,
    registry: &dyn SchemaRegistry,
    reset_note: &str,
    produced: u64,
    produce_time: Duration,
    read_time: Duration,
    check: &ReadBack,
) -> anyhow::Result<()> {
    let where_ = match &ctx.data_dir {
        Some(dir) => format!("the embedded log at {}", dir.display()),
        None => "Kafka".to_string(),
    };
    println!("eddy quickstart: MovieLens (ml-latest-small) loaded into {where_}");
    if !reset_note.is_empty() {
        println!("  ({reset_note})");
    }
    println!();
    println!("  {:<9} {:<26} {:>9}  schema", "topic", "kind", "records");
    for (topic, kind, count) in [
        ("ratings", "events, keyed by user_id", check.ratings),
        ("movies", "compacted table, by movie", check.movies),
    ] {
        let subject = value_subject(topic);
        let latest = registry.latest(&subject)?;
        let partitions = ctx.backend.describe_topic(topic)?.partitions.len();
        println!(
            "  {topic:<9} {:<26} {count:>9}  {subject} v{} (id {}), {partitions} partition(s)",
            kind, latest.version, latest.id
        );
    }
    println!();
    println!(
        "  written:   {produced} records in {:.2}s ({:.0} records/s, Avro-encoded)",
        produce_time.as_secs_f64(),
        progress::rate(produced, produce_time)
    );
    println!(
        "  read back: {produced} records in {:.2}s ({:.0} records/s, decoded through the registry)",
        read_time.as_secs_f64(),
        progress::rate(produced, read_time)
    );
    println!(
        "  ratings:   {} users rated {} movies, mean {:.2} stars, {} .. {}",
        check.users,
        check.rated_movies,
        check.mean_rating,
        utc_date(check.first_ms),
        utc_date(check.last_ms)
    );
    if check.unknown_movie_ratings > 0 {
        println!(
            "             {} rating(s) of a movie missing from movies.csv (joins will see no match)",
            check.unknown_movie_ratings
        );
    }
    println!("  subjects:  {}", registry.subjects()?.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_lose_their_year() {
        assert_eq!(
            split_year("Toy Story (1995)"),
            ("Toy Story".into(), Some(1995))
        );
        assert_eq!(split_year("Babylon 5"), ("Babylon 5".into(), None));
        assert_eq!(
            split_year("Big Bang Theory, The (2007- )"),
            ("Big Bang Theory, The (2007- )".into(), None)
        );
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(964_982_703_000), "2000-07-30");
        assert_eq!(utc_date(1_537_799_250_000), "2018-09-24");
    }

    #[test]
    fn the_shipped_schemas_parse() {
        eddy_features::avro::parse_schema(RATING_SCHEMA).unwrap();
        eddy_features::avro::parse_schema(MOVIE_SCHEMA).unwrap();
    }
}
