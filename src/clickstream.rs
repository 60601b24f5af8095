//! A synthetic e-commerce clickstream with known ground truth.
//!
//! Users and items have latent taste vectors; the chance that a user
//! clicks an item they view is a logistic function of the two vectors'
//! agreement, the user's own propensity to click, the item's appeal, the
//! item's price and the user's price sensitivity. Items of a category have
//! alike tastes. Propensity and appeal are what features of the user's
//! past and the item's id can learn, and what the user clicked in each
//! category says part of the agreement; the rest needs a model of the
//! pair. Because
//! that probability is known for every view, a model's logloss can be set
//! against the best possible (Bayes-optimal) one.
//!
//! The world moves, as a real shop does:
//! - **new items arrive** all along (half the catalog exists at the start);
//! - **popularity drifts**: an item's chance of being shown decays with its
//!   age, so fresh items take over the traffic;
//! - **the catalog changes**: prices (and, rarely, categories) are
//!   revised, each revision a new version of the item's row from a
//!   `valid_from` time (SCD type 2, for as-of joins).
//!
//! A view can lead to a click, a click to an add-to-cart, and that to a
//! purchase. Everything comes from one SplitMix64 stream seeded by the
//! user, so a seed always gives the same dataset, at any scale (nothing is
//! held per event: memory is per user and per item).

use eddy_training::recommend::Rng;

/// How big and how long.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub users: u64,
    pub items: u64,
    pub events: u64,
    pub seed: u64,
    /// Latent dimensions. Default 8.
    pub dim: usize,
    /// Event-time span, ms. Default 30 days.
    pub span_ms: i64,
    /// The first event's time (epoch ms).
    pub start_ms: i64,
}

impl Config {
    pub fn new(users: u64, items: u64, events: u64, seed: u64) -> Config {
        Config {
            users: users.max(1),
            items: items.max(2),
            events,
            seed,
            dim: 8,
            span_ms: 30 * 86_400_000,
            start_ms: 1_735_689_600_000, // 2025-01-01
        }
    }
}

/// The kinds of event.
pub const EVENT_TYPES: [&str; 4] = ["view", "click", "add_to_cart", "purchase"];

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: u64,
    pub user_id: u64,
    pub item_id: u64,
    /// Index into [`EVENT_TYPES`].
    pub kind: u8,
    pub ts: i64,
    /// The item's price at the time.
    pub price: f64,
    /// For views: the true click probability.
    pub p_click: Option<f64>,
}

/// One version of an item's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemVersion {
    pub item_id: u64,
    pub category: u32,
    pub price: f64,
    pub valid_from: i64,
}

/// Categories of the catalog.
pub const CATEGORIES: u32 = 20;

struct User {
    taste: Vec<f64>,
    /// How much prices put the user off.
    sensitivity: f64,
    /// How readily the user clicks anything (logit).
    propensity: f64,
}

struct Item {
    taste: Vec<f64>,
    /// How readily anyone clicks it (logit).
    appeal: f64,
    category: u32,
    price: f64,
    arrives: i64,
}

