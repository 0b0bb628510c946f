//! Interactive replay: the timeline (speed, idle cap), the keys (pause, step, speed, seek, quit) and seeking
//! through a virtual terminal. Every byte written goes through [`SafeFilter`]. The terminal is injected as a
//! [`Console`] (keys and a clock), so tests drive it with a script and a virtual clock.

use super::player::Event;
use super::termfilter::SafeFilter;
use std::io::{self, Write};
use std::time::Duration;

/// How far left/right jump, in recording seconds.
pub const SEEK_STEP: f64 = 5.0;
/// Speed bounds for `+`/`-` (each press doubles or halves).
pub const MIN_SPEED: f64 = 1.0 / 16.0;
pub const MAX_SPEED: f64 = 64.0;

/// A key that means something while playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// space: pause / resume.
    Toggle,
    /// `.`: one event, when paused.
    Step,
    /// `+`: twice as fast.
    Faster,
    /// `-`: half as fast.
    Slower,
    /// right arrow: 5 s on.
    Forward,
    /// left arrow: 5 s back.
    Back,
    /// `q`, Ctrl-C, Ctrl-D.
    Quit,
}

/// Turns the bytes a terminal sends into [`Key`]s; an arrow key split across two reads is kept whole.
#[derive(Debug, Default)]
pub struct KeyParser {
    pending: Vec<u8>,
}

impl KeyParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut i = 0;
        let p = &self.pending;
        while i < p.len() {
            match p[i] {
                0x1b => {
                    // ESC [ C / ESC O C (application cursor mode) and D; a lone ESC is ignored.
                    if i + 1 >= p.len() || (matches!(p[i + 1], b'[' | b'O') && i + 2 >= p.len()) {
                        break;
                    }
                    if matches!(p[i + 1], b'[' | b'O') {
                        match p[i + 2] {
                            b'C' => keys.push(Key::Forward),
                            b'D' => keys.push(Key::Back),
                            _ => {}
                        }
                        i += 3;
                    } else {
                        i += 1;
                    }
                    continue;
                }
                b' ' => keys.push(Key::Toggle),
                b'.' => keys.push(Key::Step),
                b'+' | b'=' => keys.push(Key::Faster),
                b'-' | b'_' => keys.push(Key::Slower),
                b'l' => keys.push(Key::Forward),
                b'h' => keys.push(Key::Back),
                b'q' | b'Q' | 0x03 | 0x04 => keys.push(Key::Quit),
                _ => {}
            }
            i += 1;
        }
        self.pending.drain(..i);
        keys
    }
}

/// What waiting on the console gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Keys(Vec<u8>),
    /// The deadline passed.
    Timeout,
    /// No more keys will come (stdin at EOF) and nothing to wait for; or a signal asked us to stop.
    Closed,
}

/// The viewer's side: a monotonic clock and the keyboard.
pub trait Console {
    /// Time since an arbitrary start.
    fn now(&self) -> Duration;
    /// Waits for keys until `deadline` (on [`Console::now`]'s clock; `None`: until a key). Once the keyboard
    /// is gone it sleeps until the deadline and returns `Timeout`, or `Closed` without a deadline.
    fn wait(&mut self, deadline: Option<Duration>) -> io::Result<Input>;
}

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The last event was played.
    End,
    /// The viewer quit (or a signal stopped it).
    Quit,
}

/// Playback options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub speed: f64,
    /// Longest pause between two events, in recording seconds.
    pub idle_limit: Option<f64>,
    /// The recording's terminal size (for seeking).
    pub cols: u16,
    pub rows: u16,
}

/// Plays `events` to `out` in real time under the viewer's keys. The terminal is restored (main screen,
/// modes the recording set) on every return, [`Ended::Quit`] included.
pub fn run(
    events: &[Event],
    opts: Options,
    console: &mut dyn Console,
    out: &mut dyn Write,
) -> io::Result<Ended> {
    let mut p = Playback::new(events, opts);
    let res = p.run(console, out);
    let restore = p.filter.restore();
    out.write_all(restore.as_bytes())?;
    out.flush()?;
    res
}

