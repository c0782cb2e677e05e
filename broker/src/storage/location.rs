//! Where blobs are kept: `BATON_STORAGE_URL` parsed once, and the name each blob row records.

use std::{fmt, path::PathBuf};

/// A store as configured: the shared volume at a directory, an S3 bucket or an Azure Blob
/// container, each object store with an optional key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Volume(PathBuf),
    S3 { bucket: String, prefix: String },
    Azure { container: String, prefix: String },
}

/// The name a blob row records for its store: `volume`, `s3://bucket/prefix` or
/// `az://container/prefix` (no trailing slash). Every replica resolves a name the same way, so
/// a row says where its bytes are whichever replica reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreName(String);

impl StoreName {
    pub const VOLUME: &'static str = "volume";

    pub fn volume() -> Self {
        Self(Self::VOLUME.to_owned())
    }

    /// A name read back from a row (written by [`StoreUrl::name`]).
    pub fn from_stored(name: &str) -> Self {
        Self(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_volume(&self) -> bool {
        self.0 == Self::VOLUME
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StoreUrl {
    /// Parses a directory (`/data`, `./data`, `file:///data`), `s3://bucket[/prefix]` or
    /// `az://container[/prefix]`. Errors say what to fix.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty: give a directory, s3://bucket/prefix or az://container/prefix".into());
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest, "s3")?;
            return Ok(Self::S3 { bucket, prefix });
        }
        if let Some(rest) = raw.strip_prefix("az://").or_else(|| raw.strip_prefix("azure://")) {
            let (container, prefix) = split_bucket(rest, "az")?;
            return Ok(Self::Azure { container, prefix });
        }
        if let Some(path) = raw.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!("`{raw}`: a file URL needs an absolute path (file:///data)"));
            }
            return Ok(Self::Volume(PathBuf::from(path)));
        }
        if raw.contains("://") {
            return Err(format!(
                "`{raw}`: unknown scheme; give a directory, s3://bucket/prefix or az://container/prefix"
            ));
        }
        Ok(Self::Volume(PathBuf::from(raw)))
    }

    pub fn name(&self) -> StoreName {
        match self {
            Self::Volume(_) => StoreName::volume(),
            Self::S3 { bucket, prefix } => StoreName(join_name("s3", bucket, prefix)),
            Self::Azure { container, prefix } => StoreName(join_name("az", container, prefix)),
        }
    }

    /// The URL of a named store, for opening a store a row names. The volume has no URL of
    /// its own: it is wherever this replica mounts it.
    pub fn from_name(name: &StoreName) -> Option<Self> {
        if name.is_volume() {
            return None;
        }
        Self::parse(name.as_str()).ok()
    }
}

fn split_bucket(rest: &str, scheme: &str) -> Result<(String, String), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!(
            "`{scheme}://{bucket}`: a bucket or container name is 3 to 63 lowercase letters, digits, `-` or `.`"
        ));
    }
    let prefix = prefix.trim_matches('/');
    let segments_ok = prefix.is_empty()
        || prefix.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if !segments_ok {
        return Err(format!(
            "`{scheme}://{bucket}/{prefix}`: a prefix is `/`-separated names of letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

fn join_name(scheme: &str, bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("{scheme}://{bucket}")
    } else {
        format!("{scheme}://{bucket}/{prefix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_to_canonical_names() {
        let cases = [
            ("/data", "volume"),
            ("./data", "volume"),
            ("file:///srv/baton", "volume"),
            ("s3://bucket", "s3://bucket"),
            ("s3://my-bucket/baton/prod/", "s3://my-bucket/baton/prod"),
            ("az://container/p", "az://container/p"),
            ("azure://container//p//", "az://container/p"),
        ];
        for (raw, name) in cases {
            let url = StoreUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.name().as_str(), name, "{raw}");
            if name != "volume" {
                assert_eq!(StoreUrl::from_name(&url.name()), Some(url));
            }
        }
    }

    #[test]
    fn unusable_store_urls_are_refused() {
        for raw in [
            "",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://bucket/../x",
            "s3://bucket/a b",
            "gs://bucket",
            "file://relative",
        ] {
            assert!(StoreUrl::parse(raw).is_err(), "{raw:?} must be refused");
        }
    }
}
