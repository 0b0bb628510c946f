//! Runs the child and relays its bytes: under a PTY when stdin and stdout are terminals, else through pipes
//! (byte-exact, stdin inherited so EOF is the caller's). The terminal, the outputs and the recording core are
//! parameters, so tests can drive it without a terminal.

use super::markers::MarkerScanner;
use super::pipeline::Pipeline;
use super::queue::OutQueue;
use super::tty::{self, SignalEvent};
use portable_pty::{CommandBuilder, PtySize};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After the child exits, output still in flight is read for at most this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// ...and reading stops earlier once nothing arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(200);
const READ_BUF: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// argv[0] in pipe mode (the PTY path shows the program path).
    pub arg0: OsString,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
}

/// How the child is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A PTY of this size; the real terminal is in raw mode.
    Pty { cols: u16, rows: u16 },
    /// stdout and stderr through pipes, stdin inherited.
    Pipes,
}

/// The caller's side: where the child's bytes are shown and where keystrokes come from.
pub struct Io {
    /// Keystrokes (PTY mode only).
    pub stdin: Option<Box<dyn Read + Send>>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT and follow SIGWINCH.
    pub signals: bool,
    /// Strip (and report) shell-integration markers.
    pub markers: bool,
}

enum Msg {
    /// Output is waiting in the queue.
    OutputReady,
    OutputEof,
    Input(Vec<u8>, Instant),
    InputEof,
    Signal(SignalEvent),
    Exited(i32),
}

/// The process status as a shell reports it: the exit code, or 128+signal.
pub fn status_code(status: std::process::ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// Runs `launch` to completion, feeding `pipeline`; returns the child's status (128+signal when killed).
/// An error means the child could not be started.
pub fn run(launch: &Launch, mode: Mode, io: Io, pipeline: &mut Pipeline) -> anyhow::Result<i32> {
    let (tx, rx) = sync_channel::<Msg>(64);
    let queue = Arc::new(OutQueue::new(pipeline.merge_bytes()));
    let Io { stdin, stdout, stderr, signals, markers } = io;
    // Caught before anything starts: a resize or Ctrl-C from now on is queued for the loop, never lost.
    let watch = if signals { Some(tty::SignalWatch::register()?) } else { None };
    match mode {
        Mode::Pty { cols, rows } => {
            let pair = portable_pty::native_pty_system()
                .openpty(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 })
                .map_err(|e| anyhow::anyhow!("opening a PTY: {e}"))?;
            let mut cmd = CommandBuilder::new(&launch.program);
            cmd.args(&launch.args);
            cmd.cwd(&launch.cwd);
            for (k, v) in &launch.env {
                cmd.env(k, v);
            }
            let child = pair
                .slave
                .spawn_command(cmd)
                // The I/O error stays in the chain: the exit status says not found (127) or not executable (126).
                .map_err(|e| e.context(format!("starting {}", launch.program.display())))?;
            drop(pair.slave);
            let master = pair.master;
            let pid = child.process_id().map(|p| p as i32).unwrap_or(0);
            drop(child); // reaped by the waiter below, which keeps the signal number
            let mut writer = master.take_writer()?;
            let reader = master.try_clone_reader()?;
            spawn_reader(reader, stdout, markers, queue.clone(), tx.clone(), "ddcoterm-pty-out")?;
            if let Some(stdin) = stdin {
                spawn_stdin(stdin, tx.clone())?;
            }
            spawn_waitpid(pid, tx.clone())?;
            if let Some(w) = watch {
                start_signals(w, tx.clone())?;
                // The size given to the PTY was read before the handlers were in place: a resize in between
                // sent no signal we saw, so compare once (a later one arrives as a signal).
                if let Some((c, r)) = tty::size().filter(|now| *now != (cols, rows)) {
                    let _ = tx.send(Msg::Signal(SignalEvent::Resize(c, r)));
                }
            }
            drop(tx);
            let echo_on = || master.get_termios().is_none_or(|t| t.local_flags.bits() & libc::ECHO != 0);
            let mut at_line_start = true;
            let code = event_loop(&rx, &queue, pid, pipeline, |ev| match ev {
                LoopIo::Input(data, at, p) => {
                    // Keystrokes go to the child first; the echo check is the PTY's state as they are sent.
                    let echo = echo_on();
                    if let Err(e) = writer.write_all(&data) {
                        tracing::debug!("writing to the PTY: {e}");
                    }
                    if echo {
                        p.input(&data, at);
                    }
                    at_line_start = data.last().is_none_or(|&b| b == b'\n' || b == b'\r');
                }
                LoopIo::InputEof => {
                    // End of keystrokes: ^D (twice when a partial line must be flushed first).
                    let eof: &[u8] = if at_line_start { b"\x04" } else { b"\x04\x04" };
                    let _ = writer.write_all(eof);
                }
                LoopIo::Resize(c, r) => {
                    let _ = master.resize(PtySize { rows: r, cols: c, pixel_width: 0, pixel_height: 0 });
                }
            });
            drop(writer);
            drop(master);
            Ok(code)
        }
        Mode::Pipes => {
            drop(stdin);
            let mut child = std::process::Command::new(&launch.program)
                .arg0(&launch.arg0)
                .args(&launch.args)
                .envs(launch.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&launch.cwd)
                .stdin(std::process::Stdio::inherit())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| {
                    anyhow::Error::new(e).context(format!("starting {}", launch.program.display()))
                })?;
            let pid = child.id() as i32;
            let out = child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>);
            let err = child.stderr.take().map(|o| Box::new(o) as Box<dyn Read + Send>);
            let (otx, etx) = (tx.clone(), tx.clone());
            // Two streams: the loop ends after both are done, so count stderr's EOF through stdout's reader.
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            if let Some(o) = out {
                let d = done_tx.clone();
                spawn_pipe_reader(o, stdout, markers, queue.clone(), otx, d, "ddcoterm-stdout")?;
            }
            if let Some(e) = err {
                spawn_pipe_reader(
                    e,
                    stderr,
                    markers,
                    queue.clone(),
                    etx,
                    done_tx.clone(),
                    "ddcoterm-stderr",
                )?;
            }
            drop(done_tx);
            let eof_tx = tx.clone();
            std::thread::Builder::new().name("ddcoterm-eof".into()).spawn(move || {
                while done_rx.recv().is_ok() {}
                let _ = eof_tx.send(Msg::OutputEof);
            })?;
            let wtx = tx.clone();
            std::thread::Builder::new().name("ddcoterm-wait".into()).spawn(move || {
                let code = child.wait().map(status_code).unwrap_or(1);
                let _ = wtx.send(Msg::Exited(code));
            })?;
            if let Some(w) = watch {
                start_signals(w, tx.clone())?;
            }
            drop(tx);
            Ok(event_loop(&rx, &queue, pid, pipeline, |_| {}))
        }
    }
}

