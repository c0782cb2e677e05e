//! Large bodies, for the memory measurement: each must be refused without being buffered.

use bytes::Bytes;

use super::{Body, Case, MIB};
use crate::form::{BOUNDARY, FormBytes, content_type};

/// Bodies that try to make Baton buffer. Chunked ones are 64 MiB (no length to refuse up
/// front); ones with a Content-Length declare the most the app accepts (about 2.2 MiB).
pub fn buffering_cases() -> Vec<Case> {
    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
    let huge = |name: &str, prefix: Vec<u8>, status: u16, code: &'static str, chunked: bool| {
        let headers = vec![("content-type", content_type())];
        let (head, body) = if chunked {
            let body = Body::Repeat {
                prefix,
                chunk: chunk.clone(),
                count: 64 * 16,
            };
            let mut headers = headers;
            headers.push(("transfer-encoding", "chunked".to_owned()));
            (
                crate::raw::request("POST", "/v1/jobs", &headers, None),
                chunked_body(body),
            )
        } else {
            let declared = MAX_BODY_BYTES;
            let count = (declared - prefix.len()) / chunk.len();
            let filler = declared - prefix.len() - count * chunk.len();
            let body = Body::Repeat {
                prefix: [prefix, vec![b'z'; filler]].concat(),
                chunk: chunk.clone(),
                count,
            };
            (crate::raw::request("POST", "/v1/jobs", &headers, Some(declared)), body)
        };
        let kind = if chunked { "chunked" } else { "with a length" };
        Case {
            name: format!("{name}, {kind}"),
            head,
            body,
            status,
            code,
        }
    };
    let header_never_ends =
        || format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\nX-Long: ").into_bytes();
    let text_never_ends =
        || format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n").into_bytes();
    let file_never_ends = || {
        FormBytes::default()
            .text("model", "example")
            .raw(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"input\"; filename=\"a\"\r\n\r\n")
                    .as_bytes(),
            )
            .open()
    };
    let mut cases = Vec::new();
    for chunked in [false, true] {
        cases.push(huge(
            "no boundary at all",
            Vec::new(),
            413,
            "part_headers_too_large",
            chunked,
        ));
        cases.push(huge(
            "part headers that never end",
            header_never_ends(),
            413,
            "part_headers_too_large",
            chunked,
        ));
        cases.push(huge(
            "a text part that never ends",
            text_never_ends(),
            413,
            "params_too_large",
            chunked,
        ));
        cases.push(huge(
            "a file over the file limit",
            file_never_ends(),
            413,
            "file_too_large",
            chunked,
        ));
    }
    cases
}

/// The largest body the app takes (`Limits::max_body_bytes` for [`APP_FLAGS`]): files, params
/// and 16 KiB of part overhead for each of up to 4 + 8 parts.
const MAX_BODY_BYTES: usize = 2 * MIB + 4 * 1024 + 16 * 1024 * 12;

/// Frames a body in HTTP/1.1 chunked encoding, one chunk per piece.
fn chunked_body(body: Body) -> Body {
    let Body::Repeat { prefix, chunk, count } = body else {
        unreachable!("only repeated bodies are sent chunked here");
    };
    let frame = |data: &[u8]| [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
    Body::Repeat {
        prefix: if prefix.is_empty() { Vec::new() } else { frame(&prefix) },
        chunk: Bytes::from(frame(&chunk)),
        count,
    }
}
