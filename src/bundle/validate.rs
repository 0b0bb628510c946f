//! Checks a bundle before it is signed or installed: schema, name, and that every Lua snippet compiles.

use super::BundleError;
use crate::config::bundle_layer::{parse_verified, BundleFile};
use std::path::Path;

/// Parses `data` as a bundle (no signature check) and compiles each lint and rule with Luau, so that a
/// typo is caught by the person signing rather than by every shim in the fleet.
pub fn check(path: &Path, data: &[u8]) -> Result<BundleFile, BundleError> {
    let bundle = parse_verified(path, data, None, &[]).map_err(|e| BundleError::Invalid(e.to_string()))?;
    let lua = mlua::Lua::new();
    for (ci, cmd) in bundle.doc.process_config.commands.iter().enumerate() {
        let at = |what: String| {
            let key = format!("process_config.commands[{ci}].{what}");
            match bundle.lines.get(&key) {
                Some(l) => format!("{}:{l}: `{key}`", path.display()),
                None => format!("{}: `{key}`", path.display()),
            }
        };
        if cmd.command.trim().is_empty() {
            return Err(BundleError::Invalid(format!("{}: `command` is empty", at(String::new()))));
        }
        for (i, src) in cmd.lints.iter().enumerate() {
            compile(&lua, src).map_err(|m| {
                BundleError::Invalid(format!(
                    "{} ({} lint) does not compile: {m}",
                    at(format!("lints[{i}]")),
                    cmd.command
                ))
            })?;
        }
        for (i, r) in cmd.rules.iter().enumerate() {
            compile(&lua, &r.rule).map_err(|m| {
                BundleError::Invalid(format!(
                    "{} ({} rule) does not compile: {m}",
                    at(format!("rules[{i}].rule")),
                    cmd.command
                ))
            })?;
        }
    }
    Ok(bundle)
}

/// A snippet is either a single expression (evaluated as `return <expr>`) or a chunk (DESIGN.md §4).
fn compile(lua: &mlua::Lua, src: &str) -> Result<(), String> {
    if lua.load(format!("return {src}")).into_function().is_ok() {
        return Ok(());
    }
    lua.load(src).set_name("snippet").into_function().map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_compile_or_name_their_place() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("expression rule", "rule: has_arg('--force')", None),
            ("boolean rule", "rule: true", None),
            ("chunk rule", "rule: |\n            if executable == 'kubectl' then return true, 'u', 'a' end\n            return false", None),
            ("broken rule", "rule: 'if then'", Some("commands[0].rules[0].rule")),
        ];
        for (name, rule, want) in cases {
            let yaml = format!(
                "name: t\nrevision: 1\nprocess_config:\n  commands:\n    - command: kubectl\n      rules:\n        - {rule}\n          actions: [approval]\n"
            );
            let got = check(Path::new("b.yaml"), yaml.as_bytes());
            match want {
                None => assert!(got.is_ok(), "{name}: {:?}", got.err()),
                Some(w) => {
                    let e = got.err().unwrap_or_else(|| panic!("{name}: accepted")).to_string();
                    assert!(e.contains(w) && e.contains("b.yaml:7"), "{name}: {e}");
                }
            }
        }
    }

    #[test]
    fn broken_lint_and_bad_name_and_unknown_key_are_refused() {
        let lint = "name: t\nrevision: 1\nprocess_config:\n  commands:\n    - command: kubectl\n      lints: ['return (']\n";
        assert!(check(Path::new("b.yaml"), lint.as_bytes()).unwrap_err().to_string().contains("lints[0]"));
        let name = "name: ../etc\nrevision: 1\n";
        assert!(check(Path::new("b.yaml"), name.as_bytes()).unwrap_err().to_string().contains("key `name`"));
        let unknown = "name: t\nrevision: 1\nrevisoin: 2\n";
        assert!(check(Path::new("b.yaml"), unknown.as_bytes()).unwrap_err().to_string().contains("revisoin"));
        let neg = "name: t\nrevision: -1\n";
        assert!(check(Path::new("b.yaml"), neg.as_bytes()).is_err());
    }
}