enum LoopIo<'a> {
    Input(Vec<u8>, Instant, &'a mut Pipeline),
    InputEof,
    Resize(u16, u16),
}

fn event_loop(
    rx: &Receiver<Msg>,
    queue: &OutQueue,
    pid: i32,
    p: &mut Pipeline,
    mut io: impl FnMut(LoopIo<'_>),
) -> i32 {
    let mut exit: Option<(i32, Instant)> = None;
    let mut eof = false;
    let mut last_msg = Instant::now();
    let mut scratch = Vec::new();
    // Takes what the readers queued; afterwards, the next bytes wake the loop only if no merge timer runs.
    let mut drain = |p: &mut Pipeline, last: &mut Instant| {
        if let Some(batch) = queue.take(&mut scratch) {
            *last = Instant::now();
            p.output_vec(&mut scratch, batch.first_at);
            for (m, at) in batch.markers {
                p.marker(m, at);
            }
        }
    };
    loop {
        if let Some((code, at)) = exit {
            let now = Instant::now();
            if eof || now >= at + DRAIN_LIMIT || now >= last_msg.max(at) + DRAIN_IDLE {
                return code;
            }
        }
        let now = Instant::now();
        let mut wait =
            p.deadline().map(|d| d.saturating_duration_since(now)).unwrap_or(Duration::from_secs(1));
        if exit.is_some() {
            wait = wait.min(DRAIN_IDLE);
        }
        let msg = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                drain(p, &mut last_msg);
                p.tick(Instant::now());
                queue.set_wake_on_data(!p.output_pending());
                drain(p, &mut last_msg);
                continue;
            }
            // Every sender is gone: the child was reaped and output ended.
            Err(RecvTimeoutError::Disconnected) => {
                drain(p, &mut last_msg);
                return exit.map(|e| e.0).unwrap_or(1);
            }
        };
        match msg {
            Msg::OutputReady => drain(p, &mut last_msg),
            Msg::OutputEof => {
                drain(p, &mut last_msg);
                eof = true;
            }
            Msg::Input(data, at) => io(LoopIo::Input(data, at, p)),
            Msg::InputEof => io(LoopIo::InputEof),
            Msg::Signal(SignalEvent::Resize(c, r)) => {
                io(LoopIo::Resize(c, r));
                p.resize(c, r, Instant::now());
            }
            Msg::Signal(SignalEvent::Forward { signal, from_terminal }) => {
                // A terminal-generated signal already reached the child (same process group, pipe mode).
                if exit.is_none() && !from_terminal && pid > 0 {
                    if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                    }
                }
            }
            Msg::Exited(code) => exit = Some((code, Instant::now())),
        }
        p.tick(Instant::now());
        queue.set_wake_on_data(!p.output_pending());
        drain(p, &mut last_msg);
    }
}

