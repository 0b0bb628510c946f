//! Makes recorded output safe to replay on the viewer's own terminal: a pure, streaming filter that passes
//! text and screen-drawing sequences and removes every sequence that would make the terminal answer (its
//! answer would land in the viewer's shell as typed input: `2RR84: command not found`) or act beyond the
//! screen (clipboard, title, hyperlinks, notifications, input modes, reports).
//!
//! It is an allow-list over ECMA-48's grammar, not a deny-list of known queries: a CSI sequence passes only when
//! its final byte, prefix and intermediates are among the drawing ones below (and `SM`/`RM` only with the
//! modes listed); every OSC, DCS, APC, PM and SOS string, every 8-bit C1 control and every C0 control other
//! than BEL, BS, HT, LF, VT, FF, CR, SO and SI is removed. State is kept between calls, so a sequence split
//! across chunks (events) is judged whole; an unfinished one at the end is dropped.

/// Longest CSI sequence kept to judge; a longer one (no drawing sequence is) is dropped whole.
const MAX_CSI: usize = 256;

/// CSI finals with no prefix and no intermediates that only draw (cursor moves, erase, insert/delete,
/// scroll, SGR, margins, save/restore cursor, tab stops). `SM`/`RM` (`h`/`l`) are judged by their modes.
const PLAIN_FINALS: &str = "@ABCDEFGHIJKLMPSTXZ`abdefgmrsu";

/// ANSI modes `CSI Pm h/l` may set: insert mode only (`12` SRM would turn local echo on, `20` LNM changes
/// what Enter sends).
const ANSI_MODES: &[u32] = &[4];

/// DEC private modes `CSI ? Pm h/l` may set: reverse video, origin, autowrap, cursor blink and visibility,
/// the alternate screen, synchronized output. Mouse and focus reporting, bracketed paste and application
/// cursor keys are not among them: they change what the viewer's keyboard and mouse send to their shell.
const DEC_MODES: &[u32] = &[5, 6, 7, 12, 25, 47, 1047, 1048, 1049, 2026];

/// Modes that switch to the alternate screen (restored by [`SafeFilter::restore`]).
const ALT_SCREEN: &[u32] = &[47, 1047, 1049];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and an intermediate (`ESC (`, `ESC #`): one final byte follows. `bool`: keep it.
    EscFinal(char, bool),
    /// Inside `CSI ...`, collected in `seq`.
    Csi,
    /// Inside a control string (OSC, DCS, APC, PM, SOS): dropped up to its terminator.
    Str,
    /// ESC inside a control string: `\` ends it, anything else starts a new escape.
    StrEsc,
}

/// The filter; one per replay (or per independent stream).
#[derive(Debug, Clone)]
pub struct SafeFilter {
    state: State,
    seq: String,
    overflow: bool,
    alt_screen: bool,
    touched: bool,
}

impl Default for SafeFilter {
    fn default() -> Self {
        SafeFilter::new()
    }
}

impl SafeFilter {
    pub fn new() -> SafeFilter {
        SafeFilter {
            state: State::Ground,
            seq: String::new(),
            overflow: false,
            alt_screen: false,
            touched: false,
        }
    }

    /// Appends the safe part of `input` to `out`.
    pub fn push(&mut self, input: &str, out: &mut String) {
        // Plain text (no controls at all) is the common case: copy it at once.
        if self.state == State::Ground && !input.chars().any(is_control) {
            out.push_str(input);
            return;
        }
        for c in input.chars() {
            self.step(c, out);
        }
    }

    /// Convenience for one whole string.
    pub fn filter_str(input: &str) -> String {
        let mut out = String::with_capacity(input.len());
        SafeFilter::new().push(input, &mut out);
        out
    }

    /// What to write when the replay ends or jumps, so that the viewer's terminal is left as a shell expects
    /// it: main screen, no scroll region (cursor kept), default colours, insert/origin off, autowrap on,
    /// cursor shown, ASCII character set. Empty when no sequence passed at all. Resets the filter.
    pub fn restore(&mut self) -> String {
        let mut s = String::new();
        if self.touched {
            if self.alt_screen {
                s.push_str("\x1b[?1049l");
            }
            s.push_str("\x1b7\x1b[r\x1b8\x1b[0m\x1b[4l\x1b[?6l\x1b[?7h\x1b[?25h\x1b(B\x0f");
        }
        *self = SafeFilter::new();
        s
    }

