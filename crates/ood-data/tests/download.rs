//! The downloader against a tiny HTTP/1.1 server started by each test on 127.0.0.1: complete,
//! truncated (resumed with `Range`), range-ignoring, corrupted and gzip-content-verified transfers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use ood_data::download::{self, part_path, Digests, Request};
use ood_data::registry::Outcome;
use ood_data::Error;

/// What the server does on one connection.
#[derive(Clone, Copy)]
enum Reply {
    /// Honour `Range` (206) or send everything (200).
    Normal,
    /// Announce the full length but send only this many bytes, then close.
    Truncate(usize),
    /// Send everything with `200`, ignoring any `Range`.
    IgnoreRange,
    /// Send the body with one byte flipped.
    Corrupt,
    /// Answer with this status and no body.
    Status(u16),
}

struct Server {
    url: String,
    /// The `Range` header of each request, in order.
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(body: Vec<u8>, replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/data.bin", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        let handle = thread::spawn(move || {
            for reply in replies {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = Some(v.trim().to_string());
                    }
                }
                seen.lock().unwrap().push(range.clone());
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
                let _ = match reply {
                    Reply::Status(code) => {
                        write!(stream, "HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    }
                    Reply::Normal if start.is_some() => {
                        let s = start.unwrap();
                        let part = &body[s..];
                        write!(
                            stream,
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                            part.len(),
                            s,
                            body.len() - 1,
                            body.len()
                        )
                        .and_then(|_| stream.write_all(part))
                    }
                    Reply::Normal | Reply::IgnoreRange => write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .and_then(|_| stream.write_all(&body)),
                    Reply::Truncate(n) => write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .and_then(|_| stream.write_all(&body[..n])),
                    Reply::Corrupt => {
                        let mut bad = body.clone();
                        bad[body.len() / 2] ^= 0x40;
                        write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            bad.len()
                        )
                        .and_then(|_| stream.write_all(&bad))
                    }
                };
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        Server {
            url,
            ranges,
            handle: Some(handle),
        }
    }

    fn ranges(&mut self) -> Vec<Option<String>> {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.ranges.lock().unwrap().clone()
    }
}

fn payload(n: usize) -> Vec<u8> {
    // Deterministic, non-repeating bytes.
    (0..n).map(|i| ((i * 7919 + i / 251) % 256) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn request<'a>(url: &'a str, dest: &'a Path, sha256: &'a [&'a str]) -> Request<'a> {
    Request {
        url,
        dest,
        digests: Digests {
            sha256,
            gunzip_sha256: None,
        },
        size: None,
        progress: false,
    }
}

#[test]
fn complete_transfer_is_verified_and_moved_into_place() {
    let body = payload(100_000);
    let digest = sha(&body);
    let mut server = Server::start(body.clone(), vec![Reply::Normal]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/data.bin");
    let out = download::download(&request(&server.url, &dest, &[&digest])).unwrap();
    assert_eq!(out, Outcome::FileDigest(digest));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!part_path(&dest).exists());
    assert_eq!(server.ranges(), vec![None]);
}

#[test]
fn truncated_transfer_resumes_with_a_range_request() {
    let body = payload(50_000);
    let digest = sha(&body);
    let mut server = Server::start(body.clone(), vec![Reply::Truncate(12_345), Reply::Normal]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    download::download(&request(&server.url, &dest, &[&digest])).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(
        server.ranges(),
        vec![None, Some("bytes=12345-".to_string())]
    );
}

#[test]
fn interrupted_download_keeps_its_part_file_and_a_later_call_resumes_it() {
    let body = payload(40_000);
    let digest = sha(&body);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");

    // First call: the transfer breaks, then the server fails hard.
    let mut first = Server::start(
        body.clone(),
        vec![Reply::Truncate(10_000), Reply::Status(503)],
    );
    let err = download::download(&request(&first.url, &dest, &[&digest])).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Http {
                status: Some(503),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !dest.exists(),
        "an incomplete file must never be at the destination"
    );
    assert_eq!(std::fs::read(part_path(&dest)).unwrap(), &body[..10_000]);
    assert_eq!(first.ranges(), vec![None, Some("bytes=10000-".to_string())]);

    // Second call: continues from byte 10,000.
    let mut second = Server::start(body.clone(), vec![Reply::Normal]);
    download::download(&request(&second.url, &dest, &[&digest])).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!part_path(&dest).exists());
    assert_eq!(second.ranges(), vec![Some("bytes=10000-".to_string())]);
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let body = payload(30_000);
    let digest = sha(&body);
    let mut server = Server::start(
        body.clone(),
        vec![Reply::Truncate(5_000), Reply::IgnoreRange],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    download::download(&request(&server.url, &dest, &[&digest])).unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        body,
        "a 200 answer must replace, not append"
    );
    assert_eq!(server.ranges().len(), 2);
}

#[test]
fn corrupted_transfer_is_an_error_that_keeps_nothing() {
    let body = payload(20_000);
    let digest = sha(&body);
    let mut server = Server::start(body, vec![Reply::Corrupt]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    let err = download::download(&request(&server.url, &dest, &[&digest])).unwrap_err();
    match &err {
        Error::Checksum {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, &part_path(&dest));
            assert_eq!(expected, &digest);
            assert_ne!(actual, &digest);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(err.to_string().contains("checksum mismatch"));
    assert!(!dest.exists() && !part_path(&dest).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    server.ranges();
}

#[test]
fn recompressed_gzip_is_accepted_by_its_content_digest() {
    use flate2::{write::GzEncoder, Compression};
    let raw = payload(10_000);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).unwrap();
    let body = gz.finish().unwrap();
    let content = sha(&raw);
    let publisher = "0".repeat(64); // the publisher's .gz differs from this copy
    let mut server = Server::start(body.clone(), vec![Reply::Normal, Reply::Normal]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.gz");
    let digests = Digests {
        sha256: &[&publisher],
        gunzip_sha256: Some(&content),
    };
    let req = Request {
        url: &server.url,
        dest: &dest,
        digests,
        size: Some(body.len() as u64),
        progress: false,
    };
    assert_eq!(
        download::download(&req).unwrap(),
        Outcome::ContentDigest(content.clone())
    );

    // Wrong content digest: rejected, nothing kept.
    let dest2 = dir.path().join("y.gz");
    let wrong = sha(b"something else");
    let digests = Digests {
        sha256: &[&publisher],
        gunzip_sha256: Some(&wrong),
    };
    let req = Request {
        url: &server.url,
        dest: &dest2,
        digests,
        size: None,
        progress: false,
    };
    assert!(matches!(
        download::download(&req),
        Err(Error::Checksum { .. })
    ));
    assert!(!dest2.exists() && !part_path(&dest2).exists());
    server.ranges();
}

#[test]
fn file_without_recorded_digest_is_reported_unchecked() {
    let body = payload(1_000);
    let mut server = Server::start(body.clone(), vec![Reply::Normal]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    let out = download::download(&request(&server.url, &dest, &[])).unwrap();
    assert_eq!(out, Outcome::Unchecked(sha(&body)));
    server.ranges();
}

#[test]
fn http_error_status_fails_without_retrying() {
    let mut server = Server::start(Vec::new(), vec![Reply::Status(404)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    let err = download::download(&request(&server.url, &dest, &[])).unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert_eq!(server.ranges().len(), 1);
    assert!(!dest.exists());
}