fn start_signals(watch: tty::SignalWatch, tx: SyncSender<Msg>) -> anyhow::Result<()> {
    watch.spawn(move |ev| tx.send(Msg::Signal(ev)).is_ok())
}

/// PTY output: shown on the caller's terminal as soon as it is read, then handed to the recorder.
fn spawn_reader(
    mut reader: Box<dyn Read + Send>,
    mut screen: Box<dyn Write + Send>,
    markers: bool,
    queue: Arc<OutQueue>,
    tx: SyncSender<Msg>,
    name: &str,
) -> anyhow::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut buf = vec![0u8; READ_BUF];
        let mut scanner = MarkerScanner::default();
        let mut screen_ok = true;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EIO: the last holder of the PTY's other side closed it
            };
            let at = Instant::now();
            let mut found = Vec::new();
            let scanned;
            let data: &[u8] = if markers {
                scanned = scanner.scan(&buf[..n], &mut found);
                &scanned
            } else {
                &buf[..n]
            };
            if screen_ok && screen.write_all(data).and_then(|_| screen.flush()).is_err() {
                screen_ok = false;
            }
            if queue.push(data, found, at) && tx.send(Msg::OutputReady).is_err() {
                return;
            }
        }
        let rest = scanner.finish();
        if !rest.is_empty() {
            let _ = screen.write_all(&rest);
            queue.push(&rest, Vec::new(), Instant::now());
        }
        let _ = tx.send(Msg::OutputEof);
    })?;
    Ok(())
}

/// Pipe output: relayed byte for byte (only ddcoterm's own shell markers are taken out, for a shell whose
/// stdin is not a terminal). When the caller's side is closed (`| head`), the pipe is closed too, so the
/// child gets SIGPIPE exactly as it would without ddcoterm.
fn spawn_pipe_reader(
    mut reader: Box<dyn Read + Send>,
    mut sink: Box<dyn Write + Send>,
    markers: bool,
    queue: Arc<OutQueue>,
    tx: SyncSender<Msg>,
    done: std::sync::mpsc::Sender<()>,
    name: &str,
) -> anyhow::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut buf = vec![0u8; READ_BUF];
        let mut scanner = MarkerScanner::default();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let at = Instant::now();
            let mut found = Vec::new();
            let scanned;
            let data: &[u8] = if markers {
                scanned = scanner.scan(&buf[..n], &mut found);
                &scanned
            } else {
                &buf[..n]
            };
            if sink.write_all(data).and_then(|_| sink.flush()).is_err() {
                break;
            }
            if queue.push(data, found, at) && tx.send(Msg::OutputReady).is_err() {
                break;
            }
        }
        drop(reader);
        let rest = scanner.finish();
        if !rest.is_empty() && sink.write_all(&rest).is_ok() {
            queue.push(&rest, Vec::new(), Instant::now());
        }
        let _ = done.send(());
    })?;
    Ok(())
}

