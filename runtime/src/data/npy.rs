//! NumPy `.npy` files: reading (format versions 1, 2 and 3) and writing (version 1).
//!
//! In: the bytes of a file. Out: its dtype, shape and a view of its data, or a one-line
//! reason why it is not a readable array (not `.npy`, an unsupported dtype or byte order,
//! a truncated body); Fortran-order arrays are read in C order. Element access converts to `i64` or `f64`; the
//! caller (`column.rs`) checks ranges against the model. Only little-endian (or
//! single-byte) integers and floats are read: `<i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 <f4 <f8`.
//!
//! Why not a crate: `ndarray-npy` reads into an `ndarray` of one element type and
//! refuses any other descriptor (no `<i8` or `|u1` file read as `i32` values checked
//! one by one), and pulls in `ndarray`; `npyz` reports header and body problems as
//! `std::io::Error` text. Neither says what this reader says in one line (which dtype,
//! how many values the header promises and how many the file holds), and both
//! would still need this module's dispatch over descriptors, so reading stays here.
//!
//! The format: the magic `\x93NUMPY`, a major and a minor version byte, the header length
//! (`u16` in version 1, `u32` in 2 and 3), then the header, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 32), }`, then the data.

use std::borrow::Cow;

const MAGIC: &[u8] = b"\x93NUMPY";

/// What kind of number an element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Uint,
    Float,
}

/// An array read from a `.npy` file, borrowing its data.
#[derive(Debug)]
pub struct Array<'a> {
    /// The dtype as the file writes it, e.g. `<f4`.
    pub descr: String,
    pub kind: Kind,
    /// Bytes per element.
    pub size: usize,
    pub shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl Array<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.size
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn bytes<const N: usize>(&self, i: usize) -> [u8; N] {
        self.data[i * N..(i + 1) * N].try_into().expect("N is the element size")
    }

    /// Element `i` of an integer array (`None` for a `u8` above `i64::MAX`, or a float array).
    pub fn int(&self, i: usize) -> Option<i64> {
        match (self.kind, self.size) {
            (Kind::Int, 1) => Some(self.data[i] as i8 as i64),
            (Kind::Int, 2) => Some(i16::from_le_bytes(self.bytes(i)) as i64),
            (Kind::Int, 4) => Some(i32::from_le_bytes(self.bytes(i)) as i64),
            (Kind::Int, 8) => Some(i64::from_le_bytes(self.bytes(i))),
            (Kind::Uint, 1) => Some(self.data[i] as i64),
            (Kind::Uint, 2) => Some(u16::from_le_bytes(self.bytes(i)) as i64),
            (Kind::Uint, 4) => Some(u32::from_le_bytes(self.bytes(i)) as i64),
            (Kind::Uint, 8) => i64::try_from(u64::from_le_bytes(self.bytes(i))).ok(),
            _ => None,
        }
    }

    /// Element `i` of a float array.
    pub fn float(&self, i: usize) -> Option<f64> {
        match (self.kind, self.size) {
            (Kind::Float, 4) => Some(f32::from_le_bytes(self.bytes(i)) as f64),
            (Kind::Float, 8) => Some(f64::from_le_bytes(self.bytes(i))),
            _ => None,
        }
    }
}

/// `<f4 [100, 32]`
pub fn describe(descr: &str, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{descr} [{}]", dims.join(", "))
}

