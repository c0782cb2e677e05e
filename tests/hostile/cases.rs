//! The table of hostile requests: each breaks one rule and names the answer it must get.

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};

use crate::form::{BOUNDARY, FormBytes, content_type};

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
const MIB: usize = 1 << 20;

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

fn submit(name: impl Into<String>, body: Vec<u8>, status: u16, code: &'static str) -> Case {
    submit_with(name, &[], body, status, code)
}

fn submit_with(
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

fn get(path: &str, status: u16, code: &'static str) -> Case {
    request("GET", path, status, code)
}

fn request(method: &str, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        name: format!("{method} {path}"),
        head: crate::raw::request(method, path, &[], Some(0)),
        body: Body::Bytes(Vec::new()),
        status,
        code,
    }
}

/// Forms that break one rule of the form.
pub fn form_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let file = |form: FormBytes| form.file("input", "a.txt", b"hello");

    // Framing.
    cases.push(submit("empty body", Vec::new(), 400, "invalid_multipart"));
    cases.push(submit(
        "only the closing boundary",
        FormBytes::default().close(),
        400,
        "missing_model",
    ));
    cases.push(submit(
        "no closing boundary",
        FormBytes::valid().open(),
        400,
        "invalid_multipart",
    ));
    cases.push(submit(
        "a part header that is not a header",
        FormBytes::default()
            .raw(format!("--{BOUNDARY}\r\nnot a header\r\n\r\nx\r\n").as_bytes())
            .close(),
        400,
        "invalid_multipart",
    ));
    cases.push(submit(
        "garbage right after the boundary",
        FormBytes::default()
            .raw(format!("--{BOUNDARY}garbage").as_bytes())
            .close(),
        400,
        "invalid_multipart",
    ));
    cases.push(submit(
        "a body with no boundary at all",
        b"just some bytes, no form here".to_vec(),
        400,
        "invalid_multipart",
    ));
    cases.push(submit(
        "bytes after the closing boundary",
        FormBytes::valid()
            .raw(format!("--{BOUNDARY}--\r\nand more").as_bytes())
            .open(),
        400,
        "trailing_bytes",
    ));
    cases.push(submit(
        "a second form after the closing boundary",
        [FormBytes::valid().close(), FormBytes::valid().close()].concat(),
        400,
        "trailing_bytes",
    ));
    for (name, content_type) in [
        ("no content type", None),
        ("a JSON content type", Some("application/json")),
        ("multipart without a boundary", Some("multipart/form-data")),
        ("multipart/mixed", Some("multipart/mixed; boundary=x")),
        ("an unparsable content type", Some(";;;===")),
    ] {
        let body = FormBytes::valid().close();
        let headers: Vec<(&str, String)> = content_type
            .map(|c| ("content-type", c.to_owned()))
            .into_iter()
            .collect();
        cases.push(Case {
            name: name.into(),
            head: crate::raw::request("POST", "/v1/jobs", &headers, Some(body.len())),
            body: Body::Bytes(body),
            status: 415,
            code: "unsupported_media_type",
        });
    }

    // model.
    cases.push(submit(
        "no model",
        file(FormBytes::default()).close(),
        400,
        "missing_model",
    ));
    for (label, model) in [
        ("empty", ""),
        ("upper case", "Example"),
        ("a slash", "a/b"),
        ("a leading dot", ".hidden"),
        ("a space", "a b"),
        ("a NUL", "a\0b"),
        ("unicode", "modèle"),
        ("65 characters", &"m".repeat(65)),
        ("path traversal", "../../etc"),
    ] {
        let form = file(FormBytes::default().text("model", model)).close();
        cases.push(submit(format!("model with {label}"), form, 400, "invalid_model"));
    }
    cases.push(submit(
        "model that is not UTF-8",
        file(FormBytes::default().raw_text("model", b"ex\xffample")).close(),
        400,
        "invalid_text",
    ));
    cases.push(submit(
        "model twice",
        FormBytes::valid().text("model", "example").close(),
        400,
        "duplicate_field",
    ));

    // params.
    for (label, params) in [
        ("not JSON", "{"),
        ("an array", "[1,2]"),
        ("a number", "42"),
        ("a string", "\"x\""),
        ("null", "null"),
        ("an escaped NUL in a value", r#"{"a":"\u0000"}"#),
        ("an escaped NUL in a key", r#"{"\u0000":1}"#),
        ("a nested escaped NUL", r#"{"a":[{"b":"x\u0000"}]}"#),
        ("trailing garbage", r#"{"a":1} x"#),
    ] {
        let form = FormBytes::valid().text("params", params).close();
        cases.push(submit(format!("params {label}"), form, 400, "invalid_params"));
    }
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(5000));
    cases.push(submit(
        "params over the limit",
        FormBytes::valid().text("params", &big).close(),
        413,
        "params_too_large",
    ));
    cases.push(submit(
        "params twice",
        FormBytes::valid().text("params", "{}").text("params", "{}").close(),
        400,
        "duplicate_field",
    ));

    // Options.
    for value in ["0", "21", "-1", "abc", "1.5", "99999999999999999999", "", " "] {
        let form = FormBytes::valid().text("max_attempts", value).close();
        cases.push(submit(
            format!("max_attempts {value:?}"),
            form,
            400,
            "invalid_max_attempts",
        ));
    }
    cases.push(submit(
        "max_attempts of 65 characters",
        FormBytes::valid().text("max_attempts", &"1".repeat(65)).close(),
        400,
        "invalid_option",
    ));
    for field in ["queue_timeout", "run_timeout"] {
        for value in [
            "0s",
            "31d",
            "213503982334602d",
            "10",
            "abc",
            "-5s",
            "1.5.5s",
            "",
            "18446744073709551616s",
        ] {
            let form = FormBytes::valid().text(field, value).close();
            cases.push(submit(format!("{field} {value:?}"), form, 400, "invalid_timeout"));
        }
    }
    cases.push(submit(
        "an unknown text part",
        FormBytes::valid().text("colour", "red").close(),
        400,
        "unknown_field",
    ));
    cases.push(submit(
        "an unnamed text part",
        FormBytes::valid().part(b"Content-Disposition: form-data", b"x").close(),
        400,
        "unknown_field",
    ));

    // File parts.
    cases.push(submit(
        "no file",
        FormBytes::default().text("model", "example").close(),
        400,
        "missing_files",
    ));
    cases.push(submit(
        "a file part with an empty name",
        FormBytes::default()
            .text("model", "example")
            .file("", "a.txt", b"x")
            .close(),
        400,
        "invalid_input_name",
    ));
    cases.push(submit(
        "a file part with a 129-byte name",
        FormBytes::default()
            .text("model", "example")
            .file(&"n".repeat(129), "a.txt", b"x")
            .close(),
        400,
        "invalid_input_name",
    ));
    cases.push(submit(
        "a file part whose name has a tab",
        FormBytes::default()
            .text("model", "example")
            .file("a\tb", "a.txt", b"x")
            .close(),
        400,
        "invalid_input_name",
    ));
    cases.push(submit(
        "a part header with a control character",
        FormBytes::default()
            .text("model", "example")
            .file("a\u{7}b", "a.txt", b"x")
            .close(),
        400,
        "invalid_multipart",
    ));
    cases.push(submit(
        "two files under one name",
        FormBytes::valid().file("input", "b.txt", b"other").close(),
        400,
        "duplicate_input_name",
    ));
    cases.push(submit(
        "a filename that is not UTF-8",
        FormBytes::default()
            .text("model", "example")
            .part(
                b"Content-Disposition: form-data; name=\"input\"; filename=\"a\xff.txt\"",
                b"x",
            )
            .close(),
        400,
        "invalid_filename",
    ));
    let mut five = FormBytes::default().text("model", "example");
    for i in 0..5 {
        five = five.file(&format!("f{i}"), "a.txt", format!("{i}").as_bytes());
    }
    cases.push(submit("five files (limit four)", five.close(), 413, "too_many_files"));
    cases.push(submit(
        "a file over the file limit",
        FormBytes::default()
            .text("model", "example")
            .file("input", "big.bin", &vec![7; MIB + 1])
            .close(),
        413,
        "file_too_large",
    ));
    let mut job = FormBytes::default().text("model", "example");
    for i in 0..3 {
        job = job.file(&format!("f{i}"), "part.bin", &vec![i; 900 * 1024]);
    }
    cases.push(submit(
        "files over the job limit together",
        job.close(),
        413,
        "job_too_large",
    ));

    // Headers of the request.
    for (label, key) in [
        ("empty", String::new()),
        ("256 characters", "k".repeat(256)),
        ("a space", "a b".to_owned()),
        ("a tab", "a\tb".to_owned()),
    ] {
        cases.push(submit_with(
            format!("Idempotency-Key {label}"),
            &[("idempotency-key", key)],
            FormBytes::valid().close(),
            400,
            "invalid_idempotency_key",
        ));
    }
    cases.push(Case {
        name: "a declared length far over the job limit".into(),
        head: crate::raw::request("POST", "/v1/jobs", &[("content-type", content_type())], Some(64 * MIB)),
        body: Body::Bytes(Vec::new()),
        status: 413,
        code: "job_too_large",
    });
    cases
}

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
pub const MAX_BODY_BYTES: usize = 2 * MIB + 4 * 1024 + 16 * 1024 * 12;

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

/// Reads and actions with bad ids, filters, routes and methods.
pub fn read_cases() -> Vec<Case> {
    let id = "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b";
    let mut cases = Vec::new();
    for bad in [
        "%FF%FE",
        "%FF",
        "%",
        "not-a-uuid",
        "0190f5e27b1c7d4e8a3b2c1d0e9f8a7b",
        "%7B0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b%7D",
        "urn:uuid:0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b",
        "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7",
        "0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7bb",
        "%00",
        "..%2F..%2Fetc",
    ] {
        cases.push(get(&format!("/v1/jobs/{bad}"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/jobs/{bad}/events"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/files/{bad}"), 400, "invalid_id"));
        cases.push(get(&format!("/v1/files/{bad}/content"), 400, "invalid_id"));
        cases.push(request("POST", &format!("/v1/jobs/{bad}/cancel"), 400, "invalid_id"));
        cases.push(request("POST", &format!("/v1/jobs/{bad}/retry"), 400, "invalid_id"));
    }
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/events"),
        format!("/v1/files/{id}"),
        format!("/v1/files/{id}/content"),
    ] {
        cases.push(get(&path, 404, "not_found"));
    }
    cases.push(request("POST", &format!("/v1/jobs/{id}/cancel"), 404, "not_found"));
    cases.push(request("POST", &format!("/v1/jobs/{id}/retry"), 404, "not_found"));
    for query in [
        "model=%00",
        "model=a%00b",
        "model=UPPER",
        "model=",
        "status=bogus",
        "status=%00",
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
    ] {
        cases.push(get(&format!("/v1/jobs?{query}"), 400, "invalid_query"));
    }
    for query in ["cursor=bad", "cursor=%00", "cursor=0190f5e27b1c7d4e8a3b2c1d0e9f8a7b"] {
        cases.push(get(&format!("/v1/jobs?{query}"), 400, "invalid_cursor"));
    }
    for path in ["/", "/v1", "/v2/jobs", "/v1/jobs/x/y/z", "/%FF", "/v1/files"] {
        cases.push(get(path, 404, "route_not_found"));
    }
    for (method, path) in [
        ("DELETE", "/v1/jobs".to_owned()),
        ("PUT", "/v1/jobs".to_owned()),
        ("POST", "/healthz".to_owned()),
        ("GET", format!("/v1/jobs/{id}/cancel")),
        ("DELETE", format!("/v1/files/{id}")),
        ("PATCH", "/openapi.json".to_owned()),
    ] {
        cases.push(request(method, &path, 405, "method_not_allowed"));
    }
    cases
}
