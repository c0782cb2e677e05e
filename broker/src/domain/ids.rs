//! Job and file identifiers. Both are UUIDv7 underneath, so ordering by id is ordering by
//! creation; distinct types keep a file's id from being passed where a job's is meant.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse_id;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id, ordered after every id made before it.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id in a path segment or query value, in the one spelling Baton accepts
            /// (see [`parse_id`]); `None` for anything else.
            pub fn parse(raw: &str) -> Option<Self> {
                parse_id(raw).map(Self)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A job's id (`jobs.id`).
    JobId
);

id_type!(
    /// An input file's id (`files.id`).
    FileId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_bare_uuids_and_parse_in_one_spelling() {
        let raw = "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b";
        let id = JobId::parse(raw).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{raw}\""));
        assert_eq!(id.to_string(), raw);
        assert!(FileId::parse(&raw.replace('-', "")).is_none());
    }
}
