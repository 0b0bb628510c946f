//! The recorder session of the launch step: runs a command (or an interactive shell) under the recorder with
//! its decided actions, its recording kept locally and uploaded (or held by the bastion agent).

use super::plan::{shell_path, Launch, Target};
use crate::config::Loaded;
use crate::dirs::{self, ENV_SESSION};
use crate::error::Exit;
use crate::model::{Action, Output, ProcessEvent, SessionMeta};
use crate::policy::invocation::shell_word;
use crate::recorder::cast::{self, CastFile};
use crate::recorder::fanout::Fanout;
use crate::recorder::pipeline::{Pipeline, PipelineConfig};
use crate::recorder::recovery::{self, Journal, RecorderInfo, RecorderLock};
use crate::recorder::relay::{self, Io, Mode};
use crate::recorder::{nesting, shell, tty};
use crate::redact::Redactor;
use crate::upload::Uploader;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Runs the session and returns the child's exit status (128+signal when killed); `None` when it is not
/// recorded here and the launch site execs it instead: inside a proven outer recording (see [`nesting`]:
/// nothing is recorded twice and nothing waits; a forced `record` always records), or when the bastion
/// agent lets the session run unrecorded.
pub fn run(loaded: &Loaded, l: &Launch) -> anyhow::Result<Option<i32>> {
    if let Some(claim) = std::env::var(ENV_SESSION).ok().filter(|v| !v.is_empty()) {
        match prove_outer(loaded, &claim) {
            Ok(outer) if !l.gate.force.contains(Action::Record) => {
                if matches!(l.target, Target::Shell) && !l.quiet {
                    eprintln!("ddcoterm: already recording session {}; not recording again", outer.session_id);
                }
                return Ok(None);
            }
            Ok(outer) => eprintln!(
                "ddcoterm: inside recorded session {}, but this run's recording is required: recording it too",
                outer.session_id
            ),
            Err(why) => eprintln!("ddcoterm: {ENV_SESSION} is not an outer ddcoterm recording ({why}); recording"),
        }
    }
    let cfg = pipeline_config(loaded, l)?;
    let redactor = Redactor::from_settings(&loaded.settings.redaction)?;
    let shell_path = shell_path(loaded);
    let child = Child::new(loaded, l, &shell_path)?;
    let meta = child.meta(l, &redactor);
    let session_id = meta.session_id.clone();

    // Bastion mode: the agent holds the session; nothing is written to the user's disk.
    let agent = if loaded.settings.agent.enabled {
        match crate::agent::client::session_output(&loaded.settings.agent, &meta, &shell_path)? {
            Some(opened) => Some(opened),
            None => return Ok(None),
        }
    } else {
        None
    };
    let header =
        cast::header_line(&meta, &shell_path.to_string_lossy(), &std::env::var("TERM").unwrap_or_default());
    let wrapped = child.process_event(&meta);
    let bastion = agent.is_some();
    let (mut local, outputs, uploader) = match agent {
        Some((output, at)) => {
            let local = Local { cast_path: PathBuf::from(at), ..Local::default() };
            (local, vec![Box::new(output) as Box<dyn Output>], None)
        }
        None => {
            let mut local = Local::open(loaded, l, &meta, &header, (child.started_ms, &wrapped))?;
            // The session's uploader: owned here, handed to the recorder's output and the recovery sweep,
            // finished at the end. Without any destination the recording stays local (and says where).
            let uploader = match Uploader::new(loaded) {
                Ok(u) => Some(Arc::new(u)),
                Err(e) => {
                    tracing::warn!("uploads unavailable, recording locally only: {e:#}");
                    None
                }
            };
            let outputs = match &uploader {
                Some(up) => {
                    up.session_output(&l.actions, header.clone(), local.journal.take()).into_iter().collect()
                }
                None => Vec::new(),
            };
            (local, outputs, uploader)
        }
    };
    let cfg = PipelineConfig {
        // Bastion mode: every chunk must fit in one agent frame, whatever the user's merge size.
        merge_bytes: if bastion {
            cfg.merge_bytes.min(crate::agent::proto::MAX_MERGE_BYTES)
        } else {
            cfg.merge_bytes
        },
        ..cfg
    };
    let mut pipeline = Pipeline::new(
        cfg,
        meta,
        redactor,
        local.cast_file.take(),
        local.events.take(),
        Fanout::new(outputs, &l.actions),
    );
    let links =
        Links { loaded, uploader: uploader.as_deref(), bastion, record: l.actions.contains(Action::Record) };
    links.announce_start(&session_id, &local.cast_path, l);

    let started = Instant::now();
    let result = child.relay(&mut pipeline);
    let code = match &result {
        Ok(c) => *c,
        Err(_) => crate::error::exit::NOT_FOUND,
    };
    if let Some(wrapped) = wrapped {
        let ev = ProcessEvent {
            exit_code: Some(code),
            duration_ms: started.elapsed().as_millis() as u64,
            ..wrapped
        };
        pipeline.process_event(&ev);
    }
    pipeline.finish(code);
    // Everything is spooled (and the exit marker written): nothing is left to recover.
    if let Some(lock) = local.lock {
        lock.release();
    }
    if let Some(up) = &uploader {
        finish_uploads(loaded, up);
    }
    let code = result.map_err(relay_error)?;
    links.announce_end(&session_id, code, &local.cast_path, l);
    Ok(Some(code))
}

