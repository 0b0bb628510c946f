//! `ddcoterm config show|paths`: the merged configuration, keys masked, with provenance on request.

use crate::cli::{ConfigCommand, Format, GlobalArgs};
use crate::config::show::{masked_json, origin_rows};
use crate::config::Loaded;
use serde_json::Value;

pub fn run(g: &GlobalArgs, c: ConfigCommand) -> anyhow::Result<i32> {
    let loaded = super::context::load(g)?;
    match c {
        ConfigCommand::Show { origin, format } => {
            let text = if origin { show_origin(&loaded, format)? } else { show(&loaded, format)? };
            print!("{text}");
        }
        ConfigCommand::Paths => {
            for l in &loaded.layers {
                println!(
                    "{:<7} {} ({})",
                    l.layer,
                    l.path.display(),
                    if l.exists { "found" } else { "absent" }
                );
            }
            println!("{:<7} DDCOTERM_* environment, DD_API_KEY, DD_APP_KEY, DD_SITE", "env");
            println!("{:<7} --set KEY=VALUE", "flags");
        }
    }
    Ok(0)
}

fn show(loaded: &Loaded, format: Format) -> anyhow::Result<String> {
    let v = masked_json(loaded)?;
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&v)?),
        Format::Yaml => serde_yaml::to_string(&v)?,
    })
}

/// Every leaf key with its value and where it came from; policy snippets listed with their file:line.
fn show_origin(loaded: &Loaded, format: Format) -> anyhow::Result<String> {
    let rows = origin_rows(loaded)?;
    Ok(match format {
        Format::Json => {
            let arr: Vec<Value> = rows
                .into_iter()
                .map(|(k, v, o)| serde_json::json!({ "key": k, "value": v, "origin": o }))
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&arr)?)
        }
        Format::Yaml => {
            let mut s = String::new();
            for (k, v, o) in rows {
                let val = serde_json::to_string(&v)?;
                s.push_str(&format!("{k} = {val}\n    from {o}\n"));
            }
            s
        }
    })
}
