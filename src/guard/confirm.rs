//! The confirm step: shows lint warnings and asks one `Do you want to continue? (y/n)` on the terminal
//! (`/dev/tty`), never on stdin, which may be the guarded command's input.

use crate::config::settings::NonInteractive;
use crate::config::Loaded;
use crate::error::Exit;
use crate::policy::{Decision, LintWarning};
use std::io::{BufRead, BufReader, Write};

/// Confirms the decision's lint warnings (if any), then shows the rule's message to the user. `Err` (exit 1)
/// when the user answers no, or when there is no terminal to ask on and nothing allows going on.
pub fn accept(decision: &Decision, name: &str, yes: bool, loaded: &Loaded) -> anyhow::Result<()> {
    if !decision.warnings.is_empty()
        && !confirm(&decision.warnings, yes, loaded.settings.lints.non_interactive)?
    {
        return Err(
            Exit::refused(format!("`{name}` not run: you answered no to the warning(s) above")).into()
        );
    }
    if let Some(m) = &decision.user_message {
        eprintln!("ddcoterm: {m}");
    }
    Ok(())
}

/// Prints every warning and asks once. `Ok(true)`: go on; `Ok(false)`: the user declined. With no terminal,
/// `yes` or `lints.non_interactive: allow` print the warnings and go on; otherwise it is an error (exit 1).
pub fn confirm(warnings: &[LintWarning], yes: bool, non_interactive: NonInteractive) -> anyhow::Result<bool> {
    if warnings.is_empty() {
        return Ok(true);
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
        Ok(tty) => {
            let reader = BufReader::new(tty.try_clone()?);
            confirm_on(warnings, yes, non_interactive, Some((reader, tty)), &mut std::io::stderr())
        }
        Err(_) => confirm_on(
            warnings,
            yes,
            non_interactive,
            None::<(std::io::Empty, std::io::Sink)>,
            &mut std::io::stderr(),
        ),
    }
}

/// One warning as shown to the user.
pub fn render(w: &LintWarning) -> String {
    if w.failed {
        format!("Warning from CoTerm: lint {} failed, treat its check as not done: {}", w.at, w.message)
    } else {
        format!("Warning from CoTerm: {}", w.message)
    }
}

/// [`confirm`] with the terminal injected (tests drive it with buffers).
pub fn confirm_on<R: BufRead, W: Write>(
    warnings: &[LintWarning],
    yes: bool,
    non_interactive: NonInteractive,
    tty: Option<(R, W)>,
    stderr: &mut dyn Write,
) -> anyhow::Result<bool> {
    if warnings.is_empty() {
        return Ok(true);
    }
    match tty {
        Some((mut input, mut out)) => {
            for w in warnings {
                writeln!(out, "{}", render(w))?;
            }
            if yes {
                writeln!(out, "Continuing (--yes).")?;
                return Ok(true);
            }
            write!(out, "Do you want to continue? (y/n) ")?;
            out.flush()?;
            let mut answer = String::new();
            input.read_line(&mut answer)?;
            let a = answer.trim().to_ascii_lowercase();
            Ok(a == "y" || a == "yes")
        }
        None => {
            for w in warnings {
                writeln!(stderr, "{}", render(w))?;
            }
            if yes || non_interactive == NonInteractive::Allow {
                return Ok(true);
            }
            Err(Exit::refused(
                "lint warnings need confirmation but there is no terminal; re-run with --yes or set lints.non_interactive: allow",
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SnippetKind, SnippetRef};
    use crate::model::Origin;

    fn w(msg: &str, failed: bool) -> LintWarning {
        LintWarning {
            at: SnippetRef {
                command: "kubectl".into(),
                kind: SnippetKind::Lint,
                index: 0,
                origin: Origin::new("user", "/c.yaml", Some(4)),
            },
            message: msg.into(),
            failed,
        }
    }

    fn ask(
        ws: &[LintWarning],
        yes: bool,
        ni: NonInteractive,
        answer: Option<&str>,
    ) -> (anyhow::Result<bool>, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let r = confirm_on(ws, yes, ni, answer.map(|a| (a.as_bytes(), &mut out)), &mut err);
        let mut text = String::from_utf8(out).unwrap();
        text.push_str(&String::from_utf8(err).unwrap());
        (r, text)
    }

    /// (name, --yes, non_interactive, terminal answer or no terminal, Ok(continue) or None for an error)
    type Row = (&'static str, bool, NonInteractive, Option<&'static str>, Option<bool>);

    #[test]
    fn table() {
        let two = [w("No kubectl context specified", false), w("boom", true)];
        let cases: &[Row] = &[
            ("y continues", false, NonInteractive::Deny, Some("y\n"), Some(true)),
            ("YES continues", false, NonInteractive::Deny, Some(" YES \n"), Some(true)),
            ("n stops", false, NonInteractive::Deny, Some("n\n"), Some(false)),
            ("anything else stops", false, NonInteractive::Deny, Some("sure\n"), Some(false)),
            ("EOF stops", false, NonInteractive::Deny, Some(""), Some(false)),
            ("--yes with a tty does not ask", true, NonInteractive::Deny, Some(""), Some(true)),
            ("no tty + deny is an error", false, NonInteractive::Deny, None, None),
            ("no tty + allow continues", false, NonInteractive::Allow, None, Some(true)),
            ("no tty + --yes continues", true, NonInteractive::Deny, None, Some(true)),
        ];
        for (name, yes, ni, answer, want) in cases {
            let (r, text) = ask(&two, *yes, *ni, *answer);
            assert!(text.contains("Warning from CoTerm: No kubectl context specified"), "{name}: {text}");
            assert!(text.contains("lint kubectl lints[0] at /c.yaml:4 (user) failed"), "{name}: {text}");
            let asked = text.contains("Do you want to continue? (y/n)");
            assert_eq!(asked, answer.is_some() && !yes, "{name}: {text}");
            assert!(text.matches("Do you want to continue").count() <= 1, "{name}: asked once");
            match (r, want) {
                (Ok(got), Some(w)) => assert_eq!(got, *w, "{name}"),
                (Err(e), None) => {
                    assert!(e.to_string().contains("re-run with --yes"), "{name}: {e}");
                    assert_eq!(crate::error::exit_code(&e), 1, "{name}");
                }
                (r, w) => panic!("{name}: got {r:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn no_warnings_no_output() {
        let (r, text) = ask(&[], false, NonInteractive::Deny, None);
        assert!(r.unwrap());
        assert!(text.is_empty());
    }
}
