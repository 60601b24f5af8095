//! The freshness lift: what updating on every event buys over a nightly
//! batch, and over a model never retrained, measured by prequential
//! replay.
//!
//! Three copies of each recommender see the same interactions in
//! event-time order:
//! - **streaming** learns each interaction as it happens;
//! - **daily** learns a period's interactions only when the period ends,
//!   so all day it serves what a nightly retrain on the full history
//!   would have produced at midnight (the recommenders are incremental
//!   and order-preserving, so "retrain on everything so far" and "catch up
//!   on yesterday" give the same model). That is the batch status quo.
//! - **frozen** is the daily copy as it was when scoring began, never
//!   retrained after: a model trained once and deployed.
//!
//! At each positive interaction, *before* either copy learns it, both
//! recommend k items for the user (leaving out what the user has engaged
//! with). A recommendation is scored against the user's next `next`
//! items, this one included: HR@k is the share of recommendations with at
//! least one of them, NDCG@k weighs each by its rank. The lifts are
//! streaming over daily and streaming over frozen.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use eddy_training::online::recommender::RecommenderModel;
use eddy_training::plan::ModelPlan;
use eddy_training::recommend::rank::{Impression, LearnedRanker, Pool};

/// How the replay scores.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The k of HR@k and NDCG@k.
    pub k: usize,
    /// Upcoming items of the user that count as hits.
    pub next: usize,
    /// The batch retrain period (ms of event time). Default one day.
    pub period_ms: i64,
    /// Interactions learned before scoring starts (both copies learn them).
    pub warmup: usize,
    /// Candidates taken from each recommender for the serving chain
    /// (serving's `candidates_per_model`; at least `k`).
    pub per_model: usize,
}

/// HR@k and NDCG@k of one recommender, both ways.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lift {
    /// The recommender's name in the spec.
    pub model: String,
    /// Interactions scored.
    pub evaluated: u64,
    /// HR@k of the copy updated on every event.
    pub streaming_hit_rate: f64,
    /// HR@k of the copy rebuilt once per period.
    pub daily_hit_rate: f64,
    /// NDCG@k of the copy updated on every event.
    pub streaming_ndcg: f64,
    /// NDCG@k of the copy rebuilt once per period.
    pub daily_ndcg: f64,
    /// streaming / daily HR@k.
    pub hit_rate_lift: f64,
    /// streaming / daily NDCG@k.
    pub ndcg_lift: f64,
    /// HR@k of the copy never retrained once scoring began.
    pub frozen_hit_rate: f64,
    /// NDCG@k of the copy never retrained.
    pub frozen_ndcg: f64,
    /// streaming / frozen HR@k.
    pub frozen_hit_rate_lift: f64,
    /// HR@k per calendar year (UTC) of the scored interactions: quality
    /// over time.
    pub by_year: Vec<YearScore>,
}

/// HR@k of one year's interactions, both ways.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct YearScore {
    /// The calendar year (UTC).
    pub year: i32,
    /// Interactions of that year scored.
    pub evaluated: u64,
    /// HR@k of the streaming copy that year.
    pub streaming_hit_rate: f64,
    /// HR@k of the daily copy that year.
    pub daily_hit_rate: f64,
}

/// The calendar year of epoch milliseconds (UTC).
fn year_of(ts: i64) -> i32 {
    eddy_features::engine::archive::utc_civil(ts).0 as i32
}

#[derive(Default)]
struct Score {
    hits: u64,
    ndcg: f64,
    /// year → (evaluated, hits).
    years: std::collections::BTreeMap<i32, (u64, u64)>,
}

/// (user, item, event time) interactions in event-time order.
pub type Interaction = (u64, u64, i64);

/// What the replay's learned order did, for the copy updated on every
/// event.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct RankerReport {
    /// Impressions learned from (their outcome was a candidate).
    pub learned: u64,
    /// Impressions whose outcome no candidate source proposed: they say
    /// nothing about the order and were not learned.
    pub outside_pool: u64,
}

