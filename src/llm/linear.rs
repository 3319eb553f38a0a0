//! Linear layers and the embedding lookup over weights that stay in the
//! memory-mapped model file, as tract ops.
//!
//! A [`MappedMatrix`] is a window into the mapping: no copy is made, and the
//! page cache holds the only instance of the weights (shared between
//! processes, and dropped under memory pressure instead of swapped). The ops
//! wrap the kernels of [`super::kernels`] behind tract's `Op` / `EvalOp` /
//! `TypedOp`, so the rest of the graph (norms, RoPE, attention, KV cache)
//! stays tract's own.

use std::{
    hash::{Hash, Hasher},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use crate::mapped::MappedFile;
use rayon::prelude::*;
use tract_nnef::internal::*;

use super::kernels::{self, Activation, BlockQ8, Columns, RowFormat, QK};

/// A row-major `[rows, cols]` weight matrix inside a memory-mapped file.
#[derive(Clone)]
pub struct MappedMatrix {
    map: Arc<MappedFile>,
    offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub format: RowFormat,
}

impl std::fmt::Debug for MappedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}[{}, {}] @{}", self.format, self.rows, self.cols, self.offset)
    }
}

/// Two windows are the same op input when they are the same bytes of the same mapping.
impl PartialEq for MappedMatrix {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.map, &other.map)
            && (self.offset, self.rows, self.cols, self.format) == (other.offset, other.rows, other.cols, other.format)
    }
}
impl Eq for MappedMatrix {}
impl Hash for MappedMatrix {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.map) as usize, self.offset, self.rows, self.cols, self.format).hash(state)
    }
}

impl MappedMatrix {
    /// Checks that the window lies inside the mapping and suits the kernels.
    pub fn new(
        map: Arc<MappedFile>,
        offset: usize,
        rows: usize,
        cols: usize,
        format: RowFormat,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cols.is_multiple_of(QK),
            "a weight row of {cols} values is not a whole number of {QK}-value blocks"
        );
        let end = rows.checked_mul(format.row_bytes(cols)).and_then(|n| n.checked_add(offset));
        anyhow::ensure!(end.is_some_and(|e| e <= map.len()), "a weight matrix runs past the end of the file");
        Ok(MappedMatrix { map, offset, rows, cols, format })
    }

    /// The matrices stacked by rows, when they lie back to back in the same
    /// mapping with the same width and format.
    pub fn concat(parts: &[MappedMatrix]) -> Option<MappedMatrix> {
        let first = parts.first()?;
        let mut end = first.offset;
        for p in parts {
            let same = Arc::ptr_eq(&p.map, &first.map) && p.cols == first.cols && p.format == first.format;
            if !same || p.offset != end {
                return None;
            }
            end += p.rows * p.row_bytes();
        }
        Some(MappedMatrix { rows: parts.iter().map(|p| p.rows).sum(), ..first.clone() })
    }

    pub fn row_bytes(&self) -> usize {
        self.format.row_bytes(self.cols)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.rows * self.row_bytes()]
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.map[self.offset + r * rb..self.offset + (r + 1) * rb]
    }

    /// `residual + W · x`, a new `[S, rows]` tensor: a linear whose output
    /// joins the residual stream (attention's W_o, the feed-forward's W_down).
    pub fn matmul_onto(&self, x: &[f32], residual: &[f32]) -> TractResult<Tensor> {
        let mut y = Tensor::zero::<f32>(&[residual.len() / self.rows, self.rows])?;
        {
            let mut view = y.try_as_plain_ram_mut()?;
            let y = view.as_slice_mut::<f32>()?;
            self.matmul(x, y);
            y.iter_mut().zip(residual).for_each(|(y, r)| *y += r);
        }
        Ok(y)
    }

    /// `y[s, :] = W · x[s, :]` for the `s = x.len() / cols` rows of `x`.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) {
        let (k, n) = (self.cols, self.rows);
        let s = x.len() / k;
        debug_assert!(x.len() == s * k && y.len() == s * n);
        let quantised: Vec<Vec<BlockQ8>> = if self.format == RowFormat::Q8_0 {
            x.chunks_exact(k)
                .map(|row| {
                    let mut q = Vec::with_capacity(k / QK);
                    kernels::quantize_q8_0(row, &mut q);
                    q
                })
                .collect()
        } else {
            Vec::new()
        };
        let acts: Vec<Activation> = if self.format == RowFormat::Q8_0 {
            quantised.iter().map(|q| Activation::Q8(q)).collect()
        } else {
            x.chunks_exact(k).map(Activation::F32).collect()
        };
        // Each task owns a run of weight rows, reads them once for all of the
        // s activation rows, and writes that block of columns of y.
        let rb = self.row_bytes();
        let y = Columns { ptr: y.as_mut_ptr(), stride: n };
        let block = |first: usize, rows: usize| {
            let w = &self.bytes()[first * rb..(first + rows) * rb];
            // SAFETY: y is [s, n] and this call writes columns first..first+rows
            // of it, which no other task touches.
            unsafe { kernels::matmul_rows(self.format, w, &acts, y.skip(first)) };
        };
        // Inside `on_pool` the rows are shared among its workers; elsewhere
        // (tests, tools) the calling thread does them all.
        let threads = if rayon::current_thread_index().is_some() { rayon::current_num_threads() } else { 1 };
        if threads <= 1 || n < 64 {
            block(0, n);
        } else {
            let per_task = n.div_ceil(threads * 4).max(16);
            (0..n.div_ceil(per_task)).into_par_iter().for_each(|t| {
                let first = t * per_task;
                block(first, per_task.min(n - first));
            });
        }
    }
}

