//! Finds the line of a key path (`features.v.aggregations[2].column`) in a
//! YAML text, so that errors found *after* parsing — an unknown column, a
//! type mismatch — still name the line, as parse errors do.
//!
//! The YAML parser keeps no positions once it has built values, so this walks
//! the text by indentation. It understands block mappings, block sequences
//! and one-line flow collections (`{ name: a, op: count }`), which is what
//! specs are made of. When it cannot follow the path it answers the line of
//! the deepest part it found: an error then points near, never nowhere.

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A key path, printed `a.b[2].c`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// This path, then key `k`.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    /// This path, then index `i`.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn starts_with_key(text: &str, key: &str) -> bool {
    let t = text.trim_start().trim_start_matches("- ").trim_start();
    let t = t
        .strip_prefix('"')
        .and_then(|r| r.strip_prefix(key))
        .and_then(|r| r.strip_prefix('"'))
        .or_else(|| t.strip_prefix(key));
    matches!(t, Some(rest) if rest.trim_start().starts_with(':'))
}

/// The 1-based line of `path` in `text`, or of its deepest findable prefix.
pub fn locate(text: &str, path: &KeyPath) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut best: Option<usize> = None;
    // The line where the current node starts, and the indentation below
    // which its children cannot be.
    let mut at: Option<usize> = None;
    let mut parent_indent: isize = -1;
    let mut flow: Option<usize> = None;
    for seg in &path.0 {
        if let Some(line) = flow {
            // Inside a one-line flow collection: stay on its line.
            if let Seg::Key(k) = seg
                && !lines[line].contains(&format!("{k}:"))
            {
                return best;
            }
            continue;
        }
        let from = at.map_or(0, |l| l + 1);
        let mut found = None;
        match seg {
            Seg::Key(k) => {
                // A `- key: v` item line holds its first key itself.
                if let Some(l) = at
                    && lines[l].trim_start().starts_with("- ")
                    && starts_with_key(lines[l], k)
                {
                    found = Some(l);
                }
                if found.is_none() {
                    for (n, line) in lines.iter().enumerate().skip(from) {
                        if !is_content(line) {
                            continue;
                        }
                        if (indent_of(line) as isize) <= parent_indent {
                            break;
                        }
                        if starts_with_key(line, k) && !line.trim_start().starts_with("- ") {
                            found = Some(n);
                            break;
                        }
                    }
                }
            }
            Seg::Index(i) => {
                // A flow sequence on the key's own line: `windows: [1h, 1d]`.
                if let Some(l) = at
                    && lines[l].contains('[')
                {
                    flow = Some(l);
                    best = Some(l + 1);
                    continue;
                }
                let mut seen = 0;
                let mut item_indent = None;
                for (n, line) in lines.iter().enumerate().skip(from) {
                    if !is_content(line) {
                        continue;
                    }
                    let ind = indent_of(line);
                    if (ind as isize) < parent_indent.max(0)
                        || (ind as isize) <= parent_indent && !line.trim_start().starts_with("- ")
                    {
                        break;
                    }
                    if line.trim_start().starts_with("- ") && *item_indent.get_or_insert(ind) == ind
                    {
                        if seen == *i {
                            found = Some(n);
                            break;
                        }
                        seen += 1;
                    }
                }
            }
        }
        let Some(line) = found else { return best };
        best = Some(line + 1);
        at = Some(line);
        parent_indent = indent_of(lines[line]) as isize;
        if let Seg::Key(k) = seg {
            // `key: { ... }` or `key: [ ... ]`: the rest is on this line.
            let after = lines[line]
                .split_once(&format!("{k}:"))
                .map(|x| x.1)
                .unwrap_or("");
            if after.trim_start().starts_with('{') || after.trim_start().starts_with('[') {
                flow = Some(line);
            }
        } else if lines[line].contains('{') {
            flow = Some(line);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "\
name: demo
sources:
  ratings:
    topic: ratings
    lateness: 10m
features:
  user_activity:
    source: ratings
    join: [{ table: movies, on: movie_id }]
    aggregations:
      - { name: n, op: count, windows: [1h] }
      # a comment
      - name: avg
        op: mean
        column: rating
";

    fn path(parts: &[&str]) -> KeyPath {
        KeyPath(
            parts
                .iter()
                .map(|p| match p.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(p.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn finds_block_flow_and_item_keys() {
        assert_eq!(locate(SPEC, &path(&["name"])), Some(1));
        assert_eq!(
            locate(SPEC, &path(&["sources", "ratings", "lateness"])),
            Some(5)
        );
        assert_eq!(
            locate(
                SPEC,
                &path(&["features", "user_activity", "join", "0", "on"])
            ),
            Some(9)
        );
        let aggs = ["features", "user_activity", "aggregations"];
        assert_eq!(
            locate(
                SPEC,
                &path(&[aggs.as_slice(), &["0", "windows", "0"]].concat())
            ),
            Some(11)
        );
        assert_eq!(
            locate(SPEC, &path(&[aggs.as_slice(), &["1", "name"]].concat())),
            Some(13)
        );
        assert_eq!(
            locate(SPEC, &path(&[aggs.as_slice(), &["1", "column"]].concat())),
            Some(15)
        );
        assert_eq!(
            path(&[aggs.as_slice(), &["1", "column"]].concat()).to_string(),
            "features.user_activity.aggregations[1].column"
        );
    }

    #[test]
    fn a_missing_key_points_at_its_parent() {
        assert_eq!(locate(SPEC, &path(&["sources", "ratings", "key"])), Some(3));
        assert_eq!(locate(SPEC, &path(&["nothing"])), None);
    }
}