/// One copy of the serving stack: the recommenders and the learned order.
struct Stack {
    models: Vec<RecommenderModel>,
    ranker: LearnedRanker,
}

impl Stack {
    fn new(plans: &[&ModelPlan]) -> Stack {
        Stack {
            models: plans.iter().map(|p| RecommenderModel::new(p)).collect(),
            ranker: LearnedRanker::new(),
        }
    }

    /// Learns an interaction, and the impression made just before it.
    fn learn(&mut self, (user, item, ts): Interaction, imp: &Impression) {
        for m in &mut self.models {
            m.model.as_recommender().learn(user, item, ts);
        }
        self.ranker.learn(imp, item);
        self.ranker.engaged(item);
    }
}

/// Replays `events` through streaming, daily and frozen copies of each
/// model in `plans` (recommenders) and of the serving chain: every
/// recommender's candidates in one pool, ordered by a [`LearnedRanker`]
/// that learns from each recommendation (the pool, best first) and what
/// the user did next, on the copy's own schedule. A row for the fixed
/// order (the first model's items, then the next one's) shows what the
/// learned order adds.
pub fn evaluate(plans: &[&ModelPlan], events: &[Interaction], o: Options) -> Evaluation {
    let n = plans.len();
    let mut stacks = [Stack::new(plans), Stack::new(plans), Stack::new(plans)];
    // The next items of each event's user, this one included.
    let mut upcoming: Vec<Vec<u64>> = vec![Vec::new(); events.len()];
    let mut by_user: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        by_user.entry(e.0).or_default().push(i);
    }
    for idx in by_user.values() {
        for (j, &i) in idx.iter().enumerate() {
            upcoming[i] = idx[j..].iter().take(o.next).map(|&x| events[x].1).collect();
        }
    }
    let ideal: f64 = (0..o.next.min(o.k))
        .map(|r| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    // Per row (models, the fixed order, the learned order): per copy.
    let mut scores: Vec<[Score; 3]> = (0..n + 2)
        .map(|_| [Score::default(), Score::default(), Score::default()])
        .collect();
    let mut evaluated = 0u64;
    let mut seen: HashMap<u64, HashSet<u64>> = HashMap::new();
    // Interactions (with each copy's impression) the daily and frozen
    // copies learn at the next period's start.
    let mut backlog: Vec<(Interaction, [Impression; 3])> = Vec::new();
    let mut period = i64::MIN;
    let empty = HashSet::new();
    let per_model = o.per_model.max(o.k);
    for (i, &(user, item, ts)) in events.iter().enumerate() {
        let p = ts.div_euclid(o.period_ms.max(1));
        if p != period {
            // The nightly retrain: the daily copies catch up, and the
            // frozen ones too until scoring begins.
            for (e, imps) in backlog.drain(..) {
                stacks[1].learn(e, &imps[1]);
                if evaluated == 0 {
                    stacks[2].learn(e, &imps[2]);
                }
            }
            period = p;
        }
        let scoring = i >= o.warmup;
        evaluated += u64::from(scoring);
        let s = seen.get(&user).unwrap_or(&empty);
        let exclude = |x: u64| s.contains(&x);
        let imps: [Impression; 3] = std::array::from_fn(|way| {
            let stack = &stacks[way];
            let mut pool = Pool::new(n);
            let mut fixed: Vec<u64> = Vec::new();
            for (m, model) in stack.models.iter().enumerate() {
                let top: Vec<u64> = model
                    .model
                    .recommender()
                    .recommend(user, ts, per_model, &exclude)
                    .into_iter()
                    .map(|(x, _)| x)
                    .collect();
                for (r, &x) in top.iter().enumerate() {
                    pool.add(m, r, x);
                }
                if scoring {
                    score(
                        &mut scores[m][way],
                        &top[..top.len().min(o.k)],
                        &upcoming[i],
                        ideal,
                        ts,
                    );
                    for &x in top.iter().take(o.k) {
                        if fixed.len() < o.k && !fixed.contains(&x) {
                            fixed.push(x);
                        }
                    }
                }
            }
            let order = stack.ranker.rank(&pool, s.len());
            if scoring {
                score(&mut scores[n][way], &fixed, &upcoming[i], ideal, ts);
                let learned: Vec<u64> = order.iter().take(o.k).map(|c| pool.items[c.0]).collect();
                score(&mut scores[n + 1][way], &learned, &upcoming[i], ideal, ts);
            }
            stack.ranker.impression(&pool, &order, o.k, s.len())
        });
        let e = (user, item, ts);
        let Stack { models, ranker } = &mut stacks[0];
        for m in models.iter_mut() {
            m.model.as_recommender().learn(user, item, ts);
        }
        ranker.learn(&imps[0], item);
        ranker.engaged(item);
        backlog.push((e, imps));
        seen.entry(user).or_default().insert(item);
    }
    let chain = plans
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ");
    let names = plans.iter().map(|p| p.name.clone()).chain([
        format!("fixed order ({chain})"),
        format!("serving: learned order ({chain})"),
    ]);
    let e = evaluated.max(1) as f64;
    let lifts = names
        .zip(scores)
        .map(|(model, [s, d, f])| {
            let (sh, dh, fh) = (s.hits as f64 / e, d.hits as f64 / e, f.hits as f64 / e);
            let (sn, dn) = (s.ndcg / e, d.ndcg / e);
            Lift {
                model,
                evaluated,
                streaming_hit_rate: sh,
                daily_hit_rate: dh,
                streaming_ndcg: sn,
                daily_ndcg: dn,
                hit_rate_lift: sh / dh,
                ndcg_lift: sn / dn,
                frozen_hit_rate: fh,
                frozen_ndcg: f.ndcg / e,
                frozen_hit_rate_lift: sh / fh,
                by_year: s
                    .years
                    .iter()
                    .map(|(year, (n, hits))| YearScore {
                        year: *year,
                        evaluated: *n,
                        streaming_hit_rate: *hits as f64 / (*n).max(1) as f64,
                        daily_hit_rate: d
                            .years
                            .get(year)
                            .map_or(0.0, |(dn, dh)| *dh as f64 / (*dn).max(1) as f64),
                    })
                    .collect(),
            }
        })
        .collect();
    let c = stacks[0].ranker.counts;
    Evaluation {
        lifts,
        ranker: RankerReport {
            learned: c.learned,
            outside_pool: c.outside_pool,
        },
    }
}

