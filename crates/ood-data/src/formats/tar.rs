//! A streamed reader of tar archives (POSIX ustar, GNU long names, pax `path` records), for
//! release archives such as Places365's `test_256.tar` (2.3 GB, read once, never into memory).
//!
//! Hostile input is refused, naming the archive and the member's header offset: absolute member
//! paths, `..` components, NUL or backslash in names, hard and symbolic links, device nodes and
//! FIFOs, sparse and unknown member types, bad header checksums, sizes in base-256 (over 8 GB),
//! and a truncated archive. Every allocation is capped: a member's data is read only up to the
//! caller's cap, GNU long names up to [`MAX_NAME`] bytes, pax headers up to [`MAX_PAX`].

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const BLOCK: u64 = 512;
/// Longest member name accepted (GNU long name or pax `path`).
pub const MAX_NAME: u64 = 4096;
/// Largest pax extended header accepted.
pub const MAX_PAX: u64 = 64 * 1024;

/// A member's type, after links and special files have been refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
}

/// One member: its checked relative path, type, data size and header offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub kind: MemberKind,
    pub size: u64,
    pub header_offset: u64,
}

/// Members of a tar stream, one at a time; data not read is skipped.
pub struct TarStream<R: Read> {
    r: R,
    path: PathBuf,
    pos: u64,
    /// Data bytes of the current member not yet consumed, then its padding.
    left: u64,
    pad: u64,
}

impl<R: Read> TarStream<R> {
    /// `path` names the archive in errors.
    pub fn new(r: R, path: &Path) -> Self {
        TarStream {
            r,
            path: path.to_path_buf(),
            pos: 0,
            left: 0,
            pad: 0,
        }
    }

