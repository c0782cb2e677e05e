//! Client file names are display metadata only: sanitised, and never part of a path.

const MAX_BYTES: usize = 255;

/// Keeps the last path component, drops control characters and leading dots, trims, and caps
/// the length at 255 bytes on a character boundary. Empty results become `file`.
pub fn sanitize(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut end = trimmed.len().min(MAX_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let name = &trimmed[..end];
    if name.is_empty() {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn paths_and_hostile_characters_are_removed() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(sanitize("a\u{0}b\r\nc.txt"), "abc.txt");
        assert_eq!(sanitize("evil\u{202e}gnp.exe"), "evilgnp.exe");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize(".bashrc"), "bashrc");
        assert_eq!(sanitize(""), "file");
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = sanitize(&"é".repeat(200));
        assert!(name.len() <= 255);
        assert!(name.chars().all(|c| c == 'é'));
    }
}
