//! Multipart bodies built byte by byte, so a case can break exactly one thing.

pub const BOUNDARY: &str = "hostile-boundary-7d4e8a3b";

#[derive(Default, Clone)]
pub struct FormBytes {
    bytes: Vec<u8>,
}

impl FormBytes {
    /// A form with `model=example` and one small text file: the valid baseline.
    pub fn valid() -> Self {
        Self::default()
            .text("model", "example")
            .file("input", "a.txt", b"hello")
    }

    pub fn text(self, name: &str, value: &str) -> Self {
        self.raw_text(name, value.as_bytes())
    }

    pub fn raw_text(self, name: &str, value: &[u8]) -> Self {
        let headers = format!("Content-Disposition: form-data; name=\"{name}\"");
        self.part(headers.as_bytes(), value)
    }

    pub fn file(self, name: &str, filename: &str, content: &[u8]) -> Self {
        let headers = format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream"
        );
        self.part(headers.as_bytes(), content)
    }

    /// A part with the given header block (without the blank line) and content.
    pub fn part(mut self, headers: &[u8], content: &[u8]) -> Self {
        self.bytes.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        self.bytes.extend_from_slice(headers);
        self.bytes.extend_from_slice(b"\r\n\r\n");
        self.bytes.extend_from_slice(content);
        self.bytes.extend_from_slice(b"\r\n");
        self
    }

    /// Raw bytes appended as they are.
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// The form with its closing boundary.
    pub fn close(self) -> Vec<u8> {
        self.raw(format!("--{BOUNDARY}--\r\n").as_bytes()).bytes
    }

    /// The form without a closing boundary.
    pub fn open(self) -> Vec<u8> {
        self.bytes
    }
}

pub fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}