    fn step(&mut self, c: char, out: &mut String) {
        match self.state {
            State::Ground => self.ground(c, out),
            State::Esc => self.esc(c, out),
            State::EscFinal(i, keep) => {
                if ('\u{30}'..='\u{7e}').contains(&c) {
                    if keep {
                        out.push('\x1b');
                        out.push(i);
                        out.push(c);
                        self.touched = true;
                    }
                    self.state = State::Ground;
                } else if ('\u{20}'..='\u{2f}').contains(&c) {
                    // A second intermediate: nothing we pass has one.
                    self.state = State::EscFinal(i, false);
                } else {
                    self.state = State::Ground;
                    self.abort_with(c, out);
                }
            }
            State::Csi => self.csi(c, out),
            State::Str => match c {
                '\x07' | '\u{9c}' | '\x18' | '\x1a' => self.state = State::Ground,
                '\x1b' => self.state = State::StrEsc,
                _ => {}
            },
            State::StrEsc => {
                if c == '\\' {
                    self.state = State::Ground;
                } else {
                    self.state = State::Esc;
                    self.esc(c, out);
                }
            }
        }
    }

    /// A character that interrupts a sequence: ESC starts a new one, CAN/SUB only cancel, anything else is
    /// handled as in the ground state.
    fn abort_with(&mut self, c: char, out: &mut String) {
        match c {
            '\x18' | '\x1a' => self.state = State::Ground,
            _ => self.ground(c, out),
        }
    }

    fn ground(&mut self, c: char, out: &mut String) {
        match c {
            '\x1b' => self.state = State::Esc,
            '\u{9b}' => self.start_csi(),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = State::Str,
            '\x07' | '\x08' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x0e' | '\x0f' => out.push(c),
            c if is_control(c) => {} // ENQ (answerback), other C0, DEL, the other C1 controls (DECID...)
            c => out.push(c),
        }
    }

    fn esc(&mut self, c: char, out: &mut String) {
        self.state = State::Ground;
        match c {
            '[' => self.start_csi(),
            ']' | 'P' | 'X' | '^' | '_' | 'k' => self.state = State::Str,
            '7' | '8' | 'D' | 'E' | 'M' | 'H' | 'c' => {
                out.push('\x1b');
                out.push(c);
                self.touched = true;
            }
            // Character sets (G0-G3) and line attributes / screen alignment.
            '(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' => self.state = State::EscFinal(c, true),
            // ` F`/` G` switch 7/8-bit answers, `%` leaves UTF-8: consumed, not passed.
            ' ' | '%' | '!' | '"' | '$' | '&' | '\'' | ',' => self.state = State::EscFinal(c, false),
            '\x1b' => self.state = State::Esc,
            c if is_control(c) => self.abort_with(c, out),
            // DECID (`ESC Z`) answers; keypad modes (`ESC =`, `ESC >`) change what keys send; the rest is
            // nothing a replay needs.
            _ => {}
        }
    }

    fn start_csi(&mut self) {
        self.state = State::Csi;
        self.seq.clear();
        self.overflow = false;
    }

    fn csi(&mut self, c: char, out: &mut String) {
        match c {
            '\u{40}'..='\u{7e}' => {
                self.state = State::Ground;
                if !self.overflow {
                    self.finish_csi(c, out);
                }
            }
            '\u{20}'..='\u{3f}' => {
                if self.seq.len() < MAX_CSI {
                    self.seq.push(c);
                } else {
                    self.overflow = true;
                }
            }
            '\x1b' => self.state = State::Esc,
            '\x18' | '\x1a' => self.state = State::Ground,
            // Terminals execute C0 controls met inside a sequence; do the same with the allowed ones.
            c if ('\0'..='\x1f').contains(&c) => self.ground(c, out),
            // Anything else (DEL, C1, non-ASCII) makes it malformed: dropped.
            _ => {
                self.state = State::Ground;
            }
        }
    }

