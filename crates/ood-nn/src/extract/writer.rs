//! The streaming `.npy` writer of extraction, and tensors copied to the host.
use std::path::{Path, PathBuf};

use ood_core::io::npy::{NpyError, NpyWriter};
use tch::{Device, Kind, Tensor};

use super::{torch_err, InferError, Result};

/// Rows pushed to an [`NpyRowWriter`] that do not make the declared array.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("a batch has rows of shape {found:?}, earlier ones {earlier:?}")]
    Shape {
        found: Vec<usize>,
        earlier: Vec<usize>,
    },
    #[error("{values} values do not make rows of {cols}")]
    Ragged { values: usize, cols: usize },
    #[error("more than the {rows} declared rows")]
    TooMany { rows: usize },
    #[error("{written} of {rows} rows written")]
    Short { written: usize, rows: usize },
}

/// Writes a `float32` `rows x cols` (or `rows x C x H x W`, [`NpyRowWriter::push_shaped`])
/// `.npy` file row block by row block, through [`ood_core::io::npy::NpyWriter`] (created with
/// the first block, when the row shape is known, and declaring all `rows`). [`NpyRowWriter::finish`] checks the count and renames the temporary
/// file into place; dropped unfinished, it leaves no file behind.
#[derive(Debug)]
pub struct NpyRowWriter {
    path: PathBuf,
    rows: usize,
    cols: Option<usize>,
    /// Shape of one row (`[cols]`, or `[C, H, W]` for feature maps), known with the first block.
    row_shape: Vec<usize>,
    out: Option<NpyWriter<f32>>,
}

impl NpyRowWriter {
    pub fn create(path: &Path, rows: usize) -> Result<Self> {
        // Refuse a device node or directory now, before the model runs.
        ood_core::io::check_output(path, &[]).map_err(|e| NpyError::from(e.into_io_error()))?;
        Ok(Self {
            path: path.into(),
            rows,
            cols: None,
            row_shape: Vec::new(),
            out: None,
        })
    }

    /// Appends `values.len() / cols` rows.
    pub fn push(&mut self, values: &[f32], cols: usize) -> Result<()> {
        self.push_shaped(values, &[cols])
    }

    /// Appends rows of shape `row_shape` (every block the same).
    pub fn push_shaped(&mut self, values: &[f32], row_shape: &[usize]) -> Result<()> {
        let cols = row_shape.iter().product::<usize>();
        if self.cols.is_some() && self.row_shape != row_shape {
            return Err(self.rows_error(RowError::Shape {
                found: row_shape.to_vec(),
                earlier: self.row_shape.clone(),
            }));
        }
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(self.rows_error(RowError::Ragged {
                values: values.len(),
                cols,
            }));
        }
        let written = self.written_rows();
        if written + values.len() / cols > self.rows {
            return Err(self.rows_error(RowError::TooMany { rows: self.rows }));
        }
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                self.cols = Some(cols);
                self.row_shape = row_shape.to_vec();
                let shape: Vec<usize> = std::iter::once(self.rows)
                    .chain(row_shape.iter().copied())
                    .collect();
                self.out.insert(NpyWriter::create(&self.path, &shape)?)
            }
        };
        out.push(values)?;
        Ok(())
    }

    fn written_rows(&self) -> usize {
        match (&self.out, self.cols) {
            (Some(o), Some(c)) => o.written() as usize / c,
            _ => 0,
        }
    }

    /// Checks that every row was written, syncs, and renames into place.
    pub fn finish(mut self) -> Result<()> {
        let written = self.written_rows();
        match self.out.take() {
            Some(out) if written == self.rows => Ok(out.finish()?),
            _ => Err(self.rows_error(RowError::Short {
                written,
                rows: self.rows,
            })),
        }
    }

    fn rows_error(&self, source: RowError) -> InferError {
        InferError::Rows {
            path: self.path.clone(),
            source,
        }
    }
}

/// A 2-D tensor as contiguous CPU `f32` values and its column count.
pub(crate) fn to_rows(t: &Tensor) -> Result<(Vec<f32>, usize)> {
    let (v, shape) = to_host(t)?;
    Ok((v, shape.get(1).copied().unwrap_or(1)))
}

/// A tensor as contiguous CPU `f32` values and its shape.
pub(crate) fn to_host(t: &Tensor) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let v = Vec::<f32>::try_from(t.view(-1)).map_err(torch_err("copying to host"))?;
    Ok((v, shape))
}
