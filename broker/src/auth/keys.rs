//! API keys: `baton_<id>_<secret>`, where `id` is a short lookup name shown in listings and
//! `secret` is 32 random bytes (256 bits) in unpadded base64url. Postgres holds only the SHA-256
//! of the whole token.
//!
//! Lookups are cached per replica for [`CACHE_TTL`]: a revoked key stops working everywhere
//! within that time (expiry is checked on every request, cached or not).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{AuthError, Identity, Role};
use crate::{
    db::{self, keys::KeyRow},
    domain::Owner,
};

/// Every token starts with this, so leaked keys are easy to recognise and scan for.
pub const PREFIX: &str = "baton_";

/// Id of the key `BATON_BOOTSTRAP_ADMIN_SECRET` configures.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// How long a replica trusts a key it looked up: the most a revocation takes to reach it.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// How often a key's `last_used_at` is written, at most.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// Most cached keys; the cache starts over when full.
const CACHE_CAPACITY: usize = 10_000;

/// A new key: the token to hand out once, and what is stored.
pub struct NewKey {
    pub id: String,
    pub token: String,
    pub secret_sha256: String,
}

/// Makes a key with a random id (12 lowercase hex digits) and secret.
pub fn generate() -> NewKey {
    let mut id = [0_u8; 6];
    let mut secret = [0_u8; 32];
    getrandom::fill(&mut id).expect("the operating system's random source works");
    getrandom::fill(&mut secret).expect("the operating system's random source works");
    with_id(&hex::encode(id), &URL_SAFE_NO_PAD.encode(secret))
}

/// A key with a chosen id and secret (the bootstrap key, whose secret a deployment generates).
pub fn with_id(id: &str, secret: &str) -> NewKey {
    let token = format!("{PREFIX}{id}_{secret}");
    NewKey {
        id: id.to_owned(),
        secret_sha256: digest(&token),
        token,
    }
}

/// Whether a bearer credential is meant as an API key (rather than a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// Whether `id` is a valid key id: 1 to 32 lowercase letters and digits.
pub fn is_valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The key id of a token, if it has the shape of one.
fn id_of(token: &str) -> Option<&str> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    (is_valid_id(id) && secret.len() >= 32).then_some(id)
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Clone)]
struct Cached {
    row: KeyRow,
    fetched: Instant,
}

/// Keys, looked up in Postgres and cached briefly.
#[derive(Clone)]
pub struct KeyStore {
    db: PgPool,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    last_used: Arc<Mutex<HashMap<String, Instant>>>,
}

impl KeyStore {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            cache: Arc::default(),
            last_used: Arc::default(),
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = || AuthError::Invalid("the API key is unknown, revoked or expired".into());
        let id = id_of(token).ok_or_else(invalid)?;
        let row = self.lookup(id).await?.ok_or_else(invalid)?;
        let now = OffsetDateTime::now_utc();
        let usable = row.revoked_at.is_none() && row.expires_at.is_none_or(|expires| expires > now);
        if !usable || !same_digest(&row.secret_sha256, &digest(token)) {
            return Err(invalid());
        }
        let role = Role::parse(&row.role).ok_or_else(invalid)?;
        let owner = Owner::parse(&row.owner).ok_or_else(invalid)?;
        self.note_use(id);
        Ok(Identity {
            owner,
            role,
            subject: format!("key:{id}"),
        })
    }

    async fn lookup(&self, id: &str) -> Result<Option<KeyRow>, AuthError> {
        if let Some(hit) = self.cache.lock().expect("cache lock").get(id)
            && hit.fetched.elapsed() < CACHE_TTL
        {
            return Ok(Some(hit.row.clone()));
        }
        let row = db::keys::get(&self.db, id).await.map_err(|error| {
            tracing::warn!(%error, "cannot look up an API key");
            AuthError::Unavailable("Baton cannot check API keys right now; retry shortly".into())
        })?;
        if let Some(row) = &row {
            let mut cache = self.cache.lock().expect("cache lock");
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            let cached = Cached {
                row: row.clone(),
                fetched: Instant::now(),
            };
            cache.insert(id.to_owned(), cached);
        }
        Ok(row)
    }

    /// Records the key's use in the background, at most once a minute per key and replica.
    fn note_use(&self, id: &str) {
        {
            let mut last_used = self.last_used.lock().expect("last-used lock");
            if last_used.get(id).is_some_and(|at| at.elapsed() < LAST_USED_EVERY) {
                return;
            }
            if last_used.len() >= CACHE_CAPACITY {
                last_used.clear();
            }
            last_used.insert(id.to_owned(), Instant::now());
        }
        let (db, id) = (self.db.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(error) = db::keys::touch(&db, &id).await {
                tracing::debug!(%error, key = %id, "cannot record an API key's last use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_carry_256_random_bits_behind_a_prefix_and_id() {
        let a = generate();
        let b = generate();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(PREFIX));
        assert_eq!(id_of(&a.token), Some(a.id.as_str()));
        let secret = a.token[PREFIX.len() + a.id.len() + 1..].to_owned();
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).map(|s| s.len()), Ok(32));
        assert_eq!(a.secret_sha256, digest(&a.token));
        assert!(!a.token.contains(&a.secret_sha256));
    }

    #[test]
    fn tokens_of_the_wrong_shape_have_no_id() {
        for bad in [
            "baton_",
            "baton_abc",
            "baton_ABC_0123456789012345678901234567890123",
            "token",
        ] {
            assert_eq!(id_of(bad), None, "{bad}");
        }
        assert!(same_digest("ab", "ab"));
        assert!(!same_digest("ab", "ac"));
        assert!(!same_digest("ab", "abc"));
    }
}
