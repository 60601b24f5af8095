//! One recommendation: candidates, ranking, filters, exploration.
//!
//! For a user it:
//! 1. gathers candidates from each recommender in the spec's order (item
//!    co-occurrence reads the user's recent items as serving saw them, so
//!    it is fresh even between model snapshots);
//! 2. orders them: by the learned order (`learned_order`, the default), a
//!    model trained on this engine's own recommendations and what each
//!    user did next ([`LearnedRanker`]); its features include the
//!    `ranker`'s probability if there is one, an FTRL model whose inputs
//!    are the user's current features, fields of the triggering event, and
//!    the candidate item in place of the item column it learned from;
//! 3. drops items the user has engaged with and items the business rules
//!    reject;
//! 4. lets exploration give slots to cold items, if configured.
//!
//! Everything is a function of the request, the user's history, the model
//! versions and the features: ties break by item id and exploration draws
//! from a seed made from the request id, so a replay of the same inputs
//! emits the same recommendations.

use std::collections::{HashMap, HashSet, VecDeque};

type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

use eddy_features::engine::value::Scalar;
use eddy_features::spec::serving::{ExplorationMode, ServingSpec};
use eddy_features::spec::validate::ColumnType;
use eddy_training::Learner;
use eddy_training::hashing::{FeatureHasher, murmur3};
use eddy_training::online::linear::Inputs;
use eddy_training::online::recommender::{Model as RecModel, id_of};
use eddy_training::plan::{InputFrom, ModelPlan};
use eddy_training::recommend::explore::{Exploration, Explorer};
use eddy_training::recommend::rank::{Impression, LearnedRanker, Pool, RankCounts};

use crate::features::FeatureTables;
use crate::models::{ModelSet, Served};
use crate::rules::ItemRules;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The largest number of items one request may ask for.
pub const MAX_K: usize = 1000;

/// `k` as a request asked for it: 1 to [`MAX_K`], or why not. Out-of-range
/// values are refused (HTTP 400, or dead-lettered), never clamped.
pub fn check_k(k: usize) -> Result<usize, String> {
    if (1..=MAX_K).contains(&k) {
        Ok(k)
    } else {
        Err(format!("k must be between 1 and {MAX_K}, not {k}"))
    }
}

/// What to recommend for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id, or `<topic>/<partition>/<offset>` of the trigger.
    pub id: String,
    /// The user to recommend for.
    pub user: Scalar,
    /// How many items to answer with (1 to [`MAX_K`]).
    pub k: usize,
    /// Event time: the trigger's, or for a request the latest event time
    /// serving has seen.
    pub ts: i64,
    /// The triggering event's columns (the trigger source's), if any.
    pub event: Option<Box<[Scalar]>>,
}

/// A ranked item.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The item id, as text.
    pub item: String,
    /// The ranker's probability, or the recommender's score without one.
    pub score: f64,
    /// The recommender that proposed it, or `explore`.
    pub source: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The request's id (see [`Request::id`]).
    pub request_id: String,
    /// The user, as text.
    pub user_id: String,
    /// The items, best first.
    pub items: Vec<Ranked>,
    /// The versions of the models used, `name@version,...`.
    pub model_version: String,
    /// The time the user's features were valid for, if any were read.
    pub features_as_of: Option<i64>,
    /// The trigger's event time (a request's: the latest seen).
    pub trigger_event_time: i64,
    /// Every feature and model used was as of the trigger: nothing at or
    /// after a trigger event's time (for a request, after the latest event
    /// time seen) had counted. False in a replay whose state ran ahead of
    /// the triggers: such a recommendation must not be scored offline as
    /// if it had been made live.
    pub as_of_trigger: bool,
    /// Why `items` holds fewer than the `k` asked for, if it does.
    pub fewer_because: Option<String>,
}

/// The ranker: an FTRL model's inputs and hashing.
struct Ranker {
    name: String,
    inputs: Inputs,
    hasher: FeatureHasher,
    /// Its input column that holds the item.
    item_column: usize,
    /// The trigger source's columns line up with the ranker's source.
    same_source: bool,
    /// Inputs that describe the item (a column of the item table too, by
    /// name): (the ranker source's column, the table's column). A
    /// candidate's value comes from its own row, not from the trigger.
    item_columns: Vec<(usize, usize)>,
}

