//! What `ddcoterm config show` prints, as data: the merged settings with secrets masked, and every leaf key
//! with where its value came from. The command formats them; nothing here prints.

use super::Loaded;
use serde_json::Value;

/// Keys whose values are secrets: never printed.
const SECRET_KEYS: [&str; 2] = ["connection_config.api_key", "connection_config.app_key"];

/// Masks a secret so that it can be recognised but not reused.
pub fn mask(secret: &str) -> String {
    if secret.chars().count() >= 16 {
        // By characters: a byte offset could split a multi-byte character (a pasted key is not always ASCII).
        let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("********{tail}")
    } else {
        "********".into()
    }
}

/// The merged settings as JSON, every secret masked.
pub fn masked_json(loaded: &Loaded) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(&loaded.settings)?;
    for key in SECRET_KEYS {
        let mut node = &mut v;
        for part in key.split('.') {
            node = &mut node[part];
        }
        if let Some(s) = node.as_str() {
            *node = Value::String(mask(s));
        }
    }
    Ok(v)
}

/// Every leaf key with its (masked) value and where it came from; policy snippets listed with their
/// file:line.
pub fn origin_rows(loaded: &Loaded) -> anyhow::Result<Vec<(String, Value, String)>> {
    let v = masked_json(loaded)?;
    let mut leaves = Vec::new();
    flatten(&v, "", &mut leaves);
    let mut rows = Vec::new();
    for (key, value) in leaves {
        if key.starts_with("process_config") {
            continue;
        }
        let origin = loaded
            .origins()
            .get(&key)
            .or_else(|| {
                loaded
                    .origins()
                    .iter()
                    .filter(|(k, _)| key.starts_with(&format!("{k}.")))
                    .map(|(_, o)| o)
                    .next_back()
            })
            .map(|o| o.to_string())
            .unwrap_or_else(|| "built-in (default)".into());
        rows.push((key, value, origin));
    }
    let p = &loaded.policy;
    let defaults_from = if p.default_actions_from.is_empty() {
        "built-in (default)".to_string()
    } else {
        p.default_actions_from.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(" + ")
    };
    rows.push((
        "process_config.default_actions".into(),
        serde_json::to_value(&p.default_actions)?,
        defaults_from,
    ));
    for l in &p.lints {
        rows.push((
            format!("lint {}[{}]", l.at.command, l.at.index),
            Value::String(l.lua.trim().to_string()),
            l.at.origin.to_string(),
        ));
    }
    for r in &p.rules {
        let val = serde_json::json!({ "rule": r.lua.trim(), "actions": r.actions });
        rows.push((format!("rule {}[{}]", r.at.command, r.at.index), val, r.at.origin.to_string()));
    }
    Ok(rows)
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, &key, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_all_but_the_tail_of_long_keys() {
        assert_eq!(mask("0123456789abcdef0123456789abcdef"), "********cdef");
        assert_eq!(mask("short"), "********");
        assert_eq!(mask("ééééééééééééééééé"), "********éééé", "never panics inside a character");
    }
}
