//! A minimal blocking HTTP/1.1 client for tests and scripts: one request per connection
//! (`Connection: close`), raw enough to send what a real client would not (a lying
//! `Content-Length`, a body in pieces).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status, and body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics if it is not: for tests).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// The head of a request with a body of `len` bytes.
pub fn head(method: &str, path: &str, content_type: Option<&str>, len: usize) -> String {
    let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{ct}Content-Length: {len}\r\n\r\n"
    )
}

/// Send `raw` bytes as they are and read the answer to the end.
pub fn raw(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(raw)?;
    read_answer(s)
}

/// Read an answer from a connection whose request was sent.
pub fn read_answer(mut s: TcpStream) -> std::io::Result<Answer> {
    let mut buf = Vec::new();
    // A server that answers before reading the whole body (413, 415) closes with unread data,
    // and the kernel may reset the connection after the answer arrived: keep what was read.
    if let Err(e) = s.read_to_end(&mut buf) {
        if e.kind() != std::io::ErrorKind::ConnectionReset || buf.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

/// One request.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut msg = head(method, path, content_type, body.len()).into_bytes();
    msg.extend_from_slice(body);
    raw(addr, &msg)
}

pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, None, b"").expect("GET")
}

pub fn post(addr: SocketAddr, content_type: &str, body: &[u8]) -> Answer {
    request(addr, "POST", "/v1/detect", Some(content_type), body).expect("POST")
}

/// A `multipart/form-data` body of image files; returns (content type, body).
pub fn multipart(files: &[Vec<u8>]) -> (String, Vec<u8>) {
    let boundary = "eood-test-boundary-7f3a";
    let mut body = Vec::new();
    for (i, f) in files.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{i}.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The value of an unlabelled Prometheus sample `name` (or `name{labels}`) in `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