/// The recorder's settings for this session, checked before anything starts.
fn pipeline_config(loaded: &Loaded, l: &Launch) -> anyhow::Result<PipelineConfig> {
    let rec = &loaded.settings.recording;
    let merge_window = rec.merge_window.get();
    if rec.merge_bytes == 0 {
        return Err(crate::error::ConfigError::Env {
            source_name: "configuration".into(),
            key: "recording.merge_bytes".into(),
            msg: "must be at least 1".into(),
        }
        .into());
    }
    Ok(PipelineConfig {
        merge_window,
        merge_bytes: rec.merge_bytes,
        input: rec.input,
        snapshots: l.actions.contains(Action::Logs),
    })
}

/// The process the session runs and how it is connected: the command, or the shell with its integration rc
/// files (kept in `_rc_dir` until the session ends).
struct Child {
    session_id: String,
    launch: relay::Launch,
    /// The command line as typed (before redaction), for the header and the process event.
    command_line: String,
    /// The name the user typed (`kubectl`); `None` for the interactive shell (no process event of its own).
    command: Option<String>,
    markers: bool,
    interactive: bool,
    /// Terminal columns and rows.
    size: (u16, u16),
    started_ms: u64,
    _rc_dir: tempfile::TempDir,
}

impl Child {
    fn new(loaded: &Loaded, l: &Launch, shell_path: &Path) -> anyhow::Result<Child> {
        let rec = &loaded.settings.recording;
        let session_id = uuid::Uuid::now_v7().to_string();
        let rc_dir = tempfile::Builder::new().prefix("ddcoterm-rc-").tempdir()?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let (mut launch, command_line, command, markers) = match &l.target {
            Target::Command(c) => {
                let launch = relay::Launch {
                    program: c.program.clone(),
                    args: c.args.clone(),
                    arg0: OsString::from(&c.name),
                    env: Vec::new(),
                    cwd,
                };
                (launch, command_line(&c.name, &c.args), Some(c.name.clone()), false)
            }
            Target::Shell => {
                let integration = if rec.shell_integration {
                    shell::integrate(shell_path, rc_dir.path())?
                } else {
                    shell::Integration { args: vec!["-l".into()], env: Vec::new() }
                };
                let launch = relay::Launch {
                    program: shell_path.to_path_buf(),
                    args: integration.args,
                    arg0: shell_path.file_name().map(|n| n.to_os_string()).unwrap_or_default(),
                    env: integration.env,
                    cwd,
                };
                let markers = rec.shell_integration && shell::kind(shell_path) != shell::Kind::Other;
                (launch, shell_path.display().to_string(), None, markers)
            }
        };
        launch.env.push((ENV_SESSION.into(), nesting::marker(&session_id, std::process::id()).into()));
        Ok(Child {
            session_id,
            launch,
            command_line,
            command,
            markers,
            interactive: tty::interactive(),
            size: tty::size().unwrap_or((80, 24)),
            started_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            _rc_dir: rc_dir,
        })
    }

    /// The session's metadata (cast header, Datadog session event, server create).
    fn meta(&self, l: &Launch, redactor: &Redactor) -> SessionMeta {
        SessionMeta {
            session_id: self.session_id.clone(),
            command: redactor.redact_str(&self.command_line),
            user: dirs::user_name(),
            hostname: dirs::host_name(),
            cwd: self.launch.cwd.display().to_string(),
            actions: l.actions.as_slice().to_vec(),
            rule: l.rule.clone(),
            started_at: self.started_ms / 1000,
            width: self.size.0,
            height: self.size.1,
            tags: l.gate.tags.clone(),
            ssh: crate::ssh::origin::from_env(),
            review: crate::model::Review {
                // The rule's message may quote the command line: redacted like it.
                rule_message: l.gate.review.rule_message.as_deref().map(|m| redactor.redact_str(m)),
                ..l.gate.review.clone()
            },
        }
    }

