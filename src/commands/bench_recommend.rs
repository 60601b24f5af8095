//! `eddy bench recommend`: streaming matrix factorization on MovieLens:
//! updates/s, memory per id, and prequential HR@10 / NDCG@10 against
//! decayed popularity.

use std::time::Instant;

use anyhow::Context as _;
use eddy_training::recommend::Recommender;
use eddy_training::recommend::cooccurrence::CoOccurrence;
use eddy_training::recommend::eval::Prequential;
use eddy_training::recommend::mf::{MfConfig, StreamingMf};
use eddy_training::recommend::popularity::Popularity;

use crate::cli::BenchRecommendArgs;

/// (user, movie, ts ms), in time order as the quickstart loads them.
fn ratings(dir: &std::path::Path) -> anyhow::Result<Vec<(u64, u64, i64)>> {
    let path = dir.join("ratings.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or_default();
        out.push((
            field(0).parse()?,
            field(1).parse()?,
            field(3).parse::<i64>()? * 1000,
        ));
    }
    out.sort_by_key(|(u, m, ts)| (*ts, *u, *m));
    Ok(out)
}

pub fn recommend(args: &BenchRecommendArgs) -> anyhow::Result<()> {
    let events = ratings(&args.dataset)?;
    let day = 86_400_000;
    // Learning alone.
    let mut mf = StreamingMf::new(MfConfig {
        dim: args.dim,
        ..MfConfig::default()
    });
    let started = Instant::now();
    for _ in 0..args.passes {
        for (u, i, ts) in &events {
            mf.learn(*u, *i, *ts);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let interactions = (events.len() * args.passes) as f64;
    let ids = mf.users.len() + mf.items.len();
    let bytes = mf.users.size_bytes() + mf.items.size_bytes();
    println!(
        "streaming MF (dim {}, {} negatives): {:.0} interactions/s = {:.0} BPR updates/s; {} ids, {:.0} bytes per id",
        args.dim,
        mf.config.negatives,
        interactions / secs,
        interactions * mf.config.negatives as f64 / secs,
        ids,
        bytes as f64 / ids.max(1) as f64
    );
    // Prequential HR@10 / NDCG@10 on every 7th interaction after 20,000.
    let evaluate = |model: &mut dyn Recommender, mut fallback: Option<&mut dyn Recommender>| {
        let mut eval = Prequential::new(10);
        let started = Instant::now();
        for (n, event) in events.iter().enumerate() {
            let score = n >= 20_000 && n % 7 == 0;
            match fallback.as_mut() {
                Some(f) => eval.step(model, Some(&mut **f), *event, score),
                None => eval.step(model, None, *event, score),
            }
        }
        (eval.report(), started.elapsed().as_secs_f64())
    };
    let (pop, pop_secs) = evaluate(&mut Popularity::new(30 * day), None);
    let mut mf = StreamingMf::new(MfConfig {
        dim: args.dim,
        ..MfConfig::default()
    });
    let mut fallback = Popularity::new(30 * day);
    let (learned, mf_secs) = evaluate(&mut mf, Some(&mut fallback));
    let mut co = CoOccurrence::new(Default::default());
    let mut fallback = Popularity::new(30 * day);
    let (pairs, co_secs) = evaluate(&mut co, Some(&mut fallback));
    for (name, r, secs) in [
        ("popularity (30-day half-life)", pop, pop_secs),
        ("streaming MF + popularity fallback", learned, mf_secs),
        ("co-occurrence + popularity fallback", pairs, co_secs),
    ] {
        println!(
            "{name:<36} HR@10 {:.4}  NDCG@10 {:.4}  over {} interactions ({secs:.2} s)",
            r.hit_rate, r.ndcg, r.evaluated
        );
    }
    Ok(())
}
