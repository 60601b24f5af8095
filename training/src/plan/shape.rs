//! Checks of the `models:` section that need only the spec: names, kinds,
//! the keys each kind takes, labels and filters that parse. Schema-aware
//! checks come when a model is planned (`plan`).

use eddy_features::spec::validate::{is_identifier, sql_syntax};
use eddy_features::spec::{KeyPath, LoadedSpec, SpecProblem};

use super::{ModelKind, Params};

/// Checks of the `models:` section that need only the spec: registered
/// with the spec loader (`eddy_features::spec::load_with`), and run again
/// by [`super::plan`].
pub fn shape(loaded: &LoadedSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    let mut problem = |path: KeyPath, msg: String| out.push(loaded.problem(&path, msg));
    let spec = &loaded.spec;
    for (name, m) in &spec.models {
        let at = KeyPath::default().key("models").key(name);
        let Some(kind) = ModelKind::named(&m.kind) else {
            let kinds: Vec<&str> = ModelKind::ALL.iter().map(ModelKind::name).collect();
            problem(
                at.key("kind"),
                format!("unknown kind `{}`; the kinds are {kinds:?}", m.kind),
            );
            continue;
        };
        if !is_identifier(name) {
            problem(
                at.clone(),
                format!(
                    "model name `{name}` must be a letter or `_` followed by letters, digits or `_`"
                ),
            );
        }
        if !spec.sources.contains_key(&m.source) {
            let known: Vec<&String> = spec.sources.keys().collect();
            problem(
                at.key("source"),
                format!("unknown source `{}`; the sources are {known:?}", m.source),
            );
        }
        let params = match kind.params(&m.params) {
            Ok(p) => Some(p),
            Err(problems) => {
                for (key, message) in problems {
                    let mut path = at.key("params");
                    path.0.extend(key.0);
                    problem(path, message);
                }
                None
            }
        };
        if kind.is_recommender() {
            if m.item.is_none() {
                problem(
                    at.key("kind"),
                    format!(
                        "a `{}` model needs `item:`, the column naming what the user engaged with",
                        kind.name()
                    ),
                );
            }
            for key in [
                "features",
                "columns",
                "categorical",
                "crosses",
                "delayed_label",
            ] {
                let set = match key {
                    "features" => m.features.is_some(),
                    "delayed_label" => m.delayed_label.is_some(),
                    "columns" => !m.columns.is_empty(),
                    "categorical" => !m.categorical.is_empty(),
                    _ => !m.crosses.is_empty(),
                };
                if set {
                    problem(
                        at.key(key),
                        format!(
                            "a `{}` recommender learns from (user, item) pairs; `{key}` applies to `ftrl` and `linear`",
                            kind.name()
                        ),
                    );
                }
            }
        } else if let Some(d) = &m.delayed_label {
            if kind != ModelKind::Ftrl {
                problem(
                    at.key("delayed_label"),
                    "a delayed label is a click after an impression: it applies to `ftrl`".into(),
                );
            }
            if m.label.is_some() {
                problem(
                    at.key("label"),
                    "set `label` (in the event) or `delayed_label` (on another source), not both"
                        .into(),
                );
            }
            if d.source == m.source && d.filter.is_none() {
                problem(
                    at.key("delayed_label").key("source"),
                    "labels from the examples' own source need `delayed_label.filter` to tell them apart (like `event_type = 'click'`), or every example would label itself".into(),
                );
            } else if d.source != m.source && !spec.sources.contains_key(&d.source) {
                let known: Vec<&String> = spec.sources.keys().collect();
                problem(
                    at.key("delayed_label").key("source"),
                    format!("unknown source `{}`; the sources are {known:?}", d.source),
                );
            }
            if d.within.0 <= 0 {
                problem(
                    at.key("delayed_label").key("within"),
                    "the attribution window must be longer than 0".into(),
                );
            }
        } else {
            if m.label.is_none() {
                problem(
                    at.key("kind"),
                    format!(
                        "a `{}` model needs `label:`, a SQL expression over the event (like `rating >= 4`), or `delayed_label:`",
                        kind.name()
                    ),
                );
            }
            if m.item.is_some() {
                problem(
                    at.key("item"),
                    "`item` applies to recommenders (`mf`, `cooccurrence`, `popularity`)".into(),
                );
            }
        }
        let filters = [
            (m.filter.as_ref(), at.key("filter")),
            (
                m.delayed_label.as_ref().and_then(|d| d.filter.as_ref()),
                at.key("delayed_label").key("filter"),
            ),
        ];
        for (sql, key) in filters {
            if let Some(sql) = sql
                && let Err(e) = sql_syntax(sql)
            {
                problem(key, format!("`{sql}` is not a SQL condition: {e}"));
            }
        }
        if let Some(sql) = &m.label
            && let Err(e) = sql_syntax(sql)
        {
            problem(
                at.key("label"),
                format!("`{sql}` is not a SQL expression: {e}"),
            );
        }
        if m.snapshot_every == Some(0) {
            problem(at.key("snapshot_every"), "must be at least 1".to_string());
        }
        if let Some(Params::Ftrl(p) | Params::Linear(p)) = &params
            && let Some(b) = p.bits
            && !(1..=30).contains(&b)
        {
            problem(
                at.key("params").key("bits"),
                format!("{b} is out of range: use 1 to 30 (2^30 weights take 12 GiB)"),
            );
        }
    }
    out
}