/// The world: users, items, and the stream of events.
pub struct Clickstream {
    config: Config,
    rng: Rng,
    users: Vec<User>,
    items: Vec<Item>,
    next_event: u64,
    /// Every version of every item, in time order.
    revisions: Vec<ItemVersion>,
    /// Per item: (valid_from, price) of its versions, in time order.
    prices: Vec<Vec<(i64, f64)>>,
    pending: std::collections::VecDeque<Event>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Clickstream {
    pub fn new(config: Config) -> Clickstream {
        let mut rng = Rng(config.seed ^ 0x5EED_C11C_57EA_0001);
        let d = config.dim;
        let scale = 1.0 / (d as f64).sqrt();
        let users = (0..config.users)
            .map(|_| {
                let taste = (0..d).map(|_| rng.normal() * scale * 1.5).collect();
                User {
                    taste,
                    // Most users mind prices a little.
                    sensitivity: 0.2 + rng.uniform() * 0.8,
                    propensity: rng.normal() * 0.6,
                }
            })
            .collect();
        let half = config.items / 2;
        // Items of a category are alike: an item's taste is its category's
        // plus its own, so what a user clicked in a category says something
        // of the category's other items.
        let centroids: Vec<Vec<f64>> = (0..CATEGORIES)
            .map(|_| (0..d).map(|_| rng.normal() * scale * 1.2).collect())
            .collect();
        let items = (0..config.items)
            .map(|i| {
                let category = (rng.next_u64() % u64::from(CATEGORIES)) as u32;
                let taste: Vec<f64> = centroids[category as usize]
                    .iter()
                    .map(|c| c + rng.normal() * scale * 0.9)
                    .collect();
                let appeal = rng.normal() * 0.6;
                let arrives = if i < half {
                    config.start_ms
                } else {
                    config.start_ms
                        + ((i - half) as f64 / (config.items - half).max(1) as f64
                            * config.span_ms as f64) as i64
                };
                Item {
                    taste,
                    appeal,
                    category,
                    price: (5.0 + 95.0 * rng.uniform()).round(),
                    arrives,
                }
            })
            .collect::<Vec<_>>();
        // Price revisions: about three per item over the span; a tenth
        // also move category.
        let mut revisions = Vec::new();
        for (i, item) in items.iter().enumerate() {
            revisions.push(ItemVersion {
                item_id: i as u64,
                category: item.category,
                price: item.price,
                valid_from: item.arrives,
            });
        }
        let mut world = Clickstream {
            config,
            rng,
            users,
            items,
            next_event: 0,
            revisions,
            prices: Vec::new(),
            pending: Default::default(),
        };
        let mut extra = Vec::new();
        for i in 0..world.items.len() {
            for _ in 0..3 {
                let at = world.items[i].arrives
                    + (world.rng.uniform() * world.config.span_ms as f64) as i64;
                if at >= world.config.start_ms + world.config.span_ms {
                    continue;
                }
                let factor = 0.7 + 0.6 * world.rng.uniform();
                let category = if world.rng.uniform() < 0.1 {
                    (world.rng.next_u64() % u64::from(CATEGORIES)) as u32
                } else {
                    u32::MAX
                };
                extra.push((i, at, factor, category));
            }
        }
        extra.sort_by_key(|e| (e.1, e.0));
        // Apply in time order so each version carries the price then.
        let mut price: Vec<f64> = world.items.iter().map(|i| i.price).collect();
        let mut cat: Vec<u32> = world.items.iter().map(|i| i.category).collect();
        for (i, at, factor, category) in extra {
            price[i] = (price[i] * factor).max(1.0).round();
            if category != u32::MAX {
                cat[i] = category;
            }
            world.revisions.push(ItemVersion {
                item_id: i as u64,
                category: cat[i],
                price: price[i],
                valid_from: at,
            });
        }
        world.revisions.sort_by_key(|v| (v.valid_from, v.item_id));
        let mut prices = vec![Vec::new(); world.items.len()];
        for v in &world.revisions {
            prices[v.item_id as usize].push((v.valid_from, v.price));
        }
        world.prices = prices;
        world
    }

    /// Every version of every item, in `valid_from` order.
    pub fn catalog(&self) -> &[ItemVersion] {
        &self.revisions
    }

    /// The item's price as of `ts`.
    fn price_at(&self, item: u64, ts: i64) -> f64 {
        let versions = &self.prices[item as usize];
        let i = versions.partition_point(|v| v.0 <= ts);
        versions
            .get(i.saturating_sub(1))
            .map_or(self.items[item as usize].price, |v| v.1)
    }

    /// An item shown at `ts`: among those that have arrived, recent ones
    /// far more often (popularity drifts to what is new).
    fn pick_item(&mut self, ts: i64) -> u64 {
        let arrived = self.items.partition_point(|i| i.arrives <= ts).max(1) as u64;
        let half = self.config.items / 2;
        // Half the traffic goes to the newest tenth of what has arrived.
        if arrived > half && self.rng.uniform() < 0.5 {
            let recent = ((arrived - half) / 10).max(1).min(arrived);
            arrived - 1 - self.rng.next_u64() % recent
        } else {
            let u = self.rng.uniform();
            ((u * u) * arrived as f64) as u64
        }
    }

    /// The true click probability of `user` viewing `item` at `price`.
    pub fn p_click(&self, user: u64, item: u64, price: f64) -> f64 {
        let u = &self.users[user as usize];
        let i = &self.items[item as usize];
        let agree: f64 = u.taste.iter().zip(&i.taste).map(|(a, b)| a * b).sum();
        sigmoid(-1.5 + u.propensity + i.appeal + 2.0 * agree - u.sensitivity * (price / 50.0 - 1.0))
    }
}

impl Iterator for Clickstream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.pending.pop_front() {
            return Some(e);
        }
        if self.next_event >= self.config.events {
            return None;
        }
        let n = self.next_event;
        let ts = self.config.start_ms
            + (n as f64 / self.config.events.max(1) as f64 * self.config.span_ms as f64) as i64;
        // Users differ in activity: a skewed pick.
        let u = self.rng.uniform();
        let user = ((u * u * u) * self.config.users as f64) as u64 % self.config.users;
        let item = self.pick_item(ts);
        let price = self.price_at(item, ts);
        let p = self.p_click(user, item, price);
        let event = |kind: u8, dt: i64, world: &mut Clickstream, p_click| Event {
            event_id: {
                world.next_event += 1;
                world.next_event - 1
            },
            user_id: user,
            item_id: item,
            kind,
            ts: ts + dt,
            price,
            p_click,
        };
        let view = event(0, 0, self, Some(p));
        if self.rng.uniform() < p {
            let click = event(1, 2_000, self, None);
            self.pending.push_back(click);
            if self.rng.uniform() < 0.25 {
                let cart = event(2, 30_000, self, None);
                self.pending.push_back(cart);
                if self.rng.uniform() < 0.4 {
                    let buy = event(3, 120_000, self, None);
                    self.pending.push_back(buy);
                }
            }
        }
        Some(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(seed: u64) -> Vec<Event> {
        Clickstream::new(Config::new(200, 300, 20_000, seed)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
        let a = events(1);
        assert_eq!(a, events(1));
        assert_ne!(a, events(2));
        let c1 = Clickstream::new(Config::new(200, 300, 10, 1));
        let c2 = Clickstream::new(Config::new(200, 300, 10, 1));
        assert_eq!(c1.catalog(), c2.catalog());
    }

    #[test]
    fn the_funnel_narrows_and_clicks_follow_the_true_probability() {
        let e = events(3);
        let count = |k: u8| e.iter().filter(|x| x.kind == k).count();
        let (views, clicks, carts, buys) = (count(0), count(1), count(2), count(3));
        assert!(views > clicks && clicks > carts && carts > buys && buys > 0);
        // The share of views clicked matches the mean true probability.
        let mean_p: f64 = e.iter().filter_map(|x| x.p_click).sum::<f64>() / views as f64;
        let rate = clicks as f64 / views as f64;
        assert!((rate - mean_p).abs() < 0.02, "{rate} vs {mean_p}");
        // Event ids number the stream.
        assert!(e.iter().enumerate().all(|(i, x)| x.event_id == i as u64));
    }

    #[test]
    fn items_arrive_over_time_and_new_ones_take_the_traffic() {
        let world = Clickstream::new(Config::new(100, 1000, 0, 5));
        let late = world
            .catalog()
            .iter()
            .filter(|v| v.valid_from > world.config.start_ms)
            .count();
        assert!(late > 500, "arrivals and revisions after the start: {late}");
        let e: Vec<Event> = Clickstream::new(Config::new(100, 1000, 30_000, 5)).collect();
        let last = &e[e.len() * 9 / 10..];
        let new_share = last.iter().filter(|x| x.item_id >= 500).count() as f64 / last.len() as f64;
        assert!(new_share > 0.5, "late traffic on new items: {new_share}");
        // SCD2: some item has several versions with different prices.
        let mut versions = std::collections::HashMap::new();
        for v in world.catalog() {
            versions
                .entry(v.item_id)
                .or_insert_with(Vec::new)
                .push(v.price);
        }
        assert!(
            versions
                .values()
                .any(|p| p.len() > 2 && p.windows(2).any(|w| w[0] != w[1]))
        );
    }
}
