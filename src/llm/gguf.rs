//! Reading GGUF files (llama.cpp's model format, version 2 and 3): the
//! metadata, the tensor directory, and dequantisation of the block formats
//! that LLaMA-family files use. The file is memory-mapped; tensor data is
//! borrowed from the mapping, never copied until a caller dequantises it.
//!
//! Every count and offset comes from the file, so every one is checked
//! against the file's size before it is used: a truncated or hostile file
//! gives a [`GgufError`], never a panic or a huge allocation.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use crate::mapped::MappedFile;
use half::f16;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path} is not a GGUF file (magic {magic:02x?}); expected a llama.cpp .gguf model")]
    Magic { path: String, magic: [u8; 4] },
    #[error("{path} is GGUF version {version}; only versions 2 and 3 are supported")]
    Version { path: String, version: u32 },
    #[error("{path} is truncated or corrupt: {what} at byte {offset} runs past the end ({len} bytes)")]
    Truncated { path: String, what: String, offset: u64, len: u64 },
    #[error("{path} is corrupt: {what}")]
    Corrupt { path: String, what: String },
    #[error("{path} has no tensor {name:?}; is it a complete LLaMA-family model?")]
    MissingTensor { path: String, name: String },
    #[error("{path} has no metadata key {key:?}")]
    MissingKey { path: String, key: String },
    #[error("{path}: tensor {name} has type {kind}, which emoedge cannot dequantise (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)")]
    UnsupportedType { path: String, name: String, kind: String },
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            Value::Int(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Uint(v) => Some(*v as f64),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml's tensor element types that LLaMA-family GGUFs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Other(u32),
}

impl GgmlType {
    fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// (values per block, bytes per block), for the types we can read.
    fn block(self) -> Option<(u64, u64)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Other(_) => None,
        }
    }
}

/// One tensor's directory entry. `dims` are in GGUF order: the first is the
/// fastest-varying (a matrix `[cols, rows]`, i.e. `[in, out]` for a weight).
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub kind: GgmlType,
    /// Absolute byte range in the file.
    pub start: u64,
    pub end: Option<u64>,
}

