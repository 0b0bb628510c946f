//! Finishes the sessions of recorders that died (`kill -9`, a crash): spools the `.cast` tail no chunk holds
//! yet, the process event and the end, each exactly once, and removes stale spool temp files. Runs after the
//! next recorded session's command and in `ddcoterm spool flush` (the flush timer), never on a shim call that
//! execs directly. Works on spool records, whatever delivers them.
//!
//! Every step is journaled (`recorder/recovery.rs`) before its record is published, so a recovery killed
//! between any two steps is resumed by the next one without sending anything twice:
//! 1. publish the journal's last record if its writer died between journaling and publishing it;
//! 2. cut a torn last line off the `.cast`, and append the exit marker (`exit unknown`) unless one is there;
//! 3. spool the create record if the recorder never did, chunk 0 (the header line) if no chunk was journaled,
//!    then the `.cast` bytes after the last journaled chunk as the next chunks (same sequence, same byte
//!    offsets, the hash chain continued from the last journaled chunk's bytes);
//! 4. spool the wrapped command's process events, the Datadog session event and the end record, unless
//!    journaled;
//! 5. remove the recorder lock, the journal and the session's orphaned temp files.

use crate::config::Loaded;
use crate::model::Action;
use crate::recorder::fanout::CHUNK_BYTES;
use crate::recorder::recovery::{self as rec, Claimed, Entry, Journal};
use crate::spool::{Record, Spool};
use crate::upload::kinds::{self, group_of, Chain};
use crate::upload::Uploader;
use anyhow::Context;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Spool temp files of dead writers are removed once they are this old (a live writer renames its file
/// within a second; the bound leaves room for a slow disk and a clock step).
pub const STALE_TMP: Duration = Duration::from_secs(3600);

/// How far before the unsent tail a recovery reads to find the `.cast`'s last line (an event line holds at
/// most `recording.merge_bytes` of output, escaped).
const LAST_LINE_WINDOW: u64 = 1024 * 1024;

/// Writes a record to the spool, calling the journal hook just before it is published.
pub type Enqueue<'a> =
    &'a (dyn Fn(Record, &mut dyn FnMut(&str) -> std::io::Result<()>) -> anyhow::Result<()> + Sync);

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions finished, with the chunks each got from its `.cast` tail.
    pub sessions: Vec<(String, u64)>,
    pub tmp_removed: usize,
    pub errors: Vec<String>,
}

impl std::fmt::Display for SweepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (id, chunks) in &self.sessions {
            writeln!(
                f,
                "recovered session {id} of a recorder that died ({chunks} chunk(s) from its .cast tail)"
            )?;
        }
        if self.tmp_removed > 0 {
            writeln!(f, "removed {} stale spool temp file(s)", self.tmp_removed)?;
        }
        for e in &self.errors {
            writeln!(f, "recovery: {e}")?;
        }
        Ok(())
    }
}

/// `recording.dir`, else `~/.ddcoterm/recordings`.
pub fn recordings_dir(loaded: &Loaded) -> PathBuf {
    loaded.paths.recordings.clone()
}

/// Spools through this process's uploader (a recorded session's, which sends them with its own).
pub fn via_uploader(
    up: &Uploader,
) -> impl Fn(Record, &mut dyn FnMut(&str) -> std::io::Result<()>) -> anyhow::Result<()> + Sync + '_ {
    move |r, j| up.enqueue_journaled(r, j).map(|_| ())
}

/// [`sweep`]'s enqueue straight into an open spool (`ddcoterm spool flush`, which has no uploader).
pub fn via_spool(
    spool: &crate::spool::Spool,
) -> impl Fn(Record, &mut dyn FnMut(&str) -> std::io::Result<()>) -> anyhow::Result<()> + Sync + '_ {
    move |r, j| spool.enqueue_journaled(r, j).map(|_| ()).map_err(anyhow::Error::from)
}

