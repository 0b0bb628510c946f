//! Runs a command (or an interactive shell) with its decided actions: recorder + uploads.

use crate::config::{durations, Loaded};
use crate::dirs::{self, ENV_SESSION};
use crate::error::{exit, Exit};
use crate::model::{Action, ActionSet, ProcessEvent, SessionMeta};
use crate::recorder::cast::{self, CastFile};
use crate::recorder::fanout::Fanout;
use crate::recorder::pipeline::{Pipeline, PipelineConfig};
use crate::recorder::recovery::{self, RecorderInfo, RecorderLock};
use crate::recorder::relay::{self, Io, Launch, Mode};
use crate::recorder::{nesting, shell, tty};
use crate::redact::Redactor;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Everything the session needs, decided before it starts.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The program to run (already resolved past shims) and its arguments; `None` = interactive shell.
    pub program: Option<PathBuf>,
    pub args: Vec<OsString>,
    /// argv[0] to show the child (the name the user typed, e.g. `kubectl`).
    pub display_name: String,
    pub actions: ActionSet,
    /// `SnippetRef` display of the deciding rule, if any.
    pub rule: Option<String>,
    /// Extra session tags (break_glass:true, incident:..., ssh client...).
    pub tags: Vec<String>,
    /// Actions forced on this run (break glass forces `record`): a forced `record` is never skipped because
    /// an outer recording exists.
    pub forced: ActionSet,
}