/// The serving state that outlives requests.
pub struct Engine {
    candidates: Vec<String>,
    per_model: usize,
    /// The `k` of a request that does not say.
    pub default_k: usize,
    exclude_seen: bool,
    history_len: usize,
    ranker: Option<Ranker>,
    item_type: ColumnType,
    /// The item column in trigger events, if the trigger source has it.
    trigger_item: Option<usize>,
    /// Per user: recent items, newest last, and the same as a set.
    history: FastMap<u64, (VecDeque<u64>, FastSet<u64>)>,
    /// Per user: the last recommendation, for exploration feedback.
    shown: FastMap<u64, Vec<u64>>,
    /// Text of string item ids.
    names: FastMap<u64, String>,
    /// The item table: rules and candidates' own columns.
    pub rules: Option<ItemRules>,
    explorer: Explorer,
    /// The learned order, if on.
    learned: Option<LearnedRanker>,
    /// Per user: the last recommendation's impression, until the user's
    /// next trigger says what they did; and its sequence number.
    pending: FastMap<u64, (Impression, u64)>,
    /// (user, sequence number) in the order impressions were made: the
    /// oldest are forgotten past [`PENDING_USERS`].
    pending_order: VecDeque<(u64, u64)>,
    sequence: u64,
    /// Impressions replaced by a newer one for the same user, or forgotten
    /// past [`PENDING_USERS`], before any outcome: never learned.
    pub impressions_unanswered: u64,
}

/// Users whose last recommendation is remembered until their next event
/// (about 1 KB each): beyond this, the oldest are forgotten and counted.
pub const PENDING_USERS: usize = 200_000;