    fn finish_csi(&mut self, fin: char, out: &mut String) {
        let seq = std::mem::take(&mut self.seq);
        let (prefix, rest) = match seq.chars().next() {
            Some(p @ ('<' | '=' | '>' | '?')) => (Some(p), &seq[1..]),
            _ => (None, seq.as_str()),
        };
        let split = rest.find(|c: char| ('\u{20}'..='\u{2f}').contains(&c)).unwrap_or(rest.len());
        let (params, inter) = rest.split_at(split);
        let malformed = params.contains(['<', '=', '>', '?'])
            || !inter.chars().all(|c| ('\u{20}'..='\u{2f}').contains(&c));
        if malformed {
            return;
        }
        let kept: Option<String> = match (prefix, inter, fin) {
            (None, "", 'h' | 'l') => self.modes(params, ANSI_MODES, "", fin),
            (Some('?'), "", 'h' | 'l') => self.modes(params, DEC_MODES, "?", fin),
            (None, "", f) if PLAIN_FINALS.contains(f) => Some(format!("\x1b[{params}{f}")),
            (Some('?'), "", 'J' | 'K') => Some(format!("\x1b[?{params}{fin}")),
            // Cursor style, soft reset, character protection.
            (None, " ", 'q') | (None, "!", 'p') | (None, "\"", 'q') => {
                Some(format!("\x1b[{params}{inter}{fin}"))
            }
            // Everything else: reports and queries (DSR `n`, DA `c`, DECRQM `$p`, XTVERSION `>q`, window
            // reports `t`, DECREQTPARM `x`, checksums `*y`, locator `'`...), keyboard/input modes (`>m`,
            // `>u`, `=u`), printing (`i`), LEDs.
            _ => None,
        };
        if let Some(s) = kept {
            out.push_str(&s);
            self.touched = true;
        }
    }

    /// `SM`/`RM` with only the `allowed` modes left; `None` when none is.
    fn modes(&mut self, params: &str, allowed: &[u32], prefix: &str, fin: char) -> Option<String> {
        let keep: Vec<&str> =
            params.split(';').filter(|p| p.parse::<u32>().is_ok_and(|m| allowed.contains(&m))).collect();
        if keep.is_empty() {
            return None;
        }
        if prefix == "?" && keep.iter().any(|p| p.parse::<u32>().is_ok_and(|m| ALT_SCREEN.contains(&m))) {
            self.alt_screen = fin == 'h';
        }
        Some(format!("\x1b[{prefix}{}{fin}", keep.join(";")))
    }
}