/// Effective times (idle capped) of the `o` and `r` events.
fn timeline(events: &[Event], idle_limit: Option<f64>) -> Vec<(f64, &Event)> {
    let mut prev = 0.0;
    let mut at = 0.0;
    events
        .iter()
        .filter(|e| e.code == "o" || e.code == "r")
        .map(|e| {
            let mut gap = (e.time - prev).max(0.0);
            prev = e.time.max(prev);
            if let Some(l) = idle_limit {
                gap = gap.min(l);
            }
            at += gap;
            (at, e)
        })
        .collect()
}

struct Playback<'a> {
    line: Vec<(f64, &'a Event)>,
    next: usize,
    speed: f64,
    paused: bool,
    /// Recording position at `anchor_wall`.
    anchor_pos: f64,
    anchor_wall: Duration,
    filter: SafeFilter,
    opts: Options,
    buf: String,
}

impl<'a> Playback<'a> {
    fn new(events: &'a [Event], opts: Options) -> Playback<'a> {
        Playback {
            line: timeline(events, opts.idle_limit),
            next: 0,
            speed: opts.speed.clamp(MIN_SPEED, MAX_SPEED),
            paused: false,
            anchor_pos: 0.0,
            anchor_wall: Duration::ZERO,
            filter: SafeFilter::new(),
            opts,
            buf: String::new(),
        }
    }

    fn pos(&self, now: Duration) -> f64 {
        if self.paused {
            self.anchor_pos
        } else {
            self.anchor_pos + now.saturating_sub(self.anchor_wall).as_secs_f64() * self.speed
        }
    }

    fn end(&self) -> f64 {
        self.line.last().map_or(0.0, |l| l.0)
    }

    fn emit(&mut self, i: usize) {
        let ev = self.line[i].1;
        if ev.code == "o" {
            self.filter.push(&ev.data, &mut self.buf);
        }
    }

    fn flush(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if !self.buf.is_empty() {
            out.write_all(self.buf.as_bytes())?;
            self.buf.clear();
        }
        out.flush()
    }

    fn run(&mut self, console: &mut dyn Console, out: &mut dyn Write) -> io::Result<Ended> {
        let mut keys = KeyParser::default();
        self.anchor_wall = console.now();
        loop {
            let now = console.now();
            let pos = self.pos(now);
            // Everything due now goes out in one write.
            while !self.paused && self.next < self.line.len() && self.line[self.next].0 <= pos {
                self.emit(self.next);
                self.next += 1;
            }
            self.flush(out)?;
            if self.next >= self.line.len() {
                return Ok(Ended::End);
            }
            let deadline = (!self.paused).then(|| {
                let wait = (self.line[self.next].0 - pos).max(0.0) / self.speed;
                now + Duration::from_secs_f64(wait)
            });
            match console.wait(deadline)? {
                Input::Timeout => {}
                Input::Closed => return Ok(Ended::Quit),
                Input::Keys(bytes) => {
                    for k in keys.feed(&bytes) {
                        if self.key(k, console.now(), out)? == Some(Ended::Quit) {
                            return Ok(Ended::Quit);
                        }
                    }
                }
            }
        }
    }

    /// Applies one key at wall time `now`.
    fn key(&mut self, k: Key, now: Duration, out: &mut dyn Write) -> io::Result<Option<Ended>> {
        let pos = self.pos(now).min(self.line.get(self.next).map_or(f64::MAX, |l| l.0));
        match k {
            Key::Quit => return Ok(Some(Ended::Quit)),
            Key::Toggle => {
                self.paused = !self.paused;
                self.anchor_pos = pos;
                self.anchor_wall = now;
            }
            Key::Step if self.paused => {
                if self.next < self.line.len() {
                    self.emit(self.next);
                    self.anchor_pos = self.line[self.next].0;
                    self.next += 1;
                    self.flush(out)?;
                }
            }
            Key::Step => {}
            Key::Faster | Key::Slower => {
                self.anchor_pos = pos;
                self.anchor_wall = now;
                let s = if k == Key::Faster { self.speed * 2.0 } else { self.speed / 2.0 };
                self.speed = s.clamp(MIN_SPEED, MAX_SPEED);
            }
            Key::Forward | Key::Back => {
                let delta = if k == Key::Forward { SEEK_STEP } else { -SEEK_STEP };
                self.seek((pos + delta).clamp(0.0, self.end()), out)?;
                self.anchor_wall = now;
            }
        }
        Ok(None)
    }

    /// Shows the screen as it was at `target`: the events up to it are run through a virtual terminal (no
    /// delay, nothing written), then its screen is drawn at once. Back and forward alike, so a seek costs one
    /// screen of output whatever the recording's length.
    fn seek(&mut self, target: f64, out: &mut dyn Write) -> io::Result<()> {
        let (c, r) = (self.opts.cols.max(1) as usize, self.opts.rows.max(1) as usize);
        let mut vt = avt::Terminal::new(c, r).unwrap_or_else(|_| avt::Terminal::new(80, 24).expect("80x24"));
        let upto = self.line.partition_point(|l| l.0 <= target);
        for (_, ev) in &self.line[..upto] {
            match ev.code.as_str() {
                "o" => vt.feed(ev.data.as_str()),
                "r" => {
                    if let Some((w, h)) = ev.data.split_once('x') {
                        if let (Ok(w), Ok(h)) = (w.trim().parse::<usize>(), h.trim().parse::<usize>()) {
                            if w > 0 && h > 0 {
                                vt.resize(w, h);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // The filter's own reset, then a clear screen, then the screen as drawn (through the filter too).
        let restore = self.filter.restore();
        self.buf.push_str(&restore);
        self.buf.push_str("\x1b[0m\x1b[H\x1b[2J");
        self.filter.push(&vt.dump(), &mut self.buf);
        self.next = upto;
        self.anchor_pos = target;
        self.flush(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted viewer on a virtual clock: keys arrive at given times; waiting advances the clock.
    struct Script {
        now: Duration,
        keys: Vec<(Duration, &'static [u8])>,
        waits: Vec<Option<Duration>>,
    }

    impl Console for Script {
        fn now(&self) -> Duration {
            self.now
        }
        fn wait(&mut self, deadline: Option<Duration>) -> io::Result<Input> {
            self.waits.push(deadline);
            if let Some(&(at, k)) = self.keys.first() {
                if deadline.is_none_or(|d| at <= d) {
                    self.keys.remove(0);
                    self.now = self.now.max(at);
                    return Ok(Input::Keys(k.to_vec()));
                }
            }
            match deadline {
                Some(d) => {
                    self.now = self.now.max(d);
                    Ok(Input::Timeout)
                }
                None => Ok(Input::Closed),
            }
        }
    }

    fn ev(time: f64, data: &str) -> Event {
        Event { time, code: "o".into(), data: data.into() }
    }

    fn opts(speed: f64, idle: Option<f64>) -> Options {
        Options { speed, idle_limit: idle, cols: 20, rows: 3 }
    }

    fn script(keys: Vec<(f64, &'static [u8])>) -> Script {
        Script {
            now: Duration::ZERO,
            keys: keys.into_iter().map(|(t, k)| (Duration::from_secs_f64(t), k)).collect(),
            waits: Vec::new(),
        }
    }

    #[test]
    fn plays_in_time_with_speed_and_idle_cap() {
        let events = [ev(1.0, "a"), Event { time: 1.5, code: "i".into(), data: "x".into() }, ev(11.0, "b")];
        let mut s = script(vec![]);
        let mut out = Vec::new();
        assert_eq!(run(&events, opts(2.0, Some(2.0)), &mut s, &mut out).unwrap(), Ended::End);
        assert_eq!(out, b"ab");
        // a at 1 s / 2 = 0.5 s; b 2 s (capped) later / 2 = 1.5 s.
        assert_eq!(s.waits, vec![Some(Duration::from_millis(500)), Some(Duration::from_millis(1500))]);
    }

    #[test]
    fn pause_step_and_resume() {
        let events = [ev(1.0, "a"), ev(2.0, "b"), ev(3.0, "c"), ev(4.0, "d")];
        // Pause at 0.5 s, step (a), step (b), resume at 10 s: c follows 1 s after the resume.
        let mut s = script(vec![(0.5, b" "), (5.0, b"."), (6.0, b"."), (10.0, b" ")]);
        let mut out = Vec::new();
        assert_eq!(run(&events, opts(1.0, None), &mut s, &mut out).unwrap(), Ended::End);
        assert_eq!(out, b"abcd");
        assert_eq!(s.now, Duration::from_secs(12), "c at 11 s, d at 12 s");
    }

    #[test]
    fn speed_keys_double_and_halve() {
        let events = [ev(0.0, "a"), ev(8.0, "b")];
        // At 2 s (pos 2) press + twice: 6 s left at 4x = 1.5 s.
        let mut s = script(vec![(2.0, b"++")]);
        let mut out = Vec::new();
        run(&events, opts(1.0, None), &mut s, &mut out).unwrap();
        assert_eq!(s.now, Duration::from_secs_f64(3.5));
        let mut s = script(vec![(2.0, b"-")]);
        run(&events, opts(1.0, None), &mut s, &mut Vec::new()).unwrap();
        assert_eq!(s.now, Duration::from_secs(14), "6 s left at half speed");
    }

    #[test]
    fn seek_forward_draws_the_screen_at_once_and_back_replays_from_the_start() {
        let events = [ev(0.0, "one"), ev(3.0, "\r\ntwo"), ev(20.0, "\r\nthree")];
        // Right arrow at 1 s: position 6 s, screen shows one/two without waiting for 3 s.
        let mut s = script(vec![(1.0, b"\x1b[C"), (1.5, b"\x1bOD"), (2.0, b"q")]);
        let mut out = Vec::new();
        assert_eq!(run(&events, opts(1.0, None), &mut s, &mut out).unwrap(), Ended::Quit);
        let text = String::from_utf8(out).unwrap();
        let after_seek = text.split("\x1b[H\x1b[2J").nth(1).unwrap();
        assert!(after_seek.contains("one") && after_seek.contains("two"), "{after_seek:?}");
        // Back 5 s from 6.5 s is 1.5 s: "two" is gone again.
        let after_back = text.split("\x1b[H\x1b[2J").nth(2).unwrap();
        assert!(after_back.contains("one") && !after_back.contains("two"), "{after_back:?}");
        assert!(!text.contains("three"));
    }

    #[test]
    fn quit_and_ctrl_c_restore_the_terminal() {
        let events = [ev(0.0, "\x1b[?1049hvi"), ev(60.0, "never")];
        for k in [b"q".as_slice(), b"\x03"] {
            let mut s =
                Script { now: Duration::ZERO, keys: vec![(Duration::from_secs(1), leak(k))], waits: vec![] };
            let mut out = Vec::new();
            assert_eq!(run(&events, opts(1.0, None), &mut s, &mut out).unwrap(), Ended::Quit);
            let text = String::from_utf8(out).unwrap();
            assert!(text.ends_with("\x1b[?25h\x1b(B\x0f") && text.contains("\x1b[?1049l"), "{text:?}");
            assert!(!text.contains("never"));
        }
    }

    fn leak(b: &[u8]) -> &'static [u8] {
        Box::leak(b.to_vec().into_boxed_slice())
    }

    #[test]
    fn queries_never_reach_the_terminal() {
        let events = [ev(0.0, "a\x1b[6n\x1b]52;c;eA==\x07\x1b]0;t\x07"), ev(1.0, "\x1b[c\x1b[5nb")];
        let mut out = Vec::new();
        run(&events, opts(1.0, None), &mut script(vec![]), &mut out).unwrap();
        assert_eq!(out, b"ab");
    }

    #[test]
    fn keyboard_closed_while_paused_ends_the_replay() {
        let events = [ev(0.0, "a"), ev(5.0, "b")];
        let mut s = script(vec![(1.0, b" ")]);
        let mut out = Vec::new();
        assert_eq!(run(&events, opts(1.0, None), &mut s, &mut out).unwrap(), Ended::Quit);
        assert_eq!(out, b"a");
    }

    #[test]
    fn key_parser_keeps_split_arrows_whole() {
        let mut p = KeyParser::default();
        assert_eq!(p.feed(b" .\x1b"), vec![Key::Toggle, Key::Step]);
        assert_eq!(p.feed(b"["), vec![]);
        assert_eq!(p.feed(b"Cq+-"), vec![Key::Forward, Key::Quit, Key::Faster, Key::Slower]);
        assert_eq!(p.feed(b"\x1bOD\x1b[A\x04"), vec![Key::Back, Key::Quit]);
    }
}