fn spawn_stdin(mut stdin: Box<dyn Read + Send>, tx: SyncSender<Msg>) -> anyhow::Result<()> {
    // Never joined: it may sit in read(2) on the terminal after the session ends; process exit ends it.
    std::thread::Builder::new().name("ddcoterm-stdin".into()).spawn(move || {
        let mut buf = vec![0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send(Msg::InputEof);
                    break;
                }
                Ok(n) => {
                    if tx.send(Msg::Input(buf[..n].to_vec(), Instant::now())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })?;
    Ok(())
}

fn spawn_waitpid(pid: i32, tx: SyncSender<Msg>) -> anyhow::Result<()> {
    use nix::sys::wait::{waitpid, WaitStatus};
    std::thread::Builder::new().name("ddcoterm-wait".into()).spawn(move || {
        let code = loop {
            match waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, c)) => break c,
                Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break 1,
            }
        };
        let _ = tx.send(Msg::Exited(code));
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::RedactionSettings;
    use crate::model::{ActionSet, SessionMeta};
    use crate::recorder::cast::{self, CastFile};
    use crate::recorder::fanout::Fanout;
    use crate::recorder::pipeline::PipelineConfig;
    use crate::redact::Redactor;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);
    impl Write for Screen {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn pipeline(dir: &std::path::Path) -> Pipeline {
        let meta = SessionMeta { session_id: "t".into(), width: 80, height: 24, ..SessionMeta::default() };
        let cast = CastFile::create(dir.join("t.cast"), &cast::header_line(&meta, "sh", "xterm")).unwrap();
        let cfg = PipelineConfig {
            merge_window: Duration::from_millis(10),
            merge_bytes: 65536,
            input: true,
            snapshots: false,
        };
        let redactor = Redactor::from_settings(&RedactionSettings::default()).unwrap();
        Pipeline::new(cfg, meta, redactor, Some(cast), None, Fanout::new(Vec::new(), &ActionSet::default()))
    }

    fn launch(program: &str, args: &[&str]) -> Launch {
        Launch {
            program: program.into(),
            args: args.iter().map(Into::into).collect(),
            arg0: program.into(),
            env: Vec::new(),
            cwd: "/".into(),
        }
    }

    #[test]
    fn a_real_pty_running_cat_without_a_terminal() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let screen = Screen::default();
        let io = Io {
            stdin: Some(Box::new(std::io::Cursor::new(b"hello\n".to_vec()))),
            stdout: Box::new(screen.clone()),
            stderr: Box::new(std::io::sink()),
            signals: false,
            markers: false,
        };
        let code = run(&launch("/bin/cat", &[]), Mode::Pty { cols: 80, rows: 24 }, io, &mut p).unwrap();
        p.finish(code);
        assert_eq!(code, 0, "cat ends at the ^D sent for the end of input");
        let shown = String::from_utf8_lossy(&screen.0.lock().unwrap()).into_owned();
        assert_eq!(shown.matches("hello\r\n").count(), 2, "echo plus cat's copy: {shown:?}");
        let cast = std::fs::read_to_string(d.path().join("t.cast")).unwrap();
        assert!(cast.contains("\"i\", \"hello\\n\""), "{cast}");
        assert!(cast.trim_end().ends_with("\"m\", \"exit 0\"]"), "{cast}");
    }

    #[test]
    fn pipes_are_byte_exact_and_signals_give_128_plus() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let screen = Screen::default();
        let io = Io {
            stdin: None,
            stdout: Box::new(screen.clone()),
            stderr: Box::new(std::io::sink()),
            signals: false,
            markers: false,
        };
        let code =
            run(&launch("/bin/sh", &["-c", "printf 'a\\nb\\0\\n'; kill -TERM $$"]), Mode::Pipes, io, &mut p)
                .unwrap();
        assert_eq!(code, 143);
        assert_eq!(*screen.0.lock().unwrap(), b"a\nb\0\n".to_vec());
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let io = Io {
            stdin: None,
            stdout: Box::new(std::io::sink()),
            stderr: Box::new(std::io::sink()),
            signals: false,
            markers: false,
        };
        let e = run(&launch("/nonexistent/prog", &[]), Mode::Pipes, io, &mut p).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/prog"), "{e}");
    }
}
