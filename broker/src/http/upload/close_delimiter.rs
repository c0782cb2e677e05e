//! The close delimiter of a multipart body, found as the bytes stream past, so that anything
//! after it can be refused without buffering the body.

/// Finds the first close delimiter (`--boundary--`) in the stream, across chunk borders.
pub struct CloseDelimiter {
    finder: memchr::memmem::Finder<'static>,
    /// The last bytes of the previous chunk, shorter than the delimiter.
    carry: Vec<u8>,
    /// Stream offset just past the first close delimiter.
    end: Option<u64>,
}

impl CloseDelimiter {
    pub fn new(boundary: &str) -> Self {
        let needle = format!("--{boundary}--").into_bytes();
        Self {
            finder: memchr::memmem::Finder::new(&needle).into_owned(),
            carry: Vec::with_capacity(needle.len()),
            end: None,
        }
    }

    /// Stream offset just past the first close delimiter, once one has passed.
    pub fn end(&self) -> Option<u64> {
        self.end
    }

    /// Looks for the delimiter in `chunk`, which starts at stream offset `offset`.
    pub fn scan(&mut self, chunk: &[u8], offset: u64) {
        if self.end.is_some() {
            return;
        }
        let needle_len = self.finder.needle().len();
        // A delimiter that straddles the border: carry + the start of this chunk.
        let head = &chunk[..chunk.len().min(needle_len - 1)];
        let carry_start = offset - self.carry.len() as u64;
        let joined = [self.carry.as_slice(), head].concat();
        if let Some(at) = self.finder.find(&joined) {
            self.end = Some(carry_start + (at + needle_len) as u64);
            return;
        }
        if let Some(at) = self.finder.find(chunk) {
            self.end = Some(offset + (at + needle_len) as u64);
            return;
        }
        if chunk.len() >= needle_len - 1 {
            self.carry = chunk[chunk.len() - (needle_len - 1)..].to_vec();
        } else {
            self.carry.extend_from_slice(chunk);
            let excess = self.carry.len().saturating_sub(needle_len - 1);
            self.carry.drain(..excess);
        }
    }
}