impl TensorInfo {
    pub fn len(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An open GGUF file.
pub struct Gguf {
    pub path: String,
    map: Arc<MappedFile>,
    /// Byte range of the metadata key/value section, copied verbatim on export.
    pub kv_bytes: std::ops::Range<usize>,
    pub kv_count: u64,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

/// Sanity bounds: no real model comes near them, and they keep a hostile
/// header from asking for absurd allocations.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KEYS: u64 = 1 << 20;
const MAX_DIMS: u32 = 8;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: u64,
    path: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        let len = self.bytes.len() as u64;
        if n > len || self.pos > len - n {
            return Err(GgufError::Truncated { path: self.path.into(), what: what.into(), offset: self.pos, len });
        }
        let s = &self.bytes[self.pos as usize..(self.pos + n) as usize];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        let b = self.take(n, what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
    fn value(&mut self, kind: u32, what: &str, depth: u32) -> Result<Value, GgufError> {
        let corrupt = |w: String| GgufError::Corrupt { path: self.path.into(), what: w };
        Ok(match kind {
            0 => Value::Uint(self.take(1, what)?[0] as u64),
            1 => Value::Int(self.take(1, what)?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap_or([0; 2])) as u64),
            3 => Value::Int(i16::from_le_bytes(self.take(2, what)?.try_into().unwrap_or([0; 2])) as i64),
            4 => Value::Uint(self.u32(what)? as u64),
            5 => Value::Int(self.u32(what)? as i32 as i64),
            6 => Value::Float(f32::from_bits(self.u32(what)?) as f64),
            7 => Value::Bool(self.take(1, what)?[0] != 0),
            8 => Value::String(self.string(what)?),
            9 => {
                if depth > 2 {
                    return Err(corrupt(format!("{what}: arrays nested too deep")));
                }
                let inner = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: a count beyond the
                // bytes left is a lie, refused before allocating.
                if n > self.bytes.len() as u64 - self.pos.min(self.bytes.len() as u64) {
                    return Err(corrupt(format!("{what}: array of {n} elements is longer than the file")));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(inner, what, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Uint(self.u64(what)?),
            11 => Value::Int(self.u64(what)? as i64),
            12 => Value::Float(f64::from_bits(self.u64(what)?)),
            other => return Err(corrupt(format!("{what}: unknown value type {other}"))),
        })
    }
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let name = path.display().to_string();
        // Guarded: a file cut while mapped reads as zeros and `check` says so.
        let map = MappedFile::open(path).map_err(|source| GgufError::Open { path: name.clone(), source })?;
        Gguf::parse(map, name)
    }

    /// The mapping, to check that it still holds after reading weights from it.
    pub fn mapping(&self) -> Arc<MappedFile> {
        self.map.clone()
    }

    fn parse(map: MappedFile, path: String) -> Result<Gguf, GgufError> {
        let bytes: &[u8] = &map;
        let mut c = Cursor { bytes, pos: 0, path: &path };
        let magic: [u8; 4] = c.take(4, "magic")?.try_into().unwrap_or([0; 4]);
        if &magic != b"GGUF" {
            return Err(GgufError::Magic { path: path.clone(), magic });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version { path: path.clone(), version });
        }
        let n_tensors = c.u64("tensor count")?;
        let n_keys = c.u64("metadata count")?;
        if n_tensors > MAX_TENSORS || n_keys > MAX_KEYS {
            return Err(GgufError::Corrupt {
                path: path.clone(),
                what: format!("{n_tensors} tensors and {n_keys} keys"),
            });
        }
        let mut metadata = BTreeMap::new();
        let kv_start = c.pos as usize;
        for _ in 0..n_keys {
            let key = c.string("metadata key")?;
            let kind = c.u32(&key)?;
            let value = c.value(kind, &key, 0)?;
            metadata.insert(key, value);
        }
        let kv_bytes = kv_start..c.pos as usize;
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::Corrupt {
                    path: path.clone(),
                    what: format!("tensor {name} has {n_dims} dimensions"),
                });
            }
            let dims = (0..n_dims).map(|_| c.u64(&name)).collect::<Result<Vec<_>, _>>()?;
            let kind = GgmlType::from_id(c.u32(&name)?);
            let offset = c.u64(&name)?;
            tensors.push(TensorInfo { name, dims, kind, start: offset, end: None });
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32).max(1);
        // Every size below comes from the file: checked, never wrapped (found by fuzzing).
        let data_start = c.pos.div_ceil(alignment).checked_mul(alignment).ok_or_else(|| GgufError::Corrupt {
            path: path.clone(),
            what: format!("general.alignment {alignment} is absurd"),
        })?;
        let len = bytes.len() as u64;
        for t in &mut tensors {
            let count = t.dims.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
            let size = match (count, t.kind.block()) {
                (Some(n), Some((per_block, block_bytes))) => {
                    if n % per_block != 0 {
                        return Err(GgufError::Corrupt {
                            path: path.clone(),
                            what: format!(
                                "tensor {} has {n} values, not a whole number of {per_block}-value blocks",
                                t.name
                            ),
                        });
                    }
                    match (n / per_block).checked_mul(block_bytes) {
                        Some(bytes) => Some(bytes),
                        None => {
                            return Err(GgufError::Corrupt {
                                path: path.clone(),
                                what: format!("tensor {} is absurdly large", t.name),
                            })
                        }
                    }
                }
                (None, _) => {
                    return Err(GgufError::Corrupt {
                        path: path.clone(),
                        what: format!("tensor {} is absurdly large", t.name),
                    })
                }
                _ => None,
            };
            t.start = data_start.saturating_add(t.start);
            if let Some(size) = size {
                let end = t.start.saturating_add(size);
                if end > len {
                    return Err(GgufError::Truncated {
                        path: path.clone(),
                        what: format!("tensor {}", t.name),
                        offset: t.start,
                        len,
                    });
                }
                t.end = Some(end);
            }
        }
        Ok(Gguf { path, map: Arc::new(map), version, metadata, tensors, kv_bytes, kv_count: n_keys })
    }

    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.into() })
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::MissingTensor { path: self.path.clone(), name: name.into() })
    }

    /// The raw bytes of a tensor, borrowed from the mapping.
    pub fn raw(&self, t: &TensorInfo) -> Result<&[u8], GgufError> {
        let end = t.end.ok_or_else(|| self.unsupported(t))?;
        Ok(&self.map[t.start as usize..end as usize])
    }

    /// A 2-D F32, F16 or Q8_0 tensor as a window into the mapping, no copy.
    pub fn matrix(&self, name: &str) -> anyhow::Result<super::linear::MappedMatrix> {
        use super::kernels::RowFormat;
        let t = self.tensor(name)?;
        let format = match t.kind {
            GgmlType::F32 => RowFormat::F32,
            GgmlType::F16 => RowFormat::F16,
            GgmlType::Q8_0 => RowFormat::Q8_0,
            other => anyhow::bail!(
                "{}: {name} is {other:?}; the runtime maps F32, F16 or Q8_0 weights (run `emoedge convert` first)",
                self.path
            ),
        };
        anyhow::ensure!(t.dims.len() == 2, "{}: {name} is not a matrix", self.path);
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        super::linear::MappedMatrix::new(self.map.clone(), t.start as usize, rows, cols, format)
            .map_err(|e| e.context(format!("{}: {name}", self.path)))
    }

    /// The whole file, as mapped.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn unsupported(&self, t: &TensorInfo) -> GgufError {
        GgufError::UnsupportedType { path: self.path.clone(), name: t.name.clone(), kind: format!("{:?}", t.kind) }
    }

    /// The tensor's values as f32, in GGUF order (first dimension fastest).
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>, GgufError> {
        let raw = self.raw(t)?;
        let mut out = Vec::with_capacity(t.len() as usize);
        let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        match t.kind {
            GgmlType::F32 => out.extend(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            GgmlType::F16 => out.extend(raw.chunks_exact(2).map(h)),
            GgmlType::BF16 => {
                out.extend(raw.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)))
            }
            // Q4_0: scale d, then 16 bytes: low nibbles are values 0–15, high nibbles 16–31; value = d·(q − 8).
            GgmlType::Q4_0 => {
                for b in raw.chunks_exact(18) {
                    let d = h(&b[0..2]);
                    let q = &b[2..18];
                    out.extend(q.iter().map(|x| d * ((x & 0x0F) as f32 - 8.0)));
                    out.extend(q.iter().map(|x| d * ((x >> 4) as f32 - 8.0)));
                }
            }
            // Q4_1: scale d and minimum m, then nibbles as Q4_0; value = d·q + m.
            GgmlType::Q4_1 => {
                for b in raw.chunks_exact(20) {
                    let (d, m) = (h(&b[0..2]), h(&b[2..4]));
                    let q = &b[4..20];
                    out.extend(q.iter().map(|x| d * (x & 0x0F) as f32 + m));
                    out.extend(q.iter().map(|x| d * (x >> 4) as f32 + m));
                }
            }
            // Q8_0: scale d, then 32 signed bytes; value = d·q.
            GgmlType::Q8_0 => {
                for b in raw.chunks_exact(34) {
                    let d = h(&b[0..2]);
                    out.extend(b[2..34].iter().map(|x| d * (*x as i8) as f32));
                }
            }
            GgmlType::Other(_) => return Err(self.unsupported(t)),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal GGUF: one u32 key, one 2×32 Q8_0 tensor.
    fn tiny_gguf() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(1u64.to_le_bytes()); // keys
        let key = b"llama.block_count";
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key);
        b.extend(4u32.to_le_bytes());
        b.extend(30u32.to_le_bytes());
        let name = b"w";
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name);
        b.extend(2u32.to_le_bytes());
        b.extend(32u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        for row in 0..2 {
            b.extend(f16::from_f32(0.5).to_le_bytes());
            b.extend((0..32).map(|i| (i as i8 - 16 + row) as u8));
        }
        b
    }

    fn parse(bytes: Vec<u8>) -> Result<Gguf, GgufError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "emoedge-gguf-test-{}-{}.gguf",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).unwrap();
        let g = Gguf::open(&path);
        let _ = std::fs::remove_file(&path);
        g
    }

    #[test]
    fn reads_metadata_and_dequantises_q8_0() {
        let g = parse(tiny_gguf()).unwrap();
        assert_eq!(g.get("llama.block_count").unwrap().as_u64(), Some(30));
        let t = g.tensor("w").unwrap();
        assert_eq!(t.dims, vec![32, 2]);
        let v = g.dequantize(t).unwrap();
        assert_eq!(v.len(), 64);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[32 + 31], 0.5 * 16.0);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = tiny_gguf();
        for n in 0..full.len() {
            assert!(parse(full[..n].to_vec()).is_err(), "accepted {n} of {} bytes", full.len());
        }
    }

    #[test]
    fn a_lying_array_length_is_refused() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes()); // array
        b.extend(8u32.to_le_bytes()); // of strings
        b.extend(u64::MAX.to_le_bytes());
        assert!(matches!(parse(b), Err(GgufError::Corrupt { .. })));
    }
}