/// Which destinations a recovery writes records for: those of the uploader that runs it, as for the session
/// the recorder would have finished (records for a destination that is not configured are not written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The session server's base URL (the link in the Datadog session event).
    pub server: Option<String>,
    pub datadog: bool,
}

impl Targets {
    /// The destinations `loaded` configures (`server.url`; a Datadog API key).
    pub fn of(loaded: &Loaded) -> Targets {
        let key = loaded.settings.connection_config.api_key.as_deref().is_some_and(|k| !k.trim().is_empty());
        Targets { server: crate::upload::server_url(loaded), datadog: key }
    }
}

/// Lock files of sessions in `dir`.
fn locks(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == rec::LOCK_EXT))
        .collect();
    out.sort();
    out
}

/// Finishes every session whose recorder is gone, then removes stale spool temp files. Errors are reported,
/// never fatal: what could not be recovered stays for the next sweep.
pub fn sweep(loaded: &Loaded, enqueue: Enqueue<'_>) -> SweepReport {
    let mut rep = SweepReport::default();
    if loaded.settings.agent.enabled {
        // Bastion mode: the agent holds and finishes every session; the user's directories hold none, and
        // are not to be created by a sweep either.
        return rep;
    }
    let dir = recordings_dir(loaded);
    let targets = Targets::of(loaded);
    let spool = match crate::upload::open_spool(loaded) {
        Ok(s) => s,
        Err(e) => {
            rep.errors.push(format!("{e:#}"));
            return rep;
        }
    };
    for path in locks(&dir) {
        match Claimed::dead(&path) {
            Ok(Some(c)) => {
                let id = c.info.meta.session_id.clone();
                match recover(&spool, c, enqueue, &targets) {
                    Ok(chunks) => rep.sessions.push((id, chunks)),
                    Err(e) => rep.errors.push(format!("session {id}: {e:#}")),
                }
            }
            Ok(None) => {}
            Err(e) => rep.errors.push(format!("{e:#}")),
        }
    }
    // Sessions still waiting for a recovery may need their journaled temp file.
    let waiting: HashSet<String> =
        locks(&dir).iter().filter_map(|p| p.file_stem().map(|s| group_of(&s.to_string_lossy()))).collect();
    remove_orphan_journals(&dir);
    rep.tmp_removed = spool.sweep_tmp(STALE_TMP, &|g| g.is_some_and(|g| waiting.contains(g))).len();
    rep
}