    /// The wrapped command's process event, completed at the end (`None` for an interactive shell).
    fn process_event(&self, meta: &SessionMeta) -> Option<ProcessEvent> {
        Some(ProcessEvent {
            session_id: meta.session_id.clone(),
            command: meta.command.clone(),
            executable: self.command.clone()?,
            cwd: meta.cwd.clone(),
            user: meta.user.clone(),
            hostname: meta.hostname.clone(),
            exit_code: None,
            started_at_ms: self.started_ms,
            duration_ms: 0,
            tags: meta.tags.clone(),
        })
    }

    /// Runs the child under a PTY (interactive) or on pipes, relaying through `pipeline`.
    fn relay(&self, pipeline: &mut Pipeline) -> anyhow::Result<i32> {
        let io = Io {
            stdin: self.interactive.then(|| Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>),
            stdout: unbuffered(std::io::stdout().as_fd())?,
            stderr: unbuffered(std::io::stderr().as_fd())?,
            signals: true,
            markers: self.markers,
        };
        let (cols, rows) = self.size;
        let mode = if self.interactive { Mode::Pty { cols, rows } } else { Mode::Pipes };
        let _raw = if self.interactive { tty::RawGuard::enter()? } else { None };
        relay::run(&self.launch, mode, io, pipeline)
    }
}

/// What this session keeps on the user's disk (none in bastion mode): the `.cast`, the `.events.jsonl`, and
/// what a recovery needs if this process is killed (the lock that says it runs, the journal of what it
/// spooled; docs/recorder.md, "After a crash").
#[derive(Default)]
struct Local {
    cast_path: PathBuf,
    cast_file: Option<CastFile>,
    events: Option<std::fs::File>,
    lock: Option<RecorderLock>,
    journal: Option<Journal>,
}

impl Local {
    fn open(
        loaded: &Loaded,
        l: &Launch,
        meta: &SessionMeta,
        header: &[u8],
        (started_ms, wrapped): (u64, &Option<ProcessEvent>),
    ) -> anyhow::Result<Local> {
        let rec = &loaded.settings.recording;
        let dir = rec.dir.clone().unwrap_or_else(|| loaded.dirs.recordings());
        let id = &meta.session_id;
        let record = l.actions.contains(Action::Record);
        let process_info = l.actions.contains(Action::ProcessInfo);
        let cast_path = dir.join(format!("{id}.cast"));
        if !(record || process_info) {
            return Ok(Local { cast_path, ..Local::default() });
        }
        cast::ensure_private_dir(&dir)?;
        if record {
            super::retention::sweep_if_due(loaded);
        }
        let cast_file = if record { Some(CastFile::create(cast_path.clone(), header)?) } else { None };
        let events = if process_info {
            Some(cast::create_private(&dir.join(format!("{id}.events.jsonl")))?)
        } else {
            None
        };
        let info = RecorderInfo {
            v: 1,
            pid: std::process::id(),
            pid_start: recovery::proc_start_time(std::process::id()),
            started_at_ms: started_ms,
            meta: meta.clone(),
            cast: record.then(|| cast_path.clone()),
            header_len: header.len() as u64,
            event: if process_info { wrapped.clone() } else { None },
        };
        let (lock, journal) = match RecorderLock::acquire(&dir, &info)
            .and_then(|lock| Ok((lock, Journal::open(&recovery::journal_path(&dir, id))?)))
        {
            Ok((lock, journal)) => (Some(lock), Some(journal)),
            Err(e) => {
                tracing::warn!("{e:#}; this session cannot be recovered if ddcoterm is killed");
                (None, None)
            }
        };
        Ok(Local { cast_path, cast_file, events, lock, journal })
    }
}

/// Where the recording can be found, and the start and end lines that say so.
struct Links<'a> {
    loaded: &'a Loaded,
    uploader: Option<&'a Uploader>,
    bastion: bool,
    record: bool,
}