/// Runs the session and returns the child's exit status (128+signal when killed).
///
/// Inside a proven outer recording (see [`nesting`]) or with no recording action, the program replaces this
/// process instead (exec): nothing is recorded twice and nothing waits. A forced `record` always records.
pub fn run(loaded: &Loaded, req: SessionRequest) -> anyhow::Result<i32> {
    let shell_path = shell_path(loaded);
    if !req.actions.needs_recorder() {
        return exec_plain(&req, &shell_path);
    }
    if let Some(claim) = std::env::var(ENV_SESSION).ok().filter(|v| !v.is_empty()) {
        match prove_outer(loaded, &claim) {
            Ok(outer) if !req.forced.contains(Action::Record) => {
                if req.program.is_none() {
                    eprintln!("ddcoterm: already recording session {}; not recording again", outer.session_id);
                }
                return exec_plain(&req, &shell_path);
            }
            Ok(outer) => eprintln!(
                "ddcoterm: inside recorded session {}, but this run's recording is required: recording it too",
                outer.session_id
            ),
            Err(why) => eprintln!("ddcoterm: {ENV_SESSION} is not an outer ddcoterm recording ({why}); recording"),
        }
    }

    let rec = &loaded.settings.recording;
    let merge_window = durations::parse("recording.merge_window", &rec.merge_window)?;
    if rec.merge_bytes == 0 {
        return Err(crate::error::ConfigError::Env {
            source_name: "configuration".into(),
            key: "recording.merge_bytes".into(),
            msg: "must be at least 1".into(),
        }
        .into());
    }
    let redactor = Redactor::from_settings(&loaded.settings.redaction)?;
    let session_id = uuid::Uuid::now_v7().to_string();
    let interactive = tty::interactive();
    let (cols, rows) = tty::size().unwrap_or((80, 24));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));

    // What runs: the command, or the shell with its integration rc files (kept until the session ends).
    let rc_dir = tempfile::Builder::new().prefix("ddcoterm-rc-").tempdir()?;
    let (program, args, mut env, arg0) = match &req.program {
        Some(p) => (p.clone(), req.args.clone(), Vec::new(), OsString::from(&req.display_name)),
        None => {
            let integration = if rec.shell_integration {
                shell::integrate(&shell_path, rc_dir.path())?
            } else {
                shell::Integration { args: vec!["-l".into()], env: Vec::new() }
            };
            let name = shell_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            (shell_path.clone(), integration.args, integration.env, name)
        }
    };
    let markers =
        req.program.is_none() && rec.shell_integration && shell::kind(&program) != shell::Kind::Other;
    env.push((ENV_SESSION.into(), nesting::marker(&session_id, std::process::id()).into()));
    let launch = Launch { program, args, arg0, env, cwd: cwd.clone() };

    let command_line = match &req.program {
        Some(_) => command_line(&req.display_name, &req.args),
        None => shell_path.display().to_string(),
    };
    let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let started_at = started_ms / 1000;
    let meta = SessionMeta {
        session_id: session_id.clone(),
        command: redactor.redact_str(&command_line),
        user: dirs::user_name(),
        hostname: dirs::host_name(),
        cwd: cwd.display().to_string(),
        actions: req.actions.as_slice().to_vec(),
        rule: req.rule.clone(),
        started_at,
        width: cols,
        height: rows,
        tags: req.tags.clone(),
        ssh: crate::ssh::origin::from_env(),
    };

    // Bastion mode: the agent holds the session; nothing is written to the user's disk.
    let agent = if loaded.settings.agent.enabled {
        match crate::agent::client::session_output(&loaded.settings.agent, &meta, &shell_path)? {
            Some(opened) => Some(opened),
            None => return exec_plain(&req, &shell_path),
        }
    } else {
        None
    };
    let dir = rec.dir.clone().unwrap_or_else(|| loaded.dirs.recordings());
    let record = req.actions.contains(Action::Record);
    let process_info = req.actions.contains(Action::ProcessInfo);
    if (record || process_info) && agent.is_none() {
        cast::ensure_private_dir(&dir)?;
    }
    if record && agent.is_none() {
        crate::cmd::sessions::retention_if_due(loaded);
    }
    let cast_path = match &agent {
        Some((_, at)) => PathBuf::from(at),
        None => dir.join(format!("{session_id}.cast")),
    };
    let header =
        cast::header_line(&meta, &shell_path.to_string_lossy(), &std::env::var("TERM").unwrap_or_default());
    let cast_file =
        if record && agent.is_none() { Some(CastFile::create(cast_path.clone(), &header)?) } else { None };
    let events = if process_info && agent.is_none() {
        Some(cast::create_private(&dir.join(format!("{session_id}.events.jsonl")))?)
    } else {
        None
    };
    // What a recovery needs if this process is killed: the lock that says it runs, and the journal of what
    // it spooled (docs/recorder.md, "After a crash").
    let wrapped = ProcessEvent {
        session_id: session_id.clone(),
        command: meta.command.clone(),
        executable: req.display_name.clone(),
        cwd: cwd.display().to_string(),
        user: meta.user.clone(),
        hostname: meta.hostname.clone(),
        exit_code: None,
        started_at_ms: started_ms,
        duration_ms: 0,
        tags: req.tags.clone(),
    };
    // In bastion mode the agent holds the session and finalises it when this process dies.
    let recorder_lock = if (record || process_info) && agent.is_none() {
        let info = RecorderInfo {
            v: 1,
            pid: std::process::id(),
            pid_start: recovery::proc_start_time(std::process::id()),
            started_at_ms: started_ms,
            meta: meta.clone(),
            cast: record.then(|| cast_path.clone()),
            header_len: header.len() as u64,
            event: (req.program.is_some() && process_info).then(|| wrapped.clone()),
        };
        RecorderLock::acquire(&dir, &info)
            .and_then(|l| Ok((l, recovery::Journal::open(&recovery::journal_path(&dir, &session_id))?)))
            .map_err(|e| tracing::warn!("{e:#}; this session cannot be recovered if ddcoterm is killed"))
            .ok()
    } else {
        None
    };
    let (recorder_lock, journal) = match recorder_lock {
        Some((l, j)) => (Some(l), Some(j)),
        None => (None, None),
    };
    let bastion = agent.is_some();
    // The session's uploader: owned here, handed to the recorder's output and the recovery sweep, finished
    // at the end. Without any destination the recording stays local (and says where at the end).
    let uploader = if bastion {
        None
    } else {
        match crate::upload::Uploader::new(loaded) {
            Ok(u) => Some(std::sync::Arc::new(u)),
            Err(e) => {
                tracing::warn!("uploads unavailable, recording locally only: {e:#}");
                None
            }
        }
    };
    let outputs = match (agent, &uploader) {
        (Some((output, _)), _) => vec![Box::new(output) as Box<dyn crate::model::Output>],
        (None, Some(up)) => up.session_output(&req.actions, header.clone(), journal).into_iter().collect(),
        (None, None) => Vec::new(),
    };
    let cfg = PipelineConfig {
        merge_window,
        // Bastion mode: every chunk must fit in one agent frame, whatever the user's merge size.
        merge_bytes: if bastion {
            rec.merge_bytes.min(crate::agent::proto::MAX_MERGE_BYTES)
        } else {
            rec.merge_bytes
        },
        input: rec.input,
        snapshots: req.actions.contains(Action::Logs),
    };
    let mut pipeline =
        Pipeline::new(cfg, meta, redactor, cast_file, events, Fanout::new(outputs, &req.actions));

    // The reviewer's link exists only when the session is uploaded; the create may still be spooled, so the
    // configured server's link is printed now (the server's own answer, if it came, at the end).
    let uploads = record && uploader.as_ref().is_some_and(|u| u.sends_to(crate::upload::Destination::Server));
    // Bastion mode: the agent uploads with its own token (it does not start with `server.url` and no token),
    // so the configured server's link holds for the user too.
    let agent_link = (bastion && record).then(|| crate::upload::session_link(loaded, &session_id)).flatten();
    let link_now = uploads
        .then(|| uploader.as_ref().and_then(|u| u.session_link(&session_id)))
        .flatten()
        .or_else(|| agent_link.clone());
    if record {
        match &link_now {
            Some(l) => eprintln!(
                "ddcoterm: recording session {session_id} -> {l} (local copy {})",
                cast_path.display()
            ),
            None => eprintln!("ddcoterm: recording session {session_id} -> {}", cast_path.display()),
        }
    } else {
        eprintln!("ddcoterm: session {session_id} ({})", req.actions);
    }
    let started = Instant::now();
    let io = Io {
        stdin: interactive.then(|| Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>),
        stdout: unbuffered(std::io::stdout().as_fd())?,
        stderr: unbuffered(std::io::stderr().as_fd())?,
        signals: true,
        markers,
    };
    let mode = if interactive { Mode::Pty { cols, rows } } else { Mode::Pipes };
    let result = {
        let _raw = if interactive { tty::RawGuard::enter()? } else { None };
        relay::run(&launch, mode, io, &mut pipeline)
    };
    drop(rc_dir);
    let code = match &result {
        Ok(c) => *c,
        Err(_) => exit::NOT_FOUND,
    };
    if req.program.is_some() {
        let ev = ProcessEvent {
            exit_code: Some(code),
            duration_ms: started.elapsed().as_millis() as u64,
            ..wrapped
        };
        pipeline.process_event(&ev);
    }
    pipeline.finish(code);
    // Everything is spooled (and the exit marker written): nothing is left to recover.
    if let Some(l) = recorder_lock {
        l.release();
    }
    // Sessions of recorders that died before are finished now, once the command has run: never on its path,
    // and not beside the recording either (a thread of its own cost the recorder 0.3-0.5 MiB of peak RSS).
    // Their records go out with this session's, within `spool.flush_timeout`.
    let recovered = match &uploader {
        Some(up) => crate::cmd::recovery::sweep(loaded, &crate::cmd::recovery::via_uploader(up)),
        None => Default::default(),
    };
    if !recovered.sessions.is_empty() || !recovered.errors.is_empty() {
        eprint!("ddcoterm: {recovered}");
    }
    // Uploads get at most `spool.flush_timeout` (none once the server refuses connections); whatever is left
    // stays spooled and a background flush sends it.
    if let Some(up) = &uploader {
        let report = up.finish();
        if report.needs_attention() {
            eprintln!("ddcoterm: {report}");
        }
    }
    let code = result.map_err(|e| Exit::new(exit::NOT_FOUND, format!("{e:#}")))?;
    let link_end =
        uploads.then(|| uploader.as_ref().and_then(|u| u.session_link(&session_id))).flatten().or(agent_link);
    if record {
        match link_end {
            Some(l) => eprintln!("ddcoterm: session {session_id} ended (exit {code}) -> {l}"),
            None if bastion => {
                eprintln!("ddcoterm: session {session_id} ended (exit {code}) -> {}", cast_path.display())
            }
            None => {
                let why = uploader
                    .as_ref()
                    .and_then(|u| u.server_problem())
                    .unwrap_or("no session server configured: server.url");
                eprintln!(
                    "ddcoterm: session {session_id} ended (exit {code}); recording kept locally at {} ({why})",
                    cast_path.display()
                )
            }
        }
    } else {
        eprintln!("ddcoterm: session {session_id} ended (exit {code})");
    }
    Ok(code)
}