/// A journal without its lock was left by a process killed between removing the two (the lock goes first):
/// nothing reads it any more.
fn remove_orphan_journals(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for p in rd.flatten().map(|d| d.path()) {
        if p.extension().is_some_and(|x| x == rec::JOURNAL_EXT) && !p.with_extension(rec::LOCK_EXT).exists() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Finishes one claimed session; returns how many chunks its `.cast` tail gave.
///
/// The records are the ones the recorder would have written (`upload::kinds`): chunk 0 is the `.cast`'s
/// header line, chunk n + 1 the next bytes, each chunk's `prev_sha256` the hash of the chunk before it, read
/// back from the `.cast` at the byte range the journal gives (chunk 0's: the hash of the create body, rebuilt
/// from the session's metadata). So the server's copy equals the local `.cast` byte for byte.
pub fn recover(spool: &Spool, c: Claimed, enqueue: Enqueue<'_>, dests: &Targets) -> anyhow::Result<u64> {
    let info = c.info.clone();
    let id = info.meta.session_id.clone();
    // The lock names the recording it covers: only `<id>.cast` beside it is ever read, cut or uploaded.
    let stem = c.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if group_of(&id) != id || stem != id {
        anyhow::bail!("{}: session id {id:?} is not a session id; left as is", c.path().display());
    }
    let beside = c.path().with_extension("cast");
    if info.cast.as_ref().is_some_and(|p| *p != beside) {
        anyhow::bail!(
            "{}: names the recording {}, not {}; left as is",
            c.path().display(),
            info.cast.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            beside.display()
        );
    }
    let entries = Journal::read(&c.journal)?;
    // 1. The last journaled record may be whole under tmp/ (its writer died before publishing it).
    if let Some(last) = entries.last() {
        let (file, pid) = last.record();
        if !spool.holds(file) {
            spool.publish_tmp(file, pid)?;
        }
    }
    let mut journal = Journal::open(&c.journal)?;
    let has = |f: fn(&Entry) -> bool| entries.iter().any(f);
    let me = std::process::id();
    // The last chunk the recorder (or an earlier recovery) spooled: its seq and its bytes in the `.cast`.
    let last_chunk = entries.iter().rev().find_map(|e| match e {
        Entry::Chunk { seq, start, end, .. } => Some((*seq, *start, *end)),
        _ => None,
    });
    let record = info.meta.actions.contains(&Action::Record);
    let to_server = record && dests.server.is_some();
    let mut exit_code = None;
    let mut duration_ms = 0;
    let mut chunks = 0;
    // The server's seq of the last chunk spooled, once there is one.
    let mut last_seq = last_chunk.map(|(seq, ..)| seq);
    if let (true, Some(cast)) = (record, &info.cast) {
        // 2. + 3.
        let start = last_chunk.map_or(info.header_len, |(_, _, end)| end);
        let tail = finish_cast(cast, start)?;
        exit_code = tail.exit_code;
        duration_ms = (tail.last_t * 1000.0) as u64;
        if to_server {
            let (create, root) = kinds::create_record(&info.meta);
            if !has(|e| matches!(e, Entry::Create { .. })) {
                enqueue(create, &mut |file| journal.append(&Entry::Create { file: file.into(), pid: me }))?;
            }
            let mut chain = match last_chunk {
                Some((seq, from, to)) => {
                    read_range(cast, from, to)?.map(|b| Chain::resume(seq, ddcoterm_wire::chunk_hash(&b)))
                }
                // Chunk 0 is the header line, exactly the `.cast`'s first line.
                None => match read_range(cast, 0, info.header_len)? {
                    Some(header) => {
                        let mut chain = Chain::new(root);
                        let r = chain.chunk(&id, header);
                        let (from, to) = (0, info.header_len);
                        enqueue(r, &mut |file| {
                            journal.append(&Entry::Chunk {
                                seq: 0,
                                start: from,
                                end: to,
                                file: file.into(),
                                pid: me,
                            })
                        })?;
                        last_seq = Some(0);
                        Some(chain)
                    }
                    None => None,
                },
            };
            if let Some(chain) = chain.as_mut() {
                for (a, b) in rec::cut_chunks(&tail.bytes, 0, tail.bytes.len(), CHUNK_BYTES) {
                    let (s, e) = (start + a as u64, start + b as u64);
                    let seq = chain.next_seq();
                    let r = chain.chunk(&id, tail.bytes[a..b].to_vec());
                    enqueue(r, &mut |file| {
                        journal.append(&Entry::Chunk { seq, start: s, end: e, file: file.into(), pid: me })
                    })?;
                    last_seq = Some(seq);
                    chunks += 1;
                }
            }
        }
    }
    // 4. The wrapped command's process event, to each destination the recorder sends it to, in the
    // recorder's order (server, then Datadog): those already journaled are not sent again.
    if let Some(ev) = &info.event {
        if info.meta.actions.contains(&Action::ProcessInfo) {
            let mut ev = ev.clone();
            ev.exit_code = exit_code;
            ev.duration_ms = duration_ms;
            let mut wanted = Vec::new();
            if dests.server.is_some() {
                wanted.push(kinds::events_record(&ev));
            }
            if dests.datadog {
                wanted.push(kinds::datadog_event_record(&ev));
            }
            let done = entries.iter().filter(|e| matches!(e, Entry::Event { .. })).count();
            for r in wanted.into_iter().skip(done) {
                enqueue(r, &mut |file| journal.append(&Entry::Event { file: file.into(), pid: me }))?;
            }
        }
    }
    let ended = has(|e| matches!(e, Entry::End { .. }));
    if record && dests.datadog && !ended && !has(|e| matches!(e, Entry::SessionEvent { .. })) {
        let link = dests.server.as_deref().map(|b| crate::upload::server::session_link(b, &id));
        let r = kinds::datadog_session_record(&info.meta, exit_code, duration_ms, link.as_deref());
        enqueue(r, &mut |file| journal.append(&Entry::SessionEvent { file: file.into(), pid: me }))?;
    }
    if let (true, false, Some(last_seq)) = (to_server, ended, last_seq) {
        // When the recorder died is not known: the end is put at its last event.
        let ended_at = info.started_at_ms + duration_ms;
        let r = kinds::end_record(&id, ended_at, exit_code, last_seq);
        enqueue(r, &mut |file| journal.append(&Entry::End { file: file.into(), pid: me }))?;
    }
    // 5.
    drop(journal);
    c.finish();
    let group = group_of(&id);
    spool.sweep_tmp(Duration::ZERO, &|g| g != Some(group.as_str()));
    Ok(chunks)
}

/// Bytes `from..to` of the `.cast`, or `None` when it is gone (deleted since: what was spooled is all there is).
fn read_range(path: &Path, from: u64, to: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("opening {}: {e}", path.display())),
    };
    let mut buf = vec![0u8; to.saturating_sub(from) as usize];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, from)
        .with_context(|| format!("reading bytes {from}..{to} of {}", path.display()))?;
    Ok(Some(buf))
}