    fn err(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::format(&self.path, offset, message)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.r.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.err(self.pos, "archive truncated")
            } else {
                Error::io(&self.path, e)
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Finishes the current member (skipping unread data and padding).
    fn finish_member(&mut self) -> Result<()> {
        let n = self.left + self.pad;
        self.left = 0;
        self.pad = 0;
        self.skip(n)
    }

    /// The data of the current member (its whole `size`), refused beyond `cap` bytes.
    pub fn read_data(&mut self, member: &Member, cap: u64) -> Result<Vec<u8>> {
        if member.size > cap {
            return Err(self.err(
                member.header_offset,
                format!(
                    "{}: {} bytes, over the {cap}-byte cap",
                    member.name, member.size
                ),
            ));
        }
        if self.left != member.size {
            return Err(self.err(member.header_offset, "member data already read"));
        }
        let mut v = vec![0u8; member.size as usize];
        self.read_exact(&mut v)?;
        self.left = 0;
        Ok(v)
    }

    /// Reads the data of an extension header (GNU long name, pax) of `size` bytes, capped.
    fn extension(&mut self, size: u64, cap: u64, at: u64, what: &str) -> Result<Vec<u8>> {
        if size > cap {
            return Err(self.err(at, format!("{what} of {size} bytes (over {cap})")));
        }
        let mut v = vec![0u8; size as usize];
        self.read_exact(&mut v)?;
        self.skip(padding(size))?;
        Ok(v)
    }

    /// The next file or directory member, `None` at the end-of-archive block (or at a clean end
    /// of the stream).
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        self.finish_member()?;
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let at = self.pos;
            let mut h = [0u8; BLOCK as usize];
            // A stream that ends exactly at a block boundary without end blocks is accepted.
            match self.r.read(&mut h[..1]) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
            self.pos += 1;
            self.read_exact(&mut h[1..])?;
            if h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            check_checksum(&h).map_err(|m| self.err(at, m))?;
            let size = octal(&h[124..136]).map_err(|m| self.err(at, format!("size: {m}")))?;
            let kind = h[156];
            match kind {
                b'L' => {
                    let mut v = self.extension(size, MAX_NAME, at, "GNU long name")?;
                    while v.last() == Some(&0) {
                        v.pop();
                    }
                    long_name = Some(v);
                    continue;
                }
                b'x' => {
                    let v = self.extension(size, MAX_PAX, at, "pax header")?;
                    if let Some(p) = pax_path(&v).map_err(|m| self.err(at, m))? {
                        long_name = Some(p);
                    }
                    continue;
                }
                b'g' => {
                    self.extension(size, MAX_PAX, at, "pax global header")?;
                    continue;
                }
                _ => {}
            }
            let raw_name = match long_name.take() {
                Some(n) => n,
                None => header_name(&h),
            };
            let name = check_name(&raw_name).map_err(|m| self.err(at, m))?;
            let kind = match kind {
                b'0' | 0 | b'7' => MemberKind::File,
                b'5' => MemberKind::Dir,
                b'1' | b'2' | b'K' => {
                    return Err(self.err(at, format!("{name}: links are refused")));
                }
                b'3' | b'4' | b'6' => {
                    return Err(self.err(at, format!("{name}: device nodes and FIFOs are refused")));
                }
                other => {
                    return Err(self.err(
                        at,
                        format!("{name}: member type {:?} is not supported", other as char),
                    ));
                }
            };
            let size = if kind == MemberKind::Dir { 0 } else { size };
            self.left = size;
            self.pad = padding(size);
            return Ok(Some(Member {
                name,
                kind,
                size,
                header_offset: at,
            }));
        }
    }

    /// Consumes the rest of the stream (after the end blocks), so a wrapped reader saw it all.
    pub fn into_inner(self) -> R {
        self.r
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// A NUL/space-terminated octal field.
fn octal(field: &[u8]) -> std::result::Result<u64, String> {
    if field[0] & 0x80 != 0 {
        return Err("base-256 sizes (members over 8 GB) are not supported".into());
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&s).map_err(|_| "not octal".to_string())?;
    u64::from_str_radix(text, 8).map_err(|_| format!("{text:?} is not octal"))
}

fn check_checksum(h: &[u8]) -> std::result::Result<(), String> {
    let want = octal(&h[148..156]).map_err(|m| format!("checksum: {m}"))?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    if sum != want {
        return Err(format!(
            "header checksum {want} but the header sums to {sum}"
        ));
    }
    Ok(())
}

/// `prefix/name` of a ustar header, `name` alone otherwise.
fn header_name(h: &[u8]) -> Vec<u8> {
    let field = |r: std::ops::Range<usize>| -> Vec<u8> {
        h[r].iter().copied().take_while(|&b| b != 0).collect()
    };
    let name = field(0..100);
    if &h[257..262] == b"ustar" && h[345] != 0 {
        let mut p = field(345..500);
        p.push(b'/');
        p.extend(name);
        return p;
    }
    name
}

/// The `path` record of a pax header (`"<len> path=<value>\n"` records).
fn pax_path(v: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut rest = v;
    let mut path = None;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("pax record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > sp + 1 && l <= rest.len())
            .ok_or("bad pax record length")?;
        let record = &rest[sp + 1..len - 1];
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value.to_vec());
        }
        rest = &rest[len..];
    }
    Ok(path)
}

/// A relative member path of normal components (a trailing `/` of directories dropped).
fn check_name(raw: &[u8]) -> std::result::Result<String, String> {
    let name = std::str::from_utf8(raw).map_err(|_| "member name is not UTF-8".to_string())?;
    let shown = super::bytes::shown(&name);
    if name.is_empty() || name.starts_with('/') || name.contains('\0') || name.contains('\\') {
        return Err(format!(
            "member name {shown} is refused (empty, absolute, NUL or backslash)"
        ));
    }
    let trimmed = name.trim_end_matches('/');
    if trimmed
        .split('/')
        .any(|c| c == ".." || (c.is_empty() && !trimmed.is_empty()))
    {
        return Err(format!(
            "member name {shown} is refused (`..` or an empty component)"
        ));
    }
    Ok(trimmed
        .split('/')
        .filter(|c| *c != ".")
        .collect::<Vec<_>>()
        .join("/"))
}

#[cfg(test)]
mod tests;
