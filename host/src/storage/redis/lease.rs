//! Locks as leases, and writes fenced by them (docs/store.md, "Locks are
//! leases; writes are fenced"). A lock is `SET <lock> <owner> NX PX <lease>`;
//! only its owner renews or releases it, and a record written under it is
//! written only while the lease is still the writer's and the record is still
//! at the version the writer read. A replica stopped or slow past its lease
//! therefore never overwrites the rotation another replica made meanwhile.

use std::time::{Duration, Instant};

/// Renews the lease if it is still ours: 1, else 0.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Deletes the lock only if it is still ours.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A record written under the lease: -1 when the lease is lost, -2 when the
/// record moved past the version read; else the new version.
pub const FENCED_SET: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[2]) then return -2 end
redis.call('HSET', KEYS[1], 'v', v + 1, 'd', ARGV[3])
return v + 1";

/// A record written without a lock: last writer wins, the version still moves.
pub const PLAIN_SET: &str = r"
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return v";

/// What a fenced write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Written: the record's new version.
    Written(u64),
    /// The lease was no longer the writer's.
    LeaseLost,
    /// Another writer moved the record past the version read.
    Stale,
}

impl Fenced {
    /// The script's answer.
    pub fn from_reply(n: i64) -> Self {
        match n {
            -1 => Self::LeaseLost,
            n if n < 0 => Self::Stale,
            n => Self::Written(n as u64),
        }
    }
}

/// A fresh owner value: the pid (for people reading the lock) and 128
/// random bits (so no two takers ever share one).
pub fn new_owner() -> String {
    let mut b = [0u8; 16];
    // Without OS randomness the pid and the time still tell owners apart.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}:{hex}", std::process::id())
}

/// How long a taker waits: a holder that died frees the lock when its lease
/// ends, so the wait outlasts one lease.
pub fn wait_deadline(lease_ms: u64) -> Duration {
    Duration::from_millis(lease_ms) + Duration::from_secs(10)
}

/// The pause before the next try: 10-50 ms, jittered so that waiters do not
/// retry in step; never past `deadline`.
pub fn pause(deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return None;
    }
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    let jitter = Duration::from_millis(10 + u64::from(b[0]) % 41);
    Some(jitter.min(deadline - now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_differ_and_name_the_process() {
        let (a, b) = (new_owner(), new_owner());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}:", std::process::id())));
        assert_eq!(a.len(), std::process::id().to_string().len() + 1 + 32);
    }

    #[test]
    fn replies_map_to_outcomes() {
        assert_eq!(Fenced::from_reply(-1), Fenced::LeaseLost);
        assert_eq!(Fenced::from_reply(-2), Fenced::Stale);
        assert_eq!(Fenced::from_reply(7), Fenced::Written(7));
    }

    #[test]
    fn pauses_stay_in_range_and_stop_at_the_deadline() {
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..200 {
            let p = pause(far).unwrap();
            assert!((10..=50).contains(&p.as_millis()), "{p:?}");
        }
        assert_eq!(pause(Instant::now()), None);
    }
}