/// Several linears of the same input (Q, K, V; gate, up). When their weights
/// lie back to back in the file, as `emoedge convert` writes them, they run
/// as one matrix: one longer stream of rows, which the prefetchers follow
/// better than several short ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Projection {
    parts: Vec<MappedMatrix>,
    stacked: Option<MappedMatrix>,
}

impl Projection {
    pub fn new(parts: Vec<MappedMatrix>) -> anyhow::Result<Projection> {
        let cols = parts.first().map(|p| p.cols);
        anyhow::ensure!(
            cols.is_some() && parts.iter().all(|p| Some(p.cols) == cols),
            "the projections of one input must all have its width"
        );
        Ok(Projection { stacked: MappedMatrix::concat(&parts), parts })
    }

    pub fn cols(&self) -> usize {
        self.parts[0].cols
    }

    /// `y_j[s, :] = W_j · x[s, :]`, one output per part, each `[S, rows_j]`.
    pub fn apply(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let s = x.len() / self.cols();
        let Some(stacked) = &self.stacked else {
            return self
                .parts
                .iter()
                .map(|p| {
                    let mut y = vec![0f32; s * p.rows];
                    p.matmul(x, &mut y);
                    y
                })
                .collect();
        };
        let mut y = vec![0f32; s * stacked.rows];
        stacked.matmul(x, &mut y);
        let mut start = 0;
        self.parts
            .iter()
            .map(|p| {
                // Row by row with a slice copy: a flat_map over the rows
                // copied one value at a time (3 % of a prefill).
                let mut part = Vec::with_capacity(s * p.rows);
                for row in y.chunks_exact(stacked.rows) {
                    part.extend_from_slice(&row[start..start + p.rows]);
                }
                start += p.rows;
                part
            })
            .collect()
    }
}

// ---- threads ----------------------------------------------------------------

static THREADS: AtomicUsize = AtomicUsize::new(1);
static POOL: Mutex<Option<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// Sets how many threads an LLM step uses: our weight kernels, and tract's
/// attention, which spreads heads over the rayon pool it runs in.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Runs `f` on a pool of [`threads()`] workers. Without it tract's attention
/// would use rayon's global pool (one thread per core) whatever we asked for.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let n = threads();
    let pool = {
        let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((size, pool)) if *size == n => Some(pool.clone()),
            _ => {
                match rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("emoedge-mm-{i}")).build()
                {
                    Ok(pool) => {
                        let pool = Arc::new(pool);
                        *slot = Some((n, pool.clone()));
                        Some(pool)
                    }
                    Err(e) => {
                        log::warn!("cannot start {n} worker threads ({e}); running on one");
                        None
                    }
                }
            }
        }
    };
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

// ---- tract ops ----------------------------------------------------------------

/// `y[.., n] = x[.., k] · W[n, k]ᵀ`, a bias-less `nn.Linear`, W in the mapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MappedLinear {
    pub weight: MappedMatrix,
}

impl Op for MappedLinear {
    fn name(&self) -> StaticName {
        "MappedLinear".into()
    }
    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("weight {:?}, kernels {}", self.weight, kernels::isa())])
    }
    op_as_typed_op!();
}

impl EvalOp for MappedLinear {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let x = x.cast_to::<f32>()?;
        let mut shape: TVec<usize> = x.shape().into();
        ensure!(
            shape.last() == Some(&self.weight.cols),
            "MappedLinear: input {shape:?} is not [.., {}]",
            self.weight.cols
        );
        *shape.last_mut().unwrap_or(&mut 0) = self.weight.rows;
        let mut y = Tensor::zero::<f32>(&shape)?;
        let xs = x.try_as_plain_ram()?;
        let mut ys = y.try_as_plain_ram_mut()?;
        self.weight.matmul(xs.as_slice::<f32>()?, ys.as_slice_mut::<f32>()?);
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for MappedLinear {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        ensure!(
            shape.last() == Some(&self.weight.cols.to_dim()),
            "MappedLinear: input {:?} is not [.., {}]",
            inputs[0].shape,
            self.weight.cols
        );
        let last = shape.len() - 1;
        shape[last] = self.weight.rows.to_dim();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// `y[s, :] = table[tokens[s], :]` widened to f32, the table in the mapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MappedEmbedding {
    pub table: MappedMatrix,
}

impl Op for MappedEmbedding {
    fn name(&self) -> StaticName {
        "MappedEmbedding".into()
    }
    op_as_typed_op!();
}

impl EvalOp for MappedEmbedding {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let tokens = args_1!(inputs);
        let tokens = tokens.try_as_plain_ram()?;
        let tokens = tokens.as_slice::<i64>()?;
        let d = self.table.cols;
        let mut y = Tensor::zero::<f32>(&[tokens.len(), d])?;
        let mut view = y.try_as_plain_ram_mut()?;
        let out = view.as_slice_mut::<f32>()?;
        for (t, row) in tokens.iter().zip(out.chunks_exact_mut(d)) {
            let r = usize::try_from(*t).ok().filter(|r| *r < self.table.rows);
            let r = r.with_context(|| format!("token id {t} is outside the vocabulary of {}", self.table.rows))?;
            kernels::dequantize_row(self.table.format, self.table.row(r), row);
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for MappedEmbedding {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].rank() == 1, "MappedEmbedding: tokens must be a vector");
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), self.table.cols.to_dim()])))
    }

    as_op!();
}
