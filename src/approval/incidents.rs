//! Lets the user pick the active incident to link (none, one, or one of several) on the terminal.

use super::api::Incident;
use std::io::{self, BufRead, Write};

/// Asks on `out`/`input` which incident to link; returns its index. No incidents: no question, `None`.
/// One: a y/n question. Several: a numbered menu with `0` for none; three bad answers mean none.
pub fn pick(
    incidents: &[Incident],
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> io::Result<Option<usize>> {
    match incidents.len() {
        0 => Ok(None),
        1 => {
            write!(
                out,
                "You are a responder on incident {}. Link it to this run? (y/n) ",
                incidents[0].label()
            )?;
            out.flush()?;
            let mut line = String::new();
            input.read_line(&mut line)?;
            Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes").then_some(0))
        }
        n => {
            writeln!(out, "You are a responder on {n} active incidents:")?;
            for (i, inc) in incidents.iter().enumerate() {
                writeln!(out, "  {}) {}", i + 1, inc.label())?;
            }
            writeln!(out, "  0) none")?;
            for _ in 0..3 {
                write!(out, "Link which incident to this run? [0-{n}] ")?;
                out.flush()?;
                let mut line = String::new();
                if input.read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                match line.trim().parse::<usize>() {
                    Ok(0) => return Ok(None),
                    Ok(i) if i <= n => return Ok(Some(i - 1)),
                    _ => writeln!(out, "Please answer with a number from 0 to {n}.")?,
                }
            }
            Ok(None)
        }
    }
}

/// Asks on `/dev/tty` (the guarded command's stdin may be a pipe). `Ok(None)` when there is no terminal.
pub fn pick_on_tty(incidents: &[Incident]) -> io::Result<Option<Option<usize>>> {
    if incidents.is_empty() {
        return Ok(Some(None));
    }
    let Ok(tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") else {
        return Ok(None);
    };
    let mut out = tty.try_clone()?;
    let mut input = io::BufReader::new(tty);
    pick(incidents, &mut input, &mut out).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(n: u64) -> Incident {
        Incident {
            id: format!("uuid-{n}"),
            public_id: Some(n),
            title: format!("outage {n}"),
            severity: Some("SEV-2".into()),
            responders: Vec::new(),
        }
    }

    fn ask(list: &[Incident], answers: &str) -> (Option<usize>, String) {
        let mut out = Vec::new();
        let got = pick(list, &mut answers.as_bytes(), &mut out).unwrap();
        (got, String::from_utf8(out).unwrap())
    }

    #[test]
    fn table_of_answers() {
        let one = [inc(7)];
        let three = [inc(1), inc(2), inc(3)];
        let cases: [(&str, &[Incident], &str, Option<usize>); 8] = [
            ("none to pick: no question", &[], "", None),
            ("one, yes", &one, "y\n", Some(0)),
            ("one, YES", &one, "YES\n", Some(0)),
            ("one, no", &one, "n\n", None),
            ("several, pick 2", &three, "2\n", Some(1)),
            ("several, 0 is none", &three, "0\n", None),
            ("several, bad then good", &three, "9\nx\n3\n", Some(2)),
            ("several, end of input", &three, "", None),
        ];
        for (name, list, answers, want) in cases {
            let (got, _) = ask(list, answers);
            assert_eq!(got, want, "{name}");
        }
        let (_, text) = ask(&three, "0\n");
        assert!(text.contains("1) #1 (SEV-2) outage 1") && text.contains("0) none"), "{text}");
        let (_, text) = ask(&[], "");
        assert!(text.is_empty());
    }
}
