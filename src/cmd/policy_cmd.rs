//! `ddcoterm policy test FILE`: runs a YAML table of invocations against policy files (or the effective
//! configuration) and reports PASS/FAIL per case.

use crate::cli::{GlobalArgs, PolicyCommand};
use crate::error::Exit;
use crate::policy::test_table::{compare, load_files, parse_table, run_case};
use crate::policy::PolicyEngine;
use std::path::{Path, PathBuf};

pub fn run(g: &GlobalArgs, c: PolicyCommand) -> anyhow::Result<i32> {
    match c {
        PolicyCommand::Test { file, configs } => test(g, &file, &configs),
    }
}

fn test(g: &GlobalArgs, file: &Path, configs: &[PathBuf]) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Exit::data(format!("{}: cannot read the test file: {e}", file.display())))?;
    let table = parse_table(file, &text)?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };

    let files: Vec<PathBuf> = if !table.config.is_empty() {
        table.config.iter().map(|p| base.join(p)).collect()
    } else {
        configs.to_vec()
    };
    let (policy, settings) = if files.is_empty() {
        let loaded = crate::cmd::context::load(g)?;
        (loaded.policy, loaded.settings.policy)
    } else {
        load_files(&files)?
    };
    let engine = PolicyEngine::from_settings(&policy, &settings)?;
    for e in engine.validate_all() {
        eprintln!("ddcoterm: warning: {e}");
    }

    let (mut passed, mut failed) = (0usize, 0usize);
    for case in &table.cases {
        let d = run_case(&engine, &table, case, &base)?;
        let problems = compare(&case.expect, &d);
        if problems.is_empty() {
            passed += 1;
            println!("PASS {}", case.name);
        } else {
            failed += 1;
            println!("FAIL {}: {}", case.name, problems.join("; "));
            for e in &d.errors {
                println!("     rule error: {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}
