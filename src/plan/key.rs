//! Stage keys: blake3 of (kind, VERSION, the kernels' numerics version,
//! canonical params, sorted input keys).
//! Canonical = JSON with object keys sorted at every level, so the key never
//! depends on field or insertion order.
use std::collections::BTreeMap;

pub use crate::spec::node::Key;

/// JSON text of `value` with every object's keys sorted.
pub fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let fields: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String((*k).clone())))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// The key of a stage. `inputs` is role → input key (a BTreeMap: sorted).
/// The kernels' numerics version is part of every key, since any stage may
/// compute with them ([`cwpo_kernels::NUMERICS_VERSION`]).
pub fn stage_key(
    kind: &str,
    version: u32,
    params: &serde_json::Value,
    inputs: &BTreeMap<String, Key>,
) -> Key {
    key_under_numerics(
        cwpo_kernels::NUMERICS_VERSION,
        kind,
        version,
        params,
        inputs,
    )
}

fn key_under_numerics(
    numerics: u32,
    kind: &str,
    version: u32,
    params: &serde_json::Value,
    inputs: &BTreeMap<String, Key>,
) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(version.to_string().as_bytes());
    h.update(b"\0");
    h.update(b"numerics=");
    h.update(numerics.to_string().as_bytes());
    h.update(b"\0");
    h.update(canonical_json(params).as_bytes());
    for (role, key) in inputs {
        h.update(b"\0");
        h.update(role.as_bytes());
        h.update(b"=");
        h.update(key.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_field_order_but_not_values_versions_or_inputs() {
        let a = json!({"b": 1, "a": {"y": 2, "x": [1, 2]}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a": {"x": [1, 2], "y": 2}, "b": 1}"#).unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            stage_key("split", 1, &a, &none),
            stage_key("split", 1, &b, &none)
        );
        assert_ne!(
            stage_key("split", 1, &a, &none),
            stage_key("split", 2, &a, &none)
        );
        assert_ne!(
            stage_key("split", 1, &a, &none),
            stage_key(
                "split",
                1,
                &json!({"b": 2, "a": {"y": 2, "x": [1, 2]}}),
                &none
            )
        );
        let with_input = BTreeMap::from([("dataset".to_string(), "k1".to_string())]);
        assert_ne!(
            stage_key("split", 1, &a, &none),
            stage_key("split", 1, &a, &with_input)
        );
    }

    #[test]
    fn key_changes_with_the_kernels_numerics() {
        let (params, none) = (json!({"a": 1}), BTreeMap::new());
        let under = |numerics| key_under_numerics(numerics, "split", 1, &params, &none);
        assert_ne!(under(1), under(2));
        assert_ne!(under(2), under(3));
        assert_eq!(
            stage_key("split", 1, &params, &none),
            under(cwpo_kernels::NUMERICS_VERSION)
        );
    }
}
