//! The marked, idempotent PATH block that puts a shim directory first, in shell rc files or profile.d.

use std::path::Path;

const BEGIN: &str = "# >>> ddcoterm shims >>>";
const END: &str = "# <<< ddcoterm shims <<<";

/// The block for `dir`: prepends it unless already first, so a re-sourced rc does not grow PATH.
pub fn block(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "{BEGIN}\n# Managed by `ddcoterm shim create`; remove with `ddcoterm shim remove`.\ncase \":$PATH:\" in\n  \":{d}:\"*) ;;\n  *) PATH=\"{d}:$PATH\"; export PATH ;;\nesac\n{END}\n"
    )
}

/// `text` with the block for `dir` present exactly once (replacing an older one in place).
pub fn upsert(text: &str, dir: &Path) -> String {
    let new = block(dir);
    match find(text) {
        Some((s, e)) => format!("{}{}{}", &text[..s], new, &text[e..]),
        None if text.is_empty() || text.ends_with('\n') => format!("{text}{new}"),
        None => format!("{text}\n{new}"),
    }
}

/// `text` without the block.
pub fn remove(text: &str) -> String {
    match find(text) {
        Some((s, e)) => format!("{}{}", &text[..s], &text[e..]),
        None => text.to_string(),
    }
}

/// True when the file holds a block.
pub fn present(text: &str) -> bool {
    find(text).is_some()
}

fn find(text: &str) -> Option<(usize, usize)> {
    let s = text.find(BEGIN)?;
    let e = text[s..].find(END)? + s + END.len();
    let e = if text[e..].starts_with('\n') { e + 1 } else { e };
    Some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_is_idempotent_and_keeps_user_lines() {
        let d = Path::new("/home/u/.ddcoterm/overrides");
        let once = upsert("alias k=kubectl", d);
        let twice = upsert(&once, d);
        assert_eq!(once, twice);
        assert!(once.starts_with("alias k=kubectl\n# >>> ddcoterm shims >>>"));
        assert_eq!(remove(&once), "alias k=kubectl\n");
        assert!(!present(&remove(&once)));
    }

    #[test]
    fn block_puts_dir_first_once() {
        let t = tempfile::tempdir().unwrap();
        let rc = t.path().join("rc");
        std::fs::write(&rc, block(Path::new("/opt/shims"))).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {0}; . {0}; printf %s \"$PATH\"", rc.display()))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/opt/shims:/usr/bin:/bin");
    }
}
