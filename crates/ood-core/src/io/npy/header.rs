//! The `.npy` header: the preamble (magic, version, header length) and the Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, parsed strictly (exactly the
//! three keys, once each; a shape is a real tuple: `(10,,)`, `(,)` and `(10)` are refused) and
//! written in the one spelling NumPy writes.

use super::{Dtype, NpyErrorKind};

pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// Longest header text accepted. NumPy's own reader refuses more than 10 000 bytes unless told
/// otherwise; the largest header NumPy writes for 64 dimensions stays far below this.
pub const MAX_HEADER_LEN: usize = 65_536;

/// Most dimensions accepted (NumPy 2's own limit).
pub const MAX_DIMS: usize = 64;

/// How much of a hostile header an error quotes.
const QUOTE_BYTES: usize = 64;

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub dtype: Dtype,
    /// `>` byte order (only multi-byte types can have it).
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

impl Header {
    /// Number of elements, `None` if the shape overflows.
    pub fn count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Bytes of payload the header announces, `None` if that overflows.
    pub fn data_bytes(&self) -> Option<u64> {
        self.count()?.checked_mul(self.dtype.size() as u64)
    }

    /// The `descr` string, e.g. `<f4` or `|u1`.
    pub fn descr(&self) -> String {
        self.dtype.descr(self.big_endian)
    }
}

/// `s` for an error message, cut to its first [`QUOTE_BYTES`] bytes (a hostile header of
/// kilobytes must not flood the terminal) and with control characters escaped.
pub(super) fn clip(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        return s.escape_debug().to_string();
    }
    let mut end = QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", s[..end].escape_debug(), s.len())
}

/// [`clip`] in double quotes.
pub(super) fn quote(s: &str) -> String {
    format!("\"{}\"", clip(s))
}

/// From the first bytes of a file: the offset of the header text and its length.
pub(super) fn preamble(b: &[u8]) -> Result<(usize, usize), NpyErrorKind> {
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err(NpyErrorKind::BadMagic);
    }
    let (major, minor) = (b[6], b[7]);
    let (start, len) = match major {
        1 => (10, u16::from_le_bytes([b[8], b[9]]) as usize),
        2 | 3 => {
            let l = b
                .get(8..12)
                .ok_or_else(|| bad("file ends inside the header"))?;
            (12, u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        }
        _ => return Err(NpyErrorKind::BadVersion(major, minor)),
    };
    if len > MAX_HEADER_LEN {
        return Err(bad(format!(
            "header length {len} is implausible (at most {MAX_HEADER_LEN} bytes)"
        )));
    }
    Ok((start, len))
}

/// Parse the header of `b` (which holds at least the whole header); returns it and the offset
/// where the data starts.
pub fn parse_prefix(b: &[u8]) -> Result<(Header, usize), NpyErrorKind> {
    let (start, len) = preamble(b)?;
    let text = b.get(start..start + len).ok_or_else(|| {
        bad(format!(
            "file ends inside the header ({} of {len} header bytes)",
            b.len().saturating_sub(start)
        ))
    })?;
    let text = std::str::from_utf8(text).map_err(|_| bad("header is not text"))?;
    Ok((parse_header(text)?, start + len))
}

fn bad(m: impl Into<String>) -> NpyErrorKind {
    NpyErrorKind::BadHeader(m.into())
}