/// Reads the header and checks that the data holds exactly the values it announces.
pub fn parse(bytes: &[u8]) -> Result<Array<'_>, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a .npy file (it does not start with the magic \\x93NUMPY)".into());
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err("truncated: the file ends inside the .npy preamble".into()),
    };
    let (len_bytes, start): (usize, usize) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(format!(
                "unsupported .npy format version {major}.{minor} (1, 2 and 3 are read)"
            ))
        }
    };
    let Some(len) = bytes.get(8..8 + len_bytes) else {
        return Err("truncated: the file ends inside the .npy preamble".into());
    };
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([len[0], len[1]]) as usize
    } else {
        u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize
    };
    let Some(header) = bytes.get(start..start.saturating_add(header_len)) else {
        return Err(format!(
            "truncated: the header is {header_len} bytes long, the file ends after {}",
            bytes.len().saturating_sub(start)
        ));
    };
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text".to_string())?;
    let h = Header::parse(header)
        .map_err(|e| format!("unreadable .npy header ({e}): {}", crate::files::clip(header.trim())))?;
    let (kind, size) = dtype(&h.descr)?;
    let numel = h
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(size).is_some())
        .ok_or_else(|| format!("the shape {} is too large", describe(&h.descr, &h.shape)))?;
    let data = &bytes[start + header_len..];
    let held = data.len() / size;
    if data.len() < numel * size {
        return Err(format!("truncated: header says {numel} values, file holds {held}"));
    }
    if data.len() > numel * size {
        return Err(format!(
            "header says {numel} values, but the file holds {} more bytes after them",
            data.len() - numel * size
        ));
    }
    // numpy saves a transposed array (`edges.T`) in Fortran order: read it as C order.
    let data = match h.fortran_order {
        true => Cow::Owned(c_order(data, &h.shape, size)),
        false => Cow::Borrowed(data),
    };
    Ok(Array {
        descr: h.descr,
        kind,
        size,
        shape: h.shape,
        data,
    })
}

/// The elements of a Fortran-order (column-major) array of `shape`, `size` bytes each,
/// in C (row-major) order.
fn c_order(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    // Column-major strides: axis 0 varies fastest.
    let strides: Vec<usize> = shape
        .iter()
        .scan(1, |stride, &d| {
            let s = *stride;
            *stride *= d;
            Some(s)
        })
        .collect();
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[at * size..(at + 1) * size]);
        // The next C-order index: the last axis varies fastest.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// The supported dtypes: kind and element size.
fn dtype(descr: &str) -> Result<(Kind, usize), String> {
    let unsupported = || {
        format!(
            "unsupported dtype '{descr}' (read: little-endian integers <i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 \
             and floats <f4 <f8)"
        )
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let kind = match chars.next() {
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        Some('f') => Kind::Float,
        _ => return Err(unsupported()),
    };
    let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let ok_size = match kind {
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
        Kind::Float => matches!(size, 4 | 8),
    };
    if !ok_size {
        return Err(unsupported());
    }
    match order {
        '<' => Ok((kind, size)),
        '|' | '=' if size == 1 => Ok((kind, size)),
        '>' if size == 1 => Ok((kind, size)),
        '>' => Err(format!(
            "big-endian dtype '{descr}' is not read; save a little-endian array (a.astype('<{}'))",
            &descr[1..]
        )),
        _ => Err(unsupported()),
    }
}

/// The three keys of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header's dict literal.
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl Header {
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Lexer {
            s: text.as_bytes(),
            i: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            if p.eat(b'}') {
                break;
            }
            let key = match p.value()? {
                Lit::Str(s) => s,
                _ => return Err("a key is not a string".into()),
            };
            p.expect(b':')?;
            let value = p.value()?;
            match (key.as_str(), value) {
                ("descr", Lit::Str(s)) => descr = Some(s),
                ("fortran_order", Lit::Bool(b)) => fortran = Some(b),
                ("shape", Lit::Tuple(t)) => shape = Some(t),
                ("descr" | "fortran_order" | "shape", _) => return Err(format!("'{key}' has the wrong type")),
                _ => {}
            }
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        Ok(Header {
            descr: descr.ok_or("no 'descr'")?,
            fortran_order: fortran.ok_or("no 'fortran_order'")?,
            shape: shape.ok_or("no 'shape'")?,
        })
    }
}

/// Just enough of a Python literal reader for `.npy` headers.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_space(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        self.skip_space();
        match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => {
                let start = self.i + 1;
                let len = self.s[start..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or("an unterminated string")?;
                self.i = start + len + 1;
                Ok(Lit::Str(
                    String::from_utf8_lossy(&self.s[start..start + len]).into_owned(),
                ))
            }
            Some(b'[') => Err("a structured dtype (these are not read)".into()),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.int()?);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Lit::Tuple(dims))
            }
            _ => {
                let rest = &self.s[self.i..];
                for (word, b) in [(&b"True"[..], true), (&b"False"[..], false)] {
                    if rest.starts_with(word) {
                        self.i += word.len();
                        return Ok(Lit::Bool(b));
                    }
                }
                Err(format!("unexpected text at byte {}", self.i))
            }
        }
    }

    fn int(&mut self) -> Result<usize, String> {
        self.skip_space();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let n = std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("expected a size at byte {start}"))?;
        // Python 2 wrote longs as `100L`.
        if self.s.get(self.i) == Some(&b'L') {
            self.i += 1;
        }
        Ok(n)
    }
}

