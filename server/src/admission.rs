//! A bound on request bodies held in memory (`limits.max_inflight_bytes`): past it, ingest answers 503 with
//! `Retry-After` instead of queueing without limit, so a burst of hosts costs latency on the hosts' side
//! (their spools keep the chunks and retry) rather than server memory.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult, RETRY_BUSY_SECS};

/// Budget in KiB (a semaphore counts in u32 permits).
pub struct Admission {
    budget_kib: u32,
    sem: Arc<Semaphore>,
}

/// Held for as long as the request's body is; returns its share of the budget when dropped.
#[derive(Debug)]
pub struct Admitted {
    permit: OwnedSemaphorePermit,
    sem: Arc<Semaphore>,
    budget_kib: u32,
}

impl Admitted {
    /// Grows the reservation to `bytes` (a gzip body once decoded); 503 when the budget cannot cover it.
    pub fn grow_to(&mut self, bytes: u64) -> ApiResult<()> {
        let want = kib(bytes).min(self.budget_kib);
        let have = self.permit.num_permits() as u32;
        if want <= have {
            return Ok(());
        }
        match self.sem.clone().try_acquire_many_owned(want - have) {
            Ok(more) => {
                self.permit.merge(more);
                Ok(())
            }
            Err(_) => Err(busy(self.budget_kib, &self.sem)),
        }
    }
}

fn busy(budget_kib: u32, sem: &Semaphore) -> ApiError {
    ApiError::retry(
        RETRY_BUSY_SECS,
        format!(
            "server busy: {} KiB of request bodies in flight (limits.max_inflight_bytes); retry later",
            budget_kib.saturating_sub(sem.available_permits() as u32)
        ),
    )
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

impl Admission {
    pub fn new(max_bytes: u64) -> Admission {
        let budget_kib = kib(max_bytes);
        Admission { budget_kib, sem: Arc::new(Semaphore::new(budget_kib as usize)) }
    }

    /// Reserves room for a body: its `Content-Length` (as sent: a gzip body is grown with
    /// [`Admitted::grow_to`] once decoded), or `limit` when the length is not given. 503 + `Retry-After`
    /// when the budget is spent.
    pub fn admit(&self, headers: &HeaderMap, limit: u64) -> ApiResult<Admitted> {
        let len = content_length(headers);
        let want = kib(len.map_or(limit, |n| n.min(limit))).min(self.budget_kib);
        match self.sem.clone().try_acquire_many_owned(want) {
            Ok(permit) => Ok(Admitted { permit, sem: self.sem.clone(), budget_kib: self.budget_kib }),
            Err(_) => Err(busy(self.budget_kib, &self.sem)),
        }
    }
}

/// The request's Content-Length, when it is given and a number: what [`Admission::admit`] reserves for, and
/// what `api::read_body` sizes its buffer by.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_is_503_until_a_body_is_released() {
        let a = Admission::new(64 << 10);
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "40000".parse().unwrap());
        let first = a.admit(&h, 1 << 20).unwrap();
        let e = a.admit(&h, 1 << 20).unwrap_err();
        assert_eq!(e.status.as_u16(), 503);
        assert_eq!(e.retry_after, Some(RETRY_BUSY_SECS));
        assert!(e.message.contains("limits.max_inflight_bytes"), "{}", e.message);
        drop(first);
        let _second = a.admit(&h, 1 << 20).unwrap();
        // No length: the whole limit is reserved, capped at the budget.
        let none = HeaderMap::new();
        assert!(a.admit(&none, 1 << 20).is_err());
        // A body that grows once decoded needs room for what it decodes to.
        drop(_second);
        let mut small = a.admit(&h, 1 << 20).unwrap();
        small.grow_to(60 << 10).unwrap();
        assert!(a.admit(&h, 1 << 20).is_err());
        assert_eq!(small.grow_to(200 << 10).map(|_| ()).ok(), Some(()), "capped at the budget");
    }
}