impl Engine {
    /// `trigger_columns`: the trigger source's columns, if there is one.
    pub fn new(
        spec: &ServingSpec,
        models: &[ModelPlan],
        trigger: Option<(&str, &eddy_features::spec::Columns)>,
        rules: Option<ItemRules>,
    ) -> Engine {
        let candidate_plans: Vec<&ModelPlan> = spec
            .candidates
            .iter()
            .filter_map(|n| models.iter().find(|m| &m.name == n))
            .collect();
        let (item_name, item_type) = candidate_plans
            .first()
            .and_then(|p| {
                p.item.as_ref().map(|(i, t)| {
                    (
                        p.source_columns.get_index(*i).map(|c| c.0.clone()),
                        t.clone(),
                    )
                })
            })
            .map_or((None, ColumnType::Long), |(n, t)| (n, t));
        let ranker = spec.ranker.as_ref().and_then(|r| {
            let plan = models.iter().find(|m| &m.name == r)?;
            let item_column = plan.source_columns.get_index_of(item_name.as_deref()?)?;
            // An event column the item table also has, or a column the
            // models join from the item table, is the candidate's own.
            let item_columns = match (&rules, &spec.item_table) {
                (Some(table), Some(table_name)) => plan
                    .inputs
                    .iter()
                    .filter_map(|input| match input.from {
                        InputFrom::Column(c) if c == item_column => None,
                        InputFrom::Column(c) => match c.checked_sub(plan.source_columns.len()) {
                            None => Some((c, table.column(&input.name)?)),
                            Some(j) => {
                                let join = plan
                                    .joined
                                    .get(j)
                                    .filter(|j| &j.column.table == table_name)?;
                                Some((c, table.column(&join.column.column)?))
                            }
                        },
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(Ranker {
                name: plan.name.clone(),
                inputs: Inputs::new(plan),
                hasher: eddy_training::online::linear::hasher(plan),
                item_column,
                same_source: trigger.is_some_and(|(s, _)| s == plan.source),
                item_columns,
            })
        });
        let trigger_item = trigger
            .zip(item_name.as_deref())
            .and_then(|((_, cols), item)| cols.get_index_of(item));
        let e = &spec.exploration;
        let mode = match e.mode {
            ExplorationMode::Off => Exploration::Off,
            ExplorationMode::EpsilonGreedy => Exploration::EpsilonGreedy {
                epsilon: e.epsilon.unwrap_or(0.1),
            },
            ExplorationMode::Thompson => Exploration::Thompson {
                slots: e.slots.unwrap_or(2),
                prior_clicks: 1.0,
                prior_misses: 10.0,
            },
        };
        let mut explorer = Explorer::new(mode);
        explorer.cold_below = e.cold_below.unwrap_or(100);
        Engine {
            candidates: spec.candidates.clone(),
            per_model: spec.candidates_per_model.unwrap_or(100).max(1),
            default_k: spec.k.unwrap_or(10),
            exclude_seen: spec.exclude_seen.unwrap_or(true),
            history_len: spec.history.unwrap_or(1000).max(1),
            ranker,
            item_type,
            trigger_item,
            history: FastMap::default(),
            shown: FastMap::default(),
            names: FastMap::default(),
            rules,
            explorer,
            learned: spec.learned_order.unwrap_or(true).then(LearnedRanker::new),
            pending: FastMap::default(),
            pending_order: VecDeque::new(),
            sequence: 0,
            impressions_unanswered: 0,
        }
    }

    /// What the learned order has learned from, if it is on.
    pub fn ranker_counts(&self) -> Option<RankCounts> {
        self.learned.as_ref().map(|l| l.counts)
    }

    /// Remembers `imp`, the user's latest recommendation, until their next
    /// event.
    fn remember(&mut self, user: u64, imp: Impression) {
        self.sequence += 1;
        if self.pending.insert(user, (imp, self.sequence)).is_some() {
            self.impressions_unanswered += 1;
        }
        self.pending_order.push_back((user, self.sequence));
        while self.pending.len() > PENDING_USERS {
            let Some((u, seq)) = self.pending_order.pop_front() else {
                break;
            };
            if self.pending.get(&u).is_some_and(|p| p.1 == seq) {
                self.pending.remove(&u);
                self.impressions_unanswered += 1;
            }
        }
        // Entries of answered or replaced impressions are dropped lazily.
        if self.pending_order.len() > 2 * PENDING_USERS.max(self.pending.len()) {
            let pending = &self.pending;
            self.pending_order
                .retain(|(u, seq)| pending.get(u).is_some_and(|p| p.1 == *seq));
        }
    }

    /// The models the engine reads (candidates, then the ranker).
    pub fn model_names(&self) -> Vec<String> {
        let mut out = self.candidates.clone();
        out.extend(self.ranker.as_ref().map(|r| r.name.clone()));
        out
    }

    /// Records a trigger event's item in the user's history (and as a
    /// click, if it was recommended to them).
    pub fn observe(&mut self, user: &Scalar, event: &[Scalar]) {
        let (Some(u), Some(c)) = (id_of(user), self.trigger_item) else {
            return;
        };
        let Some(item) = event.get(c).and_then(id_of) else {
            return;
        };
        if let Scalar::Str(s) = &event[c] {
            self.names.entry(item).or_insert_with(|| s.to_string());
        }
        if self.shown.get(&u).is_some_and(|s| s.contains(&item)) {
            self.explorer.clicked(item);
        }
        if let Some(l) = &mut self.learned {
            if let Some((imp, _)) = self.pending.remove(&u) {
                l.learn(&imp, item);
            }
            l.engaged(item);
        }
        let (recent, set) = self.history.entry(u).or_default();
        if set.insert(item) {
            recent.push_back(item);
            if recent.len() > self.history_len
                && let Some(old) = recent.pop_front()
            {
                set.remove(&old);
            }
        } else if let Some(p) = recent.iter().position(|i| *i == item) {
            recent.remove(p);
            recent.push_back(item);
        }
    }

    /// The recommendation for `req`.
    pub fn recommend(
        &mut self,
        req: &Request,
        models: &ModelSet,
        features: &FeatureTables,
    ) -> Recommendation {
        let user_key = req.user.key_text();
        let u = id_of(&req.user).unwrap_or(0);
        let empty = (VecDeque::new(), FastSet::default());
        let (recent, seen) = self.history.get(&u).unwrap_or(&empty);
        let rules = self.rules.as_ref();
        let exclude = |i: u64| {
            (self.exclude_seen && seen.contains(&i)) || rules.is_some_and(|r| !r.allows(i))
        };
        let history = seen.len();
        // 1. Candidates, first recommender first; with the learned order,
        // the pool keeps each one's rank in every recommender.
        let mut pool = self
            .learned
            .as_ref()
            .map(|_| Pool::new(self.candidates.len()));
        let mut candidates: Vec<(u64, f64, usize)> = Vec::new();
        let mut taken: FastSet<u64> = FastSet::default();
        for (m, name) in self.candidates.iter().enumerate() {
            let Some(Served::Recommender {
                model: Some((_, model)),
                matrix,
                ..
            }) = models.models.get(name)
            else {
                continue;
            };
            let proposed = match (model, matrix) {
                (RecModel::Mf(mf), Some(m)) => m.recommend(mf, u, self.per_model, &exclude),
                (RecModel::CoOccurrence(c), _) => {
                    let recent: Vec<u64> = recent.iter().copied().collect();
                    c.recommend_from(&recent, req.ts, self.per_model, &exclude)
                }
                (other, _) => other
                    .recommender()
                    .recommend(u, req.ts, self.per_model, &exclude),
            };
            for (rank, (item, score)) in proposed.into_iter().enumerate() {
                if let Some(pool) = &mut pool {
                    pool.add(m, rank, item);
                }
                if taken.insert(item) {
                    candidates.push((item, f64::from(score), m));
                }
            }
        }
        // 2. Rank.
        let mut features_as_of = None;
        let ftrl = models_ranker(models, &self.ranker);
        let ranked: Vec<(u64, f64, usize)> = match (&mut self.ranker, ftrl) {
            (Some(r), Some(ftrl)) => {
                // The user's features are the same for every candidate:
                // read them once.
                let mut user_features: HashMap<usize, Scalar> = HashMap::new();
                let wanted = |keyed: bool| -> Vec<usize> {
                    r.inputs
                        .inputs()
                        .filter_map(|input| match input.from {
                            InputFrom::Feature(f) if !keyed => Some(f),
                            InputFrom::KeyedFeature(f) if keyed => Some(f),
                            _ => None,
                        })
                        .collect()
                };
                // A re-keyed view's (an item's) are read at each candidate.
                let item_wanted = wanted(true);
                if !candidates.is_empty() {
                    let wanted = wanted(false);
                    // One read per view (an online store: one round trip).
                    for (f, (v, as_of)) in wanted.iter().zip(features.features(&user_key, &wanted))
                    {
                        features_as_of = features_as_of.max(as_of);
                        user_features.insert(*f, v);
                    }
                }
                let mut scored = Vec::with_capacity(candidates.len());
                for (item, _, m) in &candidates {
                    let item_value = match self.item_type {
                        ColumnType::String => Scalar::Str(
                            self.names
                                .get(item)
                                .map_or_else(|| item.to_string(), Clone::clone)
                                .into(),
                        ),
                        _ => Scalar::Long(*item as i64),
                    };
                    // Only a ranker with item columns needs the candidate's row.
                    let row = match r.item_columns.is_empty() {
                        true => None,
                        false => self.rules.as_ref().and_then(|t| t.row(*item)),
                    };
                    let mut item_features: HashMap<usize, Scalar> = HashMap::new();
                    if !item_wanted.is_empty() {
                        let key = item_value.key_text();
                        for (f, (v, as_of)) in item_wanted
                            .iter()
                            .zip(features.features(&key, &item_wanted))
                        {
                            features_as_of = features_as_of.max(as_of);
                            item_features.insert(*f, v);
                        }
                    }
                    let x = r
                        .inputs
                        .hash_with(&r.hasher, ftrl.standardizer(), |input| match input.from {
                            InputFrom::Column(c) if c == r.item_column => item_value.clone(),
                            InputFrom::Column(c)
                                if let Some(&(_, tc)) =
                                    r.item_columns.iter().find(|(rc, _)| *rc == c) =>
                            {
                                row.map_or(Scalar::Null, |row| row[tc].clone())
                            }
                            InputFrom::Column(c) if r.same_source => req
                                .event
                                .as_ref()
                                .and_then(|e| e.get(c).cloned())
                                .unwrap_or_default(),
                            InputFrom::Column(_) => Scalar::Null,
                            InputFrom::Feature(f) => {
                                user_features.get(&f).cloned().unwrap_or_default()
                            }
                            InputFrom::KeyedFeature(f) => {
                                item_features.get(&f).cloned().unwrap_or_default()
                            }
                        });
                    // A non-finite feature cannot be scored: the candidate
                    // keeps its place at the bottom rather than vanish.
                    let p = x.map_or(f64::NEG_INFINITY, |x| ftrl.predict(x));
                    scored.push((*item, p, *m));
                }
                if let Some(pool) = &mut pool {
                    // Pool and candidates list items in the same order.
                    for (i, c) in scored.iter().enumerate() {
                        pool.set_outside(i, c.1);
                    }
                }
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored
            }
            _ => candidates,
        };
        let k = req.k;
        let ranked = match (&self.learned, &pool) {
            (Some(learned), Some(pool)) => {
                let order = learned.rank(pool, history);
                // A candidate's source is the first recommender that
                // proposed it.
                let out: Vec<(u64, f64, usize)> = order
                    .iter()
                    .map(|&(i, margin)| {
                        let source = pool.proposed_by(i).next().unwrap_or(0);
                        (pool.items[i], eddy_training::ftrl::sigmoid(margin), source)
                    })
                    .collect();
                let imp = learned.impression(pool, &order, k, history);
                self.remember(u, imp);
                out
            }
            _ => ranked,
        };
        // 3. (Filters ran inside the recommenders' `exclude`.) 4. Explore.
        // Callers check k (`check_k`); a zero here answers nothing rather
        // than quietly answering one item.
        let top: Vec<(u64, f32)> = ranked
            .iter()
            .take(k)
            .map(|(i, s, _)| (*i, *s as f32))
            .collect();
        let pool: Vec<u64> = ranked.iter().map(|c| c.0).collect();
        let seed = u64::from(murmur3(req.id.as_bytes(), 7)) << 32
            | u64::from(murmur3(req.id.as_bytes(), 11));
        let final_items = self.explorer.explore(top.clone(), &pool, seed);
        let source_of = |item: u64| -> String {
            if !top.iter().any(|(i, _)| *i == item) {
                return "explore".into();
            }
            ranked
                .iter()
                .find(|c| c.0 == item)
                .map_or_else(|| "explore".into(), |c| self.candidates[c.2].clone())
        };
        let items: Vec<Ranked> = final_items
            .iter()
            .map(|(item, score)| Ranked {
                item: self.item_text(*item),
                score: ranked
                    .iter()
                    .find(|c| c.0 == *item)
                    .map_or(f64::from(*score), |c| c.1),
                source: source_of(*item),
            })
            .collect();
        let shown: Vec<u64> = final_items.iter().map(|(i, _)| *i).collect();
        for i in &shown {
            self.explorer.feedback(*i, false);
        }
        self.shown.insert(u, shown);
        let fewer_because = (items.len() < k).then(|| self.why_fewer(models, items.len(), k));
        Recommendation {
            request_id: req.id.clone(),
            user_id: user_key,
            items,
            model_version: models.versions(),
            features_as_of,
            trigger_event_time: req.ts,
            as_of_trigger: as_of_trigger(req, features_as_of, models),
            fewer_because,
        }
    }

    /// Why a recommendation has `got` items of the `k` asked for.
    fn why_fewer(&self, models: &ModelSet, got: usize, k: usize) -> String {
        let loaded: Vec<&str> = self
            .candidates
            .iter()
            .filter(|name| {
                matches!(
                    models.models.get(*name),
                    Some(Served::Recommender { model: Some(_), .. })
                )
            })
            .map(String::as_str)
            .collect();
        if loaded.is_empty() {
            return format!(
                "{got} of {k}: no candidate model ({}) is loaded yet",
                self.candidates.join(", ")
            );
        }
        let mut left_out = Vec::new();
        if self.exclude_seen {
            left_out.push("items the user has already engaged with");
        }
        if self.rules.as_ref().is_some_and(|r| r.has_rules()) {
            left_out.push("items the rules reject");
        }
        let leaving = if left_out.is_empty() {
            String::new()
        } else {
            format!(", leaving out {}", left_out.join(" and "))
        };
        format!(
            "{got} of {k}: the candidate models ({}) know no more items for this user{leaving}",
            loaded.join(", ")
        )
    }

    fn item_text(&self, item: u64) -> String {
        match self.item_type {
            ColumnType::String => self
                .names
                .get(&item)
                .cloned()
                .unwrap_or_else(|| item.to_string()),
            _ => (item as i64).to_string(),
        }
    }

    /// Users with a history.
    pub fn users(&self) -> usize {
        self.history.len()
    }
}

/// A trigger event's features and models must hold nothing at or after its
/// own time (its own event included); a request's nothing after the latest
/// event time serving had seen.
fn as_of_trigger(req: &Request, features_as_of: Option<i64>, models: &ModelSet) -> bool {
    let strict = req.event.is_some();
    let features = features_as_of.is_none_or(|f| if strict { f < req.ts } else { f <= req.ts });
    features && models.trained_before(req.ts, strict)
}

/// The ranker's current model, if loaded.
fn models_ranker<'m>(
    models: &'m ModelSet,
    ranker: &Option<Ranker>,
) -> Option<&'m eddy_training::ftrl::Ftrl> {
    match models.models.get(&ranker.as_ref()?.name)? {
        Served::Linear(replica) => replica.model.as_ref(),
        Served::Recommender { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_features::engine::job::FeatureReader;
    use eddy_training::online::recommender::Model;
    use eddy_training::recommend::Recommender as _;
    use eddy_training::recommend::popularity::Popularity;

    /// Events (user, item); one popularity recommender as the only
    /// candidate, no ranker.
    const SPEC: &str = "name: t
sources:
  events: { topic: events, key: user_id, event_time: ts }
features:
  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  popular:
    kind: popularity
    source: events
    item: item_id
serving:
  trigger: events
  candidates: [popular]
  k: 3
";

    fn columns() -> eddy_features::spec::Columns {
        [
            ("user_id", ColumnType::Long),
            ("item_id", ColumnType::Long),
            ("ts", ColumnType::Long),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    /// An engine over SPEC (with `extra` serving keys), and the models
    /// with popularity trained on `views` (item, times viewed).
    fn engine(extra: &str, views: &[(u64, usize)]) -> (Engine, ModelSet, FeatureTables) {
        let text = format!("{SPEC}{extra}");
        let loaded = eddy_features::spec::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let sources = [("events".to_string(), columns())].into_iter().collect();
        let plans = eddy_training::plan::plan(&loaded, &sources, &[]).unwrap();
        let serving = loaded.spec.serving.clone().unwrap();
        let cols = columns();
        let engine = Engine::new(&serving, &plans, Some(("events", &cols)), None);
        let mut pop = Popularity::new(30 * 86_400_000);
        for &(item, n) in views {
            for i in 0..n {
                pop.learn(1000 + i as u64, item, 1_000);
            }
        }
        let refs: Vec<&ModelPlan> = plans.iter().collect();
        let mut models = ModelSet::new(&refs);
        if let Some(Served::Recommender { model, .. }) = models.models.get_mut("popular") {
            *model = Some((1, Model::Popularity(pop)));
        }
        let features = FeatureTables::in_process(FeatureReader::new(&[]), &[]);
        (engine, models, features)
    }

    fn request(user: i64, k: usize) -> Request {
        Request {
            id: "r".into(),
            user: Scalar::Long(user),
            k,
            ts: 2_000,
            event: None,
        }
    }

    fn items(r: &Recommendation) -> Vec<&str> {
        r.items.iter().map(|i| i.item.as_str()).collect()
    }

    #[test]
    fn candidates_come_ranked_by_their_recommender_and_k_is_kept() {
        let (mut e, models, features) = engine("", &[(7, 5), (3, 9), (4, 1), (8, 2)]);
        let r = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(items(&r), ["3", "7", "8"]);
        assert!(r.items.iter().all(|i| i.source == "popular"));
        assert_eq!(r.fewer_because, None);
        assert_eq!(r.model_version, "popular@1");
    }

    #[test]
    fn items_the_user_engaged_with_are_left_out_and_fewer_than_k_says_why() {
        let (mut e, models, features) = engine("", &[(7, 5), (3, 9)]);
        // The user viewed item 3: it is never recommended to them.
        e.observe(
            &Scalar::Long(1),
            &[Scalar::Long(1), Scalar::Long(3), Scalar::Long(1_500)],
        );
        let r = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(items(&r), ["7"]);
        let why = r.fewer_because.expect("fewer than k");
        assert!(why.contains("engaged with"), "{why}");
        // Another user still gets it.
        let r = e.recommend(&request(2, 3), &models, &features);
        assert_eq!(items(&r), ["3", "7"]);
    }

    #[test]
    fn with_exclude_seen_off_what_the_user_viewed_may_come_back() {
        let (mut e, models, features) = engine("  exclude_seen: false\n", &[(7, 5), (3, 9)]);
        e.observe(
            &Scalar::Long(1),
            &[Scalar::Long(1), Scalar::Long(3), Scalar::Long(1_500)],
        );
        let r = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(items(&r), ["3", "7"]);
    }

    /// Without a ranker, ties keep the recommender's order, which is by
    /// item id (popularity: the higher id first); with one, the ranker's
    /// sort breaks them by the lower id.
    #[test]
    fn ties_break_by_item_id_so_answers_are_deterministic() {
        let (mut e, models, features) = engine("", &[(9, 2), (2, 2), (5, 2), (1, 1)]);
        let first = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(items(&first), ["9", "5", "2"]);
        let again = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(first, again);
    }

    /// Two candidate sources, `popular` (items 1..=5) and `other`
    /// (items 101..=105): every user's next event is `other`'s best item.
    /// Untrained, the order is reciprocal rank fusion (both sources' best
    /// tie at rank 0, the lower id first: item 1); after the engine has
    /// seen users act on its recommendations, `other`'s best comes first.
    #[test]
    fn the_learned_order_learns_from_what_users_did_after_a_recommendation() {
        let extra = "  learned_order: true\n";
        let text = format!("{SPEC}{extra}")
            .replace("  candidates: [popular]", "  candidates: [popular, other]")
            .replace(
                "serving:",
                "  other:\n    kind: popularity\n    source: events\n    item: item_id\nserving:",
            );
        let loaded = eddy_features::spec::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let sources = [("events".to_string(), columns())].into_iter().collect();
        let plans = eddy_training::plan::plan(&loaded, &sources, &[]).unwrap();
        let cols = columns();
        let serving = loaded.spec.serving.clone().unwrap();
        let mut e = Engine::new(&serving, &plans, Some(("events", &cols)), None);
        let refs: Vec<&ModelPlan> = plans.iter().collect();
        let mut models = ModelSet::new(&refs);
        for (name, first) in [("popular", 1u64), ("other", 101)] {
            let mut pop = Popularity::new(30 * 86_400_000);
            for item in first..first + 5 {
                for i in 0..(first + 10 - item) {
                    pop.learn(1000 + i, item, 1_000);
                }
            }
            if let Some(Served::Recommender { model, .. }) = models.models.get_mut(name) {
                *model = Some((1, Model::Popularity(pop)));
            }
        }
        let features = FeatureTables::in_process(FeatureReader::new(&[]), &[]);
        let before = e.recommend(&request(1, 3), &models, &features);
        assert_eq!(items(&before)[0], "1");
        assert_eq!(before.items[0].source, "popular");
        for user in 2..400 {
            e.recommend(&request(user, 3), &models, &features);
            let event = [Scalar::Long(user), Scalar::Long(101), Scalar::Long(1_500)];
            e.observe(&Scalar::Long(user), &event);
        }
        let after = e.recommend(&request(1000, 3), &models, &features);
        assert_eq!(items(&after)[0], "101", "{after:?}");
        assert_eq!(after.items[0].source, "other");
        let counts = e.ranker_counts().unwrap();
        assert_eq!(counts.learned, 398);
        assert_eq!(counts.outside_pool, 0);
        // User 1's first recommendation was never answered by an event:
        // a newer one for the same user counts it.
        assert_eq!(e.impressions_unanswered, 0);
        e.recommend(&request(1, 3), &models, &features);
        assert_eq!(e.impressions_unanswered, 1);
        // An event with an item no source proposed is counted, not learned.
        let event = [Scalar::Long(1), Scalar::Long(999), Scalar::Long(1_600)];
        e.observe(&Scalar::Long(1), &event);
        assert_eq!(e.ranker_counts().unwrap().outside_pool, 1);
    }

    /// `learned_order: false` keeps the fixed order: first source first.
    #[test]
    fn with_the_learned_order_off_nothing_is_learned() {
        let (mut e, models, features) = engine("  learned_order: false\n", &[(7, 5), (3, 9)]);
        e.recommend(&request(1, 3), &models, &features);
        e.observe(
            &Scalar::Long(1),
            &[Scalar::Long(1), Scalar::Long(7), Scalar::Long(1_500)],
        );
        assert_eq!(e.ranker_counts(), None);
        assert_eq!(e.impressions_unanswered, 0);
    }

    #[test]
    fn with_no_candidate_model_loaded_the_answer_is_empty_and_says_why() {
        let (mut e, mut models, features) = engine("", &[(7, 5)]);
        if let Some(Served::Recommender { model, .. }) = models.models.get_mut("popular") {
            *model = None;
        }
        let r = e.recommend(&request(1, 3), &models, &features);
        assert!(r.items.is_empty());
        assert!(r.fewer_because.is_some());
    }
}