/// Whether `claim` (a `DDCOTERM_SESSION` value) names a real outer recording ([`nesting`]): in bastion mode
/// the agent is the witness, otherwise the recorder's open `.cast`.
pub fn prove_outer(loaded: &Loaded, claim: &str) -> Result<nesting::Outer, String> {
    let agent = &loaded.settings.agent;
    let ask = |id: &str| crate::agent::client::live_recorder(&agent.socket, id);
    let witness = if agent.enabled { nesting::Witness::Agent(&ask) } else { nesting::Witness::OpenCast };
    nesting::prove(claim, witness)
}

/// `recording.shell`, else `$SHELL`, else `/bin/bash`.
fn shell_path(loaded: &Loaded) -> PathBuf {
    loaded
        .settings
        .recording
        .shell
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("SHELL").ok().filter(|s| !s.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/bash"))
}

/// Runs the program (or the login shell) in place of this process: no recording, no overhead.
fn exec_plain(req: &SessionRequest, shell: &Path) -> anyhow::Result<i32> {
    let err = match &req.program {
        Some(p) => std::process::Command::new(p).arg0(&req.display_name).args(&req.args).exec(),
        None => std::process::Command::new(shell).arg("-l").exec(),
    };
    let what = req.program.as_deref().unwrap_or(shell).display().to_string();
    let code = if err.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { 126 };
    Err(Exit::new(code, format!("{what}: {err}")).into())
}

/// The command line as typed, for the header and the process event (redacted by the caller).
fn command_line(name: &str, args: &[OsString]) -> String {
    let mut s = name.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&quote(&a.to_string_lossy()));
    }
    s
}

/// `a` as a shell word: bare when that is unambiguous, else single-quoted.
pub fn quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
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
