//! Qt binary resource archives (`.rcc`, format versions 1-3), as GCompris ships its activity
//! images (Debian `gcompris-qt-data`).
//!
//! Layout (big-endian): `qres`, version, then the offsets of the tree, data and names sections
//! (version 3 adds a flags word). The tree is an array of nodes (14 bytes in version 1, 22 with
//! the modification time after it): name offset, flags, then either child count + first child
//! index (a directory) or country, language, data offset (a file). A name is a `u16` length,
//! a `u32` hash and UTF-16BE characters; file data is a `u32` length and the bytes, which for
//! a zlib-compressed file start with the `u32` uncompressed length (`qCompress`).
//!
//! Hostile input: every offset is checked against the file, the walk visits each node at most
//! once (a cycle or a shared child is refused), the depth is capped, and an entry's declared
//! uncompressed length is checked against [`MAX_ENTRY_BYTES`], DEFLATE's maximal ratio and the
//! memory available before it is inflated. Zstandard-compressed entries are refused (GCompris
//! uses zlib only).

use std::io::Read;
use std::path::Path;

use super::bytes::{read_file, Cursor, MAX_DEFLATE_RATIO};
use crate::{Error, Result};

/// Largest accepted uncompressed entry.
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;
/// Deepest accepted directory nesting.
const MAX_DEPTH: usize = 64;
const FLAG_COMPRESSED: u16 = 1;
const FLAG_DIRECTORY: u16 = 2;
const FLAG_ZSTD: u16 = 4;