/// A `.npy` file (version 1, C order) holding `data` (raw little-endian elements of
/// dtype `descr`) with `shape`. With `fortran_order` the header says so (for tests).
pub fn encode_raw(descr: &str, fortran_order: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran_order { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    // numpy pads the preamble and header to a multiple of 64 bytes, ending in a newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A `.npy` file of `f32` values.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_raw("<f4", false, shape, &data)
}

/// A `.npy` file of `i32` values.
pub fn encode_i32(shape: &[usize], values: &[i32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_raw("<i4", false, shape, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f32_and_i32() {
        let bytes = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
        let a = parse(&bytes).unwrap();
        assert_eq!((a.descr.as_str(), a.shape.as_slice()), ("<f4", &[2, 3][..]));
        assert_eq!(a.float(5), Some(-6.5));
        let bytes = encode_i32(&[4], &[7, -1, 0, i32::MAX]);
        let a = parse(&bytes).unwrap();
        assert_eq!(a.shape, vec![4]);
        assert_eq!(
            (0..4).map(|i| a.int(i).unwrap()).collect::<Vec<_>>(),
            vec![7, -1, 0, i32::MAX as i64]
        );
    }

    #[test]
    fn versions_2_and_3_and_scalars() {
        for major in [2u8, 3] {
            let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (), }\n";
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[major, 0]);
            b.extend_from_slice(&(header.len() as u32).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&(-5i64).to_le_bytes());
            let a = parse(&b).unwrap();
            assert!(a.shape.is_empty());
            assert_eq!(a.int(0), Some(-5));
        }
    }

    #[test]
    fn python2_longs_and_double_quotes() {
        let b = {
            let mut v = encode_raw("<u2", false, &[2], &[1, 0, 2, 0]);
            let text = String::from_utf8_lossy(&v[10..])
                .replace("(2,), }", "(2L,),}")
                .replace('\'', "\"");
            v.truncate(10);
            v.extend_from_slice(text.as_bytes());
            v
        };
        let a = parse(&b).unwrap();
        assert_eq!((a.int(0), a.int(1)), (Some(1), Some(2)));
    }

    #[test]
    fn fortran_order_reads_as_c_order() {
        // a = [[0, 1, 2], [3, 4, 5]] stored column by column: 0 3 1 4 2 5.
        let raw: Vec<u8> = [0i32, 3, 1, 4, 2, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = encode_raw("<i4", true, &[2, 3], &raw);
        let a = parse(&bytes).unwrap();
        assert_eq!(
            (0..6).map(|i| a.int(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
        let raw: Vec<u8> = (0..24i32).flat_map(|v| v.to_le_bytes()).collect();
        let bytes = encode_raw("<i4", true, &[2, 3, 4], &raw);
        let a3 = parse(&bytes).unwrap();
        // C index (i, j, k) = 12 i + 4 j + k holds the Fortran element i + 2 j + 6 k.
        assert_eq!(a3.int(12 + 4 * 2 + 3), Some(1 + 2 * 2 + 6 * 3));
    }

    #[test]
    fn errors() {
        let err = |b: &[u8]| parse(b).unwrap_err();
        assert!(err(b"hello").contains("not a .npy file"));
        assert!(err(&encode_raw(">f4", false, &[2], &[0; 8])).contains("big-endian"));
        assert!(err(&encode_raw("<c8", false, &[2], &[0; 16])).contains("unsupported dtype '<c8'"));
        assert_eq!(
            err(&encode_raw("<f4", false, &[2, 2], &[0; 14])),
            "truncated: header says 4 values, file holds 3"
        );
        assert!(err(&encode_raw("<f4", false, &[1], &[0; 8])).contains("4 more bytes"));
        let full = encode_f32(&[3], &[1.0, 2.0, 3.0]);
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(err(&encode_raw("<f4", false, &[usize::MAX, 2], &[])).contains("too large"));
    }
}