/// C0 controls, DEL and the C1 range.
fn is_control(c: char) -> bool {
    (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, input, what must come out). Every row is also fed split at every character boundary.
    const TABLE: &[(&str, &str, &str)] = &[
        // Removed: answers.
        ("DSR cursor position", "a\x1b[6nb", "ab"),
        ("DSR status", "a\x1b[5nb", "ab"),
        ("DSR private", "a\x1b[?6nb", "ab"),
        ("DA1", "a\x1b[cb", "ab"),
        ("DA1 with 0", "a\x1b[0cb", "ab"),
        ("DA2", "a\x1b[>cb", "ab"),
        ("DA3", "a\x1b[=cb", "ab"),
        ("DECRQM", "a\x1b[?2026$pb", "ab"),
        ("DECRQM ANSI", "a\x1b[4$pb", "ab"),
        ("XTVERSION", "a\x1b[>0qb", "ab"),
        ("window report", "a\x1b[18tb", "ab"),
        ("title report", "a\x1b[21tb", "ab"),
        ("DECREQTPARM", "a\x1b[1xb", "ab"),
        ("DECRQCRA", "a\x1b[1;1;1;1;1;1*yb", "ab"),
        ("kitty keyboard query", "a\x1b[?ub", "ab"),
        ("kitty keyboard push", "a\x1b[>1ub", "ab"),
        ("modifyOtherKeys", "a\x1b[>4;2mb", "ab"),
        ("DECID", "a\x1bZb", "ab"),
        ("ENQ answerback", "a\x05b", "ab"),
        ("8-bit DECID", "a\u{9a}b", "ab"),
        ("8-bit CSI DSR", "a\u{9b}6nb", "ab"),
        ("OSC 10 query BEL", "a\x1b]10;?\x07b", "ab"),
        ("OSC 11 query ST", "a\x1b]11;?\x1b\\b", "ab"),
        ("OSC 4 palette query", "a\x1b]4;1;?\x07b", "ab"),
        ("DECRQSS", "a\x1bP$qm\x1b\\b", "ab"),
        ("XTGETTCAP", "a\x1bP+q544e\x1b\\b", "ab"),
        ("8-bit DCS", "a\u{90}$qr\u{9c}b", "ab"),
        ("kitty graphics query", "a\x1b_Gi=1,a=q;\x1b\\b", "ab"),
        // Removed: acting.
        ("OSC 52 clipboard write", "a\x1b]52;c;ZXZpbA==\x07b", "ab"),
        ("OSC 52 clipboard read", "a\x1b]52;c;?\x1b\\b", "ab"),
        ("OSC 0 title", "a\x1b]0;pwned\x07b", "ab"),
        ("OSC 2 title", "a\x1b]2;pwned\x1b\\b", "ab"),
        ("OSC 1 icon", "a\x1b]1;x\x07b", "ab"),
        ("OSC 8 hyperlink keeps its text", "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("OSC 9 notification", "a\x1b]9;hi\x07b", "ab"),
        ("OSC 777 notification", "a\x1b]777;notify;t;b\x07b", "ab"),
        ("OSC 1337 file", "a\x1b]1337;File=inline=1:AAAA\x07b", "ab"),
        ("8-bit OSC", "a\u{9d}0;t\u{9c}b", "ab"),
        ("screen title", "a\x1bktitle\x1b\\b", "ab"),
        ("mouse tracking", "a\x1b[?1000hb", "ab"),
        ("mouse sgr", "a\x1b[?1006;1000hb", "ab"),
        ("focus events", "a\x1b[?1004hb", "ab"),
        ("bracketed paste", "a\x1b[?2004hb", "ab"),
        ("application cursor keys", "a\x1b[?1hb", "ab"),
        ("keypad application", "a\x1b=b\x1b>c", "abc"),
        ("local echo SRM", "a\x1b[12lb", "ab"),
        ("LNM", "a\x1b[20hb", "ab"),
        ("printer", "a\x1b[5ib", "ab"),
        ("8-bit answers switch", "a\x1b Gb", "ab"),
        ("leave UTF-8", "a\x1b%@b", "ab"),
        ("window resize", "a\x1b[8;100;300tb", "ab"),
        ("iconify", "a\x1b[2tb", "ab"),
        ("cancelled CSI", "a\x1b[6\x18nb", "anb"),
        ("ESC inside OSC starts over", "a\x1b]0;x\x1b[6nb", "ab"),
        ("mixed modes keep the drawing ones", "\x1b[?1049;1000h", "\x1b[?1049h"),
        // Passed unchanged: drawing.
        ("plain text", "hello, wörld ✓\r\n", "hello, wörld ✓\r\n"),
        ("tabs bell backspace", "a\tb\x07c\x08d", "a\tb\x07c\x08d"),
        ("SGR", "\x1b[1;31mred\x1b[0m", "\x1b[1;31mred\x1b[0m"),
        ("SGR truecolor colon", "\x1b[38:2::10:20:30mx", "\x1b[38:2::10:20:30mx"),
        (
            "cursor moves",
            "\x1b[H\x1b[2;5H\x1b[3A\x1b[B\x1b[10C\x1b[D\x1b[5G\x1b[7d",
            "\x1b[H\x1b[2;5H\x1b[3A\x1b[B\x1b[10C\x1b[D\x1b[5G\x1b[7d",
        ),
        ("erase", "\x1b[2J\x1b[3J\x1b[K\x1b[1K\x1b[?2K", "\x1b[2J\x1b[3J\x1b[K\x1b[1K\x1b[?2K"),
        (
            "insert delete scroll",
            "\x1b[2L\x1b[3M\x1b[4P\x1b[5@\x1b[2S\x1b[T\x1b[3X",
            "\x1b[2L\x1b[3M\x1b[4P\x1b[5@\x1b[2S\x1b[T\x1b[3X",
        ),
        ("scroll region", "\x1b[1;20r", "\x1b[1;20r"),
        (
            "alt screen and cursor",
            "\x1b[?1049h\x1b[?25l\x1b[?25h\x1b[?1049l",
            "\x1b[?1049h\x1b[?25l\x1b[?25h\x1b[?1049l",
        ),
        ("synchronized output", "\x1b[?2026h\x1b[?2026l", "\x1b[?2026h\x1b[?2026l"),
        ("insert mode", "\x1b[4h\x1b[4l", "\x1b[4h\x1b[4l"),
        ("save restore cursor", "\x1b7\x1b8\x1b[s\x1b[u", "\x1b7\x1b8\x1b[s\x1b[u"),
        ("index reverse index", "\x1bD\x1bM\x1bE", "\x1bD\x1bM\x1bE"),
        ("charsets", "\x1b(0lqk\x1b(B", "\x1b(0lqk\x1b(B"),
        ("DEC line drawing shift", "\x0eq\x0f", "\x0eq\x0f"),
        ("cursor style", "\x1b[2 q", "\x1b[2 q"),
        ("soft reset", "\x1b[!p", "\x1b[!p"),
        ("full reset", "\x1bc", "\x1bc"),
        ("8-bit CSI becomes 7-bit", "\u{9b}1m", "\x1b[1m"),
    ];

    #[test]
    fn table_whole_and_split_at_every_boundary() {
        for (name, input, want) in TABLE {
            assert_eq!(SafeFilter::filter_str(input), *want, "{name}: whole");
            let cuts: Vec<usize> = input.char_indices().map(|(i, _)| i).chain([input.len()]).collect();
            for &cut in &cuts {
                let mut f = SafeFilter::new();
                let mut out = String::new();
                f.push(&input[..cut], &mut out);
                f.push(&input[cut..], &mut out);
                assert_eq!(out, *want, "{name}: split at byte {cut}");
            }
            // One character per chunk, as a slow program's output would arrive.
            let mut f = SafeFilter::new();
            let mut out = String::new();
            for (i, c) in input.char_indices() {
                f.push(&input[i..i + c.len_utf8()], &mut out);
            }
            assert_eq!(out, *want, "{name}: one char per chunk");
        }
    }

    #[test]
    fn an_overlong_csi_is_dropped_whole() {
        let long = format!("a\x1b[{}mb", "1;".repeat(MAX_CSI));
        assert_eq!(SafeFilter::filter_str(&long), "ab");
    }

    #[test]
    fn an_unfinished_sequence_at_the_end_is_dropped_and_restore_resets() {
        let mut f = SafeFilter::new();
        let mut out = String::new();
        f.push("x\x1b[?1049h\x1b]52;c;", &mut out);
        assert_eq!(out, "x\x1b[?1049h");
        let r = f.restore();
        assert!(r.starts_with("\x1b[?1049l"), "{r:?}");
        // After a restore the filter starts clean: the OSC left open before is forgotten.
        f.push("y", &mut out);
        assert!(out.ends_with('y'));
        assert_eq!(SafeFilter::new().restore(), "", "nothing passed, nothing to restore");
    }

    #[test]
    fn nothing_left_can_make_a_terminal_answer() {
        // Everything at once: the concatenation of every removed row leaves only its plain text.
        let all: String = TABLE.iter().filter(|r| !r.2.contains('\x1b')).map(|r| r.1).collect();
        let out = SafeFilter::filter_str(&all);
        for bad in ["\x1b[6n", "\x1b[c", "\x1b]", "\x1bP", "\x1b_", "\x05", "\u{9b}", "\u{9d}", "\u{90}"] {
            assert!(!out.contains(bad), "{bad:?} survived in {out:?}");
        }
    }
}
