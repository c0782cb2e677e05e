//! Identifiers, statuses and kinds: parsed once at the edge, mapped by the database layer, and
//! trusted everywhere inside.

/// Maps an enum with `as_str` and `parse` to a TEXT column: the value travels as text, and a
/// word the enum does not know is a decoding error, never a guess.
macro_rules! stored_as_text {
    ($ty:ty, $what:literal) => {
        impl ::sqlx::Type<::sqlx::Postgres> for $ty {
            fn type_info() -> ::sqlx::postgres::PgTypeInfo {
                <&str as ::sqlx::Type<::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as ::sqlx::Type<::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl ::sqlx::Encode<'_, ::sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut ::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&str as ::sqlx::Encode<::sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Postgres> for $ty {
            fn decode(value: ::sqlx::postgres::PgValueRef<'r>) -> Result<Self, ::sqlx::error::BoxDynError> {
                let raw = <&str as ::sqlx::Decode<::sqlx::Postgres>>::decode(value)?;
                Self::parse(raw).ok_or_else(|| format!(concat!("`{}` is not ", $what), raw).into())
            }
        }
    };
}
use stored_as_text;

mod duration;
mod ids;
mod status;
mod timeline;

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::{
    duration::parse_duration,
    ids::{FileId, JobId},
    status::JobStatus,
    timeline::TimelineKind,
};

/// The owner every job and file belongs to until authentication assigns real ones.
pub const DEFAULT_OWNER: &str = "default";

/// Who a job or file belongs to. Owners appear in blob paths, so they are restricted to
/// `[a-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn default_owner() -> Self {
        Self(DEFAULT_OWNER.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A SHA-256 digest, held as 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn from_digest(bytes: &[u8]) -> Self {
        Self(hex::encode(bytes))
    }

    /// 64 lowercase hex characters, as in blob file names; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    /// A digest read back from Postgres, whose CHECK constraint guarantees the format.
    pub fn from_stored(hex: &str) -> Self {
        Self(hex.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a UUID from a path segment or query value; `None` for anything malformed.
///
/// Only the hyphenated form Baton itself writes (`8-4-4-4-12` hex digits, either case) is an id;
/// braced, URN and hyphen-less spellings are refused, so one job has one URL.
pub fn parse_id(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::try_parse(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_canonical_form() {
        let id = "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b";
        assert!(parse_id(id).is_some());
        assert!(parse_id(&id.to_uppercase()).is_some());
        assert!(parse_id(&format!("{{{id}}}")).is_none());
        assert!(parse_id(&format!("urn:uuid:{id}")).is_none());
        assert!(parse_id(&id.replace('-', "")).is_none());
        assert!(parse_id("").is_none());
    }

    #[test]
    fn owners_are_path_safe() {
        assert!(Owner::parse("team-a_1").is_some());
        for bad in ["", "A", "a/b", "..", "a.b", &"a".repeat(65)] {
            assert!(Owner::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn digests_are_lowercase_hex_of_the_right_length() {
        assert!(Sha256Hex::parse(&"ab".repeat(32)).is_some());
        for bad in ["", "ab", &"AB".repeat(32), &"g".repeat(64), &"a".repeat(65)] {
            assert!(Sha256Hex::parse(bad).is_none(), "{bad:?}");
        }
    }
}
