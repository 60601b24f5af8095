//! Window kinds and their event-time bounds.
//!
//! Every window answers one question: *which of a key's events count as of
//! time `t`?* Sliding, tumbling and hopping windows all answer with a lower
//! bound on event time — the events with `lower(t) <= ts <= t` count — so the
//! engine evicts them with one mechanism. Session and lifetime windows never
//! evict single events: a session is reset as a whole, a lifetime never is.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::Millis;

/// A window over a key's events, as written in `windows: [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// `30d`: events in `(t - size, t]`, exact to the millisecond.
    Sliding(Millis),
    /// `tumbling 1d`: events since the start of the current aligned period,
    /// `[floor(t / size) * size, t]`.
    Tumbling(Millis),
    /// `hopping 1d every 1h`: the oldest still-open window of `size` that
    /// starts on a multiple of `hop`: events in `[a, t]` with `a` the least
    /// multiple of `hop` greater than `t - size`.
    Hopping {
        /// How long each window is.
        size: Millis,
        /// How far apart windows start.
        hop: Millis,
    },
    /// `session 30m`: the current session, a run of events with gaps below
    /// `gap`. It closes (and reads as empty) once `t - last >= gap`.
    Session(Millis),
    /// `lifetime`: every event up to `t`.
    Lifetime,
}

/// How a window forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgetting {
    /// Single events leave in event-time order (sliding, hopping): the engine
    /// keeps the events and aggregators must support removal.
    Evicts,
    /// The window empties all at once (tumbling, session) or never
    /// (lifetime): aggregators only add and reset, so sketches work.
    Resets,
}

impl Window {
    /// Parses the spec syntax; see the variants.
    pub fn parse(text: &str) -> Result<Window, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let positive = |d: &str| -> Result<Millis, String> {
            let m = Millis::parse(d)?;
            if m.0 <= 0 {
                return Err(format!("window `{text}` must be longer than 0"));
            }
            Ok(m)
        };
        let window = match words.as_slice() {
            ["lifetime"] => Window::Lifetime,
            [size] => Window::Sliding(positive(size)?),
            ["sliding", size] => Window::Sliding(positive(size)?),
            ["tumbling", size] => Window::Tumbling(positive(size)?),
            ["session", gap] => Window::Session(positive(gap)?),
            ["hopping", size, "every", hop] => {
                let (size, hop) = (positive(size)?, positive(hop)?);
                if hop > size || size.0 % hop.0 != 0 {
                    return Err(format!(
                        "window `{text}`: the hop must divide the size (for example `hopping 1d every 1h`)"
                    ));
                }
                Window::Hopping { size, hop }
            }
            _ => {
                return Err(format!(
                    "`{text}` is not a window: write `30d` (sliding), `tumbling 1d`, \
                     `hopping 1d every 1h`, `session 30m` or `lifetime`"
                ));
            }
        };
        Ok(window)
    }

    /// The suffix of feature columns: `30d`, `tumbling_1d`, `hopping_1d_1h`,
    /// `session_30m`, `lifetime`.
    pub fn suffix(&self) -> String {
        match self {
            Window::Sliding(s) => s.text(),
            Window::Tumbling(s) => format!("tumbling_{}", s.text()),
            Window::Hopping { size, hop } => format!("hopping_{}_{}", size.text(), hop.text()),
            Window::Session(g) => format!("session_{}", g.text()),
            Window::Lifetime => "lifetime".into(),
        }
    }

    /// How this window forgets events.
    pub fn forgetting(&self) -> Forgetting {
        match self {
            Window::Sliding(_) | Window::Hopping { .. } => Forgetting::Evicts,
            Window::Tumbling(_) | Window::Session(_) | Window::Lifetime => Forgetting::Resets,
        }
    }

    /// For sliding, tumbling and hopping windows: the least event time that
    /// counts as of `t`. None for session and lifetime windows.
    pub fn lower_bound(&self, t: i64) -> Option<i64> {
        match *self {
            Window::Sliding(Millis(size)) => Some(t.saturating_sub(size).saturating_add(1)),
            Window::Tumbling(Millis(size)) => Some(t.div_euclid(size) * size),
            Window::Hopping {
                size: Millis(size),
                hop: Millis(hop),
            } => Some((t.saturating_sub(size).div_euclid(hop) + 1) * hop),
            Window::Session(_) | Window::Lifetime => None,
        }
    }

    /// The earliest time after `t` at which an event at `ts` stops counting.
    /// Drives timers: windows expire as time passes, not only when events
    /// arrive.
    pub fn expiry_of(&self, ts: i64) -> Option<i64> {
        match *self {
            Window::Sliding(Millis(size)) => Some(ts.saturating_add(size)),
            Window::Tumbling(Millis(size)) => Some((ts.div_euclid(size) + 1) * size),
            // The least t with lower(t) > ts: the window that starts on the
            // hop boundary at or below ts ends, at floor(ts / hop) * hop + size.
            Window::Hopping {
                size: Millis(size),
                hop: Millis(hop),
            } => Some(ts.div_euclid(hop) * hop + size),
            Window::Session(Millis(gap)) => Some(ts.saturating_add(gap)),
            Window::Lifetime => None,
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Window::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = match self {
            Window::Sliding(m) => m.text(),
            Window::Tumbling(m) => format!("tumbling {}", m.text()),
            Window::Hopping { size, hop } => {
                format!("hopping {} every {}", size.text(), hop.text())
            }
            Window::Session(g) => format!("session {}", g.text()),
            Window::Lifetime => "lifetime".into(),
        };
        s.serialize_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            Window::parse("30d"),
            Ok(Window::Sliding(Millis(30 * 86_400_000)))
        );
        assert_eq!(Window::parse("lifetime"), Ok(Window::Lifetime));
        assert_eq!(
            Window::parse("tumbling 1h").unwrap().suffix(),
            "tumbling_1h"
        );
        assert_eq!(
            Window::parse("hopping 1d every 1h").unwrap().suffix(),
            "hopping_1d_1h"
        );
        assert_eq!(
            Window::parse("session 30m").unwrap().suffix(),
            "session_30m"
        );
        for bad in [
            "0s",
            "forever",
            "hopping 1h every 7m",
            "hopping 1h every 2h",
            "tumbling",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// `expiry_of` is the first time at which `lower_bound` passes the
        /// event: the timer never fires early and never late.
        #[test]
        fn expiry_is_exactly_when_the_lower_bound_passes(
            ts in -10_000i64..10_000, size in 1i64..50, hop_div in 1i64..5, kind in 0..3
        ) {
            let hop = (size / hop_div).max(1);
            let size = size - size % hop;
            let w = match kind {
                0 => Window::Sliding(Millis(size)),
                1 => Window::Tumbling(Millis(size)),
                _ => Window::Hopping { size: Millis(size), hop: Millis(hop) },
            };
            let e = w.expiry_of(ts).unwrap();
            prop_assert!(e > ts);
            prop_assert!(w.lower_bound(e).unwrap() > ts);
            prop_assert!(w.lower_bound(e - 1).unwrap() <= ts);
        }
    }
}
