//! What a group commit does with its batch of chunk rows, decided once for the whole batch.
//!
//! `MetaStore::chunks_commit` used to run five to seven statements per row (lock, look up, insert, read the
//! commit point, walk it, update), one round trip each, while every request of the batch waited: on
//! PostgreSQL a batch of 200 rows was 1,400 sequential round trips, the ingest ceiling under load. A store
//! now reads what the batch needs in a few set-wide statements, asks [`plan`] what each row becomes, inserts
//! the new rows in one statement, and updates each session once. The outcomes are the ones the per-row code
//! gave: a row already stored is `Exists` (also a second copy within the batch), a chunk 0 whose previous
//! hash is not the session's chain root is `Refused`, anything else is inserted and answered with its
//! session's commit point after the whole batch (all of it commits in the same transaction).

use std::collections::HashMap;

use super::{ChunkInsert, ChunkRow};

/// What the batch needs to know about one of its sessions (locked for the transaction's length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub committed_seq: i64,
    pub create_sha256: Option<String>,
}

/// The decision for one row of the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Insert,
    Exists(ChunkRow),
    Refused(String),
}

/// Decides every row of `batch` (in order) given the rows already stored with the same (session, seq)
/// (`existing`) and the sessions' chain roots.
pub fn plan(
    batch: &[(String, ChunkRow)],
    existing: &HashMap<(String, u64), ChunkRow>,
    sessions: &HashMap<String, SessionState>,
) -> Vec<Decision> {
    let mut inserted: HashMap<(&str, u64), &ChunkRow> = HashMap::new();
    batch
        .iter()
        .map(|(id, c)| {
            if let Some(r) = existing.get(&(id.clone(), c.seq)) {
                return Decision::Exists(r.clone());
            }
            if let Some(r) = inserted.get(&(id.as_str(), c.seq)) {
                return Decision::Exists((*r).clone());
            }
            if c.seq == 0 {
                if let Some(root) = sessions.get(id).and_then(|s| s.create_sha256.as_deref()) {
                    if c.prev_sha256.as_deref() != Some(root) {
                        return Decision::Refused(format!(
                            "chunk 0: header {} does not match the SHA-256 of the session's create body",
                            ddcoterm_wire::PREV_HASH_HEADER
                        ));
                    }
                }
            }
            inserted.insert((id.as_str(), c.seq), c);
            Decision::Insert
        })
        .collect()
}

/// Per session with rows to insert: (number of bytes added). Sessions in first-seen order.
pub fn added_bytes<'a>(batch: &'a [(String, ChunkRow)], plan: &[Decision]) -> Vec<(&'a str, u64)> {
    let mut out: Vec<(&str, u64)> = Vec::new();
    for ((id, c), d) in batch.iter().zip(plan) {
        if *d != Decision::Insert {
            continue;
        }
        match out.iter_mut().find(|(s, _)| *s == id.as_str()) {
            Some((_, b)) => *b += c.len,
            None => out.push((id.as_str(), c.len)),
        }
    }
    out
}

/// Every pack the batch's rows name, with how many of its rows are inserted (0 when all were already
/// stored: the pack is sealed with no reader, and swept). In first-named order.
pub fn pack_holds(batch: &[(String, ChunkRow)], plan: &[Decision]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for ((_, c), d) in batch.iter().zip(plan) {
        let Some(p) = &c.pack else { continue };
        let add = i64::from(*d == Decision::Insert);
        match out.iter_mut().find(|(k, _)| *k == p.key) {
            Some((_, n)) => *n += add,
            None => out.push((p.key.clone(), add)),
        }
    }
    out
}

/// The answers, given each session's commit point after the batch's rows are in.
pub fn outcomes(
    batch: &[(String, ChunkRow)],
    plan: Vec<Decision>,
    committed: &HashMap<String, i64>,
) -> Vec<ChunkInsert> {
    batch
        .iter()
        .zip(plan)
        .map(|((id, _), d)| match d {
            Decision::Insert => ChunkInsert::Inserted {
                committed_seq: committed.get(id).and_then(|&c| u64::try_from(c).ok()),
            },
            Decision::Exists(r) => ChunkInsert::Exists(r),
            Decision::Refused(why) => ChunkInsert::Refused(why),
        })
        .collect()
}

/// SQL that walks each listed session's commit point forward over the chunks stored contiguously after it:
/// `id`, new `committed_seq`. The session ids come from the backend's own set expression in place of
/// `{ids}`. SQLite's planner looks each next chunk up by its primary key whatever the table's size.
pub fn advance_sql(ids: &str) -> String {
    format!(
        "WITH RECURSIVE walk(id, c) AS ( \
           SELECT id, committed_seq FROM sessions WHERE id IN ({ids}) \
           UNION ALL \
           SELECT w.id, w.c + 1 FROM walk w JOIN chunks ch ON ch.session_id = w.id AND ch.seq = w.c + 1 \
         ) SELECT id, max(c) FROM walk GROUP BY id"
    )
}

