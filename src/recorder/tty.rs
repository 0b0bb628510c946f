//! The real terminal: raw mode (restored on every exit path), its size, and the signal thread (SIGWINCH plus
//! the signals we forward), and the viewer's keyboard for `play`. The only file that touches raw mode or SIGWINCH.

use nix::sys::termios::{self, SetArg, Termios};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH};
use signal_hook::iterator::exfiltrator::origin::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

/// Columns and rows of the real terminal (stdout, else stdin, else stderr); `None` without a terminal.
pub fn size() -> Option<(u16, u16)> {
    let fd_size = |s: Option<(terminal_size::Width, terminal_size::Height)>| {
        s.filter(|(w, h)| w.0 > 0 && h.0 > 0).map(|(w, h)| (w.0, h.0))
    };
    fd_size(terminal_size::terminal_size_of(std::io::stdout()))
        .or_else(|| fd_size(terminal_size::terminal_size_of(std::io::stdin())))
        .or_else(|| fd_size(terminal_size::terminal_size_of(std::io::stderr())))
}

/// True when both stdin and stdout are terminals: only then does the session run under a PTY.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The termios saved before raw mode; a panic hook restores it even when the guard cannot run.
static SAVED: OnceLock<Mutex<Option<Termios>>> = OnceLock::new();

fn restore_saved() {
    if let Some(m) = SAVED.get() {
        if let Ok(mut saved) = m.lock() {
            if let Some(t) = saved.take() {
                let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &t);
            }
        }
    }
}

/// Puts stdin's terminal in raw mode; dropping it (normal return, error, panic unwinding) restores the
/// previous settings. Signals do not end the process while a guard is alive: they are forwarded to the child
/// (see [`SignalWatch`]), so the normal return path restores the terminal.
pub struct RawGuard(());

impl RawGuard {
    /// Enters raw mode when stdin is a terminal; `None` otherwise (nothing to restore).
    pub fn enter() -> anyhow::Result<Option<RawGuard>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let orig =
            termios::tcgetattr(&stdin).map_err(|e| anyhow::anyhow!("reading terminal settings: {e}"))?;
        let mut raw = orig.clone();
        termios::cfmakeraw(&mut raw);
        *SAVED.get_or_init(|| Mutex::new(None)).lock().unwrap_or_else(|e| e.into_inner()) = Some(orig);
        install_panic_hook();
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
            .map_err(|e| anyhow::anyhow!("setting terminal raw mode: {e}"))?;
        Ok(Some(RawGuard(())))
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// A panic on any thread restores the terminal before the message is printed, so it is readable.
fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_saved();
            prev(info);
        }));
    });
}

/// What the signal thread reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// The real terminal changed size (SIGWINCH): new columns and rows.
    Resize(u16, u16),
    /// A signal to forward to the child. `from_terminal` is true when the kernel sent it (Ctrl-C on a terminal
    /// still in cooked mode, which the child, in our process group, received as well).
    Forward { signal: i32, from_terminal: bool },
}

/// SIGWINCH, SIGINT, SIGTERM, SIGHUP and SIGQUIT, caught from the moment it is registered: a terminal resized
/// or a Ctrl-C sent while the session is still starting is queued, not lost (or fatal).
pub struct SignalWatch(SignalsInfo<WithOrigin>);

impl SignalWatch {
    /// Installs the handlers. From here on those signals no longer kill ddcoterm: they are the child's.
    pub fn register() -> anyhow::Result<SignalWatch> {
        Ok(SignalWatch(SignalsInfo::<WithOrigin>::new([SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT])?))
    }

    /// Starts a thread that turns the caught signals (those queued since [`SignalWatch::register`] first)
    /// into [`SignalEvent`]s, until `deliver` returns false.
    pub fn spawn(self, mut deliver: impl FnMut(SignalEvent) -> bool + Send + 'static) -> anyhow::Result<()> {
        let mut signals = self.0;
        std::thread::Builder::new().name("ddcoterm-signals".into()).spawn(move || {
            for origin in signals.forever() {
                let ev = if origin.signal == SIGWINCH {
                    match size() {
                        Some((c, r)) => SignalEvent::Resize(c, r),
                        None => continue,
                    }
                } else {
                    SignalEvent::Forward {
                        signal: origin.signal,
                        from_terminal: origin.cause == Cause::Kernel,
                    }
                };
                if !deliver(ev) {
                    break;
                }
            }
        })?;
        Ok(())
    }
}

/// The viewer's keyboard for `ddcoterm play`: stdin in raw mode when it is a terminal (restored when this is
/// dropped, on a panic too), read without blocking past a deadline. SIGINT, SIGTERM and SIGHUP end the replay
/// through the normal return path (so the terminal is restored) instead of killing the process.
pub struct KeyConsole {
    start: std::time::Instant,
    eof: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sigs: Vec<signal_hook::SigId>,
    _raw: Option<RawGuard>,
}

impl KeyConsole {
    pub fn open() -> anyhow::Result<KeyConsole> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut sigs = Vec::new();
        for s in [SIGINT, SIGTERM, SIGHUP] {
            sigs.push(signal_hook::flag::register(s, stop.clone())?);
        }
        let raw = RawGuard::enter()?;
        let eof = !std::io::stdin().is_terminal();
        Ok(KeyConsole { start: std::time::Instant::now(), eof, stop, sigs, _raw: raw })
    }
}

impl Drop for KeyConsole {
    fn drop(&mut self) {
        for id in self.sigs.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl super::playback::Console for KeyConsole {
    fn now(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    fn wait(&mut self, deadline: Option<std::time::Duration>) -> std::io::Result<super::playback::Input> {
        use super::playback::Input;
        use nix::errno::Errno;
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        loop {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(Input::Closed);
            }
            let timeout = match deadline {
                None if self.eof => return Ok(Input::Closed),
                None => PollTimeout::NONE,
                Some(d) => {
                    let now = self.now();
                    if now >= d {
                        return Ok(Input::Timeout);
                    }
                    let ms = (d - now).as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let stdin = std::io::stdin();
            // With the keyboard gone, poll on nothing: a sleep that a signal still interrupts.
            let mut fds = if self.eof { vec![] } else { vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)] };
            match poll(&mut fds, timeout) {
                Err(Errno::EINTR) | Ok(0) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let mut buf = [0u8; 256];
            match nix::unistd::read(libc::STDIN_FILENO, &mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => return Ok(Input::Keys(buf[..n].to_vec())),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
