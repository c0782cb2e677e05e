//! Submissions that break a rule of the form or its parts.

use super::{Body, Case, MIB, submit, submit_with};
use crate::form::{BOUNDARY, FormBytes, content_type};

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