/// [`advance_sql`] for PostgreSQL, with the session ids as the text array `$1`. Each step looks the next
/// chunk up through a `LATERAL ... LIMIT 1` subquery, which PostgreSQL can only run as a primary-key probe
/// per walked row. The plain join let it hash the whole `chunks` table at every step instead. That is
/// PostgreSQL's plan for a small table, and a prepared statement keeps its generic plan while the table
/// grows. In a 60 s bench run this statement's mean time grew to 5 ms per batch.
pub const ADVANCE_SQL_PG: &str = "WITH RECURSIVE walk(id, c) AS ( \
       SELECT id, committed_seq FROM sessions WHERE id = ANY($1::text[]) \
       UNION ALL \
       SELECT w.id, w.c + 1 FROM walk w CROSS JOIN LATERAL \
         (SELECT 1 FROM chunks ch WHERE ch.session_id = w.id AND ch.seq = w.c + 1 LIMIT 1) AS next \
     ) SELECT id, max(c) FROM walk GROUP BY id";

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64, sha: &str, prev: &str) -> ChunkRow {
        ChunkRow { seq, sha256: sha.into(), prev_sha256: Some(prev.into()), len: 10 + seq, pack: None }
    }

    fn packed(seq: u64, sha: &str, pack: &str) -> ChunkRow {
        let pack = Some(super::super::PackRef { key: pack.into(), offset: seq * 100 });
        ChunkRow { pack, ..row(seq, sha, "p") }
    }

    #[test]
    fn a_pack_holds_one_read_per_inserted_row_and_is_sealed_even_with_none() {
        let batch = vec![
            ("a".to_string(), packed(1, "a1", "k1")),
            ("b".to_string(), packed(1, "b1", "k1")),
            ("c".to_string(), row(1, "c1", "p")),
            ("d".to_string(), packed(7, "d7", "k2")),
        ];
        let plan =
            vec![Decision::Insert, Decision::Insert, Decision::Insert, Decision::Exists(row(7, "d7", "p"))];
        assert_eq!(pack_holds(&batch, &plan), vec![("k1".to_string(), 2), ("k2".to_string(), 0)]);
    }

    #[test]
    fn each_row_gets_the_outcome_the_per_row_commit_gave() {
        let batch = vec![
            ("a".to_string(), row(0, "a0", "root-a")),
            ("a".to_string(), row(1, "a1", "a0")),
            ("b".to_string(), row(0, "b0", "not-the-root")),
            ("c".to_string(), row(3, "c3", "c2")),
            ("c".to_string(), row(3, "c3-again", "c2")),
            ("d".to_string(), row(5, "d5", "d4")),
        ];
        let stored = row(3, "c3-stored", "c2");
        let existing = HashMap::from([(("c".to_string(), 3), stored.clone())]);
        let sessions = HashMap::from([
            ("a".to_string(), SessionState { committed_seq: -1, create_sha256: Some("root-a".into()) }),
            ("b".to_string(), SessionState { committed_seq: -1, create_sha256: Some("root-b".into()) }),
            ("c".to_string(), SessionState { committed_seq: 2, create_sha256: None }),
            ("d".to_string(), SessionState { committed_seq: 1, create_sha256: None }),
        ]);
        let p = plan(&batch, &existing, &sessions);
        assert_eq!(p[0], Decision::Insert);
        assert_eq!(p[1], Decision::Insert);
        assert!(matches!(&p[2], Decision::Refused(why) if why.contains("chunk 0")), "{:?}", p[2]);
        assert_eq!(p[3], Decision::Exists(stored.clone()));
        assert_eq!(p[4], Decision::Exists(stored));
        assert_eq!(p[5], Decision::Insert, "a chunk past a gap is stored; the commit point waits");
        assert_eq!(added_bytes(&batch, &p), vec![("a", 10 + 11), ("d", 15)]);
        let committed = HashMap::from([("a".to_string(), 1), ("d".to_string(), 1)]);
        let out = outcomes(&batch, p, &committed);
        assert_eq!(out[0], ChunkInsert::Inserted { committed_seq: Some(1) });
        assert_eq!(out[1], ChunkInsert::Inserted { committed_seq: Some(1) });
        assert_eq!(out[5], ChunkInsert::Inserted { committed_seq: Some(1) });
    }

    #[test]
    fn a_second_copy_within_one_batch_is_the_first_one() {
        let batch = vec![("a".to_string(), row(2, "x", "p")), ("a".to_string(), row(2, "y", "p"))];
        let p = plan(&batch, &HashMap::new(), &HashMap::new());
        assert_eq!(p, vec![Decision::Insert, Decision::Exists(row(2, "x", "p"))]);
        assert_eq!(added_bytes(&batch, &p), vec![("a", 12)]);
    }

    #[test]
    fn no_commit_point_yet_is_none() {
        let batch = vec![("a".to_string(), row(4, "x", "p"))];
        let out = outcomes(&batch, vec![Decision::Insert], &HashMap::from([("a".to_string(), -1)]));
        assert_eq!(out, vec![ChunkInsert::Inserted { committed_seq: None }]);
    }
}