impl Links<'_> {
    /// The reviewer's link: the server's own answer once its create was delivered, else the configured
    /// one; in bastion mode the agent uploads with its own token, so the configured server's link holds.
    fn link(&self, session_id: &str) -> Option<String> {
        if self.bastion {
            return self.record.then(|| crate::upload::session_link(self.loaded, session_id)).flatten();
        }
        let up = self.uploader.filter(|u| self.record && u.sends_to(crate::upload::Destination::Server))?;
        up.session_link(session_id)
    }

    fn announce_start(&self, session_id: &str, cast_path: &Path, l: &Launch) {
        if l.quiet {
            return;
        }
        if !self.record {
            eprintln!("ddcoterm: session {session_id} ({})", l.actions);
            return;
        }
        match self.link(session_id) {
            Some(link) => eprintln!(
                "ddcoterm: recording session {session_id} -> {link} (local copy {})",
                cast_path.display()
            ),
            None => eprintln!("ddcoterm: recording session {session_id} -> {}", cast_path.display()),
        }
    }

    /// The end line. `--quiet` keeps it for a recording (it is how one finds it) and drops it otherwise.
    fn announce_end(&self, session_id: &str, code: i32, cast_path: &Path, l: &Launch) {
        if !self.record {
            if !l.quiet {
                eprintln!("ddcoterm: session {session_id} ended (exit {code})");
            }
            return;
        }
        match self.link(session_id) {
            Some(link) => eprintln!("ddcoterm: session {session_id} ended (exit {code}) -> {link}"),
            None if self.bastion => {
                eprintln!("ddcoterm: session {session_id} ended (exit {code}) -> {}", cast_path.display())
            }
            None => {
                let why = self
                    .uploader
                    .and_then(|u| u.server_problem())
                    .unwrap_or("no session server configured: server.url");
                eprintln!(
                    "ddcoterm: session {session_id} ended (exit {code}); recording kept locally at {} ({why})",
                    cast_path.display()
                )
            }
        }
    }
}

/// Once the command has run: sessions of recorders that died before are finished (never on the command's
/// path, nor beside the recording: a thread of its own cost the recorder 0.3-0.5 MiB of peak RSS), then
/// uploads get at most `spool.flush_timeout` (none once the server refuses connections); whatever is left
/// stays spooled and a background flush sends it.
fn finish_uploads(loaded: &Loaded, up: &Uploader) {
    let recovered = crate::upload::recovery::sweep(loaded, &crate::upload::recovery::via_uploader(up));
    if !recovered.sessions.is_empty() || !recovered.errors.is_empty() {
        eprint!("ddcoterm: {recovered}");
    }
    let report = up.finish();
    if report.needs_attention() {
        eprintln!("ddcoterm: {report}");
    }
}

/// The relay could not start (or run) the child: 127 when it does not exist, 126 when it cannot be executed.
fn relay_error(e: anyhow::Error) -> anyhow::Error {
    let io = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>());
    match io {
        Some(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Exit::new(crate::error::exit::NOT_EXECUTABLE, format!("{e:#}")).into()
        }
        _ => Exit::not_found(format!("{e:#}")).into(),
    }
}

/// Whether `claim` (a `DDCOTERM_SESSION` value) names a real outer recording ([`nesting`]): in bastion mode
/// the agent is the witness, otherwise the recorder's open `.cast`.
pub fn prove_outer(loaded: &Loaded, claim: &str) -> Result<nesting::Outer, String> {
    let agent = &loaded.settings.agent;
    let ask = |id: &str| crate::agent::client::live_recorder(&agent.socket, id);
    let witness = if agent.enabled { nesting::Witness::Agent(&ask) } else { nesting::Witness::OpenCast };
    nesting::prove(claim, witness)
}

/// The command line as typed, for the header and the process event (redacted by the caller).
fn command_line(name: &str, args: &[OsString]) -> String {
    let mut s = name.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&shell_word(&a.to_string_lossy()));
    }
    s
}

/// A writer on a duplicate of `fd` without std's line buffering: relayed bytes reach the terminal at once.
fn unbuffered(fd: std::os::fd::BorrowedFd<'_>) -> anyhow::Result<Box<dyn std::io::Write + Send>> {
    Ok(Box::new(std::fs::File::from(fd.try_clone_to_owned()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_needs_it() {
        let args: Vec<OsString> = vec!["-n".into(), "it's here".into(), "".into(), "a=b".into()];
        assert_eq!(command_line("kubectl", &args), "kubectl -n 'it'\\''s here' '' a=b");
    }
}
