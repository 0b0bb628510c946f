//! `ddcoterm-server verify ID`: re-checks a stored session end to end against what its rows recorded.
//!
//! The chain from its root: the stored create body hashes to the recorded root and chunk 0 carries that root,
//! then every chunk's SHA-256, each chunk's claim on the previous one, contiguity from 0, and for a compacted
//! session that the cast is exactly the chunks in order. Exit 0 when intact, 1 with every finding.

use anyhow::bail;
use ddcoterm_wire::{chain_root, chunk_hash};

use crate::ingest::{cast_key, validate_id};
use crate::state::AppState;

pub async fn run(st: &AppState, id: &str) -> anyhow::Result<()> {
    if validate_id(id).is_err() {
        bail!("session id {id:?} is invalid");
    }
    let Some(row) = st.meta.session_get(id).await? else { bail!("no session {id:?}") };
    let chunks = st.meta.chunks(id).await?;
    let mut problems = Vec::new();
    match (&row.create_body, &row.create_sha256) {
        (Some(body), Some(root)) => {
            if chain_root(body.as_bytes()) != *root {
                problems.push(format!(
                    "create body hashes to {}, recorded root {root}",
                    chain_root(body.as_bytes())
                ));
            }
            if let Some(c0) = chunks.first().filter(|c| c.seq == 0) {
                if c0.prev_sha256.as_deref() != Some(root.as_str()) {
                    problems.push("chunk 0: its chain root does not match the create body".to_string());
                }
            }
        }
        _ => problems.push("the create was never received (no chain root)".to_string()),
    }
    for (i, c) in chunks.iter().enumerate() {
        if c.seq != i as u64 {
            problems.push(format!("chunk {i} is missing (next stored is {})", c.seq));
            break;
        }
        if i > 0 && c.prev_sha256.as_deref() != Some(chunks[i - 1].sha256.as_str()) {
            problems.push(format!("chunk {i}: previous-chunk hash does not match chunk {}", i - 1));
        }
    }
    if row.compacted {
        let cast = st.objects.get(&cast_key(&row)).await?;
        let total: u64 = chunks.iter().map(|c| c.len).sum();
        if cast.len() as u64 != total {
            problems.push(format!("cast is {} bytes, chunks add up to {total}", cast.len()));
        } else {
            let mut at = 0usize;
            for c in &chunks {
                let end = at + c.len as usize;
                check(&mut problems, c.seq, &cast[at..end], &c.sha256, c.len);
                at = end;
            }
        }
    } else {
        for c in &chunks {
            match crate::packs::read_chunk(st, &row, c).await {
                Ok(b) => check(&mut problems, c.seq, &b, &c.sha256, c.len),
                Err(e) => problems.push(format!("chunk {}: {e}", c.seq)),
            }
        }
    }
    if let Some(last) = row.last_seq {
        if chunks.len() as u64 != last + 1 && row.compacted {
            problems.push(format!("session ended at chunk {last} but {} chunks are recorded", chunks.len()));
        }
    }
    if problems.is_empty() {
        println!(
            "{id}: intact: create and {} chunks, {} bytes, hash chain verified from the create, state {}{}",
            chunks.len(),
            row.bytes,
            row.state,
            if row.compacted { ", cast matches its chunks" } else { "" }
        );
        Ok(())
    } else {
        for p in &problems {
            println!("{id}: {p}");
        }
        bail!("{id}: {} problem(s) found", problems.len())
    }
}

fn check(problems: &mut Vec<String>, seq: u64, bytes: &[u8], want: &str, len: u64) {
    let got = chunk_hash(bytes);
    if got != want || bytes.len() as u64 != len {
        problems.push(format!(
            "chunk {seq}: stored bytes hash {got} ({} bytes), recorded {want} ({len})",
            bytes.len()
        ));
    }
}
