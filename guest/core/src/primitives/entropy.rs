//! Randomness comes in from the host: 64 bytes per operation, from which the
//! PKCE verifier, `state` and assertion `jti`s are derived.

use alloc::string::String;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Random bytes from the caller, for the PKCE verifier and `state`.
#[derive(Clone, PartialEq, Eq)]
pub struct Entropy(pub [u8; 64]);

impl core::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Entropy(<redacted>)")
    }
}

impl Entropy {
    /// Takes the first 64 bytes of `bytes`. Fewer, or all zeros (a host whose
    /// random source is missing or stubbed), is a configuration error: a
    /// predictable verifier and `state` would defeat PKCE and CSRF checks.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 64] = bytes
            .get(..64)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::InvalidConfig {
                reason: String::from("entropy must be at least 64 random bytes"),
            })?;
        if arr.iter().all(|b| *b == 0) {
            return Err(Error::InvalidConfig {
                reason: String::from("entropy must not be all zeros"),
            });
        }
        Ok(Self(arr))
    }

    /// 32 bytes for `purpose`, distinct per purpose and attempt.
    pub(crate) fn derive(&self, purpose: &str, attempt: u8) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(purpose.as_bytes());
        h.update([attempt]);
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_zero_entropy_is_refused() {
        assert!(Entropy::from_slice(&[7; 63]).is_err());
        assert!(Entropy::from_slice(&[0; 64]).is_err());
        assert!(Entropy::from_slice(&[0; 128]).is_err());
        let mut one = [0u8; 64];
        one[63] = 1;
        assert!(Entropy::from_slice(&one).is_ok());
    }

    #[test]
    fn derivations_differ_by_purpose_and_attempt() {
        let e = Entropy([9; 64]);
        assert_ne!(e.derive("pkce", 0), e.derive("state", 0));
        assert_ne!(e.derive("pkce", 0), e.derive("pkce", 1));
    }
}