/// A cursor over the header text.
struct Text<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Text<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
    fn ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start_matches([' ', '\t']).len();
    }
    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char, what: &str) -> Result<(), NpyErrorKind> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(bad(format!("expected {what} at {}", quote(self.rest()))))
        }
    }
    fn string(&mut self) -> Result<&'a str, NpyErrorKind> {
        self.ws();
        let r = self.rest();
        let q = r
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| bad(format!("expected a quoted string at {}", quote(r))))?;
        let body = &r[1..];
        let end = body
            .find(q)
            .ok_or_else(|| bad(format!("unterminated string at {}", quote(r))))?;
        let v = &body[..end];
        if v.contains('\\') {
            return Err(bad(format!("escapes are not supported in {}", quote(v))));
        }
        self.at += end + 2;
        Ok(v)
    }
    fn boolean(&mut self) -> Result<bool, NpyErrorKind> {
        self.ws();
        for (word, v) in [("True", true), ("False", false)] {
            if self.rest().starts_with(word) {
                self.at += word.len();
                return Ok(v);
            }
        }
        Err(bad(format!(
            "fortran_order is not True/False: {}",
            quote(self.rest())
        )))
    }
    fn dim(&mut self) -> Result<usize, NpyErrorKind> {
        self.ws();
        let r = self.rest();
        let n = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let d = r[..n]
            .parse::<usize>()
            .map_err(|_| bad(format!("bad dimension at {}", quote(r))))?;
        self.at += n;
        // Python 2 NumPy wrote longs as `3L`.
        if self.rest().starts_with('L') {
            self.at += 1;
        }
        Ok(d)
    }
    /// `()`, `(n,)`, `(n, m)` or `(n, m,)`: a Python tuple literal of integers.
    fn shape(&mut self) -> Result<Vec<usize>, NpyErrorKind> {
        self.expect('(', "a shape tuple '('")?;
        let mut dims = Vec::new();
        if self.eat(')') {
            return Ok(dims);
        }
        loop {
            dims.push(self.dim()?);
            if dims.len() > MAX_DIMS {
                return Err(bad(format!("more than {MAX_DIMS} dimensions")));
            }
            let comma = self.eat(',');
            if self.eat(')') {
                if dims.len() == 1 && !comma {
                    return Err(bad("shape (n) is not a tuple (write (n,))"));
                }
                return Ok(dims);
            }
            if !comma {
                return Err(bad(format!(
                    "expected ',' or ')' in shape at {}",
                    quote(self.rest())
                )));
            }
        }
    }
}

/// Parse the header dict. Exactly `descr`, `fortran_order` and `shape`, each once, in any
/// order, either quote; trailing spaces, newline and NUL padding allowed after the `}`.
pub fn parse_header(text: &str) -> Result<Header, NpyErrorKind> {
    let s = text.trim_end_matches([' ', '\n', '\r', '\t', '\0']);
    let mut t = Text { s, at: 0 };
    t.expect('{', "a dict '{'")?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if t.eat('}') {
            break;
        }
        let key = t.string()?;
        t.expect(':', "':' after a key")?;
        let dup = match key {
            "descr" => descr.replace(t.string()?).is_some(),
            "fortran_order" => fortran.replace(t.boolean()?).is_some(),
            "shape" => shape.replace(t.shape()?).is_some(),
            other => return Err(bad(format!("unexpected key {}", quote(other)))),
        };
        if dup {
            return Err(bad(format!("key {key:?} given twice")));
        }
        if !t.eat(',') {
            t.expect('}', "',' or '}' after a value")?;
            break;
        }
    }
    t.ws();
    if !t.rest().is_empty() {
        return Err(bad(format!(
            "unexpected text after the dict: {}",
            quote(t.rest())
        )));
    }
    let descr = descr.ok_or_else(|| bad("missing 'descr'"))?;
    let (dtype, big_endian) = Dtype::parse_descr(descr).ok_or_else(|| NpyErrorKind::Dtype {
        found: clip(descr),
        expected: "float32, float64, int8, int32, int64 or uint8",
    })?;
    Ok(Header {
        dtype,
        big_endian,
        fortran_order: fortran.ok_or_else(|| bad("missing 'fortran_order'"))?,
        shape: shape.ok_or_else(|| bad("missing 'shape'"))?,
    })
}

