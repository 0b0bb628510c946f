//! How the CLI styles what it prints: colour only on a terminal, never with `NO_COLOR`, always with
//! `CLICOLOR_FORCE` (anstream decides; the escape codes are stripped wherever colour is off).

use anstyle::{AnsiColor, Style};
use anyhow::Context;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

/// The `ddcoterm:` prefix of an error line.
const ERROR: Style = AnsiColor::Red.on_default().bold();
/// A heading (the first row of a table).
pub const HEADER: Style = Style::new().bold();

/// Prints `ddcoterm: MSG` on stderr, the prefix in red where colour is on.
pub fn report_error(msg: &str) {
    let mut err = anstream::stderr().lock();
    let _ = writeln!(err, "{ERROR}ddcoterm:{ERROR:#} {msg}");
}

/// `text` in `style`, for [`anstream::println!`] (which strips it where colour is off).
pub fn styled(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// A list as a table for people: a header row and one row per item, columns aligned, no borders (easy to
/// read and to `grep`). Scripts use `--format json` instead.
pub fn table<R: IntoIterator<Item = String>>(headers: &[&str], rows: impl IntoIterator<Item = R>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    t.lines().map(|l| l.trim_end().to_string()).collect::<Vec<_>>().join("\n")
}

/// A size in bytes as people read it: `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// A progress bar on stderr counting `unit` (`records`), with room for a message (`(retrying: ...)`).
pub fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

/// Asks on the terminal; a secret is read with echo off.
pub fn prompt(tty: &mut File, question: &str, secret: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    tty.write_all(question.as_bytes())?;
    tty.flush()?;
    let saved = if secret { tcgetattr(tty.as_fd()).ok() } else { None };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(tty.as_fd(), SetArg::TCSANOW, &quiet)?;
    }
    // Byte by byte: nothing typed ahead for the next question is swallowed by a buffer.
    let mut buf = Vec::new();
    let read = (|| -> std::io::Result<()> {
        let mut b = [0u8; 1];
        while (&*tty).read(&mut b)? == 1 && b[0] != b'\n' {
            buf.push(b[0]);
        }
        Ok(())
    })();
    let line = String::from_utf8_lossy(&buf).into_owned();
    if let Some(t) = &saved {
        let _ = tcsetattr(tty.as_fd(), SetArg::TCSANOW, t);
        let _ = tty.write_all(b"\n");
    }
    read.context("reading from /dev/tty")?;
    Ok(line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(64 * 1024 * 1024), "64.0 MiB");
    }

    #[test]
    fn tables_align_columns_under_their_headers() {
        let t = table(
            &["NAME", "SIZE"],
            [vec!["a".to_string(), "1 B".to_string()], vec!["long-name".into(), "2 B".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        let col = lines[0].find("SIZE").unwrap();
        assert_eq!(lines[2].find("2 B"), Some(col), "{t}");
    }
}
