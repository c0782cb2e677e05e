//! Content types come from the bytes; the client's header is only a hint.

/// How many leading bytes are kept to sniff the type.
pub const SNIFF_LEN: usize = 8192;

/// Textual types a client may name for UTF-8 content that has no magic number.
const TEXT_HINTS: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/javascript",
    "application/sql",
];

/// Picks a content type for a file whose first bytes are `head` (all of it when the file is
/// shorter than [`SNIFF_LEN`]).
///
/// 1. A recognised magic number wins (images, audio, video, archives, PDF, ...).
/// 2. Otherwise, UTF-8 text takes the client's hint when the hint is textual (`text/*`, JSON,
///    XML, ...), else `text/plain; charset=utf-8`.
/// 3. Anything else is `application/octet-stream`: a hint cannot make unknown bytes an image.
pub fn content_type(head: &[u8], hint: Option<&str>) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if looks_like_utf8_text(head) {
        let hint = hint.map(normalise_hint);
        return match hint {
            Some(h) if h.starts_with("text/") || TEXT_HINTS.contains(&h.as_str()) => h,
            _ => "text/plain; charset=utf-8".to_owned(),
        };
    }
    "application/octet-stream".to_owned()
}

fn normalise_hint(hint: &str) -> String {
    let essence = hint.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let valid = essence.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty()
            && !s.is_empty()
            && essence
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
    });
    if valid { essence } else { String::new() }
}

/// UTF-8 without NULs or most control characters. A multi-byte character cut off at the end
/// of the sniffed prefix still counts as text.
fn looks_like_utf8_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() && head.len() >= SNIFF_LEN => {
            // Safe: valid_up_to marks a char boundary.
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn magic_numbers_beat_the_client_hint() {
        assert_eq!(content_type(PNG, Some("text/plain")), "image/png");
    }

    #[test]
    fn text_takes_a_textual_hint_only() {
        assert_eq!(content_type(b"{\"a\":1}", Some("application/json")), "application/json");
        assert_eq!(content_type(b"a,b\n1,2\n", Some("text/csv; charset=utf-8")), "text/csv");
        assert_eq!(content_type(b"hello", Some("image/png")), "text/plain; charset=utf-8");
        assert_eq!(content_type(b"hello", None), "text/plain; charset=utf-8");
    }

    #[test]
    fn unknown_binary_is_octet_stream_whatever_the_hint() {
        assert_eq!(
            content_type(&[0, 1, 2, 255], Some("image/png")),
            "application/octet-stream"
        );
        assert_eq!(content_type(b"", Some("text/plain")), "application/octet-stream");
    }
}
