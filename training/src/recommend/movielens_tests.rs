//! Recommenders on real data: MovieLens ml-latest-small, in time order.

use super::Recommender;
use super::eval::{Prequential, RankReport};
use super::mf::{MfConfig, StreamingMf};
use super::popularity::Popularity;

/// (user, movie, ts ms) in time order, as the quickstart loads them.
fn ratings() -> Vec<(u64, u64, i64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datasets/movielens-small/ratings.csv"
    );
    let text = std::fs::read_to_string(path).expect("datasets/movielens-small/ratings.csv");
    let mut out: Vec<(u64, u64, i64)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[3].parse::<i64>().ok()? * 1000,
            ))
        })
        .collect();
    out.sort_by_key(|(u, m, ts)| (*ts, *u, *m));
    out
}

/// Prequential HR@10 over every `every`-th interaction after `warmup`.
fn evaluate(
    model: &mut dyn Recommender,
    mut fallback: Option<&mut dyn Recommender>,
    every: usize,
) -> RankReport {
    let mut eval = Prequential::new(10);
    for (n, event) in ratings().into_iter().enumerate() {
        let score = n >= 20_000 && n % every == 0;
        match fallback.as_mut() {
            Some(f) => eval.step(model, Some(&mut **f), event, score),
            None => eval.step(model, None, event, score),
        }
    }
    eval.report()
}

#[test]
fn streaming_mf_and_co_occurrence_beat_popularity_on_prequential_hr_at_10() {
    let day = 86_400_000;
    let popular = evaluate(&mut Popularity::new(30 * day), None, 7);
    let mut mf = StreamingMf::new(MfConfig::default());
    let mut fallback = Popularity::new(30 * day);
    let learned = evaluate(&mut mf, Some(&mut fallback), 7);
    let mut co = super::cooccurrence::CoOccurrence::new(Default::default());
    let mut fallback = Popularity::new(30 * day);
    let pairs = evaluate(&mut co, Some(&mut fallback), 7);
    eprintln!("popularity {popular:?}\nmf {learned:?}\nco-occurrence {pairs:?}");
    assert!(popular.evaluated > 5_000);
    assert!(
        pairs.hit_rate > popular.hit_rate,
        "co-occurrence {pairs:?} vs popularity {popular:?}"
    );
    assert!(
        learned.hit_rate > popular.hit_rate && learned.ndcg > popular.ndcg,
        "streaming MF {learned:?} vs popularity {popular:?}"
    );
}

/// HR@10 and NDCG@10 scored on one interaction in 10 (as a job does by
/// default) agree with the same metrics scored on every interaction,
/// within three standard errors of the sample. The models learn every
/// interaction either way, so only the estimate differs.
#[test]
fn sampled_progressive_metrics_agree_with_the_full_ones_within_their_confidence_interval() {
    let day = 86_400_000;
    let run = |every: u64| {
        let mut co = super::cooccurrence::CoOccurrence::new(Default::default());
        let mut fallback = Popularity::new(30 * day);
        let mut eval = Prequential::new(10);
        for (n, (u, i, ts)) in ratings().into_iter().enumerate() {
            let score = n >= 20_000 && super::eval::sampled(u, i, ts, every);
            eval.step(&mut co, Some(&mut fallback), (u, i, ts), score);
        }
        eval.report()
    };
    let full = run(1);
    let sampled = run(10);
    eprintln!("full {full:?}\nsampled {sampled:?}");
    let share = sampled.evaluated as f64 / full.evaluated as f64;
    assert!((0.08..0.12).contains(&share), "{share}");
    let n = sampled.evaluated as f64;
    // HR@k is a proportion; NDCG@k lies in [0, 1], so its variance is at
    // most its mean.
    let hr_se = (full.hit_rate * (1.0 - full.hit_rate) / n).sqrt();
    let ndcg_se = (full.ndcg / n).sqrt();
    assert!(
        (sampled.hit_rate - full.hit_rate).abs() <= 3.0 * hr_se,
        "HR {} vs {} (se {hr_se})",
        sampled.hit_rate,
        full.hit_rate
    );
    assert!(
        (sampled.ndcg - full.ndcg).abs() <= 3.0 * ndcg_se,
        "NDCG {} vs {} (se {ndcg_se})",
        sampled.ndcg,
        full.ndcg
    );
}