/// The replay's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    /// One row per recommender, then the fixed order, then the learned
    /// order serving uses (last).
    pub lifts: Vec<Lift>,
    /// What the streaming copy's learned order learned from.
    pub ranker: RankerReport,
}

impl Evaluation {
    /// The serving chain's row (the learned order).
    pub fn serving(&self) -> &Lift {
        self.lifts
            .last()
            .expect("the replay always has the serving row")
    }

    /// The recommenders' rows.
    pub fn sources(&self) -> &[Lift] {
        &self.lifts[..self.lifts.len().saturating_sub(2)]
    }

    /// If the serving chain scores below its best single source (HR@k or
    /// NDCG@k, streaming copies), which source and by how much: serving
    /// must say so rather than silently lose.
    pub fn below_best_source(&self) -> Option<String> {
        let chain = self.serving();
        let best_hr = self
            .sources()
            .iter()
            .max_by(|a, b| a.streaming_hit_rate.total_cmp(&b.streaming_hit_rate))?;
        let best_ndcg = self
            .sources()
            .iter()
            .max_by(|a, b| a.streaming_ndcg.total_cmp(&b.streaming_ndcg))?;
        let mut why = Vec::new();
        if chain.streaming_hit_rate < best_hr.streaming_hit_rate {
            why.push(format!(
                "HR {:.4} below `{}` alone ({:.4})",
                chain.streaming_hit_rate, best_hr.model, best_hr.streaming_hit_rate
            ));
        }
        if chain.streaming_ndcg < best_ndcg.streaming_ndcg {
            why.push(format!(
                "NDCG {:.4} below `{}` alone ({:.4})",
                chain.streaming_ndcg, best_ndcg.model, best_ndcg.streaming_ndcg
            ));
        }
        (!why.is_empty()).then(|| {
            format!(
                "the serving chain loses to a single candidate source: {}; serve that source alone, or give the ranker what tells its candidates apart",
                why.join("; ")
            )
        })
    }
}

