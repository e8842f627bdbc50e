//! `sweep why STAGE`: why would this stage (re-)run? Compares its key
//! components (version, params, input keys) with the closest cached record
//! of the same kind and lists what differs.
use std::collections::BTreeMap;

use anyhow::Result;

use crate::cache::{CacheRead, Record};
use crate::plan::{Node, Plan};

/// Flattens JSON into `path → value` (`train.learning_rate → 0.001`).
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The key components of `node` that differ from `record`, one line each.
pub fn differences(
    plan: &Plan,
    cache: &dyn CacheRead,
    node: &Node,
    record: &Record,
) -> Result<Vec<String>> {
    let mut diffs = Vec::new();
    if node.version != record.version {
        diffs.push(format!(
            "{} VERSION: cached {}, now {}",
            node.kind, record.version, node.version
        ));
    }
    let (mut now, mut then) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &node.params, &mut now);
    flatten("", &record.params, &mut then);
    for path in now
        .keys()
        .chain(then.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (then.get(path), now.get(path));
        if a != b {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(absent)".into());
            diffs.push(format!("param {path}: cached {}, now {}", show(a), show(b)));
        }
    }
    for role in node
        .inputs
        .keys()
        .chain(record.inputs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (record.inputs.get(role), node.inputs.get(role));
        if a != b {
            let now_name = b
                .and_then(|k| plan.node(k))
                .map_or("(absent)".to_string(), |n| n.name.clone());
            let then_name = match a {
                Some(k) => cache
                    .get(k)?
                    .map_or_else(|| format!("{k} (no longer cached)"), |r| r.name),
                None => "(absent)".into(),
            };
            diffs.push(if then_name == now_name {
                format!("input {role}: {now_name} was re-keyed (run `sweep why {now_name}`)")
            } else {
                format!(
                    "input {role}: cached {then_name}, now {now_name} (run `sweep why {now_name}`)"
                )
            });
        }
    }
    Ok(diffs)
}

/// A human-readable answer for `node`.
pub fn explain(plan: &Plan, cache: &dyn CacheRead, node: &Node) -> Result<String> {
    let mut out = format!("{}  (kind {}, key {})\n", node.name, node.kind, node.key);
    if !cache.root().is_dir() {
        out.push_str("no cache yet: every stage will run\n");
        return Ok(out);
    }
    if let Some(rec) = cache.get(&node.key)? {
        match cache.verify(&rec) {
            Ok(()) => out.push_str(&format!(
                "cached: ran {:.1}s; will not re-run\n",
                rec.duration_s
            )),
            Err(reason) => out.push_str(&format!("cached, but {reason}: will re-run\n")),
        }
        return Ok(out);
    }
    let mut best: Option<(Vec<String>, Record)> = None;
    for rec in cache.records()?.into_iter().filter(|r| r.kind == node.kind) {
        let diffs = differences(plan, cache, node, &rec)?;
        if best.as_ref().is_none_or(|(b, _)| diffs.len() < b.len()) {
            best = Some((diffs, rec));
        }
    }
    match best {
        None => out.push_str(&format!("will run: no {} stage is cached yet\n", node.kind)),
        Some((diffs, rec)) => {
            out.push_str(&format!(
                "will run; closest cached {} is {} ({}), which differs in:\n",
                node.kind, rec.name, rec.key
            ));
            for d in diffs {
                out.push_str(&format!("  {d}\n"));
            }
        }
    }
    Ok(out)
}
