//! The table of hostile requests: each breaks one rule and names the answer it must get.

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};

mod buffering;
mod read;
mod submit;

pub use buffering::buffering_cases;
pub use read::read_cases;
pub use submit::form_cases;

use crate::form::content_type;

/// The limits of the app under attack (flags of `baton serve`).
pub const APP_FLAGS: &[&str] = &[
    "--max-file-bytes",
    "1MiB",
    "--max-job-bytes",
    "2MiB",
    "--max-files",
    "4",
    "--max-params-bytes",
    "4KiB",
    "--upload-min-rate",
    "1KiB",
    "--upload-rate-window",
    "2s",
    "--header-read-timeout",
    "2s",
];
pub(super) const MIB: usize = 1 << 20;

pub struct Case {
    pub name: String,
    pub head: String,
    pub body: Body,
    pub status: u16,
    pub code: &'static str,
}

pub enum Body {
    Bytes(Vec<u8>),
    /// `prefix`, then `chunk` `count` times: large bodies without holding them.
    Repeat {
        prefix: Vec<u8>,
        chunk: Bytes,
        count: usize,
    },
}

impl Body {
    pub fn into_stream(self) -> BoxStream<'static, Bytes> {
        match self {
            Body::Bytes(bytes) => futures::stream::iter([Bytes::from(bytes)]).boxed(),
            Body::Repeat { prefix, chunk, count } => futures::stream::iter([Bytes::from(prefix)])
                .chain(futures::stream::repeat(chunk).take(count))
                .boxed(),
        }
    }
}

pub(super) fn submit(name: impl Into<String>, body: Vec<u8>, status: u16, code: &'static str) -> Case {
    submit_with(name, &[], body, status, code)
}

pub(super) fn submit_with(
    name: impl Into<String>,
    extra: &[(&str, String)],
    body: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Case {
    let mut headers = vec![("content-type", content_type())];
    headers.extend(extra.iter().cloned());
    Case {
        name: name.into(),
        head: crate::raw::request("POST", "/v1/jobs", &headers, Some(body.len())),
        body: Body::Bytes(body),
        status,
        code,
    }
}

pub(super) fn get(path: &str, status: u16, code: &'static str) -> Case {
    request("GET", path, status, code)
}

pub(super) fn request(method: &str, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        name: format!("{method} {path}"),
        head: crate::raw::request(method, path, &[], Some(0)),
        body: Body::Bytes(Vec::new()),
        status,
        code,
    }
}
