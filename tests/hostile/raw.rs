//! A raw HTTP/1.1 client: sends exactly the bytes a case gives (malformed ones included) and
//! reads back one response, with a deadline on everything.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long any one exchange may take before the case fails.
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of a JSON error body, or a description of what the body was instead.
    pub fn code(&self) -> String {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(body) => body["error"]["code"]
                .as_str()
                .map_or_else(|| format!("no code in {body}"), str::to_owned),
            Err(_) => format!("not JSON: {:?}", String::from_utf8_lossy(&self.body)),
        }
    }
}

/// Sends `head` then every chunk of `body` (concurrently with reading, since Baton may answer
/// before the body ends) and reads one response.
pub async fn exchange<S>(addr: SocketAddr, head: String, body: S) -> std::io::Result<Response>
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let stream = TcpStream::connect(addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let send = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        // Keep the write half open: closing it would look like an aborted request.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(writer)
    });
    let response = tokio::time::timeout(EXCHANGE_DEADLINE, read_response(&mut reader))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response in time"))?;
    send.abort();
    response
}

/// A request with a complete body of `body` bytes and the given headers.
pub fn request(method: &str, path: &str, headers: &[(&str, String)], body_len: Option<usize>) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: baton\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = body_len {
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Response> {
    let mut buffer = Vec::new();
    let header_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed before a response; got {:?}", String::from_utf8_lossy(&buffer)),
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Response { status, headers, body })
}

/// Whether the server closes the connection within `within` (reading and discarding anything it
/// sends first).
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let read_to_close = async {
        let mut sink = [0u8; 1024];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_close).await.is_ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