/// One file of an archive: its path (`/`-separated, no leading slash) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RccEntry {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The files of `path` whose name `keep` accepts, sorted by name.
pub fn read_rcc_where(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<RccEntry>> {
    parse_rcc_where(&read_file(path)?, path, keep)
}

/// Every file path of the archive, sorted (nothing is inflated).
pub fn rcc_names(path: &Path) -> Result<Vec<String>> {
    let bytes = read_file(path)?;
    let mut names: Vec<String> = walk(&bytes, path)?.into_iter().map(|f| f.name).collect();
    names.sort();
    Ok(names)
}

/// [`read_rcc_where`] on bytes in memory (`path` names them in errors).
pub fn parse_rcc_where(
    bytes: &[u8],
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<RccEntry>> {
    let mut out = Vec::new();
    for f in walk(bytes, path)? {
        if keep(&f.name) {
            out.push(RccEntry {
                bytes: file_bytes(bytes, path, &f)?,
                name: f.name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

struct Header {
    node_size: usize,
    tree: usize,
    data: usize,
    names: usize,
}

struct FileNode {
    name: String,
    flags: u16,
    /// Absolute offset of the data record.
    at: usize,
}

fn header(bytes: &[u8], path: &Path) -> Result<Header> {
    let mut c = Cursor::new(bytes, path);
    if c.take(4, "magic")? != b"qres" {
        return Err(Error::format(
            path,
            0,
            "not a Qt resource archive (no `qres` magic)",
        ));
    }
    let version = c.u32_be("version")?;
    if !(1..=3).contains(&version) {
        return Err(c.error(format!("unsupported rcc version {version} (1-3 are read)")));
    }
    let mut off = |what: &'static str| -> Result<usize> {
        let v = c.u32_be(what)? as usize;
        if v > bytes.len() {
            return Err(Error::format(
                path,
                0,
                format!("{what} offset {v} is past the end ({} bytes)", bytes.len()),
            ));
        }
        Ok(v)
    };
    Ok(Header {
        node_size: if version == 1 { 14 } else { 22 },
        tree: off("tree")?,
        data: off("data")?,
        names: off("names")?,
    })
}

/// Every file node, depth first, with its full path.
fn walk(bytes: &[u8], path: &Path) -> Result<Vec<FileNode>> {
    let h = header(bytes, path)?;
    let max_nodes = (bytes.len() - h.tree) / h.node_size;
    let mut seen = vec![false; max_nodes];
    let mut out = Vec::new();
    // (node index, parent path, depth)
    let mut stack = vec![(0usize, String::new(), 0usize)];
    while let Some((idx, parent, depth)) = stack.pop() {
        if idx >= max_nodes {
            return Err(Error::format(
                path,
                h.tree as u64,
                format!("tree node {idx} is past the end"),
            ));
        }
        if std::mem::replace(&mut seen[idx], true) {
            return Err(Error::format(
                path,
                h.tree as u64,
                format!("tree node {idx} is reached twice"),
            ));
        }
        let at = h.tree + idx * h.node_size;
        let mut c = Cursor::with_base(&bytes[at..at + h.node_size], path, at as u64);
        let name_off = c.u32_be("node name offset")? as usize;
        let flags = u16::from_be_bytes(c.take(2, "node flags")?.try_into().expect("2 bytes"));
        let name = if idx == 0 {
            String::new()
        } else {
            name_at(bytes, path, h.names, name_off)?
        };
        let full = if parent.is_empty() {
            name
        } else {
            format!("{parent}/{name}")
        };
        if flags & FLAG_DIRECTORY != 0 {
            if depth >= MAX_DEPTH {
                return Err(c.error(format!("directories nested deeper than {MAX_DEPTH}")));
            }
            let count = c.u32_be("child count")? as usize;
            let first = c.u32_be("first child")? as usize;
            if first.checked_add(count).is_none_or(|end| end > max_nodes) {
                return Err(c.error(format!(
                    "children {first}+{count} past the {max_nodes} nodes"
                )));
            }
            for child in (first..first + count).rev() {
                stack.push((child, full.clone(), depth + 1));
            }
        } else {
            c.skip(4, "locale")?;
            let data_off = c.u32_be("data offset")? as usize;
            let abs = h.data.checked_add(data_off).filter(|&a| a <= bytes.len());
            let at =
                abs.ok_or_else(|| c.error(format!("data offset {data_off} is past the end")))?;
            out.push(FileNode {
                name: full,
                flags,
                at,
            });
        }
    }
    Ok(out)
}

fn name_at(bytes: &[u8], path: &Path, names: usize, off: usize) -> Result<String> {
    let at = names.saturating_add(off).min(bytes.len());
    let mut c = Cursor::with_base(&bytes[at..], path, at as u64);
    let len = u16::from_be_bytes(c.take(2, "name length")?.try_into().expect("2 bytes")) as usize;
    c.skip(4, "name hash")?;
    let raw = c.take(2 * len, "name")?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let name = String::from_utf16(&units).map_err(|_| c.error("name is not UTF-16"))?;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(c.error(format!("bad entry name {name:?}")));
    }
    Ok(name)
}

fn file_bytes(bytes: &[u8], path: &Path, f: &FileNode) -> Result<Vec<u8>> {
    let mut c = Cursor::with_base(&bytes[f.at..], path, f.at as u64);
    let len = c.u32_be("data length")? as usize;
    let raw = c.take(len, &f.name)?;
    if f.flags & FLAG_ZSTD != 0 {
        return Err(c.error(format!("{}: zstd-compressed entries are not read", f.name)));
    }
    if f.flags & FLAG_COMPRESSED == 0 {
        return Ok(raw.to_vec());
    }
    let mut z = Cursor::with_base(raw, path, f.at as u64 + 4);
    let want = z.u32_be("uncompressed length")? as u64;
    let stream = &raw[4..];
    let by_ratio = (stream.len() as u64).saturating_mul(MAX_DEFLATE_RATIO as u64);
    if want > MAX_ENTRY_BYTES || want > by_ratio {
        return Err(z.error(format!(
            "{}: declares {want} uncompressed bytes (cap {MAX_ENTRY_BYTES}, or {by_ratio} for {} compressed)",
            f.name,
            stream.len()
        )));
    }
    ood_core::limits::check_alloc(&f.name, want as u128, 1).map_err(|e| z.error(e.to_string()))?;
    let mut out = Vec::with_capacity(want as usize);
    flate2::read::ZlibDecoder::new(stream)
        .take(want + 1)
        .read_to_end(&mut out)
        .map_err(|e| z.error(format!("{}: bad zlib stream: {e}", f.name)))?;
    if out.len() as u64 != want {
        return Err(z.error(format!(
            "{}: inflates to {}{} bytes, declared {want}",
            f.name,
            if out.len() as u64 > want {
                "more than "
            } else {
                ""
            },
            out.len().min(want as usize)
        )));
    }
    Ok(out)
}

/// Builds an archive (version 2) of `files` (`/`-separated paths), zlib-compressing those
/// flagged `true`: the writer used by tests and fixtures, laid out as `rcc` does.
pub fn write_rcc(files: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use std::collections::BTreeMap;
    // Directory tree: path -> (children names sorted); files keep their index into `files`.
    #[derive(Default)]
    struct Dir {
        dirs: BTreeMap<String, Dir>,
        files: BTreeMap<String, usize>,
    }
    let mut root = Dir::default();
    for (i, (name, _, _)) in files.iter().enumerate() {
        let parts: Vec<&str> = name.split('/').collect();
        let mut d = &mut root;
        for p in &parts[..parts.len() - 1] {
            d = d.dirs.entry(p.to_string()).or_default();
        }
        d.files.insert(parts[parts.len() - 1].to_string(), i);
    }
    let mut names = Vec::new();
    let mut data = Vec::new();
    fn name_off(n: &str, names: &mut Vec<u8>) -> u32 {
        let at = names.len() as u32;
        let units: Vec<u16> = n.encode_utf16().collect();
        names.extend((units.len() as u16).to_be_bytes());
        names.extend(0u32.to_be_bytes());
        for u in units {
            names.extend(u.to_be_bytes());
        }
        at
    }
    // Breadth-first node numbering, as rcc does: children of a directory are consecutive.
    let mut nodes: Vec<[u8; 22]> = vec![[0; 22]];
    let mut queue: std::collections::VecDeque<(usize, &Dir)> = [(0, &root)].into();
    while let Some((idx, d)) = queue.pop_front() {
        let first = nodes.len() as u32;
        let count = (d.dirs.len() + d.files.len()) as u32;
        let mut node = [0u8; 22];
        node[0..4].copy_from_slice(&nodes[idx][0..4]);
        node[4..6].copy_from_slice(&FLAG_DIRECTORY.to_be_bytes());
        node[6..10].copy_from_slice(&count.to_be_bytes());
        node[10..14].copy_from_slice(&first.to_be_bytes());
        nodes[idx] = node;
        for (n, sub) in &d.dirs {
            let mut child = [0u8; 22];
            child[0..4].copy_from_slice(&name_off(n, &mut names).to_be_bytes());
            nodes.push(child);
            queue.push_back((nodes.len() - 1, sub));
        }
        for (n, &fi) in &d.files {
            let (_, content, compress) = files[fi];
            let mut child = [0u8; 22];
            child[0..4].copy_from_slice(&name_off(n, &mut names).to_be_bytes());
            let stored = if compress {
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut z, content).expect("in memory");
                let mut v = (content.len() as u32).to_be_bytes().to_vec();
                v.extend(z.finish().expect("in memory"));
                v
            } else {
                content.to_vec()
            };
            let flags = if compress { FLAG_COMPRESSED } else { 0 };
            child[4..6].copy_from_slice(&flags.to_be_bytes());
            child[10..14].copy_from_slice(&(data.len() as u32).to_be_bytes());
            data.extend((stored.len() as u32).to_be_bytes());
            data.extend(stored);
            nodes.push(child);
        }
    }
    let tree = 20u32;
    let tree_len = (nodes.len() * 22) as u32;
    let data_at = tree + tree_len;
    let names_at = data_at + data.len() as u32;
    let mut out = b"qres".to_vec();
    for v in [2u32, tree, data_at, names_at] {
        out.extend(v.to_be_bytes());
    }
    for n in &nodes {
        out.extend(n);
    }
    out.extend(data);
    out.extend(names);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write_rcc(&[
            ("gcompris/src/a/x.webp", &b"plain bytes"[..], false),
            ("gcompris/src/a/y.webp", &[7u8; 5000][..], true),
            ("gcompris/src/b/z.qml", &b"qml"[..], true),
        ])
    }

    #[test]
    fn reads_nested_plain_and_zlib_entries_selectively() {
        let p = Path::new("t.rcc");
        let all = parse_rcc_where(&sample(), p, |_| true).unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gcompris/src/a/x.webp",
                "gcompris/src/a/y.webp",
                "gcompris/src/b/z.qml"
            ]
        );
        assert_eq!(all[0].bytes, b"plain bytes");
        assert_eq!(all[1].bytes, vec![7u8; 5000]);
        let webp = parse_rcc_where(&sample(), p, |n| n.ends_with(".webp")).unwrap();
        assert_eq!(webp.len(), 2);
    }

    #[test]
    fn hostile_archives_are_refused_with_the_offset() {
        let p = Path::new("t.rcc");
        let good = sample();
        // Bad magic, truncation anywhere, and an inflated size beyond the cap.
        assert!(parse_rcc_where(b"qrez\0\0\0\x02", p, |_| true).is_err());
        for cut in [3, 10, 25, good.len() / 2, good.len() - 3] {
            assert!(
                parse_rcc_where(&good[..cut], p, |_| true).is_err(),
                "cut at {cut}"
            );
        }
        // Root directory pointing at itself: a cycle.
        let mut cyc = good.clone();
        cyc[20 + 10..20 + 14].copy_from_slice(&0u32.to_be_bytes());
        cyc[20 + 6..20 + 10].copy_from_slice(&1u32.to_be_bytes());
        let e = parse_rcc_where(&cyc, p, |_| true).unwrap_err().to_string();
        assert!(e.contains("reached twice"), "{e}");
        // A compressed entry declaring 4 GiB.
        let bomb = write_rcc(&[("a.bin", &[0u8; 100][..], true)]);
        let data_at = u32::from_be_bytes(bomb[12..16].try_into().unwrap()) as usize;
        let mut b = bomb.clone();
        b[data_at + 4..data_at + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = parse_rcc_where(&b, p, |_| true).unwrap_err().to_string();
        assert!(e.contains("declares 4294967295"), "{e}");
        // A compressed entry inflating to less than declared.
        let mut short = bomb;
        short[data_at + 4..data_at + 8].copy_from_slice(&150u32.to_be_bytes());
        let e = parse_rcc_where(&short, p, |_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("declared 150"), "{e}");
    }
}