fn score(s: &mut Score, top: &[u64], upcoming: &[u64], ideal: f64, ts: i64) {
    let year = s.years.entry(year_of(ts)).or_default();
    year.0 += 1;
    let mut dcg = 0.0;
    for (r, x) in top.iter().enumerate() {
        if upcoming.contains(x) {
            dcg += 1.0 / (r as f64 + 2.0).log2();
        }
    }
    if dcg > 0.0 {
        s.hits += 1;
        s.ndcg += dcg / ideal;
        year.1 += 1;
    }
}

/// The positive interactions of a recommender's source, read whole from
/// its topic and put in event-time order: (user, item, time). Positives
/// are the events whose model `label` is true (every event without one).
/// Returns them with the number of events read and of undecodable ones.
pub fn interactions(
    plan: &ModelPlan,
    key: &str,
    event_time: (&str, eddy_features::spec::TimeUnit),
    format: eddy_features::spec::RecordFormat,
    backend: &dyn eddy_features::topic::Backend,
    registry: std::sync::Arc<dyn eddy_features::registry::SchemaRegistry>,
    schema: apache_avro::Schema,
) -> Result<(Vec<Interaction>, u64, u64), crate::ServeError> {
    use eddy_features::engine::backfill::training::Labeler;
    use eddy_features::engine::job::decode::RecordDecoder;
    use eddy_training::online::recommender::id_of;
    let decoder = RecordDecoder::source(
        registry,
        schema,
        &plan.source_columns,
        key,
        Some(event_time),
        format,
    );
    let records = eddy_features::topic::read_to_end(
        backend,
        &plan.source_topic,
        std::time::Duration::from_secs(60),
    )?;
    let mut labeler = match &plan.label {
        Some((sql, _)) => Some(
            Labeler::new(sql, None, plan.source_columns.clone())
                .map_err(crate::ServeError::Setup)?,
        ),
        None => None,
    };
    let item =
        plan.item.as_ref().map(|(i, _)| *i).ok_or_else(|| {
            crate::ServeError::Setup(format!("`{}` has no item column", plan.name))
        })?;
    let mut rows = Vec::new();
    let mut undecodable = 0;
    for r in &records {
        match decoder.decode(r) {
            Ok(row) => rows.push((r.partition, r.offset, row)),
            Err(_) => undecodable += 1,
        }
    }
    if let Some(l) = &mut labeler {
        l.label(
            rows.iter()
                .map(|(p, o, row)| (*p, *o, row.columns.clone()))
                .collect(),
        );
    }
    let mut out: Vec<(i64, i32, i64, Interaction)> = Vec::new();
    for (p, o, row) in rows {
        let positive = match &mut labeler {
            Some(l) => matches!(
                l.take(p, o),
                Some((eddy_features::engine::value::Scalar::Bool(true), _))
            ),
            None => true,
        };
        let (Some(u), Some(i), Some(ts)) = (id_of(&row.key), id_of(&row.columns[item]), row.ts)
        else {
            continue;
        };
        if positive {
            out.push((ts, p, o, (u, i, ts)));
        }
    }
    out.sort_by_key(|e| (e.0, e.1, e.2));
    Ok((
        out.into_iter().map(|e| e.3).collect(),
        records.len() as u64,
        undecodable,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_training::plan::params::PopularityParams;
    use eddy_training::plan::{ModelKind, Params};

    fn plan(name: &str, kind: ModelKind) -> ModelPlan {
        ModelPlan {
            name: name.into(),
            source: "s".into(),
            source_topic: "s".into(),
            source_columns: Default::default(),
            label: None,
            delayed: None,
            filter: None,
            joined: Vec::new(),
            item: None,
            inputs: Vec::new(),
            crosses: Vec::new(),
            params: Params::defaults(kind),
            topic: "models".into(),
            snapshot_every: 10,
            metrics_topic: "m".into(),
        }
    }

    /// Each day a new batch of items becomes the fashion: everyone engages
    /// with them that day. A model updated as events arrive sees the new
    /// items within the day; one rebuilt nightly learns them only when the
    /// fashion is over.
    #[test]
    fn streaming_popularity_beats_the_nightly_copy_when_popularity_drifts() {
        let day = 86_400_000;
        let mut events = Vec::new();
        for d in 0..20i64 {
            for u in 0..50u64 {
                for j in 0..3u64 {
                    let item = (d as u64) * 10 + (u + j) % 10;
                    events.push((u, item, d * day + (u as i64) * 60_000 + j as i64 * 1000));
                }
            }
        }
        events.sort_by_key(|e| e.2);
        let mut pop = plan("popular", ModelKind::Popularity);
        pop.params = Params::Popularity(PopularityParams {
            half_life: Some(eddy_features::spec::Millis(3_600_000)),
            ..PopularityParams::default()
        });
        let lifts = evaluate(
            &[&pop],
            &events,
            Options {
                k: 10,
                next: 3,
                period_ms: day,
                warmup: 150,
                per_model: 10,
            },
        )
        .lifts;
        let l = &lifts[0];
        assert_eq!(l.evaluated, events.len() as u64 - 150);
        assert!(l.streaming_hit_rate > 0.9, "{l:?}");
        assert!(l.daily_hit_rate < 0.1, "{l:?}");
        assert!(l.hit_rate_lift > 5.0, "{l:?}");
        // Never retrained after the first day, it knows only that day's
        // fashion: no better than the nightly copy, and often worse.
        assert!(l.frozen_hit_rate <= l.daily_hit_rate, "{l:?}");
        assert!(l.frozen_hit_rate_lift >= l.hit_rate_lift, "{l:?}");
        assert_eq!(lifts[1].model, "fixed order (popular)");
        assert_eq!(lifts[2].model, "serving: learned order (popular)");
        // The synthetic events start at the epoch; and year boundaries.
        assert_eq!(l.by_year.len(), 1);
        assert_eq!(l.by_year[0].year, 1970);
        assert_eq!(l.by_year[0].evaluated, l.evaluated);
        assert_eq!(year_of(1_700_000_000_000), 2023);
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_704_067_199_999), 2023);
        assert_eq!(year_of(1_704_067_200_000), 2024);
        assert_eq!(lifts[1].streaming_hit_rate, l.streaming_hit_rate);
    }

    /// A "daily" copy retrained before every event is the streaming
    /// copy: with a period shorter than the gap between events, both
    /// score exactly the same (the replay does not favor streaming).
    #[test]
    fn a_batch_retrained_before_every_event_scores_like_streaming() {
        let events: Vec<Interaction> = (0..3000u64)
            .map(|i| (i % 37, (i * 7919) % 101, i as i64 * 10))
            .collect();
        let plans = [
            plan("popular", ModelKind::Popularity),
            plan("next", ModelKind::Cooccurrence),
            plan("mf", ModelKind::Mf),
        ];
        let refs: Vec<&ModelPlan> = plans.iter().collect();
        let o = Options {
            k: 10,
            next: 5,
            period_ms: 5,
            warmup: 100,
            per_model: 30,
        };
        let e = evaluate(&refs, &events, o);
        assert_eq!(e.lifts.len(), 5);
        for l in e.lifts {
            assert!(l.streaming_hit_rate > 0.0, "{l:?}");
            assert_eq!(l.streaming_hit_rate, l.daily_hit_rate, "{l:?}");
            assert_eq!(l.streaming_ndcg, l.daily_ndcg, "{l:?}");
        }
    }
}