/// The `.cast` bytes after `start` once finished, and how it ended.
struct Tail {
    bytes: Vec<u8>,
    last_t: f64,
    exit_code: Option<i32>,
}

/// Cuts a torn last line off the `.cast` and appends the exit marker unless it ends with one; returns the
/// bytes from `start` (where the next chunk begins) to the end. Reads only the tail (plus a window for the
/// last line), never the whole recording.
fn finish_cast(path: &Path, start: u64) -> anyhow::Result<Tail> {
    let opened = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Deleted since: what was spooled is all there is; the session still gets its end.
            tracing::warn!("{} is gone; ending its session with what was already spooled", path.display());
            return Ok(Tail { bytes: Vec::new(), last_t: 0.0, exit_code: None });
        }
        Err(e) => return Err(anyhow::anyhow!("opening {}: {e}", path.display())),
    };
    let len = f.metadata()?.len();
    if start > len {
        anyhow::bail!(
            "{} is {len} bytes but its journal says {start} were already sent; not recovering its tail",
            path.display()
        );
    }
    let base = start.min(len.saturating_sub(LAST_LINE_WINDOW));
    let mut buf = Vec::with_capacity((len - base) as usize);
    f.seek(SeekFrom::Start(base))?;
    f.read_to_end(&mut buf).with_context(|| format!("reading {}", path.display()))?;
    let complete = rec::complete_len(&buf).max((start - base) as usize);
    if complete < buf.len() {
        // The recorder died inside a write: the partial line is not an event; the recording ends before it.
        f.set_len(base + complete as u64).with_context(|| format!("truncating {}", path.display()))?;
        buf.truncate(complete);
    }
    let last_t = rec::last_event_time(&buf);
    let exit_code = match rec::exit_marker(&buf) {
        Some(code) => code,
        None => {
            let line = rec::unknown_exit_line(last_t);
            f.seek(SeekFrom::End(0))?;
            f.write_all(&line).with_context(|| format!("writing {}", path.display()))?;
            buf.extend_from_slice(&line);
            None
        }
    };
    f.sync_all()?;
    Ok(Tail { bytes: buf.split_off((start - base) as usize), last_t, exit_code })
}