/// `(3,)` or `(3, 4)`: the shape as Python writes a tuple.
pub(super) fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Header bytes of a little-endian C-order version 1.0 file (2.0 if the text needs more than
/// 65 535 bytes), padded with spaces so the data starts at a multiple of 64, like NumPy.
pub fn header_bytes(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        dtype.descr(false),
        fmt_shape(shape)
    );
    // The header length field of version 1 is a u16; padding adds at most 64 bytes.
    let v1 = dict.len() + 64 <= u16::MAX as usize;
    let pre = MAGIC.len() + if v1 { 4 } else { 6 };
    let pad = (64 - (pre + dict.len() + 1) % 64) % 64;
    let text_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(pre + text_len);
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(text_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(text_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// A version 1.0 file of `header` text (unpadded, as given) and `payload`: for test fixtures
/// with headers this module never writes (malformed, hostile, other dtypes).
pub fn raw_v1(header: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(payload);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> Result<Vec<usize>, String> {
        parse_header(&format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': {s}, }}"
        ))
        .map(|h| h.shape)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_numpy_spellings() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n")
            .unwrap();
        assert_eq!((h.dtype, h.shape), (Dtype::F32, vec![3, 4]));
        let h = parse_header("{\"shape\": (5,), \"fortran_order\": False, \"descr\": \">f8\"}")
            .unwrap();
        assert_eq!(
            h,
            Header {
                dtype: Dtype::F64,
                big_endian: true,
                fortran_order: false,
                shape: vec![5]
            }
        );
        assert_eq!(shape("()").unwrap(), Vec::<usize>::new());
        assert_eq!(shape("(2L, 3L)").unwrap(), vec![2, 3]);
        assert_eq!(shape("(2, 3,)").unwrap(), vec![2, 3]);
    }

    #[test]
    fn refuses_malformed_tuples_keys_and_trailing_text() {
        for s in [
            "(10,,)", "(,)", "(10)", "(10 20)", "(1,2", "(-1,)", "(1.5,)", "[1]",
        ] {
            assert!(shape(s).is_err(), "{s} accepted");
        }
        let e = shape("(10,,)").unwrap_err();
        assert!(e.contains("bad dimension at \",), }\""), "{e}");
        let e = parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unexpected key \"x\""), "{e}");
        assert!(parse_header(
            "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}"
        )
        .is_err());
        assert!(parse_header("{'descr': '<f8', 'shape': (1,)}").is_err());
        assert!(parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} x").is_err());
        assert!(parse_header("{'descr': '<f8' 'fortran_order': False, 'shape': (1,)}").is_err());
        assert!(shape(&format!("({})", vec!["1"; 65].join(", "))).is_err());
    }

    #[test]
    fn errors_quote_at_most_64_bytes() {
        let key = "k".repeat(2000);
        let e = parse_header(&format!("{{'{key}': 1}}"))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 140 && e.contains("... (2000 bytes)"), "{e}");
        let e = parse_header(&format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': (1,)}}",
            "é".repeat(500)
        ))
        .unwrap_err()
        .to_string();
        assert!(e.len() < 200 && e.contains("(1000 bytes)"), "{e}");
    }

    #[test]
    fn preamble_caps_the_header_length() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[2, 0]);
        b.extend_from_slice(&(u32::MAX).to_le_bytes());
        let e = preamble(&b).unwrap_err().to_string();
        assert!(e.contains("header length 4294967295 is implausible"), "{e}");
        b[6] = 7;
        assert!(matches!(preamble(&b), Err(NpyErrorKind::BadVersion(7, 0))));
    }

    #[test]
    fn written_headers_parse_back_aligned() {
        for shape in [vec![3], vec![2, 5], vec![], vec![1; 64]] {
            let b = header_bytes(Dtype::U8, &shape);
            assert_eq!(b.len() % 64, 0);
            let (h, at) = parse_prefix(&b).unwrap();
            assert_eq!((h.shape, h.dtype, at), (shape, Dtype::U8, b.len()));
        }
    }
}
